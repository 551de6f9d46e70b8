/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "agent.h"
#include "api.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "plugin.h"
#include "policy.h"
#include "provqueue.h"
#include "store.h"
#include "util.h"

#define HOST_KIND "PhysicalHost"

struct ward_agent {
    struct ward_daemon *d;
    struct ward_store *store;          /* owned */
    struct ward_policy_engine *engine; /* owned */
    struct ward_operator *op;          /* owned */
    struct ward_api_policy glue;
    struct ward_events *events;                    /* the operator's; NULL until it has started */
    struct ward_provqueue *queue;                  /* owned */
    struct ward_provqueue_settings queue_settings; /* the last good ones */
    /* a reload's settings, once queue_reload_check accepted them, for queue_reload_apply */
    struct ward_provqueue_settings queue_next;
    bool subscribed;
    char *(*explain)(void *arg, const char *ns, const char *name, struct ward_error *err);
};

#define QUEUE_STATE "Provisioning"

/* ------------------------------------------------------------- the provisioning queue */

static char *lifecycle_of(struct ward_store *st, const char *name)
{
    struct ward_state *states = NULL;
    size_t n = 0;
    char *state = NULL;
    if (ward_store_states(st, HOST_KIND, WARD_POLICY_NAMESPACE, name, &states, &n, NULL) == 0) {
        for (size_t i = 0; i < n && state == NULL; i++) {
            if (strcmp(states[i].dimension, WARD_STORE_LIFECYCLE) == 0) {
                state = strdup(states[i].state);
            }
        }
        ward_state_free(states, n);
    }
    return state;
}

/*
 * Where a queued host stands, from the store (written synchronously by the
 * API and by the engine's commits): inside while it is Provisioning, still a
 * request while it is Claimed with a consumer and a boot image, gone otherwise.
 */
static int queue_check(void *arg, const char *name)
{
    struct ward_agent *a = arg;
    struct ward_resource *r = NULL;
    if (ward_store_get(a->store, HOST_KIND, WARD_POLICY_NAMESPACE, name, &r, NULL) != 0) {
        return WARD_PROVQUEUE_GONE;
    }
    char *state = lifecycle_of(a->store, name);
    int answer = WARD_PROVQUEUE_GONE;
    if (state != NULL && strcmp(state, QUEUE_STATE) == 0) {
        answer = WARD_PROVQUEUE_INSIDE;
    } else if (state != NULL && strcmp(state, WARD_STORE_CLAIMED) == 0 && r->consumer != NULL &&
               *r->consumer != '\0') {
        cJSON *spec = cJSON_Parse(r->spec != NULL ? r->spec : "{}");
        const cJSON *iso = cJSON_GetObjectItemCaseSensitive(spec, "bootISOSource");
        if (cJSON_IsString(iso) && iso->valuestring[0] != '\0') {
            answer = WARD_PROVQUEUE_WANTED;
        }
        cJSON_Delete(spec);
    }
    free(state);
    ward_resource_free(r);
    return answer;
}

static void queue_kick(void *arg, const char *name)
{
    struct ward_agent *a = arg;
    ward_policy_enqueue(a->engine, HOST_KIND, name);
}

/* Claims, releases, images, transitions and removals of queued hosts: re-check them. */
static void queue_on_store_change(void *arg, const struct ward_store_change *c)
{
    struct ward_agent *a = arg;
    if (a->queue != NULL && c->kind != NULL && c->name != NULL && c->ns != NULL &&
        strcmp(c->kind, HOST_KIND) == 0 && strcmp(c->ns, WARD_POLICY_NAMESPACE) == 0) {
        ward_provqueue_changed(a->queue, c->name);
    }
}

static struct ward_agent *agent_of_glue(void *arg)
{
    return ward_container_of((struct ward_api_policy *)arg, struct ward_agent, glue);
}

static void api_queue_status(void *arg, struct ward_buf *out)
{
    ward_provqueue_status(agent_of_glue(arg)->queue, out);
}

