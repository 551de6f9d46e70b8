/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"
#include "util.h"

struct capability {
    struct capability *next;
    enum ward_capability kind;
    char *name; /* owned */
    void *ops;  /* owned through free_fn */
    void (*free_fn)(void *ops);
};

struct ward_plugin_ctx {
    struct ward_plugins *owner;
    const struct ward_plugin *desc; /* lives in the shared object */
    void *handle;                   /* dlopen handle, owned */
    void *instance;                 /* owned, desc->instance_size bytes */
    char *name;                     /* owned */
    char *path;                     /* owned */
    bool started;
    unsigned holds;
    struct capability *caps; /* owned */
};

struct ward_plugins {
    struct ev_loop *loop;
    struct ward_metrics *metrics;
    struct ward_plugin_ctx **items; /* owned, load order */
    size_t count;
    unsigned holds;
    void (*on_idle)(void *arg);
    void *on_idle_arg;
};

struct ward_plugins *ward_plugins_create(struct ev_loop *loop, struct ward_metrics *metrics)
{
    struct ward_plugins *ps = calloc(1, sizeof(*ps));
    if (ps != NULL) {
        ps->loop = loop;
        ps->metrics = metrics;
    }
    return ps;
}

struct ev_loop *ward_plugin_loop(const struct ward_plugin_ctx *ctx)
{
    return ctx->owner->loop;
}

struct ward_metrics *ward_plugin_metrics(const struct ward_plugin_ctx *ctx)
{
    return ctx->owner->metrics;
}

const char *ward_plugin_name(const struct ward_plugin_ctx *ctx)
{
    return ctx->name;
}

void ward_plugin_log(const struct ward_plugin_ctx *ctx, enum ward_log_level level,
                     const char *fmt, ...)
{
    struct ward_log_field field = {"plugin", ctx->name};
    va_list ap;
    va_start(ap, fmt);
    ward_log_fieldsv(level, ctx->name, &field, 1, fmt, ap);
    va_end(ap);
}

int ward_plugin_register(struct ward_plugin_ctx *ctx, enum ward_capability kind, const char *name,
                         void *ops, void (*free_fn)(void *ops))
{
    if (ward_plugins_capability(ctx->owner, kind, name) != NULL) {
        if (free_fn != NULL) {
            free_fn(ops);
        }
        return -EEXIST;
    }
    struct capability *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->name = strdup(name)) == NULL) {
        free(c);
        if (free_fn != NULL) {
            free_fn(ops);
        }
        return -ENOMEM;
    }
    c->kind = kind;
    c->ops = ops;
    c->free_fn = free_fn;
    c->next = ctx->caps;
    ctx->caps = c;
    return 0;
}

void *ward_plugins_capability(const struct ward_plugins *ps, enum ward_capability kind,
                              const char *name)
{
    for (size_t i = 0; i < ps->count; i++) {
        for (struct capability *c = ps->items[i]->caps; c != NULL; c = c->next) {
            if (c->kind == kind && strcmp(c->name, name) == 0) {
                return c->ops;
            }
        }
    }
    return NULL;
}

void ward_plugin_hold(struct ward_plugin_ctx *ctx)
{
    ctx->holds++;
    ctx->owner->holds++;
}

void ward_plugin_release(struct ward_plugin_ctx *ctx)
{
    if (ctx->holds == 0) {
        return;
    }
    ctx->holds--;
    if (--ctx->owner->holds == 0 && ctx->owner->on_idle != NULL) {
        ctx->owner->on_idle(ctx->owner->on_idle_arg);
    }
}

unsigned ward_plugins_holds(const struct ward_plugins *ps)
{
    return ps->holds;
}

void ward_plugins_on_idle(struct ward_plugins *ps, void (*cb)(void *arg), void *arg)
{
    ps->on_idle = cb;
    ps->on_idle_arg = arg;
}

size_t ward_plugins_count(const struct ward_plugins *ps)
{
    return ps->count;
}

