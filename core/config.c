/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "config.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

#ifndef WARD_STATEDIR
#define WARD_STATEDIR "/var/lib/ward"
#endif
#ifndef WARD_POLICYDIR
#define WARD_POLICYDIR "/usr/share/ward/policies"
#endif
#ifndef WARD_PLUGINDIR
#define WARD_PLUGINDIR "/usr/lib/ward/plugins"
#endif

#define CONFIG_MEMORY_LIMIT (16u << 20)
#define CONFIG_INSTRUCTIONS 50000000ul
#define CONFIG_SLICE 10.0 /* seconds: bounds what instructions do not count */
#define CONFIG_MAX_BYTES (4u << 20)

enum setting_kind { SETTING_STRING, SETTING_LEVEL, SETTING_DURATION };

static const struct {
    const char *key;
    enum setting_kind kind;
    const char *help;
} settings[] = {
    {"log_level", SETTING_LEVEL, "debug, info, warn or error"},
    {"log_file", SETTING_STRING, "append JSON log lines here instead of stderr"},
    {"state_dir", SETTING_STRING, "directory holding the state database"},
    {"policy_dir", SETTING_STRING, "directory of policy files"},
    {"plugin_dir", SETTING_STRING, "directory searched for ward-<name>.so"},
    {"shutdown_grace", SETTING_DURATION, "how long in-flight work may run after SIGTERM"},
};

static const char config_key = 'c';

static struct ward_config *config_of(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &config_key);
    struct ward_config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cfg;
}

/* __newindex of the configuration environment: only known settings, each checked. */
static int env_newindex(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    if (key != NULL && ward_log_key_is_secret(key) && lua_type(L, 3) == LUA_TSTRING) {
        ward_log_add_secret(lua_tostring(L, 3));
    }
    for (size_t i = 0; key != NULL && i < WARD_ARRAY_SIZE(settings); i++) {
        if (strcmp(key, settings[i].key) != 0) {
            continue;
        }
        if (lua_type(L, 3) != LUA_TSTRING) {
            return luaL_error(L, "%s must be a string (%s)", key, settings[i].help);
        }
        const char *v = lua_tostring(L, 3);
        enum ward_log_level level;
        double seconds;
        if (settings[i].kind == SETTING_LEVEL && ward_log_level_parse(v, &level) != 0) {
            return luaL_error(L, "log_level: unknown level (use debug, info, warn or error)");
        }
        if (settings[i].kind == SETTING_DURATION && ward_duration_parse(v, &seconds) != 0) {
            return luaL_error(L, "%s: not a duration (write it like \"10s\", \"2m\" or \"1h30m\")",
                              key);
        }
        lua_rawset(L, 1);
        return 0;
    }
    if (key != NULL && lua_type(L, 3) == LUA_TTABLE) {
        /* site-specific sections (hosts, credentials, ...) are read by their modules */
        lua_rawset(L, 1);
        return 0;
    }
    return luaL_error(L, "unknown setting '%s'", key != NULL ? key : "?");
}

static int env_index(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    return luaL_error(L,
                      "'%s' is not available in a configuration file (no io, os, require, "
                      "load of files or C modules)",
                      key != NULL ? key : "?");
}

