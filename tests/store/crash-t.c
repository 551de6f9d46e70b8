/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash test: a writer child performs grouped transitions, claims and releases and
 * reports each one on a pipe only after it is done (durable). The parent SIGKILLs it at
 * random points, reopens the store and checks that every reported write is there, that
 * history and states agree (no record without its state change, no change without its
 * record) and that no host has two consumers. Bounded: KILLS rounds, each waiting on the
 * pipe with a poll timeout, never sleeping.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap/basic.h"
#include "store.h"
#include "util.h"

#define KILLS 30
#define HOSTS 16
#define CONSUMERS 6
#define MAX_INFLIGHT 64
#define REPORT_MAX 20000

static char dbpath[512];

/* ---- the writer child ------------------------------------------------------------------ */

struct writer {
    struct ward_store *st;
    int fd;
    int inflight;
    ev_idle gen;
};

static void report(int fd, const char *line)
{
    size_t len = strlen(line);
    /* one write of less than PIPE_BUF bytes: the line arrives whole or not at all */
    if (write(fd, line, len) != (ssize_t)len) {
        _exit(3);
    }
}

struct pending {
    struct writer *w;
    char name[32];
};

static void on_done(void *arg, int rc, int64_t version, const struct ward_error *err)
{
    struct pending *p = arg;
    p->w->inflight--;
    if (rc == 0) {
        char line[96];
        snprintf(line, sizeof(line), "T %s %lld\n", p->name, (long long)version);
        report(p->w->fd, line);
    } else if (rc != -ESTALE) {
        fprintf(stderr, "writer: transition failed: %s\n", err != NULL ? err->text : "");
        _exit(4);
    }
    free(p);
}

static void generate(struct ev_loop *loop, ev_idle *idle, int revents)
{
    (void)loop;
    (void)revents;
    struct writer *w = ward_container_of(idle, struct writer, gen);
    struct ward_error err = {0};
    int batch = 1 + rand() % 24;
    for (int i = 0; i < batch && w->inflight < MAX_INFLIGHT; i++) {
        struct pending *p = calloc(1, sizeof(*p));
        p->w = w;
        snprintf(p->name, sizeof(p->name), "h%02d", rand() % HOSTS);
        struct ward_transition t = {.kind = "Host",
                                    .ns = "dc",
                                    .name = p->name,
                                    .dimension = "power",
                                    .to = rand() % 2 ? "On" : "Off",
                                    .trigger = "crash-test",
                                    .actor = "writer"};
        if (ward_store_transition(w->st, &t, on_done, p) == 0) {
            w->inflight++;
        } else {
            free(p);
        }
    }
    char consumer[16], line[128];
    snprintf(consumer, sizeof(consumer), "c%d", rand() % CONSUMERS);
    struct ward_resource *r = NULL;
    if (rand() % 2 == 0) {
        int rc = ward_store_claim(w->st, "Host", NULL, consumer, NULL, NULL, &r, &err);
        if (rc == 0) {
            snprintf(line, sizeof(line), "C %s %lld %s\n", r->name, (long long)r->version,
                     consumer);
            report(w->fd, line);
        } else if (rc != -ENOENT) {
            fprintf(stderr, "writer: claim failed: %s\n", err.text);
            _exit(5);
        }
        ward_resource_free(r);
        return;
    }
    struct ward_resource **list = NULL;
    size_t n = 0;
    ward_store_list(
        w->st,
        &(struct ward_store_filter){.kind = "Host", .dimension = "lifecycle", .state = "Claimed"},
        &list, &n, &err);
    if (n > 0) {
        struct ward_resource *pick = list[(size_t)rand() % n];
        if (ward_store_release(w->st, "Host", "dc", pick->name, pick->consumer, NULL, &err) < 0) {
            fprintf(stderr, "writer: release failed: %s\n", err.text);
            _exit(6);
        }
        if (ward_store_get(w->st, "Host", "dc", pick->name, &r, &err) == 0) {
            snprintf(line, sizeof(line), "R %s %lld\n", r->name, (long long)r->version);
            report(w->fd, line);
            ward_resource_free(r);
        }
    }
    ward_resource_list_free(list, n);
}

