/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <ward/async.h>

#include "driver.h"
#include "util.h" /* ward_strmap, from wardd's core */
#include "parse.h"
#include "quirks.h"
#include "sandbox.h" /* JSON <-> Lua, from wardd's core */

/*
 * The async SDK lives in wardd's policy engine. Weak references let the plugin load into a
 * wardd built without it; the handle then answers every call with a clear error.
 */
#pragma weak ward_async_begin
#pragma weak ward_async_refuse
#pragma weak ward_async_yield
#pragma weak ward_async_complete
#pragma weak ward_async_fail
#pragma weak ward_policy_observe

#define HANDLE_MT "ward.redfish.bmc"

struct host {
    struct host *next;
    char *name;
    char *signature;         /* what the BMC was created from; a change recreates it */
    struct ward_rf_bmc *bmc; /* owned */
    char power[32];          /* last power state ward knew, "" when unknown */
    /* a power change whose end ward did not see (its run let go, or it failed, after the BMC
       took its Reset): the state it leads to, "" when none, and until when to expect it */
    char power_goal[8];
    double goal_until;
    /* that change restarts a host that was On: On is its goal only once Off has been seen */
    bool goal_cycle;
    bool syncing;
    /* the policy ended its BMC session (bmc:logout(), as a deprovisioning does): the power
       sync leaves the host alone, as it would log in again, until an operation of the
       policy uses the BMC again */
    bool logged_out;
    unsigned failed_syncs; /* power syncs in a row that could not read the BMC */
    char sync_error[256];  /* why the first of them failed, and since when */
    bool unreachable;      /* this driver told the policy the BMC cannot be read */
};

struct ward_rf_driver {
    struct ward_rf_driver *next_live;
    struct ward_rf_client *client; /* not owned */
    char *credentials_dir;
    double sync_interval;
    struct host *hosts;       /* owned */
    struct ward_strmap index; /* name -> host of the list (keys are h->name) */
    struct ev_loop *loop;
    ev_timer sync_timer;
    ward_rf_power_hook hook;
    void *hook_arg;
    bool stopping; /* logout_all ran: no new BMC is made */
};

/* Handles may outlive their driver (a policy state kept across a plugin reload): each call
   checks that its driver is still alive. */
static struct ward_rf_driver *live_drivers;

static bool alive(const struct ward_rf_driver *d)
{
    for (struct ward_rf_driver *p = live_drivers; p != NULL; p = p->next_live) {
        if (p == d) {
            return true;
        }
    }
    return false;
}

struct handle {
    struct ward_rf_driver *d;
    char host[256];
};

struct pending {
    struct ward_async *a;
    struct ward_rf_op *op;
    struct ward_rf_driver *d;
    enum ward_rf_op_kind kind;
    char host[256];
    char arg[64];
};

static struct host *find_host(struct ward_rf_driver *d, const char *name)
{
    return ward_strmap_get(&d->index, name);
}

/* ---- hosts ------------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *a, const char *b)
{
    const char *v = ward_rf_str(o, a);
    return v != NULL ? v : (b != NULL ? ward_rf_str(o, b) : NULL);
}

static char *read_small(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char buf[256];
    char *s = fgets(buf, sizeof(buf), f) != NULL ? buf : NULL;
    fclose(f);
    if (s == NULL) {
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return strdup(buf);
}

/* A spec that cannot be used any more: the BMC made from the old one is dropped, so the
 * power sync does not go on reading an address the host no longer has. */
static void drop_host(struct ward_rf_driver *d, const char *name)
{
    (void)ward_rf_driver_remove(d, name); /* -ENOENT: there was none */
}

/* Find or (re)create the host's BMC from its spec. 0, or -errno with a reason (and no BMC
 * kept for the host). */