static int api_queue_drain(void *arg, bool drain, struct ward_error *err)
{
    (void)err;
    struct ward_agent *a = agent_of_glue(arg);
    ward_provqueue_drain(a->queue, drain);
    char message[160];
    snprintf(message, sizeof(message),
             drain ? "provisioning queue drained: nothing new is admitted (%u in flight, %u "
                     "waiting)"
                   : "provisioning queue resumed: up to %u in flight, %u waiting",
             drain ? ward_provqueue_processing(a->queue) : ward_provqueue_limit(a->queue),
             ward_provqueue_length(a->queue));
    ward_log(WARD_LOG_WARN, "provqueue", "%s", message);
    if (a->events != NULL) {
        ward_events_record(a->events, "Normal", drain ? "QueueDrained" : "QueueResumed", message,
                           "ProvisioningQueue", WARD_POLICY_NAMESPACE, "provisioning");
    }
    return 0;
}

static int api_queue_offer(void *arg, const char *name, struct ward_error *err)
{
    return ward_provqueue_offer(agent_of_glue(arg)->queue, name, err);
}

/* explain, plus where the host stands in the provisioning queue */
static char *api_explain(void *arg, const char *ns, const char *name, struct ward_error *err)
{
    struct ward_agent *a = agent_of_glue(arg);
    char *json = a->explain(arg, ns, name, err);
    int pos = json != NULL ? ward_provqueue_position(a->queue, name) : -1;
    if (pos < 0) {
        return json;
    }
    cJSON *doc = cJSON_Parse(json);
    cJSON *q = cJSON_CreateObject();
    if (!cJSON_IsObject(doc) || q == NULL) {
        cJSON_Delete(doc);
        cJSON_Delete(q);
        return json;
    }
    cJSON_AddStringToObject(q, "status", pos == 0 ? "admitted" : "waiting");
    cJSON_AddNumberToObject(q, "position", pos);
    cJSON_AddNumberToObject(q, "length", ward_provqueue_length(a->queue));
    cJSON_AddBoolToObject(q, "draining", ward_provqueue_draining(a->queue));
    cJSON_AddItemToObject(doc, "provisioningQueue", q);
    char *out = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (out == NULL) {
        return json;
    }
    free(json);
    return out;
}

/*
 * SIGHUP, in two hooks around the policy reload: queue_reload_check refuses a bad provisioning
 * section before the policies are recompiled; queue_reload_apply runs only once every other hook
 * (the policy reload among them) has accepted, so a refused reload changes nothing.
 */
static int queue_reload_check(struct ward_daemon *d, const struct ward_config *next, void *arg,
                              struct ward_error *err)
{
    (void)d;
    struct ward_agent *a = arg;
    int rc = ward_provqueue_settings_read(next, &a->queue_next, err);
    if (rc != 0) {
        ward_log(WARD_LOG_ERROR, "provqueue",
                 "reload: %s; the provisioning queue keeps "
                 "maxQueueSize %u, workerCount %u, maxConcurrentOps %u",
                 err->text, a->queue_settings.max_queue_size, a->queue_settings.worker_count,
                 a->queue_settings.max_concurrent_ops);
    }
    return rc;
}

static int queue_reload_apply(struct ward_daemon *d, const struct ward_config *next, void *arg,
                              struct ward_error *err)
{
    (void)d;
    (void)next;
    (void)err;
    struct ward_agent *a = arg;
    const struct ward_provqueue_settings s = a->queue_next;
    if (memcmp(&s, &a->queue_settings, sizeof(s)) != 0) {
        a->queue_settings = s;
        ward_provqueue_configure(a->queue, &s);
        ward_log(WARD_LOG_INFO, "provqueue",
                 "provisioning queue: maxQueueSize %u, workerCount %u, maxConcurrentOps %u%s",
                 s.max_queue_size, s.worker_count, s.max_concurrent_ops,
                 ward_provqueue_draining(a->queue) ? " (still drained: resume to apply)" : "");
    }
    return 0;
}

