/* SPDX-License-Identifier: Apache-2.0 */
/* The Redfish layer on a real libev loop against the loopback HTTPS test service. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "redfish/bmc.h"
#include "tap/basic.h"
#include "tserver.h"
#include "util.h"

struct res {
    bool done;
    int code;
    char reason[1024];
    char *json; /* result, printed */
};

static void on_op(void *arg, int code, const cJSON *result, const char *reason)
{
    struct res *r = arg;
    r->done = true;
    r->code = code;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    r->json = result != NULL ? cJSON_PrintUnformatted(result) : strdup("null");
}

static struct ev_loop *loop;
static char logbuf_path[600];

static struct res run(struct ward_rf_bmc *b, enum ward_rf_op_kind kind, const char *arg,
                      const char *body)
{
    struct res r = {0};
    ward_rf_op_start(b, kind, arg, body, on_op, &r);
    if (!test_loop_until(loop, &r.done, 30)) {
        snprintf(r.reason, sizeof(r.reason), "test bound passed");
        r.json = strdup("null");
    }
    return r;
}

static void res_free(struct res *r)
{
    free(r->json);
    r->json = NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("write %s", path);
    }
    fputs(text, f);
    fclose(f);
}

/* Wait on the loop (bounded) until the test server saw what we expect. */
static void on_check(struct ev_loop *l, ev_timer *w, int revents)
{
}

static bool wait_logouts(struct tserver *s, int want)
{
    ev_timer tick;
    ev_timer_init(&tick, on_check, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    double end = ev_now(loop) + 10;
    struct tserver_stats st;
    for (;;) {
        tserver_stats(s, &st);
        if (st.logouts >= want || ev_now(loop) > end) {
            break;
        }
        ev_run(loop, EVRUN_ONCE);
        ev_now_update(loop);
    }
    ev_timer_stop(loop, &tick);
    return st.logouts >= want;
}

/* Requests the test servers saw, summed over servers [from, to). */
static int requests_seen(struct tserver **sv, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++) {
        struct tserver_stats st;
        tserver_stats(sv[i], &st);
        n += st.requests;
    }
    return n;
}

/* Run the loop (bounded) until the servers saw at least want requests in all. */
static bool wait_requests(struct tserver **sv, int nsv, int want)
{
    ev_timer tick;
    ev_timer_init(&tick, on_check, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    double end = ev_now(loop) + 10;
    while (requests_seen(sv, 0, nsv) < want && ev_now(loop) <= end) {
        ev_run(loop, EVRUN_ONCE);
        ev_now_update(loop);
    }
    ev_timer_stop(loop, &tick);
    return requests_seen(sv, 0, nsv) >= want;
}

#define CAP_BMCS 8 /* the first half read, the second half change */

/*
 * maxConcurrentReads and maxConcurrentOps cap their own class each: with every server
 * hanging, 4 reads and 4 changes on 8 BMCs put exactly 2 + 3 requests on the wire and no
 * more; once the servers answer again every operation ends, none above its cap.
 */
static void test_class_caps(const struct ward_rf_client_opts *base, struct tca *ca,
                            const char *ca_path, const char *pw_path)
{
    struct ward_rf_client_opts o = *base;
    o.max_reads = 2;
    o.max_ops = 3;
    o.metrics = NULL;
    o.quirks = NULL;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    struct tserver *sv[CAP_BMCS];
    struct ward_rf_bmc *bm[CAP_BMCS];
    struct res rs[CAP_BMCS] = {{0}};
    for (int i = 0; i < CAP_BMCS; i++) {
        sv[i] = tserver_start(&(struct tserver_opts){.ca = ca, .basic_auth = true});
        tserver_set_faults(sv[i], &(struct tserver_faults){.hang = true});
        char name[32];
        snprintf(name, sizeof(name), "cap-%d", i);
        struct ward_rf_bmc_config cfg = {.name = name,
                                         .address = tserver_url(sv[i]),
                                         .username = TSERVER_USER,
                                         .password_file = pw_path,
                                         .cainfo = ca_path};
        bm[i] = ward_rf_bmc_create(c, &cfg, &err);
        if (i < CAP_BMCS / 2) {
            ward_rf_op_start(bm[i], WARD_RF_OP_GET, "/redfish/v1/Systems", NULL, on_op, &rs[i]);
        } else {
            ward_rf_op_start(bm[i], WARD_RF_OP_PATCH, "/redfish/v1/Systems/1",
                             "{\"AssetTag\": \"x\"}", on_op, &rs[i]);
        }
    }
    bool seen = wait_requests(sv, CAP_BMCS, 5);
    ok(seen, "hanging servers: 5 requests arrived (%d)", requests_seen(sv, 0, CAP_BMCS));
    is_int(2, requests_seen(sv, 0, CAP_BMCS / 2),
           "reads on the wire: 2 of 4, maxConcurrentReads (servers' count)");
    is_int(3, requests_seen(sv, CAP_BMCS / 2, CAP_BMCS),
           "changes on the wire: 3 of 4, maxConcurrentOps, not held back by the reads");
    ok(ward_rf_client_running_class(c, WARD_RF_READ) == 2 &&
           ward_rf_client_running_class(c, WARD_RF_CHANGE) == 3,
       "client: 2 reads and 3 changes running (%u, %u)",
       ward_rf_client_running_class(c, WARD_RF_READ),
       ward_rf_client_running_class(c, WARD_RF_CHANGE));
    for (int i = 0; i < CAP_BMCS; i++) {
        tserver_set_faults(sv[i], &(struct tserver_faults){0});
    }
    bool all = true;
    for (int i = 0; i < CAP_BMCS; i++) {
        all = test_loop_until(loop, &rs[i].done, 20) && all;
    }
    ok(all, "once the servers answer, every operation ends");
    ok(ward_rf_client_max_running_class(c, WARD_RF_READ) == 2 &&
           ward_rf_client_max_running_class(c, WARD_RF_CHANGE) == 3,
       "never more than 2 reads and 3 changes at once (%u, %u)",
       ward_rf_client_max_running_class(c, WARD_RF_READ),
       ward_rf_client_max_running_class(c, WARD_RF_CHANGE));
    int over = 0;
    for (int i = 0; i < CAP_BMCS; i++) {
        struct tserver_stats st;
        tserver_stats(sv[i], &st);
        over += st.max_in_flight > 1;
        res_free(&rs[i]);
        ward_rf_bmc_destroy(bm[i]);
    }
    is_int(0, over, "no server saw more than 1 request at once");
    ward_rf_client_destroy(c);
    for (int i = 0; i < CAP_BMCS; i++) {
        tserver_stop(sv[i]);
    }
}

/* One inventory of a fresh BMC on a fresh server with the given $expand support, then a
 * second inventory of the same BMC. */
struct expand_run {
    struct res r;
    struct tserver_stats st;
    int second_asks;      /* requests carrying $expand the second inventory made */
    int second_nic_reads; /* NICs it read on their own */
};

static struct expand_run inventory_with_expand(const struct ward_rf_client_opts *base,
                                               struct tca *ca, const char *ca_path,
                                               const char *pw_path, int mode,
                                               struct ward_rf_quirks *quirks)
{
    struct ward_rf_client_opts o = *base;
    o.metrics = NULL;
    o.quirks = quirks;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    struct tserver *s =
        tserver_start(&(struct tserver_opts){.ca = ca, .basic_auth = true, .expand = mode});
    struct ward_rf_bmc_config cfg = {.name = "expand",
                                     .address = tserver_url(s),
                                     .username = TSERVER_USER,
                                     .password_file = pw_path,
                                     .cainfo = ca_path};
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    struct expand_run x = {.r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL)};
    tserver_stats(s, &x.st);
    struct res again = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    res_free(&again);
    struct tserver_stats st2;
    tserver_stats(s, &st2);
    x.second_asks = st2.expand_asks - x.st.expand_asks;
    x.second_nic_reads = st2.nic_reads - x.st.nic_reads;
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(c);
    tserver_stop(s);
    return x;
}