static void writer_main(int fd, unsigned seed)
{
    srand(seed);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_error err = {0};
    struct writer w = {.fd = fd};
    w.st = ward_store_open(loop, &(struct ward_store_options){.path = dbpath}, &err);
    if (w.st == NULL) {
        fprintf(stderr, "writer: open: %s\n", err.text);
        _exit(2);
    }
    ev_idle_init(&w.gen, generate);
    ev_idle_start(loop, &w.gen);
    ev_run(loop, 0); /* runs until SIGKILL */
    _exit(7);
}

/* ---- the checking parent --------------------------------------------------------------- */

struct reported {
    char kind; /* T, C or R */
    char name[32];
    long long version;
    char consumer[16];
};

static struct reported reports[REPORT_MAX];
static size_t nreports;

static void parse_lines(char *buf, size_t *len)
{
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + *len - start))) != NULL) {
        *nl = '\0';
        if (nreports < REPORT_MAX) {
            struct reported *r = &reports[nreports];
            r->consumer[0] = '\0';
            if (sscanf(start, "%c %31s %lld %15s", &r->kind, r->name, &r->version, r->consumer) >=
                3) {
                nreports++;
            }
        }
        start = nl + 1;
    }
    size_t rest = (size_t)(buf + *len - start);
    memmove(buf, start, rest);
    *len = rest;
}

/* Run one child, kill it after a random number of reports plus a random delay. */
static int run_once(unsigned seed)
{
    int fds[2];
    if (pipe(fds) != 0) {
        sysbail("pipe");
    }
    fflush(stdout); /* the child must not repeat buffered TAP lines */
    pid_t pid = fork();
    if (pid < 0) {
        sysbail("fork");
    }
    if (pid == 0) {
        close(fds[0]);
        writer_main(fds[1], seed);
    }
    close(fds[1]);
    size_t target = nreports + 1 + (size_t)(rand() % 80);
    char buf[8192];
    size_t len = 0;
    int status = 0;
    bool exited = false;
    while (nreports < target) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int n = poll(&p, 1, 10000);
        if (n <= 0) {
            diag("writer stalled: no report within 10 s");
            break;
        }
        ssize_t got = read(fds[0], buf + len, sizeof(buf) - len - 1);
        if (got <= 0) {
            exited = true; /* the writer died by itself: a failure the checks will show */
            break;
        }
        len += (size_t)got;
        parse_lines(buf, &len);
    }
    if (!exited) {
        /* a random extra delay so the kill lands anywhere, mid-commit included */
        struct pollfd p = {.fd = -1};
        poll(&p, 0, rand() % 8);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    /* everything the writer wrote before it died was reported done: read it all */
    ssize_t got;
    while ((got = read(fds[0], buf + len, sizeof(buf) - len - 1)) > 0) {
        len += (size_t)got;
        parse_lines(buf, &len);
    }
    close(fds[0]);
    if (WIFEXITED(status)) {
        diag("writer exited with %d", WEXITSTATUS(status));
        return -1;
    }
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
}

static bool has_record(struct ward_history *h, size_t n, const char *name, long long version)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].version == version && strcmp(h[i].resource, name) == 0) {
            return true;
        }
    }
    return false;
}