static int plugin_with_table(lua_State *L)
{
    struct ward_config *cfg = config_of(L);
    const char *name = luaL_checkstring(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    for (size_t i = 0; i < cfg->nplugins; i++) {
        if (strcmp(cfg->plugins[i].name, name) == 0) {
            return luaL_error(L, "plugin '%s' is declared twice (first at line %d)", name,
                              cfg->plugins[i].line);
        }
    }
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) {
        line = ar.currentline;
    }
    lua_getfield(L, 1, "optional");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        return luaL_error(L, "plugin '%s': optional must be true or false", name);
    }
    bool optional = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "path");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
        return luaL_error(L, "plugin '%s': path must be a string", name);
    }
    const char *path = lua_tostring(L, -1);
    lua_pop(L, 1);

    struct ward_config_plugin *grown =
        realloc(cfg->plugins, (cfg->nplugins + 1) * sizeof(*cfg->plugins));
    if (grown == NULL) {
        return luaL_error(L, "out of memory");
    }
    cfg->plugins = grown;
    struct ward_config_plugin *p = &cfg->plugins[cfg->nplugins];
    memset(p, 0, sizeof(*p));
    p->name = strdup(name);
    p->path = path != NULL ? strdup(path) : NULL;
    p->optional = optional;
    p->line = line;
    lua_pushvalue(L, 1);
    p->settings = luaL_ref(L, LUA_REGISTRYINDEX);
    cfg->nplugins++;
    if (p->name == NULL || (path != NULL && p->path == NULL)) {
        return luaL_error(L, "out of memory");
    }
    return 0;
}

static int host_with_table(lua_State *L)
{
    struct ward_config *cfg = config_of(L);
    const char *name = luaL_checkstring(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    uintptr_t first = (uintptr_t)ward_strmap_get(&cfg->host_index, name);
    if (first != 0) {
        return luaL_error(L, "host '%s' is declared twice (first at line %d)", name,
                          cfg->hosts[first - 1].line);
    }
    struct ward_error why = {0};
    cJSON *spec = ward_sandbox_to_json(L, 1, "a host", &why);
    if (spec == NULL || !cJSON_IsObject(spec)) {
        cJSON_Delete(spec);
        return luaL_error(L, "host '%s': %s", name,
                          spec == NULL ? why.text : "must be a table of settings");
    }
    const char *secret = ward_log_find_secret(spec);
    if (secret != NULL) {
        /* secret points into spec: format before freeing it */
        luaL_where(L, 1);
        lua_pushfstring(L,
                        "host '%s': %s is a secret written in the configuration; use "
                        "passwordFile or passwordEnv so it stays out of the state database",
                        name, secret);
        lua_concat(L, 2);
        cJSON_Delete(spec);
        return lua_error(L);
    }
    char *text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    if (text != NULL && cfg->nhosts == cfg->hosts_cap) {
        size_t cap = cfg->hosts_cap != 0 ? 2 * cfg->hosts_cap : 16;
        struct ward_config_host *grown = realloc(cfg->hosts, cap * sizeof(*grown));
        if (grown == NULL) {
            free(text);
            text = NULL;
        } else {
            cfg->hosts = grown;
            cfg->hosts_cap = cap;
        }
    }
    if (text == NULL) {
        return luaL_error(L, "out of memory");
    }
    struct ward_config_host *h = &cfg->hosts[cfg->nhosts];
    lua_Debug ar;
    h->line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar) ? ar.currentline : 0;
    h->spec_json = text;
    h->name = strdup(name);
    cfg->nhosts++;
    if (h->name == NULL ||
        ward_strmap_put(&cfg->host_index, h->name, (void *)(uintptr_t)cfg->nhosts) < 0) {
        return luaL_error(L, "out of memory");
    }
    return 0;
}

/* host "name" { ... }: a host of the inventory, created in the store if it is not there */
static int host_decl(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    size_t len = strlen(name);
    for (const char *c = name; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.')) {
            return luaL_error(L, "host name '%s': use lower-case letters, digits, - and .", name);
        }
    }
    if (len == 0 || len > 253) {
        return luaL_error(L, "host name must be 1 to 253 characters");
    }
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, host_with_table, 1);
    return 1;
}

/* plugin "name" { ... }  or  plugin("name", { ... }) */
static int plugin_decl(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const char *c = name; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) {
            return luaL_error(L, "plugin name '%s': use lower-case letters, digits, - and _",
                              name);
        }
    }
    if (*name == '\0') {
        return luaL_error(L, "plugin name is empty");
    }
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, plugin_with_table, 1);
    if (lua_gettop(L) >= 3 && lua_istable(L, 2)) {
        lua_pushvalue(L, 2);
        lua_call(L, 1, 0);
        return 0;
    }
    return 1;
}

