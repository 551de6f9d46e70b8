/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <cjson/cJSON.h>
#include <lualib.h>

#include "counted.h"
#include "sandbox.h"
#include "util.h"

#define HOOK_STEP 1000

struct sandbox {
    struct ward_sandbox_alloc alloc;
};

/* Per-thread budget, kept in the registry keyed by the thread. */
struct budget {
    unsigned long left;
    double slice;    /* seconds one stretch of running may last; 0: no limit */
    double deadline; /* when the current stretch ends; 0: never */
    bool armed;
    bool exhausted;
    char why[96]; /* what was spent, once exhausted */
};

static const char budget_key = 'b';

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct ward_sandbox_alloc *a = ud;
    if (ptr == NULL) {
        osize = 0; /* osize encodes the object type when ptr is NULL */
    }
    if (nsize == 0) {
        free(ptr);
        a->used -= osize;
        return NULL;
    }
    if (a->limit != 0 && nsize > osize && a->used + (nsize - osize) > a->limit) {
        a->refused = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        a->used = a->used - osize + nsize;
        if (a->used > a->peak) {
            a->peak = a->used;
        }
    }
    return p;
}

struct ward_sandbox_alloc *ward_sandbox_alloc_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static int safe_load(lua_State *L)
{
    /* load(chunk [, chunkname [, mode [, env]]]) with mode forced to text */
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
        luaL_pushfail(L);
        lua_pushliteral(L, "binary chunks are not allowed in the sandbox");
        return 2;
    }
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (lua_setupvalue(L, -2, 1) == NULL) {
            lua_pop(L, 1);
        }
    }
    return 1;
}

/*
 * setmetatable without finalizers: a __gc runs whenever the collector decides,
 * outside any run's instruction budget, so a looping one would stall the loop.
 */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static void budget_hook(lua_State *L, lua_Debug *ar);
static struct budget *budget_of(lua_State *L, bool create);

/*
 * Take `used` instructions from b; false when that spends it (b->why says what ran out).
 * The clock is read at most once per call: every HOOK_STEP instructions or
 * WARD_COUNTED_CHARGE_EVERY pattern steps.
 */
static bool budget_take(struct budget *b, unsigned long used)
{
    if (b->left <= used) {
        b->left = 0;
        snprintf(b->why, sizeof(b->why), "instruction budget exhausted");
        return false;
    }
    b->left -= used;
    if (b->deadline != 0 && ward_monotonic() >= b->deadline) {
        snprintf(b->why, sizeof(b->why), "time slice exhausted: ran %g s without waiting",
                 b->slice);
        return false;
    }
    return true;
}

/* From now on every instruction raises, so a pcall in the script cannot swallow the stop. */
static int budget_stop(lua_State *L, struct budget *b)
{
    if (!b->exhausted) {
        b->exhausted = true;
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    }
    return luaL_error(L, "%s", b->why);
}

void ward_sandbox_charge(lua_State *L, unsigned long steps)
{
    struct budget *b = budget_of(L, false);
    if (b == NULL || !b->armed) {
        return;
    }
    if (b->exhausted || !budget_take(b, steps)) {
        budget_stop(L, b);
    }
}

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
}

static void remove_field(lua_State *L, const char *table, const char *field)
{
    if (lua_getglobal(L, table) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
}

lua_State *ward_sandbox_new(size_t mem_limit)
{
    struct sandbox *sb = calloc(1, sizeof(*sb));
    if (sb == NULL) {
        return NULL;
    }
    sb->alloc.limit = 0; /* the libraries themselves are not counted against the cap */
    lua_State *L = lua_newstate(sandbox_alloc, &sb->alloc);
    if (L == NULL) {
        free(sb);
        return NULL;
    }
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);

    /* os: only the clock functions */
    luaopen_os(L);
    lua_newtable(L);
    static const char *const os_keep[] = {"time", "clock", "date", "difftime"};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(os_keep); i++) {
        lua_getfield(L, -2, os_keep[i]);
        lua_setfield(L, -2, os_keep[i]);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, LUA_OSLIBNAME);
    lua_pop(L, 1);

    static const char *const base_drop[] = {"dofile", "loadfile", "require", "collectgarbage",
                                            "print"};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(base_drop); i++) {
        lua_pushnil(L);
        lua_setglobal(L, base_drop[i]);
    }
    lua_pushcfunction(L, safe_load);
    lua_setglobal(L, "load");
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    remove_field(L, LUA_STRLIBNAME, "dump");
    ward_counted_install(L, ward_sandbox_charge);
    /* math.random is fine; randomseed would let a policy make others predictable */
    remove_field(L, LUA_MATHLIBNAME, "randomseed");

    lua_gc(L, LUA_GCGEN, 0, 0);
    sb->alloc.limit = mem_limit != 0 ? sb->alloc.used + mem_limit : 0;
    return L;
}

