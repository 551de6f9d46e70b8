/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd on the core's libev loop. MHD runs in external epoll mode:
 * one ev_io watches MHD's epoll descriptor and one ev_timer follows
 * MHD_get_timeout(); both call MHD_run(). No MHD thread exists, so handlers
 * run on the loop's thread.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define TOKEN_MAX_BYTES 4096
#define PEM_MAX_BYTES (1u << 20)

struct route {
    char *method;  /* owned; NULL: any */
    char *pattern; /* owned */
    unsigned flags;
    ward_http_handler_fn fn;
    void *arg;
};

struct ready_check {
    char *name; /* owned */
    ward_http_ready_fn fn;
    void *arg;
};

struct scrape_hook {
    ward_http_scrape_fn fn;
    void *arg;
};

struct ward_http {
    struct ev_loop *loop;
    struct ward_metrics *metrics; /* borrowed */
    struct MHD_Daemon *mhd;
    ev_io io;
    ev_timer timer;
    uint16_t port;
    size_t max_body;
    bool auth_reads;
    char *token_file;               /* owned; NULL: no token, mutations refused */
    unsigned char token_digest[32]; /* SHA-256 of the token; the token itself is not kept */
    bool have_token;
    char *tls_cert_pem, *tls_key_pem; /* owned; MHD reads them at start */
    struct route *routes;             /* owned */
    size_t nroutes;
    struct ready_check *checks; /* owned */
    size_t nchecks;
    struct scrape_hook *scrapes; /* owned */
    size_t nscrapes;
    struct ward_metric *unauthorized, *requests;
    struct ward_metric *p_start, *p_rss, *p_vsize, *p_fds, *p_max_fds, *p_cpu;
    unsigned long runs;    /* MHD_run calls */
    unsigned long delayed; /* of them, held back by the stall backoff (see pump) */
    unsigned idle_zero;    /* runs in a row that MHD wanted again at once, for nothing */
    struct conn_state *sending; /* connections with a response queued and not completed */
    bool progress;              /* the access handler ran since the last pump */
};

/* Per-connection state between MHD's calls of the access handler. */
struct conn_state {
    struct ward_buf body;
    bool too_big;
    bool answered;
    bool queued; /* a response is queued: in the sending list until completed */
    int fd;      /* the connection's socket while queued; -1 when MHD did not tell */
    struct conn_state *snext, **sprev;
};

/*
 * Can one of the queued responses go on? MHD sends a TLS response a record per run without
 * a socket event in between, so while a response's socket takes data, a run MHD asks for at
 * once is work. A response whose client does not read waits for the socket's EPOLLOUT, and
 * does not count: it must not keep the stall backoff off for everyone else.
 */
static bool can_send(const struct ward_http *h)
{
    struct pollfd p[64];
    nfds_t n = 0;
    for (const struct conn_state *cs = h->sending; cs != NULL; cs = cs->snext) {
        p[n++] = (struct pollfd){.fd = cs->fd, .events = POLLOUT};
        if (n == WARD_ARRAY_SIZE(p) || cs->snext == NULL) {
            if (poll(p, n, 0) != 0) {
                return true; /* writable, or poll failed: hold nothing back */
            }
            n = 0;
        }
    }
    return false;
}

/* --- loop integration ------------------------------------------------------------------ */

static unsigned connections(const struct ward_http *h)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

/*
 * Run MHD, then arm the timer for its next deadline. woken: a socket event (or the start)
 * brought this run, not MHD's own request to run again.
 *
 * libmicrohttpd 0.9.75 in epoll mode keeps a TLS connection whose handshake waits for the
 * client among its ready connections (GnuTLS reads the socket itself, so MHD never learns
 * that the read would block) and so asks to run again at once, forever: a client that
 * sent three bytes of a TLS record held wardd at 100 % CPU until the connection timeout.
 * MHD also asks for immediate runs when it has real work without a socket event (it sends
 * a TLS response one record per run), so the wait grows only while nothing moves: no
 * socket event, no request or upload reaching the handler, no response being sent. Then
 * it doubles from 1 ms up to 64 ms; anything of those brings the next run at once again.
 */
