/* SPDX-License-Identifier: Apache-2.0 */
/* Events: aggregation, bounds, filters and the Kubernetes-shaped JSON, on a fake clock. */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "metrics.h"
#include "tap/basic.h"
#include "util.h"

static double clock_now = 1795456800; /* 2026-11-23T18:00:00Z */

static double fake_now(void *arg)
{
    return clock_now;
}

int main(void)
{
    plan(32);
    struct ward_metrics *m = ward_metrics_create();
    struct ward_events *ev = ward_events_create(&(struct ward_events_options){
        .capacity = 3, .max_age = 3600, .now = fake_now, .metrics = m});

    is_int(0,
           ward_events_record(ev, "Normal", "Transition", "Available -> Claimed", "PhysicalHost",
                              "default", "h1"),
           "an event is recorded");
    clock_now += 30;
    is_int(0,
           ward_events_record(ev, "Normal", "Transition", "Available -> Claimed", "PhysicalHost",
                              "default", "h1"),
           "the same event again is recorded");
    is_int(1, (long long)ward_events_count(ev), "repeats are aggregated, not duplicated");
    const struct ward_event **list;
    size_t n;
    ward_events_list(ev, NULL, &list, &n);
    is_int(2, list[0]->count, "the aggregate counts both");
    is_double(1795456800, list[0]->first, 0, "first timestamp is the first occurrence");
    is_double(1795456830, list[0]->last, 0, "last timestamp is the latest occurrence");
    free(list);

    is_int(0,
           ward_events_record(ev, "Warning", "GuardRefused", "no consumer reference",
                              "PhysicalHost", "default", "h1"),
           "a warning is recorded");
    is_int(2, (long long)ward_events_count(ev), "another reason is another event");
    clock_now += 5;
    ward_events_record(ev, "Normal", "Transition", "Claimed -> Provisioning", "PhysicalHost",
                       "default", "h1");
    is_int(3, (long long)ward_events_count(ev), "another message is another event");

    is_int(-EINVAL, ward_events_record(ev, "Error", "X", "m", "PhysicalHost", "", "h1"),
           "types other than Normal and Warning are refused");
    is_int(-EINVAL, ward_events_record(ev, "Normal", "has space", "m", "PhysicalHost", "", "h1"),
           "a reason must be a token");
    is_int(-EINVAL, ward_events_record(ev, "Normal", "Ok", "m", "PhysicalHost", "", ""),
           "an involved object needs a name");

    /* capacity: the event seen longest ago goes */
    clock_now += 5;
    ward_events_record(ev, "Normal", "Transition", "Available -> Claimed", "PhysicalHost",
                       "default", "h1"); /* refresh the first one */
    clock_now += 10;
    ward_events_record(ev, "Warning", "StuckDetected", "Enrolling for 15m", "PhysicalHost",
                       "default", "h2");
    is_int(3, (long long)ward_events_count(ev), "the set stays at its capacity");
    struct ward_events_filter f = {.name = "h1"};
    ward_events_list(ev, &f, &list, &n);
    is_int(2, (long long)n, "the least recently seen event was evicted");
    ok(n == 2 && strcmp(list[0]->reason, "Transition") == 0 &&
           strcmp(list[0]->message, "Claimed -> Provisioning") == 0,
       "the one left first is the older of the two");
    ok(n == 2 && list[1]->count == 3, "the refreshed aggregate survived with its count");
    free(list);

    f = (struct ward_events_filter){.type = "Warning"};
    ward_events_list(ev, &f, &list, &n);
    ok(n == 1 && strcmp(list[0]->name, "h2") == 0, "filter by type");
    free(list);
    f = (struct ward_events_filter){.kind = "PhysicalHost", .name = "h2"};
    ward_events_list(ev, &f, &list, &n);
    is_int(1, (long long)n, "filter by resource");
    free(list);
    f = (struct ward_events_filter){.since = 1795456840};
    ward_events_list(ev, &f, &list, &n);
    is_int(2, (long long)n, "filter by time");
    free(list);
    f = (struct ward_events_filter){.limit = 1};
    ward_events_list(ev, &f, &list, &n);
    ok(n == 1 && strcmp(list[0]->name, "h2") == 0, "limit keeps the newest");
    free(list);

    struct ward_buf json = {0};
    f = (struct ward_events_filter){.name = "h2"};
    ward_events_to_json(ev, &f, &json);
    is_string("{\"kind\":\"EventList\",\"items\":[{\"type\":\"Warning\",\"reason\":"
              "\"StuckDetected\",\"message\":\"Enrolling for 15m\",\"involvedObject\":{\"kind\":"
              "\"PhysicalHost\",\"namespace\":\"default\",\"name\":\"h2\"},\"count\":1,"
              "\"firstTimestamp\":\"2026-11-23T18:00:50Z\",\"lastTimestamp\":"
              "\"2026-11-23T18:00:50Z\"}]}\n",
              json.data, "the JSON has the Kubernetes event shape");
    ward_buf_free(&json);

    /* retention by age */
    clock_now += 3600 - 5;
    ward_events_list(ev, NULL, &list, &n);
    is_int(1, (long long)n, "events older than max_age are dropped");
    free(list);

    /* message bound, escaping */
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ward_events_record(ev, "Warning", "BmcFailure", big, "PhysicalHost", "", "h3");
    f = (struct ward_events_filter){.name = "h3"};
    ward_events_list(ev, &f, &list, &n);
    is_int(WARD_EVENT_MESSAGE_MAX, n == 1 ? (long long)strlen(list[0]->message) : -1,
           "messages are cut to the bound");
    free(list);
    ward_events_record(ev, "Warning", "BmcFailure", "quote \" and\nnewline", "PhysicalHost", "",
                       "h4");
    json = (struct ward_buf){0};
    f = (struct ward_events_filter){.name = "h4"};
    ward_events_to_json(ev, &f, &json);
    contains(json.data, "\"quote \\\" and\\nnewline\"", "messages are JSON-escaped");
    ward_buf_free(&json);

    const char *const warning[] = {"Warning"};
    is_double(4,
              ward_metric_value(
                  ward_metrics_counter(m, "ward_events_total", "x", (const char *[]){"type", NULL}),
                  warning),
              0, "warnings are counted in ward_events_total");

    double t;
    is_int(0, ward_time_parse_rfc3339("2026-11-23T18:00:00Z", &t), "RFC 3339 in UTC parses");
    is_double(1795456800, t, 0, "to the right second");
    is_int(0, ward_time_parse_rfc3339("2026-11-23T18:00:00+01:30", &t), "with an offset");
    is_double(1795451400, t, 0, "the offset is applied");
    is_int(-EINVAL, ward_time_parse_rfc3339("2026-11-23 18:00", &t), "other forms are refused");
    is_int(-EINVAL, ward_time_parse_rfc3339("2026-11-23T18:00:00Zjunk", &t), "trailing junk too");
    json = (struct ward_buf){0};
    ward_time_rfc3339(1795451400, &json);
    is_string("2026-11-23T16:30:00Z", json.data, "times are written in UTC");
    ward_buf_free(&json);

    ward_events_destroy(ev);
    ward_metrics_destroy(m);
    return 0;
}
