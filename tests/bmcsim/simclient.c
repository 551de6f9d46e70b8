/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include "simclient.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../tap/basic.h"

static struct sim *running;

static void kill_running(void)
{
    if (running != NULL && running->child.pid > 0) {
        child_free(&running->child);
    }
}

void sim_start(struct sim *s, const char *const *args)
{
    memset(s, 0, sizeof(*s));
    static int seq;
    snprintf(s->dir, sizeof(s->dir), "%s/sim%d", test_tmpdir(), seq++);
    const char *builddir = getenv("WARD_BUILDDIR");
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/tools/bmcsim/ward-bmcsim",
             builddir != NULL ? builddir : WARD_BUILDDIR);
    const char *argv[64];
    int n = 0;
    argv[n++] = prog;
    argv[n++] = "--state-dir";
    argv[n++] = s->dir;
    for (int i = 0; args != NULL && args[i] != NULL && n < 62; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    child_spawn(&s->child, (char *const *)argv);
    running = s;
    static bool registered;
    if (!registered) {
        atexit(kill_running);
        registered = true;
    }
    if (!child_wait_for(&s->child, "ready bmcs=", 30)) {
        bail("the simulator did not become ready");
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/fleet.json", s->dir);
    char *text = test_slurp(path);
    s->fleet = text != NULL ? cJSON_Parse(text) : NULL;
    free(text);
    if (s->fleet == NULL) {
        bail("cannot read %s", path);
    }
    const char *ca = json_str(s->fleet, "ca");
    snprintf(s->ca, sizeof(s->ca), "%s", ca != NULL ? ca : "");
    snprintf(s->control, sizeof(s->control), "%s", json_str(s->fleet, "control"));
}

int sim_stop(struct sim *s)
{
    int rc = -1;
    if (s->child.pid > 0) {
        kill(s->child.pid, SIGTERM);
        rc = child_wait_exit(&s->child, 20);
    }
    child_free(&s->child);
    cJSON_Delete(s->fleet);
    s->fleet = NULL;
    if (running == s) {
        running = NULL;
    }
    return rc;
}

static cJSON *bmc(struct sim *s, int i)
{
    cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(s->fleet, "bmcs"), i);
    if (b == NULL) {
        bail("no BMC %d in fleet.json", i);
    }
    return b;
}

const char *sim_addr(struct sim *s, int i)
{
    return json_str(bmc(s, i), "address");
}

const char *sim_user(struct sim *s, int i)
{
    return json_str(bmc(s, i), "username");
}

const char *sim_pass(struct sim *s, int i)
{
    static char pass[128];
    char *text = test_slurp(json_str(bmc(s, i), "password_file"));
    if (text == NULL) {
        bail("cannot read the password file of BMC %d", i);
    }
    snprintf(pass, sizeof(pass), "%s", text);
    free(text);
    pass[strcspn(pass, "\r\n")] = '\0';
    return pass;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    ward_buf_put(arg, data, size * n);
    return size * n;
}