static void pump(struct ward_http *h, bool woken)
{
    unsigned before = connections(h);
    MHD_run(h->mhd);
    h->runs++;
    ev_timer_stop(h->loop, &h->timer);
    MHD_UNSIGNED_LONG_LONG ms;
    bool timed = MHD_get_timeout(h->mhd, &ms) == MHD_YES;
    bool stalled = timed && ms == 0 && !woken && !h->progress && !can_send(h);
    h->progress = false;
    if (!stalled) {
        h->idle_zero = 0;
    } else {
        if (h->idle_zero < 7) {
            h->idle_zero++;
        }
        ms = 1u << (h->idle_zero - 1);
        h->delayed++;
    }
    /*
     * At the connection limit MHD takes its listening socket out of its epoll
     * set and puts it back at the start of a later MHD_run. When a connection
     * went away in this run, make that run happen now: connections waiting in
     * the backlog would otherwise wait for an unrelated event.
     */
    if (connections(h) < before) {
        timed = true;
        ms = 0;
    }
    if (timed) {
        ev_timer_set(&h->timer, (double)ms / 1000.0, 0);
        ev_timer_start(h->loop, &h->timer);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    pump(ward_container_of(w, struct ward_http, io), true);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    pump(ward_container_of(w, struct ward_http, timer), false);
}

void ward_http_loop_stats(const struct ward_http *h, unsigned long *runs, unsigned long *delayed)
{
    *runs = h->runs;
    *delayed = h->delayed;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *arg, const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
        text[--n] = '\0';
    }
    ward_log(WARD_LOG_WARN, "http", "libmicrohttpd: %s", text);
}

/* --- responses --------------------------------------------------------------------------- */

void ward_http_error(struct ward_http_response *res, int status, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    res->status = status;
    res->content_type = NULL;
    res->body.len = 0;
    if (res->body.data != NULL) {
        res->body.data[0] = '\0';
    }
    ward_buf_printf(&res->body, "{\"error\":{\"code\":%d,\"reason\":", status);
    ward_json_escape(&res->body, reason != NULL && *reason != '\0' ? reason : "Error");
    ward_buf_puts(&res->body, ",\"message\":");
    ward_json_escape(&res->body, message);
    ward_buf_puts(&res->body, "}}\n");
}

static enum MHD_Result send_response(struct ward_http *h, struct MHD_Connection *c,
                                     const char *handler, struct ward_http_response *res,
                                     bool challenge)
{
    size_t len = res->body.len;
    char *body = ward_buf_steal(&res->body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body != NULL ? body : (char *)"",
                                                             body != NULL ? MHD_RESPMEM_MUST_FREE
                                                                          : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type != NULL ? res->content_type : "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (challenge) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ward\"");
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)res->status, r);
    MHD_destroy_response(r);
    char code[8];
    snprintf(code, sizeof(code), "%d", res->status);
    ward_metric_add(h->requests, (const char *[]){handler, code}, 1);
    return rc;
}

/* --- authentication ---------------------------------------------------------------------- */

static void digest(const char *text, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(text, len, out, &n, EVP_sha256(), NULL) != 1) {
        /* no digest: make the compare fail rather than pass */
        memset(out, 0xff, 32);
    }
}

/* Comparing fixed-size digests with CRYPTO_memcmp hides both the content and the length. */
static bool token_ok(const struct ward_http *h, struct MHD_Connection *c)
{
    if (!h->have_token) {
        return false;
    }
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return false;
    }
    /* around the token is whitespace (RFC 9110 5.5, 11.4), never part of it */
    const char *presented = auth + 7;
    while (*presented == ' ' || *presented == '\t') {
        presented++;
    }
    size_t len = strlen(presented);
    while (len > 0 && (presented[len - 1] == ' ' || presented[len - 1] == '\t')) {
        len--;
    }
    unsigned char seen[32];
    digest(presented, len, seen);
    return CRYPTO_memcmp(seen, h->token_digest, sizeof(seen)) == 0;
}

static int read_small_file(const char *path, size_t max, const char *what, struct ward_buf *out,
                           struct ward_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return ward_error_set(err, -errno, "cannot read the %s file %s: %s", what, path,
                              strerror(errno));
    }
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        ward_buf_put(out, chunk, (size_t)n);
        if (out->len > max) {
            close(fd);
            return ward_error_set(err, -EFBIG, "the %s file %s is larger than %zu bytes", what,
                                  path, max);
        }
    }
    int saved = errno;
    close(fd);
    if (n < 0) {
        return ward_error_set(err, -saved, "cannot read the %s file %s: %s", what, path,
                              strerror(saved));
    }
    return 0;
}

