/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine on the real store: state, status and history commit together,
 * the time a state was entered is the transition's, a restart restores where
 * it was (and stuck detection counts from the recorded time), a status a run
 * changed without a transition, or after one, is written too, and a version
 * conflict refuses the transition.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"

#define BMC "\"bmc\":{\"address\":\"https://10.0.0.5\"}"

static struct ev_loop *loop;
static struct ward_error err;

/* An engine on the store with the policies of dir (the shipped ones when NULL). */
static struct ward_policy_engine *engine(struct ward_store *st, struct fakebmc *bmc,
                                         struct ward_metrics *metrics, const char *dir)
{
    static struct ward_policy_sink sink;
    ward_policy_sink_store(&sink, st);
    struct ward_policy_options o;
    fixture_options(&o, bmc, NULL);
    struct ward_policy_engine *e = ward_policy_engine_create(loop, &sink, NULL, metrics, &o, &err);
    if (e == NULL ||
        ward_policy_engine_load(e, dir != NULL ? dir : WARD_SRCDIR "/policies", &err) != 0) {
        bail("engine: %s", err.text);
    }
    return e;
}

/* Write dir/widget.lua: a Widget machine A -> B whose reconcile in A is body (Lua
 * statements on the resource r). */
static void write_widget(const char *dir, const char *body)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "-- SPDX-License-Identifier: Apache-2.0\n"
             "local M = {kind = 'Widget'}\n"
             "M.machine = ward.machine {\n"
             "    states = {'A', 'B'},\n"
             "    transitions = {A = {'B'}},\n"
             "    reconcile = {A = function(r)\n"
             "%s"
             "    end},\n"
             "}\n"
             "return M\n",
             body);
    fixture_write(dir, "widget.lua", text);
}

/* The stored status of a resource contains needle. */
static void stored_status_has(struct ward_store *st, const char *kind, const char *name,
                              const char *needle, const char *what)
{
    struct ward_resource *r = NULL;
    ward_store_get(st, kind, WARD_POLICY_NAMESPACE, name, &r, &err);
    contains(r != NULL ? r->status : NULL, needle, "%s", what);
    ward_resource_free(r);
}

