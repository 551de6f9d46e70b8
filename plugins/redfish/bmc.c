/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmc.h"
#include "parse.h"
#include "quirks.h"
#include "util.h" /* ward_buf, from wardd's core */

#define COMPONENT "redfish"
#define PATH_MAX_LEN 512

void ward_rf_client_opts_default(struct ward_rf_client_opts *o)
{
    *o = (struct ward_rf_client_opts){
        .connect_timeout = 10,
        .timeout = 60,
        .concurrency = 1,
        .cooldown = 0,
        .max_ops = 20,
        .max_reads = 64,
        .retries = 3,
        .backoff = 1,
        .backoff_max = 30,
        .breaker_threshold = 5,
        .breaker_open = 60,
        .slow_answer = 5,
        .rate_max = 50,
        .rate_min = 0.2,
        .poll_interval = 2,
        .power_timeout = 300,
        .task_timeout = 600,
        .session_backoff = 30,
    };
}

struct ward_rf_op;

/*
 * One BMC as the network sees it. The objects at its address (the hosts of a multi-system
 * BMC, or the old and the new object of a settings change) share its limits: requests in
 * flight are counted together against the concurrency (a request that would pass it is
 * parked until one ends), one AIMD rate paces them all, a timed-out request keeps every
 * object quiet for `backoff`, the cooldown runs from the last operation that ended,
 * whichever object it was, objects with the same credentials share one session (below),
 * and a login refused for want of sessions blocks every object's logins there. Each object
 * still runs its own operations one at a time (per its concurrency), so a long wait of one
 * system (a power change polling) holds no request slot between its polls.
 */
struct at_base {
    char *base;                 /* owned; the key */
    unsigned n;                 /* BMC objects at it */
    unsigned in_flight;         /* their requests on the wire */
    double rate;                /* AIMD: requests per second */
    double next_request_at;     /* pacing, and quiet after a timeout */
    double last_op_end;         /* when the last of their operations ended; 0: none yet */
    struct ward_rf_op *parked;  /* requests waiting for one in flight to end, oldest first */
    /* the BMC answered a login "no free sessions" (503): no object there logs in until then;
       the wait doubles on each repeat and a login that succeeds ends it */
    double sessions_blocked_until;
    double session_backoff;
    struct session *sessions;   /* the sessions its objects share, one per credentials */
    struct at_base *woken_next; /* in the client's list of bases with a request to wake */
    bool woken;
};

/*
 * A Redfish session at one address, shared by the BMC objects there that log in with the
 * same credentials (the systems of a multi-system BMC): one login serves them all, its
 * token is used until the BMC stops taking it, and only the last of them still open logs
 * it out. A BMC has few sessions (often 4 to 8): a session per system would run out of
 * them on a blade chassis.
 */
struct session {
    struct session *next; /* at its address */
    char *key;            /* the user and where the password comes from; owned */
    unsigned n;           /* BMC objects using it */
    unsigned open;        /* of them, those not closing */
    char *token;          /* a secret; NULL when there is no session */
    char *path;           /* where to DELETE it; "" when unknown */
    unsigned long gen;    /* bumped at every new token: a request's token is the current one? */
    struct ward_rf_op *login_op;      /* the operation logging in for all, or NULL */
    struct ward_rf_op *login_waiters; /* parked until the login ends */
    struct ward_rf_op *waking;        /* waiters being woken: taken off one by one (op_free too) */
    char bad_stamp[128];              /* stamp of credentials a login refused, "" when none */
};

struct ward_rf_client {
    struct ev_loop *loop; /* not owned */
    struct ward_rf_client_opts o;
    struct ward_rf_http *http; /* owned */
    struct ward_rf_bmc *bmcs;  /* owned, list */
    unsigned closing;          /* BMCs in the list that are closing */
    struct ward_rf_bmc *closed_head; /* closing BMCs with nothing left, to be told */
    unsigned long closes;            /* closes begun, for close_seq */
    /* base URL -> struct at_base: the BMC objects that name it and their shared limits. With
       one object (nearly always), a close has no other there to look for, and a fleet's
       shutdown stays linear. */
    struct ward_strmap bases;
    ev_timer close_timer;            /* tells them, from the loop */
    struct at_base *woken;           /* bases whose parked requests may go (see schedule) */
    /* waiting operations, one FIFO per class over all BMCs (reads, changes) */
    struct ward_rf_op *queue[2];
    struct ward_rf_op *queue_tail[2];
    unsigned running, max_running;
    unsigned running_cls[2], max_running_cls[2];
    ev_timer kick; /* runs the scheduler from the loop */
    ev_timer trim; /* gives freed memory back to the system once idle */
    struct ward_metric *m_cooldown;
    struct ward_metric *m_duration;
};

enum phase {
    PH_ROOT,    /* GET the service root */
    PH_LOGIN,   /* POST a session */
    PH_SYSTEMS, /* GET the Systems collection */
    PH_SYSTEM,  /* GET the chosen system */
    PH_MANAGER, /* GET its manager (firmware version, where a quirk selects by it) */
    PH_MAIN,    /* the operation's own steps */
};

struct ward_rf_bmc {
    struct ward_rf_client *c;
    struct ward_rf_bmc *prev, *next;
    char *name, *base, *system_cfg, *user, *password_file, *password_env, *cainfo;
    bool insecure;
    struct ward_rf_http_pool *pool; /* owned: this BMC's connections */
    /* discovery */
    bool have_root, discovered, has_sessions;
    /* Paths live on the heap, sized to fit (see path_set); never NULL, "" when unknown. */
    char *systems_path, *managers_path, *sessions_path;
    char *system_path, *manager_path, *sys_media_path;
    char *media_path;                               /* CD-capable VirtualMedia member, once found */
    char manufacturer[96], model[96], firmware[96]; /* selects quirk hooks */
    /* The $expand value that inlines a collection's members, when the service root advertises
       one and the BMC has not refused it; NULL otherwise. */
    const char *expand;
    /* The system's answer as discovery just read it (owned text), for the inventory that
       follows at once: enrolling then costs the BMC one read of the system instead of two.
       Any other operation, any request that changes the BMC, or FRESH_SYSTEM_S passing
       drops it. Text, not the parsed document: the inventory applies the response hooks
       to it as to an answer of its own, with the identity discovery completed since. */
    char *fresh_system;
    size_t fresh_system_len;
    double fresh_system_at;
    struct ward_rf_ident ident;
    struct session *s; /* its session, shared at its address */
    /* credentials; password is a secret */
    char *password;
    char cred_stamp[128];
    /* protection */
    unsigned running;
    unsigned in_flight, max_in_flight;
    ev_timer cooldown_timer;
    unsigned failures;
    double breaker_until;
    char last_failure[320]; /* why the last failed answer failed: the open breaker says it */
    unsigned logins, cooldown_waits, retries;
    struct ward_rf_op *ops; /* every operation, queued or running; not owned */
    bool destroying;        /* no new operations while its last ones are ended */
    bool closing;           /* ward_rf_bmc_close: no new operations */
    bool close_queued;      /* on the client's closed list */
    bool close_done;        /* its close has ended (and closed() has run) */
    unsigned long close_seq; /* the order of its close among the client's */
    struct at_base *at;      /* its entry in the client's bases */
    bool free_when_closed;   /* ward_rf_bmc_destroy: freed when its close ends */
    bool in_closed;          /* its closed() callback is running */
    struct ward_rf_bmc *closed_next;
    void (*closed)(void *arg); /* runs when the close has ended: nothing of ours is left */
    void *closed_arg;
    /* a closing BMC at the same address (the host's settings changed, or it was removed
       and added again): nothing of this one starts until that one is gone, so the BMC
       never has the old one's last request or logout beside the new one's */
    struct ward_rf_bmc *behind;
    unsigned orphans; /* operations whose owner let go while their request was on the wire */
};

struct answer {
    int code;
    long status;
    cJSON *json;      /* parsed body or NULL */
    const char *body; /* the answer as received; valid during the callback */
    size_t body_len;
    const char *etag, *location;
    char reason[700];
};

struct req {
    enum ward_rf_method method;
    char path[PATH_MAX_LEN];
    char *body; /* owned; for a login it holds the password and is wiped */
    char if_match[256];
};

static void req_clear(struct req *r)
{
    if (r->body != NULL) {
        explicit_bzero(r->body, strlen(r->body));
        free(r->body);
    }
    memset(r, 0, sizeof(*r));
}

struct ward_rf_op {
    struct ward_rf_bmc *bmc;
    struct ward_rf_op *qnext, *qprev; /* client queue */
    struct ward_rf_op *wait_next;     /* login waiters */
    struct ward_rf_op *park_next;     /* its address's parked requests, while parked */
    bool parked;
    bool reset_sent;                  /* a power change's Reset was handed to the wire */
    bool reset_refused;               /* and the BMC answered it with an error */
    struct ward_rf_op *bnext, *bprev; /* every operation of its BMC */
    enum ward_rf_op_kind kind;
    enum ward_rf_op_class cls;
    char *arg, *body;
    ward_rf_op_cb cb;
    void *cb_arg;
    bool queued, started, cooldown_counted, relogged, login_sent;
    bool login_answered;    /* its login has its answer (or gave up waiting for it) */
    unsigned long sent_gen; /* the session's gen when its request went out */
    /* its owner let go of it (cancel, or the BMC closes) while its request was on the wire:
       the BMC works on it whether or not we listen, so the request finishes, still counted
       against the BMC's concurrency, and its answer is dropped (a login's session is kept,
       for later operations or the closing logout) */
    bool orphaned;
    /* op_done is ending it: a login's waiters are woken first, and their callbacks may
       close its BMC or cancel it, which must not end it a second time */
    bool ending;
    enum phase phase;
    int step;
    double started_at, deadline;
    /* the request being sent, kept so it can be resent after a backoff */
    struct req req;
    struct req saved; /* the request a login interrupted, resent after it */
    bool has_saved;
    unsigned attempt;
    struct ward_rf_http_req *http;
    ev_timer timer;
    void (*on_timer)(struct ward_rf_op *op);
    /* operation state */
    char target[64];           /* PowerState wanted, boot target, ... */
    char action[PATH_MAX_LEN]; /* the Reset action's target */
    char etag[256];
    cJSON *members; /* collection members being walked, owned */
    int member;
    cJSON *result; /* owned until completion */
    bool outcome_unknown, refetched, tried_systems;
    bool expand_sent; /* the request in flight carries b->expand: not retried, see S_INV_NICS */
    char insert_target[PATH_MAX_LEN], eject_target[PATH_MAX_LEN];
    char saved_task[PATH_MAX_LEN];
    int task_next;
    double task_deadline;
    char power_now[64];
    char unknown_reason[700];
    cJSON *current; /* last document read by this operation (for request hooks), owned */
    char current_path[PATH_MAX_LEN];
    unsigned quirk_retries;
};

/*
 * A BMC's discovered paths: a fixed 512-byte buffer for each of eight paths was most of the
 * memory a BMC took in fleets of thousands; real paths are a few dozen bytes. The empty
 * path is a shared "" so readers never see NULL. An allocation failure leaves the path
 * empty, which the operation that needs it reports as not found.
 */
static char no_path[1];

static void path_set(char **dst, const char *src)
{
    if (*dst != NULL && *dst != no_path && strcmp(*dst, src) == 0) {
        return;
    }
    if (*dst != no_path) {
        free(*dst);
    }
    *dst = no_path;
    if (src[0] != '\0') {
        char *copy = strdup(src);
        if (copy != NULL) {
            *dst = copy;
        }
    }
}

/* Deadlines, pacing, backoff and the breaker count on the monotonic clock: a wall clock set
   back would hold a BMC's breaker open, and one set forward would end power waits and task
   polls at once, for as far as it moved. */
static double now(const struct ward_rf_client *c)
{
    (void)c;
    return ward_monotonic();
}

static double jitter(struct ward_rf_client *c);

/* How long the system document discovery read stands in for the inventory's own read. */
#define FRESH_SYSTEM_S 1.0

static void drop_fresh_system(struct ward_rf_bmc *b)
{
    free(b->fresh_system);
    b->fresh_system = NULL;
}

/* Exponential backoff with jitter: base * 2^n, capped, then scaled into [50%, 100%]. */
static double backoff_delay(struct ward_rf_client *c, unsigned n)
{
    double d = c->o.backoff;
    for (unsigned i = 0; i < n && d < c->o.backoff_max; i++) {
        d *= 2;
    }
    if (d > c->o.backoff_max) {
        d = c->o.backoff_max;
    }
    return d * (0.5 + 0.5 * jitter(c));
}

static double jitter(struct ward_rf_client *c)
{
    if (c->o.random != NULL) {
        return c->o.random(c->o.random_arg);
    }
    return (double)random() / ((double)RAND_MAX + 1.0);
}

const char *ward_rf_op_kind_name(enum ward_rf_op_kind kind)
{
    static const char *const names[] = {
        [WARD_RF_OP_CONNECT] = "connect",
        [WARD_RF_OP_GET] = "get",
        [WARD_RF_OP_PATCH] = "patch",
        [WARD_RF_OP_POST] = "post",
        [WARD_RF_OP_INVENTORY] = "inventory",
        [WARD_RF_OP_POWER_STATE] = "power_state",
        [WARD_RF_OP_POWER] = "power",
        [WARD_RF_OP_BOOT_ONCE] = "set_boot_once",
        [WARD_RF_OP_BOOT_CLEAR] = "clear_boot_override",
        [WARD_RF_OP_INSERT_MEDIA] = "insert_media",
        [WARD_RF_OP_EJECT_MEDIA] = "eject_media",
        [WARD_RF_OP_LOGOUT] = "logout",
        [WARD_RF_OP_MANAGER_RESET] = "reset",
    };
    return (unsigned)kind < WARD_ARRAY_LEN(names) ? names[kind] : "unknown";
}

/* ---- scheduling ------------------------------------------------------------------- */

static void schedule(struct ward_rf_client *c);
static void schedule_class(struct ward_rf_client *c, enum ward_rf_op_class cls);

enum ward_rf_op_class ward_rf_op_kind_class(enum ward_rf_op_kind kind)
{
    switch (kind) {
    case WARD_RF_OP_CONNECT:
    case WARD_RF_OP_GET:
    case WARD_RF_OP_INVENTORY:
    case WARD_RF_OP_POWER_STATE:
    case WARD_RF_OP_LOGOUT:
        return WARD_RF_READ;
    default:
        /* anything that changes a BMC, and whatever is added later until classified */
        return WARD_RF_CHANGE;
    }
}

