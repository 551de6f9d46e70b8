/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `labels` in a configuration's host declaration are the store's labels, the ones
 * `GET /api/v1/hosts?label=k=v` filters on: wardd (a real process) starts with three
 * inventory hosts, the API filters them by rack; after the labels are edited in the
 * configuration and wardd restarts, the filter follows. The BMCs are unreachable on
 * purpose: enrollment does not matter here.
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
#include "util.h"

/* racks[i] is host i's rack label, or NULL for a host declared without labels. */
static void write_config(const char *path, const char *const racks[3])
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("open %s", path);
    }
    fprintf(f,
            "state_dir = \"%s/state\"\npolicy_dir = \"%s/policies\"\n"
            "http = { listen = \"127.0.0.1:0\" }\n",
            test_tmpdir(), getenv("WARD_SRCDIR"));
    for (int i = 0; i < 3; i++) {
        fprintf(f, "host \"node-%d\" { bmc = { address = \"https://127.0.0.1:1\" }", i);
        if (racks[i] != NULL) {
            fprintf(f, ", labels = { rack = \"%s\", role = \"worker\" }", racks[i]);
        }
        fprintf(f, " }\n");
    }
    if (fclose(f) != 0) {
        sysbail("write %s", path);
    }
}

/* Names listed by GET /api/v1/hosts?label=..., as "node-0,node-2," (static buffer). */
static const char *listed(int port, const char *selector)
{
    static char names[256];
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/hosts?label=%s", selector);
    struct ward_buf body = {0};
    names[0] = '\0';
    if (local_fetch(port, "GET", path, NULL, NULL, &body) == 200) {
        for (int i = 0; i < 3; i++) {
            char name[32];
            snprintf(name, sizeof(name), "\"node-%d\"", i);
            if (body.data != NULL && strstr(body.data, name) != NULL) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof(names) - len, "node-%d,", i);
            }
        }
    } else {
        snprintf(names, sizeof(names), "(error)");
    }
    ward_buf_free(&body);
    return names;
}

int main(void)
{
    if (getenv("WARD_BUILDDIR") == NULL || getenv("WARD_SRCDIR") == NULL) {
        bail("run through make check");
    }
    plan(9);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char conf[700], wardd[600];
    snprintf(conf, sizeof(conf), "%s/wardd.conf.lua", test_tmpdir());
    snprintf(wardd, sizeof(wardd), "%s/wardd", getenv("WARD_BUILDDIR"));
    write_config(conf, (const char *const[]){"r1", "r2", "r1"});
    char *argv[] = {wardd, "--foreground", "--config", conf, NULL};

    struct child c;
    child_spawn(&c, argv);
    ok(child_wait_for(&c, "running with", 30), "wardd starts with three inventory hosts");
    int port = wardd_port(&c);
    is_string("node-0,node-2,", listed(port, "rack=r1"), "rack=r1 selects the hosts in r1");
    is_string("node-1,", listed(port, "rack=r2"), "rack=r2 the one in r2");
    is_string("node-0,node-1,node-2,", listed(port, "role=worker"), "every label is kept");
    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "SIGTERM: wardd exits 0");
    child_free(&c);

    /* node-1 moves to r1; node-2 loses its declaration's labels (the store keeps them) */
    write_config(conf, (const char *const[]){"r1", "r1", NULL});
    child_spawn(&c, argv);
    ok(child_wait_for(&c, "running with", 30), "wardd starts again with edited labels");
    port = wardd_port(&c);
    is_string("node-0,node-1,node-2,", listed(port, "rack=r1"),
              "the edited label is in force after the restart");
    is_string("", listed(port, "rack=r2"), "and the old one is gone");
    kill(c.pid, SIGTERM);
    is_int(0, child_wait_exit(&c, 30), "and exits 0 again");
    child_free(&c);
    curl_global_cleanup();
    return 0;
}
