/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Closing a BMC (its host removed, or wardd shutting down) against ward-bmcsim: the
 * session is deleted, but only once the request the BMC is working on has finished, so
 * the BMC never has two of ours at once; and operations that would outlast a shutdown
 * (a power change being waited for) end at once instead of holding the logout back.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <lauxlib.h>

#include "../bmcsim/simclient.h"
#include "log.h"
#include "loop.h"
#include "redfish/bmc.h"
#include "redfish/driver.h"
#include "tap/basic.h"

static struct ev_loop *loop;
static struct sim s;

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

struct self_destroy {
    struct ward_rf_bmc *b;
    bool *flag;
};

static void destroy_in_closed(void *arg)
{
    struct self_destroy *sd = arg;
    ward_rf_bmc_destroy(sd->b);
    *sd->flag = true;
}

static void on_done_count(void *arg)
{
    (*(int *)arg)++;
}

/* Run the loop in short steps until the simulator's counter of BMC i has come up (or down)
 * to want (bounded); the counter's last value. */
static double run_until_counter(int i, const char *name, double want, double bound)
{
    double v = sim_counter(&s, i, name);
    bool up = v < want;
    for (int step = 0; (up ? v < want : v > want) && step < (int)(bound / 0.02); step++) {
        bool never = false;
        test_loop_until(loop, &never, 0.02);
        v = sim_counter(&s, i, name);
    }
    return v;
}

static struct ward_rf_bmc *bmc_for(struct ward_rf_client *c, int i, const char *name)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(s.fleet, "bmcs"), i);
    struct ward_rf_bmc_config cfg = {
        .name = name,
        .address = cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")),
        .username = cJSON_GetStringValue(cJSON_GetObjectItem(e, "username")),
        .password_file = cJSON_GetStringValue(cJSON_GetObjectItem(e, "password_file")),
        .cainfo = s.ca,
    };
    struct ward_error err = {0};
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    if (b == NULL) {
        bail("BMC %s: %s", name, err.text);
    }
    return b;
}

/* A host's spec naming BMC i of the fleet, as the driver reads it. */
static char *spec_for(int i, bool insecure)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(s.fleet, "bmcs"), i);
    char *out = malloc(2048);
    if (out == NULL) {
        bail("out of memory");
    }
    snprintf(out, 2048,
             "{\"bmc\":{\"address\":\"%s\",\"username\":\"%s\",\"passwordFile\":\"%s\","
             "\"caBundle\":\"%s\",\"insecure\":%s}}",
             cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")),
             cJSON_GetStringValue(cJSON_GetObjectItem(e, "username")),
             cJSON_GetStringValue(cJSON_GetObjectItem(e, "password_file")), s.ca,
             insecure ? "true" : "false");
    return out;
}

static void connect_to(struct ward_rf_bmc *b)
{
    struct test_result r = {0};
    ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &r);
    if (!test_loop_until(loop, &r.done, 30) || r.code != 0) {
        bail("connect %s: %s", ward_rf_bmc_name(b), r.reason);
    }
}