static void wake_parked(struct ward_rf_client *c);
static void send_now(struct ward_rf_op *op);
static void request_ended(struct ward_rf_bmc *b);
static void unpark(struct ward_rf_op *op);

static void kick(struct ward_rf_client *c)
{
    if (!ev_is_active(&c->kick)) {
        ev_timer_set(&c->kick, 0., 0.);
        ev_timer_start(c->loop, &c->kick);
    }
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    schedule(ward_rf_container_of(w, struct ward_rf_client, kick));
}

static void on_cooldown(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_bmc *b = ward_rf_container_of(w, struct ward_rf_bmc, cooldown_timer);
    schedule(b->c);
}

static void queue_remove(struct ward_rf_op *op)
{
    struct ward_rf_client *c = op->bmc->c;
    if (!op->queued) {
        return;
    }
    if (op->qprev != NULL) {
        op->qprev->qnext = op->qnext;
    } else {
        c->queue[op->cls] = op->qnext;
    }
    if (op->qnext != NULL) {
        op->qnext->qprev = op->qprev;
    } else {
        c->queue_tail[op->cls] = op->qprev;
    }
    op->qnext = op->qprev = NULL;
    op->queued = false;
}

static void op_advance(struct ward_rf_op *op, struct answer *a);

static void op_begin(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    queue_remove(op);
    op->started = true;
    op->started_at = now(b->c);
    b->running++;
    b->c->running++;
    if (b->c->running > b->c->max_running) {
        b->c->max_running = b->c->running;
    }
    b->c->running_cls[op->cls]++;
    if (b->c->running_cls[op->cls] > b->c->max_running_cls[op->cls]) {
        b->c->max_running_cls[op->cls] = b->c->running_cls[op->cls];
    }
    op->phase = PH_ROOT;
    op_advance(op, NULL);
}

static unsigned class_cap(const struct ward_rf_client *c, enum ward_rf_op_class cls)
{
    return cls == WARD_RF_CHANGE ? c->o.max_ops : c->o.max_reads;
}

/*
 * Start what may start, oldest first, in each class up to its cap. Starting an operation can
 * run callbacks that queue or cancel others, so the walk begins again from the head after
 * each start.
 */
static void schedule(struct ward_rf_client *c)
{
    wake_parked(c);
    schedule_class(c, WARD_RF_CHANGE);
    schedule_class(c, WARD_RF_READ);
    if (c->running == 0 && c->queue[WARD_RF_READ] == NULL && c->queue[WARD_RF_CHANGE] == NULL &&
        !ev_is_active(&c->trim)) {
        ev_timer_set(&c->trim, 1., 0.);
        ev_timer_start(c->loop, &c->trim);
    }
}

/*
 * A burst (enrolling a fleet) leaves the allocator holding memory it freed: glibc keeps it
 * in its arenas and RSS stays at the peak. Once no operation has run for a second, hand
 * it back.
 */
static void on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_client *c = ward_rf_container_of(w, struct ward_rf_client, trim);
    if (c->running == 0 && c->queue[WARD_RF_READ] == NULL && c->queue[WARD_RF_CHANGE] == NULL) {
#ifdef HAVE_MALLOC_TRIM
        malloc_trim(0);
#endif
    }
}

/* Count b at its address in the client's bases. 0 or -ENOMEM. */
static int base_ref(struct ward_rf_client *c, struct ward_rf_bmc *b)
{
    struct at_base *a = ward_strmap_get(&c->bases, b->base);
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL || (a->base = strdup(b->base)) == NULL ||
            ward_strmap_put(&c->bases, a->base, a) != 0) {
            if (a != NULL) {
                free(a->base);
            }
            free(a);
            return -ENOMEM;
        }
        a->rate = c->o.rate_max;
    }
    a->n++;
    b->at = a;
    return 0;
}

/* The key of b's credentials: objects with the same one share a session. */
static char *session_key(const struct ward_rf_bmc *b)
{
    const char *parts[] = {b->user, b->password_file, b->password_env};
    struct ward_buf k = {0};
    for (size_t i = 0; i < WARD_ARRAY_LEN(parts); i++) {
        /* "-" for none, "+" and the text otherwise: no two sets spell the same key */
        ward_buf_printf(&k, "%c%s\n", parts[i] == NULL ? '-' : '+',
                        parts[i] == NULL ? "" : parts[i]);
    }
    return ward_buf_steal(&k);
}

/* Give b the session of its credentials at its address, made if none is there. 0 or -ENOMEM. */
static int session_ref(struct ward_rf_bmc *b)
{
    char *key = session_key(b);
    struct session *s = b->at->sessions;
    while (s != NULL && strcmp(s->key, key) != 0) {
        s = s->next;
    }
    if (s != NULL) {
        free(key);
    } else {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            free(key);
            return -ENOMEM;
        }
        s->key = key;
        s->path = no_path;
        s->next = b->at->sessions;
        b->at->sessions = s;
    }
    s->n++;
    s->open++;
    b->s = s;
    return 0;
}

static void session_forget(struct session *s)
{
    if (s->token != NULL) {
        explicit_bzero(s->token, strlen(s->token));
    }
    free(s->token);
    s->token = NULL;
    path_set(&s->path, "");
}

static void session_unref(struct ward_rf_bmc *b)
{
    struct session *s = b->s;
    b->s = NULL;
    if (s == NULL) {
        return;
    }
    if (!b->closing) {
        s->open--;
    }
    if (--s->n > 0) {
        return;
    }
    for (struct session **p = &b->at->sessions; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    session_forget(s);
    free(s->key);
    free(s);
}

static void base_put(struct ward_rf_client *c, struct at_base *a)
{
    if (a == NULL || --a->n > 0) {
        return;
    }
    for (struct at_base **p = &c->woken; a->woken && *p != NULL; p = &(*p)->woken_next) {
        if (*p == a) {
            *p = a->woken_next;
            break;
        }
    }
    ward_strmap_remove(&c->bases, a->base);
    free(a->base);
    free(a);
}

static void base_unref(struct ward_rf_client *c, struct ward_rf_bmc *b)
{
    struct at_base *a = b->at;
    b->at = NULL;
    base_put(c, a);
}

/* Send the requests parked at addresses where one ended, oldest first, while the BMC has
   room. A failed send runs callbacks that may drop BMC objects: the address is held. */
static void wake_parked(struct ward_rf_client *c)
{
    while (c->woken != NULL) {
        struct at_base *ab = c->woken;
        c->woken = ab->woken_next;
        ab->woken_next = NULL;
        ab->woken = false;
        ab->n++;
        struct ward_rf_op *op;
        while ((op = ab->parked) != NULL && ab->in_flight < c->o.concurrency &&
               !ev_is_active(&op->timer)) { /* first in line waiting for its time: its timer */
            send_now(op);
            if (ab->parked == op) {
                break; /* now waiting for its time (pacing) on its timer */
            }
        }
        base_put(c, ab);
    }
}

static bool shares_base(const struct ward_rf_bmc *b)
{
    return b->at != NULL && b->at->n > 1;
}

/* A BMC at b's address that closed before b did (any, when b is not closing) and still has
   operations, or NULL. Only earlier closes count, so two closing BMCs never wait for each
   other. */
static struct ward_rf_bmc *busy_closing_before(struct ward_rf_bmc *b)
{
    struct ward_rf_client *c = b->c;
    if (!shares_base(b)) {
        return NULL;
    }
    for (struct ward_rf_bmc *o = c->bmcs; c->closing > 0 && o != NULL; o = o->next) {
        if (o != b && o->closing && o->ops != NULL &&
            (!b->closing || o->close_seq < b->close_seq) && strcmp(o->base, b->base) == 0) {
            return o;
        }
    }
    return NULL;
}

/* Must b wait for a closing BMC at its address? behind caches the one found last. */
static bool waits_behind(struct ward_rf_bmc *b)
{
    if (b->behind == NULL) {
        return false;
    }
    if (b->behind->ops == NULL) {
        b->behind = busy_closing_before(b);
    }
    return b->behind != NULL;
}

static void schedule_class(struct ward_rf_client *c, enum ward_rf_op_class cls)
{
    bool started = true;
    while (started && c->running_cls[cls] < class_cap(c, cls)) {
        started = false;
        double t = now(c);
        for (struct ward_rf_op *op = c->queue[cls]; op != NULL; op = op->qnext) {
            struct ward_rf_bmc *b = op->bmc;
            /* a closing BMC sends its logout only once the requests it had on the wire are
               answered, whatever its concurrency; a BMC at the address of a closing one
               waits until no closing one there has anything left */
            if (b->running >= c->o.concurrency || (b->closing && b->orphans > 0) ||
                waits_behind(b)) {
                continue;
            }
            double ready = b->at->last_op_end + c->o.cooldown;
            if (b->at->last_op_end == 0 || ready <= t) {
                op_begin(op);
                started = true;
                break;
            }
            if (!op->cooldown_counted) {
                op->cooldown_counted = true;
                b->cooldown_waits++;
                if (c->m_cooldown != NULL) {
                    ward_metric_add(c->m_cooldown, (const char *const[]){b->name}, 1);
                }
            }
            if (!ev_is_active(&b->cooldown_timer)) {
                ev_timer_set(&b->cooldown_timer, ready - t, 0.);
                ev_timer_start(c->loop, &b->cooldown_timer);
            }
        }
    }
}

/* A closing BMC has nothing left: its close is told from the loop (never from inside the
   code that freed its last operation). */
static void close_ended(struct ward_rf_bmc *b)
{
    struct ward_rf_client *c = b->c;
    if (b->close_queued || b->close_done || b->destroying) {
        return;
    }
    b->close_queued = true;
    b->closed_next = c->closed_head;
    c->closed_head = b;
    if (!ev_is_active(&c->close_timer)) {
        ev_timer_set(&c->close_timer, 0., 0.);
        ev_timer_start(c->loop, &c->close_timer);
    }
}

static void bmc_free(struct ward_rf_bmc *b);

static void on_close_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_client *c = ward_rf_container_of(w, struct ward_rf_client, close_timer);
    while (c->closed_head != NULL) {
        struct ward_rf_bmc *b = c->closed_head;
        c->closed_head = b->closed_next;
        b->closed_next = NULL;
        b->close_queued = false;
        if (b->ops != NULL) {
            continue; /* cannot happen: a closing BMC takes no new operation */
        }
        b->close_done = true;
        void (*closed)(void *arg) = b->closed;
        b->closed = NULL;
        if (closed != NULL) {
            b->in_closed = true; /* a destroy from inside it only asks for the free below */
            closed(b->closed_arg);
            b->in_closed = false;
        }
        if (b->free_when_closed) {
            bmc_free(b);
        }
    }
}

static void op_free(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    queue_remove(op);
    if (op->bprev != NULL) {
        op->bprev->bnext = op->bnext;
    } else {
        b->ops = op->bnext;
    }
    if (op->bnext != NULL) {
        op->bnext->bprev = op->bprev;
    }
    if (op->http != NULL) {
        ward_rf_http_cancel(op->http);
        request_ended(b);
    }
    unpark(op);
    ev_timer_stop(b->c->loop, &op->timer);
    /* a parked waiter leaves the list; a login owner hands nothing over, waiters re-try */
    struct ward_rf_op **lists[] = {&b->s->login_waiters, &b->s->waking};
    for (size_t i = 0; i < WARD_ARRAY_LEN(lists); i++) {
        for (struct ward_rf_op **p = lists[i]; *p != NULL; p = &(*p)->wait_next) {
            if (*p == op) {
                *p = op->wait_next;
                break;
            }
        }
    }
    if (b->s->login_op == op) {
        b->s->login_op = NULL;
    }
    if (op->started) {
        b->running--;
        b->c->running--;
        b->c->running_cls[op->cls]--;
        b->at->last_op_end = now(b->c);
    }
    if (op->orphaned) {
        b->orphans--;
    }
    if (b->closing) {
        kick(b->c); /* what waits for this BMC to be done may go now */
        if (b->ops == NULL) {
            close_ended(b);
        }
    }
    cJSON_Delete(op->members);
    cJSON_Delete(op->result);
    cJSON_Delete(op->current);
    free(op->arg);
    free(op->body);
    req_clear(&op->req);
    req_clear(&op->saved);
    free(op);
}

static void wake_login_waiters(struct session *s, const struct ward_rf_bmc *by, int code,
                               const char *reason);
static void relogin_waiters(struct session *s);
static void login(struct ward_rf_op *op);

/* A BMC's error message may quote what it refused: the password of a login (Redfish's
 * PropertyValueFormatError repeats the value). The log redacts it, but a reason also goes
 * into statuses and events, so it is cut out of the BMC's text before that is shortened
 * (a password cut in two would leave a piece) and of every reason an operation ends with. */
static bool quotes_password(const struct ward_rf_bmc *b, const char *text)
{
    return text != NULL && b->password != NULL && b->password[0] != '\0' &&
           strstr(text, b->password) != NULL;
}

static void scrub_password(const struct ward_rf_bmc *b, char *text, size_t cap)
{
    if (!quotes_password(b, text)) {
        return;
    }
    struct ward_buf out = {0};
    ward_buf_puts(&out, text);
    ward_buf_replace_all(&out, 0, b->password, WARD_REDACTED);
    snprintf(text, cap, "%s", out.data != NULL ? out.data : "");
    ward_buf_free(&out);
}

