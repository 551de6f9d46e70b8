/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "metrics.h"

#include "config.h"
#include "log.h"
#include "provqueue.h"

/* One request; in the waiting list (FIFO) or the admitted list, never both. */
struct entry {
    char *name;   /* owned */
    bool suspect; /* changed since it was last checked */
    struct entry *next;
};

struct ward_provqueue {
    struct ward_provqueue_options o;
    bool draining;
    struct entry *waiting, **waiting_tail; /* owned, oldest first */
    struct entry *admitted;                /* owned */
    unsigned nwaiting, nadmitted;
    bool any_suspect;
    ev_timer settle; /* re-check on the next loop iteration */
    struct ward_metric *m_length, *m_processing, *m_max, *m_rejected;
};

/* ------------------------------------------------------------------ settings */

void ward_provqueue_settings_init(struct ward_provqueue_settings *s)
{
    s->max_queue_size = WARD_PROVQUEUE_DEFAULT_SIZE;
    s->worker_count = WARD_PROVQUEUE_DEFAULT_WORKERS;
    s->max_concurrent_ops = WARD_PROVQUEUE_DEFAULT_OPS;
}

static const struct {
    const char *key;
    size_t offset;
    unsigned min, max;
} setting_keys[] = {
    {"maxQueueSize", offsetof(struct ward_provqueue_settings, max_queue_size), 1,
     WARD_PROVQUEUE_MAX_SIZE},
    {"workerCount", offsetof(struct ward_provqueue_settings, worker_count), 1,
     WARD_PROVQUEUE_MAX_WORKERS},
    {"maxConcurrentOps", offsetof(struct ward_provqueue_settings, max_concurrent_ops), 1,
     WARD_PROVQUEUE_MAX_OPS},
};

int ward_provqueue_settings_set(struct ward_provqueue_settings *s, const char *key,
                                const char *value, struct ward_error *err)
{
    for (size_t i = 0; i < WARD_ARRAY_SIZE(setting_keys); i++) {
        if (strcmp(key, setting_keys[i].key) != 0) {
            continue;
        }
        char *end = NULL;
        errno = 0;
        long v = value[0] >= '0' && value[0] <= '9' ? strtol(value, &end, 10) : -1;
        if (end == NULL || *end != '\0' || errno != 0 || v < (long)setting_keys[i].min ||
            v > (long)setting_keys[i].max) {
            return ward_error_set(err, -EINVAL,
                                  "provisioning.%s must be a whole number from %u to %u (got "
                                  "\"%.40s\")",
                                  key, setting_keys[i].min, setting_keys[i].max, value);
        }
        *(unsigned *)((char *)s + setting_keys[i].offset) = (unsigned)v;
        return 0;
    }
    return ward_error_set(err, -EINVAL,
                          "provisioning: unknown setting '%.60s' (use maxQueueSize, workerCount "
                          "or maxConcurrentOps)",
                          key);
}

int ward_provqueue_settings_read(const struct ward_config *cfg, struct ward_provqueue_settings *s,
                                 struct ward_error *err)
{
    ward_provqueue_settings_init(s);
    lua_State *L = cfg->L;
    int top = lua_gettop(L);
    int type = ward_config_section(cfg, "provisioning");
    if (type == LUA_TNIL) {
        lua_settop(L, top);
        return 0;
    }
    if (type != LUA_TTABLE) {
        lua_settop(L, top);
        return ward_error_set(err, -EINVAL,
                              "provisioning must be a table: provisioning = { maxQueueSize = 100, "
                              "workerCount = 4, maxConcurrentOps = 10 }");
    }
    int tbl = lua_gettop(L);
    int rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, tbl) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = ward_error_set(err, -EINVAL, "provisioning: settings are name = number pairs");
        } else {
            char text[48];
            if (lua_isinteger(L, -1)) {
                snprintf(text, sizeof(text), "%lld", (long long)lua_tointeger(L, -1));
            } else if (lua_type(L, -1) == LUA_TSTRING) {
                snprintf(text, sizeof(text), "%s", lua_tostring(L, -1));
            } else if (lua_type(L, -1) == LUA_TNUMBER) {
                snprintf(text, sizeof(text), "%g", (double)lua_tonumber(L, -1));
            } else {
                snprintf(text, sizeof(text), "a %s", luaL_typename(L, -1));
            }
            rc = ward_provqueue_settings_set(s, lua_tostring(L, -2), text, err);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return rc;
}

