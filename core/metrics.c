/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small Prometheus registry. Families live in registration order (so the
 * exposition is stable), series in a per-family hash keyed by the joined
 * label values.
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

enum family_type { FAMILY_COUNTER, FAMILY_GAUGE, FAMILY_HISTOGRAM, FAMILY_UNTYPED };

struct series {
    struct series *next_hash;
    struct series *next; /* insertion order */
    char **values;       /* owned, nlabels entries */
    char *key;           /* owned; values joined by \x1f */
    double value;        /* counter or gauge */
    double sum;          /* histogram */
    uint64_t count;      /* histogram */
    uint64_t *buckets;   /* owned, nbuckets cumulative-at-render counts */
};

struct ward_metric {
    struct ward_metric *next;
    enum family_type type;
    char *name; /* owned */
    char *help; /* owned */
    char **labels; /* owned */
    size_t nlabels;
    double *bounds; /* owned */
    size_t nbounds;
    struct series **table; /* owned hash buckets */
    size_t table_size;
    size_t nseries;
    struct series *first, *last;
};

struct ward_metrics {
    struct ward_metric *first, *last;
};

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                        2.5,   5,    10,    30,   60,  120,  300, 600};

struct ward_metrics *ward_metrics_create(void)
{
    return calloc(1, sizeof(struct ward_metrics));
}

static void series_free(struct series *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++) {
        free(s->values[i]);
    }
    free(s->values);
    free(s->key);
    free(s->buckets);
    free(s);
}

static void family_free(struct ward_metric *m)
{
    struct series *s = m->first;
    while (s != NULL) {
        struct series *next = s->next;
        series_free(s, m->nlabels);
        s = next;
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        free(m->labels[i]);
    }
    free(m->labels);
    free(m->bounds);
    free(m->table);
    free(m->name);
    free(m->help);
    free(m);
}

void ward_metrics_destroy(struct ward_metrics *reg)
{
    if (reg == NULL) {
        return;
    }
    struct ward_metric *m = reg->first;
    while (m != NULL) {
        struct ward_metric *next = m->next;
        family_free(m);
        m = next;
    }
    free(reg);
}

static bool valid_name(const char *name, bool label)
{
    if (name == NULL || *name == '\0') {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                     (!label && *p == ':');
        if (!alpha && !(p != name && *p >= '0' && *p <= '9')) {
            return false;
        }
    }
    return !(label && strncmp(name, "__", 2) == 0);
}

static size_t count_labels(const char *const *labels)
{
    size_t n = 0;
    while (labels != NULL && labels[n] != NULL) {
        n++;
    }
    return n;
}

static bool same_shape(const struct ward_metric *m, enum family_type type,
                       const char *const *labels, size_t nlabels)
{
    if (m->type != type || m->nlabels != nlabels) {
        return false;
    }
    for (size_t i = 0; i < nlabels; i++) {
        if (strcmp(m->labels[i], labels[i]) != 0) {
            return false;
        }
    }
    return true;
}

static struct ward_metric *family_register(struct ward_metrics *reg, enum family_type type,
                                           const char *name, const char *help,
                                           const char *const *labels, const double *bounds,
                                           size_t nbounds)
{
    if (reg == NULL || !valid_name(name, false) || help == NULL) {
        return NULL;
    }
    size_t nlabels = count_labels(labels);
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], true) || (type == FAMILY_HISTOGRAM && !strcmp(labels[i], "le"))) {
            return NULL;
        }
    }
    for (struct ward_metric *m = reg->first; m != NULL; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            return same_shape(m, type, labels, nlabels) ? m : NULL;
        }
    }
    struct ward_metric *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help);
    m->nlabels = nlabels;
    m->labels = calloc(nlabels + 1, sizeof(char *));
    m->table_size = 64;
    m->table = calloc(m->table_size, sizeof(struct series *));
    if (m->name == NULL || m->help == NULL || m->labels == NULL || m->table == NULL) {
        family_free(m);
        return NULL;
    }
    for (size_t i = 0; i < nlabels; i++) {
        if ((m->labels[i] = strdup(labels[i])) == NULL) {
            family_free(m);
            return NULL;
        }
    }
    if (type == FAMILY_HISTOGRAM) {
        if (bounds == NULL) {
            bounds = default_bounds;
            nbounds = WARD_ARRAY_SIZE(default_bounds);
        }
        m->bounds = malloc(nbounds * sizeof(double));
        if (m->bounds == NULL) {
            family_free(m);
            return NULL;
        }
        for (size_t i = 0; i < nbounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
                family_free(m);
                return NULL;
            }
            m->bounds[i] = bounds[i];
        }
        m->nbounds = nbounds;
    }
    if (reg->last != NULL) {
        reg->last->next = m;
    } else {
        reg->first = m;
    }
    reg->last = m;
    return m;
}

