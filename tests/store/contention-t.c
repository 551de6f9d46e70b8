/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Claims from several processes at once, each with its own connection to the same
 * database: every host is claimed exactly once, by the consumer that was told it won.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap/basic.h"
#include "store.h"

#define HOSTS 60
#define PROCS 3
#define CONSUMERS_PER_PROC 8

static char dbpath[512];

static void claimer(int fd, int proc)
{
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    if (st == NULL) {
        dprintf(fd, "error open %s\n", err.text);
        _exit(1);
    }
    int empty = 0;
    for (int turn = 0; empty < CONSUMERS_PER_PROC; turn++) {
        char consumer[32];
        snprintf(consumer, sizeof(consumer), "p%d-c%d", proc, turn % CONSUMERS_PER_PROC);
        struct ward_resource *r = NULL;
        int rc = ward_store_claim(st, "Host", NULL, consumer, NULL, NULL, &r, &err);
        if (rc == 0) {
            dprintf(fd, "%s %s\n", r->name, consumer);
            empty = 0;
        } else if (rc == -ENOENT) {
            empty++;
        } else if (rc != -ESTALE) {
            dprintf(fd, "error claim %d %s\n", rc, err.text);
            _exit(1);
        }
        ward_resource_free(r);
    }
    ward_store_close(st);
    _exit(0);
}

int main(void)
{
    plan(6);
    snprintf(dbpath, sizeof(dbpath), "%s/contention.db", test_tmpdir());
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
        struct ward_transition t = {
            .kind = "Host", .ns = "dc", .name = name, .dimension = "lifecycle", .to = "Available"};
        if (ward_store_create(st, &r, &err) < 0 ||
            ward_store_transition_sync(st, &t, NULL, &err) < 0) {
            bail("setup: %s", err.text);
        }
    }

    /* SQLite connections must not cross a fork: close, and reopen once the children ran */
    ward_store_close(st);
    int fds[2];
    if (pipe(fds) != 0) {
        sysbail("pipe");
    }
    fflush(stdout);
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            sysbail("fork");
        }
        if (pid == 0) {
            close(fds[0]);
            claimer(fds[1], p);
        }
    }
    close(fds[1]);
    /* the children end by themselves once nothing is left; EOF comes when all have */
    FILE *in = fdopen(fds[0], "r");
    char owner[HOSTS][32];
    memset(owner, 0, sizeof(owner));
    int reported = 0, twice = 0, errors = 0;
    char line[600];
    while (fgets(line, sizeof(line), in) != NULL) {
        char name[32], consumer[32];
        int idx;
        if (strncmp(line, "error", 5) == 0 || sscanf(line, "%31s %31s", name, consumer) != 2 ||
            sscanf(name, "h%d", &idx) != 1 || idx < 0 || idx >= HOSTS) {
            errors++;
            diag("child: %s", line);
            continue;
        }
        reported++;
        if (owner[idx][0] != '\0') {
            twice++;
        }
        snprintf(owner[idx], sizeof(owner[idx]), "%s", consumer);
    }
    fclose(in);
    int failed_children = 0, status;
    while (wait(&status) > 0) {
        failed_children += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    is_int(0, errors + failed_children, "%d processes claimed without errors", PROCS);
    is_int(HOSTS, reported, "together they claimed every host");
    is_int(0, twice, "and no host was handed out twice");

    st = ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    if (st == NULL) {
        bail("reopen: %s", err.text);
    }
    int mismatched = 0, claimed_records = 0;
    for (int i = 0; i < HOSTS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%02d", i);
        struct ward_resource *r = NULL;
        ward_store_get(st, "Host", "dc", name, &r, &err);
        if (r == NULL || r->consumer == NULL || strcmp(r->consumer, owner[i]) != 0) {
            mismatched++;
        }
        ward_resource_free(r);
        struct ward_history *h = NULL;
        size_t n = 0;
        ward_store_history(st, "Host", "dc", name, 0, 0, &h, &n, &err);
        for (size_t k = 0; k < n; k++) {
            claimed_records += strcmp(h[k].to, "Claimed") == 0;
        }
        ward_history_free(h, n);
    }
    is_int(0, mismatched, "each host's consumer is the one that was told it won");
    is_int(HOSTS, claimed_records, "each host has exactly one Claimed history record");
    struct ward_resource **list = NULL;
    size_t n = 0;
    ward_store_list(st, &(struct ward_store_filter){.dimension = "lifecycle", .state = "Available"},
                    &list, &n, &err);
    is_int(0, (long long)n, "no host is left Available");
    ward_resource_list_free(list, n);
    ward_store_close(st);
    return 0;
}
