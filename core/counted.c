/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "counted.h"
#include "util.h"

#define ESC '%'
/* A pattern without any of these is a plain string to string.find. */
#define SPECIALS "^$*+?.([%-"
/* The limits of Lua 5.4's matcher, so a pattern fails here exactly where it fails there. */
#define MAX_CAPTURES 32
#define MAX_DEPTH 200

enum { CAP_OPEN = -1, CAP_POSITION = -2 };

struct matcher {
    lua_State *L;
    ward_counted_charge_fn charge;
    const char *src; /* the whole subject: %f looks before the start */
    const char *src_end;
    const char *pat_end;
    int depth_left;
    int level; /* captures opened so far */
    unsigned long steps;
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
    } cap[MAX_CAPTURES];
};

static int uchar(char c)
{
    return (unsigned char)c;
}

static void charge_now(struct matcher *m)
{
    if (m->steps > 0) {
        unsigned long n = m->steps;
        m->steps = 0;
        m->charge(m->L, n);
    }
}

static void count(struct matcher *m, unsigned long n)
{
    m->steps += n;
    if (m->steps >= WARD_COUNTED_CHARGE_EVERY) {
        charge_now(m);
    }
}

/* luaL_error, after charging the steps taken: a pcall'd loop of failing patterns must not
 * take up to a thousand steps per call for free. */
static int matcher_error(struct matcher *m, const char *fmt, ...)
{
    charge_now(m);
    va_list ap;
    va_start(ap, fmt);
    luaL_where(m->L, 1);
    lua_pushvfstring(m->L, fmt, ap);
    va_end(ap);
    lua_concat(m->L, 2);
    return lua_error(m->L);
}

static void matcher_init(struct matcher *m, lua_State *L, ward_counted_charge_fn charge,
                         const char *s, size_t len, const char *pat_end)
{
    m->L = L;
    m->charge = charge;
    m->src = s;
    m->src_end = s + len;
    m->pat_end = pat_end;
    m->steps = 0;
}

/* Before each attempt at a new position. */
static void matcher_reset(struct matcher *m)
{
    m->level = 0;
    m->depth_left = MAX_DEPTH;
}

/* Just past the single-character class that starts at p: "x", "%x", "." or "[set]". */
static const char *class_end(struct matcher *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p >= m->pat_end) {
            matcher_error(m, "malformed pattern (ends with '%%')");
        }
        return p + 1;
    }
    if (c != '[') {
        return p;
    }
    if (p < m->pat_end && *p == '^') {
        p++;
    }
    /* The set's first character is a member even when it is ']'. */
    const char *start = p;
    do {
        if (p >= m->pat_end) {
            matcher_error(m, "malformed pattern (missing ']')");
        }
        c = *p++;
        if (c == ESC && p < m->pat_end) {
            p++;
        }
    } while (p >= m->pat_end || *p != ']');
    count(m, (unsigned long)(p - start)); /* a long set costs its length at every attempt */
    return p + 1;
}

/* Does c belong to %cl? A letter names a class (upper case: its complement); anything
 * else stands for itself. */
static bool class_has(int c, int cl)
{
    int in;
    switch (tolower(cl)) {
    case 'a':
        in = isalpha(c);
        break;
    case 'c':
        in = iscntrl(c);
        break;
    case 'd':
        in = isdigit(c);
        break;
    case 'g':
        in = isgraph(c);
        break;
    case 'l':
        in = islower(c);
        break;
    case 'p':
        in = ispunct(c);
        break;
    case 's':
        in = isspace(c);
        break;
    case 'u':
        in = isupper(c);
        break;
    case 'w':
        in = isalnum(c);
        break;
    case 'x':
        in = isxdigit(c);
        break;
    case 'z':
        in = c == 0; /* deprecated since Lua 5.2, still accepted */
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? in == 0 : in != 0;
}

/* Does c belong to the set from '[' at p to its closing ']' at close? */
static bool set_has(int c, const char *p, const char *close)
{
    bool member = true;
    p++;
    if (*p == '^') {
        member = false;
        p++;
    }
    for (; p < close; p++) {
        if (*p == ESC) {
            p++;
            if (class_has(c, uchar(*p))) {
                return member;
            }
        } else if (p + 2 < close && p[1] == '-') {
            if (uchar(p[0]) <= c && c <= uchar(p[2])) {
                return member;
            }
            p += 2;
        } else if (uchar(*p) == c) {
            return member;
        }
    }
    return !member;
}

/* Does the character at s match the class from p to ep? */
static bool one_matches(struct matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end) {
        return false;
    }
    int c = uchar(*s);
    switch (*p) {
    case '.':
        return true;
    case ESC:
        return class_has(c, uchar(p[1]));
    case '[':
        count(m, (unsigned long)(ep - p));
        return set_has(c, p, ep - 1);
    default:
        return uchar(*p) == c;
    }
}