/* ------------------------------------------------------------------- the queue */

static unsigned limit_of(const struct ward_provqueue *q)
{
    if (q->draining) {
        return 0;
    }
    const struct ward_provqueue_settings *s = &q->o.settings;
    return s->worker_count < s->max_concurrent_ops ? s->worker_count : s->max_concurrent_ops;
}

static void publish(struct ward_provqueue *q)
{
    ward_metric_set(q->m_length, NULL, q->nwaiting);
    ward_metric_set(q->m_processing, NULL, q->nadmitted);
    ward_metric_set(q->m_max, NULL, q->o.settings.max_queue_size);
}

static struct entry **find(struct entry **list, const char *name)
{
    for (struct entry **pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            return pp;
        }
    }
    return NULL;
}

static void fix_tail(struct ward_provqueue *q)
{
    q->waiting_tail = &q->waiting;
    while (*q->waiting_tail != NULL) {
        q->waiting_tail = &(*q->waiting_tail)->next;
    }
}

static struct entry *pop_head(struct ward_provqueue *q)
{
    struct entry *x = q->waiting;
    q->waiting = x->next;
    q->nwaiting--;
    if (q->waiting == NULL) {
        q->waiting_tail = &q->waiting;
    }
    return x;
}

static void entry_free(struct entry *x)
{
    free(x->name);
    free(x);
}

static struct entry *append(struct ward_provqueue *q, const char *name)
{
    struct entry *x = calloc(1, sizeof(*x));
    if (x == NULL || (x->name = strdup(name)) == NULL) {
        free(x);
        return NULL;
    }
    *q->waiting_tail = x;
    q->waiting_tail = &x->next;
    q->nwaiting++;
    return x;
}

static int check(struct ward_provqueue *q, const char *name)
{
    return q->o.check != NULL ? q->o.check(q->o.arg, name) : WARD_PROVQUEUE_WANTED;
}

/*
 * Re-check what changed: forget what is no longer a request, take a waiting
 * host found already inside (it got there without asking, e.g. before a
 * restart) as admitted.
 */
static void recheck(struct ward_provqueue *q)
{
    if (!q->any_suspect) {
        return;
    }
    q->any_suspect = false;
    for (struct entry **pp = &q->admitted; *pp != NULL;) {
        struct entry *x = *pp;
        if (x->suspect && (x->suspect = false, check(q, x->name)) == WARD_PROVQUEUE_GONE) {
            *pp = x->next;
            q->nadmitted--;
            ward_log(WARD_LOG_DEBUG, "provqueue", "%s left the provisioning queue (slot freed)",
                     x->name);
            entry_free(x);
            continue;
        }
        pp = &x->next;
    }
    for (struct entry **pp = &q->waiting; *pp != NULL;) {
        struct entry *x = *pp;
        int c = x->suspect ? check(q, x->name) : WARD_PROVQUEUE_WANTED;
        x->suspect = false;
        if (c == WARD_PROVQUEUE_WANTED) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        q->nwaiting--;
        if (c == WARD_PROVQUEUE_INSIDE) {
            x->next = q->admitted;
            q->admitted = x;
            q->nadmitted++;
        } else {
            ward_log(WARD_LOG_INFO, "provqueue",
                     "%s left the provisioning queue while waiting (claim or image removed)",
                     x->name);
            entry_free(x);
        }
    }
    fix_tail(q);
}

