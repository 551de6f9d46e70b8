/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PhysicalHost policy driven end to end as coroutines against the fake
 * BMC driver: enrollment, claim, provisioning, release; per-resource
 * serialisation; backoff on failure; deadline cancellation; shutdown.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "policy.h"

static struct ward_policy_engine *e;
static struct ev_loop *loop;
static struct ward_error err;

static const char *state(const char *name)
{
    const char *s = ward_policy_resource_state(e, "PhysicalHost", name, NULL);
    return s != NULL ? s : "(none)";
}

static void put(const char *name, const char *spec)
{
    if (ward_policy_resource_put(e, "PhysicalHost", name, spec, &err) != 0) {
        bail("put %s: %s", name, err.text);
    }
    fixture_settle(loop);
}

#define BMC "\"bmc\":{\"address\":\"https://10.0.0.5\"}"

/* An operator's transition of a host (through the engine, as the API makes it). */
static void operator_to(const char *name, const char *to)
{
    if (ward_policy_transition(e, "PhysicalHost", name, NULL, to, "api", "operator", "api:test",
                               &err) != 0) {
        bail("transition %s to %s: %s", name, to, err.text);
    }
}

/* A host provisioned for c1 from a.iso that an operator moves to Error, where c1 releases it
   (status.boot still says configured: nothing cleaned it). */
static void provisioned_then_error(const char *name)
{
    put(name, "{" BMC "}");
    put(name, "{" BMC ",\"consumerRef\":\"c1\",\"bootISOSource\":\"http://x/a.iso\"}");
    if (strcmp(state(name), "Provisioned") != 0) {
        bail("%s is %s, not Provisioned", name, state(name));
    }
    operator_to(name, "Error");
    fixture_settle(loop);
    put(name, "{" BMC ",\"bootISOSource\":\"http://x/a.iso\"}");
}

