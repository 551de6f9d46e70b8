/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The counted pattern functions against Lua's own: every case runs in a state with Lua
 * 5.4's string library (the reference) and in one where ward_counted_install replaced
 * find, match, gmatch and gsub, and the results and errors must be the same. Then the
 * counting itself: the steps a known pattern must take, a budget that stops it, and the
 * sandbox's budget that a pcall cannot swallow.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "../tap/basic.h"
#include "counted.h"
#include "patterncmp.h"
#include "sandbox.h"
#include "util.h"

static unsigned long charged;
static unsigned long charge_limit; /* 0: none */

static lua_State *charged_thread; /* the last one charged */

static void test_charge(lua_State *L, unsigned long steps)
{
    charged_thread = L;
    charged += steps;
    if (charge_limit != 0 && charged > charge_limit) {
        luaL_error(L, "test budget spent");
    }
}

static lua_State *reference, *counted;

/* Do the two states agree on this case? On disagreement, say how. */
static bool agree(const char *s, size_t slen, const char *p, size_t plen, long init,
                  const char *repl, long max, bool quiet)
{
    char *want = patterncmp_run(reference, s, slen, p, plen, init, repl, max);
    char *got = patterncmp_run(counted, s, slen, p, plen, init, repl, max);
    if (want == NULL || got == NULL) {
        bail("out of memory");
    }
    bool same = strcmp(want, got) == 0;
    if (!same && !quiet) {
        diag("subject \"%.*s\" pattern \"%.*s\" init %ld repl %s", (int)slen, s, (int)plen, p, init,
             repl);
        diag("Lua:  %s", want);
        diag("ward: %s", got);
    }
    free(want);
    free(got);
    return same;
}

/* A hand-written case: init 0 here means none, and no replacement limit. */
static void same(const char *s, const char *p, long init, const char *repl, const char *what)
{
    ok(agree(s, strlen(s), p, strlen(p), init != 0 ? init : PATTERNCMP_NONE, repl, PATTERNCMP_NONE,
             false),
       "%s: \"%s\" on \"%s\"", what, p, s);
}

/* Deterministic pseudo-random numbers, so a failing case is found again. */
static unsigned long seed = 12345;
static unsigned pick(unsigned n)
{
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)((seed >> 33) % n);
}

static void random_cases(int n)
{
    static const char *const atoms[] = {
        "a",    "b",     ".",  "%a",   "%d",          "%s",   "%w",   "%p",     "%A",      "[ab]",
        "[^a]", "[a-c]", "%%", "(",    ")",           "()",   "%1",   "%2",     "%b()",    "%f[%w]",
        "^",    "$",     "*",  "+",    "-",           "?",    "x",    "[%a_]",  "%x",      "[]",
        "%",    "[",     "]",  "%f",   "%b",          "[^]]", "%0",   "-.-",    "(a*)",    "%u",
        " ",    "1",     "%z", "\xff", "[\x80-\xff]", "[%z]", "%bxx", "%f[^a]", "[^%w%s]", "%c",
    };
    /* a NUL and a byte above 127 among the subject's characters */
    static const char subject_chars[] = "aab(x) 1_.%-AB]\0\xff";
    static const long inits[] = {
        PATTERNCMP_NONE, PATTERNCMP_NONE, PATTERNCMP_NONE, 0, 1, 2, -1, -3, 5, 40, -40};
    static const char *const repls[] = {"<%0>", "%1-%1", "%%", "=upper", "=keep",
                                        "=map", "x%2",   "%",  "=bad"};
    int agreed = 0;
    int shown = 0;
    for (int i = 0; i < n; i++) {
        char p[512], s[64];
        size_t plen = 0;
        unsigned atoms_n = 1 + pick(6);
        for (unsigned k = 0; k < atoms_n; k++) {
            if (pick(40) == 0) {
                p[plen++] = '\0'; /* a NUL in the pattern */
                continue;
            }
            const char *atom = atoms[pick(WARD_ARRAY_SIZE(atoms))];
            memcpy(p + plen, atom, strlen(atom));
            plen += strlen(atom);
        }
        if (pick(50) == 0) { /* now and then a long set */
            p[plen++] = '[';
            for (unsigned k = 0; k < 200; k++) {
                p[plen++] = (char)('c' + pick(20));
            }
            p[plen++] = ']';
        }
        size_t slen = pick(8) == 0 ? pick(60) : pick(14);
        for (size_t k = 0; k < slen; k++) {
            s[k] = subject_chars[pick(sizeof(subject_chars) - 1)];
        }
        long init = inits[pick(WARD_ARRAY_SIZE(inits))];
        const char *repl = repls[pick(WARD_ARRAY_SIZE(repls))];
        long max = pick(4) == 0 ? (long)pick(3) : PATTERNCMP_NONE;
        bool quiet = shown >= 3;
        if (agree(s, slen, p, plen, init, repl, max, quiet)) {
            agreed++;
        } else {
            shown++;
        }
    }
    is_int(n, agreed, "%d random patterns, subjects and replacements agree with Lua's", n);
}