/* End the operation: callback, metrics, free, schedule the next one. */
static void op_done(struct ward_rf_op *op, int code, const char *reason)
{
    struct ward_rf_bmc *b = op->bmc;
    struct ward_rf_client *c = b->c;
    char scrubbed[1024];
    if (quotes_password(b, reason)) {
        snprintf(scrubbed, sizeof(scrubbed), "%s", reason);
        scrub_password(b, scrubbed, sizeof(scrubbed));
        reason = scrubbed;
    }
    op->ending = true;
    if (b->s->login_op == op) {
        /* the waiters share what the BMC answered the login; a login that ended before it
           was answered (its owner let go, or its own BMC object's breaker is open) says
           nothing about theirs, so they log in themselves */
        b->s->login_op = NULL;
        if (op->login_answered) {
            wake_login_waiters(b->s, b, code, reason);
        } else {
            relogin_waiters(b->s);
        }
    }
    if (code != 0) {
        ward_log_fields(
            WARD_LOG_WARN, COMPONENT,
            (const struct ward_log_field[]){{"bmc", b->name},
                                            {"operation", ward_rf_op_kind_name(op->kind)},
                                            {"reason", reason}},
            3, "BMC operation failed");
    }
    if (c->m_duration != NULL && op->started) {
        ward_metric_observe(c->m_duration, (const char *const[]){ward_rf_op_kind_name(op->kind)},
                            now(c) - op->started_at);
    }
    ward_rf_op_cb cb = op->cb;
    void *arg = op->cb_arg;
    cJSON *result = op->result;
    op->result = NULL;
    if (code == 0 && result == NULL) {
        result = cJSON_CreateTrue();
    }
    const char *heading = ward_rf_op_power_heading(op);
    cJSON *failed_result = code != 0 && heading != NULL ? cJSON_CreateString(heading) : NULL;
    op_free(op);
    if (cb != NULL) {
        cb(arg, code, code == 0 ? result : failed_result, code == 0 ? "" : reason);
    }
    cJSON_Delete(result);
    cJSON_Delete(failed_result);
    kick(c);
}

static void op_fail(struct ward_rf_op *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_fail(struct ward_rf_op *op, int code, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    op_done(op, code, reason);
}

static void on_op_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_op *op = ward_rf_container_of(w, struct ward_rf_op, timer);
    op->on_timer(op);
}

static void op_after(struct ward_rf_op *op, double delay, void (*fn)(struct ward_rf_op *op))
{
    ev_timer_stop(op->bmc->c->loop, &op->timer);
    op->on_timer = fn;
    ev_timer_set(&op->timer, delay > 0 ? delay : 0., 0.);
    ev_timer_start(op->bmc->c->loop, &op->timer);
}

/* ---- credentials ------------------------------------------------------------------ */

/* Re-read the password when its source changed; fills cred_stamp. 0 or -errno + reason. */
static int load_password(struct ward_rf_bmc *b, char *reason, size_t rlen)
{
    char stamp[128];
    if (b->password_file != NULL) {
        struct stat st;
        if (stat(b->password_file, &st) != 0) {
            snprintf(reason, rlen, "cannot read the password file of BMC %s: %s", b->name,
                     strerror(errno));
            return -errno;
        }
        snprintf(stamp, sizeof(stamp), "f:%lu:%lld:%lld.%09ld", (unsigned long)st.st_ino,
                 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        if (b->password != NULL && strcmp(stamp, b->cred_stamp) == 0) {
            return 0;
        }
        int fd = open(b->password_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(reason, rlen, "cannot read the password file of BMC %s: %s", b->name,
                     strerror(errno));
            return -errno;
        }
        char buf[1024];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n < 0) {
            snprintf(reason, rlen, "cannot read the password file of BMC %s", b->name);
            return -EIO;
        }
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0] == '\0') {
            snprintf(reason, rlen, "the password file of BMC %s is empty", b->name);
            return -EINVAL;
        }
        free(b->password);
        b->password = strdup(buf);
        explicit_bzero(buf, sizeof(buf));
    } else if (b->password_env != NULL) {
        const char *v = getenv(b->password_env);
        if (v == NULL || v[0] == '\0') {
            snprintf(reason, rlen, "the environment variable %s (password of BMC %s) is not set",
                     b->password_env, b->name);
            return -ENOENT;
        }
        /* the stamp must not reveal the password: a short non-cryptographic digest */
        unsigned long h = 5381;
        for (const char *p = v; *p != '\0'; p++) {
            h = h * 33 + (unsigned char)*p;
        }
        snprintf(stamp, sizeof(stamp), "e:%lx", h);
        if (b->password == NULL || strcmp(b->password, v) != 0) {
            free(b->password);
            b->password = strdup(v);
        }
    } else {
        snprintf(reason, rlen, "BMC %s has no password file or variable", b->name);
        return -EINVAL;
    }
    if (b->password == NULL) {
        snprintf(reason, rlen, "out of memory");
        return -ENOMEM;
    }
    ward_log_add_secret(b->password);
    snprintf(b->cred_stamp, sizeof(b->cred_stamp), "%s", stamp);
    return 0;
}

/* ---- requests --------------------------------------------------------------------- */

static void on_http(void *arg, const struct ward_rf_response *r);

/* The resource a request path names, without its query: what quirk hooks match on (the
 * inventory asks for the NIC collection with "?$expand=..."). */
static const char *resource_of(const char *path, char *buf, size_t n)
{
    const char *q = strchr(path, '?');
    if (q == NULL) {
        return path;
    }
    snprintf(buf, n, "%.*s", (int)(q - path), path);
    return buf;
}

static bool idempotent(enum ward_rf_method m)
{
    return m == WARD_RF_GET || m == WARD_RF_PATCH || m == WARD_RF_DELETE;
}

static void op_request(struct ward_rf_op *op, enum ward_rf_method method, const char *path,
                       const char *body, const char *if_match)
{
    char *copy = body != NULL ? strdup(body) : NULL;
    char p[PATH_MAX_LEN];
    snprintf(p, sizeof(p), "%s", path); /* path may point into op->req */
    struct ward_rf_quirks *q = op->bmc->c->o.quirks;
    if (q != NULL && copy != NULL) {
        char *adjusted = ward_rf_quirks_request(
            q, &op->bmc->ident, ward_rf_op_kind_name(op->kind), ward_rf_method_name(method), p,
            copy, strcmp(op->current_path, p) == 0 ? op->current : NULL);
        if (adjusted != NULL) {
            free(copy);
            copy = adjusted;
        }
    }
    if (method != WARD_RF_GET) {
        drop_fresh_system(op->bmc); /* the system may answer otherwise now */
    }
    req_clear(&op->req);
    op->req.method = method;
    snprintf(op->req.path, sizeof(op->req.path), "%s", p);
    op->req.body = copy;
    snprintf(op->req.if_match, sizeof(op->req.if_match), "%s", if_match != NULL ? if_match : "");
    op->attempt = 0;
    send_now(op);
}

static void op_request_json(struct ward_rf_op *op, enum ward_rf_method method, const char *path,
                            cJSON *body, const char *if_match)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    op_request(op, method, path, text, if_match);
    free(text);
}

/* Queue ab for wake_parked when the first in line may go now. */
static void wake_later(struct ward_rf_client *c, struct at_base *ab)
{
    if (ab->parked != NULL && ab->in_flight < c->o.concurrency && !ab->woken) {
        ab->woken = true;
        ab->woken_next = c->woken;
        c->woken = ab;
        kick(c);
    }
}

static void park(struct ward_rf_op *op)
{
    struct ward_rf_op **p = &op->bmc->at->parked;
    while (*p != NULL) {
        p = &(*p)->park_next;
    }
    *p = op;
    op->park_next = NULL;
    op->parked = true;
}

static void unpark(struct ward_rf_op *op)
{
    if (!op->parked) {
        return;
    }
    for (struct ward_rf_op **p = &op->bmc->at->parked; *p != NULL; p = &(*p)->park_next) {
        if (*p == op) {
            *p = op->park_next;
            break;
        }
    }
    op->park_next = NULL;
    op->parked = false;
    wake_later(op->bmc->c, op->bmc->at); /* the one behind it may be first in line now */
}

/* A request of b ended: one parked at its address may go, from the loop (never from inside
   the code that ended this one). */
static void request_ended(struct ward_rf_bmc *b)
{
    b->in_flight--;
    b->at->in_flight--;
    wake_later(b->c, b->at);
}

/* Is op's request on the wire (or its answer) a power change's Reset? Its login is not. */
static bool is_reset(const struct ward_rf_op *op)
{
    return op->kind == WARD_RF_OP_POWER && op->req.method == WARD_RF_POST && !op->login_sent;
}

static void send_now(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    struct ward_rf_client *c = b->c;
    double t = now(c);
    /* its pacing timer may have expired without having run yet (wake_parked came first, in
       the same loop iteration): this send replaces it, whichever way it goes (sent, parked
       on a login, failed), so the timer must not send again */
    ev_timer_stop(c->loop, &op->timer);
    if (b->failures >= c->o.breaker_threshold && t < b->breaker_until) {
        op_fail(op, -EHOSTDOWN,
                "BMC %s: circuit breaker open after %u consecutive failures; next trial in "
                "%.0fs; last failure: %s",
                b->name, b->failures, b->breaker_until - t, b->last_failure);
        return;
    }
    if (!op->login_sent && b->have_root && b->has_sessions && b->s->token == NULL &&
        op->kind != WARD_RF_OP_LOGOUT) {
        /* the session ended while this request waited (another system's request found it
           expired, or the BMC was reset): log in first, not send what the BMC would refuse */
        unpark(op);
        login(op);
        return;
    }
    struct at_base *ab = b->at;
    if (ab->in_flight >= c->o.concurrency || (ab->parked != NULL && ab->parked != op)) {
        /* the BMC has its requests (or others wait before this one): it goes when one of
           them ends, in the order they came */
        if (!op->parked) {
            park(op);
        }
        return;
    }
    /* AIMD pacing: requests to one BMC are at least 1/rate apart. A request waiting for its
       time waits parked, first in line, so none that comes later goes before it. */
    double at = ab->next_request_at > t ? ab->next_request_at : t;
    if (at > t + 1e-6) {
        if (!op->parked) {
            park(op);
        }
        op_after(op, at - t, send_now);
        return;
    }
    unpark(op);
    ab->next_request_at = t + 1.0 / ab->rate;
    char url[PATH_MAX_LEN + 256];
    snprintf(url, sizeof(url), "%s%s", b->base, op->req.path);
    bool login = op->login_sent;
    struct ward_rf_http_opts o = {
        .method = op->req.method,
        .url = url,
        .body = op->req.body,
        .if_match = op->req.if_match[0] != '\0' ? op->req.if_match : NULL,
        .cainfo = b->cainfo,
        .insecure = b->insecure,
        .connect_timeout = c->o.connect_timeout,
        .timeout = c->o.timeout,
        .pool = b->pool,
    };
    /* a logout carries the session's token also from an object that never read the root (a
       system another made the session for, removed before it ran anything) */
    bool logout = op->kind == WARD_RF_OP_LOGOUT;
    if (!login && (b->have_root || logout)) {
        if (b->has_sessions || logout) {
            o.auth_token = b->s->token;
            op->sent_gen = b->s->gen;
        } else {
            o.user = b->user;
            o.password = b->password;
        }
    }
    struct ward_error err = {0};
    op->http = ward_rf_http_start(c->http, &o, on_http, op, &err);
    if (op->http == NULL) {
        op_fail(op, err.code, "BMC %s: %s", b->name, err.text);
        return;
    }
    b->in_flight++;
    ab->in_flight++;
    if (is_reset(op)) {
        op->reset_sent = true;
        op->reset_refused = false;
    }
    wake_later(c, ab); /* concurrency > 1: room for the next in line */
    if (b->in_flight > b->max_in_flight) {
        b->max_in_flight = b->in_flight;
    }
}

/* A waiter of a login that ended goes on: discovery continues, or its interrupted request
   goes again, with the new token, or (no session was made) after a login of its own. */
static void resume_after_login(struct ward_rf_op *op)
{
    if (op->phase == PH_LOGIN) {
        op_advance(op, NULL);
    } else {
        send_now(op);
    }
}

/* The next waiter of the list being woken. A callback run for one may end another, which
   op_free then takes off this list, so the walk never holds a pointer to a freed one. */
static struct ward_rf_op *next_waking(struct session *s)
{
    struct ward_rf_op *w = s->waking;
    if (w != NULL) {
        s->waking = w->wait_next;
        w->wait_next = NULL;
    }
    return w;
}

/* Put the parked operations on the list being woken. A wake may begin inside another (an
   operation woken by one logs in, and that login fails at once): its waiters join the list
   the outer walk is taking from, so none is dropped. */
static void take_waiters(struct session *s)
{
    struct ward_rf_op **tail = &s->waking;
    while (*tail != NULL) {
        tail = &(*tail)->wait_next;
    }
    *tail = s->login_waiters;
    s->login_waiters = NULL;
}

/* The login by (an object of s) ended: its waiters go on, or fail with its reason. One of
   another system says whose login it was, as its host's events would otherwise name only
   the other host. */
static void wake_login_waiters(struct session *s, const struct ward_rf_bmc *by, int code,
                               const char *reason)
{
    take_waiters(s);
    struct ward_rf_op *w;
    while ((w = next_waking(s)) != NULL) {
        if (code != 0 && w->bmc != by) {
            op_fail(w, code, "BMC %s: the session it shares with %s was not made: %s", w->bmc->name,
                    by->name, reason);
        } else if (code != 0) {
            op_fail(w, code, "%s", reason);
        } else {
            resume_after_login(w);
        }
    }
}

static void aimd(struct ward_rf_bmc *b, const struct ward_rf_response *r)
{
    struct ward_rf_client *c = b->c;
    struct at_base *ab = b->at;
    bool congested = r->code == -ETIMEDOUT || r->status == 409 || r->status == 429 ||
                     r->status == 503 || r->elapsed > c->o.slow_answer;
    if (congested) {
        ab->rate /= 2;
        if (ab->rate < c->o.rate_min) {
            ab->rate = c->o.rate_min;
        }
        if (r->code == -ETIMEDOUT) {
            /* we gave up, the BMC may not have: whatever comes next (a retry, another
               operation, a recovery step, another system's request) waits `backoff` so it
               does not run beside it */
            double t = now(c) + c->o.backoff;
            if (ab->next_request_at < t) {
                ab->next_request_at = t;
            }
        }
    } else if (r->code == 0 && r->status < 500) {
        ab->rate += 1;
        if (ab->rate > c->o.rate_max) {
            ab->rate = c->o.rate_max;
        }
    }
}

static void breaker(struct ward_rf_bmc *b, const struct ward_rf_response *r)
{
    struct ward_rf_client *c = b->c;
    if (r->code != 0 || r->status >= 500) {
        b->failures++;
        if (b->failures == c->o.breaker_threshold ||
            (b->failures > c->o.breaker_threshold && now(c) >= b->breaker_until)) {
            b->breaker_until = now(c) + c->o.breaker_open;
            ward_log_fields(WARD_LOG_WARN, COMPONENT,
                            (const struct ward_log_field[]){{"bmc", b->name}}, 1,
                            "circuit breaker opened after %u consecutive failures", b->failures);
        }
    } else {
        if (b->failures >= c->o.breaker_threshold) {
            ward_log_fields(WARD_LOG_INFO, COMPONENT,
                            (const struct ward_log_field[]){{"bmc", b->name}}, 1,
                            "circuit breaker closed");
        }
        b->failures = 0;
    }
}

