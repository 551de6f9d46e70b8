/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Concurrent claims: 100 consumers claim over HTTP from 4 agent processes
 * sharing one store of 1,000 hosts, so claims really race in SQLite. Every
 * host must be claimed at most once, and the attempts and conflicts the
 * agents count in ward_host_claim_attempts_total must equal what the clients
 * were told in the claim answers.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <ev.h>

#include "api.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "tap/basic.h"

#define HOSTS 1000
#define CONSUMERS 100
#define PER_CONSUMER (HOSTS / CONSUMERS)
#define AGENTS 4
#define TOKEN "contention-token-0123456789"
#define MAX_REQUESTS 2000 /* per consumer: a bound, far above what retries need */

static char db_path[512], token_file[512];
static unsigned ports[AGENTS];

struct consumer {
    int id;
    char names[PER_CONSUMER][64];
    int claimed;
    long attempts, conflicts, requests, refused_409, errors;
};

/* --- an agent process ------------------------------------------------------------------------ */

static void on_lifeline(struct ev_loop *loop, ev_io *w, int revents)
{
    char c;
    if (read(w->fd, &c, 1) <= 0) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void agent_main(int lifeline, int report)
{
    ward_log_set_level(WARD_LOG_ERROR);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_error err = {0};
    struct ward_store *store = ward_store_open(
        loop, &(struct ward_store_options){.path = db_path, .metrics = metrics, .busy_timeout = 30},
        &err);
    struct ward_http *http =
        store != NULL ? ward_http_create(loop, metrics,
                                         &(struct ward_http_options){.listen = "127.0.0.1:0",
                                                                     .token_file = token_file,
                                                                     .max_connections = 200},
                                         &err)
                      : NULL;
    struct ward_api *api =
        http != NULL ? ward_api_create(http, store, NULL, metrics, NULL, &err) : NULL;
    unsigned port = api != NULL ? ward_http_port(http) : 0;
    if (write(report, &port, sizeof(port)) != sizeof(port) || port == 0) {
        fprintf(stderr, "agent: %s\n", err.text);
        _exit(1);
    }
    close(report);
    ev_io lw;
    ev_io_init(&lw, on_lifeline, lifeline, EV_READ);
    ev_io_start(loop, &lw);
    ev_run(loop, 0);
    ward_http_destroy(http);
    ward_api_destroy(api);
    ward_store_close(store);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    _exit(0);
}

/* --- clients ------------------------------------------------------------------------------------
 */

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    ward_buf_put(arg, data, size * n);
    return size * n;
}

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    char body[96], url[96];
    snprintf(body, sizeof(body), "{\"consumer\":\"c-%03d\"}", c->id);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    while (c->claimed < PER_CONSUMER && c->requests < MAX_REQUESTS) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/claims",
                 ports[(c->id + c->requests) % AGENTS]);
        struct ward_buf out = {0};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
        long status = 0;
        c->requests++;
        if (curl_easy_perform(h) == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        }
        cJSON *j = cJSON_Parse(out.data != NULL ? out.data : "");
        c->attempts += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "attempts"));
        c->conflicts += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "conflicts"));
        const cJSON *name = cJSON_GetObjectItem(j, "name");
        if (status == 200 && cJSON_IsString(name)) {
            snprintf(c->names[c->claimed++], sizeof(c->names[0]), "%s", name->valuestring);
        } else if (status == 409) {
            c->refused_409++;
        } else {
            c->errors++;
            if (status == 404 || status == 0) {
                cJSON_Delete(j);
                ward_buf_free(&out);
                break;
            }
        }
        cJSON_Delete(j);
        ward_buf_free(&out);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

