/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus toolchain against a live endpoint: scrape /metrics of a
 * daemon's registry over HTTP and run `promtool check metrics` on it, check
 * and unit-test the example rules, and check that every metric the rules and
 * the Grafana dashboard use is one the running registry exports.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <ev.h>

#include "client.h"
#include "config.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "http/agent.h"
#include "tap/basic.h"

static const char *srcdir(void)
{
    const char *s = getenv("WARD_SRCDIR");
    return s != NULL ? s : WARD_SRCDIR;
}

/* Run a shell command; its combined output goes to out. Returns the exit status. */
static int run(const char *cmd, struct ward_buf *out)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        sysbail("popen %s", cmd);
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        ward_buf_put(out, chunk, n);
    }
    int status = pclose(p);
    if (out->data == NULL) {
        ward_buf_puts(out, "");
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Families in an exposition: "name type\n" lines. */
static char *families(const char *exposition)
{
    struct ward_buf b = {0};
    ward_buf_puts(&b, "\n");
    for (const char *p = exposition; (p = strstr(p, "# TYPE ")) != NULL; p += 7) {
        const char *end = strchr(p, '\n');
        ward_buf_put(&b, p + 7, end != NULL ? (size_t)(end - p - 7) : strlen(p + 7));
        ward_buf_putc(&b, '\n');
    }
    return ward_buf_steal(&b);
}

static bool family_has(const char *fams, const char *name, const char *type)
{
    struct ward_buf needle = {0};
    ward_buf_printf(&needle, "\n%s %s\n", name, type);
    bool found = strstr(fams, needle.data) != NULL;
    ward_buf_free(&needle);
    return found;
}

static bool exported(const char *fams, const char *name)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "untyped"};
    for (size_t i = 0; i < 4; i++) {
        if (family_has(fams, name, types[i])) {
            return true;
        }
    }
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t len = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0) {
            char base[256];
            snprintf(base, sizeof(base), "%.*s", (int)(len - sl), name);
            if (family_has(fams, base, "histogram")) {
                return true;
            }
        }
    }
    return false;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
}

/*
 * Every metric name (ward_*, process_*) in text must be exported; names
 * missing go to `missing`. Returns how many names were seen.
 */
static int check_names(const char *text, const char *fams, struct ward_buf *missing)
{
    int seen = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (p != text && ident_char(p[-1])) {
            continue;
        }
        if (strncmp(p, "ward_", 5) != 0 && strncmp(p, "process_", 8) != 0) {
            continue;
        }
        const char *e = p;
        while (ident_char(*e)) {
            e++;
        }
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(e - p), p);
        seen++;
        if (!exported(fams, name)) {
            ward_buf_printf(missing, " %s", name);
        }
        p = e - 1;
    }
    return seen;
}

static void collect_exprs(const cJSON *node, struct ward_buf *out)
{
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        const cJSON *child;
        cJSON_ArrayForEach(child, node)
        {
            if (cJSON_IsString(child) && child->string != NULL &&
                (strcmp(child->string, "expr") == 0 || strcmp(child->string, "query") == 0 ||
                 strcmp(child->string, "definition") == 0)) {
                ward_buf_puts(out, child->valuestring);
                ward_buf_putc(out, '\n');
            } else {
                collect_exprs(child, out);
            }
        }
    }
}