static const char two_macs[] = "\"macs\":[\"12:44:6A:3B:04:11\",\"12:44:6A:3B:04:12\"]";

/*
 * The inventory reads the NIC collection with its members inline where the service root
 * offers $expand, and member by member where it does not. A member left as a link is read
 * on its own. A BMC that refuses the query it offers, answers it broken or not at all is
 * read member by member from then on; one that was busy is asked again. The MACs come out
 * the same every way.
 */
static void test_expand(const struct ward_rf_client_opts *base, struct tca *ca,
                        const char *ca_path, const char *pw_path)
{
    struct expand_run x =
        inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_DOT, NULL);
    is_int(0, x.r.code, "$expand offered: inventory succeeds (%s)", x.r.reason);
    contains(x.r.json, two_macs, "both MACs from the expanded collection (%s)", x.r.json);
    is_string(".($levels=1)", x.st.expand, "asked for one level of \".\"");
    ok(x.st.nic_reads == 0 && x.second_nic_reads == 0, "no NIC read on its own (%d, %d)",
       x.st.nic_reads, x.second_nic_reads);
    is_int(1, x.second_asks, "the next inventory asks for $expand again");
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_ALL, NULL);
    contains(x.r.json, two_macs, "only \"*\" offered: both MACs (%s)", x.r.json);
    is_string("*", x.st.expand, "asked for \"*\", without $levels the root does not offer");
    is_int(0, x.st.nic_reads, "no NIC read on its own");
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_NONE, NULL);
    contains(x.r.json, two_macs, "no $expand offered: both MACs (%s)", x.r.json);
    is_int(0, x.st.expand_asks, "no $expand asked for");
    is_int(2, x.st.nic_reads, "each NIC read on its own");
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_PARTIAL, NULL);
    contains(x.r.json, two_macs, "one member inline, one a link: both MACs (%s)", x.r.json);
    is_int(1, x.st.nic_reads, "only the linked NIC read on its own");
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_REFUSED, NULL);
    is_int(0, x.r.code, "$expand offered but refused: inventory succeeds (%s)", x.r.reason);
    contains(x.r.json, two_macs, "both MACs, read member by member (%s)", x.r.json);
    ok(x.second_asks == 0 && x.second_nic_reads == 2,
       "the next inventory does not ask again and reads each NIC (%d, %d)", x.second_asks,
       x.second_nic_reads);
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_BROKEN, NULL);
    contains(x.r.json, two_macs, "$expand answered with broken JSON: both MACs (%s)", x.r.json);
    is_int(0, x.second_asks, "the next inventory does not ask again");
    res_free(&x.r);

    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_BUSY, NULL);
    contains(x.r.json, two_macs, "$expand answered 503 once: both MACs (%s)", x.r.json);
    ok(x.second_asks == 1 && x.second_nic_reads == 0,
       "a busy BMC is asked again next time, and inlines the NICs (%d, %d)", x.second_asks,
       x.second_nic_reads);
    res_free(&x.r);

    /* not retried: three timeouts in a row would open this client's breaker (threshold 3) */
    struct ward_rf_client_opts quick = *base;
    quick.timeout = 0.3;
    x = inventory_with_expand(&quick, ca, ca_path, pw_path, TSERVER_EXPAND_HANGS, NULL);
    is_int(0, x.r.code, "$expand offered but never answered: inventory succeeds (%s)", x.r.reason);
    contains(x.r.json, two_macs, "both MACs, read member by member (%s)", x.r.json);
    is_int(1, x.st.expand_asks, "the expanded request was sent once, not retried");
    is_int(0, x.second_asks, "the next inventory does not ask again");
    res_free(&x.r);

    /* Hooks see the collection under its own path, without the query, and each inline
       member under its path, as if read on its own; a site turns $expand off with a hook
       on the service root (doc/redfish.md). */
    char path[600];
    snprintf(path, sizeof(path), "%s/expand-hooks.lua", test_tmpdir());
    write_file(path, "local nics = '/redfish/v1/Systems/1/EthernetInterfaces'\n"
                     "return {quirks = {{name = 'nics',\n"
                     "    response = function(req, resp)\n"
                     "        local d = resp.body\n"
                     "        if type(d) ~= 'table' then return end\n"
                     "        if req.path == nics then table.remove(d.Members, 1) return true end\n"
                     "        if req.path == nics .. '/2' then\n"
                     "            d.MACAddress = 'AA:BB:CC:DD:EE:02' return true\n"
                     "        end\n"
                     "    end}}}\n");
    struct ward_error err = {0};
    struct ward_rf_quirks *q = ward_rf_quirks_load(path, &err);
    ok(q != NULL, "NIC hooks load (%s)", err.text);
    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_DOT, q);
    contains(x.r.json, "\"macs\":[\"AA:BB:CC:DD:EE:02\"]",
             "the hooks ran on the expanded collection and its inline member (%s)", x.r.json);
    is_int(0, x.st.nic_reads, "without reading a NIC on its own");
    res_free(&x.r);
    ward_rf_quirks_free(q);

    snprintf(path, sizeof(path), "%s/no-expand.lua", test_tmpdir());
    write_file(path, "return {quirks = {{name = 'no-expand',\n"
                     "    response = function(req, resp)\n"
                     "        if req.path == '/redfish/v1' and type(resp.body) == 'table' then\n"
                     "            resp.body.ProtocolFeaturesSupported = nil\n"
                     "            return true\n"
                     "        end\n"
                     "    end}}}\n");
    q = ward_rf_quirks_load(path, &err);
    ok(q != NULL, "a hook dropping ProtocolFeaturesSupported loads (%s)", err.text);
    x = inventory_with_expand(base, ca, ca_path, pw_path, TSERVER_EXPAND_DOT, q);
    contains(x.r.json, two_macs, "with it: both MACs (%s)", x.r.json);
    is_int(0, x.st.expand_asks, "no $expand asked for although the root offers it");
    res_free(&x.r);
    ward_rf_quirks_free(q);
}