void ward_sandbox_close(lua_State *L)
{
    if (L == NULL) {
        return;
    }
    struct sandbox *sb = (struct sandbox *)ward_sandbox_alloc_of(L);
    lua_close(L);
    free(sb);
}

static struct budget *budget_of(lua_State *L, bool create)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &budget_key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (!create) {
            return NULL;
        }
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &budget_key);
    }
    lua_pushthread(L);
    lua_rawget(L, -2);
    struct budget *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (b == NULL && create) {
        lua_pushthread(L);
        b = lua_newuserdatauv(L, sizeof(*b), 0);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    return b;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct budget *b = budget_of(L, false);
    if (b == NULL) {
        return;
    }
    if (b->exhausted || !budget_take(b, HOOK_STEP)) {
        budget_stop(L, b);
    }
}

/* The budget of the running thread, made if it has none; run protected, since the weak table
 * and the budget are allocations that a state at its memory cap may be refused. */
static int budget_make(lua_State *L)
{
    lua_pushlightuserdata(L, budget_of(L, true));
    return 1;
}

int ward_sandbox_arm(lua_State *L, unsigned long instructions, double slice, struct ward_error *err)
{
    struct budget *b = budget_of(L, false);
    if (b == NULL) {
        lua_pushcfunction(L, budget_make);
        int st = lua_pcall(L, 0, 1, 0);
        if (st != LUA_OK) {
            lua_pop(L, 1);
            return st == LUA_ERRMEM
                       ? ward_error_set(err, -ENOMEM, "memory limit exceeded: no room for a budget")
                       : ward_error_set(err, -EINVAL, "cannot arm the budget: C stack too deep");
        }
        b = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    b->left = instructions != 0 ? instructions : (unsigned long)-1;
    b->slice = slice > 0 ? slice : 0;
    b->deadline = b->slice > 0 ? ward_monotonic() + b->slice : 0;
    b->armed = true;
    b->exhausted = false;
    b->why[0] = '\0';
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
    return 0;
}

void ward_sandbox_new_slice(lua_State *L)
{
    struct budget *b = budget_of(L, false);
    if (b != NULL && b->armed && b->slice > 0) {
        b->deadline = ward_monotonic() + b->slice;
    }
}

void ward_sandbox_disarm(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
    struct budget *b = budget_of(L, false);
    if (b != NULL) {
        b->armed = false;
        b->exhausted = false;
    }
}

bool ward_sandbox_exhausted(lua_State *L)
{
    struct budget *b = budget_of(L, false);
    return b != NULL && b->exhausted;
}

const char *ward_sandbox_error_string(lua_State *L, int index)
{
    index = lua_absindex(L, index);
    if (lua_type(L, index) == LUA_TSTRING) {
        return lua_tostring(L, index);
    }
    if (luaL_callmeta(L, index, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        lua_replace(L, index);
        return lua_tostring(L, index);
    }
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, index));
    lua_replace(L, index);
    return lua_tostring(L, index);
}

