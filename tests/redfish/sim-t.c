/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Redfish layer against ward-bmcsim over HTTPS with the simulator's CA: every flavour
 * goes through enrollment, provisioning, release and logout concurrently under the global
 * cap; then each fault gives a readable reason and the BMC is served again once it clears;
 * the simulator confirms no BMC ever saw more requests at once than the per-BMC limit.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "../bmcsim/simclient.h"
#include "log.h"
#include "redfish/bmc.h"
#include "tap/basic.h"

#define NBMCS 5

static struct ev_loop *loop;

struct step {
    enum ward_rf_op_kind kind;
    const char *arg;
};

static const struct step flow_steps[] = {
    {WARD_RF_OP_CONNECT, NULL},     {WARD_RF_OP_INVENTORY, NULL},
    {WARD_RF_OP_EJECT_MEDIA, NULL}, {WARD_RF_OP_INSERT_MEDIA, "http://10.9.8.7/boot.iso"},
    {WARD_RF_OP_BOOT_ONCE, "Cd"},   {WARD_RF_OP_POWER, "On"},
    {WARD_RF_OP_POWER_STATE, NULL}, {WARD_RF_OP_POWER, "ForceOff"},
    {WARD_RF_OP_POWER, "On"}, /* right after off: the 409 quirk where the flavour has it */
    {WARD_RF_OP_POWER, "ForceOff"}, {WARD_RF_OP_EJECT_MEDIA, NULL},
    {WARD_RF_OP_EJECT_MEDIA, NULL}, /* empty drive: refused by some, fine for ward */
    {WARD_RF_OP_BOOT_CLEAR, NULL},  {WARD_RF_OP_LOGOUT, NULL},
};

struct flow {
    struct ward_rf_bmc *b;
    size_t step;
    bool done;
    int code;
    char reason[1024];
    char inventory[1024];
    char power[32];
};

static unsigned max_running[2]; /* sampled, per class */
static struct ward_rf_client *client;

static void flow_next(struct flow *f);

static void on_step(void *arg, int code, const cJSON *result, const char *reason)
{
    struct flow *f = arg;
    if (code != 0) {
        f->done = true;
        f->code = code;
        snprintf(f->reason, sizeof(f->reason), "step %zu (%s): %s", f->step,
                 ward_rf_op_kind_name(flow_steps[f->step].kind), reason);
        return;
    }
    if (flow_steps[f->step].kind == WARD_RF_OP_INVENTORY) {
        char *t = cJSON_PrintUnformatted(result);
        snprintf(f->inventory, sizeof(f->inventory), "%s", t);
        free(t);
    }
    if (flow_steps[f->step].kind == WARD_RF_OP_POWER_STATE && cJSON_IsString(result)) {
        snprintf(f->power, sizeof(f->power), "%s", result->valuestring);
    }
    f->step++;
    flow_next(f);
}

static void flow_next(struct flow *f)
{
    if (f->step >= WARD_ARRAY_LEN(flow_steps)) {
        f->done = true;
        return;
    }
    ward_rf_op_start(f->b, flow_steps[f->step].kind, flow_steps[f->step].arg, NULL, on_step, f);
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    for (int cls = 0; cls < 2; cls++) {
        unsigned r = ward_rf_client_running_class(client, (enum ward_rf_op_class)cls);
        if (r > max_running[cls]) {
            max_running[cls] = r;
        }
    }
}

struct one {
    bool done;
    int code;
    char reason[1024];
};

static void on_one(void *arg, int code, const cJSON *result, const char *reason)
{
    struct one *o = arg;
    o->done = true;
    o->code = code;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
}

static void on_bound(struct ev_loop *l, ev_timer *w, int revents)
{
}

