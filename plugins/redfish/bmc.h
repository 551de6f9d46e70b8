/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Redfish layer: one client per plugin instance (HTTP client, global operation cap,
 * metrics) and one ward_rf_bmc per BMC (discovery, the shared session, protection state).
 * Work is submitted as operations; each runs as a small state machine of HTTP requests on
 * the loop and completes through a callback with a cJSON result or a readable reason.
 *
 * Protection, in the order a request meets it:
 *   - global caps: at most max_ops operations that change a BMC (power, boot override,
 *     virtual media, manager reset, PATCH, POST) and at most max_reads reading ones
 *     (connect, inventory, power state, GET, logout) run at once over all BMCs; the rest
 *     wait in one FIFO per class;
 *   - per BMC: at most concurrency operations at once, each issuing one request at a time,
 *     so requests in flight to a BMC never exceed concurrency; cooldown seconds between the
 *     end of one operation and the start of the next on the same BMC;
 *   - circuit breaker: breaker_threshold consecutive failed answers open it for breaker_open
 *     seconds; operations then fail at once with the reason, a single trial closes it again;
 *   - adaptive rate (AIMD): the minimum gap between requests to a BMC shrinks additively
 *     while answers are fast and healthy and doubles on a slow answer, a 409 or a 503;
 *   - retries with exponential backoff and jitter for GET, PATCH and DELETE only; a POST with
 *     an unknown outcome is left to the operation, which re-reads state (power) instead.
 */
#ifndef WARD_REDFISH_BMC_H
#define WARD_REDFISH_BMC_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <ev.h>

#include <ward/plugin.h>

#include "http.h"
#include "quirks.h"

#ifndef WARD_ARRAY_LEN
#define WARD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#endif

struct ward_rf_client_opts {
    double connect_timeout; /* seconds per connection attempt */
    double timeout;         /* seconds per request */
    unsigned concurrency;   /* operations (and so requests) in flight per BMC, >= 1 */
    double cooldown;        /* seconds between operations on one BMC */
    unsigned max_ops;       /* changing operations in flight over all BMCs, 1..20 */
    unsigned max_reads;     /* reading operations in flight over all BMCs, 1..1024 */
    unsigned retries;       /* extra attempts of an idempotent request */
    double backoff;         /* first retry delay, doubled each attempt */
    double backoff_max;
    unsigned breaker_threshold; /* consecutive failures that open the breaker */
    double breaker_open;        /* seconds it stays open */
    double slow_answer;         /* an answer slower than this counts as slow (AIMD) */
    double rate_max;            /* requests/s per BMC the AIMD controller may rise to */
    double rate_min;            /* requests/s it may fall to */
    double poll_interval;       /* power state and task monitor polling */
    double power_timeout;       /* how long to wait for PowerState to change */
    double task_timeout;        /* how long to poll a task monitor */
    double session_backoff;     /* wait after a "no free sessions" answer, doubled each time */
    /* Jitter source in [0,1); NULL uses random(). Tests inject a fixed one. */
    double (*random)(void *arg);
    void *random_arg;
    struct ward_metrics *metrics;  /* may be NULL; not owned */
    struct ward_rf_quirks *quirks; /* vendor quirk hooks, may be NULL; not owned */
};

/* The defaults documented in the plugin's config map. */
void ward_rf_client_opts_default(struct ward_rf_client_opts *o);

struct ward_rf_client;
struct ward_rf_bmc;

struct ward_rf_client *ward_rf_client_create(struct ev_loop *loop,
                                             const struct ward_rf_client_opts *o,
                                             struct ward_error *err);
