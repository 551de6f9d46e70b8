/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's admission hook with the provisioning queue in front of
 * Provisioning, on the shipped PhysicalHost policy and the fake BMC: at most
 * the limit is ever in Provisioning (counted at every transition), the rest
 * wait in FIFO order without failing, slots come back on every way out, a
 * host released while waiting leaves the queue, drain and resume, and an
 * API transition into Provisioning is queued rather than forced.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "policy.h"
#include "provqueue.h"

#define KIND "PhysicalHost"
#define BMC "\"bmc\":{\"address\":\"https://10.0.0.5\"}"
#define CLAIM BMC ",\"consumerRef\":\"c1\",\"bootISOSource\":\"https://img.example/os.iso\""

static struct ward_policy_engine *e;
static struct ward_provqueue *q;
static struct ev_loop *loop;
static struct fakebmc bmc;
static struct fixture_events events;
static struct ward_error err;
static unsigned most_provisioning; /* the most hosts in Provisioning after any transition */
static char order[256];            /* hosts in the order they entered Provisioning */

static const char *const names[] = {"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"};

static const char *state(const char *name)
{
    const char *s = ward_policy_resource_state(e, KIND, name, NULL);
    return s != NULL ? s : "(none)";
}

static unsigned count(const char *st)
{
    unsigned n = 0;
    for (size_t i = 0; i < WARD_ARRAY_SIZE(names); i++) {
        n += strcmp(state(names[i]), st) == 0;
    }
    return n;
}

static int check(void *arg, const char *name)
{
    (void)arg;
    const char *st = state(name);
    if (strcmp(st, "Provisioning") == 0) {
        return WARD_PROVQUEUE_INSIDE;
    }
    int answer = WARD_PROVQUEUE_GONE;
    char *json = ward_policy_resource_json(e, KIND, name);
    cJSON *doc = cJSON_Parse(json != NULL ? json : "{}");
    const cJSON *spec = cJSON_GetObjectItem(doc, "spec");
    if (strcmp(st, "Claimed") == 0 && cJSON_IsString(cJSON_GetObjectItem(spec, "consumerRef")) &&
        cJSON_IsString(cJSON_GetObjectItem(spec, "bootISOSource"))) {
        answer = WARD_PROVQUEUE_WANTED;
    }
    cJSON_Delete(doc);
    free(json);
    return answer;
}

static void kick(void *arg, const char *name)
{
    (void)arg;
    ward_policy_enqueue(e, KIND, name);
}

static void on_event(void *arg, const struct ward_policy_event *ev)
{
    fixture_on_event(arg, ev);
    if (strcmp(ev->type, "transition") != 0) {
        return;
    }
    unsigned n = count("Provisioning");
    if (n > most_provisioning) {
        most_provisioning = n;
    }
    if (strstr(ev->message, "-> Provisioning ") != NULL) {
        strncat(order, ev->name, sizeof(order) - strlen(order) - 2);
        strcat(order, " ");
    }
    ward_provqueue_changed(q, ev->name);
}

static void put(const char *name, const char *spec)
{
    if (ward_policy_resource_put(e, KIND, name, spec, &err) != 0) {
        bail("put %s: %s", name, err.text);
    }
    ward_provqueue_changed(q, name);
    fixture_settle(loop);
}

/* Let held BMC calls complete, a bounded number of rounds, until cond holds. */
static bool run_bmc_until(bool (*cond)(void))
{
    for (int i = 0; i < 200 && !cond(); i++) {
        fakebmc_release(&bmc);
        fixture_settle(loop);
    }
    return cond();
}

static bool first_three_provisioned(void)
{
    return strcmp(state("h1"), "Provisioned") == 0 && strcmp(state("h2"), "Provisioned") == 0 &&
           strcmp(state("h3"), "Provisioned") == 0;
}

static bool h6_provisioned(void)
{
    return strcmp(state("h6"), "Provisioned") == 0;
}

