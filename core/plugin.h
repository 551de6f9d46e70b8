/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin loader: dlopen, ABI check, config map, lifecycle in order,
 * teardown in reverse, and the capability registry plugins fill.
 */
#ifndef WARD_CORE_PLUGIN_H
#define WARD_CORE_PLUGIN_H

#include <ev.h>

#include <ward/plugin.h>

#include "config.h"

struct ward_plugins;

struct ward_plugins *ward_plugins_create(struct ev_loop *loop, struct ward_metrics *metrics);

/*
 * dlopen the plugin declared by p, check its descriptor, fill its instance
 * and call init. A non-optional plugin that fails returns the error; an
 * optional one is logged as a warning and skipped (returns 0).
 */
int ward_plugins_load(struct ward_plugins *ps, const struct ward_config *cfg,
                      const struct ward_config_plugin *p, struct ward_error *err);
/* Load every plugin of the configuration, in order. */
int ward_plugins_load_all(struct ward_plugins *ps, const struct ward_config *cfg,
                          struct ward_error *err);
/* Start every loaded plugin in load order. */
int ward_plugins_start(struct ward_plugins *ps, struct ward_error *err);
/* Ask every started plugin to stop taking work, in reverse order. */
void ward_plugins_stop(struct ward_plugins *ps);
/* Operations still holding shutdown. */
unsigned ward_plugins_holds(const struct ward_plugins *ps);
/* Called whenever the number of holds drops to zero (shutdown waits on it). */
void ward_plugins_on_idle(struct ward_plugins *ps, void (*cb)(void *arg), void *arg);
size_t ward_plugins_count(const struct ward_plugins *ps);
/* Destroy and dlclose every plugin in reverse load order, then free ps. */
void ward_plugins_destroy(struct ward_plugins *ps);

/* The ops registered under (kind, name), or NULL. */
void *ward_plugins_capability(const struct ward_plugins *ps, enum ward_capability kind,
                              const char *name);

/*
 * Write the Markdown reference of a plugin's settings, generated from its
 * config map (the same table that fills its instance), into out.
 */
int ward_plugin_describe(const char *path, const char *name, struct ward_buf *out,
                         struct ward_error *err);

#endif
