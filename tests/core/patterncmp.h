/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs one pattern case through every string function in a Lua state and describes the
 * outcome as one string, so a state with Lua's own functions and one with the counted
 * ones (core/counted.c) can be compared. Shared by tests/core/counted-t and the pattern
 * fuzz target.
 */
#ifndef WARD_TESTS_PATTERNCMP_H
#define WARD_TESTS_PATTERNCMP_H

#include <limits.h>
#include <stddef.h>

#include <lua.h>

#include "counted.h"

/* A state with the standard libraries; charge NULL keeps Lua's pattern functions, else the
 * counted ones charging it. Returns NULL when the state cannot be made. */
#define PATTERNCMP_NONE LONG_MIN

lua_State *patterncmp_state(ward_counted_charge_fn charge);

/*
 * find (with and without plain), match, gmatch, gsub and s:gsub of pattern p on subject s:
 * each one's results with their types, or its error. init and max PATTERNCMP_NONE: not
 * passed (0 is passed as 0); repl
 * a replacement string, or "=upper", "=keep", "=bad" (functions) or "=map" (a table).
 * Caller frees.
 */
char *patterncmp_run(lua_State *L, const char *s, size_t slen, const char *p, size_t plen,
                     long init, const char *repl, long max);

#endif
