/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wardctl: the operator's command line for a running wardd, over its local
 * HTTP API (libcurl). Tables by default, -o json for scripts; colour only
 * when stdout is a terminal and NO_COLOR is unset.
 *
 * Exit status: 0 success (doctor: healthy), 1 the agent refused or doctor
 * found warnings, 2 usage error or doctor found a critical problem, 3 the
 * agent is unreachable.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "policy.h"
#include "util.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

struct ctl {
    const char *url;        /* base URL, no trailing slash */
    const char *token_file; /* may be NULL */
    char *token;            /* owned; read lazily for mutations */
    bool json;
    bool colour;
};

struct reply {
    long status; /* 0: transfer failed */
    struct ward_buf body;
    char error[CURL_ERROR_SIZE];
};

static const char *c_red(const struct ctl *c)
{
    return c->colour ? "\033[31m" : "";
}

static const char *c_yellow(const struct ctl *c)
{
    return c->colour ? "\033[33m" : "";
}

static const char *c_green(const struct ctl *c)
{
    return c->colour ? "\033[32m" : "";
}

static const char *c_bold(const struct ctl *c)
{
    return c->colour ? "\033[1m" : "";
}

static const char *c_off(const struct ctl *c)
{
    return c->colour ? "\033[0m" : "";
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: wardctl [--url URL] [--token-file FILE] [-o table|json] COMMAND ...\n"
                 "Talk to a running wardd over its local API.\n"
                 "\n"
                 "  hosts [--state S] [--label KEY=VALUE]   list hosts\n"
                 "  host show NAME                          one host with its states\n"
                 "  host explain NAME                       allowed transitions, guard answers,\n"
                 "                                          next recovery (changes nothing)\n"
                 "  host add NAME [--label KEY=VALUE]...    add a host to the inventory\n"
                 "  host remove NAME                        remove an unclaimed host\n"
                 "  host reset NAME --reason TEXT           clear the claim and re-enroll\n"
                 "  host image NAME URL|none --consumer C   set or clear a Claimed host's image\n"
                 "  history NAME [--since TIME]             a host's transitions\n"
                 "  claim --consumer C [--image URL] [--selector K=V]...\n"
                 "                                          claim an available host (and boot it)\n"
                 "  release NAME --consumer C               release a claim\n"
                 "  transition NAME STATE --reason TEXT     request a guarded transition\n"
                 "  events [--name N] [--type T] [--since TIME] [--limit N]\n"
                 "  queue status|drain|resume               provisioning queue\n"
                 "  policy reload | policy check FILE       policies\n"
                 "  config check FILE                       validate a wardd configuration\n"
                 "  doctor                                  health check with recommendations\n"
                 "\n"
                 "  --url URL          agent address (default $WARD_URL or http://127.0.0.1:9580)\n"
                 "  --token-file FILE  API token for changes (default $WARD_TOKEN_FILE)\n"
                 "  -o, --output FMT   table (default) or json\n"
                 "  --no-color         never colour the output\n"
                 "\n"
                 "Exit status: 0 ok, 1 refused by the agent (doctor: warnings), 2 usage error\n"
                 "(doctor: critical), 3 agent unreachable.\n");
}

/* --- HTTP ------------------------------------------------------------------------------------ */

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    ward_buf_put(arg, data, size * n);
    return size * n;
}

static int load_token(struct ctl *c)
{
    if (c->token != NULL) {
        return 0;
    }
    if (c->token_file == NULL) {
        return 0; /* the agent answers 401 with what is missing */
    }
    FILE *f = fopen(c->token_file, "re");
    if (f == NULL) {
        fprintf(stderr, "wardctl: cannot read the token file %s: %s\n", c->token_file,
                strerror(errno));
        return -errno;
    }
    char line[4200];
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    c->token = strdup(line);
    return c->token != NULL ? 0 : -ENOMEM;
}

static void request(struct ctl *c, const char *method, const char *path, const char *body,
                    struct reply *r)
{
    memset(r, 0, sizeof(*r));
    struct ward_buf url = {0};
    ward_buf_printf(&url, "%s%s", c->url, path);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept: application/json");
    struct ward_buf auth = {0};
    if (strcmp(method, "GET") != 0 && load_token(c) == 0 && c->token != NULL) {
        ward_buf_printf(&auth, "Authorization: Bearer %s", c->token);
        headers = curl_slist_append(headers, auth.data);
    }
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "wardctl/" PACKAGE_VERSION);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    if (auth.data != NULL) {
        memset(auth.data, 0, auth.len);
    }
    ward_buf_free(&auth);
    ward_buf_free(&url);
    if (r->body.data == NULL) {
        ward_buf_puts(&r->body, "");
    }
}

/* URL-encode one query value. */
static void put_query(struct ward_buf *b, const char *key, const char *value)
{
    if (value == NULL) {
        return;
    }
    char *enc = curl_easy_escape(NULL, value, 0);
    ward_buf_printf(b, "%c%s=%s", strchr(b->data != NULL ? b->data : "", '?') ? '&' : '?', key,
                    enc != NULL ? enc : "");
    curl_free(enc);
}

