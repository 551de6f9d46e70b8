/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every fault of ward-bmcsim through the whole agent path: the policy engine on the store
 * runs policies/physicalhost.lua against this plugin's driver, over HTTPS with the
 * simulator's CA. Per fault, a host on a faulted BMC either reaches Error with a reason
 * naming the fault (read back from the store's history of the Error transition) or
 * recovers; meanwhile a healthy host is enrolled, and no BMC ever sees two requests at
 * once. Then: every faulted host recovers once its fault clears; a power change made
 * behind ward's back reaches the policy (status.observed.power, one aggregated
 * PowerMismatch event); a host deleted from the store has its BMC session ended, and one
 * deleted while its request hangs has its run cancelled.
 *
 * Real time with short timeouts and bounded waits; the simulator's clock is advanced for
 * power changes. Never sleeps.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "../bmcsim/simclient.h"
#include "api.h"
#include "events.h"
#include "log.h"
#include "policy.h"
#include "redfish/driver.h"
#include "store.h"
#include "tap/basic.h"

#define KIND "PhysicalHost"
#define ISO "http://10.9.8.7/images/boot.iso"

/* One BMC per case; the host on BMC i is host-i. */
enum {
    HEALTHY,   /* enrolled while every other BMC misbehaves */
    ERR_ALL,   /* every answer 500 */
    HANG,      /* no answer past the client timeout */
    RESET,     /* connection reset */
    MALFORMED, /* 200 with half a JSON document */
    TRUNCATED, /* Content-Length of the whole, half sent */
    SLOW_DRIP, /* 16 bytes every 50 ms: past the timeout */
    CERT_CA,   /* signed by a CA ward does not trust */
    CERT_EXPIRED,
    CERT_NAME, /* right CA, another host's name */
    FLAKY,     /* 30 % of answers 500: retries get through */
    EXPIRE,    /* sessions dropped between enrollment and provisioning */
    PROV_5XX,  /* enrolled, then every answer 500 while provisioning */
    BUSY,      /* deleted while its request hangs on the BMC */
    NBMCS,
};

static const struct {
    const char *fault;         /* control API keys */
    const char *want1, *want2; /* the Error reason names the fault with one of these */
} hard[NBMCS] = {
    [ERR_ALL] = {"\"error_rate\":1", "HTTP 500", NULL},
    [HANG] = {"\"hang\":true", "timed out", NULL},
    [RESET] = {"\"reset\":true", "connection reset", NULL},
    [MALFORMED] = {"\"malformed\":true", "malformed JSON", NULL},
    [TRUNCATED] = {"\"truncated\":true", "truncated", "connection reset"},
    [SLOW_DRIP] = {"\"slow_drip\":true", "timed out", NULL},
    [CERT_CA] = {"\"wrong_cert\":\"ca\"", "certificate verify failed", NULL},
    [CERT_EXPIRED] = {"\"wrong_cert\":\"expired\"", "expired", NULL},
    [CERT_NAME] = {"\"wrong_cert\":\"name\"", "certificate verify failed", NULL},
};

static struct ev_loop *loop;
static struct ward_policy_engine *engine;
static struct ward_store *store;
static struct ward_events *events;
static char names[NBMCS][32];
static struct sim s;
static struct ward_rf_driver *driver;

/* what the engine reported, for the assertions */
static int mismatch_events;
static char mismatch_message[256];
static int unreachable_events, reachable_events;
static char unreachable_message[512];

static void on_event(void *arg, const struct ward_policy_event *ev)
{
    ward_api_policy_event(events, ev);
    if (ev->reason != NULL && strcmp(ev->reason, "PowerMismatch") == 0) {
        mismatch_events++;
        snprintf(mismatch_message, sizeof(mismatch_message), "%s", ev->message);
    }
    if (ev->reason != NULL && strcmp(ev->reason, "BMCUnreachable") == 0) {
        unreachable_events++;
        snprintf(unreachable_message, sizeof(unreachable_message), "%s", ev->message);
    }
    if (ev->reason != NULL && strcmp(ev->reason, "BMCReachable") == 0) {
        reachable_events++;
    }
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    ward_policy_engine_tick(engine);
}

static void on_bound(struct ev_loop *l, ev_timer *w, int revents)
{
}

static bool in_state(int i, const char *state)
{
    const char *st = ward_policy_resource_state(engine, KIND, names[i], NULL);
    return st != NULL && strcmp(st, state) == 0;
}

