/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test doubles for the policy tests: a fake clock, a recording sink and a
 * fake BMC driver that implements the Lua BMC handle API through
 * <ward/async.h> exactly as the Redfish plugin does, completing each call
 * from a zero-delay ev_timer (or never, in hang mode) with switchable failures.
 */
#ifndef WARD_TESTS_POLICY_FIXTURE_H
#define WARD_TESTS_POLICY_FIXTURE_H

#include <stdbool.h>

#include <ev.h>

#include <ward/async.h>

#include "policy.h"
#include "util.h"

extern double fixture_now;
double fixture_clock(void *arg);

struct fixture_sink {
    struct ward_policy_sink sink;
    unsigned commits;
    bool fail;               /* refuse every commit with -ESTALE */
    struct ward_buf history; /* "kind/name dim from->to trigger actor v=N at=T\n" */
};
void fixture_sink_init(struct fixture_sink *s);

struct fixture_events {
    unsigned count;
    struct ward_buf text; /* "type kind/name: message\n" */
};
void fixture_on_event(void *arg, const struct ward_policy_event *ev);

struct fakebmc {
    struct ward_bmc_driver drv;
    struct ev_loop *loop;
    bool fail_connect;
    bool fail_inventory;
    bool fail_boot; /* insert_media fails */
    bool fail_eject; /* eject_media fails */
    bool hang;      /* operations never complete (until cancelled) */
    unsigned fail_power_state; /* the next this many power_state reads fail */
    char power[16]; /* "On" / "Off" */
    unsigned calls;
    unsigned connects;
    unsigned resets;
    unsigned restarts; /* power("ForceRestart") calls */
    unsigned cancelled;
    unsigned active;        /* operations in flight */
    unsigned max_same_host; /* most operations in flight for one host at once */
    unsigned max_active;    /* most operations in flight overall */
    char active_hosts[64][64];
    void *hung[64]; /* operations held by hang mode */
};
/* Let every operation held by hang mode complete on the next loop iteration. */
void fakebmc_release(struct fakebmc *f);
void fakebmc_init(struct fakebmc *f, struct ev_loop *loop);

/* Options for tests: fake clock, no stuck timer, small budgets. */
void fixture_options(struct ward_policy_options *o, struct fakebmc *f, struct fixture_events *ev);
/* Run the loop until nothing is pending (bounded). */
void fixture_settle(struct ev_loop *loop);
/* Write text to dir/name. */
void fixture_write(const char *dir, const char *name, const char *text);

#endif
