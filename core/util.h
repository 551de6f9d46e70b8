/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by core modules: a growable buffer and clocks. */
#ifndef WARD_CORE_UTIL_H
#define WARD_CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#include <ward/plugin.h>

#define ward_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
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
void ward_buf_printf(struct ward_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ward_buf_vprintf(struct ward_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Replace n bytes at offset with s. */
void ward_buf_splice(struct ward_buf *b, size_t at, size_t n, const char *s);
/* Replace every occurrence of needle (not empty) from offset on with s; what s brings in
 * is not searched again. */
void ward_buf_replace_all(struct ward_buf *b, size_t from, const char *needle, const char *s);
/* What a secret becomes wherever ward writes text that may hold one. */
#define WARD_REDACTED "[REDACTED]"
/* Hand the string to the caller (who frees it) and reset b. */
char *ward_buf_steal(struct ward_buf *b);
void ward_buf_free(struct ward_buf *b);

/* Seconds on the monotonic clock: what a wait or a deadline in memory counts on, as it
 * does not move when the wall clock is set. */
double ward_monotonic(void);
/* Unix time in seconds (the wall clock): for what is kept, shown or compared across
 * restarts. */
double ward_wall_clock(void);
/* Can Unix time t be the date? Not before WARD_CLOCK_FLOOR (2026-01-01 UTC, before this code
 * was written): an edge box without a battery-backed clock starts in 1970 until NTP sets it. */
#define WARD_CLOCK_FLOOR 1767225600.0
bool ward_clock_plausible(double t);

/* The figures ward reads from a /proc/PID/stat line: CPU in clock ticks (user, system), the
 * start in ticks after boot, virtual size in bytes, resident set in pages. */
struct ward_proc_stat {
    unsigned long long utime, stime, start;
    unsigned long vsize;
    long rss;
};
/* Parse the text of /proc/PID/stat. 0, or -EINVAL when it does not read as one. */
int ward_proc_stat_parse(const char *text, struct ward_proc_stat *out);

/*
 * A map from strings to pointers (open addressing, linear probing), for indexes of things
 * looked up by name many times a second: queue keys, resources, hosts. Zero-initialise;
 * free with ward_strmap_free. Keys are NOT copied: each must stay valid and unchanged while
 * its entry is in the map (point it at the key string the value owns). Values are not owned.
 */
struct ward_strmap_slot;
struct ward_strmap {
    struct ward_strmap_slot *slots; /* owned */
    size_t cap;                     /* slots, a power of two or 0 */
    size_t n;                       /* entries */
    size_t used;                    /* entries and tombstones */
};

/* Insert or replace. 0 or -ENOMEM (the map is unchanged then). value must not be NULL. */
int ward_strmap_put(struct ward_strmap *m, const char *key, void *value);
/* The value under key, or NULL. */
void *ward_strmap_get(const struct ward_strmap *m, const char *key);
/* Remove key; returns its value, or NULL when absent. */
void *ward_strmap_remove(struct ward_strmap *m, const char *key);
/* For a walk over every entry: the value in slot i (i < m->cap), NULL for an empty slot. */
void *ward_strmap_value_at(const struct ward_strmap *m, size_t i);
void ward_strmap_free(struct ward_strmap *m);

#endif