int main(void)
{
    plan(36);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    char path[4096];
    snprintf(path, sizeof(path), "%s/ward.db", test_tmpdir());
    struct ward_store_options so = {.path = path, .now = fixture_clock, .metrics = metrics};
    struct ward_store *st = ward_store_open(loop, &so, &err);
    if (st == NULL) {
        bail("store: %s", err.text);
    }
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_engine *e = engine(st, &bmc, metrics, NULL);
    char *json = NULL;

    fixture_now = 2000;
    is_int(0, ward_policy_resource_put(e, "PhysicalHost", "h1", "{" BMC "}", &err),
           "a host is created in the store");
    fixture_settle(loop);
    is_string("Available", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "and enrolled");
    struct ward_resource *r = NULL;
    is_int(0, ward_store_get(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", &r, &err),
           "the store has it");
    contains(r->status, "\"lifecycle\":\"Available\"", "with its state");
    contains(r->status, "\"serial\":\"SN-h1\"", "and the status written with the transition");
    long long version = r->version;
    ward_resource_free(r);
    struct ward_history *h = NULL;
    size_t n = 0;
    ward_store_history(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", 0, 0, &h, &n, &err);
    ok(n == 2 && strcmp(h[0].to, "Enrolling") == 0 && strcmp(h[1].from, "Enrolling") == 0 &&
           strcmp(h[1].to, "Available") == 0 && strcmp(h[1].trigger, "enrolled") == 0 &&
           strcmp(h[1].actor, "policy:PhysicalHost") == 0,
       "two history records: None -> Enrolling -> Available, by the policy");
    ward_history_free(h, n);

    /* transitions asked for by many reconciles share group commits */
    struct ward_metric *commits =
        ward_metrics_counter(metrics, "ward_store_commits_total", "x", NULL);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        ward_policy_resource_put(e, "PhysicalHost", name, "{" BMC "}", &err);
    }
    double before = ward_metric_value(commits, NULL);
    fixture_settle(loop);
    double used = ward_metric_value(commits, NULL) - before;
    bool all = true;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        all = all &&
              strcmp(ward_policy_resource_state(e, "PhysicalHost", name, NULL), "Available") == 0;
        ward_store_history(st, "PhysicalHost", WARD_POLICY_NAMESPACE, name, 0, 0, &h, &n, &err);
        all = all && n == 2;
        ward_history_free(h, n);
    }
    ok(all, "six hosts enrolled, each with its two history records");
    ok(used >= 1 && used < 12, "their 12 transitions took %.0f store commits (group commit)", used);

    /* observations outside a run: their status writes are queued into one group commit */
    before = ward_metric_value(commits, NULL);
    int observed = 0;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        observed += ward_policy_observe("PhysicalHost", name, "power", "On");
    }
    is_int(6, observed, "six hosts observe their power");
    is_int(0, (int)(ward_metric_value(commits, NULL) - before), "nothing is written at once");
    ev_run(loop, EVRUN_NOWAIT);
    is_int(1, (int)(ward_metric_value(commits, NULL) - before),
           "the six status writes share the loop iteration's commit");
    bool stored = true;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        r = NULL;
        ward_store_get(st, "PhysicalHost", WARD_POLICY_NAMESPACE, name, &r, &err);
        stored = stored && r != NULL && strstr(r->status, "\"observed\":{\"power\":\"On\"}");
        ward_resource_free(r);
    }
    ok(stored, "each one's observation is in the store");
    fixture_settle(loop);

    /* a queued status write that meets another writer's version re-reads and writes again */
    struct ward_store_options so2 = {.path = path};
    struct ward_store *other = ward_store_open(NULL, &so2, &err);
    ok(ward_policy_observe("PhysicalHost", "h1", "power", "Off") == 1, "h1 observes Off");
    r = NULL;
    ward_store_get(other, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", &r, &err);
    struct ward_resource spec = {.kind = "PhysicalHost",
                                 .ns = WARD_POLICY_NAMESPACE,
                                 .name = "h1",
                                 .spec = "{" BMC ",\"note\":\"other\"}"};
    is_int(0, other != NULL && r != NULL ? ward_store_update(other, &spec, r->version, &err) : -1,
           "another writer changes h1 first (%s)", err.text);
    ward_resource_free(r);
    ward_store_close(other);
    fixture_settle(loop);
    r = NULL;
    ward_store_get(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", &r, &err);
    ok(r != NULL && strstr(r->status, "\"power\":\"Off\"") != NULL &&
           strstr(r->spec, "\"note\":\"other\"") != NULL,
       "both the observation and the other writer's change are in the store");
    json = ward_policy_resource_json(e, "PhysicalHost", "h1");
    char want[64];
    snprintf(want, sizeof(want), "\"version\":%lld", r != NULL ? (long long)r->version : -1LL);
    contains(json, want, "the engine has the store's version");
    free(json);
    ward_resource_free(r);

    /* a host that stays Enrolling, then a restart */
    bmc.fail_connect = true;
    fixture_now = 3000;
    ward_policy_resource_put(e, "PhysicalHost", "h2", "{" BMC "}", &err);
    fixture_settle(loop);
    is_string("Enrolling", ward_policy_resource_state(e, "PhysicalHost", "h2", NULL),
              "h2 is stuck enrolling");
    /* its failed runs changed only the status (status.error): that is written too */
    stored_status_has(st, "PhysicalHost", "h2", "\"error\":\"connect: ",
                      "a status changed without a transition is in the store");
    ward_policy_engine_destroy(e);

    fixture_now = 3000 + 16 * 60;
    e = engine(st, &bmc, metrics, NULL);
    is_int(0, ward_policy_engine_restore(e, st, &err), "a new engine restores from the store");
    is_string("Available", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "h1 is still Available");
    json = ward_policy_resource_json(e, "PhysicalHost", "h2");
    contains(json, "\"entered_at\":3000", "h2 entered Enrolling when the transition said");
    contains(json, "\"error\":\"connect: ", "and its failure reason survived the restart");
    free(json);
    ward_policy_engine_tick(e);
    fixture_settle(loop);
    struct ward_metric *stuck = ward_metrics_counter(
        metrics, "ward_physicalhost_stuck_states_total", "x", (const char *[]){"state", NULL});
    is_double(1, ward_metric_value(stuck, (const char *[]){"Enrolling"}), 0,
              "stuck detection counts from the recorded time, across the restart");

    /* somebody else writes first: the version check refuses */
    r = NULL;
    ward_store_get(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", &r, &err);
    ok(r != NULL && r->version >= version, "h1 version %lld",
       r != NULL ? (long long)r->version : 0);
    free(r->spec);
    r->spec = strdup("{\"bmc\":{\"address\":\"https://10.0.0.6\"}}");
    is_int(0, ward_store_update(st, r, r->version, &err), "another writer updates h1");
    ward_resource_free(r);
    int rc = ward_policy_transition(e, "PhysicalHost", "h1", NULL, "Error", "api", NULL, "t", &err);
    is_int(-ESTALE, rc, "the engine's transition on a stale version is refused");
    is_string("Available", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "and the engine's state is unchanged");
    ward_store_history(st, "PhysicalHost", WARD_POLICY_NAMESPACE, "h1", 0, 0, &h, &n, &err);
    is_int(2, (long long)n, "and no history record was written");
    ward_history_free(h, n);
    json = ward_policy_resource_json(e, "PhysicalHost", "h1");
    contains(json, "10.0.0.6", "the engine re-read the resource after the conflict");
    free(json);
    is_int(0,
           ward_policy_transition(e, "PhysicalHost", "h1", NULL, "Error", "api", NULL, "t", &err),
           "so the next attempt succeeds");

    ward_policy_engine_destroy(e);

    /* a status a run changes after its transition is written too */
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/after", test_tmpdir());
    if (mkdir(dir, 0755) != 0) {
        sysbail("mkdir %s", dir);
    }
    write_widget(dir, "        r.status.before = 'set'\n"
                      "        local ok, why = ward.transition(r, 'B', 'moved')\n"
                      "        if not ok then error(why) end\n"
                      "        r.status.after = 'set'\n");
    e = engine(st, &bmc, metrics, dir);
    is_int(0, ward_policy_resource_put(e, "Widget", "w1", "{}", &err), "a widget is created");
    fixture_settle(loop);
    is_string("B", ward_policy_resource_state(e, "Widget", "w1", NULL), "it moved to B");
    stored_status_has(st, "Widget", "w1", "\"after\":\"set\"",
                      "the status it set after the transition is in the store");
    ward_policy_engine_destroy(e);

    /* a run that another run's transition overtook does not write its status over it */
    write_widget(dir, "        if r.name == 'slow' then\n"
                      "            r.status.mine = 'stale'\n"
                      "            ward.bmc(r):connect()\n"
                      "            return\n"
                      "        end\n"
                      "        local ok, why = ward.transition({name = 'slow', status = {by = r.name}},\n"
                      "                                        'B', 'pushed')\n"
                      "        if not ok then error(why) end\n");
    e = engine(st, &bmc, metrics, dir);
    bmc.hang = true;
    ward_policy_resource_put(e, "Widget", "slow", "{\"bmc\":{}}", &err);
    fixture_settle(loop);
    is_int(1, ward_policy_engine_running(e), "the slow widget's run waits on its BMC");
    ward_policy_resource_put(e, "Widget", "pusher", "{}", &err);
    fixture_settle(loop);
    is_string("B", ward_policy_resource_state(e, "Widget", "slow", NULL),
              "another widget's run moved it meanwhile");
    bmc.hang = false;
    fakebmc_release(&bmc);
    fixture_settle(loop);
    stored_status_has(st, "Widget", "slow", "\"by\":\"pusher\"",
                      "the slow run's end left the status that transition committed");
    ward_policy_engine_destroy(e);

    ward_store_close(st);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    return 0;
}
