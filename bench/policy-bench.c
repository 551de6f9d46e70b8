/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark of the policy engine (not a test): guard evaluations per
 * second (validate + guard + consistency, no commit) and transitions per
 * second through the full path (validate, guard, consistency, commit through
 * an in-memory sink, JSON log line, metrics, event). Prints the median of
 * several rounds and the ratio between the two.
 *
 * A third figure runs the same transitions through the SQLite store (one
 * durable transaction each, ward_store_transition_sync) with iterations/50.
 *
 *   make bench && ./bench/policy-bench [rounds] [iterations]
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "machine.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"
#include "util.h"
#include "stats.h"

static int sink_commit(void *self, const struct ward_policy_commit *c, long long *new_version,
                       struct ward_error *err)
{
    (void)err;
    (*(unsigned long *)self)++;
    *new_version = c->expected_version + 1;
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    long iters = argc > 2 ? atol(argv[2]) : 100000;
    if (rounds < 1 || rounds > 100 || iters < 1) {
        fprintf(stderr, "usage: %s [rounds 1-100] [iterations]\n", argv[0]);
        return 2;
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull == NULL) {
        perror("/dev/null");
        return 1;
    }
    ward_log_set_stream(devnull);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    unsigned long commits = 0;
    struct ward_policy_sink sink = {&commits, sink_commit};
    struct ward_policy_options o;
    struct ward_error err = {0};
    if (ward_policy_options_init(&o, &err) != 0) {
        fprintf(stderr, "%s\n", err.text);
        return 1;
    }
    o.stuck_interval = 0;
    const char *dir =
        getenv("WARD_POLICY_DIR") ? getenv("WARD_POLICY_DIR") : WARD_SRCDIR "/policies";
    struct ward_policy_engine *e = ward_policy_engine_create(loop, &sink, NULL, metrics, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, dir, &err) != 0) {
        fprintf(stderr, "load %s: %s\n", dir, err.text);
        return 1;
    }
    const char *kind = "PhysicalHost";
    ward_policy_resource_put(e, kind, "h", "{\"bmc\":{\"address\":\"https://10.0.0.5\"}}", &err);
    ward_policy_resource_set_status(e, kind, "h", "{\"redfish\":{\"connected\":true}}", &err);
    ward_policy_transition(e, kind, "h", NULL, "Error", "bench", NULL, "bench", &err);
    ward_policy_transition(e, kind, "h", NULL, "Available", "bench", NULL, "bench", &err);
    ward_policy_resource_put(e, kind, "c", "{\"consumerRef\":\"c1\"}", &err);
    ward_policy_transition(e, kind, "c", NULL, "Error", "bench", NULL, "bench", &err);

    const struct ward_machine_dim *d = ward_machine_dim(ward_policy_engine_machine(e, kind), NULL);
    double machine[100], guards[100], transitions[100];
    volatile unsigned long sink_count = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = ward_monotonic();
        for (long i = 0; i < iters * 10; i++) {
            sink_count += ward_machine_allows(d, (int)(i & 7), (int)((i >> 3) & 7));
        }
        machine[r] = (double)(iters * 10) / (ward_monotonic() - t0);

        /* Error -> Available on a claimed host: validate, guard (refuses), no commit */
        t0 = ward_monotonic();
        for (long i = 0; i < iters; i++) {
            if (ward_policy_transition_check(e, kind, "h", NULL, "Claimed", &err) == 0) {
                fprintf(stderr, "unexpected: the claim guard allowed\n");
                return 1;
            }
        }
        guards[r] = (double)iters / (ward_monotonic() - t0);

        /* Available <-> Error through the full path, both directions guarded or checked */
        t0 = ward_monotonic();
        for (long i = 0; i < iters; i++) {
            const char *to = (i & 1) ? "Available" : "Error";
            if (ward_policy_transition(e, kind, "h", NULL, to, "bench", NULL, "bench", &err)) {
                fprintf(stderr, "transition: %s\n", err.text);
                return 1;
            }
        }
        transitions[r] = (double)iters / (ward_monotonic() - t0);
    }
    double m = bench_median(machine, (size_t)rounds), g = bench_median(guards, (size_t)rounds),
           t = bench_median(transitions, (size_t)rounds);

    /* the same path with the store behind it */
    char dbdir[] = "/tmp/ward-policy-bench-XXXXXX";
    if (mkdtemp(dbdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char dbpath[sizeof(dbdir) + 16];
    snprintf(dbpath, sizeof(dbpath), "%s/ward.db", dbdir);
    struct ward_store_options so = {.path = dbpath};
    struct ward_store *st = ward_store_open(loop, &so, &err);
    if (st == NULL) {
        fprintf(stderr, "store: %s\n", err.text);
        return 1;
    }
    struct ward_policy_sink store_sink;
    ward_policy_sink_store(&store_sink, st);
    struct ward_policy_engine *es =
        ward_policy_engine_create(loop, &store_sink, NULL, metrics, &o, &err);
    if (es == NULL || ward_policy_engine_load(es, dir, &err) != 0 ||
        ward_policy_resource_put(es, kind, "h", "{\"bmc\":{\"address\":\"https://x\"}}", &err) ||
        ward_policy_resource_set_status(es, kind, "h", "{\"redfish\":{\"connected\":true}}",
                                        &err) ||
        ward_policy_transition(es, kind, "h", NULL, "Error", "bench", NULL, "bench", &err)) {
        fprintf(stderr, "store engine: %s\n", err.text);
        return 1;
    }
    long siters = iters / 50 > 0 ? iters / 50 : 1;
    double stored[100];
    for (int r = 0; r < rounds; r++) {
        double t0 = ward_monotonic();
        for (long i = 0; i < siters; i++) {
            const char *to = (i & 1) ? "Error" : "Available";
            if (ward_policy_transition(es, kind, "h", NULL, to, "bench", NULL, "bench", &err)) {
                fprintf(stderr, "store transition: %s\n", err.text);
                return 1;
            }
        }
        stored[r] = (double)siters / (ward_monotonic() - t0);
    }
    double sd = bench_median(stored, (size_t)rounds);
    ward_policy_engine_destroy(es);
    ward_store_close(st);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(suffixes); i++) {
        char f[sizeof(dbpath) + 8];
        snprintf(f, sizeof(f), "%s%s", dbpath, suffixes[i]);
        unlink(f);
    }
    rmdir(dbdir);
    printf("policy-bench: %d rounds, %ld iterations each (median)\n", rounds, iters);
    printf("  machine lookups (C only)          %12.0f /s\n", m);
    printf("  guard evaluations (check path)    %12.0f /s\n", g);
    printf("  transitions (full path, commit)   %12.0f /s\n", t);
    printf("  transitions (full path, SQLite)   %12.0f /s  (%ld per round, each durable)\n", sd,
           siters);
    printf("  ratio guard evaluation : transition   %.2f\n", g / t);
    printf("  ratio machine lookup : guard evaluation %.0f\n", m / g);
    printf("  commits: %lu\n", commits);
    ward_policy_engine_destroy(e);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    fclose(devnull);
    return sink_count == 0;
}
