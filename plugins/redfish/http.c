/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "util.h" /* ward_monotonic, from wardd's core */

static void grow(struct ward_rf_buf *b, size_t need)
{
    if (b->len + need + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap != 0 ? b->cap : 256;
    while (cap < b->len + need + 1) {
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        abort(); /* no useful recovery from a failed small allocation on the loop */
    }
    b->data = p;
    b->cap = cap;
}

void ward_rf_buf_put(struct ward_rf_buf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ward_rf_buf_puts(struct ward_rf_buf *b, const char *s)
{
    ward_rf_buf_put(b, s, strlen(s));
}

void ward_rf_buf_printf(struct ward_rf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ward_rf_buf_free(struct ward_rf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char *ward_rf_method_name(enum ward_rf_method m)
{
    switch (m) {
    case WARD_RF_GET:
        return "GET";
    case WARD_RF_POST:
        return "POST";
    case WARD_RF_PATCH:
        return "PATCH";
    case WARD_RF_DELETE:
        return "DELETE";
    }
    return "GET";
}

/* One watched socket; owned by the client through curl's socket pointer. */
struct sock {
    ev_io io;
    struct ward_rf_http *h;
    curl_socket_t fd;
};

struct ward_rf_http {
    struct ev_loop *loop;          /* not owned */
    CURLM *multi;                  /* owned */
    ev_timer timer;                /* curl's single timeout */
    long max_idle;                 /* seconds an idle connection stays in the cache */
    unsigned max_idle_pools;       /* idle pools that may keep their connections */
    /* Pools with connections and no request, least recently used first: since every pool
       waits the same max_idle, the head's time is always the first to come, and one timer
       serves them all. */
    struct ward_rf_http_pool *idle_head, *idle_tail;
    ev_timer idle_timer;
    unsigned idle_pools;
    unsigned pools;                /* alive */
    struct ward_rf_http_req *reqs; /* owned, doubly linked, in flight */
    unsigned active;
    unsigned watched; /* sockets with an ev_io */
};

struct ward_rf_http_pool {
    struct ward_rf_http *h;
    CURLSH *share;     /* owned: its connection cache; NULL while the pool holds no connection */
    double idle_since; /* monotonic time its last request ended, while on the idle list */
    unsigned users;    /* requests in flight through the pool */
    bool orphaned;  /* its owner let go: freed with its last request */
    bool failed;    /* a transfer failed since the pool was last idle */
    bool on_idle_list;
    struct ward_rf_http_pool *idle_prev, *idle_next;
};

struct ward_rf_http_req {
    struct ward_rf_http *h;
    struct ward_rf_http_req *prev, *next;
    CURL *easy;                 /* owned */
    struct ward_rf_http_pool *pool; /* holds one use of it, or NULL */
    struct curl_slist *headers; /* owned */
    char *body;                 /* owned request body */
    size_t body_sent;           /* bytes of a POST body handed to libcurl */
    ward_rf_http_cb cb;
    void *arg;
    struct ward_rf_buf resp;
    char etag[256];
    char location[1024];
    char token[4096];            /* JWT-style tokens run to a few KiB */
    const char *header_too_long; /* a wanted header that did not fit: the answer fails */
    double retry_after;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    double started;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void idle_unlink(struct ward_rf_http_pool *p)
{
    struct ward_rf_http *h = p->h;
    if (!p->on_idle_list) {
        return;
    }
    if (p->idle_prev != NULL) {
        p->idle_prev->idle_next = p->idle_next;
    } else {
        h->idle_head = p->idle_next;
    }
    if (p->idle_next != NULL) {
        p->idle_next->idle_prev = p->idle_prev;
    } else {
        h->idle_tail = p->idle_prev;
    }
    p->idle_prev = p->idle_next = NULL;
    p->on_idle_list = false;
    h->idle_pools--;
}

/* Close an idle pool's connections (its sockets are no longer watched: no transfer uses
   them). */
static void pool_close(struct ward_rf_http_pool *p)
{
    idle_unlink(p);
    if (p->share != NULL && curl_share_cleanup(p->share) == CURLSHE_OK) {
        p->share = NULL;
    }
}

static void pool_free(struct ward_rf_http_pool *p)
{
    pool_close(p);
    p->h->pools--;
    free(p);
}

static void pool_release(struct ward_rf_http_pool *p)
{
    struct ward_rf_http *h = p->h;
    if (--p->users > 0) {
        return;
    }
    if (p->orphaned) {
        pool_free(p);
        return;
    }
    if (p->failed) {
        /* a refused or dead connection is nothing to keep, and must not take the room of a
           BMC that answers */
        p->failed = false;
        pool_close(p);
        return;
    }
    if (p->share == NULL) {
        return;
    }
    p->idle_since = ward_monotonic();
    if (!ev_is_active(&h->idle_timer)) {
        ev_timer_set(&h->idle_timer, (double)h->max_idle, 0.);
        ev_timer_start(h->loop, &h->idle_timer);
    }
    p->idle_prev = h->idle_tail;
    if (h->idle_tail != NULL) {
        h->idle_tail->idle_next = p;
    } else {
        h->idle_head = p;
    }
    h->idle_tail = p;
    p->on_idle_list = true;
    h->idle_pools++;
    /* however long the idle time, the client keeps no more idle connections than this */
    while (h->idle_pools > h->max_idle_pools) {
        pool_close(h->idle_head);
    }
}

/* Close the pools idle for max_idle, then wait for the next one's time (an early wake-up,
   when the pool it was set for got busy or closed meanwhile, only sets it again). */
static void on_pools_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_http *h = ward_rf_container_of(w, struct ward_rf_http, idle_timer);
    double now = ward_monotonic();
    while (h->idle_head != NULL && h->idle_head->idle_since + (double)h->max_idle <= now) {
        pool_close(h->idle_head);
    }
    if (h->idle_head != NULL) {
        ev_timer_set(w, h->idle_head->idle_since + (double)h->max_idle - now, 0.);
        ev_timer_start(loop, w);
    }
}

struct ward_rf_http_pool *ward_rf_http_pool_create(struct ward_rf_http *h)
{
    struct ward_rf_http_pool *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->h = h;
        h->pools++;
    }
    return p;
}

void ward_rf_http_pool_destroy(struct ward_rf_http_pool *p)
{
    if (p == NULL) {
        return;
    }
    if (p->users > 0) {
        p->orphaned = true;
        return;
    }
    pool_free(p);
}

bool ward_rf_http_pool_open(const struct ward_rf_http_pool *p)
{
    return p->share != NULL;
}

/* Take r out of the client: afterwards only its own memory remains. */
static void req_detach(struct ward_rf_http_req *r)
{
    struct ward_rf_http *h = r->h;
    if (r->easy == NULL) {
        return;
    }
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        h->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    h->active--;
    curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    r->cb = NULL;
    if (r->pool != NULL) {
        pool_release(r->pool);
        r->pool = NULL;
    }
}

/* A request body may be a login's, with the password in it: wiped before it is freed. */
static void body_free(char *body)
{
    if (body != NULL) {
        explicit_bzero(body, strlen(body));
        free(body);
    }
}

static void req_free(struct ward_rf_http_req *r)
{
    req_detach(r);
    curl_slist_free_all(r->headers);
    body_free(r->body);
    ward_rf_buf_free(&r->resp);
    free(r);
}

/* Give the caller the reason a transfer failed in words an operator understands. */
static int describe_error(CURLcode rc, const char *detail, char *out, size_t outlen)
{
    const char *d = detail[0] != '\0' ? detail : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(out, outlen, "certificate verify failed: %s", d);
        return -EPROTO;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(out, outlen, "TLS handshake failed: %s", d);
        return -EPROTO;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(out, outlen, "timed out: %s", d);
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        snprintf(out, outlen, "connection refused or unreachable: %s", d);
        return -ECONNREFUSED;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        snprintf(out, outlen, "connection reset: %s", d);
        return -ECONNRESET;
    case CURLE_SEND_FAIL_REWIND:
        snprintf(out, outlen, "connection lost after the request was sent (outcome unknown): %s",
                 d);
        return -ECONNRESET;
    case CURLE_PARTIAL_FILE:
        snprintf(out, outlen, "truncated response: %s", d);
        return -EPIPE;
    case CURLE_WRITE_ERROR:
        snprintf(out, outlen, "response larger than %u bytes", WARD_RF_HTTP_MAX_BODY);
        return -EFBIG;
    default:
        snprintf(out, outlen, "HTTP transfer failed: %s", d);
        return -EIO;
    }
}

static void finish(struct ward_rf_http_req *r, CURLcode rc)
{
    struct ward_rf_response resp = {0};
    char reason[CURL_ERROR_SIZE + 64] = "";
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && r->header_too_long != NULL) {
        resp.code = -EPROTO;
        snprintf(reason, sizeof(reason), "the BMC's %s header is too long to keep",
                 r->header_too_long);
    } else if (rc == CURLE_OK) {
        resp.status = status;
    } else {
        if (r->too_large) {
            rc = CURLE_WRITE_ERROR;
        }
        resp.code = describe_error(rc, r->errbuf, reason, sizeof(reason));
    }
    resp.reason = reason;
    resp.body = r->resp.data != NULL ? r->resp.data : "";
    resp.body_len = r->resp.len;
    resp.etag = r->etag[0] != '\0' ? r->etag : NULL;
    resp.location = r->location[0] != '\0' ? r->location : NULL;
    resp.auth_token = r->token[0] != '\0' ? r->token : NULL;
    resp.retry_after = r->retry_after;
    resp.elapsed = now_mono() - r->started;
    if (rc != CURLE_OK && r->pool != NULL) {
        r->pool->failed = true;
    }
    ward_rf_http_cb cb = r->cb;
    void *arg = r->arg;
    /* detach first so the callback may start or cancel other requests freely */
    req_detach(r);
    cb(arg, &resp);
    r->h = NULL;
    req_free(r);
}

static void drain(struct ward_rf_http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct ward_rf_http_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        if (r != NULL) {
            finish(r, rc);
        }
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sock *s = ward_rf_container_of(w, struct sock, io);
    struct ward_rf_http *h = s->h;
    int flags =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    drain(h);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ward_rf_http *h = ward_rf_container_of(w, struct ward_rf_http, timer);
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct ward_rf_http *h = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            ev_io_stop(h->loop, &s->io);
            free(s);
            curl_multi_assign(h->multi, fd, NULL);
            h->watched--;
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return -1;
        }
        s->h = h;
        s->fd = fd;
        curl_multi_assign(h->multi, fd, s);
        h->watched++;
    } else {
        ev_io_stop(h->loop, &s->io);
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    ev_io_init(&s->io, on_io, fd, events);
    ev_io_start(h->loop, &s->io);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct ward_rf_http *h = userp;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": still from the loop, never recursively from here */
        ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

struct ward_rf_http *ward_rf_http_create(struct ev_loop *loop)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return NULL;
        }
        global_done = true;
    }
    struct ward_rf_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->loop = loop;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return NULL;
    }
    ev_timer_init(&h->timer, on_timer, 0., 0.);
    ev_timer_init(&h->idle_timer, on_pools_idle, 0., 0.);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    ward_rf_http_set_connection_limits(h, WARD_RF_HTTP_DEFAULT_CONNECTIONS, 2);
    return h;
}

