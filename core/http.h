/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator endpoint: /metrics, /healthz, /readyz and the routes other
 * modules register (the JSON API under /api/v1). libmicrohttpd runs in
 * external epoll mode without threads of its own: its epoll descriptor is an
 * ev_io on the core's loop and its timeout an ev_timer, so every handler runs
 * on the loop's thread and may touch core state directly.
 *
 * Security defaults: the listener binds loopback unless TLS and an API token
 * are configured; mutating requests (POST, PUT, PATCH, DELETE) need
 * "Authorization: Bearer <token>" with the token read from a file and
 * compared in constant time. A wrong or missing token is a 401 counted in
 * ward_api_unauthorized_total. The token never reaches a log line.
 */
#ifndef WARD_CORE_HTTP_H
#define WARD_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include <ward/metrics.h>
#include <ward/plugin.h>

#include "util.h"

struct ward_config;
struct ward_http;

#define WARD_HTTP_DEFAULT_LISTEN "127.0.0.1:9580"
#define WARD_HTTP_DEFAULT_MAX_BODY (1u << 20)
#define WARD_HTTP_DEFAULT_MAX_CONNECTIONS 64u
#define WARD_HTTP_DEFAULT_TIMEOUT 30u

struct ward_http_options {
    const char *listen;       /* "127.0.0.1:9580", "[::1]:0" (0: any free port); NULL: default */
    const char *token_file;   /* file holding the API bearer token; NULL: mutations refused */
    const char *tls_cert;     /* PEM certificate file; with tls_key turns on HTTPS */
    const char *tls_key;      /* PEM private key file */
    size_t max_body;          /* request bodies above this are 413; 0: default 1 MiB */
    unsigned max_connections; /* 0: default */
    unsigned timeout;         /* idle connection timeout, seconds; 0: default */
    bool auth_reads;          /* also require the token for GET under /api/ (forced when the
                                 listener is not loopback) */
};

/* One request as a handler sees it; everything is owned by the server and valid during the call. */
struct ward_http_request {
    const char *method;
    const char *path; /* decoded URL path without the query string */
    const char *body; /* NUL-terminated (the body may itself hold NULs: use body_len) */
    size_t body_len;
    bool authorized; /* a valid bearer token came with it */
    void *conn;      /* the libmicrohttpd connection, for ward_http_query() */
};

/* What a handler fills; the server frees body. */
struct ward_http_response {
    int status;               /* 200 unless set */
    const char *content_type; /* static string; NULL: application/json */
    struct ward_buf body;
};

typedef void (*ward_http_handler_fn)(void *arg, const struct ward_http_request *req,
                                     struct ward_http_response *res);

/* A readiness check: 0 when ready, else a negative errno with err saying why. */
typedef int (*ward_http_ready_fn)(void *arg, struct ward_error *err);

/* Called before each /metrics render so gauges computed on demand are fresh. */
typedef void (*ward_http_scrape_fn)(void *arg, struct ward_metrics *metrics);

enum ward_http_route_flags {
    WARD_HTTP_EXACT = 0,  /* path must equal the pattern */
    WARD_HTTP_PREFIX = 1, /* path starts with the pattern */
};

/*
 * Bind and start serving on loop. metrics is borrowed (must outlive the
 * server); the process and API families are registered in it. NULL with err
 * filled when the address is bad, not loopback without TLS + token, a file
 * cannot be read, or the port cannot be bound.
 */
struct ward_http *ward_http_create(struct ev_loop *loop, struct ward_metrics *metrics,
                                   const struct ward_http_options *o, struct ward_error *err);
void ward_http_destroy(struct ward_http *h);

/* The port actually bound (useful with port 0). */
uint16_t ward_http_port(const struct ward_http *h);
/* How many times the server has run libmicrohttpd, and how many of those runs its stall
 * backoff held back: a test's view of how busy a stalled connection keeps the loop. */
void ward_http_loop_stats(const struct ward_http *h, unsigned long *runs, unsigned long *delayed);

/*
 * Register a handler. method NULL matches any method (the handler answers
 * 405 itself); the first matching route wins, in registration order. 0 or
 * -ENOMEM.
 */
int ward_http_route(struct ward_http *h, const char *method, const char *pattern, unsigned flags,
                    ward_http_handler_fn fn, void *arg);

/* Add a named readiness check for /readyz (name copied); 0 or -ENOMEM. */
int ward_http_ready_check(struct ward_http *h, const char *name, ward_http_ready_fn fn, void *arg);

/* Add a hook run before /metrics renders; 0 or -ENOMEM. */
int ward_http_on_scrape(struct ward_http *h, ward_http_scrape_fn fn, void *arg);

/* Re-read the token file (SIGHUP); the old token stays on failure. */
int ward_http_reload_token(struct ward_http *h, struct ward_error *err);

/* Calls each(ctx, key, value) for the request's query-string arguments in order (value NULL
   for a key without '='), until one returns non-zero; returns that, or 0. */
int ward_http_query_each(const struct ward_http_request *req,
                         int (*each)(void *ctx, const char *key, const char *value), void *ctx);

/* Fill res with {"error": {"code": status, "reason": ..., "message": message}}. */
void ward_http_error(struct ward_http_response *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Register the metric families the operator surface documents (issue 6) with
 * the shapes the owning modules use, so every family is exported with HELP
 * and TYPE from the start; a module registering the same name and labels
 * later gets the same family.
 */
void ward_http_register_catalog(struct ward_metrics *metrics);

/*
 * Fill o from the `http = { ... }` section of the configuration (keys:
 * listen, token_file, tls_cert, tls_key, max_body, max_connections, timeout,
 * auth_reads). Strings are heap copies freed by ward_http_options_free.
 * Missing section: defaults. Unknown keys and wrong types are errors naming
 * the key.
 */
int ward_http_options_from_config(const struct ward_config *cfg, struct ward_http_options *o,
                                  struct ward_error *err);
void ward_http_options_free(struct ward_http_options *o);

#endif
