/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON API under /api/v1, over the store, the event set and hooks the
 * daemon fills for what lives elsewhere (the guarded transition path of the
 * policy engine, policy reload, the provisioning queue, leader election).
 *
 * Requests are parsed and validated first (ward_api_parse: route, names,
 * JSON body with unknown fields refused) into a struct ward_api_call, then
 * executed. Parsing touches no state, so the fuzz target drives it alone.
 *
 *   GET    /api/v1/hosts[?state=S&label=k=v&namespace=N]   list
 *   POST   /api/v1/hosts                {name, namespace?, labels?, spec?}
 *   GET    /api/v1/hosts/NAME                               one host with its states
 *   DELETE /api/v1/hosts/NAME?version=V                     remove (refused while claimed)
 *   GET    /api/v1/hosts/NAME/history[?since=T]
 *   POST   /api/v1/hosts/NAME/transition {to, reason, version, dimension?}
 *   POST   /api/v1/hosts/NAME/reset     {reason, version}  clear the claim, re-enroll
 *   POST   /api/v1/hosts/NAME/release   {consumer}
 *   POST   /api/v1/hosts/NAME/image     {consumer, bootISOSource, version?}  "" clears
 *   POST   /api/v1/claims               {consumer, selector?, bootISOSource?}
 *   GET    /api/v1/events[?kind=K&name=N&type=T&since=T&limit=N]
 *   POST   /api/v1/policy/reload
 *   GET    /api/v1/queue                POST /api/v1/queue/drain, /api/v1/queue/resume
 *   GET    /api/v1/leader
 *
 * Writes to a host carry the version they expect; without one the answer is
 * 428 with the current version, with a stale one 409 with the current one.
 */
#ifndef WARD_CORE_API_H
#define WARD_CORE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include <ward/plugin.h>

#include "util.h"

struct ward_api;
struct ward_events;
struct ward_http;
struct ward_store;

#define WARD_API_KIND "PhysicalHost"
#define WARD_API_DEFAULT_NS "default"
#define WARD_API_NAME_MAX 253
#define WARD_API_REASON_MAX 256

enum ward_api_op {
    WARD_API_HOSTS_LIST = 1,
    WARD_API_HOST_ADD,
    WARD_API_HOST_GET,
    WARD_API_HOST_REMOVE,
    WARD_API_HOST_HISTORY,
    WARD_API_HOST_TRANSITION,
    WARD_API_HOST_RESET,
    WARD_API_HOST_RELEASE,
    WARD_API_CLAIM,
    WARD_API_EVENTS,
    WARD_API_POLICY_RELOAD,
    WARD_API_QUEUE_STATUS,
    WARD_API_QUEUE_DRAIN,
    WARD_API_QUEUE_RESUME,
    WARD_API_LEADER,
    WARD_API_HOST_IMAGE,
    WARD_API_HOST_EXPLAIN,
};

/* A validated request; strings point into buffers the call owns (ward_api_call_free). */
struct ward_api_call {
    enum ward_api_op op;
    char name[WARD_API_NAME_MAX + 1];
    char ns[64];
    cJSON *body;           /* owned; NULL when the route takes none */
    const char *to;        /* transition target state */
    const char *dimension; /* default "lifecycle" */
    const char *reason;
    const char *consumer;
    char *selector;                /* owned JSON text of a label selector, or NULL */
    char *labels;                  /* owned JSON text */
    char *spec;                    /* owned JSON text */
    int64_t version;               /* 0: not given */
    const char *state;             /* list filter */
    char *label_key, *label_value; /* owned; list filter */
    const char *type;              /* events filter */
    const char *kind;              /* events filter */
    double since;
    long limit;
    const char *boot_iso; /* bootISOSource: a validated http(s) URL, "" clears (image) */
};

/* Takes one query-string argument (value NULL for a key without '='); non-zero stops. */
typedef int (*ward_api_query_each_fn)(void *ctx, const char *key, const char *value);
/* Calls each(ctx, key, value) for every query-string argument, in order, until one returns
   non-zero, and returns that (0 when all were taken). */
typedef int (*ward_api_query_fn)(void *arg, ward_api_query_each_fn each, void *ctx);

/*
 * Route and validate one request. Returns 0 with call filled, or the HTTP
 * status to answer (400, 404, 405, 422) with err saying why (err->code holds
 * the status too); call is then empty. path excludes the query string.
 */
int ward_api_parse(const char *method, const char *path, ward_api_query_fn query, void *qarg,
                   const char *body, size_t body_len, struct ward_api_call *call,
                   struct ward_error *err);
void ward_api_call_free(struct ward_api_call *call);

/* DNS-1123 subdomain: lower-case letters, digits, '-' and '.', 1-253, alphanumeric ends. */
bool ward_api_valid_name(const char *name);
/*
 * A boot image URL: http:// or https://, a host, printable ASCII without spaces,
 * at most WARD_API_URL_MAX bytes, and no user:password@ (it would be stored and shown).
 */
#define WARD_API_URL_MAX 2048
bool ward_api_valid_image_url(const char *url);

