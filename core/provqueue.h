/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning queue. A provisioning request is a host with a consumer
 * and a boot image; provisioning it is the Claimed -> Provisioning transition
 * and the BMC work of Provisioning. At most min(workerCount, maxConcurrentOps)
 * requests are admitted at once ("processing"); the others wait in FIFO order.
 * The queue is in memory: after a restart the engine reconciles every claimed
 * host with an image again, and they queue again in that order.
 *
 * The policy engine asks ward_provqueue_admit() before it commits a transition
 * into the queue's state (ward_policy_engine_on_admit); -EAGAIN parks the
 * resource until the queue admits it and kicks it (a reconcile). The queue
 * learns that a request went away (left Provisioning, released, image cleared,
 * removed) from ward_provqueue_changed(): it re-checks that name through the
 * check callback on the next loop iteration, or at ward_provqueue_settle().
 *
 * The API offers new requests first (ward_provqueue_offer): when maxQueueSize
 * requests already wait, the request is refused and counted in
 * ward_provisioning_queue_rejected_total. A drain sets the effective limit to
 * 0: nothing new is admitted, admitted work finishes, waiting hosts stay.
 *
 * Everything here runs on the loop's thread.
 */
#ifndef WARD_CORE_PROVQUEUE_H
#define WARD_CORE_PROVQUEUE_H

#include <stdbool.h>

#include <ev.h>

#include <ward/plugin.h>

#include "util.h"

struct ward_config;
struct ward_metrics;
struct ward_provqueue;

#define WARD_PROVQUEUE_DEFAULT_SIZE 100
#define WARD_PROVQUEUE_DEFAULT_WORKERS 4
#define WARD_PROVQUEUE_DEFAULT_OPS 10
#define WARD_PROVQUEUE_MAX_SIZE 100000
#define WARD_PROVQUEUE_MAX_WORKERS 1000
#define WARD_PROVQUEUE_MAX_OPS 20
/* Names listed in the status JSON, at most. */
#define WARD_PROVQUEUE_STATUS_NAMES 100

struct ward_provqueue_settings {
    unsigned max_queue_size;     /* maxQueueSize: waiting requests before new ones are refused */
    unsigned worker_count;       /* workerCount */
    unsigned max_concurrent_ops; /* maxConcurrentOps: 1-20 */
};

/* The defaults above. */
void ward_provqueue_settings_init(struct ward_provqueue_settings *s);
/*
 * One setting as the configuration spells it ("maxQueueSize", "workerCount",
 * "maxConcurrentOps"), value as text (a whole number). -EINVAL with err naming
 * the setting, the allowed range and the value.
 */
int ward_provqueue_settings_set(struct ward_provqueue_settings *s, const char *key,
                                const char *value, struct ward_error *err);
/*
 * Defaults, then the optional `provisioning = { ... }` section of cfg. Unknown
 * keys, values that are not whole numbers and values out of range are errors
 * that name the setting ("provisioning.maxConcurrentOps ...").
 */
int ward_provqueue_settings_read(const struct ward_config *cfg, struct ward_provqueue_settings *s,
                                 struct ward_error *err);

/* What the check callback answers about a queued name. */
enum ward_provqueue_check {
    WARD_PROVQUEUE_GONE = -1,  /* not a provisioning request any more: forget it */
    WARD_PROVQUEUE_WANTED = 0, /* still a request, not yet in the queue's state */
    WARD_PROVQUEUE_INSIDE = 1, /* in the queue's state (being provisioned) */
};

struct ward_provqueue_options {
    struct ward_provqueue_settings settings;
    struct ward_metrics *metrics; /* may be NULL; the four queue metrics are registered here */
    /* Where deferred re-checks run (a zero-delay timer); NULL: only in ward_provqueue_settle(). */
    struct ev_loop *loop;
    /* Where name stands now (enum ward_provqueue_check). NULL: everything stays WANTED. */
    int (*check)(void *arg, const char *name);
    /* Start an admitted request now (queue a reconcile). May be NULL. */
    void (*kick)(void *arg, const char *name);
    void *arg;
};

/* NULL with err on bad settings or memory. opts is copied. */
struct ward_provqueue *ward_provqueue_create(const struct ward_provqueue_options *opts,
                                             struct ward_error *err);
void ward_provqueue_destroy(struct ward_provqueue *q);

/*
 * The engine's admission hook (shape of ward_policy_engine_on_admit): 0 when
 * name may enter now (it holds a slot until it leaves), -EAGAIN when it waits
 * (appended if it was not queued; err says its position). Asking again for an
 * admitted name answers 0; never refuses for size (a host the engine found
 * claimed with an image after a restart queues whatever the size).
 */
int ward_provqueue_admit(void *q, const char *name, struct ward_error *err);
/*
 * A new request from the API. name NULL: only ask whether one more fits (-EBUSY
 * with err saying the queue is full and its size, counted as rejected). With a
 * name, after the request was written: append it (0; nothing when it is queued
 * already) and admit what fits.
 */
int ward_provqueue_offer(struct ward_provqueue *q, const char *name, struct ward_error *err);
/* Something about name changed (a transition, a claim, a release, a removal): re-check it. */
void ward_provqueue_changed(struct ward_provqueue *q, const char *name);
/* Re-check what changed now and admit what fits (the deferred timer does the same). */
void ward_provqueue_settle(struct ward_provqueue *q);
/* New settings (reload): applied at once; a bigger limit admits waiting requests. */
void ward_provqueue_configure(struct ward_provqueue *q, const struct ward_provqueue_settings *s);
/* Drain (effective maxConcurrentOps 0) or resume; survives ward_provqueue_configure. */
void ward_provqueue_drain(struct ward_provqueue *q, bool drain);
bool ward_provqueue_draining(const struct ward_provqueue *q);
/* 1-based position among the waiting, 0 when admitted, -1 when not queued. */
int ward_provqueue_position(const struct ward_provqueue *q, const char *name);
unsigned ward_provqueue_length(const struct ward_provqueue *q);     /* waiting */
unsigned ward_provqueue_processing(const struct ward_provqueue *q); /* admitted */
/* min(workerCount, maxConcurrentOps), or 0 while draining. */
unsigned ward_provqueue_limit(const struct ward_provqueue *q);
/*
 * Append {"length","processing","max_size","workers","max_concurrent_ops",
 * "limit","draining","waiting":[first WARD_PROVQUEUE_STATUS_NAMES names in
 * order],"admitted":[...]} to out.
 */
void ward_provqueue_status(struct ward_provqueue *q, struct ward_buf *out);

#endif