/* Print the agent's error and map it to an exit status. */
static int failed(const struct ctl *c, const struct reply *r)
{
    if (r->status == 0) {
        fprintf(stderr, "wardctl: cannot reach the agent at %s: %s\n", c->url, r->error);
        return EXIT_UNREACHABLE;
    }
    cJSON *j = cJSON_Parse(r->body.data);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    fprintf(stderr, "wardctl: %s%ld%s %s\n", c_red(c), r->status, c_off(c),
            cJSON_IsString(m) ? m->valuestring : r->body.data);
    if (r->status == 401) {
        fprintf(stderr, "wardctl: pass the agent's API token with --token-file FILE\n");
    }
    cJSON_Delete(j);
    return EXIT_REFUSED;
}

/* Run a request and print JSON or hand the parsed body to a table printer. */
static int call(struct ctl *c, const char *method, const char *path, const char *body,
                void (*table)(const struct ctl *c, const cJSON *j))
{
    struct reply r;
    request(c, method, path, body, &r);
    int rc = 0;
    if (r.status < 200 || r.status > 299) {
        rc = failed(c, &r);
    } else if (c->json || table == NULL) {
        fputs(r.body.data, stdout);
        if (r.body.len > 0 && r.body.data[r.body.len - 1] != '\n') {
            putchar('\n');
        }
    } else {
        cJSON *j = cJSON_Parse(r.body.data);
        if (j == NULL) {
            fprintf(stderr, "wardctl: the agent answered something that is not JSON\n");
            rc = EXIT_REFUSED;
        } else {
            table(c, j);
        }
        cJSON_Delete(j);
    }
    ward_buf_free(&r.body);
    return rc;
}

/* --- tables ------------------------------------------------------------------------------------
 */

static const char *str_at(const cJSON *obj, const char *key, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

static const char *lifecycle_of(const cJSON *host)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(host, "status");
    const cJSON *states = cJSON_GetObjectItemCaseSensitive(status, "states");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(states, "lifecycle");
    if (cJSON_IsString(st)) {
        return st->valuestring;
    }
    states = cJSON_GetObjectItemCaseSensitive(host, "states");
    st = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(states, "lifecycle"),
                                          "state");
    return cJSON_IsString(st) ? st->valuestring : "None";
}

static const char *state_colour(const struct ctl *c, const char *state)
{
    if (strcmp(state, "Error") == 0) {
        return c_red(c);
    }
    if (strcmp(state, "Available") == 0 || strcmp(state, "Provisioned") == 0) {
        return c_green(c);
    }
    return "";
}

static void labels_text(const cJSON *labels, struct ward_buf *out)
{
    const cJSON *l;
    ward_buf_puts(out, "");
    cJSON_ArrayForEach(l, labels)
    {
        ward_buf_printf(out, "%s%s=%s", out->len > 0 ? "," : "", l->string,
                        cJSON_IsString(l) ? l->valuestring : "?");
    }
}

static void host_row(const struct ctl *c, const cJSON *h)
{
    const char *state = lifecycle_of(h);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "version");
    struct ward_buf labels = {0};
    labels_text(cJSON_GetObjectItemCaseSensitive(h, "labels"), &labels);
    printf("%-24s %s%-14s%s %-20s %-8lld %s\n", str_at(h, "name", "?"), state_colour(c, state),
           state, c_off(c), str_at(h, "consumer", "-"),
           cJSON_IsNumber(v) ? (long long)v->valuedouble : 0, labels.data);
    ward_buf_free(&labels);
}

static void table_hosts(const struct ctl *c, const cJSON *j)
{
    printf("%s%-24s %-14s %-20s %-8s %s%s\n", c_bold(c), "NAME", "STATE", "CONSUMER", "VERSION",
           "LABELS", c_off(c));
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "items"))
    {
        host_row(c, h);
    }
}

static void table_explain(const struct ctl *c, const cJSON *x)
{
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(x, "in_state_seconds");
    printf("%s is %s%s%s (for %.0fs)\n", str_at(x, "resource", "?"), c_bold(c),
           str_at(x, "state", "?"), c_off(c), cJSON_IsNumber(secs) ? secs->valuedouble : 0);
    printf("%-16s %-8s %s\n", "TRANSITION TO", "NOW", "GUARD / REASON");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(x, "transitions"))
    {
        bool allowed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "allowed_now"));
        printf("%-16s %s%-8s%s %s\n", str_at(t, "to", "?"), allowed ? c_green(c) : "",
               allowed ? "allowed" : "refused", allowed ? c_off(c) : "",
               str_at(t, "reason", allowed ? "" : "-"));
    }
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(x, "recovery");
    printf("next recovery: %s\n", str_at(rec, "next", "none"));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(x, "provisioningQueue");
    if (cJSON_IsObject(q)) {
        double pos = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(q, "position"));
        double len = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(q, "length"));
        bool drained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "draining"));
        if (pos > 0) {
            printf("provisioning queue: waiting at position %.0f of %.0f%s\n", pos, len,
                   drained ? " (the queue is drained: wardctl queue resume)" : "");
        } else {
            printf("provisioning queue: admitted (holds a provisioning slot)\n");
        }
    }
}

