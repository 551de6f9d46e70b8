/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include <ward/async.h>
#include <ward/metrics.h>

#include "config.h"
#include "machine.h"
#include "plugin.h"
#include "policy.h"
#include "queue.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

#define POLICY_MAX_BYTES (1u << 20)
#define POLICY_MAX_DIMS 8
#define POLICY_DEFAULT_MEMORY (64u << 20)
#define POLICY_DEFAULT_INSTRUCTIONS 100000000ul
/* 100M instructions take 1-3 s here: the slice only stops what instructions do not count */
#define POLICY_DEFAULT_SLICE 10.0

/* Registry keys (their addresses are the keys). */
static const char policy_key = 'p'; /* lightuserdata: struct policy * */
static const char runs_key = 'r';   /* thread -> lightuserdata struct run * */
static const char where_key = 'w';  /* declaration table -> "file:line" (weak keys) */
static const char loaded_key = 'l'; /* module name -> module value */
static const char guard_key = 'g';  /* boolean: inside a guard or consistency rule */

struct generation;

/* One compiled policy file: its own sandboxed state and machine. */
struct policy {
    struct ward_policy_engine *e; /* NULL while checking a file without an engine */
    struct generation *gen;
    char *path;             /* owned */
    char *dir;              /* owned: where `require` looks */
    char *kind;             /* owned */
    lua_State *L;           /* owned */
    struct ward_machine *m; /* owned */
    int module_ref;
    /* ward_<kind>_... families (ward_physicalhost_state_transitions_total, ...) */
    struct ward_metric *m_transitions, *m_stuck, *m_recovery, *m_duration;
    lua_State *helper; /* anchored by helper_ref: runs C pushes under pcall */
    int helper_ref;
    const struct ward_policy_options *o;
};

/* The set of policies in force; runs keep theirs alive across a reload. */
struct generation {
    unsigned refs;            /* the engine's "current" pointer counts as one */
    struct policy **policies; /* owned */
    size_t n;
};

struct resource {
    char *kind; /* owned */
    char *name; /* owned */
    char *key;  /* owned: "kind/name", the queue key */
    /* the next resource of another kind with this name (by_name) */
    struct resource *same_name;
    size_t ndims;
    char *dim[POLICY_MAX_DIMS];   /* owned */
    char *state[POLICY_MAX_DIMS]; /* owned */
    double entered[POLICY_MAX_DIMS];
    /* the Unix time the store keeps for each state (the engine's own transitions hand it
       theirs), so a re-read that finds the same state and time keeps entered[]: converting
       it again after a step of the wall clock would move it. 0: none yet */
    double stamp[POLICY_MAX_DIMS];
    cJSON *spec;   /* owned */
    cJSON *status; /* owned */
    long long version;
    /* stuck detection and recovery of the primary dimension */
    bool stuck_reported;
    bool exhausted;
    unsigned attempts;
    double last_attempt;
    int pending_step; /* ladder index queued as the next run, -1 none */
    struct run *run;  /* the one run in flight, or NULL */
    /* Values plugins observed (ward_policy_observe), kept as status.observed even when a run
       that started before them writes its status back; owned, NULL until the first one. */
    cJSON *observed;
    /* Write the status when the run in flight ends: an observation came meanwhile, the
       reconcile it queued may record what the policy made of it, or the run changed the
       status without a transition (which would otherwise be written only with the next). */
    bool status_dirty;
    /* why the last run failed (owned, NULL after a success): an escalation to the error
       state names it, so "stuck" does not hide what the BMC answered */
    char *last_error;
    struct resource *next;
};

struct ward_async {
    struct run *run;
    void (*cancel)(void *arg);
    void *arg;
};

struct run {
    struct ward_policy_engine *e;
    struct policy *p; /* holds a reference on p->gen */
    struct resource *r;
    lua_State *co;
    int co_ref;
    int res_ref;
    bool recovery;
    char *recovery_state; /* owned: the state the recovery step tried to leave */
    const char *step;     /* name of the recovery step (owned by the machine) */
    double started;
    double deadline;
    struct ward_async *pending; /* owned while set */
    bool ready;                 /* completed, waiting for the wake timer */
    int nargs;
    bool parked; /* an admission hook made it wait: it ends as waiting, not as a failure */
    /* the resource's version when the run started or its own last commit gave: a status
       the run changed after that is written when it ends (another writer's version in
       between means the run's view is stale, and it is not) */
    long long version0;
    struct run *next_ready;
    struct run *next;
};

struct ward_policy_engine {
    struct ev_loop *loop;
    struct ward_policy_sink sink;
    bool has_sink;
    struct ward_plugins *plugins;
    struct ward_policy_options o;
    char *dir; /* owned */
    struct generation *gen;
    unsigned generation;
    struct resource *resources; /* owned list */
    struct ward_strmap by_key;  /* "Kind/name" -> resource in the list (keys are r->key) */
    struct ward_strmap by_name; /* name -> newest resource so named, chained by same_name */
    struct run *runs;           /* owned list */
    struct run *ready;          /* subset of runs, waiting to be resumed */
    unsigned running;
    struct ward_queue *q;
    ev_timer wake;  /* resumes completed runs and pumps the queue on the next iteration */
    ev_timer stuck; /* periodic tick */
    ev_timer due;   /* the next requeue */
    bool destroying;
    bool stopping;
    /* The store whose change feed the engine follows (the store sink's), or NULL. */
    struct ward_store *feed;
    /* Resources another writer changed, re-read on the next wake (owned "kind" + "name"). */
    struct stale_ref {
        char *kind, *name;
    } * stale;
    size_t nstale, capstale;
    struct ward_metrics *metrics;
    struct ward_metric *m_reconcile, *m_reloads, *m_cancelled, *m_failures, *m_refused;
    struct ward_policy_engine *next_live; /* ward_policy_observe() finds engines here */
    /* ward_policy_engine_on_admit */
    struct admit_hook {
        char *kind, *to; /* owned */
        ward_policy_admit_fn fn;
        void *arg;
    } admit[WARD_POLICY_MAX_ADMIT];
    size_t nadmit;
};

/* Engines alive in this process (wardd has one); plugins report observations to them. */
static struct ward_policy_engine *live_engines;

/* ------------------------------------------------------------------ helpers */

static char *xstrdup(const char *s)
{
    char *p = strdup(s != NULL ? s : "");
    if (p == NULL) {
        abort();
    }
    return p;
}

/* The engine's clock: what the queue, backoff, run deadlines and stuck detection count on.
   Without a clock in the options it is the monotonic one, so setting the wall clock (an NTP
   step, an operator, an edge box without a battery-backed clock finding the date) neither
   cancels runs and reports hosts stuck all at once nor holds hosts back for as long as the
   clock went back. Times that cross the engine's border (entered_at in Lua, the resource's
   JSON and commits, a state's time from the store) are Unix times, converted there. A clock
   from the options (a test's) is both. */
static double engine_now(const struct ward_policy_engine *e)
{
    if (e->o.now != NULL) {
        return e->o.now(e->o.now_arg);
    }
    return ward_monotonic();
}

/* Engine time t as Unix time: now on the wall clock, less how long ago t was. 0 ("never")
   stays 0, and so does any time without an engine (a policy's own tests). */
static double to_unix(const struct ward_policy_engine *e, double t)
{
    if (e == NULL || e->o.now != NULL || t == 0) {
        return t;
    }
    return ward_wall_clock() - (ward_monotonic() - t);
}

/* Unix time w as engine time; 0 stays 0. */
static double from_unix(const struct ward_policy_engine *e, double w)
{
    if (e->o.now != NULL || w == 0) {
        return w;
    }
    return ward_monotonic() - (ward_wall_clock() - w);
}

static void emit(struct ward_policy_engine *e, const char *type, const char *kind, const char *name,
                 const char *message)
{
    if (e != NULL && e->o.on_event != NULL) {
        struct ward_policy_event ev = {type, kind, name, message, NULL, NULL};
        e->o.on_event(e->o.event_arg, &ev);
    }
}

/* A bounded token for metric labels: what the caller gave if it looks like one. */
static const char *token_or_other(const char *s)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0'; n++) {
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '-') || n >= 40) {
            return "other";
        }
    }
    return n > 0 ? s : "other";
}

/* Run fn(L, ud) as one protected call on L; 0 or -errno with err. */
struct pcall_ctx {
    int (*fn)(lua_State *L, void *ud);
    void *ud;
};

static int pcall_trampoline(lua_State *L)
{
    struct pcall_ctx *c = lua_touserdata(L, 1);
    lua_remove(L, 1);
    return c->fn(L, c->ud);
}

static int pcall_c(lua_State *L, int (*fn)(lua_State *L, void *ud), void *ud, int nresults,
                   struct ward_error *err)
{
    struct pcall_ctx c = {fn, ud};
    if (!lua_checkstack(L, 4)) {
        return ward_error_set(err, -ENOMEM, "Lua stack exhausted");
    }
    lua_pushcfunction(L, pcall_trampoline);
    lua_pushlightuserdata(L, &c);
    return ward_sandbox_pcall(L, 1, nresults, err);
}

/* ------------------------------------------------------------- JSON <-> Lua */

/* -------------------------------------------------------------- resources */

static struct resource *resource_find(const struct ward_policy_engine *e, const char *kind,
                                      const char *name)
{
    char key[512];
    if ((size_t)snprintf(key, sizeof(key), "%s/%s", kind, name) < sizeof(key)) {
        struct resource *r = ward_strmap_get(&e->by_key, key);
        if (r != NULL && strcmp(r->kind, kind) == 0 && strcmp(r->name, name) == 0) {
            return r;
        }
        if (strchr(kind, '/') == NULL) {
            return NULL; /* the key names one resource only */
        }
    }
    for (struct resource *r = e->resources; r != NULL; r = r->next) {
        if (strcmp(r->kind, kind) == 0 && strcmp(r->name, name) == 0) {
            return r;
        }
    }
    return NULL;
}

/* Index a resource just put at the head of e->resources (by key and by name). */
static void index_add(struct ward_policy_engine *e, struct resource *r)
{
    r->same_name = ward_strmap_get(&e->by_name, r->name);
    if (ward_strmap_put(&e->by_key, r->key, r) != 0 ||
        ward_strmap_put(&e->by_name, r->name, r) != 0) {
        abort(); /* like the other allocations here */
    }
}

static void index_remove(struct ward_policy_engine *e, struct resource *r)
{
    ward_strmap_remove(&e->by_key, r->key);
    struct resource *head = ward_strmap_get(&e->by_name, r->name);
    if (head == r) {
        if (r->same_name != NULL) {
            ward_strmap_put(&e->by_name, r->same_name->name, r->same_name); /* replaces */
        } else {
            ward_strmap_remove(&e->by_name, r->name);
        }
        return;
    }
    for (struct resource *x = head; x != NULL; x = x->same_name) {
        if (x->same_name == r) {
            x->same_name = r->same_name;
            break;
        }
    }
}

static void resource_free(struct resource *r)
{
    for (size_t i = 0; i < r->ndims; i++) {
        free(r->dim[i]);
        free(r->state[i]);
    }
    cJSON_Delete(r->spec);
    cJSON_Delete(r->status);
    cJSON_Delete(r->observed);
    free(r->last_error);
    free(r->kind);
    free(r->name);
    free(r->key);
    free(r);
}

/* Index of dimension name in r, creating it at its initial state when absent. */
static int resource_dim(struct resource *r, const struct ward_machine_dim *d, double now)
{
    for (size_t i = 0; i < r->ndims; i++) {
        if (strcmp(r->dim[i], d->name) == 0) {
            return (int)i;
        }
    }
    if (r->ndims == POLICY_MAX_DIMS) {
        return -1;
    }
    r->dim[r->ndims] = xstrdup(d->name);
    r->state[r->ndims] = xstrdup(d->states[d->initial]);
    r->entered[r->ndims] = now;
    return (int)r->ndims++;
}

static const char *resource_state(const struct resource *r, const char *dim)
{
    for (size_t i = 0; i < r->ndims; i++) {
        if (strcmp(r->dim[i], dim) == 0) {
            return r->state[i];
        }
    }
    return NULL;
}

/* Push the Lua view of a resource: {kind, name, state, states, spec, status, version, ...}. */
static void push_resource(lua_State *L, const struct ward_policy_engine *e,
                          const struct resource *r, const struct ward_machine *m)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, r->kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, 0, (int)r->ndims);
    for (size_t i = 0; i < r->ndims; i++) {
        lua_pushstring(L, r->state[i]);
        lua_setfield(L, -2, r->dim[i]);
    }
    lua_setfield(L, -2, "states");
    const char *primary = m != NULL && m->ndims > 0 ? resource_state(r, m->dims[0].name) : NULL;
    if (primary == NULL && r->ndims > 0) {
        primary = r->state[0];
    }
    lua_pushstring(L, primary);
    lua_setfield(L, -2, "state");
    if (r->spec != NULL) {
        ward_sandbox_push_json(L, r->spec);
    } else {
        lua_newtable(L);
    }
    lua_setfield(L, -2, "spec");
    if (r->status != NULL) {
        ward_sandbox_push_json(L, r->status);
    } else {
        lua_newtable(L);
    }
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, r->version);
    lua_setfield(L, -2, "version");
    lua_pushnumber(L, r->ndims > 0 ? to_unix(e, r->entered[0]) : 0);
    lua_setfield(L, -2, "entered_at");
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "recovery_attempts");
}

/* status.observed is what plugins reported last (ward_policy_observe); a policy reads it. */
static void keep_observed(struct resource *r)
{
    if (r->observed == NULL || r->status == NULL) {
        return;
    }
    cJSON *copy = cJSON_Duplicate(r->observed, true);
    if (copy == NULL) {
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(r->status, "observed");
    cJSON_AddItemToObject(r->status, "observed", copy);
}

/* Copy t.status (t at idx) into r->status; keeps the old status on bad data. */
static int pull_status(lua_State *L, int idx, struct resource *r, struct ward_error *err)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        return 0;
    }
    lua_pushliteral(L, "status");
    lua_rawget(L, idx);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    cJSON *s = ward_sandbox_to_json(L, -1, "status", err);
    lua_pop(L, 1);
    if (s == NULL) {
        return err != NULL ? err->code : -EINVAL;
    }
    cJSON_Delete(r->status);
    r->status = s;
    keep_observed(r);
    return 0;
}

/* ----------------------------------------------------------------- policy */

static struct policy *policy_of(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &policy_key);
    struct policy *p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

static struct policy *policy_for(const struct generation *g, const char *kind)
{
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        if (strcmp(g->policies[i]->kind, kind) == 0) {
            return g->policies[i];
        }
    }
    return NULL;
}

static void policy_free(struct policy *p)
{
    if (p == NULL) {
        return;
    }
    ward_machine_free(p->m, NULL);
    ward_sandbox_close(p->L);
    free(p->path);
    free(p->dir);
    free(p->kind);
    free(p);
}

static void generation_release(struct generation *g)
{
    if (g == NULL || --g->refs > 0) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        policy_free(g->policies[i]);
    }
    free(g->policies);
    free(g);
}

/* ------------------------------------------------------- the transition path */

static bool in_guard(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &guard_key);
    bool yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

static void set_in_guard(lua_State *L, bool yes)
{
    lua_pushboolean(L, yes);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &guard_key);
}

/*
 * Call a guard or consistency rule `ref` with the resource table at tbl and
 * two extra values pushed by the caller (nargs of them on top). It must not
 * yield (a plain lua_pcall makes the call non-yieldable, so ward_async_begin
 * refuses) and fails closed: an error or an answer that is not true refuses.
 * Returns 0 (allowed) or -EPERM with the reason in why.
 */