static const char *match(struct matcher *m, const char *s, const char *p);

/* %bxy at s, with p just after "%b". */
static const char *match_balance(struct matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end) {
        matcher_error(m, "malformed pattern (missing arguments to '%%b')");
    }
    if (s >= m->src_end || *s != p[0]) {
        return NULL;
    }
    int depth = 1;
    while (++s < m->src_end) {
        count(m, 1);
        if (*s == p[1]) {
            if (--depth == 0) {
                return s + 1;
            }
        } else if (*s == p[0]) {
            depth++;
        }
    }
    return NULL;
}

/* %1 to %9: the same text as that (closed) capture. */
static const char *match_back_reference(struct matcher *m, const char *s, char digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->cap[i].len == CAP_OPEN) {
        matcher_error(m, "invalid capture index %%%d", i + 1);
    }
    ptrdiff_t len = m->cap[i].len;
    if (len < 0 || m->src_end - s < len) {
        return NULL; /* a position capture matches no text */
    }
    count(m, (unsigned long)len);
    return memcmp(m->cap[i].at, s, (size_t)len) == 0 ? s + len : NULL;
}

static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t kind)
{
    if (m->level >= MAX_CAPTURES) {
        matcher_error(m, "too many captures");
    }
    m->cap[m->level].at = s;
    m->cap[m->level].len = kind;
    m->level++;
    const char *e = match(m, s, p);
    if (e == NULL) {
        m->level--;
    }
    return e;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
    int i = m->level - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN) {
        i--;
    }
    if (i < 0) {
        matcher_error(m, "invalid pattern capture");
    }
    m->cap[i].len = s - m->cap[i].at;
    const char *e = match(m, s, p);
    if (e == NULL) {
        m->cap[i].len = CAP_OPEN;
    }
    return e;
}

/* x* and x+: take as many as match, then give them back one at a time. */
static const char *match_greedy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (one_matches(m, s + n, p, ep)) {
        count(m, 1);
        n++;
    }
    for (; n >= 0; n--) {
        const char *e = match(m, s + n, ep + 1);
        if (e != NULL) {
            return e;
        }
    }
    return NULL;
}

/* x-: take one more only when the rest does not match yet. */
static const char *match_lazy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *e = match(m, s, ep + 1);
        if (e != NULL) {
            return e;
        }
        if (!one_matches(m, s, p, ep)) {
            return NULL;
        }
        s++;
    }
}

/* The end of the match of pattern p at s, or NULL. Items that need no backtracking loop
 * here instead of recursing, so only quantifiers and captures count against MAX_DEPTH. */
static const char *match_here(struct matcher *m, const char *s, const char *p)
{
    for (;;) {
        count(m, 1);
        if (p == m->pat_end) {
            return s;
        }
        switch (*p) {
        case '(':
            if (p + 1 < m->pat_end && p[1] == ')') {
                return open_capture(m, s, p + 2, CAP_POSITION);
            }
            return open_capture(m, s, p + 1, CAP_OPEN);
        case ')':
            return close_capture(m, s, p + 1);
        case '$':
            if (p + 1 == m->pat_end) {
                return s == m->src_end ? s : NULL;
            }
            break; /* a '$' elsewhere is itself */
        case ESC:
            if (p + 1 == m->pat_end) {
                break; /* class_end reports it */
            }
            if (p[1] == 'b') {
                s = match_balance(m, s, p + 2);
                if (s == NULL) {
                    return NULL;
                }
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[') {
                    matcher_error(m, "missing '[' after '%%f' in pattern");
                }
                const char *ep = class_end(m, p);
                count(m, 2 * (unsigned long)(ep - p));
                int before = s == m->src ? 0 : uchar(s[-1]);
                int at = s < m->src_end ? uchar(*s) : 0;
                if (set_has(before, p, ep - 1) || !set_has(at, p, ep - 1)) {
                    return NULL;
                }
                p = ep;
                continue;
            }
            if (isdigit(uchar(p[1]))) {
                s = match_back_reference(m, s, p[1]);
                if (s == NULL) {
                    return NULL;
                }
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        const char *ep = class_end(m, p);
        char quantifier = ep < m->pat_end ? *ep : '\0';
        if (!one_matches(m, s, p, ep)) {
            if (quantifier == '*' || quantifier == '?' || quantifier == '-') {
                p = ep + 1; /* zero of them will do */
                continue;
            }
            return NULL;
        }
        switch (quantifier) {
        case '?': {
            const char *e = match(m, s + 1, ep + 1);
            if (e != NULL) {
                return e;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            return match_greedy(m, s + 1, p, ep);
        case '*':
            return match_greedy(m, s, p, ep);
        case '-':
            return match_lazy(m, s, p, ep);
        default:
            s++;
            p = ep;
            continue;
        }
    }
}

static const char *match(struct matcher *m, const char *s, const char *p)
{
    if (m->depth_left-- == 0) {
        matcher_error(m, "pattern too complex");
    }
    const char *e = match_here(m, s, p);
    m->depth_left++;
    return e;
}

/* Capture i of the match s..e; with no captures, capture 0 is the whole match. */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0) {
            matcher_error(m, "invalid capture index %%%d", i + 1);
        }
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN) {
        matcher_error(m, "unfinished capture");
    }
    if (len == CAP_POSITION) {
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->src) + 1);
    } else {
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
    }
}

