/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>

#include "counted.h" /* ward_counted_install, from wardd's core */
#include "quirks.h"
#include "sandbox.h" /* the instruction budget and time slice, from wardd's core */

#define QUIRKS_MEMORY (16u * 1024u * 1024u)
#define QUIRKS_BUDGET 1000000 /* instructions per hook call */
/* seconds per hook call: string.rep in a loop costs more than its instructions say */
#define QUIRKS_SLICE 1.0

struct ward_rf_quirks {
    lua_State *L;
    size_t used;
    int table_ref; /* the quirks list */
    int dispatch_ref;
    unsigned count;
    bool by_firmware; /* an entry's match names the firmware */
};

/* ---- the sandbox ------------------------------------------------------------------ */

static void *q_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct ward_rf_quirks *q = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        q->used -= old;
        return NULL;
    }
    if (nsize > old && q->used + (nsize - old) > QUIRKS_MEMORY) {
        return NULL; /* Lua raises "not enough memory": contained by the pcall */
    }
    void *p = realloc(ptr, nsize);
    if (p != NULL) {
        q->used = q->used - old + nsize;
    }
    return p;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg != NULL ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Calls every matching hook of one kind; a hook returns true when it changed something. */
static const char dispatcher[] =
    "local quirks, ident, kind, req, resp = ...\n"
    "local changed = false\n"
    "for _, q in ipairs(quirks) do\n"
    "  local fits = true\n"
    "  for key, pattern in pairs(q.match or {}) do\n"
    "    local v = ident[key]\n"
    "    if type(v) ~= 'string' or not string.find(v, pattern) then fits = false break end\n"
    "  end\n"
    "  local fn = q[kind]\n"
    "  if fits and type(fn) == 'function' and fn(req, resp) then changed = true end\n"
    "end\n"
    "return changed\n";

static void open_safe_libs(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
    };
    for (const luaL_Reg *l = libs; l->func != NULL; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const drop[] = {"dofile",  "loadfile",       "load",
                                       "require", "collectgarbage", "rawset",
                                       "rawget",  "setmetatable",   "getmetatable"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop[i]);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    ward_counted_install(L, ward_sandbox_charge);
}

static int load_protected(lua_State *L)
{
    struct ward_rf_quirks *q = lua_touserdata(L, 1);
    const char *path = lua_tostring(L, 2);
    open_safe_libs(L);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        return lua_error(L);
    }
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1)) {
        return luaL_error(L, "the file must return a table");
    }
    lua_getfield(L, -1, "quirks");
    if (!lua_istable(L, -1)) {
        return luaL_error(L, "the returned table needs a 'quirks' list");
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (!lua_istable(L, -1)) {
            return luaL_error(L, "quirks[%d] is not a table", (int)i);
        }
        lua_getfield(L, -1, "name");
        if (!lua_isstring(L, -1)) {
            return luaL_error(L, "quirks[%d] has no name", (int)i);
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "match");
        if (!lua_isnil(L, -1) && !lua_istable(L, -1)) {
            return luaL_error(L, "quirks[%d].match must be a table", (int)i);
        }
        if (lua_istable(L, -1)) {
            if (lua_getfield(L, -1, "firmware") != LUA_TNIL) {
                q->by_firmware = true;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "request");
        lua_getfield(L, -2, "response");
        if (!lua_isfunction(L, -1) && !lua_isfunction(L, -2)) {
            return luaL_error(L, "quirks[%d] has neither a request nor a response hook", (int)i);
        }
        lua_pop(L, 3);
    }
    q->count = (unsigned)n;
    q->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_loadbufferx(L, dispatcher, sizeof(dispatcher) - 1, "=dispatcher", "t") != LUA_OK) {
        return lua_error(L);
    }
    q->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

struct ward_rf_quirks *ward_rf_quirks_load(const char *path, struct ward_error *err)
{
    struct ward_rf_quirks *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    q->L = lua_newstate(q_alloc, q);
    if (q->L == NULL) {
        free(q);
        ward_error_set(err, -ENOMEM, "cannot create the quirks Lua state");
        return NULL;
    }
    /* the file's main chunk gets ten times a hook's limits */
    if (ward_sandbox_arm(q->L, QUIRKS_BUDGET * 10L, 10 * QUIRKS_SLICE, err) != 0) {
        ward_rf_quirks_free(q);
        return NULL;
    }
    lua_pushcfunction(q->L, load_protected);
    lua_pushlightuserdata(q->L, q);
    lua_pushstring(q->L, path);
    int st = lua_pcall(q->L, 2, 0, 0);
    ward_sandbox_disarm(q->L);
    if (st != LUA_OK) {
        const char *msg = lua_tostring(q->L, -1);
        ward_error_set(err, -EINVAL, "quirks file %s: %.400s", path, msg != NULL ? msg : "error");
        ward_rf_quirks_free(q);
        return NULL;
    }
    lua_settop(q->L, 0);
    return q;
}