static void fill_reason(struct ward_rf_op *op, const struct ward_rf_response *r, struct answer *a)
{
    const char *m = ward_rf_method_name(op->req.method);
    if (r->code != 0) {
        snprintf(a->reason, sizeof(a->reason), "%s %.160s: %.500s", m, op->req.path, r->reason);
    } else {
        char detail[4096];
        ward_rf_error_reason(r->body, detail, sizeof(detail));
        scrub_password(op->bmc, detail, sizeof(detail));
        snprintf(a->reason, sizeof(a->reason), "%s %.160s: HTTP %ld%s%.500s", m, op->req.path,
                 r->status, detail[0] != '\0' ? ": " : "", detail);
    }
    scrub_password(op->bmc, a->reason, sizeof(a->reason));
}

/* Did the BMC refuse the credentials in force (as loaded last)? */
static bool refused_before(const struct ward_rf_bmc *b)
{
    return b->s->bad_stamp[0] != '\0' && strcmp(b->s->bad_stamp, b->cred_stamp) == 0;
}

/* The BMC refused the credentials in force: none is sent again until they change. */
static void refuse_credentials(struct ward_rf_bmc *b, const char *why)
{
    snprintf(b->s->bad_stamp, sizeof(b->s->bad_stamp), "%s", b->cred_stamp);
    ward_log_fields(WARD_LOG_ERROR, COMPONENT, (const struct ward_log_field[]){{"bmc", b->name}}, 1,
                    "%s", why);
}

/* A login answered 401/403 (these credentials: not again until they change) or 503 (no
   free session: no login for a while, doubled at each repeat). The wait for a 503. */
static double login_refused(struct ward_rf_bmc *b, long status)
{
    struct ward_rf_client *c = b->c;
    if (status == 401 || status == 403) {
        refuse_credentials(b, "login refused; not retrying until the credentials change");
        return 0;
    }
    if (status != 503) {
        return 0;
    }
    struct at_base *ab = b->at;
    double wait = ab->session_backoff > 0 ? ab->session_backoff * 2 : c->o.session_backoff;
    if (wait > 600) {
        wait = 600;
    }
    ab->session_backoff = wait;
    ab->sessions_blocked_until = now(c) + wait;
    return wait;
}

/* A login succeeded: the session it made (its token and where to delete it) is kept, and
   the refusals and backoff of earlier logins are over. */
static void keep_session(struct ward_rf_bmc *b, const struct ward_rf_response *r)
{
    struct session *s = b->s;
    b->at->session_backoff = 0;
    s->bad_stamp[0] = '\0';
    session_forget(s);
    /* not registered with the logger's redaction: tokens change at every login and the
       list would only grow; no code path puts a token into text */
    s->token = strdup(r->auth_token);
    s->gen++;
    char p[PATH_MAX_LEN];
    if (ward_rf_path_ok(b->base, r->location, p, sizeof(p))) {
        path_set(&s->path, p);
    }
}

static void on_http(void *arg, const struct ward_rf_response *r)
{
    struct ward_rf_op *op = arg;
    struct ward_rf_bmc *b = op->bmc;
    struct ward_rf_client *c = b->c;
    op->http = NULL;
    request_ended(b);
    aimd(b, r);
    breaker(b, r);
    if (is_reset(op)) {
        /* an error status says the BMC is not switching (also a 401 a new login follows, or a
           409 a quirk asks again after), until the Reset is sent again */
        op->reset_refused = r->code == 0 && r->status >= 300;
    }
    if (r->code != 0 || r->status >= 500) {
        /* kept for the breaker's refusals, which would otherwise hide what the BMC does */
        char what[180];
        if (r->code != 0) {
            snprintf(what, sizeof(what), "%.170s", r->reason);
        } else {
            snprintf(what, sizeof(what), "HTTP %ld", r->status);
        }
        snprintf(b->last_failure, sizeof(b->last_failure), "%s %.120s: %s",
                 ward_rf_method_name(op->req.method), op->req.path, what);
    }
    if (r->code == 0 && r->status == 401 && !op->login_sent && !b->has_sessions &&
        !refused_before(b)) {
        /* basic authentication: every request carries the password, so a refusal at any
           step (not only discovery's) must stop the next ones from sending it again, or a
           rotated password would lock the account one operation at a time */
        refuse_credentials(b, "credentials refused; not sending them again until they change");
    }
    if (op->orphaned) {
        /* a login's answer counts as any login's: its session is kept, and a refusal is
           remembered, so the waiters do not send refused credentials again */
        bool login = op->login_sent, kept = false;
        char why[200] = "";
        if (login && r->code == 0 && r->status >= 200 && r->status < 300 && r->auth_token != NULL) {
            keep_session(b, r);
            kept = true;
        } else if (login) {
            login_refused(b, r->code == 0 ? r->status : 0);
            if (r->code != 0) {
                snprintf(why, sizeof(why), "BMC %s: login failed: %.100s", b->name, r->reason);
            } else {
                snprintf(why, sizeof(why), "BMC %s: login failed: HTTP %ld", b->name, r->status);
            }
        }
        struct session *s = b->s;
        bool owned_login = s->login_op == op;
        if (owned_login) {
            s->login_op = NULL;
        }
        op_free(op); /* the BMC is free again: what waited for it may go (b too) */
        if (owned_login) {
            bool refused = r->code == 0 && (r->status == 401 || r->status == 403);
            wake_login_waiters(s, b, kept ? 0 : refused ? -EACCES : -EIO, why);
        }
        kick(c);
        return;
    }
    /* vendor quirk hooks see the answer first (never a login: it carries credentials) */
    struct ward_rf_response view = *r;
    cJSON *hooked = NULL;
    bool have_hooked = false, parse_failed = false;
    if (c->o.quirks != NULL && r->code == 0 && !op->login_sent) {
        hooked = r->body_len > 0 ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
        parse_failed = r->body_len > 0 && hooked == NULL;
        long status = r->status;
        double retry = 0;
        char res[PATH_MAX_LEN];
        ward_rf_quirks_response(c->o.quirks, &b->ident, ward_rf_op_kind_name(op->kind),
                                ward_rf_method_name(op->req.method),
                                resource_of(op->req.path, res, sizeof(res)), &status, &hooked,
                                &retry);
        if (retry > 0 && op->quirk_retries < 10) {
            /* a refusal whose outcome is known (the hook said so): ask again later */
            cJSON_Delete(hooked);
            op->quirk_retries++;
            op_after(op, retry, send_now);
            return;
        }
        view.status = status;
        have_hooked = true;
        r = &view;
        if (is_reset(op)) {
            op->reset_refused = r->status >= 300; /* as the hook reads the BMC's answer */
        }
    }
    bool transient = r->code != 0 || r->status == 429 || r->status == 500 || r->status == 502 ||
                     r->status == 503 || r->status == 504;
    bool login_req = op->login_sent;
    if (transient && idempotent(op->req.method) && op->attempt < c->o.retries && !op->expand_sent &&
        !(b->failures >= c->o.breaker_threshold && now(c) < b->breaker_until)) {
        double delay = backoff_delay(c, op->attempt);
        if (r->retry_after > delay) {
            delay = r->retry_after;
        }
        op->attempt++;
        b->retries++;
        cJSON_Delete(hooked);
        op_after(op, delay, send_now);
        return;
    }
    if (r->code == 0 && r->status == 401 && !login_req && b->has_sessions && !op->relogged &&
        op->kind != WARD_RF_OP_LOGOUT) {
        /* the session expired or was dropped: one new login for this request (not for a
           logout: a session the BMC no longer knows is already ended, and a new one made
           only to delete the old path would be left behind). When another request has
           logged in since this one went out, its session serves: a second login would
           leave that one behind on the BMC. */
        op->relogged = true;
        cJSON_Delete(hooked);
        if (b->s->gen == op->sent_gen) {
            session_forget(b->s); /* the token it carried is the one in force: dead */
        }
        send_now(op); /* with the session in force, or after a login when there is none */
        return;
    }
    struct answer a = {.code = r->code,
                       .status = r->status,
                       .body = r->body,
                       .body_len = r->body_len,
                       .etag = r->etag,
                       .location = r->location};
    if (r->code != 0 || r->status >= 400) {
        fill_reason(op, r, &a);
        if (a.code == 0) {
            a.code = r->status == 404 ? -ENOENT : r->status == 401 ? -EACCES : -EIO;
        }
    } else if (have_hooked) {
        a.json = hooked;
        hooked = NULL;
        if (parse_failed && a.json == NULL) {
            snprintf(a.reason, sizeof(a.reason), "%s %s: malformed JSON in the BMC's answer",
                     ward_rf_method_name(op->req.method), op->req.path);
            a.code = -EBADMSG;
        }
    } else if (r->body_len > 0) {
        a.json = cJSON_ParseWithLength(r->body, r->body_len);
        if (a.json == NULL) {
            snprintf(a.reason, sizeof(a.reason), "%s %s: malformed JSON in the BMC's answer",
                     ward_rf_method_name(op->req.method), op->req.path);
            a.code = -EBADMSG;
        }
    }
    if (login_req) {
        op->login_sent = false;
        op->login_answered = true;
        req_clear(&op->req); /* wipes the password */
        if (a.code == 0) {
            if (r->auth_token == NULL) {
                cJSON_Delete(a.json);
                op_fail(op, -EPROTO, "BMC %s: login answered without an X-Auth-Token", b->name);
                return;
            }
            keep_session(b, r);
        } else if (r->status == 401 || r->status == 403) {
            login_refused(b, r->status);
        } else if (r->status == 503) {
            double wait = login_refused(b, r->status);
            char more[760];
            snprintf(more, sizeof(more), "%.620s (no free sessions; no new login for %.0fs)",
                     a.reason, wait);
            snprintf(a.reason, sizeof(a.reason), "%.699s", more);
        }
        if (a.code != 0) {
            char reason[sizeof(a.reason) + 64];
            snprintf(reason, sizeof(reason), "BMC %s: login failed: %s", b->name, a.reason);
            cJSON_Delete(a.json);
            op_done(op, a.code, reason);
            return;
        }
        cJSON_Delete(a.json);
        /* login done: resend what this operation was doing, then wake the others. Not the
           other way round: a waiter may end at once, and its callback may close this BMC
           object, which would end this operation while it is still being used here. What
           this operation's own callback may do (it can end at once too) leaves the
           session alive: an object is freed from the loop, never inside a callback. */
        struct session *s = b->s;
        s->login_op = NULL;
        if (op->has_saved) {
            op->has_saved = false;
            op->req = op->saved;
            memset(&op->saved, 0, sizeof(op->saved));
            op->attempt = 0;
            send_now(op);
        } else {
            op->phase = PH_SYSTEMS;
            op_advance(op, NULL);
        }
        wake_login_waiters(s, b, 0, "");
        return;
    }
    cJSON_Delete(hooked);
    if (c->o.quirks != NULL && a.code == 0 && a.json != NULL && op->req.method == WARD_RF_GET) {
        cJSON_Delete(op->current);
        op->current = cJSON_Duplicate(a.json, true);
        char res[PATH_MAX_LEN];
        snprintf(op->current_path, sizeof(op->current_path), "%s",
                 resource_of(op->req.path, res, sizeof(res)));
    }
    op_advance(op, &a);
    cJSON_Delete(a.json);
}

/*
 * Log in for op. The request op was sending is kept in op->saved so it can be resent
 * afterwards; when op->phase is PH_LOGIN the discovery continues instead. Only one login runs
 * per BMC: other operations needing one park until it ends.
 */
static void login(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    struct ward_rf_client *c = b->c;
    struct session *s = b->s;
    if (s->login_op != NULL && s->login_op != op) {
        op->wait_next = s->login_waiters;
        s->login_waiters = op;
        return;
    }
    if (now(c) < b->at->sessions_blocked_until) {
        op_fail(op, -EBUSY, "BMC %s has no free sessions; next login attempt in %.0fs", b->name,
                b->at->sessions_blocked_until - now(c));
        return;
    }
    char reason[512];
    int rc = load_password(b, reason, sizeof(reason));
    if (rc != 0) {
        op_fail(op, rc, "%s", reason);
        return;
    }
    if (refused_before(b)) {
        op_fail(op, -EACCES,
                "BMC %s refused these credentials; not logging in again until they change",
                b->name);
        return;
    }
    s->login_op = op;
    op->login_answered = false;
    b->logins++;
    if (op->phase != PH_LOGIN) {
        /* keep the interrupted request to resend it with the new session */
        req_clear(&op->saved);
        op->saved = op->req;
        memset(&op->req, 0, sizeof(op->req));
        op->has_saved = true;
    } else {
        req_clear(&op->req);
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "UserName", b->user != NULL ? b->user : "");
    cJSON_AddStringToObject(body, "Password", b->password);
    op->req.body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    op->req.method = WARD_RF_POST;
    snprintf(op->req.path, sizeof(op->req.path), "%s", b->sessions_path);
    op->attempt = 0;
    op->login_sent = true;
    send_now(op);
}

/* ---- operations ------------------------------------------------------------------- */

static bool failed(struct ward_rf_op *op, struct answer *a)
{
    if (a->code == 0) {
        return false;
    }
    op_fail(op, a->code, "BMC %s: %s", op->bmc->name, a->reason);
    return true;
}

static bool to_path(struct ward_rf_op *op, const char *link, char *out, size_t outlen)
{
    return ward_rf_path_ok(op->bmc->base, link, out, outlen);
}

static void main_step(struct ward_rf_op *op, struct answer *a);

static void get(struct ward_rf_op *op, int next, const char *path)
{
    op->step = next;
    op_request(op, WARD_RF_GET, path, NULL, NULL);
}

static cJSON *take_json(struct answer *a)
{
    cJSON *j = a->json;
    a->json = NULL;
    return j;
}