static void table_host(const struct ctl *c, const cJSON *h)
{
    printf("Name:       %s\n", str_at(h, "name", "?"));
    printf("Namespace:  %s\n", str_at(h, "namespace", "?"));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "version");
    printf("Version:    %lld\n", cJSON_IsNumber(v) ? (long long)v->valuedouble : 0);
    printf("Consumer:   %s\n", str_at(h, "consumer", "-"));
    struct ward_buf labels = {0};
    labels_text(cJSON_GetObjectItemCaseSensitive(h, "labels"), &labels);
    printf("Labels:     %s\n", labels.len > 0 ? labels.data : "-");
    ward_buf_free(&labels);
    printf("Created:    %s\nUpdated:    %s\nStates:\n", str_at(h, "created", "?"),
           str_at(h, "updated", "?"));
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(h, "states"))
    {
        const char *state = str_at(s, "state", "?");
        printf("  %-14s %s%-14s%s since %s\n", s->string, state_colour(c, state), state, c_off(c),
               str_at(s, "entered", "?"));
    }
}

static void table_history(const struct ctl *c, const cJSON *j)
{
    printf("%s%-20s %-10s %-14s %-14s %-10s %-10s %s%s\n", c_bold(c), "TIME", "DIMENSION", "FROM",
           "TO", "TRIGGER", "ACTOR", "REASON", c_off(c));
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "items"))
    {
        const char *from = str_at(h, "from", "");
        printf("%-20s %-10s %-14s %-14s %-10s %-10s %s\n", str_at(h, "at", "?"),
               str_at(h, "dimension", "?"), *from != '\0' ? from : "-", str_at(h, "to", "?"),
               str_at(h, "trigger", "-"), str_at(h, "actor", "-"), str_at(h, "reason", ""));
    }
}

static void table_events(const struct ctl *c, const cJSON *j)
{
    printf("%s%-20s %-8s %-20s %-24s %-5s %s%s\n", c_bold(c), "LAST SEEN", "TYPE", "REASON",
           "OBJECT", "COUNT", "MESSAGE", c_off(c));
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "items"))
    {
        const char *type = str_at(e, "type", "?");
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(e, "involvedObject");
        struct ward_buf o = {0};
        ward_buf_printf(&o, "%s/%s", str_at(obj, "kind", "?"), str_at(obj, "name", "?"));
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(e, "count");
        printf("%-20s %s%-8s%s %-20s %-24s %-5lld %s\n", str_at(e, "lastTimestamp", "?"),
               strcmp(type, "Warning") == 0 ? c_yellow(c) : "", type, c_off(c),
               str_at(e, "reason", "?"), o.data,
               cJSON_IsNumber(count) ? (long long)count->valuedouble : 0, str_at(e, "message", ""));
        ward_buf_free(&o);
    }
}

static void table_kv(const struct ctl *c, const cJSON *j)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        char *text = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
        printf("%-12s %s\n", v->string, text != NULL ? text : v->valuestring);
        free(text);
    }
}

static void table_claimed(const struct ctl *c, const cJSON *h)
{
    const char *image = str_at(cJSON_GetObjectItemCaseSensitive(h, "spec"), "bootISOSource", NULL);
    printf("claimed %s for %s (version %lld)%s%s\n", str_at(h, "name", "?"),
           str_at(h, "consumer", "?"),
           (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "version")),
           image != NULL ? " to boot " : "", image != NULL ? image : "");
}

static void table_image(const struct ctl *c, const cJSON *h)
{
    const char *image = str_at(cJSON_GetObjectItemCaseSensitive(h, "spec"), "bootISOSource", NULL);
    printf("%s: image %s%s\n", str_at(h, "name", "?"), image != NULL ? "set to " : "cleared",
           image != NULL ? image : "");
}

static void table_done(const struct ctl *c, const cJSON *j)
{
    const char *name = str_at(j, "name", NULL);
    const char *to = str_at(j, "to", NULL);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued"))) {
        /* 202: the provisioning queue holds it; the policy moves it once it is admitted */
        printf("%s -> %s queued: %s\n", name != NULL ? name : "?", to != NULL ? to : "?",
               str_at(j, "message", "waiting in the provisioning queue"));
    } else if (to != NULL) {
        printf("%s -> %s (version %lld)\n", name != NULL ? name : "?", to,
               (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "version")));
    } else {
        printf("ok%s%s\n", name != NULL ? ": " : "", name != NULL ? name : "");
    }
}

/* --- commands --------------------------------------------------------------------------------- */

/* Options after the command: a tiny parser for --key value pairs. */
static const char *opt_value(int argc, char **argv, const char *key)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], key) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

