/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "machine.h"
#include "util.h"

#define MACHINE_MAX_STATES 64
#define MACHINE_MAX_DIMS 8

static char *xstrdup(const char *s)
{
    char *p = strdup(s != NULL ? s : "");
    if (p == NULL) {
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size);
    if (p == NULL) {
        abort();
    }
    return p;
}

int ward_machine_state(const struct ward_machine_dim *d, const char *name)
{
    for (size_t i = 0; name != NULL && i < d->nstates; i++) {
        if (strcmp(d->states[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const struct ward_machine_dim *ward_machine_dim(const struct ward_machine *m, const char *name)
{
    if (name == NULL) {
        return m->ndims > 0 ? &m->dims[0] : NULL;
    }
    for (size_t i = 0; i < m->ndims; i++) {
        if (strcmp(m->dims[i].name, name) == 0) {
            return &m->dims[i];
        }
    }
    return NULL;
}

bool ward_machine_allows(const struct ward_machine_dim *d, int from, int to)
{
    if (from < 0 || to < 0 || (size_t)from >= d->nstates || (size_t)to >= d->nstates ||
        from == to) {
        return false;
    }
    return d->allowed[(size_t)from * d->nstates + (size_t)to] || d->any_target[to];
}

int ward_machine_path(const struct ward_machine_dim *d, int from, int to, int *path, size_t max)
{
    if (from < 0 || to < 0 || (size_t)from >= d->nstates || (size_t)to >= d->nstates) {
        return -ENOENT;
    }
    if (from == to) {
        return 0;
    }
    int prev[MACHINE_MAX_STATES];
    int queue[MACHINE_MAX_STATES];
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < d->nstates; i++) {
        prev[i] = -2;
    }
    prev[from] = -1;
    queue[tail++] = from;
    while (head < tail && prev[to] == -2) {
        int s = queue[head++];
        for (size_t t = 0; t < d->nstates; t++) {
            if (prev[t] == -2 && ward_machine_allows(d, s, (int)t)) {
                prev[t] = s;
                queue[tail++] = (int)t;
            }
        }
    }
    if (prev[to] == -2) {
        return -ENOENT;
    }
    int rev[MACHINE_MAX_STATES];
    size_t n = 0;
    for (int s = to; s != from; s = prev[s]) {
        rev[n++] = s;
    }
    for (size_t i = 0; i < n && i < max; i++) {
        path[i] = rev[n - 1 - i];
    }
    return (int)n;
}

void ward_machine_targets(const struct ward_machine_dim *d, int from, struct ward_buf *out)
{
    size_t start = out->len;
    for (size_t t = 0; t < d->nstates; t++) {
        if (ward_machine_allows(d, from, (int)t)) {
            ward_buf_printf(out, "%s%s", out->len > start ? ", " : "", d->states[t]);
        }
    }
    if (out->len == start) {
        ward_buf_puts(out, "none");
    }
}

static void dim_free(struct ward_machine_dim *d, lua_State *L)
{
    size_t n = d->nstates;
    for (size_t i = 0; i < n; i++) {
        free(d->states[i]);
        if (L != NULL) {
            luaL_unref(L, LUA_REGISTRYINDEX, d->reconcile[i]);
        }
        for (size_t k = 0; d->recovery != NULL && k < d->nrecovery[i]; k++) {
            if (L != NULL) {
                luaL_unref(L, LUA_REGISTRYINDEX, d->recovery[i][k].ref);
            }
            free(d->recovery[i][k].name);
        }
        if (d->recovery != NULL) {
            free(d->recovery[i]);
        }
    }
    for (size_t i = 0; L != NULL && d->guard != NULL && i < n * n; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, d->guard[i]);
    }
    free(d->name);
    free(d->states);
    free(d->allowed);
    free(d->any_target);
    free(d->final);
    free(d->stuck);
    free(d->guard);
    free(d->guard_line);
    free(d->reconcile);
    free(d->recovery);
    free(d->nrecovery);
}

void ward_machine_free(struct ward_machine *m, lua_State *L)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->ndims; i++) {
        dim_free(&m->dims[i], L);
    }
    for (size_t i = 0; i < m->nrules; i++) {
        if (L != NULL) {
            luaL_unref(L, LUA_REGISTRYINDEX, m->rules[i].ref);
        }
        free(m->rules[i].name);
    }
    for (size_t i = 0; i < m->nwarnings; i++) {
        free(m->warnings[i]);
    }
    free(m->warnings);
    free(m->rules);
    free(m->dims);
    free(m->kind);
    free(m->where);
    free(m);
}

__attribute__((format(printf, 3, 4))) static void warn(struct ward_machine *m, int line,
                                                       const char *fmt, ...)
{
    struct ward_buf w = {0};
    if (line > 0) {
        const char *colon = strrchr(m->where, ':');
        size_t flen = colon != NULL ? (size_t)(colon - m->where) : strlen(m->where);
        ward_buf_put(&w, m->where, flen);
        ward_buf_printf(&w, ":%d: ", line);
    } else {
        ward_buf_printf(&w, "%s: ", m->where);
    }
    va_list ap;
    va_start(ap, fmt);
    ward_buf_vprintf(&w, fmt, ap);
    va_end(ap);
    m->warnings = realloc(m->warnings, (m->nwarnings + 1) * sizeof(*m->warnings));
    if (m->warnings == NULL) {
        abort();
    }
    m->warnings[m->nwarnings++] = ward_buf_steal(&w);
}

static int function_line(lua_State *L, int idx)
{
    lua_Debug ar;
    lua_pushvalue(L, idx);
    if (lua_getinfo(L, ">S", &ar) == 0) {
        return 0;
    }
    return ar.linedefined;
}

/* Parse `A -> B`; writes the names into a/b (NUL-terminated, truncated). */
static bool parse_arrow(const char *key, char *a, size_t na, char *b, size_t nb)
{
    const char *arrow = strstr(key, "->");
    if (arrow == NULL) {
        return false;
    }
    const char *s = key, *e = arrow;
    while (s < e && (*s == ' ' || *s == '\t')) {
        s++;
    }
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    if ((size_t)(e - s) >= na) {
        return false;
    }
    memcpy(a, s, (size_t)(e - s));
    a[e - s] = '\0';
    s = arrow + 2;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    if ((size_t)(e - s) >= nb) {
        return false;
    }
    memcpy(b, s, (size_t)(e - s));
    b[e - s] = '\0';
    return true;
}

/* State name at the top of the stack, checked; pops nothing. */
static int want_state(lua_State *L, const struct ward_machine_dim *d, const char *where,
                      const char *what, struct ward_error *err)
{
    if (lua_type(L, -1) != LUA_TSTRING) {
        return ward_error_set(err, -EINVAL, "%s: %s: state names are strings, got a %s", where,
                              what, luaL_typename(L, -1));
    }
    int s = ward_machine_state(d, lua_tostring(L, -1));
    if (s < 0) {
        return ward_error_set(err, -EINVAL, "%s: %s: unknown state '%s' (declared: see states)",
                              where, what, lua_tostring(L, -1));
    }
    return s;
}

/* A list of state names in field `field` of the table at t; calls mark(state). */
static int state_list(lua_State *L, int t, const char *field, const struct ward_machine_dim *d,
                      const char *where, bool *mark, struct ward_error *err)
{
    int type = lua_getfield(L, t, field);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) {
        lua_pop(L, 1);
        return ward_error_set(err, -EINVAL, "%s: '%s' must be a list of state names", where, field);
    }
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int s = want_state(L, d, where, field, err);
        lua_pop(L, 1);
        if (s < 0) {
            lua_pop(L, 1);
            return s;
        }
        mark[s] = true;
    }
    lua_pop(L, 1);
    return 0;
}

