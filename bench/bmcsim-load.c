/* SPDX-License-Identifier: Apache-2.0 */
/* How many requests per second ward-bmcsim sustains over HTTPS with keep-alive.
 *
 * Starts the simulator, then drives it with libcurl's multi interface: `conns` connections,
 * each bound to one BMC (connection k talks to BMC k % bmcs) and reused, every one keeping
 * one authenticated GET of the ComputerSystem in flight. Prints the start-up time and the
 * median requests/s of several runs. A benchmark, not a test: nothing is asserted. */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "../tests/core/spawn.h"
#include "../tests/tap/basic.h"
#include "stats.h"

struct conn {
    CURL *easy;
    char url[256];
    char userpwd[128];
};

static size_t discard(char *d, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* The temporary directory (state of the simulator), removed at exit. */
static const char *workdir;

static void remove_workdir(void)
{
    if (workdir != NULL) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bmcsim-load: could not remove %s\n", workdir);
        }
    }
}

int main(int argc, char **argv)
{
    int bmcs = 100, conns = 64, requests = 20000, runs = 3, latency = 0, threads = 2;
    bool address_mode = false;
    static const struct option longopts[] = {
        {"bmcs", required_argument, NULL, 'n'},       {"conns", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'r'},   {"runs", required_argument, NULL, 'k'},
        {"latency-ms", required_argument, NULL, 'l'}, {"threads", required_argument, NULL, 't'},
        {"address-mode", no_argument, NULL, 'a'},     {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:c:r:k:l:t:a", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            address_mode = true;
            break;
        case 'n':
            bmcs = atoi(optarg);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'r':
            requests = atoi(optarg);
            break;
        case 'k':
            runs = atoi(optarg);
            break;
        case 'l':
            latency = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bmcsim-load [--bmcs N] [--conns C] [--requests R] "
                            "[--runs K] [--latency-ms L] [--threads T] [--address-mode]\n");
            return 2;
        }
    }
    if (bmcs < 1 || conns < 1 || requests < conns || runs < 1 || runs > 15) {
        fprintf(stderr, "bmcsim-load: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *dir = test_tmpdir();
    workdir = dir;
    atexit(remove_workdir);
    char state[512], prog[512], nb[16], lat[16], thr[16];
    snprintf(state, sizeof(state), "%s/sim", dir);
    snprintf(prog, sizeof(prog), "%s/tools/bmcsim/ward-bmcsim", WARD_BUILDDIR);
    snprintf(nb, sizeof(nb), "%d", bmcs);
    snprintf(lat, sizeof(lat), "%d", latency);
    snprintf(thr, sizeof(thr), "%d", threads);
    /* Big fleets share one credential: 10,000 password files cost seconds on some disks. */
    char *args[16] = {prog,           "--state-dir", state,       "--bmcs", nb,
                      "--latency-ms", lat,           "--threads", thr};
    int nargs = 9;
    if (bmcs > 1000) {
        args[nargs++] = "--shared-password";
    }
    if (address_mode) {
        /* one socket for the fleet: 10,000 BMCs and a connection each fit in 20,000 fds */
        args[nargs++] = "--address-base";
        args[nargs++] = "127.5.0.1";
    }
    args[nargs] = NULL;
    struct child sim;
    double t0 = ward_monotonic();
    child_spawn(&sim, args);
    if (!child_wait_for(&sim, "ready bmcs=", 120)) {
        fprintf(stderr, "bmcsim-load: the simulator did not start\n");
        child_free(&sim);
        return 1;
    }
    double startup = ward_monotonic() - t0;
    char path[600];
    snprintf(path, sizeof(path), "%s/fleet.json", state);
    char *text = test_slurp(path);
    cJSON *fleet = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    if (fleet == NULL) {
        fprintf(stderr, "bmcsim-load: no fleet.json\n");
        child_free(&sim);
        return 1;
    }
    const char *ca = cJSON_GetObjectItem(fleet, "ca")->valuestring;
    cJSON *list = cJSON_GetObjectItem(fleet, "bmcs");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conns + 16);
    struct conn *cs = calloc((size_t)conns, sizeof(*cs));
    for (int k = 0; k < conns; k++) {
        cJSON *b = cJSON_GetArrayItem(list, k % bmcs);
        const char *addr = cJSON_GetObjectItem(b, "address")->valuestring;
        const char *sys = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "systems"), 0)->valuestring;
        char *pass = test_slurp(cJSON_GetObjectItem(b, "password_file")->valuestring);
        if (pass == NULL) {
            fprintf(stderr, "bmcsim-load: cannot read a password file\n");
            return 1;
        }
        pass[strcspn(pass, "\n")] = '\0';
        snprintf(cs[k].url, sizeof(cs[k].url), "%s%s", addr, sys);
        snprintf(cs[k].userpwd, sizeof(cs[k].userpwd), "%s:%s",
                 cJSON_GetObjectItem(b, "username")->valuestring, pass);
        free(pass);
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, cs[k].url);
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
        curl_easy_setopt(e, CURLOPT_USERPWD, cs[k].userpwd);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        cs[k].easy = e;
    }
    /* runs[0] is a warm-up: it pays for the TLS handshakes. */
    double rate[16];
    long failed = 0;
    for (int run = 0; run <= runs; run++) {
        int started = 0, done = 0, running = 0;
        double start = ward_monotonic();
        for (int k = 0; k < conns; k++) {
            curl_multi_add_handle(multi, cs[k].easy);
            started++;
        }
        while (done < requests) {
            curl_multi_perform(multi, &running);
            CURLMsg *m;
            int left;
            while ((m = curl_multi_info_read(multi, &left)) != NULL) {
                if (m->msg != CURLMSG_DONE) {
                    continue;
                }
                long status = 0;
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                if (m->data.result != CURLE_OK || status != 200) {
                    failed++;
                }
                done++;
                CURL *e = m->easy_handle;
                curl_multi_remove_handle(multi, e);
                if (started < requests) {
                    curl_multi_add_handle(multi, e);
                    started++;
                }
            }
            if (done < requests) {
                curl_multi_poll(multi, NULL, 0, 100, NULL);
            }
        }
        double secs = ward_monotonic() - start;
        if (run > 0) {
            rate[run - 1] = requests / secs;
        }
        printf("run %d%s: %d requests in %.3f s = %.0f req/s\n", run, run == 0 ? " (warm-up)" : "",
               requests, secs, requests / secs);
    }
    double median = bench_median(rate, (size_t)runs);
    printf("bmcs=%d conns=%d latency_ms=%d threads=%d%s: start-up %.2f s, median %.0f req/s", bmcs,
           conns, latency, threads, address_mode ? " address-mode" : "", startup, median);
    if (latency > 0) {
        /* the most a perfectly fast server could give this client */
        double bound = conns / (latency / 1000.0);
        printf(" (latency bound %.0f req/s, ratio %.2f)", bound, median / bound);
    }
    printf(", failed %ld\n", failed);
    for (int k = 0; k < conns; k++) {
        curl_easy_cleanup(cs[k].easy);
    }
    free(cs);
    curl_multi_cleanup(multi);
    cJSON_Delete(fleet);
    kill(sim.pid, SIGTERM);
    int rc = child_wait_exit(&sim, 60);
    child_free(&sim);
    return rc == 0 && failed == 0 ? 0 : 1;
}
