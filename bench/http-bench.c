/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http-bench: /metrics scrape latency of an agent managing 10,000 hosts, and
 * API reads per second. The agent (store, HTTP, API) runs on its own loop in
 * a server thread exactly as in wardd; clients use libcurl with keep-alive.
 *
 *   bench/http-bench [-n HOSTS] [-s SCRAPES] [-t SECONDS] [-r RUNS]
 *
 * Prints medians over RUNS runs. Not a test: nothing here asserts on time.
 */
#include "autoconf.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>

#include "api.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "stats.h"

#define TOKEN "bench-token-0123456789abcdef"

struct server {
    struct ev_loop *loop;
    ev_async stop;
    pthread_t thread;
};

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *serve(void *arg)
{
    struct server *s = arg;
    ev_run(s->loop, 0);
    return NULL;
}

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    ward_buf_put(arg, data, size * n);
    return size * n;
}

/* One GET (or POST with body) on a reused handle; returns seconds, fills size. */
static double fetch(CURL *h, const char *url, const char *body, size_t *size, long *status)
{
    struct ward_buf out = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    double start = ward_monotonic();
    CURLcode rc = curl_easy_perform(h);
    double took = ward_monotonic() - start;
    if (status != NULL) {
        *status = 0;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        }
    }
    if (size != NULL) {
        *size = out.len;
    }
    ward_buf_free(&out);
    return took;
}