static void ctx_free(struct ward_plugin_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    while (ctx->caps != NULL) {
        struct capability *c = ctx->caps;
        ctx->caps = c->next;
        if (c->free_fn != NULL) {
            c->free_fn(c->ops);
        }
        free(c->name);
        free(c);
    }
    if (ctx->instance != NULL && ctx->desc != NULL) {
        ward_config_free_instance(ctx->desc->config_map, ctx->instance);
    }
    free(ctx->instance);
    if (ctx->handle != NULL) {
        dlclose(ctx->handle);
    }
    if (ctx->holds > 0) {
        ctx->owner->holds -= ctx->holds;
    }
    free(ctx->name);
    free(ctx->path);
    free(ctx);
}

static int open_plugin(struct ward_plugin_ctx *ctx, const char *plugin_dir, struct ward_error *err)
{
    ctx->handle = dlopen(ctx->path, RTLD_NOW | RTLD_LOCAL);
    if (ctx->handle == NULL) {
        return ward_error_set(err, -ENOENT,
                              "plugin %s: cannot load %s: %s (is it installed in %s and built "
                              "against this ward?)",
                              ctx->name, ctx->path, dlerror(), plugin_dir);
    }
    struct ward_buf sym = {0};
    ward_buf_printf(&sym, "%s_plugin", ctx->name);
    for (char *c = sym.data; *c != '\0'; c++) {
        if (*c == '-') {
            *c = '_';
        }
    }
    dlerror();
    ctx->desc = dlsym(ctx->handle, sym.data);
    if (ctx->desc == NULL) {
        ward_error_set(err, -ENOEXEC,
                       "plugin %s: %s exports no symbol '%s'; it is not a ward plugin or was "
                       "built under another name",
                       ctx->name, ctx->path, sym.data);
        ward_buf_free(&sym);
        return -ENOEXEC;
    }
    ward_buf_free(&sym);
    if (ctx->desc->abi != WARD_PLUGIN_ABI) {
        int rc = ward_error_set(err, -EPROTO,
                                "plugin %s: %s has plugin ABI %u but this wardd expects %u; "
                                "rebuild the plugin against ward %s",
                                ctx->name, ctx->path, (unsigned)ctx->desc->abi,
                                (unsigned)WARD_PLUGIN_ABI, PACKAGE_VERSION);
        ctx->desc = NULL; /* its config map may not even have our shape */
        return rc;
    }
    if (ctx->desc->name == NULL || strcmp(ctx->desc->name, ctx->name) != 0 ||
        ctx->desc->init == NULL) {
        int rc = ward_error_set(err, -EPROTO,
                                "plugin %s: %s has a malformed descriptor (name '%s', init %s)",
                                ctx->name, ctx->path,
                                ctx->desc->name != NULL ? ctx->desc->name : "(none)",
                                ctx->desc->init != NULL ? "set" : "missing");
        ctx->desc = NULL;
        return rc;
    }
    return 0;
}

int ward_plugins_load(struct ward_plugins *ps, const struct ward_config *cfg,
                      const struct ward_config_plugin *p, struct ward_error *err)
{
    struct ward_plugin_ctx *ctx = calloc(1, sizeof(*ctx));
    struct ward_plugin_ctx **grown = realloc(ps->items, (ps->count + 1) * sizeof(*grown));
    if (grown != NULL) {
        ps->items = grown;
    }
    if (ctx == NULL || grown == NULL || (ctx->name = strdup(p->name)) == NULL) {
        free(ctx != NULL ? ctx->name : NULL);
        free(ctx);
        return ward_error_set(err, -ENOMEM, "out of memory loading plugin %s", p->name);
    }
    ctx->owner = ps;
    struct ward_buf path = {0};
    if (p->path != NULL) {
        ward_buf_puts(&path, p->path);
    } else {
        ward_buf_printf(&path, "%s/ward-%s.so", cfg->plugin_dir, p->name);
    }
    ctx->path = ward_buf_steal(&path);

    struct ward_error local = {0};
    int rc = open_plugin(ctx, cfg->plugin_dir, &local);
    if (rc == 0) {
        ctx->instance = calloc(1, ctx->desc->instance_size != 0 ? ctx->desc->instance_size : 1);
        if (ctx->instance == NULL) {
            rc = ward_error_set(&local, -ENOMEM, "plugin %s: out of memory", p->name);
        }
    }
    if (rc == 0) {
        rc = ward_config_fill(cfg, p, ctx->desc->config_map, ctx->instance, &local);
    }
    if (rc == 0) {
        struct ward_error reason = {0};
        rc = ctx->desc->init(ctx, ctx->instance, &reason);
        if (rc != 0) {
            rc = rc < 0 ? rc : -EINVAL;
            ward_error_set(&local, rc, "plugin %s: init failed: %s", p->name,
                           reason.text[0] != '\0' ? reason.text : "(no reason given)");
        }
    }
    if (rc != 0) {
        ctx_free(ctx);
        if (p->optional) {
            ward_log_fields(WARD_LOG_WARN, "plugins", &(struct ward_log_field){"plugin", p->name},
                            1, "optional plugin skipped: %s", local.text);
            return 0;
        }
        if (err != NULL) {
            *err = local;
        }
        return rc;
    }
    ps->items[ps->count++] = ctx;
    ward_log_fields(WARD_LOG_INFO, "plugins", &(struct ward_log_field){"plugin", p->name}, 1,
                    "plugin %s %s loaded from %s", p->name,
                    ctx->desc->version != NULL ? ctx->desc->version : "?", ctx->path);
    return 0;
}