static int parse_recovery(lua_State *L, struct ward_machine_dim *d, int s, const char *where,
                          struct ward_error *err)
{
    /* the ladder table is at the top */
    lua_Integer n = luaL_len(L, -1);
    if (n <= 0) {
        return ward_error_set(err, -EINVAL, "%s: recovery for %s is an empty ladder", where,
                              d->states[s]);
    }
    d->recovery[s] = xcalloc((size_t)n, sizeof(struct ward_recovery_step));
    d->nrecovery[s] = (size_t)n;
    for (lua_Integer i = 1; i <= n; i++) {
        struct ward_recovery_step *st = &d->recovery[s][i - 1];
        st->ref = WARD_MACHINE_NOREF;
        int type = lua_rawgeti(L, -1, i);
        if (type == LUA_TFUNCTION) {
            st->kind = WARD_RECOVERY_FUNCTION;
            struct ward_buf name = {0};
            ward_buf_printf(&name, "step %d", (int)i);
            st->name = ward_buf_steal(&name);
            st->ref = luaL_ref(L, LUA_REGISTRYINDEX);
            continue;
        }
        if (type == LUA_TTABLE) {
            /* { "name", fn } or { transition = "State" } */
            if (lua_getfield(L, -1, "transition") == LUA_TSTRING) {
                int t = want_state(L, d, where, "recovery transition", err);
                if (t < 0) {
                    lua_pop(L, 2);
                    return t;
                }
                st->kind = WARD_RECOVERY_TRANSITION;
                st->target = t;
                struct ward_buf name = {0};
                ward_buf_printf(&name, "to %s", d->states[t]);
                st->name = ward_buf_steal(&name);
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
            /* push both before testing: a short-circuit would leave one fewer to pop */
            int first = lua_rawgeti(L, -1, 1);
            int second = lua_rawgeti(L, -2, 2);
            if (first == LUA_TSTRING && second == LUA_TFUNCTION) {
                st->kind = WARD_RECOVERY_FUNCTION;
                st->ref = luaL_ref(L, LUA_REGISTRYINDEX);
                st->name = xstrdup(lua_tostring(L, -1));
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 3);
        } else if (type == LUA_TSTRING) {
            const char *v = lua_tostring(L, -1);
            if (strcmp(v, "retry") == 0) {
                st->kind = WARD_RECOVERY_RETRY;
                st->name = xstrdup("retry");
                lua_pop(L, 1);
                continue;
            }
            if (strcmp(v, "error") == 0) {
                if (d->error_state < 0) {
                    lua_pop(L, 1);
                    return ward_error_set(err, -EINVAL,
                                          "%s: recovery 'error' but the machine has no error "
                                          "state (set error_state)",
                                          where);
                }
                st->kind = WARD_RECOVERY_ERROR;
                st->name = xstrdup("error");
                lua_pop(L, 1);
                continue;
            }
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
        return ward_error_set(err, -EINVAL,
                              "%s: recovery for %s, step %d: use \"retry\", \"error\", "
                              "{transition = \"State\"}, a function or {\"name\", function}",
                              where, d->states[s], (int)i);
    }
    return 0;
}

/* Parse one dimension from the table at t. */
static int parse_dim(lua_State *L, int t, struct ward_machine *m, struct ward_machine_dim *d,
                     double default_stuck, struct ward_error *err)
{
    const char *where = m->where;
    t = lua_absindex(L, t);
    if (lua_getfield(L, t, "states") != LUA_TTABLE) {
        lua_pop(L, 1);
        return ward_error_set(err, -EINVAL, "%s: machine%s%s needs 'states', a list of names",
                              where, d->name[0] ? " dimension " : "", d->name);
    }
    lua_Integer n = luaL_len(L, -1);
    if (n < 1 || n > MACHINE_MAX_STATES) {
        lua_pop(L, 1);
        return ward_error_set(err, -EINVAL, "%s: a machine has 1 to %d states", where,
                              MACHINE_MAX_STATES);
    }
    size_t ns = (size_t)n;
    d->states = xcalloc(ns, sizeof(char *));
    d->allowed = xcalloc(ns * ns, sizeof(bool));
    d->any_target = xcalloc(ns, sizeof(bool));
    d->final = xcalloc(ns, sizeof(bool));
    d->stuck = xcalloc(ns, sizeof(double));
    d->guard = xcalloc(ns * ns, sizeof(int));
    d->guard_line = xcalloc(ns * ns, sizeof(int));
    d->reconcile = xcalloc(ns, sizeof(int));
    d->recovery = xcalloc(ns, sizeof(struct ward_recovery_step *));
    d->nrecovery = xcalloc(ns, sizeof(size_t));
    for (size_t i = 0; i < ns * ns; i++) {
        d->guard[i] = WARD_MACHINE_NOREF;
    }
    for (size_t i = 0; i < ns; i++) {
        d->reconcile[i] = WARD_MACHINE_NOREF;
        d->states[i] = NULL;
    }
    for (size_t i = 0; i < ns; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
            lua_pop(L, 2);
            d->nstates = i;
            return ward_error_set(err, -EINVAL, "%s: states[%zu] must be a non-empty name", where,
                                  i + 1);
        }
        const char *name = lua_tostring(L, -1);
        d->nstates = i;
        if (ward_machine_state(d, name) >= 0) {
            lua_pop(L, 2);
            return ward_error_set(err, -EINVAL, "%s: state '%s' is declared twice", where, name);
        }
        d->states[i] = xstrdup(name);
        d->nstates = i + 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    d->initial = 0;
    if (lua_getfield(L, t, "initial") != LUA_TNIL) {
        int s = want_state(L, d, where, "initial", err);
        if (s < 0) {
            lua_pop(L, 1);
            return s;
        }
        d->initial = s;
    }
    lua_pop(L, 1);
    d->error_state = ward_machine_state(d, "Error");
    if (lua_getfield(L, t, "error_state") != LUA_TNIL) {
        int s = want_state(L, d, where, "error_state", err);
        if (s < 0) {
            lua_pop(L, 1);
            return s;
        }
        d->error_state = s;
    }
    lua_pop(L, 1);

    int rc = state_list(L, t, "any", d, where, d->any_target, err);
    if (rc == 0) {
        rc = state_list(L, t, "final", d, where, d->final, err);
    }
    if (rc < 0) {
        return rc;
    }

    int type = lua_getfield(L, t, "transitions");
    if (type != LUA_TTABLE && type != LUA_TNIL) {
        lua_pop(L, 1);
        return ward_error_set(err, -EINVAL, "%s: 'transitions' maps a state to a list of states",
                              where);
    }
    if (type == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            int from = want_state(L, d, where, "transitions", err);
            lua_pop(L, 1);
            if (from < 0) {
                lua_pop(L, 3);
                return from;
            }
            if (lua_type(L, -1) != LUA_TTABLE) {
                lua_pop(L, 3);
                return ward_error_set(err, -EINVAL, "%s: transitions.%s must be a list", where,
                                      d->states[from]);
            }
            lua_Integer k = luaL_len(L, -1);
            for (lua_Integer i = 1; i <= k; i++) {
                lua_rawgeti(L, -1, i);
                int to = want_state(L, d, where, "transitions", err);
                lua_pop(L, 1);
                if (to < 0) {
                    lua_pop(L, 3);
                    return to;
                }
                d->allowed[(size_t)from * ns + (size_t)to] = true;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "stuck") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            int s = want_state(L, d, where, "stuck", err);
            lua_pop(L, 1);
            if (s < 0) {
                lua_pop(L, 3);
                return s;
            }
            double secs = 0;
            if (lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
                secs = default_stuck;
            } else if (lua_type(L, -1) != LUA_TSTRING ||
                       ward_duration_parse(lua_tostring(L, -1), &secs) != 0 || secs <= 0) {
                lua_pop(L, 3);
                return ward_error_set(err, -EINVAL,
                                      "%s: stuck.%s: not a duration (write \"15m\", or true for "
                                      "STUCK_STATE_TIMEOUT)",
                                      where, d->states[s]);
            }
            d->stuck[s] = secs;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "guards") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            char a[128], b[128];
            if (lua_type(L, -2) != LUA_TSTRING ||
                !parse_arrow(lua_tostring(L, -2), a, sizeof(a), b, sizeof(b))) {
                ward_error_set(err, -EINVAL, "%s: guards are keyed \"From -> To\" (got '%s')",
                               where, lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
                lua_pop(L, 3);
                return -EINVAL;
            }
            if (lua_type(L, -1) != LUA_TFUNCTION) {
                lua_pop(L, 3);
                return ward_error_set(err, -EINVAL, "%s: guard '%s -> %s' is not a function", where,
                                      a, b);
            }
            int line = function_line(L, -1);
            int from = ward_machine_state(d, a), to = ward_machine_state(d, b);
            if (from < 0 || to < 0) {
                warn(m, line, "guard for %s -> %s names an unknown state", a, b);
                lua_pop(L, 1);
                continue;
            }
            if (!ward_machine_allows(d, from, to)) {
                warn(m, line, "guard for %s -> %s, a transition the machine does not allow", a, b);
            }
            size_t at = (size_t)from * ns + (size_t)to;
            d->guard_line[at] = line;
            d->guard[at] = luaL_ref(L, LUA_REGISTRYINDEX);
        }
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "reconcile") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            int s = want_state(L, d, where, "reconcile", err);
            lua_pop(L, 1);
            if (s < 0 || lua_type(L, -1) != LUA_TFUNCTION) {
                lua_pop(L, 3);
                return s < 0 ? s
                             : ward_error_set(err, -EINVAL, "%s: reconcile.%s is not a function",
                                              where, d->states[s]);
            }
            d->reconcile[s] = luaL_ref(L, LUA_REGISTRYINDEX);
        }
    }
    lua_pop(L, 1);

    if (lua_getfield(L, t, "recovery") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            int s = want_state(L, d, where, "recovery", err);
            lua_pop(L, 1);
            if (s < 0) {
                lua_pop(L, 3);
                return s;
            }
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TFUNCTION) {
                lua_createtable(L, 1, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
            }
            if (lua_type(L, -1) != LUA_TTABLE) {
                lua_pop(L, 3);
                return ward_error_set(err, -EINVAL, "%s: recovery.%s must be a ladder (a list)",
                                      where, d->states[s]);
            }
            rc = parse_recovery(L, d, s, where, err);
            lua_pop(L, 1);
            if (rc < 0) {
                lua_pop(L, 2);
                return rc;
            }
        }
    }
    lua_pop(L, 1);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ward_machine_rule *)a)->name,
                  ((const struct ward_machine_rule *)b)->name);
}

