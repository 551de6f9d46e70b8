/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ward-redfish.so: drives BMCs over Redfish. Registers the "redfish" BMC driver that
 * policies reach with ward.bmc(host). Everything runs on the core's loop.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/async.h>
#include <ward/plugin.h>

#include "bmc.h"
#include "driver.h"

struct redfish {
    /* settings, filled by the core from the config map */
    double connect_timeout;
    double timeout;
    long long concurrency;
    double cooldown;
    long long max_ops;
    long long max_reads;
    long long retries;
    double backoff;
    double backoff_max;
    long long breaker_threshold;
    double breaker_open;
    double slow_answer;
    long long rate_max;
    double poll_interval;
    double power_timeout;
    double task_timeout;
    double session_backoff;
    double power_sync_interval;
    char *credentials_dir;
    char *quirks_path;
    /* runtime, owned */
    struct ward_rf_quirks *quirks;
    struct ward_plugin_ctx *ctx;
    struct ward_rf_client *client;
    struct ward_rf_driver *driver;
};

static const struct ward_config_entry redfish_config[] = {
    {WARD_CONFIG_DURATION, "connect_timeout", "10s", offsetof(struct redfish, connect_timeout),
     "time allowed to open a connection to a BMC"},
    {WARD_CONFIG_DURATION, "timeout", "60s", offsetof(struct redfish, timeout),
     "time allowed for one whole request"},
    {WARD_CONFIG_INT, "concurrency", "1", offsetof(struct redfish, concurrency),
     "operations (and so requests) in flight per BMC"},
    {WARD_CONFIG_DURATION, "bmcCooldownPeriod", "0s", offsetof(struct redfish, cooldown),
     "pause between the end of one operation and the start of the next on the same BMC"},
    {WARD_CONFIG_INT, "maxConcurrentOps", "20", offsetof(struct redfish, max_ops),
     "provisioning operations (power, boot override, virtual media, manager reset, PATCH, "
     "POST) in flight over all BMCs (1-20)"},
    {WARD_CONFIG_INT, "maxConcurrentReads", "64", offsetof(struct redfish, max_reads),
     "reading operations (connect and login, inventory, power state and its periodic sync, "
     "GET, logout) in flight over all BMCs (1-1024)"},
    {WARD_CONFIG_INT, "retries", "3", offsetof(struct redfish, retries),
     "extra attempts of an idempotent request (GET, PATCH, DELETE) after a transient failure"},
    {WARD_CONFIG_DURATION, "backoff", "1s", offsetof(struct redfish, backoff),
     "first retry delay, doubled per attempt, with jitter"},
    {WARD_CONFIG_DURATION, "backoff_max", "30s", offsetof(struct redfish, backoff_max),
     "largest retry delay"},
    {WARD_CONFIG_INT, "breaker_threshold", "5", offsetof(struct redfish, breaker_threshold),
     "consecutive failed answers that open a BMC's circuit breaker"},
    {WARD_CONFIG_DURATION, "breaker_open", "60s", offsetof(struct redfish, breaker_open),
     "how long an open breaker refuses work before one trial"},
    {WARD_CONFIG_DURATION, "slow_answer", "5s", offsetof(struct redfish, slow_answer),
     "an answer slower than this halves the BMC's request rate"},
    {WARD_CONFIG_INT, "rate_max", "50", offsetof(struct redfish, rate_max),
     "requests per second per BMC the adaptive rate may rise to"},
    {WARD_CONFIG_DURATION, "poll_interval", "2s", offsetof(struct redfish, poll_interval),
     "interval of PowerState and task monitor polling"},
    {WARD_CONFIG_DURATION, "power_timeout", "5m", offsetof(struct redfish, power_timeout),
     "how long to wait for PowerState to reflect a Reset"},
    {WARD_CONFIG_DURATION, "task_timeout", "10m", offsetof(struct redfish, task_timeout),
     "how long to poll a task monitor"},
    {WARD_CONFIG_DURATION, "session_backoff", "30s", offsetof(struct redfish, session_backoff),
     "first pause after a BMC reports no free sessions (doubled each time)"},
    {WARD_CONFIG_DURATION, "power_sync_interval", "120s",
     offsetof(struct redfish, power_sync_interval),
     "period of the jittered power-state read of every enrolled host; 0 disables it"},
    {WARD_CONFIG_STRING, "credentials_dir", NULL, offsetof(struct redfish, credentials_dir),
     "directory of named credentials sets: <dir>/<set>/username and <dir>/<set>/password"},
    {WARD_CONFIG_STRING, "quirks", WARD_REDFISH_QUIRKS, offsetof(struct redfish, quirks_path),
     "Lua file of vendor quirk hooks; \"\" runs without (a missing default file is a warning)"},
    {0},
};