/* Both states run chunk; true when both ran and returned the same string, which the
 * counted state keeps on its stack. */
static bool same_chunk(const char *chunk)
{
    lua_settop(reference, 0);
    lua_settop(counted, 0);
    int rc_reference = luaL_dostring(reference, chunk);
    int rc_counted = luaL_dostring(counted, chunk);
    if (rc_reference != LUA_OK || rc_counted != LUA_OK ||
        strcmp(lua_tostring(reference, -1), lua_tostring(counted, -1)) != 0) {
        diag("Lua:  %s", lua_tostring(reference, -1));
        diag("ward: %s", lua_tostring(counted, -1));
        return false;
    }
    return true;
}

static void differential(void)
{
    /* classes, sets and single characters */
    same("hello world 42", "%a+", 0, "<%0>", "letters");
    same("hello world 42", "%d+", 0, "<%0>", "digits");
    same("a1 b2\tc3\v", "%s", 0, "_", "spaces");
    same("ABC def GHi", "%u%l", 0, "[%0]", "upper then lower");
    same("x=1, y=22; z=333", "%w+=%d+", 0, "=upper", "alphanumerics");
    same("a.b-c", "%p", 0, "%%", "punctuation");
    same("0x1F zz", "%x+", 0, "<%0>", "hex digits");
    same("\1\2abc\127", "%c+", 0, "<%0>", "control characters");
    same("tab\there", "%g+", 0, "<%0>", "printable");
    same("abc ABC 123", "%A+", 0, "<%0>", "a complement class");
    same("a-b]c^d", "[%]^-]", 0, "<%0>", "a set with ], ^ and - escaped");
    same("a]b", "[]]", 0, "<%0>", "']' first in a set is a member");
    same("a]b^", "[^]]+", 0, "<%0>", "']' first in a complement");
    same("az-09", "[a-z0-9]+", 0, "<%0>", "ranges");
    same("a-z", "[z-]", 0, "<%0>", "a '-' at the end of a set");
    same("x$y", "x$y", 0, "<%0>", "a '$' inside is itself");
    same("x^y", "x^y", 0, "<%0>", "a '^' inside is itself");
    /* quantifiers and anchors */
    same("aaab", "a-b", 0, "<%0>", "lazy");
    same("aaab", "a*", 0, "<%0>", "greedy, empty matches too");
    same("aaab", "a+", 0, "<%0>", "one or more");
    same("ab b", "a?b", 0, "<%0>", "optional");
    same("hello", "^h", 0, "<%0>", "anchored");
    same("hello", "^l", 0, "<%0>", "anchored, no match");
    same("hello", "o$", 0, "<%0>", "end anchor");
    same("", "^$", 0, "<%0>", "the empty subject");
    same("", "", 0, "<%0>", "the empty pattern");
    same("abc", "", 0, "-", "empty matches between every character");
    same("key = value", "^(%w+)%s*=%s*(%w+)$", 0, "%2=%1", "captures");
    same("hello", "()ll()", 0, "%1..%2", "position captures");
    same("f(a(b)c)d", "%b()", 0, "<%0>", "balanced");
    same("''ab''", "%b''", 0, "<%0>", "balanced with the same delimiter");
    same("THE (quick) fox", "%f[%a]%a+", 0, "<%0>", "frontier");
    same("abc", "%f[%z]", 0, "<%0>", "frontier at the end");
    same("hello hello world", "(h%a+) %1", 0, "<%1>", "back reference");
    same("abab", "()a%1", 0, "<%0>", "back reference to a position never matches");
    same("the end", "%w+", 3, "<%0>", "init");
    same("the end", "%w+", -3, "<%0>", "negative init");
    same("the end", "%w+", 9, "<%0>", "init past the end");
    same("the end", "%w+", 8, "<%0>", "init just past the end");
    same("a.b", ".", 0, "<%0>", "find with '.' (plain only with the flag)");
    same("a+b", "+", 0, "<%0>", "a lone quantifier is itself");
    same("aaa", "a", 0, "=map", "a table replacement");
    same("ab ab x", "%w+", 0, "=map", "table values: number, false, missing");
    same("abc", "%w", 0, "=keep", "a function keeping every match");
    same("abc", "(%w)(%w)", 0, "=upper", "a function getting the captures");
    same("abc", "%w", 0, "=bad", "a function returning a table");
    /* errors */
    same("abc", "%", 0, "<%0>", "a pattern ending with '%'");
    same("abc", "[a", 0, "<%0>", "a missing ']'");
    same("abc", "[%", 0, "<%0>", "a set ending with '%'");
    same("abc", "%b", 0, "<%0>", "%b without arguments");
    same("abc", "%bx", 0, "<%0>", "%b with one argument");
    same("abc", "%fa", 0, "<%0>", "%f without a set");
    same("abc", "%f", 0, "<%0>", "%f at the end");
    same("abc", "(a", 0, "<%0>", "an unfinished capture");
    same("abc", "a)", 0, "<%0>", "a ')' with no '('");
    same("abc", "%1", 0, "<%0>", "a back reference with no capture");
    same("abc", "(a%1)", 0, "<%0>", "a back reference to an open capture");
    same("abc", "%0", 0, "<%0>", "%0 in a pattern");
    same("abc", "(a)", 0, "%2", "a replacement naming a missing capture");
    same("abc", "a", 0, "%x", "an invalid '%' in a replacement");
    same("abc", "a", 0, "x%", "a replacement ending with '%'");
    same("abc", "((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))", 0, "<%0>",
         "33 captures");
    char deep_s[301] = "", deep_p[601] = "";
    for (int i = 0; i < 300; i++) {
        strcat(deep_s, "a");
        strcat(deep_p, "a?");
    }
    ok(agree(deep_s, strlen(deep_s), deep_p, strlen(deep_p), PATTERNCMP_NONE, "<%0>",
             PATTERNCMP_NONE, false),
       "a pattern too complex: 300 optionals on 300 characters");
    /* embedded zeros in subject and pattern */
    ok(agree("a\0b\0c", 5, "%z?\0", 4, PATTERNCMP_NONE, "<%0>", PATTERNCMP_NONE, false) &&
           agree("a\0b\0c", 5, "[\0b]+", 6, PATTERNCMP_NONE, "<%0>", PATTERNCMP_NONE, false) &&
           agree("a\0b\0c", 5, "\0", 1, PATTERNCMP_NONE, "<%0>", PATTERNCMP_NONE, false),
       "embedded zeros in subject and pattern");
    /* arguments */
    ok(agree("12.5", 4, "%d", 2, PATTERNCMP_NONE, "=upper", 2, false), "a replacement limit");
    ok(agree("12.5", 4, "%d", 2, 0, "<%0>", 0, false), "init 0 and a limit of 0");
    ok(agree("abc", 3, "b", 1, PATTERNCMP_NONE, "<%0>", -1, false),
       "a negative limit replaces nothing");
    lua_settop(reference, 0);
    const char *calls = "return table.concat({"
                        "  select(2, pcall(string.gsub, 'x', 'x', nil)),"
                        "  select(2, pcall(string.gsub, 'x', 'x', true)),"
                        "  select(2, pcall(string.find, nil, 'x')),"
                        "  select(2, pcall(string.match, 'x', {})),"
                        "  tostring(string.find(12345, 34)), tostring(string.match(3.5, '%d')),"
                        "  select(2, string.gsub('abc', 'b', 7)),"
                        "  (string.gsub('a1', '%d', 2.5)),"
                        "  tostring(select(2, pcall(string.gmatch, 'x', 'x', 'y'))),"
                        "}, '|')";
    bool same_calls = same_chunk(calls); /* before the message reads its result */
    ok(same_calls, "bad arguments and numbers as strings: the same errors and results (%s)",
       lua_tostring(counted, -1));
    lua_settop(counted, 0);
    (void)luaL_dostring(counted, "local it = ('a b c'):gmatch('%a')\n"
                                 "local co = coroutine.wrap(function() return it() end)\n"
                                 "return it() .. co() .. it() .. tostring((it()))");
    is_string("abcnil", lua_tostring(counted, -1),
              "a gmatch iterator goes on in another coroutine");

    random_cases(20000);
}

