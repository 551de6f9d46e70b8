/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: API request parsing and validation (ward_api_parse), the part
 * of the API that sees client bytes before anything is trusted. An input is
 * "METHOD PATH[?QUERY]\n" followed by the body; the query is split here the
 * way libmicrohttpd would hand it over (key=value pairs joined by '&').
 * Also checks what the parser promises: a refusal is a 4xx with a message,
 * an accepted call names a valid host when it names one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct query {
    char *text; /* owned: "k=v&k2=v2" */
};

/* Splits the query in place, as the server hands it over: "k=v&k2&..." (no decoding). */
static int each_arg(void *arg, ward_api_query_each_fn each, void *ctx)
{
    struct query *q = arg;
    for (char *p = q->text; p != NULL && *p != '\0';) {
        char *amp = strchr(p, '&');
        if (amp != NULL) {
            *amp = '\0';
        }
        char *eq = strchr(p, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        int rc = each(ctx, p, eq != NULL ? eq + 1 : NULL);
        if (rc != 0) {
            return rc;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL) {
        sink = fopen("/dev/null", "w");
        ward_log_set_stream(sink);
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t head = nl != NULL ? (size_t)(nl - data) : size;
    char *line = malloc(head + 1);
    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, head);
    line[head] = '\0';
    const char *body = nl != NULL ? (const char *)nl + 1 : "";
    size_t body_len = nl != NULL ? size - head - 1 : 0;
    /* the server hands bodies over NUL-terminated; do the same */
    char *body_copy = malloc(body_len + 1);
    if (body_copy == NULL) {
        free(line);
        return 0;
    }
    memcpy(body_copy, body, body_len);
    body_copy[body_len] = '\0';

    char *space = strchr(line, ' ');
    const char *method = line;
    const char *path = "";
    if (space != NULL) {
        *space = '\0';
        path = space + 1;
    }
    struct query q = {NULL};
    char *qmark = strchr(path, '?');
    if (qmark != NULL) {
        *qmark = '\0';
        q.text = qmark + 1;
    }
    struct ward_api_call call;
    struct ward_error err = {0};
    int status = ward_api_parse(method, path, each_arg, &q, body_copy, body_len, &call, &err);
    if (status != 0) {
        if (status < 400 || status > 499 || err.text[0] == '\0') {
            abort(); /* a refusal must be a client error with a reason */
        }
    } else {
        if (call.name[0] != '\0' && !ward_api_valid_name(call.name)) {
            abort();
        }
        ward_api_call_free(&call);
    }
    free(body_copy);
    free(line);
    return 0;
}
