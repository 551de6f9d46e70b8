/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file ward/plugin.h
 * @brief The ward plugin SDK: the one header a plugin includes.
 *
 * A plugin is a shared object that exports exactly one symbol, a
 * `const struct ward_plugin` named `<name>_plugin`. wardd opens it with
 * `dlopen(RTLD_NOW | RTLD_LOCAL)`, checks @ref WARD_PLUGIN_ABI, allocates
 * `instance_size` bytes, fills them from the plugin's settings in the
 * configuration through `config_map`, and then calls `init`, `start`,
 * `stop` and `destroy` in that order. The functions declared here are
 * exported by wardd itself; a plugin links against nothing of ward's.
 */
#ifndef WARD_PLUGIN_H
#define WARD_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include <ward/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief The plugin ABI stamp, the date of the last incompatible change.
 *
 * wardd refuses a plugin whose descriptor carries another value.
 */
#define WARD_PLUGIN_ABI 20261123u

/** @brief Mark the single exported descriptor of a plugin. */
#define WARD_PLUGIN_EXPORT __attribute__((visibility("default")))

/** @brief Log levels, lowest first. */
enum ward_log_level {
    WARD_LOG_DEBUG = 0,
    WARD_LOG_INFO,
    WARD_LOG_WARN,
    WARD_LOG_ERROR,
};

/** @brief One structured context field of a log line. */
struct ward_log_field {
    const char *key;   /**< JSON key; a key named like a secret is redacted */
    const char *value; /**< value, escaped on output; NULL is written as null */
};

/**
 * @brief Write one JSON log line.
 * @param level     severity; lines below the configured level are dropped
 * @param component the part of ward speaking ("core", "store", a plugin name)
 * @param fmt       printf format of the message
 */
void ward_log(enum ward_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * @brief Write one JSON log line with context fields.
 * @param fields   array of @p nfields key/value pairs (resource, from, to, reason, ...)
 */
void ward_log_fields(enum ward_log_level level, const char *component,
                     const struct ward_log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/**
 * @brief Declare a secret value that must never appear in a log line.
 *
 * Every later log line has each occurrence of @p value replaced by
 * "[REDACTED]", wherever it appears (message or field). Values of
 * @ref WARD_CONFIG_SECRET settings are registered automatically.
 * The string is copied. Values shorter than 4 bytes are ignored.
 */
void ward_log_add_secret(const char *value);

/** @brief A human-readable reason that travels with an error code. */
struct ward_error {
    int code;       /**< negative errno, 0 for none */
    char text[512]; /**< what went wrong, for a person */
};

/**
 * @brief Fill @p err (which may be NULL) and return @p code (a negative errno).
 */
int ward_error_set(struct ward_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief Types a plugin setting can have. */
enum ward_config_type {
    WARD_CONFIG_STRING,   /**< char *, owned by the core, freed after destroy */
    WARD_CONFIG_SECRET,   /**< char *, like STRING but redacted from every log line */
    WARD_CONFIG_INT,      /**< long long */
    WARD_CONFIG_BOOL,     /**< bool */
    WARD_CONFIG_DURATION, /**< double, seconds; written "250ms", "30s", "15m", "1h30m" */
};

/** @brief One entry of a plugin's config map; the map ends with a zeroed entry. */
struct ward_config_entry {
    enum ward_config_type type;
    const char *key;           /**< setting name in the plugin's config table */
    const char *default_value; /**< as it would be written in the config; NULL: none */
    size_t offset;             /**< offsetof(instance struct, field) */
    const char *description;   /**< one line for the generated documentation */
    bool required;             /**< missing in the config is a startup error */
};

/** @brief The context the core hands to a plugin; opaque. */
struct ward_plugin_ctx;

/** @brief Kinds of capability a plugin can register. */
enum ward_capability {
    WARD_CAP_BMC_DRIVER = 1,  /**< drives BMCs (Redfish) */
    WARD_CAP_RESOURCE_SOURCE, /**< supplies resources (Kubernetes, Git) */
    WARD_CAP_EXPORTER,        /**< exports state (metrics) */
};

/** @brief The event loop every plugin shares with the core. */
struct ev_loop *ward_plugin_loop(const struct ward_plugin_ctx *ctx);

/** @brief The metrics registry the core exposes on /metrics. */
struct ward_metrics *ward_plugin_metrics(const struct ward_plugin_ctx *ctx);

/** @brief The plugin's instance name, as used in its log lines. */
const char *ward_plugin_name(const struct ward_plugin_ctx *ctx);

/**
 * @brief Log with the plugin's instance name as the component and a `plugin` field.
 */
void ward_plugin_log(const struct ward_plugin_ctx *ctx, enum ward_log_level level,
                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * @brief Register a capability under @p name.
 * @param ops     capability-specific table; owned by the core from here on
 * @param free_fn releases @p ops when the plugin is unloaded; may be NULL
 * @return 0, or -EEXIST when the name is taken for that kind
 */
int ward_plugin_register(struct ward_plugin_ctx *ctx, enum ward_capability kind, const char *name,
                         void *ops, void (*free_fn)(void *ops));

/**
 * @brief Hold shutdown while an operation is in flight.
 *
 * On SIGTERM the core stops plugins and keeps the loop running until every
 * hold is released or the shutdown grace period ends. Pair each hold with
 * ward_plugin_release().
 */
void ward_plugin_hold(struct ward_plugin_ctx *ctx);
void ward_plugin_release(struct ward_plugin_ctx *ctx);

/**
 * @brief Parse a duration such as "250ms", "30s", "15m", "2h", "1h30m" or "1.5s".
 * @return 0 and the seconds in @p out, or -EINVAL
 */
int ward_duration_parse(const char *text, double *out);

/** @brief The descriptor a plugin exports as `<name>_plugin`. */
struct ward_plugin {
    uint32_t abi;            /**< must be WARD_PLUGIN_ABI */
    const char *name;        /**< short name: "redfish" for ward-redfish.so */
    const char *version;     /**< the plugin's own version */
    const char *description; /**< one line */
    const struct ward_config_entry *config_map; /**< settings; may be NULL */
    size_t instance_size; /**< bytes the core allocates, zeroed, for the instance */

    /** Check settings and acquire resources; no I/O on the loop yet. */
    int (*init)(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err);
    /** Start watchers on the loop. May be NULL. */
    int (*start)(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err);
    /** Stop taking new work; in-flight work may finish under a hold. May be NULL. */
    void (*stop)(struct ward_plugin_ctx *ctx, void *instance);
    /** Release everything init acquired. May be NULL. */
    void (*destroy)(struct ward_plugin_ctx *ctx, void *instance);
};

#ifdef __cplusplus
}
#endif

#endif /* WARD_PLUGIN_H */