/* Positional arguments: those not taken by a --key value pair. */
static const char *positional(int argc, char **argv, int index)
{
    int seen = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            i++;
            continue;
        }
        if (seen++ == index) {
            return argv[i];
        }
    }
    return NULL;
}

/* {"k":"v",...} from every "--flag k=v" occurrence; NULL (and a message) when malformed. */
static cJSON *pairs(int argc, char **argv, const char *flag)
{
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], flag) != 0) {
            continue;
        }
        const char *eq = strchr(argv[i + 1], '=');
        if (eq == NULL || eq == argv[i + 1]) {
            fprintf(stderr, "wardctl: %s takes KEY=VALUE, not '%s'\n", flag, argv[i + 1]);
            cJSON_Delete(obj);
            return NULL;
        }
        char *key = strndup(argv[i + 1], (size_t)(eq - argv[i + 1]));
        cJSON_AddStringToObject(obj, key, eq + 1);
        free(key);
    }
    return obj;
}

static int64_t host_version(struct ctl *c, const char *name, int *rc)
{
    struct ward_buf path = {0};
    ward_buf_printf(&path, "/api/v1/hosts/%s", name);
    struct reply r;
    request(c, "GET", path.data, NULL, &r);
    ward_buf_free(&path);
    int64_t v = 0;
    if (r.status != 200) {
        *rc = failed(c, &r);
    } else {
        cJSON *j = cJSON_Parse(r.body.data);
        v = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "version"));
        cJSON_Delete(j);
    }
    ward_buf_free(&r.body);
    return v;
}

static int need(const char *value, const char *what)
{
    if (value == NULL) {
        fprintf(stderr, "wardctl: %s is required (see wardctl --help)\n", what);
        return EXIT_USAGE;
    }
    return 0;
}

static int cmd_hosts(struct ctl *c, int argc, char **argv)
{
    struct ward_buf path = {0};
    ward_buf_puts(&path, "/api/v1/hosts");
    put_query(&path, "state", opt_value(argc, argv, "--state"));
    put_query(&path, "label", opt_value(argc, argv, "--label"));
    int rc = call(c, "GET", path.data, NULL, table_hosts);
    ward_buf_free(&path);
    return rc;
}

/* Transition with the current version fetched first when none is given. */
static int transition(struct ctl *c, const char *name, const char *to, const char *reason,
                      const char *version_arg, bool reset)
{
    int rc = 0;
    int64_t version =
        version_arg != NULL ? strtoll(version_arg, NULL, 10) : host_version(c, name, &rc);
    if (rc != 0) {
        return rc;
    }
    cJSON *body = cJSON_CreateObject();
    if (!reset) {
        cJSON_AddStringToObject(body, "to", to);
    }
    cJSON_AddStringToObject(body, "reason", reason);
    cJSON_AddNumberToObject(body, "version", (double)version);
    char *text = cJSON_PrintUnformatted(body);
    struct ward_buf path = {0};
    ward_buf_printf(&path, "/api/v1/hosts/%s/%s", name, reset ? "reset" : "transition");
    rc = call(c, "POST", path.data, text, table_done);
    ward_buf_free(&path);
    free(text);
    cJSON_Delete(body);
    return rc;
}

static int cmd_host(struct ctl *c, int argc, char **argv)
{
    const char *sub = positional(argc, argv, 0);
    const char *name = positional(argc, argv, 1);
    int rc;
    if (sub == NULL || (rc = need(name, "a host NAME")) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct ward_buf path = {0};
    ward_buf_printf(&path, "/api/v1/hosts/%s", name);
    if (strcmp(sub, "show") == 0) {
        rc = call(c, "GET", path.data, NULL, table_host);
    } else if (strcmp(sub, "explain") == 0) {
        ward_buf_puts(&path, "/explain");
        rc = call(c, "GET", path.data, NULL, table_explain);
    } else if (strcmp(sub, "add") == 0) {
        cJSON *labels = pairs(argc, argv, "--label");
        if (labels == NULL) {
            ward_buf_free(&path);
            return EXIT_USAGE;
        }
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "name", name);
        cJSON_AddItemToObject(body, "labels", labels);
        char *text = cJSON_PrintUnformatted(body);
        rc = call(c, "POST", "/api/v1/hosts", text, table_done);
        free(text);
        cJSON_Delete(body);
    } else if (strcmp(sub, "remove") == 0) {
        int vrc = 0;
        int64_t v = host_version(c, name, &vrc);
        if (vrc != 0) {
            ward_buf_free(&path);
            return vrc;
        }
        ward_buf_printf(&path, "?version=%lld", (long long)v);
        rc = call(c, "DELETE", path.data, NULL, table_done);
    } else if (strcmp(sub, "image") == 0) {
        const char *url = positional(argc, argv, 2);
        const char *consumer = opt_value(argc, argv, "--consumer");
        rc = need(url, "an image URL (or none)");
        if (rc == 0) {
            rc = need(consumer, "--consumer");
        }
        if (rc == 0) {
            cJSON *body = cJSON_CreateObject();
            cJSON_AddStringToObject(body, "consumer", consumer);
            cJSON_AddStringToObject(body, "bootISOSource", strcmp(url, "none") == 0 ? "" : url);
            char *text = cJSON_PrintUnformatted(body);
            ward_buf_puts(&path, "/image");
            rc = call(c, "POST", path.data, text, table_image);
            free(text);
            cJSON_Delete(body);
        }
    } else if (strcmp(sub, "reset") == 0) {
        const char *reason = opt_value(argc, argv, "--reason");
        rc = need(reason, "--reason");
        if (rc == 0) {
            rc = transition(c, name, NULL, reason, opt_value(argc, argv, "--version"), true);
        }
    } else {
        fprintf(stderr, "wardctl: unknown host command '%s'\n", sub);
        rc = EXIT_USAGE;
    }
    ward_buf_free(&path);
    return rc;
}