/* Fill m from the machine table at idx (absolute). 0, or <0 with err set. */
static int parse_machine(lua_State *L, int idx, struct ward_machine *m, const char *where,
                         double default_stuck, struct ward_error *err)
{
    int rc = 0;
    if (lua_getfield(L, idx, "dimensions") == LUA_TTABLE) {
        /* sorted names so that dims[0] is deterministic unless `primary` says otherwise */
        const char *names[MACHINE_MAX_DIMS];
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING || n == MACHINE_MAX_DIMS) {
                lua_pop(L, 2);
                return ward_error_set(err, -EINVAL, "%s: dimensions are named tables, at most %d",
                                      where, MACHINE_MAX_DIMS);
            }
            names[n++] = lua_tostring(L, -1); /* anchored by the dimensions table */
        }
        const char *primary = NULL;
        if (lua_getfield(L, idx, "primary") == LUA_TSTRING) {
            primary = lua_tostring(L, -1);
        }
        for (size_t i = 1; i < n; i++) {
            for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                const char *tmp = names[j];
                names[j] = names[j - 1];
                names[j - 1] = tmp;
            }
        }
        for (size_t i = 0; primary != NULL && i < n; i++) {
            if (strcmp(names[i], primary) == 0) {
                const char *tmp = names[0];
                names[0] = names[i];
                names[i] = tmp;
            }
        }
        m->dims = xcalloc(n, sizeof(*m->dims));
        for (size_t i = 0; rc == 0 && i < n; i++) {
            m->dims[i].name = xstrdup(names[i]);
            m->ndims = i + 1;
            lua_getfield(L, -2, names[i]);
            if (lua_type(L, -1) != LUA_TTABLE) {
                rc = ward_error_set(err, -EINVAL, "%s: dimension %s must be a table", where,
                                    names[i]);
            } else {
                rc = parse_dim(L, -1, m, &m->dims[i], default_stuck, err);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (rc == 0 && n == 0) {
            rc = ward_error_set(err, -EINVAL, "%s: 'dimensions' is empty", where);
        }
    } else {
        m->dims = xcalloc(1, sizeof(*m->dims));
        /* a single machine may name its dimension (the store's claims use "lifecycle") */
        const char *dn = "state";
        if (lua_getfield(L, idx, "dimension") == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
            dn = lua_tostring(L, -1);
        }
        m->dims[0].name = xstrdup(dn);
        lua_pop(L, 1);
        m->ndims = 1;
        rc = parse_dim(L, idx, m, &m->dims[0], default_stuck, err);
    }
    lua_pop(L, 1);

    if (rc == 0 && lua_getfield(L, idx, "consistency") == LUA_TTABLE) {
        lua_pushnil(L);
        while (rc == 0 && lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TFUNCTION) {
                lua_pop(L, 2);
                rc = ward_error_set(err, -EINVAL, "%s: consistency maps a rule name to a function",
                                    where);
                break;
            }
            m->rules = realloc(m->rules, (m->nrules + 1) * sizeof(*m->rules));
            if (m->rules == NULL) {
                abort();
            }
            struct ward_machine_rule *r = &m->rules[m->nrules++];
            r->name = xstrdup(lua_tostring(L, -2));
            r->line = function_line(L, -1);
            r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        if (rc == 0 && m->nrules > 1) { /* qsort must not see the NULL of an empty list */
            qsort(m->rules, m->nrules, sizeof(*m->rules), name_cmp);
        }
    }
    if (rc == 0) {
        lua_pop(L, 1);
    }
    return rc;
}

