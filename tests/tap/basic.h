/* SPDX-License-Identifier: Apache-2.0 */
/* A small TAP producer for ward's C tests: plan first, one line per assertion. */
#ifndef WARD_TAP_BASIC_H
#define WARD_TAP_BASIC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void plan(unsigned long count);
/* Print the plan at the end instead (for tests whose count depends on data). */
void plan_lazy(void);
/* Skip the whole test with a reason (only for a missing external tool). */
void skip_all(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

bool ok(bool success, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool is_int(long long wanted, long long seen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool is_double(double wanted, double seen, double epsilon, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool is_string(const char *wanted, const char *seen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Passes when haystack contains needle. */
bool contains(const char *haystack, const char *needle, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool lacks(const char *haystack, const char *needle, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* bail with strerror(errno) appended. */
void sysbail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A fresh directory under the build tree (or TMPDIR), removed at exit. */
const char *test_tmpdir(void);
/* Read a whole file into a heap string (caller frees); NULL if unreadable. */
char *test_slurp(const char *path);

#endif