static int traceback_handler(lua_State *L)
{
    const char *msg = ward_sandbox_error_string(L, 1);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int ward_sandbox_pcall(lua_State *L, int nargs, int nresults, struct ward_error *err)
{
    struct ward_sandbox_alloc *a = ward_sandbox_alloc_of(L);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    a->refused = false;
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc == LUA_OK) {
        return 0;
    }
    int code = -EINVAL;
    const char *what = "";
    /* exhausted first: `refused` stays set after an allocation the emergency collection
       then satisfied, so it does not prove that memory is what stopped the run */
    if (rc != LUA_ERRMEM && ward_sandbox_exhausted(L)) {
        code = -ETIME;
        what = "stopped: ";
    } else if (rc == LUA_ERRMEM || a->refused) {
        code = -ENOMEM;
        what = "memory limit exceeded: ";
    }
    const char *msg = rc == LUA_ERRMEM ? "not enough memory" : ward_sandbox_error_string(L, -1);
    ward_error_set(err, code, "%s%s", what, msg);
    lua_pop(L, 1);
    return code;
}

int ward_sandbox_pcall_armed(lua_State *L, int nargs, int nresults, unsigned long instructions,
                             double slice, struct ward_error *err)
{
    int rc = ward_sandbox_arm(L, instructions, slice, err);
    if (rc != 0) {
        lua_pop(L, nargs + 1);
        return rc;
    }
    rc = ward_sandbox_pcall(L, nargs, nresults, err);
    ward_sandbox_disarm(L);
    return rc;
}

int ward_sandbox_load(lua_State *L, const char *text, size_t len, const char *name, int env_index,
                      struct ward_error *err)
{
    env_index = lua_absindex(L, env_index);
    if (len > 0 && text[0] == LUA_SIGNATURE[0]) {
        return ward_error_set(err, -EINVAL, "%s: precompiled chunks are not accepted", name);
    }
    struct ward_buf chunk = {0};
    ward_buf_printf(&chunk, "@%s", name);
    int rc = luaL_loadbufferx(L, text, len, chunk.data, "t");
    ward_buf_free(&chunk);
    if (rc != LUA_OK) {
        ward_error_set(err, rc == LUA_ERRMEM ? -ENOMEM : -EINVAL, "%s",
                       ward_sandbox_error_string(L, -1));
        lua_pop(L, 1);
        return rc == LUA_ERRMEM ? -ENOMEM : -EINVAL;
    }
    lua_pushvalue(L, env_index);
    if (lua_setupvalue(L, -2, 1) == NULL) {
        lua_pop(L, 1);
    }
    return 0;
}

/* A table converted once in this conversion: a later reference to it is a copy of its JSON,
 * not a second walk (a walk costs the table's allocated size, which an emptied table keeps). */
struct json_seen {
    const void *table;
    const cJSON *json;
    size_t values, bytes; /* what making it cost */
};

/* What one conversion has made so far: values, and bytes of the text they print as (a
 * string the Lua state holds once can be referenced any number of times). */
struct json_made {
    size_t values, bytes;
    struct json_seen *seen; /* open addressing on the table's address */
    size_t nseen, cap;
};

/* Whether `values` and `bytes` more may be made; err says why not. */
static bool json_room(struct json_made *m, size_t values, size_t bytes, const char *what,
                      struct ward_error *err)
{
    m->values += values;
    m->bytes += bytes;
    if (m->values > WARD_SANDBOX_JSON_NODES) {
        ward_error_set(err, -E2BIG, "%s holds more than %d values", what, WARD_SANDBOX_JSON_NODES);
        return false;
    }
    if (m->bytes > WARD_SANDBOX_JSON_BYTES) {
        ward_error_set(err, -E2BIG, "%s holds more than %d MiB of text", what,
                       WARD_SANDBOX_JSON_BYTES >> 20);
        return false;
    }
    return true;
}

/* The bytes a string prints as in JSON (control characters become \u00XX); SIZE_MAX when it
 * holds a NUL, which cJSON would cut it at. */
static size_t json_text(const char *s, size_t len)
{
    size_t n = len + 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) {
            return SIZE_MAX;
        }
        n += c < 0x20 ? 5 : c == '"' || c == '\\' ? 1 : 0;
    }
    return n;
}