/* Owns a machine being parsed: a to-be-closed value frees it if an error unwinds the
 * parse (a metamethod in the policy's tables raised, or the budget stopped it). */
struct machine_guard {
    struct ward_machine *m;
};

static int machine_guard_close(lua_State *L)
{
    struct machine_guard *g = luaL_checkudata(L, 1, "ward.machine_guard");
    if (g->m != NULL) {
        ward_machine_free(g->m, L);
        g->m = NULL;
    }
    return 0;
}

struct ward_machine *ward_machine_from_lua(lua_State *L, int idx, const char *kind,
                                           const char *where, double default_stuck,
                                           struct ward_error *err)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        ward_error_set(err, -EINVAL, "%s: the machine must be a table (use ward.machine{...})",
                       where);
        return NULL;
    }
    int top = lua_gettop(L);
    /* the guard first: making it may raise, and nothing of C's is to be freed yet */
    struct machine_guard *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->m = NULL;
    if (luaL_newmetatable(L, "ward.machine_guard")) {
        lua_pushcfunction(L, machine_guard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, -1);
    struct ward_machine *m = xcalloc(1, sizeof(*m));
    m->kind = xstrdup(kind);
    m->where = xstrdup(where);
    g->m = m;
    int rc = parse_machine(L, idx, m, where, default_stuck, err);
    g->m = NULL; /* the parse returned: m is ours again */
    lua_settop(L, top);
    if (rc < 0) {
        ward_machine_free(m, L);
        return NULL;
    }
    return m;
}

