/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin loader against fixture plugins: good, old ABI, missing symbol, failing init. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "../tap/basic.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "util.h"

static char fixture_path[4096];

static const char *fixture(const char *name)
{
    snprintf(fixture_path, sizeof(fixture_path), "%s/tests/fixtures/.libs/%s.so",
             getenv("WARD_BUILDDIR") != NULL ? getenv("WARD_BUILDDIR") : ".", name);
    return fixture_path;
}

static struct ward_config *config_for(const char *body)
{
    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load_string(body, "plugin-t.conf", &err);
    if (cfg == NULL) {
        bail("fixture configuration does not load: %s", err.text);
    }
    return cfg;
}

/* Load a single plugin declared with the given fixture; return rc and fill err. */
static int load_one(const char *name, bool optional, struct ward_error *err, size_t *loaded)
{
    struct ward_buf body = {0};
    ward_buf_printf(&body, "plugin \"%s\" { path = \"%s\", optional = %s }\n", name,
                    fixture(name), optional ? "true" : "false");
    struct ward_config *cfg = config_for(body.data);
    ward_buf_free(&body);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_plugins *ps = ward_plugins_create(loop, metrics);
    int rc = ward_plugins_load_all(ps, cfg, err);
    *loaded = ward_plugins_count(ps);
    ward_plugins_destroy(ps);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    ward_config_destroy(cfg);
    return rc;
}

int main(void)
{
    plan(21);
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logmem = open_memstream(&logbuf, &loglen);
    ward_log_set_stream(logmem);

    const char *dir = test_tmpdir();
    char trace[4200];
    snprintf(trace, sizeof(trace), "%s/trace", dir);

    /* good plugins: lifecycle order and reverse teardown */
    struct ward_buf body = {0};
    ward_buf_printf(&body,
                    "plugin \"good\" { path = \"%s\", trace = \"%s\", password = \"pw-0xDEADBEEF\" }\n",
                    fixture("good"), trace);
    char second[4096];
    snprintf(second, sizeof(second), "%s", fixture("second"));
    ward_buf_printf(&body, "plugin \"second\" { path = \"%s\", trace = \"%s\", count = 9 }\n",
                    second, trace);
    struct ward_config *cfg = config_for(body.data);
    ward_buf_free(&body);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *metrics = ward_metrics_create();
    struct ward_plugins *ps = ward_plugins_create(loop, metrics);
    struct ward_error err = {0};
    is_int(0, ward_plugins_load_all(ps, cfg, &err), "good plugins load (%s)", err.text);
    is_int(2, (long long)ward_plugins_count(ps), "both are loaded");
    is_int(0, ward_plugins_start(ps, &err), "and start");
    struct ward_metric *inits = ward_metrics_counter(metrics, "ward_fixture_inits_total",
                                                     "Fixture init calls.", NULL);
    is_double(2, ward_metric_value(inits, NULL), 0, "plugins reach the shared metrics registry");
    ward_plugins_destroy(ps);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    ward_config_destroy(cfg);
    char *calls = test_slurp(trace);
    is_string("good init\nsecond init\ngood start\nsecond start\n"
              "second stop\ngood stop\nsecond destroy\ngood destroy\n",
              calls, "init and start in order; stop and destroy in reverse");
    free(calls);
    fflush(logmem);
    contains(logbuf, "\"plugin\":\"good\"", "plugin log lines carry the plugin name");
    contains(logbuf, "hello: hello count=3", "config map defaults reach the plugin");
    contains(logbuf, "count=9", "config map values reach the plugin");
    lacks(logbuf, "pw-0xDEADBEEF", "a plugin logging its secret setting is redacted");

    size_t loaded = 0;
    int rc = load_one("oldabi", false, &err, &loaded);
    is_int(-EPROTO, rc, "an old ABI is refused");
    contains(err.text, fixture("oldabi"), "the refusal names the file");
    contains(err.text, "20200101", "the refusal names the plugin's ABI");
    char want[64];
    snprintf(want, sizeof(want), "%u", (unsigned)WARD_PLUGIN_ABI);
    contains(err.text, want, "the refusal names wardd's ABI");
    contains(err.text, "rebuild the plugin against ward", "the refusal says what to do");
    ok(strchr(err.text, '\n') == NULL, "the refusal is one line");

    rc = load_one("nosymbol", false, &err, &loaded);
    is_int(-ENOEXEC, rc, "a shared object without the descriptor is refused");
    contains(err.text, "no symbol 'nosymbol_plugin'", "the refusal names the missing symbol");

    rc = load_one("failinit", false, &err, &loaded);
    ok(rc < 0, "a failing init fails the load");
    contains(err.text, "cannot reach the widget service", "with the plugin's own reason");

    rc = load_one("failinit", true, &err, &loaded);
    ok(rc == 0 && loaded == 0, "an optional plugin that fails is skipped");

    rc = load_one("does-not-exist", false, &err, &loaded);
    contains(err.text, "cannot load", "a missing file is refused with dlerror's reason");

    ward_log_set_stream(NULL);
    ward_log_clear_secrets();
    fclose(logmem);
    free(logbuf);
    return 0;
}
