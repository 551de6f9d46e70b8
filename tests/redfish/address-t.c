/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A multi-system BMC: one BMC object per system (one host each) at one address. The BMC's
 * limits hold across them: never two requests at once, a request ward gave up on keeps the
 * other system quiet for the backoff too, and a long wait of one system (a power change
 * polling) takes no request slot between its polls, so the other system is not held up.
 * Requests that wait for the BMC go in the order they came, paced or not. The systems share
 * one session, logged out by the last of them; a BMC out of sessions is backed off as a whole.
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

/* The session at s expires, and owner's read finds it so: owner logs in, its login waiting
   for its turn on a paced client. False if the read was not refused within 5 s. */
static bool expire_under(struct tserver *s, struct ward_rf_bmc *owner, struct res *r)
{
    tserver_set_faults(s, &(struct tserver_faults){.expire_sessions = true});
    ward_rf_op_start(owner, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, r);
    struct ward_rf_bmc_stats st = {.have_session = true};
    for (int i = 0; i < 1000 && st.have_session; i++) {
        test_loop_for(loop, 0.005);
        ward_rf_bmc_stats(owner, &st);
    }
    return !st.have_session && !r->done;
}

static void count_closed(void *arg)
{
    (*(int *)arg)++;
}

/* An operation whose end removes another system (a host's policy reacting to it: its
   callback runs while the login it waited on is being handled). With `when`, only an end
   whose reason says so: a failure on the login the other system made. */
struct removing {
    struct res r;
    int ends;
    struct ward_rf_bmc **other;
    const char *when; /* NULL: any end */
};

