/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counted pattern functions against Lua 5.4's own (not a test). Each workload runs as a
 * Lua chunk in two states, one with Lua's string library and one where
 * ward_counted_install replaced find, match, gmatch and gsub (charging a counter, as the
 * sandbox does), round after round, alternating which state goes first. Prints the
 * median time of each and the ratio counted / Lua.
 *
 *   make bench && ./bench/pattern-bench [rounds]
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "counted.h"
#include "util.h"
#include "stats.h"

static unsigned long charged;

static void bench_charge(lua_State *L, unsigned long steps)
{
    (void)L;
    charged += steps;
}

/* What policies and quirk hooks do with patterns, scaled to take some milliseconds. */
static const struct {
    const char *name;
    const char *chunk;
} workloads[] = {
    {"match: firmware version, 100k times",
     "local n = 0 for i = 1, 100000 do\n"
     "  local a, b, c = string.match('iDRAC 7.00.60.00', '^(%a+) (%d+)%.(%d+)')\n"
     "  if a then n = n + 1 end end return n"},
    {"find: plain manufacturer, 100k times",
     "local n = 0 for i = 1, 100000 do\n"
     "  if string.find('Dell Inc. PowerEdge R650', 'PowerEdge', 1, true) then n = n + 1 end\n"
     "end return n"},
    {"find: anchored prefix, 100k times",
     "local n = 0 for i = 1, 100000 do\n"
     "  if ('/redfish/v1/Systems/System.Embedded.1'):find('^/redfish/v1/Systems/') then\n"
     "    n = n + 1 end end return n"},
    {"gsub: squeeze spaces in 1 MiB",
     "local s = string.rep('word  \\t and   more ', 1 << 16) return #(s:gsub('%s+', ' '))"},
    {"gmatch: split 100k comma fields", "local s = string.rep('field,', 100000) local n = 0\n"
                                        "for f in s:gmatch('[^,]+') do n = n + 1 end return n"},
    {"find: backtracking '.-.-b' on 300 a's", "return string.rep('a', 300):find('.-.-b')"},
};

static lua_State *state(bool counted)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (counted) {
        ward_counted_install(L, bench_charge);
    }
    return L;
}

static double run(lua_State *L, const char *chunk)
{
    double t0 = ward_monotonic();
    if (luaL_dostring(L, chunk) != LUA_OK) {
        fprintf(stderr, "pattern-bench: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    double t = ward_monotonic() - t0;
    lua_settop(L, 0);
    return t;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 9;
    if (rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: %s [rounds 1-100]\n", argv[0]);
        return 2;
    }
    lua_State *lua = state(false), *ward = state(true);
    double *tl = calloc((size_t)rounds, sizeof(double));
    double *tw = calloc((size_t)rounds, sizeof(double));
    printf("pattern-bench: %d rounds, median ms (Lua 5.4's string library | counted)\n", rounds);
    for (size_t w = 0; w < WARD_ARRAY_SIZE(workloads); w++) {
        charged = 0;
        for (int r = 0; r < rounds; r++) {
            if (r % 2 == 0) {
                tl[r] = run(lua, workloads[w].chunk);
                tw[r] = run(ward, workloads[w].chunk);
            } else {
                tw[r] = run(ward, workloads[w].chunk);
                tl[r] = run(lua, workloads[w].chunk);
            }
        }
        double ml = bench_median(tl, (size_t)rounds) * 1e3,
               mw = bench_median(tw, (size_t)rounds) * 1e3;
        printf("  %-40s %8.2f | %8.2f   ratio %.2f   steps/round %lu\n", workloads[w].name, ml, mw,
               mw / ml, charged / (unsigned long)rounds);
    }
    free(tl);
    free(tw);
    lua_close(lua);
    lua_close(ward);
    return 0;
}