static int host_for(struct ward_rf_driver *d, const char *name, const char *spec_json,
                    struct host **out, char *reason, size_t rlen)
{
    cJSON *spec = cJSON_Parse(spec_json != NULL ? spec_json : "{}");
    const cJSON *bmc = cJSON_GetObjectItemCaseSensitive(spec, "bmc");
    if (!cJSON_IsObject(bmc)) {
        bmc = spec;
    }
    const char *address = jstr(bmc, "address", NULL);
    if (address == NULL) {
        cJSON_Delete(spec);
        snprintf(reason, rlen, "host %s has no bmc.address", name);
        drop_host(d, name);
        return -EINVAL;
    }
    struct ward_rf_bmc_config cfg = {
        .name = name,
        .address = address,
        .system = jstr(bmc, "system", NULL),
        .cainfo = jstr(bmc, "caBundle", "ca_bundle"),
        .username = jstr(bmc, "username", NULL),
        .password_file = jstr(bmc, "passwordFile", "password_file"),
        .password_env = jstr(bmc, "passwordEnv", "password_env"),
    };
    const cJSON *insecure = cJSON_GetObjectItemCaseSensitive(bmc, "insecure");
    cfg.insecure = cJSON_IsTrue(insecure);
    const cJSON *cred = cJSON_GetObjectItemCaseSensitive(bmc, "credentials");
    char pw_path[1024];
    char *user = NULL;
    if (cJSON_IsObject(cred)) {
        cfg.username = jstr(cred, "username", NULL);
        cfg.password_file = jstr(cred, "passwordFile", "password_file");
        cfg.password_env = jstr(cred, "passwordEnv", "password_env");
    } else if (cJSON_IsString(cred)) {
        /* a named credentials set under the plugin's credentials directory */
        const char *set = cred->valuestring;
        if (d->credentials_dir == NULL || set[0] == '\0' || strchr(set, '/') != NULL ||
            set[0] == '.') {
            snprintf(reason, rlen,
                     "host %s: credentials set '%.64s' cannot be used (set credentials_dir in the "
                     "redfish plugin's configuration; names have no '/')",
                     name, set);
            cJSON_Delete(spec); /* set points into spec */
            drop_host(d, name);
            return -EINVAL;
        }
        char upath[1024];
        snprintf(upath, sizeof(upath), "%s/%s/username", d->credentials_dir, set);
        snprintf(pw_path, sizeof(pw_path), "%s/%s/password", d->credentials_dir, set);
        user = read_small(upath);
        cfg.username = user;
        cfg.password_file = pw_path;
    }
    char sig[2048];
    snprintf(sig, sizeof(sig), "%s|%s|%s|%s|%s|%s|%d", address, cfg.username ? cfg.username : "",
             cfg.password_file ? cfg.password_file : "", cfg.password_env ? cfg.password_env : "",
             cfg.cainfo ? cfg.cainfo : "", cfg.system ? cfg.system : "", cfg.insecure);
    struct host *h = find_host(d, name);
    if (h != NULL && strcmp(h->signature, sig) == 0) {
        free(user);
        cJSON_Delete(spec);
        *out = h;
        return 0;
    }
    if (d->stopping) {
        free(user);
        cJSON_Delete(spec);
        snprintf(reason, rlen, "host %s: wardd is shutting down; its BMC is not opened again",
                 name);
        return -ESHUTDOWN;
    }
    struct ward_error err = {0};
    struct ward_rf_bmc *b = ward_rf_bmc_create(d->client, &cfg, &err);
    free(user);
    cJSON_Delete(spec);
    if (b == NULL) {
        snprintf(reason, rlen, "%s", err.text);
        drop_host(d, name);
        return err.code != 0 ? err.code : -EINVAL;
    }
    if (h != NULL) {
        /* the spec changed: the next calls use the new BMC config (the old session ends,
           unless the address and credentials stay: then the new object goes on with it),
           and what the driver knew of the old BMC (power, an outage) is forgotten */
        ward_rf_bmc_destroy(h->bmc);
        free(h->signature);
        h->power[0] = '\0';
        h->power_goal[0] = '\0';
        h->failed_syncs = 0;
        h->sync_error[0] = '\0';
        h->unreachable = false;
    } else {
        h = calloc(1, sizeof(*h));
        if (h == NULL || (h->name = strdup(name)) == NULL ||
            ward_strmap_put(&d->index, h->name, h) != 0) {
            if (h != NULL) {
                free(h->name);
            }
            free(h);
            ward_rf_bmc_destroy(b);
            snprintf(reason, rlen, "out of memory");
            return -ENOMEM;
        }
        h->next = d->hosts;
        d->hosts = h;
    }
    h->bmc = b;
    h->signature = strdup(sig);
    *out = h;
    return 0;
}