static int call_predicate(lua_State *L, int ref, int tbl, int nargs, const char *what,
                          struct ward_error *why)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushvalue(L, tbl);
    lua_rotate(L, -(nargs + 2), 2);
    bool nested = in_guard(L);
    set_in_guard(L, true);
    struct ward_error err = {0};
    int rc = ward_sandbox_pcall(L, nargs + 1, 2, &err);
    set_in_guard(L, nested);
    if (rc != 0) {
        /* the first line is enough for a refusal; the traceback goes to the log */
        char *nl = strchr(err.text, '\n');
        ward_log(WARD_LOG_WARN, "policy", "%s raised an error: %s", what, err.text);
        if (nl != NULL) {
            *nl = '\0';
        }
        return ward_error_set(why, -EPERM, "%s failed: %s", what, err.text);
    }
    int rc2 = 0;
    if (lua_type(L, -2) == LUA_TBOOLEAN && lua_toboolean(L, -2)) {
        rc2 = 0;
    } else if (lua_type(L, -2) == LUA_TBOOLEAN || lua_isnil(L, -2)) {
        const char *reason = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        rc2 = ward_error_set(why, -EPERM, "%s refused: %s", what,
                             reason != NULL ? reason : "(no reason given)");
    } else {
        rc2 = ward_error_set(why, -EPERM,
                             "%s refused: it returned a %s instead of true or "
                             "false, reason",
                             what, luaL_typename(L, -2));
    }
    lua_pop(L, 2);
    return rc2;
}

/*
 * Validate, guard and consistency-check r going to `to` in dimension d; the
 * resource's Lua table is at tbl on L. 0 when the transition may happen.
 */
static int check_transition(struct policy *p, lua_State *L, int tbl, struct resource *r,
                            const struct ward_machine_dim *d, const char *to,
                            struct ward_error *err)
{
    tbl = lua_absindex(L, tbl);
    const char *from_name = resource_state(r, d->name);
    int from = ward_machine_state(d, from_name);
    int t = ward_machine_state(d, to);
    const char *label = p->m->ndims > 1 ? d->name : NULL;
    if (t < 0) {
        struct ward_buf all = {0};
        for (size_t i = 0; i < d->nstates; i++) {
            ward_buf_printf(&all, "%s%s", i ? ", " : "", d->states[i]);
        }
        ward_error_set(err, -EINVAL, "%s/%s: unknown state '%s' (states: %s)", r->kind, r->name, to,
                       all.data);
        ward_buf_free(&all);
        return -EINVAL;
    }
    if (from < 0) {
        return ward_error_set(err, -EINVAL, "%s/%s: current state '%s' is not in the machine",
                              r->kind, r->name, from_name ? from_name : "?");
    }
    if (!ward_machine_allows(d, from, t)) {
        struct ward_buf msg = {0};
        ward_buf_printf(&msg, "%s/%s: %s%s%s -> %s is not allowed (allowed from %s: ", r->kind,
                        r->name, label ? label : "", label ? " " : "", d->states[from],
                        d->states[t], d->states[from]);
        ward_machine_targets(d, from, &msg);
        ward_buf_puts(&msg, ")");
        int path[64];
        int n = ward_machine_path(d, from, t, path, WARD_ARRAY_SIZE(path));
        if (n > 0) {
            ward_buf_printf(&msg, "; shortest path: %s", d->states[from]);
            for (int i = 0; i < n; i++) {
                ward_buf_printf(&msg, " -> %s", d->states[path[i]]);
            }
        } else if (from == t) {
            ward_buf_printf(&msg, "; it is already %s", d->states[t]);
        } else {
            ward_buf_puts(&msg, "; no path leads there");
        }
        ward_error_set(err, -EPERM, "%s", msg.data);
        ward_buf_free(&msg);
        return -EPERM;
    }
    size_t at = (size_t)from * d->nstates + (size_t)t;
    char what[300];
    if (d->guard[at] != WARD_MACHINE_NOREF) {
        snprintf(what, sizeof(what), "%s/%s: guard %s -> %s", r->kind, r->name, d->states[from],
                 d->states[t]);
        lua_pushstring(L, d->states[from]);
        lua_pushstring(L, d->states[t]);
        int rc = call_predicate(L, d->guard[at], tbl, 2, what, err);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < p->m->nrules; i++) {
        /* rule(resource, state, states) with the target applied */
        const char *primary =
            d == &p->m->dims[0] ? d->states[t] : resource_state(r, p->m->dims[0].name);
        snprintf(what, sizeof(what), "%s/%s: %s -> %s breaks consistency rule %s", r->kind, r->name,
                 d->states[from], d->states[t], p->m->rules[i].name);
        lua_pushstring(L, primary);
        lua_createtable(L, 0, (int)r->ndims);
        for (size_t k = 0; k < r->ndims; k++) {
            lua_pushstring(L, strcmp(r->dim[k], d->name) == 0 ? d->states[t] : r->state[k]);
            lua_setfield(L, -2, r->dim[k]);
        }
        int rc = call_predicate(L, p->m->rules[i].ref, tbl, 2, what, err);
        if (rc != 0) {
            /* "breaks consistency rule x refused: reason" reads badly; say it once */
            char *s = strstr(err->text, " refused: ");
            if (s != NULL) {
                memmove(s + 2, s + 10, strlen(s + 10) + 1);
                s[0] = ':';
                s[1] = ' ';
            }
            return rc;
        }
    }
    return 0;
}

static const char *const duration_labels[] = {"state", NULL};

static void policy_metrics(struct policy *p, struct ward_metrics *metrics);

static void engine_refresh(struct ward_policy_engine *e, struct resource *r);
static bool store_backed(const struct ward_policy_engine *e);

/* After a durable commit: the engine's copy, then log, count, emit, look again. */
static void apply_transition(struct ward_policy_engine *e, struct policy *p, struct resource *r,
                             int di, const char *to, const char *trigger, const char *reason,
                             const char *actor, long long version, double now, double stamp)
{
    double spent = now - r->entered[di];
    r->version = version;
    char *from = r->state[di];
    r->state[di] = xstrdup(to);
    r->entered[di] = now;
    r->stamp[di] = stamp;
    if (strcmp(r->dim[di], p->m->dims[0].name) == 0) {
        r->stuck_reported = false;
        r->exhausted = false;
        r->attempts = 0;
        r->last_attempt = 0;
        r->pending_step = -1;
    }
    char version_text[32];
    snprintf(version_text, sizeof(version_text), "%lld", version);
    struct ward_log_field fields[] = {
        {"resource", r->key},
        {"dimension", r->dim[di]},
        {"from", from},
        {"to", to},
        {"trigger", trigger},
        {"actor", actor},
        {"version", version_text},
    };
    ward_log_fields(WARD_LOG_INFO, "policy", fields, WARD_ARRAY_SIZE(fields),
                    "%s: %s -> %s (%s)%s%s", r->key, from, to, trigger, reason ? ": " : "",
                    reason ? reason : "");
    ward_metric_add(p->m_transitions, (const char *[]){from, to, trigger}, 1);
    ward_metric_observe(p->m_duration, (const char *[]){from}, spent > 0 ? spent : 0);
    struct ward_buf msg = {0};
    ward_buf_printf(&msg, "%s -> %s (%s)", from, to, trigger);
    emit(e, "transition", r->kind, r->name, msg.data);
    ward_buf_free(&msg);
    free(from);
    /* the new state may have work to do */
    ward_queue_add(e->q, r->key, now);
    if (!ev_is_active(&e->wake)) {
        ev_timer_set(&e->wake, 0, 0);
        ev_timer_start(e->loop, &e->wake);
    }
}

/* Commit, then log, count, emit. The checks have passed. */
static int commit_transition(struct ward_policy_engine *e, struct policy *p, struct resource *r,
                             const struct ward_machine_dim *d, const char *to, const char *trigger,
                             const char *reason, const char *actor, struct ward_error *err)
{
    double now = engine_now(e);
    double stamp = to_unix(e, now);
    int di = resource_dim(r, d, now);
    if (di < 0) {
        return ward_error_set(err, -E2BIG, "%s/%s: too many dimensions", r->kind, r->name);
    }
    char *from = r->state[di];
    char *status = r->status != NULL ? cJSON_PrintUnformatted(r->status) : NULL;
    trigger = token_or_other(trigger);
    struct ward_policy_commit c = {
        .kind = r->kind,
        .name = r->name,
        .dimension = d->name,
        .from = from,
        .to = to,
        .trigger = trigger,
        .reason = reason,
        .actor = actor != NULL ? actor : "policy",
        .expected_version = r->version,
        .entered_at = stamp,
        .status_json = status != NULL ? status : "{}",
    };
    long long version = r->version + 1;
    int rc = 0;
    if (e->has_sink) {
        rc = e->sink.commit(e->sink.self, &c, &version, err);
    }
    free(status);
    if (rc != 0) {
        ward_log(WARD_LOG_WARN, "policy", "%s/%s: %s -> %s not committed: %s", r->kind, r->name,
                 from, to, err != NULL ? err->text : "");
        if (rc == -ESTALE) {
            /* somebody else wrote first: take their version so the next attempt can succeed */
            engine_refresh(e, r);
        }
        return rc;
    }
    apply_transition(e, p, r, di, to, trigger, reason, c.actor, version, now, stamp);
    return 0;
}

/* Ask the admission hooks for a transition of r into `to` in dimension d (checks passed). */
static int admit(struct ward_policy_engine *e, const struct policy *p, const struct resource *r,
                 const struct ward_machine_dim *d, const char *to, struct ward_error *err)
{
    if (e == NULL || d != &p->m->dims[0]) {
        return 0;
    }
    for (size_t i = 0; i < e->nadmit; i++) {
        const struct admit_hook *h = &e->admit[i];
        if (strcmp(h->kind, r->kind) != 0 || strcmp(h->to, to) != 0) {
            continue;
        }
        int rc = h->fn(h->arg, r->name, err);
        if (rc != 0) {
            if (rc == -EAGAIN) {
                ward_log_fields(WARD_LOG_INFO, "policy",
                                &(struct ward_log_field){"resource", r->key}, 1,
                                "%s: %s -> %s waits: %s", r->key, resource_state(r, d->name), to,
                                err != NULL ? err->text : "");
            }
            return rc;
        }
    }
    return 0;
}

/* Check and commit with the resource's table at tbl on L. */
static int do_transition(struct ward_policy_engine *e, struct policy *p, lua_State *L, int tbl,
                         struct resource *r, const char *dimension, const char *to,
                         const char *trigger, const char *reason, const char *actor, bool commit,
                         struct ward_error *err)
{
    const struct ward_machine_dim *d = ward_machine_dim(p->m, dimension);
    if (d == NULL) {
        return ward_error_set(err, -EINVAL, "%s/%s: no dimension '%s'", r->kind, r->name,
                              dimension);
    }
    int rc = check_transition(p, L, tbl, r, d, to, err);
    if (rc != 0) {
        if (e != NULL && commit) {
            ward_metric_add(e->m_refused, (const char *[]){r->kind}, 1);
            ward_log_fields(WARD_LOG_INFO, "policy", &(struct ward_log_field){"resource", r->key},
                            1, "transition refused: %s", err != NULL ? err->text : "");
        }
        return rc;
    }
    if (!commit) {
        return 0;
    }
    rc = admit(e, p, r, d, to, err);
    if (rc != 0) {
        return rc;
    }
    return commit_transition(e, p, r, d, to, trigger, reason, actor, err);
}

/* do_transition with the resource's table on top of p's stack (popped), its guards under the
 * engine's budget. */
static int transition_on_top(struct ward_policy_engine *e, struct policy *p, struct resource *r,
                             const char *dimension, const char *to, const char *trigger,
                             const char *reason, const char *actor, bool commit,
                             struct ward_error *err)
{
    lua_State *L = p->L;
    int rc = ward_sandbox_arm(L, e->o.instructions, e->o.slice_timeout, err);
    if (rc == 0) {
        rc = do_transition(e, p, L, -1, r, dimension, to, trigger, reason, actor, commit, err);
        ward_sandbox_disarm(L);
    }
    lua_pop(L, 1);
    return rc;
}

/* ---------------------------------------------------------------- the runs */

static void run_resume(struct run *run);
static void run_finish(struct run *run, bool ok, const char *error, double requeue_after);
static void schedule_wake(struct ward_policy_engine *e);

static struct run *run_of(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &runs_key) != LUA_TTABLE) {
        lua_pop(L, 1); /* a state the engine did not create */
        return NULL;
    }
    lua_pushthread(L);
    lua_rawget(L, -2);
    struct run *run = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return run;
}

struct ward_async *ward_async_begin(lua_State *L, void (*cancel)(void *arg), void *arg)
{
    if (!lua_isyieldable(L) || !lua_checkstack(L, 3)) {
        return NULL;
    }
    struct run *run = run_of(L);
    if (run == NULL || run->co != L || run->pending != NULL || run->e->destroying) {
        return NULL;
    }
    struct ward_async *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->run = run;
    a->cancel = cancel;
    a->arg = arg;
    run->pending = a;
    return a;
}

int ward_async_refuse(lua_State *L)
{
    return luaL_error(L, "this call has to wait and cannot yield here (guards, consistency "
                         "rules and the policy's main chunk must not wait)");
}

int ward_async_yield(lua_State *L, struct ward_async *a)
{
    if (a == NULL) {
        return ward_async_refuse(L);
    }
    return lua_yield(L, 0);
}

struct push_ctx {
    int (*push)(lua_State *L, void *arg);
    void *arg;
};

static int push_protected(lua_State *L, void *ud)
{
    struct push_ctx *c = ud;
    int base = lua_gettop(L);
    int n = c->push(L, c->arg);
    if (n < 0 || lua_gettop(L) < base + n) {
        return luaL_error(L, "a plugin pushed a bad number of results");
    }
    return n;
}

void ward_async_complete(struct ward_async *a, int (*push)(lua_State *L, void *arg), void *arg)
{
    if (a == NULL) {
        return;
    }
    struct run *run = a->run;
    struct policy *p = run->p;
    lua_State *h = p->helper;
    lua_settop(h, 0);
    struct push_ctx c = {push, arg};
    struct ward_error err = {0};
    int n = 0;
    if (push != NULL && pcall_c(h, push_protected, &c, LUA_MULTRET, &err) == 0) {
        n = lua_gettop(h);
    } else if (push != NULL) {
        lua_settop(h, 0);
        lua_pushnil(h);
        lua_pushstring(h, err.text);
        n = 2;
    }
    if (n > 0 && !lua_checkstack(run->co, n)) {
        lua_settop(h, 0);
        n = 0;
    }
    lua_xmove(h, run->co, n);
    free(a);
    run->pending = NULL;
    run->nargs = n;
    run->ready = true;
    run->next_ready = run->e->ready;
    run->e->ready = run;
    schedule_wake(run->e);
}

static int push_failure(lua_State *L, void *arg)
{
    lua_pushnil(L);
    lua_pushstring(L, arg);
    return 2;
}

void ward_async_fail(struct ward_async *a, const char *reason)
{
    ward_async_complete(a, push_failure, (void *)(reason != NULL ? reason : "failed"));
}

struct start_ctx {
    struct run *run;
    int fn_ref;
    int extra; /* pushed as the second argument when > 0 (recovery attempt) */
};

/* Drop the runs table's entry for run's coroutine, if it has one. Allocates nothing. */
static void runs_forget(struct policy *p, struct run *run)
{
    if (run->co_ref == LUA_NOREF) {
        return;
    }
    lua_State *L = p->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &runs_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->co_ref);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Build run's coroutine. It may raise part-way (memory): what it made so far is in run's
 * references, for the caller to undo. */
static int run_build(lua_State *L, void *ud)
{
    struct start_ctx *c = ud;
    struct run *run = c->run;
    lua_State *co = lua_newthread(L);
    run->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    run->co = co;
    push_resource(L, run->e, run->r, run->p->m);
    lua_pushvalue(L, -1);
    run->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
    lua_insert(L, -2);
    int nargs = 1;
    if (c->extra > 0) {
        lua_pushinteger(L, c->extra);
        nargs++;
    }
    lua_xmove(L, co, nargs + 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &runs_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->co_ref);
    lua_pushlightuserdata(L, run);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    run->nargs = nargs;
    return 0;
}

