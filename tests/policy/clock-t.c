/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine on the real clocks while the wall clock is set, as NTP or an operator sets it:
 * forward an hour, a run in flight is not cancelled and its host is not stuck; back half an
 * hour, a host waiting out its backoff is not held back for the half hour. The times the
 * engine hands out are Unix times that follow the new wall clock. On the store: a host in its
 * state since before the machine booted is stuck after a restart, and another writer's
 * change after a step of the clock does not move the time a host entered its state.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/clockstep.h"
#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"

static void on_break(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop for secs: long enough for libev to read the wall clock again (it does every
   half second), which is when a wall-clock deadline would see the step. */
static void run_for(struct ev_loop *loop, double secs)
{
    ev_timer t;
    ev_timer_init(&t, on_break, secs, 0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    ev_timer_stop(loop, &t);
}

static struct fakebmc bmc;

/* Run the loop until the fake BMC has been called want times, or bound seconds. */
static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    if (bmc.calls >= *(unsigned *)w->data) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void run_until_calls(struct ev_loop *loop, unsigned want, double bound)
{
    ev_timer poll, guard;
    ev_timer_init(&poll, on_poll, 0.01, 0.01);
    poll.data = &want;
    ev_timer_init(&guard, on_break, bound, 0);
    ev_timer_start(loop, &poll);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &poll);
    ev_timer_stop(loop, &guard);
}

/* entered_at of the resource's JSON, 0 when there is none */
static double entered_at(struct ward_policy_engine *e, const char *name)
{
    char *json = ward_policy_resource_json(e, "PhysicalHost", name);
    cJSON *o = cJSON_Parse(json != NULL ? json : "");
    cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "entered_at");
    double v = cJSON_IsNumber(at) ? at->valuedouble : 0;
    cJSON_Delete(o);
    free(json);
    return v;
}

static double stuck_in(struct ward_metrics *m, const char *state)
{
    struct ward_metric *c = ward_metrics_counter(m, "ward_physicalhost_stuck_states_total", "x",
                                                 (const char *[]){"state", NULL});
    return ward_metric_value(c, (const char *[]){state});
}

/* An engine on the store; on the real clocks unless real is false (the fixture's clock). */
static struct ward_policy_engine *on_store(struct ev_loop *loop, struct ward_store *st,
                                           struct ward_policy_sink *sink, struct fakebmc *f,
                                           struct ward_metrics *m, bool real, double stuck)
{
    ward_policy_sink_store(sink, st);
    struct ward_policy_options o;
    fixture_options(&o, f, NULL);
    if (real) {
        o.now = NULL;
    }
    o.stuck_timeout = stuck;
    o.queue.base_delay = 1000; /* a failed enrollment is not tried again during the test */
    o.queue.max_delay = 1000;
    struct ward_error err = {0};
    struct ward_policy_engine *e = ward_policy_engine_create(loop, sink, NULL, m, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("engine: %s", err.text);
    }
    return e;
}