void ward_rf_quirks_free(struct ward_rf_quirks *q)
{
    if (q != NULL) {
        lua_close(q->L);
        free(q);
    }
}

unsigned ward_rf_quirks_count(const struct ward_rf_quirks *q)
{
    return q != NULL ? q->count : 0;
}

bool ward_rf_quirks_by_firmware(const struct ward_rf_quirks *q)
{
    return q != NULL && q->by_firmware;
}

/*
 * A document a hook may read (req.body, req.current, resp.body) becomes a Lua table only
 * when a hook first reads it: converting every answer cost about 5 % of wardd's CPU while
 * it enrolled a fleet, and most hooks decide on the method, the path, the operation or
 * the status. `present` turns true once the field is in the table, read or set by a hook.
 */
struct lazy_field {
    const char *name;
    const cJSON *json; /* converted when read, or */
    const char *text;  /* parsed and converted when read */
    bool present;
};

struct lazy_table {
    struct lazy_field f[2];
    size_t n;
};

struct call {
    struct ward_rf_quirks *q;
    const struct ward_rf_ident *id;
    const char *kind, *op, *method, *path;
    const char *body_text; /* request */
    const cJSON *current;  /* request */
    struct lazy_table req_lazy, resp_lazy;
    bool response;
    long status;     /* response, in and out */
    const cJSON *in; /* response body in */
    cJSON *out;      /* response body out, owned by the caller after the call */
    double retry_after;
    char *new_body; /* request body out, caller frees */
    bool changed;
    bool body_kept; /* response: the hooks changed something, but not the body */
};

static void push_ident(lua_State *L, const struct ward_rf_ident *id)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, id->manufacturer != NULL ? id->manufacturer : "");
    lua_setfield(L, -2, "manufacturer");
    lua_pushstring(L, id->model != NULL ? id->model : "");
    lua_setfield(L, -2, "model");
    lua_pushstring(L, id->firmware != NULL ? id->firmware : "");
    lua_setfield(L, -2, "firmware");
}

static struct lazy_field *lazy_find(lua_State *L)
{
    struct lazy_table *t = lua_touserdata(L, lua_upvalueindex(1));
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    for (size_t i = 0; key != NULL && i < t->n; i++) {
        if (strcmp(t->f[i].name, key) == 0) {
            return &t->f[i];
        }
    }
    return NULL;
}

static int push_document(lua_State *L)
{
    ward_sandbox_push_json(L, lua_touserdata(L, 1));
    return 1;
}

/* __index(t, k): the first read of a lazy field converts it and keeps it in t. A read that
 * fails (the state's memory cap) frees what it parsed and leaves the field as it came. */
static int lazy_index(lua_State *L)
{
    struct lazy_field *f = lazy_find(L);
    if (f == NULL || f->present) {
        lua_pushnil(L);
        return 1;
    }
    cJSON *parsed = f->text != NULL ? cJSON_Parse(f->text) : NULL;
    lua_pushcfunction(L, push_document);
    lua_pushlightuserdata(L, f->text != NULL ? parsed : (void *)f->json);
    int st = lua_pcall(L, 1, 1, 0);
    cJSON_Delete(parsed);
    if (st != LUA_OK) {
        return lua_error(L);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    f->present = true;
    return 1;
}

/* __newindex(t, k, v): a hook that sets a lazy field replaces it without reading it. */
static int lazy_newindex(lua_State *L)
{
    struct lazy_field *f = lazy_find(L);
    if (f != NULL) {
        f->present = true;
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* The table at the top of the stack reads its lazy fields from t. */
static void lazy_attach(lua_State *L, struct lazy_table *t)
{
    if (t->n == 0) {
        return;
    }
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, lazy_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, lazy_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
}

static void lazy_add(struct lazy_table *t, const char *name, const cJSON *json, const char *text)
{
    if ((json != NULL || text != NULL) && t->n < sizeof(t->f) / sizeof(t->f[0])) {
        t->f[t->n++] = (struct lazy_field){.name = name, .json = json, .text = text};
    }
}

/* Push the field's value (what a hook read or set) and return true; false when no hook
 * touched it, with nothing pushed. */
static bool lazy_get(lua_State *L, int table, const struct lazy_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->f[i].name, name) == 0 && !t->f[i].present) {
            return false;
        }
    }
    lua_pushstring(L, name);
    lua_rawget(L, table);
    return true;
}