static size_t seen_slot(const struct json_made *m, const void *table)
{
    size_t i = ((uintptr_t)table >> 4) & (m->cap - 1);
    while (m->seen[i].table != NULL && m->seen[i].table != table) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

static const struct json_seen *seen_find(const struct json_made *m, const void *table)
{
    if (m->cap == 0) {
        return NULL;
    }
    const struct json_seen *e = &m->seen[seen_slot(m, table)];
    return e->table != NULL ? e : NULL;
}

static bool seen_add(struct json_made *m, const struct json_seen *e)
{
    if (2 * (m->nseen + 1) > m->cap) {
        struct json_made grown = *m;
        grown.cap = m->cap != 0 ? 2 * m->cap : 64;
        grown.seen = calloc(grown.cap, sizeof(*grown.seen));
        if (grown.seen == NULL) {
            return false;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->seen[i].table != NULL) {
                grown.seen[seen_slot(&grown, m->seen[i].table)] = m->seen[i];
            }
        }
        free(m->seen);
        *m = grown;
    }
    m->seen[seen_slot(m, e->table)] = *e;
    m->nseen++;
    return true;
}

/* Levels of lists and objects in j, j included. */
static int json_height(const cJSON *j)
{
    int h = 0;
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
        int ch = json_height(c);
        h = ch > h ? ch : h;
    }
    return cJSON_IsArray(j) || cJSON_IsObject(j) ? h + 1 : 0;
}

/* The largest double cJSON prints so that it stays finite: above it, cJSON 1.7.15 prints
 * 15 digits that read back as infinity. */
#define JSON_MAX_DOUBLE 1.7976931348623149e308
/* Integers beyond this do not come back from JSON as they went in: cJSON keeps 15 digits when
 * its comparison, within a relative DBL_EPSILON, calls them equal, which above 2^52 allows an
 * error of 1 or 2 (9007199254740991 prints as 9.00719925474099e+15). */
#define JSON_MAX_EXACT 4503599627370496 /* 2^52 */

static cJSON *table_to_json(lua_State *L, int idx, int depth, struct json_made *made,
                            const char *what, struct ward_error *err);

static cJSON *to_json(lua_State *L, int idx, int depth, struct json_made *made, const char *what,
                      struct ward_error *err)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE) {
        return table_to_json(L, idx, depth, made, what, err);
    }
    size_t text = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if ((text = json_text(s, len)) == SIZE_MAX) {
            ward_error_set(err, -EINVAL, "%s holds a string with a NUL byte", what);
            return NULL;
        }
    }
    if (!json_room(made, 1, text, what, err)) {
        return NULL;
    }
    cJSON *out = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        out = cJSON_CreateNull();
        break;
    case LUA_TBOOLEAN:
        out = cJSON_CreateBool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (lua_isinteger(L, idx) &&
            (lua_tointeger(L, idx) > JSON_MAX_EXACT || lua_tointeger(L, idx) < -JSON_MAX_EXACT)) {
            ward_error_set(err, -EINVAL, "%s holds an integer beyond 2^52, which JSON would round",
                           what);
            return NULL;
        }
        if (!isfinite(d) || fabs(d) > JSON_MAX_DOUBLE) {
            ward_error_set(err, -EINVAL, "%s holds a number JSON cannot represent", what);
            return NULL;
        }
        out = cJSON_CreateNumber(d);
        break;
    }
    case LUA_TSTRING:
        out = cJSON_CreateString(lua_tostring(L, idx));
        break;
    default:
        ward_error_set(err, -EINVAL, "%s cannot hold a %s value", what, luaL_typename(L, idx));
        return NULL;
    }
    if (out == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
    }
    return out;
}

/* A copy of a table already converted, at no more than its first cost in values and text. */
static cJSON *table_again(const struct json_seen *e, int depth, struct json_made *made,
                          const char *what, struct ward_error *err)
{
    if (depth + json_height(e->json) - 1 > WARD_SANDBOX_JSON_DEPTH) {
        ward_error_set(err, -EINVAL, "%s is nested too deeply (or refers to itself)", what);
        return NULL;
    }
    if (!json_room(made, e->values, e->bytes, what, err)) {
        return NULL;
    }
    cJSON *out = cJSON_Duplicate(e->json, true);
    if (out == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
    }
    return out;
}