static int cmd_history(struct ctl *c, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    int rc = need(name, "a host NAME");
    if (rc != 0) {
        return rc;
    }
    struct ward_buf path = {0};
    ward_buf_printf(&path, "/api/v1/hosts/%s/history", name);
    put_query(&path, "since", opt_value(argc, argv, "--since"));
    rc = call(c, "GET", path.data, NULL, table_history);
    ward_buf_free(&path);
    return rc;
}

static int cmd_claim(struct ctl *c, int argc, char **argv)
{
    const char *consumer = opt_value(argc, argv, "--consumer");
    int rc = need(consumer, "--consumer");
    cJSON *selector = rc == 0 ? pairs(argc, argv, "--selector") : NULL;
    if (selector == NULL) {
        return EXIT_USAGE;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "consumer", consumer);
    cJSON_AddItemToObject(body, "selector", selector);
    const char *image = opt_value(argc, argv, "--image");
    if (image != NULL) {
        cJSON_AddStringToObject(body, "bootISOSource", image);
    }
    char *text = cJSON_PrintUnformatted(body);
    rc = call(c, "POST", "/api/v1/claims", text, table_claimed);
    free(text);
    cJSON_Delete(body);
    return rc;
}

static int cmd_release(struct ctl *c, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    const char *consumer = opt_value(argc, argv, "--consumer");
    int rc = need(name, "a host NAME");
    if (rc == 0) {
        rc = need(consumer, "--consumer");
    }
    if (rc != 0) {
        return rc;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "consumer", consumer);
    char *text = cJSON_PrintUnformatted(body);
    struct ward_buf path = {0};
    ward_buf_printf(&path, "/api/v1/hosts/%s/release", name);
    rc = call(c, "POST", path.data, text, table_done);
    ward_buf_free(&path);
    free(text);
    cJSON_Delete(body);
    return rc;
}

static int cmd_transition(struct ctl *c, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    const char *state = positional(argc, argv, 1);
    const char *reason = opt_value(argc, argv, "--reason");
    int rc = need(name, "a host NAME");
    if (rc == 0) {
        rc = need(state, "a target STATE");
    }
    if (rc == 0) {
        rc = need(reason, "--reason");
    }
    if (rc != 0) {
        return rc;
    }
    return transition(c, name, state, reason, opt_value(argc, argv, "--version"), false);
}

static int cmd_events(struct ctl *c, int argc, char **argv)
{
    struct ward_buf path = {0};
    ward_buf_puts(&path, "/api/v1/events");
    put_query(&path, "name", opt_value(argc, argv, "--name"));
    put_query(&path, "kind", opt_value(argc, argv, "--kind"));
    put_query(&path, "type", opt_value(argc, argv, "--type"));
    put_query(&path, "since", opt_value(argc, argv, "--since"));
    put_query(&path, "limit", opt_value(argc, argv, "--limit"));
    int rc = call(c, "GET", path.data, NULL, table_events);
    ward_buf_free(&path);
    return rc;
}

static void names_line(const char *title, const cJSON *list)
{
    printf("%-19s ", title);
    const cJSON *n;
    int i = 0;
    cJSON_ArrayForEach(n, list)
    {
        printf("%s%s", i++ > 0 ? " " : "", cJSON_IsString(n) ? n->valuestring : "?");
    }
    printf("%s\n", i == 0 ? "-" : "");
}

static void table_queue(const struct ctl *c, const cJSON *q)
{
#define QNUM(k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(q, k))
    bool drained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "draining"));
    printf("%-19s %.0f of %.0f (max_size)\n", "waiting:", QNUM("length"), QNUM("max_size"));
    printf("%-19s %.0f of %.0f\n", "processing:", QNUM("processing"), QNUM("limit"));
    printf("%-19s %.0f\n", "workers:", QNUM("workers"));
    printf("%-19s %.0f\n", "max_concurrent_ops:", QNUM("max_concurrent_ops"));
    printf("%-19s %s%s%s\n", "draining:", drained ? c_bold(c) : "",
           drained ? "yes (nothing new starts; wardctl queue resume)" : "no",
           drained ? c_off(c) : "");
    names_line("waiting hosts:", cJSON_GetObjectItemCaseSensitive(q, "waiting"));
    names_line("admitted hosts:", cJSON_GetObjectItemCaseSensitive(q, "admitted"));