/* Start fn_ref for r as a coroutine; 0 or -errno (then nothing is running). */
static int run_start(struct ward_policy_engine *e, struct policy *p, struct resource *r, int fn_ref,
                     bool recovery, const char *step, int attempt)
{
    struct run *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        return -ENOMEM;
    }
    run->e = e;
    run->p = p;
    run->r = r;
    run->recovery = recovery;
    run->step = step;
    run->co_ref = LUA_NOREF;
    run->res_ref = LUA_NOREF;
    run->started = engine_now(e);
    run->deadline = run->started + e->o.reconcile_timeout;
    run->version0 = r->version;
    if (recovery) {
        run->recovery_state = xstrdup(r->state[0]);
    }
    struct start_ctx c = {run, fn_ref, recovery ? attempt : 0};
    struct ward_error err = {0};
    int rc = pcall_c(p->L, run_build, &c, 0, &err);
    if (rc == 0) {
        rc = ward_sandbox_arm(run->co, e->o.instructions, e->o.slice_timeout, &err);
    }
    if (rc != 0) {
        ward_log(WARD_LOG_ERROR, "policy", "%s: cannot start a run: %s", r->key, err.text);
        runs_forget(p, run);
        luaL_unref(p->L, LUA_REGISTRYINDEX, run->co_ref);
        luaL_unref(p->L, LUA_REGISTRYINDEX, run->res_ref);
        free(run->recovery_state);
        free(run);
        return rc;
    }
    p->gen->refs++;
    r->run = run;
    run->next = e->runs;
    e->runs = run;
    e->running++;
    run_resume(run);
    return 0;
}

struct error_ctx {
    lua_State *co;
    int status;
    struct ward_buf *out;
};

static int describe_error(lua_State *L, void *ud)
{
    struct error_ctx *c = ud;
    /* copy the error object out first: the dead coroutine has no error handler of its own */
    lua_xmove(c->co, L, 1);
    const char *msg = ward_sandbox_error_string(L, -1);
    luaL_traceback(L, c->co, msg, 0);
    ward_buf_puts(c->out, lua_tostring(L, -1));
    return 0;
}

static void run_resume(struct run *run)
{
    struct ward_policy_engine *e = run->e;
    struct ward_sandbox_alloc *alloc = ward_sandbox_alloc_of(run->co);
    alloc->refused = false;
    ward_sandbox_new_slice(run->co); /* the time it waited is not running time */
    int nres = 0;
    int st = lua_resume(run->co, NULL, run->nargs, &nres);
    run->nargs = 0;
    if (st == LUA_YIELD) {
        lua_pop(run->co, nres);
        if (run->pending == NULL) {
            run_finish(run, false, "the policy yielded outside an asynchronous call", 0);
        }
        return;
    }
    if (st == LUA_OK) {
        double after = 0;
        bool ok = true;
        const char *why = NULL;
        if (nres > 0) {
            int first = lua_gettop(run->co) - nres + 1;
            if (lua_type(run->co, first) == LUA_TNUMBER) {
                after = lua_tonumber(run->co, first);
            } else if (!lua_toboolean(run->co, first)) {
                ok = false;
                why = nres > 1 && lua_type(run->co, first + 1) == LUA_TSTRING
                          ? lua_tostring(run->co, first + 1)
                          : "the reconcile returned false";
            }
        }
        struct ward_buf msg = {0};
        ward_buf_puts(&msg, why != NULL ? why : "");
        lua_settop(run->co, 0);
        run_finish(run, ok, ok ? NULL : msg.data, after);
        ward_buf_free(&msg);
        return;
    }
    struct ward_buf msg = {0};
    if (st != LUA_ERRMEM && ward_sandbox_exhausted(run->co)) {
        ward_buf_puts(&msg, "stopped: "); /* first: see ward_sandbox_pcall */
    } else if (st == LUA_ERRMEM || alloc->refused) {
        ward_buf_puts(&msg, "memory limit exceeded: ");
    }
    struct error_ctx c = {run->co, st, &msg};
    struct ward_error err = {0};
    /* a __tostring on the error object is policy code: give it a small budget of its own */
    lua_State *L = run->p->L;
    int rc = ward_sandbox_arm(L, 100000, e->o.slice_timeout < 1 ? e->o.slice_timeout : 1, &err);
    if (rc == 0) {
        rc = pcall_c(L, describe_error, &c, 0, &err);
        ward_sandbox_disarm(L);
    }
    if (rc != 0) {
        ward_buf_printf(&msg, "(the error could not be described: %.200s)", err.text);
    }
    run_finish(run, false, msg.data, 0);
    ward_buf_free(&msg);
    (void)e;
}

static int pull_run_status(lua_State *L, void *ud)
{
    struct run *run = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->res_ref);
    struct ward_error err = {0};
    if (run->r != NULL && pull_status(L, -1, run->r, &err) != 0) {
        ward_log(WARD_LOG_WARN, "policy", "%s: status not kept: %s", run->r->key, err.text);
    }
    lua_pop(L, 1);
    return 0;
}

static void run_unlink(struct run *run)
{
    struct ward_policy_engine *e = run->e;
    for (struct run **pp = &e->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == run) {
            *pp = run->next;
            break;
        }
    }
    for (struct run **pp = &e->ready; *pp != NULL; pp = &(*pp)->next_ready) {
        if (*pp == run) {
            *pp = run->next_ready;
            break;
        }
    }
}

static void count_recovery(struct policy *p, const char *state, const char *outcome)
{
    ward_metric_add(p->m_recovery, (const char *[]){state, outcome}, 1);
}

static void status_persist(struct ward_policy_engine *e, struct resource *r);

static void run_finish(struct run *run, bool ok, const char *error, double requeue_after)
{
    struct ward_policy_engine *e = run->e;
    struct policy *p = run->p;
    struct resource *r = run->r;
    double now = engine_now(e);
    struct ward_error err = {0};
    if (r != NULL && !e->destroying) {
        /* observations during the run already marked the status dirty, and a commit moved the
           version: what is left to compare is the status before and after the pull */
        cJSON *before = r->status;
        r->status = NULL;
        pcall_c(p->L, pull_run_status, run, 0, &err);
        if (r->status == NULL) { /* nothing pulled: the status stays as it was */
            r->status = before;
            before = NULL;
        } else if (r->version == run->version0 && !run->parked &&
                   !cJSON_Compare(before, r->status, true)) {
            /* before is the status as it stood at the start or at the run's last commit */
            r->status_dirty = true;
        }
        cJSON_Delete(before);
    }
    run_unlink(run);
    e->running--;
    if (run->parked) {
        /* waiting for admission is not a failure: no count, no backoff, no event, no requeue */
        ok = true;
        requeue_after = 0;
    }
    lua_State *L = p->L;
    runs_forget(p, run);
    luaL_unref(L, LUA_REGISTRYINDEX, run->co_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, run->res_ref);
    ward_metric_observe(e->m_reconcile, NULL, now - run->started);
    if (r != NULL) {
        r->run = NULL;
        free(r->last_error);
        r->last_error = ok ? NULL : xstrdup(error);
        if (!ok) {
            ward_metric_add(e->m_failures, (const char *[]){r->kind}, 1);
            ward_log_fields(WARD_LOG_WARN, "policy", &(struct ward_log_field){"resource", r->key},
                            1, "%s %s failed: %s", r->key,
                            run->recovery ? "recovery step" : "reconcile", error);
            if (!run->recovery) {
                emit(e, "reconcile_failed", r->kind, r->name, error);
            }
        }
        if (run->recovery) {
            bool changed = strcmp(r->state[0], run->recovery_state) != 0;
            const struct ward_machine_dim *d = &p->m->dims[0];
            const char *outcome = !changed ? "failed"
                                  : ward_machine_state(d, r->state[0]) == d->error_state
                                      ? "escalated"
                                      : "recovered";
            count_recovery(p, run->recovery_state, outcome);
            /* a step that changed nothing is a failed attempt: logged, but no event */
            ward_log(changed ? WARD_LOG_INFO : WARD_LOG_DEBUG, "policy",
                     "%s: recovery step %s in %s: %s", r->key, run->step, run->recovery_state,
                     outcome);
            if (changed) {
                emit(e, "recovery", r->kind, r->name, outcome);
            }
        }
        if (r->status_dirty && !e->destroying) {
            status_persist(e, r);
        }
        if (!e->destroying) {
            ward_queue_done(e->q, r->key, ok, now);
            if (ok && requeue_after > 0) {
                ward_queue_add(e->q, r->key, now + requeue_after);
            }
        }
    }
    free(run->recovery_state);
    free(run);
    generation_release(p->gen);
    if (!e->destroying) {
        schedule_wake(e);
    }
}

/* End a run whose coroutine is suspended: its pending operation is cancelled, never
   completed, and the cancel is counted by why. */
static void run_stop(struct run *run, const char *why, bool ok)
{
    struct ward_async *a = run->pending;
    run->pending = NULL;
    if (a != NULL) {
        if (a->cancel != NULL) {
            a->cancel(a->arg);
        }
        free(a);
    }
    ward_metric_add(run->e->m_cancelled, (const char *[]){why}, 1);
    struct ward_buf msg = {0};
    ward_buf_printf(&msg, "cancelled: %s", why);
    run_finish(run, ok, msg.data, 0);
    ward_buf_free(&msg);
}

/* Cancel a run whose coroutine is suspended (deadline, shutdown, removal): it failed. */
static void run_cancel(struct run *run, const char *why)
{
    run_stop(run, why, false);
}

/* Cancel a run whose resource an outside transition moved while it waited: not a failure of
   the run (no backoff, no recovery attempt counted), its resource is reconciled in its new
   state. */
static void run_supersede(struct run *run)
{
    ward_log_fields(WARD_LOG_INFO, "policy", &(struct ward_log_field){"resource", run->r->key}, 1,
                    "%s: the %s in flight was cancelled: an outside transition changed its state",
                    run->r->key, run->recovery ? "recovery step" : "reconcile");
    run->recovery = false;
    run_stop(run, "superseded", true);
}

/* ------------------------------------------------------------ queue & timers */

static void pump(struct ward_policy_engine *e)
{
    double now = engine_now(e);
    const char *key;
    while (!e->destroying && !e->stopping && (key = ward_queue_pop(e->q, now)) != NULL) {
        struct resource *r = ward_strmap_get(&e->by_key, key);
        struct policy *p = r != NULL ? policy_for(e->gen, r->kind) : NULL;
        if (r == NULL || p == NULL || r->run != NULL) {
            ward_queue_done(e->q, key, true, now);
            continue;
        }
        const struct ward_machine_dim *d = &p->m->dims[0];
        resource_dim(r, d, now);
        int s = ward_machine_state(d, resource_state(r, d->name));
        if (s < 0) {
            ward_queue_done(e->q, key, true, now);
            continue;
        }
        int fn = d->reconcile[s];
        bool recovery = false;
        const char *step = NULL;
        int attempt = 0;
        if (r->pending_step >= 0 && (size_t)r->pending_step < d->nrecovery[s]) {
            const struct ward_recovery_step *st = &d->recovery[s][r->pending_step];
            recovery = true;
            step = st->name;
            attempt = (int)r->attempts;
            if (st->kind == WARD_RECOVERY_FUNCTION) {
                fn = st->ref;
            }
        } else if (r->pending_step == INT_MAX) {
            recovery = true; /* the default ladder: retry */
            step = "retry";
            attempt = (int)r->attempts;
        }
        r->pending_step = -1;
        if (fn == WARD_MACHINE_NOREF) {
            if (recovery) {
                count_recovery(p, d->states[s], "failed");
            }
            ward_queue_done(e->q, key, true, now);
            continue;
        }
        if (run_start(e, p, r, fn, recovery, step, attempt) != 0) {
            ward_queue_done(e->q, key, false, now);
        }
    }
    if (!e->destroying && e->o.now == NULL) {
        double due = ward_queue_next_due(e->q);
        ev_timer_stop(e->loop, &e->due);
        /* none when every slot is taken (a run's end pumps again) or when stopping (nothing
           is handed out any more) */
        if (due >= 0 && !e->stopping) {
            ev_timer_set(&e->due, due > now ? due - now : 0, 0);
            ev_timer_start(e->loop, &e->due);
        }
    }
}

static void feed_catch_up(struct ward_policy_engine *e);
static void on_store_change(void *arg, const struct ward_store_change *c);

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ward_policy_engine *e = ward_container_of(w, struct ward_policy_engine, wake);
    feed_catch_up(e);
    while (e->ready != NULL) {
        struct run *run = e->ready;
        e->ready = run->next_ready;
        run->ready = false;
        run_resume(run);
    }
    pump(e);
}

static void schedule_wake(struct ward_policy_engine *e)
{
    if (!ev_is_active(&e->wake) && !e->destroying) {
        ev_timer_set(&e->wake, 0, 0);
        ev_timer_start(e->loop, &e->wake);
    }
}

static void on_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(ward_container_of(w, struct ward_policy_engine, due));
}

static void on_stuck_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    ward_policy_engine_tick(ward_container_of(w, struct ward_policy_engine, stuck));
}

/* ---------------------------------------------------- stuck and recovery */

struct table_ctx {
    const struct ward_policy_engine *e;
    struct resource *r;
    const struct ward_machine *m;
};

static int push_resource_protected(lua_State *L, void *ud)
{
    struct table_ctx *c = ud;
    push_resource(L, c->e, c->r, c->m);
    return 1;
}

/* A transition decided by the engine itself (recovery), checked like any other. */
static int engine_transition(struct ward_policy_engine *e, struct policy *p, struct resource *r,
                             const char *to, const char *trigger, const char *reason,
                             struct ward_error *err)
{
    lua_State *L = p->L;
    struct table_ctx c = {e, r, p->m};
    int rc = pcall_c(L, push_resource_protected, &c, 1, err);
    if (rc != 0) {
        return rc;
    }
    return transition_on_top(e, p, r, NULL, to, trigger, reason, "ward:recovery", true, err);
}

/* Where the stuck timeout counts from: entering the state, or the last recovery attempt.
   last_attempt 0 is "none": on the monotonic clock a state entered before the machine
   booted has a negative time, which a plain maximum would round up to the boot. */
static double stuck_since(const struct resource *r)
{
    return r->last_attempt != 0 && r->last_attempt > r->entered[0] ? r->last_attempt
                                                                   : r->entered[0];
}

static void recover(struct ward_policy_engine *e, struct policy *p, struct resource *r, double now)
{
    const struct ward_machine_dim *d = &p->m->dims[0];
    int s = ward_machine_state(d, r->state[0]);
    if (s < 0 || d->final[s] || d->stuck[s] <= 0 || r->exhausted || r->run != NULL ||
        r->pending_step != -1 || ward_queue_inflight(e->q, r->key)) {
        return;
    }
    double since = stuck_since(r);
    if (now - since < d->stuck[s]) {
        return;
    }
    const char *state = d->states[s];
    if (!r->stuck_reported) {
        r->stuck_reported = true;
        ward_metric_add(p->m_stuck, (const char *[]){state}, 1);
        struct ward_log_field f[] = {{"resource", r->key}, {"state", state}};
        ward_log_fields(WARD_LOG_WARN, "policy", f, 2, "%s stuck in %s for %.0fs", r->key, state,
                        now - r->entered[0]);
        emit(e, "stuck", r->kind, r->name, state);
    }
    r->attempts++;
    r->last_attempt = now;
    struct ward_error err = {0};
    if (r->attempts > e->o.max_retries) {
        if (d->error_state >= 0 && s != d->error_state) {
            char reason[600];
            snprintf(reason, sizeof(reason), "stuck in %s after %u recovery attempts%s%.480s",
                     state, r->attempts - 1, r->last_error != NULL ? "; last error: " : "",
                     r->last_error != NULL ? r->last_error : "");
            int rc = engine_transition(e, p, r, d->states[d->error_state], "recovery_exhausted",
                                       reason, &err);
            count_recovery(p, state, rc == 0 ? "escalated" : "failed");
            if (rc == 0) {
                emit(e, "recovery", r->kind, r->name, "escalated");
            }
        } else {
            r->exhausted = true;
            count_recovery(p, state, "exhausted");
            ward_log(WARD_LOG_WARN, "policy",
                     "%s: recovery of %s gave up after %u attempts; waiting for an operator",
                     r->key, state, r->attempts - 1);
            emit(e, "recovery", r->kind, r->name, "exhausted");
        }
        return;
    }
    size_t n = d->nrecovery[s];
    if (n == 0) {
        r->pending_step = INT_MAX; /* default ladder: retry the state's work */
        ward_queue_add(e->q, r->key, now);
        return;
    }
    size_t k = r->attempts <= n ? r->attempts - 1 : n - 1;
    const struct ward_recovery_step *st = &d->recovery[s][k];
    if (st->kind == WARD_RECOVERY_RETRY || st->kind == WARD_RECOVERY_FUNCTION) {
        r->pending_step = (int)k;
        ward_queue_add(e->q, r->key, now);
        return;
    }
    int target = st->kind == WARD_RECOVERY_ERROR ? d->error_state : st->target;
    int rc = engine_transition(e, p, r, d->states[target], "stuck_recovery", st->name, &err);
    const char *outcome = rc != 0 ? "failed" : target == d->error_state ? "escalated" : "recovered";
    count_recovery(p, state, outcome);
    if (rc == 0) {
        emit(e, "recovery", r->kind, r->name, outcome);
    }
}

