/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A multi-system BMC: one BMC object per system (one host each) at one address. The BMC's
 * limits hold across them: never two requests at once, a request ward gave up on keeps the
 * other system quiet for the backoff too, and a long wait of one system (a power change
 * polling) takes no request slot between its polls, so the other system is not held up.
 * Requests that wait for the BMC go in the order they came, paced or not. A BMC out of
 * sessions is backed off as a whole.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "loop.h"
#include "redfish/bmc.h"
#include "tap/basic.h"
#include "tserver.h"
#include "util.h"

static struct ev_loop *loop;

/* An operation's end and the order in which operations ended. */
struct res {
    bool done;
    int code;
    int order;
    char reason[512];
};

static int ended;

static void on_op(void *arg, int code, const cJSON *result, const char *reason)
{
    (void)result;
    struct res *r = arg;
    r->done = true;
    r->code = code;
    r->order = ++ended;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static double zero_jitter(void *arg)
{
    (void)arg;
    return 0.0;
}

/* Three systems each running inventories back to back: how many operations of the others
   ended before each one's first. */
static struct ward_rf_bmc *trio[3];
static int trio_left[3], trio_first[3], trio_ended, trio_failed;
static bool trio_done;

static void on_trio(void *arg, int code, const cJSON *result, const char *reason)
{
    (void)result;
    (void)reason;
    int i = (int)(intptr_t)arg;
    trio_failed += code != 0;
    if (trio_first[i] < 0) {
        trio_first[i] = trio_ended;
    }
    trio_ended++;
    if (--trio_left[i] > 0) {
        ward_rf_op_start(trio[i], WARD_RF_OP_INVENTORY, NULL, NULL, on_trio, arg);
    }
    trio_done = trio_left[0] == 0 && trio_left[1] == 0 && trio_left[2] == 0;
}

/* The two systems of test BMC s, as hosts n1 (system 1) and n2 (system 2) with cfg's
   credentials; bails when one cannot be made. cfg keeps s's address. */
static void two_systems(struct ward_rf_client *c, struct ward_rf_bmc_config *cfg, struct tserver *s,
                        const char *n1, const char *n2, struct ward_rf_bmc **b1,
                        struct ward_rf_bmc **b2)
{
    struct ward_error err = {0};
    cfg->address = tserver_url(s);
    cfg->name = n1;
    cfg->system = "1";
    *b1 = ward_rf_bmc_create(c, cfg, &err);
    cfg->name = n2;
    cfg->system = "2";
    *b2 = ward_rf_bmc_create(c, cfg, &err);
    if (*b1 == NULL || *b2 == NULL) {
        bail("bmc: %s", err.text);
    }
}

static void both(struct ward_rf_bmc *m1, struct ward_rf_bmc *m2, enum ward_rf_op_kind kind,
                 struct res *r1, struct res *r2)
{
    ward_rf_op_start(m1, kind, NULL, NULL, on_op, r1);
    ward_rf_op_start(m2, kind, NULL, NULL, on_op, r2);
    test_loop_until(loop, &r1->done, 20);
    test_loop_until(loop, &r2->done, 20);
}

int main(void)
{
    plan(10);
    loop = ev_default_loop(0);
    const char *dir = test_tmpdir();
    char ca_path[512], pw_path[512];
    struct tca *ca = tserver_client_files(dir, ca_path, pw_path);
    FILE *logf = tserver_log_file(dir);

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 1;
    o.retries = 0;
    o.backoff = 2; /* after a timeout, nothing goes to the BMC for 2 s */
    o.backoff_max = 2;
    o.random = zero_jitter;
    o.rate_max = 1000;
    o.poll_interval = 0.1;
    o.power_timeout = 20;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);

    /* a request ward gave up on is still worked on by the BMC */
    struct tserver *s =
        tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2});
    struct ward_rf_bmc_config cfg = {
        .username = TSERVER_USER, .password_file = pw_path, .cainfo = ca_path};
    struct ward_rf_bmc *m1, *m2;
    two_systems(c, &cfg, s, "blade-1", "blade-2", &m1, &m2);
    struct res a = {0}, b = {0};
    both(m1, m2, WARD_RF_OP_INVENTORY, &a, &b);
    ok(a.code == 0 && b.code == 0, "both systems are read (%s%s)", a.reason, b.reason);
    tserver_set_faults(s, &(struct tserver_faults){.slow_next_ms = 1600});
    struct res a2 = {0}, b2 = {0};
    both(m1, m2, WARD_RF_OP_POWER_STATE, &a2, &b2);
    is_int(-ETIMEDOUT, a2.code, "blade-1's read is given up after 1 s (%s)", a2.reason);
    is_int(0, b2.code, "blade-2's read is answered (%s)", b2.reason);
    struct tserver_stats st;
    tserver_stats(s, &st);
    is_int(1, st.max_in_flight,
           "blade-2's request waited for the request ward gave up on, and the backoff");

    /* one system's power change polls for a while: the other system's read goes between */
    struct tserver *s2 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .power_delay_reads = 30});
    struct ward_rf_bmc *m3, *m4;
    two_systems(c, &cfg, s2, "blade-3", "blade-4", &m3, &m4);
    struct res d3 = {0}, d4 = {0};
    both(m3, m4, WARD_RF_OP_INVENTORY, &d3, &d4);
    struct res power = {0}, read = {0};
    ward_rf_op_start(m3, WARD_RF_OP_POWER, "On", NULL, on_op, &power);
    ward_rf_op_start(m4, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &read);
    test_loop_until(loop, &read.done, 30);
    test_loop_until(loop, &power.done, 30);
    ok(power.code == 0 && read.code == 0, "the power change and the read succeed (%s%s)",
       power.reason, read.reason);
    ok(read.order < power.order, "the read ended while the power change was still polling");
    tserver_stats(s2, &st);
    is_int(1, st.max_in_flight, "and the BMC never saw two requests at once");

    /* paced requests (a BMC whose rate AIMD has cut): the oldest waiting still goes first */
    struct ward_rf_client_opts po = o;
    po.rate_max = po.rate_min = 50;
    struct ward_rf_client *paced = ward_rf_client_create(loop, &po, &err);
    struct tserver *s3 =
        tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2});
    cfg.address = tserver_url(s3);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "node-%d", i);
        cfg.name = name;
        cfg.system = i == 1 ? "2" : "1";
        trio[i] = ward_rf_bmc_create(paced, &cfg, &err);
        trio_left[i] = 4;
        trio_first[i] = -1;
    }
    for (int i = 0; i < 3; i++) {
        ward_rf_op_start(trio[i], WARD_RF_OP_INVENTORY, NULL, NULL, on_trio, (void *)(intptr_t)i);
    }
    test_loop_until(loop, &trio_done, 30);
    ok(trio_done && trio_failed == 0 && trio_first[0] <= 2 && trio_first[1] <= 2 &&
           trio_first[2] <= 2,
       "paced, each system's first inventory ends in the first round (after %d, %d, %d of the "
       "others')",
       trio_first[0], trio_first[1], trio_first[2]);
    for (int i = 0; i < 3; i++) {
        ward_rf_bmc_destroy(trio[i]);
    }

    /* a BMC with one session: the second system's login is refused for want of sessions,
       and the first system's next login waits out that backoff too instead of asking again */
    struct tserver *s4 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .max_sessions = 1});
    struct ward_rf_bmc *m5, *m6;
    two_systems(c, &cfg, s4, "blade-5", "blade-6", &m5, &m6);
    struct res e5 = {0}, e6 = {0};
    ward_rf_op_start(m5, WARD_RF_OP_CONNECT, NULL, NULL, on_op, &e5);
    test_loop_until(loop, &e5.done, 20);
    ward_rf_op_start(m6, WARD_RF_OP_CONNECT, NULL, NULL, on_op, &e6);
    test_loop_until(loop, &e6.done, 20);
    ok(e5.code == 0 && e6.code != 0 && strstr(e6.reason, "no free sessions") != NULL,
       "one system logs in, the other is refused for want of sessions (%s)", e6.reason);
    tserver_set_faults(s4, &(struct tserver_faults){.expire_sessions = true});
    tserver_stats(s4, &st);
    int logins = st.logins;
    struct res again = {0};
    ward_rf_op_start(m5, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &again);
    test_loop_until(loop, &again.done, 20);
    tserver_stats(s4, &st);
    ok(again.code == -EBUSY && st.logins == logins,
       "the first system's session expires: its login waits for the BMC's backoff (%d logins: "
       "%s)",
       st.logins - logins, again.reason);

    ward_rf_bmc_destroy(m1);
    ward_rf_bmc_destroy(m2);
    ward_rf_bmc_destroy(m3);
    ward_rf_bmc_destroy(m4);
    ward_rf_bmc_destroy(m5);
    ward_rf_bmc_destroy(m6);
    test_loop_for(loop, 0.2); /* the logouts */
    tserver_stop(s);
    tserver_stop(s2);
    tserver_stop(s3);
    tserver_stop(s4);
    ward_rf_client_destroy(paced);
    ward_rf_client_destroy(c);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    return 0;
}