static struct one run1a(struct ward_rf_bmc *b, enum ward_rf_op_kind kind, const char *arg)
{
    struct one o = {0};
    ward_rf_op_start(b, kind, arg, kind == WARD_RF_OP_POST ? "{}" : NULL, on_one, &o);
    ev_timer t;
    ev_timer_init(&t, on_bound, 30, 0);
    ev_timer_start(loop, &t);
    while (!o.done && ev_is_active(&t)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    if (!o.done) {
        snprintf(o.reason, sizeof(o.reason), "test bound passed");
        o.code = -ETIMEDOUT;
    }
    return o;
}

static struct ward_rf_bmc *bmc_for(struct ward_rf_client *c, struct sim *s, int i, const char *name)
{
    const cJSON *arr = cJSON_GetObjectItem(s->fleet, "bmcs");
    const cJSON *e = cJSON_GetArrayItem(arr, i);
    struct ward_rf_bmc_config cfg = {
        .name = name,
        .address = cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")),
        .username = cJSON_GetStringValue(cJSON_GetObjectItem(e, "username")),
        .password_file = cJSON_GetStringValue(cJSON_GetObjectItem(e, "password_file")),
        .cainfo = s->ca,
    };
    struct ward_error err = {0};
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    if (b == NULL) {
        bail("cannot create BMC %s: %s", name, err.text);
    }
    return b;
}

static struct one run1(struct ward_rf_bmc *b, enum ward_rf_op_kind kind)
{
    return run1a(b, kind, NULL);
}

static int by_flavour(struct sim *s, const char *flavour)
{
    const cJSON *arr = cJSON_GetObjectItem(s->fleet, "bmcs");
    for (int i = 0; i < cJSON_GetArraySize(arr); i++) {
        const char *f =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "flavour"));
        if (f != NULL && strcmp(f, flavour) == 0) {
            return i;
        }
    }
    bail("no %s BMC in the fleet", flavour);
}

/* Switch a fault on BMC 0, expect a failure naming it, clear it, expect service again. */
static void fault_case(struct sim *s, struct ward_rf_bmc *b, const char *fault_json,
                       const char *want)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"bmc\":0,%s}", fault_json);
    sim_control_post(s, "/control/faults", body);
    struct one o = run1(b, WARD_RF_OP_POWER_STATE);
    ok(o.code != 0, "fault %s: the operation fails", fault_json);
    contains(o.reason, want, "fault %s: the reason says so (%s)", fault_json, o.reason);
    sim_control_post(s, "/control/faults", "{\"bmc\":0,\"clear\":true}");
    o = run1(b, WARD_RF_OP_POWER_STATE);
    is_int(0, o.code, "fault %s cleared: served again (%s)", fault_json, o.reason);
}