void ward_policy_engine_tick(struct ward_policy_engine *e)
{
    double now = engine_now(e);
    /* deadlines first: a cancelled run frees its resource for recovery */
    for (struct run *run = e->runs, *next; run != NULL; run = next) {
        next = run->next;
        if (!run->ready && run->pending != NULL && now >= run->deadline) {
            run_cancel(run, "deadline");
            next = e->runs; /* the list changed under us */
        }
    }
    for (struct resource *r = e->resources; r != NULL; r = r->next) {
        struct policy *p = policy_for(e->gen, r->kind);
        if (p != NULL && r->ndims > 0) {
            recover(e, p, r, now);
        }
    }
    pump(e);
}

/* ------------------------------------------------------- the ward Lua module */

static struct policy *policy_checked(lua_State *L)
{
    struct policy *p = policy_of(L);
    if (p == NULL) {
        luaL_error(L, "ward: no policy context");
    }
    return p;
}

static int l_machine(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_where(L, 1);
    size_t len;
    const char *w = lua_tolstring(L, -1, &len);
    while (len > 0 && (w[len - 1] == ' ' || w[len - 1] == ':')) {
        len--;
    }
    lua_pushlstring(L, w, len);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &where_key);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_settop(L, 1);
    return 1;
}

static struct resource *resource_arg(lua_State *L, struct policy *p, int idx)
{
    const char *name = NULL;
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_pushliteral(L, "name");
        lua_rawget(L, idx);
        name = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays anchored by the table */
    } else {
        name = lua_tostring(L, idx);
    }
    if (name == NULL) {
        luaL_argerror(L, idx, "a resource (table with a name) is required");
    }
    struct resource *r = p->e != NULL ? resource_find(p->e, p->kind, name) : NULL;
    return r;
}

/* A transition a reconcile waits on while the store makes it durable. */
struct pending_commit {
    struct ward_policy_engine *e;
    struct policy *p; /* holds a reference on p->gen until done */
    struct resource *r;
    char *dim;            /* owned */
    char *from;           /* owned */
    char *to;             /* owned */
    char *trigger;        /* owned */
    char *reason;         /* owned, may be NULL */
    char *actor;          /* owned */
    int tbl_ref;          /* the caller's resource table, updated when the commit is durable */
    struct ward_async *a; /* NULL once the run was cancelled */
    long long version;
    double now;   /* engine time the state is entered */
    double stamp; /* the same as Unix time, as committed */
};

static void pending_free(struct pending_commit *pc)
{
    luaL_unref(pc->p->L, LUA_REGISTRYINDEX, pc->tbl_ref);
    generation_release(pc->p->gen);
    free(pc->dim);
    free(pc->from);
    free(pc->to);
    free(pc->trigger);
    free(pc->reason);
    free(pc->actor);
    free(pc);
}

static void pending_cancel(void *arg)
{
    /* the commit is already queued in the store and will still happen: only forget the run */
    struct pending_commit *pc = arg;
    pc->a = NULL;
}

static int push_committed(lua_State *L, void *arg)
{
    struct pending_commit *pc = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pc->tbl_ref);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushliteral(L, "states");
        if (lua_rawget(L, -2) == LUA_TTABLE) {
            lua_pushstring(L, pc->to);
            lua_setfield(L, -2, pc->dim);
        }
        lua_pop(L, 1);
        if (strcmp(pc->dim, pc->p->m->dims[0].name) == 0) {
            lua_pushstring(L, pc->to);
            lua_setfield(L, -2, "state");
        }
        lua_pushinteger(L, pc->version);
        lua_setfield(L, -2, "version");
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* A run's own transition of its own resource moved the version to version: a status the
 * run changes after it is the run's to write (see run_finish). */
static void own_commit(struct run *run, const struct resource *r, long long version)
{
    if (run != NULL && run->r == r && r->version == version) {
        run->version0 = version;
    }
}

static void pending_done(void *arg, int rc, long long new_version, const struct ward_error *err)
{
    struct pending_commit *pc = arg;
    struct ward_policy_engine *e = pc->e;
    struct resource *r = pc->r;
    if (rc == 0) {
        const struct ward_machine_dim *d = ward_machine_dim(pc->p->m, pc->dim);
        int di = d != NULL ? resource_dim(r, d, engine_now(e)) : -1;
        if (di >= 0) {
            pc->version = new_version;
            apply_transition(e, pc->p, r, di, pc->to, pc->trigger, pc->reason, pc->actor,
                             new_version, pc->now, pc->stamp);
        }
        if (pc->a != NULL) {
            own_commit(pc->a->run, r, new_version);
            ward_async_complete(pc->a, push_committed, pc);
        }
    } else {
        const char *why = err != NULL ? err->text : "commit failed";
        ward_log(WARD_LOG_WARN, "policy", "%s: %s -> %s not committed: %s", r->key, pc->from,
                 pc->to, why);
        if (rc == -ESTALE && !e->destroying) {
            engine_refresh(e, r);
        }
        if (pc->a != NULL) {
            ward_async_fail(pc->a, why);
        }
    }
    pending_free(pc);
}

/*
 * From a reconcile with an asynchronous sink: queue the commit and wait for
 * it. Returns -1 when this path does not apply (the caller commits at once).
 */
static int transition_async(lua_State *L, struct policy *p, struct resource *r,
                            const char *dimension, const char *to, const char *trigger,
                            const char *detail, const char *actor)
{
    struct ward_policy_engine *e = p->e;
    if (!e->has_sink || e->sink.commit_async == NULL || e->destroying || !lua_isyieldable(L)) {
        return -1;
    }
    struct run *run = run_of(L);
    const struct ward_machine_dim *d = ward_machine_dim(p->m, dimension);
    int di = d != NULL ? resource_dim(r, d, engine_now(e)) : -1;
    if (run == NULL || run->co != L || run->pending != NULL || di < 0) {
        return -1;
    }
    struct pending_commit *pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        return -1;
    }
    pc->e = e;
    pc->p = p;
    pc->r = r;
    pc->dim = xstrdup(d->name);
    pc->from = xstrdup(r->state[di]);
    pc->to = xstrdup(to);
    pc->trigger = xstrdup(token_or_other(trigger));
    pc->reason = detail != NULL ? xstrdup(detail) : NULL;
    pc->actor = xstrdup(actor);
    pc->now = engine_now(e);
    pc->stamp = to_unix(e, pc->now);
    lua_pushvalue(L, 1);
    pc->tbl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->gen->refs++;
    pc->a = ward_async_begin(L, pending_cancel, pc);
    if (pc->a == NULL) {
        pending_free(pc);
        return -1;
    }
    char *status = r->status != NULL ? cJSON_PrintUnformatted(r->status) : NULL;
    struct ward_policy_commit c = {
        .kind = r->kind,
        .name = r->name,
        .dimension = pc->dim,
        .from = pc->from,
        .to = pc->to,
        .trigger = pc->trigger,
        .reason = pc->reason,
        .actor = pc->actor,
        .expected_version = r->version,
        .entered_at = pc->stamp,
        .status_json = status != NULL ? status : "{}",
    };
    int rc = e->sink.commit_async(e->sink.self, &c, pending_done, pc);
    free(status);
    if (rc != 0) {
        /* not queued: take the registration back and let the caller commit at once */
        free(run->pending);
        run->pending = NULL;
        pending_free(pc);
        return -1;
    }
    return ward_async_yield(L, pc->a);
}

static int l_transition(lua_State *L)
{
    struct policy *p = policy_checked(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *to = luaL_checkstring(L, 2);
    const char *trigger = luaL_optstring(L, 3, "policy");
    const char *detail = luaL_optstring(L, 4, NULL);
    const char *dimension = luaL_optstring(L, 5, NULL);
    if (in_guard(L)) {
        return luaL_error(L, "ward.transition cannot be called from a guard or consistency rule");
    }
    if (p->e == NULL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "ward.transition is not available while checking a policy");
        return 2;
    }
    struct resource *r = resource_arg(L, p, 1);
    if (r == NULL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "unknown resource");
        return 2;
    }
    /*
     * The run decided on the version its table was read at; if another writer
     * (a release, a claim, a new spec) changed the resource since, the decision
     * is stale and the compare-and-swap must be on that version, not the newest.
     */
    lua_pushliteral(L, "version");
    lua_rawget(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) != r->version) {
        long long seen = (long long)lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_pushfail(L);
        lua_pushfstring(L, "%s changed since this run read it (version %I, now %I); it runs again",
                        r->key, (lua_Integer)seen, (lua_Integer)r->version);
        return 2;
    }
    lua_pop(L, 1);
    struct ward_error err = {0};
    if (pull_status(L, 1, r, &err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.text);
        return 2;
    }
    char actor[160];
    snprintf(actor, sizeof(actor), "policy:%s", p->kind);
    /* check first, then wait for the store's group commit when the sink offers one */
    int rc = do_transition(p->e, p, L, 1, r, dimension, to, trigger, detail, actor, false, &err);
    if (rc == 0) {
        /* admission after the checks: a transition the guard refuses never takes a place */
        int arc = admit(p->e, p, r, ward_machine_dim(p->m, dimension), to, &err);
        if (arc != 0) {
            struct run *run = run_of(L);
            if (arc == -EAGAIN && run != NULL && run->co == L) {
                run->parked = true;
            }
            luaL_pushfail(L);
            lua_pushstring(L, err.text);
            return 2;
        }
    }
    if (rc == 0) {
        int y = transition_async(L, p, r, dimension, to, trigger, detail, actor);
        if (y >= 0) {
            return y;
        }
        rc = do_transition(p->e, p, L, 1, r, dimension, to, trigger, detail, actor, true, &err);
    } else {
        ward_metric_add(p->e->m_refused, (const char *[]){r->kind}, 1);
        ward_log_fields(WARD_LOG_INFO, "policy", &(struct ward_log_field){"resource", r->key}, 1,
                        "transition refused: %s", err.text);
    }
    if (rc != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err.text);
        return 2;
    }
    own_commit(run_of(L), r, r->version);
    /* keep the caller's table in step with what was committed */
    const struct ward_machine_dim *d = ward_machine_dim(p->m, dimension);
    lua_pushliteral(L, "states");
    if (lua_rawget(L, 1) == LUA_TTABLE) {
        lua_pushstring(L, to);
        lua_setfield(L, -2, d->name);
    }
    lua_pop(L, 1);
    if (d == &p->m->dims[0]) {
        lua_pushstring(L, to);
        lua_setfield(L, 1, "state");
    }
    lua_pushinteger(L, r->version);
    lua_setfield(L, 1, "version");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_bmc(lua_State *L)
{
    struct policy *p = policy_checked(L);
    if (in_guard(L)) {
        return luaL_error(L, "ward.bmc cannot be used from a guard or consistency rule");
    }
    struct resource *r = resource_arg(L, p, 1);
    if (r == NULL || p->e == NULL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "no such resource for a BMC");
        return 2;
    }
    const struct ward_bmc_driver *drv = p->e->o.bmc_driver;
    const char *name = "redfish";
    const cJSON *bmc = cJSON_GetObjectItemCaseSensitive(r->spec, "bmc");
    const cJSON *dn = cJSON_GetObjectItemCaseSensitive(bmc, "driver");
    if (cJSON_IsString(dn)) {
        name = dn->valuestring;
    }
    if (drv == NULL && p->e->plugins != NULL) {
        drv = ward_plugins_capability(p->e->plugins, WARD_CAP_BMC_DRIVER, name);
    }
    if (drv == NULL || drv->open == NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "no BMC driver '%s' is loaded", name);
        return 2;
    }
    char *spec = cJSON_PrintUnformatted(r->spec != NULL ? r->spec : bmc);
    int top = lua_gettop(L);
    int n = drv->open(drv->self, L, r->name, spec != NULL ? spec : "{}");
    free(spec);
    if ((n != 1 && n != 2) || lua_gettop(L) != top + n) {
        lua_settop(L, top);
        luaL_pushfail(L);
        lua_pushliteral(L, "the BMC driver returned a bad result");
        return 2;
    }
    return n;
}

struct sleeper {
    ev_timer t;
    struct ev_loop *loop;
    struct ward_async *a;
};

static void sleeper_cancel(void *arg)
{
    struct sleeper *s = arg;
    ev_timer_stop(s->loop, &s->t);
    free(s);
}

static int push_true(lua_State *L, void *arg)
{
    (void)arg;
    lua_pushboolean(L, 1);
    return 1;
}

static void sleeper_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct sleeper *s = ward_container_of(w, struct sleeper, t);
    ward_async_complete(s->a, push_true, NULL);
    free(s);
}

static int l_sleep(lua_State *L)
{
    struct policy *p = policy_checked(L);
    double secs = luaL_checknumber(L, 1);
    if (p->e == NULL) {
        return luaL_error(L, "ward.sleep is not available while checking a policy");
    }
    if (!(secs >= 0 && secs <= 86400)) {
        return luaL_argerror(L, 1, "seconds between 0 and 86400");
    }
    struct sleeper *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return luaL_error(L, "out of memory");
    }
    s->a = ward_async_begin(L, sleeper_cancel, s);
    if (s->a == NULL) {
        free(s);
        return ward_async_refuse(L);
    }
    s->loop = p->e->loop;
    ev_timer_init(&s->t, sleeper_fire, secs, 0);
    ev_timer_start(s->loop, &s->t);
    return ward_async_yield(L, s->a);
}

static int l_log(lua_State *L)
{
    struct policy *p = policy_checked(L);
    const char *level = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    enum ward_log_level lv = WARD_LOG_INFO;
    if (strcmp(level, "debug") == 0) {
        lv = WARD_LOG_DEBUG;
    } else if (strcmp(level, "warn") == 0) {
        lv = WARD_LOG_WARN;
    } else if (strcmp(level, "error") == 0) {
        lv = WARD_LOG_ERROR;
    }
    char component[96];
    snprintf(component, sizeof(component), "policy:%s", p->kind != NULL ? p->kind : "?");
    ward_log(lv, component, "%s", msg);
    return 0;
}

/*
 * ward.event(resource, "Normal"|"Warning", "Reason", "message"): an event about the
 * resource for the agent's event set (which aggregates repeats of the same one). Only
 * from reconciles and recovery steps; in `ward-policy-check` it does nothing.
 */
