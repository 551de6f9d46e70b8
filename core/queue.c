/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "util.h"

struct item {
    char *key; /* owned */
    double due;
    uint64_t seq;   /* creation order: equal due times go in the order keys were first added */
    size_t heap_at; /* its index in the heap while waiting */
    bool waiting;   /* in the heap; never at the same time as inflight */
    bool inflight;
    bool again;      /* added while in flight */
    double again_at; /* when it asked to run again */
    unsigned failures;
};

/*
 * Items are found by key through a hash index, and the waiting ones are kept in a binary
 * min-heap on (due, seq), so add, pop, done and forget cost O(log n) with thousands of
 * resources instead of a scan of all of them.
 */
struct ward_queue {
    struct ward_queue_options o;
    struct ward_strmap index; /* key -> struct item *, owned items */
    struct item **heap;       /* waiting items, min-heap on (due, seq) */
    size_t nheap, heapcap;
    uint64_t seq;
    size_t running;
    uint64_t rng;
    double tokens; /* token bucket for the overall rate */
    double refilled;
    bool primed;
};

static bool before(const struct item *a, const struct item *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(struct ward_queue *q, size_t i, struct item *it)
{
    q->heap[i] = it;
    it->heap_at = i;
}

static void sift_up(struct ward_queue *q, size_t i)
{
    struct item *it = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(it, q->heap[parent])) {
            break;
        }
        heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, it);
}

static void sift_down(struct ward_queue *q, size_t i)
{
    struct item *it = q->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const struct item *b = it;
        if (l < q->nheap && before(q->heap[l], b)) {
            best = l;
            b = q->heap[l];
        }
        if (l + 1 < q->nheap && before(q->heap[l + 1], b)) {
            best = l + 1;
        }
        if (best == i) {
            break;
        }
        heap_set(q, i, q->heap[best]);
        i = best;
    }
    heap_set(q, i, it);
}

/* Make it wait until due. The heap has room for every item (see reserve). */
static void heap_push(struct ward_queue *q, struct item *it, double due)
{
    it->due = due;
    it->waiting = true;
    heap_set(q, q->nheap++, it);
    sift_up(q, it->heap_at);
}

static void heap_remove(struct ward_queue *q, struct item *it)
{
    size_t i = it->heap_at;
    struct item *last = q->heap[--q->nheap];
    it->waiting = false;
    if (last != it) {
        heap_set(q, i, last);
        sift_up(q, i);
        sift_down(q, last->heap_at);
    }
}

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

/* Every item: the waiting ones are in the heap, the others only in the index. */
static void free_items(struct ward_queue *q)
{
    for (size_t i = 0; i < q->index.cap; i++) {
        struct item *it = ward_strmap_value_at(&q->index, i);
        if (it != NULL) {
            free(it->key);
            free(it);
        }
    }
}

void ward_queue_destroy(struct ward_queue *q)
{
    if (q == NULL) {
        return;
    }
    free_items(q);
    ward_strmap_free(&q->index);
    free(q->heap);
    free(q);
}

static struct item *find(const struct ward_queue *q, const char *key)
{
    return ward_strmap_get(&q->index, key);
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
        /* the heap holds at most every item: room for this one first */
        if (q->index.n + 1 > q->heapcap) {
            size_t cap = q->heapcap ? q->heapcap * 2 : 16;
            struct item **heap = realloc(q->heap, cap * sizeof(*heap));
            if (heap == NULL) {
                return -ENOMEM;
            }
            q->heap = heap;
            q->heapcap = cap;
        }
        it = calloc(1, sizeof(*it));
        char *copy = strdup(key);
        if (it == NULL || copy == NULL || ward_strmap_put(&q->index, copy, it) != 0) {
            free(copy);
            free(it);
            return -ENOMEM;
        }
        it->key = copy;
        it->seq = q->seq++;
    }
    if (it->inflight) {
        if (!it->again || at < it->again_at) {
            it->again_at = at;
        }
        it->again = true;
    } else if (!it->waiting) {
        heap_push(q, it, at);
    } else if (at < it->due) {
        it->due = at; /* earlier: it only moves up, keeping its place among equals */
        sift_up(q, it->heap_at);
    }
    return 0;
}

const char *ward_queue_pop(struct ward_queue *q, double now)
{
    if (q->o.max_inflight != 0 && q->running >= q->o.max_inflight) {
        return NULL;
    }
    struct item *best = q->nheap > 0 ? q->heap[0] : NULL;
    if (best == NULL || best->due > now || !bucket_ready(q, now)) {
        return NULL;
    }
    if (q->o.rate > 0) {
        q->tokens -= 1;
    }
    heap_remove(q, best);
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
    }
    double at = now + delay;
    bool wait = !ok;
    if (it->again) {
        if (ok || it->again_at > at) {
            at = it->again_at;
        }
        /* Asked to run again as soon as possible (a transition's follow-up): it keeps its
           place in line, the due time of the hand-out that just ended, instead of going
           behind every key that became due meanwhile. */
        if (ok && at <= now && it->due < at) {
            at = it->due;
        }
        it->again = false;
        wait = true;
    }
    if (wait) {
        heap_push(q, it, at);
    }
    return delay;
}

void ward_queue_forget(struct ward_queue *q, const char *key)
{
    struct item *it = find(q, key);
    if (it == NULL || it->inflight) {
        return;
    }
    if (it->waiting) {
        heap_remove(q, it);
    }
    ward_strmap_remove(&q->index, key);
    free(it->key);
    free(it);
}

double ward_queue_next_due(const struct ward_queue *q)
{
    if (q->nheap == 0 || (q->o.max_inflight != 0 && q->running >= q->o.max_inflight)) {
        /* with every slot taken no time helps: the next done is what frees one */
        return -1;
    }
    double best = q->heap[0]->due;
    if (q->o.rate > 0 && q->primed && q->tokens < 1) {
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
    return q->nheap;
}

size_t ward_queue_running(const struct ward_queue *q)
{
    return q->running;
}