void ward_rf_http_set_connection_limits(struct ward_rf_http *h, unsigned max_connections,
                                        unsigned max_idle)
{
    /*
     * Each cached connection keeps its socket and TLS state (tens of KiB), and a BMC has
     * few connection slots to spare: a pool closes its connections after max_idle seconds
     * without a request; libcurl closes those of its own cache when it next connects after
     * that age, and its oldest when the cache is full.
     *
     * Why pools: libcurl 7.88's connection cache costs time in proportion to what it
     * holds. Every finished transfer walks it (close_connect_only in
     * curl_multi_remove_handle), and once a second a new connection walks it again,
     * checking each idle connection with a system call and starting over after each dead
     * one it removes (prune_dead_connections); a connection closed for lack of room leaves
     * its host's empty entry behind for every later walk. With one cache for a fleet those
     * walks took about a tenth of wardd's CPU while it enrolled 10,000 hosts (perf, libcurl
     * 7.88.1 built with symbols), and a quarter before the cap and the age limit. A pool's
     * cache holds one BMC's connections.
     */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
                      (long)(max_connections > 0 ? max_connections : 1));
    h->max_idle_pools = max_connections > 0 ? max_connections : 1;
    h->max_idle = max_idle > 0 ? (long)max_idle : 1;
}

void ward_rf_http_destroy(struct ward_rf_http *h)
{
    if (h == NULL) {
        return;
    }
    while (h->reqs != NULL) {
        req_free(h->reqs);
    }
    ev_timer_stop(h->loop, &h->timer);
    ev_timer_stop(h->loop, &h->idle_timer);
    /* curl_multi_cleanup closes cached connections and reports their sockets removed */
    curl_multi_cleanup(h->multi);
    free(h);
}

