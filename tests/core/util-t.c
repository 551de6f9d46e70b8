/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "../tap/basic.h"
#include "util.h"

int main(void)
{
    static const struct {
        const char *text;
        double seconds;
    } good[] = {{"15m", 900},      {"30s", 30},  {"250ms", 0.25}, {"1h30m", 5400},
                {"1.5s", 1.5},     {"2d", 172800}, {"0s", 0},     {"1m30s500ms", 90.5}};
    static const char *const bad[] = {"", "15", "m", "-5s", "5 s", "5x", "1e999s", "20y", "s5"};
    plan(WARD_ARRAY_SIZE(good) + WARD_ARRAY_SIZE(bad) + 4);

    for (size_t i = 0; i < WARD_ARRAY_SIZE(good); i++) {
        double v = -1;
        int rc = ward_duration_parse(good[i].text, &v);
        ok(rc == 0 && v > good[i].seconds - 1e-9 && v < good[i].seconds + 1e-9,
           "duration \"%s\" is %g s", good[i].text, good[i].seconds);
    }
    for (size_t i = 0; i < WARD_ARRAY_SIZE(bad); i++) {
        double v;
        is_int(-EINVAL, ward_duration_parse(bad[i], &v), "duration \"%s\" is refused", bad[i]);
    }

    struct ward_buf b = {0};
    ward_buf_printf(&b, "abc-%d-def", 42);
    ward_buf_splice(&b, 4, 2, "forty-two");
    is_string("abc-forty-two-def", b.data, "splice grows in the middle");
    ward_buf_splice(&b, 0, 4, "");
    is_string("forty-two-def", b.data, "splice shrinks at the start");
    is_int(13, (long long)b.len, "length follows");
    ward_buf_free(&b);

    struct ward_error err = {0};
    is_int(-ENOENT, ward_error_set(&err, -ENOENT, "no %s", "host"), "error_set returns the code");
    return 0;
}
