/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ward's main job end to end, as a user runs it: ward-bmcsim serves a fleet of
 * every flavour over HTTPS, wardd (a real process with the Redfish plugin, the
 * shipped PhysicalHost policy and the SQLite store) enrolls it; /readyz and
 * /metrics answer, the exposition passes promtool, no BMC saw more concurrent
 * requests than ward's limit, no password reached the log; after SIGTERM and a
 * restart every host is where it was, without enrolling again.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../bmcsim/simclient.h"
#include "../core/spawn.h"
#include "../tap/basic.h"

#define NBMCS 5

static void write_config(struct sim *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("open %s", path);
    }
    fprintf(f,
            "log_level = \"debug\"\nstate_dir = \"%s/state\"\npolicy_dir = \"%s/policies\"\n"
            "http = { listen = \"127.0.0.1:0\" }\n",
            test_tmpdir(), getenv("WARD_SRCDIR"));
    sim_write_wardd_fleet(f, s, NBMCS);
    if (fclose(f) != 0) {
        sysbail("write %s", path);
    }
}

int main(void)
{
    if (getenv("WARD_BUILDDIR") == NULL || getenv("WARD_SRCDIR") == NULL) {
        bail("run through make check");
    }
    plan(17 + NBMCS);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sim s;
    sim_start(&s, (const char *const[]){"--bmcs", "5", "--flavour", "all", "--power-delay-ms",
                                        "200", NULL});
    char conf[700], wardd[600];
    snprintf(conf, sizeof(conf), "%s/wardd.conf.lua", test_tmpdir());
    snprintf(wardd, sizeof(wardd), "%s/wardd", getenv("WARD_BUILDDIR"));
    write_config(&s, conf);
    char *argv[] = {wardd, "--foreground", "--config", conf, NULL};

    struct child c;
    child_spawn(&c, argv);
    ok(child_wait_for(&c, "running with 1 plugin", 30), "wardd starts with the Redfish plugin");
    int enrolled = 0;
    for (int i = 0; i < NBMCS; i++) {
        enrolled += child_wait_for(&c, "Enrolling -> Available (enrolled)", 60);
    }
    is_int(NBMCS, enrolled, "every host of every flavour is enrolled");
    int port = wardd_port(&c);
    ok(port > 0, "the HTTP port is logged (%d)", port);

    struct ward_buf body = {0};
    is_int(200, local_fetch(port, "GET", "/readyz", NULL, NULL, &body),
           "/readyz: store open, policies loaded, plugins up");
    ward_buf_free(&body);
    is_int(200, local_fetch(port, "GET", "/metrics", NULL, NULL, &body), "/metrics answers");
    char want[64];
    snprintf(want, sizeof(want), "ward_hosts{state=\"Available\"} %d\n", NBMCS);
    contains(body.data, want, "ward_hosts counts the enrolled fleet");
    contains(body.data, "ward_physicalhost_state_transitions_total{from=\"Enrolling\",to=\"Available\"",
             "transitions are counted by from and to");
    char mpath[700];
    snprintf(mpath, sizeof(mpath), "%s/metrics.txt", test_tmpdir());
    FILE *mf = fopen(mpath, "w");
    if (mf == NULL || fputs(body.data, mf) < 0 || fclose(mf) != 0) {
        sysbail("write %s", mpath);
    }
    ward_buf_free(&body);
    char cmd[1600];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s.out' 2>&1", mpath, mpath);
    int prc = system(cmd);
    snprintf(cmd, sizeof(cmd), "%s.out", mpath);
    char *lint = test_slurp(cmd);
    ok(prc == 0 && lint != NULL && lint[0] == '\0',
       "promtool check metrics accepts a live wardd's exposition: %s", lint != NULL ? lint : "");
    free(lint);
    is_int(200, local_fetch(port, "GET", "/api/v1/hosts?state=Available", NULL, NULL, &body),
           "the API lists hosts");
    contains(body.data, "node-05", "including the last host");
    ward_buf_free(&body);

    for (int i = 0; i < NBMCS; i++) {
        double seen = sim_counter(&s, i, "max_concurrent");
        ok(seen >= 1 && seen <= 1, "BMC %d never saw more than 1 concurrent request (%g)", i, seen);
    }
    bool leaked = false;
    for (int i = 0; i < NBMCS; i++) {
        leaked = leaked || strstr(c.out.data, sim_pass(&s, i)) != NULL;
    }
    ok(!leaked, "no BMC password appears in wardd's log (debug level)");

    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "SIGTERM: wardd drains and exits 0");
    child_free(&c);

    /* a restart finds every host where it was */
    child_spawn(&c, argv);
    ok(child_wait_for(&c, "running with 1 plugin", 30), "wardd starts again on the same store");
    port = wardd_port(&c);
    is_int(200, local_fetch(port, "GET", "/metrics", NULL, NULL, &body), "and serves metrics");
    contains(body.data, want, "every host is still Available");
    ward_buf_free(&body);
    lacks(c.out.data, "None -> Enrolling", "no host is enrolled a second time");
    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "and exits 0 again");
    child_free(&c);
    sim_stop(&s);
    curl_global_cleanup();
    return 0;
}
