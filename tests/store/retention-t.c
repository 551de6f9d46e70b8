/* SPDX-License-Identifier: Apache-2.0 */
/* History retention: a count per resource (inline) and an age (in bounded steps). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "store.h"

struct clock {
    double t;
};

static double fake_now(void *arg)
{
    return ((struct clock *)arg)->t;
}

static void guard_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* a one-shot timer: once fired it is inactive, which ends the wait */
}

static void flip(struct ward_store *st, const char *name, int times, struct clock *clk)
{
    struct ward_error err = {0};
    struct ward_resource r = {.kind = "Host", .ns = "n", .name = (char *)name};
    ward_store_create(st, &r, &err);
    for (int i = 0; i < times; i++) {
        struct ward_transition t = {.kind = "Host",
                                    .ns = "n",
                                    .name = name,
                                    .dimension = "power",
                                    .to = i % 2 ? "Off" : "On"};
        if (ward_store_transition_sync(st, &t, NULL, &err) < 0) {
            bail("transition: %s", err.text);
        }
        clk->t += 1;
    }
}

static size_t history_len(struct ward_store *st, const char *name, long long *first_version)
{
    struct ward_error err = {0};
    struct ward_history *h = NULL;
    size_t n = 0;
    ward_store_history(st, "Host", "n", name, 0, 0, &h, &n, &err);
    if (first_version != NULL) {
        *first_version = n > 0 ? (long long)h[0].version : -1;
    }
    ward_history_free(h, n);
    return n;
}

int main(void)
{
    plan(13);
    char path[512];
    struct clock clk = {1000};
    struct ward_error err = {0};

    snprintf(path, sizeof(path), "%s/keep.db", test_tmpdir());
    struct ward_store *st =
        ward_store_open(NULL,
                        &(struct ward_store_options){
                            .path = path, .now = fake_now, .now_arg = &clk, .history_keep = 3},
                        &err);
    flip(st, "a", 6, &clk);
    flip(st, "b", 2, &clk);
    long long first = 0;
    is_int(3, (long long)history_len(st, "a", &first), "count retention keeps 3 records");
    is_int(5, first, "the newest ones (versions 5..7)");
    is_int(2, (long long)history_len(st, "b", NULL), "per resource: another keeps its own");
    ward_store_close(st);

    snprintf(path, sizeof(path), "%s/age.db", test_tmpdir());
    clk.t = 1000;
    st =
        ward_store_open(NULL,
                        &(struct ward_store_options){
                            .path = path, .now = fake_now, .now_arg = &clk, .history_max_age = 100},
                        &err);
    flip(st, "a", 10, &clk); /* records at 1000 .. 1009 */
    clk.t = 1105;            /* records before 1005 are older than 100 s */
    is_int(4, ward_store_prune(st, 4, &err), "age pruning works in bounded steps");
    is_int(1, ward_store_prune(st, 4, &err), "the next step takes the rest");
    is_int(0, ward_store_prune(st, 4, &err), "then nothing is left to prune");
    is_int(5, (long long)history_len(st, "a", &first), "younger records stay");
    is_int(7, first, "from the first young one on");
    ward_store_close(st);

    st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    is_int(0, ward_store_prune(st, 10, &err), "without an age setting nothing is pruned");
    ward_store_close(st);

    /* on a loop the age retention runs by itself, from a timer */
    snprintf(path, sizeof(path), "%s/timer.db", test_tmpdir());
    clk.t = 1000;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    st = ward_store_open(loop,
                         &(struct ward_store_options){.path = path,
                                                      .now = fake_now,
                                                      .now_arg = &clk,
                                                      .history_max_age = 100,
                                                      .prune_interval = 0.001},
                         &err);
    flip(st, "a", 10, &clk);
    clk.t = 1105;
    ev_timer guard; /* the bound: the test never waits longer than this */
    ev_timer_init(&guard, guard_expired, 10, 0);
    ev_timer_start(loop, &guard);
    size_t left = history_len(st, "a", NULL);
    while (left > 5 && ev_is_active(&guard)) {
        ev_run(loop, EVRUN_ONCE);
        left = history_len(st, "a", NULL);
    }
    ev_timer_stop(loop, &guard);
    is_int(5, (long long)left, "the prune timer removed the old records");
    ev_run(loop, EVRUN_NOWAIT);
    is_int(5, (long long)history_len(st, "a", NULL), "and only those");
    ward_store_close(st);
    ev_loop_destroy(loop);

    char *p = ward_store_path("/srv/ward/");
    is_string("/srv/ward/ward.db", p, "the database lives in the configured state_dir");
    free(p);
    p = ward_store_path(NULL);
    contains(p, "/lib/ward/ward.db", "and under localstatedir by default");
    free(p);
    return 0;
}