static int l_event(lua_State *L)
{
    struct policy *p = policy_checked(L);
    if (in_guard(L)) {
        return luaL_error(L, "ward.event cannot be used from a guard or consistency rule");
    }
    struct resource *r = resource_arg(L, p, 1);
    const char *type = luaL_checkstring(L, 2);
    const char *reason = luaL_checkstring(L, 3);
    const char *msg = luaL_optstring(L, 4, "");
    if (strcmp(type, "Normal") != 0 && strcmp(type, "Warning") != 0) {
        return luaL_argerror(L, 2, "\"Normal\" or \"Warning\"");
    }
    size_t n = 0;
    for (; reason[n] != '\0'; n++) {
        if (!isalnum((unsigned char)reason[n]) || n >= 64) {
            break;
        }
    }
    if (n == 0 || reason[n] != '\0') {
        return luaL_argerror(L, 3, "a reason is 1-64 letters and digits (\"PowerMismatch\")");
    }
    if (r != NULL && p->e != NULL && p->e->o.on_event != NULL) {
        struct ward_policy_event ev = {"event", r->kind, r->name, msg, type, reason};
        p->e->o.on_event(p->e->o.event_arg, &ev);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_now(lua_State *L)
{
    struct policy *p = policy_checked(L);
    lua_pushnumber(L, p->e != NULL ? to_unix(p->e, engine_now(p->e)) : ward_wall_clock());
    return 1;
}

static int l_duration(lua_State *L)
{
    double secs;
    if (ward_duration_parse(luaL_checkstring(L, 1), &secs) != 0) {
        return luaL_argerror(L, 1, "not a duration (write \"30s\", \"15m\", \"1h30m\")");
    }
    lua_pushnumber(L, secs);
    return 1;
}

/* ward.test{...}: a test case that remembers where it was written. */
static int l_test(lua_State *L)
{
    return l_machine(L);
}

static int l_require(lua_State *L);

static void push_ward_module(lua_State *L, const struct ward_policy_options *o)
{
    static const luaL_Reg fns[] = {
        {"machine", l_machine},
        {"transition", l_transition},
        {"bmc", l_bmc},
        {"sleep", l_sleep},
        {"log", l_log},
        {"event", l_event},
        {"now", l_now},
        {"duration", l_duration},
        {"test", l_test},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, o->max_retries);
    lua_setfield(L, -2, "max_retries");
    lua_pushnumber(L, o->stuck_timeout);
    lua_setfield(L, -2, "stuck_state_timeout");
    lua_pushnumber(L, o->reconcile_timeout);
    lua_setfield(L, -2, "reconcile_timeout");
    lua_setfield(L, -2, "settings");
}

/* A table whose __index is the sandbox globals, with `ward` and `require`. */
static void push_env(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key);
    lua_getfield(L, -1, "ward");
    lua_setfield(L, -3, "ward");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_require);
    lua_setfield(L, -2, "require");
}

static char *slurp(const char *path, size_t *len, struct ward_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        ward_error_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct ward_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        ward_buf_put(&b, chunk, n);
        if (b.len > POLICY_MAX_BYTES) {
            fclose(f);
            ward_buf_free(&b);
            ward_error_set(err, -EFBIG, "%s: larger than %u bytes", path, POLICY_MAX_BYTES);
            return NULL;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        ward_buf_free(&b);
        ward_error_set(err, -EIO, "%s: read error", path);
        return NULL;
    }
    *len = b.len;
    if (b.data == NULL) {
        ward_buf_puts(&b, "");
    }
    return ward_buf_steal(&b);
}

/* require "name": only modules from the policy directory, as text, in their own _ENV. */
static int l_require(lua_State *L)
{
    struct policy *p = policy_checked(L);
    const char *name = luaL_checkstring(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        return 1;
    }
    lua_pop(L, 1);
    bool valid = name[0] != '\0' && name[0] != '.';
    for (const char *c = name; *c != '\0'; c++) {
        if (!(isalnum((unsigned char)*c) || *c == '_' || (*c == '.' && c[1] != '.'))) {
            valid = false;
        }
    }
    if (!valid) {
        return luaL_error(L,
                          "module '%s' not found: policies require modules by plain name "
                          "(letters, digits, '_' and '.')",
                          name);
    }
    struct ward_buf path = {0};
    ward_buf_printf(&path, "%s/", p->dir);
    for (const char *c = name; *c != '\0'; c++) {
        ward_buf_putc(&path, *c == '.' ? '/' : *c);
    }
    ward_buf_puts(&path, ".lua");
    struct stat stbuf;
    if (stat(path.data, &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
        ward_buf_free(&path);
        return luaL_error(L,
                          "module '%s' not found: policies can only require Lua modules from "
                          "the policy directory (C modules and ffi are not available)",
                          name);
    }
    struct ward_error err = {0};
    size_t len = 0;
    char *text = slurp(path.data, &len, &err);
    if (text == NULL) {
        ward_buf_free(&path);
        return luaL_error(L, "%s", err.text);
    }
    push_env(L);
    int rc = ward_sandbox_load(L, text, len, path.data, -1, &err);
    free(text);
    ward_buf_free(&path);
    if (rc != 0) {
        return luaL_error(L, "%s", err.text);
    }
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, name);
    return 1;
}

/* ------------------------------------------------------------- loading */

static char *dirname_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return xstrdup(".");
    }
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 2);
    if (d == NULL) {
        abort();
    }
    if (n == 0) {
        strcpy(d, "/");
    } else {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Where a declaration table (at idx) was written, or the file name. */
static void where_of(lua_State *L, int idx, const char *path, struct ward_buf *out)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &where_key);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) {
        ward_buf_puts(out, lua_tostring(L, -1));
    } else {
        ward_buf_puts(out, path);
    }
    lua_pop(L, 2);
}

struct case_ctx {
    struct policy *p;
    struct ward_buf *out;
    int idx; /* the case table */
    int failed;
};

/* Run one test case at the top of L; append a line to out on failure. */
static int run_case(lua_State *L, void *ud)
{
    struct case_ctx *c = ud;
    struct policy *p = c->p;
    int t = lua_gettop(L);
    (void)c->idx;
    struct ward_buf where = {0};
    where_of(L, t, p->path, &where);
    lua_getfield(L, t, "name");
    const char *name = lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "(unnamed)";
    struct resource r = {.kind = p->kind, .name = "test", .key = "test", .pending_step = -1};
    double now = 0;
    /* states: from resource.state / resource.states, rest at their initial state */
    lua_getfield(L, t, "resource");
    int res = lua_gettop(L);
    if (lua_type(L, res) != LUA_TTABLE) {
        ward_buf_printf(c->out, "%s: test '%s': needs a resource table\n", where.data, name);
        c->failed++;
        ward_buf_free(&where);
        return 0;
    }
    for (size_t i = 0; i < p->m->ndims; i++) {
        const struct ward_machine_dim *d = &p->m->dims[i];
        int di = resource_dim(&r, d, now);
        char *s = NULL;
        if (lua_getfield(L, res, "states") == LUA_TTABLE &&
            lua_getfield(L, -1, d->name) == LUA_TSTRING) {
            s = xstrdup(lua_tostring(L, -1));
        }
        lua_settop(L, res);
        if (s == NULL && i == 0 && lua_getfield(L, res, "state") == LUA_TSTRING) {
            s = xstrdup(lua_tostring(L, -1));
        }
        lua_settop(L, res);
        if (s != NULL && di >= 0) {
            free(r.state[di]);
            r.state[di] = s;
        } else {
            free(s);
        }
    }
    struct ward_error err = {0};
    lua_getfield(L, res, "spec");
    r.spec = lua_type(L, -1) == LUA_TTABLE ? ward_sandbox_to_json(L, -1, "spec", &err)
                                           : cJSON_CreateObject();
    lua_pop(L, 1);
    lua_getfield(L, res, "status");
    r.status = lua_type(L, -1) == LUA_TTABLE ? ward_sandbox_to_json(L, -1, "status", &err)
                                             : cJSON_CreateObject();
    lua_pop(L, 1);
    lua_getfield(L, t, "to");
    const char *to = lua_tostring(L, -1);
    lua_getfield(L, t, "dimension");
    const char *dim = lua_tostring(L, -1);
    lua_getfield(L, t, "allowed");
    bool want = lua_toboolean(L, -1);
    lua_getfield(L, t, "reason");
    const char *want_reason = lua_tostring(L, -1);
    if (to == NULL || r.spec == NULL || r.status == NULL) {
        ward_buf_printf(c->out, "%s: test '%s': needs 'to' and JSON-like spec/status (%s)\n",
                        where.data, name, err.text);
        c->failed++;
    } else {
        push_resource(L, NULL, &r, p->m);
        int rc = do_transition(NULL, p, L, -1, &r, dim, to, NULL, NULL, NULL, false, &err);
        lua_pop(L, 1);
        if (want && rc != 0) {
            ward_buf_printf(c->out, "%s: test '%s': expected allowed, got: %s\n", where.data, name,
                            err.text);
            c->failed++;
        } else if (!want && rc == 0) {
            ward_buf_printf(c->out, "%s: test '%s': expected a refusal, but it was allowed\n",
                            where.data, name);
            c->failed++;
        } else if (!want && want_reason != NULL && strstr(err.text, want_reason) == NULL) {
            ward_buf_printf(c->out, "%s: test '%s': refused, but the reason lacks '%s': %s\n",
                            where.data, name, want_reason, err.text);
            c->failed++;
        }
    }
    for (size_t i = 0; i < r.ndims; i++) {
        free(r.dim[i]);
        free(r.state[i]);
    }
    cJSON_Delete(r.spec);
    cJSON_Delete(r.status);
    ward_buf_free(&where);
    lua_settop(L, t);
    return 0;
}

/* Run every case in the list at idx; returns the number of cases, failures in *failed. */
static int run_cases(struct policy *p, int idx, struct ward_buf *out, int *failed)
{
    lua_State *L = p->L;
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx); /* raw: this runs unprotected */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) != LUA_TTABLE) {
            lua_pop(L, 1);
            ward_buf_printf(out, "%s: test %d is not a table\n", p->path, (int)i);
            (*failed)++;
            continue;
        }
        struct case_ctx c = {p, out, 0, 0};
        struct pcall_ctx pc = {run_case, &c};
        struct ward_error err = {0};
        /* run_case sees the case table on top of its stack */
        lua_pushcfunction(L, pcall_trampoline);
        lua_insert(L, -2);
        lua_pushlightuserdata(L, &pc);
        lua_insert(L, -2);
        int rc = ward_sandbox_pcall_armed(L, 2, 0, p->o->instructions, p->o->slice_timeout, &err);
        if (rc != 0) {
            ward_buf_printf(out, "%s: test %d: %s\n", p->path, (int)i, err.text);
            (*failed)++;
        }
        *failed += c.failed;
    }
    return (int)n;
}

/* Find FILE.test.lua beside a policy: "x.lua" -> "x.test.lua". */
static char *test_path(const char *path)
{
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".lua") != 0) {
        return NULL;
    }
    struct ward_buf b = {0};
    ward_buf_put(&b, path, n - 4);
    ward_buf_puts(&b, ".test.lua");
    return ward_buf_steal(&b);
}

/*
 * Compile one policy file, read its machine, validate it and run its test
 * cases. Problems go to `problems` (one line each) and make it fail.
 * *ncases gets the number of test cases run.
 */
static struct policy *policy_open_text(struct ward_policy_engine *e, const char *path, char *text,
                                       size_t len, const struct ward_policy_options *o,
                                       struct ward_buf *problems, int *ncases,
                                       struct ward_error *err);

static struct policy *policy_open(struct ward_policy_engine *e, const char *path,
                                  const struct ward_policy_options *o, struct ward_buf *problems,
                                  int *ncases, struct ward_error *err)
{
    size_t len = 0;
    char *text = slurp(path, &len, err);
    if (text == NULL) {
        return NULL;
    }
    return policy_open_text(e, path, text, len, o, problems, ncases, err);
}

struct inspect_ctx {
    struct policy *p;
    const char *path;
    const struct ward_policy_options *o;
    struct ward_error *err;
    int rc; /* a refusal with a reason in err; a Lua error is the pcall's */
};

/* Protected: the module at 1, the inspect_ctx at 2. Reads the kind and the machine. */
static int inspect_module(lua_State *L)
{
    struct inspect_ctx *ic = lua_touserdata(L, 2);
    if (lua_getfield(L, 1, "kind") != LUA_TSTRING) {
        ic->rc = ward_error_set(ic->err, -EINVAL, "%s: the module needs a kind (M.kind = \"Name\")",
                                ic->path);
        return 0;
    }
    ic->p->kind = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, 1, "machine");
    struct ward_buf where = {0};
    where_of(L, -1, ic->path, &where);
    lua_pushstring(L, where.data != NULL ? where.data : ic->path); /* nothing of C's to free */
    ward_buf_free(&where);                                         /* if the next call raises */
    ic->p->m = ward_machine_from_lua(L, -2, ic->p->kind, lua_tostring(L, -1), ic->o->stuck_timeout,
                                     ic->err);
    if (ic->p->m == NULL) {
        ic->rc = ic->err->code != 0 ? ic->err->code : -EINVAL;
    }
    return 0;
}

/* As policy_open, on text already read (taken over: freed here). */
static struct policy *policy_open_text(struct ward_policy_engine *e, const char *path, char *text,
                                       size_t len, const struct ward_policy_options *o,
                                       struct ward_buf *problems, int *ncases,
                                       struct ward_error *err)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        free(text);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    p->e = e;
    p->o = o;
    p->path = xstrdup(path);
    p->dir = dirname_of(path);
    p->module_ref = LUA_NOREF;
    p->L = ward_sandbox_new(o->memory_limit);
    if (p->L == NULL) {
        free(text);
        policy_free(p);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    lua_State *L = p->L;
    lua_pushlightuserdata(L, p);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &policy_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &runs_key);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &where_key);
    lua_newtable(L);
    push_ward_module(L, o);
    lua_setfield(L, -2, "ward");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
    p->helper = lua_newthread(L);
    p->helper_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    push_env(L);
    int rc = ward_sandbox_load(L, text, len, path, -1, err);
    free(text);
    if (rc == 0) {
        lua_remove(L, -2);
        rc = ward_sandbox_pcall_armed(L, 0, 1, o->instructions, o->slice_timeout, err);
    } else {
        lua_pop(L, 1);
    }
    if (rc == 0 && lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        rc = ward_error_set(err, -EINVAL, "%s: a policy returns its module table (return M)", path);
    }
    if (rc == 0) {
        /* Reading the module's fields may run its metamethods: protected and budgeted like
           the main chunk, so one that raises or never ends is a refusal, not a crash. */
        struct inspect_ctx ic = {p, path, o, err, 0};
        lua_pushcfunction(L, inspect_module);
        lua_pushvalue(L, -2);
        lua_pushlightuserdata(L, &ic);
        rc = ward_sandbox_pcall_armed(L, 2, 0, o->instructions, o->slice_timeout, err);
        if (rc != 0) {
            char reason[sizeof(err->text)];
            snprintf(reason, sizeof(reason), "%s", err->text);
            ward_error_set(err, rc, "%s: reading the module failed: %.400s", path, reason);
        } else {
            rc = ic.rc;
        }
        if (rc != 0) {
            lua_pop(L, 1);
        }
    }
    if (rc != 0) {
        policy_free(p);
        return NULL;
    }
    p->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (e != NULL && e->metrics != NULL) {
        policy_metrics(p, e->metrics);
    }
    int failed = ward_machine_validate(p->m, problems);
    *ncases = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->module_ref);
    lua_pushliteral(L, "tests"); /* raw: no metamethod of the module runs unprotected */
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        *ncases += run_cases(p, -1, problems, &failed);
    }
    lua_pop(L, 2);
    char *tp = test_path(path);
    struct stat st;
    if (tp != NULL && stat(tp, &st) == 0) {
        size_t tlen = 0;
        struct ward_error terr = {0};
        char *ttext = slurp(tp, &tlen, &terr);
        if (ttext == NULL) {
            ward_buf_printf(problems, "%s\n", terr.text);
            failed++;
        } else {
            push_env(L);
            int trc = ward_sandbox_load(L, ttext, tlen, tp, -1, &terr);
            free(ttext);
            if (trc == 0) {
                lua_remove(L, -2);
                trc = ward_sandbox_pcall_armed(L, 0, 1, o->instructions, o->slice_timeout, &terr);
            } else {
                lua_pop(L, 1);
            }
            if (trc != 0) {
                ward_buf_printf(problems, "%s\n", terr.text);
                failed++;
            } else if (lua_type(L, -1) != LUA_TTABLE) {
                ward_buf_printf(problems, "%s: returns a list of test cases\n", tp);
                failed++;
                lua_pop(L, 1);
            } else {
                *ncases += run_cases(p, -1, problems, &failed);
                lua_pop(L, 1);
            }
        }
    }
    free(tp);
    if (failed > 0) {
        const char *first = problems->data != NULL ? problems->data : "";
        const char *nl = strchr(first, '\n');
        ward_error_set(err, -EINVAL, "%s: self-check failed (%d problem%s): %.*s", path, failed,
                       failed == 1 ? "" : "s", nl ? (int)(nl - first) : (int)strlen(first), first);
        policy_free(p);
        return NULL;
    }
    return p;
}