/* Hosts already Provisioning (before a restart) hold slots; claimed ones queue when they ask. */
static int queue_seed(struct ward_agent *a, struct ward_error *err)
{
    struct ward_store_filter f = {
        .kind = HOST_KIND, .dimension = WARD_STORE_LIFECYCLE, .state = QUEUE_STATE};
    struct ward_resource **list = NULL;
    size_t n = 0;
    int rc = ward_store_list(a->store, &f, &list, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = ward_provqueue_offer(a->queue, list[i]->name, err);
        ward_provqueue_changed(a->queue, list[i]->name);
    }
    ward_resource_list_free(list, n);
    if (rc == 0) {
        ward_provqueue_settle(a->queue);
    }
    return rc;
}

static int queue_start(struct ward_agent *a, const struct ward_config *cfg, struct ward_error *err)
{
    if (ward_provqueue_settings_read(cfg, &a->queue_settings, err) != 0) {
        return err->code;
    }
    struct ward_provqueue_options qo = {.settings = a->queue_settings,
                                        .metrics = ward_daemon_metrics(a->d),
                                        .loop = ward_daemon_loop(a->d),
                                        .check = queue_check,
                                        .kick = queue_kick,
                                        .arg = a};
    a->queue = ward_provqueue_create(&qo, err);
    if (a->queue == NULL) {
        return err->code;
    }
    if (ward_store_subscribe(a->store, queue_on_store_change, a) != 0) {
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    a->subscribed = true;
    int rc = ward_policy_engine_on_admit(a->engine, HOST_KIND, QUEUE_STATE, ward_provqueue_admit,
                                         a->queue);
    if (rc != 0) {
        return ward_error_set(err, rc, "cannot hook the provisioning queue into the engine");
    }
    return 0;
}

/* Engine events reach the operator's event set once it exists. */
static void on_policy_event(void *arg, const struct ward_policy_event *ev)
{
    struct ward_agent *a = arg;
    if (a->events != NULL) {
        ward_api_policy_event(a->events, ev);
    }
}

static int mkdir_p(const char *path, struct ward_error *err)
{
    struct ward_buf b = {0};
    ward_buf_puts(&b, path);
    for (char *p = b.data + 1; ; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(b.data, 0750) != 0 && errno != EEXIST) {
                int rc = ward_error_set(err, -errno,
                                        "cannot create the state directory %s: %s (set state_dir "
                                        "in the configuration to a writable place)",
                                        b.data, strerror(errno));
                ward_buf_free(&b);
                return rc;
            }
            if (end) {
                break;
            }
            *p = '/';
        }
    }
    ward_buf_free(&b);
    return 0;
}

/* Read the optional `policy = { reconcile_timeout = "30m", ... }` section. */
static int policy_options(const struct ward_config *cfg, struct ward_policy_options *o,
                          struct ward_error *err)
{
    int rc = ward_policy_options_init(o, err);
    if (rc != 0) {
        return rc;
    }
    lua_State *L = cfg->L;
    int top = lua_gettop(L);
    int type = ward_config_section(cfg, "policy");
    if (type != LUA_TTABLE) {
        lua_settop(L, top);
        return type == LUA_TNIL
                   ? 0
                   : ward_error_set(err, -EINVAL,
                                    "policy must be a table of settings: policy = "
                                    "{ reconcile_timeout = \"30m\", max_retries = 3 }");
    }
    int tbl = lua_gettop(L);
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, tbl) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING ||
            (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
            rc = ward_error_set(err, -EINVAL, "policy: settings are name = \"value\" pairs");
        } else {
            lua_pushvalue(L, -1); /* tostring converts in place: work on a copy */
            rc = ward_policy_options_set(o, lua_tostring(L, -3), lua_tostring(L, -1), err);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return rc;
}

/*
 * A host's `labels = {rack = "r1"}` from the configuration go to the store's labels column,
 * the one `GET /api/v1/hosts?label=rack=r1` and claim selectors filter on (not the spec).
 * Written when they differ from the stored ones, so a restart with edited labels updates
 * them; labels given through the API to an inventory host are replaced on the next start.
 */
static int update_inventory_host(struct ward_agent *a, const struct ward_config_host *h,
                                 const char *current, const cJSON *want, struct ward_error *err);