int main(void)
{
    plan(25);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, &events);
    o.on_event = on_event;
    e = ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    struct ward_provqueue_options qo = {
        .settings = {.max_queue_size = 10, .worker_count = 4, .max_concurrent_ops = 2},
        .metrics = metrics,
        .loop = loop,
        .check = check,
        .kick = kick};
    q = ward_provqueue_create(&qo, &err);
    if (q == NULL) {
        bail("queue: %s", err.text);
    }
    is_int(0, ward_policy_engine_on_admit(e, KIND, "Provisioning", ward_provqueue_admit, q),
           "the queue is hooked in front of Provisioning");
    fixture_now = 1000;

    for (size_t i = 0; i < WARD_ARRAY_SIZE(names); i++) {
        put(names[i], "{" BMC "}");
    }
    is_int(8, count("Available"), "eight hosts are enrolled");

    /* the BMC holds every call: provisioning stays in flight */
    bmc.hang = true;
    for (size_t i = 0; i < 4; i++) {
        put(names[i], "{" CLAIM "}");
    }
    is_int(2, count("Provisioning"), "with a limit of 2 two hosts are in Provisioning");
    is_string("h1 h2 ", order, "the first two claimed");
    ok(strcmp(state("h3"), "Claimed") == 0 && strcmp(state("h4"), "Claimed") == 0,
       "h3 and h4 wait in Claimed");
    is_int(1, ward_provqueue_position(q, "h3"), "h3 is first in line");
    is_int(2, ward_provqueue_position(q, "h4"), "h4 second");
    is_double(0,
              ward_metric_sum(ward_metrics_counter(metrics, "ward_reconcile_failures_total", "x",
                                                   (const char *[]){"kind", NULL}),
                              NULL, NULL),
              0, "waiting is not a failed reconcile");
    lacks(events.text.data, "reconcile_failed", "and records no failure event");
    contains(events.text.data, "transition PhysicalHost/h3: Available -> Claimed",
             "h3 was claimed (its reconcile ran and parked)");

    /* h4 released while waiting leaves the queue */
    put("h4", "{" BMC "}");
    is_string("Available", state("h4"), "h4 released while waiting goes back to Available");
    is_int(-1, ward_provqueue_position(q, "h4"), "and leaves the queue");
    is_int(1, ward_provqueue_length(q), "one host waits");

    /* provisioning finishes: slots are freed, h3 follows */
    ok(run_bmc_until(first_three_provisioned), "h1, h2 and then h3 end Provisioned");
    is_string("h1 h2 h3 ", order, "in FIFO order");
    is_int(2, most_provisioning, "never more than 2 hosts were in Provisioning at once");
    is_int(0, ward_provqueue_processing(q), "every slot came back");

    /* Error is a way out too; and an API transition into Provisioning is queued */
    put("h5", "{" CLAIM "}");
    put("h6", "{" CLAIM "}");
    put("h7", "{" CLAIM "}");
    ok(strcmp(state("h5"), "Provisioning") == 0 && strcmp(state("h7"), "Claimed") == 0,
       "h5 and h6 provision, h7 waits");
    is_int(0, ward_policy_transition(e, KIND, "h5", NULL, "Error", "api", "test", "test", &err),
           "h5 is moved to Error");
    fixture_settle(loop);
    is_string("Provisioning", state("h7"), "the slot h5 held goes to h7");

    ward_provqueue_drain(q, true);
    put("h8", "{" CLAIM "}");
    ok(run_bmc_until(h6_provisioned) && strcmp(state("h8"), "Claimed") == 0,
       "drained: h6 finishes, h8 is not admitted");
    is_int(-EAGAIN,
           ward_policy_transition(e, KIND, "h8", NULL, "Provisioning", "api", "test", "test", &err),
           "an API transition into Provisioning waits in the queue too");
    contains(err.text, "waiting in the provisioning queue", "saying so");
    ward_provqueue_drain(q, false);
    fixture_settle(loop);
    is_string("Provisioning", state("h8"), "resume admits h8");
    is_int(2, most_provisioning, "and the limit held throughout");

    bmc.hang = false;
    fakebmc_release(&bmc);
    fixture_settle(loop);
    ward_policy_engine_destroy(e);
    ward_provqueue_destroy(q);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    return 0;
}