enum {
    /* shared */
    S_START = 0,
    S_TASK_POLL = 100, /* GET the task monitor in op->saved, then step op->target[0..] */
    S_TASK_DONE,
    /* raw requests */
    S_RAW_DONE = 10,
    S_RAW_ETAG,
    /* inventory */
    S_INV_SYSTEM = 20,
    S_INV_NICS,
    S_INV_NIC,
    /* power */
    S_PW_READ = 30,
    S_PW_INFO,
    S_PW_POSTED,
    S_PW_POLL,
    S_PW_POLLED,
    S_PW_REPOST,
    /* boot */
    S_BT_READ = 40,
    S_BT_PATCHED,
    S_BT_VERIFIED,
    /* media */
    S_MD_MANAGER = 50,
    S_MD_COLLECTION,
    S_MD_MEMBER,
    S_MD_EJECTED,
    S_MD_INSERTED,
    S_MD_VERIFIED,
    S_MD_AFTER_EJECT,
    /* others */
    S_PS_READ = 70,
    S_MR_READ = 75,
    S_MR_POSTED,
    S_LOGOUT_DONE = 80,
};

static void start_task(struct ward_rf_op *op, const char *location, int next)
{
    char path[PATH_MAX_LEN];
    if (!to_path(op, location, path, sizeof(path))) {
        op_fail(op, -EPROTO, "BMC %s: task monitor location is not on the BMC", op->bmc->name);
        return;
    }
    snprintf(op->saved_task, sizeof(op->saved_task), "%s", path);
    op->task_next = next;
    op->task_deadline = now(op->bmc->c) + op->bmc->c->o.task_timeout;
    get(op, S_TASK_DONE, path);
}

static void task_poll_again(struct ward_rf_op *op)
{
    get(op, S_TASK_DONE, op->saved_task);
}

/* The answer of a task monitor: 202 still running, anything else final. */
static void task_step(struct ward_rf_op *op, struct answer *a)
{
    if (failed(op, a)) {
        return;
    }
    if (a->status == 202) {
        if (now(op->bmc->c) > op->task_deadline) {
            op_fail(op, -ETIMEDOUT, "BMC %s: task %s still running after %.0fs", op->bmc->name,
                    op->saved_task, op->bmc->c->o.task_timeout);
            return;
        }
        op_after(op, op->bmc->c->o.poll_interval, task_poll_again);
        return;
    }
    const char *state = ward_rf_str(a->json, "TaskState");
    if (state != NULL && (strcmp(state, "Exception") == 0 || strcmp(state, "Killed") == 0 ||
                          strcmp(state, "Cancelled") == 0)) {
        char detail[512] = "";
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(a->json, "Messages");
        const cJSON *m;
        cJSON_ArrayForEach(m, (cJSON_IsArray(msgs) ? msgs : NULL))
        {
            const char *text = ward_rf_str(m, "Message");
            if (text != NULL) {
                snprintf(detail, sizeof(detail), ": %s", text);
                break;
            }
        }
        op_fail(op, -EIO, "BMC %s: task ended %s%s", op->bmc->name, state, detail);
        return;
    }
    op->step = op->task_next;
    main_step(op, NULL);
}

/* ---- raw get/patch/post ---- */

static void raw_step(struct ward_rf_op *op, struct answer *a)
{
    enum ward_rf_method m = op->kind == WARD_RF_OP_GET     ? WARD_RF_GET
                            : op->kind == WARD_RF_OP_PATCH ? WARD_RF_PATCH
                                                           : WARD_RF_POST;
    char path[PATH_MAX_LEN];
    switch (op->step) {
    case S_START:
        if (!to_path(op, op->arg, path, sizeof(path))) {
            op_fail(op, -EINVAL, "not a path on the BMC: %.200s", op->arg != NULL ? op->arg : "");
            return;
        }
        if (m != WARD_RF_GET) {
            cJSON *check = cJSON_Parse(op->body != NULL ? op->body : "{}");
            if (!cJSON_IsObject(check)) {
                cJSON_Delete(check);
                op_fail(op, -EINVAL, "the request body is not a JSON object");
                return;
            }
            cJSON_Delete(check);
        }
        op->step = S_RAW_DONE;
        op_request(op, m, path, m == WARD_RF_GET ? NULL : (op->body ? op->body : "{}"),
                   op->etag[0] != '\0' ? op->etag : NULL);
        return;
    case S_RAW_DONE:
        if (m == WARD_RF_PATCH && (a->status == 412 || a->status == 428) && !op->refetched) {
            /* the BMC wants If-Match: read the current ETag and try once more */
            op->refetched = true;
            get(op, S_RAW_ETAG, op->req.path);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        if (a->status == 202 && a->location != NULL) {
            start_task(op, a->location, S_TASK_POLL);
            return;
        }
        op->result = take_json(a);
        op_done(op, 0, "");
        return;
    case S_RAW_ETAG:
        if (failed(op, a)) {
            return;
        }
        snprintf(op->etag, sizeof(op->etag), "%s", a->etag != NULL ? a->etag : "*");
        op->step = S_START;
        raw_step(op, NULL);
        return;
    case S_TASK_POLL:
        op_done(op, 0, "");
        return;
    }
}

/* ---- inventory ---- */

/*
 * The $expand value a service root advertises for inlining a collection's members
 * (ProtocolFeaturesSupported.ExpandQuery): "." expands every hyperlink outside Links, which
 * is where Members are; "*" expands all of them. $levels=1 is the default, and is said only
 * to a service that takes $levels. NULL when the root advertises neither.
 */
static const char *expand_query(const cJSON *root)
{
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(root, "ProtocolFeaturesSupported");
    const cJSON *eq = cJSON_GetObjectItemCaseSensitive(pf, "ExpandQuery");
    bool levels = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(eq, "Levels"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(eq, "NoLinks"))) {
        return levels ? "$expand=.($levels=1)" : "$expand=.";
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(eq, "ExpandAll"))) {
        return levels ? "$expand=*($levels=1)" : "$expand=*";
    }
    return NULL;
}

/* A NIC's MAC address into the inventory's list. */
static void inventory_add_mac(struct ward_rf_op *op, const cJSON *nic)
{
    const char *mac = ward_rf_str(nic, "MACAddress");
    if (mac == NULL) {
        mac = ward_rf_str(nic, "PermanentMACAddress");
    }
    cJSON *macs = cJSON_GetObjectItemCaseSensitive(op->result, "macs");
    if (mac != NULL && cJSON_IsArray(macs)) {
        cJSON_AddItemToArray(macs, cJSON_CreateString(mac));
    }
}

/*
 * A document that stands in for the answer to a GET of path (one discovery just read, or a
 * member inline in a collection) goes through the response hooks as that answer would;
 * false when there is none or a hook would not take it as it is (a retry, an error status,
 * no body), and the caller reads path itself. *doc may be replaced.
 */
static bool hooks_take(struct ward_rf_op *op, const char *path, cJSON **doc)
{
    struct ward_rf_quirks *q = op->bmc->c->o.quirks;
    if (*doc == NULL || q == NULL) {
        return *doc != NULL;
    }
    long status = 200;
    double retry = 0;
    ward_rf_quirks_response(q, &op->bmc->ident, ward_rf_op_kind_name(op->kind), "GET", path,
                            &status, doc, &retry);
    return retry <= 0 && status >= 200 && status < 300 && *doc != NULL;
}

/* A member the service expanded inline has a property of its own, not only annotations
 * (@odata.id, @odata.etag, or a @Message.ExtendedInfo saying why it was not expanded). */
static bool expanded(const cJSON *m)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, (cJSON_IsObject(m) ? m : NULL))
    {
        if (f->string != NULL && f->string[0] != '@') {
            return true;
        }
    }
    return false;
}

/* The NICs one after the other. A member already expanded costs no request; it meets the
 * response hooks as its own GET's answer would, under its own path. */
static void inventory_next_nic(struct ward_rf_op *op)
{
    char path[PATH_MAX_LEN];
    while (op->member < cJSON_GetArraySize(op->members) && op->member < 32) {
        const cJSON *m = cJSON_GetArrayItem(op->members, op->member++);
        bool linked = to_path(op, ward_rf_str(m, "@odata.id"), path, sizeof(path));
        if (expanded(m)) {
            cJSON *doc = cJSON_Duplicate(m, true);
            bool taken = hooks_take(op, linked ? path : "", &doc);
            if (taken) {
                inventory_add_mac(op, doc);
            }
            cJSON_Delete(doc);
            if (taken || !linked) {
                continue;
            }
        }
        if (linked) {
            get(op, S_INV_NIC, path);
            return;
        }
    }
    op_done(op, 0, "");
}

/* The NIC collection, with its members inline where the BMC offers $expand. */
static void inventory_get_nics(struct ward_rf_op *op, const char *path)
{
    char query[PATH_MAX_LEN];
    const char *expand = op->bmc->expand;
    op->expand_sent = expand != NULL && strchr(path, '?') == NULL &&
                      snprintf(query, sizeof(query), "%s?%s", path, expand) < (int)sizeof(query);
    get(op, S_INV_NICS, op->expand_sent ? query : path);
}

/* The inventory's fields from the system; then its NICs. */
static void inventory_system(struct ward_rf_op *op, const cJSON *system)
{
    char path[PATH_MAX_LEN];
    op->result = ward_rf_inventory_from_system(system);
    if (op->result == NULL) {
        op_fail(op, -EBADMSG, "BMC %s: the system resource is not a JSON object", op->bmc->name);
        return;
    }
    if (to_path(op, ward_rf_link(system, "EthernetInterfaces"), path, sizeof(path))) {
        inventory_get_nics(op, path);
        return;
    }
    op_done(op, 0, "");
}

/*
 * The system discovery read within FRESH_SYSTEM_S, through the response hooks as the
 * inventory's own answer would go; NULL when there is none or a hook would not take it
 * as it is, and the inventory reads the system itself.
 */
static cJSON *take_fresh_system(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    char *text = b->fresh_system;
    size_t len = b->fresh_system_len;
    b->fresh_system = NULL;
    if (text == NULL || now(b->c) - b->fresh_system_at > FRESH_SYSTEM_S) {
        free(text);
        return NULL;
    }
    cJSON *system = cJSON_ParseWithLength(text, len);
    free(text);
    if (!hooks_take(op, b->system_path, &system)) {
        cJSON_Delete(system);
        return NULL;
    }
    return system;
}

static void inventory_step(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_bmc *b = op->bmc;
    switch (op->step) {
    case S_START: {
        cJSON *system = take_fresh_system(op);
        if (system != NULL) {
            inventory_system(op, system);
            cJSON_Delete(system);
            return;
        }
        get(op, S_INV_SYSTEM, b->system_path);
        return;
    }
    case S_INV_SYSTEM:
        if (failed(op, a)) {
            return;
        }
        inventory_system(op, a->json);
        return;
    case S_INV_NICS: {
        bool expand_failed = op->expand_sent && a->code != 0;
        op->expand_sent = false;
        if (expand_failed) {
            /* The expanded request was not retried: this time the collection is read member
               by member. A BMC that refuses the query it advertises, answers it with a broken
               body, or does not answer in time (firmware that builds an expansion slowly) is
               read that way from now on; one that was busy, rebooting or out of session is
               asked again next time. */
            long st = a->status;
            bool lasting = (st >= 400 && st < 500 && st != 401 && st != 408 && st != 429) ||
                           st == 501 || a->code == -EBADMSG || a->code == -ETIMEDOUT;
            char what[160];
            if (st >= 400) {
                snprintf(what, sizeof(what), "HTTP %ld", st);
            } else {
                snprintf(what, sizeof(what), "%.150s", a->reason);
            }
            ward_log_fields(lasting ? WARD_LOG_WARN : WARD_LOG_INFO, COMPONENT,
                            (const struct ward_log_field[]){{"bmc", b->name}}, 1,
                            "%s failed (%s); reading %s", b->expand != NULL ? b->expand : "$expand",
                            what,
                            lasting ? "collections member by member from now on"
                                    : "this collection member by member");
            if (lasting) {
                b->expand = NULL;
            }
            char path[PATH_MAX_LEN];
            get(op, S_INV_NICS, resource_of(op->req.path, path, sizeof(path)));
            return;
        }
        if (failed(op, a)) {
            return;
        }
        cJSON_Delete(op->members);
        op->members = cJSON_DetachItemFromObjectCaseSensitive(a->json, "Members");
        op->member = 0;
        inventory_next_nic(op);
        return;
    }
    case S_INV_NIC:
        if (failed(op, a)) {
            return;
        }
        inventory_add_mac(op, a->json);
        inventory_next_nic(op);
        return;
    }
}

/* ---- power ---- */

static bool one_of(const char *type, const char *const *types, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool ward_rf_power_restarts(const char *type)
{
    static const char *const restarts[] = {"ForceRestart", "GracefulRestart", "PowerCycle"};
    return one_of(type, restarts, WARD_ARRAY_LEN(restarts));
}

const char *ward_rf_power_goal(const char *type)
{
    static const char *const on[] = {"On", "ForceOn"};
    static const char *const off[] = {"ForceOff", "GracefulShutdown"};
    if (one_of(type, on, WARD_ARRAY_LEN(on)) || ward_rf_power_restarts(type)) {
        return "On";
    }
    return one_of(type, off, WARD_ARRAY_LEN(off)) ? "Off" : NULL;
}

static bool is_restart(const char *type)
{
    return strstr(type, "Restart") != NULL || strcmp(type, "PowerCycle") == 0;
}

static void power_post(struct ward_rf_op *op)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "ResetType", op->arg);
    op->step = S_PW_POSTED;
    op_request_json(op, WARD_RF_POST, op->action, body, NULL);
}

static void power_check_and_post(struct ward_rf_op *op, const cJSON *doc_with_values)
{
    const char *vals[32];
    size_t n = ward_rf_allowable_values(doc_with_values, "ResetType", vals, 32);
    if (n > 0) {
        bool found = false;
        char offered[256] = "";
        for (size_t i = 0; i < n; i++) {
            found = found || strcmp(vals[i], op->arg) == 0;
            size_t used = strlen(offered);
            snprintf(offered + used, sizeof(offered) - used, "%s%s", i ? ", " : "", vals[i]);
        }
        if (!found) {
            op_fail(op, -ENOTSUP, "BMC %s does not advertise ResetType %s (it offers: %s)",
                    op->bmc->name, op->arg, offered);
            return;
        }
    }
    if (strcmp(op->power_now, op->target) == 0 && !is_restart(op->arg)) {
        op_done(op, 0, "");
        return;
    }
    power_post(op);
}

static void power_poll(struct ward_rf_op *op)
{
    get(op, S_PW_POLLED, op->bmc->system_path);
}

