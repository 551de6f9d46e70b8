/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine on the loop's own clock, as wardd runs it: while every run slot is taken and
 * the runs wait on their BMCs, the loop blocks instead of waking itself over and over; a
 * run that ends hands its slot to the next host. Once the engine stops (shutdown), hosts
 * still waiting for a slot do not wake the loop either.
 */
#include "autoconf.h"

#include <string.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "policy.h"

static void on_break(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Loop iterations while the loop runs for secs of its own clock. */
static unsigned iterations_during(struct ev_loop *loop, double secs)
{
    ev_timer t;
    ev_timer_init(&t, on_break, secs, 0);
    ev_timer_start(loop, &t);
    unsigned before = ev_iteration(loop);
    ev_run(loop, 0);
    ev_timer_stop(loop, &t);
    return ev_iteration(loop) - before;
}

/* Run until nothing but the guard is active, or the guard (10 s) fires. */
static void run_out(struct ev_loop *loop)
{
    ev_timer guard;
    ev_timer_init(&guard, on_break, 10, 0);
    ev_timer_start(loop, &guard);
    ev_unref(loop); /* the guard alone does not keep ev_run going */
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
}

int main(void)
{
    plan(6);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, NULL);
    o.now = NULL; /* the loop's clock, so the engine arms its own timers */
    o.queue.max_inflight = 1;
    struct ward_error err = {0};
    struct ward_policy_engine *e =
        ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }

    bmc.hang = true;
    const char *spec = "{\"bmc\":{\"address\":\"https://10.0.0.5\"}}";
    if (ward_policy_resource_put(e, "PhysicalHost", "a", spec, &err) != 0 ||
        ward_policy_resource_put(e, "PhysicalHost", "b", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    ev_run(loop, EVRUN_NOWAIT);
    is_int(1, ward_policy_engine_running(e), "one run holds the only slot, the other host waits");
    unsigned n = iterations_during(loop, 0.05);
    ok(n < 20, "the loop sleeps while the slot is taken (%u iterations in 50 ms)", n);

    bmc.hang = false;
    fakebmc_release(&bmc);
    run_out(loop);
    const char *a = ward_policy_resource_state(e, "PhysicalHost", "a", NULL);
    const char *b = ward_policy_resource_state(e, "PhysicalHost", "b", NULL);
    ok(a != NULL && strcmp(a, "Available") == 0, "the first host enrolls once its BMC answers");
    ok(b != NULL && strcmp(b, "Available") == 0, "and its run's end hands the slot to the next");

    /* shutdown: the engine stops handing out; a run ending after that leaves the host still
       waiting for its slot where it is */
    bmc.hang = true;
    if (ward_policy_resource_put(e, "PhysicalHost", "c", spec, &err) != 0 ||
        ward_policy_resource_put(e, "PhysicalHost", "d", spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    ev_run(loop, EVRUN_NOWAIT);
    ward_policy_engine_stop(e);
    bmc.hang = false;
    fakebmc_release(&bmc);
    for (int i = 0; i < 1000 && ward_policy_engine_running(e) > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT); /* the fake BMC answers from 0 s timers */
    }
    is_int(0, ward_policy_engine_running(e), "the run in flight ended after the stop");
    n = iterations_during(loop, 0.05);
    ok(n < 20, "and the host left waiting does not wake the loop (%u iterations in 50 ms)", n);

    ward_policy_engine_destroy(e);
    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ev_loop_destroy(loop);
    return 0;
}
