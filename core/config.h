/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wardd's configuration: a Lua file run in the sandbox. It sets a few known
 * globals (log_level, state_dir, ...) and declares plugins with
 *     plugin "redfish" { optional = false, ...settings... }
 * Plugin settings stay as Lua tables inside the configuration's own state
 * until a plugin's config map is filled from them.
 */
#ifndef WARD_CORE_CONFIG_H
#define WARD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include <ward/plugin.h>

#include "util.h"

struct ward_buf;

struct ward_config_plugin {
    char *name;    /* owned */
    char *path;    /* owned; NULL: <plugin_dir>/ward-<name>.so */
    bool optional; /* a failing init is logged and the plugin skipped */
    int settings;  /* registry reference into the configuration's Lua state */
    int line;      /* where it was declared */
};

/* A host of the inventory: `host "name" { bmc = {...}, labels = {...} }`. */
struct ward_config_host {
    char *name;      /* owned */
    char *spec_json; /* owned; the declaration as a JSON object (labels included) */
    int line;
};

struct ward_config {
    char *path; /* owned */
    lua_State *L; /* owned; holds the plugin settings tables */
    enum ward_log_level log_level;
    char *log_file;   /* owned; NULL: stderr */
    char *state_dir;  /* owned */
    char *policy_dir; /* owned */
    char *plugin_dir; /* owned */
    double shutdown_grace; /* seconds in-flight work may take after SIGTERM */
    struct ward_config_plugin *plugins; /* owned, in declaration order */
    size_t nplugins;
    struct ward_config_host *hosts; /* owned, in declaration order */
    size_t nhosts;
    size_t hosts_cap;
    struct ward_strmap host_index; /* host name -> its index in hosts + 1 */
};

/* Load from a file; NULL with err filled ("file:line: reason") on failure. */
struct ward_config *ward_config_load(const char *path, struct ward_error *err);
/* Load from text; name is used in messages. */
struct ward_config *ward_config_load_string(const char *text, const char *name,
                                            struct ward_error *err);
void ward_config_destroy(struct ward_config *cfg);

/*
 * Fill instance from the plugin's settings through map: defaults for what is
 * missing, type checks, unknown keys refused. Strings are heap copies that
 * ward_config_free_instance releases. Secret values are registered with the
 * logger. Error messages name the key, never the value.
 */
int ward_config_fill(const struct ward_config *cfg, const struct ward_config_plugin *p,
                     const struct ward_config_entry *map, void *instance, struct ward_error *err);
void ward_config_free_instance(const struct ward_config_entry *map, void *instance);
/*
 * The same for one of the agent's own sections (`store = {...}`): an absent section gives
 * every default; a value that is not a table, a bad value or an unknown key is an error
 * starting with the section's name.
 */
int ward_config_fill_section(const struct ward_config *cfg, const char *name,
                             const struct ward_config_entry *map, void *instance,
                             struct ward_error *err);

/*
 * Push the value of the top-level section `name` (e.g. `http = { ... }`) onto cfg->L and
 * return its Lua type: LUA_TNIL (a nil pushed) when the configuration has none. The caller
 * pops it; reading and refusing the section's contents is the caller's.
 */
int ward_config_section(const struct ward_config *cfg, const char *name);

/* Append a Markdown table documenting a config map (used by wardd --describe-plugin). */
void ward_config_describe(const struct ward_config_entry *map, struct ward_buf *out);

#endif