static void power_step(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_client *c = op->bmc->c;
    char path[PATH_MAX_LEN];
    switch (op->step) {
    case S_START: {
        const char *goal = op->arg != NULL ? ward_rf_power_goal(op->arg) : NULL;
        if (goal == NULL) {
            op_fail(op, -EINVAL, "unsupported power action %.64s", op->arg ? op->arg : "");
            return;
        }
        snprintf(op->target, sizeof(op->target), "%s", goal);
        get(op, S_PW_READ, op->bmc->system_path);
        return;
    }
    case S_PW_READ: {
        if (failed(op, a)) {
            return;
        }
        const char *ps = ward_rf_str(a->json, "PowerState");
        snprintf(op->power_now, sizeof(op->power_now), "%s", ps != NULL ? ps : "");
        const cJSON *actions = cJSON_GetObjectItemCaseSensitive(a->json, "Actions");
        const cJSON *reset =
            cJSON_IsObject(actions)
                ? cJSON_GetObjectItemCaseSensitive(actions, "#ComputerSystem.Reset")
                : NULL;
        if (!to_path(op, ward_rf_str(reset, "target"), op->action, sizeof(op->action))) {
            op_fail(op, -ENOTSUP, "BMC %s: the system offers no ComputerSystem.Reset action",
                    op->bmc->name);
            return;
        }
        const char *vals[2];
        if (ward_rf_allowable_values(a->json, "ResetType", vals, 2) == 0 &&
            to_path(op, ward_rf_str(reset, "@Redfish.ActionInfo"), path, sizeof(path))) {
            get(op, S_PW_INFO, path);
            return;
        }
        power_check_and_post(op, a->json);
        return;
    }
    case S_PW_INFO:
        if (failed(op, a)) {
            return;
        }
        power_check_and_post(op, a->json);
        return;
    case S_PW_POSTED:
        if (a->code != 0 && a->status == 0) {
            /* the request may or may not have reached the BMC: never repeat it blindly,
               read the state instead */
            op->outcome_unknown = true;
            snprintf(op->unknown_reason, sizeof(op->unknown_reason), "%s", a->reason);
        } else if (failed(op, a)) {
            return;
        }
        op->task_deadline = now(c) + c->o.power_timeout;
        power_poll(op);
        return;
    case S_PW_POLLED: {
        if (failed(op, a)) {
            return;
        }
        const char *ps = ward_rf_str(a->json, "PowerState");
        if (ps != NULL && strcmp(ps, op->target) == 0) {
            op_done(op, 0, "");
            return;
        }
        if (now(c) > op->task_deadline) {
            op_fail(op, -ETIMEDOUT, "BMC %s: PowerState is still %s %.0fs after Reset %s%s%s",
                    op->bmc->name, ps != NULL ? ps : "unknown", c->o.power_timeout, op->arg,
                    op->outcome_unknown ? "; the Reset request's outcome is unknown: " : "",
                    op->outcome_unknown ? op->unknown_reason : "");
            return;
        }
        op_after(op, c->o.poll_interval, power_poll);
        return;
    }
    }
}

static void power_state_step(struct ward_rf_op *op, struct answer *a)
{
    if (op->step == S_START) {
        get(op, S_PS_READ, op->bmc->system_path);
        return;
    }
    if (failed(op, a)) {
        return;
    }
    const char *ps = ward_rf_str(a->json, "PowerState");
    if (ps == NULL) {
        op_fail(op, -EBADMSG, "BMC %s: the system reports no PowerState", op->bmc->name);
        return;
    }
    op->result = cJSON_CreateString(ps);
    op_done(op, 0, "");
}

/* ---- boot override ---- */