static int load_token(const char *path, unsigned char out[32], struct ward_error *err)
{
    struct ward_buf text = {0};
    int rc = read_small_file(path, TOKEN_MAX_BYTES, "API token", &text, err);
    if (rc != 0) {
        ward_buf_free(&text);
        return rc;
    }
    size_t len = text.len;
    while (len > 0 && isspace((unsigned char)text.data[len - 1])) {
        len--;
    }
    bool printable = len > 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text.data[i];
        if (ch <= ' ' || ch >= 0x7f) {
            printable = false;
        }
    }
    if (len < 16 || !printable) {
        if (text.data != NULL) {
            OPENSSL_cleanse(text.data, text.len);
        }
        ward_buf_free(&text);
        return ward_error_set(err, -EINVAL,
                              "the API token in %s must be one line of at least 16 printable "
                              "characters without spaces",
                              path);
    }
    text.data[len] = '\0';
    ward_log_add_secret(text.data);
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        ward_log_fields(WARD_LOG_WARN, "http", (struct ward_log_field[]){{"file", path}}, 1,
                        "the API token file can be read by other users; chmod 600 it");
    }
    digest(text.data, len, out);
    OPENSSL_cleanse(text.data, text.len);
    ward_buf_free(&text);
    return 0;
}

int ward_http_reload_token(struct ward_http *h, struct ward_error *err)
{
    if (h->token_file == NULL) {
        return 0;
    }
    unsigned char fresh[32];
    int rc = load_token(h->token_file, fresh, err);
    if (rc == 0) {
        memcpy(h->token_digest, fresh, sizeof(fresh));
        h->have_token = true;
    }
    return rc;
}

/* --- built-in handlers -------------------------------------------------------------------- */

static void on_healthz(void *arg, const struct ward_http_request *req,
                       struct ward_http_response *res)
{
    ward_buf_puts(&res->body, "{\"status\":\"ok\"}\n");
}

static void on_readyz(void *arg, const struct ward_http_request *req,
                      struct ward_http_response *res)
{
    struct ward_http *h = arg;
    bool ready = true;
    struct ward_buf checks = {0};
    ward_buf_putc(&checks, '{');
    for (size_t i = 0; i < h->nchecks; i++) {
        struct ward_error err = {0};
        int rc = h->checks[i].fn(h->checks[i].arg, &err);
        if (i > 0) {
            ward_buf_putc(&checks, ',');
        }
        ward_json_escape(&checks, h->checks[i].name);
        ward_buf_putc(&checks, ':');
        if (rc == 0) {
            ward_buf_puts(&checks, "{\"ok\":true}");
        } else {
            ready = false;
            ward_buf_puts(&checks, "{\"ok\":false,\"message\":");
            ward_json_escape(&checks, err.text[0] != '\0' ? err.text : strerror(-rc));
            ward_buf_putc(&checks, '}');
        }
    }
    ward_buf_putc(&checks, '}');
    res->status = ready ? 200 : 503;
    ward_buf_printf(&res->body, "{\"status\":\"%s\",\"checks\":%s}\n",
                    ready ? "ready" : "not ready", checks.data);
    ward_buf_free(&checks);
}