struct ward_metric *ward_metrics_counter(struct ward_metrics *reg, const char *name,
                                         const char *help, const char *const *labels)
{
    return family_register(reg, FAMILY_COUNTER, name, help, labels, NULL, 0);
}

struct ward_metric *ward_metrics_gauge(struct ward_metrics *reg, const char *name,
                                       const char *help, const char *const *labels)
{
    return family_register(reg, FAMILY_GAUGE, name, help, labels, NULL, 0);
}

struct ward_metric *ward_metrics_untyped(struct ward_metrics *reg, const char *name,
                                         const char *help, const char *const *labels)
{
    return family_register(reg, FAMILY_UNTYPED, name, help, labels, NULL, 0);
}

struct ward_metric *ward_metrics_histogram(struct ward_metrics *reg, const char *name,
                                           const char *help, const char *const *labels,
                                           const double *buckets, size_t nbuckets)
{
    return family_register(reg, FAMILY_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static char *join_values(const struct ward_metric *m, const char *const *values)
{
    struct ward_buf key = {0};
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i > 0) {
            ward_buf_putc(&key, '\x1f');
        }
        ward_buf_puts(&key, values != NULL && values[i] != NULL ? values[i] : "");
    }
    return ward_buf_steal(&key);
}

static struct series *lookup(const struct ward_metric *m, const char *key)
{
    for (struct series *s = m->table[hash_key(key) % m->table_size]; s != NULL;
         s = s->next_hash) {
        if (strcmp(s->key, key) == 0) {
            return s;
        }
    }
    return NULL;
}

static void rehash(struct ward_metric *m)
{
    size_t size = m->table_size * 4;
    struct series **table = calloc(size, sizeof(*table));
    if (table == NULL) {
        return; /* keep the smaller table: slower, still correct */
    }
    for (struct series *s = m->first; s != NULL; s = s->next) {
        size_t slot = hash_key(s->key) % size;
        s->next_hash = table[slot];
        table[slot] = s;
    }
    free(m->table);
    m->table = table;
    m->table_size = size;
}

static struct series *series_get(struct ward_metric *m, const char *const *values, bool fold)
{
    char *key = join_values(m, values);
    struct series *s = lookup(m, key);
    if (s != NULL) {
        free(key);
        return s;
    }
    if (m->nseries >= WARD_METRICS_MAX_SERIES && fold) {
        free(key);
        const char *overflow[m->nlabels + 1];
        for (size_t i = 0; i < m->nlabels; i++) {
            overflow[i] = "_overflow";
        }
        return series_get(m, overflow, false);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        free(key);
        return NULL;
    }
    s->key = key;
    s->values = calloc(m->nlabels + 1, sizeof(char *));
    if (m->type == FAMILY_HISTOGRAM) {
        s->buckets = calloc(m->nbounds + 1, sizeof(uint64_t));
    }
    if (s->values == NULL || (m->type == FAMILY_HISTOGRAM && s->buckets == NULL)) {
        series_free(s, 0);
        return NULL;
    }
    for (size_t i = 0; i < m->nlabels; i++) {
        s->values[i] = strdup(values != NULL && values[i] != NULL ? values[i] : "");
        if (s->values[i] == NULL) {
            series_free(s, m->nlabels);
            return NULL;
        }
    }
    if (m->nseries + 1 > m->table_size * 2) {
        rehash(m);
    }
    size_t slot = hash_key(key) % m->table_size;
    s->next_hash = m->table[slot];
    m->table[slot] = s;
    if (m->last != NULL) {
        m->last->next = s;
    } else {
        m->first = s;
    }
    m->last = s;
    m->nseries++;
    return s;
}

void ward_metric_add(struct ward_metric *m, const char *const *values, double delta)
{
    if (m == NULL || m->type == FAMILY_HISTOGRAM || (m->type == FAMILY_COUNTER && !(delta >= 0))) {
        return;
    }
    struct series *s = series_get(m, values, true);
    if (s != NULL) {
        s->value += delta;
    }
}

void ward_metric_set(struct ward_metric *m, const char *const *values, double value)
{
    if (m == NULL || (m->type != FAMILY_GAUGE && m->type != FAMILY_UNTYPED)) {
        return;
    }
    struct series *s = series_get(m, values, true);
    if (s != NULL) {
        s->value = value;
    }
}