unsigned ward_rf_http_active(const struct ward_rf_http *h)
{
    return h->active;
}

unsigned ward_rf_http_watched(const struct ward_rf_http *h)
{
    return h->watched;
}

unsigned ward_rf_http_pools(const struct ward_rf_http *h)
{
    return h->pools;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct ward_rf_http_req *r = userdata;
    size_t n = size * nmemb;
    if (r->resp.len + n > WARD_RF_HTTP_MAX_BODY) {
        r->too_large = true;
        return 0;
    }
    ward_rf_buf_put(&r->resp, ptr, n);
    return n;
}

/* Copy a header value without the trailing CRLF and surrounding blanks; false when it
   had to be cut to fit. */
static bool header_value(const char *v, size_t n, char *out, size_t outlen)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) {
        n--;
    }
    bool fits = n < outlen;
    if (!fits) {
        n = outlen - 1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return fits;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct ward_rf_http_req *r = userdata;
    size_t n = size * nitems;
    static const struct {
        const char *name;
        const char *shown;
        size_t off;
        size_t len;
    } wanted[] = {
        {"etag:", "ETag", offsetof(struct ward_rf_http_req, etag),
         sizeof(((struct ward_rf_http_req *)0)->etag)},
        {"location:", "Location", offsetof(struct ward_rf_http_req, location),
         sizeof(((struct ward_rf_http_req *)0)->location)},
        {"x-auth-token:", "X-Auth-Token", offsetof(struct ward_rf_http_req, token),
         sizeof(((struct ward_rf_http_req *)0)->token)},
    };
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue or redirect) resets what we saw */
        r->etag[0] = r->location[0] = r->token[0] = '\0';
        r->header_too_long = NULL;
        r->retry_after = 0;
        return n;
    }
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        size_t kl = strlen(wanted[i].name);
        if (n > kl && strncasecmp(buf, wanted[i].name, kl) == 0) {
            /* cut short, a token or a session's path would name nothing, and every use of
               it would be a 401 and a new login */
            if (!header_value(buf + kl, n - kl, (char *)r + wanted[i].off, wanted[i].len)) {
                r->header_too_long = wanted[i].shown;
            }
            return n;
        }
    }
    if (n > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        char v[32];
        header_value(buf + 12, n - 12, v, sizeof(v));
        char *end;
        double d = strtod(v, &end);
        if (end != v && d >= 0 && d < 3600) {
            r->retry_after = d;
        }
    }
    return n;
}

