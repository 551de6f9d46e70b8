/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "clockstep.h"

static _Atomic long offset; /* read from other threads too (a test server's) */

void clockstep_by(long seconds)
{
    offset += seconds;
}

/* The function this program's definition hides: the C library's, or a sanitizer's. */
static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        abort();
    }
    return f;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    typedef int (*fn)(clockid_t, struct timespec *);
    static _Atomic(fn) real;
    if (real == NULL) {
        real = (fn)next("clock_gettime");
    }
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += offset;
    }
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    typedef int (*fn)(struct timeval *restrict, void *restrict);
    static _Atomic(fn) real;
    if (real == NULL) {
        real = (fn)next("gettimeofday");
    }
    int rc = real(tv, tz);
    if (rc == 0) {
        tv->tv_sec += offset;
    }
    return rc;
}

time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t != NULL) {
        *t = ts.tv_sec;
    }
    return ts.tv_sec;
}
