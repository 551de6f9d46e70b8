/* SPDX-License-Identifier: Apache-2.0 */
/* Operations parked on a login whose owner let go are all served, even when waking one
 * starts another wake (a login that fails at once: the breaker opened meanwhile); and a
 * breaker an orphan's failure opened names that failure. Against tserver. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "loop.h"
#include "redfish/bmc.h"
#include "tap/basic.h"
#include "tserver.h"
#include "util.h"

static struct ev_loop *loop;

static int requests(struct tserver *s)
{
    struct tserver_stats st;
    tserver_stats(s, &st);
    return st.requests;
}

static bool wait_requests(struct tserver *s, int want, double bound)
{
    for (int i = 0; i < (int)(bound / 0.01) && requests(s) < want; i++) {
        test_loop_for(loop, 0.01);
    }
    return requests(s) >= want;
}

/* Wait up to bound seconds for b to have no session (a request of its found it expired). */
static bool wait_no_session(struct ward_rf_bmc *b, double bound)
{
    struct ward_rf_bmc_stats st;
    ward_rf_bmc_stats(b, &st);
    for (int i = 0; i < (int)(bound / 0.01) && st.have_session; i++) {
        test_loop_for(loop, 0.01);
        ward_rf_bmc_stats(b, &st);
    }
    return !st.have_session;
}

/* Three BMC objects at test BMC s (systems 1, 2, 1), named prefix1..3, each read once; bails
   when one cannot be made or read. */
static void three_at(struct ward_rf_client *c, struct ward_rf_bmc_config *cfg, struct tserver *s,
                     const char *prefix, struct ward_rf_bmc *x[3])
{
    struct ward_error err = {0};
    cfg->address = tserver_url(s);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%d", prefix, i + 1);
        cfg->name = name;
        cfg->system = i == 1 ? "2" : "1";
        x[i] = ward_rf_bmc_create(c, cfg, &err);
        struct test_result r = {0};
        if (x[i] != NULL) {
            ward_rf_op_start(x[i], WARD_RF_OP_INVENTORY, NULL, NULL, test_on_result, &r);
        }
        if (x[i] == NULL || !test_loop_until(loop, &r.done, 30) || r.code != 0) {
            bail("%s: %s", name, x[i] == NULL ? err.text : r.reason);
        }
    }
    test_loop_for(loop, 0.6); /* past the pacing of those reads */
}

