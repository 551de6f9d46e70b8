/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's CPU for one fresh HTTPS connection and one GET over it, made the way the
 * Redfish plugin makes them (libcurl's multi interface, CA file, no CA directory,
 * certificate and name checked). Enrolling a BMC needs at least one such connection, so
 * this is the floor of wardd's CPU per host that no change in ward can lower; the fleet
 * benchmark prints it beside its figures.
 *
 *   tls-connect URL CAFILE [N]
 *
 * Prints one line: "tls-connect: X.XXX ms CPU per connection (verified), Y.YYY ms without
 * verification, Z.ZZZ ms of it SSL_CTX_new; K.KKK ms per GET on a kept connection; libcurl V,
 * OpenSSL W". Every enrolled host costs at least one connection and R - 1 more GETs on it.
 * Exits 1 when a request does not answer 200.
 */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A GET, on a new connection when fresh (else on the one kept from the previous call); false
 * unless the answer is 200. */
static bool one(CURLM *multi, const char *url, const char *cafile, bool verify, bool fresh)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        return false;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, fresh ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_multi_add_handle(multi, e);
    int running = 1;
    while (running > 0) {
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            break;
        }
        if (running > 0) {
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
    return status == 200;
}

/* Milliseconds of CPU per request over n of them, after a few to warm up; < 0 on error. */
static double per_request(CURLM *multi, const char *url, const char *cafile, bool verify,
                          bool fresh, int n)
{
    for (int i = 0; i < 5; i++) {
        if (!one(multi, url, cafile, verify, fresh)) {
            return -1;
        }
    }
    double t0 = cpu_seconds();
    for (int i = 0; i < n; i++) {
        if (!one(multi, url, cafile, verify, fresh)) {
            return -1;
        }
    }
    return (cpu_seconds() - t0) * 1000 / n;
}

static double ssl_ctx_ms(int n)
{
    double t0 = cpu_seconds();
    for (int i = 0; i < n; i++) {
        SSL_CTX_free(SSL_CTX_new(TLS_client_method()));
    }
    return (cpu_seconds() - t0) * 1000 / n;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: tls-connect URL CAFILE [N]\n");
        return 2;
    }
    int n = argc == 4 ? atoi(argv[3]) : 300;
    if (n < 1) {
        n = 300;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    CURLM *multi = curl_multi_init();
    double verified = per_request(multi, argv[1], argv[2], true, true, n);
    double unverified = per_request(multi, argv[1], argv[2], false, true, n);
    double kept = per_request(multi, argv[1], argv[2], true, false, n);
    double ctx = ssl_ctx_ms(n);
    curl_multi_cleanup(multi);
    if (verified < 0 || unverified < 0 || kept < 0) {
        fprintf(stderr, "tls-connect: %s did not answer 200\n", argv[1]);
        curl_global_cleanup();
        return 1;
    }
    printf("tls-connect: %.3f ms CPU per connection (verified), %.3f ms without verification, "
           "%.3f ms of it SSL_CTX_new; %.3f ms per GET on a kept connection; libcurl %s, %s\n",
           verified, unverified, ctx, kept, curl_version_info(CURLVERSION_NOW)->version,
           OpenSSL_version(OPENSSL_VERSION));
    curl_global_cleanup();
    return 0;
}