/* Orders of events a live agent produces (BMCs 5 to 11, 400 ms latency where it matters). */
static void races(struct ward_rf_client_opts *o)
{
    o->concurrency = 1;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, o, &err);

    /* settings change while the old BMC's first request (the root: no session yet) is on
       the wire: nothing to log out, but the new BMC still waits for that request */
    sim_control_post(&s, "/control/faults", "{\"bmc\":5,\"latency_ms\":400}");
    struct ward_rf_bmc *b = bmc_for(c, 5, "fresh");
    struct test_result r0 = {0}, r1 = {0};
    ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &r0);
    run_until_counter(5, "active_requests", 1, 10);
    struct ward_rf_bmc *renewed = bmc_for(c, 5, "fresh");
    ward_rf_bmc_destroy(b);
    ward_rf_op_start(renewed, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &r1);
    test_loop_until(loop, &r1.done, 30);
    is_int(1, (int)sim_counter(&s, 5, "max_concurrent"),
           "a new BMC never runs beside the old one's sessionless last request");
    ward_rf_bmc_destroy(renewed);
    run_until_counter(5, "active_sessions", 0, 5);

    /* the owner cancels (a run's deadline; the engine cancels a removed host's run first),
       then the host is removed: the BMC is still working on the request */
    sim_control_post(&s, "/control/faults", "{\"bmc\":6,\"latency_ms\":400}");
    b = bmc_for(c, 6, "cancelled");
    connect_to(b);
    struct test_result r2 = {0};
    struct ward_rf_op *op =
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &r2);
    run_until_counter(6, "active_requests", 1, 10);
    ward_rf_op_cancel(op);
    ward_rf_bmc_destroy(b);
    run_until_counter(6, "active_sessions", 0, 5);
    ok(!r2.done, "a cancelled operation's owner hears nothing more");
    is_int(1, (int)sim_counter(&s, 6, "max_concurrent"),
           "the logout waits for the cancelled request the BMC still works on");

    /* a shutdown closes the BMC, then its host is removed during the grace */
    sim_control_post(&s, "/control/faults", "{\"bmc\":7,\"latency_ms\":400}");
    b = bmc_for(c, 7, "closing-then-removed");
    connect_to(b);
    struct test_result r3 = {0};
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &r3);
    run_until_counter(7, "active_requests", 1, 10);
    bool closed = false;
    ok(ward_rf_bmc_close(b, on_closed, &closed), "a shutdown closes the BMC");
    ward_rf_bmc_destroy(b);
    ok(test_loop_until(loop, &closed, 10),
       "removing its host meanwhile still lets the shutdown's close end");
    is_int(0, (int)run_until_counter(7, "active_sessions", 0, 5), "with the session deleted");

    /* two BMC objects at one address are removed, and a third is made there */
    sim_control_post(&s, "/control/faults", "{\"bmc\":8,\"latency_ms\":400}");
    struct ward_rf_bmc *n1 = bmc_for(c, 8, "node1");
    struct ward_rf_bmc *n2 = bmc_for(c, 8, "node2");
    connect_to(n1);
    connect_to(n2);
    ward_rf_bmc_destroy(n1);
    ward_rf_bmc_destroy(n2);
    struct ward_rf_bmc *n3 = bmc_for(c, 8, "node3");
    struct test_result r4 = {0};
    ward_rf_op_start(n3, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &r4);
    test_loop_until(loop, &r4.done, 30);
    is_int(1, (int)sim_counter(&s, 8, "max_concurrent"),
           "the third waits for every closing object at the address");
    ward_rf_bmc_destroy(n3);
    run_until_counter(8, "active_sessions", 0, 5);

    /* the driver: a shutdown, then a run still going opens its host with changed settings */
    lua_State *L = luaL_newstate();
    struct ward_rf_driver *d = ward_rf_driver_create(c, &(struct ward_rf_driver_opts){0});
    char *spec = spec_for(9, false), *changed = spec_for(9, true);
    if (ward_rf_driver_open(d, L, "h9", spec) != 1 || lua_isnil(L, -1)) {
        bail("open h9: %s", lua_tostring(L, -1));
    }
    lua_settop(L, 0);
    connect_to(ward_rf_driver_bmc(d, "h9"));
    int done = 0;
    unsigned n = ward_rf_driver_logout_all(d, on_done_count, &done);
    ward_rf_driver_open(d, L, "h9", changed);
    lua_settop(L, 0);
    struct test_result r5 = {0};
    errno = 0;
    ok(ward_rf_op_start(ward_rf_driver_bmc(d, "h9"), WARD_RF_OP_CONNECT, NULL, NULL, test_on_result,
                        &r5) == NULL,
       "after a shutdown began, changed settings give no BMC that takes operations");
    test_loop_for(loop, 1);
    ok(n == 1 && done == 1, "and the shutdown's hold is released (%u, %d)", n, done);
    is_int(0, (int)sim_counter(&s, 9, "active_sessions"), "with no session left");
    ward_rf_driver_destroy(d);

    /* a host removed just before a shutdown: the shutdown waits for its logout too */
    d = ward_rf_driver_create(c, &(struct ward_rf_driver_opts){0});
    sim_control_post(&s, "/control/faults", "{\"bmc\":10,\"latency_ms\":400}");
    char *spec10 = spec_for(10, false);
    ward_rf_driver_open(d, L, "h10", spec10);
    lua_settop(L, 0);
    struct ward_rf_bmc *b10 = ward_rf_driver_bmc(d, "h10");
    connect_to(b10);
    struct test_result r6 = {0};
    ward_rf_op_start(b10, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &r6);
    run_until_counter(10, "active_requests", 1, 10);
    ward_rf_driver_remove(d, "h10");
    done = 0;
    n = ward_rf_driver_logout_all(d, on_done_count, &done);
    is_int(1, (int)n, "the shutdown counts the removed host's close");
    bool all = false;
    for (int i = 0; i < 250 && done < (int)n; i++) {
        test_loop_for(loop, 0.02);
    }
    all = done == (int)n;
    ok(all, "and waits for it");
    is_int(0, (int)sim_counter(&s, 10, "active_sessions"), "which deleted its session");
    ward_rf_driver_destroy(d);

    /* a login whose owner let go (a run past its deadline) is refused: the operations
       parked on it fail, and the refused password is not sent again */
    o->concurrency = 2;
    struct ward_rf_client *c2 = ward_rf_client_create(loop, o, &err);
    sim_control_post(&s, "/control/faults", "{\"bmc\":11,\"latency_ms\":400}");
    sim_control_post(&s, "/control/password", "{\"bmc\":11,\"write_file\":false}");
    b = bmc_for(c2, 11, "rotated");
    double sent = sim_counter(&s, 11, "requests");
    struct test_result owner = {0}, parked = {0};
    op = ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &owner);
    run_until_counter(11, "requests", sent + 2, 10); /* the root was read, the login arrived */
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &parked);
    test_loop_for(loop, 0.05);
    ward_rf_op_cancel(op);
    ok(test_loop_until(loop, &parked.done, 10) && parked.code == -EACCES,
       "an operation parked on a cancelled login that is refused fails (%s)", parked.reason);
    is_int(1, (int)sim_counter(&s, 11, "login_failures"), "and the password was sent once");

    /* destroying a BMC from inside the callback of its own close */
    b = bmc_for(c2, 11, "self-destroying");
    bool freed = false;
    struct self_destroy sd = {b, &freed};
    ok(ward_rf_bmc_close(b, destroy_in_closed, &sd), "a close whose callback destroys the BMC");
    ok(test_loop_until(loop, &freed, 5), "runs, and the BMC is freed after it (ASan watches)");
    ward_rf_bmc_destroy(b = bmc_for(c2, 11, "spare")); /* the client still works */
    ward_rf_client_destroy(c2);
    ward_rf_client_destroy(c);
    lua_close(L);
    free(spec);
    free(changed);
    free(spec10);
}