int main(void)
{
    plan(8);
    loop = ev_default_loop(0);
    const char *dir = test_tmpdir();
    char ca_path[512], pw_path[512];
    struct tca *ca = tserver_client_files(dir, ca_path, pw_path);
    FILE *logf = tserver_log_file(dir);

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 5;
    o.concurrency = 5;
    o.retries = 0;
    o.random = test_no_jitter;
    o.breaker_threshold = 1;
    o.breaker_open = 60;
    /* requests to the BMC 1 s apart, so the login waits its turn (paced, not on the wire) */
    o.rate_max = 1;
    o.rate_min = 1;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true});
    struct ward_rf_bmc_config cfg = {.name = "h",
                                     .address = tserver_url(s),
                                     .username = TSERVER_USER,
                                     .password_file = pw_path,
                                     .cainfo = ca_path};
    struct test_result ra, rb, rc, re, rd;
    struct ward_rf_bmc *b = ward_rf_bmc_create(c, &cfg, &err);
    struct test_result conn = {0};
    ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &conn);
    test_loop_until(loop, &conn.done, 20);
    test_loop_for(loop, 1);
    /* D reads the system with the session in force, and the BMC takes 1.5 s over it. The
       session expires meanwhile: A's read, paced 1 s after D's, is refused (401), so A drops
       the token and logs in, paced 1 s after its read. D's answer, a 500, comes before that
       and opens the breaker; B, C, E then find no token and park on A's login without sending
       anything; then A's owner lets go */
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    memset(&rc, 0, sizeof(rc));
    memset(&re, 0, sizeof(re));
    memset(&rd, 0, sizeof(rd));
    int base = requests(s);
    tserver_set_faults(s, &(struct tserver_faults){.slow_next_ms = 1500});
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &rd);
    wait_requests(s, base + 1, 10); /* D's read, on the wire */
    tserver_set_faults(s, &(struct tserver_faults){.expire_sessions = true});
    struct ward_rf_op *a =
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &ra);
    bool expired = wait_no_session(b, 10); /* A's read: 401 */
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 1});
    test_loop_until(loop, &rd.done, 10);
    bool staged = expired && !ra.done && rd.code == -EIO;
    if (staged) {
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &rb);
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &rc);
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &re);
        test_loop_for(loop, 0.05);
        diag("staged: D failed (%s); B %d C %d E %d still parked", rd.reason, rb.done, rc.done,
             re.done);
        ward_rf_op_cancel(a);
    } else {
        tserver_set_faults(s, &(struct tserver_faults){0});
    }
    ok(staged, "staged: D's slow read failed before A's paced login went, the breaker is open, "
               "three operations parked");
    test_loop_for(loop, 3);
    diag("B %d/%d C %d/%d E %d/%d", rb.done, rb.code, rc.done, rc.code, re.done, re.code);
    int woken = rb.done + rc.done + re.done;
    is_int(3, woken, "every operation parked on the cancelled login ends");
    struct ward_rf_bmc_stats st;
    ward_rf_bmc_stats(b, &st);
    is_int(0, (int)st.running, "and none still counts against the BMC");
    ward_rf_bmc_destroy(b);
    test_loop_for(loop, 0.5);
    ok(rb.done && rc.done && re.done, "destroying the BMC ends them");
    /* an orphan's failure opens the breaker; what does the breaker say? */
    b = ward_rf_bmc_create(c, &cfg, &err);
    struct test_result cn = {0}, q = {0}, after = {0};
    ward_rf_op_start(b, WARD_RF_OP_CONNECT, NULL, NULL, test_on_result, &cn);
    test_loop_until(loop, &cn.done, 20);
    ok(cn.code == 0, "second BMC connects (%s)", cn.reason);
    test_loop_for(loop, 1);
    tserver_set_faults(s, &(struct tserver_faults){.hang = true});
    int before = requests(s);
    struct ward_rf_op *hung =
        ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &q);
    wait_requests(s, before + 1, 10);
    ward_rf_op_cancel(hung);
    /* its connection closes unanswered; curl sends it again on a fresh one: a 500 */
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 1});
    test_loop_for(loop, 1);
    ward_rf_op_start(b, WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &after);
    test_loop_until(loop, &after.done, 10);
    diag("after the orphan: %d %s", after.code, after.reason);
    ok(strstr(after.reason, "last failure: GET") != NULL,
       "a breaker opened by an orphan's failure names it");
    ward_rf_bmc_destroy(b);
    test_loop_for(loop, 0.5);

    /* A paced request whose time comes while the loop is busy: its timer is due but has not
       run when a request parked behind it leaves and wakes the address in the same
       iteration. It is sent once (it was sent by both, its second answer reaching a freed
       operation). Requests 0.5 s apart, two at once allowed, three systems' objects. */
    struct ward_rf_client_opts po = o;
    po.concurrency = 2;
    po.breaker_threshold = 5;
    po.rate_max = po.rate_min = 2;
    struct ward_rf_client *pc = ward_rf_client_create(loop, &po, &err);
    struct tserver *ps =
        tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2});
    struct ward_rf_bmc *x[3];
    three_at(pc, &cfg, ps, "x", x);
    struct test_result p1 = {0}, p2 = {0}, p3 = {0};
    ward_rf_op_start(x[0], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &p1);
    ward_rf_op_start(x[1], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &p2);
    struct ward_rf_op *third =
        ward_rf_op_start(x[2], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &p3);
    test_loop_until(loop, &p1.done, 10); /* x2's read waits its 0.5 s, x3's behind it */
    test_loop_for(loop, 0.05);
    tserver_set_faults(ps, &(struct tserver_faults){.slow_next_ms = 1500});
    ward_rf_op_cancel(third); /* leaves the parked line: the address is woken from the loop */
    /* not a wait for an event: the loop is kept from running past x2's time, as a long
       callback elsewhere in wardd would */
    usleep(700 * 1000);
    test_loop_until(loop, &p2.done, 10);
    test_loop_for(loop, 0.1);
    struct tserver_stats pst;
    tserver_stats(ps, &pst);
    ok(p1.code == 0 && p2.code == 0 && pst.max_in_flight == 1,
       "the paced read is sent once (%d at once: %s%s)", pst.max_in_flight, p1.reason, p2.reason);
    for (int i = 0; i < 3; i++) {
        ward_rf_bmc_destroy(x[i]);
    }
    test_loop_for(loop, 0.5);
    tserver_stop(ps);

    /* The same meeting when the session expired meanwhile: the wake finds no token and puts
       y2 on y1's login; its due timer then ran the send again, putting y2 on the waiters a
       second time (pointing at itself), so cancelling it left the list holding it (ASan:
       heap-use-after-free when the login ended) */
    ps = tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .systems = 2});
    three_at(pc, &cfg, ps, "y", x);
    tserver_set_faults(ps, &(struct tserver_faults){.expire_sessions = true});
    struct test_result q1 = {0}, q2 = {0}, q3 = {0};
    ward_rf_op_start(x[0], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &q1);
    struct ward_rf_op *second =
        ward_rf_op_start(x[1], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &q2);
    third = ward_rf_op_start(x[2], WARD_RF_OP_POWER_STATE, NULL, NULL, test_on_result, &q3);
    bool gone = wait_no_session(x[0], 0.4); /* y1's read: 401; its login parks last */
    tserver_set_faults(ps, &(struct tserver_faults){.slow_next_ms = 1500}); /* that login */
    ward_rf_op_cancel(third);
    usleep(700 * 1000); /* as above: the loop held past y2's time */
    test_loop_for(loop, 0.1);
    bool parked = !q1.done && !q2.done;
    ward_rf_op_cancel(second); /* it waits on y1's login: it leaves the waiters */
    test_loop_until(loop, &q1.done, 10);
    ok(gone && parked && q1.code == 0 && !q2.done,
       "y1's login ends and serves y1; the cancelled y2 hears nothing (%s)", q1.reason);
    for (int i = 0; i < 3; i++) {
        ward_rf_bmc_destroy(x[i]);
    }
    test_loop_for(loop, 0.5);
    ward_rf_client_destroy(pc);
    tserver_stop(ps);
    ward_rf_client_destroy(c);
    tserver_stop(s);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    return 0;
}
