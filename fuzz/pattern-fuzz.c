/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the counted pattern functions (core/counted.c) must agree with Lua 5.4's
 * own on any pattern, subject, start and replacement: same results, same errors.
 *
 * Input: one byte choosing the start position and the replacement, then the pattern, a
 * newline, and the subject. A case the counted functions stop after STEP_LIMIT steps is
 * not run through Lua's functions, which would backtrack for as long as it takes.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../tests/core/patterncmp.h"

#define STEP_LIMIT 200000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long steps;

static void fuzz_charge(lua_State *L, unsigned long n)
{
    steps += n;
    if (steps > STEP_LIMIT) {
        luaL_error(L, "fuzz step limit");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *reference, *counted;
    static const long inits[] = {PATTERNCMP_NONE, 0, 1, 3, -1, -2, -5, 100};
    static const char *const repls[] = {"<%0>",  "%1%2", "%%",   "=upper",
                                        "=keep", "=map", "=bad", "%"};
    if (reference == NULL) {
        reference = patterncmp_state(NULL);
        counted = patterncmp_state(fuzz_charge);
        if (reference == NULL || counted == NULL) {
            abort();
        }
    }
    if (size < 1) {
        return 0;
    }
    long init = inits[data[0] & 7];
    const char *repl = repls[(data[0] >> 3) & 7];
    long max = (data[0] >> 6) == 3 ? 1 : PATTERNCMP_NONE;
    const char *p = (const char *)data + 1;
    const char *nl = memchr(p, '\n', size - 1);
    size_t plen = nl != NULL ? (size_t)(nl - p) : size - 1;
    const char *s = nl != NULL ? nl + 1 : "";
    size_t slen = nl != NULL ? size - 1 - plen - 1 : 0;

    steps = 0;
    char *got = patterncmp_run(counted, s, slen, p, plen, init, repl, max);
    if (got == NULL) {
        abort();
    }
    if (strstr(got, "fuzz step limit") == NULL) {
        char *want = patterncmp_run(reference, s, slen, p, plen, init, repl, max);
        if (want == NULL) {
            abort();
        }
        if (strcmp(want, got) != 0) {
            fprintf(stderr, "pattern \"%.*s\" subject \"%.*s\"\nLua:  %s\nward: %s\n", (int)plen, p,
                    (int)slen, s, want, got);
            abort();
        }
        free(want);
    }
    free(got);
    lua_gc(reference, LUA_GCCOLLECT);
    lua_gc(counted, LUA_GCCOLLECT);
    return 0;
}
