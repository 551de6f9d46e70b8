/* SPDX-License-Identifier: Apache-2.0 */
/* ward-bmcsim faults, switched at runtime through the control API (and at start by flags):
 * 5xx, hangs, resets, malformed and truncated JSON, slow drip, expired sessions, wrong
 * certificates, latency; and the per-BMC concurrency counter. */
#include "autoconf.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../tap/basic.h"
#include "simclient.h"

#define ROOT "/redfish/v1/"
#define SYS "/redfish/v1/Systems/437XR1138R2"

static void fault(struct sim *s, const char *json)
{
    if (sim_control_post(s, "/control/faults", json) != 200) {
        bail("control API refused %s", json);
    }
}

/* Wait, with a bound, until the BMC reports `want` requests in flight. */
static bool wait_active(struct sim *s, int i, int want, CURLM *multi, double timeout)
{
    double deadline = ward_monotonic() + timeout;
    while (ward_monotonic() < deadline) {
        int running = 0;
        curl_multi_perform(multi, &running);
        if ((int)sim_counter(s, i, "active_requests") == want) {
            return true;
        }
        curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    return false;
}

static bool wait_idle(struct sim *s, int i, double timeout)
{
    double deadline = ward_monotonic() + timeout;
    while (ward_monotonic() < deadline) {
        if ((int)sim_counter(s, i, "active_requests") == 0) {
            return true;
        }
        poll(NULL, 0, 20);
    }
    return false;
}

static size_t discard(char *d, size_t size, size_t n, void *arg)
{
    return size * n;
}

int main(void)
{
    plan(46);
    struct sim s;
    const char *args[] = {"--bmcs", "3", "--drip-ms", "5", "--hang-ms", "60000", NULL};
    sim_start(&s, args);

    /* 5xx */
    fault(&s, "{\"bmc\":0,\"error_rate\":1}");
    struct http_result r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(500, r.status, "error_rate 1: 500");
    ok(json_at(r.json, "error/@Message.ExtendedInfo/0/MessageId") != NULL,
       "500 carries a Redfish error body");
    http_free(&r);
    r = sim_http(&s, 1, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "other BMCs unaffected");
    http_free(&r);
    fault(&s, "{\"bmc\":0,\"error_rate\":0.5}");
    int fails = 0, oks = 0;
    for (int k = 0; k < 40; k++) {
        r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
        fails += r.status == 500;
        oks += r.status == 200;
        http_free(&r);
    }
    ok(fails > 0 && oks > 0 && fails + oks == 40, "error_rate 0.5: some of each (%d/%d)", fails,
       oks);
    ok(sim_counter(&s, 0, "responses_5xx") >= fails + 1, "control API counts the 5xx answers");
    fault(&s, "{\"bmc\":0,\"clear\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "cleared: 200 again");
    http_free(&r);

    /* hang past the client's timeout */
    fault(&s, "{\"bmc\":0,\"hang\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 1);
    is_int(CURLE_OPERATION_TIMEDOUT, r.curl_code, "hang: the client times out");
    is_int(0, r.status, "hang: no answer");
    http_free(&r);
    ok(wait_idle(&s, 0, 10), "a client that gives up stops counting as in flight");
    fault(&s, "{\"bmc\":0,\"hang\":false}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "hang off: answers again");
    http_free(&r);

    /* connection reset */
    fault(&s, "{\"bmc\":0,\"reset\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    ok(r.status == 0 && r.curl_code != CURLE_OK && r.curl_code != CURLE_OPERATION_TIMEDOUT,
       "reset: the transfer fails at once (curl %d)", r.curl_code);
    http_free(&r);
    fault(&s, "{\"bmc\":0,\"reset\":false}");

    /* malformed JSON */
    fault(&s, "{\"bmc\":0,\"malformed\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "malformed: a complete 200 answer");
    ok(r.body != NULL && strlen(r.body) > 10, "malformed: with a body");
    ok(r.json == NULL, "malformed: that does not parse");
    http_free(&r);
    fault(&s, "{\"bmc\":0,\"malformed\":false}");

    /* truncated body */
    fault(&s, "{\"bmc\":0,\"truncated\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(CURLE_PARTIAL_FILE, r.curl_code, "truncated: fewer bytes than Content-Length");
    ok(r.json == NULL, "truncated: what arrived does not parse");
    http_free(&r);
    fault(&s, "{\"bmc\":0,\"truncated\":false}");

    /* slow drip: the whole body, in small pieces */
    double before = sim_counter(&s, 0, "faults_injected");
    fault(&s, "{\"bmc\":0,\"slow_drip\":true}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 30);
    is_int(200, r.status, "slow drip: 200");
    is_string("/redfish/v1/Systems", json_str(r.json, "Systems/@odata.id"),
              "slow drip: the body arrives whole");
    http_free(&r);
    ok(sim_counter(&s, 0, "faults_injected") > before, "slow drip counted as injected");
    fault(&s, "{\"bmc\":0,\"slow_drip\":false}");

    /* latency still answers */
    fault(&s, "{\"bmc\":0,\"latency_ms\":30,\"jitter_ms\":10}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "latency: answered");
    http_free(&r);
    cJSON *rep = sim_control_bmc(&s, 0);
    is_int(30, (long long)json_num(rep, "faults/latency_ms"), "latency reported");
    is_int(10, (long long)json_num(rep, "faults/jitter_ms"), "jitter reported");
    cJSON_Delete(rep);
    fault(&s, "{\"bmc\":0,\"clear\":true}");

    /* expired sessions */
    char *tok = sim_login(&s, 1);
    r = sim_http(&s, 1, "GET", SYS, NULL, tok, NULL, 10);
    is_int(200, r.status, "session works");
    http_free(&r);
    fault(&s, "{\"bmc\":\"bmc-0001\",\"expire_sessions\":true}");
    r = sim_http(&s, 1, "GET", SYS, NULL, tok, NULL, 10);
    is_int(401, r.status, "expire_sessions: the token is refused");
    http_free(&r);
    is_int(0, (long long)sim_counter(&s, 1, "active_sessions"), "no sessions left");
    free(tok);

    /* wrong certificates, for new connections */
    static const char *const kinds[] = {"ca", "expired", "name"};
    for (int k = 0; k < 3; k++) {
        char f[96];
        snprintf(f, sizeof(f), "{\"bmc\":1,\"wrong_cert\":\"%s\"}", kinds[k]);
        fault(&s, f);
        r = sim_http(&s, 1, "GET", ROOT, NULL, NULL, NULL, 10);
        is_int(CURLE_PEER_FAILED_VERIFICATION, r.curl_code,
               "wrong_cert %s: verification fails with the simulator's CA", kinds[k]);
        http_free(&r);
    }
    r = sim_http(&s, 2, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "wrong_cert: other BMCs keep the good certificate");
    http_free(&r);
    fault(&s, "{\"bmc\":1,\"wrong_cert\":false}");
    r = sim_http(&s, 1, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(200, r.status, "wrong_cert off: verifies again");
    http_free(&r);

    /* concurrency: three held requests are three in flight */
    fault(&s, "{\"bmc\":2,\"hang\":true}");
    sim_control_post(&s, "/control/counters/reset", "{\"bmc\":2}");
    CURLM *multi = curl_multi_init();
    CURL *easy[3];
    char url[256];
    snprintf(url, sizeof(url), "%s%s", sim_addr(&s, 2), ROOT);
    for (int k = 0; k < 3; k++) {
        easy[k] = curl_easy_init();
        curl_easy_setopt(easy[k], CURLOPT_URL, url);
        curl_easy_setopt(easy[k], CURLOPT_CAINFO, s.ca);
        curl_easy_setopt(easy[k], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[k], CURLOPT_TIMEOUT, 30L);
        curl_multi_add_handle(multi, easy[k]);
    }
    ok(wait_active(&s, 2, 3, multi, 20), "three requests in flight");
    is_int(3, (long long)sim_counter(&s, 2, "max_concurrent"), "max_concurrent is 3");
    is_int(3, (long long)sim_counter(&s, 2, "requests"), "requests counted");
    for (int k = 0; k < 3; k++) {
        curl_multi_remove_handle(multi, easy[k]);
        curl_easy_cleanup(easy[k]);
    }
    curl_multi_cleanup(multi);
    is_int(1, (long long)sim_counter(&s, 1, "max_concurrent"),
           "one-at-a-time client: max_concurrent 1");

    /* the control API checks what it is told */
    is_int(400, sim_control_post(&s, "/control/faults", "{\"error_rate\":2}"),
           "error_rate out of range refused");
    is_int(400, sim_control_post(&s, "/control/faults", "{\"explode\":true}"),
           "unknown fault refused");
    is_int(400, sim_control_post(&s, "/control/faults", "{\"hang\":"), "bad JSON refused");
    is_int(400, sim_control_post(&s, "/control/faults", "{\"bmc\":\"nope\",\"hang\":true}"),
           "unknown BMC name refused");
    is_int(400, sim_control_post(&s, "/control/faults", "{\"latency_ms\":-1}"),
           "negative latency refused");
    rep = sim_control_bmc(&s, 0);
    ok(!cJSON_IsTrue(json_at(rep, "faults/hang")), "a refused request changed nothing");
    cJSON_Delete(rep);
    is_int(0, sim_stop(&s), "stops cleanly with requests still held");

    /* faults from the command line */
    const char *args2[] = {"--error-rate",      "1", "--wrong-cert=expired", "--bmcs", "2",
                           "--shared-password", NULL};
    sim_start(&s, args2);
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(CURLE_PEER_FAILED_VERIFICATION, r.curl_code, "--wrong-cert=expired at start");
    http_free(&r);
    fault(&s, "{\"wrong_cert\":\"none\"}");
    r = sim_http(&s, 0, "GET", ROOT, NULL, NULL, NULL, 10);
    is_int(500, r.status, "--error-rate 1 at start");
    http_free(&r);
    contains(json_str(s.fleet, "bmcs/1/password_file"), "/fleet.password",
             "--shared-password: one file for the fleet");
    fault(&s, "{\"clear\":true}");
    r = sim_http(&s, 1, "GET", SYS, NULL, "basic", NULL, 10);
    is_int(200, r.status, "--shared-password: the shared password works");
    http_free(&r);
    is_int(0, sim_stop(&s), "stopped");
    return 0;
}
