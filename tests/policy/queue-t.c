/* SPDX-License-Identifier: Apache-2.0 */
/* The work queue: dedup, per-key serialisation, exponential backoff with jitter; and options. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "policy.h"
#include "queue.h"

/* The big queue's expected order, computed here: by due time, then by first add. */
struct expect {
    int id;
    double due;
};

static int by_due_then_id(const void *a, const void *b)
{
    const struct expect *x = a, *y = b;
    if (x->due != y->due) {
        return x->due < y->due ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

/* Thousands of keys: order by due time with ties in first-add order, removal, re-insertion. */
static void big_queue(void)
{
    enum { N = 3000 };
    static struct expect want[N];
    struct ward_queue *q = ward_queue_create(&(struct ward_queue_options){.jitter = 0});
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        want[i] = (struct expect){.id = i, .due = (double)((x >> 16) % 50)}; /* many ties */
        char key[32];
        snprintf(key, sizeof(key), "Host/node-%d", i);
        ward_queue_add(q, key, want[i].due + 100); /* a later time first ... */
        ward_queue_add(q, key, want[i].due);       /* ... an earlier one wins */
    }
    /* every third key leaves and comes back: it keeps its place among equal due times
       only if it was never forgotten, so a returning key counts as new (last) */
    int n = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            char key[32];
            snprintf(key, sizeof(key), "Host/node-%d", i);
            ward_queue_forget(q, key);
        } else {
            want[n++] = want[i];
        }
    }
    is_int(n, (long long)ward_queue_waiting(q), "forgotten keys leave the queue (%d left)", n);
    for (int i = 0; i < N; i += 3) {
        char key[32];
        snprintf(key, sizeof(key), "Host/node-%d", i);
        ward_queue_add(q, key, 7);
        want[n++] = (struct expect){.id = N + i, .due = 7}; /* added after all the others */
    }
    qsort(want, (size_t)n, sizeof(want[0]), by_due_then_id);
    is_double(0, ward_queue_next_due(q), 0, "next_due is the earliest due time");
    ok(ward_queue_pop(q, -1) == NULL, "nothing is handed out before it is due");
    int wrong = 0, popped = 0;
    const char *k;
    while ((k = ward_queue_pop(q, 1000)) != NULL) {
        int id = atoi(strrchr(k, '-') + 1);
        int wid = want[popped].id >= N ? want[popped].id - N : want[popped].id;
        if (popped < n && id != wid) {
            if (wrong++ < 3) {
                diag("hand-out %d: %s, expected node-%d", popped, k, wid);
            }
        }
        popped++;
    }
    is_int(n, popped, "every waiting key is handed out once");
    is_int(0, wrong, "by due time, equal ones in the order they were first added");
    ward_queue_destroy(q);
}