int main(void)
{
    plan(158);
    loop = ev_default_loop(0);
    const char *dir = test_tmpdir();
    char ca_path[512], pw_path[512], bad_path[512];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
    snprintf(pw_path, sizeof(pw_path), "%s/password", dir);
    snprintf(bad_path, sizeof(bad_path), "%s/badpassword", dir);
    snprintf(logbuf_path, sizeof(logbuf_path), "%s/log.jsonl", dir);
    write_file(pw_path, TSERVER_PASSWORD "\n");
    write_file(bad_path, "wrong-password-1\n");
    FILE *logf = fopen(logbuf_path, "w+");
    ward_log_set_stream(logf);
    struct tca *ca = tca_create("ward test CA");
    tca_write(ca, ca_path);

    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 5;
    o.poll_interval = 0.02;
    o.backoff = 0.01;
    o.backoff_max = 0.05;
    o.random = test_no_jitter;
    o.breaker_threshold = 3;
    o.breaker_open = 60;
    o.power_timeout = 10;
    o.session_backoff = 60;
    o.rate_max = 1000;
    o.metrics = metrics;
    struct ward_error err = {0};
    /* the test service is "Contoso": a site quirk for its 409s, and one that must not run */
    char qpath[600];
    snprintf(qpath, sizeof(qpath), "%s/quirks.lua", dir);
    write_file(qpath,
               "return {quirks = {\n"
               " {name = 'contoso-409', match = {manufacturer = '^Contoso$'},\n"
               "  response = function(req, resp)\n"
               "   if resp.status == 409 then resp.retry_after = 0.01 return true end end},\n"
               " {name = 'never', match = {manufacturer = '^Nobody'},\n"
               "  response = function(req, resp) resp.status = 500 return true end},\n"
               "}}\n");
    struct ward_rf_quirks *quirks = ward_rf_quirks_load(qpath, &err);
    o.quirks = quirks;
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    ok(c != NULL, "client created");

    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca,
                                                             .sessions = true,
                                                             .etag_required = true,
                                                             .tasks = true,
                                                             .power_delay_reads = 2,
                                                             .max_sessions = 1});
    struct ward_rf_bmc_config cfg = {.name = "host-1",
                                     .address = tserver_url(s),
                                     .username = TSERVER_USER,
                                     .password_file = pw_path,
                                     .cainfo = ca_path};
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    ok(b != NULL, "BMC created");

    /* inventory: discovery, login, system, NICs */
    struct res r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    is_int(0, r.code, "inventory succeeds (%s)", r.reason);
    cJSON *inv = cJSON_Parse(r.json);
    is_string("Contoso", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "manufacturer")),
              "manufacturer");
    is_string("437XR1138R2", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "serial")), "serial");
    is_string("P79 v1.45 (12/06/2017)",
              cJSON_GetStringValue(cJSON_GetObjectItem(inv, "bios_version")), "BIOS version");
    is_string("Off", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "power_state")), "power");
    is_int(2, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(inv, "cpu_count")), "CPUs");
    is_int(96, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(inv, "memory_gib")), "memory");
    is_string("12:44:6A:3B:04:11",
              cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(inv, "macs"), 0)),
              "MAC address");
    cJSON_Delete(inv);
    res_free(&r);
    struct tserver_stats st;
    tserver_stats(s, &st);
    is_int(1, st.logins, "one login");
    is_int(1, st.system_reads, "discovery's read of the system serves the inventory");

    /* power on waits until PowerState reflects it */
    r = run(b, WARD_RF_OP_POWER, "On", NULL);
    is_int(0, r.code, "power On succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("On", st.power, "the BMC is on");
    is_int(1, st.resets, "one Reset sent");
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_string("\"On\"", r.json, "power_state reads On");
    res_free(&r);
    r = run(b, WARD_RF_OP_POWER, "On", NULL);
    is_int(0, r.code, "power On when already on succeeds");
    res_free(&r);
    tserver_stats(s, &st);
    is_int(1, st.resets, "without another Reset");
    r = run(b, WARD_RF_OP_POWER, "PowerCycle", NULL);
    is_int(-ENOTSUP, r.code, "a ResetType the BMC does not advertise is refused");
    contains(r.reason, "does not advertise ResetType PowerCycle", "with a reason (%s)", r.reason);
    res_free(&r);

    /* 409 for a while after power-off, then accepted */
    r = run(b, WARD_RF_OP_POWER, "ForceOff", NULL);
    is_int(0, r.code, "ForceOff succeeds (%s)", r.reason);
    res_free(&r);
    tserver_set_faults(s, &(struct tserver_faults){.conflict_409 = 2});
    r = run(b, WARD_RF_OP_POWER, "On", NULL);
    is_int(0, r.code, "power On after two 409 answers succeeds through a quirk (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("On", st.power, "and the BMC is on");

    /* boot override with the ETag the BMC demands */
    r = run(b, WARD_RF_OP_BOOT_ONCE, "Cd", NULL);
    is_int(0, r.code, "set_boot_once Cd succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("Cd", st.boot_target, "boot target Cd");
    is_string("Once", st.boot_enabled, "enabled Once");
    r = run(b, WARD_RF_OP_BOOT_ONCE, "Floppy", NULL);
    is_int(-ENOTSUP, r.code, "a boot target not allowed is refused (%s)", r.reason);
    res_free(&r);
    r = run(b, WARD_RF_OP_BOOT_CLEAR, NULL, NULL);
    is_int(0, r.code, "clear_boot_override succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("Disabled", st.boot_enabled, "override disabled");

    /* virtual media through a task monitor */
    r = run(b, WARD_RF_OP_INSERT_MEDIA, "http://10.0.0.1/a.iso", NULL);
    is_int(0, r.code, "insert_media succeeds (%s)", r.reason);
    res_free(&r);
    r = run(b, WARD_RF_OP_INSERT_MEDIA, "http://10.0.0.1/b.iso", NULL);
    is_int(0, r.code, "inserting another image succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("http://10.0.0.1/b.iso", st.image, "the new image is inserted");
    is_int(1, st.ejects, "after ejecting the old one");
    r = run(b, WARD_RF_OP_EJECT_MEDIA, NULL, NULL);
    is_int(0, r.code, "eject_media succeeds");
    res_free(&r);
    r = run(b, WARD_RF_OP_EJECT_MEDIA, NULL, NULL);
    is_int(0, r.code, "ejecting an empty drive succeeds");
    res_free(&r);
    tserver_stats(s, &st);
    ok(!st.inserted && st.ejects == 2, "one more EjectMedia, nothing inserted");
    r = run(b, WARD_RF_OP_INSERT_MEDIA, "file:///etc/passwd", NULL);
    is_int(-EINVAL, r.code, "a non-HTTP image is refused");
    res_free(&r);

    /* raw calls */
    r = run(b, WARD_RF_OP_GET, "/redfish/v1/Managers/1", NULL);
    contains(r.json, "FirmwareVersion", "get returns the document");
    res_free(&r);
    r = run(b, WARD_RF_OP_GET, "https://evil.example/redfish/v1", NULL);
    is_int(-EINVAL, r.code, "get refuses a path on another host");
    res_free(&r);
    r = run(b, WARD_RF_OP_PATCH, "/redfish/v1/Systems/1",
            "{\"Boot\":{\"BootSourceOverrideTarget\":\"Pxe\"}}");
    is_int(0, r.code, "patch without ETag recovers from 412 (%s)", r.reason);
    res_free(&r);
    r = run(b, WARD_RF_OP_GET, "/redfish/v1/Nope", NULL);
    is_int(-ENOENT, r.code, "a missing resource fails");
    contains(r.reason, "The resource at the URI was not found.", "with the ExtendedInfo message");
    res_free(&r);

    /* expired session: one new login, the operation succeeds */
    tserver_set_faults(s, &(struct tserver_faults){.expire_sessions = true});
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_int(0, r.code, "an expired session is renewed (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_int(2, st.logins, "with exactly one new login");

    /* transient 500s on a GET are retried */
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 2});
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_int(0, r.code, "two 500s then success: retried (%s)", r.reason);
    res_free(&r);
    /* AIMD: two 503s halve the request rate twice, healthy answers raise it again */
    struct ward_rf_bmc_stats rs;
    ward_rf_bmc_stats(b, &rs);
    double rate0 = rs.rate;
    tserver_set_faults(s, &(struct tserver_faults){.error_503 = 2});
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    res_free(&r);
    ward_rf_bmc_stats(b, &rs);
    double rate1 = rs.rate;
    ok(rate1 <= rate0 / 4 + 1 + 1e-9, "two 503s cut the rate sharply (%.1f -> %.1f)", rate0, rate1);
    for (int i = 0; i < 3; i++) {
        r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
        res_free(&r);
    }
    ward_rf_bmc_stats(b, &rs);
    ok(rs.rate > rate1, "healthy answers raise it again (%.1f -> %.1f)", rate1, rs.rate);

    /* a POST is not repeated blindly */
    tserver_stats(s, &st);
    int before = st.requests;
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 1});
    r = run(b, WARD_RF_OP_POST, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "{\"ResetType\":\"On\"}");
    is_int(-EIO, r.code, "a POST answered 500 fails");
    contains(r.reason, "internal service error", "with the BMC's message (%s)", r.reason);
    tserver_stats(s, &st);
    is_int(before + 1, st.requests, "and was sent once");
    res_free(&r);

    /* malformed JSON */
    tserver_set_faults(s, &(struct tserver_faults){.malformed = true});
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    contains(r.reason, "malformed JSON", "malformed JSON gives a reason (%s)", r.reason);
    res_free(&r);
    tserver_set_faults(s, &(struct tserver_faults){0});

    /* a Reset whose answer is lost: the state is read back, the POST is not repeated */
    r = run(b, WARD_RF_OP_POWER, "ForceOff", NULL);
    is_int(0, r.code, "ForceOff (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    int resets = st.resets;
    tserver_set_faults(s, &(struct tserver_faults){.lose_post_answers = true});
    r = run(b, WARD_RF_OP_POWER, "On", NULL);
    is_int(0, r.code, "a Reset whose answer was lost is confirmed from PowerState (%s)", r.reason);
    res_free(&r);
    tserver_set_faults(s, &(struct tserver_faults){0});
    tserver_stats(s, &st);
    is_int(resets + 1, st.resets, "and was sent exactly once");

    /* restarting the BMC itself ends its sessions: the next call logs in again */
    before = st.logins;
    r = run(b, WARD_RF_OP_MANAGER_RESET, NULL, NULL);
    is_int(0, r.code, "manager reset succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_string("GracefulRestart", st.manager_reset, "with a restart type the BMC offers");
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    tserver_stats(s, &st);
    ok(r.code == 0 && st.logins == before + 1, "the next call logs in again (%s)", r.reason);
    res_free(&r);

    /* per-BMC concurrency: many operations, never two requests at once */
    struct res many[6] = {{0}};
    for (int i = 0; i < 6; i++) {
        ward_rf_op_start(b, i % 2 ? WARD_RF_OP_INVENTORY : WARD_RF_OP_POWER_STATE, NULL, NULL,
                         on_op, &many[i]);
    }
    bool all = true;
    for (int i = 0; i < 6; i++) {
        all = test_loop_until(loop, &many[i].done, 30) && all && many[i].code == 0;
        res_free(&many[i]);
    }
    ok(all, "6 queued operations all succeed");
    tserver_stats(s, &st);
    is_int(1, st.max_in_flight, "the BMC never saw more than 1 request at once");
    struct ward_rf_bmc_stats bs;
    ward_rf_bmc_stats(b, &bs);
    is_int(1, bs.max_running, "the client never had more than 1 in flight to it");

    /* a multi-system BMC: one object per system (one host each), one BMC's limit for both */
    struct tserver *multi = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .latency_ms = 20});
    struct ward_rf_bmc_config mcfg = cfg;
    mcfg.address = tserver_url(multi);
    mcfg.name = "blade-1";
    mcfg.system = "1";
    struct ward_rf_bmc *m1 = ward_rf_bmc_create(c, &mcfg, &err);
    mcfg.name = "blade-2";
    mcfg.system = "2";
    struct ward_rf_bmc *m2 = ward_rf_bmc_create(c, &mcfg, &err);
    struct res both[8] = {{0}};
    for (int i = 0; i < 8; i++) {
        ward_rf_op_start(i % 2 ? m2 : m1, i < 4 ? WARD_RF_OP_INVENTORY : WARD_RF_OP_POWER_STATE,
                         NULL, NULL, on_op, &both[i]);
    }
    all = true;
    for (int i = 0; i < 8; i++) {
        all = test_loop_until(loop, &both[i].done, 30) && all && both[i].code == 0;
    }
    ok(all, "operations of both systems all succeed");
    contains(both[1].json, "\"SN2\"", "each object reads its own system");
    for (int i = 0; i < 8; i++) {
        res_free(&both[i]);
    }
    tserver_stats(multi, &st);
    is_int(1, st.max_in_flight, "the BMC never saw two requests at once, from either object");
    ward_rf_bmc_destroy(m1);
    ward_rf_bmc_destroy(m2);
    tserver_stop(multi);

    /* no free sessions: other credentials on the same BMC (a session of their own) back off.
       The same password, from another source: the objects cannot know it is the same */
    struct ward_rf_bmc_config cfg2 = cfg;
    cfg2.name = "host-1-again";
    cfg2.password_file = NULL;
    cfg2.password_env = "WARD_TEST_BMC_PASSWORD";
    setenv(cfg2.password_env, TSERVER_PASSWORD, 1);
    struct ward_rf_bmc *b2 = ward_rf_bmc_create(c, &cfg2, &err);
    r = run(b2, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(-EIO, r.code, "login refused with 503");
    contains(r.reason, "no free sessions", "reason says no free sessions (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    before = st.logins;
    r = run(b2, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(-EBUSY, r.code, "the next operation backs off");
    tserver_stats(s, &st);
    is_int(before, st.logins, "without another login");
    res_free(&r);
    ward_rf_bmc_destroy(b2);

    /* logout at removal */
    ward_rf_bmc_destroy(b);
    ok(wait_logouts(s, 1), "removing the BMC deletes its session");

    /* wrong credentials: reported once, not retried until they change */
    cfg.name = "host-bad";
    cfg.password_file = bad_path;
    b = ward_rf_bmc_create(c, &cfg, &err);
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(-EACCES, r.code, "bad credentials fail");
    contains(r.reason, "Invalid username or password", "with the BMC's reason (%s)", r.reason);
    lacks(r.reason, "wrong-password-1", "the password is not in the reason");
    res_free(&r);
    tserver_stats(s, &st);
    before = st.logins;
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    contains(r.reason, "not logging in again", "a second attempt is refused locally");
    tserver_stats(s, &st);
    is_int(before, st.logins, "without a login that could lock the account");
    res_free(&r);
    write_file(bad_path, TSERVER_PASSWORD "\n");
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(0, r.code, "new credentials in the file are used (%s)", r.reason);
    res_free(&r);
    ward_rf_bmc_destroy(b);
    wait_logouts(s, 2);

    /* logging out of a session the BMC already dropped ends nothing and makes no new one */
    cfg.name = "host-expired";
    cfg.password_file = pw_path;
    b = ward_rf_bmc_create(c, &cfg, &err);
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(0, r.code, "a session is made (%s)", r.reason);
    res_free(&r);
    tserver_set_faults(s, &(struct tserver_faults){.expire_sessions = true});
    tserver_stats(s, &st);
    before = st.logins;
    r = run(b, WARD_RF_OP_LOGOUT, NULL, NULL);
    is_int(0, r.code, "logging out of a session the BMC dropped succeeds (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_int(before, st.logins, "without a login made only to delete the old session");
    ward_rf_bmc_destroy(b);

    /* session tokens of a few KiB (JWT-style) are kept whole; one too long to keep fails
       the login with a reason instead of a 401 and a new login at every request */
    for (int big = 0; big < 2; big++) {
        struct tserver *ts = tserver_start(&(struct tserver_opts){
            .ca = ca, .sessions = true, .max_sessions = 4, .token_len = big ? 5000 : 3000});
        struct ward_rf_bmc_config tcfg = cfg;
        tcfg.name = big ? "host-token-huge" : "host-token-long";
        tcfg.address = tserver_url(ts);
        struct ward_rf_bmc *tb = ward_rf_bmc_create(c, &tcfg, &err);
        r = run(tb, WARD_RF_OP_POWER_STATE, NULL, NULL);
        struct tserver_stats tst;
        tserver_stats(ts, &tst);
        if (!big) {
            ok(r.code == 0 && tst.logins == 1, "a 3,000-byte token is used whole (%s, %d logins)",
               r.reason, tst.logins);
        } else {
            ok(r.code != 0 && strstr(r.reason, "X-Auth-Token header is too long") != NULL,
               "a 5,000-byte one fails the login and says why (%s)", r.reason);
        }
        res_free(&r);
        ward_rf_bmc_destroy(tb);
        bool none = false;
        test_loop_until(loop, &none, 0.2);
        tserver_stop(ts);
    }

    /* circuit breaker */
    cfg.name = "host-breaker";
    cfg.password_file = pw_path;
    b = ward_rf_bmc_create(c, &cfg, &err);
    tserver_set_faults(s, &(struct tserver_faults){.error_503 = 1000});
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    ok(r.code != 0, "a BMC answering 503 fails (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    before = st.requests;
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(-EHOSTDOWN, r.code, "then the breaker is open");
    contains(r.reason, "circuit breaker open", "reason says so (%s)", r.reason);
    tserver_stats(s, &st);
    is_int(before, st.requests, "and nothing reaches the BMC");
    res_free(&r);
    ward_rf_bmc_stats(b, &bs);
    ok(bs.rate < 1000, "the request rate dropped after 503s (%.1f/s)", bs.rate);
    tserver_set_faults(s, &(struct tserver_faults){0});
    ward_rf_bmc_destroy(b);
    tserver_stop(s);

    /* basic auth without a SessionService, ActionInfo, media under Systems, cooldown */
    o.cooldown = 0.05;
    char shipped[600];
    snprintf(shipped, sizeof(shipped), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    struct ward_rf_quirks *shipped_quirks = ward_rf_quirks_load(shipped, &err);
    o.quirks = shipped_quirks;
    struct ward_rf_client *c2 = ward_rf_client_create(loop, &o, &err);
    s = tserver_start(&(struct tserver_opts){.ca = ca,
                                             .basic_auth = true,
                                             .action_info = true,
                                             .media_under_systems = true,
                                             .systems = 2});
    cfg = (struct ward_rf_bmc_config){.name = "host-basic",
                                      .address = tserver_url(s),
                                      .username = TSERVER_USER,
                                      .password_env = "WARD_TEST_PW",
                                      .cainfo = ca_path,
                                      .system = "2"};
    setenv("WARD_TEST_PW", TSERVER_PASSWORD, 1);
    b = ward_rf_bmc_create(c2, &cfg, &err);
    r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    is_int(0, r.code, "basic auth inventory works (%s)", r.reason);
    contains(r.json, "\"SN2\"", "the configured system is used");
    res_free(&r);
    /* a password rotated to a wrong one: refused once, then not sent until it changes */
    setenv("WARD_TEST_PW", "wrong-password-2", 1);
    struct tserver_stats bst;
    tserver_stats(s, &bst);
    int sent = bst.requests;
    for (int i = 0; i < 5; i++) {
        r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
        ok(r.code == -EACCES, "basic auth with a refused password fails (%d: %s)", i, r.reason);
        res_free(&r);
    }
    tserver_stats(s, &bst);
    is_int(sent + 1, bst.requests, "and only the first carried it to the BMC");
    setenv("WARD_TEST_PW", TSERVER_PASSWORD, 1);
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_int(0, r.code, "the right password is sent again once it changes (%s)", r.reason);
    res_free(&r);
    ward_rf_bmc_destroy(b);
    /* discovery's read of the system serves an inventory only when nothing came between */
    b = ward_rf_bmc_create(c2, &cfg, &err);
    tserver_stats(s, &st);
    before = st.system_reads;
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    is_int(0, r.code, "connect (%s)", r.reason);
    res_free(&r);
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_string("\"Off\"", r.json, "power state read between");
    res_free(&r);
    r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    is_int(0, r.code, "inventory after another operation (%s)", r.reason);
    res_free(&r);
    tserver_stats(s, &st);
    is_int(3, st.system_reads - before, "the inventory read the system itself");
    ward_rf_bmc_destroy(b);
    /* the enrollment path: connect, then inventory; the reused answer meets the response
       hooks as the inventory's, with the manufacturer discovery learned after reading it */
    char hooked_path[600];
    snprintf(hooked_path, sizeof(hooked_path), "%s/hooked.lua", test_tmpdir());
    write_file(hooked_path, "-- SPDX-License-Identifier: Apache-2.0\n"
                            "return {quirks = {{name = 'serial', match = {manufacturer = '^Contoso'},\n"
                            "    response = function(req, resp)\n"
                            "        local d = req.op == 'inventory' and resp.body\n"
                            "        if type(d) == 'table' and d.SerialNumber then\n"
                            "            d.SerialNumber = 'hooked-' .. d.SerialNumber\n"
                            "            return true\n"
                            "        end\n"
                            "    end}}}\n");
    struct ward_rf_quirks *hooked = ward_rf_quirks_load(hooked_path, &err);
    ok(hooked != NULL, "a site's quirks load");
    struct ward_rf_client_opts o3 = o;
    o3.quirks = hooked;
    struct ward_rf_client *ch = ward_rf_client_create(loop, &o3, &err);
    b = ward_rf_bmc_create(ch, &cfg, &err);
    tserver_stats(s, &st);
    before = st.system_reads;
    int before_mgr = st.manager_reads;
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    res_free(&r);
    r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    contains(r.json, "\"hooked-SN2\"", "the inventory's hooks saw the reused answer (%s)", r.json);
    res_free(&r);
    tserver_stats(s, &st);
    is_int(1, st.system_reads - before, "connect and inventory read the system once");
    is_int(0, st.manager_reads - before_mgr,
           "and, no quirk selecting by firmware, not the manager");
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(ch);
    ward_rf_quirks_free(hooked);
    /* a quirk selected by the manager's firmware: discovery reads the manager for it */
    write_file(hooked_path, "-- SPDX-License-Identifier: Apache-2.0\n"
                            "return {quirks = {{name = 'fw', match = {firmware = '^1%.00$'},\n"
                            "    response = function(req, resp)\n"
                            "        local d = req.op == 'inventory' and resp.body\n"
                            "        if type(d) == 'table' and d.SerialNumber then\n"
                            "            d.SerialNumber = 'fw-' .. d.SerialNumber\n"
                            "            return true\n"
                            "        end\n"
                            "    end}}}\n");
    hooked = ward_rf_quirks_load(hooked_path, &err);
    o3.quirks = hooked;
    ch = ward_rf_client_create(loop, &o3, &err);
    b = ward_rf_bmc_create(ch, &cfg, &err);
    tserver_stats(s, &st);
    before_mgr = st.manager_reads;
    r = run(b, WARD_RF_OP_INVENTORY, NULL, NULL);
    contains(r.json, "\"fw-SN2\"", "a hook selected by firmware applies (%s)", r.json);
    res_free(&r);
    tserver_stats(s, &st);
    is_int(1, st.manager_reads - before_mgr, "discovery read the manager once for its firmware");
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(ch);
    ward_rf_quirks_free(hooked);
    cfg.system = NULL;
    b = ward_rf_bmc_create(c2, &cfg, &err);
    r = run(b, WARD_RF_OP_POWER, "GracefulShutdown", NULL);
    is_int(-ENOTSUP, r.code, "ActionInfo without GracefulShutdown refuses it");
    res_free(&r);
    r = run(b, WARD_RF_OP_POWER, "On", NULL);
    is_int(0, r.code, "ActionInfo with On allows it (%s)", r.reason);
    res_free(&r);
    r = run(b, WARD_RF_OP_INSERT_MEDIA, "https://10.0.0.1/c.iso", NULL);
    is_int(0, r.code, "virtual media moved under Systems is found through a quirk (%s)", r.reason);
    res_free(&r);
    ward_rf_bmc_stats(b, &bs);
    ok(bs.cooldown_waits >= 1, "operations waited for the cooldown (%u)", bs.cooldown_waits);
    struct ward_buf text = {0};
    ward_metrics_render(metrics, &text);
    contains(text.data, "ward_bmc_cooldown_waits_total{bmc=\"host-basic\"}",
             "cooldown waits are counted");
    contains(text.data, "ward_bmc_operation_duration_seconds_count{operation=\"insert_media\"}",
             "operation durations are recorded");
    ward_buf_free(&text);
    ward_rf_bmc_destroy(b);
    tserver_stop(s);

    /* a certificate from another CA */
    struct tca *other = tca_create("another CA");
    s = tserver_start(&(struct tserver_opts){.ca = other, .basic_auth = true});
    cfg.address = tserver_url(s);
    b = ward_rf_bmc_create(c2, &cfg, &err);
    r = run(b, WARD_RF_OP_CONNECT, NULL, NULL);
    contains(r.reason, "certificate verify failed", "a wrong certificate fails (%s)", r.reason);
    res_free(&r);
    ward_rf_bmc_destroy(b);
    tserver_stop(s);
    tca_free(other);

    /* every answer slower than slow_answer halves the rate */
    struct ward_rf_client_opts slow = o;
    slow.slow_answer = 1e-9;
    slow.quirks = NULL;
    slow.metrics = NULL;
    struct ward_rf_client *c3 = ward_rf_client_create(loop, &slow, &err);
    s = tserver_start(&(struct tserver_opts){.ca = ca, .basic_auth = true});
    cfg.address = tserver_url(s);
    b = ward_rf_bmc_create(c3, &cfg, &err);
    r = run(b, WARD_RF_OP_POWER_STATE, NULL, NULL);
    is_int(0, r.code, "a BMC that answers slowly is still served (%s)", r.reason);
    res_free(&r);
    ward_rf_bmc_stats(b, &bs);
    ok(bs.rate <= slow.rate_max / 8, "and its request rate fell sharply (%.1f of %.0f)", bs.rate,
       slow.rate_max);
    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(c3);
    tserver_stop(s);

    test_class_caps(&o, ca, ca_path, pw_path);
    test_expand(&o, ca, ca_path, pw_path);

    /* configuration errors */
    cfg.address = "https://admin:pw@127.0.0.1:1";
    ok(ward_rf_bmc_create(c2, &cfg, &err) == NULL, "credentials in the address are refused");
    contains(err.text, "do not belong in the address", "with a reason");
    o.max_ops = 21;
    ok(ward_rf_client_create(loop, &o, &err) == NULL, "maxConcurrentOps 21 is refused");
    o.max_ops = 20;
    o.max_reads = 1025;
    ok(ward_rf_client_create(loop, &o, &err) == NULL, "maxConcurrentReads 1025 is refused");
    contains(err.text, "maxConcurrentReads must be between 1 and 1024", "with a reason (%s)",
             err.text);

    /* no secret reached the log */
    fflush(logf);
    char *log = test_slurp(logbuf_path);
    lacks(log != NULL ? log : "", TSERVER_PASSWORD, "the password never reached the log");
    contains(log != NULL ? log : "",
             "$expand=.($levels=1) failed (HTTP 400); reading collections member by member "
             "from now on",
             "a refused $expand is logged");
    contains(log != NULL ? log : "",
             "$expand=.($levels=1) failed (HTTP 503); reading this collection member by member",
             "and a busy one");
    contains(log != NULL ? log : "", "$expand=.($levels=1) failed (GET ", "and one never answered");
    free(log);

    ward_rf_client_destroy(c2);
    ward_rf_client_destroy(c);
    ward_metrics_destroy(metrics);
    ward_rf_quirks_free(quirks);
    ward_rf_quirks_free(shipped_quirks);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