/* Register ward_<kind>_... families; re-registering on reload returns the same ones. */
static void policy_metrics(struct policy *p, struct ward_metrics *metrics)
{
    struct ward_buf prefix = {0};
    ward_buf_puts(&prefix, "ward_");
    for (const char *c = p->kind; *c != '\0'; c++) {
        ward_buf_putc(&prefix, isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '_');
    }
    char name[256];
    snprintf(name, sizeof(name), "%s_state_transitions_total", prefix.data);
    p->m_transitions =
        ward_metrics_counter(metrics, name, "State transitions committed, by from, to and trigger.",
                             (const char *[]){"from", "to", "reason", NULL});
    snprintf(name, sizeof(name), "%s_stuck_states_total", prefix.data);
    p->m_stuck =
        ward_metrics_counter(metrics, name, "Resources found stuck in a state.", duration_labels);
    snprintf(name, sizeof(name), "%s_recovery_attempts_total", prefix.data);
    p->m_recovery = ward_metrics_counter(metrics, name, "Recovery attempts by state and outcome.",
                                         (const char *[]){"state", "outcome", NULL});
    snprintf(name, sizeof(name), "%s_state_duration_seconds", prefix.data);
    static const double buckets[] = {1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400};
    p->m_duration =
        ward_metrics_histogram(metrics, name, "Time spent in a state before leaving it.",
                               duration_labels, buckets, WARD_ARRAY_SIZE(buckets));
    ward_buf_free(&prefix);
}

static int is_policy_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".lua") == 0 &&
           !(n > 9 && strcmp(d->d_name + n - 9, ".test.lua") == 0);
}

static struct generation *generation_load(struct ward_policy_engine *e, const char *dir,
                                          struct ward_error *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_policy_file, alphasort);
    if (n < 0) {
        ward_error_set(err, -errno, "policy directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct generation *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        abort();
    }
    g->refs = 1;
    g->policies = calloc((size_t)n + 1, sizeof(*g->policies));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            struct ward_buf path = {0};
            ward_buf_printf(&path, "%s/%s", dir, names[i]->d_name);
            struct ward_buf problems = {0};
            int ncases = 0;
            struct policy *p = policy_open(e, path.data, &e->o, &problems, &ncases, err);
            if (problems.len > 0) {
                ward_log(WARD_LOG_ERROR, "policy", "%s", problems.data);
            }
            ward_buf_free(&problems);
            ward_buf_free(&path);
            if (p == NULL) {
                rc = err->code != 0 ? err->code : -EINVAL;
            } else if (policy_for(g, p->kind) != NULL) {
                rc = ward_error_set(err, -EEXIST, "%s: kind %s is declared by two policies",
                                    p->path, p->kind);
                policy_free(p);
            } else {
                p->gen = g;
                g->policies[g->n++] = p;
            }
        }
        free(names[i]);
    }
    free(names);
    if (rc != 0) {
        generation_release(g);
        return NULL;
    }
    return g;
}

static int engine_swap(struct ward_policy_engine *e, const char *dir, bool reload, bool count,
                       struct ward_error *err)
{
    struct ward_error local = {0};
    struct generation *g = generation_load(e, dir, &local);
    if (count) {
        ward_metric_add(e->m_reloads, (const char *[]){g != NULL ? "success" : "failure"}, 1);
    }
    if (g == NULL) {
        ward_log_fields(WARD_LOG_ERROR, "policy", &(struct ward_log_field){"reason", local.text}, 1,
                        "%s refused%s", reload ? "policy reload" : "policy load",
                        e->gen != NULL ? "; the last good policies stay in force" : "");
        emit(e, "policy", NULL, NULL, local.text);
        if (err != NULL) {
            *err = local;
        }
        return local.code != 0 ? local.code : -EINVAL;
    }
    struct generation *old = e->gen;
    e->gen = g;
    e->generation++;
    generation_release(old);
    ward_log(WARD_LOG_INFO, "policy", "%zu polic%s loaded from %s (generation %u)", g->n,
             g->n == 1 ? "y" : "ies", dir, e->generation);
    /* every resource gets a look under the new rules */
    double now = engine_now(e);
    for (struct resource *r = e->resources; r != NULL; r = r->next) {
        ward_queue_add(e->q, r->key, now);
    }
    schedule_wake(e);
    return 0;
}

/* ------------------------------------------------------------ public API */

int ward_policy_options_set(struct ward_policy_options *o, const char *key, const char *value,
                            struct ward_error *err)
{
    if (value == NULL) {
        return ward_error_set(err, -EINVAL, "%s: missing value", key);
    }
    double *duration = strcmp(key, "reconcile_timeout") == 0     ? &o->reconcile_timeout
                       : strcmp(key, "stuck_state_timeout") == 0 ? &o->stuck_timeout
                       : strcmp(key, "slice_timeout") == 0       ? &o->slice_timeout
                                                                 : NULL;
    if (duration != NULL) {
        double secs;
        if (ward_duration_parse(value, &secs) != 0 || secs <= 0) {
            return ward_error_set(err, -EINVAL,
                                  "%s: '%s' is not a duration (write it like \"30s\", \"15m\" or "
                                  "\"1h30m\")",
                                  key, value);
        }
        *duration = secs;
        return 0;
    }
    if (strcmp(key, "max_retries") == 0) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 0 || v > 1000) {
            return ward_error_set(err, -EINVAL, "%s: '%s' is not a count between 0 and 1000", key,
                                  value);
        }
        o->max_retries = (unsigned)v;
        return 0;
    }
    if (strcmp(key, "queue_rate") == 0 || strcmp(key, "queue_burst") == 0) {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !(v >= 0) || v > 1e6) {
            return ward_error_set(err, -EINVAL,
                                  "%s: '%s' is not a number of runs (per second) from 0 to 1e6; "
                                  "0 means unlimited",
                                  key, value);
        }
        if (key[6] == 'r') {
            o->queue.rate = v;
        } else {
            o->queue.burst = v;
        }
        return 0;
    }
    return ward_error_set(err, -EINVAL, "unknown policy setting '%s'", key);
}

int ward_policy_options_init(struct ward_policy_options *o, struct ward_error *err)
{
    *o = (struct ward_policy_options){
        .reconcile_timeout = 30 * 60,
        .stuck_timeout = 15 * 60,
        .max_retries = 3,
        .memory_limit = POLICY_DEFAULT_MEMORY,
        .instructions = POLICY_DEFAULT_INSTRUCTIONS,
        .slice_timeout = POLICY_DEFAULT_SLICE,
        .stuck_interval = 10,
        .queue = {.base_delay = 1,
                  .max_delay = 300,
                  .jitter = 0.2,
                  .max_inflight = 64,
                  /* BMCs are protected by the driver's caps; this only bounds how fast the
                     engine starts runs (50/s made a 1,000-host enrollment 4x slower than its
                     latency bound: doc/fleet-bench.md) */
                  .rate = 1000,
                  .burst = 1000},
    };
    static const struct {
        const char *env;
        const char *key;
    } vars[] = {
        {"RECONCILE_TIMEOUT", "reconcile_timeout"},
        {"STUCK_STATE_TIMEOUT", "stuck_state_timeout"},
        {"MAX_RETRIES", "max_retries"},
    };
    for (size_t i = 0; i < WARD_ARRAY_SIZE(vars); i++) {
        const char *v = getenv(vars[i].env);
        if (v == NULL) {
            continue;
        }
        struct ward_error local = {0};
        if (ward_policy_options_set(o, vars[i].key, v, &local) != 0) {
            return ward_error_set(err, -EINVAL, "environment %s: %s", vars[i].env, local.text);
        }
    }
    return 0;
}

struct ward_policy_engine *
ward_policy_engine_create(struct ev_loop *loop, const struct ward_policy_sink *sink,
                          struct ward_plugins *plugins, struct ward_metrics *metrics,
                          const struct ward_policy_options *opts, struct ward_error *err)
{
    struct ward_policy_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    e->loop = loop;
    if (sink != NULL && sink->commit != NULL) {
        e->sink = *sink;
        e->has_sink = true;
    }
    e->plugins = plugins;
    if (opts != NULL) {
        e->o = *opts;
    } else if (ward_policy_options_init(&e->o, err) != 0) {
        free(e);
        return NULL;
    }
    if (e->o.instructions == 0) {
        e->o.instructions = POLICY_DEFAULT_INSTRUCTIONS;
    }
    if (e->o.slice_timeout <= 0) {
        e->o.slice_timeout = POLICY_DEFAULT_SLICE;
    }
    e->q = ward_queue_create(&e->o.queue);
    if (e->q == NULL) {
        free(e);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    if (store_backed(e)) {
        /* claims and releases made through the API reach the engine through the feed */
        if (ward_store_subscribe(e->sink.self, on_store_change, e) != 0) {
            ward_queue_destroy(e->q);
            free(e);
            ward_error_set(err, -ENOMEM, "out of memory");
            return NULL;
        }
        e->feed = e->sink.self;
    }
    ev_timer_init(&e->wake, on_wake, 0, 0);
    ev_timer_init(&e->due, on_due, 0, 0);
    ev_timer_init(&e->stuck, on_stuck_timer, e->o.stuck_interval, e->o.stuck_interval);
    if (e->o.stuck_interval > 0) {
        ev_timer_start(loop, &e->stuck);
    }
    e->next_live = live_engines;
    live_engines = e;
    e->metrics = metrics;
    if (metrics != NULL) {
        e->m_reconcile =
            ward_metrics_histogram(metrics, "ward_reconcile_duration_seconds",
                                   "Duration of reconcile and recovery runs.", NULL, NULL, 0);
        e->m_reloads = ward_metrics_counter(metrics, "ward_policy_reloads_total",
                                            "Configuration and policy reloads by outcome.",
                                            (const char *[]){"outcome", NULL});
        e->m_cancelled = ward_metrics_counter(metrics, "ward_reconcile_cancelled_total",
                                              "Runs cancelled before they finished, by reason.",
                                              (const char *[]){"reason", NULL});
        e->m_failures = ward_metrics_counter(metrics, "ward_reconcile_failures_total",
                                             "Runs that ended in an error, by kind.",
                                             (const char *[]){"kind", NULL});
        e->m_refused = ward_metrics_counter(metrics, "ward_transitions_refused_total",
                                            "Transitions refused by the machine, a guard or a "
                                            "consistency rule, by kind.",
                                            (const char *[]){"kind", NULL});
    }
    return e;
}

int ward_policy_engine_on_admit(struct ward_policy_engine *e, const char *kind,
                                const char *to_state, ward_policy_admit_fn fn, void *arg)
{
    if (e->nadmit == WARD_POLICY_MAX_ADMIT) {
        return -ENOSPC;
    }
    struct admit_hook *h = &e->admit[e->nadmit];
    h->kind = strdup(kind);
    h->to = strdup(to_state);
    if (h->kind == NULL || h->to == NULL) {
        free(h->kind);
        free(h->to);
        return -ENOMEM;
    }
    h->fn = fn;
    h->arg = arg;
    e->nadmit++;
    return 0;
}

int ward_policy_engine_load(struct ward_policy_engine *e, const char *dir, struct ward_error *err)
{
    free(e->dir);
    e->dir = xstrdup(dir);
    return engine_swap(e, dir, false, true, err);
}

int ward_policy_engine_reload(struct ward_policy_engine *e, struct ward_error *err)
{
    if (e->dir == NULL) {
        return ward_error_set(err, -EINVAL, "no policy directory loaded yet");
    }
    return engine_swap(e, e->dir, true, true, err);
}

const struct ward_machine *ward_policy_engine_machine(const struct ward_policy_engine *e,
                                                      const char *kind)
{
    const struct policy *p = policy_for(e->gen, kind);
    return p != NULL ? p->m : NULL;
}

void ward_policy_engine_stop(struct ward_policy_engine *e)
{
    e->stopping = true;
    ev_timer_stop(e->loop, &e->stuck);
    ev_timer_stop(e->loop, &e->due);
}

int ward_policy_daemon_reload(struct ward_daemon *d, const struct ward_config *next, void *arg,
                              struct ward_error *err)
{
    (void)d;
    struct ward_policy_engine *e = arg;
    const char *dir = next != NULL && next->policy_dir != NULL ? next->policy_dir : e->dir;
    if (dir == NULL) {
        return ward_error_set(err, -EINVAL, "no policy directory");
    }
    int rc = engine_swap(e, dir, true, false, err);
    if (rc == 0 && dir != e->dir) {
        free(e->dir);
        e->dir = xstrdup(dir);
    }
    return rc;
}

void ward_policy_daemon_stop(struct ward_daemon *d, void *arg)
{
    (void)d;
    ward_policy_engine_stop(arg);
}

unsigned ward_policy_engine_running(const struct ward_policy_engine *e)
{
    return e->running;
}

unsigned ward_policy_engine_generation(const struct ward_policy_engine *e)
{
    return e->generation;
}

void ward_policy_engine_destroy(struct ward_policy_engine *e)
{
    if (e == NULL) {
        return;
    }
    for (struct ward_policy_engine **pp = &live_engines; *pp != NULL; pp = &(*pp)->next_live) {
        if (*pp == e) {
            *pp = e->next_live;
            break;
        }
    }
    if (e->feed != NULL) {
        ward_store_unsubscribe(e->feed, on_store_change, e);
        e->feed = NULL;
    }
    if (e->has_sink && e->sink.flush != NULL) {
        /* commits runs wait on complete now, while the resources they touch still exist */
        e->sink.flush(e->sink.self);
    }
    e->destroying = true;
    ev_timer_stop(e->loop, &e->wake);
    ev_timer_stop(e->loop, &e->due);
    ev_timer_stop(e->loop, &e->stuck);
    while (e->runs != NULL) {
        run_cancel(e->runs, "shutdown");
    }
    while (e->resources != NULL) {
        struct resource *r = e->resources;
        e->resources = r->next;
        resource_free(r);
    }
    ward_strmap_free(&e->by_key);
    ward_strmap_free(&e->by_name);
    generation_release(e->gen);
    ward_queue_destroy(e->q);
    for (size_t i = 0; i < e->nadmit; i++) {
        free(e->admit[i].kind);
        free(e->admit[i].to);
    }
    for (size_t i = 0; i < e->nstale; i++) {
        free(e->stale[i].kind);
        free(e->stale[i].name);
    }
    free(e->stale);
    free(e->dir);
    free(e);
}

/*
 * With the store behind the engine, the claim lives in the store's consumer
 * column (set by ward_store_claim, cleared by a release) and spec.consumerRef
 * only mirrors it. A spec written through the engine may repeat the current
 * holder or leave consumerRef out (the claim stays); naming anybody else would
 * make a second notion of the claim, so it is refused.
 */
static int keep_claim(const char *kind, const char *name, const struct resource *r, cJSON *spec,
                      struct ward_error *err)
{
    const cJSON *have = r != NULL ? cJSON_GetObjectItemCaseSensitive(r->spec, "consumerRef") : NULL;
    const char *held = cJSON_IsString(have) ? have->valuestring : NULL;
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(spec, "consumerRef");
    if (want == NULL) {
        if (held != NULL && cJSON_AddStringToObject(spec, "consumerRef", held) == NULL) {
            abort();
        }
        return 0;
    }
    if (cJSON_IsString(want) && held != NULL && strcmp(want->valuestring, held) == 0) {
        return 0;
    }
    return ward_error_set(err, -EPERM,
                          "%s/%s: consumerRef mirrors the store's claim and cannot be written "
                          "through the spec (claim the host with POST /api/v1/claims, release it "
                          "with POST /api/v1/hosts/%s/release)",
                          kind, name, name);
}

int ward_policy_resource_put(struct ward_policy_engine *e, const char *kind, const char *name,
                             const char *spec_json, struct ward_error *err)
{
    if (kind == NULL || name == NULL || name[0] == '\0' || strlen(name) > 253) {
        return ward_error_set(err, -EINVAL, "a resource needs a kind and a name (1-253 bytes)");
    }
    struct policy *p = policy_for(e->gen, kind);
    if (p == NULL) {
        return ward_error_set(err, -ENOENT, "no policy declares kind %s", kind);
    }
    cJSON *spec = cJSON_Parse(spec_json != NULL ? spec_json : "{}");
    if (!cJSON_IsObject(spec)) {
        cJSON_Delete(spec);
        return ward_error_set(err, -EINVAL, "%s/%s: the spec is not a JSON object", kind, name);
    }
    double now = engine_now(e);
    struct resource *r = resource_find(e, kind, name);
    long long version = r != NULL ? r->version : 0;
    if (store_backed(e) && keep_claim(kind, name, r, spec, err) != 0) {
        cJSON_Delete(spec);
        return err != NULL ? err->code : -EPERM;
    }
    if (e->has_sink && e->sink.put != NULL) {
        char *text = cJSON_PrintUnformatted(spec);
        int rc = e->sink.put(e->sink.self, kind, name, text != NULL ? text : "{}", version,
                             &version, err);
        free(text);
        if (rc != 0) {
            cJSON_Delete(spec);
            if (rc == -ESTALE && r != NULL) {
                /* another writer came first: take its version so a retry can succeed */
                engine_refresh(e, r);
            }
            return rc;
        }
    }
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            cJSON_Delete(spec);
            return ward_error_set(err, -ENOMEM, "out of memory");
        }
        r->kind = xstrdup(kind);
        r->name = xstrdup(name);
        struct ward_buf key = {0};
        ward_buf_printf(&key, "%s/%s", kind, name);
        r->key = ward_buf_steal(&key);
        r->status = cJSON_CreateObject();
        r->pending_step = -1;
        for (size_t i = 0; i < p->m->ndims; i++) {
            resource_dim(r, &p->m->dims[i], now);
        }
        r->next = e->resources;
        e->resources = r;
        index_add(e, r);
    } else {
        cJSON_Delete(r->spec);
    }
    r->spec = spec;
    r->version = version;
    ward_queue_add(e->q, r->key, now);
    schedule_wake(e);
    return 0;
}