static CURL *client(void)
{
    CURL *h = curl_easy_init();
    static struct curl_slist *headers;
    if (headers == NULL) {
        headers = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    return h;
}

struct reader {
    unsigned port;
    int hosts;
    double seconds;
    long done;
    unsigned seed;
};

static void *read_hosts(void *arg)
{
    struct reader *r = arg;
    CURL *h = client();
    char url[128];
    double end = ward_monotonic() + r->seconds;
    while (ward_monotonic() < end) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/hosts/host-%05d", r->port,
                 (int)(rand_r(&r->seed) % (unsigned)r->hosts));
        long status;
        fetch(h, url, NULL, NULL, &status);
        if (status == 200) {
            r->done++;
        }
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* A registry holding what an agent managing `hosts` hosts exports. */
static void fill_metrics(struct ward_metrics *m, int hosts)
{
    static const char *const states[] = {"Enrolling",      "Available",   "Claimed",
                                         "Provisioning",   "Provisioned", "Error",
                                         "Deprovisioning", "None"};
    static const char *const ops[] = {"get",          "patch",       "post",     "power",
                                      "insert_media", "eject_media", "set_boot", "action"};
    struct ward_metric *tr =
        ward_metrics_counter(m, "ward_physicalhost_state_transitions_total", "x",
                             (const char *[]){"from", "to", "reason", NULL});
    struct ward_metric *dur = ward_metrics_histogram(m, "ward_physicalhost_state_duration_seconds",
                                                     "x", (const char *[]){"state", NULL}, NULL, 0);
    struct ward_metric *cool = ward_metrics_counter(m, "ward_bmc_cooldown_waits_total", "x",
                                                    (const char *[]){"bmc", NULL});
    struct ward_metric *bop = ward_metrics_histogram(m, "ward_bmc_operation_duration_seconds", "x",
                                                     (const char *[]){"operation", NULL}, NULL, 0);
    for (size_t i = 0; i < 8; i++) {
        for (size_t j = 0; j < 8; j++) {
            ward_metric_add(tr, (const char *[]){states[i], states[j], "reconcile"},
                            (double)(i + j));
        }
        ward_metric_observe(dur, (const char *[]){states[i]}, 12.5 * (double)(i + 1));
        ward_metric_observe(bop, (const char *[]){ops[i]}, 0.2 * (double)(i + 1));
    }
    /* one BMC per host: the largest family a real agent has */
    for (int i = 0; i < hosts; i++) {
        char bmc[32];
        snprintf(bmc, sizeof(bmc), "bmc-%05d", i);
        ward_metric_add(cool, (const char *[]){bmc}, (double)(i % 7));
    }
}

int main(int argc, char **argv)
{
    int hosts = 10000, scrapes = 50, runs = 3;
    double seconds = 3;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:t:r:")) != -1) {
        switch (opt) {
        case 'n':
            hosts = atoi(optarg);
            break;
        case 's':
            scrapes = atoi(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: http-bench [-n HOSTS] [-s SCRAPES] [-t SECONDS] [-r RUNS]\n");
            return 2;
        }
    }
    if (hosts < 1 || scrapes < 1 || runs < 1 || seconds <= 0) {
        fprintf(stderr, "http-bench: counts must be positive\n");
        return 2;
    }
    ward_log_set_level(WARD_LOG_ERROR);
    char dir[] = "/tmp/ward-http-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char path[256], token[256];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    snprintf(token, sizeof(token), "%s/token", dir);
    FILE *f = fopen(token, "w");
    fputs(TOKEN "\n", f);
    fclose(f);

    struct server s = {.loop = ev_loop_new(EVFLAG_AUTO)};
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_error err = {0};
    struct ward_store *store = ward_store_open(
        s.loop, &(struct ward_store_options){.path = path, .metrics = metrics}, &err);
    if (store == NULL) {
        fprintf(stderr, "store: %s\n", err.text);
        return 1;
    }
    double t0 = ward_monotonic();
    struct ward_transition *enroll = calloc((size_t)hosts, sizeof(*enroll));
    char(*names)[32] = calloc((size_t)hosts, sizeof(*names));
    for (int i = 0; i < hosts; i++) {
        snprintf(names[i], sizeof(names[i]), "host-%05d", i);
        char labels[64];
        snprintf(labels, sizeof(labels), "{\"rack\":\"r%02d\"}", i % 40);
        struct ward_resource r = {
            .kind = WARD_API_KIND, .ns = WARD_API_DEFAULT_NS, .name = names[i], .labels = labels};
        if (ward_store_create(store, &r, &err) != 0) {
            fprintf(stderr, "create: %s\n", err.text);
            return 1;
        }
        enroll[i] = (struct ward_transition){.kind = WARD_API_KIND,
                                             .ns = WARD_API_DEFAULT_NS,
                                             .name = names[i],
                                             .dimension = "lifecycle",
                                             .to = "Available",
                                             .trigger = "bench",
                                             .reason = "enrolled",
                                             .actor = "bench"};
    }
    if (ward_store_batch(store, enroll, (size_t)hosts, NULL, &err) != 0) {
        fprintf(stderr, "enroll: %s\n", err.text);
        return 1;
    }
    free(enroll);
    printf("setup: %d hosts in %.1f s\n", hosts, ward_monotonic() - t0);

    struct ward_events *events =
        ward_events_create(&(struct ward_events_options){.metrics = metrics});
    struct ward_http *http =
        ward_http_create(s.loop, metrics,
                         &(struct ward_http_options){
                             .listen = "127.0.0.1:0", .token_file = token, .max_connections = 64},
                         &err);
    struct ward_api *api =
        http != NULL ? ward_api_create(http, store, events, metrics, NULL, &err) : NULL;
    if (api == NULL) {
        fprintf(stderr, "http: %s\n", err.text);
        return 1;
    }
    fill_metrics(metrics, hosts);
    unsigned port = ward_http_port(http);
    ev_async_init(&s.stop, on_stop);
    ev_async_start(s.loop, &s.stop);
    pthread_create(&s.thread, NULL, serve, &s);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char url[128], claim_url[128], release_url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
    snprintf(claim_url, sizeof(claim_url), "http://127.0.0.1:%u/api/v1/claims", port);
    CURL *h = client();
    double *steady = calloc((size_t)scrapes, sizeof(double));
    double *changed = calloc((size_t)scrapes, sizeof(double));
    double *run_steady = calloc((size_t)runs, sizeof(double));
    double *run_steady_p90 = calloc((size_t)runs, sizeof(double));
    double *run_changed = calloc((size_t)runs, sizeof(double));
    double *run_get1 = calloc((size_t)runs, sizeof(double));
    double *run_get4 = calloc((size_t)runs, sizeof(double));
    double *run_list = calloc((size_t)runs, sizeof(double));
    size_t bytes = 0;
    long status = 0;
    fetch(h, url, NULL, &bytes, &status); /* warm: the first recount of the hosts */
    for (int run = 0; run < runs; run++) {
        for (int i = 0; i < scrapes; i++) {
            steady[i] = fetch(h, url, NULL, &bytes, &status);
        }
        run_steady_p90[run] = bench_percentile(steady, (size_t)scrapes, 0.9);
        run_steady[run] = bench_median(steady, (size_t)scrapes);
        /* after a change the host gauge is recounted from the store */
        for (int i = 0; i < scrapes; i++) {
            char body[64];
            snprintf(body, sizeof(body), "{\"consumer\":\"bench-%d-%d\"}", run, i);
            fetch(h, claim_url, body, NULL, NULL);
            changed[i] = fetch(h, url, NULL, NULL, &status);
        }
        run_changed[run] = bench_median(changed, (size_t)scrapes);

        struct reader one = {
            .port = port, .hosts = hosts, .seconds = seconds, .seed = 1u + (unsigned)run};
        pthread_t t;
        pthread_create(&t, NULL, read_hosts, &one);
        pthread_join(t, NULL);
        run_get1[run] = (double)one.done / seconds;
        struct reader four[4];
        pthread_t ts[4];
        for (int k = 0; k < 4; k++) {
            four[k] = (struct reader){.port = port,
                                      .hosts = hosts,
                                      .seconds = seconds,
                                      .seed = 100u * (unsigned)run + (unsigned)k};
            pthread_create(&ts[k], NULL, read_hosts, &four[k]);
        }
        long total = 0;
        for (int k = 0; k < 4; k++) {
            pthread_join(ts[k], NULL);
            total += four[k].done;
        }
        run_get4[run] = (double)total / seconds;
        double lists[5];
        snprintf(release_url, sizeof(release_url), "http://127.0.0.1:%u/api/v1/hosts", port);
        for (int k = 0; k < 5; k++) {
            lists[k] = fetch(h, release_url, NULL, NULL, &status);
        }
        run_list[run] = bench_median(lists, 5);
    }
    curl_easy_cleanup(h);
    ev_async_send(s.loop, &s.stop);
    pthread_join(s.thread, NULL);

    double scrape = bench_median(run_steady, (size_t)runs);
    printf("hosts %d, /metrics body %.1f KiB, %d scrapes x %d runs (median of run medians)\n",
           hosts, (double)bytes / 1024, scrapes, runs);
    printf("/metrics scrape, unchanged fleet:   median %.2f ms, p90 %.2f ms (target < 50 ms: %.1fx "
           "under)\n",
           scrape * 1e3, bench_median(run_steady_p90, (size_t)runs) * 1e3, 0.050 / scrape);
    printf("/metrics scrape, after a claim:     median %.2f ms (ward_hosts looks up the changed "
           "host)\n",
           bench_median(run_changed, (size_t)runs) * 1e3);
    printf("GET /api/v1/hosts/NAME, 1 client:   %.0f reads/s\n",
           bench_median(run_get1, (size_t)runs));
    printf("GET /api/v1/hosts/NAME, 4 clients:  %.0f reads/s (%.2fx one client)\n",
           bench_median(run_get4, (size_t)runs),
           bench_median(run_get4, (size_t)runs) / bench_median(run_get1, (size_t)runs));
    printf("GET /api/v1/hosts (all %d):       median %.1f ms\n", hosts,
           bench_median(run_list, (size_t)runs) * 1e3);

    ward_http_destroy(http);
    ward_api_destroy(api);
    ward_events_destroy(events);
    ward_store_close(store);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(s.loop);
    curl_global_cleanup();
    free(steady);
    free(changed);
    free(run_steady);
    free(run_steady_p90);
    free(run_changed);
    free(run_get1);
    free(run_get4);
    free(run_list);
    free(names);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "http-bench: could not remove %s\n", dir);
    }
    return 0;
}
