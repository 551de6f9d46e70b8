/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP endpoint on a live loop: health, readiness, metrics, auth, limits, listener rules. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>

#include "client.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "tap/basic.h"

#define TOKEN "s3cret-token-0123456789abcdef"

static int store_ready = -EAGAIN;

static int check_store(void *arg, struct ward_error *err)
{
    if (store_ready != 0) {
        return ward_error_set(err, store_ready, "store is not open yet");
    }
    return 0;
}

static int check_plugins(void *arg, struct ward_error *err)
{
    return 0;
}

static void stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* A client that connects to the port, sends the first bytes of a TLS record and then
 * nothing more: -1 when it cannot. */
static int stalled_client(uint16_t port)
{
    int fd = http_connect_loopback(port);
    if (fd < 0) {
        return -1;
    }
    static const char partial[] = {0x16, 0x03, 0x01}; /* handshake record, TLS 1.0 header */
    if (send(fd, partial, sizeof(partial), 0) != (ssize_t)sizeof(partial)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void on_echo(void *arg, const struct ward_http_request *req, struct ward_http_response *res)
{
    ward_buf_printf(&res->body, "{\"method\":\"%s\",\"authorized\":%s,\"len\":%zu}", req->method,
                    req->authorized ? "true" : "false", req->body_len);
}

static int bigs; /* answers of on_big so far */

/* An answer of 8 MiB, more than a loopback socket buffers, whatever was asked. */
static void on_big(void *arg, const struct ward_http_request *req, struct ward_http_response *res)
{
    bigs++;
    ward_buf_puts(&res->body, "{\"fill\":\"");
    for (int i = 0; i < 8192; i++) {
        ward_buf_printf(&res->body, "%01023d", 0);
    }
    ward_buf_puts(&res->body, "\"}");
}

static size_t stop_reading(char *data, size_t size, size_t n, void *arg)
{
    for (;;) {
        pause(); /* until the test kills this process */
    }
    return 0;
}

static int small_window(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    int bytes = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    return CURL_SOCKOPT_OK;
}

/* A client in a child process (the server runs on this process's loop) that asks for url
 * and stops reading after its first bytes, so the answer stays unfinished with its socket
 * full. Kill it to end it. */
static pid_t slow_reader(const char *url)
{
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    /* the test's self-signed certificate; what is tested is the server's loop */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, small_window);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, stop_reading);
    curl_easy_perform(e);
    _exit(0);
}

