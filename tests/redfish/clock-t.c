/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Redfish client while the wall clock is set, as NTP or an operator sets it: set back
 * half an hour, an open circuit breaker still closes after its second and the BMC's paced
 * requests still go; set forward an hour, a power change still waits for the BMC instead
 * of timing out at once. Against tserver, with tests/core/clockstep.c in place of the
 * clock functions.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ev.h>

#include "../core/clockstep.h"
#include "log.h"
#include "loop.h"
#include "redfish/bmc.h"
#include "tap/basic.h"
#include "tserver.h"
#include "util.h"

static struct ev_loop *loop;

static void run(struct ward_rf_bmc *b, enum ward_rf_op_kind kind, const char *arg,
                struct test_result *r)
{
    memset(r, 0, sizeof(*r));
    ward_rf_op_start(b, kind, arg, NULL, test_on_result, r);
    if (!test_loop_until(loop, &r->done, 30)) {
        r->code = -ETIME;
        snprintf(r->reason, sizeof(r->reason), "no end within 30 s");
    }
}

int main(void)
{
    plan(6);
    loop = ev_default_loop(0);
    const char *dir = test_tmpdir();
    char ca_path[512], pw_path[512];
    struct tca *ca = tserver_client_files(dir, ca_path, pw_path);
    FILE *logf = tserver_log_file(dir);

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.retries = 0;
    o.breaker_threshold = 1;
    o.breaker_open = 1;
    o.poll_interval = 0.1;
    o.power_timeout = 20;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true});
    struct ward_rf_bmc_config cfg = {.name = "host-1",
                                     .address = tserver_url(s),
                                     .username = TSERVER_USER,
                                     .password_file = pw_path,
                                     .cainfo = ca_path};
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    if (b == NULL) {
        bail("bmc: %s", err.text);
    }
    struct test_result r;
    run(b, WARD_RF_OP_INVENTORY, NULL, &r);
    is_int(0, r.code, "the host is read (%s)", r.reason);

    /* a 500 opens the breaker for 1 s; then the wall clock goes back half an hour */
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 1});
    run(b, WARD_RF_OP_POWER_STATE, NULL, &r);
    ok(r.code != 0, "a read answered 500 fails and opens the breaker (%s)", r.reason);
    double loop_time = ev_now(loop);
    clockstep_by(-1800);
    test_loop_for(loop, 1.5); /* the breaker's second, and libev reading the wall clock */
    ok(ev_now(loop) - loop_time < -1000,
       "the loop's own clock went back with the wall clock (%+.0f s)", ev_now(loop) - loop_time);
    struct ward_rf_bmc_stats bs;
    ward_rf_bmc_stats(b, &bs);
    struct tserver_stats st;
    tserver_stats(s, &st);
    int before = st.requests;
    run(b, WARD_RF_OP_POWER_STATE, NULL, &r);
    tserver_stats(s, &st);
    ok(!bs.breaker_open && r.code == 0 && st.requests > before,
       "a second later the breaker is closed and a read goes to the BMC (%d requests: %s)",
       st.requests - before, r.reason);

    /* at another BMC, a power change polls for about a second; the wall clock moves an hour
       forward */
    struct tserver *s2 =
        tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .power_delay_reads = 10});
    cfg.name = "host-2";
    cfg.address = tserver_url(s2);
    struct ward_rf_bmc *b2 = ward_rf_bmc_create(c, &cfg, &err);
    if (b2 == NULL) {
        bail("bmc: %s", err.text);
    }
    memset(&r, 0, sizeof(r));
    ward_rf_op_start(b2, WARD_RF_OP_POWER, "On", NULL, test_on_result, &r);
    clockstep_by(3600);
    bool done = test_loop_until(loop, &r.done, 30);
    ok(done && r.code == 0, "the power change waits for the BMC, within its 20 s (%s)", r.reason);
    tserver_stats(s2, &st);
    is_string("On", st.power, "and the host is on");

    ward_rf_bmc_destroy(b);
    ward_rf_bmc_destroy(b2);
    test_loop_for(loop, 0.2); /* the logouts */
    tserver_stop(s);
    tserver_stop(s2);
    ward_rf_client_destroy(c);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    return 0;
}