int main(void)
{
    plan(39);
    loop = ev_default_loop(0);
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/log", test_tmpdir());
    FILE *log = fopen(logpath, "w+");
    ward_log_set_stream(log);
    sim_start(&s, (const char *const[]){"-n", "12", "--power-delay-ms", "3000", NULL});
    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 10;
    o.poll_interval = 0.05;
    o.rate_max = 1000;
    o.power_timeout = 30;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    if (c == NULL) {
        bail("client: %s", err.text);
    }

    /* a host removed while its BMC works on a slow request */
    sim_control_post(&s, "/control/faults", "{\"bmc\":0,\"latency_ms\":400}");
    struct ward_rf_bmc *b = bmc_for(c, 0, "slow");
    connect_to(b);
    struct test_result busy = {0};
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &busy);
    is_int(1, (int)run_until_counter(0, "active_requests", 1, 10), "a request is on the BMC");
    ward_rf_bmc_destroy(b);
    ok(busy.done && busy.code == -ECANCELED, "removing the host ends its operation at once (%s)",
       busy.reason);
    is_int(0, (int)run_until_counter(0, "active_sessions", 0, 10),
           "the session is deleted once that request has finished");
    is_int(1, (int)sim_counter(&s, 0, "max_concurrent"),
           "and the BMC never had two requests of ours at once");
    is_int(1, (int)sim_counter(&s, 0, "logouts"), "with one logout");

    /* the host's BMC settings change while the old BMC works on a slow request: the driver
       makes the new BMC, then destroys the old one. Same address, same credentials: the new
       one goes on with the old one's session */
    sim_control_post(&s, "/control/faults", "{\"bmc\":2,\"latency_ms\":400}");
    b = bmc_for(c, 2, "changing");
    connect_to(b);
    double logins = sim_counter(&s, 2, "logins");
    struct test_result old_op = {0};
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &old_op);
    run_until_counter(2, "active_requests", 1, 10);
    struct ward_rf_bmc *renewed = bmc_for(c, 2, "changing");
    ward_rf_bmc_destroy(b);
    struct test_result first = {0};
    ward_rf_op_start(renewed, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &first);
    ok(test_loop_until(loop, &first.done, 30) && first.code == 0,
       "the new BMC connects once the old one is gone (%s)", first.reason);
    is_int(1, (int)sim_counter(&s, 2, "max_concurrent"),
           "the old one's last request and logout never overlap the new one's");
    ok(sim_counter(&s, 2, "active_sessions") == 1 && sim_counter(&s, 2, "logins") == logins &&
           sim_counter(&s, 2, "logouts") == 0,
       "one session is left, the one the old BMC made: no login or logout between them");
    ward_rf_bmc_destroy(renewed);

    /* shutdown while a power change is being waited for (3 s on this BMC) */
    b = bmc_for(c, 1, "powering");
    connect_to(b);
    struct test_result power = {0};
    ward_rf_op_start(b, WARD_RF_OP_POWER, "On", NULL, test_on_result, &power);
    double before = sim_counter(&s, 1, "requests");
    ok(run_until_counter(1, "requests", before + 4, 10) >= before + 4,
       "the power change is being waited for (its reads go on)");
    bool closed = false;
    ok(ward_rf_bmc_close(b, on_closed, &closed), "closing queues the logout");
    ok(power.done && power.code == -ECANCELED,
       "the power wait ends at once instead of holding the logout back (%s)", power.reason);
    errno = 0;
    ok(ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &power) == NULL &&
           errno == ESHUTDOWN,
       "a closing BMC refuses new operations, so no run logs in again behind the logout");
    ok(test_loop_until(loop, &closed, 15), "the close completes");
    is_int(0, (int)sim_counter(&s, 1, "active_sessions"), "and the BMC holds no session of ours");
    ward_rf_bmc_destroy(b);

    /* two hosts on one BMC (a multi-system BMC), wardd shuts down: their session ends */
    sim_control_post(&s, "/control/faults", "{\"bmc\":3,\"latency_ms\":0}");
    struct ward_rf_bmc *n1 = bmc_for(c, 3, "node1");
    struct ward_rf_bmc *n2 = bmc_for(c, 3, "node2");
    connect_to(n1);
    connect_to(n2);
    bool c1 = false, c2 = false;
    ok(ward_rf_bmc_close(n1, on_closed, &c1) && ward_rf_bmc_close(n2, on_closed, &c2),
       "two BMC objects at one address close");
    ok(test_loop_until(loop, &c1, 10) && test_loop_until(loop, &c2, 10), "both closes complete");
    is_int(0, (int)sim_counter(&s, 3, "active_sessions"), "leaving no session on the BMC");
    ward_rf_bmc_destroy(n1);
    ward_rf_bmc_destroy(n2);
    ward_rf_client_destroy(c);

    /* a site allowing two requests at once per BMC: the close still waits for the wire */
    o.concurrency = 2;
    c = ward_rf_client_create(loop, &o, &err);
    sim_control_post(&s, "/control/faults", "{\"bmc\":3,\"latency_ms\":400}");
    double max_before = sim_counter(&s, 3, "max_concurrent");
    b = bmc_for(c, 3, "two-at-once");
    struct test_result conn = {0};
    double reqs = sim_counter(&s, 3, "requests");
    ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &conn);
    run_until_counter(3, "requests", reqs + 2, 10); /* the root was read, the login arrived */
    closed = false;
    ok(ward_rf_bmc_close(b, on_closed, &closed), "closing while the login is on the wire");
    ok(test_loop_until(loop, &closed, 15), "completes");
    is_int(0, (int)run_until_counter(3, "active_sessions", 0, 5),
           "and deletes the session that login made");
    ok(sim_counter(&s, 3, "max_concurrent") <= (max_before > 1 ? max_before : 1),
       "without sending the logout beside the login (max %.0f)",
       sim_counter(&s, 3, "max_concurrent"));
    ward_rf_bmc_destroy(b);

    ward_rf_client_destroy(c);
    races(&o);
    is_int(0, sim_stop(&s), "the simulator stops cleanly");
    fclose(log);
    return 0;
}