static void host_free(struct host *h)
{
    ward_rf_bmc_destroy(h->bmc);
    free(h->signature);
    free(h->name);
    free(h);
}

void ward_rf_driver_forget(void *self, const char *host)
{
    /* a host ward never opened has no BMC object here: nothing to end */
    ward_rf_driver_remove(self, host);
}

/* What the driver learned about a host's power reaches its policy (status.observed.power). */
static void observe_power(const struct host *h)
{
    if (ward_policy_observe != NULL && h->power[0] != '\0') {
        ward_policy_observe(NULL, h->name, "power", h->power);
    }
}

/* Power syncs in a row that must fail before the policy hears that the BMC cannot be read:
 * one failed read (a BMC busy for a moment, after its retries) is not news. */
#define SYNC_FAILURES_REPORTED 2

/* Copy at most cap - 1 bytes of src, never cutting a UTF-8 sequence in two. */
static void copy_whole_chars(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) {
            n--; /* src[n] continues a sequence that would be cut: leave it all out */
        }
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/*
 * Whether the BMC can be read reaches the policy as status.observed.bmc: "ok", or, once
 * SYNC_FAILURES_REPORTED power syncs in a row failed, why the first of them failed and
 * since when. That text stays the same for the whole outage (a timeout's message changes
 * with every try, and each change would be a store write, a reconcile and news), and a
 * new outage, after a restart too, never repeats an old one. A sync that reads the BMC
 * says "ok" (the engine writes nothing when that is what it already has); any other
 * operation that succeeds says it only when this driver reported a failure, so enrolling
 * a fleet costs no extra status write.
 */
static void observe_bmc(struct host *h, bool from_sync, int code, const char *reason)
{
    if (code == 0) {
        h->failed_syncs = 0;
        h->sync_error[0] = '\0';
        if ((from_sync || h->unreachable) && ward_policy_observe != NULL) {
            ward_policy_observe(NULL, h->name, "bmc", "ok");
        }
        h->unreachable = false;
        return;
    }
    if (!from_sync || code == -ECANCELED) {
        return; /* the policy sees its own operations fail; a cancelled read says nothing */
    }
    /* the outage's first failure (an open breaker's refusal names the failure behind it) */
    if (h->failed_syncs == 0) {
        char what[200];
        copy_whole_chars(what, sizeof(what), reason != NULL ? reason : "the BMC could not be read");
        char since[32];
        time_t t = time(NULL);
        struct tm tm;
        strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        snprintf(h->sync_error, sizeof(h->sync_error), "%s (since %s)", what, since);
    }
    if (++h->failed_syncs >= SYNC_FAILURES_REPORTED && !h->unreachable &&
        ward_policy_observe != NULL) {
        ward_policy_observe(NULL, h->name, "bmc", h->sync_error);
        h->unreachable = true;
    }
}