static size_t read_body(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct ward_rf_http_req *r = userdata;
    size_t left = strlen(r->body) - r->body_sent;
    size_t n = size * nitems < left ? size * nitems : left;
    memcpy(buf, r->body + r->body_sent, n);
    r->body_sent += n;
    return n;
}

static int refuse_seek(void *userdata, curl_off_t offset, int origin)
{
    struct ward_rf_http_req *r = userdata;
    /* a rewind to the start before anything was sent is harmless (a fresh attempt) */
    if (origin == SEEK_SET && offset == 0 && r->body_sent == 0) {
        return CURL_SEEKFUNC_OK;
    }
    return CURL_SEEKFUNC_CANTSEEK;
}

static int add_header(struct ward_rf_http_req *r, const char *name, const char *value)
{
    char line[sizeof(((struct ward_rf_http_req *)0)->token) + 64]; /* a whole token fits */
    int n = snprintf(line, sizeof(line), "%s%s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return -E2BIG;
    }
    /* reject header injection through a value that came from outside */
    if (strpbrk(line, "\r\n") != NULL) {
        return -EINVAL;
    }
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (l == NULL) {
        return -ENOMEM;
    }
    r->headers = l;
    return 0;
}

/* Undo a request that never reached the multi handle. */
static void discard_unstarted(struct ward_rf_http_req *r)
{
    curl_slist_free_all(r->headers);
    curl_easy_cleanup(r->easy);
    if (r->pool != NULL) {
        pool_release(r->pool);
    }
    body_free(r->body);
    free(r);
}