/* Process figures from /proc; a value that cannot be read is left as it was. */
static void update_process_metrics(struct ward_http *h)
{
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    struct ward_buf stat = {0};
    if (read_small_file("/proc/self/stat", 8192, "process stat", &stat, NULL) == 0 &&
        stat.data != NULL && ticks > 0) {
        struct ward_proc_stat ps;
        if (ward_proc_stat_parse(stat.data, &ps) == 0) {
            double cpu = (double)(ps.utime + ps.stime) / (double)ticks;
            double before = ward_metric_value(h->p_cpu, NULL);
            if (cpu > before) {
                ward_metric_add(h->p_cpu, NULL, cpu - before);
            }
            ward_metric_set(h->p_vsize, NULL, (double)ps.vsize);
            ward_metric_set(h->p_rss, NULL, (double)ps.rss * (double)page);
            struct ward_buf boot = {0};
            if (read_small_file("/proc/stat", 1u << 20, "system stat", &boot, NULL) == 0 &&
                boot.data != NULL) {
                const char *b = strstr(boot.data, "\nbtime ");
                if (b != NULL) {
                    ward_metric_set(h->p_start, NULL,
                                    strtod(b + 7, NULL) + (double)ps.start / (double)ticks);
                }
            }
            ward_buf_free(&boot);
        }
    }
    ward_buf_free(&stat);
    DIR *dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(dir);
        ward_metric_set(h->p_fds, NULL, (double)(n - 1)); /* minus the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        ward_metric_set(h->p_max_fds, NULL, (double)rl.rlim_cur);
    }
}

static void on_metrics(void *arg, const struct ward_http_request *req,
                       struct ward_http_response *res)
{
    struct ward_http *h = arg;
    update_process_metrics(h);
    for (size_t i = 0; i < h->nscrapes; i++) {
        h->scrapes[i].fn(h->scrapes[i].arg, h->metrics);
    }
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ward_metrics_render(h->metrics, &res->body);
}

/* --- dispatch ------------------------------------------------------------------------------ */

static bool method_is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

static bool mutating(const char *method)
{
    return !method_is(method, "GET") && !method_is(method, "HEAD") && !method_is(method, "OPTIONS");
}

static bool path_matches(const struct route *r, const char *path)
{
    if (r->flags & WARD_HTTP_PREFIX) {
        return strncmp(path, r->pattern, strlen(r->pattern)) == 0;
    }
    return strcmp(path, r->pattern) == 0;
}

static enum MHD_Result dispatch(struct ward_http *h, struct MHD_Connection *c, const char *url,
                                const char *method, struct conn_state *cs)
{
    struct ward_http_response res = {.status = 200};
    if (cs->too_big) {
        ward_http_error(&res, 413, "request body larger than %zu bytes", h->max_body);
        return send_response(h, c, "body_limit", &res, false);
    }
    const struct route *route = NULL;
    bool path_known = false;
    for (size_t i = 0; i < h->nroutes && route == NULL; i++) {
        const struct route *r = &h->routes[i];
        if (!path_matches(r, url)) {
            continue;
        }
        path_known = true;
        if (r->method == NULL || method_is(method, r->method) ||
            (method_is(method, "HEAD") && method_is(r->method, "GET"))) {
            route = r;
        }
    }
    if (route == NULL) {
        if (path_known) {
            ward_http_error(&res, 405, "method %s is not allowed on %s", method, url);
        } else {
            ward_http_error(&res, 404, "no such endpoint");
        }
        return send_response(h, c, path_known ? "method_not_allowed" : "not_found", &res, false);
    }
    bool authorized = token_ok(h, c);
    if (strncmp(url, "/api/", 5) == 0 && !authorized && (mutating(method) || h->auth_reads)) {
        ward_metric_add(h->unauthorized, NULL, 1);
        const char *auth =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h->have_token) {
            ward_http_error(&res, 401,
                            "this agent has no API token configured (set http.token_file); "
                            "requests that change state are refused");
        } else if (auth == NULL) {
            ward_http_error(&res, 401, "missing 'Authorization: Bearer <token>' header");
        } else {
            ward_http_error(&res, 401, "the bearer token is not valid");
        }
        ward_log_fields(WARD_LOG_WARN, "http",
                        (struct ward_log_field[]){{"method", method}, {"path", url}}, 2,
                        "refused an unauthorized API request");
        return send_response(h, c, route->pattern, &res, true);
    }
    struct ward_http_request req = {
        .method = method,
        .path = url,
        .body = cs->body.data != NULL ? cs->body.data : "",
        .body_len = cs->body.len,
        .authorized = authorized,
        .conn = c,
    };
    route->fn(route->arg, &req, &res);
    return send_response(h, c, route->pattern, &res, false);
}

/* Dispatch the request (once: answered); a queued response is in the sending list until
 * completed. */