int main(void)
{
    plan(46 + 5 + 3 + 4);
    struct ward_queue *q = ward_queue_create(&(struct ward_queue_options){
        .base_delay = 1, .max_delay = 8, .jitter = 0, .max_inflight = 2});
    ward_queue_add(q, "a", 10);
    ward_queue_add(q, "a", 12);
    ward_queue_add(q, "b", 11);
    is_int(2, (long long)ward_queue_waiting(q), "a key is queued once");
    ok(ward_queue_pop(q, 9) == NULL, "nothing is due before its time");
    is_string("a", ward_queue_pop(q, 12), "the earliest due comes first");
    ok(ward_queue_inflight(q, "a"), "and is in flight");
    ward_queue_add(q, "a", 12);
    is_string("b", ward_queue_pop(q, 12), "a key in flight is not handed out again");
    ok(ward_queue_pop(q, 12) == NULL, "nothing else is ready (a is in flight, asked again)");
    ward_queue_add(q, "c", 12);
    ok(ward_queue_pop(q, 12) == NULL, "max_inflight bounds concurrency");
    ok(ward_queue_next_due(q) < 0, "at the cap no due time is given (a timer would spin)");
    is_double(0, ward_queue_done(q, "a", true, 12), 0, "success: no backoff");
    is_double(10, ward_queue_next_due(q), 0, "a done frees a slot: a due time again (a's own)");
    is_string("a", ward_queue_pop(q, 12), "a key added while in flight runs again after");
    ward_queue_done(q, "b", true, 12);
    is_string("c", ward_queue_pop(q, 12), "then the next one");
    ward_queue_done(q, "c", true, 12);

    /* exponential backoff, capped */
    is_double(1, ward_queue_done(q, "a", false, 100), 0, "first failure: 1 s");
    ok(ward_queue_pop(q, 100.9) == NULL, "not before");
    is_string("a", ward_queue_pop(q, 101), "then due");
    is_double(2, ward_queue_done(q, "a", false, 101), 0, "second: 2 s");
    is_string("a", ward_queue_pop(q, 103), "due at 103");
    is_double(4, ward_queue_done(q, "a", false, 103), 0, "third: 4 s");
    is_string("a", ward_queue_pop(q, 107), "due at 107");
    is_double(8, ward_queue_done(q, "a", false, 107), 0, "fourth: 8 s (the cap)");
    is_string("a", ward_queue_pop(q, 115), "due at 115");
    is_double(8, ward_queue_done(q, "a", false, 115), 0, "stays at the cap");
    is_int(5, ward_queue_failures(q, "a"), "five failures in a row");
    is_string("a", ward_queue_pop(q, 123), "due");
    ward_queue_done(q, "a", true, 123);
    is_int(0, ward_queue_failures(q, "a"), "a success resets the count");
    ward_queue_forget(q, "a");
    ok(ward_queue_next_due(q) < 0, "nothing left waiting");
    ward_queue_destroy(q);

    /* jitter shortens, never lengthens, and spreads */
    q = ward_queue_create(
        &(struct ward_queue_options){.base_delay = 10, .max_delay = 10, .jitter = 0.5, .seed = 42});
    double lo = 1e9, hi = 0;
    for (int i = 0; i < 50; i++) {
        ward_queue_add(q, "k", 0);
        ward_queue_pop(q, 0);
        double d = ward_queue_done(q, "k", false, 0);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        ward_queue_forget(q, "k");
    }
    ok(lo >= 5 && hi <= 10 && hi - lo > 1,
       "jittered delays stay within [5, 10] and spread "
       "(%.2f..%.2f)",
       lo, hi);
    ward_queue_destroy(q);

    /* an overall rate: a token bucket of 2 hand-outs, refilled at 2 per second */
    q = ward_queue_create(&(struct ward_queue_options){.rate = 2, .burst = 2});
    for (int i = 0; i < 5; i++) {
        char key[8];
        snprintf(key, sizeof(key), "r%d", i);
        ward_queue_add(q, key, 0);
    }
    ok(ward_queue_pop(q, 0) != NULL && ward_queue_pop(q, 0) != NULL, "a burst of two");
    ok(ward_queue_pop(q, 0) == NULL, "then the rate limit holds the third");
    is_double(0.5, ward_queue_next_due(q), 1e-9, "until a token is back (0.5 s)");
    ok(ward_queue_pop(q, 0.5) != NULL, "one more after 0.5 s");
    ok(ward_queue_pop(q, 0.5) == NULL, "but only one");
    ward_queue_destroy(q);

    /* options: RECONCILE_TIMEOUT, STUCK_STATE_TIMEOUT, MAX_RETRIES */
    struct ward_policy_options o;
    struct ward_error err = {0};
    unsetenv("RECONCILE_TIMEOUT");
    unsetenv("STUCK_STATE_TIMEOUT");
    unsetenv("MAX_RETRIES");
    is_int(0, ward_policy_options_init(&o, &err), "defaults");
    ok(o.reconcile_timeout == 1800 && o.stuck_timeout == 900 && o.max_retries == 3,
       "30m, 15m and 3");
    setenv("RECONCILE_TIMEOUT", "45m", 1);
    setenv("STUCK_STATE_TIMEOUT", "1h30m", 1);
    setenv("MAX_RETRIES", "5", 1);
    is_int(0, ward_policy_options_init(&o, &err), "from the environment");
    ok(o.reconcile_timeout == 2700 && o.stuck_timeout == 5400 && o.max_retries == 5,
       "45m, 1h30m and 5");
    is_int(0, ward_policy_options_set(&o, "stuck_state_timeout", "10m", &err),
           "the configuration overrides");
    is_double(600, o.stuck_timeout, 0, "to 10m");
    is_double(10, o.slice_timeout, 0, "the time slice is 10 s by default");
    is_int(0, ward_policy_options_set(&o, "slice_timeout", "2s", &err),
           "slice_timeout is a setting");
    is_double(2, o.slice_timeout, 0, "read as a duration");
    is_int(-EINVAL, ward_policy_options_set(&o, "slice_timeout", "0s", &err),
           "a zero time slice is refused");
    setenv("STUCK_STATE_TIMEOUT", "15 minutes", 1);
    is_int(-EINVAL, ward_policy_options_init(&o, &err), "a bad duration is an error");
    contains(err.text, "STUCK_STATE_TIMEOUT: stuck_state_timeout: '15 minutes' is not a duration",
             "naming the variable and the value");
    setenv("STUCK_STATE_TIMEOUT", "15m", 1);
    setenv("MAX_RETRIES", "-1", 1);
    is_int(-EINVAL, ward_policy_options_init(&o, &err), "a negative count is an error");
    contains(err.text, "MAX_RETRIES", "naming the variable");
    is_int(-EINVAL, ward_policy_options_set(&o, "max_retry", "3", &err),
           "an unknown setting is refused");
    is_int(0, ward_policy_options_set(&o, "queue_rate", "0", &err), "queue_rate 0 is accepted");
    is_double(0, o.queue.rate, 0, "meaning unlimited");
    is_int(-EINVAL, ward_policy_options_set(&o, "queue_burst", "lots", &err),
           "a queue_burst that is not a number is refused");
    big_queue();

    /* a follow-up asked for while in flight keeps the key's place in line */
    q = ward_queue_create(&(struct ward_queue_options){.jitter = 0});
    ward_queue_add(q, "first", 1);
    ward_queue_add(q, "second", 2);
    ward_queue_add(q, "third", 3);
    is_string("first", ward_queue_pop(q, 5), "the earliest goes");
    ward_queue_add(q, "first", 5); /* its run transitioned: run again at once */
    ward_queue_done(q, "first", true, 5);
    is_string("first", ward_queue_pop(q, 5), "its next step goes ahead of keys not started yet");
    ward_queue_done(q, "first", true, 5);
    ward_queue_add(q, "first", 9);
    is_string("second", ward_queue_pop(q, 9), "a key added anew waits its turn as before");
    ward_queue_destroy(q);
    return 0;
}