/* Admit from the head while slots are free; kick each one but skip (it is asking now). */
static void pump(struct ward_provqueue *q, const char *skip)
{
    recheck(q);
    unsigned limit = limit_of(q);
    while (q->nadmitted < limit && q->waiting != NULL) {
        /* the head may have gone since it was queued (released without a change seen yet) */
        bool gone = check(q, q->waiting->name) == WARD_PROVQUEUE_GONE;
        struct entry *x = pop_head(q);
        if (gone) {
            entry_free(x);
            continue;
        }
        x->next = q->admitted;
        q->admitted = x;
        q->nadmitted++;
        ward_log(WARD_LOG_INFO, "provqueue", "%s admitted to provisioning (%u of %u slots)",
                 x->name, q->nadmitted, limit);
        if (q->o.kick != NULL && (skip == NULL || strcmp(skip, x->name) != 0)) {
            q->o.kick(q->o.arg, x->name);
        }
    }
    publish(q);
}

static void on_settle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    ward_provqueue_settle(ward_container_of(w, struct ward_provqueue, settle));
}

static void schedule(struct ward_provqueue *q)
{
    if (q->o.loop != NULL && !ev_is_active(&q->settle)) {
        ev_timer_set(&q->settle, 0, 0);
        ev_timer_start(q->o.loop, &q->settle);
    }
}

struct ward_provqueue *ward_provqueue_create(const struct ward_provqueue_options *opts,
                                             struct ward_error *err)
{
    const struct ward_provqueue_settings *s = &opts->settings;
    if (s->max_queue_size < 1 || s->worker_count < 1 || s->max_concurrent_ops < 1 ||
        s->max_concurrent_ops > WARD_PROVQUEUE_MAX_OPS) {
        ward_error_set(err, -EINVAL, "provisioning: settings out of range");
        return NULL;
    }
    struct ward_provqueue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    q->o = *opts;
    q->waiting_tail = &q->waiting;
    ev_timer_init(&q->settle, on_settle, 0, 0);
    if (opts->metrics != NULL) {
        /* the HTTP server registers the same families for a complete exposition: same shape */
        q->m_length = ward_metrics_gauge(opts->metrics, "ward_provisioning_queue_length",
                                         "Provisioning requests waiting in the queue.", NULL);
        q->m_processing =
            ward_metrics_untyped(opts->metrics, "ward_provisioning_queue_processing_count",
                                 "Provisioning requests being worked on.", NULL);
        q->m_max = ward_metrics_gauge(opts->metrics, "ward_provisioning_queue_max_size",
                                      "Configured maximum length of the provisioning queue.", NULL);
        q->m_rejected =
            ward_metrics_counter(opts->metrics, "ward_provisioning_queue_rejected_total",
                                 "Provisioning requests refused because the queue was full.", NULL);
    }
    publish(q);
    return q;
}

static void list_free(struct entry *x)
{
    while (x != NULL) {
        struct entry *next = x->next;
        entry_free(x);
        x = next;
    }
}

void ward_provqueue_destroy(struct ward_provqueue *q)
{
    if (q == NULL) {
        return;
    }
    if (q->o.loop != NULL) {
        ev_timer_stop(q->o.loop, &q->settle);
    }
    list_free(q->waiting);
    list_free(q->admitted);
    free(q);
}

