/* SPDX-License-Identifier: Apache-2.0 */
/* Reload keeps the last good policy; in-flight runs finish on the policy they started with. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "config.h"
#include "policy.h"

#define SPDX "-- SPDX-License-Identifier: Apache-2.0\n"

static const char *v1 = SPDX "local M = {kind = 'Widget'}\n"
                             "M.machine = ward.machine {\n"
                             "    states = {'A', 'B'},\n"
                             "    transitions = {A = {'B'}},\n"
                             "    reconcile = {A = function(r)\n"
                             "        local bmc = ward.bmc(r)\n"
                             "        bmc:connect()\n"
                             "        r.status.by = 'v1'\n"
                             "        return ward.transition(r, 'B', 'v1')\n"
                             "    end},\n"
                             "}\n"
                             "return M\n";

static const char *v2 = SPDX "local M = {kind = 'Widget'}\n"
                             "M.machine = ward.machine {\n"
                             "    states = {'A', 'B', 'C'},\n"
                             "    transitions = {A = {'C'}, C = {'B'}},\n"
                             "}\n"
                             "return M\n";

static const char *syntax = SPDX "local M = {kind = 'Widget'\n"
                                 "M.machine = nil\n"
                                 "return M\n";

static const char *unknown = SPDX "local M = {kind = 'Widget'}\n"
                                  "M.machine = ward.machine {\n"
                                  "    states = {'A'},\n"
                                  "    transitions = {A = {'Z'}},\n"
                                  "}\n"
                                  "return M\n";

static const char *failing = SPDX "local M = {kind = 'Widget'}\n"
                                  "M.machine = ward.machine {\n"
                                  "    states = {'A', 'B'},\n"
                                  "    transitions = {A = {'B'}},\n"
                                  "}\n"
                                  "M.tests = {ward.test {name = 'never', resource = {state = 'A'},"
                                  " to = 'B', allowed = false}}\n"
                                  "return M\n";

static struct ward_error err;

static const char *line1(void)
{
    err.text[strcspn(err.text, "\n")] = '\0';
    return err.text;
}

int main(void)
{
    plan(21);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct fixture_sink sink;
    fixture_sink_init(&sink);
    struct fixture_events events = {0};
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, &events);
    const char *dir = test_tmpdir();
    fixture_write(dir, "widget.lua", v1);
    struct ward_policy_engine *e =
        ward_policy_engine_create(loop, &sink.sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, dir, &err) != 0) {
        bail("load: %s", err.text);
    }
    is_int(1, ward_policy_engine_generation(e), "generation 1 loaded");

    /* a reconcile starts on v1 and waits on the BMC */
    bmc.hang = true;
    ward_policy_resource_put(e, "Widget", "w1", "{\"bmc\":{}}", &err);
    ward_policy_resource_put(e, "Widget", "w2", "{\"bmc\":{}}", &err);
    fixture_settle(loop);
    is_int(2, ward_policy_engine_running(e), "two reconciles in flight on v1");

    /* bad reloads are refused and v1 stays */
    fixture_write(dir, "widget.lua", syntax);
    int rc = ward_policy_engine_reload(e, &err);
    ok(rc != 0 && strstr(err.text, "widget.lua:3:") != NULL, "a syntax error is refused: %s",
       line1());
    fixture_write(dir, "widget.lua", unknown);
    rc = ward_policy_engine_reload(e, &err);
    ok(rc != 0 && strstr(err.text, "unknown state 'Z'") != NULL,
       "an invalid machine is refused: %s", line1());
    fixture_write(dir, "widget.lua", failing);
    rc = ward_policy_engine_reload(e, &err);
    ok(rc != 0 && strstr(err.text, "self-check failed") != NULL,
       "a failing self-check is refused: %s", line1());
    is_int(1, ward_policy_engine_generation(e), "the last good policy stays in force");
    is_int(0, ward_policy_transition_check(e, "Widget", "w2", NULL, "B", &err),
           "v1's A -> B still applies");
    struct ward_metric *reloads = ward_metrics_counter(metrics, "ward_policy_reloads_total", "x",
                                                       (const char *[]){"outcome", NULL});
    is_double(3, ward_metric_value(reloads, (const char *[]){"failure"}), 0,
              "refusals are counted in ward_policy_reloads_total");
    contains(events.text.data, "policy -/-: ", "and reported as events");

    /* a good reload */
    fixture_write(dir, "widget.lua", v2);
    is_int(0, ward_policy_engine_reload(e, &err), "v2 loads");
    is_int(2, ward_policy_engine_generation(e), "generation 2");
    rc = ward_policy_transition_check(e, "Widget", "w2", NULL, "B", &err);
    ok(rc == -EPERM && strstr(err.text, "shortest path: A -> C -> B") != NULL,
       "v2's machine is in force for new transitions: %s", err.text);
    is_double(2, ward_metric_value(reloads, (const char *[]){"success"}), 0,
              "load and reload counted as successes");

    /* the in-flight reconcile finishes on v1 */
    bmc.hang = false;
    fakebmc_release(&bmc);
    fixture_settle(loop);
    is_string("B", ward_policy_resource_state(e, "Widget", "w1", NULL),
              "the reconcile that started on v1 finished on v1 (A -> B)");
    char *json = ward_policy_resource_json(e, "Widget", "w1");
    contains(json, "\"by\":\"v1\"", "running v1's code");
    free(json);
    contains(sink.history.data, "Widget/w1 state A->B v1", "committed through the same path");

    /* the daemon's hooks: reload from the new configuration's policy_dir, stop taking work */
    struct ward_config next = {.policy_dir = (char *)dir};
    fixture_write(dir, "widget.lua", v1);
    is_int(0, ward_policy_daemon_reload(NULL, &next, e, &err), "the SIGHUP hook reloads");
    is_int(3, ward_policy_engine_generation(e), "generation 3");
    is_double(2, ward_metric_value(reloads, (const char *[]){"success"}), 0,
              "without counting twice (the daemon counts SIGHUP reloads)");
    ward_policy_daemon_stop(NULL, e);
    ward_policy_resource_put(e, "Widget", "late", "{\"bmc\":{}}", &err);
    fixture_settle(loop);
    is_string("A", ward_policy_resource_state(e, "Widget", "late", NULL),
              "after the stop hook no new work starts");

    /* a directory that vanished is refused too */
    struct ward_policy_engine *e2 = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    rc = ward_policy_engine_load(e2, "/nonexistent/policies", &err);
    ok(rc != 0 && strstr(err.text, "/nonexistent/policies") != NULL,
       "a missing policy directory is a clear error: %s", err.text);
    ward_policy_engine_destroy(e2);

    ward_policy_engine_destroy(e);
    ward_metrics_destroy(metrics);
    ward_buf_free(&sink.history);
    ward_buf_free(&events.text);
    ev_loop_destroy(loop);
    return 0;
}
