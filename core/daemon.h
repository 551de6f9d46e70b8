/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon: one libev loop, the configuration, the plugins, and the
 * signal paths. SIGTERM/SIGINT stop taking work, wait (bounded by
 * shutdown_grace) for in-flight operations, flush and exit 0. SIGHUP
 * re-reads the configuration and runs every reload hook; a reload that
 * fails keeps what is in force.
 */
#ifndef WARD_CORE_DAEMON_H
#define WARD_CORE_DAEMON_H

#include <stdbool.h>

#include <ev.h>

#include "config.h"

struct ward_daemon;

/* A module's reaction to SIGHUP; returns 0 or a negative errno with err filled. */
typedef int (*ward_reload_fn)(struct ward_daemon *d, const struct ward_config *next, void *arg,
                              struct ward_error *err);
/* A module's part in shutdown: stop taking work (called once, in reverse registration order). */
typedef void (*ward_stop_fn)(struct ward_daemon *d, void *arg);

/* Takes ownership of cfg. */
struct ward_daemon *ward_daemon_create(struct ev_loop *loop, struct ward_config *cfg,
                                       struct ward_error *err);
/* Load and start plugins; 0 or an error naming the plugin. */
int ward_daemon_start(struct ward_daemon *d, struct ward_error *err);
/* Run the loop until shutdown completes. */
int ward_daemon_run(struct ward_daemon *d);
void ward_daemon_destroy(struct ward_daemon *d);

int ward_daemon_on_reload(struct ward_daemon *d, ward_reload_fn fn, void *arg);
int ward_daemon_on_stop(struct ward_daemon *d, ward_stop_fn fn, void *arg);

/* Begin shutdown as SIGTERM would. */
void ward_daemon_shutdown(struct ward_daemon *d, const char *why);
/* Reload as SIGHUP would; returns 0 when the new configuration is in force. */
int ward_daemon_reload(struct ward_daemon *d, struct ward_error *err);

struct ev_loop *ward_daemon_loop(const struct ward_daemon *d);
const struct ward_config *ward_daemon_config(const struct ward_daemon *d);
struct ward_metrics *ward_daemon_metrics(const struct ward_daemon *d);
struct ward_plugins *ward_daemon_plugins(const struct ward_daemon *d);
bool ward_daemon_stopping(const struct ward_daemon *d);

#endif
