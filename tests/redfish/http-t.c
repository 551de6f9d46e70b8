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

static struct result fetch_via(struct ev_loop *loop, struct ward_rf_http *h,
                               struct ward_rf_http_pool *pool, const char *url, const char *ca,
                               bool insecure, double timeout)
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
                                  .password = TSERVER_PASSWORD,
                                  .pool = pool};
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

static struct result fetch(struct ev_loop *loop, struct ward_rf_http *h, const char *url,
                           const char *ca, bool insecure, double timeout)
{
    return fetch_via(loop, h, NULL, url, ca, insecure, timeout);
}

/* Run the loop until the pool has closed its connections or the bound passes. */
static bool run_until_pool_closed(struct ev_loop *loop, struct ward_rf_http_pool *p, double bound)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, bound, 0);
    ev_timer_start(loop, &deadline);
    while (ward_rf_http_pool_open(p) && ev_is_active(&deadline)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &deadline);
    return !ward_rf_http_pool_open(p);
}

/* A BMC's pool keeps one connection for its requests and closes it once idle. */
static void test_pool(struct ev_loop *loop, struct ward_rf_http *h, struct tca *ca,
                      const char *ca_path)
{
    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca, .basic_auth = true});
    char url[256];
    snprintf(url, sizeof(url), "%s/redfish/v1", tserver_url(s));
    ward_rf_http_set_connection_limits(h, WARD_RF_HTTP_DEFAULT_CONNECTIONS, 1);
    struct ward_rf_http_pool *p = ward_rf_http_pool_create(h);
    int answered = 0;
    for (int i = 0; i < 3; i++) {
        answered += fetch_via(loop, h, p, url, ca_path, false, 10).status == 200;
    }
    struct tserver_stats st;
    tserver_stats(s, &st);
    is_int(3, answered, "three requests through a pool are answered");
    is_int(1, st.connections, "on one connection");
    ok(ward_rf_http_pool_open(p), "which the pool keeps while it is fresh");
    is_int(0, (int)ward_rf_http_watched(h), "an idle connection has no watcher");
    ok(run_until_pool_closed(loop, p, 10), "the pool closes it once idle");
    ok(tserver_wait_closed(s, 10), "and the BMC sees it closed");

    struct result r = fetch_via(loop, h, p, url, ca_path, false, 10);
    tserver_stats(s, &st);
    is_int(200, r.status, "the pool connects again when asked (%s)", r.reason);
    is_int(2, st.connections, "with a new connection");

    /* a pool let go of with a request in flight: the request still completes, then the
       connection closes (as when a BMC is removed right after its logout is sent) */
    struct result last = {0};
    struct ward_rf_http_opts o = {.method = WARD_RF_GET,
                                  .url = url,
                                  .cainfo = ca_path,
                                  .timeout = 10,
                                  .user = TSERVER_USER,
                                  .password = TSERVER_PASSWORD,
                                  .pool = p};
    ok(ward_rf_http_start(h, &o, on_done, &last, NULL) != NULL, "a request starts");
    ward_rf_http_pool_destroy(p);
    is_int(1, (int)ward_rf_http_pools(h), "the pool lives on while its request runs");
    ok(run_until(loop, &last, 1, 20) && last.status == 200,
       "a request outlives its pool's owner (%s)", last.reason);
    is_int(0, (int)ward_rf_http_pools(h), "then the pool is freed");
    ok(tserver_wait_closed(s, 10), "and its connection closed");

    /* room for one idle pool: the least recently used one closes at once, whatever the
       idle time */
    ward_rf_http_set_connection_limits(h, 1, 3600);
    struct ward_rf_http_pool *p1 = ward_rf_http_pool_create(h);
    struct ward_rf_http_pool *p2 = ward_rf_http_pool_create(h);
    int both = fetch_via(loop, h, p1, url, ca_path, false, 10).status == 200;
    ok(both && ward_rf_http_pool_open(p1), "an idle pool keeps its connection");
    both = fetch_via(loop, h, p2, url, ca_path, false, 10).status == 200;
    ok(both && ward_rf_http_pool_open(p2) && !ward_rf_http_pool_open(p1),
       "a second idle pool closes the first one's");
    both = fetch_via(loop, h, p1, url, ca_path, false, 10).status == 200;
    ok(both && ward_rf_http_pool_open(p1) && !ward_rf_http_pool_open(p2),
       "and the other way round");
    /* a BMC that does not answer takes no room from one that does */
    struct ward_rf_http_pool *p3 = ward_rf_http_pool_create(h);
    struct result dead =
        fetch_via(loop, h, p3, "https://127.0.0.1:1/redfish/v1", ca_path, false, 5);
    ok(dead.code < 0 && ward_rf_http_pool_open(p1) && !ward_rf_http_pool_open(p3),
       "a failed request keeps no pool open and closes no other (%s)", dead.reason);
    ward_rf_http_pool_destroy(p3);
    ward_rf_http_pool_destroy(p1);
    ward_rf_http_pool_destroy(p2);
    is_int(0, (int)ward_rf_http_pools(h), "all freed");
    ok(tserver_wait_closed(s, 10), "with their connections");
    ward_rf_http_set_connection_limits(h, WARD_RF_HTTP_DEFAULT_CONNECTIONS, 2);
    tserver_stop(s);
}

int main(void)
{
    plan(46);
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

    test_pool(loop, h, ca, ca_path);

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
