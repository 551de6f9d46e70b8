/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning queue in a live wardd against ward-bmcsim: settings refused
 * at --test, at start and on reload (the last good ones stay); GET /queue;
 * drain and resume need the token and record events; while drained claims
 * with an image wait and the one past maxQueueSize is refused with 429
 * (nothing written, counted); wardctl queue status|drain|resume; after resume
 * with maxConcurrentOps = 1 the three claimed hosts are provisioned one at a
 * time (counted from wardd's own transition log) and all end Provisioned.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "../bmcsim/simclient.h"
#include "../core/spawn.h"
#include "../tap/basic.h"

#define NBMCS 5
#define TOKEN "provqueue-e2e-token-0123456789"
#define IMAGE "https://images.example/os.iso"

static char conf[700], token_file[700];
static int port;

/* One request to wardd's API; returns the status, body in out (reset first). */
static long req(const char *method, const char *path, const char *body, bool token,
                struct ward_buf *out)
{
    out->len = 0;
    return local_fetch(port, method, path, body, token ? TOKEN : NULL, out);
}

static const char *policy_dir; /* NULL: the tree's policies/ */

static void write_config(struct sim *s, const char *provisioning)
{
    FILE *f = fopen(conf, "w");
    if (f == NULL) {
        sysbail("open %s", conf);
    }
    const char *src = getenv("WARD_SRCDIR");
    fprintf(f,
            "log_level = \"debug\"\nstate_dir = \"%s/state\"\npolicy_dir = \"%s%s\"\n"
            "http = { listen = \"127.0.0.1:0\", token_file = \"%s\" }\n"
            "provisioning = { %s }\n",
            test_tmpdir(), policy_dir != NULL ? policy_dir : src,
            policy_dir != NULL ? "" : "/policies", token_file, provisioning);
    sim_write_wardd_fleet(f, s, NBMCS);
    if (fclose(f) != 0) {
        sysbail("write %s", conf);
    }
}

/* The host name (node-NN, 7 characters) that follows key in a JSON body, or "". */
static void host_after(const char *body, const char *key, char *out, size_t size)
{
    const char *at = strstr(body, key);
    snprintf(out, size, "%.7s", at != NULL ? at + strlen(key) : "");
}

/* wardd --test (or a start) on a configuration; exit status, output in *out (caller frees). */
static int run_wardd(const char *flag, char **out)
{
    char wardd[600];
    snprintf(wardd, sizeof(wardd), "%s/wardd", getenv("WARD_BUILDDIR"));
    struct child c;
    child_spawn(&c, (char *[]){wardd, (char *)flag, "--config", conf, NULL});
    int rc = child_wait_exit(&c, 30);
    *out = strdup(c.out.data != NULL ? c.out.data : "");
    child_free(&c);
    return rc;
}

/* wardctl against the live agent; exit status, output in out. */
static int ctl(struct ward_buf *out, const char *a1, const char *a2)
{
    char wardctl[600], url[64];
    snprintf(wardctl, sizeof(wardctl), "%s/wardctl", getenv("WARD_BUILDDIR"));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    struct child c;
    child_spawn(&c, (char *[]){wardctl, "--url", url, "--token-file", token_file, (char *)a1,
                               (char *)a2, NULL});
    int rc = child_wait_exit(&c, 30);
    out->len = 0;
    ward_buf_puts(out, c.out.data != NULL ? c.out.data : "");
    child_free(&c);
    return rc;
}

/* The most hosts in Provisioning at once, replaying wardd's own transition log in order. */
static int most_provisioning(const char *log, int *entered)
{
    int now = 0, most = 0;
    *entered = 0;
    for (const char *l = log; l != NULL && *l != '\0';) {
        const char *end = strchr(l, '\n');
        size_t len = end != NULL ? (size_t)(end - l) : strlen(l);
        char line[2048];
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1),
                 l);
        if (strstr(line, "\"component\":\"policy\"") != NULL &&
            strstr(line, "\"dimension\":\"lifecycle\"") != NULL) {
            if (strstr(line, "\"to\":\"Provisioning\"") != NULL) {
                now++;
                (*entered)++;
            }
            if (strstr(line, "\"from\":\"Provisioning\"") != NULL) {
                now--;
            }
            most = now > most ? now : most;
        }
        l = end != NULL ? end + 1 : NULL;
    }
    return most;
}

