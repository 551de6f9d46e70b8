/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A blocking HTTP client for tests whose server runs on the test's own libev
 * loop: libcurl runs on a helper thread while the calling thread runs the
 * loop, and an ev_async stops the loop when the reply (or an error) is in.
 * Every request is bounded by a 20 s transfer timeout.
 */
#ifndef WARD_TEST_HTTP_CLIENT_H
#define WARD_TEST_HTTP_CLIENT_H

#include <ev.h>

#include "util.h"

struct http_reply {
    long status;          /* 0 when the transfer failed */
    struct ward_buf body; /* owned; free with http_reply_free */
    struct ward_buf headers;
    char error[256]; /* curl's message when status is 0 */
};

/* headers: NULL-terminated "Name: value" strings or NULL; body NULL for none. */
void http_request(struct ev_loop *loop, const char *method, const char *url, const char *body,
                  const char *const *headers, struct http_reply *out);
void http_reply_free(struct http_reply *r);
/* A plain TCP connection to 127.0.0.1:port (blocking), for tests that speak raw bytes;
 * -1 when it cannot be made. */
int http_connect_loopback(unsigned port);

#endif
