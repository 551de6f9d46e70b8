/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End to end: the policy engine runs policies/physicalhost.lua against this plugin's BMC
 * driver and ward-bmcsim (one BMC of every flavour, HTTPS with the simulator's CA). Each
 * host is enrolled, claimed and provisioned (the simulator confirms it booted the ISO from
 * the virtual CD), released, and deprovisioned with its session ended; no BMC ever sees two
 * requests at once.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "../bmcsim/simclient.h"
#include "log.h"
#include "policy.h"
#include "redfish/driver.h"
#include "tap/basic.h"

#define NBMCS 5
#define ISO "http://10.9.8.7/images/boot.iso"

static struct ev_loop *loop;
static struct ward_policy_engine *engine;
static char names[NBMCS][32];

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    ward_policy_engine_tick(engine);
}

static void on_bound(struct ev_loop *l, ev_timer *w, int revents)
{
}

/* Run the loop until every host is in state (bounded); returns how many are. */
static int wait_all(const char *state, double bound)
{
    ev_timer t;
    ev_timer_init(&t, on_bound, bound, 0);
    ev_timer_start(loop, &t);
    int n = 0;
    for (;;) {
        n = 0;
        for (int i = 0; i < NBMCS; i++) {
            const char *st = ward_policy_resource_state(engine, "PhysicalHost", names[i], NULL);
            n += st != NULL && strcmp(st, state) == 0;
        }
        if (n == NBMCS || !ev_is_active(&t)) {
            break;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    return n;
}

static void show_states(void)
{
    for (int i = 0; i < NBMCS; i++) {
        char *j = ward_policy_resource_json(engine, "PhysicalHost", names[i]);
        diag("%s", j != NULL ? j : "(none)");
        free(j);
    }
}

static char *spec_for(struct sim *s, int i, bool claimed)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(s->fleet, "bmcs"), i);
    cJSON *spec = cJSON_CreateObject();
    cJSON *bmc = cJSON_AddObjectToObject(spec, "bmc");
    cJSON_AddStringToObject(bmc, "address",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")));
    cJSON_AddStringToObject(bmc, "caBundle", s->ca);
    cJSON *cred = cJSON_AddObjectToObject(bmc, "credentials");
    cJSON_AddStringToObject(cred, "username",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "username")));
    cJSON_AddStringToObject(cred, "passwordFile",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "password_file")));
    if (claimed) {
        cJSON_AddStringToObject(spec, "consumerRef", "cluster-a/machine-1");
        cJSON_AddStringToObject(spec, "bootISOSource", ISO);
    }
    char *text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    return text;
}

static const cJSON *system0(cJSON *report)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(report, "systems"), 0);
}