static int count_items(const char *json)
{
    int n = 0;
    for (const char *p = json; (p = strstr(p, "\"name\":")) != NULL; p++) {
        n++;
    }
    return n;
}

int main(void)
{
    if (getenv("WARD_BUILDDIR") == NULL || getenv("WARD_SRCDIR") == NULL) {
        bail("run through make check");
    }
    plan(62);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(conf, sizeof(conf), "%s/wardd.conf.lua", test_tmpdir());
    snprintf(token_file, sizeof(token_file), "%s/token", test_tmpdir());
    FILE *tf = fopen(token_file, "w");
    if (tf == NULL || fputs(TOKEN "\n", tf) < 0 || fclose(tf) != 0) {
        sysbail("write %s", token_file);
    }

    /* bad settings: --test and a start refuse them, naming the setting */
    static const char *const bad[] = {"maxConcurrentOps = 0", "maxConcurrentOps = 21",
                                      "maxConcurrentOps = \"ten\""};
    for (size_t i = 0; i < 3; i++) {
        write_config(NULL, bad[i]);
        char *out = NULL;
        int rc = run_wardd("--test", &out);
        ok(rc == 1 && strstr(out, "provisioning.maxConcurrentOps must be a whole number from 1 to "
                                  "20") != NULL,
           "wardd --test refuses %s with an error naming the setting", bad[i]);
        free(out);
    }
    char *out = NULL;
    is_int(1, run_wardd("--foreground", &out),
           "wardd refuses to start with maxConcurrentOps = \"ten\"");
    contains(out, "cannot start: provisioning.maxConcurrentOps", "saying why");
    free(out);

    struct sim s;
    sim_start(&s, (const char *const[]){"--bmcs", "5", "--power-delay-ms", "100", NULL});
    write_config(&s, "maxQueueSize = 3, workerCount = 4, maxConcurrentOps = 1");
    is_int(0, run_wardd("--test", &out), "wardd --test accepts good settings");
    free(out);

    char wardd[600];
    snprintf(wardd, sizeof(wardd), "%s/wardd", getenv("WARD_BUILDDIR"));
    struct child c;
    child_spawn(&c, (char *[]){wardd, "--foreground", "--config", conf, NULL});
    ok(child_wait_for(&c, "running with 1 plugin", 30), "wardd starts");
    int enrolled = 0;
    for (int i = 0; i < NBMCS; i++) {
        enrolled += child_wait_for(&c, "Enrolling -> Available (enrolled)", 60);
    }
    is_int(NBMCS, enrolled, "the fleet is enrolled");
    port = wardd_port(&c);

    struct ward_buf body = {0};
    is_int(200, req("GET", "/api/v1/queue", NULL, false, &body), "GET /api/v1/queue");
    contains(
        body.data,
        "{\"length\":0,\"processing\":0,\"max_size\":3,\"workers\":4,\"max_concurrent_ops\":1,",
        "it reports the configured settings and an empty queue");

    /* drain and resume are writes */
    is_int(401, req("POST", "/api/v1/queue/drain", NULL, false, &body),
           "drain without the token is 401");
    is_int(200, req("POST", "/api/v1/queue/drain", NULL, true, &body), "drain with the token");
    contains(body.data, "\"draining\":true", "the queue is drained");
    is_int(200, req("GET", "/api/v1/events?type=Normal", NULL, false, &body), "events");
    contains(body.data, "QueueDrained", "the drain is recorded as an event");
    ok(child_wait_for(&c, "provisioning queue drained", 10), "and logged");

    /* while drained three claims with an image wait; the fourth finds the queue full */
    const char *claim = "{\"consumer\":\"tenant-a\",\"bootISOSource\":\"" IMAGE "\"}";
    int claimed = 0;
    for (int i = 0; i < 3; i++) {
        claimed += req("POST", "/api/v1/claims", claim, true, &body) == 200;
    }
    is_int(3, claimed, "three claims with an image are accepted");
    is_int(429, req("POST", "/api/v1/claims", claim, true, &body),
           "the fourth is refused with 429: three wait already");
    contains(body.data, "the provisioning queue is full", "the error says the queue is full");
    contains(body.data, "maxQueueSize 3", "and its size");
    is_int(200, req("GET", "/api/v1/hosts?state=Available", NULL, false, &body), "list Available");
    is_int(NBMCS - 3, count_items(body.data), "the refused claim wrote nothing");
    /* setting an image on a claimed host is a provisioning request too */
    is_int(200, req("POST", "/api/v1/claims", "{\"consumer\":\"tenant-b\"}", true, &body),
           "a claim without an image is not queued");
    char held[64];
    host_after(body.data, "\"name\":\"", held, sizeof(held));
    char ipath[128];
    snprintf(ipath, sizeof(ipath), "/api/v1/hosts/%s/image", held);
    is_int(429,
           req("POST", ipath, "{\"consumer\":\"tenant-b\",\"bootISOSource\":\"" IMAGE "\"}", true,
               &body),
           "setting its image while the queue is full is refused with 429");
    snprintf(ipath, sizeof(ipath), "/api/v1/hosts/%s", held);
    req("GET", ipath, NULL, false, &body);
    lacks(body.data, IMAGE, "and the image is not written");
    is_int(200, req("GET", "/metrics", NULL, false, &body), "metrics");
    contains(body.data, "ward_provisioning_queue_rejected_total 2\n", "both refusals are counted");
    contains(body.data, "ward_provisioning_queue_length 3\n", "the length gauge shows 3");
    is_int(200, req("GET", "/api/v1/queue", NULL, false, &body), "queue status");
    contains(body.data, "\"length\":3,\"processing\":0", "three wait, none is processed");
    char first[64];
    host_after(body.data, "\"waiting\":[\"", first, sizeof(first));
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/hosts/%s/explain", first);
    is_int(200, req("GET", path, NULL, false, &body), "explain the first waiting host (%s)", first);
    contains(body.data, "\"provisioningQueue\":{\"status\":\"waiting\",\"position\":1",
             "explain says it waits at position 1");

    /* an operator's transition into Provisioning is queued, not forced past the limit */
    snprintf(path, sizeof(path), "/api/v1/hosts/%s", first);
    req("GET", path, NULL, false, &body);
    cJSON *host = cJSON_Parse(body.data);
    long long version = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(host, "version"));
    cJSON_Delete(host);
    char tbody[160];
    snprintf(tbody, sizeof(tbody), "{\"to\":\"Provisioning\",\"reason\":\"test\",\"version\":%lld}",
             version);
    snprintf(path, sizeof(path), "/api/v1/hosts/%s/transition", first);
    is_int(202, req("POST", path, tbody, true, &body),
           "POST transition to Provisioning while drained is 202");
    contains(body.data, "\"queued\":true", "the host stays queued");

    struct ward_buf o = {0};
    is_int(0, ctl(&o, "queue", "status"), "wardctl queue status");
    contains(o.data, "waiting:            3 of 3", "prints the waiting count and the size");
    contains(o.data, first, "and the waiting hosts");
    contains(o.data, "draining:           yes", "and that it is drained");

    /* a bad reload keeps the last good settings; a good one applies at once, still drained */
    write_config(&s, "maxQueueSize = 3, workerCount = 4, maxConcurrentOps = 0");
    kill(c.pid, SIGHUP);
    ok(child_wait_for(&c, "reload refused", 10), "a reload with maxConcurrentOps = 0 is refused");
    is_int(200, req("GET", "/api/v1/queue", NULL, false, &body), "queue status");
    contains(body.data, "\"max_concurrent_ops\":1,", "the last good maxConcurrentOps stays");
    /* a reload refused for another reason (a broken policy) leaves the queue as it was, even
       with a good provisioning section */
    char bad_dir[700], bad_file[760];
    snprintf(bad_dir, sizeof(bad_dir), "%s/bad-policies", test_tmpdir());
    snprintf(bad_file, sizeof(bad_file), "%s/broken.lua", bad_dir);
    FILE *bf = mkdir(bad_dir, 0750) == 0 ? fopen(bad_file, "w") : NULL;
    if (bf == NULL || fputs("return machine {\n", bf) < 0 || fclose(bf) != 0) {
        sysbail("write %s", bad_file);
    }
    policy_dir = bad_dir;
    write_config(&s, "maxQueueSize = 5, workerCount = 4, maxConcurrentOps = 1");
    kill(c.pid, SIGHUP);
    ok(child_wait_for(&c, "reload refused", 10), "a reload with a broken policy is refused");
    is_int(200, req("GET", "/api/v1/queue", NULL, false, &body), "queue status");
    contains(body.data, "\"max_size\":3", "and the queue keeps maxQueueSize 3");
    policy_dir = NULL;
    write_config(&s, "maxQueueSize = 4, workerCount = 4, maxConcurrentOps = 1");
    kill(c.pid, SIGHUP);
    ok(child_wait_for(&c, "configuration reloaded", 10), "a good reload is taken");
    req("GET", "/api/v1/queue", NULL, false, &body);
    contains(body.data, "\"max_size\":4", "maxQueueSize 4 applies at once");
    contains(body.data, "\"draining\":true", "and the queue stays drained");

    /* resume: one at a time, all three end Provisioned */
    is_int(0, ctl(&o, "queue", "resume"), "wardctl queue resume");
    int done = 0;
    for (int i = 0; i < 3; i++) {
        done += child_wait_for(&c, "Provisioning -> Provisioned (provisioned)", 60);
    }
    is_int(3, done, "all three hosts end Provisioned");
    int entered = 0;
    int most = most_provisioning(c.out.data, &entered);
    is_int(3, entered, "each entered Provisioning once");
    is_int(1, most, "never more than one host was in Provisioning (maxConcurrentOps = 1)");
    is_int(0, ctl(&o, "queue", "drain"), "wardctl queue drain");

    /* two more wait while drained; the queue is in memory: a restart queues them again */
    snprintf(ipath, sizeof(ipath), "/api/v1/hosts/%s/image", held);
    is_int(200,
           req("POST", ipath, "{\"consumer\":\"tenant-b\",\"bootISOSource\":\"" IMAGE "\"}", true,
               &body),
           "with room again the image of the held host is set");
    is_int(200, req("POST", "/api/v1/claims", claim, true, &body), "the last host is claimed");
    req("GET", "/api/v1/queue", NULL, false, &body);
    contains(body.data, "\"length\":2,\"processing\":0", "both wait in the drained queue");
    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "SIGTERM with hosts waiting: wardd exits 0");
    child_free(&c);
    child_spawn(&c, (char *[]){wardd, "--foreground", "--config", conf, NULL});
    ok(child_wait_for(&c, "running with 1 plugin", 30), "wardd starts again");
    port = wardd_port(&c);
    done = 0;
    for (int i = 0; i < 2; i++) {
        done += child_wait_for(&c, "Provisioning -> Provisioned (provisioned)", 60);
    }
    is_int(2, done, "after the restart both waiting hosts are provisioned (a drain is not kept)");
    most = most_provisioning(c.out.data, &entered);
    ok(entered == 2 && most == 1, "one at a time again (%d entered, at most %d at once)", entered,
       most);
    is_int(200, req("GET", "/api/v1/hosts?state=Provisioned", NULL, false, &body),
           "list Provisioned");
    is_int(5, count_items(body.data), "the whole fleet is Provisioned");

    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "SIGTERM: wardd exits 0");
    child_free(&c);
    ward_buf_free(&o);
    ward_buf_free(&body);
    sim_stop(&s);
    curl_global_cleanup();
    return 0;
}