/* ------------------------------------------------------------ the store */

/* from is left to the version check: the store reads a dimension never written as "" */
static struct ward_transition transition_of(const struct ward_policy_commit *c)
{
    return (struct ward_transition){
        .kind = c->kind,
        .ns = WARD_POLICY_NAMESPACE,
        .name = c->name,
        .dimension = c->dimension,
        .to = c->to,
        .trigger = c->trigger,
        .reason = c->reason,
        .actor = c->actor,
        .expected_version = c->expected_version,
        .status = c->status_json,
        .entered = c->entered_at, /* so a re-read knows the state's time as its own */
    };
}

static int store_commit(void *self, const struct ward_policy_commit *c, long long *new_version,
                        struct ward_error *err)
{
    struct ward_transition t = transition_of(c);
    int64_t v = 0;
    int rc = ward_store_transition_sync(self, &t, &v, err);
    if (rc == 0) {
        *new_version = v;
    }
    return rc;
}

static int store_put(void *self, const char *kind, const char *name, const char *spec_json,
                     long long expected_version, long long *new_version, struct ward_error *err)
{
    /* consumerRef is derived from the consumer column when read back: never stored twice */
    cJSON *spec = cJSON_Parse(spec_json);
    if (!cJSON_IsObject(spec)) {
        cJSON_Delete(spec);
        return ward_error_set(err, -EINVAL, "%s/%s: the spec is not a JSON object", kind, name);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "consumerRef");
    char *text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    if (text == NULL) {
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    struct ward_resource r = {
        .kind = (char *)kind,
        .ns = (char *)WARD_POLICY_NAMESPACE,
        .name = (char *)name,
        .spec = text,
    };
    int rc = expected_version == 0 ? ward_store_create(self, &r, err)
                                   : ward_store_update(self, &r, expected_version, err);
    free(text);
    if (rc == 0) {
        *new_version = r.version;
    }
    return rc;
}

struct store_async {
    ward_policy_done_fn done;
    void *arg;
};

static void store_async_done(void *arg, int rc, int64_t new_version, const struct ward_error *err)
{
    struct store_async *sa = arg;
    sa->done(sa->arg, rc, (long long)new_version, err);
    free(sa);
}

static int store_commit_async(void *self, const struct ward_policy_commit *c,
                              ward_policy_done_fn done, void *arg)
{
    struct store_async *sa = calloc(1, sizeof(*sa));
    if (sa == NULL) {
        return -ENOMEM;
    }
    sa->done = done;
    sa->arg = arg;
    struct ward_transition t = transition_of(c);
    int rc = ward_store_transition(self, &t, store_async_done, sa);
    if (rc != 0) {
        free(sa);
    }
    return rc;
}

static void store_flush(void *self)
{
    ward_store_flush(self);
}

void ward_policy_sink_store(struct ward_policy_sink *sink, struct ward_store *st)
{
    *sink = (struct ward_policy_sink){.self = st,
                                      .commit = store_commit,
                                      .put = store_put,
                                      .commit_async = store_commit_async,
                                      .flush = store_flush};
}

static int restore_one(struct ward_policy_engine *e, struct ward_store *st,
                       const struct ward_resource *sr, struct ward_error *err)
{
    struct policy *p = policy_for(e->gen, sr->kind);
    cJSON *spec = cJSON_Parse(sr->spec != NULL ? sr->spec : "{}");
    cJSON *status = cJSON_Parse(sr->status != NULL ? sr->status : "{}");
    if (p == NULL || !cJSON_IsObject(spec) || !cJSON_IsObject(status)) {
        cJSON_Delete(spec);
        cJSON_Delete(status);
        ward_log(WARD_LOG_WARN, "policy", "%s/%s: not restored (no policy or bad JSON)", sr->kind,
                 sr->name);
        return 0;
    }
    /* the store keeps the states inside the status it returns; the engine keeps them apart */
    cJSON_DeleteItemFromObjectCaseSensitive(status, "states");
    /* the store's consumer column is the one truth about a claim: the engine's view of it */
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "consumerRef");
    if (sr->consumer != NULL && sr->consumer[0] != '\0' &&
        cJSON_AddStringToObject(spec, "consumerRef", sr->consumer) == NULL) {
        abort();
    }
    struct ward_state *states = NULL;
    size_t n = 0;
    int rc = ward_store_states(st, sr->kind, sr->ns, sr->name, &states, &n, err);
    if (rc != 0) {
        cJSON_Delete(spec);
        cJSON_Delete(status);
        return rc;
    }
    struct resource *r = resource_find(e, sr->kind, sr->name);
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            abort();
        }
        r->kind = xstrdup(sr->kind);
        r->name = xstrdup(sr->name);
        struct ward_buf key = {0};
        ward_buf_printf(&key, "%s/%s", sr->kind, sr->name);
        r->key = ward_buf_steal(&key);
        r->next = e->resources;
        e->resources = r;
        index_add(e, r);
    } else {
        cJSON_Delete(r->spec);
        cJSON_Delete(r->status);
    }
    r->pending_step = -1;
    r->spec = spec;
    r->status = status;
    keep_observed(r);
    r->version = sr->version;
    double now = engine_now(e);
    for (size_t i = 0; i < p->m->ndims; i++) {
        const struct ward_machine_dim *d = &p->m->dims[i];
        int di = resource_dim(r, d, sr->created > 0 ? from_unix(e, sr->created) : now);
        for (size_t k = 0; di >= 0 && k < n; k++) {
            if (strcmp(states[k].dimension, d->name) == 0 && states[k].state[0] != '\0') {
                if (i == 0 && strcmp(r->state[di], states[k].state) != 0) {
                    /* another writer moved the primary state: stuck tracking starts over */
                    r->stuck_reported = false;
                    r->exhausted = false;
                    r->attempts = 0;
                    r->last_attempt = 0;
                }
                bool known =
                    strcmp(r->state[di], states[k].state) == 0 && r->stamp[di] == states[k].entered;
                free(r->state[di]);
                r->state[di] = xstrdup(states[k].state);
                if (!known) {
                    r->entered[di] = from_unix(e, states[k].entered);
                }
                r->stamp[di] = states[k].entered;
            }
        }
    }
    ward_state_free(states, n);
    ward_queue_add(e->q, r->key, now);
    return 0;
}

static void engine_refresh(struct ward_policy_engine *e, struct resource *r)
{
    if (!e->has_sink || e->sink.commit != store_commit) {
        return;
    }
    struct ward_resource *sr = NULL;
    struct ward_error err = {0};
    if (ward_store_get(e->sink.self, r->kind, WARD_POLICY_NAMESPACE, r->name, &sr, &err) != 0 ||
        restore_one(e, e->sink.self, sr, &err) != 0) {
        ward_log(WARD_LOG_WARN, "policy", "%s: cannot re-read it from the store: %s", r->key,
                 err.text);
    }
    ward_resource_free(sr);
}

static bool store_backed(const struct ward_policy_engine *e)
{
    return e->has_sink && e->sink.commit == store_commit;
}

/*
 * The store's change feed. It runs inside the writer's call (for the engine's
 * own writes too, before the engine has taken the new version), so it only
 * notes the resource; feed_catch_up re-reads it on the next wake, when a
 * version newer than the engine's own means another writer (a claim, a
 * release, an image set through the API) changed it.
 */
static void on_store_change(void *arg, const struct ward_store_change *c)
{
    struct ward_policy_engine *e = arg;
    if (e->destroying || c->kind == NULL || c->ns == NULL || c->name == NULL ||
        strcmp(c->ns, WARD_POLICY_NAMESPACE) != 0 || policy_for(e->gen, c->kind) == NULL) {
        return;
    }
    const struct resource *r = resource_find(e, c->kind, c->name);
    bool deleted = c->what != NULL && strcmp(c->what, "deleted") == 0;
    if (r != NULL && c->version <= r->version && !deleted) {
        return; /* already seen */
    }
    if (r == NULL && deleted) {
        return;
    }
    for (size_t i = 0; i < e->nstale; i++) {
        if (strcmp(e->stale[i].kind, c->kind) == 0 && strcmp(e->stale[i].name, c->name) == 0) {
            return;
        }
    }
    if (e->nstale == e->capstale) {
        size_t cap = e->capstale != 0 ? e->capstale * 2 : 8;
        struct stale_ref *list = realloc(e->stale, cap * sizeof(*list));
        if (list == NULL) {
            abort();
        }
        e->stale = list;
        e->capstale = cap;
    }
    e->stale[e->nstale++] = (struct stale_ref){xstrdup(c->kind), xstrdup(c->name)};
    schedule_wake(e);
}

/* The BMC driver a resource's ward.bmc() would use, or NULL. */
static const struct ward_bmc_driver *bmc_driver_of(const struct ward_policy_engine *e,
                                                  const struct resource *r)
{
    const struct ward_bmc_driver *drv = e->o.bmc_driver;
    const cJSON *bmc = cJSON_GetObjectItemCaseSensitive(r->spec, "bmc");
    const cJSON *dn = cJSON_GetObjectItemCaseSensitive(bmc, "driver");
    if (drv == NULL && e->plugins != NULL) {
        drv = ward_plugins_capability(e->plugins, WARD_CAP_BMC_DRIVER,
                                      cJSON_IsString(dn) ? dn->valuestring : "redfish");
    }
    return drv;
}

/*
 * A resource deleted from the store (DELETE /api/v1/hosts/NAME, `wardctl host rm`): its
 * run is cancelled, the engine forgets it, and the BMC driver is told so it ends the
 * host's session instead of leaving it open on the BMC until it expires.
 */