int main(void)
{
    plan(19);
    if (access("/usr/bin/promtool", X_OK) != 0 && system("command -v promtool >/dev/null") != 0) {
        skip_all("promtool is not installed (Debian package prometheus; tools/deps.sh)");
    }
    ward_log_set_level(WARD_LOG_ERROR);
    struct ev_loop *loop = EV_DEFAULT;
    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load_string("", "empty.lua", &err);
    struct ward_daemon *d = cfg != NULL ? ward_daemon_create(loop, cfg, &err) : NULL;
    if (d == NULL) {
        bail("daemon: %s", err.text);
    }
    struct ward_metrics *reg = ward_daemon_metrics(d);
    struct ward_http_options o = {.listen = "127.0.0.1:0"};
    struct ward_http *h = ward_http_create(loop, reg, &o, &err);
    if (h == NULL) {
        bail("http: %s", err.text);
    }

    /* series with realistic label values, including ones that need escaping */
    ward_metric_add(ward_metrics_counter(reg, "ward_physicalhost_state_transitions_total", "x",
                                         (const char *[]){"from", "to", "reason", NULL}),
                    (const char *[]){"Available", "Claimed", "claim"}, 3);
    ward_metric_observe(ward_metrics_histogram(reg, "ward_physicalhost_state_duration_seconds", "x",
                                               (const char *[]){"state", NULL}, NULL, 0),
                        (const char *[]){"Enrolling"}, 42.5);
    ward_metric_add(ward_metrics_counter(reg, "ward_host_claim_attempts_total", "x",
                                         (const char *[]){"outcome", "conflict_reason", NULL}),
                    (const char *[]){"conflict", "version"}, 2);
    ward_metric_observe(
        ward_metrics_histogram(reg, "ward_host_claim_duration_seconds", "x", NULL, NULL, 0), NULL,
        0.003);
    ward_metric_add(ward_metrics_counter(reg, "ward_bmc_cooldown_waits_total", "x",
                                         (const char *[]){"bmc", NULL}),
                    (const char *[]){"bmc \"7\"\\rack\n2"}, 1);
    ward_metric_set(ward_metrics_gauge(reg, "ward_hosts", "x", (const char *[]){"state", NULL}),
                    (const char *[]){"Available"}, 998);
    ward_metric_set(ward_metrics_gauge(reg, "ward_provisioning_queue_length", "x", NULL), NULL, 7);
    /* a value makes promtool lint the name: _count is fine only on an untyped family */
    ward_metric_set(
        ward_metrics_untyped(reg, "ward_provisioning_queue_processing_count", "x", NULL), NULL, 2);

    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", ward_http_port(h));
    struct http_reply r;
    http_request(loop, "GET", url, NULL, NULL, &r);
    is_int(200, r.status, "scraped /metrics over HTTP");
    char path[512];
    snprintf(path, sizeof(path), "%s/scrape.txt", test_tmpdir());
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("write %s", path);
    }
    fputs(r.body.data, f);
    fclose(f);

    /* promtool lints naming too; every lint is treated as an error */
    struct ward_buf out = {0};
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
    is_int(0, run(cmd, &out), "promtool check metrics passes");
    is_string("", out.data, "promtool check metrics reports nothing");
    ward_buf_free(&out);

    static const char *const issue_metrics[][2] = {
        {"ward_physicalhost_state_transitions_total", "counter"},
        {"ward_physicalhost_stuck_states_total", "counter"},
        {"ward_physicalhost_recovery_attempts_total", "counter"},
        {"ward_physicalhost_state_duration_seconds", "histogram"},
        {"ward_host_claim_attempts_total", "counter"},
        {"ward_host_claim_duration_seconds", "histogram"},
        {"ward_provisioning_queue_length", "gauge"},
        {"ward_provisioning_queue_processing_count", "untyped"},
        {"ward_bmc_cooldown_waits_total", "counter"},
        {"ward_bmc_operation_duration_seconds", "histogram"},
        {"ward_reconcile_duration_seconds", "histogram"},
        {"ward_policy_reloads_total", "counter"},
        {"ward_hosts", "gauge"},
        {"ward_build_info", "gauge"},
        {"process_start_time_seconds", "gauge"},
    };
    char *fams = families(r.body.data);
    struct ward_buf absent = {0};
    ward_buf_puts(&absent, "");
    for (size_t i = 0; i < sizeof(issue_metrics) / sizeof(issue_metrics[0]); i++) {
        char help[256];
        snprintf(help, sizeof(help), "# HELP %s ", issue_metrics[i][0]);
        if (!family_has(fams, issue_metrics[i][0], issue_metrics[i][1]) ||
            strstr(r.body.data, help) == NULL) {
            ward_buf_printf(&absent, " %s", issue_metrics[i][0]);
        }
    }
    is_string("", absent.data, "every metric the issue lists is exported with HELP and TYPE");
    ward_buf_free(&absent);
    http_reply_free(&r);

    /* an agent managing hosts: store, claims, events and API families on top */
    {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/agent", test_tmpdir());
        if (mkdir(dir, 0700) != 0) {
            sysbail("mkdir %s", dir);
        }
        struct test_agent a;
        test_agent_start(&a, loop, dir, "promtool-token-0123456789");
        test_agent_add_hosts(&a, "sim", 40, 4);
        test_agent_set_state(&a, "sim-0003", "Error");
        char claim_url[128], body[64];
        snprintf(claim_url, sizeof(claim_url), "%s/api/v1/claims", a.base);
        for (int i = 0; i < 5; i++) {
            struct http_reply c;
            snprintf(body, sizeof(body), "{\"consumer\":\"c%d\"}", i);
            http_request(loop, "POST", claim_url, body,
                         (const char *[]){"Authorization: Bearer promtool-token-0123456789", NULL},
                         &c);
            http_reply_free(&c);
        }
        snprintf(url, sizeof(url), "%s/metrics", a.base);
        http_request(loop, "GET", url, NULL, NULL, &r);
        contains(r.body.data, "ward_hosts{state=\"Claimed\"} 5",
                 "the agent's scrape has its hosts");
        snprintf(path, sizeof(path), "%s/agent-scrape.txt", test_tmpdir());
        f = fopen(path, "w");
        fputs(r.body.data, f);
        fclose(f);
        http_reply_free(&r);
        out = (struct ward_buf){0};
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
        is_int(0, run(cmd, &out), "promtool check metrics passes on an agent managing hosts");
        is_string("", out.data, "with nothing to report");
        ward_buf_free(&out);
        test_agent_stop(&a);
    }

    /* rules: syntax and unit tests */
    out = (struct ward_buf){0};
    snprintf(cmd, sizeof(cmd), "promtool check rules '%s/examples/prometheus/ward-rules.yml' 2>&1",
             srcdir());
    int rc = run(cmd, &out);
    is_int(0, rc, "promtool check rules passes");
    if (rc != 0) {
        diag("%s", out.data);
    }
    ward_buf_free(&out);
    snprintf(cmd, sizeof(cmd),
             "cd '%s/examples/prometheus' && promtool test rules ward-rules.test.yml 2>&1",
             srcdir());
    rc = run(cmd, &out);
    is_int(0, rc, "promtool test rules passes");
    contains(out.data, "SUCCESS", "the rule unit tests ran");
    if (rc != 0) {
        diag("%s", out.data);
    }
    ward_buf_free(&out);

    /* names used by the rules and the dashboard against the live registry */
    snprintf(path, sizeof(path), "%s/examples/prometheus/ward-rules.yml", srcdir());
    char *rules = test_slurp(path);
    snprintf(path, sizeof(path), "%s/examples/grafana/ward.json", srcdir());
    char *dash_text = test_slurp(path);
    if (rules == NULL || dash_text == NULL) {
        bail("cannot read the rules or the dashboard");
    }
    struct ward_buf missing = {0};
    ward_buf_puts(&missing, "");
    int n = check_names(rules, fams, &missing);
    ok(n >= 10, "the rules use %d metric names", n);
    is_string("", missing.data, "every metric the rules use is exported");
    ward_buf_free(&missing);

    cJSON *dash = cJSON_Parse(dash_text);
    ok(dash != NULL, "the dashboard is valid JSON");
    struct ward_buf exprs = {0};
    ward_buf_puts(&exprs, "");
    collect_exprs(dash, &exprs);
    missing = (struct ward_buf){0};
    ward_buf_puts(&missing, "");
    n = check_names(exprs.data, fams, &missing);
    ok(n >= 20, "the dashboard queries use %d metric names", n);
    is_string("", missing.data, "every metric the dashboard uses is exported");
    ward_buf_free(&missing);
    lacks(exprs.data, "ward:", "the dashboard needs no recording rules to work");

    /* the checker itself notices a name nobody exports */
    missing = (struct ward_buf){0};
    ward_buf_puts(&missing, "");
    check_names("rate(ward_made_up_total[5m]) + ward_hosts_bucket + "
                "ward_host_claim_duration_seconds_bucket",
                fams, &missing);
    is_string(" ward_made_up_total ward_hosts_bucket", missing.data,
              "an unexported name (or a histogram suffix on a gauge) is reported");
    ward_buf_free(&missing);

    /* every recording rule used is defined in the same file */
    bool defined = true;
    for (const char *p = rules; (p = strstr(p, "ward:")) != NULL; p++) {
        const char *e = p;
        while (ident_char(*e)) {
            e++;
        }
        char rec[200];
        snprintf(rec, sizeof(rec), "record: %.*s\n", (int)(e - p), p);
        if (strstr(rules, rec) == NULL) {
            diag("recording rule %.*s is used but not defined", (int)(e - p), p);
            defined = false;
        }
        p = e - 1;
    }
    ok(defined, "every recording rule the alerts use is defined");
    ok(strstr(exprs.data, "ward_build_info") != NULL,
       "the dashboard's agent variable uses build info");

    ward_buf_free(&exprs);
    cJSON_Delete(dash);
    free(rules);
    free(dash_text);
    free(fams);
    ward_http_destroy(h);
    ward_daemon_destroy(d);
    return 0;
}