static int redfish_init(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err)
{
    struct redfish *rf = instance;
    rf->ctx = ctx;
    if (rf->max_ops < 1 || rf->max_ops > 20) {
        return ward_error_set(err, -EINVAL, "maxConcurrentOps must be between 1 and 20, not %lld",
                              rf->max_ops);
    }
    if (rf->max_reads < 1 || rf->max_reads > 1024) {
        return ward_error_set(
            err, -EINVAL, "maxConcurrentReads must be between 1 and 1024, not %lld", rf->max_reads);
    }
    if (rf->concurrency < 1 || rf->concurrency > 64) {
        return ward_error_set(err, -EINVAL, "concurrency must be between 1 and 64, not %lld",
                              rf->concurrency);
    }
    if (rf->retries < 0 || rf->retries > 20 || rf->breaker_threshold < 1 || rf->rate_max < 1) {
        return ward_error_set(err, -EINVAL,
                              "retries must be 0-20, breaker_threshold and rate_max at least 1");
    }
    if (rf->timeout <= 0 || rf->connect_timeout <= 0 || rf->poll_interval <= 0) {
        return ward_error_set(err, -EINVAL, "timeouts and poll_interval must be positive");
    }
    const char *fallback = WARD_REDFISH_QUIRKS;
    if (rf->quirks_path != NULL && rf->quirks_path[0] != '\0') {
        if (strcmp(rf->quirks_path, fallback) == 0 && access(fallback, R_OK) != 0) {
            ward_plugin_log(ctx, WARD_LOG_WARN, "no vendor quirk hooks: %s is not installed",
                            fallback);
        } else {
            rf->quirks = ward_rf_quirks_load(rf->quirks_path, err);
            if (rf->quirks == NULL) {
                return err != NULL && err->code != 0 ? err->code : -EINVAL;
            }
            ward_plugin_log(ctx, WARD_LOG_INFO, "%u vendor quirk hooks from %s",
                            ward_rf_quirks_count(rf->quirks), rf->quirks_path);
        }
    }
    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.quirks = rf->quirks;
    o.connect_timeout = rf->connect_timeout;
    o.timeout = rf->timeout;
    o.concurrency = (unsigned)rf->concurrency;
    o.cooldown = rf->cooldown;
    o.max_ops = (unsigned)rf->max_ops;
    o.max_reads = (unsigned)rf->max_reads;
    o.retries = (unsigned)rf->retries;
    o.backoff = rf->backoff;
    o.backoff_max = rf->backoff_max;
    o.breaker_threshold = (unsigned)rf->breaker_threshold;
    o.breaker_open = rf->breaker_open;
    o.slow_answer = rf->slow_answer;
    o.rate_max = (double)rf->rate_max;
    o.rate_min = o.rate_min < o.rate_max ? o.rate_min : o.rate_max;
    o.poll_interval = rf->poll_interval;
    o.power_timeout = rf->power_timeout;
    o.task_timeout = rf->task_timeout;
    o.session_backoff = rf->session_backoff;
    o.metrics = ward_plugin_metrics(ctx);
    rf->client = ward_rf_client_create(ward_plugin_loop(ctx), &o, err);
    if (rf->client == NULL) {
        ward_rf_quirks_free(rf->quirks);
        rf->quirks = NULL;
        return err != NULL && err->code != 0 ? err->code : -EINVAL;
    }
    rf->driver = ward_rf_driver_create(
        rf->client, &(struct ward_rf_driver_opts){.credentials_dir = rf->credentials_dir,
                                                  .power_sync_interval = rf->power_sync_interval});
    if (rf->driver == NULL) {
        ward_rf_client_destroy(rf->client);
        rf->client = NULL;
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    struct ward_bmc_driver *drv = calloc(1, sizeof(*drv));
    int rc = -ENOMEM;
    if (drv != NULL) {
        drv->self = rf->driver;
        drv->open = ward_rf_driver_open;
        drv->forget = ward_rf_driver_forget;
        rc = ward_plugin_register(ctx, WARD_CAP_BMC_DRIVER, "redfish", drv, free);
    }
    if (rc != 0) {
        ward_rf_driver_destroy(rf->driver);
        ward_rf_client_destroy(rf->client);
        rf->driver = NULL;
        rf->client = NULL;
        return ward_error_set(err, rc,
                              rc == -EEXIST ? "a BMC driver named redfish is already registered"
                                            : "out of memory");
    }
    return 0;
}

static int redfish_start(struct ward_plugin_ctx *ctx, void *instance, struct ward_error *err)
{
    struct redfish *rf = instance;
    ward_rf_driver_start_sync(rf->driver, ward_plugin_loop(ctx));
    ward_plugin_log(ctx, WARD_LOG_INFO,
                    "redfish driver ready: maxConcurrentOps=%lld maxConcurrentReads=%lld "
                    "concurrency=%lld cooldown=%.1fs power sync every %.0fs",
                    rf->max_ops, rf->max_reads, rf->concurrency, rf->cooldown,
                    rf->power_sync_interval);
    return 0;
}

static void on_logged_out(void *arg)
{
    ward_plugin_release(arg);
}

static void redfish_stop(struct ward_plugin_ctx *ctx, void *instance)
{
    struct redfish *rf = instance;
    /* end every session while the loop still runs; shutdown waits on the holds */
    unsigned n = ward_rf_driver_logout_all(rf->driver, on_logged_out, ctx);
    for (unsigned i = 0; i < n; i++) {
        ward_plugin_hold(ctx);
    }
}

static void redfish_destroy(struct ward_plugin_ctx *ctx, void *instance)
{
    struct redfish *rf = instance;
    /* hosts first. The loop has stopped: a session stop could not end within the grace
       (a BMC that did not answer) stays on the BMC until the BMC expires it */
    ward_rf_driver_destroy(rf->driver);
    ward_rf_client_destroy(rf->client);
    ward_rf_quirks_free(rf->quirks);
}

WARD_PLUGIN_EXPORT const struct ward_plugin redfish_plugin = {
    .abi = WARD_PLUGIN_ABI,
    .name = "redfish",
    .version = PACKAGE_VERSION,
    .description = "drives bare-metal hosts through their BMCs over Redfish",
    .config_map = redfish_config,
    .instance_size = sizeof(struct redfish),
    .init = redfish_init,
    .start = redfish_start,
    .stop = redfish_stop,
    .destroy = redfish_destroy,
};