int ward_rf_driver_remove(struct ward_rf_driver *d, const char *host)
{
    for (struct host **p = &d->hosts; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, host) == 0) {
            struct host *h = *p;
            *p = h->next;
            ward_strmap_remove(&d->index, h->name);
            host_free(h);
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- the Lua handle --------------------------------------------------------------- */

static int push_result(lua_State *L, void *arg)
{
    const cJSON *result = arg;
    ward_sandbox_push_json(L, result);
    return 1;
}

/*
 * A power change whose end ward did not see may still be carried out by the BMC, which can
 * take a while to switch: its run let go, or it failed (the wait ran out, the state could not
 * be read), after the BMC took its Reset or may have. Until the sync sees the state it leads
 * to, or power_timeout has passed, neither the old state nor the new one is reported as a
 * change behind ward's back, and the policy is not told of the states on the way. A restart of a
 * host that was On leads back to On: it has arrived only once Off has been seen (a warm reset that
 * never shows Off is waited out). A change refused or never sent sets no expectation.
 */
static void expect_power(const struct pending *p, const char *goal)
{
    struct host *h = p->kind == WARD_RF_OP_POWER && alive(p->d) ? find_host(p->d, p->host) : NULL;
    if (h != NULL) {
        snprintf(h->power_goal, sizeof(h->power_goal), "%s", goal);
        h->goal_until =
            ward_rf_client_now(p->d->client) + ward_rf_client_power_timeout(p->d->client);
        h->goal_cycle = ward_rf_power_restarts(p->arg) && strcmp(h->power, "On") == 0;
    }
}

/*
 * A read of h's power: a sync (report: a change behind ward's back is logged and reported),
 * or a policy's own power_state() or inventory(), reported only when it ends a wait that has
 * passed. A wait for a power change ends when the state it leads to is seen or power_timeout
 * has passed. While the BMC is still switching, what it shows is on the way: not news to the
 * policy (it would take it for a host powered other than its state expects), and not what
 * ward knows either, so that once the wait has passed, where the host ended up is compared
 * with where it was.
 */
static void saw_power(struct ward_rf_driver *d, struct host *h, const char *seen, bool report)
{
    bool expected = h->power_goal[0] != '\0' && ward_rf_client_now(d->client) < h->goal_until;
    /* a wait that has passed: where the host is now is compared with where it was, whoever
       reads it first */
    report = report || (h->power_goal[0] != '\0' && !expected);
    if (expected && h->goal_cycle) {
        h->goal_cycle = strcmp(seen, "Off") != 0; /* Off seen: On is the goal now */
    } else if (!expected || strcmp(seen, h->power_goal) == 0) {
        h->power_goal[0] = '\0'; /* arrived, or no longer waited for */
    }
    if (h->power_goal[0] != '\0') {
        return;
    }
    if (report && !expected && h->power[0] != '\0' && strcmp(h->power, seen) != 0) {
        ward_log_fields(WARD_LOG_WARN, "redfish",
                        (const struct ward_log_field[]){
                            {"host", h->name}, {"expected", h->power}, {"seen", seen}},
                        3, "power state differs from what ward last knew");
        if (d->hook != NULL) {
            d->hook(d->hook_arg, h->name, h->power, seen);
        }
    }
    snprintf(h->power, sizeof(h->power), "%s", seen);
    observe_power(h);
}

static void on_op_done(void *arg, int code, const cJSON *result, const char *reason)
{
    struct pending *p = arg;
    if (code != 0 && cJSON_IsString(result)) {
        expect_power(p, result->valuestring); /* failed after the BMC took the Reset */
    }
    if (code == 0 && alive(p->d)) {
        struct host *h = find_host(p->d, p->host);
        if (h != NULL && p->kind == WARD_RF_OP_POWER_STATE && cJSON_IsString(result)) {
            saw_power(p->d, h, result->valuestring, false);
        } else if (h != NULL && p->kind == WARD_RF_OP_POWER) {
            const char *goal = ward_rf_power_goal(p->arg);
            h->power_goal[0] = '\0'; /* seen to its end */
            if (ward_rf_power_restarts(p->arg) && strcmp(h->power, "On") == 0) {
                /* it ended on seeing On, which the host showed before: its cycle may be
                   still to come */
                expect_power(p, "On");
            }
            snprintf(h->power, sizeof(h->power), "%s", goal != NULL ? goal : "");
            /* ward's own power changes are told too, so the policy never compares with a
               stale read */
            observe_power(h);
        } else if (h != NULL && p->kind == WARD_RF_OP_INVENTORY) {
            const char *ps = ward_rf_str(result, "power_state");
            if (ps != NULL) {
                saw_power(p->d, h, ps, false);
            }
        }
        if (h != NULL && p->kind != WARD_RF_OP_CONNECT) {
            /* (a connect with a session already open completes without asking the BMC) */
            observe_bmc(h, false, 0, NULL);
        }
    }
    if (code == 0) {
        ward_async_complete(p->a, push_result, (void *)result);
    } else {
        ward_async_fail(p->a, reason);
    }
    free(p);
}

static void on_cancel(void *arg)
{
    struct pending *p = arg;
    const char *heading = ward_rf_op_power_heading(p->op);
    if (heading != NULL) {
        expect_power(p, heading);
    }
    ward_rf_op_cancel(p->op);
    free(p);
}

static int fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

static int start(lua_State *L, enum ward_rf_op_kind kind, const char *arg, const char *body)
{
    struct handle *hd = luaL_checkudata(L, 1, HANDLE_MT);
    if (ward_async_begin == NULL) {
        return fail(L, "this wardd has no policy engine to wait on BMC calls");
    }
    if (hd->d == NULL || !alive(hd->d)) {
        return fail(L, "the redfish plugin was unloaded");
    }
    struct host *h = find_host(hd->d, hd->host);
    if (h == NULL) {
        return fail(L, "the host was removed");
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return fail(L, "out of memory");
    }
    h->logged_out = kind == WARD_RF_OP_LOGOUT;
    p->d = hd->d;
    p->kind = kind;
    snprintf(p->host, sizeof(p->host), "%s", hd->host);
    snprintf(p->arg, sizeof(p->arg), "%s", arg != NULL ? arg : "");
    /* the operation never completes inside this call, so it can start before the yield */
    p->op = ward_rf_op_start(h->bmc, kind, arg, body, on_op_done, p);
    if (p->op == NULL) {
        free(p);
        return fail(L, errno == ESHUTDOWN ? "the BMC connection is closing: wardd is shutting down"
                                          : "out of memory");
    }
    p->a = ward_async_begin(L, on_cancel, p);
    if (p->a == NULL) {
        ward_rf_op_cancel(p->op);
        free(p);
        return ward_async_refuse(L);
    }
    return ward_async_yield(L, p->a);
}

static int m_connect(lua_State *L)
{
    return start(L, WARD_RF_OP_CONNECT, NULL, NULL);
}

static int m_inventory(lua_State *L)
{
    return start(L, WARD_RF_OP_INVENTORY, NULL, NULL);
}

static int m_power(lua_State *L)
{
    return start(L, WARD_RF_OP_POWER, luaL_checkstring(L, 2), NULL);
}

static int m_power_state(lua_State *L)
{
    return start(L, WARD_RF_OP_POWER_STATE, NULL, NULL);
}

static int m_eject_media(lua_State *L)
{
    return start(L, WARD_RF_OP_EJECT_MEDIA, NULL, NULL);
}

static int m_insert_media(lua_State *L)
{
    return start(L, WARD_RF_OP_INSERT_MEDIA, luaL_checkstring(L, 2), NULL);
}

static int m_set_boot_once(lua_State *L)
{
    return start(L, WARD_RF_OP_BOOT_ONCE, luaL_optstring(L, 2, "Cd"), NULL);
}

static int m_clear_boot_override(lua_State *L)
{
    return start(L, WARD_RF_OP_BOOT_CLEAR, NULL, NULL);
}

static int m_get(lua_State *L)
{
    return start(L, WARD_RF_OP_GET, luaL_checkstring(L, 2), NULL);
}

static int with_body(lua_State *L, enum ward_rf_op_kind kind)
{
    const char *path = luaL_checkstring(L, 2);
    struct ward_error err = {.text = "the body must be a table"};
    cJSON *body = lua_istable(L, 3) ? ward_sandbox_to_json(L, 3, "the body", &err) : NULL;
    if (body == NULL && !lua_isnoneornil(L, 3)) {
        return fail(L, err.text);
    }
    char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    /* start() yields, so free the text first: the operation keeps its own copy */
    char copy[8192];
    if (text != NULL && strlen(text) >= sizeof(copy)) {
        free(text);
        return fail(L, "the body is too large");
    }
    snprintf(copy, sizeof(copy), "%s", text != NULL ? text : "{}");
    free(text);
    return start(L, kind, path, copy);
}

static int m_patch(lua_State *L)
{
    return with_body(L, WARD_RF_OP_PATCH);
}

static int m_post(lua_State *L)
{
    return with_body(L, WARD_RF_OP_POST);
}

static int m_close(lua_State *L)
{
    /* the session is shared by every handle of the host and reused until it expires; it is
       ended by bmc:logout(), host removal or shutdown */
    luaL_checkudata(L, 1, HANDLE_MT);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_logout(lua_State *L)
{
    return start(L, WARD_RF_OP_LOGOUT, NULL, NULL);
}

static int m_reset(lua_State *L)
{
    return start(L, WARD_RF_OP_MANAGER_RESET, NULL, NULL);
}

static int m_tostring(lua_State *L)
{
    struct handle *hd = luaL_checkudata(L, 1, HANDLE_MT);
    lua_pushfstring(L, "redfish BMC of %s", hd->host);
    return 1;
}

static const luaL_Reg methods[] = {
    {"connect", m_connect},
    {"inventory", m_inventory},
    {"power", m_power},
    {"power_state", m_power_state},
    {"eject_media", m_eject_media},
    {"insert_media", m_insert_media},
    {"set_boot_once", m_set_boot_once},
    {"clear_boot_override", m_clear_boot_override},
    {"get", m_get},
    {"patch", m_patch},
    {"post", m_post},
    {"action", m_post},
    {"close", m_close},
    {"logout", m_logout},
    {"reset", m_reset},
    {NULL, NULL},
};

static int open_protected(lua_State *L)
{
    struct handle *src = lua_touserdata(L, 1);
    struct handle *hd = lua_newuserdatauv(L, sizeof(*hd), 0);
    *hd = *src;
    if (luaL_newmetatable(L, HANDLE_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "redfish BMC handle");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    return 1;
}

int ward_rf_driver_open(void *self, lua_State *L, const char *host, const char *spec_json)
{
    struct ward_rf_driver *d = self;
    char reason[600];
    struct host *h = NULL;
    if (host == NULL || strlen(host) >= sizeof(((struct handle *)0)->host)) {
        return fail(L, "bad host name");
    }
    int rc = host_for(d, host, spec_json, &h, reason, sizeof(reason));
    if (rc != 0) {
        return fail(L, reason);
    }
    struct handle tmp = {.d = d};
    snprintf(tmp.host, sizeof(tmp.host), "%s", host);
    /* allocation in L may raise (memory cap): keep it inside a protected call */
    lua_pushcfunction(L, open_protected);
    lua_pushlightuserdata(L, &tmp);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return fail(L, "cannot create the BMC handle (out of memory)");
    }
    return 1;
}

/* ---- power sync ------------------------------------------------------------------- */

struct sync_req {
    struct ward_rf_driver *d;
    char host[256];
};

static void on_sync(void *arg, int code, const cJSON *result, const char *reason)
{
    struct sync_req *s = arg;
    struct ward_rf_driver *d = s->d;
    struct host *h = alive(d) ? find_host(d, s->host) : NULL;
    if (h != NULL) {
        h->syncing = false;
        if (code == 0 && cJSON_IsString(result)) {
            saw_power(d, h, result->valuestring, true);
        }
        bool no_power = code == 0 && !cJSON_IsString(result);
        observe_bmc(h, true, no_power ? -EBADMSG : code,
                    no_power ? "the BMC's system answered without a PowerState" : reason);
    }
    free(s);
}

void ward_rf_driver_sync_now(struct ward_rf_driver *d)
{
    for (struct host *h = d->hosts; h != NULL; h = h->next) {
        if (h->syncing || h->logged_out) {
            continue; /* its previous read is still queued or running, or it was logged out */
        }
        struct sync_req *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return;
        }
        s->d = d;
        snprintf(s->host, sizeof(s->host), "%s", h->name);
        if (ward_rf_op_start(h->bmc, WARD_RF_OP_POWER_STATE, NULL, NULL, on_sync, s) == NULL) {
            free(s); /* this BMC is closing: the others are still read */
            continue;
        }
        h->syncing = true;
    }
}

static void on_sync_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_driver *d = ward_rf_container_of(w, struct ward_rf_driver, sync_timer);
    ward_rf_driver_sync_now(d);
    /* jitter each round by up to 10% so a fleet's reads spread out */
    double next = d->sync_interval * (0.9 + 0.2 * ((double)random() / RAND_MAX));
    ev_timer_set(w, next, 0.);
    ev_timer_start(loop, w);
}