#undef QNUM
}

static int cmd_queue(struct ctl *c, int argc, char **argv)
{
    const char *sub = positional(argc, argv, 0);
    if (sub == NULL || strcmp(sub, "status") == 0) {
        return call(c, "GET", "/api/v1/queue", NULL, table_queue);
    }
    if (strcmp(sub, "drain") == 0 || strcmp(sub, "resume") == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/queue/%s", sub);
        return call(c, "POST", path, NULL, table_kv);
    }
    fprintf(stderr, "wardctl: queue status|drain|resume\n");
    return EXIT_USAGE;
}

/* The engine's own check: compile in the sandbox, validate the machine, run the policy's tests. */
static int policy_check(const char *file)
{
    return ward_policy_check_file(file, stderr) == 0 ? 0 : EXIT_REFUSED;
}

static int cmd_policy(struct ctl *c, int argc, char **argv)
{
    const char *sub = positional(argc, argv, 0);
    if (sub != NULL && strcmp(sub, "reload") == 0) {
        return call(c, "POST", "/api/v1/policy/reload", NULL, table_kv);
    }
    if (sub != NULL && strcmp(sub, "check") == 0) {
        const char *file = positional(argc, argv, 1);
        int rc = need(file, "a policy FILE");
        return rc != 0 ? rc : policy_check(file);
    }
    fprintf(stderr, "wardctl: policy reload | policy check FILE\n");
    return EXIT_USAGE;
}

/* The configuration as wardd would load it, plus the listener rules wardd enforces at start. */
static int cmd_config(int argc, char **argv)
{
    const char *sub = positional(argc, argv, 0);
    const char *file = positional(argc, argv, 1);
    if (sub == NULL || strcmp(sub, "check") != 0 || file == NULL) {
        fprintf(stderr, "wardctl: config check FILE\n");
        return EXIT_USAGE;
    }
    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load(file, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return EXIT_REFUSED;
    }
    struct ward_http_options o;
    int rc = ward_http_options_from_config(cfg, &o, &err);
    bool have_options = rc == 0;
    if (rc == 0 && o.listen != NULL && strncmp(o.listen, "127.", 4) != 0 &&
        strncmp(o.listen, "[::1]", 5) != 0 &&
        (o.tls_cert == NULL || o.tls_key == NULL || o.token_file == NULL)) {
        rc = ward_error_set(&err, -EPERM,
                            "http.listen '%s' is not loopback: wardd needs http.tls_cert, "
                            "http.tls_key and http.token_file to serve it",
                            o.listen);
    }
    const char *const files[] = {o.token_file, o.tls_cert, o.tls_key};
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        if (files[i] != NULL && access(files[i], R_OK) != 0) {
            rc = ward_error_set(&err, -errno, "%s: cannot read %s: %s", file, files[i],
                                strerror(errno));
        }
    }
    if (rc == 0) {
        printf("%s: ok (%zu plugin(s), API on %s)\n", file, cfg->nplugins,
               o.listen != NULL ? o.listen : WARD_HTTP_DEFAULT_LISTEN);
    } else {
        fprintf(stderr, "%s: %s\n", file, err.text);
    }
    if (have_options) {
        ward_http_options_free(&o);
    }
    ward_config_destroy(cfg);
    return rc == 0 ? 0 : EXIT_REFUSED;
}

/* --- doctor ------------------------------------------------------------------------------------
 */

/* Sum of the samples of one family whose labels contain every `match` (k="v" text). */
static double metric_sum(const char *text, const char *name, const char *match, bool *found)
{
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            char line[1024];
            snprintf(line, sizeof(line), "%.*s", (int)len, p);
            char *space = strrchr(line, ' ');
            char *brace = strrchr(line, '}');
            bool labels_ok = match == NULL || (brace != NULL && strstr(line, match) != NULL &&
                                               strstr(line, match) < brace);
            if (space != NULL && labels_ok) {
                sum += strtod(space + 1, NULL);
                if (found != NULL) {
                    *found = true;
                }
            }
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return sum;
}

enum health { HEALTH_OK, HEALTH_WARN, HEALTH_CRIT };

struct doctor {
    const struct ctl *c;
    enum health worst;
    struct ward_buf advice;
};

static void finding(struct doctor *d, enum health level, const char *what, const char *advice)
{
    static const char *const marks[] = {"ok  ", "WARN", "CRIT"};
    const char *colour = level == HEALTH_OK     ? c_green(d->c)
                         : level == HEALTH_WARN ? c_yellow(d->c)
                                                : c_red(d->c);
    printf("[%s%s%s] %s\n", colour, marks[level], c_off(d->c), what);
    if (level > d->worst) {
        d->worst = level;
    }
    if (advice != NULL) {
        ward_buf_printf(&d->advice, "  - %s\n", advice);
    }
}