int ward_machine_validate(const struct ward_machine *m, struct ward_buf *out)
{
    int problems = 0;
    for (size_t i = 0; i < m->nwarnings; i++) {
        ward_buf_printf(out, "%s\n", m->warnings[i]);
        problems++;
    }
    for (size_t di = 0; di < m->ndims; di++) {
        const struct ward_machine_dim *d = &m->dims[di];
        const char *dn = m->ndims > 1 ? d->name : NULL;
        for (size_t s = 0; s < d->nstates; s++) {
            bool explicit_exit = false;
            for (size_t t = 0; t < d->nstates; t++) {
                explicit_exit |= d->allowed[s * d->nstates + t];
            }
            if (d->final[s] && explicit_exit) {
                ward_buf_printf(out, "%s: final state %s%s%s has transitions out of it\n", m->where,
                                dn ? dn : "", dn ? "." : "", d->states[s]);
                problems++;
            }
            if (s != (size_t)d->initial && ward_machine_path(d, d->initial, (int)s, NULL, 0) < 0) {
                ward_buf_printf(out, "%s: state %s%s%s is unreachable from %s\n", m->where,
                                dn ? dn : "", dn ? "." : "", d->states[s], d->states[d->initial]);
                problems++;
            }
            if (d->final[s] && (d->stuck[s] != 0 || d->nrecovery[s] != 0)) {
                ward_buf_printf(out, "%s: final state %s has a stuck timeout or recovery\n",
                                m->where, d->states[s]);
                problems++;
            }
            if (d->nrecovery[s] != 0 && d->stuck[s] == 0) {
                ward_buf_printf(out,
                                "%s: state %s has a recovery but no stuck timeout, so it "
                                "never fires\n",
                                m->where, d->states[s]);
                problems++;
            }
        }
    }
    return problems;
}
