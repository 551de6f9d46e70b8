/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files are outside input: deterministic mutations of the shipped
 * policy (bytes flipped, deleted, duplicated; lines dropped) must each end in
 * "ok" or a clear refusal from policy check, never a crash (run it under the
 * sanitizer build to catch memory errors).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "policy.h"

#define ROUNDS 400

static unsigned long long rng = 0x2545f4914f6cdd1dull;

static unsigned next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (unsigned)((rng * 2685821657736338717ull) >> 33);
}

static void mutate(char *buf, size_t *len)
{
    static const char tokens[] = "{}()[]=,.:\"'-~#\\\n\0\xff\x1bLua";
    size_t n = *len;
    switch (next() % 4) {
    case 0: /* flip a byte */
        buf[next() % n] = tokens[next() % (sizeof(tokens) - 1)];
        break;
    case 1: { /* delete a span */
        size_t at = next() % n, k = 1 + next() % 40;
        if (at + k > n) {
            k = n - at;
        }
        memmove(buf + at, buf + at + k, n - at - k);
        *len = n - k;
        break;
    }
    case 2: { /* duplicate a span */
        size_t at = next() % n, k = 1 + next() % 40;
        if (at + k > n) {
            k = n - at;
        }
        memmove(buf + at + k, buf + at, n - at);
        *len = n + k;
        break;
    }
    default: { /* drop a line */
        char *nl = memchr(buf + next() % n, '\n', n / 2);
        if (nl != NULL && nl + 1 < buf + n) {
            char *end = memchr(nl + 1, '\n', (size_t)(buf + n - nl - 1));
            if (end != NULL) {
                memmove(nl, end, (size_t)(buf + n - end));
                *len = n - (size_t)(end - nl);
            }
        }
        break;
    }
    }
}

int main(void)
{
    plan(3);
    char *orig = test_slurp(WARD_SRCDIR "/policies/physicalhost.lua");
    if (orig == NULL) {
        bail("cannot read physicalhost.lua");
    }
    size_t olen = strlen(orig);
    char *buf = malloc(olen * 2 + 1024);
    const char *dir = test_tmpdir();
    char path[4096];
    snprintf(path, sizeof(path), "%s/mutant.lua", dir);
    FILE *out = fopen("/dev/null", "w");
    if (buf == NULL || out == NULL) {
        sysbail("setup");
    }
    int ok_count = 0, refused = 0, other = 0;
    for (int i = 0; i < ROUNDS; i++) {
        memcpy(buf, orig, olen);
        size_t len = olen;
        int edits = 1 + (int)(next() % 4);
        for (int k = 0; k < edits && len > 64 && len < olen + 512; k++) {
            mutate(buf, &len);
        }
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            sysbail("write %s", path);
        }
        int rc = ward_policy_check_file(path, out);
        ok_count += rc == 0;
        refused += rc == 1;
        other += rc != 0 && rc != 1;
    }
    is_int(0, other, "every mutant ends in ok (0) or a refusal (1)");
    ok(refused > ROUNDS / 2, "most mutants are refused (%d of %d)", refused, ROUNDS);
    ok(ok_count + refused == ROUNDS, "and none crashed the checker (%d ok, %d refused)", ok_count,
       refused);
    fclose(out);
    free(buf);
    free(orig);
    return 0;
}
