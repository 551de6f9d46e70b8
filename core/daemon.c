/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "util.h"

struct hook {
    struct hook *next;
    ward_reload_fn reload;
    ward_stop_fn stop;
    void *arg;
};

struct ward_daemon {
    struct ev_loop *loop;
    struct ward_config *cfg; /* owned; replaced on reload */
    struct ward_metrics *metrics; /* owned */
    struct ward_plugins *plugins; /* owned */
    struct hook *reload_hooks;    /* owned */
    struct hook *stop_hooks;      /* owned, most recent first */
    ev_signal sigterm, sigint, sighup;
    ev_timer grace;   /* bounds how long shutdown waits for in-flight work */
    ev_idle drained;  /* ends the loop once holds reach zero */
    bool stopping;
    struct ward_metric *reloads;
};

static void finish(struct ward_daemon *d, const char *how)
{
    ev_timer_stop(d->loop, &d->grace);
    ev_idle_stop(d->loop, &d->drained);
    ev_signal_stop(d->loop, &d->sigterm);
    ev_signal_stop(d->loop, &d->sigint);
    ev_signal_stop(d->loop, &d->sighup);
    ward_log(WARD_LOG_INFO, "core", "shutdown: %s", how);
    ev_break(d->loop, EVBREAK_ALL);
}

static void on_drained(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct ward_daemon *d = ward_container_of(w, struct ward_daemon, drained);
    if (ward_plugins_holds(d->plugins) == 0) {
        finish(d, "in-flight work finished");
    } else {
        /* an active idle watcher never lets the loop block: on_idle_holds starts it again
           when the last hold goes */
        ev_idle_stop(loop, w);
    }
}

static void on_idle_holds(void *arg)
{
    struct ward_daemon *d = arg;
    if (d->stopping) {
        ev_idle_start(d->loop, &d->drained);
    }
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_daemon *d = ward_container_of(w, struct ward_daemon, grace);
    ward_log(WARD_LOG_WARN, "core", "shutdown: %u operation(s) still in flight after %.1fs, "
             "abandoning them", ward_plugins_holds(d->plugins), d->cfg->shutdown_grace);
    finish(d, "grace period over");
}

void ward_daemon_shutdown(struct ward_daemon *d, const char *why)
{
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    ward_log(WARD_LOG_INFO, "core", "shutdown requested (%s): no new work is taken", why);
    for (struct hook *h = d->stop_hooks; h != NULL; h = h->next) {
        h->stop(d, h->arg);
    }
    ward_plugins_stop(d->plugins);
    ev_timer_set(&d->grace, d->cfg->shutdown_grace, 0);
    ev_timer_start(d->loop, &d->grace);
    ev_idle_start(d->loop, &d->drained);
}