static int inventory_labels(struct ward_agent *a, const struct ward_config_host *h,
                            const cJSON *labels, struct ward_error *err)
{
    struct ward_resource *r = NULL;
    int rc = ward_store_get(a->store, HOST_KIND, WARD_POLICY_NAMESPACE, h->name, &r, err);
    if (rc != 0) {
        return rc;
    }
    cJSON *have = cJSON_Parse(r->labels != NULL ? r->labels : "{}");
    bool same = have != NULL && cJSON_Compare(have, labels, true);
    cJSON_Delete(have);
    if (!same) {
        char *text = cJSON_PrintUnformatted(labels);
        struct ward_resource u = {
            .kind = HOST_KIND, .ns = WARD_POLICY_NAMESPACE, .name = h->name, .labels = text};
        rc = text != NULL ? ward_store_update(a->store, &u, r->version, err)
                          : ward_error_set(err, -ENOMEM, "out of memory");
        free(text);
        /* the engine takes the new version now, so its next commit does not conflict */
        if (rc == 0) {
            rc = ward_policy_resource_refresh(a->engine, HOST_KIND, h->name, err);
        }
        if (rc == 0) {
            ward_log_fields(WARD_LOG_INFO, "agent", &(struct ward_log_field){"resource", h->name},
                            1, "host %s: labels set from the inventory", h->name);
        }
    }
    ward_resource_free(r);
    return rc;
}

/* Take `labels` out of a configured spec (NULL when absent); checks they are strings. */
static int detach_labels(const struct ward_config_host *h, cJSON *spec, cJSON **out,
                         struct ward_error *err)
{
    *out = cJSON_DetachItemFromObjectCaseSensitive(spec, "labels");
    if (*out == NULL) {
        return 0;
    }
    if (cJSON_IsArray(*out) && cJSON_GetArraySize(*out) == 0) {
        /* `labels = {}` in Lua reads as an empty list: no labels */
        cJSON_Delete(*out);
        *out = cJSON_CreateObject();
        return *out != NULL ? 0 : ward_error_set(err, -ENOMEM, "out of memory");
    }
    bool good = cJSON_IsObject(*out);
    const cJSON *l;
    cJSON_ArrayForEach(l, *out)
    {
        good = good && cJSON_IsString(l) && l->string != NULL && l->string[0] != '\0';
    }
    if (!good) {
        cJSON_Delete(*out);
        *out = NULL;
        return ward_error_set(err, -EINVAL,
                              "host %s (line %d): labels must be name = \"value\" strings, "
                              "like labels = { rack = \"r1\" }",
                              h->name, h->line);
    }
    return 0;
}

/*
 * An inventory host enters the store once. Later starts keep what the store
 * has (claims, boot image) and only take a changed `bmc` or `labels` from the
 * configuration, so editing a BMC address does not lose a claim.
 */
static int add_inventory_host(struct ward_agent *a, const struct ward_config_host *h,
                              struct ward_error *err)
{
    cJSON *want = cJSON_Parse(h->spec_json);
    cJSON *labels = NULL;
    if (!cJSON_IsObject(want)) {
        cJSON_Delete(want);
        return ward_error_set(err, -EINVAL, "host %s: configured spec is not an object", h->name);
    }
    int rc = detach_labels(h, want, &labels, err);
    char *current = rc == 0 ? ward_policy_resource_json(a->engine, HOST_KIND, h->name) : NULL;
    if (rc == 0 && current == NULL) {
        char *text = cJSON_PrintUnformatted(want);
        rc = text != NULL ? ward_policy_resource_put(a->engine, HOST_KIND, h->name, text, err)
                          : ward_error_set(err, -ENOMEM, "out of memory");
        free(text);
        if (rc == 0) {
            ward_log_fields(WARD_LOG_INFO, "agent", &(struct ward_log_field){"resource", h->name},
                            1, "host %s added from the inventory", h->name);
        }
    } else if (rc == 0) {
        rc = update_inventory_host(a, h, current, want, err);
    }
    free(current);
    if (rc == 0 && labels != NULL) {
        rc = inventory_labels(a, h, labels, err);
    }
    cJSON_Delete(labels);
    cJSON_Delete(want);
    return rc;
}

/* The whole inventory in one store transaction (one fsync for 10,000 hosts instead of
 * one each): all of it is written, or wardd stops with nothing written. */
