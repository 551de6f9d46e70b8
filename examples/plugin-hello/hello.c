/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The smallest useful ward plugin: it says hello at init and counts ticks
 * of a timer on wardd's loop. Build it out of tree with the Makefile beside
 * it; it needs nothing of ward's but the installed SDK.
 */
#include <ward/plugin.h>

struct hello {
    char *greeting; /* filled from the config map; freed by the core */
    double every;
    ev_timer tick;
    struct ward_plugin_ctx *ctx;
    struct ward_metric *ticks;
};

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hello *h = w->data;
    ward_metric_add(h->ticks, NULL, 1);
    ward_plugin_log(h->ctx, WARD_LOG_DEBUG, "tick");
}

static int hello_init(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err)
{
    struct hello *h = instance;
    if (h->every <= 0) {
        return ward_error_set(err, -22, "every must be longer than 0s");
    }
    h->ctx = ctx;
    h->ticks = ward_metrics_counter(ward_plugin_metrics(ctx), "ward_hello_ticks_total",
                                    "Timer ticks seen by the hello plugin.", NULL);
    ward_plugin_log(ctx, WARD_LOG_INFO, "hello, %s", h->greeting);
    return 0;
}

static int hello_start(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err)
{
    struct hello *h = instance;
    ev_timer_init(&h->tick, on_tick, h->every, h->every);
    h->tick.data = h;
    ev_timer_start(ward_plugin_loop(ctx), &h->tick);
    return 0;
}

static void hello_stop(struct ward_plugin_ctx *ctx, void *instance)
{
    struct hello *h = instance;
    ev_timer_stop(ward_plugin_loop(ctx), &h->tick);
}

static const struct ward_config_entry hello_config[] = {
    {WARD_CONFIG_STRING, "greeting", "world", offsetof(struct hello, greeting),
     "who to greet in the log at start"},
    {WARD_CONFIG_DURATION, "every", "10s", offsetof(struct hello, every),
     "how often the tick counter advances"},
    {0},
};

WARD_PLUGIN_EXPORT const struct ward_plugin hello_plugin = {
    .abi = WARD_PLUGIN_ABI,
    .name = "hello",
    .version = "1.0.0",
    .description = "example out-of-tree plugin",
    .config_map = hello_config,
    .instance_size = sizeof(struct hello),
    .init = hello_init,
    .start = hello_start,
    .stop = hello_stop,
};