static int call_protected(lua_State *L)
{
    struct call *c = lua_touserdata(L, 1);
    lua_createtable(L, 0, 5);
    int req = lua_gettop(L);
    lua_pushstring(L, c->op);
    lua_setfield(L, req, "op");
    lua_pushstring(L, c->method);
    lua_setfield(L, req, "method");
    lua_pushstring(L, c->path);
    lua_setfield(L, req, "path");
    lua_pushstring(L, c->id->system != NULL ? c->id->system : "");
    lua_setfield(L, req, "system");
    lazy_add(&c->req_lazy, "body", NULL, c->body_text);
    lazy_add(&c->req_lazy, "current", c->current, NULL);
    lazy_attach(L, &c->req_lazy);
    lua_createtable(L, 0, 3);
    int resp = lua_gettop(L);
    if (c->response) {
        lua_pushinteger(L, c->status);
        lua_setfield(L, resp, "status");
        lazy_add(&c->resp_lazy, "body", c->in, NULL);
        lazy_attach(L, &c->resp_lazy);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->q->dispatch_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->q->table_ref);
    push_ident(L, c->id);
    lua_pushstring(L, c->kind);
    lua_pushvalue(L, req);
    lua_pushvalue(L, resp);
    lua_call(L, 5, 1);
    c->changed = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!c->changed) {
        return 0;
    }
    struct ward_error err = {0};
    if (!c->response) {
        if (!lazy_get(L, req, &c->req_lazy, "body")) {
            c->new_body = strdup(c->body_text != NULL ? c->body_text : "{}");
            return 0;
        }
        if (!lua_isnil(L, -1)) {
            cJSON *b = ward_sandbox_to_json(L, -1, "req.body", &err);
            if (b == NULL) {
                return luaL_error(L, "%s", err.text);
            }
            c->new_body = cJSON_PrintUnformatted(b);
            cJSON_Delete(b);
        } else {
            c->new_body = strdup("{}");
        }
        return 0;
    }
    lua_getfield(L, resp, "status");
    if (lua_isinteger(L, -1)) {
        lua_Integer st = lua_tointeger(L, -1);
        if (st < 100 || st > 599) {
            return luaL_error(L, "resp.status %d is not an HTTP status", (int)st);
        }
        c->status = (long)st;
    }
    lua_getfield(L, resp, "retry_after");
    if (lua_isnumber(L, -1)) {
        double ra = lua_tonumber(L, -1);
        c->retry_after = ra > 0 && ra < 600 ? ra : 0;
    }
    if (!lazy_get(L, resp, &c->resp_lazy, "body")) {
        c->body_kept = true; /* no hook read or set it: the answer's body as it came */
        return 0;
    }
    if (!lua_isnil(L, -1)) {
        c->out = ward_sandbox_to_json(L, -1, "resp.body", &err);
        if (c->out == NULL) {
            return luaL_error(L, "%s", err.text);
        }
    }
    return 0;
}

static bool call(struct call *c)
{
    lua_State *L = c->q->L;
    lua_settop(L, 0);
    int st = LUA_ERRMEM;
    if (ward_sandbox_arm(L, QUIRKS_BUDGET, QUIRKS_SLICE, NULL) == 0) {
        lua_pushcfunction(L, traceback);
        lua_pushcfunction(L, call_protected);
        lua_pushlightuserdata(L, c);
        st = lua_pcall(L, 1, 0, 1);
        ward_sandbox_disarm(L);
    }
    if (st != LUA_OK) {
        const char *msg = st == LUA_ERRMEM ? "not enough memory" : lua_tostring(L, -1);
        ward_log_fields(
            WARD_LOG_WARN, "redfish", (const struct ward_log_field[]){{"path", c->path}}, 1,
            "a quirk %s hook failed and was ignored: %.300s", c->kind, msg != NULL ? msg : "error");
        lua_settop(L, 0);
        free(c->new_body);
        c->new_body = NULL;
        cJSON_Delete(c->out);
        c->out = NULL;
        return false;
    }
    lua_settop(L, 0);
    return c->changed;
}

char *ward_rf_quirks_request(struct ward_rf_quirks *q, const struct ward_rf_ident *id,
                             const char *op, const char *method, const char *path, const char *body,
                             const cJSON *current)
{
    if (q == NULL || q->count == 0) {
        return NULL;
    }
    struct call c = {.q = q,
                     .id = id,
                     .kind = "request",
                     .op = op,
                     .method = method,
                     .path = path,
                     .body_text = body,
                     .current = current};
    if (!call(&c)) {
        return NULL;
    }
    return c.new_body;
}

void ward_rf_quirks_response(struct ward_rf_quirks *q, const struct ward_rf_ident *id,
                             const char *op, const char *method, const char *path, long *status,
                             cJSON **body, double *retry_after)
{
    if (q == NULL || q->count == 0) {
        return;
    }
    struct call c = {.q = q,
                     .id = id,
                     .kind = "response",
                     .op = op,
                     .method = method,
                     .path = path,
                     .response = true,
                     .status = *status,
                     .in = *body};
    if (!call(&c)) {
        return;
    }
    *status = c.status;
    if (!c.body_kept) {
        cJSON_Delete(*body);
        *body = c.out;
    }
    *retry_after = c.retry_after;
}