/* Destroys every BMC still registered (sessions abandoned, operations ended with -ECANCELED). */
void ward_rf_client_destroy(struct ward_rf_client *c);
struct ward_rf_http *ward_rf_client_http(struct ward_rf_client *c);
/* Operations running over all BMCs, both classes. */
unsigned ward_rf_client_running(const struct ward_rf_client *c);
/* The most operations ever running at once (never above max_ops + max_reads). */
unsigned ward_rf_client_max_running(const struct ward_rf_client *c);
/* The client's clock: the monotonic one, as its deadlines use. */
double ward_rf_client_now(const struct ward_rf_client *c);
/* How long a power change waits for PowerState to follow (power_timeout). */
double ward_rf_client_power_timeout(const struct ward_rf_client *c);
/* The PowerState a ResetType leads to ("On", "Off"); NULL for a type ward does not drive. */
const char *ward_rf_power_goal(const char *type);
/* Does a ResetType restart the host (leading back to On, through Off on many BMCs)? */
bool ward_rf_power_restarts(const char *type);

struct ward_rf_bmc_config {
    const char *name;    /* host name used in logs and metrics */
    const char *address; /* "https://host:port", no path, no credentials */
    const char *system;  /* Id or @odata.id of the system to drive, NULL for the first */
    const char *username;
    const char *password_file; /* read at each login; a change is noticed */
    const char *password_env;  /* or the name of an environment variable */
    const char *cainfo;        /* CA bundle, NULL for the system store */
    bool insecure;             /* skip verification; warned about at every start */
};

/* All strings are copied. NULL with err on bad configuration. */
struct ward_rf_bmc *ward_rf_bmc_create(struct ward_rf_client *c,
                                       const struct ward_rf_bmc_config *cfg,
                                       struct ward_error *err);
/*
 * Stop using b: new operations are refused (ward_rf_op_start returns NULL, errno
 * ESHUTDOWN), every operation's callback runs at once with -ECANCELED, a request already
 * on the wire is left to finish with its answer dropped (the BMC may be working on it, so
 * nothing else is sent beside it), and then the session, if there is one, is deleted as one
 * more operation under the BMC's limits (concurrency, cooldown, pacing, breaker). When
 * nothing of b is left, closed(arg) runs from the loop (never from inside this call).
 * False, and closed is never called, when b is already closing.
 */
bool ward_rf_bmc_close(struct ward_rf_bmc *b, void (*closed)(void *arg), void *arg);
bool ward_rf_bmc_closing(const struct ward_rf_bmc *b);
/*
 * Close b and free it when the close has ended (at once if it already has). A close under
 * way (a shutdown's) keeps its callback. The client frees what is still closing when it is
 * destroyed: a logout the loop never ran is not sent.
 */
void ward_rf_bmc_destroy(struct ward_rf_bmc *b);
/*
 * Shutdown: close every BMC of the client, and wait for those already closing (hosts
 * removed a moment ago) too. closed(arg) runs once per BMC counted; returns the count.
 */
unsigned ward_rf_client_close_all(struct ward_rf_client *c, void (*closed)(void *arg), void *arg);
const char *ward_rf_bmc_name(const struct ward_rf_bmc *b);

/* Protection state, for tests and status. */
struct ward_rf_bmc_stats {
    unsigned running;     /* operations running */
    unsigned max_running; /* largest number of requests in flight ever seen */
    unsigned logins;      /* login attempts sent */
    unsigned cooldown_waits;
    unsigned retries;
    bool breaker_open;
    double rate; /* current AIMD request rate, requests/s */
    bool have_session;
};
void ward_rf_bmc_stats(const struct ward_rf_bmc *b, struct ward_rf_bmc_stats *out);

/*
 * Completion of an operation. code is 0 or a negative errno; result is owned by the
 * callee and only valid during the call (a JSON document, object or true); reason is a
 * readable text when code != 0, never containing secrets. A failed operation has no result,
 * except a power change that failed after the BMC took its Reset (or may have): its result
 * is the power state the Reset leads to, as ward_rf_op_power_heading gives it.
 */
typedef void (*ward_rf_op_cb)(void *arg, int code, const cJSON *result, const char *reason);

struct ward_rf_op;

