/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store benchmark (not a test): durable transitions per second with 1, 10 and 1000
 * concurrent in-loop writers (group commit), against one synchronous commit per
 * transition, and claims per second with 100 consumers over 1000 hosts, in one process
 * and spread over several processes sharing the database (real CAS contention).
 * Prints the median of several runs.
 * Usage: store-bench [-d DIR] [-o sync|w1|w10|w1000|claims] [-r RUNS] [-t SECONDS]
 * DIR must be on the disk you care about (the default, ".", is the build directory).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "stats.h"

#define HOSTS 1000
#define CONSUMERS 100

static const char *dir = ".";
static int runs = 5;
static double seconds = 1.5;
static int seq;
static const char *only; /* run one part: sync, w1, w10, w1000, claims */

static bool wanted(const char *part)
{
    return only == NULL || strcmp(only, part) == 0;
}

static void fresh_path(char *out, size_t len)
{
    snprintf(out, len, "%s/store-bench-%d-%d.db", dir, (int)getpid(), seq++);
    char extra[600];
    unlink(out);
    snprintf(extra, sizeof(extra), "%s-wal", out);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", out);
    unlink(extra);
}

static void remove_db(const char *path)
{
    char extra[600];
    unlink(path);
    snprintf(extra, sizeof(extra), "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", path);
    unlink(extra);
}

static struct ward_store *open_store(struct ev_loop *loop, const char *path,
                                     struct ward_metrics *reg)
{
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(loop, &(struct ward_store_options){.path = path, .metrics = reg}, &err);
    if (st == NULL) {
        fprintf(stderr, "store-bench: %s\n", err.text);
        exit(1);
    }
    return st;
}

static void make_hosts(struct ward_store *st, int n)
{
    struct ward_error err = {0};
    struct ward_transition *items = calloc((size_t)n, sizeof(*items));
    char(*names)[32] = calloc((size_t)n, 32);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], 32, "host-%04d", i);
        struct ward_resource r = {.kind = "PhysicalHost", .ns = "dc", .name = names[i]};
        if (ward_store_create(st, &r, &err) < 0) {
            fprintf(stderr, "store-bench: create: %s\n", err.text);
            exit(1);
        }
        items[i] = (struct ward_transition){.kind = "PhysicalHost",
                                            .ns = "dc",
                                            .name = names[i],
                                            .dimension = "lifecycle",
                                            .to = "Available"};
    }
    if (ward_store_batch(st, items, (size_t)n, NULL, &err) < 0) {
        fprintf(stderr, "store-bench: batch: %s\n", err.text);
        exit(1);
    }
    free(items);
    free(names);
}

/* ---- transitions ---------------------------------------------------------------------- */

struct writer;

struct run {
    struct ward_store *st;
    struct ev_loop *loop;
    double deadline;
    long done;
    bool stop;
};

struct writer {
    struct run *run;
    char name[32];
    int flip;
};

static void writer_next(struct writer *w);

static void writer_done(void *arg, int rc, int64_t version, const struct ward_error *err)
{
    struct writer *w = arg;
    if (rc < 0) {
        fprintf(stderr, "store-bench: transition failed: %s\n", err->text);
        exit(1);
    }
    w->run->done++;
    if (ward_monotonic() >= w->run->deadline) {
        w->run->stop = true;
        return;
    }
    writer_next(w);
}

static void writer_next(struct writer *w)
{
    struct ward_transition t = {.kind = "PhysicalHost",
                                .ns = "dc",
                                .name = w->name,
                                .dimension = "power",
                                .to = (w->flip++ & 1) ? "Off" : "On",
                                .trigger = "bench",
                                .actor = "bench"};
    ward_store_transition(w->run->st, &t, writer_done, w);
}

/* Transitions per second with `writers` closed-loop writers, each on its own host. */
static double run_grouped(int writers)
{
    char path[512];
    fresh_path(path, sizeof(path));
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_store *st = open_store(loop, path, NULL);
    make_hosts(st, writers);
    struct run run = {.st = st, .loop = loop};
    struct writer *w = calloc((size_t)writers, sizeof(*w));
    double start = ward_monotonic();
    run.deadline = start + seconds;
    for (int i = 0; i < writers; i++) {
        w[i].run = &run;
        snprintf(w[i].name, sizeof(w[i].name), "host-%04d", i);
        writer_next(&w[i]);
    }
    ev_run(loop, 0); /* ends when every writer has stopped and nothing is queued */
    double elapsed = ward_monotonic() - start;
    ward_store_close(st);
    ev_loop_destroy(loop);
    free(w);
    remove_db(path);
    return (double)run.done / elapsed;
}

/* One synchronous commit (and fsync) per transition: the cost group commit avoids. */
static double run_unbatched(void)
{
    char path[512];
    fresh_path(path, sizeof(path));
    struct ward_store *st = open_store(NULL, path, NULL);
    make_hosts(st, 1);
    struct ward_error err = {0};
    long done = 0;
    double start = ward_monotonic(), now;
    while ((now = ward_monotonic()) < start + seconds) {
        struct ward_transition t = {.kind = "PhysicalHost",
                                    .ns = "dc",
                                    .name = "host-0000",
                                    .dimension = "power",
                                    .to = done & 1 ? "Off" : "On"};
        if (ward_store_transition_sync(st, &t, NULL, &err) < 0) {
            fprintf(stderr, "store-bench: %s\n", err.text);
            exit(1);
        }
        done++;
    }
    double elapsed = ward_monotonic() - start;
    ward_store_close(st);
    remove_db(path);
    return (double)done / elapsed;
}