/* The pool's connection cache, made when it holds none. */
static bool pool_share(struct ward_rf_http_pool *p)
{
    if (p->share == NULL) {
        p->share = curl_share_init();
        if (p->share != NULL &&
            curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
            curl_share_cleanup(p->share);
            p->share = NULL;
        }
    }
    return p->share != NULL;
}

struct ward_rf_http_req *ward_rf_http_start(struct ward_rf_http *h,
                                            const struct ward_rf_http_opts *o, ward_rf_http_cb cb,
                                            void *arg, struct ward_error *err)
{
    if (o->url == NULL || strncmp(o->url, "http", 4) != 0) {
        ward_error_set(err, -EINVAL, "invalid URL");
        return NULL;
    }
    struct ward_rf_http_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        free(r);
        ward_error_set(err, -ENOMEM, "cannot create a transfer");
        return NULL;
    }
    CURL *e = r->easy;
    int rc = add_header(r, "Accept: ", "application/json");
    if (rc == 0) {
        rc = add_header(r, "OData-Version: ", "4.0");
    }
    if (rc == 0 && o->body != NULL) {
        rc = add_header(r, "Content-Type: ", "application/json");
    }
    if (rc == 0 && o->if_match != NULL) {
        rc = add_header(r, "If-Match: ", o->if_match);
    }
    if (rc == 0 && o->auth_token != NULL) {
        rc = add_header(r, "X-Auth-Token: ", o->auth_token);
    }
    /* libcurl sends "Expect: 100-continue" for larger bodies; BMCs handle it badly */
    if (rc == 0) {
        rc = add_header(r, "Expect:", "");
    }
    if (rc != 0) {
        discard_unstarted(r);
        ward_error_set(err, rc, "invalid request header value");
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_URL, o->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* The multi handle's DNS cache grows with every BMC name and libcurl prunes it by walking
       all of it at each resolve: with thousands of BMCs that was a cost per connection
       proportional to the fleet. A connection is reused for a BMC's requests anyway. */
    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, r->h->max_idle);
    switch (o->method) {
    case WARD_RF_GET:
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        break;
    case WARD_RF_POST:
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        break;
    case WARD_RF_PATCH:
    case WARD_RF_DELETE:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, ward_rf_method_name(o->method));
        break;
    }
    if (o->body != NULL) {
        r->body = strdup(o->body);
        if (r->body == NULL) {
            discard_unstarted(r);
            ward_error_set(err, -ENOMEM, "out of memory");
            return NULL;
        }
        if (o->method == WARD_RF_POST) {
            /* libcurl silently sends a request again when a reused connection dies before
               any answer; a POST (power, media) could then act twice. Streaming the body
               from a source that cannot rewind makes that case an error instead
               (CURLE_SEND_FAIL_REWIND), and the caller re-checks the outcome by reading
               state. GET, PATCH and DELETE keep the harmless retry. */
            curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
            curl_easy_setopt(e, CURLOPT_READDATA, r);
            curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, refuse_seek);
            curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
        }
    } else if (o->method == WARD_RF_POST) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (o->user != NULL && o->password != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, o->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, o->password);
    }
    if (o->cainfo != NULL) {
        /* This bundle only: without the build's default CA directory, which would also be
           trusted, libcurl keeps the parsed store in the multi handle for the next
           connections instead of reading and parsing the file for each handshake. */
        curl_easy_setopt(e, CURLOPT_CAINFO, o->cainfo);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (o->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (o->connect_timeout > 0) {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000));
    }
    if (o->timeout > 0) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    }
    if (o->low_speed_time > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(o->low_speed_time + 0.999));
    }
    if (o->pool != NULL) {
        if (!pool_share(o->pool)) {
            discard_unstarted(r);
            ward_error_set(err, -ENOMEM, "cannot create a connection pool");
            return NULL;
        }
        curl_easy_setopt(e, CURLOPT_SHARE, o->pool->share);
        idle_unlink(o->pool);
        o->pool->users++;
        r->pool = o->pool;
    }
    r->started = now_mono();
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        discard_unstarted(r);
        ward_error_set(err, -EIO, "cannot queue the transfer");
        return NULL;
    }
    r->next = h->reqs;
    if (h->reqs != NULL) {
        h->reqs->prev = r;
    }
    h->reqs = r;
    h->active++;
    return r;
}

void ward_rf_http_cancel(struct ward_rf_http_req *r)
{
    if (r != NULL && r->cb != NULL) {
        req_free(r);
    }
}