int ward_provqueue_admit(void *arg, const char *name, struct ward_error *err)
{
    struct ward_provqueue *q = arg;
    recheck(q);
    if (find(&q->admitted, name) != NULL) {
        return 0;
    }
    if (find(&q->waiting, name) == NULL && append(q, name) == NULL) {
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    pump(q, name);
    if (find(&q->admitted, name) != NULL) {
        return 0;
    }
    int pos = ward_provqueue_position(q, name);
    return ward_error_set(err, -EAGAIN,
                          "waiting in the provisioning queue at position %d of %u (%u of %u "
                          "slots busy%s)",
                          pos, q->nwaiting, q->nadmitted, limit_of(q),
                          q->draining ? ", the queue is drained" : "");
}

int ward_provqueue_offer(struct ward_provqueue *q, const char *name, struct ward_error *err)
{
    recheck(q);
    if (name != NULL) {
        if (find(&q->admitted, name) != NULL || find(&q->waiting, name) != NULL) {
            return 0;
        }
        if (append(q, name) == NULL) {
            return ward_error_set(err, -ENOMEM, "out of memory");
        }
        pump(q, NULL);
        return 0;
    }
    /*
     * recheck() above dropped waiting hosts that went away: every change reaches
     * ward_provqueue_changed first, so a refusal never re-reads the whole queue.
     */
    if (q->nwaiting >= q->o.settings.max_queue_size) {
        ward_metric_add(q->m_rejected, NULL, 1);
        ward_log(WARD_LOG_WARN, "provqueue",
                 "provisioning request refused: the queue is full (%u waiting, maxQueueSize %u)",
                 q->nwaiting, q->o.settings.max_queue_size);
        return ward_error_set(err, -EBUSY,
                              "the provisioning queue is full: %u requests wait (maxQueueSize "
                              "%u); retry later",
                              q->nwaiting, q->o.settings.max_queue_size);
    }
    return 0;
}

void ward_provqueue_changed(struct ward_provqueue *q, const char *name)
{
    struct entry **pp = find(&q->admitted, name);
    if (pp == NULL) {
        pp = find(&q->waiting, name);
    }
    if (pp == NULL) {
        return;
    }
    (*pp)->suspect = true;
    q->any_suspect = true;
    schedule(q);
}

void ward_provqueue_settle(struct ward_provqueue *q)
{
    pump(q, NULL);
}

void ward_provqueue_configure(struct ward_provqueue *q, const struct ward_provqueue_settings *s)
{
    q->o.settings = *s;
    pump(q, NULL);
}

void ward_provqueue_drain(struct ward_provqueue *q, bool drain)
{
    q->draining = drain;
    pump(q, NULL);
}

bool ward_provqueue_draining(const struct ward_provqueue *q)
{
    return q->draining;
}

int ward_provqueue_position(const struct ward_provqueue *q, const char *name)
{
    for (const struct entry *x = q->admitted; x != NULL; x = x->next) {
        if (strcmp(x->name, name) == 0) {
            return 0;
        }
    }
    int pos = 1;
    for (const struct entry *x = q->waiting; x != NULL; x = x->next, pos++) {
        if (strcmp(x->name, name) == 0) {
            return pos;
        }
    }
    return -1;
}

unsigned ward_provqueue_length(const struct ward_provqueue *q)
{
    return q->nwaiting;
}

unsigned ward_provqueue_processing(const struct ward_provqueue *q)
{
    return q->nadmitted;
}

unsigned ward_provqueue_limit(const struct ward_provqueue *q)
{
    return limit_of(q);
}

static void put_names(struct ward_buf *out, const struct entry *x)
{
    ward_buf_putc(out, '[');
    for (unsigned n = 0; x != NULL && n < WARD_PROVQUEUE_STATUS_NAMES; x = x->next, n++) {
        if (n > 0) {
            ward_buf_putc(out, ',');
        }
        ward_json_escape(out, x->name);
    }
    ward_buf_putc(out, ']');
}

void ward_provqueue_status(struct ward_provqueue *q, struct ward_buf *out)
{
    pump(q, NULL);
    const struct ward_provqueue_settings *s = &q->o.settings;
    ward_buf_printf(out,
                    "{\"length\":%u,\"processing\":%u,\"max_size\":%u,\"workers\":%u,"
                    "\"max_concurrent_ops\":%u,\"limit\":%u,\"draining\":%s,\"waiting\":",
                    q->nwaiting, q->nadmitted, s->max_queue_size, s->worker_count,
                    s->max_concurrent_ops, limit_of(q), q->draining ? "true" : "false");
    put_names(out, q->waiting);
    ward_buf_puts(out, ",\"admitted\":");
    put_names(out, q->admitted);
    ward_buf_puts(out, "}\n");
}