void ward_metric_observe(struct ward_metric *m, const char *const *values, double value)
{
    if (m == NULL || m->type != FAMILY_HISTOGRAM || isnan(value)) {
        return;
    }
    struct series *s = series_get(m, values, true);
    if (s == NULL) {
        return;
    }
    size_t i = 0;
    while (i < m->nbounds && value > m->bounds[i]) {
        i++;
    }
    s->buckets[i]++;
    s->count++;
    s->sum += value;
}

double ward_metric_value(const struct ward_metric *m, const char *const *values)
{
    if (m == NULL) {
        return 0;
    }
    char *key = join_values(m, values);
    const struct series *s = lookup(m, key);
    free(key);
    if (s == NULL) {
        return 0;
    }
    return m->type == FAMILY_HISTOGRAM ? (double)s->count : s->value;
}

double ward_metric_sum(const struct ward_metric *m, const char *label, const char *value)
{
    if (m == NULL) {
        return 0;
    }
    size_t index = m->nlabels;
    for (size_t i = 0; label != NULL && i < m->nlabels; i++) {
        if (strcmp(m->labels[i], label) == 0) {
            index = i;
        }
    }
    if (label != NULL && index == m->nlabels) {
        return 0;
    }
    double sum = 0;
    for (const struct series *s = m->first; s != NULL; s = s->next) {
        if (label == NULL || strcmp(s->values[index], value) == 0) {
            sum += m->type == FAMILY_HISTOGRAM ? (double)s->count : s->value;
        }
    }
    return sum;
}

static void put_escaped(struct ward_buf *out, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\') {
            ward_buf_puts(out, "\\\\");
        } else if (*s == '\n') {
            ward_buf_puts(out, "\\n");
        } else if (quote && *s == '"') {
            ward_buf_puts(out, "\\\"");
        } else {
            ward_buf_putc(out, *s);
        }
    }
}

static void put_number(struct ward_buf *out, double v)
{
    if (isnan(v)) {
        ward_buf_puts(out, "NaN");
    } else if (isinf(v)) {
        ward_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        ward_buf_printf(out, "%.0f", v);
    } else {
        /* the shortest text that reads back as the same double */
        char text[40];
        for (int precision = 15; precision <= 17; precision++) {
            snprintf(text, sizeof(text), "%.*g", precision, v);
            if (strtod(text, NULL) == v) {
                break;
            }
        }
        ward_buf_puts(out, text);
    }
}

static void put_labels(struct ward_buf *out, const struct ward_metric *m, const struct series *s,
                       const char *le)
{
    if (m->nlabels == 0 && le == NULL) {
        return;
    }
    ward_buf_putc(out, '{');
    for (size_t i = 0; i < m->nlabels; i++) {
        ward_buf_printf(out, "%s%s=\"", i > 0 ? "," : "", m->labels[i]);
        put_escaped(out, s->values[i], true);
        ward_buf_putc(out, '"');
    }
    if (le != NULL) {
        ward_buf_printf(out, "%sle=\"%s\"", m->nlabels > 0 ? "," : "", le);
    }
    ward_buf_putc(out, '}');
}

void ward_metrics_render(const struct ward_metrics *reg, struct ward_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram", "untyped"};
    for (const struct ward_metric *m = reg->first; m != NULL; m = m->next) {
        ward_buf_printf(out, "# HELP %s ", m->name);
        put_escaped(out, m->help, false);
        ward_buf_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
        for (const struct series *s = m->first; s != NULL; s = s->next) {
            if (m->type != FAMILY_HISTOGRAM) {
                ward_buf_puts(out, m->name);
                put_labels(out, m, s, NULL);
                ward_buf_putc(out, ' ');
                put_number(out, s->value);
                ward_buf_putc(out, '\n');
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t i = 0; i <= m->nbounds; i++) {
                char le[64];
                cumulative += s->buckets[i];
                if (i < m->nbounds) {
                    struct ward_buf b = {0};
                    put_number(&b, m->bounds[i]);
                    snprintf(le, sizeof(le), "%s", b.data);
                    ward_buf_free(&b);
                } else {
                    snprintf(le, sizeof(le), "+Inf");
                }
                ward_buf_printf(out, "%s_bucket", m->name);
                put_labels(out, m, s, le);
                ward_buf_printf(out, " %llu\n", (unsigned long long)cumulative);
            }
            ward_buf_printf(out, "%s_sum", m->name);
            put_labels(out, m, s, NULL);
            ward_buf_putc(out, ' ');
            put_number(out, s->sum);
            ward_buf_printf(out, "\n%s_count", m->name);
            put_labels(out, m, s, NULL);
            ward_buf_printf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
}