static void resource_remove(struct ward_policy_engine *e, struct resource *r)
{
    if (r->run != NULL && e->has_sink && e->sink.flush != NULL) {
        /* a commit the run waits on refers to r: let it finish (and fail) first */
        e->sink.flush(e->sink.self);
    }
    r->status_dirty = false; /* nothing left to write */
    if (r->run != NULL) {
        run_cancel(r->run, "removed");
    }
    ward_queue_forget(e->q, r->key);
    index_remove(e, r);
    for (struct resource **pp = &e->resources; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    const struct ward_bmc_driver *drv = bmc_driver_of(e, r);
    ward_log_fields(WARD_LOG_INFO, "policy", &(struct ward_log_field){"resource", r->key}, 1,
                    "%s removed from the store: forgotten", r->key);
    if (drv != NULL && drv->forget != NULL) {
        drv->forget(drv->self, r->name);
    }
    resource_free(r);
}

static void feed_catch_up(struct ward_policy_engine *e)
{
    struct stale_ref *list = e->stale;
    size_t n = e->nstale;
    e->stale = NULL;
    e->nstale = e->capstale = 0;
    for (size_t i = 0; i < n; i++) {
        struct ward_resource *sr = NULL;
        struct ward_error err = {0};
        int rc = e->feed != NULL && !e->destroying
                     ? ward_store_get(e->feed, list[i].kind, WARD_POLICY_NAMESPACE, list[i].name,
                                      &sr, &err)
                     : -ENOENT;
        const struct resource *r = resource_find(e, list[i].kind, list[i].name);
        if (rc == 0 && (r == NULL || sr->version > r->version)) {
            rc = restore_one(e, e->feed, sr, &err);
            if (rc == 0) {
                ward_log_fields(
                    WARD_LOG_DEBUG, "policy", &(struct ward_log_field){"resource", list[i].name}, 1,
                    "%s/%s: re-read after a change by another writer", list[i].kind, list[i].name);
            }
        }
        if (rc != 0 && rc != -ENOENT) {
            ward_log(WARD_LOG_WARN, "policy", "%s/%s: cannot re-read it from the store: %s",
                     list[i].kind, list[i].name, err.text);
        }
        if (rc == -ENOENT && r != NULL && e->feed != NULL && !e->destroying) {
            resource_remove(e, (struct resource *)r);
        }
        ward_resource_free(sr);
        free(list[i].kind);
        free(list[i].name);
    }
    free(list);
}

int ward_policy_resource_refresh(struct ward_policy_engine *e, const char *kind, const char *name,
                                 struct ward_error *err)
{
    if (!store_backed(e)) {
        return ward_error_set(err, -ENOTSUP, "the policy engine does not run on the store");
    }
    struct ward_resource *sr = NULL;
    int rc = ward_store_get(e->feed, kind, WARD_POLICY_NAMESPACE, name, &sr, err);
    if (rc != 0) {
        return rc;
    }
    const struct resource *r = resource_find(e, kind, name);
    if (r == NULL || sr->version > r->version) {
        rc = restore_one(e, e->feed, sr, err);
        schedule_wake(e);
    }
    ward_resource_free(sr);
    return rc;
}

int ward_policy_engine_restore(struct ward_policy_engine *e, struct ward_store *st,
                               struct ward_error *err)
{
    for (size_t i = 0; e->gen != NULL && i < e->gen->n; i++) {
        struct ward_store_filter f = {.kind = e->gen->policies[i]->kind};
        struct ward_resource **list = NULL;
        size_t n = 0;
        int rc = ward_store_list(st, &f, &list, &n, err);
        for (size_t k = 0; rc == 0 && k < n; k++) {
            if (strcmp(list[k]->ns, WARD_POLICY_NAMESPACE) == 0) {
                rc = restore_one(e, st, list[k], err);
            }
        }
        ward_resource_list_free(list, n);
        if (rc != 0) {
            return rc;
        }
    }
    schedule_wake(e);
    return 0;
}

/* ---------------------------------------------------------- observations */

struct status_write {
    struct ward_policy_engine *e;
    char *key;
    int attempt;
};

static bool status_queue(struct ward_policy_engine *e, struct resource *r, int attempt);

/* A queued status write is durable, or failed: a conflict re-reads the resource and
 * writes once more. */
static void status_written(void *arg, int rc, int64_t new_version, const struct ward_error *err)
{
    struct status_write *sw = arg;
    struct ward_policy_engine *e = sw->e;
    struct resource *r = e->destroying ? NULL : ward_strmap_get(&e->by_key, sw->key);
    if (r != NULL && rc == 0 && new_version > r->version) {
        r->version = new_version;
    } else if (r != NULL && rc != 0) {
        if (rc == -ESTALE && sw->attempt == 0) {
            engine_refresh(e, r); /* another writer first: take its version and write again */
            if (r->run != NULL) {
                r->status_dirty = true; /* the run's end writes it */
            } else if (status_queue(e, r, 1)) {
                r->status_dirty = false;
            }
        } else {
            ward_log(WARD_LOG_WARN, "policy", "%s: status not stored: %s", r->key,
                     err != NULL ? err->text : "write failed");
            engine_refresh(e, r); /* the version it took for granted did not come */
        }
    }
    free(sw->key);
    free(sw);
}

/* Queue the status write into the store's group commit (a store-backed engine); false
 * when it could not be. The engine's version moves at once to the one the write will
 * give, so the commits queued after it in the same loop iteration expect it. */
static bool status_queue(struct ward_policy_engine *e, struct resource *r, int attempt)
{
    if (e->destroying) {
        return false;
    }
    keep_observed(r);
    char *status = cJSON_PrintUnformatted(r->status);
    struct status_write *sw = calloc(1, sizeof(*sw));
    if (status == NULL || sw == NULL) {
        free(status);
        free(sw);
        return false;
    }
    *sw = (struct status_write){.e = e, .key = xstrdup(r->key), .attempt = attempt};
    int rc = ward_store_status(e->sink.self, r->kind, WARD_POLICY_NAMESPACE, r->name, r->version,
                               status, status_written, sw);
    free(status);
    if (rc != 0) {
        free(sw->key);
        free(sw);
        return false;
    }
    r->version++;
    return true;
}

/*
 * Write the status with its observations through the store (compare-and-swap on the
 * version, as every write of the engine). Not while a run is in flight: a transition it
 * queued expects the current version, so the write waits for the run's end.
 */
static void status_persist(struct ward_policy_engine *e, struct resource *r)
{
    if (r->run != NULL) {
        r->status_dirty = true;
        return;
    }
    r->status_dirty = false;
    if (store_backed(e) && !status_queue(e, r, 0)) {
        ward_log(WARD_LOG_WARN, "policy", "%s: status not stored: it could not be queued", r->key);
    }
}

static int observe_one(struct ward_policy_engine *e, struct resource *r, const char *field,
                       const char *value)
{
    if (r->observed == NULL) {
        /* after a restart: what the store kept is the last observation */
        const cJSON *kept = cJSON_GetObjectItemCaseSensitive(r->status, "observed");
        r->observed = cJSON_IsObject(kept) ? cJSON_Duplicate(kept, true) : cJSON_CreateObject();
        if (r->observed == NULL) {
            return -ENOMEM;
        }
    }
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(r->observed, field);
    if (cJSON_IsString(have) && strcmp(have->valuestring, value) == 0) {
        return 0;
    }
    struct ward_log_field f[] = {{"resource", r->key}, {"field", field}, {"value", value}};
    ward_log_fields(WARD_LOG_INFO, "policy", f, WARD_ARRAY_SIZE(f), "%s: %s observed %s (was %s)",
                    r->key, field, value, cJSON_IsString(have) ? have->valuestring : "unknown");
    cJSON_DeleteItemFromObjectCaseSensitive(r->observed, field);
    if (cJSON_AddStringToObject(r->observed, field, value) == NULL) {
        return -ENOMEM;
    }
    if (r->status == NULL && (r->status = cJSON_CreateObject()) == NULL) {
        return -ENOMEM;
    }
    keep_observed(r);
    status_persist(e, r);
    /* the policy decides what the observation means in the resource's state; what it notes
       in the status (e.g. a mismatch) is written when that run ends */
    r->status_dirty = true;
    ward_queue_add(e->q, r->key, engine_now(e));
    schedule_wake(e);
    return 1;
}

int ward_policy_observe(const char *kind, const char *name, const char *field, const char *value)
{
    if (name == NULL || field == NULL || value == NULL || field[0] == '\0' ||
        strlen(field) > 64 || strlen(value) > 256) {
        return -EINVAL;
    }
    int result = -ENOENT;
    for (struct ward_policy_engine *e = live_engines; e != NULL; e = e->next_live) {
        if (e->destroying) {
            continue;
        }
        /* every resource so named, newest first like the list */
        for (struct resource *r = ward_strmap_get(&e->by_name, name); r != NULL;
             r = r->same_name) {
            if (kind != NULL && strcmp(r->kind, kind) != 0) {
                continue;
            }
            int rc = observe_one(e, r, field, value);
            if (result <= 0) {
                result = rc;
            }
        }
    }
    return result;
}

int ward_policy_resource_set_status(struct ward_policy_engine *e, const char *kind,
                                    const char *name, const char *status_json,
                                    struct ward_error *err)
{
    struct resource *r = resource_find(e, kind, name);
    if (r == NULL) {
        return ward_error_set(err, -ENOENT, "%s/%s: no such resource", kind, name);
    }
    cJSON *s = cJSON_Parse(status_json != NULL ? status_json : "{}");
    if (!cJSON_IsObject(s)) {
        cJSON_Delete(s);
        return ward_error_set(err, -EINVAL, "%s/%s: the status is not a JSON object", kind, name);
    }
    cJSON_Delete(r->status);
    r->status = s;
    return 0;
}

const char *ward_policy_resource_state(const struct ward_policy_engine *e, const char *kind,
                                       const char *name, const char *dimension)
{
    const struct resource *r = resource_find(e, kind, name);
    if (r == NULL || r->ndims == 0) {
        return NULL;
    }
    if (dimension == NULL) {
        struct policy *p = policy_for(e->gen, kind);
        dimension = p != NULL ? p->m->dims[0].name : r->dim[0];
    }
    return resource_state(r, dimension);
}

char *ward_policy_resource_json(const struct ward_policy_engine *e, const char *kind,
                                const char *name)
{
    const struct resource *r = resource_find(e, kind, name);
    if (r == NULL) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON *states = cJSON_AddObjectToObject(o, "states");
    for (size_t i = 0; i < r->ndims; i++) {
        cJSON_AddStringToObject(states, r->dim[i], r->state[i]);
    }
    cJSON_AddItemToObject(o, "spec", cJSON_Duplicate(r->spec, 1));
    cJSON_AddItemToObject(o, "status", cJSON_Duplicate(r->status, 1));
    cJSON_AddNumberToObject(o, "version", (double)r->version);
    cJSON_AddNumberToObject(o, "entered_at", r->ndims > 0 ? to_unix(e, r->entered[0]) : 0);
    cJSON_AddNumberToObject(o, "recovery_attempts", r->attempts);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int ward_policy_enqueue(struct ward_policy_engine *e, const char *kind, const char *name)
{
    struct resource *r = resource_find(e, kind, name);
    if (r == NULL) {
        return -ENOENT;
    }
    ward_queue_add(e->q, r->key, engine_now(e));
    schedule_wake(e);
    return 0;
}

struct claim_ctx {
    struct table_ctx t;
    const char *consumer;
};

/* The resource's table as it would be once consumer holds it. */
static int push_claimed_protected(lua_State *L, void *ud)
{
    struct claim_ctx *c = ud;
    push_resource(L, c->t.e, c->t.r, c->t.m);
    lua_getfield(L, -1, "spec");
    lua_pushstring(L, c->consumer);
    lua_setfield(L, -2, "consumerRef");
    lua_pop(L, 1);
    return 1;
}

/* as_consumer: check as if spec.consumerRef were that consumer (never with commit) */
static int api_transition(struct ward_policy_engine *e, const char *kind, const char *name,
                          const char *dimension, const char *to, const char *trigger,
                          const char *reason, const char *actor, const char *as_consumer,
                          bool commit, struct ward_error *err)
{
    struct resource *r = resource_find(e, kind, name);
    if (r == NULL) {
        return ward_error_set(err, -ENOENT, "%s/%s: no such resource", kind, name);
    }
    struct policy *p = policy_for(e->gen, kind);
    if (p == NULL) {
        return ward_error_set(err, -ENOENT, "no policy declares kind %s", kind);
    }
    if (to == NULL) {
        return ward_error_set(err, -EINVAL, "%s/%s: no target state", kind, name);
    }
    lua_State *L = p->L;
    struct table_ctx c = {e, r, p->m};
    struct claim_ctx cc = {c, as_consumer};
    int rc = as_consumer != NULL ? pcall_c(L, push_claimed_protected, &cc, 1, err)
                                 : pcall_c(L, push_resource_protected, &c, 1, err);
    if (rc != 0) {
        return rc;
    }
    rc = transition_on_top(e, p, r, dimension, to, trigger, reason, actor,
                           commit && as_consumer == NULL, err);
    /* A run of r waiting on an operation (a BMC call), or whose operation has just ended
       and which waits to resume, decided on the state this moved r out of: its next steps,
       such as cleaning a host someone may claim now, are not made. One waiting on its own
       commit is left to it (the commit is in the store's queue); a transition of another
       dimension leaves it too. */
    struct run *run = r->run;
    bool primary = dimension == NULL || strcmp(dimension, p->m->dims[0].name) == 0;
    if (rc == 0 && commit && as_consumer == NULL && primary && run != NULL &&
        (run->ready || (run->pending != NULL && run->pending->cancel != pending_cancel))) {
        run_supersede(run);
    }
    return rc;
}

int ward_policy_transition(struct ward_policy_engine *e, const char *kind, const char *name,
                           const char *dimension, const char *to, const char *trigger,
                           const char *reason, const char *actor, struct ward_error *err)
{
    return api_transition(e, kind, name, dimension, to, trigger != NULL ? trigger : "api", reason,
                          actor != NULL ? actor : "api", NULL, true, err);
}

int ward_policy_transition_check(struct ward_policy_engine *e, const char *kind, const char *name,
                                 const char *dimension, const char *to, struct ward_error *err)
{
    return api_transition(e, kind, name, dimension, to, NULL, NULL, NULL, NULL, false, err);
}

int ward_policy_claim_check(struct ward_policy_engine *e, const char *kind, const char *name,
                            const char *consumer, struct ward_error *err)
{
    return api_transition(e, kind, name, WARD_STORE_LIFECYCLE, WARD_STORE_CLAIMED, NULL, NULL, NULL,
                          consumer, false, err);
}

char *ward_policy_explain(struct ward_policy_engine *e, const char *kind, const char *name,
                          struct ward_error *err)
{
    struct resource *r = resource_find(e, kind, name);
    struct policy *p = policy_for(e->gen, kind);
    if (r == NULL || p == NULL) {
        ward_error_set(err, -ENOENT, "%s/%s: no such resource", kind, name);
        return NULL;
    }
    const struct ward_machine_dim *d = &p->m->dims[0];
    int s = ward_machine_state(d, r->state[0]);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "resource", r->key);
    cJSON_AddStringToObject(o, "state", r->state[0]);
    cJSON_AddNumberToObject(o, "version", (double)r->version);
    cJSON_AddNumberToObject(o, "in_state_seconds", engine_now(e) - r->entered[0]);
    cJSON *ts = cJSON_AddArrayToObject(o, "transitions");
    for (size_t t = 0; s >= 0 && t < d->nstates; t++) {
        if (!ward_machine_allows(d, s, (int)t)) {
            continue;
        }
        struct ward_error why = {0};
        int rc = ward_policy_transition_check(e, kind, name, NULL, d->states[t], &why);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "to", d->states[t]);
        cJSON_AddBoolToObject(x, "allowed_now", rc == 0);
        cJSON_AddBoolToObject(x, "guarded",
                              d->guard[(size_t)s * d->nstates + t] != WARD_MACHINE_NOREF);
        if (rc != 0) {
            cJSON_AddStringToObject(x, "reason", why.text);
        }
        cJSON_AddItemToArray(ts, x);
    }
    cJSON *rec = cJSON_AddObjectToObject(o, "recovery");
    if (s >= 0 && d->stuck[s] > 0 && !d->final[s]) {
        double since = stuck_since(r);
        cJSON_AddNumberToObject(rec, "stuck_after_seconds", d->stuck[s]);
        cJSON_AddNumberToObject(rec, "next_check_in_seconds", since + d->stuck[s] - engine_now(e));
        cJSON_AddNumberToObject(rec, "attempts", r->attempts);
        const char *next;
        if (r->exhausted) {
            next = "none (exhausted; waiting for an operator)";
        } else if (r->attempts + 1 > e->o.max_retries) {
            next = d->error_state >= 0 && s != d->error_state ? "escalate to error" : "give up";
        } else if (d->nrecovery[s] == 0) {
            next = "retry";
        } else {
            size_t k = r->attempts < d->nrecovery[s] ? r->attempts : d->nrecovery[s] - 1;
            next = d->recovery[s][k].name;
        }
        cJSON_AddStringToObject(rec, "next", next);
    } else {
        cJSON_AddStringToObject(rec, "next", "none (state not watched)");
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

int ward_policy_check_text(const char *text, size_t len, const char *name,
                           const struct ward_policy_options *opts, FILE *out)
{
    struct ward_policy_options o;
    struct ward_error err = {0};
    if (opts != NULL) {
        o = *opts;
    } else if (ward_policy_options_init(&o, &err) != 0) {
        fprintf(out, "%s\n", err.text);
        return 1;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        fprintf(out, "%s: out of memory\n", name);
        return 1;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    struct ward_buf problems = {0};
    int ncases = 0;
    struct policy *p = policy_open_text(NULL, name, copy, len, &o, &problems, &ncases, &err);
    if (problems.len > 0) {
        fputs(problems.data, out);
    } else if (p == NULL) {
        fprintf(out, "%s\n", err.text);
    }
    ward_buf_free(&problems);
    if (p == NULL) {
        return 1;
    }
    fprintf(out, "%s: ok: kind %s, %d test case%s passed\n", name, p->kind, ncases,
            ncases == 1 ? "" : "s");
    policy_free(p);
    return 0;
}

int ward_policy_check_file(const char *path, FILE *out)
{
    struct ward_policy_options o;
    struct ward_error err = {0};
    if (ward_policy_options_init(&o, &err) != 0) {
        fprintf(out, "%s\n", err.text);
        return 1;
    }
    struct ward_buf problems = {0};
    int ncases = 0;
    struct policy *p = policy_open(NULL, path, &o, &problems, &ncases, &err);
    if (problems.len > 0) {
        fputs(problems.data, out);
    } else if (p == NULL) {
        fprintf(out, "%s\n", err.text);
    }
    ward_buf_free(&problems);
    if (p == NULL) {
        return 1;
    }
    size_t nt = 0;
    for (size_t i = 0; i < p->m->ndims; i++) {
        const struct ward_machine_dim *d = &p->m->dims[i];
        for (size_t a = 0; a < d->nstates; a++) {
            for (size_t b = 0; b < d->nstates; b++) {
                nt += ward_machine_allows(d, (int)a, (int)b);
            }
        }
    }
    fprintf(out,
            "%s: ok: kind %s, %zu dimension%s, %zu allowed transitions, %d test case%s passed\n",
            path, p->kind, p->m->ndims, p->m->ndims == 1 ? "" : "s", nt, ncases,
            ncases == 1 ? "" : "s");
    policy_free(p);
    return 0;
}

int ward_policy_check_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.lua...\n", argc > 0 ? argv[0] : "ward-policy-check");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (ward_policy_check_file(argv[i], stdout) != 0) {
            rc = 1;
        }
    }
    return rc;
}
