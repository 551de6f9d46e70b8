/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

struct item {
    char *key; /* owned */
    double due;
    bool waiting;
    bool inflight;
    bool again;      /* added while in flight */
    double again_at; /* when it asked to run again */
    unsigned failures;
};

struct ward_queue {
    struct ward_queue_options o;
    struct item *items; /* owned; linear: a site has thousands of hosts, not millions */
    size_t n, cap;
    size_t running;
    uint64_t rng;
    double tokens; /* token bucket for the overall rate */
    double refilled;
    bool primed;
};

/* Refill the bucket up to now; true when a hand-out may happen. */
static bool bucket_ready(struct ward_queue *q, double now)
{
    if (q->o.rate <= 0) {
        return true;
    }
    if (!q->primed) {
        q->primed = true;
        q->tokens = q->o.burst;
        q->refilled = now;
    }
    if (now > q->refilled) {
        q->tokens += (now - q->refilled) * q->o.rate;
        if (q->tokens > q->o.burst) {
            q->tokens = q->o.burst;
        }
        q->refilled = now;
    }
    return q->tokens >= 1;
}

struct ward_queue *ward_queue_create(const struct ward_queue_options *opts)
{
    struct ward_queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    if (opts != NULL) {
        q->o = *opts;
    }
    if (q->o.base_delay <= 0) {
        q->o.base_delay = 1;
    }
    if (q->o.max_delay < q->o.base_delay) {
        q->o.max_delay = q->o.base_delay > 300 ? q->o.base_delay : 300;
    }
    if (q->o.jitter < 0 || q->o.jitter > 1) {
        q->o.jitter = 0.2;
    }
    q->rng = q->o.seed != 0 ? q->o.seed : 0x9e3779b97f4a7c15ull;
    if (q->o.rate > 0 && q->o.burst < 1) {
        q->o.burst = q->o.rate > 1 ? q->o.rate : 1;
    }
    return q;
}

void ward_queue_destroy(struct ward_queue *q)
{
    if (q == NULL) {
        return;
    }
    for (size_t i = 0; i < q->n; i++) {
        free(q->items[i].key);
    }
    free(q->items);
    free(q);
}

static struct item *find(const struct ward_queue *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->items[i].key, key) == 0) {
            return &q->items[i];
        }
    }
    return NULL;
}

static double next_random(struct ward_queue *q)
{
    /* xorshift64*: jitter needs spread, not cryptographic quality */
    q->rng ^= q->rng >> 12;
    q->rng ^= q->rng << 25;
    q->rng ^= q->rng >> 27;
    return (double)((q->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

int ward_queue_add(struct ward_queue *q, const char *key, double at)
{
    struct item *it = find(q, key);
    if (it == NULL) {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 16;
            struct item *items = realloc(q->items, cap * sizeof(*items));
            if (items == NULL) {
                return -ENOMEM;
            }
            q->items = items;
            q->cap = cap;
        }
        char *copy = strdup(key);
        if (copy == NULL) {
            return -ENOMEM;
        }
        it = &q->items[q->n++];
        *it = (struct item){.key = copy};
    }
    if (it->inflight) {
        if (!it->again || at < it->again_at) {
            it->again_at = at;
        }
        it->again = true;
    } else if (!it->waiting || at < it->due) {
        it->due = at;
        it->waiting = true;
    }
    return 0;
}

const char *ward_queue_pop(struct ward_queue *q, double now)
{
    if (q->o.max_inflight != 0 && q->running >= q->o.max_inflight) {
        return NULL;
    }
    struct item *best = NULL;
    for (size_t i = 0; i < q->n; i++) {
        struct item *it = &q->items[i];
        if (it->waiting && !it->inflight && it->due <= now &&
            (best == NULL || it->due < best->due)) {
            best = it;
        }
    }
    if (best == NULL || !bucket_ready(q, now)) {
        return NULL;
    }
    if (q->o.rate > 0) {
        q->tokens -= 1;
    }
    best->waiting = false;
    best->inflight = true;
    q->running++;
    return best->key;
}

double ward_queue_done(struct ward_queue *q, const char *key, bool ok, double now)
{
    struct item *it = find(q, key);
    if (it == NULL || !it->inflight) {
        return 0;
    }
    it->inflight = false;
    q->running--;
    double delay = 0;
    if (ok) {
        it->failures = 0;
    } else {
        it->failures++;
        double d = q->o.base_delay;
        for (unsigned i = 1; i < it->failures && d < q->o.max_delay; i++) {
            d *= 2;
        }
        if (d > q->o.max_delay) {
            d = q->o.max_delay;
        }
        delay = d * (1.0 - q->o.jitter * next_random(q));
        it->waiting = true;
        it->due = now + delay;
    }
    if (it->again) {
        double at = it->again_at;
        if (!ok && at < it->due) {
            at = it->due;
        }
        it->again = false;
        it->waiting = true;
        it->due = at;
    }
    return delay;
}

void ward_queue_forget(struct ward_queue *q, const char *key)
{
    struct item *it = find(q, key);
    if (it == NULL || it->inflight) {
        return;
    }
    free(it->key);
    *it = q->items[--q->n];
}

double ward_queue_next_due(const struct ward_queue *q)
{
    double best = -1;
    for (size_t i = 0; i < q->n; i++) {
        const struct item *it = &q->items[i];
        if (it->waiting && !it->inflight && (best < 0 || it->due < best)) {
            best = it->due;
        }
    }
    if (best >= 0 && q->o.rate > 0 && q->primed && q->tokens < 1) {
        /* the bucket, not the key, decides when the next hand-out can happen */
        double refill = q->refilled + (1 - q->tokens) / q->o.rate;
        best = refill > best ? refill : best;
    }
    return best;
}

unsigned ward_queue_failures(const struct ward_queue *q, const char *key)
{
    const struct item *it = find(q, key);
    return it != NULL ? it->failures : 0;
}

bool ward_queue_inflight(const struct ward_queue *q, const char *key)
{
    const struct item *it = find(q, key);
    return it != NULL && it->inflight;
}

size_t ward_queue_waiting(const struct ward_queue *q)
{
    size_t n = 0;
    for (size_t i = 0; i < q->n; i++) {
        n += q->items[i].waiting && !q->items[i].inflight;
    }
    return n;
}

size_t ward_queue_running(const struct ward_queue *q)
{
    return q->running;
}