/* The reason of the host's latest transition to Error in the store's history, or NULL. */
static char *error_reason(int i)
{
    struct ward_history *h = NULL;
    size_t n = 0;
    struct ward_error err = {0};
    char *reason = NULL;
    if (ward_store_history(store, KIND, WARD_POLICY_NAMESPACE, names[i], 0, 0, &h, &n, &err) == 0) {
        for (size_t k = 0; k < n; k++) {
            if (strcmp(h[k].to, "Error") == 0 && h[k].reason != NULL) {
                free(reason);
                reason = strdup(h[k].reason);
            }
        }
        ward_history_free(h, n);
    }
    return reason;
}

/* Run the loop until pred(i) holds for every i in set (bounded); how many hold. */
static int wait_for(const bool *set, bool (*pred)(int i), double bound)
{
    ev_timer t;
    ev_timer_init(&t, on_bound, bound, 0);
    ev_timer_start(loop, &t);
    int n, want;
    for (;;) {
        n = want = 0;
        for (int i = 0; i < NBMCS; i++) {
            if (set[i]) {
                want++;
                n += pred(i);
            }
        }
        if (n == want || !ev_is_active(&t)) {
            break;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    return n;
}

static bool is_available(int i)
{
    return in_state(i, "Available");
}

static bool is_provisioned(int i)
{
    return in_state(i, "Provisioned");
}

static bool has_error_record(int i)
{
    char *r = error_reason(i);
    free(r);
    return r != NULL;
}

static int power_host; /* the host the power checks look at */

static bool mismatch_seen(int i)
{
    return mismatch_events > 0;
}

static cJSON *stored_status(int i);

/* The store has the power mismatch the policy noted (written when its run ends). */
static bool mismatch_stored(int i)
{
    cJSON *st = stored_status(i);
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(st, "powerMismatch");
    bool yes = cJSON_IsObject(pm);
    cJSON_Delete(st);
    return yes;
}

/* The stored status.redfish.connected of host i is false (want_down) or true. */
static bool want_down;

static bool bmc_noted(int i)
{
    cJSON *st = stored_status(i);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(st, "redfish"), "connected");
    bool yes = cJSON_IsBool(c) && cJSON_IsTrue(c) != want_down;
    cJSON_Delete(st);
    return yes;
}

/* Power syncs, with host i's reconcile asked for each time, until done(i) holds (bounded);
 * a sync of a host starts only once its previous one ended, so this waits on the syncs
 * themselves. */
static bool sync_until(int i, bool (*done)(int i), double bound)
{
    ev_timer t;
    ev_timer_init(&t, on_bound, bound, 0);
    ev_timer_start(loop, &t);
    while (ev_is_active(&t) && !done(i)) {
        ward_rf_driver_sync_now(driver);
        ward_policy_enqueue(engine, KIND, names[i]);
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    return done(i);
}

static double asked; /* the BMC's request count when a wait began */

static bool asked_thrice(int i)
{
    return sim_counter(&s, i, "requests") >= asked + 3;
}

static bool driver_knows(int i)
{
    return ward_rf_driver_bmc(driver, names[i]) != NULL;
}

static char first_reason[512]; /* status.observed.bmc when a wait began */

/* The stored status.redfish.error is a timeout, and not first_reason. */
static bool reason_renewed(int i)
{
    cJSON *st = stored_status(i);
    const char *e = json_str(st, "redfish/error");
    bool yes = e != NULL && strcmp(e, first_reason) != 0 && strstr(e, "timed out") != NULL;
    cJSON_Delete(st);
    return yes;
}

static int removed_host;

static bool session_gone(int i)
{
    return sim_counter(&s, removed_host, "active_sessions") == 0;
}

static bool request_held(int i)
{
    return sim_counter(&s, i, "active_requests") == 1;
}

static bool forgotten(int i)
{
    return ward_policy_resource_state(engine, KIND, names[i], NULL) == NULL &&
           ward_rf_driver_bmc(driver, names[i]) == NULL;
}

static char *spec_for(int i, bool claimed)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(s.fleet, "bmcs"), i);
    cJSON *spec = cJSON_CreateObject();
    cJSON *bmc = cJSON_AddObjectToObject(spec, "bmc");
    cJSON_AddStringToObject(bmc, "address",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")));
    cJSON_AddStringToObject(bmc, "caBundle", s.ca);
    cJSON *cred = cJSON_AddObjectToObject(bmc, "credentials");
    cJSON_AddStringToObject(cred, "username",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "username")));
    cJSON_AddStringToObject(cred, "passwordFile",
                            cJSON_GetStringValue(cJSON_GetObjectItem(e, "password_file")));
    if (claimed) {
        cJSON_AddStringToObject(spec, "bootISOSource", ISO);
    }
    char *text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    return text;
}

