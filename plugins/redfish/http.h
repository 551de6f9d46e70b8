/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An asynchronous HTTPS client on the core's libev loop: libcurl's multi-socket
 * interface driven by one ev_io per socket and one ev_timer. Connections are kept
 * alive and reused: a request made through a pool (one per BMC) reuses that pool's
 * connection, which the pool closes once it has been idle for a while; other requests
 * share the client's connection cache. Every request is verified against the system or
 * a per-request CA bundle unless marked insecure.
 */
#ifndef WARD_REDFISH_HTTP_H
#define WARD_REDFISH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include <ward/plugin.h>

#define ward_rf_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A growable NUL-terminated byte string private to the plugin (it links nothing of ward's). */
struct ward_rf_buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
};

void ward_rf_buf_put(struct ward_rf_buf *b, const char *s, size_t n);
void ward_rf_buf_puts(struct ward_rf_buf *b, const char *s);
void ward_rf_buf_printf(struct ward_rf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ward_rf_buf_free(struct ward_rf_buf *b);

/* Largest response body kept; a larger one fails the request instead of growing memory. */
#define WARD_RF_HTTP_MAX_BODY (8u * 1024u * 1024u)

struct ward_rf_http;
struct ward_rf_http_req;
struct ward_rf_http_pool;

/* What one request produced. Lives only for the duration of the completion callback. */
struct ward_rf_response {
    int code;         /* 0 when an HTTP answer arrived, else a negative errno */
    long status;      /* HTTP status, 0 when none arrived */
    const char *body; /* NUL-terminated, never NULL */
    size_t body_len;
    const char *etag;       /* ETag header or NULL */
    const char *location;   /* Location header or NULL */
    const char *auth_token; /* X-Auth-Token header or NULL; a secret */
    double retry_after;     /* Retry-After seconds, 0 when absent */
    double elapsed;         /* seconds from start to completion */
    const char *reason;     /* readable text when code != 0, never NULL */
};

enum ward_rf_method {
    WARD_RF_GET,
    WARD_RF_POST,
    WARD_RF_PATCH,
    WARD_RF_DELETE,
};

const char *ward_rf_method_name(enum ward_rf_method m);

struct ward_rf_http_opts {
    enum ward_rf_method method;
    const char *url;        /* full URL; never carries credentials */
    const char *body;       /* JSON body or NULL; copied */
    const char *if_match;   /* ETag for If-Match, or NULL */
    const char *auth_token; /* X-Auth-Token to send, or NULL; a secret */
    const char *user;       /* basic auth user (CURLOPT_USERNAME), or NULL */
    const char *password;   /* basic auth password, or NULL; a secret */
    const char *cainfo;     /* CA bundle path, NULL for the system default */
    bool insecure;          /* skip peer and host verification */
    double connect_timeout; /* seconds, 0 for libcurl's default */
    double timeout;         /* seconds for the whole transfer, 0 for none */
    double low_speed_time;  /* abort when below 1 byte/s for this long (slow drip); 0 off */
    struct ward_rf_http_pool *pool; /* the connections to reuse, or NULL for the client's */
};

typedef void (*ward_rf_http_cb)(void *arg, const struct ward_rf_response *resp);

/* NULL on allocation failure. The client does not own the loop. */
struct ward_rf_http *ward_rf_http_create(struct ev_loop *loop);
/* Connections kept for reuse: a pool's are closed once it has been idle for max_idle
 * seconds (1 or more), and the least recently used idle pool's at once when more than
 * max_connections pools are idle with connections; the client's own cache, for requests
 * without a pool, holds at most max_connections, each closed once older than max_idle. */
#define WARD_RF_HTTP_DEFAULT_CONNECTIONS 64
void ward_rf_http_set_connection_limits(struct ward_rf_http *h, unsigned max_connections,
                                        unsigned max_idle);
/* Cancels every request still in flight without calling its callback. Destroy the pools
 * first. */
void ward_rf_http_destroy(struct ward_rf_http *h);

/*
 * The connections of one server (a BMC). Requests made through a pool use only its
 * connections, and the pool closes them once none of its requests has run for the
 * client's max_idle seconds, so an idle BMC keeps no socket open and the cost of
 * finding or pruning a connection does not grow with the number of BMCs. NULL on
 * allocation failure.
 */
struct ward_rf_http_pool *ward_rf_http_pool_create(struct ward_rf_http *h);
/* Let go of a pool: its connections close when its last request in flight ends (at
 * once if none is). */
void ward_rf_http_pool_destroy(struct ward_rf_http_pool *p);
/* Whether the pool holds connections (open or being opened); for tests. */
bool ward_rf_http_pool_open(const struct ward_rf_http_pool *p);

/*
 * Start a request; cb runs exactly once from the loop (never from inside this call) unless
 * the request is cancelled first. The callback may start and cancel requests but must not
 * destroy the client. Returns NULL and fills err when it cannot start.
 */
struct ward_rf_http_req *ward_rf_http_start(struct ward_rf_http *h,
                                            const struct ward_rf_http_opts *o, ward_rf_http_cb cb,
                                            void *arg, struct ward_error *err);
/* Abandon a request: its callback will not run. */
void ward_rf_http_cancel(struct ward_rf_http_req *r);
/* Requests in flight. */
unsigned ward_rf_http_active(const struct ward_rf_http *h);
/* Sockets the loop watches for libcurl; for tests. */
unsigned ward_rf_http_watched(const struct ward_rf_http *h);
/* Pools not yet freed (a destroyed pool lives on while a request of it is in flight). */
unsigned ward_rf_http_pools(const struct ward_rf_http *h);

#endif