/* Raw lookup: outside a protected call a metamethod must not run (it could raise). */
static int raw_field(lua_State *L, int table, const char *key)
{
    table = lua_absindex(L, table);
    lua_pushstring(L, key);
    return lua_rawget(L, table);
}

static char *string_or(lua_State *L, int env, const char *key, const char *fallback)
{
    raw_field(L, env, key);
    const char *v = lua_tostring(L, -1);
    char *copy = strdup(v != NULL ? v : fallback);
    lua_pop(L, 1);
    return copy;
}

struct ward_config *ward_config_load_string(const char *text, const char *name,
                                            struct ward_error *err)
{
    struct ward_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(name)) == NULL ||
        (cfg->L = ward_sandbox_new(CONFIG_MEMORY_LIMIT)) == NULL) {
        ward_config_destroy(cfg);
        ward_error_set(err, -ENOMEM, "out of memory loading %s", name);
        return NULL;
    }
    lua_State *L = cfg->L;
    lua_pushlightuserdata(L, cfg);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &config_key);

    /* The environment: safe library tables, plugin(), and checked assignment. */
    lua_newtable(L);
    int env = lua_gettop(L);
    static const char *const visible[] = {"string", "table", "math", "utf8", "pairs", "ipairs",
                                          "tostring", "tonumber", "type", "error", "assert",
                                          "select", "next", "pcall", "rawget", "rawequal",
                                          "setmetatable", "getmetatable"};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(visible); i++) {
        lua_getglobal(L, visible[i]);
        lua_setfield(L, env, visible[i]);
    }
    lua_pushcfunction(L, plugin_decl);
    lua_setfield(L, env, "plugin");
    lua_pushcfunction(L, host_decl);
    lua_setfield(L, env, "host");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, env_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, env);

    if (ward_sandbox_load(L, text, strlen(text), name, env, err) != 0) {
        ward_config_destroy(cfg);
        return NULL;
    }
    int rc = ward_sandbox_pcall_armed(L, 0, 0, CONFIG_INSTRUCTIONS, CONFIG_SLICE, err);
    if (rc != 0) {
        /* keep the first line: "file:line: reason"; the traceback is for developers */
        if (err != NULL) {
            char *nl = strchr(err->text, '\n');
            if (nl != NULL) {
                *nl = '\0';
            }
        }
        ward_config_destroy(cfg);
        return NULL;
    }

    raw_field(L, env, "log_level");
    cfg->log_level = WARD_LOG_INFO;
    if (lua_isstring(L, -1)) {
        ward_log_level_parse(lua_tostring(L, -1), &cfg->log_level);
    }
    lua_pop(L, 1);
    raw_field(L, env, "log_file");
    cfg->log_file = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    cfg->state_dir = string_or(L, env, "state_dir", WARD_STATEDIR);
    cfg->policy_dir = string_or(L, env, "policy_dir", WARD_POLICYDIR);
    cfg->plugin_dir = string_or(L, env, "plugin_dir", WARD_PLUGINDIR);
    cfg->shutdown_grace = 10;
    raw_field(L, env, "shutdown_grace");
    if (lua_isstring(L, -1)) {
        ward_duration_parse(lua_tostring(L, -1), &cfg->shutdown_grace);
    }
    lua_pop(L, 1);
    /* keep the environment reachable for modules that read their own sections */
    lua_setglobal(L, "WARD_CONFIG_ENV");
    if (cfg->state_dir == NULL || cfg->policy_dir == NULL || cfg->plugin_dir == NULL) {
        ward_config_destroy(cfg);
        ward_error_set(err, -ENOMEM, "out of memory loading %s", name);
        return NULL;
    }
    return cfg;
}

