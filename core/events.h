/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events in the shape Kubernetes uses: type (Normal or Warning), reason (a
 * CamelCase token), message, the involved object, a count and the first and
 * last time it happened. Recording the same (object, reason, type, message)
 * again bumps count and lastTimestamp instead of adding a line. The set is
 * bounded by a capacity (the event seen longest ago goes first) and an age.
 */
#ifndef WARD_CORE_EVENTS_H
#define WARD_CORE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <ward/metrics.h>

struct ward_buf;
struct ward_events;

#define WARD_EVENTS_DEFAULT_CAPACITY 1000
#define WARD_EVENT_MESSAGE_MAX 1024

struct ward_event {
    const char *type;       /* "Normal" or "Warning" (static) */
    char *reason;           /* owned by the event set */
    char *message;          /* owned */
    char *kind, *ns, *name; /* owned: the involved object */
    long count;
    double first, last; /* unix seconds */
};

struct ward_events_options {
    size_t capacity;          /* 0: WARD_EVENTS_DEFAULT_CAPACITY */
    double max_age;           /* seconds; 0: keep until the capacity pushes them out */
    double (*now)(void *arg); /* NULL: real time; tests inject a fake clock */
    void *now_arg;
    struct ward_metrics *metrics; /* may be NULL; ward_events_total{type} counted here */
};

struct ward_events *ward_events_create(const struct ward_events_options *o);
void ward_events_destroy(struct ward_events *ev);

/*
 * Record one occurrence. type "Normal" or "Warning"; reason 1-64 letters and
 * digits; message is cut to WARD_EVENT_MESSAGE_MAX bytes; kind and name are
 * required, ns may be NULL (""). 0 or -EINVAL / -ENOMEM.
 */
int ward_events_record(struct ward_events *ev, const char *type, const char *reason,
                       const char *message, const char *kind, const char *ns, const char *name);

struct ward_events_filter {
    const char *kind, *ns, *name; /* NULL: any */
    const char *type;             /* NULL: any */
    double since;                 /* only events whose last occurrence is at or after; 0: all */
    size_t limit;                 /* newest `limit` events; 0: all */
};

/* Number of events currently kept. */
size_t ward_events_count(const struct ward_events *ev);

/*
 * Matching events, oldest last-occurrence first, into a caller-freed array of
 * pointers that stay valid until the next record. 0 or -ENOMEM.
 */
int ward_events_list(struct ward_events *ev, const struct ward_events_filter *f,
                     const struct ward_event ***out, size_t *n);

/* Append {"kind":"EventList","items":[...]} for the matching events. */
void ward_events_to_json(struct ward_events *ev, const struct ward_events_filter *f,
                         struct ward_buf *out);

/* Append an RFC 3339 UTC time ("2026-11-23T18:00:00Z"). */
void ward_time_rfc3339(double t, struct ward_buf *out);
/* Parse RFC 3339 ("...Z" or with an offset); 0 or -EINVAL. */
int ward_time_parse_rfc3339(const char *text, double *out);

#endif
