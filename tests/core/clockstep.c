/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "clockstep.h"

static long offset;

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
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL) {
        real = (int (*)(clockid_t, struct timespec *))next("clock_gettime");
    }
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += offset;
    }
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    static int (*real)(struct timeval *restrict, void *restrict);
    if (real == NULL) {
        real = (int (*)(struct timeval *restrict, void *restrict))next("gettimeofday");
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
