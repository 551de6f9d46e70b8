/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* Allocation failure while logging or formatting is not recoverable in a useful way. */
static void grow(struct ward_buf *b, size_t need)
{
    if (b->len + need + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap != 0 ? b->cap : 64;
    while (cap < b->len + need + 1) {
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void ward_buf_put(struct ward_buf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ward_buf_putc(struct ward_buf *b, char c)
{
    ward_buf_put(b, &c, 1);
}

void ward_buf_puts(struct ward_buf *b, const char *s)
{
    ward_buf_put(b, s, strlen(s));
}

void ward_buf_vprintf(struct ward_buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) {
        return;
    }
    grow(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void ward_buf_printf(struct ward_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ward_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void ward_buf_splice(struct ward_buf *b, size_t at, size_t n, const char *s)
{
    size_t slen = strlen(s);
    if (slen > n) {
        grow(b, slen - n);
    }
    memmove(b->data + at + slen, b->data + at + n, b->len - at - n + 1);
    memcpy(b->data + at, s, slen);
    b->len = b->len - n + slen;
}

void ward_buf_replace_all(struct ward_buf *b, size_t from, const char *needle, const char *s)
{
    size_t nlen = strlen(needle);
    size_t slen = strlen(s);
    char *hit;
    while (nlen > 0 && b->data != NULL && from <= b->len &&
           (hit = strstr(b->data + from, needle)) != NULL) {
        size_t at = (size_t)(hit - b->data);
        ward_buf_splice(b, at, nlen, s);
        from = at + slen;
    }
}

char *ward_buf_steal(struct ward_buf *b)
{
    char *s = b->data;
    if (s == NULL) {
        s = strdup("");
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void ward_buf_free(struct ward_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double ward_monotonic(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

double ward_wall_clock(void)
{
    return clock_seconds(CLOCK_REALTIME);
}

bool ward_clock_plausible(double t)
{
    return t >= WARD_CLOCK_FLOOR;
}

int ward_proc_stat_parse(const char *text, struct ward_proc_stat *out)
{
    /* the command name in parentheses may hold anything: the fields start after its last ')'.
       From field 3 on: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
       utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss */
    const char *p = text != NULL ? strrchr(text, ')') : NULL;
    if (p == NULL || sscanf(p + 1,
                            " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
                            "%*d %*d %*d %*d %llu %lu %ld",
                            &out->utime, &out->stime, &out->start, &out->vsize, &out->rss) != 5) {
        return -EINVAL;
    }
    return 0;
}

int ward_error_set(struct ward_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int ward_duration_parse(const char *text, double *out)
{
    static const struct {
        const char *suffix;
        double seconds;
    } units[] = {{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    if (text == NULL || *text == '\0') {
        return -EINVAL;
    }
    double total = 0;
    const char *p = text;
    while (*p != '\0') {
        char *end;
        if (!(*p >= '0' && *p <= '9') && *p != '.') {
            return -EINVAL;
        }
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(v) || v < 0) {
            return -EINVAL;
        }
        p = end;
        size_t best = 0;
        double scale = 0;
        for (size_t i = 0; i < WARD_ARRAY_SIZE(units); i++) {
            size_t len = strlen(units[i].suffix);
            if (strncmp(p, units[i].suffix, len) == 0 && len > best) {
                best = len;
                scale = units[i].seconds;
            }
        }
        if (best == 0) {
            return -EINVAL; /* a bare number is ambiguous: say the unit */
        }
        p += best;
        total += v * scale;
    }
    if (!isfinite(total) || total > 10.0 * 365 * 86400) {
        return -EINVAL;
    }
    *out = total;
    return 0;
}

/* ---- string map ------------------------------------------------------------------- */

/* key NULL: never used; key == TOMBSTONE: removed, probing continues past it */
static const char tombstone[1];
#define TOMBSTONE (&tombstone[0])

struct ward_strmap_slot {
    const char *key; /* borrowed */
    void *value;
    size_t hash;
};

static size_t strmap_hash(const char *s)
{
    /* FNV-1a: keys are short names; spread matters, resistance to chosen keys does not */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return (size_t)(h ^ (h >> 32));
}

/* The slot holding key, or NULL. */
static struct ward_strmap_slot *strmap_find(const struct ward_strmap *m, const char *key, size_t h)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct ward_strmap_slot *s = &m->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->key != TOMBSTONE && s->hash == h && strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

static int strmap_resize(struct ward_strmap *m, size_t cap)
{
    struct ward_strmap_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    for (size_t j = 0; j < m->cap; j++) {
        const struct ward_strmap_slot *s = &m->slots[j];
        if (s->key == NULL || s->key == TOMBSTONE) {
            continue;
        }
        size_t i = s->hash & (cap - 1);
        while (slots[i].key != NULL) {
            i = (i + 1) & (cap - 1);
        }
        slots[i] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = m->n;
    return 0;
}

int ward_strmap_put(struct ward_strmap *m, const char *key, void *value)
{
    size_t h = strmap_hash(key);
    struct ward_strmap_slot *s = strmap_find(m, key, h);
    if (s != NULL) {
        s->key = key;
        s->value = value;
        return 0;
    }
    /* keep at most 3/4 of the slots taken (tombstones included) so probes stay short */
    if ((m->used + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap != 0 ? m->cap : 16;
        while ((m->n + 1) * 2 > cap) {
            cap *= 2;
        }
        int rc = strmap_resize(m, cap);
        if (rc != 0) {
            return rc;
        }
    }
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key != NULL && m->slots[i].key != TOMBSTONE) {
        i = (i + 1) & mask;
    }
    if (m->slots[i].key == NULL) {
        m->used++;
    }
    m->slots[i] = (struct ward_strmap_slot){.key = key, .value = value, .hash = h};
    m->n++;
    return 0;
}

void *ward_strmap_get(const struct ward_strmap *m, const char *key)
{
    struct ward_strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    return s != NULL ? s->value : NULL;
}

void *ward_strmap_remove(struct ward_strmap *m, const char *key)
{
    struct ward_strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    if (s == NULL) {
        return NULL;
    }
    void *value = s->value;
    s->key = TOMBSTONE;
    s->value = NULL;
    m->n--;
    return value;
}

void ward_strmap_free(struct ward_strmap *m)
{
    free(m->slots);
    *m = (struct ward_strmap){0};
}

void *ward_strmap_value_at(const struct ward_strmap *m, size_t i)
{
    const struct ward_strmap_slot *s = &m->slots[i];
    return s->key != NULL && s->key != TOMBSTONE ? s->value : NULL;
}