int main(void)
{
    plan(NBMCS * 4 + 4 + 6 * 3 + 3 + 3 + 10);
    loop = ev_default_loop(0);
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/log", test_tmpdir());
    FILE *logf = fopen(logpath, "w+");
    ward_log_set_stream(logf);

    struct sim s;
    sim_start(&s,
              (const char *const[]){"-n", "5", "--flavour", "all", "--power-delay-ms", "100",
                                    "--poweron-block-ms", "2000", "--task-ms", "100", "--hang-ms",
                                    "3000", "--drip-ms", "300", "--latency-ms", "2", NULL});

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 10;
    o.poll_interval = 0.05;
    o.backoff = 0.05;
    o.backoff_max = 0.5;
    o.rate_max = 1000;
    o.max_ops = 3;
    o.max_reads = 2;
    o.power_timeout = 20;
    struct ward_error err = {0};
    char shipped[600];
    snprintf(shipped, sizeof(shipped), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    struct ward_rf_quirks *quirks = ward_rf_quirks_load(shipped, &err);
    if (quirks == NULL) {
        bail("%s", err.text);
    }
    o.quirks = quirks;
    client = ward_rf_client_create(loop, &o, &err);

    struct flow flows[NBMCS] = {{0}};
    const cJSON *arr = cJSON_GetObjectItem(s.fleet, "bmcs");
    for (int i = 0; i < NBMCS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bmc-%d", i);
        flows[i].b = bmc_for(client, &s, i, name);
        flow_next(&flows[i]);
    }
    ev_timer tick, bound;
    ev_timer_init(&tick, on_tick, 0.001, 0.001);
    ev_timer_start(loop, &tick);
    ev_timer_init(&bound, on_bound, 50, 0);
    ev_timer_start(loop, &bound);
    for (;;) {
        bool all = true;
        for (int i = 0; i < NBMCS; i++) {
            all = all && flows[i].done;
        }
        if (all || !ev_is_active(&bound)) {
            break;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &tick);
    ev_timer_stop(loop, &bound);
    for (int i = 0; i < NBMCS; i++) {
        const char *flavour =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "flavour"));
        ok(flows[i].done && flows[i].code == 0, "%s: enroll, provision, release, logout (%s)",
           flavour, flows[i].reason);
        cJSON *inv = cJSON_Parse(flows[i].inventory);
        int macs = cJSON_GetArraySize(cJSON_GetObjectItem(inv, "macs"));
        cJSON_Delete(inv);
        is_int(2, macs, "%s: inventory has both NICs' MACs (%s)", flavour, flows[i].inventory);
        /* the flavours whose root offers $expand (tools/bmcsim/flavours.c) */
        bool offers = strcmp(flavour, "generic") == 0 || strcmp(flavour, "dell-like") == 0 ||
                      strcmp(flavour, "hpe-like") == 0;
        double expanded = sim_counter(&s, i, "expanded");
        ok(offers ? expanded >= 2 : expanded == 0, "%s: NICs read %s (%g members expanded)",
           flavour, offers ? "through $expand" : "member by member", expanded);
        is_string("On", flows[i].power, "%s: PowerState read On after power on", flavour);
    }
    unsigned mc = ward_rf_client_max_running_class(client, WARD_RF_CHANGE);
    unsigned mr = ward_rf_client_max_running_class(client, WARD_RF_READ);
    ok(mc >= 1 && mc <= 3 && mr >= 1 && mr <= 2,
       "the global caps held: %u changes at once (cap 3), %u reads (cap 2)", mc, mr);
    ok(max_running[WARD_RF_CHANGE] <= 3 && max_running[WARD_RF_READ] <= 2,
       "and so did every sample of them (%u, %u)", max_running[WARD_RF_CHANGE],
       max_running[WARD_RF_READ]);
    int over = 0;
    for (int i = 0; i < NBMCS; i++) {
        double m = sim_counter(&s, i, "max_concurrent");
        over += m > 1;
    }
    is_int(0, over, "no BMC saw more than 1 request at once (simulator's count)");
    double logouts = 0;
    for (int i = 0; i < NBMCS; i++) {
        logouts += sim_counter(&s, i, "logouts");
    }
    ok(logouts >= 4, "sessions were logged out (%g)", logouts);
    for (int i = 0; i < NBMCS; i++) {
        ward_rf_bmc_destroy(flows[i].b);
    }
    ward_rf_client_destroy(client);

    /* each vendor quirk: without the hooks the flavour that has it fails, with them it works */
    o.quirks = NULL;
    struct ward_rf_client *bare = ward_rf_client_create(loop, &o, &err);
    o.quirks = quirks;
    struct ward_rf_client *hooked = ward_rf_client_create(loop, &o, &err);
    int smc = by_flavour(&s, "supermicro-like");
    int gen = by_flavour(&s, "generic");
    int dell = by_flavour(&s, "dell-like");
    struct ward_rf_bmc *bs = bmc_for(bare, &s, smc, "bare-smc");
    struct ward_rf_bmc *hs = bmc_for(hooked, &s, smc, "hooked-smc");
    struct one q1 = run1(bs, WARD_RF_OP_EJECT_MEDIA);
    struct one q2 = run1(hs, WARD_RF_OP_EJECT_MEDIA);
    ok(q1.code != 0 && q2.code == 0, "NotConnected slot: fails bare (%s), works with the hook (%s)",
       q1.reason, q2.reason);
    q1 = run1a(bs, WARD_RF_OP_BOOT_ONCE, "Cd");
    q2 = run1a(hs, WARD_RF_OP_BOOT_ONCE, "Cd");
    ok(q1.code != 0 && q2.code == 0,
       "no BootSourceOverrideMode: fails bare (%s), works with the hook (%s)", q1.reason,
       q2.reason);
    q1 = run1a(bs, WARD_RF_OP_POWER, "ForceOff");
    is_int(0, q1.code, "supermicro-like powered off (%s)", q1.reason);
    q1 = run1a(bs, WARD_RF_OP_POWER, "On");
    contains(q1.reason, "HTTP 409", "power-on right after off fails bare (%s)", q1.reason);
    q2 = run1a(hs, WARD_RF_OP_POWER, "On");
    is_int(0, q2.code, "and works with the hook, asking again later (%s)", q2.reason);
    ward_rf_bmc_destroy(bs);
    ward_rf_bmc_destroy(hs);
    bs = bmc_for(bare, &s, gen, "bare-generic");
    hs = bmc_for(hooked, &s, gen, "hooked-generic");
    q1 = run1a(bs, WARD_RF_OP_INSERT_MEDIA, "http://10.9.8.7/x.iso");
    q2 = run1a(hs, WARD_RF_OP_INSERT_MEDIA, "http://10.9.8.7/x.iso");
    ok(q1.code != 0 && q2.code == 0,
       "virtual media moved to Systems: fails bare (%s), works with the hook (%s)", q1.reason,
       q2.reason);
    q2 = run1(hs, WARD_RF_OP_EJECT_MEDIA);
    is_int(0, q2.code, "and ejects again (%s)", q2.reason);
    ward_rf_bmc_destroy(bs);
    ward_rf_bmc_destroy(hs);
    bs = bmc_for(bare, &s, dell, "bare-dell");
    hs = bmc_for(hooked, &s, dell, "hooked-dell");
    const char *eject = "/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia/CD/Actions/"
                        "VirtualMedia.EjectMedia";
    q1 = run1a(bs, WARD_RF_OP_POST, eject);
    contains(q1.reason, "nothing to eject", "EjectMedia on an empty drive fails bare (%s)",
             q1.reason);
    q2 = run1a(hs, WARD_RF_OP_POST, eject);
    is_int(0, q2.code, "and works with the hook (%s)", q2.reason);
    struct ward_rf_bmc_stats hst;
    ward_rf_bmc_stats(hs, &hst);
    is_int(1, hst.logins, "hooked clients still log in once per BMC");
    ward_rf_bmc_destroy(bs);
    ward_rf_bmc_destroy(hs);
    ward_rf_client_destroy(bare);
    ward_rf_client_destroy(hooked);

    /* faults on BMC 0, with a client that does not retry and gives up after 1 s */
    o.timeout = 1;
    o.retries = 0;
    o.breaker_threshold = 100;
    o.max_ops = 20;
    client = ward_rf_client_create(loop, &o, &err);
    struct ward_rf_bmc *b = bmc_for(client, &s, 0, "fault-bmc");
    struct one first = run1(b, WARD_RF_OP_CONNECT);
    if (first.code != 0) {
        diag("connect before faults failed: %s", first.reason);
    }
    fault_case(&s, b, "\"hang\":true", "timed out");
    fault_case(&s, b, "\"reset\":true", "connection reset");
    fault_case(&s, b, "\"malformed\":true", "malformed JSON");
    fault_case(&s, b, "\"truncated\":true", "GET");
    fault_case(&s, b, "\"slow_drip\":true", "timed out");
    fault_case(&s, b, "\"error_rate\":1", "HTTP 5");
    sim_control_post(&s, "/control/faults", "{\"bmc\":0,\"expire_sessions\":true}");
    double logins = sim_counter(&s, 0, "logins");
    struct one e = run1(b, WARD_RF_OP_POWER_STATE);
    is_int(0, e.code, "an expired session is renewed (%s)", e.reason);
    is_int((long long)logins + 1, (long long)sim_counter(&s, 0, "logins"), "with one login");
    is_int(0, (long long)ward_rf_client_running(client), "no operation left running after them");
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(client);

    /* a wrong certificate needs a new connection: a fresh client has none cached */
    sim_control_post(&s, "/control/faults", "{\"bmc\":0,\"wrong_cert\":\"ca\"}");
    client = ward_rf_client_create(loop, &o, &err);
    b = bmc_for(client, &s, 0, "cert-bmc");
    e = run1(b, WARD_RF_OP_CONNECT);
    contains(e.reason, "certificate verify failed", "a wrong certificate: %s", e.reason);
    sim_control_post(&s, "/control/faults", "{\"bmc\":0,\"wrong_cert\":\"expired\"}");
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(client);
    client = ward_rf_client_create(loop, &o, &err);
    b = bmc_for(client, &s, 0, "cert-bmc");
    e = run1(b, WARD_RF_OP_CONNECT);
    contains(e.reason, "expired", "an expired certificate: %s", e.reason);
    sim_control_post(&s, "/control/faults", "{\"bmc\":0,\"clear\":true}");
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(client);

    is_int(0, sim_stop(&s), "the simulator stops cleanly");
    ward_rf_quirks_free(quirks);
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