void ward_rf_driver_start_sync(struct ward_rf_driver *d, struct ev_loop *loop)
{
    d->loop = loop;
    if (d->sync_interval <= 0) {
        return;
    }
    double first = d->sync_interval * ((double)random() / RAND_MAX);
    ev_timer_init(&d->sync_timer, on_sync_timer, first, 0.);
    ev_timer_start(loop, &d->sync_timer);
}

unsigned ward_rf_driver_logout_all(struct ward_rf_driver *d, void (*done)(void *arg), void *arg)
{
    unsigned n = 0;
    if (d == NULL) {
        return 0;
    }
    if (d->loop != NULL) {
        ev_timer_stop(d->loop, &d->sync_timer);
    }
    /* closing ends the hosts' other operations (a power wait could outlast the grace) and
       refuses new ones, so no run logs in again behind the logout; no new BMC is made
       either (a run that opens a host whose settings changed gets an error) */
    d->stopping = true;
    n = ward_rf_client_close_all(d->client, done, arg);
    return n;
}

void ward_rf_driver_set_power_hook(struct ward_rf_driver *d, ward_rf_power_hook fn, void *arg)
{
    d->hook = fn;
    d->hook_arg = arg;
}

unsigned ward_rf_driver_hosts(const struct ward_rf_driver *d)
{
    unsigned n = 0;
    for (const struct host *h = d->hosts; h != NULL; h = h->next) {
        n++;
    }
    return n;
}

