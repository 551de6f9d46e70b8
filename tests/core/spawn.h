/* SPDX-License-Identifier: Apache-2.0 */
/* Run a program under test and wait, with a bound, for what it writes or for its exit. */
#ifndef WARD_TEST_SPAWN_H
#define WARD_TEST_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

struct child {
    pid_t pid;
    int out_fd;          /* its stdout and stderr, merged */
    struct ward_buf out; /* everything read so far */
    size_t cursor;       /* wait_for searches from here */
    double cpu;          /* after child_wait_exit: its user + system CPU seconds */
};

/* Start argv[0] (a path) with stdout+stderr captured; bails on failure. */
void child_spawn(struct child *c, char *const argv[]);
/* Read until needle appears after the cursor, or timeout seconds pass. */
bool child_wait_for(struct child *c, const char *needle, double timeout);
/* Its CPU seconds so far (user + system), from /proc; -1 when they cannot be read. */
double child_cpu(const struct child *c);
/* Wait for exit; returns the exit status, 128+signal, or -1 after killing it on timeout. */
int child_wait_exit(struct child *c, double timeout);
void child_free(struct child *c);

#endif