static void on_store_tests(struct ev_loop *loop)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/clock.db", test_tmpdir());
    struct ward_error err = {0};
    struct fakebmc f;
    fakebmc_init(&f, loop);
    f.fail_connect = true; /* hosts stay in Enrolling */
    struct ward_policy_sink sink;
    const char *spec = "{\"bmc\":{\"address\":\"https://10.0.0.5\"}}";

    /* a host enrolling since 10,000 s before the machine booted; wardd restarts with a stuck
       timeout shorter than that, and longer than the machine has been up */
    double up = ward_monotonic();
    fixture_now = ward_wall_clock() - (up + 10000);
    struct ward_store *st = ward_store_open(
        loop, &(struct ward_store_options){.path = path, .now = fixture_clock}, &err);
    struct ward_metrics *m = ward_metrics_create();
    struct ward_policy_engine *e = on_store(loop, st, &sink, &f, m, false, 1e9);
    if (st == NULL || ward_policy_resource_put(e, "PhysicalHost", "old", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
    ward_policy_engine_destroy(e);
    ward_store_close(st);
    ward_metrics_destroy(m);
    st = ward_store_open(loop, &(struct ward_store_options){.path = path}, &err);
    m = ward_metrics_create();
    e = on_store(loop, st, &sink, &f, m, true, up + 5000);
    if (st == NULL || ward_policy_engine_restore(e, st, &err) != 0) {
        bail("restore: %s", err.text);
    }
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    ok(stuck_in(m, "Enrolling") == 1,
       "after a restart, a host enrolling since before the boot is stuck (%.0f report)",
       stuck_in(m, "Enrolling"));
    ward_policy_engine_destroy(e);
    ward_metrics_destroy(m);

    /* the wall clock moves an hour forward, then another writer changes a host's spec */
    m = ward_metrics_create();
    e = on_store(loop, st, &sink, &f, m, true, 900);
    if (ward_policy_resource_put(e, "PhysicalHost", "h", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
    clockstep_by(3600);
    struct ward_resource *r = NULL;
    if (ward_store_get(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h", &r, &err) != 0) {
        bail("get: %s", err.text);
    }
    struct ward_resource change = {.kind = "PhysicalHost",
                                   .ns = WARD_POLICY_NAMESPACE,
                                   .name = "h",
                                   .spec = "{\"bmc\":{\"address\":\"https://10.0.0.6\"}}"};
    if (ward_store_update(st, &change, r->version, &err) != 0) {
        bail("update: %s", err.text);
    }
    ward_resource_free(r);
    fixture_settle(loop); /* the engine reads the change from the store */
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    ok(stuck_in(m, "Enrolling") == 0,
       "after the step and another writer's change, host h is not stuck (%.0f reports)",
       stuck_in(m, "Enrolling"));

    /* right after host k enters Enrolling, another writer records it entering Enrolling
       again, 5,000 s ago (a same-state write, as the API's release makes): the engine takes
       that time, although the state it knew was its own transition's */
    if (ward_policy_resource_put(e, "PhysicalHost", "k", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
    double then = ward_wall_clock() - 5000;
    struct ward_transition again = {.kind = "PhysicalHost",
                                    .ns = WARD_POLICY_NAMESPACE,
                                    .name = "k",
                                    .dimension = WARD_STORE_LIFECYCLE,
                                    .from = "Enrolling",
                                    .to = "Enrolling",
                                    .trigger = "test",
                                    .actor = "test",
                                    .entered = then};
    if (ward_store_transition_sync(st, &again, NULL, &err) != 0) {
        bail("transition: %s", err.text);
    }
    fixture_settle(loop);
    double at = entered_at(e, "k");
    ok(at > then - 1 && at < then + 1, "k's entered_at follows the store's new time (%+.1f s)",
       at - then);
    clockstep_by(-3600);
    ward_policy_engine_destroy(e);
    ward_metrics_destroy(m);
    ward_store_close(st);
}

int main(void)
{
    plan(12);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fixture_events events = {0};
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, &events);
    o.now = NULL; /* the engine's own clock */
    o.reconcile_timeout = 60;
    o.stuck_timeout = 600;
    o.queue.base_delay = 2; /* a failed run goes again after 2 s */
    o.queue.max_delay = 2;
    struct ward_error err = {0};
    struct ward_policy_engine *e =
        ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    const char *spec = "{\"bmc\":{\"address\":\"https://10.0.0.5\"}}";

    /* forward an hour while a host's enrollment waits on its BMC */
    bmc.hang = true;
    if (ward_policy_resource_put(e, "PhysicalHost", "a", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
    is_int(1, ward_policy_engine_running(e), "host a's enrollment waits on its BMC");
    double loop_time = ev_now(loop);
    clockstep_by(3600);
    run_for(loop, 0.6);
    ok(ev_now(loop) - loop_time > 3000, "the loop's own clock moved with the wall clock (%+.0f s)",
       ev_now(loop) - loop_time);
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    ok(ward_policy_engine_running(e) == 1 && bmc.cancelled == 0,
       "after the wall clock moved an hour forward, the run is still in flight (%u cancelled)",
       bmc.cancelled);
    ok(strstr(events.text.data != NULL ? events.text.data : "", "stuck") == NULL,
       "and host a is not reported stuck");
    double at = entered_at(e, "a");
    double lag = ward_wall_clock() - at;
    ok(lag > -0.001 && lag < 30, "entered_at is Unix time on the new wall clock (%.1f s before it)",
       lag);
    bmc.hang = false;
    fakebmc_release(&bmc);
    fixture_settle(loop);
    const char *st = ward_policy_resource_state(e, "PhysicalHost", "a", NULL);
    ok(st != NULL && strcmp(st, "Available") == 0, "host a enrolls once its BMC answers (%s)",
       st != NULL ? st : "none");

    /* back half an hour while a host waits out its backoff */
    bmc.fail_connect = true;
    unsigned before = bmc.calls;
    if (ward_policy_resource_put(e, "PhysicalHost", "b", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    run_until_calls(loop, before + 1, 5);
    is_int(before + 1, bmc.calls, "host b's first connect fails");
    clockstep_by(-1800);
    run_until_calls(loop, before + 2, 10);
    is_int(before + 2, bmc.calls,
           "after the wall clock went back half an hour, it is tried again after its 2 s");

    /* the clock is stepped between a provisioning's failed power read and its retry: the
       retry reads the power again, it does not configure the boot (and restart) again */
    bmc.fail_connect = false;
    before = bmc.calls;
    if (ward_policy_resource_put(e, "PhysicalHost", "p", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    run_until_calls(loop, before + 2, 5); /* connect, inventory */
    const char *ps = "{\"bmc\":{\"address\":\"https://10.0.0.5\"},\"consumerRef\":\"c1\","
                     "\"bootISOSource\":\"http://x/os.iso\"}";
    unsigned restarts = bmc.restarts;
    bmc.fail_power_state = 1;
    before = bmc.calls;
    if (ward_policy_resource_put(e, "PhysicalHost", "p", ps, &err) != 0) {
        bail("put: %s", err.text);
    }
    run_until_calls(loop, before + 6, 5); /* connect, eject, insert, boot, restart, power */
    clockstep_by(60);
    run_until_calls(loop, before + 8, 10); /* the retry: connect, power */
    fixture_settle(loop);
    st = ward_policy_resource_state(e, "PhysicalHost", "p", NULL);
    ok(st != NULL && strcmp(st, "Provisioned") == 0 && bmc.restarts == restarts + 1,
       "a clock step before the retry: provisioned with one restart (%s, %u)",
       st != NULL ? st : "none", bmc.restarts - restarts);
    clockstep_by(-60);

    ward_policy_engine_destroy(e);
    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    clockstep_by(1800 - 3600); /* the real wall clock again */

    on_store_tests(loop);
    ev_loop_destroy(loop);
    return 0;
}
