/* SPDX-License-Identifier: Apache-2.0 */
/* Every /api/v1 route over a real store and a live server, with the bad-input cases and 401s. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "api.h"
#include "client.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "tap/basic.h"

#define TOKEN "api-test-token-0123456789"
#define AUTH "Authorization: Bearer " TOKEN

static struct ev_loop *loop;
static struct ward_store *store;
static char base[64];
static int reloads, drains;
static bool reload_fails;
static struct ward_api_transition last_transition;

/* A stand-in for the policy engine's guarded path: one guard, then the store. */
static int fake_transition(void *arg, const struct ward_api_transition *t, int64_t *version,
                           struct ward_error *err)
{
    last_transition = *t;
    struct ward_resource *r = NULL;
    int rc = ward_store_get(store, t->kind, t->ns, t->name, &r, err);
    if (rc != 0) {
        return rc;
    }
    bool consumer = r->consumer != NULL && *r->consumer != '\0';
    ward_resource_free(r);
    if (strcmp(t->to, "Provisioning") == 0 && !consumer) {
        return ward_error_set(err, -EPERM,
                              "guard provisioning refused: the host has no consumer reference");
    }
    if (strcmp(t->to, "Nowhere") == 0) {
        return ward_error_set(err, -EINVAL, "no transition to Nowhere in the PhysicalHost machine");
    }
    struct ward_transition tr = {.kind = t->kind,
                                 .ns = t->ns,
                                 .name = t->name,
                                 .dimension = t->dimension,
                                 .to = t->to,
                                 .trigger = t->reset ? "reset" : "api",
                                 .reason = t->reason,
                                 .actor = t->actor,
                                 .expected_version = t->expected_version,
                                 .consumer = t->reset ? "" : NULL};
    return ward_store_transition_sync(store, &tr, version, err);
}

static int fake_reload(void *arg, struct ward_error *err)
{
    reloads++;
    return reload_fails ? ward_error_set(err, -EINVAL, "policies/host.lua:3: syntax error") : 0;
}

static void fake_queue(void *arg, struct ward_buf *out)
{
    ward_buf_printf(out, "{\"length\":3,\"processing\":1,\"max_size\":10,\"draining\":%s}",
                    drains > 0 ? "true" : "false");
}

static int fake_drain(void *arg, bool drain, struct ward_error *err)
{
    drains += drain ? 1 : -1;
    return 0;
}

static long req(const char *method, const char *path, const char *body, bool auth,
                struct http_reply *r)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    http_request(loop, method, url, body,
                 auth ? (const char *[]){AUTH, "Content-Type: application/json", NULL} : NULL, r);
    return r->status;
}

/* Status of a request whose body is not needed. */
static long status_of(const char *method, const char *path, const char *body, bool auth)
{
    struct http_reply r;
    long s = req(method, path, body, auth, &r);
    http_reply_free(&r);
    return s;
}

static void make_available(const char *name)
{
    struct ward_error err;
    struct ward_transition t = {.kind = WARD_API_KIND,
                                .ns = "default",
                                .name = name,
                                .dimension = "lifecycle",
                                .to = "Available",
                                .trigger = "test",
                                .reason = "enrolled",
                                .actor = "test"};
    if (ward_store_transition_sync(store, &t, NULL, &err) != 0) {
        bail("make %s available: %s", name, err.text);
    }
}