/*
 * A table as a JSON list when all its keys are whole numbers from 1 up, up to the largest,
 * the missing ones null (a JSON list's nulls are holes once in Lua, wherever Lua's length
 * puts its border), and at most 2n + 8 long for n keys ({[404] = x} is not a list of 403
 * nulls); otherwise as an object, whose keys must be strings. Raw access only, so no
 * metamethod of a hostile table runs.
 */
static cJSON *table_to_json(lua_State *L, int idx, int depth, struct json_made *made,
                            const char *what, struct ward_error *err)
{
    const void *table = lua_topointer(L, idx);
    const struct json_seen *e = seen_find(made, table);
    if (e != NULL) {
        return table_again(e, depth, made, what, err);
    }
    if (depth > WARD_SANDBOX_JSON_DEPTH || !lua_checkstack(L, 4)) {
        ward_error_set(err, -EINVAL, "%s is nested too deeply (or refers to itself)", what);
        return NULL;
    }
    struct json_seen now = {table, NULL, made->values, made->bytes};
    if (!json_room(made, 1, 2, what, err)) {
        return NULL;
    }
    lua_Integer last = 0, keys = 0;
    bool list = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        keys++;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1) {
            list = false;
        } else if (lua_tointeger(L, -2) > last) {
            last = lua_tointeger(L, -2);
        }
        lua_pop(L, 1);
    }
    list = list && last > 0 && last <= 2 * keys + 8;
    cJSON *out = list ? cJSON_CreateArray() : cJSON_CreateObject();
    if (out == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    if (list) {
        for (lua_Integer i = 1; i <= last; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *c = to_json(L, -1, depth + 1, made, what, err);
            lua_pop(L, 1);
            if (c == NULL) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, c);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            size_t klen = 0;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
            size_t ktext = k != NULL ? json_text(k, klen) : SIZE_MAX;
            cJSON *c = NULL;
            if (k == NULL) {
                ward_error_set(err, -EINVAL, "%s keys must be strings (or a plain list)", what);
            } else if (ktext == SIZE_MAX) {
                ward_error_set(err, -EINVAL, "%s has a key with a NUL byte", what);
            } else if (json_room(made, 0, ktext + 1, what, err)) {
                c = to_json(L, -1, depth + 1, made, what, err);
            }
            if (c != NULL && !cJSON_AddItemToObject(out, k, c)) {
                cJSON_Delete(c);
                c = NULL;
                ward_error_set(err, -ENOMEM, "out of memory");
            }
            if (c == NULL) {
                lua_pop(L, 2);
                cJSON_Delete(out);
                return NULL;
            }
            lua_pop(L, 1);
        }
    }
    now.json = out;
    now.values = made->values - now.values;
    now.bytes = made->bytes - now.bytes;
    if (!seen_add(made, &now)) {
        cJSON_Delete(out);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    return out;
}

static void push_json(lua_State *L, const cJSON *v, int depth)
{
    luaL_checkstack(L, 3, "JSON nested too deeply");
    if (v == NULL || cJSON_IsNull(v) || depth > WARD_SANDBOX_JSON_DEPTH) {
        lua_pushnil(L);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d) {
            lua_pushinteger(L, (lua_Integer)d);
        } else {
            lua_pushnumber(L, d);
        }
    } else if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsArray(v)) {
        lua_createtable(L, cJSON_GetArraySize(v), 0);
        lua_Integer i = 1;
        for (const cJSON *c = v->child; c != NULL; c = c->next) {
            push_json(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsObject(v)) {
        lua_createtable(L, 0, 4);
        for (const cJSON *c = v->child; c != NULL; c = c->next) {
            if (c->string != NULL && !cJSON_IsNull(c)) {
                push_json(L, c, depth + 1);
                lua_setfield(L, -2, c->string);
            }
        }
    } else {
        lua_pushnil(L);
    }
}

void ward_sandbox_push_json(lua_State *L, const struct cJSON *v)
{
    push_json(L, v, 0);
}

cJSON *ward_sandbox_to_json(lua_State *L, int idx, const char *what, struct ward_error *err)
{
    struct json_made made = {0};
    cJSON *out = to_json(L, idx, 0, &made, what, err);
    free(made.seen);
    return out;
}