int ward_plugins_load_all(struct ward_plugins *ps, const struct ward_config *cfg,
                          struct ward_error *err)
{
    for (size_t i = 0; i < cfg->nplugins; i++) {
        int rc = ward_plugins_load(ps, cfg, &cfg->plugins[i], err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int ward_plugins_start(struct ward_plugins *ps, struct ward_error *err)
{
    for (size_t i = 0; i < ps->count; i++) {
        struct ward_plugin_ctx *ctx = ps->items[i];
        if (ctx->started) {
            continue;
        }
        if (ctx->desc->start != NULL) {
            struct ward_error reason = {0};
            int rc = ctx->desc->start(ctx, ctx->instance, &reason);
            if (rc != 0) {
                return ward_error_set(err, rc < 0 ? rc : -EINVAL, "plugin %s: start failed: %s",
                                      ctx->name,
                                      reason.text[0] != '\0' ? reason.text : "(no reason given)");
            }
        }
        ctx->started = true;
        ward_log_fields(WARD_LOG_INFO, "plugins", &(struct ward_log_field){"plugin", ctx->name},
                        1, "plugin %s started", ctx->name);
    }
    return 0;
}

void ward_plugins_stop(struct ward_plugins *ps)
{
    for (size_t i = ps->count; i-- > 0;) {
        struct ward_plugin_ctx *ctx = ps->items[i];
        if (ctx->started && ctx->desc->stop != NULL) {
            ctx->desc->stop(ctx, ctx->instance);
        }
        ctx->started = false;
    }
}

void ward_plugins_destroy(struct ward_plugins *ps)
{
    if (ps == NULL) {
        return;
    }
    ward_plugins_stop(ps);
    for (size_t i = ps->count; i-- > 0;) {
        struct ward_plugin_ctx *ctx = ps->items[i];
        if (ctx->desc->destroy != NULL) {
            ctx->desc->destroy(ctx, ctx->instance);
        }
        ward_log_fields(WARD_LOG_DEBUG, "plugins", &(struct ward_log_field){"plugin", ctx->name},
                        1, "plugin %s unloaded", ctx->name);
        ctx_free(ctx);
    }
    free(ps->items);
    free(ps);
}

int ward_plugin_describe(const char *path, const char *name, struct ward_buf *out,
                         struct ward_error *err)
{
    struct ward_plugins owner = {0};
    struct ward_plugin_ctx ctx = {.owner = &owner};
    ctx.name = (char *)name;
    ctx.path = (char *)path;
    int rc = open_plugin(&ctx, "(given path)", err);
    if (rc == 0) {
        ward_buf_printf(out, "## plugin `%s` %s\n\n%s\n\nSettings, in `plugin \"%s\" { ... }`:\n\n",
                        name, ctx.desc->version != NULL ? ctx.desc->version : "",
                        ctx.desc->description != NULL ? ctx.desc->description : "", name);
        ward_config_describe(ctx.desc->config_map, out);
        ward_buf_puts(out, "| `optional` | boolean | false | start without this plugin if it fails "
                           "to initialise |\n| `path` | string | — | load this file instead of "
                           "ward-<name>.so from plugin_dir |\n");
    }
    if (ctx.handle != NULL) {
        dlclose(ctx.handle);
    }
    return rc;
}