int main(void)
{
    plan(107);
    ward_log_set_level(WARD_LOG_ERROR);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_error err = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/state.db", test_tmpdir());
    store =
        ward_store_open(loop, &(struct ward_store_options){.path = path, .metrics = metrics}, &err);
    if (store == NULL) {
        bail("store: %s", err.text);
    }
    snprintf(path, sizeof(path), "%s/token", test_tmpdir());
    FILE *f = fopen(path, "w");
    fputs(TOKEN "\n", f);
    fclose(f);
    struct ward_events *events =
        ward_events_create(&(struct ward_events_options){.metrics = metrics});
    struct ward_http *http = ward_http_create(
        loop, metrics,
        &(struct ward_http_options){.listen = "127.0.0.1:0", .token_file = path, .max_body = 4096},
        &err);
    if (http == NULL) {
        bail("http: %s", err.text);
    }
    struct ward_api_hooks hooks = {.transition = fake_transition,
                                   .policy_reload = fake_reload,
                                   .queue_status = fake_queue,
                                   .queue_drain = fake_drain};
    struct ward_api *api = ward_api_create(http, store, events, metrics, &hooks, &err);
    if (api == NULL) {
        bail("api: %s", err.text);
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(http));
    struct http_reply r;

    /* adding hosts */
    is_int(401, status_of("POST", "/api/v1/hosts", "{\"name\":\"h1\"}", false),
           "adding a host without the token is 401");
    is_int(201,
           req("POST", "/api/v1/hosts",
               "{\"name\":\"h1\",\"labels\":{\"rack\":\"r1\"},\"spec\":{\"bmc\":\"10.0.0.1\"}}",
               true, &r),
           "a host is added");
    contains(r.body.data, "\"name\":\"h1\",\"version\":1,\"labels\":{\"rack\":\"r1\"}",
             "the answer is the stored host with its version");
    http_reply_free(&r);
    is_int(
        201,
        status_of("POST", "/api/v1/hosts", "{\"name\":\"h2\",\"labels\":{\"rack\":\"r2\"}}", true),
        "a second host is added");
    is_int(409, status_of("POST", "/api/v1/hosts", "{\"name\":\"h1\"}", true),
           "adding an existing host is 409");
    is_int(422, req("POST", "/api/v1/hosts", "{\"name\":\"Bad_Name\"}", true, &r),
           "an invalid host name is 422");
    contains(r.body.data, "is not valid", "the error says the name is not valid");
    http_reply_free(&r);
    is_int(400, req("POST", "/api/v1/hosts", "{\"name\":\"h3\",\"colour\":\"red\"}", true, &r),
           "an unknown field is 400");
    contains(r.body.data, "unknown field 'colour'", "the error names the field");
    http_reply_free(&r);
    is_int(400, req("POST", "/api/v1/hosts", "{\"name\":\"h3\",", true, &r),
           "malformed JSON is 400");
    contains(r.body.data, "malformed JSON", "the error says the JSON is malformed");
    http_reply_free(&r);
    is_int(400, status_of("POST", "/api/v1/hosts", "[1,2]", true), "a non-object body is 400");
    is_int(400, status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\"} {}", true),
           "trailing data after the JSON is 400");
    is_int(400, status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\",\"name\":\"h4\"}", true),
           "a duplicated field is 400");
    is_int(400,
           status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\",\"labels\":{\"rack\":7}}", true),
           "a non-string label value is 400");
    is_int(400, status_of("POST", "/api/v1/hosts", "{\"name\":42}", true), "a wrong type is 400");
    /* what cJSON would keep but some reader after it would misread or cut short */
    is_int(400, status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\\u0000evil\"}", true),
           "a name spelling \\u0000 is 400, not host h3");
    is_int(400,
           status_of("POST", "/api/v1/hosts",
                     "{\"name\":\"h3\",\"spec\":{\"k\":\"abc\\u0000def\"}}", true),
           "a spec string spelling \\u0000 is 400");
    is_int(400,
           status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\",\"spec\":{\"a\\u0000\":1}}", true),
           "a spec key spelling \\u0000 is 400");
    is_int(400,
           req("POST", "/api/v1/hosts",
               "{\"name\":\"h3\",\"labels\":{\"rack\":\"ra\",\"rack\":\"rb\"}}", true, &r),
           "a label given twice is 400");
    contains(r.body.data, "labels: key 'rack' appears twice", "the error names the label");
    http_reply_free(&r);
    is_int(400,
           status_of("POST", "/api/v1/hosts",
                     "{\"name\":\"h3\",\"spec\":{\"b\":[{\"i\":\"a\",\"i\":\"b\"}]}}", true),
           "a key twice anywhere in the spec is 400");
    is_int(422,
           req("POST", "/api/v1/hosts",
               "{\"name\":\"h3\",\"spec\":{\"assetTag\":9007199254740991}}", true, &r),
           "a spec number cJSON would store rounded is 422");
    contains(r.body.data, "cannot be stored exactly", "the error says why");
    http_reply_free(&r);
    is_int(422,
           status_of("POST", "/api/v1/hosts", "{\"name\":\"h3\",\"spec\":{\"x\":1e999}}", true),
           "a spec number beyond a double is 422, not null");
    is_int(422,
           req("POST", "/api/v1/hosts",
               "{\"name\":\"h3\",\"spec\":{\"bmc\":{\"address\":\"https://10.0.0.9\","
               "\"username\":\"root\",\"password\":\"hunter2-secret\"}}}",
               true, &r),
           "a BMC password written in a spec is 422: the spec is stored and shown");
    ok(strstr(r.body.data, "'password' is a secret") != NULL &&
           strstr(r.body.data, "hunter2") == NULL,
       "the error names the key, not the value: %s", r.body.data);
    http_reply_free(&r);
    is_int(201,
           status_of("POST", "/api/v1/hosts",
                     "{\"name\":\"h8\",\"spec\":{\"bmc\":{\"address\":\"https://10.0.0.6\","
                     "\"credentials\":\"rack1\"}}}",
                     true),
           "a BMC naming its credentials set (a name, not a secret) is taken");
    is_int(201,
           req("POST", "/api/v1/hosts",
               "{\"name\":\"h5\",\"spec\":{\"note\":\"a\\\\u0000b\",\"n\":4503599627370495,"
               "\"f\":0.5,\"bmc\":{\"credentials\":{\"username\":\"root\","
               "\"passwordFile\":\"/etc/ward/h5\"}}}}",
               true, &r),
           "an escaped backslash, exact numbers and a password file are taken");
    contains(r.body.data, "\"note\":\"a\\\\u0000b\",\"n\":4503599627370495",
             "and stored as they were sent");
    http_reply_free(&r);
    is_int(200, status_of("DELETE", "/api/v1/hosts/h5?version=1", NULL, true), "(h5 removed)");
    is_int(400, status_of("POST", "/api/v1/hosts", "", true), "a missing body is 400");
    char big[5000];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"name\":\"h3\"}", 13);
    is_int(413, status_of("POST", "/api/v1/hosts", big, true), "an oversized body is 413");
    struct ward_buf deep = {0};
    for (int i = 0; i < 3000; i++) {
        ward_buf_putc(&deep, '[');
    }
    is_int(400, status_of("POST", "/api/v1/hosts", deep.data, true),
           "deeply nested JSON is refused, not a crash");
    ward_buf_free(&deep);

    make_available("h1");
    make_available("h2");
    req("GET", "/metrics", NULL, false, &r);
    contains(r.body.data, "\nward_hosts{state=\"Available\"} 2\n", "ward_hosts is counted");
    http_reply_free(&r);

    /* reading */
    is_int(200, req("GET", "/api/v1/hosts", NULL, false, &r), "hosts are listed without a token");
    ok(strstr(r.body.data, "\"name\":\"h1\"") && strstr(r.body.data, "\"name\":\"h2\""),
       "the list has both hosts");
    http_reply_free(&r);
    req("GET", "/api/v1/hosts?label=rack=r2", NULL, false, &r);
    ok(strstr(r.body.data, "\"name\":\"h2\"") && !strstr(r.body.data, "\"name\":\"h1\""),
       "filter by label");
    http_reply_free(&r);
    is_int(400, status_of("GET", "/api/v1/hosts?label=rack", NULL, false),
           "a label filter without a value is 400");
    is_int(400, status_of("GET", "/api/v1/hosts?state=Avail%20able", NULL, false),
           "an invalid state filter is 400");
    is_int(400, req("GET", "/api/v1/hosts?lable=rack=r2", NULL, false, &r),
           "a misspelt filter is 400, not the whole list");
    contains(r.body.data,
             "unknown query parameter 'lable' (this request takes namespace, state, label)",
             "the error names it and what the request takes");
    http_reply_free(&r);
    is_int(400, status_of("GET", "/api/v1/hosts?label=rack=r2&label=rack=r1", NULL, false),
           "a filter given twice is 400, not its first value");
    is_int(400, status_of("GET", "/api/v1/hosts?state", NULL, false),
           "a filter without a value is 400");
    is_int(400,
           status_of("POST", "/api/v1/hosts/h1/transition?version=1",
                     "{\"to\":\"Error\",\"reason\":\"x\",\"version\":1}", true),
           "a transition's version is taken from the body only");
    is_int(422, status_of("GET", "/api/v1/hosts/h1%00zzz", NULL, false),
           "a path spelling %%00 is an invalid name, not host h1");
    is_int(200, status_of("GET", "/api/v1/hosts/h%31", NULL, false),
           "other escapes in the path are decoded");
    is_int(200, req("GET", "/api/v1/hosts/h1", NULL, false, &r), "one host is read");
    contains(r.body.data, "\"states\":{\"lifecycle\":{\"state\":\"Available\"",
             "with its lifecycle state");
    http_reply_free(&r);
    is_int(404, status_of("GET", "/api/v1/hosts/nope", NULL, false), "an unknown host is 404");
    is_int(422, status_of("GET", "/api/v1/hosts/BAD..name", NULL, false),
           "an invalid name in the path is 422");
    is_int(400, status_of("GET", "/api/v1/hosts/h1", "{}", false), "a GET with a body is 400");
    is_int(404, status_of("GET", "/api/v1/nothing", NULL, false), "an unknown route is 404");
    is_int(405, status_of("PUT", "/api/v1/hosts", "{}", true), "a wrong method is 405");

    /* claims */
    is_int(401, status_of("POST", "/api/v1/claims", "{\"consumer\":\"c1\"}", false),
           "claiming without the token is 401");
    is_int(200,
           req("POST", "/api/v1/claims", "{\"consumer\":\"c1\",\"selector\":{\"rack\":\"r1\"}}",
               true, &r),
           "a claim with a selector succeeds");
    contains(r.body.data, "\"name\":\"h1\"", "it got the host matching the selector");
    contains(r.body.data, "\"consumer\":\"c1\"", "the host carries the consumer");
    {
        struct http_reply m;
        req("GET", "/metrics", NULL, false, &m);
        ok(strstr(m.body.data, "\nward_hosts{state=\"Available\"} 1\n") &&
               strstr(m.body.data, "\nward_hosts{state=\"Claimed\"} 1\n"),
           "ward_hosts follows the claim");
        http_reply_free(&m);
    }
    contains(r.body.data, "\"attempts\":1,\"conflicts\":0}", "the claim reports what it cost");
    http_reply_free(&r);
    is_int(404,
           req("POST", "/api/v1/claims", "{\"consumer\":\"c2\",\"selector\":{\"rack\":\"r1\"}}",
               true, &r),
           "a claim with nothing available is 404");
    contains(r.body.data, "no available host", "the error says so");
    contains(r.body.data, "\"attempts\":1,\"conflicts\":0}", "a failed claim reports its cost too");
    http_reply_free(&r);
    is_int(422, status_of("POST", "/api/v1/claims", "{\"consumer\":\"C 1\"}", true),
           "an invalid consumer name is 422");

    /* transitions through the guarded path */
    is_int(428,
           req("POST", "/api/v1/hosts/h2/transition", "{\"to\":\"Provisioning\",\"reason\":\"go\"}",
               true, &r),
           "a transition without a version is 428");
    contains(r.body.data, "\"currentVersion\":2", "and says the current version");
    http_reply_free(&r);
    is_int(409,
           req("POST", "/api/v1/hosts/h2/transition",
               "{\"to\":\"Provisioning\",\"reason\":\"go\",\"version\":2}", true, &r),
           "a refused guard is 409");
    contains(r.body.data, "the host has no consumer reference", "with the guard's reason");
    http_reply_free(&r);
    is_int(422,
           status_of("POST", "/api/v1/hosts/h2/transition",
                     "{\"to\":\"Nowhere\",\"reason\":\"x\",\"version\":2}", true),
           "a transition the machine does not know is 422");
    is_int(409,
           req("POST", "/api/v1/hosts/h1/transition",
               "{\"to\":\"Provisioning\",\"reason\":\"go\",\"version\":1}", true, &r),
           "a stale version is 409");
    contains(r.body.data, "\"currentVersion\":3", "with the version to retry with");
    http_reply_free(&r);
    is_int(200,
           req("POST", "/api/v1/hosts/h1/transition",
               "{\"to\":\"Provisioning\",\"reason\":\"image ready\",\"version\":3}", true, &r),
           "a transition with the right version goes through");
    contains(r.body.data, "\"version\":4", "and returns the new version");
    http_reply_free(&r);
    is_int(400,
           status_of("POST", "/api/v1/hosts/h1/transition",
                     "{\"to\":\"Provisioned\",\"reason\":\"x\",\"version\":-1}", true),
           "a negative version is 400");
    is_int(422,
           status_of("POST", "/api/v1/hosts/h1/transition",
                     "{\"to\":\"Provisioned\",\"reason\":\"a\\nb\",\"version\":4}", true),
           "a reason with control characters is 422");
    is_int(200, req("GET", "/api/v1/hosts/h1/history", NULL, false, &r), "history is read");
    ok(strstr(r.body.data, "\"from\":\"Available\",\"to\":\"Claimed\"") &&
           strstr(r.body.data,
                  "\"to\":\"Provisioning\",\"trigger\":\"api\",\"reason\":\"image ready\""),
       "history has the claim and the transition in order");
    http_reply_free(&r);
    is_int(400, status_of("GET", "/api/v1/hosts/h1/history?since=yesterday", NULL, false),
           "a bad since is 400");

    /* reset and release */
    is_int(
        200,
        status_of("POST", "/api/v1/hosts/h1/reset", "{\"reason\":\"stuck\",\"version\":4}", true),
        "host reset goes through the guarded path");
    ok(last_transition.reset && strcmp(last_transition.to, "Enrolling") == 0,
       "reset asks for re-enrollment with the claim cleared");
    req("GET", "/api/v1/hosts/h1", NULL, false, &r);
    contains(r.body.data, "\"consumer\":null", "the claim is gone after the reset");
    http_reply_free(&r);
    make_available("h1");
    status_of("POST", "/api/v1/claims", "{\"consumer\":\"c3\",\"selector\":{\"rack\":\"r1\"}}",
              true);
    is_int(409, status_of("POST", "/api/v1/hosts/h1/release", "{\"consumer\":\"c9\"}", true),
           "releasing someone else's claim is 409");
    is_int(409, status_of("DELETE", "/api/v1/hosts/h1?version=7", NULL, true),
           "removing a claimed host is 409");
    is_int(200, req("POST", "/api/v1/hosts/h1/release", "{\"consumer\":\"c3\"}", true, &r),
           "the holder releases");
    contains(r.body.data, "\"released\":true", "and is told it released the host");
    http_reply_free(&r);
    is_int(200, req("POST", "/api/v1/hosts/h1/release", "{\"consumer\":\"c3\"}", true, &r),
           "release is idempotent");
    contains(r.body.data, "\"released\":false", "a second time it is told nothing was held");
    http_reply_free(&r);

    /* removal */
    is_int(428, status_of("DELETE", "/api/v1/hosts/h2", NULL, true), "removal needs a version");
    is_int(409, status_of("DELETE", "/api/v1/hosts/h2?version=1", NULL, true),
           "removal with a stale version is 409");
    is_int(200, status_of("DELETE", "/api/v1/hosts/h2?version=2", NULL, true), "a host is removed");
    is_int(404, status_of("GET", "/api/v1/hosts/h2", NULL, false), "and is gone");

    /* events, policy, queue, leader */
    is_int(200, req("GET", "/api/v1/events?name=h1", NULL, false, &r), "events are listed");
    ok(strstr(r.body.data, "\"reason\":\"Claimed\"") && strstr(r.body.data, "\"reason\":\"Added\""),
       "adds and claims recorded events");
    /* events repeat as a count: {"reason":"Released",...,"count":N} */
    const char *rel = strstr(r.body.data, "\"reason\":\"Released\"");
    const char *count = rel != NULL ? strstr(rel, "\"count\":") : NULL;
    ok(count != NULL && strncmp(count, "\"count\":1,", 10) == 0 &&
           strstr(rel + 1, "\"reason\":\"Released\"") == NULL,
       "one Released event: the release of a host nobody held records none");
    http_reply_free(&r);
    is_int(400, status_of("GET", "/api/v1/events?type=Error", NULL, false),
           "an unknown event type is 400");
    is_int(201, status_of("POST", "/api/v1/hosts", "{\"name\":\"h7\",\"namespace\":\"lab\"}", true),
           "a host is added in another namespace");
    req("GET", "/api/v1/events?name=h7", NULL, false, &r);
    contains(r.body.data, "\"namespace\":\"lab\",\"name\":\"h7\"",
             "its event is filed under its own namespace");
    http_reply_free(&r);
    req("POST", "/api/v1/hosts/nosuch/transition", "{\"to\":\"Error\",\"reason\":\"x\"}", true, &r);
    ok(r.status == 404 && strstr(r.body.data, "\"reason\":\"Not Found\"") != NULL,
       "a transition of an unknown host is 404 Not Found, not 404 Conflict: %s", r.body.data);
    http_reply_free(&r);
    is_int(200, status_of("POST", "/api/v1/policy/reload", NULL, true), "policy reload");
    reload_fails = true;
    is_int(422, req("POST", "/api/v1/policy/reload", "{}", true, &r), "a failing reload is 422");
    contains(r.body.data, "policies/host.lua:3", "with the engine's message");
    http_reply_free(&r);
    is_int(200, status_of("POST", "/api/v1/queue/drain", NULL, true), "queue drain");
    req("GET", "/api/v1/queue", NULL, false, &r);
    contains(r.body.data, "\"draining\":true", "queue status shows the drain");
    http_reply_free(&r);
    req("GET", "/api/v1/leader", NULL, false, &r);
    contains(r.body.data, "\"mode\":\"standalone\"", "leader status without a coordinator");
    http_reply_free(&r);

    req("GET", "/metrics", NULL, false, &r);
    contains(r.body.data, "\nward_hosts{state=\"Available\"} 1\n",
             "ward_hosts follows claims, resets and removals");
    contains(r.body.data, "\nward_hosts{state=\"Claimed\"} 0\n", "a state left empty reads 0");
    contains(r.body.data, "ward_api_unauthorized_total 2\n", "the 401s were counted");
    http_reply_free(&r);

    ward_http_destroy(http);
    ward_api_destroy(api);
    ward_events_destroy(events);
    ward_store_close(store);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    return 0;
}