static void on_bound(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static int scrapes;

static void on_scrape(void *arg, struct ward_metrics *m)
{
    scrapes++;
}

static char *write_file(const char *name, const char *text)
{
    char *path;
    if (asprintf(&path, "%s/%s", test_tmpdir(), name) < 0) {
        bail("asprintf");
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sysbail("cannot write %s", path);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static void get(struct ev_loop *loop, const char *base, const char *method, const char *path,
                const char *body, const char *const *headers, struct http_reply *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    http_request(loop, method, url, body, headers, r);
}

int main(void)
{
    plan(66);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logs = open_memstream(&logbuf, &loglen);
    ward_log_set_stream(logs);

    struct ward_metrics *metrics = ward_metrics_create();
    char *token_file = write_file("token", TOKEN "\n");
    struct ward_error err = {0};
    struct ward_http_options o = {
        .listen = "127.0.0.1:0", .token_file = token_file, .max_body = 1024};
    struct ward_http *h = ward_http_create(loop, metrics, &o, &err);
    if (h == NULL) {
        bail("cannot start the server: %s", err.text);
    }
    ok(ward_http_port(h) > 0, "bound an ephemeral port (%u)", ward_http_port(h));
    ward_http_ready_check(h, "store", check_store, NULL);
    ward_http_ready_check(h, "plugins", check_plugins, NULL);
    ward_http_route(h, NULL, "/api/v1/echo", WARD_HTTP_EXACT, on_echo, NULL);
    ward_http_on_scrape(h, on_scrape, NULL);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(h));
    struct http_reply r;

    get(loop, base, "GET", "/healthz", NULL, NULL, &r);
    is_int(200, r.status, "/healthz answers 200");
    contains(r.body.data, "\"ok\"", "/healthz says ok");
    http_reply_free(&r);

    get(loop, base, "GET", "/readyz", NULL, NULL, &r);
    is_int(503, r.status, "/readyz is 503 while a check fails");
    contains(r.body.data, "store is not open yet", "/readyz names the failing check's reason");
    contains(r.body.data, "\"plugins\":{\"ok\":true}", "/readyz lists the passing check");
    http_reply_free(&r);
    store_ready = 0;
    get(loop, base, "GET", "/readyz", NULL, NULL, &r);
    is_int(200, r.status, "/readyz is 200 once every check passes");
    http_reply_free(&r);

    get(loop, base, "GET", "/metrics", NULL, NULL, &r);
    is_int(200, r.status, "/metrics answers 200");
    contains(r.headers.data, "text/plain; version=0.0.4", "/metrics has the exposition type");
    contains(r.body.data, "# TYPE process_start_time_seconds gauge", "process start time");
    contains(r.body.data, "\nprocess_resident_memory_bytes ", "resident memory");
    contains(r.body.data, "\nprocess_open_fds ", "open fds");
    contains(r.body.data, "# TYPE process_cpu_seconds_total counter", "cpu seconds");
    contains(r.body.data, "\nward_api_unauthorized_total 0\n", "unauthorized counter starts at 0");
    contains(r.body.data, "# TYPE ward_physicalhost_state_duration_seconds histogram",
             "the catalog's histograms are exported");
    {
        /* the engine's families come out the same whoever registers first */
        struct ward_metric *mine =
            ward_metrics_histogram(metrics, "ward_physicalhost_state_duration_seconds", "x",
                                   (const char *[]){"state", NULL}, (const double[]){1, 10}, 2);
        ward_metric_observe(mine, (const char *[]){"Enrolling"}, 1000);
        struct ward_buf text = {0};
        ward_metrics_render(metrics, &text);
        contains(
            text.data,
            "ward_physicalhost_state_duration_seconds_bucket{state=\"Enrolling\",le=\"900\"} 0\n"
            "ward_physicalhost_state_duration_seconds_bucket{state=\"Enrolling\",le=\"1800\"} 1\n",
            "state durations use buckets from seconds to days");
        ward_buf_free(&text);
    }
    is_int(1, scrapes, "scrape hooks run before rendering");
    http_reply_free(&r);

    get(loop, base, "GET", "/nope", NULL, NULL, &r);
    is_int(404, r.status, "unknown path is 404");
    contains(r.body.data, "\"code\":404", "404 carries a JSON error");
    http_reply_free(&r);
    get(loop, base, "POST", "/metrics", "{}", NULL, &r);
    is_int(405, r.status, "wrong method on a known path is 405");
    http_reply_free(&r);

    get(loop, base, "GET", "/api/v1/echo", NULL, NULL, &r);
    is_int(200, r.status, "reads need no token on loopback");
    contains(r.body.data, "\"authorized\":false", "the handler sees the read as unauthenticated");
    http_reply_free(&r);
    get(loop, base, "POST", "/api/v1/echo", "{}", NULL, &r);
    is_int(401, r.status, "a mutation without a token is 401");
    contains(r.body.data, "missing 'Authorization: Bearer <token>'", "401 says what is missing");
    contains(r.headers.data, "WWW-Authenticate: Bearer", "401 carries a Bearer challenge");
    http_reply_free(&r);
    get(loop, base, "DELETE", "/api/v1/echo", NULL,
        (const char *[]){"Authorization: Bearer wrong-token-0123456789", NULL}, &r);
    is_int(401, r.status, "a wrong token is 401");
    contains(r.body.data, "not valid", "401 says the token is not valid");
    lacks(r.body.data, TOKEN, "the error does not echo the real token");
    http_reply_free(&r);
    get(loop, base, "POST", "/api/v1/echo", "{\"a\":1}",
        (const char *[]){"Authorization: Bearer " TOKEN, NULL}, &r);
    is_int(200, r.status, "the right token is accepted");
    contains(r.body.data, "\"authorized\":true,\"len\":7", "the handler got the body");
    http_reply_free(&r);
    get(loop, base, "POST", "/api/v1/echo", "{}",
        (const char *[]){"Authorization: Bearer " TOKEN "x", NULL}, &r);
    is_int(401, r.status, "a token with a trailing extra byte is refused");
    http_reply_free(&r);
    get(loop, base, "POST", "/api/v1/echo", "{}",
        (const char *[]){"Authorization: Bearer \t" TOKEN " \t ", NULL}, &r);
    is_int(200, r.status, "whitespace around the token is not part of it");
    http_reply_free(&r);
    get(loop, base, "GET", "/metrics", NULL, NULL, &r);
    contains(r.body.data, "\nward_api_unauthorized_total 3\n", "each 401 is counted");
    http_reply_free(&r);

    char big[2048];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    get(loop, base, "POST", "/api/v1/echo", big,
        (const char *[]){"Authorization: Bearer " TOKEN, NULL}, &r);
    is_int(413, r.status, "a body over max_body is 413");
    contains(r.body.data, "larger than 1024 bytes", "413 names the limit");
    http_reply_free(&r);
    get(loop, base, "POST", "/api/v1/echo", big,
        (const char *[]){"Authorization: Bearer " TOKEN, "Transfer-Encoding: chunked", NULL}, &r);
    is_int(413, r.status, "a chunked body over max_body is 413 too");
    http_reply_free(&r);
    get(loop, base, "GET", "/healthz", NULL, NULL, &r);
    is_int(200, r.status, "the server still answers after refusing bodies");
    http_reply_free(&r);

    /* token rotation on reload: the old one stops working */
    free(write_file("token", "another-token-abcdefghijklmnop\n"));
    ok(ward_http_reload_token(h, &err) == 0, "token reloads");
    get(loop, base, "POST", "/api/v1/echo", "{}",
        (const char *[]){"Authorization: Bearer " TOKEN, NULL}, &r);
    is_int(401, r.status, "the previous token is refused after the reload");
    http_reply_free(&r);
    free(write_file("token", "short\n"));
    ok(ward_http_reload_token(h, &err) == -EINVAL, "a too short token is refused on reload");
    lacks(err.text, "short", "the refusal does not print the token");
    get(loop, base, "POST", "/api/v1/echo", "{}",
        (const char *[]){"Authorization: Bearer another-token-abcdefghijklmnop", NULL}, &r);
    is_int(200, r.status, "the last good token stays in force");
    http_reply_free(&r);
    ward_http_destroy(h);

    /* listener rules */
    struct ward_http_options open_any = {.listen = "0.0.0.0:0"};
    ok(ward_http_create(loop, metrics, &open_any, &err) == NULL && err.code == -EPERM,
       "a non-loopback address without TLS and token is refused");
    contains(err.text, "tls_cert", "the refusal says what to configure");
    struct ward_http_options bad = {.listen = "localhost:80"};
    ok(ward_http_create(loop, metrics, &bad, &err) == NULL && err.code == -EINVAL,
       "host names are refused");
    bad.listen = "127.0.0.1:99999";
    ok(ward_http_create(loop, metrics, &bad, &err) == NULL && err.code == -EINVAL,
       "out of range ports are refused");
    bad.listen = "127.0.0.1:0";
    bad.tls_cert = "/nonexistent/cert.pem";
    ok(ward_http_create(loop, metrics, &bad, &err) == NULL && err.code == -EINVAL,
       "a certificate without a key is refused");

    /* TLS: a self-signed certificate made for the test; non-loopback needs it plus a token */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-keyout '%s/key.pem' -out '%s/cert.pem' >/dev/null 2>&1",
             test_tmpdir(), test_tmpdir());
    if (system(cmd) != 0) {
        bail("openssl could not make a test certificate");
    }
    char cert[512], key[512];
    snprintf(cert, sizeof(cert), "%s/cert.pem", test_tmpdir());
    snprintf(key, sizeof(key), "%s/key.pem", test_tmpdir());
    struct ward_http_options tls = {.listen = "127.0.0.1:0", .tls_cert = cert, .tls_key = key};
    h = ward_http_create(loop, metrics, &tls, &err);
    ok(h != NULL, "serves HTTPS with a certificate and key (%s)", h == NULL ? err.text : "ok");
    if (h != NULL) {
        snprintf(base, sizeof(base), "https://127.0.0.1:%u", ward_http_port(h));
        get(loop, base, "GET", "/healthz", NULL, NULL, &r);
        is_int(200, r.status, "/healthz answers over TLS");
        http_reply_free(&r);
        snprintf(base, sizeof(base), "http://127.0.0.1:%u", ward_http_port(h));
        get(loop, base, "GET", "/healthz", NULL, NULL, &r);
        ok(r.status != 200, "plain HTTP to the TLS port gets no answer");
        http_reply_free(&r);
        /* a client that stalls in its handshake must not keep the loop busy:
           libmicrohttpd asks to run again at once for as long as it waits (that spin runs
           it thousands of times in 0.3 s) */
        int fd = stalled_client(ward_http_port(h));
        ok(fd >= 0, "a client starts a handshake and stalls");
        ev_timer stop;
        ev_timer_init(&stop, stop_loop, 0.3, 0);
        ev_timer_start(loop, &stop);
        unsigned long runs0, delayed0, runs, delayed;
        ward_http_loop_stats(h, &runs0, &delayed0);
        ev_run(loop, 0);
        ward_http_loop_stats(h, &runs, &delayed);
        ok(runs - runs0 < 100,
           "the stalled client does not keep the server running (%lu runs in 0.3 s)", runs - runs0);
        snprintf(base, sizeof(base), "https://127.0.0.1:%u", ward_http_port(h));
        get(loop, base, "GET", "/healthz", NULL, NULL, &r);
        is_int(200, r.status, "and others are served meanwhile");
        http_reply_free(&r);
        if (fd >= 0) {
            close(fd);
        }
        /* MHD sends a TLS answer a record per run without a socket event in between: such
           runs are work, never held back */
        ward_http_route(h, "GET", "/big", WARD_HTTP_EXACT, on_big, NULL);
        ward_http_loop_stats(h, &runs0, &delayed0);
        get(loop, base, "GET", "/big", NULL, NULL, &r);
        ward_http_loop_stats(h, &runs, &delayed);
        ok(r.status == 200 && r.body.len == 8192 * 1023 + 11,
           "an 8 MiB answer arrives whole over TLS (%ld, %zu bytes)", r.status, r.body.len);
        /* its records are never held back while its socket takes them: a run is held back
           only when the client has not read yet (its socket's EPOLLOUT wakes the loop anyway,
           10-20 times here). Held back regardless, 8 MiB took over 300 waits of up to 64 ms
           and did not arrive within the client's 20 s. */
        ok(delayed - delayed0 < 64, "with no record of it held back (%lu runs held back)",
           delayed - delayed0);
        http_reply_free(&r);
        /* an answer whose client stopped reading waits for its socket; it must not switch
           the backoff off for a stalled handshake beside it (it did: 250,000 runs in 0.3 s) */
        char big_url[128];
        snprintf(big_url, sizeof(big_url), "%s/big", base);
        pid_t reader = slow_reader(big_url);
        ev_timer bound;
        ev_timer_init(&bound, on_bound, 20, 0);
        ev_timer_start(loop, &bound);
        while (bigs < 2 && ev_is_active(&bound)) {
            ev_run(loop, EVRUN_ONCE);
        }
        ev_timer_stop(loop, &bound);
        ok(bigs == 2, "a client asks for 8 MiB and stops reading");
        ev_timer_set(&stop, 0.2, 0); /* the server fills the socket meanwhile */
        ev_timer_start(loop, &stop);
        ev_run(loop, 0);
        fd = stalled_client(ward_http_port(h));
        ev_timer_set(&stop, 0.3, 0);
        ev_timer_start(loop, &stop);
        ward_http_loop_stats(h, &runs0, &delayed0);
        ev_run(loop, 0);
        ward_http_loop_stats(h, &runs, &delayed);
        ok(fd >= 0 && runs - runs0 < 100,
           "beside it a stalled handshake does not keep the server running (%lu runs in 0.3 s)",
           runs - runs0);
        kill(reader, SIGKILL);
        waitpid(reader, NULL, 0);
        if (fd >= 0) {
            close(fd);
        }
        ward_http_destroy(h);
    } else {
        for (int i = 0; i < 9; i++) {
            ok(false, "no TLS server");
        }
    }
    struct ward_http_options bad_pem = {
        .listen = "127.0.0.1:0", .tls_cert = token_file, .tls_key = token_file};
    ok(ward_http_create(loop, metrics, &bad_pem, &err) == NULL,
       "a certificate that is not PEM is refused");
    struct ward_http_options public_tls = {.listen = "0.0.0.0:0", .tls_cert = cert, .tls_key = key};
    ok(ward_http_create(loop, metrics, &public_tls, &err) == NULL && err.code == -EPERM,
       "a public listener with TLS but no token is refused");

    /* configuration section */
    struct ward_config *cfg = ward_config_load_string(
        "http = { listen = \"[::1]:0\", max_body = 4096, timeout = \"5s\" }", "t.lua", &err);
    struct ward_http_options co;
    ok(cfg != NULL && ward_http_options_from_config(cfg, &co, &err) == 0,
       "the http section is read");
    is_string("[::1]:0", co.listen, "listen comes from the config");
    ok(co.max_body == 4096 && co.timeout == 5, "limits come from the config");
    ward_http_options_free(&co);
    ward_config_destroy(cfg);
    cfg = ward_config_load_string("http = { listen = \"127.0.0.1:1\", lisen = 3 }", "t.lua", &err);
    ok(cfg != NULL && ward_http_options_from_config(cfg, &co, &err) == -EINVAL,
       "an unknown http setting is an error");
    contains(err.text, "unknown setting 'lisen'", "the error names the key");
    ward_config_destroy(cfg);

    fflush(logs);
    lacks(logbuf, TOKEN, "the token never reached a log line");
    contains(logbuf, "can be read by other users", "a token file open to others is warned about");
    ward_log_set_stream(NULL);
    fclose(logs);
    free(logbuf);
    free(token_file);
    ward_metrics_destroy(metrics);
    ev_loop_destroy(loop);
    return 0;
}