static void on_op_removing(void *arg, int code, const cJSON *result, const char *reason)
{
    struct removing *m = arg;
    m->ends++;
    on_op(&m->r, code, result, reason);
    if ((m->when == NULL || strstr(reason, m->when) != NULL) && *m->other != NULL) {
        ward_rf_bmc_destroy(*m->other);
        *m->other = NULL;
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

/* m1's operation to its end, then m2's. */
static void in_turn(struct ward_rf_bmc *m1, enum ward_rf_op_kind k1, struct res *r1,
                    struct ward_rf_bmc *m2, enum ward_rf_op_kind k2, struct res *r2)
{
    ward_rf_op_start(m1, k1, NULL, NULL, on_op, r1);
    test_loop_until(loop, &r1->done, 20);
    ward_rf_op_start(m2, k2, NULL, NULL, on_op, r2);
    test_loop_until(loop, &r2->done, 20);
}

/* A test BMC with two systems and one session, and its two systems' objects on client c,
   each read once; bails when a read fails. */
static struct tserver *one_session(struct ward_rf_client *c, struct ward_rf_bmc_config *cfg,
                                   struct tca *ca, bool no_location, const char *n1, const char *n2,
                                   struct ward_rf_bmc **b1, struct ward_rf_bmc **b2)
{
    struct tserver *s = tserver_start(&(struct tserver_opts){
        .ca = ca, .sessions = true, .systems = 2, .max_sessions = 1, .no_location = no_location});
    two_systems(c, cfg, s, n1, n2, b1, b2);
    struct res r1 = {0}, r2 = {0};
    both(*b1, *b2, WARD_RF_OP_INVENTORY, &r1, &r2);
    if (r1.code != 0 || r2.code != 0) {
        bail("%s, %s: %s%s", n1, n2, r1.reason, r2.reason);
    }
    return s;
}

int main(void)
{
    plan(25);
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
    o.random = test_no_jitter;
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
        char name[32];
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

    /* a BMC with one session: its systems share it. One login serves both; a logout of one
       system keeps it for the other; after it expires, one new login serves both again */
    struct ward_rf_bmc *m5, *m6;
    struct tserver *s4 = one_session(c, &cfg, ca, false, "blade-5", "blade-6", &m5, &m6);
    tserver_stats(s4, &st);
    ok(st.logins == 1 && st.sessions == 1,
       "both systems of a one-session BMC are read on one login (%d logins, %d sessions)",
       st.logins, st.sessions);
    struct res out5 = {0}, read6 = {0};
    in_turn(m5, WARD_RF_OP_LOGOUT, &out5, m6, WARD_RF_OP_POWER_STATE, &read6);
    tserver_stats(s4, &st);
    ok(out5.code == 0 && read6.code == 0 && st.logouts == 0 && st.logins == 1,
       "one system's logout keeps the session the other goes on with (%d logouts, %d logins: "
       "%s%s)",
       st.logouts, st.logins, out5.reason, read6.reason);
    tserver_set_faults(s4, &(struct tserver_faults){.expire_sessions = true});
    struct res x5 = {0}, x6 = {0};
    both(m5, m6, WARD_RF_OP_POWER_STATE, &x5, &x6);
    tserver_stats(s4, &st);
    ok(x5.code == 0 && x6.code == 0 && st.logins == 2,
       "the session expires: one new login serves both systems (%d logins: %s%s)", st.logins,
       x5.reason, x6.reason);
    ward_rf_bmc_destroy(m5);
    test_loop_for(loop, 0.2);
    struct res y6 = {0};
    ward_rf_op_start(m6, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &y6);
    test_loop_until(loop, &y6.done, 20);
    tserver_stats(s4, &st);
    ok(y6.code == 0 && st.logouts == 0 && st.logins == 2,
       "removing one system logs nothing out: the other reads on (%d logouts, %d logins: %s)",
       st.logouts, st.logins, y6.reason);
    ward_rf_bmc_destroy(m6);
    test_loop_for(loop, 0.2);
    tserver_stats(s4, &st);
    ok(st.logouts == 1 && st.sessions == 0,
       "removing the last one logs the session out (%d logouts, %d open)", st.logouts, st.sessions);

    /* a shutdown closes both systems at once: the session is logged out once, after both */
    struct ward_rf_client *c5 = ward_rf_client_create(loop, &o, &err);
    struct ward_rf_bmc *m7, *m8;
    struct tserver *s5 = one_session(c5, &cfg, ca, false, "blade-7", "blade-8", &m7, &m8);
    struct res busy7 = {0};
    ward_rf_op_start(m7, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &busy7);
    int closed = 0;
    ward_rf_client_close_all(c5, count_closed, &closed);
    for (int i = 0; i < 200 && closed < 2; i++) {
        test_loop_for(loop, 0.05);
    }
    tserver_stats(s5, &st);
    ok(closed == 2 && st.logins == 1 && st.logouts == 1 && st.sessions == 0,
       "closing both at once: %d closed, %d login, %d logout, %d open", closed, st.logins,
       st.logouts, st.sessions);
    ward_rf_client_destroy(c5);

    /* two systems' requests on the wire at once (concurrency 2) both find the session
       expired: the first to hear it logs in; the second, answered after that login, uses the
       new session instead of making another (the BMC has room for one) */
    struct ward_rf_client_opts wo = o;
    wo.concurrency = 2;
    struct ward_rf_client *wide = ward_rf_client_create(loop, &wo, &err);
    struct ward_rf_bmc *m9, *m10;
    struct tserver *s6 = one_session(wide, &cfg, ca, false, "blade-9", "blade-10", &m9, &m10);
    tserver_set_faults(s6, &(struct tserver_faults){.expire_sessions = true, .slow_next_ms = 800});
    struct res z9 = {0}, z10 = {0};
    both(m9, m10, WARD_RF_OP_POWER_STATE, &z9, &z10);
    tserver_stats(s6, &st);
    ok(z9.code == 0 && z10.code == 0 && st.logins == 2 && st.max_in_flight == 2,
       "both requests refused on the wire at once: one new login for both (%d logins, %d at "
       "once: %s%s)",
       st.logins, st.max_in_flight, z9.reason, z10.reason);
    ward_rf_bmc_destroy(m9);
    ward_rf_bmc_destroy(m10);

    /* the system logging in for both is removed while its login waits for its turn (requests
       0.5 s apart): the other system, waiting on that login, logs in itself */
    struct ward_rf_client_opts so = o;
    so.rate_max = so.rate_min = 2;
    struct ward_rf_client *slow = ward_rf_client_create(loop, &so, &err);
    struct ward_rf_bmc *m13, *m14;
    struct tserver *s8 = one_session(slow, &cfg, ca, false, "blade-13", "blade-14", &m13, &m14);
    test_loop_for(loop, 0.5);
    struct res r13 = {0}, r14 = {0};
    bool refused = expire_under(s8, m13, &r13);
    ward_rf_op_start(m14, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &r14);
    test_loop_for(loop, 0.05); /* blade-14's read begins: it waits for blade-13's login */
    bool waiting = !r13.done && !r14.done;
    ward_rf_bmc_destroy(m13);
    test_loop_until(loop, &r14.done, 20);
    tserver_stats(s8, &st);
    ok(refused && waiting && r14.code == 0 && st.logins == 2,
       "the other system logs in itself (%d logins: %s)", st.logins, r14.reason);
    ward_rf_bmc_destroy(m14);

    /* the same, with three systems, and the first waiter's own circuit breaker open: its login
       fails before it is sent, which tells the third nothing: it logs in itself */
    struct ward_rf_client_opts bo = so;
    bo.breaker_threshold = 1;
    struct ward_rf_client *brk = ward_rf_client_create(loop, &bo, &err);
    struct ward_rf_bmc *m15, *m16, *m17;
    struct tserver *s9 = one_session(brk, &cfg, ca, false, "blade-15", "blade-16", &m15, &m16);
    cfg.name = "blade-17";
    m17 = ward_rf_bmc_create(brk, &cfg, &err); /* system 2 again: another host's view */
    struct res e17 = {0}, f16 = {0};
    ward_rf_op_start(m17, WARD_RF_OP_INVENTORY, NULL, NULL, on_op, &e17);
    test_loop_until(loop, &e17.done, 20);
    tserver_set_faults(s9, &(struct tserver_faults){.error_500 = 1});
    ward_rf_op_start(m16, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &f16);
    test_loop_until(loop, &f16.done, 20); /* blade-16's breaker opens */
    test_loop_for(loop, 0.5);
    struct res r15 = {0}, r16 = {0}, r17 = {0};
    refused = expire_under(s9, m15, &r15);
    ward_rf_op_start(m17, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &r17);
    ward_rf_op_start(m16, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &r16);
    test_loop_for(loop, 0.05); /* both wait for blade-15's login */
    waiting = !r15.done && !r16.done && !r17.done;
    ward_rf_bmc_destroy(m15);
    test_loop_until(loop, &r16.done, 20);
    test_loop_until(loop, &r17.done, 20);
    ok(e17.code == 0 && f16.code != 0 && refused && waiting && r16.code == -EHOSTDOWN &&
           r17.code == 0,
       "blade-16's breaker fails its own operation (%s), not blade-17's (%s)", r16.reason,
       r17.reason);
    ward_rf_bmc_destroy(m16);
    ward_rf_bmc_destroy(m17);

    /* a shutdown while one system's login waits its turn and the other system waits on it:
       the closes cancel both, no login goes to the BMC */
    struct ward_rf_client *c10 = ward_rf_client_create(loop, &so, &err);
    struct ward_rf_bmc *m18, *m19;
    struct tserver *s10 = one_session(c10, &cfg, ca, false, "blade-18", "blade-19", &m18, &m19);
    test_loop_for(loop, 0.5);
    struct res r18 = {0}, r19 = {0};
    /* blade-19 was made last: the client's list, and so the shutdown, starts with it */
    refused = expire_under(s10, m19, &r19);
    ward_rf_op_start(m18, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &r18);
    test_loop_for(loop, 0.05);
    tserver_stats(s10, &st);
    int logins_before = st.logins;
    closed = 0;
    ward_rf_client_close_all(c10, count_closed, &closed);
    for (int i = 0; i < 200 && closed < 2; i++) {
        test_loop_for(loop, 0.05);
    }
    tserver_stats(s10, &st);
    ok(refused && closed == 2 && st.logins == logins_before && r18.code == -ECANCELED,
       "a shutdown sends no login (%d before, %d after: %s)", logins_before, st.logins, r18.reason);
    ward_rf_client_destroy(c10);

    /* a system that never ran anything is the last one there: its removal still ends the
       session the other made (a logout needs no discovery) */
    struct tserver *s11 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .max_sessions = 1});
    struct ward_rf_bmc *m20, *m21;
    two_systems(c, &cfg, s11, "blade-20", "blade-21", &m20, &m21);
    struct res e20 = {0};
    ward_rf_op_start(m20, WARD_RF_OP_INVENTORY, NULL, NULL, on_op, &e20);
    test_loop_until(loop, &e20.done, 20);
    ward_rf_bmc_destroy(m20);
    test_loop_for(loop, 0.2);
    ward_rf_bmc_destroy(m21);
    test_loop_for(loop, 0.3);
    tserver_stats(s11, &st);
    ok(e20.code == 0 && st.logouts == 1 && st.sessions == 0,
       "the untouched system's removal logs the session out (%d logouts, %d open)", st.logouts,
       st.sessions);

    /* a BMC whose login answers give no Location (the session cannot be deleted): a logout of
       one system still keeps the session for the other */
    struct ward_rf_bmc *m22, *m23;
    struct tserver *s12 = one_session(c, &cfg, ca, true, "blade-22", "blade-23", &m22, &m23);
    struct res out22 = {0}, read23 = {0};
    in_turn(m22, WARD_RF_OP_LOGOUT, &out22, m23, WARD_RF_OP_POWER_STATE, &read23);
    tserver_stats(s12, &st);
    ok(out22.code == 0 && read23.code == 0 && st.logins == 1,
       "without a Location too, one system's logout keeps the other's session (%d logins: %s)",
       st.logins, read23.reason);
    ward_rf_bmc_destroy(m22);
    ward_rf_bmc_destroy(m23);

    /* wrong credentials, both systems connecting at once (requests 0.5 s apart, so one waits
       on the other's login): the BMC sees one refused login, and the waiting system's reason
       says whose login it was */
    char bad_path[600];
    snprintf(bad_path, sizeof(bad_path), "%s/wrong-password", dir);
    FILE *bad = fopen(bad_path, "w");
    if (bad == NULL || fputs("not-the-password\n", bad) < 0 || fclose(bad) != 0) {
        bail("cannot write %s", bad_path);
    }
    struct ward_rf_bmc_config bad_cfg = cfg;
    bad_cfg.password_file = bad_path;
    struct tserver *s13 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .max_sessions = 1});
    struct ward_rf_bmc *m24, *m25;
    two_systems(slow, &bad_cfg, s13, "blade-24", "blade-25", &m24, &m25);
    struct res w24 = {0}, w25 = {0};
    both(m24, m25, WARD_RF_OP_CONNECT, &w24, &w25);
    tserver_stats(s13, &st);
    const char *shared = strstr(w24.reason, "shares with blade-25") != NULL   ? w24.reason
                         : strstr(w25.reason, "shares with blade-24") != NULL ? w25.reason
                                                                              : NULL;
    ok(w24.code == -EACCES && w25.code == -EACCES && st.logins == 1 && shared != NULL &&
           strstr(shared, "login failed") != NULL,
       "one refused login for both systems; the one waiting on it says whose it was (%d "
       "logins: %s | %s)",
       st.logins, w24.reason, w25.reason);
    ward_rf_bmc_destroy(m24);
    ward_rf_bmc_destroy(m25);

    /* the same, and the waiting system's callback removes the system whose login it was:
       that login's operation ends once, not again from inside its own end */
    struct tserver *s14 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .max_sessions = 1});
    struct ward_rf_bmc *m26, *m27;
    two_systems(slow, &bad_cfg, s14, "blade-26", "blade-27", &m26, &m27);
    struct removing x26 = {.other = &m27, .when = "shares with"},
                    x27 = {.other = &m26, .when = "shares with"};
    ward_rf_op_start(m26, WARD_RF_OP_CONNECT, NULL, NULL, on_op_removing, &x26);
    ward_rf_op_start(m27, WARD_RF_OP_CONNECT, NULL, NULL, on_op_removing, &x27);
    test_loop_until(loop, &x26.r.done, 20);
    test_loop_until(loop, &x27.r.done, 20);
    test_loop_for(loop, 0.1); /* a second end would come from the loop too */
    ok(x26.ends == 1 && x27.ends == 1 && (m26 == NULL) != (m27 == NULL),
       "a waiting system removing the login's system from its callback: each operation ends "
       "once (%d, %d: %s | %s)",
       x26.ends, x27.ends, x26.r.reason, x27.r.reason);
    ward_rf_bmc_destroy(m26);
    ward_rf_bmc_destroy(m27);

    /* a login that succeeds: a discovered system's connect waiting on it ends while the
       answer is handled, and its callback removes the system whose login it was, whose
       operation goes on with the new session */
    struct ward_rf_bmc *m28, *m29;
    struct tserver *s15 = one_session(slow, &cfg, ca, false, "blade-28", "blade-29", &m28, &m29);
    test_loop_for(loop, 0.5);
    struct res r28 = {0};
    bool refused28 = expire_under(s15, m28, &r28);
    struct removing x29 = {.other = &m28};
    ward_rf_op_start(m29, WARD_RF_OP_CONNECT, NULL, NULL, on_op_removing, &x29);
    test_loop_until(loop, &x29.r.done, 20);
    test_loop_until(loop, &r28.done, 20);
    ok(refused28 && x29.r.code == 0 && r28.done && m28 == NULL,
       "a connect woken by a login that succeeded removes the login's system (%s | %d %s)",
       x29.r.reason, r28.code, r28.reason);
    ward_rf_bmc_destroy(m29);

    /* other credentials at the same BMC (a session of their own) on a BMC with one session:
       the second login is refused for want of sessions, and the first's next login waits out
       that backoff too instead of asking again */
    struct tserver *s7 = tserver_start(
        &(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2, .max_sessions = 1});
    struct ward_rf_bmc_config env_cfg = cfg;
    env_cfg.password_file = NULL;
    env_cfg.password_env = "WARD_TEST_BMC_PASSWORD";
    setenv(env_cfg.password_env, TSERVER_PASSWORD, 1);
    cfg.address = env_cfg.address = tserver_url(s7);
    cfg.name = "blade-11";
    cfg.system = "1";
    env_cfg.name = "blade-12";
    env_cfg.system = "2";
    struct ward_rf_bmc *m11 = ward_rf_bmc_create(c, &cfg, &err);
    struct ward_rf_bmc *m12 = ward_rf_bmc_create(c, &env_cfg, &err);
    if (m11 == NULL || m12 == NULL) {
        bail("bmc: %s", err.text);
    }
    struct res e11 = {0}, e12 = {0};
    in_turn(m11, WARD_RF_OP_CONNECT, &e11, m12, WARD_RF_OP_CONNECT, &e12);
    ok(e11.code == 0 && e12.code != 0 && strstr(e12.reason, "no free sessions") != NULL,
       "one set of credentials logs in, the other is refused for want of sessions (%s)",
       e12.reason);
    tserver_set_faults(s7, &(struct tserver_faults){.expire_sessions = true});
    tserver_stats(s7, &st);
    int logins = st.logins;
    struct res again = {0};
    ward_rf_op_start(m11, WARD_RF_OP_POWER_STATE, NULL, NULL, on_op, &again);
    test_loop_until(loop, &again.done, 20);
    tserver_stats(s7, &st);
    ok(again.code == -EBUSY && st.logins == logins,
       "the first one's session expires: its login waits for the BMC's backoff (%d logins: "
       "%s)",
       st.logins - logins, again.reason);

    ward_rf_bmc_destroy(m1);
    ward_rf_bmc_destroy(m2);
    ward_rf_bmc_destroy(m3);
    ward_rf_bmc_destroy(m4);
    ward_rf_bmc_destroy(m11);
    ward_rf_bmc_destroy(m12);
    test_loop_for(loop, 0.2); /* the logouts */
    tserver_stop(s);
    tserver_stop(s2);
    tserver_stop(s3);
    tserver_stop(s4);
    tserver_stop(s5);
    tserver_stop(s6);
    tserver_stop(s7);
    tserver_stop(s8);
    tserver_stop(s9);
    tserver_stop(s10);
    tserver_stop(s11);
    tserver_stop(s12);
    tserver_stop(s13);
    tserver_stop(s14);
    tserver_stop(s15);
    ward_rf_client_destroy(brk);
    ward_rf_client_destroy(slow);
    ward_rf_client_destroy(wide);
    ward_rf_client_destroy(paced);
    ward_rf_client_destroy(c);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    return 0;
}