static void put(int i, bool claimed)
{
    struct ward_error err = {0};
    char *spec = spec_for(i, claimed);
    if (ward_policy_resource_put(engine, KIND, names[i], spec, &err) != 0) {
        diag("put %s: %s", names[i], err.text);
    }
    free(spec);
}

static int only(void *arg, const struct ward_resource *r, struct ward_error *err)
{
    return strcmp(r->name, arg) == 0;
}

/* Claim through the store, as POST /api/v1/claims does; the engine follows its feed. */
static void claim(int i)
{
    struct ward_error err = {0};
    put(i, true);
    if (ward_store_claim(store, KIND, NULL, "cluster-a/machine-1", only, names[i], NULL, &err) !=
        0) {
        diag("claim %s: %s", names[i], err.text);
    }
}

static void fault(int i, const char *json)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"bmc\":%d,%s}", i, json);
    if (sim_control_post(&s, "/control/faults", body) != 200) {
        bail("the simulator refused %s", body);
    }
}

static void show(int i)
{
    char *j = ward_policy_resource_json(engine, KIND, names[i]);
    diag("%s", j != NULL ? j : "(none)");
    free(j);
}

/* The host's status from the store (what survives a restart), parsed; caller frees. */
static cJSON *stored_status(int i)
{
    struct ward_resource *r = NULL;
    struct ward_error err = {0};
    if (ward_store_get(store, KIND, WARD_POLICY_NAMESPACE, names[i], &r, &err) != 0) {
        return NULL;
    }
    cJSON *st = cJSON_Parse(r->status != NULL ? r->status : "{}");
    ward_resource_free(r);
    return st;
}

