/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test agent: store, events, HTTP server and API on one loop, with stand-ins
 * for the policy engine's guarded path, the queue and policy reload, so tests
 * and benchmarks can drive the operator surface against real state.
 */
#ifndef WARD_TEST_HTTP_AGENT_H
#define WARD_TEST_HTTP_AGENT_H

#include <stdbool.h>

#include <ev.h>

#include "api.h"
#include "events.h"
#include "http.h"
#include "metrics.h"
#include "store.h"

struct test_agent {
    struct ev_loop *loop;
    struct ward_metrics *metrics; /* owned */
    struct ward_store *store;     /* owned */
    struct ward_events *events;   /* owned */
    struct ward_http *http;       /* owned */
    struct ward_api *api;         /* owned */
    char base[64];                /* http://127.0.0.1:PORT */
    char token_file[512];
    int queue_length, queue_max;
    bool draining;
    int reloads;
};

/* Start on loop with its state under dir; token written to dir/token. Bails on failure. */
void test_agent_start(struct test_agent *a, struct ev_loop *loop, const char *dir,
                      const char *token);
/* Add n hosts named prefix-0000.. in Available with label rack=r<i%racks>. */
void test_agent_add_hosts(struct test_agent *a, const char *prefix, int n, int racks);
/* Move a host's lifecycle to state directly in the store. */
void test_agent_set_state(struct test_agent *a, const char *name, const char *state);
void test_agent_stop(struct test_agent *a);

#endif
