/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client.h"

struct job {
    struct ev_loop *loop;
    const char *method, *url, *body;
    const char *const *headers;
    struct http_reply *out;
    ev_async done;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    ward_buf_put(arg, data, size * n);
    return size * n;
}

static void *run(void *arg)
{
    struct job *j = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    for (size_t i = 0; j->headers != NULL && j->headers[i] != NULL; i++) {
        list = curl_slist_append(list, j->headers[i]);
    }
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, j->method);
    if (strcmp(j->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    if (j->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &j->out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &j->out->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, j->out->error);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->out->status);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    ev_async_send(j->loop, &j->done);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

void http_request(struct ev_loop *loop, const char *method, const char *url, const char *body,
                  const char *const *headers, struct http_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct job j = {
        .loop = loop, .method = method, .url = url, .body = body, .headers = headers, .out = out};
    ev_async_init(&j.done, on_done);
    ev_async_start(loop, &j.done);
    pthread_t t;
    if (pthread_create(&t, NULL, run, &j) != 0) {
        abort();
    }
    /* the thread's ev_async_send breaks this; curl's own timeout bounds it */
    ev_run(loop, 0);
    pthread_join(t, NULL);
    ev_async_stop(loop, &j.done);
    if (out->body.data == NULL) {
        ward_buf_puts(&out->body, "");
    }
}

void http_reply_free(struct http_reply *r)
{
    ward_buf_free(&r->body);
    ward_buf_free(&r->headers);
}

int http_connect_loopback(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}
