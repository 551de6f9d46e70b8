/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API on the real policy engine and PhysicalHost policy (with the fake
 * BMC from the policy tests): hosts added over HTTP enroll, transitions go
 * through the machine and its guards and come back with the guard's reason,
 * a reset re-enrolls through Error, reloads report refusals, and the engine's
 * events land in /api/v1/events.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>

#include "api.h"
#include "client.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "policy/fixture.h"
#include "store.h"
#include "tap/basic.h"

#define TOKEN "policy-api-token-0123456789"
#define AUTH "Authorization: Bearer " TOKEN

static struct ev_loop *loop;
static struct ward_policy_engine *engine;
static char base[64];

static bool settle_until(const char *name, const char *state)
{
    for (int i = 0; i < 5000; i++) {
        const char *now = ward_policy_resource_state(engine, "PhysicalHost", name, NULL);
        if (now != NULL && strcmp(now, state) == 0) {
            return true;
        }
        /* the engine's requeue backoff runs on its (fake) clock: let it pass */
        fixture_now += 0.25;
        ward_policy_engine_tick(engine);
        ev_run(loop, EVRUN_NOWAIT);
    }
    diag("%s is %s, not %s", name,
         ward_policy_resource_state(engine, "PhysicalHost", name, NULL) != NULL
             ? ward_policy_resource_state(engine, "PhysicalHost", name, NULL)
             : "unknown",
         state);
    return false;
}

static long post(const char *path, const char *body, struct http_reply *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    http_request(loop, "POST", url, body, (const char *[]){AUTH, NULL}, r);
    return r->status;
}

static long version_of(const char *name)
{
    char url[256];
    struct http_reply r;
    snprintf(url, sizeof(url), "%s/api/v1/hosts/%s", base, name);
    http_request(loop, "GET", url, NULL, NULL, &r);
    const char *v = strstr(r.body.data, "\"version\":");
    long version = v != NULL ? strtol(v + 10, NULL, 10) : 0;
    http_reply_free(&r);
    return version;
}