/* ---- claims --------------------------------------------------------------------------- */

/* Claim until no host is left, consumers taking turns; returns claims, counts conflicts. */
static long claim_all(const char *path, int first_consumer, int consumers, double *conflicts)
{
    struct ward_metrics *reg = ward_metrics_create();
    struct ward_store *st = open_store(NULL, path, reg);
    struct ward_error err = {0};
    long claims = 0;
    int idle_rounds = 0;
    for (int turn = 0; idle_rounds < consumers; turn++) {
        char consumer[32];
        snprintf(consumer, sizeof(consumer), "consumer-%03d", first_consumer + turn % consumers);
        int rc = ward_store_claim(st, "PhysicalHost", NULL, consumer, NULL, NULL, NULL, &err);
        if (rc == 0) {
            claims++;
            idle_rounds = 0;
        } else if (rc == -ENOENT) {
            idle_rounds++;
        } else if (rc != -ESTALE && rc != -EBUSY) {
            fprintf(stderr, "store-bench: claim: %s\n", err.text);
            exit(1);
        }
    }
    struct ward_metric *m = ward_metrics_counter(
        reg, "ward_host_claim_attempts_total", "Host claim attempts by outcome.",
        (const char *[]){"outcome", "conflict_reason", NULL});
    *conflicts = ward_metric_value(m, (const char *[]){"conflict", "version_changed"}) +
                 ward_metric_value(m, (const char *[]){"conflict", "already_claimed"}) +
                 ward_metric_value(m, (const char *[]){"conflict", "state_changed"});
    ward_store_close(st);
    ward_metrics_destroy(reg);
    return claims;
}

/* Claims per second for 100 consumers over 1000 hosts, split over `procs` processes. */
static double run_claims(int procs, double *conflicts_out)
{
    char path[512];
    fresh_path(path, sizeof(path));
    struct ward_store *st = open_store(NULL, path, NULL);
    make_hosts(st, HOSTS);
    ward_store_close(st);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    double start = ward_monotonic();
    for (int p = 0; p < procs; p++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            double conflicts = 0;
            long claims = claim_all(path, p * (CONSUMERS / procs), CONSUMERS / procs, &conflicts);
            char line[64];
            int len = snprintf(line, sizeof(line), "%ld %.0f\n", claims, conflicts);
            if (write(fds[1], line, (size_t)len) != len) {
                _exit(1);
            }
            _exit(0);
        }
    }
    close(fds[1]);
    long claims = 0;
    double conflicts = 0;
    FILE *in = fdopen(fds[0], "r");
    long c;
    double k;
    while (fscanf(in, "%ld %lf", &c, &k) == 2) {
        claims += c;
        conflicts += k;
    }
    fclose(in);
    while (wait(NULL) > 0) {
    }
    double elapsed = ward_monotonic() - start;
    remove_db(path);
    if (claims != HOSTS) {
        fprintf(stderr, "store-bench: %ld claims for %d hosts: a host was claimed twice?\n", claims,
                HOSTS);
        exit(1);
    }
    *conflicts_out = conflicts;
    return (double)claims / elapsed;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "d:o:r:t:")) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'o':
            only = optarg;
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        default:
            fprintf(stderr, "usage: store-bench [-d DIR] [-o sync|w1|w10|w1000|claims] [-r RUNS] "
                            "[-t SECONDS]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 99 || seconds <= 0) {
        fprintf(stderr, "store-bench: runs must be 1..99 and seconds positive\n");
        return 2;
    }
    ward_log_set_level(WARD_LOG_WARN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    double v[99];
    printf("store-bench: %d runs of %.1f s each, database in %s, synchronous=FULL, WAL\n", runs,
           seconds, dir);
    double base = 0;
    if (wanted("sync") || only == NULL) {
        for (int i = 0; i < runs; i++) {
            v[i] = run_unbatched();
        }
        base = bench_median(v, (size_t)runs);
        printf("%-44s %10.0f /s (median)\n", "transitions, one commit each (no grouping)", base);
    }
    const int writers[] = {1, 10, 1000};
    for (size_t w = 0; w < WARD_ARRAY_SIZE(writers); w++) {
        char part[16];
        snprintf(part, sizeof(part), "w%d", writers[w]);
        if (!wanted(part)) {
            continue;
        }
        for (int i = 0; i < runs; i++) {
            v[i] = run_grouped(writers[w]);
        }
        double m = bench_median(v, (size_t)runs);
        char label[64];
        snprintf(label, sizeof(label), "durable transitions, %d concurrent writer%s", writers[w],
                 writers[w] == 1 ? "" : "s");
        if (base > 0) {
            printf("%-44s %10.0f /s (median)  x%.1f vs one commit each\n", label, m, m / base);
        } else {
            printf("%-44s %10.0f /s (median)\n", label, m);
        }
    }
    const int procs[] = {1, 4};
    for (size_t p = 0; p < WARD_ARRAY_SIZE(procs) && wanted("claims"); p++) {
        double conflicts[99];
        for (int i = 0; i < runs; i++) {
            v[i] = run_claims(procs[p], &conflicts[i]);
        }
        double m = bench_median(v, (size_t)runs);
        double c = bench_median(conflicts, (size_t)runs);
        char label[80];
        snprintf(label, sizeof(label), "claims, %d consumers/%d hosts, %d process%s", CONSUMERS,
                 HOSTS, procs[p], procs[p] == 1 ? "" : "es");
        printf("%-44s %10.0f /s (median)  %.0f CAS conflicts per %d claims\n", label, m, c, HOSTS);
    }
    return 0;
}
