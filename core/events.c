/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event set is a plain array: capacities are in the thousands, and one
 * pass comparing precomputed identity hashes is cheaper than keeping an index
 * consistent under aggregation, expiry and eviction.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "log.h"
#include "util.h"

struct slot {
    struct ward_event e;
    uint64_t hash;
    bool used;
};

struct ward_events {
    struct slot *slots; /* owned, capacity entries */
    size_t capacity;
    size_t used;
    double max_age;
    double (*now)(void *arg);
    void *now_arg;
    struct ward_metric *total;
};

static double real_now(void *arg)
{
    (void)arg;
    return ward_wall_clock();
}

struct ward_events *ward_events_create(const struct ward_events_options *o)
{
    struct ward_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        return NULL;
    }
    ev->capacity = o != NULL && o->capacity != 0 ? o->capacity : WARD_EVENTS_DEFAULT_CAPACITY;
    ev->slots = calloc(ev->capacity, sizeof(*ev->slots));
    if (ev->slots == NULL) {
        free(ev);
        return NULL;
    }
    ev->max_age = o != NULL ? o->max_age : 0;
    ev->now = o != NULL && o->now != NULL ? o->now : real_now;
    ev->now_arg = o != NULL ? o->now_arg : NULL;
    if (o != NULL && o->metrics != NULL) {
        ev->total =
            ward_metrics_counter(o->metrics, "ward_events_total", "Events recorded by type.",
                                 (const char *[]){"type", NULL});
    }
    return ev;
}

static void slot_clear(struct ward_events *ev, struct slot *s)
{
    if (!s->used) {
        return;
    }
    free(s->e.reason);
    free(s->e.message);
    free(s->e.kind);
    free(s->e.ns);
    free(s->e.name);
    memset(s, 0, sizeof(*s));
    ev->used--;
}

void ward_events_destroy(struct ward_events *ev)
{
    if (ev == NULL) {
        return;
    }
    for (size_t i = 0; i < ev->capacity; i++) {
        slot_clear(ev, &ev->slots[i]);
    }
    free(ev->slots);
    free(ev);
}

static uint64_t mix(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return (h ^ 0x1f) * 1099511628211ull;
}