/* What the daemon provides; each may be NULL (the route then answers 503). */
struct ward_api_transition {
    const char *kind, *ns, *name, *dimension, *to, *reason, *actor;
    int64_t expected_version;
    bool reset; /* host reset: clear the claim and re-enroll */
};
struct ward_api_hooks {
    /* Add a host (POST /hosts): spec and labels are JSON object text. NULL: created in the store
       directly. 0, -EEXIST, or another negative errno with err filled. */
    int (*add)(void *arg, const char *ns, const char *name, const char *spec, const char *labels,
               struct ward_error *err);
    /* The guarded path: 0 with new_version, -EPERM with err = the guard's reason,
       -ESTALE on a version conflict, -EINVAL for a transition the machine does not allow. */
    int (*transition)(void *arg, const struct ward_api_transition *t, int64_t *new_version,
                      struct ward_error *err);
    int (*policy_reload)(void *arg, struct ward_error *err);
    /* Append a JSON object: {"length":..,"processing":..,"max_size":..,"draining":..} */
    /* queue_drain: drain (true) or resume; 0 or -errno with err. */
    void (*queue_status)(void *arg, struct ward_buf *out);
    int (*queue_drain)(void *arg, bool drain, struct ward_error *err);
    /* Append a JSON object: {"leader":true,"holder":"..","transitions":..} */
    void (*leader_status)(void *arg, struct ward_buf *out);
    void *arg;
    /* Release a claim (POST /hosts/NAME/release) in whatever state the host is: 0 (also when
       nobody holds it: *released false), -EPERM (another consumer holds it), -ENOENT, -ESTALE.
       NULL: the store's release, which refuses hosts past Claimed (409). */
    int (*release)(void *arg, const char *ns, const char *name, const char *consumer,
                   bool *released, struct ward_error *err);
    /* GET /hosts/NAME/explain: what the machine allows now, each guard's answer, and the next
       recovery, as a JSON object the caller frees; NULL with err (-ENOENT: no such host). */
    char *(*explain)(void *arg, const char *ns, const char *name, struct ward_error *err);
    /* The provisioning queue's door for a claim with bootISOSource or an image set on a host.
       name NULL, before anything is written: 0 when one more request fits, -EBUSY with err
       (the queue is full, its size) when not: the request is refused with 429 and nothing is
       written. With the host's name, after the write: queue it (0). NULL: no queue. */
    int (*queue_offer)(void *arg, const char *name, struct ward_error *err);
    /* May consumer claim this host (POST /claims)? Asked about the candidates in rank order
       until one is claimed: 0, or -EPERM with err = why not (the claim moves on to the next
       candidate); any other negative errno ends the claim with that error. NULL: every
       Available, unclaimed host matching the selector may be. */
    int (*claimable)(void *arg, const char *ns, const char *name, const char *consumer,
                     struct ward_error *err);
};

/*
 * Register the /api/v1 routes on http (destroy the api after the http server:
 * the routes point at it). store and events are borrowed (may be
 * NULL: routes needing them answer 503); hooks are copied. The host gauge
 * ward_hosts{state} is refreshed on scrape when the store changed.
 */
struct ward_api *ward_api_create(struct ward_http *http, struct ward_store *store,
                                 struct ward_events *events, struct ward_metrics *metrics,
                                 const struct ward_api_hooks *hooks, struct ward_error *err);
void ward_api_destroy(struct ward_api *api);

/*
 * The API on the policy engine: POST /hosts creates through the engine (so it
 * enrolls), transitions go through ward_policy_transition (machine, guard,
 * consistency; the refusal text goes back to the client), a reset moves the
 * host to Error, clears its claim and re-enrolls it through the guarded
 * Error -> Enrolling, and policy reload reloads the engine. A release clears
 * the claim in any state: Claimed goes straight to Available (the store's
 * release); from Provisioning, Provisioned or Error only the consumer is
 * cleared and the engine, which follows the store's change feed, runs the
 * policy's release flow (power off, eject, clear the boot override ->
 * Available). glue must outlive the api; engine and store are borrowed.
 */
struct ward_policy_engine;
struct ward_policy_event;
struct ward_api_policy {
    struct ward_policy_engine *engine;
    struct ward_store *store;
    struct ward_events *events; /* may be NULL; refused API transitions are recorded here */
};
void ward_api_policy_hooks(struct ward_api_hooks *hooks, struct ward_api_policy *glue);
/* A ward_policy_options.on_event that records the engine's events; arg is a struct ward_events. */
void ward_api_policy_event(void *events, const struct ward_policy_event *ev);

/*
 * The whole operator surface for wardd in one call, for the daemon's wiring:
 * reads the `http` section of the daemon's configuration, starts the event
 * set (ward_events_total), the HTTP server and the API on the daemon's loop
 * and registry, adds the readiness check "store" (open when store is not
 * NULL), and a reload hook that re-reads the API token on SIGHUP. store is
 * borrowed; hooks are copied (NULL: those routes answer 503). Other modules
 * add their readiness checks with ward_http_ready_check(ward_operator_http()).
 */
struct ward_daemon;
struct ward_operator;
struct ward_operator *ward_operator_start(struct ward_daemon *d, struct ward_store *store,
                                          const struct ward_api_hooks *hooks,
                                          struct ward_error *err);
/* Stop serving and free everything: after the loop has ended (the daemon keeps the reload
   hook until it is destroyed) and before the store closes. */
void ward_operator_stop(struct ward_operator *op);
struct ward_http *ward_operator_http(const struct ward_operator *op);
/* Where modules record events (transitions, refusals, stuck hosts, BMC failures, reloads). */
struct ward_events *ward_operator_events(const struct ward_operator *op);

#endif
