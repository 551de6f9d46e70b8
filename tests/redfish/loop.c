/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "loop.h"

static void on_bound(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

bool test_loop_until(struct ev_loop *loop, bool *flag, double bound)
{
    ev_timer t;
    ev_timer_init(&t, on_bound, bound, 0);
    ev_timer_start(loop, &t);
    while (!*flag && ev_is_active(&t)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    return *flag;
}

void test_loop_for(struct ev_loop *loop, double seconds)
{
    bool never = false;
    test_loop_until(loop, &never, seconds);
}

void test_on_result(void *arg, int code, const cJSON *json, const char *reason)
{
    (void)json;
    struct test_result *r = arg;
    r->done = true;
    r->code = code;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

double test_no_jitter(void *arg)
{
    (void)arg;
    return 0.0;
}