static int add_inventory(struct ward_agent *a, const struct ward_config *cfg,
                         struct ward_error *err)
{
    if (cfg->nhosts == 0) {
        return 0;
    }
    int rc = ward_store_bulk_begin(a->store, err);
    for (size_t i = 0; rc == 0 && i < cfg->nhosts; i++) {
        rc = add_inventory_host(a, &cfg->hosts[i], err);
    }
    if (rc != 0) {
        ward_store_bulk_end(a->store, false, NULL);
        return rc;
    }
    return ward_store_bulk_end(a->store, true, err);
}

/* A host the store already has: take a changed `bmc` (and drop a `labels` that older
   versions kept in the spec). */
static int update_inventory_host(struct ward_agent *a, const struct ward_config_host *h,
                                 const char *current, const cJSON *want, struct ward_error *err)
{
    cJSON *have = cJSON_Parse(current);
    cJSON *spec = cJSON_DetachItemFromObject(have, "spec");
    int rc = 0;
    if (!cJSON_IsObject(spec)) {
        rc = ward_error_set(err, -EINVAL, "host %s: stored spec is not an object", h->name);
    } else {
        bool changed = false;
        if (cJSON_GetObjectItemCaseSensitive(spec, "labels") != NULL) {
            cJSON_DeleteItemFromObjectCaseSensitive(spec, "labels");
            changed = true;
        }
        static const char *const owned[] = {"bmc"};
        for (size_t i = 0; i < WARD_ARRAY_SIZE(owned); i++) {
            cJSON *w = cJSON_GetObjectItem(want, owned[i]);
            cJSON *o = cJSON_GetObjectItem(spec, owned[i]);
            if (w != NULL && (o == NULL || !cJSON_Compare(w, o, true))) {
                cJSON_DeleteItemFromObject(spec, owned[i]);
                cJSON_AddItemToObject(spec, owned[i], cJSON_Duplicate(w, true));
                changed = true;
            }
        }
        if (changed) {
            char *text = cJSON_PrintUnformatted(spec);
            rc = text != NULL ? ward_policy_resource_put(a->engine, HOST_KIND, h->name, text, err)
                              : ward_error_set(err, -ENOMEM, "out of memory");
            free(text);
            if (rc == 0) {
                ward_log_fields(WARD_LOG_INFO, "agent",
                                &(struct ward_log_field){"resource", h->name}, 1,
                                "host %s: BMC settings updated from the inventory", h->name);
            }
        }
    }
    cJSON_Delete(spec);
    cJSON_Delete(have);
    return rc;
}

static int ready_policies(void *arg, struct ward_error *err)
{
    struct ward_agent *a = arg;
    if (ward_policy_engine_machine(a->engine, HOST_KIND) == NULL) {
        return ward_error_set(err, -ENOENT, "no policy declares %s", HOST_KIND);
    }
    return 0;
}

static int ready_plugins(void *arg, struct ward_error *err)
{
    struct ward_agent *a = arg;
    if (ward_daemon_stopping(a->d)) {
        return ward_error_set(err, -ESHUTDOWN, "shutting down");
    }
    return 0;
}

struct store_settings {
    long long history_keep;
    double history_max_age;
};

/* History grows with every transition for as long as wardd runs: bounded by default. */
static const struct ward_config_entry store_map[] = {
    {WARD_CONFIG_INT, "history_keep", "1000", offsetof(struct store_settings, history_keep),
     "transition records kept per host, newest first; 0 keeps all"},
    {WARD_CONFIG_DURATION, "history_max_age", "90d",
     offsetof(struct store_settings, history_max_age),
     "transition records older than this are removed; \"0s\" keeps them"},
    {0},
};

static int store_settings(const struct ward_config *cfg, struct store_settings *s,
                          struct ward_error *err)
{
    memset(s, 0, sizeof(*s));
    int rc = ward_config_fill_section(cfg, "store", store_map, s, err);
    if (rc == 0 && (s->history_keep < 0 || s->history_keep > 100000000)) {
        rc = ward_error_set(err, -EINVAL, "store: history_keep must be 0 to 100000000, not %lld",
                            s->history_keep);
    }
    return rc;
}