static int cmd_doctor(struct ctl *c)
{
    struct doctor d = {.c = c};
    char line[512];
    struct reply r;
    printf("%sward doctor: %s%s\n", c_bold(c), c->url, c_off(c));

    request(c, "GET", "/healthz", NULL, &r);
    if (r.status != 200) {
        snprintf(line, sizeof(line), "agent not reachable at %s (%s)", c->url,
                 r.status == 0 ? r.error : "unexpected answer");
        finding(&d, HEALTH_CRIT, line,
                "start wardd (systemctl start wardd) or pass the right --url; check its log");
        ward_buf_free(&r.body);
        printf("\nSummary: %sCRITICAL%s\nRecommended actions:\n%s", c_red(c), c_off(c),
               d.advice.data);
        ward_buf_free(&d.advice);
        return EXIT_UNREACHABLE;
    }
    ward_buf_free(&r.body);
    finding(&d, HEALTH_OK, "agent reachable", NULL);

    request(c, "GET", "/readyz", NULL, &r);
    if (r.status == 200) {
        finding(&d, HEALTH_OK, "agent ready", NULL);
    } else {
        cJSON *j = cJSON_Parse(r.body.data);
        const cJSON *chk;
        cJSON_ArrayForEach(chk, cJSON_GetObjectItemCaseSensitive(j, "checks"))
        {
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(chk, "ok"))) {
                snprintf(line, sizeof(line), "not ready: %s: %s", chk->string,
                         str_at(chk, "message", "failing"));
                finding(&d, HEALTH_CRIT, line, NULL);
            }
        }
        cJSON_Delete(j);
        ward_buf_printf(&d.advice, "  - the agent is not ready: see the failing checks above and "
                                   "the agent's log\n");
        if (d.worst < HEALTH_CRIT) {
            finding(&d, HEALTH_CRIT, "agent not ready", NULL);
        }
    }
    ward_buf_free(&r.body);

    /* hosts per state */
    long available = 0, in_error = 0, total = 0;
    request(c, "GET", "/api/v1/hosts", NULL, &r);
    if (r.status == 200) {
        cJSON *j = cJSON_Parse(r.body.data);
        const char *names[16];
        long counts[16];
        size_t nstates = 0;
        struct ward_buf errors = {0};
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "items"))
        {
            const char *s = lifecycle_of(h);
            size_t k = 0;
            while (k < nstates && strcmp(names[k], s) != 0) {
                k++;
            }
            if (k == nstates && nstates < 16) {
                names[nstates] = s;
                counts[nstates++] = 0;
            }
            if (k < nstates) {
                counts[k]++;
            }
            total++;
            available += strcmp(s, "Available") == 0;
            if (strcmp(s, "Error") == 0) {
                in_error++;
                if (in_error <= 10) {
                    ward_buf_printf(&errors, "%s%s", in_error > 1 ? ", " : "",
                                    str_at(h, "name", "?"));
                }
            }
        }
        struct ward_buf summary = {0};
        ward_buf_printf(&summary, "%ld host(s):", total);
        for (size_t k = 0; k < nstates; k++) {
            ward_buf_printf(&summary, " %s=%ld", names[k], counts[k]);
        }
        finding(&d, HEALTH_OK, summary.data, NULL);
        ward_buf_free(&summary);
        if (in_error > 0) {
            snprintf(line, sizeof(line), "%ld host(s) in Error: %s%s", in_error, errors.data,
                     in_error > 10 ? ", ..." : "");
            finding(&d, HEALTH_WARN, line,
                    "inspect hosts in Error (wardctl host show NAME, wardctl history NAME) and "
                    "recover them with wardctl host reset NAME --reason TEXT");
        } else {
            finding(&d, HEALTH_OK, "no hosts in Error", NULL);
        }
        ward_buf_free(&errors);
        cJSON_Delete(j);
    } else {
        finding(&d, HEALTH_WARN, "cannot list hosts",
                "check the agent's store (wardctl host list)");
    }
    ward_buf_free(&r.body);

    /* claims, queue, from the metrics */
    request(c, "GET", "/metrics", NULL, &r);
    if (r.status == 200) {
        const char *m = r.body.data;
        double attempts = metric_sum(m, "ward_host_claim_attempts_total", NULL, NULL);
        double conflicts =
            metric_sum(m, "ward_host_claim_attempts_total", "outcome=\"conflict\"", NULL);
        double waiting =
            metric_sum(m, "ward_host_claim_attempts_total", "outcome=\"none_available\"", NULL);
        double rate = attempts > 0 ? conflicts / attempts : 0;
        snprintf(line, sizeof(line), "claim conflict rate %.1f%% (%.0f of %.0f attempts)",
                 rate * 100, conflicts, attempts);
        finding(&d, rate > 0.15 ? HEALTH_WARN : HEALTH_OK, line,
                rate > 0.15 ? "claims conflict often: widen selectors or spread consumers over "
                              "more hosts; check for a consumer retrying in a tight loop"
                            : NULL);
        if (waiting > 0 && available == 0) {
            snprintf(line, sizeof(line),
                     "consumers waiting with no available host (%.0f claims found none)", waiting);
            finding(&d, HEALTH_WARN, line, "add hosts to the inventory or release finished claims");
        } else {
            finding(&d, HEALTH_OK, "no consumer is starved of hosts", NULL);
        }
        bool have_max = false;
        double length = metric_sum(m, "ward_provisioning_queue_length", NULL, NULL);
        double max = metric_sum(m, "ward_provisioning_queue_max_size", NULL, &have_max);
        if (have_max && max > 0) {
            snprintf(line, sizeof(line), "provisioning queue %.0f of %.0f (%.0f%%)", length, max,
                     100 * length / max);
            finding(&d, length / max > 0.8 ? HEALTH_WARN : HEALTH_OK, line,
                    length / max > 0.8 ? "the queue is above 80%: check BMC latency and "
                                         "maxConcurrentOps (wardctl queue status); in an "
                                         "emergency, wardctl queue drain"
                                       : NULL);
        } else {
            snprintf(line, sizeof(line), "provisioning queue length %.0f", length);
            finding(&d, HEALTH_OK, line, NULL);
        }
    } else {
        finding(&d, HEALTH_WARN, "cannot read /metrics", NULL);
    }
    ward_buf_free(&r.body);

    /* recent warnings */
    request(c, "GET", "/api/v1/events?type=Warning&since=1h", NULL, &r);
    if (r.status == 200) {
        cJSON *j = cJSON_Parse(r.body.data);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
        int n = cJSON_GetArraySize(items);
        long occurrences = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, items)
        {
            occurrences += (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count"));
        }
        snprintf(line, sizeof(line), "%d warning event(s) in the last hour (%ld occurrences)", n,
                 occurrences);
        finding(&d, n > 0 ? HEALTH_WARN : HEALTH_OK, line,
                n > 0 ? "read them with wardctl events --type Warning --since 1h" : NULL);
        int shown = 0;
        for (int i = n - 1; i >= 0 && shown < 5; i--, shown++) {
            const cJSON *w = cJSON_GetArrayItem(items, i);
            const cJSON *obj = cJSON_GetObjectItemCaseSensitive(w, "involvedObject");
            printf("       %s %s/%s: %s\n", str_at(w, "reason", "?"), str_at(obj, "kind", "?"),
                   str_at(obj, "name", "?"), str_at(w, "message", ""));
        }
        cJSON_Delete(j);
    }
    ward_buf_free(&r.body);

    static const char *const verdicts[] = {"HEALTHY", "WARNINGS", "CRITICAL"};
    const char *colour = d.worst == HEALTH_OK     ? c_green(c)
                         : d.worst == HEALTH_WARN ? c_yellow(c)
                                                  : c_red(c);
    printf("\nSummary: %s%s%s\n", colour, verdicts[d.worst], c_off(c));
    if (d.advice.len > 0) {
        printf("Recommended actions:\n%s", d.advice.data);
    }
    ward_buf_free(&d.advice);
    return d.worst == HEALTH_OK ? 0 : d.worst == HEALTH_WARN ? 1 : 2;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'},
        {"token-file", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"no-color", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct ctl c = {.url = getenv("WARD_URL"), .token_file = getenv("WARD_TOKEN_FILE")};
    c.colour = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    int opt;
    /* '+': stop at the command so its own --options stay for it */
    while ((opt = getopt_long(argc, argv, "+o:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'u':
            c.url = optarg;
            break;
        case 't':
            c.token_file = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0) {
                fprintf(stderr, "wardctl: -o takes table or json\n");
                return EXIT_USAGE;
            }
            c.json = strcmp(optarg, "json") == 0;
            break;
        case 'C':
            c.colour = false;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("wardctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char url[512];
    snprintf(url, sizeof(url), "%s", c.url != NULL ? c.url : "http://" WARD_HTTP_DEFAULT_LISTEN);
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') {
        url[--ul] = '\0';
    }
    c.url = url;
    ward_log_set_level(WARD_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[optind];
    int sub_argc = argc - optind - 1;
    char **sub_argv = argv + optind + 1;
    int rc;
    if (strcmp(cmd, "hosts") == 0) {
        rc = cmd_hosts(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "host") == 0) {
        rc = cmd_host(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "history") == 0) {
        rc = cmd_history(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "claim") == 0) {
        rc = cmd_claim(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "release") == 0) {
        rc = cmd_release(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "transition") == 0) {
        rc = cmd_transition(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "events") == 0) {
        rc = cmd_events(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "queue") == 0) {
        rc = cmd_queue(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "policy") == 0) {
        rc = cmd_policy(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "config") == 0) {
        rc = cmd_config(sub_argc, sub_argv);
    } else if (strcmp(cmd, "doctor") == 0) {
        rc = cmd_doctor(&c);
    } else {
        fprintf(stderr, "wardctl: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = EXIT_USAGE;
    }
    if (c.token != NULL) {
        memset(c.token, 0, strlen(c.token));
        free(c.token);
    }
    curl_global_cleanup();
    return rc;
}
