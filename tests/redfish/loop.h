/* SPDX-License-Identifier: Apache-2.0 */
/* The Redfish tests' loop helpers: run until something happened, always with a bound. */
#ifndef WARD_TESTS_REDFISH_LOOP_H
#define WARD_TESTS_REDFISH_LOOP_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <ev.h>

/* Run loop until *flag is true or bound seconds have passed; *flag. */
bool test_loop_until(struct ev_loop *loop, bool *flag, double bound);
/* Run loop for seconds (only for what has no event to wait on: a counter another process
   keeps, or time the scenario needs to pass, such as a timeout running out). */
void test_loop_for(struct ev_loop *loop, double seconds);

/* A client's jitter source (ward_rf_client_opts.random) that always draws 0: waits as set. */
double test_no_jitter(void *arg);

/* An operation's end, as ward_rf_op_start's callback test_on_result records it. */
struct test_result {
    bool done;
    int code;
    char reason[1024];
};
void test_on_result(void *arg, int code, const cJSON *json, const char *reason);

#endif
