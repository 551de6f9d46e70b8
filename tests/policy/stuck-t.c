/* SPDX-License-Identifier: Apache-2.0 */
/* Stuck detection and every recovery strategy, on a fake clock. */
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
static struct ward_metrics *metrics;
static struct fixture_events events;

#define BMC "\"bmc\":{\"address\":\"https://10.0.0.5\"}"
#define HOST "PhysicalHost"

static const char *state(const char *kind, const char *name)
{
    const char *s = ward_policy_resource_state(e, kind, name, NULL);
    return s != NULL ? s : "(none)";
}

static void advance(double seconds)
{
    fixture_now += seconds;
    ward_policy_engine_tick(e);
    fixture_settle(loop);
}

static double recovery_of(const char *family, const char *st, const char *outcome)
{
    struct ward_metric *m =
        ward_metrics_counter(metrics, family, "x", (const char *[]){"state", "outcome", NULL});
    return ward_metric_value(m, (const char *[]){st, outcome});
}

static double recovery(const char *st, const char *outcome)
{
    return recovery_of("ward_physicalhost_recovery_attempts_total", st, outcome);
}

static double stuck(const char *st)
{
    struct ward_metric *m = ward_metrics_counter(metrics, "ward_physicalhost_stuck_states_total",
                                                 "x", (const char *[]){"state", NULL});
    return ward_metric_value(m, (const char *[]){st});
}

