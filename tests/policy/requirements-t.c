/* SPDX-License-Identifier: Apache-2.0 */
/* Each PhysicalHost requirement refuses with its reason, then allows once satisfied. */
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
static struct ward_error err;

static int go(const char *to)
{
    memset(&err, 0, sizeof(err));
    return ward_policy_transition(e, "PhysicalHost", "h1", NULL, to, "api", "test", "tester", &err);
}

static void spec(const char *json)
{
    if (ward_policy_resource_put(e, "PhysicalHost", "h1", json, &err) != 0) {
        bail("spec: %s", err.text);
    }
}

static void status(const char *json)
{
    if (ward_policy_resource_set_status(e, "PhysicalHost", "h1", json, &err) != 0) {
        bail("status: %s", err.text);
    }
}

static void refused(const char *to, const char *reason)
{
    int rc = go(to);
    ok(rc == -EPERM && strstr(err.text, reason) != NULL, "-> %s refused: %s (%s)", to, reason,
       err.text);
}

static void allowed(const char *to)
{
    int rc = go(to);
    ok(rc == 0 && strcmp(ward_policy_resource_state(e, "PhysicalHost", "h1", NULL), to) == 0,
       "-> %s allowed %s", to, err.text);
}

int main(void)
{
    plan(33);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fixture_events events = {0};
    struct ward_policy_options o;
    fixture_options(&o, NULL, &events);
    e = ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    fixture_now = 1000;
    spec("{}");
    fixture_now = 1060;
    allowed("Enrolling");
    contains(sink.history.data, "PhysicalHost/h1 lifecycle None->Enrolling api tester v=1 at=1060",
             "state and history committed together through the sink");
    char *json = ward_policy_resource_json(e, "PhysicalHost", "h1");
    contains(json, "\"entered_at\":1060", "the time the state was entered is the transition's");
    free(json);

    /* Enrolling -> Available: Redfish connection and hardware details */
    refused("Available", "no successful Redfish connection yet");
    status("{\"redfish\":{\"connected\":true}}");
    refused("Available", "hardware details have not been retrieved");
    status("{\"redfish\":{\"connected\":true},\"hardware\":{\"serial\":\"SN1\"}}");
    allowed("Available");

    /* Available -> Claimed: consumerRef, not in error */
    char *x = ward_policy_explain(e, "PhysicalHost", "h1", &err);
    contains(x,
             "{\"to\":\"Claimed\",\"allowed_now\":false,\"guarded\":true,\"reason\":"
             "\"PhysicalHost/h1: guard Available -> Claimed refused: consumerRef is not set\"}",
             "explain shows what the guard answers now, without changing anything");
    is_string("Available", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "explain changed nothing");
    free(x);
    refused("Claimed", "consumerRef is not set");
    spec("{\"consumerRef\":\"c1\"}");
    status("{\"error\":\"fan failure\"}");
    refused("Claimed", "the host is in error: fan failure");
    status("{}");
    allowed("Claimed");

    /* Claimed -> Provisioning: consumerRef and bootISOSource */
    refused("Provisioning", "bootISOSource is not set");
    spec("{\"bootISOSource\":\"http://x/os.iso\"}");
    refused("Provisioning", "consumerRef is not set");
    spec("{\"consumerRef\":\"c1\",\"bootISOSource\":\"http://x/os.iso\"}");
    allowed("Provisioning");

    /* Provisioning -> Provisioned: boot configured and power on */
    refused("Provisioned", "boot configuration is not done");
    status("{\"boot\":{\"configured\":true},\"power\":\"Off\"}");
    refused("Provisioned", "power is not on");
    status("{\"boot\":{\"configured\":true},\"power\":\"On\"}");
    allowed("Provisioned");

    /* consistency: consumerRef exactly in Claimed/Provisioning/Provisioned */
    refused("Available", "consistency rule consumer_ref: Available must not have consumerRef");
    spec("{\"bootISOSource\":\"http://x/os.iso\"}");
    allowed("Available");
    refused("Claimed", "consumerRef is not set");

    /* any state -> Error; Error -> Enrolling needs connection info */
    allowed("Error");
    refused("Enrolling", "no Redfish connection info");
    spec("{\"bmc\":{\"address\":\"https://10.0.0.5\"}}");
    allowed("Enrolling");

    /* Error -> Available: no claim and a healthy connection */
    allowed("Error");
    spec("{\"bmc\":{\"address\":\"https://10.0.0.5\"},\"consumerRef\":\"c9\"}");
    status("{\"redfish\":{\"connected\":false}}");
    refused("Available", "the host is claimed");
    spec("{\"bmc\":{\"address\":\"https://10.0.0.5\"}}");
    refused("Available", "the Redfish connection is not healthy");
    status("{\"redfish\":{\"connected\":true}}");
    allowed("Available");

    /* a commit the store refuses changes nothing */
    sink.fail = true;
    is_int(-ESTALE, go("Error"), "a version conflict in the store is returned");
    is_string("Available", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "and the state is unchanged");
    sink.fail = false;

    /* counted, logged, evented */
    struct ward_metric *t =
        ward_metrics_counter(metrics, "ward_physicalhost_state_transitions_total", "x",
                             (const char *[]){"from", "to", "reason", NULL});
    is_double(1, ward_metric_value(t, (const char *[]){"None", "Enrolling", "api"}), 0,
              "transitions are counted by from, to and trigger");
    struct ward_metric *h = ward_metrics_histogram(
        metrics, "ward_physicalhost_state_duration_seconds", "x", (const char *[]){"state", NULL},
        (const double[]){1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400}, 10);
    is_double(1, ward_metric_value(h, (const char *[]){"None"}), 0,
              "the time spent in None was observed once");
    contains(events.text.data, "transition PhysicalHost/h1: None -> Enrolling (api)",
             "an event per transition");
    is_int(10, sink.commits, "one commit per allowed transition");

    ward_policy_engine_destroy(e);
    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    ev_loop_destroy(loop);
    return 0;
}