int main(void)
{
    plan(24);
    ward_log_set_level(WARD_LOG_ERROR);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_error err = {0};
    const char *dir = test_tmpdir();
    char path[512], policies[512];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    struct ward_store *store =
        ward_store_open(loop, &(struct ward_store_options){.path = path, .metrics = metrics}, &err);
    if (store == NULL) {
        bail("store: %s", err.text);
    }
    /* the shipped policy, copied so a reload can be broken on purpose */
    snprintf(policies, sizeof(policies), "%s/policies", dir);
    mkdir(policies, 0700);
    char *policy = test_slurp(WARD_SRCDIR "/policies/physicalhost.lua");
    if (policy == NULL) {
        bail("cannot read the PhysicalHost policy");
    }
    fixture_write(policies, "physicalhost.lua", policy);

    struct ward_events *events = ward_events_create(&(struct ward_events_options){0});
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    struct ward_policy_options o;
    fixture_options(&o, &bmc, NULL);
    o.on_event = ward_api_policy_event;
    o.event_arg = events;
    struct ward_policy_sink sink;
    ward_policy_sink_store(&sink, store);
    engine = ward_policy_engine_create(loop, &sink, NULL, metrics, &o, &err);
    if (engine == NULL || ward_policy_engine_load(engine, policies, &err) != 0) {
        bail("engine: %s", err.text);
    }
    snprintf(path, sizeof(path), "%s/token", dir);
    fixture_write(dir, "token", TOKEN "\n");
    struct ward_http *http = ward_http_create(
        loop, metrics, &(struct ward_http_options){.listen = "127.0.0.1:0", .token_file = path},
        &err);
    struct ward_api_policy glue = {.engine = engine, .store = store, .events = events};
    struct ward_api_hooks hooks = {0};
    ward_api_policy_hooks(&hooks, &glue);
    struct ward_api *api =
        http != NULL ? ward_api_create(http, store, events, metrics, &hooks, &err) : NULL;
    if (api == NULL) {
        bail("api: %s", err.text);
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(http));
    struct http_reply r;
    char body[256];

    is_int(201,
           post("/api/v1/hosts",
                "{\"name\":\"h1\",\"labels\":{\"rack\":\"r1\"},"
                "\"spec\":{\"bmc\":{\"address\":\"https://10.0.0.5\"}}}",
                &r),
           "a host is added through the engine");
    http_reply_free(&r);
    ok(settle_until("h1", "Available"), "and the policy enrolls it");
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/hosts/h1", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    ok(strstr(r.body.data, "\"lifecycle\":{\"state\":\"Available\"") &&
           strstr(r.body.data, "\"labels\":{\"rack\":\"r1\"}"),
       "the API shows the enrolled host with its labels");
    http_reply_free(&r);
    is_int(409, post("/api/v1/hosts", "{\"name\":\"h1\"}", &r), "adding it again is 409");
    http_reply_free(&r);

    snprintf(body, sizeof(body), "{\"to\":\"Provisioning\",\"reason\":\"skip\",\"version\":%ld}",
             version_of("h1"));
    is_int(409, post("/api/v1/hosts/h1/transition", body, &r),
           "a transition the machine does not allow is refused");
    contains(r.body.data, "Available", "with the machine's explanation");
    http_reply_free(&r);
    snprintf(body, sizeof(body), "{\"to\":\"Claimed\",\"reason\":\"take it\",\"version\":%ld}",
             version_of("h1"));
    is_int(409, post("/api/v1/hosts/h1/transition", body, &r), "a refused guard is 409");
    contains(r.body.data, "consumerRef is not set", "with the guard's reason");
    http_reply_free(&r);
    is_int(409,
           post("/api/v1/hosts/h1/transition", "{\"to\":\"Error\",\"reason\":\"x\",\"version\":1}",
                &r),
           "a stale version is 409 before the engine is asked");
    http_reply_free(&r);
    snprintf(body, sizeof(body),
             "{\"to\":\"Error\",\"reason\":\"operator says so\",\"version\":%ld}",
             version_of("h1"));
    is_int(200, post("/api/v1/hosts/h1/transition", body, &r), "any -> Error goes through");
    http_reply_free(&r);
    is_string("Error", ward_policy_resource_state(engine, "PhysicalHost", "h1", NULL),
              "the engine has it in Error");
    snprintf(body, sizeof(body), "{\"reason\":\"recover\",\"version\":%ld}", version_of("h1"));
    is_int(200, post("/api/v1/hosts/h1/reset", body, &r), "host reset");
    http_reply_free(&r);
    ok(settle_until("h1", "Available"), "re-enrolls the host to Available");
    /* a reset whose re-enrolment the guard refuses: what it did before is said, not hidden */
    is_int(201, post("/api/v1/hosts", "{\"name\":\"h9\",\"spec\":{\"note\":\"no bmc yet\"}}", &r),
           "a host without a BMC address is added");
    http_reply_free(&r);
    snprintf(body, sizeof(body), "{\"reason\":\"try\",\"version\":%ld}", version_of("h9"));
    is_int(409, post("/api/v1/hosts/h9/reset", body, &r), "its reset is refused at re-enrolment");
    contains(r.body.data, "the reset moved the host to Error, then stopped: ",
             "saying what it did before it stopped");
    http_reply_free(&r);

    snprintf(url, sizeof(url), "%s/api/v1/hosts/h1/explain", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    is_int(200, r.status, "explain answers for a host");
    ok(strstr(r.body.data, "\"state\":\"Available\"") != NULL &&
           strstr(r.body.data, "\"to\":\"Claimed\"") != NULL &&
           strstr(r.body.data, "\"allowed_now\":false") != NULL,
       "with the state, each target and whether its guard allows it now: %s", r.body.data);
    http_reply_free(&r);
    long before = version_of("h1");
    snprintf(url, sizeof(url), "%s/api/v1/hosts/nosuch/explain", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    is_int(404, r.status, "explain of an unknown host is 404");
    http_reply_free(&r);
    is_int(before, version_of("h1"), "explaining changes nothing");

    is_int(200, post("/api/v1/policy/reload", NULL, &r), "policy reload");
    http_reply_free(&r);
    fixture_write(policies, "physicalhost.lua", "return {broken = ");
    is_int(422, post("/api/v1/policy/reload", NULL, &r), "a broken policy is refused");
    http_reply_free(&r);

    snprintf(url, sizeof(url), "%s/api/v1/events?name=h1", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    ok(strstr(r.body.data, "\"reason\":\"Transition\"") &&
           strstr(r.body.data, "\"reason\":\"TransitionRefused\""),
       "transitions and refusals are events");
    http_reply_free(&r);
    snprintf(url, sizeof(url), "%s/api/v1/events?type=Warning", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    contains(r.body.data, "\"reason\":\"PolicyReloadRefused\"", "a refused reload is a warning");
    http_reply_free(&r);

    ward_http_destroy(http);
    ward_api_destroy(api);
    ward_policy_engine_destroy(engine);
    ward_events_destroy(events);
    ward_store_close(store);
    ward_metrics_destroy(metrics);
    free(policy);
    ev_loop_destroy(loop);
    return 0;
}
