/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The work queue: resources waiting for a reconcile, keyed by "Kind/name".
 * A key is in the queue at most once, is never handed out while a previous
 * hand-out is still in flight (per-resource serialisation), and a failure
 * puts it back after an exponential backoff with jitter. The queue has no
 * clock of its own: every call takes `now`, so tests drive it with a fake one.
 */
#ifndef WARD_CORE_QUEUE_H
#define WARD_CORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ward_queue_options {
    double base_delay;     /* first retry after a failure, seconds (default 1) */
    double max_delay;      /* cap of the backoff, seconds (default 300) */
    double jitter;         /* 0..1: a delay is shortened by up to this fraction (default 0.2) */
    unsigned max_inflight; /* keys handed out at once; 0: unlimited */
    double rate;           /* overall hand-outs per second (token bucket); 0: unlimited */
    double burst;          /* bucket size; default max(1, rate) */
    uint64_t seed;         /* jitter generator seed; 0: fixed default */
};

struct ward_queue;

struct ward_queue *ward_queue_create(const struct ward_queue_options *opts);
void ward_queue_destroy(struct ward_queue *q);

/*
 * Ask for key (copied) to be handed out at or after `at`. An earlier due time
 * wins over a later one. A key in flight is marked to run again once done.
 */
int ward_queue_add(struct ward_queue *q, const char *key, double at);
/*
 * The key due first at `now` that is not in flight, now marked in flight, or
 * NULL. The string stays valid until ward_queue_done() for it.
 */
const char *ward_queue_pop(struct ward_queue *q, double now);
/*
 * Finish a hand-out. ok clears the failure count; !ok requeues after the
 * backoff and returns that delay. A key added while in flight is requeued at
 * its requested time (the later of it and the backoff on failure); after a
 * success, a request to run again at once keeps the key's place in line (the
 * due time it was handed out for), so a resource's next step goes ahead of
 * resources that have not started yet.
 */
double ward_queue_done(struct ward_queue *q, const char *key, bool ok, double now);
/* Drop a key that is not in flight (resource deleted). */
void ward_queue_forget(struct ward_queue *q, const char *key);
/*
 * When the next pop can hand a key out: the earliest due time among keys waiting, or later
 * if the rate's bucket is empty; -1 when none waits or every in-flight slot is taken (then
 * only a done can free one, and the caller pops again after it).
 */
double ward_queue_next_due(const struct ward_queue *q);
/* Consecutive failures of key. */
unsigned ward_queue_failures(const struct ward_queue *q, const char *key);
bool ward_queue_inflight(const struct ward_queue *q, const char *key);
size_t ward_queue_waiting(const struct ward_queue *q);
size_t ward_queue_running(const struct ward_queue *q);

#endif