static void boot_step(struct ward_rf_op *op, struct answer *a)
{
    bool clear = op->kind == WARD_RF_OP_BOOT_CLEAR;
    switch (op->step) {
    case S_START:
        get(op, S_BT_READ, op->bmc->system_path);
        return;
    case S_BT_READ: {
        if (failed(op, a)) {
            return;
        }
        const cJSON *boot = cJSON_GetObjectItemCaseSensitive(a->json, "Boot");
        snprintf(op->etag, sizeof(op->etag), "%s", a->etag != NULL ? a->etag : "");
        cJSON *body = cJSON_CreateObject();
        cJSON *nb = cJSON_AddObjectToObject(body, "Boot");
        if (clear) {
            cJSON_AddStringToObject(nb, "BootSourceOverrideEnabled", "Disabled");
        } else {
            const char *vals[32];
            size_t n = 0;
            const cJSON *av = cJSON_GetObjectItemCaseSensitive(
                boot, "BootSourceOverrideTarget@Redfish.AllowableValues");
            const cJSON *v;
            cJSON_ArrayForEach(v, (cJSON_IsArray(av) ? av : NULL))
            {
                if (cJSON_IsString(v) && n < 32) {
                    vals[n++] = v->valuestring;
                }
            }
            bool ok = n == 0;
            for (size_t i = 0; i < n; i++) {
                ok = ok || strcmp(vals[i], op->arg) == 0;
            }
            if (!ok) {
                cJSON_Delete(body);
                op_fail(op, -ENOTSUP, "BMC %s does not allow boot target %s", op->bmc->name,
                        op->arg);
                return;
            }
            cJSON_AddStringToObject(nb, "BootSourceOverrideTarget", op->arg);
            cJSON_AddStringToObject(nb, "BootSourceOverrideEnabled", "Once");
            /* ask for UEFI unless the BMC says it cannot; firmware that lacks the property
               altogether is a vendor quirk, handled by a hook */
            const cJSON *modes = cJSON_GetObjectItemCaseSensitive(
                boot, "BootSourceOverrideMode@Redfish.AllowableValues");
            bool uefi = !cJSON_IsArray(modes);
            cJSON_ArrayForEach(v, (cJSON_IsArray(modes) ? modes : NULL))
            {
                uefi = uefi || (cJSON_IsString(v) && strcmp(v->valuestring, "UEFI") == 0);
            }
            if (uefi) {
                cJSON_AddStringToObject(nb, "BootSourceOverrideMode", "UEFI");
            }
        }
        op->step = S_BT_PATCHED;
        op_request_json(op, WARD_RF_PATCH, op->bmc->system_path, body,
                        op->etag[0] != '\0' ? op->etag : NULL);
        return;
    }
    case S_BT_PATCHED:
        if ((a->status == 412 || a->status == 428) && !op->refetched) {
            op->refetched = true; /* a stale or missing ETag: read it again, once */
            get(op, S_BT_READ, op->bmc->system_path);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        get(op, S_BT_VERIFIED, op->bmc->system_path);
        return;
    case S_BT_VERIFIED: {
        if (failed(op, a)) {
            return;
        }
        const cJSON *boot = cJSON_GetObjectItemCaseSensitive(a->json, "Boot");
        const char *en = ward_rf_str(boot, "BootSourceOverrideEnabled");
        const char *tg = ward_rf_str(boot, "BootSourceOverrideTarget");
        bool good = clear ? (en != NULL && strcmp(en, "Disabled") == 0)
                          : (en != NULL && tg != NULL && strcmp(en, "Once") == 0 &&
                             strcmp(tg, op->arg) == 0);
        if (!good) {
            op_fail(op, -EIO, "BMC %s accepted the boot override but reports Target=%s Enabled=%s",
                    op->bmc->name, tg ? tg : "unset", en ? en : "unset");
            return;
        }
        op_done(op, 0, "");
        return;
    }
    }
}

/* ---- virtual media ---- */

/*
 * VirtualMedia is looked for where the Manager links it (its classic place). Firmware that
 * moved it under the ComputerSystem is handled by a quirk hook that adjusts the Manager's
 * answer; where there is no Manager at all, the system's own link is the last resort.
 */
static void media_try_systems(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    if (!op->tried_systems && b->manager_path[0] == '\0' && b->sys_media_path[0] != '\0') {
        op->tried_systems = true;
        get(op, S_MD_COLLECTION, b->sys_media_path);
        return;
    }
    op_fail(op, -ENODEV, "BMC %s: no CD-capable virtual media found (looked under %s)", b->name,
            b->manager_path[0] != '\0' ? b->manager_path : "the system");
}

static void media_next_member(struct ward_rf_op *op)
{
    char path[PATH_MAX_LEN];
    while (op->member < cJSON_GetArraySize(op->members) && op->member < 32) {
        const cJSON *m = cJSON_GetArrayItem(op->members, op->member++);
        if (to_path(op, ward_rf_str(m, "@odata.id"), path, sizeof(path))) {
            get(op, S_MD_MEMBER, path);
            return;
        }
    }
    media_try_systems(op);
}

/* Vendors that misreport an empty slot are fixed by a quirk hook before this reads it. */
static bool media_busy(const cJSON *doc)
{
    return ward_rf_media_inserted(doc) != 0;
}

static void media_after_eject(struct ward_rf_op *op)
{
    struct ward_rf_bmc *b = op->bmc;
    if (op->kind == WARD_RF_OP_EJECT_MEDIA) {
        get(op, S_MD_VERIFIED, b->media_path);
        return;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "Image", op->arg);
    cJSON_AddBoolToObject(body, "Inserted", true);
    op->step = S_MD_INSERTED;
    if (op->insert_target[0] != '\0' && !op->refetched) {
        cJSON_AddBoolToObject(body, "WriteProtected", true);
        op_request_json(op, WARD_RF_POST, op->insert_target, body, NULL);
    } else {
        op->refetched = true; /* marks the PATCH fallback as used */
        op_request_json(op, WARD_RF_PATCH, b->media_path, body, NULL);
    }
}

static bool nothing_inserted(const char *reason)
{
    static const char *const hints[] = {"not inserted",  "no media", "nothing",
                                        "not connected", "NoMedia",  "MediaNotInserted"};
    for (size_t i = 0; i < WARD_ARRAY_LEN(hints); i++) {
        if (strcasestr(reason, hints[i]) != NULL) {
            return true;
        }
    }
    return false;
}

static void media_step(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_bmc *b = op->bmc;
    char path[PATH_MAX_LEN];
    switch (op->step) {
    case S_START:
        if (op->kind == WARD_RF_OP_INSERT_MEDIA &&
            (op->arg == NULL || strncasecmp(op->arg, "http", 4) != 0)) {
            op_fail(op, -EINVAL, "the image must be an http(s) URL");
            return;
        }
        if (b->media_path[0] != '\0') {
            get(op, S_MD_MEMBER, b->media_path);
            return;
        }
        if (b->manager_path[0] != '\0') {
            get(op, S_MD_MANAGER, b->manager_path);
            return;
        }
        media_try_systems(op);
        return;
    case S_MD_MANAGER:
        if (failed(op, a)) {
            return;
        }
        if (to_path(op, ward_rf_link(a->json, "VirtualMedia"), path, sizeof(path))) {
            get(op, S_MD_COLLECTION, path);
            return;
        }
        media_try_systems(op);
        return;
    case S_MD_COLLECTION:
        if (failed(op, a)) {
            return;
        }
        cJSON_Delete(op->members);
        op->members = cJSON_DetachItemFromObjectCaseSensitive(a->json, "Members");
        op->member = 0;
        media_next_member(op);
        return;
    case S_MD_MEMBER: {
        if (a->code == -ENOENT && b->media_path[0] != '\0' && !op->tried_systems) {
            path_set(&b->media_path, ""); /* moved (firmware update): find it again */
            op->step = S_START;
            media_step(op, NULL);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        if (!ward_rf_media_is_cd(a->json)) {
            media_next_member(op);
            return;
        }
        path_set(&b->media_path, op->req.path);
        const cJSON *actions = cJSON_GetObjectItemCaseSensitive(a->json, "Actions");
        const cJSON *ins =
            cJSON_IsObject(actions)
                ? cJSON_GetObjectItemCaseSensitive(actions, "#VirtualMedia.InsertMedia")
                : NULL;
        const cJSON *ej =
            cJSON_IsObject(actions)
                ? cJSON_GetObjectItemCaseSensitive(actions, "#VirtualMedia.EjectMedia")
                : NULL;
        if (!to_path(op, ward_rf_str(ins, "target"), op->insert_target,
                     sizeof(op->insert_target))) {
            op->insert_target[0] = '\0';
        }
        if (!to_path(op, ward_rf_str(ej, "target"), op->eject_target, sizeof(op->eject_target))) {
            op->eject_target[0] = '\0';
        }
        if (!media_busy(a->json)) {
            if (op->kind == WARD_RF_OP_EJECT_MEDIA) {
                op_done(op, 0, "");
                return;
            }
            media_after_eject(op);
            return;
        }
        op->step = S_MD_EJECTED;
        if (op->eject_target[0] != '\0') {
            op_request(op, WARD_RF_POST, op->eject_target, "{}", NULL);
        } else {
            cJSON *body = cJSON_CreateObject();
            cJSON_AddNullToObject(body, "Image");
            cJSON_AddBoolToObject(body, "Inserted", false);
            op_request_json(op, WARD_RF_PATCH, b->media_path, body, NULL);
        }
        return;
    }
    case S_MD_EJECTED:
        if (a->code != 0 && a->status >= 400 && a->status < 500 && nothing_inserted(a->reason)) {
            /* refusing to eject an empty drive is not a failure */
            media_after_eject(op);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        if (a->status == 202 && a->location != NULL) {
            start_task(op, a->location, S_MD_AFTER_EJECT);
            return;
        }
        media_after_eject(op);
        return;
    case S_MD_AFTER_EJECT:
        media_after_eject(op);
        return;
    case S_MD_INSERTED:
        if (a->code != 0 && !op->refetched &&
            (a->status == 400 || a->status == 404 || a->status == 405 || a->status == 501)) {
            /* older BMCs have no InsertMedia action but take a PATCH of Image */
            op->refetched = true;
            media_after_eject(op);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        if (a->status == 202 && a->location != NULL) {
            start_task(op, a->location, S_TASK_POLL);
            return;
        }
        get(op, S_MD_VERIFIED, b->media_path);
        return;
    case S_TASK_POLL:
        get(op, S_MD_VERIFIED, b->media_path);
        return;
    case S_MD_VERIFIED: {
        if (failed(op, a)) {
            return;
        }
        const char *img = ward_rf_str(a->json, "Image");
        bool busy = media_busy(a->json);
        if (op->kind == WARD_RF_OP_EJECT_MEDIA) {
            if (busy) {
                op_fail(op, -EIO, "BMC %s: media still inserted after EjectMedia", b->name);
                return;
            }
        } else if (!busy || img == NULL || strcmp(img, op->arg) != 0) {
            op_fail(op, -EIO, "BMC %s: virtual media reports Inserted=%s Image=%.200s after insert",
                    b->name, busy ? "true" : "false", img != NULL ? img : "none");
            return;
        }
        op_done(op, 0, "");
        return;
    }
    }
}

/* Restart the BMC itself (recovery): Manager.Reset with a restart type it offers. */
static void manager_reset_step(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_bmc *b = op->bmc;
    switch (op->step) {
    case S_START:
        if (b->manager_path[0] == '\0') {
            op_fail(op, -ENOTSUP, "BMC %s: the system names no manager to reset", b->name);
            return;
        }
        get(op, S_MR_READ, b->manager_path);
        return;
    case S_MR_READ: {
        if (failed(op, a)) {
            return;
        }
        const cJSON *actions = cJSON_GetObjectItemCaseSensitive(a->json, "Actions");
        const cJSON *reset = cJSON_IsObject(actions)
                                 ? cJSON_GetObjectItemCaseSensitive(actions, "#Manager.Reset")
                                 : NULL;
        if (!to_path(op, ward_rf_str(reset, "target"), op->action, sizeof(op->action))) {
            op_fail(op, -ENOTSUP, "BMC %s: the manager offers no Manager.Reset action", b->name);
            return;
        }
        const cJSON *vals =
            cJSON_GetObjectItemCaseSensitive(reset, "ResetType@Redfish.AllowableValues");
        const char *type = NULL;
        static const char *const prefer[] = {"GracefulRestart", "ForceRestart"};
        for (size_t i = 0; i < WARD_ARRAY_LEN(prefer) && type == NULL; i++) {
            const cJSON *v;
            cJSON_ArrayForEach(v, (cJSON_IsArray(vals) ? vals : NULL))
            {
                if (cJSON_IsString(v) && strcmp(v->valuestring, prefer[i]) == 0) {
                    type = prefer[i];
                }
            }
        }
        if (type == NULL && cJSON_IsArray(vals) && cJSON_GetArraySize(vals) > 0) {
            op_fail(op, -ENOTSUP, "BMC %s: the manager offers no restart ResetType", b->name);
            return;
        }
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "ResetType", type != NULL ? type : "GracefulRestart");
        op->step = S_MR_POSTED;
        op_request_json(op, WARD_RF_POST, op->action, body, NULL);
        return;
    }
    case S_MR_POSTED:
        if (failed(op, a)) {
            return;
        }
        /* a restarted BMC forgets its sessions; the next operation logs in again */
        session_forget(b->s);
        op_done(op, 0, "");
        return;
    }
}

static void logout_step(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_bmc *b = op->bmc;
    struct session *s = b->s;
    if (op->step == S_START) {
        if (!b->closing && s->open > 1) {
            /* the other systems at this BMC go on with it; the last one's close ends it */
            ward_log_fields(WARD_LOG_DEBUG, COMPONENT,
                            (const struct ward_log_field[]){{"bmc", b->name}}, 1,
                            "session kept: other systems at this BMC use it");
            op_done(op, 0, "");
            return;
        }
        if (s->token == NULL || s->path[0] == '\0') {
            session_forget(s); /* nothing to delete, or no path to delete it by */
            op_done(op, 0, "");
            return;
        }
        op->step = S_LOGOUT_DONE;
        op_request(op, WARD_RF_DELETE, s->path, NULL, NULL);
        return;
    }
    if (s->gen == op->sent_gen) { /* not a session made since the DELETE went */
        session_forget(s);
    }
    if (a->code != 0 && a->status != 401 && a->status != 404) {
        op_fail(op, a->code, "BMC %s: logout failed: %s", b->name, a->reason);
        return;
    }
    if (a->code == 0) {
        b->at->sessions_blocked_until = 0; /* a session there has just been freed, by us */
    }
    op_done(op, 0, "");
}

static void main_step(struct ward_rf_op *op, struct answer *a)
{
    if (op->step == S_START && op->kind != WARD_RF_OP_CONNECT && op->kind != WARD_RF_OP_INVENTORY) {
        drop_fresh_system(op->bmc); /* this operation may change what the system says */
    }
    if (op->step == S_TASK_DONE) {
        task_step(op, a);
        return;
    }
    switch (op->kind) {
    case WARD_RF_OP_CONNECT:
        op_done(op, 0, "");
        return;
    case WARD_RF_OP_GET:
    case WARD_RF_OP_PATCH:
    case WARD_RF_OP_POST:
        raw_step(op, a);
        return;
    case WARD_RF_OP_INVENTORY:
        inventory_step(op, a);
        return;
    case WARD_RF_OP_POWER_STATE:
        power_state_step(op, a);
        return;
    case WARD_RF_OP_POWER:
        power_step(op, a);
        return;
    case WARD_RF_OP_BOOT_ONCE:
    case WARD_RF_OP_BOOT_CLEAR:
        boot_step(op, a);
        return;
    case WARD_RF_OP_INSERT_MEDIA:
    case WARD_RF_OP_EJECT_MEDIA:
        media_step(op, a);
        return;
    case WARD_RF_OP_LOGOUT:
        logout_step(op, a);
        return;
    case WARD_RF_OP_MANAGER_RESET:
        manager_reset_step(op, a);
        return;
    }
}

/* ---- discovery ---- */

/* to_path into one of the BMC's heap paths; "" when it fails. */
static bool to_path_set(struct ward_rf_op *op, const char *link, char **dst)
{
    char tmp[PATH_MAX_LEN];
    bool ok = to_path(op, link, tmp, sizeof(tmp));
    path_set(dst, ok ? tmp : "");
    return ok;
}

static void pick_system(struct ward_rf_op *op, const cJSON *coll, char *out, size_t outlen)
{
    const char *want = op->bmc->system_cfg;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(coll, "Members");
    const cJSON *m;
    out[0] = '\0';
    cJSON_ArrayForEach(m, (cJSON_IsArray(members) ? members : NULL))
    {
        const char *id = ward_rf_str(m, "@odata.id");
        char path[PATH_MAX_LEN];
        if (!to_path(op, id, path, sizeof(path))) {
            continue;
        }
        if (want == NULL) {
            snprintf(out, outlen, "%s", path);
            return;
        }
        const char *last = strrchr(path, '/');
        if (strcmp(path, want) == 0 || (last != NULL && strcmp(last + 1, want) == 0)) {
            snprintf(out, outlen, "%s", path);
            return;
        }
    }
}

static void op_advance(struct ward_rf_op *op, struct answer *a)
{
    struct ward_rf_bmc *b = op->bmc;
    char path[PATH_MAX_LEN];
    switch (op->phase) {
    case PH_ROOT:
        if (b->have_root || op->kind == WARD_RF_OP_LOGOUT) {
            op->phase = op->kind == WARD_RF_OP_LOGOUT ? PH_MAIN : PH_LOGIN;
            op->step = S_START;
            op_advance(op, NULL);
            return;
        }
        if (a == NULL) {
            op_request(op, WARD_RF_GET, "/redfish/v1", NULL, NULL);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        if (!to_path_set(op, ward_rf_link(a->json, "Systems"), &b->systems_path)) {
            op_fail(op, -EPROTO, "BMC %s: the service root has no Systems link", b->name);
            return;
        }
        if (!to_path_set(op, ward_rf_link(a->json, "Managers"), &b->managers_path)) {
            path_set(&b->managers_path, "");
        }
        b->expand = expand_query(a->json);
        {
            const cJSON *links = cJSON_GetObjectItemCaseSensitive(a->json, "Links");
            b->has_sessions = to_path_set(op, ward_rf_link(links, "Sessions"), &b->sessions_path);
            if (!b->has_sessions &&
                to_path(op, ward_rf_link(a->json, "SessionService"), path, sizeof(path))) {
                char sessions[PATH_MAX_LEN];
                snprintf(sessions, sizeof(sessions), "%.480s/Sessions", path);
                path_set(&b->sessions_path, sessions);
                b->has_sessions = true;
            }
        }
        b->have_root = true;
        op->phase = PH_LOGIN;
        op_advance(op, NULL);
        return;
    case PH_LOGIN:
        if (!b->has_sessions) {
            char reason[512];
            int rc = load_password(b, reason, sizeof(reason));
            if (rc != 0) {
                op_fail(op, rc, "%s", reason);
                return;
            }
            if (refused_before(b)) {
                op_fail(op, -EACCES,
                        "BMC %s refused these credentials; not trying again until they change",
                        b->name);
                return;
            }
        } else if (b->s->token == NULL) {
            login(op);
            return;
        }
        op->phase = PH_SYSTEMS;
        op_advance(op, NULL);
        return;
    case PH_SYSTEMS:
        if (b->discovered) {
            op->phase = PH_MAIN;
            op->step = S_START;
            main_step(op, NULL);
            return;
        }
        if (a == NULL) {
            op_request(op, WARD_RF_GET, b->systems_path, NULL, NULL);
            return;
        }
        if (failed(op, a)) {
            return;
        }
        char picked[PATH_MAX_LEN];
        pick_system(op, a->json, picked, sizeof(picked));
        path_set(&b->system_path, picked);
        b->ident.system = b->system_path;
        if (b->system_path[0] == '\0') {
            op_fail(op, -ENOENT, "BMC %s: %s%s%s", b->name,
                    b->system_cfg != NULL ? "no system named " : "the Systems collection is empty",
                    b->system_cfg != NULL ? b->system_cfg : "", "");
            return;
        }
        op->phase = PH_SYSTEM;
        op_request(op, WARD_RF_GET, b->system_path, NULL, NULL);
        return;
    case PH_SYSTEM: {
        if (failed(op, a)) {
            return;
        }
        const cJSON *links = cJSON_GetObjectItemCaseSensitive(a->json, "Links");
        const cJSON *by = cJSON_GetObjectItemCaseSensitive(links, "ManagedBy");
        const cJSON *first = cJSON_IsArray(by) ? cJSON_GetArrayItem(by, 0) : NULL;
        if (!to_path_set(op, ward_rf_str(first, "@odata.id"), &b->manager_path)) {
            path_set(&b->manager_path, "");
        }
        if (!to_path_set(op, ward_rf_link(a->json, "VirtualMedia"), &b->sys_media_path)) {
            path_set(&b->sys_media_path, "");
        }
        snprintf(b->manufacturer, sizeof(b->manufacturer), "%s",
                 ward_rf_str(a->json, "Manufacturer") ? ward_rf_str(a->json, "Manufacturer") : "");
        snprintf(b->model, sizeof(b->model), "%s",
                 ward_rf_str(a->json, "Model") ? ward_rf_str(a->json, "Model") : "");
        drop_fresh_system(b);
        if (b->running <= 1 && a->body_len > 0) {
            /* with operations running beside this one, another may change the system */
            b->fresh_system = malloc(a->body_len);
            if (b->fresh_system != NULL) {
                memcpy(b->fresh_system, a->body, a->body_len);
                b->fresh_system_len = a->body_len;
                b->fresh_system_at = now(b->c);
            }
        }
        if (ward_rf_quirks_by_firmware(b->c->o.quirks) && b->manager_path[0] != '\0') {
            /* a quirk is selected by the manager's firmware version */
            op->phase = PH_MANAGER;
            op_request(op, WARD_RF_GET, b->manager_path, NULL, NULL);
            return;
        }
        b->discovered = true;
        op->phase = PH_MAIN;
        op->step = S_START;
        main_step(op, NULL);
        return;
    }
    case PH_MANAGER: {
        /* an unreadable manager only means no firmware-specific quirks */
        const char *fw = a->code == 0 ? ward_rf_str(a->json, "FirmwareVersion") : NULL;
        snprintf(b->firmware, sizeof(b->firmware), "%s", fw != NULL ? fw : "");
        b->discovered = true;
        op->phase = PH_MAIN;
        op->step = S_START;
        main_step(op, NULL);
        return;
    }
    case PH_MAIN:
        main_step(op, a);
        return;
    }
}

/* ---- public ----------------------------------------------------------------------- */

struct ward_rf_op *ward_rf_op_start(struct ward_rf_bmc *b, enum ward_rf_op_kind kind,
                                    const char *arg, const char *body, ward_rf_op_cb cb,
                                    void *cb_arg)
{
    if (b->destroying || b->closing) {
        errno = ESHUTDOWN;
        return NULL;
    }
    struct ward_rf_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    op->bmc = b;
    op->kind = kind;
    op->cls = ward_rf_op_kind_class(kind);
    op->cb = cb;
    op->cb_arg = cb_arg;
    op->arg = arg != NULL ? strdup(arg) : NULL;
    op->body = body != NULL ? strdup(body) : NULL;
    if ((arg != NULL && op->arg == NULL) || (body != NULL && op->body == NULL)) {
        free(op->arg);
        free(op->body);
        free(op);
        return NULL;
    }
    ev_timer_init(&op->timer, on_op_timer, 0., 0.);
    op->bnext = b->ops;
    if (b->ops != NULL) {
        b->ops->bprev = op;
    }
    b->ops = op;
    struct ward_rf_client *c = b->c;
    op->queued = true;
    op->qprev = c->queue_tail[op->cls];
    if (c->queue_tail[op->cls] != NULL) {
        c->queue_tail[op->cls]->qnext = op;
    } else {
        c->queue[op->cls] = op;
    }
    c->queue_tail[op->cls] = op;
    kick(c);
    return op;
}

/* Those parked on a login that ended unanswered start their own, from the loop: a shutdown
   closing the BMC objects one by one cancels them before they send it. Those of a BMC
   object going away end with it. */
static void relogin_waiters(struct session *s)
{
    take_waiters(s);
    struct ward_rf_op *w;
    while ((w = next_waking(s)) != NULL) {
        if (w->bmc->closing || w->bmc->destroying) {
            op_fail(w, -ECANCELED, "BMC %s was removed", w->bmc->name);
        } else {
            op_after(w, 0, resume_after_login); /* with no session, it logs in */
        }
    }
}

/* The owner lets go of op while its request is on the wire: see orphaned. */
static void orphan(struct ward_rf_op *op)
{
    op->orphaned = true;
    op->cb = NULL;
    op->bmc->orphans++;
}

const char *ward_rf_op_power_heading(const struct ward_rf_op *op)
{
    return op != NULL && op->kind == WARD_RF_OP_POWER && op->reset_sent && !op->reset_refused
               ? op->target
               : NULL;
}

void ward_rf_op_cancel(struct ward_rf_op *op)
{
    if (op == NULL || op->orphaned || op->ending) {
        return;
    }
    struct ward_rf_client *c = op->bmc->c;
    struct ward_rf_bmc *b = op->bmc;
    if (op->http != NULL) {
        orphan(op); /* a login's waiters go on waiting for its answer */
        return;
    }
    struct session *s = b->s;
    bool was_login = s->login_op == op;
    op_free(op);
    if (was_login) {
        relogin_waiters(s);
    }
    kick(c);
}

/* A connection idle for longer than the waits between a BMC's requests (polls, cooldown)
 * is closed; one that waits less is reused. */
static unsigned connection_idle(const struct ward_rf_client_opts *o)
{
    double wait = o->poll_interval > o->cooldown ? o->poll_interval : o->cooldown;
    unsigned s = wait < 1 ? 1 : (unsigned)wait;
    return s < wait ? s + 1 : s;
}

/* How many BMCs may keep an idle connection: room for the idle time (connection_idle) at
 * the benchmark's highest enrollment rate, about 3 s of it. A connection costs the BMC one of
 * its few slots and wardd a descriptor and tens of KiB of TLS state, so past this the least
 * recently used idle BMC's connection is closed at once: with a cooldown longer than the
 * power sync interval every BMC would otherwise keep one for good. At most 4,096, and no
 * more than half the descriptors wardd may open. */
static unsigned connection_cap(const struct ward_rf_client_opts *o)
{
    unsigned cap = 16 * (o->max_ops + o->max_reads);
    if (cap > 4096) {
        cap = 4096;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < cap) {
        cap = rl.rlim_cur / 2 > 16 ? (unsigned)(rl.rlim_cur / 2) : 16;
    }
    return cap;
}

struct ward_rf_client *ward_rf_client_create(struct ev_loop *loop,
                                             const struct ward_rf_client_opts *o,
                                             struct ward_error *err)
{
    if (o->max_ops < 1 || o->max_ops > 20) {
        ward_error_set(err, -EINVAL, "maxConcurrentOps must be between 1 and 20 (got %u)",
                       o->max_ops);
        return NULL;
    }
    if (o->max_reads < 1 || o->max_reads > 1024) {
        ward_error_set(err, -EINVAL, "maxConcurrentReads must be between 1 and 1024 (got %u)",
                       o->max_reads);
        return NULL;
    }
    if (o->concurrency < 1) {
        ward_error_set(err, -EINVAL, "per-BMC concurrency must be at least 1");
        return NULL;
    }
    if (o->rate_min <= 0 || o->rate_max < o->rate_min) {
        ward_error_set(err, -EINVAL, "the request rate bounds must be positive and ordered");
        return NULL;
    }
    struct ward_rf_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->o = *o;
    if (c->o.breaker_threshold < 1) {
        c->o.breaker_threshold = 1;
    }
    c->http = ward_rf_http_create(loop);
    if (c->http == NULL) {
        free(c);
        ward_error_set(err, -ENOMEM, "cannot create the HTTP client");
        return NULL;
    }
    ev_timer_init(&c->kick, on_kick, 0., 0.);
    ev_timer_init(&c->trim, on_trim, 0., 0.);
    ev_timer_init(&c->close_timer, on_close_timer, 0., 0.);
    ward_rf_http_set_connection_limits(c->http, connection_cap(&c->o), connection_idle(&c->o));
    if (o->metrics != NULL) {
        c->m_cooldown = ward_metrics_counter(o->metrics, "ward_bmc_cooldown_waits_total",
                                             "Operations that waited for a BMC's cooldown.",
                                             (const char *const[]){"bmc", NULL});
        c->m_duration = ward_metrics_histogram(o->metrics, "ward_bmc_operation_duration_seconds",
                                               "Duration of BMC operations.",
                                               (const char *const[]){"operation", NULL}, NULL, 0);
    }
    return c;
}

static void bmc_free(struct ward_rf_bmc *b);

void ward_rf_client_destroy(struct ward_rf_client *c)
{
    if (c == NULL) {
        return;
    }
    while (c->bmcs != NULL) {
        bmc_free(c->bmcs);
    }
    ev_timer_stop(c->loop, &c->kick);
    ev_timer_stop(c->loop, &c->trim);
    ev_timer_stop(c->loop, &c->close_timer);
    ward_rf_http_destroy(c->http);
    ward_strmap_free(&c->bases); /* empty: every BMC gave its entry back */
    free(c);
}

struct ward_rf_http *ward_rf_client_http(struct ward_rf_client *c)
{
    return c->http;
}

unsigned ward_rf_client_running(const struct ward_rf_client *c)
{
    return c->running;
}

double ward_rf_client_now(const struct ward_rf_client *c)
{
    return now(c);
}

double ward_rf_client_power_timeout(const struct ward_rf_client *c)
{
    return c->o.power_timeout;
}

unsigned ward_rf_client_max_running(const struct ward_rf_client *c)
{
    return c->max_running;
}

unsigned ward_rf_client_running_class(const struct ward_rf_client *c, enum ward_rf_op_class cls)
{
    return c->running_cls[cls];
}

unsigned ward_rf_client_max_running_class(const struct ward_rf_client *c, enum ward_rf_op_class cls)
{
    return c->max_running_cls[cls];
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

struct ward_rf_bmc *ward_rf_bmc_create(struct ward_rf_client *c,
                                       const struct ward_rf_bmc_config *cfg, struct ward_error *err)
{
    if (cfg->name == NULL || cfg->name[0] == '\0') {
        ward_error_set(err, -EINVAL, "a BMC needs a name");
        return NULL;
    }
    if (cfg->address == NULL ||
        (strncmp(cfg->address, "https://", 8) != 0 && strncmp(cfg->address, "http://", 7) != 0)) {
        ward_error_set(err, -EINVAL, "BMC %s: address must be an https:// URL", cfg->name);
        return NULL;
    }
    const char *host = strstr(cfg->address, "://") + 3;
    if (strchr(host, '@') != NULL) {
        ward_error_set(err, -EINVAL,
                       "BMC %s: credentials do not belong in the address; use a password file",
                       cfg->name);
        return NULL;
    }
    if (strchr(host, '/') != NULL && strchr(host, '/')[1] != '\0') {
        ward_error_set(err, -EINVAL, "BMC %s: the address must not carry a path", cfg->name);
        return NULL;
    }
    if (cfg->password_file == NULL && cfg->password_env == NULL) {
        ward_error_set(err, -EINVAL, "BMC %s: set a password file or a password variable",
                       cfg->name);
        return NULL;
    }
    struct ward_rf_bmc *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    b->c = c;
    b->name = strdup(cfg->name);
    b->base = strdup(cfg->address);
    if (b->base != NULL && b->base[strlen(b->base) - 1] == '/') {
        b->base[strlen(b->base) - 1] = '\0';
    }
    b->system_cfg = dup_or_null(cfg->system);
    b->user = dup_or_null(cfg->username);
    b->password_file = dup_or_null(cfg->password_file);
    b->password_env = dup_or_null(cfg->password_env);
    b->cainfo = dup_or_null(cfg->cainfo);
    b->insecure = cfg->insecure;
    b->systems_path = b->managers_path = b->sessions_path = no_path;
    b->system_path = b->manager_path = b->sys_media_path = no_path;
    b->media_path = no_path;
    b->ident = (struct ward_rf_ident){.manufacturer = b->manufacturer,
                                      .model = b->model,
                                      .firmware = b->firmware,
                                      .system = b->system_path};
    ev_timer_init(&b->cooldown_timer, on_cooldown, 0., 0.);
    b->pool = ward_rf_http_pool_create(c->http);
    if (b->name == NULL || b->base == NULL || b->pool == NULL) {
        bmc_free(b);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    if (strncmp(b->base, "http://", 7) == 0) {
        ward_log_fields(WARD_LOG_WARN, COMPONENT, (const struct ward_log_field[]){{"bmc", b->name}},
                        1, "plain HTTP to this BMC: credentials and tokens travel unencrypted");
    }
    if (b->insecure) {
        ward_log_fields(WARD_LOG_WARN, COMPONENT, (const struct ward_log_field[]){{"bmc", b->name}},
                        1, "TLS certificate verification is DISABLED for this BMC (insecure)");
    }
    if (base_ref(c, b) != 0 || session_ref(b) != 0) {
        bmc_free(b);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    b->next = c->bmcs;
    if (c->bmcs != NULL) {
        c->bmcs->prev = b;
    }
    c->bmcs = b;
    b->behind = busy_closing_before(b);
    return b;
}

static void bmc_free(struct ward_rf_bmc *b)
{
    struct ward_rf_client *c = b->c;
    /* whoever waits on an operation of this BMC hears that it ended; a closing logout
       ended here is not reported as the close it waited for (b is going now) */
    b->destroying = true;
    b->closed = NULL;
    while (b->ops != NULL) {
        op_fail(b->ops, -ECANCELED, "BMC %s was removed", b->name);
    }
    if (b->close_queued) {
        for (struct ward_rf_bmc **p = &c->closed_head; *p != NULL; p = &(*p)->closed_next) {
            if (*p == b) {
                *p = b->closed_next;
                break;
            }
        }
    }
    if (b->closing) {
        c->closing--;
        for (struct ward_rf_bmc *o = shares_base(b) ? c->bmcs : NULL; o != NULL; o = o->next) {
            if (o->behind == b) {
                o->behind = busy_closing_before(o); /* b has no operation left by now */
            }
        }
        kick(c);
    }
    session_unref(b); /* before base_unref: the session list is the address's */
    base_unref(c, b);
    if (c->bmcs == b) {
        c->bmcs = b->next;
    }
    if (b->prev != NULL) {
        b->prev->next = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    }
    ev_timer_stop(c->loop, &b->cooldown_timer);
    /* after the logout ward_rf_bmc_destroy may have sent through it */
    ward_rf_http_pool_destroy(b->pool);
    if (b->password != NULL) {
        explicit_bzero(b->password, strlen(b->password));
    }
    free(b->password);
    drop_fresh_system(b);
    char **paths[] = {&b->systems_path, &b->managers_path,  &b->sessions_path, &b->system_path,
                      &b->manager_path, &b->sys_media_path, &b->media_path};
    for (size_t i = 0; i < WARD_ARRAY_LEN(paths); i++) {
        path_set(paths[i], "");
    }
    free(b->name);
    free(b->base);
    free(b->system_cfg);
    free(b->user);
    free(b->password_file);
    free(b->password_env);
    free(b->cainfo);
    free(b);
}

static void on_close_logout(void *arg, int code, const cJSON *result, const char *reason)
{
    /* nothing to do: the close ends when the BMC's last operation has (close_ended) */
}

bool ward_rf_bmc_close(struct ward_rf_bmc *b, void (*closed)(void *arg), void *arg)
{
    if (b->closing || b->destroying) {
        return false;
    }
    /* the session is logged out by the last of the objects sharing it to close, once a
       login on the wire has made it: queued first, so that the logout is the one operation
       left once the others have ended (the others' requests end first: see behind) */
    struct session *s = b->s;
    struct ward_rf_op *logout = NULL;
    if (s->open == 1 && ((s->token != NULL && s->path[0] != '\0') ||
                         (s->login_op != NULL && s->login_op->http != NULL))) {
        logout = ward_rf_op_start(b, WARD_RF_OP_LOGOUT, NULL, NULL, on_close_logout, NULL);
    }
    s->open--;
    struct ward_rf_client *c = b->c;
    b->closing = true;
    b->close_seq = ++c->closes;
    c->closing++;
    b->closed = closed;
    b->closed_arg = arg;
    /* its logout waits for closes at its address begun before it; what is open there waits
       for it */
    b->behind = busy_closing_before(b);
    for (struct ward_rf_bmc *o = shares_base(b) ? c->bmcs : NULL; o != NULL; o = o->next) {
        if (o != b && !o->closing && o->behind == NULL && strcmp(o->base, b->base) == 0) {
            o->behind = b;
        }
    }
    struct ward_rf_op *op = b->ops;
    while (op != NULL) {
        struct ward_rf_op *next = op->bnext;
        if (op == logout || op->orphaned || op->ending) {
            op = next; /* an ending one is freed by op_done, then ends the close */
            continue;
        }
        if (op->http == NULL) {
            op_fail(op, -ECANCELED, "BMC %s was removed", b->name);
        } else {
            /* the owner hears now; the request on the wire is left to finish */
            ward_rf_op_cb cb = op->cb;
            void *cb_arg = op->cb_arg;
            orphan(op);
            char reason[160];
            snprintf(reason, sizeof(reason), "BMC %s was removed", b->name);
            cb(cb_arg, -ECANCELED, NULL, reason);
        }
        op = b->ops; /* a callback may have ended others: walk again from the head */
    }
    if (b->ops == NULL) {
        close_ended(b);
    }
    return true;
}

bool ward_rf_bmc_closing(const struct ward_rf_bmc *b)
{
    return b->closing;
}

void ward_rf_bmc_destroy(struct ward_rf_bmc *b)
{
    if (b == NULL) {
        return;
    }
    if (b->close_done && !b->in_closed) {
        bmc_free(b);
        return;
    }
    /* a close already under way (a shutdown's) keeps its callback; the free follows it */
    ward_rf_bmc_close(b, NULL, NULL);
    b->free_when_closed = true;
}

unsigned ward_rf_client_close_all(struct ward_rf_client *c, void (*closed)(void *arg), void *arg)
{
    unsigned n = 0;
    for (struct ward_rf_bmc *b = c->bmcs; b != NULL; b = b->next) {
        if (!b->closing) {
            n += ward_rf_bmc_close(b, closed, arg);
        } else if (!b->close_done && b->closed == NULL) {
            /* closing already (a host removed a moment ago): the shutdown waits for it too */
            b->closed = closed;
            b->closed_arg = arg;
            n++;
        }
    }
    return n;
}

const char *ward_rf_bmc_name(const struct ward_rf_bmc *b)
{
    return b->name;
}

void ward_rf_bmc_stats(const struct ward_rf_bmc *b, struct ward_rf_bmc_stats *out)
{
    *out = (struct ward_rf_bmc_stats){
        .running = b->running,
        .max_running = b->max_in_flight,
        .logins = b->logins,
        .cooldown_waits = b->cooldown_waits,
        .retries = b->retries,
        .breaker_open = b->failures >= b->c->o.breaker_threshold && now(b->c) < b->breaker_until,
        .rate = b->at != NULL ? b->at->rate : 0,
        .have_session = b->s != NULL && b->s->token != NULL,
    };
}