static bool valid_reason(const char *r)
{
    size_t n = 0;
    for (; r[n] != '\0'; n++) {
        char c = r[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return n > 0 && n <= 64;
}

/* Copy at most max bytes without splitting a UTF-8 sequence. */
static char *cut_copy(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    return strndup(s, n);
}

static void expire(struct ward_events *ev, double now)
{
    if (ev->max_age <= 0) {
        return;
    }
    for (size_t i = 0; i < ev->capacity; i++) {
        if (ev->slots[i].used && ev->slots[i].e.last < now - ev->max_age) {
            slot_clear(ev, &ev->slots[i]);
        }
    }
}

int ward_events_record(struct ward_events *ev, const char *type, const char *reason,
                       const char *message, const char *kind, const char *ns, const char *name)
{
    if (type == NULL || reason == NULL || kind == NULL || name == NULL || *kind == '\0' ||
        *name == '\0' || !valid_reason(reason)) {
        return -EINVAL;
    }
    const char *type_name;
    if (strcmp(type, "Normal") == 0) {
        type_name = "Normal";
    } else if (strcmp(type, "Warning") == 0) {
        type_name = "Warning";
    } else {
        return -EINVAL;
    }
    ns = ns != NULL ? ns : "";
    char *msg = cut_copy(message != NULL ? message : "", WARD_EVENT_MESSAGE_MAX);
    if (msg == NULL) {
        return -ENOMEM;
    }
    double now = ev->now(ev->now_arg);
    expire(ev, now);
    ward_metric_add(ev->total, (const char *[]){type_name}, 1);
    uint64_t h = 1469598103934665603ull;
    h = mix(mix(mix(mix(mix(mix(h, kind), ns), name), reason), type_name), msg);

    /* one pass compares hashes only, and also finds a free slot or the oldest to reuse */
    size_t start = (size_t)(h % ev->capacity);
    struct slot *free_slot = NULL, *oldest = NULL;
    for (size_t k = 0; k < ev->capacity; k++) {
        struct slot *s = &ev->slots[(start + k) % ev->capacity];
        if (!s->used) {
            if (free_slot == NULL) {
                free_slot = s;
            }
            continue;
        }
        if (s->hash == h && strcmp(s->e.kind, kind) == 0 && strcmp(s->e.ns, ns) == 0 &&
            strcmp(s->e.name, name) == 0 && strcmp(s->e.reason, reason) == 0 &&
            s->e.type == type_name && strcmp(s->e.message, msg) == 0) {
            s->e.count++;
            s->e.last = now;
            free(msg);
            return 0;
        }
        if (oldest == NULL || s->e.last < oldest->e.last) {
            oldest = s;
        }
    }
    struct slot *s = free_slot;
    if (s == NULL) {
        slot_clear(ev, oldest);
        s = oldest;
    }
    s->e.type = type_name;
    s->e.reason = strdup(reason);
    s->e.kind = strdup(kind);
    s->e.ns = strdup(ns);
    s->e.name = strdup(name);
    s->e.message = msg;
    s->e.count = 1;
    s->e.first = s->e.last = now;
    s->hash = h;
    s->used = true;
    ev->used++;
    if (s->e.reason == NULL || s->e.kind == NULL || s->e.ns == NULL || s->e.name == NULL) {
        slot_clear(ev, s);
        return -ENOMEM;
    }
    return 0;
}

size_t ward_events_count(const struct ward_events *ev)
{
    return ev->used;
}

static bool matches(const struct ward_event *e, const struct ward_events_filter *f)
{
    if (f == NULL) {
        return true;
    }
    return (f->kind == NULL || strcmp(f->kind, e->kind) == 0) &&
           (f->ns == NULL || strcmp(f->ns, e->ns) == 0) &&
           (f->name == NULL || strcmp(f->name, e->name) == 0) &&
           (f->type == NULL || strcmp(f->type, e->type) == 0) && e->last >= f->since;
}

static int by_last(const void *a, const void *b)
{
    const struct ward_event *x = *(const struct ward_event *const *)a;
    const struct ward_event *y = *(const struct ward_event *const *)b;
    if (x->last != y->last) {
        return x->last < y->last ? -1 : 1;
    }
    return x->first < y->first ? -1 : x->first > y->first;
}

int ward_events_list(struct ward_events *ev, const struct ward_events_filter *f,
                     const struct ward_event ***out, size_t *n)
{
    expire(ev, ev->now(ev->now_arg));
    const struct ward_event **list = calloc(ev->used + 1, sizeof(*list));
    if (list == NULL) {
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < ev->capacity; i++) {
        if (ev->slots[i].used && matches(&ev->slots[i].e, f)) {
            list[k++] = &ev->slots[i].e;
        }
    }
    qsort(list, k, sizeof(*list), by_last);
    if (f != NULL && f->limit != 0 && k > f->limit) {
        memmove(list, list + (k - f->limit), f->limit * sizeof(*list));
        k = f->limit;
    }
    *out = list;
    *n = k;
    return 0;
}

void ward_time_rfc3339(double t, struct ward_buf *out)
{
    time_t secs = (time_t)t;
    struct tm tm;
    char text[32];
    gmtime_r(&secs, &tm);
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    ward_buf_puts(out, text);
}

int ward_time_parse_rfc3339(const char *text, double *out)
{
    struct tm tm = {0};
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL) {
        return -EINVAL;
    }
    double frac = 0;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59) {
            return -EINVAL;
        }
        offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p != '\0') {
        return -EINVAL;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return -EINVAL;
    }
    *out = (double)t + frac - (double)offset;
    return 0;
}

void ward_events_to_json(struct ward_events *ev, const struct ward_events_filter *f,
                         struct ward_buf *out)
{
    const struct ward_event **list = NULL;
    size_t n = 0;
    ward_buf_puts(out, "{\"kind\":\"EventList\",\"items\":[");
    if (ward_events_list(ev, f, &list, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            const struct ward_event *e = list[i];
            ward_buf_printf(out, "%s{\"type\":\"%s\",\"reason\":", i > 0 ? "," : "", e->type);
            ward_json_escape(out, e->reason);
            ward_buf_puts(out, ",\"message\":");
            ward_json_escape(out, e->message);
            ward_buf_puts(out, ",\"involvedObject\":{\"kind\":");
            ward_json_escape(out, e->kind);
            ward_buf_puts(out, ",\"namespace\":");
            ward_json_escape(out, e->ns);
            ward_buf_puts(out, ",\"name\":");
            ward_json_escape(out, e->name);
            ward_buf_printf(out, "},\"count\":%ld,\"firstTimestamp\":\"", e->count);
            ward_time_rfc3339(e->first, out);
            ward_buf_puts(out, "\",\"lastTimestamp\":\"");
            ward_time_rfc3339(e->last, out);
            ward_buf_puts(out, "\"}");
        }
    }
    free(list);
    ward_buf_puts(out, "]}\n");
}
