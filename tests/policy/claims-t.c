/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Claims drive the PhysicalHost lifecycle end to end: the real SQLite store,
 * the real policy engine with the shipped policy and the fake BMC driver, and
 * the real API over loopback. A claim made through the API reaches the engine
 * as spec.consumerRef (the store's consumer is the truth), an image takes the
 * host through Provisioning to Provisioned, a release brings it back through
 * the policy's release flow, a claim the engine has not seen yet never gives a
 * host two consumers, and a restart keeps the claim.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <ward/async.h>

#include "api.h"
#include "http.h"
#include "http/client.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "policy/fixture.h"
#include "store.h"
#include "tap/basic.h"

#define TOKEN "claims-test-token-0123456789"
#define AUTH "Authorization: Bearer " TOKEN
#define KIND "PhysicalHost"
#define ISO "https://images.example.org/os/v1.iso"
#define ISO2 "http://images.example.org/os/v2.iso"

static struct ev_loop *loop;
static struct ward_metrics *metrics;
static struct fakebmc bmc;
static struct ward_store *store;
static struct ward_policy_engine *engine;
static struct ward_http *http;
static struct ward_api *api;
static struct ward_api_policy glue;
static char base[64];
static char dbpath[512];

static void start(void)
{
    struct ward_error err = {0};
    store = ward_store_open(loop, &(struct ward_store_options){.path = dbpath, .metrics = metrics},
                            &err);
    if (store == NULL) {
        bail("store: %s", err.text);
    }
    struct ward_policy_options o;
    fixture_options(&o, &bmc, NULL);
    struct ward_policy_sink sink;
    ward_policy_sink_store(&sink, store);
    engine = ward_policy_engine_create(loop, &sink, NULL, metrics, &o, &err);
    if (engine == NULL || ward_policy_engine_load(engine, WARD_SRCDIR "/policies", &err) != 0 ||
        ward_policy_engine_restore(engine, store, &err) != 0) {
        bail("engine: %s", err.text);
    }
    char token[512];
    snprintf(token, sizeof(token), "%s/token", test_tmpdir());
    http = ward_http_create(
        loop, metrics, &(struct ward_http_options){.listen = "127.0.0.1:0", .token_file = token},
        &err);
    glue = (struct ward_api_policy){.engine = engine, .store = store};
    struct ward_api_hooks hooks = {0};
    ward_api_policy_hooks(&hooks, &glue);
    api = http != NULL ? ward_api_create(http, store, NULL, metrics, &hooks, &err) : NULL;
    if (api == NULL) {
        bail("api: %s", err.text);
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(http));
}

static void stop(void)
{
    ward_http_destroy(http);
    ward_api_destroy(api);
    ward_policy_engine_destroy(engine);
    ward_store_close(store);
}

static const char *state(const char *name)
{
    const char *s = ward_policy_resource_state(engine, KIND, name, NULL);
    return s != NULL ? s : "(unknown)";
}

/* Run the loop and the engine's (fake) clock until name is in want, bounded. */
static bool settle_until(const char *name, const char *want)
{
    for (int i = 0; i < 4000; i++) {
        if (strcmp(state(name), want) == 0) {
            return true;
        }
        fixture_now += 0.25;
        ward_policy_engine_tick(engine);
        ev_run(loop, EVRUN_NOWAIT);
    }
    diag("%s is %s, not %s", name, state(name), want);
    return false;
}

/* Let everything queued run without moving the clock far (nothing due later is started). */
static void settle(void)
{
    for (int i = 0; i < 50; i++) {
        ev_run(loop, EVRUN_NOWAIT);
    }
}

static long post(const char *path, const char *body, struct http_reply *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    http_request(loop, "POST", url, body, (const char *[]){AUTH, NULL}, r);
    return r->status;
}

static long post_free(const char *path, const char *body)
{
    struct http_reply r;
    long status = post(path, body, &r);
    if (status == 0) {
        diag("POST %s: %s", path, r.error);
    }
    http_reply_free(&r);
    return status;
}

/* The engine's spec.consumerRef of name, "" when absent (caller frees). */
static char *engine_consumer(const char *name)
{
    char *json = ward_policy_resource_json(engine, KIND, name);
    cJSON *o = cJSON_Parse(json != NULL ? json : "{}");
    free(json);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spec"),
                                                        "consumerRef");
    char *out = strdup(cJSON_IsString(ref) ? ref->valuestring : "");
    cJSON_Delete(o);
    return out;
}

/* The store's consumer of name, "" when none (caller frees). */
static char *store_consumer(struct ward_store *st, const char *name)
{
    struct ward_resource *r = NULL;
    char *out = NULL;
    if (ward_store_get(st, KIND, "default", name, &r, NULL) == 0) {
        out = strdup(r->consumer != NULL ? r->consumer : "");
        ward_resource_free(r);
    }
    return out != NULL ? out : strdup("(missing)");
}