static void check(int round)
{
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    if (st == NULL) {
        ok(false, "round %d: the store reopens after SIGKILL (%s)", round, err.text);
        ok(false, "round %d: reported writes", round);
        ok(false, "round %d: history and state", round);
        return;
    }
    ok(true, "round %d: the store reopens after SIGKILL", round);
    struct ward_history *h = NULL;
    size_t nh = 0;
    ward_store_history(st, "Host", "dc", NULL, 0, 0, &h, &nh, &err);
    size_t missing = 0;
    for (size_t i = 0; i < nreports; i++) {
        if (!has_record(h, nh, reports[i].name, reports[i].version)) {
            if (missing++ < 3) {
                diag("reported %c %s v%lld is missing", reports[i].kind, reports[i].name,
                     reports[i].version);
            }
        }
    }
    ok(missing == 0, "round %d: all %zu reported writes are present", round, nreports);

    size_t bad = 0;
    for (int i = 0; i < HOSTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%02d", i);
        struct ward_resource *r = NULL;
        struct ward_history *rh = NULL;
        size_t nrh = 0;
        struct ward_state *s = NULL;
        size_t ns = 0;
        ward_store_get(st, "Host", "dc", name, &r, &err);
        ward_store_history(st, "Host", "dc", name, 0, 0, &rh, &nrh, &err);
        ward_store_states(st, "Host", "dc", name, &s, &ns, &err);
        /* every version after creation has exactly one history record, in order */
        if (r == NULL || (long long)nrh != r->version - 1) {
            bad++;
            diag("%s: version %lld but %zu history records", name, r ? (long long)r->version : 0,
                 nrh);
        }
        const char *last_power = "", *last_life = "", *holder = NULL;
        for (size_t k = 0; k < nrh; k++) {
            const char **last = strcmp(rh[k].dimension, "power") == 0 ? &last_power : &last_life;
            if (rh[k].version != (int64_t)k + 2 || strcmp(rh[k].from, *last) != 0) {
                bad++;
                diag("%s: history record %zu (v%lld) breaks the chain", name, k,
                     (long long)rh[k].version);
            }
            *last = rh[k].to;
            if (strcmp(rh[k].dimension, "lifecycle") == 0) {
                if (strcmp(rh[k].to, "Claimed") == 0) {
                    if (holder != NULL) {
                        bad++;
                        diag("%s: claimed by %s while %s held it", name, rh[k].actor, holder);
                    }
                    holder = rh[k].actor;
                } else {
                    holder = NULL;
                }
            }
        }
        for (size_t k = 0; k < ns; k++) {
            const char *want = strcmp(s[k].dimension, "power") == 0 ? last_power : last_life;
            if (strcmp(s[k].state, want) != 0) {
                bad++;
                diag("%s: state %s=%s but history says %s", name, s[k].dimension, s[k].state, want);
            }
        }
        if (r != NULL && ((holder == NULL) != (r->consumer == NULL) ||
                          (holder != NULL && strcmp(holder, r->consumer) != 0))) {
            bad++;
            diag("%s: consumer %s but history says %s", name, r->consumer ? r->consumer : "-",
                 holder ? holder : "-");
        }
        ward_resource_free(r);
        ward_history_free(rh, nrh);
        ward_state_free(s, ns);
    }
    ok(bad == 0, "round %d: history, states and consumers agree", round);
    ward_history_free(h, nh);
    ward_store_close(st);
}

int main(void)
{
    plan(2 + 4 * KILLS);
    snprintf(dbpath, sizeof(dbpath), "%s/crash.db", test_tmpdir());
    unsigned seed = (unsigned)getpid();
    diag("seed %u", seed);
    srand(seed);
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    if (st == NULL) {
        bail("open: %s", err.text);
    }
    for (int i = 0; i < HOSTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%02d", i);
        struct ward_resource r = {.kind = "Host", .ns = "dc", .name = name};
        struct ward_transition t = {.kind = "Host",
                                    .ns = "dc",
                                    .name = name,
                                    .dimension = "lifecycle",
                                    .from = "",
                                    .to = "Available"};
        if (ward_store_create(st, &r, &err) < 0 ||
            ward_store_transition_sync(st, &t, NULL, &err) < 0) {
            bail("setup: %s", err.text);
        }
    }
    ward_store_close(st);
    ok(true, "%d hosts set up", HOSTS);
    fflush(stdout);

    for (int round = 1; round <= KILLS; round++) {
        size_t before = nreports;
        int rc = run_once((unsigned)rand());
        ok(rc == 0 && nreports > before,
           "round %d: the writer reported %zu writes, then was killed", round, nreports - before);
        check(round);
    }
    ok(nreports > KILLS, "%zu writes reported over %d kills", nreports, KILLS);
    return 0;
}