/* s NULL: only the captures (string.find), none when there are none. */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
    int n = m->level == 0 && s != NULL ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) {
        push_capture(m, i, s, e);
    }
    return n;
}

/* A 1-based start position as the string functions read it: negative counts from the
 * end, anything before the start is the start. */
static size_t start_at(lua_Integer pos, size_t len)
{
    if (pos > 0) {
        return (size_t)pos;
    }
    if (pos == 0 || pos < -(lua_Integer)len) {
        return 1;
    }
    return len + (size_t)(pos + 1);
}

static bool has_specials(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (memchr(SPECIALS, p[i], sizeof(SPECIALS) - 1) != NULL) {
            return true;
        }
    }
    return false;
}

static ward_counted_charge_fn charge_of(lua_State *L)
{
    ward_counted_charge_fn fn;
    memcpy(&fn, lua_touserdata(L, lua_upvalueindex(1)), sizeof(fn));
    return fn;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t len, plen;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *p = luaL_checklstring(L, 2, &plen);
    size_t init = start_at(luaL_optinteger(L, 3, 1), len) - 1;
    if (init > len) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, plen))) {
        /* glibc's memmem is linear, so a plain find needs no counting */
        const char *at = plen == 0 ? s + init : memmem(s + init, len - init, p, plen);
        if (at != NULL) {
            lua_pushinteger(L, (lua_Integer)(at - s) + 1);
            lua_pushinteger(L, (lua_Integer)(at - s + (ptrdiff_t)plen));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    const char *pat_end = p + plen;
    bool anchored = plen > 0 && *p == '^';
    if (anchored) {
        p++;
    }
    struct matcher m;
    matcher_init(&m, L, charge_of(L), s, len, pat_end);
    const char *from = s + init;
    do {
        matcher_reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL) {
            charge_now(&m);
            if (find) {
                lua_pushinteger(L, (lua_Integer)(from - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, from, e);
        }
    } while (from++ < m.src_end && !anchored);
    charge_now(&m);
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int pattern_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* The iterator string.gmatch returns; upvalues: subject, pattern, this state. */
struct gmatch {
    const char *from;
    const char *last_end; /* where the last match ended: no empty match there */
    const char *pattern;
    struct matcher m;
};

static int gmatch_next(lua_State *L)
{
    struct gmatch *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L; /* the iterator may run on another coroutine than the one that made it */
    for (const char *from = g->from; from <= g->m.src_end; from++) {
        matcher_reset(&g->m);
        const char *e = match(&g->m, from, g->pattern);
        if (e != NULL && e != g->last_end) {
            charge_now(&g->m); /* first: if it raises, this match is not skipped */
            g->from = g->last_end = e;
            return push_captures(&g->m, from, e);
        }
    }
    g->from = g->m.src_end + 1; /* nothing left: the next call need not look again */
    charge_now(&g->m);
    return 0;
}

static int pattern_gmatch(lua_State *L)
{
    size_t len, plen;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *p = luaL_checklstring(L, 2, &plen);
    size_t init = start_at(luaL_optinteger(L, 3, 1), len) - 1;
    if (init > len) {
        init = len + 1; /* past the end: no match at all */
    }
    ward_counted_charge_fn charge = charge_of(L);
    lua_settop(L, 2);
    struct gmatch *g = lua_newuserdatauv(L, sizeof(*g), 0);
    matcher_init(&g->m, L, charge, s, len, p + plen);
    g->from = s + init;
    g->last_end = NULL;
    g->pattern = p; /* a '^' here is no anchor: it would stop the iteration */
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* A replacement string: %0 the whole match, %1-%9 captures, %% a percent sign. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t tlen;
    const char *t = lua_tolstring(m->L, 3, &tlen);
    const char *end = t + tlen;
    count(m, tlen); /* read in full at every match, even one that adds nothing */
    while (t < end) {
        const char *esc = memchr(t, ESC, (size_t)(end - t));
        if (esc == NULL) {
            luaL_addlstring(b, t, (size_t)(end - t));
            return;
        }
        luaL_addlstring(b, t, (size_t)(esc - t));
        t = esc + 1;
        char k = t < end ? *t : '\0';
        if (k == ESC) {
            luaL_addchar(b, ESC);
        } else if (k == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(uchar(k))) {
            push_capture(m, k - '1', s, e);
            luaL_addvalue(b); /* a position capture becomes its digits */
        } else {
            matcher_error(m, "invalid use of '%c' in replacement string", ESC);
        }
        t++;
    }
}

/* Add what replaces the match s..e; false when the match stays as it was. */
static bool add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                            int repl_type)
{
    lua_State *L = m->L;
    if (repl_type == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (repl_type == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1)) {
        matcher_error(m, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
    return true;
}

static int pattern_gsub(lua_State *L)
{
    size_t len, plen;
    const char *src = luaL_checklstring(L, 1, &len);
    const char *p = luaL_checklstring(L, 2, &plen);
    int repl_type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)len + 1);
    luaL_argexpected(L,
                     repl_type == LUA_TNUMBER || repl_type == LUA_TSTRING ||
                         repl_type == LUA_TFUNCTION || repl_type == LUA_TTABLE,
                     3, "string/function/table");
    const char *pat_end = p + plen;
    bool anchored = plen > 0 && *p == '^';
    if (anchored) {
        p++;
    }
    struct matcher m;
    matcher_init(&m, L, charge_of(L), src, len, pat_end);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *last_end = NULL;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max) {
        matcher_reset(&m);
        const char *e = match(&m, src, p);
        if (e != NULL && e != last_end) {
            n++;
            changed = add_replacement(&m, &b, src, e, repl_type) || changed;
            src = last_end = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchored) {
            break;
        }
    }
    charge_now(&m);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/*
 * The table functions loop in C over as many elements as their arguments say, and a
 * __len or __index may say a great many at no cost in instructions: table.move({}, 1, 1e12,
 * 2), or table.insert on a proxy whose __len returns 2^62. Each wrapper below repeats the
 * argument checks of Lua 5.4's function (so its errors name the function as Lua's would,
 * and the original, called afterwards, finds nothing to complain about), charges the
 * elements the call will visit, then lets Lua's function do the work. Elements that
 * cost more than one step (a C metamethod) are counted by what they call, when that is
 * counted too.
 */

enum { NEEDS_READ = 1, NEEDS_WRITE = 2, NEEDS_LEN = 4 };

/* What the table library asks of a table argument: a table, or a value whose metatable
 * has the metamethods the function uses. */
static void check_table_like(lua_State *L, int arg, int needs)
{
    if (lua_type(L, arg) == LUA_TTABLE) {
        return;
    }
    static const struct {
        int need;
        const char *field;
    } fields[] = {{NEEDS_READ, "__index"}, {NEEDS_WRITE, "__newindex"}, {NEEDS_LEN, "__len"}};
    if (lua_getmetatable(L, arg)) {
        bool has = true;
        for (size_t i = 0; i < WARD_ARRAY_SIZE(fields) && has; i++) {
            if (needs & fields[i].need) {
                lua_pushstring(L, fields[i].field);
                has = lua_rawget(L, -2) != LUA_TNIL;
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        if (has) {
            return;
        }
    }
    luaL_checktype(L, arg, LUA_TTABLE);
}

/* Charge n elements (n may be 0), then call the function this one replaced with the same
 * arguments and return what it returns. */
static int charge_and_call(lua_State *L, lua_Unsigned n)
{
    if (n > 0) {
        charge_of(L)(L, n > (lua_Unsigned)ULONG_MAX ? ULONG_MAX : (unsigned long)n);
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int counted_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int dest = lua_isnoneornil(L, 5) ? 1 : 5;
    check_table_like(L, 1, NEEDS_READ);
    check_table_like(L, dest, NEEDS_WRITE);
    lua_Unsigned n = 0;
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        luaL_argcheck(L, t <= LUA_MAXINTEGER - (e - f), 4, "destination wrap around");
        n = (lua_Unsigned)(e - f) + 1;
    }
    return charge_and_call(L, n);
}

static int counted_insert(lua_State *L)
{
    check_table_like(L, 1, NEEDS_READ | NEEDS_WRITE | NEEDS_LEN);
    lua_Integer e = luaL_len(L, 1) + 1; /* the first empty slot */
    lua_Unsigned n = 1;
    switch (lua_gettop(L)) {
    case 2:
        break;
    case 3: {
        lua_Integer pos = luaL_checkinteger(L, 2);
        /* unsigned: also catches pos <= 0 */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        n += (lua_Unsigned)(e - pos); /* the elements moved up */
        break;
    }
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    return charge_and_call(L, n);
}

static int counted_remove(lua_State *L)
{
    check_table_like(L, 1, NEEDS_READ | NEEDS_WRITE | NEEDS_LEN);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size) {
        /* unsigned: also catches pos <= 0. Lua 5.4.4 blames argument 1 here. */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    }
    lua_Unsigned n = pos < size ? (lua_Unsigned)(size - pos) + 1 : 1;
    return charge_and_call(L, n);
}

static int counted_concat(lua_State *L)
{
    check_table_like(L, 1, NEEDS_READ | NEEDS_LEN);
    lua_Integer last = luaL_len(L, 1);
    luaL_optlstring(L, 2, "", NULL);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    return charge_and_call(L, i <= last ? (lua_Unsigned)last - (lua_Unsigned)i + 1 : 0);
}

static int counted_unpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
    if (i > e) {
        return charge_and_call(L, 0);
    }
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i;
    if (n >= (unsigned)INT_MAX || !lua_checkstack(L, (int)n + 1)) {
        return luaL_error(L, "too many results to unpack");
    }
    return charge_and_call(L, n + 1);
}

static int counted_sort(lua_State *L)
{
    check_table_like(L, 1, NEEDS_READ | NEEDS_WRITE | NEEDS_LEN);
    lua_Integer n = luaL_len(L, 1);
    lua_Unsigned work = 0;
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) {
            luaL_checktype(L, 2, LUA_TFUNCTION);
        }
        /* n log2 n comparisons, about */
        unsigned bits = 0;
        for (lua_Integer k = n; k > 0; k >>= 1) {
            bits++;
        }
        work = (lua_Unsigned)n * bits;
    }
    return charge_and_call(L, work);
}

/* string.rep("", 2e9) loops two billion times producing nothing; Lua's result for an empty
 * piece is the empty string, at once. Other results are bounded by the memory cap. */
static int counted_rep(lua_State *L)
{
    size_t len, sep_len;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &sep_len);
    if (n <= 0 || len + sep_len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return charge_and_call(L, 0);
}

/* Replace each fns entry in the loaded library `lib`, giving each the charge as upvalue 1
 * and the function it replaces as upvalue 2. */
static void replace_in(lua_State *L, const char *lib, const luaL_Reg *fns, int charge)
{
    if (lua_getfield(L, -1, lib) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    for (const luaL_Reg *r = fns; r->name != NULL; r++) {
        lua_pushvalue(L, charge);
        lua_getfield(L, -2, r->name);
        lua_pushcclosure(L, r->func, 2);
        lua_setfield(L, -2, r->name);
    }
    lua_pop(L, 1);
}

void ward_counted_install(lua_State *L, ward_counted_charge_fn charge)
{
    static const luaL_Reg string_fns[] = {
        {"find", pattern_find},
        {"match", pattern_match},
        {"gmatch", pattern_gmatch},
        {"gsub", pattern_gsub},
        {NULL, NULL},
    };
    static const luaL_Reg string_wrapped[] = {
        {"rep", counted_rep},
        {NULL, NULL},
    };
    static const luaL_Reg table_fns[] = {
        {"move", counted_move},
        {"insert", counted_insert},
        {"remove", counted_remove},
        {"concat", counted_concat},
        {"unpack", counted_unpack},
        {"sort", counted_sort},
        {NULL, NULL},
    };
    ward_counted_charge_fn *slot = lua_newuserdatauv(L, sizeof(charge), 0);
    memcpy(slot, &charge, sizeof(charge));
    int charge_index = lua_gettop(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    replace_in(L, LUA_STRLIBNAME, string_fns, charge_index);
    replace_in(L, LUA_STRLIBNAME, string_wrapped, charge_index);
    replace_in(L, LUA_TABLIBNAME, table_fns, charge_index);
    lua_pop(L, 2);
}