static void is_consumers(const char *name, const char *want, const char *what)
{
    char *e = engine_consumer(name);
    char *s = store_consumer(store, name);
    ok(strcmp(e, want) == 0 && strcmp(s, want) == 0, "%s (engine '%s', store '%s')", what, e, s);
    free(e);
    free(s);
}

static char *history(const char *name)
{
    struct ward_history *h = NULL;
    size_t n = 0;
    struct ward_buf out = {0};
    ward_buf_puts(&out, "");
    if (ward_store_history(store, KIND, "default", name, 0, 0, &h, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            ward_buf_printf(&out, "%s->%s %s %s\n", h[i].from, h[i].to, h[i].trigger, h[i].actor);
        }
        ward_history_free(h, n);
    }
    return ward_buf_steal(&out);
}

int main(void)
{
    plan(75);
    ward_log_set_level(WARD_LOG_ERROR);
    loop = ev_loop_new(EVFLAG_AUTO);
    metrics = ward_metrics_create();
    fakebmc_init(&bmc, loop);
    fixture_write(test_tmpdir(), "token", TOKEN "\n");
    snprintf(dbpath, sizeof(dbpath), "%s/ward.db", test_tmpdir());
    start();
    struct http_reply r;
    char *text;

    is_int(201,
           post_free("/api/v1/hosts", "{\"name\":\"h1\",\"labels\":{\"rack\":\"r1\"},"
                                      "\"spec\":{\"bmc\":{\"address\":\"https://10.0.0.1\"}}}"),
           "h1 added");
    is_int(201,
           post_free("/api/v1/hosts", "{\"name\":\"h2\",\"labels\":{\"rack\":\"r2\"},"
                                      "\"spec\":{\"bmc\":{\"address\":\"https://10.0.0.2\"}}}"),
           "h2 added");
    ok(settle_until("h1", "Available") && settle_until("h2", "Available"), "both enroll");

    /* --- what a boot image may be ---------------------------------------------------------- */
    ok(ward_api_valid_image_url("https://images.example.org/os.iso") &&
           ward_api_valid_image_url("HTTP://[::1]:8080/os.iso?arch=x86_64"),
       "http(s) URLs with a host are images");
    ok(!ward_api_valid_image_url("ftp://x/os.iso") && !ward_api_valid_image_url("http://") &&
           !ward_api_valid_image_url("https:///os.iso") &&
           !ward_api_valid_image_url("http://:80/os.iso") && !ward_api_valid_image_url("/os.iso"),
       "other schemes, no host or no scheme are not");
    ok(!ward_api_valid_image_url("https://user:secret@x/os.iso") &&
           !ward_api_valid_image_url("https://x/a b.iso") &&
           !ward_api_valid_image_url("https://x/\xc3\xa9.iso") &&
           !ward_api_valid_image_url("https://x/\t.iso"),
       "nor URLs with credentials, spaces, non-ASCII or control bytes");
    char *long_url = malloc(WARD_API_URL_MAX + 2);
    memset(long_url, 'a', WARD_API_URL_MAX + 1);
    memcpy(long_url, "https://x/", 10);
    long_url[WARD_API_URL_MAX + 1] = '\0';
    ok(!ward_api_valid_image_url(long_url), "nor one longer than %d bytes", WARD_API_URL_MAX);
    long_url[WARD_API_URL_MAX] = '\0';
    ok(ward_api_valid_image_url(long_url), "%d bytes are fine", WARD_API_URL_MAX);
    free(long_url);

    /* --- claim through the API: the engine sees it --------------------------------------- */
    is_int(200, post_free("/api/v1/claims", "{\"consumer\":\"c1\",\"selector\":{\"rack\":\"r1\"}}"),
           "c1 claims a host in rack r1");
    settle();
    is_string("Claimed", state("h1"), "the engine follows the store's claim to Claimed");
    is_consumers("h1", "c1", "spec.consumerRef is the store's consumer");
    fixture_now += 60;
    ward_policy_engine_tick(engine);
    settle();
    is_string("Claimed", state("h1"), "without an image it stays Claimed");

    /* --- image: Claimed -> Provisioning -> Provisioned ------------------------------------- */
    is_int(
        409,
        post_free("/api/v1/hosts/h1/image", "{\"consumer\":\"c2\",\"bootISOSource\":\"" ISO "\"}"),
        "only the holder sets the image");
    is_int(422,
           post_free("/api/v1/hosts/h1/image",
                     "{\"consumer\":\"c1\",\"bootISOSource\":\"ftp://x/os.iso\"}"),
           "an image that is not http(s) is refused");
    is_int(422,
           post_free("/api/v1/hosts/h1/image",
                     "{\"consumer\":\"c1\",\"bootISOSource\":\"https://u:pw@x/os.iso\"}"),
           "an image URL with credentials is refused");
    is_int(
        200,
        post("/api/v1/hosts/h1/image", "{\"consumer\":\"c1\",\"bootISOSource\":\"" ISO "\"}", &r),
        "the holder sets the image");
    contains(r.body.data, "\"bootISOSource\":\"" ISO "\"", "the answer shows it in the spec");
    lacks(r.body.data, "consumerRef", "the stored spec does not repeat the claim");
    http_reply_free(&r);
    ok(settle_until("h1", "Provisioned"), "the policy provisions h1");
    text = history("h1");
    ok(strstr(text, "Claimed->Provisioning provision policy:PhysicalHost") != NULL &&
           strstr(text, "Provisioning->Provisioned provisioned policy:PhysicalHost") != NULL,
       "through the guarded path (Claimed -> Provisioning -> Provisioned by the policy)");
    free(text);
    is_string("On", bmc.power, "the host was booted");
    is_int(409, post_free("/api/v1/hosts/h1/image", "{\"consumer\":\"c1\",\"bootISOSource\":\"\"}"),
           "the image of a Provisioned host cannot change");

    /* --- release: back to Available through the policy's release flow ---------------------- */
    is_int(409, post_free("/api/v1/hosts/h1/release", "{\"consumer\":\"c2\"}"),
           "another consumer cannot release it");
    is_int(200, post_free("/api/v1/hosts/h1/release", "{\"consumer\":\"c1\"}"),
           "the holder releases the Provisioned host");
    ok(settle_until("h1", "Available"), "the policy brings it back to Available");
    text = history("h1");
    ok(strstr(text, "Provisioned->Provisioned release c1") != NULL &&
           strstr(text, "Provisioned->Available released policy:PhysicalHost") != NULL,
       "the release cleared the claim and the policy made the transition");
    free(text);
    is_string("Off", bmc.power, "the release flow powered the host off");
    text = ward_policy_resource_json(engine, KIND, "h1");
    lacks(text, "\"boot\":", "and forgot the boot configuration");
    free(text);
    is_consumers("h1", "", "no consumer is left, in the engine or the store");
    is_int(200, post_free("/api/v1/hosts/h1/release", "{\"consumer\":\"c1\"}"),
           "releasing again is fine (idempotent)");

    /* --- claim with an image in one request ------------------------------------------------- */
    is_int(422,
           post_free("/api/v1/claims", "{\"consumer\":\"c3\",\"bootISOSource\":\"not a url\"}"),
           "a claim with a bad image is refused before anything is claimed");
    is_consumers("h1", "", "and h1 is still free");
    is_int(200,
           post("/api/v1/claims",
                "{\"consumer\":\"c3\",\"selector\":{\"rack\":\"r1\"},\"bootISOSource\":\"" ISO2
                "\"}",
                &r),
           "c3 claims with an image");
    contains(r.body.data, "\"bootISOSource\":\"" ISO2 "\"", "the claimed host carries its image");
    http_reply_free(&r);
    ok(settle_until("h1", "Provisioned"), "and is provisioned without another request");
    is_consumers("h1", "c3", "held by c3");

    /* --- a claim the engine has not seen yet never gives a host two consumers ------------- */
    struct ward_error err = {0};
    struct ward_store *other =
        ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    if (other == NULL) {
        bail("second store handle: %s", err.text);
    }
    struct ward_resource *got = NULL;
    is_int(0, ward_store_claim(other, KIND, "{\"rack\":\"r2\"}", "other", NULL, NULL, &got, &err),
           "another process claims h2 (the engine gets no feed from it)");
    ward_resource_free(got);
    text = engine_consumer("h2");
    is_string("", text, "the engine still holds the older, unclaimed version");
    free(text);
    is_int(-ESTALE,
           ward_policy_resource_put(engine, KIND, "h2",
                                    "{\"bmc\":{\"address\":\"https://10.0.0.2\"},"
                                    "\"bootISOSource\":\"" ISO "\"}",
                                    &err),
           "a spec write on the older version is a conflict");
    is_consumers("h2", "other", "after which the engine has re-read the claim");
    is_int(-EPERM,
           ward_policy_resource_put(engine, KIND, "h2",
                                    "{\"bmc\":{\"address\":\"https://10.0.0.2\"},"
                                    "\"consumerRef\":\"mine\"}",
                                    &err),
           "a spec naming another consumer is refused");
    is_int(404,
           post_free("/api/v1/claims", "{\"consumer\":\"mine\",\"selector\":{\"rack\":\"r2\"}}"),
           "and nothing in rack r2 can be claimed again");
    is_consumers("h2", "other", "h2 has exactly one consumer");
    ward_store_close(other);

    /* --- restart: close and reopen store and engine ------------------------------------------ */
    stop();
    start();
    is_consumers("h1", "c3", "after a restart h1 is still held by c3");
    is_string("Provisioned", state("h1"), "and still Provisioned");
    is_consumers("h2", "other", "h2 still by the other consumer");
    is_int(200, post_free("/api/v1/hosts/h2/release", "{\"consumer\":\"other\"}"),
           "a Claimed host is released directly");
    ok(settle_until("h2", "Available"), "the engine sees h2 Available again");
    is_consumers("h2", "", "without a consumer");

    /* --- the image belongs to the claim ---------------------------------------------------- */
    is_int(200, post_free("/api/v1/hosts/h1/release", "{\"consumer\":\"c3\"}"), "c3 releases h1");
    ok(settle_until("h1", "Available"), "h1 is Available again");
    is_int(200, post("/api/v1/claims", "{\"consumer\":\"c4\",\"selector\":{\"rack\":\"r1\"}}", &r),
           "c4 claims h1 without an image");
    lacks(r.body.data, "bootISOSource", "the image c3 left is gone");
    http_reply_free(&r);
    fixture_now += 60;
    ward_policy_engine_tick(engine);
    settle();
    is_string("Claimed", state("h1"), "so h1 waits in Claimed for c4's image");
    struct ward_resource *cur = NULL;
    char body[128];
    snprintf(body, sizeof(body), "{\"reason\":\"operator reset\",\"version\":%lld}",
             ward_store_get(store, KIND, "default", "h1", &cur, NULL) == 0 ? (long long)cur->version
                                                                           : 0LL);
    ward_resource_free(cur);
    is_int(200, post_free("/api/v1/hosts/h1/reset", body), "a claimed host can be reset");
    ok(settle_until("h1", "Available"), "it re-enrolls to Available");
    is_consumers("h1", "", "with the claim cleared");

    /* --- a release while the policy is still configuring the BMC ----------------------------- */
    bmc.hang = true;
    is_int(200,
           post_free("/api/v1/claims", "{\"consumer\":\"c5\",\"selector\":{\"rack\":\"r2\"},"
                                       "\"bootISOSource\":\"" ISO "\"}"),
           "c5 claims h2 with an image while the BMC hangs");
    ok(settle_until("h2", "Provisioning"), "h2 is Provisioning");
    settle();
    ok(ward_policy_engine_running(engine) > 0, "and its run waits on the BMC");
    is_int(200, post_free("/api/v1/hosts/h2/release", "{\"consumer\":\"c5\"}"),
           "c5 releases it meanwhile");
    bmc.hang = false;
    fakebmc_release(&bmc);
    ok(settle_until("h2", "Available"), "h2 ends Available");
    text = history("h2");
    ok(strstr(text, "Provisioning->Provisioning release c5") != NULL &&
           strstr(text, "Provisioning->Available released policy:PhysicalHost") != NULL,
       "through the policy's release flow");
    lacks(text, "->Provisioned", "the run that read the claim never made it Provisioned");
    free(text);
    is_consumers("h2", "", "and nobody holds it");

    /* --- a host whose BMC is unreachable is not given away --------------------------------- */
    is_int(1, ward_policy_observe(KIND, "h1", "bmc", "timed out (since 2026-11-24T06:24:30Z)"),
           "the power sync reports h1's BMC unreachable");
    settle();
    text = ward_policy_resource_json(engine, KIND, "h1");
    ok(text != NULL && strstr(text, "\"connected\":false") != NULL, "the policy notes the outage");
    free(text);
    is_int(404, post("/api/v1/claims", "{\"consumer\":\"c6\",\"selector\":{\"rack\":\"r1\"}}", &r),
           "a claim only h1 matches is refused");
    contains(r.body.data,
             "h1: guard Available -> Claimed refused: its BMC is unreachable: timed out",
             "with the policy's reason (%s)", r.body.data);
    http_reply_free(&r);
    is_consumers("h1", "", "h1 stays free");
    is_int(200, post("/api/v1/claims", "{\"consumer\":\"c6\"}", &r),
           "a claim without a selector succeeds");
    contains(r.body.data, "\"name\":\"h2\"", "with h2, whose BMC answers");
    http_reply_free(&r);
    is_int(1, ward_policy_observe(KIND, "h1", "bmc", "ok"), "h1's BMC answers again");
    settle();
    is_int(200, post_free("/api/v1/claims", "{\"consumer\":\"c7\",\"selector\":{\"rack\":\"r1\"}}"),
           "then a claim gets h1");
    is_consumers("h1", "c7", "held by c7");

    stop();
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    return 0;
}