int ward_agent_check_config(const struct ward_config *cfg, struct ward_error *err)
{
    struct ward_policy_options po;
    struct ward_provqueue_settings s;
    struct store_settings ss;
    int rc = policy_options(cfg, &po, err);
    if (rc == 0) {
        rc = store_settings(cfg, &ss, err);
    }
    return rc != 0 ? rc : ward_provqueue_settings_read(cfg, &s, err);
}

struct ward_agent *ward_agent_start(struct ward_daemon *d, struct ward_error *err)
{
    const struct ward_config *cfg = ward_daemon_config(d);
    struct ward_agent *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    a->d = d;
    if (mkdir_p(cfg->state_dir, err) != 0) {
        free(a);
        return NULL;
    }
    struct store_settings ss;
    if (store_settings(cfg, &ss, err) != 0) {
        free(a);
        return NULL;
    }
    char *path = ward_store_path(cfg->state_dir);
    struct ward_store_options so = {.path = path,
                                    .metrics = ward_daemon_metrics(d),
                                    .history_keep = (long)ss.history_keep,
                                    .history_max_age = ss.history_max_age};
    a->store = path != NULL ? ward_store_open(ward_daemon_loop(d), &so, err) : NULL;
    free(path);
    if (a->store == NULL) {
        ward_agent_destroy(a);
        return NULL;
    }

    struct ward_policy_options po;
    struct ward_policy_sink sink;
    if (policy_options(cfg, &po, err) != 0) {
        ward_agent_destroy(a);
        return NULL;
    }
    po.on_event = on_policy_event;
    po.event_arg = a;
    ward_policy_sink_store(&sink, a->store);
    a->engine = ward_policy_engine_create(ward_daemon_loop(d), &sink, ward_daemon_plugins(d),
                                          ward_daemon_metrics(d), &po, err);
    if (a->engine == NULL || ward_policy_engine_load(a->engine, cfg->policy_dir, err) != 0 ||
        queue_start(a, cfg, err) != 0 ||
        ward_policy_engine_restore(a->engine, a->store, err) != 0 || queue_seed(a, err) != 0) {
        ward_agent_destroy(a);
        return NULL;
    }
    if (add_inventory(a, cfg, err) != 0) {
        ward_agent_destroy(a);
        return NULL;
    }

    a->glue = (struct ward_api_policy){.engine = a->engine, .store = a->store};
    struct ward_api_hooks hooks = {0};
    ward_api_policy_hooks(&hooks, &a->glue);
    a->explain = hooks.explain;
    hooks.explain = api_explain;
    hooks.queue_status = api_queue_status;
    hooks.queue_drain = api_queue_drain;
    hooks.queue_offer = api_queue_offer;
    a->op = ward_operator_start(d, a->store, &hooks, err);
    if (a->op == NULL) {
        ward_agent_destroy(a);
        return NULL;
    }
    a->events = ward_operator_events(a->op);
    a->glue.events = a->events;
    ward_http_ready_check(ward_operator_http(a->op), "policies", ready_policies, a);
    ward_http_ready_check(ward_operator_http(a->op), "plugins", ready_plugins, a);
    /* the queue's settings are checked first and applied last (see queue_reload_check) */
    ward_daemon_on_reload(d, queue_reload_check, a);
    ward_daemon_on_reload(d, ward_policy_daemon_reload, a->engine);
    ward_daemon_on_reload(d, queue_reload_apply, a);
    ward_daemon_on_stop(d, ward_policy_daemon_stop, a->engine);
    ward_log(WARD_LOG_INFO, "agent", "serving %zu inventory host(s); state in %s, policies from %s",
             cfg->nhosts, cfg->state_dir, cfg->policy_dir);
    return a;
}

void ward_agent_destroy(struct ward_agent *a)
{
    if (a == NULL) {
        return;
    }
    if (a->op != NULL) {
        ward_operator_stop(a->op);
    }
    if (a->engine != NULL) {
        ward_policy_engine_destroy(a->engine);
    }
    if (a->subscribed) {
        ward_store_unsubscribe(a->store, queue_on_store_change, a);
    }
    ward_provqueue_destroy(a->queue);
    if (a->store != NULL) {
        ward_store_close(a->store);
    }
    free(a);
}