/* Which global cap an operation counts against. */
enum ward_rf_op_class {
    WARD_RF_READ,   /* reads the BMC only: maxConcurrentReads */
    WARD_RF_CHANGE, /* changes the BMC (provisioning): maxConcurrentOps */
};

enum ward_rf_op_kind {
    WARD_RF_OP_CONNECT,     /* discover and authenticate */
    WARD_RF_OP_GET,         /* arg: path */
    WARD_RF_OP_PATCH,       /* arg: path, body */
    WARD_RF_OP_POST,        /* arg: path, body */
    WARD_RF_OP_INVENTORY,   /* result: inventory object */
    WARD_RF_OP_POWER_STATE, /* result: string */
    WARD_RF_OP_POWER,       /* arg: ResetType */
    WARD_RF_OP_BOOT_ONCE,   /* arg: target, e.g. "Cd" */
    WARD_RF_OP_BOOT_CLEAR,
    WARD_RF_OP_INSERT_MEDIA, /* arg: image URL */
    WARD_RF_OP_EJECT_MEDIA,
    WARD_RF_OP_LOGOUT,
    WARD_RF_OP_MANAGER_RESET, /* restart the BMC (Manager.Reset); its sessions end */
};

/*
 * Queue an operation. arg and body are copied. The callback runs exactly once from the loop
 * unless the operation is cancelled first; it may start and cancel operations but must not
 * destroy the client. Returns NULL on allocation failure or while the BMC is being destroyed.
 */
struct ward_rf_op *ward_rf_op_start(struct ward_rf_bmc *b, enum ward_rf_op_kind kind,
                                    const char *arg, const char *body, ward_rf_op_cb cb,
                                    void *cb_arg);
/* Stop an operation; its callback will not run. */
void ward_rf_op_cancel(struct ward_rf_op *op);
/* Where this power change's Reset may be taking the host ("On" or "Off"), once it was handed
   to the wire and not refused (so the BMC may be carrying it out); NULL before that, after
   a refusal, and for other operations. */
const char *ward_rf_op_power_heading(const struct ward_rf_op *op);
const char *ward_rf_op_kind_name(enum ward_rf_op_kind kind);
enum ward_rf_op_class ward_rf_op_kind_class(enum ward_rf_op_kind kind);
/* Operations of a class running now, and the most ever running at once (never above its cap). */
unsigned ward_rf_client_running_class(const struct ward_rf_client *c, enum ward_rf_op_class cls);
unsigned ward_rf_client_max_running_class(const struct ward_rf_client *c,
                                          enum ward_rf_op_class cls);

/*
 * Turn a Redfish error body into a readable reason: the messages of
 * error.@Message.ExtendedInfo (or error.message), joined with "; ". Writes at most outlen
 * bytes and returns out; writes "" when the body carries no error. Never fails.
 */
char *ward_rf_error_reason(const char *body, char *out, size_t outlen);

/*
 * Extract the inventory of a ComputerSystem document as the object the Lua API returns
 * (manufacturer, model, serial, uuid, bios_version, power_state, cpu_count, memory_gib,
 * macs = {}). Missing properties are left out. NULL when doc is not an object.
 */
cJSON *ward_rf_inventory_from_system(const cJSON *doc);

/*
 * The ResetType values a ComputerSystem advertises through
 * Actions.#ComputerSystem.Reset.ResetType@Redfish.AllowableValues or an ActionInfo's
 * Parameters[Name=ResetType].AllowableValues. Returns a NULL-terminated array of borrowed
 * strings in out (at most n - 1), and the count; 0 when none are advertised.
 */
size_t ward_rf_allowable_values(const cJSON *doc, const char *param, const char **out, size_t n);

/* Is s (a link or a Location) a path on the BMC itself? Refuses other hosts and schemes. */
bool ward_rf_path_ok(const char *base, const char *s, char *path, size_t pathlen);

#endif