static void counting(void)
{
    /* ".-.-b" on n a's: from each start i, the two lazy items try every split of the
     * n - i characters left before failing, at least (n - i)^2 / 2 steps. */
    const int n = 300;
    unsigned long floor_steps = 0;
    for (int i = 0; i < n; i++) {
        floor_steps += (unsigned long)(n - i) * (unsigned long)(n - i) / 2;
    }
    static const char *const fns[] = {"find", "match", "gsub", "gmatch"};
    for (size_t k = 0; k < WARD_ARRAY_SIZE(fns); k++) {
        char chunk[200];
        snprintf(chunk, sizeof(chunk),
                 "local s = string.rep('a', %d)\n"
                 "if '%s' == 'gmatch' then for _ in s:gmatch('.-.-b') do end return end\n"
                 "return s:%s('.-.-b', %s)",
                 n, fns[k], fns[k], strcmp(fns[k], "gsub") == 0 ? "''" : "1");
        charged = 0;
        lua_settop(counted, 0);
        int rc = luaL_dostring(counted, chunk);
        ok(rc == LUA_OK && charged >= floor_steps,
           "%s counts every step of a backtracking match: %lu, at least %lu", fns[k], charged,
           floor_steps);
    }

    /* Work that is not a step of the backtracking, counted too. */
    static const struct {
        const char *chunk;
        unsigned long at_least;
        const char *what;
    } work[] = {
        {"return ('x'):rep(2000):find('[' .. ('a'):rep(2000) .. ']')", 2000ul * 2000,
         "a 2,000-character set tried at 2,000 places"},
        {"return ('x'):rep(2000):find('%f[' .. ('a'):rep(2000) .. ']')", 2001ul * 2000,
         "a 2,000-character frontier set tried at 2,001 places"},
        {"return ('x'):rep(1000):gsub('', ('%0'):rep(1000))", 1001ul * 2000,
         "a 2,000-character replacement read at 1,001 empty matches"},
        {"local s = ('a'):rep(1000)\n"
         "for i = 1, 100 do pcall(string.find, s, 'a*%') end",
         100ul * 1000, "100 malformed patterns, each failing after 1,000 steps"},
    };
    for (size_t k = 0; k < WARD_ARRAY_SIZE(work); k++) {
        charged = 0;
        lua_settop(counted, 0);
        (void)luaL_dostring(counted, work[k].chunk);
        ok(charged >= work[k].at_least, "%s: %lu steps, at least %lu", work[k].what, charged,
           work[k].at_least);
    }
    lua_settop(counted, 0);
    (void)luaL_dostring(counted, "local it = ('a'):rep(200):gmatch('.-.-b')\n"
                                 "local co = coroutine.create(function() return it() end)\n"
                                 "coroutine.resume(co) return co");
    ok(lua_tothread(counted, -1) != NULL && charged_thread == lua_tothread(counted, -1),
       "a gmatch iterator made on one thread charges the thread that calls it");

    /* Without the limit this takes 2000^3/6, about 1.3e9 steps: seconds, then no match. */
    charged = 0;
    charge_limit = 1000000;
    lua_settop(counted, 0);
    int rc = luaL_dostring(counted, "return string.rep('a', 2000):find('.-.-b')");
    ok(rc != LUA_OK && strstr(lua_tostring(counted, -1), "test budget spent") != NULL &&
           charged < 2 * charge_limit,
       "the charge stops a match once its budget is spent (%s, %lu steps)",
       lua_tostring(counted, -1), charged);
    charge_limit = 0;
}

