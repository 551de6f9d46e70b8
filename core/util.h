/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by core modules: a growable buffer and clocks. */
#ifndef WARD_CORE_UTIL_H
#define WARD_CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#include <ward/plugin.h>

#define ward_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define WARD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A NUL-terminated growable string; zero-initialise, free with ward_buf_free. */
struct ward_buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
};

void ward_buf_putc(struct ward_buf *b, char c);
void ward_buf_puts(struct ward_buf *b, const char *s);
void ward_buf_put(struct ward_buf *b, const char *s, size_t n);
void ward_buf_printf(struct ward_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ward_buf_vprintf(struct ward_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Replace n bytes at offset with s. */
void ward_buf_splice(struct ward_buf *b, size_t at, size_t n, const char *s);
/* Hand the string to the caller (who frees it) and reset b. */
char *ward_buf_steal(struct ward_buf *b);
void ward_buf_free(struct ward_buf *b);

/* Seconds on the monotonic clock. */
double ward_monotonic(void);

#endif
