/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>

#include "../tap/basic.h"
#include "util.h"

int main(void)
{
    static const struct {
        const char *text;
        double seconds;
    } good[] = {{"15m", 900},  {"30s", 30},    {"250ms", 0.25}, {"1h30m", 5400},
                {"1.5s", 1.5}, {"2d", 172800}, {"0s", 0},       {"1m30s500ms", 90.5}};
    static const char *const bad[] = {"", "15", "m", "-5s", "5 s", "5x", "1e999s", "20y", "s5"};
    plan(WARD_ARRAY_SIZE(good) + WARD_ARRAY_SIZE(bad) + 4 + 12);

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

    /* the string map: many keys, removal, re-insertion, a walk over every entry */
    enum { NKEYS = 5000 };
    static char keys[NKEYS][16];
    struct ward_strmap m = {0};
    ok(ward_strmap_get(&m, "x") == NULL && ward_strmap_remove(&m, "x") == NULL,
       "an empty map finds nothing");
    int bad_put = 0;
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "Host/node-%d", i);
        bad_put += ward_strmap_put(&m, keys[i], keys[i]) != 0;
    }
    is_int(0, bad_put, "5000 keys inserted");
    int wrong = 0;
    for (int i = 0; i < NKEYS; i++) {
        char probe[16];
        snprintf(probe, sizeof(probe), "Host/node-%d", i); /* another copy of the key */
        wrong += ward_strmap_get(&m, probe) != keys[i];
    }
    is_int(0, wrong, "each is found by an equal string");
    int removed_ok = 0;
    for (int i = 0; i < NKEYS; i += 2) {
        removed_ok += ward_strmap_remove(&m, keys[i]) == keys[i];
    }
    is_int(NKEYS / 2, removed_ok, "removing the even ones returns their values");
    wrong = 0;
    for (int i = 0; i < NKEYS; i++) {
        void *want = i % 2 == 0 ? NULL : keys[i];
        wrong += ward_strmap_get(&m, keys[i]) != want;
    }
    is_int(0, wrong, "the even ones are gone, the odd ones still found (past the tombstones)");
    for (int i = 0; i < NKEYS; i += 2) {
        ward_strmap_put(&m, keys[i], keys[(i + 1) % NKEYS]);
    }
    ward_strmap_put(&m, keys[1], keys[0]); /* replacing keeps one entry */
    is_int(NKEYS, (long long)m.n, "re-inserted: 5000 entries again");
    ok(ward_strmap_get(&m, keys[0]) == keys[1] && ward_strmap_get(&m, keys[1]) == keys[0],
       "with their new values");
    size_t walked = 0;
    for (size_t i = 0; i < m.cap; i++) {
        walked += ward_strmap_value_at(&m, i) != NULL;
    }
    is_int(NKEYS, (long long)walked, "a walk over the slots meets every entry once");
    ward_strmap_free(&m);

    /* /proc/PID/stat: a command name may hold spaces and parentheses */
    struct ward_proc_stat ps;
    const char *line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 3 0 "
                       "987654 123456789 2048 18446744073709551615\n";
    ok(ward_proc_stat_parse(line, &ps) == 0 && ps.utime == 17 && ps.stime == 5 &&
           ps.start == 987654 && ps.vsize == 123456789 && ps.rss == 2048,
       "a stat line is read past the last ')' of its command name");
    is_int(-EINVAL, ward_proc_stat_parse("4242 (cut) S 1 2", &ps), "a short line is refused");

    /* the wall clock of a box that has not been given the date */
    ok(!ward_clock_plausible(0) && !ward_clock_plausible(3600.0 * 24 * 200),
       "1970, and a box up for 200 days since, is not the date");
    ok(!ward_clock_plausible(1767225599.0) && ward_clock_plausible(1795478400.0),
       "the floor is 2026-01-01 00:00 UTC: a second before it is not the date, 2026-11-24 is");
    return 0;
}
