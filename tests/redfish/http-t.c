/* SPDX-License-Identifier: Apache-2.0 */
/* The asynchronous HTTPS client on a real libev loop against the loopback test server. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "redfish/http.h"
#include "tap/basic.h"
#include "tserver.h"

struct result {
    bool done;
    int code;
    long status;
    char reason[600];
    char body[4096];
    char token[128];
};

static void on_done(void *arg, const struct ward_rf_response *r)
{
    struct result *res = arg;
    res->done = true;
    res->code = r->code;
    res->status = r->status;
    snprintf(res->reason, sizeof(res->reason), "%s", r->reason);
    snprintf(res->body, sizeof(res->body), "%s", r->body);
    snprintf(res->token, sizeof(res->token), "%s", r->auth_token ? r->auth_token : "");
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until every result is done or the bound passes. */
static bool run_until(struct ev_loop *loop, struct result *res, int n, double bound)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, bound, 0);
    ev_timer_start(loop, &deadline);
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++) {
            all = all && res[i].done;
        }
        if (all || !ev_is_active(&deadline)) {
            ev_timer_stop(loop, &deadline);
            return all;
        }
        ev_run(loop, EVRUN_ONCE);
    }
}

static struct result fetch(struct ev_loop *loop, struct ward_rf_http *h, const char *url,
                           const char *ca, bool insecure, double timeout)
{
    struct result res = {0};
    struct ward_error err = {0};
    struct ward_rf_http_opts o = {.method = WARD_RF_GET,
                                  .url = url,
                                  .cainfo = ca,
                                  .insecure = insecure,
                                  .connect_timeout = 5,
                                  .timeout = timeout,
                                  .user = TSERVER_USER,
                                  .password = TSERVER_PASSWORD};
    if (ward_rf_http_start(h, &o, on_done, &res, &err) == NULL) {
        snprintf(res.reason, sizeof(res.reason), "%s", err.text);
        res.code = err.code;
        res.done = true;
        return res;
    }
    if (!run_until(loop, &res, 1, 20)) {
        snprintf(res.reason, sizeof(res.reason), "test bound passed");
    }
    return res;
}

int main(void)
{
    plan(27);
    const char *dir = test_tmpdir();
    char ca_path[512], other_path[512], url[256];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
    snprintf(other_path, sizeof(other_path), "%s/other.pem", dir);
    struct tca *ca = tca_create("ward test CA");
    struct tca *other = tca_create("some other CA");
    tca_write(ca, ca_path);
    tca_write(other, other_path);

    struct ev_loop *loop = ev_default_loop(0);
    struct ward_rf_http *h = ward_rf_http_create(loop);
    ok(h != NULL, "client created");

    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca, .basic_auth = true});
    snprintf(url, sizeof(url), "%s/redfish/v1", tserver_url(s));

    struct result r = fetch(loop, h, url, ca_path, false, 10);
    is_int(0, r.code, "GET with the right CA succeeds (%s)", r.reason);
    is_int(200, r.status, "status 200");
    contains(r.body, "\"Systems\"", "body is the service root");

    r = fetch(loop, h, url, other_path, false, 10);
    ok(r.code < 0, "GET with another CA fails");
    contains(r.reason, "certificate verify failed", "reason says the certificate failed");

    /* the system store does not know the test CA */
    r = fetch(loop, h, url, NULL, false, 10);
    contains(r.reason, "certificate verify failed", "default verification is on");

    r = fetch(loop, h, url, NULL, true, 10);
    is_int(200, r.status, "the explicit insecure flag skips verification");

    /* many requests at once on one loop */
    struct result many[8] = {0};
    struct ward_rf_http_opts o = {.method = WARD_RF_GET,
                                  .url = url,
                                  .cainfo = ca_path,
                                  .timeout = 10,
                                  .user = TSERVER_USER,
                                  .password = TSERVER_PASSWORD};
    for (int i = 0; i < 8; i++) {
        ward_rf_http_start(h, &o, on_done, &many[i], NULL);
    }
    ok(run_until(loop, many, 8, 20), "8 concurrent requests complete");
    int good = 0;
    for (int i = 0; i < 8; i++) {
        good += many[i].status == 200;
    }
    is_int(8, good, "all 8 answered 200");
    is_int(0, (long long)ward_rf_http_active(h), "nothing left in flight");

    /* a cancelled request never calls back */
    struct result cancelled = {0};
    struct ward_rf_http_req *q = ward_rf_http_start(h, &o, on_done, &cancelled, NULL);
    ward_rf_http_cancel(q);
    r = fetch(loop, h, url, ca_path, false, 10);
    ok(!cancelled.done && r.status == 200, "cancelled request stays silent, loop still serves");

    /* faults */
    tserver_set_faults(s, &(struct tserver_faults){.error_500 = 1});
    r = fetch(loop, h, url, ca_path, false, 10);
    is_int(500, r.status, "a 500 arrives as a status");
    contains(r.body, "InternalError", "with its Redfish error body");

    tserver_set_faults(s, &(struct tserver_faults){.hang = true});
    r = fetch(loop, h, url, ca_path, false, 0.5);
    is_int(-ETIMEDOUT, r.code, "a hung BMC times out");
    contains(r.reason, "timed out", "reason says timed out");
    tserver_set_faults(s, &(struct tserver_faults){0});

    tserver_set_faults(s, &(struct tserver_faults){.reset = true});
    r = fetch(loop, h, url, ca_path, false, 5);
    ok(r.code < 0, "a reset connection fails");
    contains(r.reason, "connection reset", "reason says connection reset (%s)", r.reason);

    char sys[256];
    snprintf(sys, sizeof(sys), "%s/redfish/v1/Systems/1", tserver_url(s));
    tserver_set_faults(s, &(struct tserver_faults){.truncated = true});
    r = fetch(loop, h, sys, ca_path, false, 5);
    ok(r.code < 0, "a truncated body fails");
    contains(r.reason, "truncated", "reason says truncated (%s)", r.reason);

    tserver_set_faults(s, &(struct tserver_faults){.slow_drip = true});
    r = fetch(loop, h, sys, ca_path, false, 0.8);
    is_int(-ETIMEDOUT, r.code, "a slow drip hits the total timeout");
    tserver_set_faults(s, &(struct tserver_faults){0});

    r = fetch(loop, h, url, ca_path, false, 10);
    is_int(200, r.status, "the loop still serves after every fault");

    r = fetch(loop, h, "ftp://127.0.0.1/x", ca_path, false, 10);
    is_int(-EINVAL, r.code, "a non-HTTP URL is refused");
    tserver_stop(s);

    /* an expired certificate from the right CA */
    s = tserver_start(
        &(struct tserver_opts){.ca = ca, .cert = TSERVER_CERT_EXPIRED, .basic_auth = true});
    snprintf(url, sizeof(url), "%s/redfish/v1", tserver_url(s));
    r = fetch(loop, h, url, ca_path, false, 10);
    ok(r.code < 0, "an expired certificate fails");
    contains(r.reason, "certificate", "reason mentions the certificate");
    contains(r.reason, "expired", "and that it expired (%s)", r.reason);
    tserver_stop(s);

    /* nothing listens any more */
    r = fetch(loop, h, url, ca_path, false, 5);
    ok(r.code < 0, "a closed port fails with a reason (%s)", r.reason);

    ward_rf_http_destroy(h);
    tca_free(ca);
    tca_free(other);
    ev_loop_destroy(loop);
    return 0;
}