/* The wrapped table functions and string.rep: Lua's results and errors, and each call's
 * elements charged before it starts. */
static void tables(void)
{
    static const char prelude[] =
        "local function show(t) local out = {} for i = -2, 8 do out[#out + 1] = tostring(t[i])\n"
        "  end return table.concat(out, ' ') end\n"
        "local function try(f, ...) local r = table.pack(pcall(f, ...))\n"
        "  if not r[1] then return 'error: ' .. tostring(r[2]) end\n"
        "  for i = 2, r.n do if type(r[i]) == 'table' then r[i] = show(r[i]) else\n"
        "    r[i] = tostring(r[i]) end end return table.concat(r, ' ', 2, r.n) end\n"
        "local function proxy() return setmetatable({}, {__index = function(_, k) return k * 10 "
        "end,\n"
        "  __newindex = function(t, k, v) rawset(t, k, v) end, __len = function() return 3 end})\n"
        "end\n"
        "local function t3() return {1, 2, 3} end\n";
    static const struct {
        const char *what;
        const char *calls;
    } groups[] = {
        {"table.move",
         "try(table.move, t3(), 1, 3, 2), try(table.move, t3(), 2, 3, 1),\n"
         "try(table.move, t3(), 1, 3, 3, {}), try(table.move, t3(), 3, 1, 5),\n"
         "try(table.move, t3(), -1, 1, 4), try(table.move, proxy(), 1, 3, 1, {}),\n"
         "try(table.move, nil, 1, 2, 3), try(table.move, {}, 1, 2),\n"
         "try(table.move, {}, 1.5, 2, 3), try(table.move, {}, 1, 2, 3, 7),\n"
         "try(table.move, {}, math.mininteger, 1, 1), try(table.move, {}, 1, 2, math.maxinteger),\n"
         "try(table.move, setmetatable({}, {__index = {}}), 1, 2, 3),\n"
         "try(table.move, 'x', 1, 2, 3), tostring(select('#', table.move({}, 1, 0, 1)))"},
        {"table.insert",
         "try(table.insert, t3(), 'x'), try(table.insert, t3(), 1, 'x'),\n"
         "try(table.insert, t3(), 4, 'x'), try(table.insert, t3(), 5, 'x'),\n"
         "try(table.insert, t3(), 0, 'x'), try(table.insert, t3(), 1, 'x', 'y'),\n"
         "try(table.insert, t3()), try(table.insert, nil, 1), try(table.insert, t3(), 'a', 1),\n"
         "try(table.insert, proxy(), 2, 'x'), try(table.insert, setmetatable({}, {}), 1)"},
        {"table.remove",
         "try(table.remove, t3()), try(table.remove, t3(), 1), try(table.remove, t3(), 3),\n"
         "try(table.remove, t3(), 4), try(table.remove, t3(), 5), try(table.remove, {}, 0),\n"
         "try(table.remove, {}), try(table.remove, {}, -1), try(table.remove, proxy(), 1),\n"
         "try(table.remove, 7)"},
        {"table.concat",
         "try(table.concat, {1, 'a', 2.5}), try(table.concat, {1, 'a', 2.5}, ', '),\n"
         "try(table.concat, {1, 'a', 2.5}, '-', 2, 3), try(table.concat, {1, 2}, '', 3, 1),\n"
         "try(table.concat, {1, {}, 3}), try(table.concat, {1}, '', 1, 3),\n"
         "try(table.concat, {1}, {}), try(table.concat, proxy()), try(table.concat, 5)"},
        {"table.unpack",
         "try(table.unpack, t3()), try(table.unpack, t3(), 2), try(table.unpack, t3(), 2, 5),\n"
         "try(table.unpack, t3(), 3, 1), try(table.unpack, {}, 1, 1e8 // 1),\n"
         "try(table.unpack, {}, math.mininteger, math.maxinteger), try(table.unpack, proxy()),\n"
         "try(table.unpack, t3(), 'x')"},
        {"table.sort",
         "try(table.sort, {3, 1, 2}), try(table.sort, {3, 1, 2}, function(a, b) return a > b "
         "end),\n"
         "try(table.sort, {3, 1, 2}, 5), try(table.sort, {1, 'x'}),\n"
         "try(table.sort, setmetatable({}, {__len = function() return math.maxinteger end})),\n"
         "try(table.sort, nil), try(table.sort, {})"},
        {"string.rep",
         "try(string.rep, 'ab', 3), try(string.rep, 'ab', 3, ', '), try(string.rep, 'ab', 0),\n"
         "try(string.rep, 'ab', -1), try(string.rep, '', 5), try(string.rep, '', 5, ''),\n"
         "try(string.rep, '', 2, 'x'), try(string.rep, 'x', 1e300), try(string.rep, 5, 2),\n"
         "try(string.rep, {}, 2)"},
    };
    for (size_t k = 0; k < WARD_ARRAY_SIZE(groups); k++) {
        char chunk[4096];
        snprintf(chunk, sizeof(chunk), "%sreturn table.concat({%s}, '\\n')", prelude,
                 groups[k].calls);
        ok(same_chunk(chunk), "%s: the same results and errors as Lua's", groups[k].what);
    }

    /* Calls that would visit far more elements than the budget has left: each is refused
     * before it starts. Uncounted, each would take seconds, and the 1e12 move about seven
     * hours (26 ns an element). */
    static const struct {
        const char *chunk;
        const char *what;
    } refused[] = {
        {"table.move({}, 1, 1e12, 2)", "table.move of 1e12 elements"},
        {"table.insert(setmetatable({}, {__len = function() return 2e8 // 1 end}), 1, 'x')",
         "table.insert at the front of a table whose __len says 2e8"},
        {"table.remove(setmetatable({}, {__len = function() return 2e8 // 1 end}), 1)",
         "table.remove from the front of the same"},
        {"table.concat(setmetatable({}, {__index = function() return '' end}), '', 1, 2e7 // 1)",
         "table.concat over 2e7 elements an __index makes up"},
        {"table.unpack({}, 1, 999000)", "table.unpack of 999,000 values"},
        {"table.sort(setmetatable({}, {__len = function() return 2e6 // 1 end}), math.type)",
         "table.sort of 2e6 elements"},
    };
    charge_limit = 100000;
    for (size_t k = 0; k < WARD_ARRAY_SIZE(refused); k++) {
        charged = 0;
        lua_settop(counted, 0);
        int rc = luaL_dostring(counted, refused[k].chunk);
        ok(rc != LUA_OK && strstr(lua_tostring(counted, -1), "test budget spent") != NULL &&
               charged > charge_limit,
           "%s is refused before it starts (%s)", refused[k].what, lua_tostring(counted, -1));
    }
    charge_limit = 0;
    charged = 0;
    lua_settop(counted, 0);
    (void)luaL_dostring(counted, "table.move({}, 1, 1000, 2) table.insert({1, 2, 3}, 1, 0)");
    ok(charged >= 1000 + 4 && charged < 1000 + 4 + 10,
       "a move and an insert charge the elements they visit: %lu", charged);
}