int main(void)
{
    plan(5 + NBMCS * 4);
    loop = ev_default_loop(0);
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/log", test_tmpdir());
    FILE *logf = fopen(logpath, "w+");
    ward_log_set_stream(logf);

    struct sim s;
    sim_start(&s, (const char *const[]){"-n", "5", "--flavour", "all", "--power-delay-ms", "100",
                                        "--poweron-block-ms", "300", "--task-ms", "100",
                                        "--latency-ms", "2", NULL});
    struct ward_error err = {0};
    char shipped[600];
    snprintf(shipped, sizeof(shipped), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    struct ward_rf_quirks *quirks = ward_rf_quirks_load(shipped, &err);
    struct ward_rf_client_opts co;
    ward_rf_client_opts_default(&co);
    co.timeout = 10;
    co.poll_interval = 0.05;
    co.backoff = 0.05;
    co.backoff_max = 0.5;
    co.rate_max = 1000;
    co.max_ops = 4;
    co.max_reads = 3;
    co.power_timeout = 20;
    co.quirks = quirks;
    struct ward_rf_client *client = ward_rf_client_create(loop, &co, &err);
    struct ward_rf_driver *driver =
        ward_rf_driver_create(client, &(struct ward_rf_driver_opts){.power_sync_interval = 0});
    struct ward_bmc_driver drv = {.self = driver, .open = ward_rf_driver_open};

    struct ward_policy_options po;
    ward_policy_options_init(&po, &err);
    po.stuck_interval = 0;
    po.stuck_timeout = 1;
    po.bmc_driver = &drv;
    engine = ward_policy_engine_create(loop, NULL, NULL, NULL, &po, &err);
    ok(engine != NULL, "engine created (%s)", err.text);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/policies", getenv("WARD_SRCDIR"));
    is_int(0, ward_policy_engine_load(engine, dir, &err), "physicalhost.lua loads (%s)", err.text);
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.01, 0.01);
    ev_timer_start(loop, &tick);

    for (int i = 0; i < NBMCS; i++) {
        snprintf(names[i], sizeof(names[i]), "host-%d", i);
        char *spec = spec_for(&s, i, false);
        ward_policy_resource_put(engine, "PhysicalHost", names[i], spec, &err);
        free(spec);
    }
    int n = wait_all("Available", 60);
    is_int(NBMCS, n, "every flavour enrolled to Available");
    if (n != NBMCS) {
        show_states();
    }

    for (int i = 0; i < NBMCS; i++) {
        char *spec = spec_for(&s, i, true);
        ward_policy_resource_put(engine, "PhysicalHost", names[i], spec, &err);
        free(spec);
    }
    n = wait_all("Provisioned", 60);
    is_int(NBMCS, n, "every flavour claimed and provisioned");
    if (n != NBMCS) {
        show_states();
    }
    for (int i = 0; i < NBMCS; i++) {
        cJSON *rep = sim_control_bmc(&s, i);
        const cJSON *sys = system0(rep);
        const char *flavour = cJSON_GetStringValue(cJSON_GetObjectItem(rep, "flavour"));
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(sys, "last_boot_source"));
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(sys, "last_boot_image"));
        ok(src != NULL && strcmp(src, "Cd") == 0 && img != NULL && strcmp(img, ISO) == 0,
           "%s booted the ISO from the virtual CD (%s, %s)", flavour, src ? src : "-",
           img ? img : "-");
        cJSON_Delete(rep);
    }

    /* a provisioned host that goes to Error (any state may) and is then released: the
       recovery that takes it back to Available cleans it first */
    {
        int rc = ward_policy_transition(engine, "PhysicalHost", names[0], NULL, "Error", "api",
                                        "test", "api:test", &err);
        char *spec = spec_for(&s, 0, false);
        ward_policy_resource_put(engine, "PhysicalHost", names[0], spec, &err);
        free(spec);
        ev_timer t;
        ev_timer_init(&t, on_bound, 20, 0);
        ev_timer_start(loop, &t);
        const char *st = NULL;
        while (ev_is_active(&t)) {
            st = ward_policy_resource_state(engine, "PhysicalHost", names[0], NULL);
            if (st != NULL && strcmp(st, "Available") == 0) {
                break;
            }
            ev_run(loop, EVRUN_ONCE);
        }
        ev_timer_stop(loop, &t);
        cJSON *rep = sim_control_bmc(&s, 0);
        const cJSON *m;
        bool inserted = false;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(system0(rep), "media"))
        {
            inserted = inserted || cJSON_IsTrue(cJSON_GetObjectItem(m, "inserted"));
        }
        const char *power = cJSON_GetStringValue(cJSON_GetObjectItem(system0(rep), "power"));
        const char *enabled = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(system0(rep), "boot"), "enabled"));
        ok(rc == 0 && st != NULL && strcmp(st, "Available") == 0 && !inserted && power != NULL &&
               strcmp(power, "Off") == 0 && enabled != NULL && strcmp(enabled, "Once") != 0,
           "Error, released -> %s: powered off, ISO ejected, no boot override (inserted %d, "
           "power %s, boot %s)",
           st != NULL ? st : "-", inserted, power != NULL ? power : "?",
           enabled != NULL ? enabled : "?");
        cJSON_Delete(rep);
    }
    for (int i = 0; i < NBMCS; i++) {
        char *spec = spec_for(&s, i, false);
        ward_policy_resource_put(engine, "PhysicalHost", names[i], spec, &err);
        free(spec);
    }
    n = wait_all("Available", 60);
    is_int(NBMCS, n, "every host released back to Available");
    for (int i = 0; i < NBMCS; i++) {
        cJSON *rep = sim_control_bmc(&s, i);
        const char *flavour = cJSON_GetStringValue(cJSON_GetObjectItem(rep, "flavour"));
        const cJSON *m;
        bool inserted = false;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(system0(rep), "media"))
        {
            inserted = inserted || cJSON_IsTrue(cJSON_GetObjectItem(m, "inserted"));
        }
        const char *enabled = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(system0(rep), "boot"), "enabled"));
        ok(!inserted && enabled != NULL && strcmp(enabled, "Once") != 0,
           "%s: media ejected and no boot override left (%s)", flavour, enabled ? enabled : "-");
        cJSON_Delete(rep);
    }

    /* deprovision: the final state; the policy powers the host off and ends the session */
    for (int i = 0; i < NBMCS; i++) {
        int rc = ward_policy_transition(engine, "PhysicalHost", names[i], NULL, "Deprovisioning",
                                        "api", "retired", "api:test", &err);
        cJSON *rep = NULL;
        double sessions = -1;
        /* the DELETE is on the loop: wait for it with a bound */
        ev_timer t;
        ev_timer_init(&t, on_bound, 10, 0);
        ev_timer_start(loop, &t);
        while (ev_is_active(&t)) {
            rep = sim_control_bmc(&s, i);
            sessions = cJSON_GetNumberValue(cJSON_GetObjectItem(rep, "active_sessions"));
            cJSON_Delete(rep);
            if (sessions == 0) {
                break;
            }
            ev_run(loop, EVRUN_ONCE);
        }
        ev_timer_stop(loop, &t);
        ok(rc == 0 && sessions == 0, "%s deprovisioned, its session ended (%s)", names[i],
           err.text);
    }

    /* a deprovisioned host's session stays ended: the power sync does not log in again */
    ward_rf_driver_sync_now(driver);
    ev_run(loop, EVRUN_NOWAIT); /* the client starts what the sync queued */
    {
        ev_timer t;
        ev_timer_init(&t, on_bound, 10, 0);
        ev_timer_start(loop, &t);
        while (ev_is_active(&t) && ward_rf_client_running(client) > 0) {
            ev_run(loop, EVRUN_ONCE);
        }
        ev_timer_stop(loop, &t);
    }
    int reopened = 0;
    for (int i = 0; i < NBMCS; i++) {
        cJSON *rep = sim_control_bmc(&s, i);
        reopened += cJSON_GetNumberValue(cJSON_GetObjectItem(rep, "active_sessions")) > 0;
        cJSON_Delete(rep);
    }
    is_int(0, reopened, "no session reopened on a deprovisioned host by the power sync");
    int over = 0;
    for (int i = 0; i < NBMCS; i++) {
        over += sim_counter(&s, i, "max_concurrent") > 1;
    }
    is_int(0, over, "no BMC saw more than 1 request at once");
    ok(ward_rf_client_max_running_class(client, WARD_RF_CHANGE) <= 4 &&
           ward_rf_client_max_running_class(client, WARD_RF_READ) <= 3,
       "the global caps held: %u changes (cap 4), %u reads (cap 3)",
       ward_rf_client_max_running_class(client, WARD_RF_CHANGE),
       ward_rf_client_max_running_class(client, WARD_RF_READ));
    ev_timer_stop(loop, &tick);
    ward_policy_engine_destroy(engine);
    ward_rf_driver_destroy(driver);
    ward_rf_client_destroy(client);
    ward_rf_quirks_free(quirks);
    is_int(0, sim_stop(&s), "the simulator stops cleanly");
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