int main(void)
{
    plan(47);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fixture_events events = {0};
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, &events);
    e = ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    fixture_now = 1000;

    put("h1", "{" BMC "}");
    is_string("Available", state("h1"), "a host with BMC info is enrolled to Available");
    contains(sink.history.data, "None->Enrolling registered policy:PhysicalHost",
             "None -> Enrolling by the policy");
    contains(sink.history.data, "Enrolling->Available enrolled", "Enrolling -> Available");
    char *json = ward_policy_resource_json(e, "PhysicalHost", "h1");
    contains(json, "\"serial\":\"SN-h1\"", "the hardware inventory is kept in the status");
    contains(json, "\"redfish\":{\"connected\":true}", "and the connection health");
    free(json);
    is_int(0, ward_policy_engine_running(e), "nothing left running");

    put("h1", "{" BMC ",\"consumerRef\":\"c1\"}");
    is_string("Claimed", state("h1"), "setting consumerRef claims the host");
    put("h1", "{" BMC ",\"consumerRef\":\"c1\",\"bootISOSource\":\"http://x/os.iso\"}");
    is_string("Provisioned", state("h1"), "bootISOSource provisions it");
    json = ward_policy_resource_json(e, "PhysicalHost", "h1");
    ok(strstr(json, "\"configured\":true") != NULL &&
           strstr(json, "\"iso\":\"http://x/os.iso\"") != NULL,
       "boot configuration recorded");
    contains(json, "\"power\":\"On\"", "power is on");
    free(json);
    put("h1", "{" BMC ",\"bootISOSource\":\"http://x/os.iso\"}");
    is_string("Available", state("h1"), "clearing consumerRef releases it to Available");
    contains(sink.history.data, "Provisioned->Available released", "as a release");

    /* the power read after the boot configuration fails: the run fails with the read's
       reason, and the retry reads the power again without restarting the host again */
    unsigned restarts = bmc.restarts;
    bmc.fail_power_state = 1;
    put("h1", "{" BMC ",\"consumerRef\":\"c2\",\"bootISOSource\":\"http://x/os.iso\"}");
    is_string("Provisioning", state("h1"), "a failed power read leaves the host Provisioning");
    contains(events.text.data, "reconcile_failed PhysicalHost/h1: power state: Systems/1: HTTP 503",
             "with the read's reason");
    fixture_now += 1.1;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_string("Provisioned", state("h1"), "the retry provisions it");
    is_int(restarts + 1, bmc.restarts, "restarting the host once in all");
    put("h1", "{" BMC ",\"bootISOSource\":\"http://x/os.iso\"}");
    is_string("Available", state("h1"), "and it is released again");

    /* deprovisioning whose BMC refuses: the reason is in the status while it is retried */
    put("d1", "{" BMC "}");
    bmc.fail_connect = true;
    if (ward_policy_transition(e, "PhysicalHost", "d1", NULL, "Deprovisioning", "api", "retired",
                               "api:test", &err) != 0) {
        bail("deprovision d1: %s", err.text);
    }
    fixture_settle(loop);
    json = ward_policy_resource_json(e, "PhysicalHost", "d1");
    contains(json, "\"error\":\"connect: connection refused",
             "a deprovisioning that cannot reach the BMC says why in status.error");
    free(json);
    bmc.fail_connect = false;
    fixture_now += 1.1;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    json = ward_policy_resource_json(e, "PhysicalHost", "d1");
    ok(strstr(json, "\"deprovisioned\":true") != NULL && strstr(json, "\"error\"") == NULL,
       "once it answers, the host is deprovisioned and the error cleared (%s)", json);
    free(json);

    /* an operator's transitions take a provisioned host through Error back to Available,
       which does not clean it: the next claim with the same image still provisions it */
    provisioned_then_error("s1");
    operator_to("s1", "Available");
    fixture_settle(loop);
    restarts = bmc.restarts;
    put("s1", "{" BMC ",\"consumerRef\":\"c2\",\"bootISOSource\":\"http://x/a.iso\"}");
    is_string("Provisioned", state("s1"), "s1 is provisioned for c2");
    is_int(restarts + 1, bmc.restarts, "c2's provisioning restarted the host from the image");

    /* the same through an operator's Claimed -> Provisioning before any reconcile of the
       claim ran: refused while the earlier configuration is recorded, and the Claimed
       reconcile then provisions it from the image */
    provisioned_then_error("q1");
    operator_to("q1", "Available");
    ward_policy_resource_put(
        e, "PhysicalHost", "q1",
        "{" BMC ",\"consumerRef\":\"c2\",\"bootISOSource\":\"http://x/a.iso\"}", &err);
    if (ward_policy_transition(e, "PhysicalHost", "q1", NULL, "Claimed", "claim", "c2", "c2",
                               &err) != 0) {
        bail("transition q1: %s", err.text);
    }
    restarts = bmc.restarts;
    int rc = ward_policy_transition(e, "PhysicalHost", "q1", NULL, "Provisioning", "api",
                                    "operator", "api:test", &err);
    ok(rc != 0 && strstr(err.text, "earlier provisioning") != NULL,
       "an operator's Claimed -> Provisioning is refused while c1's configuration is recorded "
       "(%s)",
       err.text);
    fixture_settle(loop);
    ok(strcmp(state("q1"), "Provisioned") == 0 && bmc.restarts == restarts + 1,
       "the Claimed reconcile provisions it for c2 from the image (%s, %u restarts)", state("q1"),
       bmc.restarts - restarts);

    /* a host released in Error whose cleaning fails for a while (eject refused): once the
       BMC works again, it reaches Available instead of waiting for an operator */
    provisioned_then_error("x1");
    bmc.fail_eject = true; /* Error's recovery comes after its stuck timeout */
    for (int i = 0; i < 6; i++) {
        fixture_now += 16 * 60;
        ward_policy_engine_tick(e);
        fixture_settle(loop);
    }
    bmc.fail_eject = false;
    for (int i = 0; i < 6; i++) {
        fixture_now += 16 * 60;
        ward_policy_engine_tick(e);
        fixture_settle(loop);
    }
    is_string("Available", state("x1"), "x1 recovers once the BMC works again");
    json = ward_policy_resource_json(e, "PhysicalHost", "x1");
    ok(strstr(json, "\"boot\"") == NULL && strstr(json, "\"error\"") == NULL,
       "cleaned, and no error left (%s)", json);
    free(json);

    /* Error's recovery waits on the BMC when an operator moves the host to Available and a
       consumer claims it: the recovery is cancelled, and the claimed host is not cleaned */
    provisioned_then_error("r1");
    bmc.hang = true;
    unsigned cancelled = bmc.cancelled;
    fixture_now += 16 * 60;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_int(1, ward_policy_engine_running(e), "r1's recovery waits on its BMC");
    operator_to("r1", "Available");
    ok(bmc.cancelled == cancelled + 1 && ward_policy_engine_running(e) == 0,
       "the operator's transition cancels it (%u cancelled, %u running)", bmc.cancelled - cancelled,
       ward_policy_engine_running(e));
    bmc.hang = false;
    put("r1", "{" BMC ",\"consumerRef\":\"c2\"}");
    unsigned calls = bmc.calls;
    fakebmc_release(&bmc);
    fixture_settle(loop);
    ok(strcmp(state("r1"), "Claimed") == 0 && bmc.calls == calls,
       "c2 holds r1 and nothing cleaned it (%s, %u BMC calls)", state("r1"), bmc.calls - calls);

    /* the same when the BMC has answered and the recovery waits to resume: cancelled too */
    provisioned_then_error("r2");
    bmc.hang = true;
    fixture_now += 16 * 60;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    bmc.hang = false;
    fakebmc_release(&bmc);
    ev_run(loop, EVRUN_NOWAIT); /* the BMC answers; the run has not resumed yet */
    operator_to("r2", "Available");
    is_int(0, ward_policy_engine_running(e), "a recovery about to resume is cancelled as well");
    calls = bmc.calls;
    put("r2", "{" BMC ",\"consumerRef\":\"c2\"}");
    fixture_settle(loop);
    ok(strcmp(state("r2"), "Claimed") == 0 && bmc.calls == calls,
       "c2 holds r2 and nothing cleaned it (%s, %u BMC calls)", state("r2"), bmc.calls - calls);
    bmc.cancelled = 0; /* the cases below count from here */

    /* many hosts at once, never two operations on one host */
    bmc.max_active = 0;
    bmc.max_same_host = 0;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        ward_policy_resource_put(e, "PhysicalHost", name, "{" BMC "}", &err);
        ward_policy_enqueue(e, "PhysicalHost", name); /* asking twice changes nothing */
    }
    fixture_settle(loop);
    bool all = true;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        all = all && strcmp(state(name), "Available") == 0;
    }
    ok(all, "six hosts enrolled concurrently");
    ok(bmc.max_active > 1, "their BMC calls overlapped (%u at once)", bmc.max_active);
    is_int(1, bmc.max_same_host, "but never two at once for the same host");

    /* failures back off exponentially */
    bmc.fail_connect = true;
    unsigned before = bmc.calls;
    put("f1", "{" BMC "}");
    is_string("Enrolling", state("f1"), "a host whose BMC refuses stays Enrolling");
    contains(events.text.data, "reconcile_failed PhysicalHost/f1: connect: connection refused",
             "the failure is an event with the BMC's reason");
    is_int(before + 1, bmc.calls, "one attempt so far");
    fixture_now += 0.9;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_int(before + 1, bmc.calls, "no retry before the 1 s backoff");
    fixture_now += 0.2;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_int(before + 2, bmc.calls, "a retry after it");
    fixture_now += 1.9;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_int(before + 2, bmc.calls, "the second backoff is longer (2 s)");
    fixture_now += 0.2;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_int(before + 3, bmc.calls, "and then it retries");
    bmc.fail_connect = false;
    fixture_now += 10;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    is_string("Available", state("f1"), "once the BMC answers, the retry enrolls it");

    /* a reconcile past RECONCILE_TIMEOUT is cancelled and counted */
    bmc.hang = true;
    put("slow", "{" BMC "}");
    is_int(1, ward_policy_engine_running(e), "a reconcile waits on a BMC that does not answer");
    fixture_now += 29 * 60;
    ward_policy_engine_tick(e);
    is_int(1, ward_policy_engine_running(e), "still waiting before the deadline");
    fixture_now += 2 * 60;
    ward_policy_engine_tick(e);
    is_int(1, bmc.cancelled,
           "cancelled once RECONCILE_TIMEOUT (30m) passed: the pending BMC "
           "operation was cancelled, not completed");
    contains(events.text.data, "reconcile_failed PhysicalHost/slow: cancelled: deadline",
             "the cancellation is reported");
    struct ward_metric *c = ward_metrics_counter(metrics, "ward_reconcile_cancelled_total", "x",
                                                 (const char *[]){"reason", NULL});
    is_double(1, ward_metric_value(c, (const char *[]){"deadline"}), 0, "and counted");

    /* shutdown cancels what is in flight */
    fixture_now += 60;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    ward_policy_engine_destroy(e);
    is_int(2, bmc.cancelled, "destroying the engine cancels the operation in flight");

    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    ev_loop_destroy(loop);
    return 0;
}