static double scrape_sum(unsigned port, const char *match)
{
    CURL *h = curl_easy_init();
    char url[96];
    struct ward_buf out = {0};
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    double sum = 0;
    const char *name = "\nward_host_claim_attempts_total{";
    for (const char *p = out.data; p != NULL && (p = strstr(p, name)) != NULL; p++) {
        const char *eol = strchr(p + 1, '\n');
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(eol - p - 1), p + 1);
        if (match == NULL || strstr(line, match) != NULL) {
            sum += strtod(strrchr(line, ' ') + 1, NULL);
        }
    }
    ward_buf_free(&out);
    return sum;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    plan(12);
    ward_log_set_level(WARD_LOG_ERROR);
    snprintf(db_path, sizeof(db_path), "%s/state.db", test_tmpdir());
    snprintf(token_file, sizeof(token_file), "%s/token", test_tmpdir());
    FILE *f = fopen(token_file, "w");
    fputs(TOKEN "\n", f);
    fclose(f);

    /* the fleet: 1,000 Available hosts, committed in one batch */
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = db_path}, &err);
    if (st == NULL) {
        bail("store: %s", err.text);
    }
    static char names[HOSTS][32];
    static struct ward_transition enroll[HOSTS];
    for (int i = 0; i < HOSTS; i++) {
        snprintf(names[i], sizeof(names[i]), "host-%04d", i);
        struct ward_resource r = {
            .kind = WARD_API_KIND, .ns = WARD_API_DEFAULT_NS, .name = names[i]};
        if (ward_store_create(st, &r, &err) != 0) {
            bail("create: %s", err.text);
        }
        enroll[i] = (struct ward_transition){.kind = WARD_API_KIND,
                                             .ns = WARD_API_DEFAULT_NS,
                                             .name = names[i],
                                             .dimension = "lifecycle",
                                             .to = "Available",
                                             .trigger = "test",
                                             .reason = "enrolled",
                                             .actor = "test"};
    }
    if (ward_store_batch(st, enroll, HOSTS, NULL, &err) != 0) {
        bail("enroll: %s", err.text);
    }
    ward_store_close(st);

    int lifeline[2];
    if (pipe(lifeline) != 0) {
        sysbail("pipe");
    }
    pid_t pids[AGENTS];
    for (int i = 0; i < AGENTS; i++) {
        int report[2];
        if (pipe(report) != 0) {
            sysbail("pipe");
        }
        pids[i] = fork();
        if (pids[i] < 0) {
            sysbail("fork");
        }
        if (pids[i] == 0) {
            close(lifeline[1]);
            close(report[0]);
            agent_main(lifeline[0], report[1]);
        }
        close(report[1]);
        if (read(report[0], &ports[i], sizeof(ports[i])) != sizeof(ports[i]) || ports[i] == 0) {
            bail("agent %d did not start", i);
        }
        close(report[0]);
    }
    close(lifeline[0]);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    static struct consumer consumers[CONSUMERS];
    pthread_t threads[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        consumers[i].id = i;
        if (pthread_create(&threads[i], NULL, consumer_main, &consumers[i]) != 0) {
            bail("thread");
        }
    }
    long attempts = 0, conflicts = 0, refused = 0, errors = 0, claimed = 0;
    char *all[HOSTS + 1];
    int nall = 0;
    bool everyone = true;
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(threads[i], NULL);
        attempts += consumers[i].attempts;
        conflicts += consumers[i].conflicts;
        refused += consumers[i].refused_409;
        errors += consumers[i].errors;
        claimed += consumers[i].claimed;
        everyone = everyone && consumers[i].claimed == PER_CONSUMER;
        for (int k = 0; k < consumers[i].claimed && nall < HOSTS; k++) {
            all[nall++] = consumers[i].names[k];
        }
    }
    double m_attempts = 0, m_conflicts = 0;
    for (int i = 0; i < AGENTS; i++) {
        m_attempts += scrape_sum(ports[i], NULL);
        m_conflicts += scrape_sum(ports[i], "outcome=\"conflict\"");
    }
    close(lifeline[1]);
    int clean = 0;
    for (int i = 0; i < AGENTS; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0) {
            clean++;
        }
    }
    curl_global_cleanup();

    diag("%ld claims took %ld attempts, %ld conflicts (%.1f%%), %ld answered 409", claimed,
         attempts, conflicts, attempts > 0 ? 100.0 * (double)conflicts / (double)attempts : 0,
         refused);
    is_int(0, errors, "no claim failed other than by conflict");
    ok(everyone, "every consumer got its %d hosts", PER_CONSUMER);
    is_int(HOSTS, claimed, "all %d hosts were handed out", HOSTS);
    qsort(all, (size_t)nall, sizeof(all[0]), by_string);
    int dups = 0;
    for (int i = 1; i < nall; i++) {
        dups += strcmp(all[i - 1], all[i]) == 0;
    }
    is_int(0, dups, "no host was handed to two consumers");
    is_double((double)attempts, m_attempts, 0, "the agents counted the attempts the clients saw");
    is_double((double)conflicts, m_conflicts, 0, "and the conflicts the clients saw");
    is_int(AGENTS, clean, "every agent exited cleanly");

    /* the durable state agrees */
    st = ward_store_open(NULL, &(struct ward_store_options){.path = db_path}, &err);
    struct ward_resource **list = NULL;
    size_t n = 0;
    ok(st != NULL && ward_store_list(st, NULL, &list, &n, &err) == 0, "the store reopens");
    int holders = 0, mismatched = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i]->consumer == NULL || *list[i]->consumer == '\0') {
            continue;
        }
        holders++;
        int id = atoi(list[i]->consumer + 2);
        bool found = false;
        for (int k = 0; id >= 0 && id < CONSUMERS && k < consumers[id].claimed; k++) {
            found = found || strcmp(consumers[id].names[k], list[i]->name) == 0;
        }
        mismatched += !found;
    }
    is_int(HOSTS, holders, "the store has a consumer on every host");
    is_int(0, mismatched, "each held by the consumer that was told it won");
    ward_resource_list_free(list, n);
    struct ward_history *h = NULL;
    size_t nh = 0;
    ok(ward_store_history(st, NULL, NULL, NULL, 0, 0, &h, &nh, &err) == 0, "history reads");
    int claims = 0;
    for (size_t i = 0; i < nh; i++) {
        claims += h[i].to != NULL && strcmp(h[i].to, "Claimed") == 0;
    }
    is_int(HOSTS, claims, "exactly one Available -> Claimed record per host");
    ward_history_free(h, nh);
    ward_store_close(st);
    return 0;
}