static void sandbox(void)
{
    lua_State *L = ward_sandbox_new(64u * 1024u * 1024u);
    struct ward_error err = {0};
    const char *hostile = "local s = string.rep('a', 2000)\n"
                          "local found = s:find('.-.-b')\n"
                          "return 'finished'";
    luaL_loadstring(L, hostile);
    ward_sandbox_arm(L, 1000000, 0, NULL);
    int rc = ward_sandbox_pcall(L, 0, 1, &err);
    err.text[strcspn(err.text, "\n")] = '\0';
    ok(rc == -ETIME && strstr(err.text, "instruction budget exhausted") != NULL &&
           ward_sandbox_exhausted(L),
       "the sandbox's budget stops a backtracking match (%d: %.60s)", rc, err.text);
    ward_sandbox_disarm(L);

    const char *swallow = "local ok = pcall(string.gsub, string.rep('a', 2000), '.-.-b', '')\n"
                          "return 'swallowed'";
    luaL_loadstring(L, swallow);
    ward_sandbox_arm(L, 1000000, 0, NULL);
    rc = ward_sandbox_pcall(L, 0, 1, &err);
    err.text[strcspn(err.text, "\n")] = '\0';
    ok(rc == -ETIME, "a pcall around the match cannot swallow the stop (%d: %.60s)", rc, err.text);
    ward_sandbox_disarm(L);

    luaL_loadstring(L, "return (string.gsub('a,b', '(%w)', '<%1>'))");
    rc = ward_sandbox_pcall(L, 0, 1, &err);
    is_string("<a>,<b>", rc == 0 ? lua_tostring(L, -1) : err.text,
              "with no budget armed, patterns work as in Lua");
    ward_sandbox_close(L);
}

int main(void)
{
    plan(97);
    reference = patterncmp_state(NULL);
    counted = patterncmp_state(test_charge);
    if (reference == NULL || counted == NULL) {
        bail("cannot make the Lua states");
    }
    differential();
    counting();
    tables();
    sandbox();
    lua_close(reference);
    lua_close(counted);
    return 0;
}