struct ward_config *ward_config_load(const char *path, struct ward_error *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        ward_error_set(err, -errno, "cannot read configuration %s: %s", path, strerror(errno));
        return NULL;
    }
    struct ward_buf text = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        ward_buf_put(&text, chunk, n);
        if (text.len > CONFIG_MAX_BYTES) {
            break;
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || text.len > CONFIG_MAX_BYTES) {
        ward_buf_free(&text);
        ward_error_set(err, -EINVAL, "%s: %s", path,
                       failed ? "read error" : "larger than 4 MiB, refusing to load");
        return NULL;
    }
    if (text.len != strlen(text.data != NULL ? text.data : "")) {
        ward_buf_free(&text);
        ward_error_set(err, -EINVAL, "%s: contains NUL bytes (binary chunks are not accepted)",
                       path);
        return NULL;
    }
    struct ward_config *cfg = ward_config_load_string(text.data != NULL ? text.data : "", path,
                                                      err);
    ward_buf_free(&text);
    return cfg;
}

void ward_config_destroy(struct ward_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nplugins; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
    }
    free(cfg->plugins);
    for (size_t i = 0; i < cfg->nhosts; i++) {
        free(cfg->hosts[i].name);
        free(cfg->hosts[i].spec_json);
    }
    free(cfg->hosts);
    ward_strmap_free(&cfg->host_index);
    ward_sandbox_close(cfg->L);
    free(cfg->path);
    free(cfg->log_file);
    free(cfg->state_dir);
    free(cfg->policy_dir);
    free(cfg->plugin_dir);
    free(cfg);
}

static const char *const type_names[] = {"string", "secret", "integer", "boolean", "duration"};

/* One setting into instance; what ("plugin redfish", "store") starts every message. */
static int fill_one(lua_State *L, const char *what, const struct ward_config_entry *e,
                    void *instance, struct ward_error *err)
{
    char *field = (char *)instance + e->offset;
    int t = lua_type(L, -1);
    const char *text = NULL;
    if (t == LUA_TNIL) {
        if (e->required) {
            return ward_error_set(err, -EINVAL, "%s: setting '%s' is required (%s)", what, e->key,
                                  e->description);
        }
        if (e->default_value == NULL) {
            return 0;
        }
        text = e->default_value;
    }
    switch (e->type) {
    case WARD_CONFIG_STRING:
    case WARD_CONFIG_SECRET: {
        if (text == NULL && t != LUA_TSTRING) {
            break;
        }
        char *copy = strdup(text != NULL ? text : lua_tostring(L, -1));
        if (copy == NULL) {
            return ward_error_set(err, -ENOMEM, "out of memory");
        }
        if (e->type == WARD_CONFIG_SECRET) {
            ward_log_add_secret(copy);
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case WARD_CONFIG_INT: {
        long long v;
        if (text != NULL) {
            char *end;
            errno = 0;
            v = strtoll(text, &end, 10);
            if (errno != 0 || *end != '\0') {
                break;
            }
        } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
            v = (long long)lua_tointeger(L, -1);
        } else {
            break;
        }
        *(long long *)field = v;
        return 0;
    }
    case WARD_CONFIG_BOOL:
        if (text != NULL) {
            *(bool *)field = strcmp(text, "true") == 0;
            return 0;
        }
        if (t != LUA_TBOOLEAN) {
            break;
        }
        *(bool *)field = lua_toboolean(L, -1);
        return 0;
    case WARD_CONFIG_DURATION: {
        double v;
        if (text == NULL && t != LUA_TSTRING) {
            break;
        }
        if (ward_duration_parse(text != NULL ? text : lua_tostring(L, -1), &v) != 0) {
            return ward_error_set(err, -EINVAL,
                                  "%s: setting '%s' is not a duration (write it like "
                                  "\"10s\", \"2m\" or \"1h30m\")",
                                  what, e->key);
        }
        *(double *)field = v;
        return 0;
    }
    }
    static const char *const wanted[] = {"a string", "a string", "an integer", "true or false",
                                         "a duration string"};
    if (text != NULL) {
        return ward_error_set(err, -EINVAL, "%s: the built-in default of '%s' is invalid", what,
                              e->key);
    }
    return ward_error_set(err, -EINVAL, "%s: setting '%s' must be %s, not a %s", what, e->key,
                          wanted[e->type], lua_typename(L, t));
}

int ward_config_section(const struct ward_config *cfg, const char *name)
{
    lua_State *L = cfg->L;
    if (lua_getglobal(L, "WARD_CONFIG_ENV") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushstring(L, name);
    int type = lua_rawget(L, -2);
    lua_remove(L, -2); /* the environment */
    return type;
}

/* Fill instance from the table at tbl through map; keys named in extra (a NULL-ended list)
   are accepted and left to the caller. line > 0 is where the table was declared. */
static int fill_table(lua_State *L, int tbl, const char *what, int line, const char *const *extra,
                      const struct ward_config_entry *map, void *instance, struct ward_error *err)
{
    int rc = 0;
    for (const struct ward_config_entry *e = map; rc == 0 && e != NULL && e->key != NULL; e++) {
        raw_field(L, tbl, e->key);
        rc = fill_one(L, what, e, instance, err);
        lua_pop(L, 1);
    }
    /* refuse keys nobody knows: a typo must not silently become a default */
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, tbl) != 0) {
        lua_pop(L, 1);
        const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool known = false;
        for (const char *const *x = extra; !known && key != NULL && x != NULL && *x != NULL; x++) {
            known = strcmp(key, *x) == 0;
        }
        for (const struct ward_config_entry *e = map; !known && e != NULL && e->key != NULL;
             e++) {
            known = key != NULL && strcmp(key, e->key) == 0;
        }
        if (!known) {
            char where[32] = "";
            if (line > 0) {
                snprintf(where, sizeof(where), " (line %d)", line);
            }
            rc = ward_error_set(err, -EINVAL, "%s: unknown setting '%s'%s", what,
                                key != NULL ? key : "(non-string key)", where);
            lua_pop(L, 1);
        }
    }
    return rc;
}

