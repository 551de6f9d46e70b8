/* SPDX-License-Identifier: Apache-2.0 */
/* The operator surface wired into a daemon from its configuration, with token rotation on reload.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "api.h"
#include "client.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "tap/basic.h"

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("write %s", path);
    }
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    plan(12);
    ward_log_set_level(WARD_LOG_ERROR);
    const char *dir = test_tmpdir();
    char conf[512], token[512], db[512], text[2048];
    snprintf(conf, sizeof(conf), "%s/wardd.conf.lua", dir);
    snprintf(token, sizeof(token), "%s/token", dir);
    snprintf(db, sizeof(db), "%s/state.db", dir);
    put(token, "first-token-0123456789abc\n");
    snprintf(text, sizeof(text),
             "log_level = \"error\"\nhttp = { listen = \"127.0.0.1:0\", token_file = \"%s\" }\n",
             token);
    put(conf, text);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load(conf, &err);
    struct ward_daemon *d = cfg != NULL ? ward_daemon_create(loop, cfg, &err) : NULL;
    if (d == NULL) {
        bail("daemon: %s", err.text);
    }
    struct ward_store *store = ward_store_open(
        loop, &(struct ward_store_options){.path = db, .metrics = ward_daemon_metrics(d)}, &err);
    struct ward_operator *op = ward_operator_start(d, store, NULL, &err);
    ok(op != NULL, "the operator surface starts from the daemon's configuration (%s)",
       op == NULL ? err.text : "ok");
    if (op == NULL) {
        bail("cannot continue");
    }
    char base[64], url[128];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(ward_operator_http(op)));
    struct http_reply r;
    snprintf(url, sizeof(url), "%s/readyz", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    is_int(200, r.status, "ready once the store is open");
    contains(r.body.data, "\"store\":{\"ok\":true}", "the store check is registered");
    http_reply_free(&r);
    snprintf(url, sizeof(url), "%s/metrics", base);
    http_request(loop, "GET", url, NULL, NULL, &r);
    contains(r.body.data, "ward_build_info{", "the daemon's metrics are served");
    http_reply_free(&r);

    snprintf(url, sizeof(url), "%s/api/v1/hosts", base);
    http_request(loop, "POST", url, "{\"name\":\"h1\"}",
                 (const char *[]){"Authorization: Bearer first-token-0123456789abc", NULL}, &r);
    is_int(201, r.status, "the configured token is accepted");
    http_reply_free(&r);
    ok(ward_events_count(ward_operator_events(op)) == 1, "the API records events in the set");

    put(token, "second-token-0123456789abc\n");
    ok(ward_daemon_reload(d, &err) == 0, "the daemon reloads");
    http_request(loop, "POST", url, "{\"name\":\"h2\"}",
                 (const char *[]){"Authorization: Bearer first-token-0123456789abc", NULL}, &r);
    is_int(401, r.status, "the old token stops working after the reload");
    http_reply_free(&r);
    http_request(loop, "POST", url, "{\"name\":\"h2\"}",
                 (const char *[]){"Authorization: Bearer second-token-0123456789abc", NULL}, &r);
    is_int(201, r.status, "the rotated token works");
    http_reply_free(&r);
    snprintf(url, sizeof(url), "%s/api/v1/policy/reload", base);
    http_request(loop, "POST", url, NULL,
                 (const char *[]){"Authorization: Bearer second-token-0123456789abc", NULL}, &r);
    is_int(503, r.status, "routes without a hook answer 503");
    http_reply_free(&r);

    /* a bad http section stops the start with a message */
    put(conf, "http = { listen = \"10.1.2.3:9580\" }\n");
    struct ward_config *bad = ward_config_load(conf, &err);
    struct ward_daemon *d2 = bad != NULL ? ward_daemon_create(loop, bad, &err) : NULL;
    ok(d2 != NULL && ward_operator_start(d2, store, NULL, &err) == NULL,
       "a public listener without TLS stops the start");
    contains(err.text, "not a loopback address", "with the reason");
    ward_daemon_destroy(d2);

    ward_operator_stop(op);
    ward_store_close(store);
    ward_daemon_destroy(d);
    ev_loop_destroy(loop);
    return 0;
}