int ward_daemon_reload(struct ward_daemon *d, struct ward_error *err)
{
    struct ward_error local = {0};
    struct ward_config *next = ward_config_load(d->cfg->path, &local);
    int rc = next != NULL ? 0 : local.code;
    for (struct hook *h = d->reload_hooks; rc == 0 && h != NULL; h = h->next) {
        rc = h->reload(d, next, h->arg, &local);
    }
    const char *outcome = rc == 0 ? "success" : "failure";
    ward_metric_add(d->reloads, (const char *[]){outcome}, 1);
    if (rc != 0) {
        ward_config_destroy(next);
        ward_log_fields(WARD_LOG_ERROR, "core", &(struct ward_log_field){"reason", local.text}, 1,
                        "reload refused; the running configuration and policies stay in force");
        if (err != NULL) {
            *err = local;
        }
        return rc;
    }
    ward_log_set_level(next->log_level);
    /* Plugin sets cannot change under a running loop: say so rather than pretend. */
    bool same_plugins = next->nplugins == d->cfg->nplugins;
    for (size_t i = 0; same_plugins && i < next->nplugins; i++) {
        same_plugins = strcmp(next->plugins[i].name, d->cfg->plugins[i].name) == 0;
    }
    if (!same_plugins) {
        ward_log(WARD_LOG_WARN, "core", "reload: the plugin list changed; restart wardd to load "
                 "or unload plugins");
    }
    /* Plugins keep pointers into their own instances only, so the old state can go. */
    struct ward_config *old = d->cfg;
    d->cfg = next;
    ward_config_destroy(old);
    ward_log(WARD_LOG_INFO, "core", "configuration reloaded from %s", d->cfg->path);
    return 0;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct ward_daemon *d = w->data;
    if (w->signum == SIGHUP) {
        ward_log(WARD_LOG_INFO, "core", "SIGHUP: reloading configuration and policies");
        ward_daemon_reload(d, NULL);
        return;
    }
    ward_daemon_shutdown(d, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

struct ward_daemon *ward_daemon_create(struct ev_loop *loop, struct ward_config *cfg,
                                       struct ward_error *err)
{
    struct ward_daemon *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        ward_config_destroy(cfg);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    d->loop = loop;
    d->cfg = cfg;
    d->metrics = ward_metrics_create();
    d->plugins = ward_plugins_create(loop, d->metrics);
    if (d->metrics == NULL || d->plugins == NULL) {
        ward_daemon_destroy(d);
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    ward_plugins_on_idle(d->plugins, on_idle_holds, d);
    d->reloads = ward_metrics_counter(d->metrics, "ward_policy_reloads_total",
                                      "Configuration and policy reloads by outcome.",
                                      (const char *[]){"outcome", NULL});
    struct ward_metric *info =
        ward_metrics_gauge(d->metrics, "ward_build_info", "Build information; always 1.",
                           (const char *[]){"version", "plugin_abi", NULL});
    char abi[16];
    snprintf(abi, sizeof(abi), "%u", (unsigned)WARD_PLUGIN_ABI);
    ward_metric_set(info, (const char *[]){PACKAGE_VERSION, abi}, 1);

    ev_signal_init(&d->sigterm, on_signal, SIGTERM);
    ev_signal_init(&d->sigint, on_signal, SIGINT);
    ev_signal_init(&d->sighup, on_signal, SIGHUP);
    d->sigterm.data = d->sigint.data = d->sighup.data = d;
    ev_signal_start(loop, &d->sigterm);
    ev_signal_start(loop, &d->sigint);
    ev_signal_start(loop, &d->sighup);
    ev_init(&d->grace, on_grace);
    ev_idle_init(&d->drained, on_drained);
    return d;
}

int ward_daemon_start(struct ward_daemon *d, struct ward_error *err)
{
    int rc = ward_plugins_load_all(d->plugins, d->cfg, err);
    if (rc == 0) {
        rc = ward_plugins_start(d->plugins, err);
    }
    return rc;
}

int ward_daemon_run(struct ward_daemon *d)
{
    ward_log(WARD_LOG_INFO, "core", "wardd %s running with %zu plugin(s)", PACKAGE_VERSION,
             ward_plugins_count(d->plugins));
    double now = ward_wall_clock();
    if (!ward_clock_plausible(now)) {
        /* waits count on the monotonic clock and are not affected; what is not: */
        ward_log(WARD_LOG_WARN, "core",
                 "the wall clock is not set (it reads %.0f s after 1970): BMC certificates will "
                 "not verify and recorded times are wrong until it is (NTP, or an RTC)",
                 now);
    }
    ev_run(d->loop, 0);
    return 0;
}

static int add_hook(struct hook **list, ward_reload_fn reload, ward_stop_fn stop, void *arg,
                    bool append)
{
    struct hook *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    h->reload = reload;
    h->stop = stop;
    h->arg = arg;
    if (!append) {
        h->next = *list;
        *list = h;
        return 0;
    }
    while (*list != NULL) {
        list = &(*list)->next;
    }
    *list = h;
    return 0;
}

int ward_daemon_on_reload(struct ward_daemon *d, ward_reload_fn fn, void *arg)
{
    return add_hook(&d->reload_hooks, fn, NULL, arg, true);
}

int ward_daemon_on_stop(struct ward_daemon *d, ward_stop_fn fn, void *arg)
{
    return add_hook(&d->stop_hooks, NULL, fn, arg, false);
}

static void free_hooks(struct hook *h)
{
    while (h != NULL) {
        struct hook *next = h->next;
        free(h);
        h = next;
    }
}

void ward_daemon_destroy(struct ward_daemon *d)
{
    if (d == NULL) {
        return;
    }
    ev_signal_stop(d->loop, &d->sigterm);
    ev_signal_stop(d->loop, &d->sigint);
    ev_signal_stop(d->loop, &d->sighup);
    ev_timer_stop(d->loop, &d->grace);
    ev_idle_stop(d->loop, &d->drained);
    ward_plugins_destroy(d->plugins);
    ward_metrics_destroy(d->metrics);
    free_hooks(d->reload_hooks);
    free_hooks(d->stop_hooks);
    ward_config_destroy(d->cfg);
    free(d);
}

struct ev_loop *ward_daemon_loop(const struct ward_daemon *d)
{
    return d->loop;
}

const struct ward_config *ward_daemon_config(const struct ward_daemon *d)
{
    return d->cfg;
}

struct ward_metrics *ward_daemon_metrics(const struct ward_daemon *d)
{
    return d->metrics;
}

struct ward_plugins *ward_daemon_plugins(const struct ward_daemon *d)
{
    return d->plugins;
}

bool ward_daemon_stopping(const struct ward_daemon *d)
{
    return d->stopping;
}