static struct http_result perform(const char *url, const char *ca, const char *method,
                                  const char *body, struct curl_slist *headers, const char *userpwd,
                                  double timeout)
{
    struct http_result r = {0};
    struct ward_buf b = {0}, h = {0};
    CURL *c = curl_easy_init();
    if (c == NULL) {
        bail("curl_easy_init");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (ca != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (userpwd != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    r.curl_code = (int)curl_easy_perform(c);
    if (r.curl_code == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_easy_cleanup(c);
    ward_buf_putc(&b, '\0');
    b.len--;
    ward_buf_putc(&h, '\0');
    r.body = ward_buf_steal(&b);
    r.headers = ward_buf_steal(&h);
    r.json = cJSON_Parse(r.body);
    return r;
}

struct http_result sim_http_ca(struct sim *s, int i, const char *ca, const char *method,
                               const char *path, const char *body, const char *auth,
                               const char *extra_header, double timeout)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", sim_addr(s, i), path);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    char userpwd[256];
    const char *up = NULL;
    if (auth != NULL && strcmp(auth, "basic") == 0) {
        snprintf(userpwd, sizeof(userpwd), "%s:%s", sim_user(s, i), sim_pass(s, i));
        up = userpwd;
    } else if (auth != NULL) {
        char tok[256];
        snprintf(tok, sizeof(tok), "X-Auth-Token: %s", auth);
        headers = curl_slist_append(headers, tok);
    }
    if (extra_header != NULL) {
        headers = curl_slist_append(headers, extra_header);
    }
    struct http_result r = perform(url, ca, method, body, headers, up, timeout);
    curl_slist_free_all(headers);
    return r;
}

struct http_result sim_http(struct sim *s, int i, const char *method, const char *path,
                            const char *body, const char *auth, const char *extra_header,
                            double timeout)
{
    return sim_http_ca(s, i, s->ca[0] != '\0' ? s->ca : NULL, method, path, body, auth,
                       extra_header, timeout);
}

struct http_result local_http(int port, const char *method, const char *path, const char *body,
                              const char *token)
{
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    if (body == NULL && strcmp(method, "POST") == 0) {
        body = "";
    }
    struct http_result r = perform(url, NULL, method, body, headers, NULL, 10);
    curl_slist_free_all(headers);
    return r;
}

long local_fetch(int port, const char *method, const char *path, const char *body,
                 const char *token, struct ward_buf *out)
{
    struct http_result r = local_http(port, method, path, body, token);
    ward_buf_puts(out, r.body);
    long status = r.status;
    http_free(&r);
    return status;
}

void sim_write_wardd_fleet(FILE *f, struct sim *s, int n)
{
    const char *src = getenv("WARD_SRCDIR"), *build = getenv("WARD_BUILDDIR");
    fprintf(f,
            "plugin \"redfish\" { path = \"%s/plugins/redfish/.libs/ward-redfish.so\",\n"
            "  quirks = \"%s/plugins/redfish/quirks.lua\" }\n",
            build, src);
    for (int i = 0; s != NULL && i < n; i++) {
        fprintf(f,
                "host \"node-%02d\" { bmc = { address = \"%s\", caBundle = \"%s\",\n"
                "  credentials = { username = \"%s\", passwordFile = \"%s\" } } }\n",
                i + 1, sim_addr(s, i), s->ca, sim_user(s, i),
                json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(s->fleet, "bmcs"), i),
                         "password_file"));
    }
}

int wardd_port(const struct child *c)
{
    const char *p = c->out.data != NULL ? strstr(c->out.data, "\"port\":\"") : NULL;
    return p != NULL ? atoi(p + 8) : 0;
}

char *sim_login(struct sim *s, int i)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"UserName\":\"%s\",\"Password\":\"%s\"}", sim_user(s, i),
             sim_pass(s, i));
    struct http_result r =
        sim_http(s, i, "POST", "/redfish/v1/SessionService/Sessions", body, NULL, NULL, 10);
    const char *tok = r.status == 201 ? http_header(&r, "X-Auth-Token") : NULL;
    char *out = tok != NULL ? strdup(tok) : NULL;
    http_free(&r);
    return out;
}

const char *http_header(const struct http_result *r, const char *name)
{
    static char value[1024];
    size_t n = strlen(name);
    for (const char *line = r->headers; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = len - (size_t)(v - line);
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' ')) {
                vlen--;
            }
            snprintf(value, sizeof(value), "%.*s", (int)vlen, v);
            return value;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

void http_free(struct http_result *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

long sim_control_post(struct sim *s, const char *path, const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->control, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct http_result r = perform(url, NULL, "POST", json, headers, NULL, 10);
    curl_slist_free_all(headers);
    if (r.status != 200) {
        diag("control %s %s: %ld %s", path, json, r.status, r.body);
    }
    long st = r.status;
    http_free(&r);
    return st;
}

cJSON *sim_control_bmc(struct sim *s, int i)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/control/bmcs/%d", s->control, i);
    struct http_result r = perform(url, NULL, "GET", NULL, NULL, NULL, 10);
    cJSON *j = r.json;
    r.json = NULL;
    http_free(&r);
    if (j == NULL) {
        bail("control API gave no report for BMC %d", i);
    }
    return j;
}

double sim_counter(struct sim *s, int i, const char *name)
{
    cJSON *j = sim_control_bmc(s, i);
    double v = json_num(j, name);
    cJSON_Delete(j);
    return v;
}

cJSON *json_at(cJSON *root, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *cur = root;
    char *save = NULL;
    for (char *tok = strtok_r(buf, "/", &save); tok != NULL && cur != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        if (cJSON_IsArray(cur)) {
            cur = cJSON_GetArrayItem(cur, atoi(tok));
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
    }
    return cur;
}

const char *json_str(cJSON *root, const char *path)
{
    cJSON *v = json_at(root, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double json_num(cJSON *root, const char *path)
{
    cJSON *v = json_at(root, path);
    if (cJSON_IsBool(v)) {
        return cJSON_IsTrue(v) ? 1 : 0;
    }
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