int ward_config_fill(const struct ward_config *cfg, const struct ward_config_plugin *p,
                     const struct ward_config_entry *map, void *instance, struct ward_error *err)
{
    static const char *const extra[] = {"optional", "path", NULL};
    lua_State *L = cfg->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->settings);
    char what[160];
    snprintf(what, sizeof(what), "plugin %s", p->name);
    int rc = fill_table(L, lua_gettop(L), what, p->line, extra, map, instance, err);
    lua_settop(L, top);
    return rc;
}

int ward_config_fill_section(const struct ward_config *cfg, const char *name,
                             const struct ward_config_entry *map, void *instance,
                             struct ward_error *err)
{
    lua_State *L = cfg->L;
    int top = lua_gettop(L);
    int type = ward_config_section(cfg, name);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L); /* absent: every default */
    }
    int rc = type == LUA_TTABLE || type == LUA_TNIL
                 ? fill_table(L, lua_gettop(L), name, 0, NULL, map, instance, err)
                 : ward_error_set(err, -EINVAL, "%s must be a table of settings", name);
    lua_settop(L, top);
    return rc;
}

void ward_config_free_instance(const struct ward_config_entry *map, void *instance)
{
    for (const struct ward_config_entry *e = map; e != NULL && e->key != NULL; e++) {
        if (e->type == WARD_CONFIG_STRING || e->type == WARD_CONFIG_SECRET) {
            char **field = (char **)((char *)instance + e->offset);
            free(*field);
            *field = NULL;
        }
    }
}

void ward_config_describe(const struct ward_config_entry *map, struct ward_buf *out)
{
    ward_buf_puts(out, "| setting | type | default | description |\n|---|---|---|---|\n");
    for (const struct ward_config_entry *e = map; e != NULL && e->key != NULL; e++) {
        ward_buf_printf(out, "| `%s` | %s | %s | %s%s |\n", e->key, type_names[e->type],
                        e->type == WARD_CONFIG_SECRET
                            ? "—"
                            : (e->default_value != NULL ? e->default_value : "—"),
                        e->description != NULL ? e->description : "",
                        e->required ? " (required)" : "");
    }
}
