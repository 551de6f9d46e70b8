/* SPDX-License-Identifier: Apache-2.0 */
#include "basic.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long planned;
static unsigned long run;
static unsigned long failed;
static bool lazy;
static char *tmpdir;

static void finish(void)
{
    if (tmpdir != NULL) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            fprintf(stderr, "# could not remove %s\n", tmpdir);
        }
        free(tmpdir);
        tmpdir = NULL;
    }
    if (lazy && planned == 0) {
        printf("1..%lu\n", run);
        planned = run;
    }
    fflush(stdout);
    if (planned != run) {
        fprintf(stderr, "# planned %lu tests but ran %lu\n", planned, run);
        _exit(255);
    }
    if (failed > 0) {
        fprintf(stderr, "# failed %lu of %lu tests\n", failed, run);
        _exit(1);
    }
}

void plan(unsigned long count)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("1..%lu\n", count);
    planned = count;
    atexit(finish);
}

void plan_lazy(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    lazy = true;
    atexit(finish);
}

void skip_all(const char *fmt, ...)
{
    va_list ap;
    printf("1..0 # SKIP ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(0);
}

__attribute__((format(printf, 2, 0))) static bool report(bool success, const char *fmt, va_list ap)
{
    run++;
    if (!success) {
        failed++;
    }
    printf("%sok %lu - ", success ? "" : "not ", run);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    return success;
}

bool ok(bool success, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    return success;
}

bool is_int(long long wanted, long long seen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool success = report(wanted == seen, fmt, ap);
    va_end(ap);
    if (!success) {
        diag("wanted: %lld", wanted);
        diag("  seen: %lld", seen);
    }
    return success;
}

bool is_double(double wanted, double seen, double epsilon, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool success = report(fabs(wanted - seen) <= epsilon, fmt, ap);
    va_end(ap);
    if (!success) {
        diag("wanted: %g (within %g)", wanted, epsilon);
        diag("  seen: %g", seen);
    }
    return success;
}

bool is_string(const char *wanted, const char *seen, const char *fmt, ...)
{
    bool same = (wanted == NULL && seen == NULL) ||
                (wanted != NULL && seen != NULL && strcmp(wanted, seen) == 0);
    va_list ap;
    va_start(ap, fmt);
    report(same, fmt, ap);
    va_end(ap);
    if (!same) {
        diag("wanted: %s", wanted != NULL ? wanted : "(null)");
        diag("  seen: %s", seen != NULL ? seen : "(null)");
    }
    return same;
}

bool contains(const char *haystack, const char *needle, const char *fmt, ...)
{
    bool found = haystack != NULL && strstr(haystack, needle) != NULL;
    va_list ap;
    va_start(ap, fmt);
    report(found, fmt, ap);
    va_end(ap);
    if (!found) {
        diag("looked for: %s", needle);
        diag("        in: %s", haystack != NULL ? haystack : "(null)");
    }
    return found;
}

bool lacks(const char *haystack, const char *needle, const char *fmt, ...)
{
    bool found = haystack != NULL && strstr(haystack, needle) != NULL;
    va_list ap;
    va_start(ap, fmt);
    report(haystack != NULL && !found, fmt, ap);
    va_end(ap);
    if (found) {
        diag("did not want: %s", needle);
        diag("          in: %s", haystack);
    }
    return haystack != NULL && !found;
}

void diag(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "# ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

void bail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(255);
}

void sysbail(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    fflush(stdout);
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(": %s\n", strerror(saved));
    exit(255);
}

const char *test_tmpdir(void)
{
    if (tmpdir != NULL) {
        return tmpdir;
    }
    const char *base = getenv("TMPDIR");
    if (base == NULL || access(base, W_OK) != 0) {
        base = "/tmp";
    }
    size_t len = strlen(base) + 32;
    tmpdir = malloc(len);
    if (tmpdir == NULL) {
        bail("out of memory");
    }
    snprintf(tmpdir, len, "%s/ward-test-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        sysbail("mkdtemp %s", tmpdir);
    }
    return tmpdir;
}

char *test_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[len] = '\0';
    }
    return buf;
}