static enum MHD_Result answer(struct ward_http *h, struct MHD_Connection *c, const char *url,
                              const char *method, struct conn_state *cs)
{
    cs->answered = true;
    enum MHD_Result rc = dispatch(h, c, url, method, cs);
    if (rc == MHD_YES) {
        cs->queued = true;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->fd = ci != NULL ? ci->connect_fd : -1;
        cs->snext = h->sending;
        if (h->sending != NULL) {
            h->sending->sprev = &cs->snext;
        }
        cs->sprev = &h->sending;
        h->sending = cs;
    }
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct ward_http *h = cls;
    struct conn_state *cs = *con_cls;
    h->progress = true;
    if (cs == NULL) {
        cs = calloc(1, sizeof(*cs));
        if (cs == NULL) {
            return MHD_NO;
        }
        *con_cls = cs;
        const char *length =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length != NULL) {
            errno = 0;
            char *end;
            unsigned long long n = strtoull(length, &end, 10);
            if (errno != 0 || *end != '\0' || n > h->max_body) {
                /* refuse before reading a byte of it */
                cs->too_big = true;
                return answer(h, c, url, method, cs);
            }
        }
        return MHD_YES;
    }
    if (*upload_size != 0) {
        if (!cs->too_big && cs->body.len + *upload_size > h->max_body) {
            cs->too_big = true;
            ward_buf_free(&cs->body);
        }
        if (!cs->too_big) {
            ward_buf_put(&cs->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->answered) {
        return MHD_YES;
    }
    return answer(h, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct ward_http *h = cls;
    struct conn_state *cs = *con_cls;
    h->progress = true;
    if (cs != NULL) {
        if (cs->queued) {
            *cs->sprev = cs->snext;
            if (cs->snext != NULL) {
                cs->snext->sprev = cs->sprev;
            }
        }
        ward_buf_free(&cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

struct query_iter {
    int (*each)(void *ctx, const char *key, const char *value);
    void *ctx;
    int rc;
};

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct query_iter *it = cls;
    it->rc = it->each(it->ctx, key, value);
    return it->rc == 0 ? MHD_YES : MHD_NO;
}

int ward_http_query_each(const struct ward_http_request *req,
                         int (*each)(void *ctx, const char *key, const char *value), void *ctx)
{
    struct query_iter it = {each, ctx, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_arg, &it);
    return it.rc;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* libmicrohttpd's percent-decoding of the path and the query, except that "%00" stays as it
   is: a NUL would end the name or value for every C reader after it, so /hosts/a%00b would
   address host "a". Left encoded, it is refused as any other invalid name or value. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *out = s;
    for (const char *in = s; *in != '\0';) {
        int hi = in[0] == '%' ? hex_digit(in[1]) : -1;
        int lo = hi >= 0 ? hex_digit(in[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *out++ = (char)(hi << 4 | lo);
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* --- registration -------------------------------------------------------------------------- */

int ward_http_route(struct ward_http *h, const char *method, const char *pattern, unsigned flags,
                    ward_http_handler_fn fn, void *arg)
{
    struct route *grown = realloc(h->routes, (h->nroutes + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    h->routes = grown;
    struct route *r = &h->routes[h->nroutes];
    r->method = method != NULL ? strdup(method) : NULL;
    r->pattern = strdup(pattern);
    r->flags = flags;
    r->fn = fn;
    r->arg = arg;
    if (r->pattern == NULL || (method != NULL && r->method == NULL)) {
        free(r->method);
        free(r->pattern);
        return -ENOMEM;
    }
    h->nroutes++;
    return 0;
}

int ward_http_ready_check(struct ward_http *h, const char *name, ward_http_ready_fn fn, void *arg)
{
    struct ready_check *grown = realloc(h->checks, (h->nchecks + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    h->checks = grown;
    char *copy = strdup(name);
    if (copy == NULL) {
        return -ENOMEM;
    }
    h->checks[h->nchecks++] = (struct ready_check){.name = copy, .fn = fn, .arg = arg};
    return 0;
}

int ward_http_on_scrape(struct ward_http *h, ward_http_scrape_fn fn, void *arg)
{
    struct scrape_hook *grown = realloc(h->scrapes, (h->nscrapes + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    h->scrapes = grown;
    h->scrapes[h->nscrapes++] = (struct scrape_hook){.fn = fn, .arg = arg};
    return 0;
}

uint16_t ward_http_port(const struct ward_http *h)
{
    return h->port;
}

void ward_http_register_catalog(struct ward_metrics *m)
{
    static const double claim_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1,     2.5,  5,     10};
    ward_metrics_counter(m, "ward_physicalhost_state_transitions_total",
                         "PhysicalHost state transitions by from, to and reason.",
                         (const char *[]){"from", "to", "reason", NULL});
    ward_metrics_counter(m, "ward_physicalhost_stuck_states_total",
                         "Hosts detected stuck, by the state they were stuck in.",
                         (const char *[]){"state", NULL});
    ward_metrics_counter(m, "ward_physicalhost_recovery_attempts_total",
                         "Recovery attempts of stuck hosts by state and outcome.",
                         (const char *[]){"state", "outcome", NULL});
    /* the policy engine's buckets: states last seconds to days; whoever registers first wins */
    static const double state_bounds[] = {1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400};
    ward_metrics_histogram(m, "ward_physicalhost_state_duration_seconds",
                           "Time hosts spent in a state before leaving it.",
                           (const char *[]){"state", NULL}, state_bounds,
                           WARD_ARRAY_SIZE(state_bounds));
    ward_metrics_counter(m, "ward_host_claim_attempts_total",
                         "Host claim attempts by outcome and conflict reason.",
                         (const char *[]){"outcome", "conflict_reason", NULL});
    ward_metrics_histogram(m, "ward_host_claim_duration_seconds",
                           "Time from a claim request to its answer.", NULL, claim_bounds,
                           WARD_ARRAY_SIZE(claim_bounds));
    ward_metrics_gauge(m, "ward_provisioning_queue_length",
                       "Provisioning requests waiting in the queue.", NULL);
    /* untyped: promtool's lint reserves _count for histograms and summaries */
    ward_metrics_untyped(m, "ward_provisioning_queue_processing_count",
                         "Provisioning requests being worked on.", NULL);
    ward_metrics_gauge(m, "ward_provisioning_queue_max_size",
                       "Configured maximum length of the provisioning queue.", NULL);
    ward_metrics_counter(m, "ward_provisioning_queue_rejected_total",
                         "Provisioning requests refused because the queue was full.", NULL);
    ward_metrics_counter(m, "ward_bmc_cooldown_waits_total",
                         "Operations that waited for a BMC's cooldown, by BMC.",
                         (const char *[]){"bmc", NULL});
    ward_metrics_histogram(m, "ward_bmc_operation_duration_seconds",
                           "Duration of BMC operations by operation.",
                           (const char *[]){"operation", NULL}, NULL, 0);
    ward_metrics_histogram(m, "ward_reconcile_duration_seconds",
                           "Duration of one reconcile of a resource.", NULL, NULL, 0);
    ward_metrics_counter(m, "ward_policy_reloads_total",
                         "Configuration and policy reloads by outcome.",
                         (const char *[]){"outcome", NULL});
    ward_metrics_gauge(m, "ward_hosts", "Hosts in the inventory by lifecycle state.",
                       (const char *[]){"state", NULL});
    ward_metrics_gauge(m, "ward_leader", "1 while this agent holds the claim coordinator lease.",
                       NULL);
    ward_metrics_counter(m, "ward_leader_transitions_total",
                         "Times the claim coordinator lease changed hands as seen here.", NULL);
    ward_metrics_counter(m, "ward_events_total", "Events recorded by type.",
                         (const char *[]){"type", NULL});
}

/* --- listener address -------------------------------------------------------------------- */

static int parse_listen(const char *text, struct sockaddr_storage *ss, bool *loopback,
                        struct ward_error *err)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(host)) {
        return ward_error_set(err, -EINVAL,
                              "http.listen '%s': write it as ADDRESS:PORT (\"127.0.0.1:9580\", "
                              "\"[::1]:9580\")",
                              text);
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
        return ward_error_set(err, -EINVAL, "http.listen '%s': the port must be 0..65535", text);
    }
    memset(ss, 0, sizeof(*ss));
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) {
            return ward_error_set(err, -EINVAL, "http.listen '%s': not an IPv6 address", text);
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
        return ward_error_set(err, -EINVAL,
                              "http.listen '%s': not a numeric IPv4 address (IPv6 goes in "
                              "brackets; host names are not resolved)",
                              text);
    }
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    return 0;
}

/* --- lifetime ------------------------------------------------------------------------------- */

struct ward_http *ward_http_create(struct ev_loop *loop, struct ward_metrics *metrics,
                                   const struct ward_http_options *o, struct ward_error *err)
{
    static const struct ward_http_options defaults = {0};
    if (o == NULL) {
        o = &defaults;
    }
    const char *listen = o->listen != NULL ? o->listen : WARD_HTTP_DEFAULT_LISTEN;
    struct sockaddr_storage addr;
    bool loopback = false;
    if (parse_listen(listen, &addr, &loopback, err) != 0) {
        return NULL;
    }
    bool tls = o->tls_cert != NULL || o->tls_key != NULL;
    if (tls && (o->tls_cert == NULL || o->tls_key == NULL)) {
        ward_error_set(err, -EINVAL, "http: tls_cert and tls_key must be set together");
        return NULL;
    }
    if (!loopback && (!tls || o->token_file == NULL)) {
        ward_error_set(err, -EPERM,
                       "http.listen '%s' is not a loopback address: set http.tls_cert, "
                       "http.tls_key and http.token_file to serve it, or listen on 127.0.0.1",
                       listen);
        return NULL;
    }
    if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        ward_error_set(err, -ENOTSUP, "http: this libmicrohttpd was built without TLS support");
        return NULL;
    }
    struct ward_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->metrics = metrics;
    h->max_body = o->max_body != 0 ? o->max_body : WARD_HTTP_DEFAULT_MAX_BODY;
    h->auth_reads = o->auth_reads || !loopback;
    if (o->token_file != NULL) {
        if ((h->token_file = strdup(o->token_file)) == NULL) {
            ward_error_set(err, -ENOMEM, "out of memory");
            ward_http_destroy(h);
            return NULL;
        }
        if (ward_http_reload_token(h, err) != 0) {
            ward_http_destroy(h);
            return NULL;
        }
    }
    if (tls) {
        struct ward_buf cert = {0}, key = {0};
        if (read_small_file(o->tls_cert, PEM_MAX_BYTES, "TLS certificate", &cert, err) != 0 ||
            read_small_file(o->tls_key, PEM_MAX_BYTES, "TLS key", &key, err) != 0) {
            ward_buf_free(&cert);
            if (key.data != NULL) {
                OPENSSL_cleanse(key.data, key.len);
            }
            ward_buf_free(&key);
            ward_http_destroy(h);
            return NULL;
        }
        h->tls_cert_pem = ward_buf_steal(&cert);
        h->tls_key_pem = ward_buf_steal(&key);
        if (h->tls_cert_pem == NULL || h->tls_key_pem == NULL) {
            ward_error_set(err, -EINVAL, "http: the TLS certificate or key file is empty");
            ward_http_destroy(h);
            return NULL;
        }
    }

    h->unauthorized =
        ward_metrics_counter(metrics, "ward_api_unauthorized_total",
                             "API requests refused for a missing or wrong token.", NULL);
    h->requests = ward_metrics_counter(metrics, "ward_http_requests_total",
                                       "HTTP requests answered, by handler and status code.",
                                       (const char *[]){"handler", "code", NULL});
    h->p_start = ward_metrics_gauge(metrics, "process_start_time_seconds",
                                    "Start time of the process since unix epoch in seconds.", NULL);
    h->p_rss = ward_metrics_gauge(metrics, "process_resident_memory_bytes",
                                  "Resident memory size in bytes.", NULL);
    h->p_vsize = ward_metrics_gauge(metrics, "process_virtual_memory_bytes",
                                    "Virtual memory size in bytes.", NULL);
    h->p_fds =
        ward_metrics_gauge(metrics, "process_open_fds", "Number of open file descriptors.", NULL);
    h->p_max_fds = ward_metrics_gauge(metrics, "process_max_fds",
                                      "Maximum number of open file descriptors.", NULL);
    h->p_cpu = ward_metrics_counter(metrics, "process_cpu_seconds_total",
                                    "Total user and system CPU time spent in seconds.", NULL);
    ward_http_register_catalog(metrics);
    ward_metric_add(h->unauthorized, NULL, 0);
    update_process_metrics(h);

    if (ward_http_route(h, "GET", "/metrics", WARD_HTTP_EXACT, on_metrics, h) != 0 ||
        ward_http_route(h, "GET", "/healthz", WARD_HTTP_EXACT, on_healthz, h) != 0 ||
        ward_http_route(h, "GET", "/readyz", WARD_HTTP_EXACT, on_readyz, h) != 0) {
        ward_error_set(err, -ENOMEM, "out of memory");
        ward_http_destroy(h);
        return NULL;
    }

    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    if (tls) {
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[] = {
        /* first, so MHD's own early messages go to it too */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_CONNECTION_LIMIT,
         o->max_connections != 0 ? o->max_connections : WARD_HTTP_DEFAULT_MAX_CONNECTIONS, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, o->timeout != 0 ? o->timeout : WARD_HTTP_DEFAULT_TIMEOUT,
         NULL},
        /* headers and the read buffer live in this; bodies are copied out as they arrive */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert_pem},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (h->mhd == NULL) {
        ward_error_set(err, -EADDRNOTAVAIL,
                       "http: cannot listen on %s (address in use or not available%s)", listen,
                       tls ? ", or the TLS certificate/key is not valid PEM" : "");
        ward_http_destroy(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : 0;
    info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        ward_error_set(err, -EIO, "http: libmicrohttpd did not give an epoll descriptor");
        ward_http_destroy(h);
        return NULL;
    }
    ev_io_init(&h->io, on_io, info->epoll_fd, EV_READ);
    ev_io_start(loop, &h->io);
    ev_init(&h->timer, on_timer);
    pump(h, true);
    char port[8];
    snprintf(port, sizeof(port), "%u", h->port);
    ward_log_fields(WARD_LOG_INFO, "http",
                    (struct ward_log_field[]){
                        {"listen", listen}, {"port", port}, {"tls", tls ? "true" : "false"}},
                    3, "serving /metrics, /healthz, /readyz and /api/v1");
    return h;
}

void ward_http_destroy(struct ward_http *h)
{
    if (h == NULL) {
        return;
    }
    if (h->mhd != NULL) {
        ev_io_stop(h->loop, &h->io);
        ev_timer_stop(h->loop, &h->timer);
        MHD_stop_daemon(h->mhd);
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].pattern);
    }
    free(h->routes);
    for (size_t i = 0; i < h->nchecks; i++) {
        free(h->checks[i].name);
    }
    free(h->checks);
    free(h->scrapes);
    free(h->token_file);
    OPENSSL_cleanse(h->token_digest, sizeof(h->token_digest));
    free(h->tls_cert_pem);
    if (h->tls_key_pem != NULL) {
        OPENSSL_cleanse(h->tls_key_pem, strlen(h->tls_key_pem));
        free(h->tls_key_pem);
    }
    free(h);
}

/* --- configuration ---------------------------------------------------------------------------- */

void ward_http_options_free(struct ward_http_options *o)
{
    free((char *)o->listen);
    free((char *)o->token_file);
    free((char *)o->tls_cert);
    free((char *)o->tls_key);
    memset(o, 0, sizeof(*o));
}

static int option_string(lua_State *L, const char **field, const char *key, struct ward_error *err)
{
    if (lua_type(L, -1) != LUA_TSTRING) {
        return ward_error_set(err, -EINVAL, "http.%s must be a string", key);
    }
    char *copy = strdup(lua_tostring(L, -1));
    if (copy == NULL) {
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    free((char *)*field);
    *field = copy;
    return 0;
}

static int option_count(lua_State *L, long long max, long long *out, const char *key,
                        struct ward_error *err)
{
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > max) {
        return ward_error_set(err, -EINVAL, "http.%s must be an integer from 1 to %lld", key, max);
    }
    *out = (long long)lua_tointeger(L, -1);
    return 0;
}

static int option_one(lua_State *L, const char *key, struct ward_http_options *o,
                      struct ward_error *err)
{
    long long n;
    int rc;
    if (strcmp(key, "listen") == 0) {
        return option_string(L, &o->listen, key, err);
    }
    if (strcmp(key, "token_file") == 0) {
        return option_string(L, &o->token_file, key, err);
    }
    if (strcmp(key, "tls_cert") == 0) {
        return option_string(L, &o->tls_cert, key, err);
    }
    if (strcmp(key, "tls_key") == 0) {
        return option_string(L, &o->tls_key, key, err);
    }
    if (strcmp(key, "max_body") == 0) {
        if ((rc = option_count(L, 64ll << 20, &n, key, err)) == 0) {
            o->max_body = (size_t)n;
        }
        return rc;
    }
    if (strcmp(key, "max_connections") == 0) {
        if ((rc = option_count(L, 10000, &n, key, err)) == 0) {
            o->max_connections = (unsigned)n;
        }
        return rc;
    }
    if (strcmp(key, "timeout") == 0) {
        double seconds;
        if (lua_type(L, -1) != LUA_TSTRING ||
            ward_duration_parse(lua_tostring(L, -1), &seconds) != 0 || seconds < 1 ||
            seconds > 3600) {
            return ward_error_set(err, -EINVAL,
                                  "http.timeout must be a duration from 1s to 1h, like \"30s\"");
        }
        o->timeout = (unsigned)seconds;
        return 0;
    }
    if (strcmp(key, "auth_reads") == 0) {
        if (!lua_isboolean(L, -1)) {
            return ward_error_set(err, -EINVAL, "http.auth_reads must be true or false");
        }
        o->auth_reads = lua_toboolean(L, -1);
        return 0;
    }
    return ward_error_set(err, -EINVAL,
                          "http: unknown setting '%s' (known: listen, token_file, tls_cert, "
                          "tls_key, max_body, max_connections, timeout, auth_reads)",
                          key);
}

int ward_http_options_from_config(const struct ward_config *cfg, struct ward_http_options *o,
                                  struct ward_error *err)
{
    memset(o, 0, sizeof(*o));
    if (cfg == NULL || cfg->L == NULL) {
        return 0;
    }
    lua_State *L = cfg->L;
    int top = lua_gettop(L);
    int rc = 0;
    int type = ward_config_section(cfg, "http");
    if (type == LUA_TTABLE) {
        lua_pushnil(L);
        while (rc == 0 && lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                rc = ward_error_set(err, -EINVAL, "http: settings must have names");
            } else {
                rc = option_one(L, lua_tostring(L, -2), o, err);
            }
            lua_pop(L, 1);
        }
    } else if (type != LUA_TNIL) {
        rc = ward_error_set(err, -EINVAL, "http must be a table: http = { listen = ... }");
    }
    lua_settop(L, top);
    if (rc != 0) {
        ward_http_options_free(o);
    }
    return rc;
}