int main(void)
{
    plan(54);
    loop = ev_default_loop(0);
    char path[600];
    snprintf(path, sizeof(path), "%s/log", test_tmpdir());
    FILE *logf = fopen(path, "w+");
    ward_log_set_stream(logf);

    /* hung requests are dropped after 3 s so the simulator stops quickly at the end */
    sim_start(&s,
              (const char *const[]){"-n", "14", "--flavour", "generic", "--power-delay-ms", "50",
                                    "--hang-ms", "3000", "--drip-ms", "50", "--seed", "7", NULL});
    struct ward_error err = {0};
    char shipped[600];
    snprintf(shipped, sizeof(shipped), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    struct ward_rf_quirks *quirks = ward_rf_quirks_load(shipped, &err);
    struct ward_rf_client_opts co;
    ward_rf_client_opts_default(&co);
    co.quirks = quirks;
    co.timeout = 1;
    co.connect_timeout = 1;
    co.retries = 1;
    /* at least 0.5 s between a given-up request and the next: the simulator notices a client
       that went away only when it next writes to it (a slow-drip piece), and must not count
       both requests as in flight */
    co.backoff = 1;
    co.backoff_max = 1;
    co.breaker_open = 1;
    co.rate_max = 1000;
    co.rate_min = 5;
    co.poll_interval = 0.05;
    co.power_timeout = 5;
    co.max_ops = 8;
    struct ward_rf_client *client = ward_rf_client_create(loop, &co, &err);
    driver = ward_rf_driver_create(client, &(struct ward_rf_driver_opts){.power_sync_interval = 0});
    struct ward_bmc_driver drv = {
        .self = driver, .open = ward_rf_driver_open, .forget = ward_rf_driver_forget};

    snprintf(path, sizeof(path), "%s/ward.db", test_tmpdir());
    store = ward_store_open(loop, &(struct ward_store_options){.path = path}, &err);
    ok(store != NULL, "store opened (%s)", err.text);
    events = ward_events_create(NULL);
    struct ward_policy_options po;
    ward_policy_options_init(&po, &err);
    po.stuck_interval = 0;
    po.stuck_timeout = 1;
    po.max_retries = 2;
    po.reconcile_timeout = 20;
    po.queue.base_delay = 0.7;
    po.queue.max_delay = 1;
    po.bmc_driver = &drv;
    po.on_event = on_event;
    struct ward_policy_sink sink;
    ward_policy_sink_store(&sink, store);
    engine = ward_policy_engine_create(loop, &sink, NULL, NULL, &po, &err);
    ok(engine != NULL, "engine created (%s)", err.text);
    snprintf(path, sizeof(path), "%s/policies", getenv("WARD_SRCDIR"));
    is_int(0, ward_policy_engine_load(engine, path, &err), "physicalhost.lua loads (%s)", err.text);
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);

    /* hosts whose faults come later are enrolled first, on healthy BMCs */
    bool later[NBMCS] = {[EXPIRE] = true, [PROV_5XX] = true};
    for (int i = 0; i < NBMCS; i++) {
        snprintf(names[i], sizeof(names[i]), "host-%d", i);
        if (later[i]) {
            put(i, false);
        }
    }
    is_int(2, wait_for(later, is_available, 15), "hosts for the later faults enrolled");

    /* every fault at once, and a healthy host enrolled meanwhile */
    for (int i = 0; i < NBMCS; i++) {
        if (hard[i].fault != NULL) {
            fault(i, hard[i].fault);
        }
    }
    fault(FLAKY, "\"error_rate\":0.3");
    fault(EXPIRE, "\"expire_sessions\":true");
    fault(PROV_5XX, "\"error_rate\":1");
    bool faulted[NBMCS] = {0};
    for (int i = 0; i < NBMCS; i++) {
        faulted[i] = hard[i].fault != NULL;
        if (!later[i] && i != BUSY) {
            put(i, false);
        }
    }
    claim(EXPIRE);
    claim(PROV_5XX);
    bool healthy[NBMCS] = {[HEALTHY] = true, [FLAKY] = true};
    int n = wait_for(healthy, is_available, 20);
    is_int(2, n, "the healthy host and the one behind 30%% of 5xx are enrolled meanwhile");
    if (n != 2) {
        show(HEALTHY);
        show(FLAKY);
    }
    bool errored[NBMCS];
    memcpy(errored, faulted, sizeof(errored));
    errored[PROV_5XX] = true;
    n = wait_for(errored, has_error_record, 25);
    for (int i = 0; i < NBMCS; i++) {
        if (!errored[i]) {
            continue;
        }
        char *reason = error_reason(i);
        const char *what = i == PROV_5XX ? "provisioning under 5xx" : hard[i].fault;
        ok(reason != NULL, "%s: the host went to Error", what);
        const char *w1 = i == PROV_5XX ? "HTTP 500" : hard[i].want1;
        const char *w2 = i == PROV_5XX ? NULL : hard[i].want2;
        /* and the state whose work failed: enrollment, or provisioning for PROV_5XX */
        const char *where = i == PROV_5XX ? "in Provisioning" : "in Enrolling";
        bool named = reason != NULL && strstr(reason, where) != NULL &&
                     (strstr(reason, w1) != NULL || (w2 != NULL && strstr(reason, w2) != NULL));
        ok(named, "%s: the Error transition names the fault (%s)", what,
           reason != NULL ? reason : "-");
        if (reason == NULL) {
            show(i);
        }
        free(reason);
    }
    cJSON *st = stored_status(CERT_CA);
    const char *serr = json_str(st, "error");
    ok(serr != NULL && strstr(serr, "certificate verify failed") != NULL,
       "the stored status says why as well (%s)", serr != NULL ? serr : "-");
    cJSON_Delete(st);
    bool expire_set[NBMCS] = {[EXPIRE] = true};
    if (wait_for(expire_set, is_provisioned, 20) != 1) {
        show(EXPIRE);
    }
    ok(is_provisioned(EXPIRE) && sim_counter(&s, EXPIRE, "logins") >= 2,
       "expired sessions: a new login and the host is provisioned (%.0f logins)",
       sim_counter(&s, EXPIRE, "logins"));
    ok(sim_counter(&s, FLAKY, "faults_injected") > 0, "the flaky BMC did answer 500s (%.0f)",
       sim_counter(&s, FLAKY, "faults_injected"));

    /* the faults clear: every host that went to Error (and is unclaimed) comes back */
    sim_control_post(&s, "/control/faults", "{\"bmc\":\"*\",\"clear\":true}");
    n = wait_for(faulted, is_available, 25);
    is_int(9, n, "every faulted host recovered to Available once its fault cleared");
    if (n != 9) {
        for (int i = 0; i < NBMCS; i++) {
            if (faulted[i] && !is_available(i)) {
                show(i);
            }
        }
    }
    int over = 0;
    for (int i = 0; i < NBMCS; i++) {
        if (sim_counter(&s, i, "max_concurrent") > 1) {
            diag("BMC %d saw %.0f requests at once", i, sim_counter(&s, i, "max_concurrent"));
            over++;
        }
    }
    is_int(0, over, "no BMC saw more than 1 request at once, faults included");

    /* power sync: the provisioned host is turned off behind ward's back */
    power_host = EXPIRE;
    ok(is_provisioned(power_host), "%s is Provisioned", names[power_host]);
    struct http_result r = sim_http(&s, power_host, "POST",
                                    "/redfish/v1/Systems/437XR1138R2/Actions/"
                                    "ComputerSystem.Reset",
                                    "{\"ResetType\":\"ForceOff\"}", "basic", NULL, 5);
    ok(200 <= r.status && r.status < 300, "ForceOff behind ward's back (HTTP %ld)", r.status);
    http_free(&r);
    sim_control_post(&s, "/control/clock", "{\"advance_ms\":1000}");
    ward_rf_driver_sync_now(driver);
    bool one[NBMCS] = {[EXPIRE] = true};
    wait_for(one, mismatch_seen, 10);
    contains(mismatch_message, "Provisioned host is powered Off, its state expects On",
             "the policy reports a PowerMismatch (%s)", mismatch_message);
    wait_for(one, mismatch_stored, 10);
    st = stored_status(power_host);
    serr = json_str(st, "observed/power");
    const char *pm = json_str(st, "powerMismatch/observed");
    ok(serr != NULL && strcmp(serr, "Off") == 0 && pm != NULL && strcmp(pm, "Off") == 0,
       "status.observed.power and status.powerMismatch are in the store (%s, %s)",
       serr ? serr : "-", pm ? pm : "-");
    cJSON_Delete(st);
    /* more syncs and reconciles with the same mismatch: one event, counted, not a flood */
    for (int k = 0; k < 3; k++) {
        ward_rf_driver_sync_now(driver);
        ward_policy_enqueue(engine, KIND, names[power_host]);
        int before = mismatch_events;
        ev_timer t;
        ev_timer_init(&t, on_bound, 5, 0);
        ev_timer_start(loop, &t);
        while (ev_is_active(&t) && mismatch_events == before) {
            ev_run(loop, EVRUN_ONCE);
        }
        ev_timer_stop(loop, &t);
    }
    const struct ward_event **list = NULL;
    size_t nev = 0;
    ward_events_list(events, &(struct ward_events_filter){.name = names[power_host]}, &list, &nev);
    int kept = 0;
    long count = 0;
    const char *type = "-";
    for (size_t k = 0; k < nev; k++) {
        if (strcmp(list[k]->reason, "PowerMismatch") == 0) {
            kept++;
            count = list[k]->count;
            type = list[k]->type;
        }
    }
    is_string("Warning", type, "PowerMismatch is a Warning");
    free(list);
    ok(kept == 1 && count >= 2, "repeats aggregate into one event (%d kept, count %ld)", kept,
       count);

    /* a BMC that starts failing under an enrolled, idle host: the power sync notices, the
       policy notes it in the status and warns once; the host stays Available */
    int idle_host = CERT_EXPIRED;
    ok(is_available(idle_host), "%s is Available", names[idle_host]);
    fault(idle_host, "\"error_rate\":1");
    want_down = true;
    ok(sync_until(idle_host, bmc_noted, 20),
       "after failed power syncs the store has status.redfish.connected false");
    st = stored_status(idle_host);
    serr = json_str(st, "redfish/error");
    const char *obs = json_str(st, "observed/bmc");
    ok(serr != NULL && strstr(serr, "HTTP 500") != NULL && obs != NULL && strcmp(obs, serr) == 0,
       "status.redfish.error and status.observed.bmc say why (%s)", serr ? serr : "-");
    cJSON_Delete(st);
    ok(unreachable_events == 1 && strstr(unreachable_message, "HTTP 500") != NULL,
       "one BMCUnreachable event says why (%d: %s)", unreachable_events, unreachable_message);
    ok(is_available(idle_host), "the host keeps its state");
    /* the outage goes on, and changes (500s, then no answer at all): the status keeps its
       first reason, and there is no second event, however often the policy runs */
    fault(idle_host, "\"error_rate\":0,\"hang\":true");
    asked = sim_counter(&s, idle_host, "requests");
    bool thrice = sync_until(idle_host, asked_thrice, 15);
    st = stored_status(idle_host);
    serr = json_str(st, "redfish/error");
    ok(thrice && unreachable_events == 1 && serr != NULL && strstr(serr, "HTTP 500") != NULL &&
           strstr(serr, "(since ") != NULL,
       "three more requests that hang: still one BMCUnreachable, still the first reason "
       "(%d, %s)",
       unreachable_events, serr ? serr : "-");
    cJSON_Delete(st);
    /* a driver that does not know the host (a wardd just restarted): the policy's next run
       of the idle host makes it known, so the power sync reads it again */
    ward_rf_driver_remove(driver, names[idle_host]);
    ok(sync_until(idle_host, driver_knows, 10),
       "an idle host the driver forgot is known again after its reconcile");
    /* that driver reports the outage afresh (the BMC now hangs): the status takes the new
       reason, and the warning that stands is not raised again */
    st = stored_status(idle_host);
    snprintf(first_reason, sizeof(first_reason), "%s",
             json_str(st, "observed/bmc") ? json_str(st, "observed/bmc") : "");
    cJSON_Delete(st);
    ok(sync_until(idle_host, reason_renewed, 20) && unreachable_events == 1,
       "a new report of the outage updates status.redfish.error without a second event (%d)",
       unreachable_events);
    fault(idle_host, "\"clear\":true");
    want_down = false;
    ok(sync_until(idle_host, bmc_noted, 20), "once it answers again, connected is true");
    ok(unreachable_events == 1 && reachable_events == 1,
       "one BMCUnreachable, then one BMCReachable (%d, %d)", unreachable_events, reachable_events);

    /* removal: the host is deleted from the store as the API does; its session ends */
    removed_host = HEALTHY;
    ok(sim_counter(&s, HEALTHY, "active_sessions") == 1, "%s has a session on its BMC",
       names[HEALTHY]);
    double logouts = sim_counter(&s, HEALTHY, "logouts");
    is_int(0, ward_store_delete(store, KIND, WARD_POLICY_NAMESPACE, names[HEALTHY], 0, &err),
           "host deleted from the store (%s)", err.text);
    bool gone[NBMCS] = {[HEALTHY] = true};
    int ended = wait_for(gone, session_gone, 10);
    double after = sim_counter(&s, HEALTHY, "logouts");
    ok(ended == 1 && after == logouts + 1 &&
           ward_policy_resource_state(engine, KIND, names[HEALTHY], NULL) == NULL,
       "the engine forgot it and the driver ended its session (logouts %.0f -> %.0f)", logouts,
       after);
    ok(ward_rf_driver_bmc(driver, names[HEALTHY]) == NULL && ward_rf_driver_hosts(driver) > 0,
       "the driver dropped only that host");

    /* removal while the host's reconcile waits on a hung request: the run is cancelled */
    fault(BUSY, "\"hang\":true");
    put(BUSY, false);
    bool busy[NBMCS] = {[BUSY] = true};
    ok(wait_for(busy, request_held, 10) == 1, "%s's enrollment hangs on its BMC", names[BUSY]);
    struct ward_resource *br = NULL;
    ward_store_get(store, KIND, WARD_POLICY_NAMESPACE, names[BUSY], &br, &err);
    is_int(0,
           ward_store_delete(store, KIND, WARD_POLICY_NAMESPACE, names[BUSY],
                             br != NULL ? br->version : 0, &err),
           "deleted meanwhile (%s)", err.text);
    ward_resource_free(br);
    ok(wait_for(busy, forgotten, 10) == 1,
       "the run is cancelled, the engine and the driver forget the host");

    ev_timer_stop(loop, &tick);
    ward_policy_engine_destroy(engine);
    ward_store_close(store);
    ward_events_destroy(events);
    ward_rf_driver_destroy(driver);
    ward_rf_client_destroy(client);
    ward_rf_quirks_free(quirks);
    is_int(0, sim_stop(&s), "the simulator stops cleanly");
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