static unsigned count(const char *haystack, const char *needle)
{
    unsigned n = 0;
    for (const char *p = haystack; p != NULL && (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

static void put(const char *kind, const char *name, const char *spec)
{
    if (ward_policy_resource_put(e, kind, name, spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
}

int main(void)
{
    plan(38);
    loop = ev_loop_new(EVFLAG_AUTO);
    metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, &events);
    e = ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    fixture_now = 100000;

    /* stuck Enrolling: retry the connection, then Error after MAX_RETRIES (3) */
    bmc.fail_connect = true;
    put(HOST, "s1", "{" BMC "}");
    is_string("Enrolling", state(HOST, "s1"), "a host whose BMC refuses stays Enrolling");
    advance(14 * 60);
    is_double(0, stuck("Enrolling"), 0, "not stuck before STUCK_STATE_TIMEOUT (15m)");
    unsigned connects = bmc.calls;
    advance(61);
    is_double(1, stuck("Enrolling"), 0, "stuck after 15m: detected and counted");
    ok(bmc.calls > connects, "the recovery retried the connection");
    is_double(1, recovery("Enrolling", "failed"), 0,
              "a retry that changed nothing is a failed attempt");
    is_double(0, recovery("Enrolling", "recovered"), 0, "never a recovery");
    char *x = ward_policy_explain(e, HOST, "s1", &err);
    contains(x, "\"next\":\"retry\"", "explain shows the next recovery step");
    free(x);
    advance(15 * 60);
    advance(15 * 60);
    is_double(3, recovery("Enrolling", "failed"), 0, "three failed attempts (MAX_RETRIES)");
    is_string("Enrolling", state(HOST, "s1"), "still Enrolling");
    advance(15 * 60);
    is_string("Error", state(HOST, "s1"), "then escalated to Error");
    is_double(1, recovery("Enrolling", "escalated"), 0, "counted as escalated");
    is_int(1, count(events.text.data, "stuck PhysicalHost/s1"),
           "one stuck event, not one per "
           "attempt");
    contains(sink.history.data,
             "PhysicalHost/s1 lifecycle Enrolling->Error recovery_exhausted "
             "ward:recovery",
             "the escalation went through the transition path");

    /* stuck Error: healthy and unclaimed -> Available */
    bmc.fail_connect = false;
    advance(15 * 60 + 1);
    is_string("Available", state(HOST, "s1"),
              "Error recovers to Available when healthy and "
              "unclaimed");
    is_double(1, recovery("Error", "recovered"), 0, "counted as recovered");
    contains(sink.history.data, "Error->Available stuck_recovery", "by the recovery step");

    /* stuck Error with connection info but an unhealthy BMC: retry Enrolling */
    put(HOST, "s2", "{}");
    ward_policy_transition(e, HOST, "s2", NULL, "Error", "api", "test", "t", &err);
    put(HOST, "s2", "{" BMC "}");
    bmc.fail_connect = true;
    advance(15 * 60 + 1);
    bmc.fail_connect = false;
    contains(sink.history.data, "PhysicalHost/s2 lifecycle Error->Enrolling stuck_recovery",
             "Error retries Enrolling when connection info is present");
    is_double(2, recovery("Error", "recovered"), 0, "that counts as a recovery");

    /* stuck Error without connection info: gives up after MAX_RETRIES, quietly */
    put(HOST, "s3", "{}");
    ward_policy_transition(e, HOST, "s3", NULL, "Error", "api", "test", "t", &err);
    double failed_before = recovery("Error", "failed");
    for (int i = 0; i < 6; i++) {
        advance(15 * 60 + 1);
    }
    is_double(failed_before + 3, recovery("Error", "failed"), 0, "three failed attempts in Error");
    is_double(1, recovery("Error", "exhausted"), 0, "then recovery gives up once");

    /* stuck Provisioning: re-check boot configuration, retry, then Error */
    put(HOST, "p1", "{" BMC "}");
    bmc.fail_boot = true;
    put(HOST, "p1", "{" BMC ",\"consumerRef\":\"c\",\"bootISOSource\":\"http://x/os.iso\"}");
    is_string("Provisioning", state(HOST, "p1"), "boot configuration fails: stays Provisioning");
    unsigned events_before = events.count;
    advance(15 * 60 + 1);
    is_double(1, recovery("Provisioning", "failed"), 0,
              "re-checking the boot configuration "
              "changed nothing");
    x = ward_policy_explain(e, HOST, "p1", &err);
    contains(x, "\"next\":\"retry\"", "the next rung is retry");
    free(x);
    advance(15 * 60 + 1);
    advance(15 * 60 + 1);
    is_double(3, recovery("Provisioning", "failed"), 0, "then retries");
    advance(15 * 60 + 1);
    is_string("Error", state(HOST, "p1"), "then Error");
    /* events while failing: stuck once, plus the escalation's transition and recovery */
    is_int(3, events.count - events_before, "failed attempts do not spam events");

    /* a retry that works is a recovery */
    put(HOST, "p2", "{" BMC "}");
    put(HOST, "p2", "{" BMC ",\"consumerRef\":\"c\",\"bootISOSource\":\"http://x/os.iso\"}");
    advance(15 * 60 + 1);
    bmc.fail_boot = false;
    advance(15 * 60 + 1);
    is_string("Provisioned", state(HOST, "p2"), "the retry rung provisions the host");
    is_double(1, recovery("Provisioning", "recovered"), 0, "counted as recovered");
    ward_policy_engine_destroy(e);

    /* a declared escalation ladder: retry -> BMC reset -> power cycle -> Error */
    o.max_retries = 5;
    e = ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL ||
        ward_policy_engine_load(e, WARD_SRCDIR "/tests/data/policies/ladder", &err) != 0) {
        bail("load ladder: %s", err.text);
    }
    put("Ladder", "l1", "{" BMC "}");
    is_string("Working", state("Ladder", "l1"), "the Ladder resource is stuck in Working");
    unsigned resets = bmc.resets;
    advance(10 * 60 + 1);
    is_int(resets, bmc.resets, "first rung: retry (no reset yet)");
    advance(10 * 60 + 1);
    is_int(resets + 1, bmc.resets, "second rung: BMC reset");
    snprintf(bmc.power, sizeof(bmc.power), "Off");
    advance(10 * 60 + 1);
    is_string("On", bmc.power, "third rung: power cycle");
    is_double(3, recovery_of("ward_ladder_recovery_attempts_total", "Working", "failed"), 0,
              "each rung that changed nothing failed (counted under the kind's own family)");
    advance(10 * 60 + 1);
    is_string("Error", state("Ladder", "l1"), "fourth rung: Error");
    is_double(1, recovery_of("ward_ladder_recovery_attempts_total", "Working", "escalated"), 0,
              "counted as escalated");
    put("Ladder", "l2", "{" BMC ",\"fixed\":true}");
    is_string("Ok", state("Ladder", "l2"), "the engine still serves the kind");

    /* a rung that transitions */
    put("Hop", "j1", "{}");
    advance(5 * 60 + 1);
    is_string("Retrying", state("Hop", "j1"), "a {transition = ...} rung moves a stuck resource");
    is_double(1, recovery_of("ward_hop_recovery_attempts_total", "Waiting", "recovered"), 0,
              "counted as recovered");
    ward_policy_engine_destroy(e);

    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    ev_loop_destroy(loop);
    return 0;
}