struct ward_rf_bmc *ward_rf_driver_bmc(struct ward_rf_driver *d, const char *host)
{
    struct host *h = find_host(d, host);
    return h != NULL ? h->bmc : NULL;
}

struct ward_rf_driver *ward_rf_driver_create(struct ward_rf_client *client,
                                             const struct ward_rf_driver_opts *o)
{
    struct ward_rf_driver *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    d->client = client;
    d->sync_interval = o->power_sync_interval;
    if (o->credentials_dir != NULL && o->credentials_dir[0] != '\0') {
        d->credentials_dir = strdup(o->credentials_dir);
        if (d->credentials_dir == NULL) {
            free(d);
            return NULL;
        }
    }
    ev_timer_init(&d->sync_timer, on_sync_timer, 0., 0.);
    d->next_live = live_drivers;
    live_drivers = d;
    return d;
}

void ward_rf_driver_destroy(struct ward_rf_driver *d)
{
    if (d == NULL) {
        return;
    }
    if (d->loop != NULL) {
        ev_timer_stop(d->loop, &d->sync_timer);
    }
    while (d->hosts != NULL) {
        struct host *h = d->hosts;
        d->hosts = h->next;
        host_free(h);
    }
    ward_strmap_free(&d->index);
    for (struct ward_rf_driver **p = &live_drivers; *p != NULL; p = &(*p)->next_live) {
        if (*p == d) {
            *p = d->next_live;
            break;
        }
    }
    free(d->credentials_dir);
    free(d);
}
