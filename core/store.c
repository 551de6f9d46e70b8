/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The durable resource store on SQLite. One connection, WAL journal, synchronous=FULL:
 * a commit returns only once the WAL is fsynced, so "done" really means durable. The
 * cost of that fsync is shared by group commit: transitions queued during one loop
 * iteration are written in one BEGIN IMMEDIATE..COMMIT from an ev_prepare watcher,
 * each inside its own SAVEPOINT so one bad item never fails its neighbours.
 * Schema, migrations and the reasons are in doc/store.md.
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "metrics.h"
#include "store.h"
#include "util.h"

#define STORE_MAX_NAME 253
#define STORE_PRUNE_STEP 500
#define STORE_PRUNE_CATCHUP 0.01 /* seconds between steps while a backlog remains */

/*
 * Forward migrations: element i takes the schema from version i to i + 1. Never edit a
 * shipped step; append one. AUTOINCREMENT keeps row ids of deleted resources from being
 * reused, so history written for an old incarnation never attaches to a new one.
 */
static const char *const migrations[] = {
    "CREATE TABLE resources ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " spec TEXT NOT NULL, status TEXT NOT NULL, labels TEXT NOT NULL,"
    " consumer TEXT,"
    " created REAL NOT NULL, updated REAL NOT NULL,"
    " UNIQUE (kind, ns, name));"
    "CREATE TABLE states ("
    " rid INTEGER NOT NULL REFERENCES resources(id),"
    " dimension TEXT NOT NULL, state TEXT NOT NULL, entered REAL NOT NULL,"
    " PRIMARY KEY (rid, dimension)) WITHOUT ROWID;"
    "CREATE INDEX states_by_state ON states (dimension, state);"
    "CREATE TABLE history ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " rid INTEGER NOT NULL,"
    " kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,"
    " dimension TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
    " trigger TEXT, reason TEXT, actor TEXT,"
    " at REAL NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX history_by_resource ON history (kind, ns, name, id);"
    "CREATE INDEX history_by_rid ON history (rid, id);"
    "CREATE INDEX history_by_time ON history (at);",
    /* 1 -> 2: the last version of each deleted resource, so that one created again under
       its name goes on from there instead of 1, and a compare-and-swap against a version
       read from the old one fails. Seeded from history, which knows the versions of
       transitions (a spec write after the last one was not recorded there). */
    "CREATE TABLE retired ("
    " kind TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,"
    " PRIMARY KEY (kind, ns, name)) WITHOUT ROWID;"
    "INSERT INTO retired SELECT kind, ns, name, MAX(version) FROM history"
    " GROUP BY kind, ns, name;",
};
_Static_assert(WARD_ARRAY_SIZE(migrations) == WARD_STORE_SCHEMA_VERSION,
               "one migration step per schema version");

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_GET,
    S_INSERT,
    S_UPDATE,
    S_DELETE,
    S_RETIRE,
    S_DELETE_STATES,
    S_STATE_GET,
    S_STATE_SET,
    S_STATES,
    S_RES_WRITE,
    S_HIST_INSERT,
    S_HIST_KEEP,
    S_HIST_AGE,
    S_HIST_RESOURCE,
    S_HIST_RANGE,
    S_LIST,
    S_CANDIDATES,
    S_COUNT
};

#define RES_COLS                                                                                   \
    "r.id, r.kind, r.ns, r.name, r.version, r.spec, r.status, r.labels, "                          \
    "r.consumer, r.created, r.updated"
#define HIST_COLS                                                                                  \
    "dimension, from_state, to_state, trigger, reason, actor, at, version, "                       \
    "kind, ns, name"

/* a row's labels for json_each: a value a hand edit broke reads as none, not as an error
   that would stop every filter and claim (check_rows reports the row at open) */
#define LABELS "CASE WHEN json_valid(r.labels) THEN r.labels ELSE '{}' END"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT item",
    [S_RELEASE] = "RELEASE item",
    [S_ROLLBACK_TO] = "ROLLBACK TO item",
    [S_GET] = "SELECT " RES_COLS " FROM resources r WHERE kind = ?1 AND ns = ?2 AND name = ?3",
    [S_INSERT] = "INSERT INTO resources (kind, ns, name, version, spec, status, labels, consumer,"
                 " created, updated) VALUES (?1, ?2, ?3, 1 + COALESCE((SELECT version FROM"
                 " retired WHERE kind = ?1 AND ns = ?2 AND name = ?3), 0), ?4, ?5, ?6, NULL,"
                 " ?7, ?7) RETURNING version",
    [S_RETIRE] = "INSERT INTO retired (kind, ns, name, version) VALUES (?1, ?2, ?3, ?4)"
                 " ON CONFLICT (kind, ns, name) DO UPDATE SET version = excluded.version",
    [S_UPDATE] = "UPDATE resources SET version = version + 1, spec = ?1, status = ?2, labels = ?3,"
                 " updated = ?4 WHERE id = ?5 AND version = ?6",
    [S_DELETE] = "DELETE FROM resources WHERE id = ?1 AND version = ?2",
    [S_DELETE_STATES] = "DELETE FROM states WHERE rid = ?1",
    [S_STATE_GET] = "SELECT state FROM states WHERE rid = ?1 AND dimension = ?2",
    [S_STATE_SET] = "INSERT INTO states (rid, dimension, state, entered) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (rid, dimension) DO UPDATE SET state = excluded.state,"
                    " entered = excluded.entered",
    [S_STATES] = "SELECT dimension, state, entered FROM states WHERE rid = ?1 ORDER BY dimension",
    [S_RES_WRITE] = "UPDATE resources SET version = version + 1, status = ?1, consumer = ?2,"
                    " updated = ?3 WHERE id = ?4 AND version = ?5",
    [S_HIST_INSERT] = "INSERT INTO history (rid, kind, ns, name, dimension, from_state, to_state,"
                      " trigger, reason, actor, at, version)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_HIST_KEEP] = "DELETE FROM history WHERE rid = ?1 AND id <= (SELECT id FROM history"
                    " WHERE rid = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    [S_HIST_AGE] = "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE at < ?1"
                   " ORDER BY at LIMIT ?2)",
    [S_HIST_RESOURCE] = "SELECT " HIST_COLS " FROM history WHERE kind = ?1 AND ns = ?2"
                        " AND name = ?3 AND at >= ?4 AND (?5 <= 0 OR at < ?5) ORDER BY id",
    [S_HIST_RANGE] = "SELECT " HIST_COLS " FROM history WHERE at >= ?1 AND (?2 <= 0 OR at < ?2)"
                     " AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR ns = ?4) ORDER BY id",
    [S_LIST] = "SELECT " RES_COLS " FROM resources r WHERE (?1 IS NULL OR r.kind = ?1)"
               " AND ((?2 IS NULL AND ?3 IS NULL) OR EXISTS (SELECT 1 FROM states s"
               "  WHERE s.rid = r.id AND (?2 IS NULL OR s.dimension = ?2)"
               "  AND (?3 IS NULL OR s.state = ?3)))"
               " AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(" LABELS ") l"
               "  WHERE l.key = ?4 AND (?5 IS NULL OR l.value = ?5)))"
               " ORDER BY r.kind, r.ns, r.name",
    /* A host matches the selector when no selector entry lacks an equal label. */
    [S_CANDIDATES] = "SELECT " RES_COLS " FROM resources r JOIN states s ON s.rid = r.id"
                     " WHERE r.kind = ?1 AND s.dimension = '" WARD_STORE_LIFECYCLE "'"
                     " AND s.state = '" WARD_STORE_AVAILABLE "' AND r.consumer IS NULL"
                     " AND (?2 IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(?2) sel"
                     "  WHERE sel.value IS NOT (SELECT l.value FROM json_each(" LABELS ") l"
                     "  WHERE l.key = sel.key)))",
};

/* One queued transition; every string is an owned copy. */
struct store_item {
    struct store_item *next;
    struct ward_transition t;
    char *owned[12];
    ward_store_done_fn done;
    void *arg;
    int rc;
    bool settled; /* its result is final (committed, failed alone, or lost with a commit) */
    int64_t version;
    struct ward_error err;
};

/* A change waiting for its transaction to commit; strings owned. */
struct store_change {
    char *kind, *ns, *name;
    int64_t version;
    const char *what; /* static string */
};

struct store_sub {
    void (*cb)(void *arg, const struct ward_store_change *c);
    void *arg;
};

struct ward_store {
    sqlite3 *db;
    char *path; /* owned */
    struct ev_loop *loop;
    ev_prepare commit_watcher; /* commits the queue before the loop blocks */
    ev_idle wake_watcher;      /* keeps the loop from blocking while items wait */
    ev_timer prune_timer;
    double (*now)(void *arg);
    void *now_arg;
    long history_keep;
    double history_max_age;
    double prune_interval;
    bool read_only;
    bool bulk;        /* inside ward_store_bulk_begin..end: one open transaction */
    bool bulk_lost;   /* SQLite rolled the bulk's transaction back: every write fails until
                         bulk_end, so none commits on its own while the bulk seems open */
    size_t bulk_mark; /* changes recorded before the current write of the bulk */
    sqlite3_stmt *stmts[S_COUNT];
    struct store_item *head, **tail; /* the queue; items owned */
    struct store_change *changes;    /* uncommitted changes of the open transaction; owned */
    size_t nchanges, capchanges;
    struct store_sub *subs; /* owned array */
    size_t nsubs;
    struct ward_metric *claim_attempts;
    struct ward_metric *commits;
    struct ward_metric *group_size;
};

/* ---- small helpers ------------------------------------------------------------------ */

static double real_now(void *arg)
{
    (void)arg;
    return ward_wall_clock();
}

static double store_now(struct ward_store *st)
{
    return st->now(st->now_arg);
}

static char *dup_or_null(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL) {
        abort(); /* allocation failure inside a commit path cannot be reported sanely */
    }
    return d;
}

static const char *ns_of(const char *ns)
{
    return ns != NULL ? ns : "";
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? dup_or_null((const char *)t) : NULL;
}

/*
 * Turn a SQLite failure into an errno and a sentence that says what to do. Never
 * includes resource content (a spec may carry credentials).
 */
static int db_fail(struct ward_store *st, int rc, const char *what, struct ward_error *err)
{
    const char *msg = st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return ward_error_set(err, -ENOSPC,
                              "%s: the store %s is full (%s); free disk space in the state "
                              "directory or raise the store size limit, then retry",
                              what, st->path, msg);
    case SQLITE_READONLY:
        return ward_error_set(err, -EROFS,
                              "%s: the store %s is read-only (%s); make the state directory and "
                              "the database writable by wardd",
                              what, st->path, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ward_error_set(err, -EIO,
                              "%s: %s is corrupt or not a ward database (%s); stop wardd, move "
                              "the file (and its -wal/-shm files) aside and restore a backup",
                              what, st->path, msg);
    case SQLITE_IOERR:
        return ward_error_set(err, -EIO, "%s: I/O error on %s (%s); check the disk", what, st->path,
                              msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ward_error_set(err, -EBUSY,
                              "%s: %s is locked by another process (%s); stop the other wardd "
                              "using this state directory",
                              what, st->path, msg);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return ward_error_set(err, -EACCES,
                              "%s: cannot open %s (%s); check the state directory exists and "
                              "is writable by wardd",
                              what, st->path, msg);
    case SQLITE_NOMEM:
        return ward_error_set(err, -ENOMEM, "%s: out of memory", what);
    case SQLITE_CONSTRAINT:
        return ward_error_set(err, -EEXIST, "%s: %s", what, msg);
    default:
        return ward_error_set(err, -EIO, "%s: database error on %s (%s)", what, st->path, msg);
    }
}

static sqlite3_stmt *stmt(struct ward_store *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmts[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL) {
        sqlite3_bind_null(s, i);
    } else {
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    }
}

/* Run a statement that returns no rows. */
static int exec_stmt(struct ward_store *st, sqlite3_stmt *s, const char *what,
                     struct ward_error *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return db_fail(st, rc, what, err);
    }
    return 0;
}

static int exec_id(struct ward_store *st, enum stmt_id id, const char *what, struct ward_error *err)
{
    return exec_stmt(st, stmt(st, id), what, err);
}

static int check_name(const char *what, const char *v, bool may_be_empty, struct ward_error *err)
{
    if (v == NULL || (!may_be_empty && *v == '\0')) {
        return ward_error_set(err, -EINVAL, "%s is required", what);
    }
    size_t len = strlen(v);
    if (len > STORE_MAX_NAME) {
        return ward_error_set(err, -EINVAL, "%s is longer than %d bytes", what, STORE_MAX_NAME);
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
            return ward_error_set(err, -EINVAL, "%s contains a control character", what);
        }
    }
    return 0;
}

/*
 * Validate JSON object text. strings_only: every value must be a string (labels and
 * selectors). The error names the field and the byte offset, never the content.
 */
static int check_object(const char *what, const char *text, bool strings_only,
                        struct ward_error *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, true);
    if (j == NULL) {
        long at = end != NULL ? (long)(end - text) : 0;
        return ward_error_set(err, -EINVAL, "%s is not valid JSON (parse error near byte %ld)",
                              what, at);
    }
    int rc = 0;
    if (!cJSON_IsObject(j)) {
        rc = ward_error_set(err, -EINVAL, "%s must be a JSON object", what);
    } else if (strings_only) {
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            if (!cJSON_IsString(e)) {
                rc = ward_error_set(err, -EINVAL, "%s: the value of \"%s\" must be a string", what,
                                    e->string);
                break;
            }
        }
    }
    cJSON_Delete(j);
    return rc;
}

static struct ward_resource *row_resource(sqlite3_stmt *s)
{
    struct ward_resource *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        abort();
    }
    r->kind = col_dup(s, 1);
    r->ns = col_dup(s, 2);
    r->name = col_dup(s, 3);
    r->version = sqlite3_column_int64(s, 4);
    r->spec = col_dup(s, 5);
    r->status = col_dup(s, 6);
    r->labels = col_dup(s, 7);
    r->consumer = col_dup(s, 8);
    r->created = sqlite3_column_double(s, 9);
    r->updated = sqlite3_column_double(s, 10);
    return r;
}

void ward_resource_free(struct ward_resource *r)
{
    if (r == NULL) {
        return;
    }
    free(r->kind);
    free(r->ns);
    free(r->name);
    free(r->spec);
    free(r->status);
    free(r->labels);
    free(r->consumer);
    free(r);
}

void ward_resource_list_free(struct ward_resource **list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ward_resource_free(list[i]);
    }
    free(list);
}

void ward_state_free(struct ward_state *s, size_t n)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(s[i].dimension);
        free(s[i].state);
    }
    free(s);
}

void ward_history_free(struct ward_history *h, size_t n)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(h[i].dimension);
        free(h[i].from);
        free(h[i].to);
        free(h[i].trigger);
        free(h[i].reason);
        free(h[i].actor);
        free(h[i].kind);
        free(h[i].ns);
        free(h[i].resource);
    }
    free(h);
}

/* ---- change feed ---------------------------------------------------------------------- */

static void change_push(struct ward_store *st, const char *kind, const char *ns, const char *name,
                        int64_t version, const char *what)
{
    if (st->nchanges == st->capchanges) {
        size_t cap = st->capchanges != 0 ? st->capchanges * 2 : 16;
        struct store_change *c = realloc(st->changes, cap * sizeof(*c));
        if (c == NULL) {
            abort();
        }
        st->changes = c;
        st->capchanges = cap;
    }
    st->changes[st->nchanges++] =
        (struct store_change){dup_or_null(kind), dup_or_null(ns), dup_or_null(name), version, what};
}

/* Drop changes recorded after mark (their savepoint or transaction rolled back). */
static void changes_truncate(struct ward_store *st, size_t mark)
{
    while (st->nchanges > mark) {
        struct store_change *c = &st->changes[--st->nchanges];
        free(c->kind);
        free(c->ns);
        free(c->name);
    }
}

/* Deliver committed changes. Detached first: a subscriber may write again. */
static void changes_emit(struct ward_store *st)
{
    struct store_change *list = st->changes;
    size_t n = st->nchanges;
    st->changes = NULL;
    st->nchanges = st->capchanges = 0;
    /* a snapshot of the subscribers: a callback may (un)subscribe */
    size_t nsubs = st->nsubs;
    struct store_sub *subs = NULL;
    if (n > 0 && nsubs > 0) {
        subs = malloc(nsubs * sizeof(*subs));
        if (subs == NULL) {
            abort();
        }
        memcpy(subs, st->subs, nsubs * sizeof(*subs));
    }
    for (size_t i = 0; i < n; i++) {
        struct ward_store_change c = {list[i].kind, list[i].ns, list[i].name, list[i].version,
                                      list[i].what};
        for (size_t k = 0; k < nsubs && subs != NULL; k++) {
            subs[k].cb(subs[k].arg, &c);
        }
        free(list[i].kind);
        free(list[i].ns);
        free(list[i].name);
    }
    free(subs);
    free(list);
}

int ward_store_subscribe(struct ward_store *st,
                         void (*cb)(void *arg, const struct ward_store_change *c), void *arg)
{
    struct store_sub *s = realloc(st->subs, (st->nsubs + 1) * sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    st->subs = s;
    st->subs[st->nsubs++] = (struct store_sub){cb, arg};
    return 0;
}

void ward_store_unsubscribe(struct ward_store *st,
                            void (*cb)(void *arg, const struct ward_store_change *c), void *arg)
{
    for (size_t i = 0; i < st->nsubs; i++) {
        if (st->subs[i].cb == cb && st->subs[i].arg == arg) {
            memmove(&st->subs[i], &st->subs[i + 1], (st->nsubs - i - 1) * sizeof(st->subs[0]));
            st->nsubs--;
            return;
        }
    }
}

/* ---- transactions --------------------------------------------------------------------- */

static void write_rollback(struct ward_store *st)
{
    if (!sqlite3_get_autocommit(st->db)) {
        exec_id(st, S_ROLLBACK, "rollback", NULL);
    }
    changes_truncate(st, 0);
}

static int write_begin(struct ward_store *st, struct ward_error *err)
{
    if (st->read_only) {
        return ward_error_set(err, -EROFS,
                              "the store %s was opened read-only; writes are refused (fix the "
                              "state directory and restart wardd read-write)",
                              st->path);
    }
    if (st->bulk_lost) {
        return ward_error_set(err, -EIO,
                              "an earlier write of this bulk lost its transaction, so nothing "
                              "of the bulk is written; end the bulk");
    }
    if (st->bulk) {
        /* one write of a bulk: a savepoint, so that a failing write fails alone */
        st->bulk_mark = st->nchanges;
        return exec_id(st, S_SAVEPOINT, "open a savepoint", err);
    }
    ward_store_flush(st); /* keep writes in the order they were asked for */
    return exec_id(st, S_BEGIN, "begin a write", err);
}

/*
 * Close the savepoint an item (a queued transition, one write of a bulk) opened when the
 * item's changes began at mark: keep the item (rc == 0) or undo only it. *txn_lost is set
 * when SQLite rolled the whole transaction back (it may, on a full disk or an I/O error),
 * which takes every earlier item down with it.
 */
static int savepoint_end(struct ward_store *st, size_t mark, int rc, bool *txn_lost,
                         struct ward_error *err)
{
    if (rc < 0) {
        changes_truncate(st, mark);
        if (sqlite3_get_autocommit(st->db)) {
            *txn_lost = true;
            return rc;
        }
        exec_id(st, S_ROLLBACK_TO, "roll back an item", NULL);
    }
    int released = exec_id(st, S_RELEASE, "release a savepoint", rc < 0 ? NULL : err);
    if (sqlite3_get_autocommit(st->db)) {
        *txn_lost = true;
        if (rc == 0) {
            rc = released < 0 ? released
                              : ward_error_set(err, -EIO, "the transaction was rolled back");
        }
    }
    return rc;
}

/* End one write of a bulk. Its changes wait for the bulk's commit; when the whole
 * transaction was rolled back, the bulk is over and so is everything written in it. */
static int bulk_item_end(struct ward_store *st, int rc, struct ward_error *err)
{
    bool lost = false;
    rc = savepoint_end(st, st->bulk_mark, rc, &lost, err);
    if (lost) {
        st->bulk_lost = true;
        changes_truncate(st, 0);
        if (err != NULL) {
            char why[sizeof(err->text)];
            snprintf(why, sizeof(why), "%s", err->text);
            ward_error_set(err, rc, "%.400s; the whole bulk write was rolled back", why);
        }
    }
    return rc;
}

/* Commit (rc == 0) or roll back; the change feed runs only after a durable commit. */
static int write_end(struct ward_store *st, int rc, struct ward_error *err)
{
    if (st->bulk) {
        return bulk_item_end(st, rc, err);
    }
    if (rc == 0) {
        rc = exec_id(st, S_COMMIT, "commit", err);
    }
    if (rc != 0) {
        write_rollback(st);
        return rc;
    }
    if (st->commits != NULL) {
        ward_metric_add(st->commits, NULL, 1);
    }
    changes_emit(st);
    return 0;
}

int ward_store_bulk_begin(struct ward_store *st, struct ward_error *err)
{
    if (st->bulk) {
        return ward_error_set(err, -EBUSY, "a bulk write is already open");
    }
    int rc = write_begin(st, err);
    if (rc == 0) {
        st->bulk = true;
    }
    return rc;
}

int ward_store_bulk_end(struct ward_store *st, bool commit, struct ward_error *err)
{
    if (!st->bulk || st->bulk_lost) {
        st->bulk = st->bulk_lost = false;
        return commit ? ward_error_set(err, -EIO, "the store rolled the bulk write back") : 0;
    }
    st->bulk = false;
    int rc = 0;
    if (!commit) {
        write_rollback(st);
    } else {
        rc = write_end(st, 0, err);
    }
    if (st->loop == NULL && st->head != NULL) {
        ward_store_flush(st); /* without a loop, what waited for the bulk commits now */
    }
    return rc;
}

/* ---- resources ---------------------------------------------------------------------- */

/* Look a resource up inside the current transaction. Caller frees *out. */
static int load(struct ward_store *st, const char *kind, const char *ns, const char *name,
                int64_t *rid, struct ward_resource **out, struct ward_error *err)
{
    sqlite3_stmt *s = stmt(st, S_GET);
    bind_text(s, 1, kind);
    bind_text(s, 2, ns_of(ns));
    bind_text(s, 3, name);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return ward_error_set(err, -ENOENT, "%s %s/%s does not exist", kind, ns_of(ns), name);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return db_fail(st, rc, "read a resource", err);
    }
    if (rid != NULL) {
        *rid = sqlite3_column_int64(s, 0);
    }
    *out = row_resource(s);
    sqlite3_reset(s);
    return 0;
}

/*
 * status with "states" set from the states table, so the status a reader sees always
 * agrees with the recorded states (a writer cannot forge them). Caller frees *out.
 */
static int status_overlay(struct ward_store *st, int64_t rid, const char *base, char **out,
                          struct ward_error *err)
{
    cJSON *j = cJSON_Parse(base);
    if (j == NULL || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ward_error_set(err, -EIO, "stored status of resource %" PRId64 " is not JSON", rid);
    }
    /* every "states": with the key twice, cJSON's readers would take the first, forged one */
    while (cJSON_GetObjectItemCaseSensitive(j, "states") != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "states");
    }
    cJSON *states = NULL;
    sqlite3_stmt *s = stmt(st, S_STATES);
    sqlite3_bind_int64(s, 1, rid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (states == NULL) {
            states = cJSON_AddObjectToObject(j, "states");
        }
        cJSON_AddStringToObject(states, (const char *)sqlite3_column_text(s, 0),
                                (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(j);
        return db_fail(st, rc, "read states", err);
    }
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (*out == NULL) {
        return ward_error_set(err, -ENOMEM, "out of memory writing a status");
    }
    return 0;
}

int ward_store_create(struct ward_store *st, struct ward_resource *r, struct ward_error *err)
{
    int rc;
    if ((rc = check_name("kind", r->kind, false, err)) < 0 ||
        (rc = check_name("namespace", ns_of(r->ns), true, err)) < 0 ||
        (rc = check_name("name", r->name, false, err)) < 0) {
        return rc;
    }
    const char *spec = r->spec != NULL ? r->spec : "{}";
    const char *status = r->status != NULL ? r->status : "{}";
    const char *labels = r->labels != NULL ? r->labels : "{}";
    if ((rc = check_object("spec", spec, false, err)) < 0 ||
        (rc = check_object("status", status, false, err)) < 0 ||
        (rc = check_object("labels", labels, true, err)) < 0) {
        return rc;
    }
    /* A "states" key given by the caller is dropped: states come from transitions (row id 0
     * never exists, so nothing is overlaid). */
    char *clean = NULL;
    if ((rc = status_overlay(st, 0, status, &clean, err)) < 0) {
        return rc;
    }
    if ((rc = write_begin(st, err)) < 0) {
        free(clean);
        return rc;
    }
    double now = store_now(st);
    sqlite3_stmt *s = stmt(st, S_INSERT);
    bind_text(s, 1, r->kind);
    bind_text(s, 2, ns_of(r->ns));
    bind_text(s, 3, r->name);
    bind_text(s, 4, spec);
    bind_text(s, 5, clean);
    bind_text(s, 6, labels);
    sqlite3_bind_double(s, 7, now);
    int64_t version = 0;
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        version = sqlite3_column_int64(s, 0);
        src = sqlite3_step(s);
    }
    sqlite3_reset(s);
    if ((src & 0xff) == SQLITE_CONSTRAINT) {
        rc =
            ward_error_set(err, -EEXIST, "%s %s/%s already exists", r->kind, ns_of(r->ns), r->name);
    } else if (src != SQLITE_DONE) {
        rc = db_fail(st, src, "create a resource", err);
    } else {
        change_push(st, r->kind, ns_of(r->ns), r->name, version, "created");
    }
    rc = write_end(st, rc, err);
    if (rc == 0) {
        r->version = version;
        r->created = r->updated = now;
    }
    free(clean);
    return rc;
}

int ward_store_get(struct ward_store *st, const char *kind, const char *ns, const char *name,
                   struct ward_resource **out, struct ward_error *err)
{
    *out = NULL;
    if (kind == NULL || name == NULL) {
        return ward_error_set(err, -EINVAL, "kind and name are required");
    }
    return load(st, kind, ns, name, NULL, out, err);
}

int ward_store_list(struct ward_store *st, const struct ward_store_filter *f,
                    struct ward_resource ***out, size_t *n, struct ward_error *err)
{
    static const struct ward_store_filter all = {0};
    if (f == NULL) {
        f = &all;
    }
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = stmt(st, S_LIST);
    bind_text(s, 1, f->kind);
    bind_text(s, 2, f->dimension);
    bind_text(s, 3, f->state);
    bind_text(s, 4, f->label_key);
    bind_text(s, 5, f->label_value);
    struct ward_resource **list = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            struct ward_resource **grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                abort();
            }
            list = grown;
        }
        list[len++] = row_resource(s);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ward_resource_list_free(list, len);
        return db_fail(st, rc, "list resources", err);
    }
    *out = list;
    *n = len;
    return 0;
}

/* The compare-and-swap write of ward_store_update, inside the open transaction. */
static int update_in_tx(struct ward_store *st, const struct ward_resource *r,
                        int64_t expected_version, double now, struct ward_error *err)
{
    struct ward_resource *cur = NULL;
    int64_t rid = 0;
    char *status = NULL;
    int rc = load(st, r->kind, r->ns, r->name, &rid, &cur, err);
    if (rc == 0 && cur->version != expected_version) {
        rc = ward_error_set(err, -ESTALE,
                            "%s %s/%s changed: version is %" PRId64 ", not %" PRId64
                            "; re-read it and retry",
                            r->kind, ns_of(r->ns), r->name, cur->version, expected_version);
    }
    if (rc == 0) {
        rc = status_overlay(st, rid, r->status != NULL ? r->status : cur->status, &status, err);
    }
    if (rc == 0) {
        sqlite3_stmt *s = stmt(st, S_UPDATE);
        bind_text(s, 1, r->spec != NULL ? r->spec : cur->spec);
        bind_text(s, 2, status);
        bind_text(s, 3, r->labels != NULL ? r->labels : cur->labels);
        sqlite3_bind_double(s, 4, now);
        sqlite3_bind_int64(s, 5, rid);
        sqlite3_bind_int64(s, 6, expected_version);
        rc = exec_stmt(st, s, "update a resource", err);
        if (rc == 0 && sqlite3_changes(st->db) != 1) {
            rc = ward_error_set(err, -ESTALE, "%s %s/%s changed meanwhile; re-read it and retry",
                                r->kind, ns_of(r->ns), r->name);
        }
    }
    if (rc == 0) {
        change_push(st, r->kind, ns_of(r->ns), r->name, expected_version + 1, "updated");
    }
    free(status);
    ward_resource_free(cur);
    return rc;
}

int ward_store_update(struct ward_store *st, struct ward_resource *r, int64_t expected_version,
                      struct ward_error *err)
{
    int rc;
    if (r->kind == NULL || r->name == NULL) {
        return ward_error_set(err, -EINVAL, "kind and name are required");
    }
    if ((r->spec != NULL && (rc = check_object("spec", r->spec, false, err)) < 0) ||
        (r->status != NULL && (rc = check_object("status", r->status, false, err)) < 0) ||
        (r->labels != NULL && (rc = check_object("labels", r->labels, true, err)) < 0)) {
        return rc;
    }
    if ((rc = write_begin(st, err)) < 0) {
        return rc;
    }
    double now = store_now(st);
    rc = update_in_tx(st, r, expected_version, now, err);
    rc = write_end(st, rc, err);
    if (rc == 0) {
        r->version = expected_version + 1;
        r->updated = now;
    }
    return rc;
}

int ward_store_delete(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      int64_t expected_version, struct ward_error *err)
{
    int rc;
    if (kind == NULL || name == NULL) {
        return ward_error_set(err, -EINVAL, "kind and name are required");
    }
    if ((rc = write_begin(st, err)) < 0) {
        return rc;
    }
    struct ward_resource *cur = NULL;
    int64_t rid = 0;
    rc = load(st, kind, ns, name, &rid, &cur, err);
    if (rc == 0 && expected_version != 0 && cur->version != expected_version) {
        rc = ward_error_set(err, -ESTALE,
                            "%s %s/%s changed: version is %" PRId64 ", not %" PRId64
                            "; re-read it and retry",
                            kind, ns_of(ns), name, cur->version, expected_version);
    }
    if (rc == 0) {
        sqlite3_stmt *s = stmt(st, S_DELETE_STATES);
        sqlite3_bind_int64(s, 1, rid);
        rc = exec_stmt(st, s, "delete a resource", err);
    }
    if (rc == 0) {
        sqlite3_stmt *s = stmt(st, S_DELETE);
        sqlite3_bind_int64(s, 1, rid);
        sqlite3_bind_int64(s, 2, cur->version);
        rc = exec_stmt(st, s, "delete a resource", err);
    }
    if (rc == 0) {
        sqlite3_stmt *s = stmt(st, S_RETIRE);
        bind_text(s, 1, kind);
        bind_text(s, 2, ns_of(ns));
        bind_text(s, 3, name);
        sqlite3_bind_int64(s, 4, cur->version);
        rc = exec_stmt(st, s, "delete a resource", err);
    }
    if (rc == 0) {
        change_push(st, kind, ns_of(ns), name, cur->version, "deleted");
    }
    ward_resource_free(cur);
    return write_end(st, rc, err);
}

int ward_store_states(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      struct ward_state **out, size_t *n, struct ward_error *err)
{
    *out = NULL;
    *n = 0;
    if (kind == NULL || name == NULL) {
        return ward_error_set(err, -EINVAL, "kind and name are required");
    }
    struct ward_resource *cur = NULL;
    int64_t rid = 0;
    int rc = load(st, kind, ns, name, &rid, &cur, err);
    ward_resource_free(cur);
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *s = stmt(st, S_STATES);
    sqlite3_bind_int64(s, 1, rid);
    struct ward_state *list = NULL;
    size_t len = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct ward_state *grown = realloc(list, (len + 1) * sizeof(*list));
        if (grown == NULL) {
            abort();
        }
        list = grown;
        list[len].dimension = col_dup(s, 0);
        list[len].state = col_dup(s, 1);
        list[len].entered = sqlite3_column_double(s, 2);
        len++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ward_state_free(list, len);
        return db_fail(st, rc, "read states", err);
    }
    *out = list;
    *n = len;
    return 0;
}

/* ---- transitions ---------------------------------------------------------------------- */

enum conflict {
    CONFLICT_NONE,
    CONFLICT_VERSION,
    CONFLICT_STATE,
    CONFLICT_CLAIMED,
};

static int check_transition(const struct ward_transition *t, struct ward_error *err)
{
    int rc;
    if ((rc = check_name("kind", t->kind, false, err)) < 0 ||
        (rc = check_name("namespace", ns_of(t->ns), true, err)) < 0 ||
        (rc = check_name("name", t->name, false, err)) < 0 ||
        (rc = check_name("dimension", t->dimension, false, err)) < 0 ||
        (rc = check_name("to", t->to, false, err)) < 0 ||
        (t->from != NULL && (rc = check_name("from", t->from, true, err)) < 0) ||
        (t->consumer != NULL && (rc = check_name("consumer", t->consumer, true, err)) < 0)) {
        return rc;
    }
    if (t->status != NULL && (rc = check_object("status", t->status, false, err)) < 0) {
        return rc;
    }
    if (t->expected_version < 0) {
        return ward_error_set(err, -EINVAL, "expected_version must not be negative");
    }
    return 0;
}

/*
 * Apply one (checked) transition inside the open transaction: state row, resource
 * version/status/consumer and the history record. require_unclaimed is the claim CAS.
 */
static int apply(struct ward_store *st, const struct ward_transition *t, bool require_unclaimed,
                 int64_t *new_version, enum conflict *why, struct ward_error *err)
{
    struct ward_resource *cur = NULL;
    int64_t rid = 0;
    char *from = NULL, *status = NULL;
    *why = CONFLICT_NONE;
    int rc = load(st, t->kind, t->ns, t->name, &rid, &cur, err);
    if (rc < 0) {
        return rc;
    }
    const char *where_ns = ns_of(t->ns);
    if (require_unclaimed && cur->consumer != NULL) {
        *why = CONFLICT_CLAIMED;
        rc =
            ward_error_set(err, -ESTALE, "%s %s/%s is already claimed", t->kind, where_ns, t->name);
        goto out;
    }
    sqlite3_stmt *s = stmt(st, S_STATE_GET);
    sqlite3_bind_int64(s, 1, rid);
    bind_text(s, 2, t->dimension);
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        from = col_dup(s, 0);
    } else if (src == SQLITE_DONE) {
        from = dup_or_null("");
    }
    sqlite3_reset(s);
    if (from == NULL) {
        rc = db_fail(st, src, "read a state", err);
        goto out;
    }
    if (t->from != NULL && strcmp(t->from, from) != 0) {
        *why = CONFLICT_STATE;
        rc = ward_error_set(err, -ESTALE, "%s %s/%s: %s is \"%s\", not \"%s\"", t->kind, where_ns,
                            t->name, t->dimension, from, t->from);
        goto out;
    }
    /* checked last so a conflict reports the most telling reason (claimed, state, version) */
    if (t->expected_version != 0 && cur->version != t->expected_version) {
        *why = CONFLICT_VERSION;
        rc = ward_error_set(err, -ESTALE,
                            "%s %s/%s changed: version is %" PRId64 ", not %" PRId64
                            "; re-read it and retry",
                            t->kind, where_ns, t->name, cur->version, t->expected_version);
        goto out;
    }
    double now = t->entered > 0 && isfinite(t->entered) ? t->entered : store_now(st);
    s = stmt(st, S_STATE_SET);
    sqlite3_bind_int64(s, 1, rid);
    bind_text(s, 2, t->dimension);
    bind_text(s, 3, t->to);
    sqlite3_bind_double(s, 4, now);
    if ((rc = exec_stmt(st, s, "write a state", err)) < 0) {
        goto out;
    }
    if ((rc = status_overlay(st, rid, t->status != NULL ? t->status : cur->status, &status, err)) <
        0) {
        goto out;
    }
    const char *consumer = cur->consumer;
    if (t->consumer != NULL) {
        consumer = *t->consumer != '\0' ? t->consumer : NULL;
    }
    s = stmt(st, S_RES_WRITE);
    bind_text(s, 1, status);
    bind_text(s, 2, consumer);
    sqlite3_bind_double(s, 3, now);
    sqlite3_bind_int64(s, 4, rid);
    sqlite3_bind_int64(s, 5, cur->version);
    if ((rc = exec_stmt(st, s, "write a transition", err)) < 0) {
        goto out;
    }
    int64_t version = cur->version + 1;
    s = stmt(st, S_HIST_INSERT);
    sqlite3_bind_int64(s, 1, rid);
    bind_text(s, 2, t->kind);
    bind_text(s, 3, where_ns);
    bind_text(s, 4, t->name);
    bind_text(s, 5, t->dimension);
    bind_text(s, 6, from);
    bind_text(s, 7, t->to);
    bind_text(s, 8, t->trigger);
    bind_text(s, 9, t->reason);
    bind_text(s, 10, t->actor);
    sqlite3_bind_double(s, 11, now);
    sqlite3_bind_int64(s, 12, version);
    if ((rc = exec_stmt(st, s, "write a history record", err)) < 0) {
        goto out;
    }
    if (st->history_keep > 0) {
        /* count retention is per resource and cheap (indexed), so it runs inline */
        s = stmt(st, S_HIST_KEEP);
        sqlite3_bind_int64(s, 1, rid);
        sqlite3_bind_int64(s, 2, st->history_keep);
        if ((rc = exec_stmt(st, s, "prune history", err)) < 0) {
            goto out;
        }
    }
    change_push(st, t->kind, where_ns, t->name, version, "transition");
    *new_version = version;
out:
    free(from);
    free(status);
    ward_resource_free(cur);
    return rc;
}

/*
 * Run fn's item inside a savepoint: on failure only that item is undone. Returns the
 * item's result; *txn_lost is set when SQLite rolled back the whole transaction (it may,
 * on a full disk or an I/O error), which takes every earlier item down with it.
 */
static int apply_in_savepoint(struct ward_store *st, const struct ward_transition *t,
                              int64_t *version, bool *txn_lost, struct ward_error *err)
{
    enum conflict why;
    size_t mark = st->nchanges;
    int rc = exec_id(st, S_SAVEPOINT, "open a savepoint", err);
    if (rc < 0) {
        *txn_lost = sqlite3_get_autocommit(st->db);
        return rc;
    }
    if (t->dimension == NULL) { /* a status write (ward_store_status) */
        const struct ward_resource r = {.kind = (char *)t->kind,
                                        .ns = (char *)t->ns,
                                        .name = (char *)t->name,
                                        .status = (char *)t->status};
        rc = update_in_tx(st, &r, t->expected_version, store_now(st), err);
        *version = t->expected_version + 1;
    } else {
        rc = check_transition(t, err);
        if (rc == 0) {
            rc = apply(st, t, false, version, &why, err);
        }
    }
    return savepoint_end(st, mark, rc, txn_lost, err);
}

static void item_free(struct store_item *it)
{
    for (size_t i = 0; i < WARD_ARRAY_SIZE(it->owned); i++) {
        free(it->owned[i]);
    }
    free(it);
}

static void watchers_stop(struct ward_store *st)
{
    if (st->loop != NULL) {
        ev_prepare_stop(st->loop, &st->commit_watcher);
        ev_idle_stop(st->loop, &st->wake_watcher);
    }
}

/*
 * One attempt at committing the undecided items of the group. Returns true when the
 * group is settled, false when SQLite rolled the whole transaction back (it does that on
 * a full database or an I/O error): the item that caused it is failed alone and the
 * caller tries the rest again, so every round settles at least one item.
 */
static bool flush_round(struct ward_store *st, struct store_item *list, size_t *committed)
{
    struct ward_error err = {0};
    int rc = exec_id(st, S_BEGIN, "begin a commit", &err);
    if (rc == 0) {
        for (struct store_item *it = list; it != NULL; it = it->next) {
            if (it->settled) {
                continue;
            }
            bool lost = false;
            it->rc = apply_in_savepoint(st, &it->t, &it->version, &lost, &it->err);
            if (lost) {
                it->settled = true;
                changes_truncate(st, 0);
                return false;
            }
        }
        rc = exec_id(st, S_COMMIT, "commit", &err);
        if (rc < 0) {
            write_rollback(st);
        }
    }
    for (struct store_item *it = list; it != NULL; it = it->next) {
        if (it->settled) {
            continue;
        }
        it->settled = true;
        if (rc < 0) {
            it->rc = rc; /* nothing of this round is durable */
            it->err = err;
        } else if (it->rc == 0) {
            (*committed)++;
        }
    }
    if (rc < 0) {
        changes_truncate(st, 0);
        ward_log(WARD_LOG_ERROR, "store", "group commit failed: %s", err.text);
    } else {
        if (st->commits != NULL) {
            ward_metric_add(st->commits, NULL, 1);
        }
        changes_emit(st);
    }
    return true;
}

void ward_store_flush(struct ward_store *st)
{
    struct store_item *list = st->head;
    if (list == NULL || st->bulk) {
        return; /* a bulk's transaction is open: the queue waits for it */
    }
    st->head = NULL;
    st->tail = &st->head;
    watchers_stop(st);

    if (st->read_only) {
        struct ward_error err = {0};
        int rc = write_begin(st, &err);
        for (struct store_item *it = list; it != NULL; it = it->next) {
            it->rc = rc;
            it->err = err;
        }
    } else {
        size_t committed = 0;
        while (!flush_round(st, list, &committed)) {
        }
        if (st->group_size != NULL && committed > 0) {
            ward_metric_observe(st->group_size, NULL, (double)committed);
        }
    }
    while (list != NULL) {
        struct store_item *it = list;
        list = it->next;
        if (it->done != NULL) {
            it->done(it->arg, it->rc, it->rc == 0 ? it->version : 0, it->rc == 0 ? NULL : &it->err);
        } else if (it->rc < 0) {
            /* nobody is waiting for this result: it must still not vanish silently */
            ward_log(WARD_LOG_WARN, "store", "transition of %s %s/%s to %s failed: %s", it->t.kind,
                     ns_of(it->t.ns), it->t.name, it->t.to, it->err.text);
        }
        item_free(it);
    }
}

static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    ward_store_flush(ward_container_of(w, struct ward_store, commit_watcher));
}

static void wake_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    /* nothing: being active only stops the loop from blocking before commit_cb runs */
}

static int queue_item(struct ward_store *st, const struct ward_transition *t,
                      ward_store_done_fn done, void *arg);

int ward_store_transition(struct ward_store *st, const struct ward_transition *t,
                          ward_store_done_fn done, void *arg)
{
    int rc = check_transition(t, NULL);
    if (rc < 0) {
        return rc;
    }
    return queue_item(st, t, done, arg);
}

int ward_store_status(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      int64_t expected_version, const char *status, ward_store_done_fn done,
                      void *arg)
{
    if (kind == NULL || name == NULL || status == NULL ||
        check_object("status", status, false, NULL) < 0) {
        return -EINVAL;
    }
    const struct ward_transition t = {.kind = kind,
                                      .ns = ns,
                                      .name = name,
                                      .expected_version = expected_version,
                                      .status = status};
    return queue_item(st, &t, done, arg);
}

static int queue_item(struct ward_store *st, const struct ward_transition *t,
                      ward_store_done_fn done, void *arg)
{
    struct store_item *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return -ENOMEM;
    }
    const char *src[] = {t->kind,    t->ns,     t->name,  t->dimension, t->from,    t->to,
                         t->trigger, t->reason, t->actor, t->status,    t->consumer};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(src); i++) {
        it->owned[i] = dup_or_null(src[i]);
    }
    it->t = (struct ward_transition){
        .kind = it->owned[0],
        .ns = it->owned[1],
        .name = it->owned[2],
        .dimension = it->owned[3],
        .from = it->owned[4],
        .to = it->owned[5],
        .trigger = it->owned[6],
        .reason = it->owned[7],
        .actor = it->owned[8],
        .expected_version = t->expected_version,
        .status = it->owned[9],
        .consumer = it->owned[10],
        .entered = t->entered,
    };
    it->done = done;
    it->arg = arg;
    *st->tail = it;
    st->tail = &it->next;
    if (st->loop == NULL) {
        ward_store_flush(st);
    } else {
        ev_prepare_start(st->loop, &st->commit_watcher);
        ev_idle_start(st->loop, &st->wake_watcher);
    }
    return 0;
}

int ward_store_transition_sync(struct ward_store *st, const struct ward_transition *t,
                               int64_t *new_version, struct ward_error *err)
{
    int rc = check_transition(t, err);
    if (rc < 0) {
        return rc;
    }
    if ((rc = write_begin(st, err)) < 0) {
        return rc;
    }
    int64_t version = 0;
    enum conflict why;
    rc = apply(st, t, false, &version, &why, err);
    rc = write_end(st, rc, err);
    if (new_version != NULL) {
        *new_version = rc == 0 ? version : 0;
    }
    return rc;
}

int ward_store_batch(struct ward_store *st, const struct ward_transition *items, size_t n,
                     int *results, struct ward_error *err)
{
    int rc = write_begin(st, err);
    if (rc < 0) {
        for (size_t i = 0; results != NULL && i < n; i++) {
            results[i] = rc;
        }
        return rc;
    }
    int first = 0;
    bool lost = false;
    for (size_t i = 0; i < n; i++) {
        struct ward_error item_err = {0};
        int64_t version;
        int r = lost ? -ECANCELED /* never tried */
                     : apply_in_savepoint(st, &items[i], &version, &lost, &item_err);
        if (results != NULL) {
            results[i] = r;
        }
        if (r < 0 && first == 0) {
            first = r;
            ward_error_set(err, r, "batch item %zu: %s; nothing was applied", i, item_err.text);
        }
    }
    if (first < 0) {
        if (st->bulk) {
            /* inside a bulk only the batch is undone, not the bulk's earlier writes */
            bulk_item_end(st, first, NULL);
        } else {
            write_rollback(st);
        }
        for (size_t i = 0; results != NULL && i < n; i++) {
            if (results[i] == 0) {
                results[i] = -ECANCELED;
            }
        }
        return first;
    }
    rc = write_end(st, 0, err);
    if (rc < 0) {
        for (size_t i = 0; results != NULL && i < n; i++) {
            results[i] = rc;
        }
    }
    return rc;
}

/* ---- history -------------------------------------------------------------------------- */

int ward_store_history(struct ward_store *st, const char *kind, const char *ns, const char *name,
                       double since, double until, struct ward_history **out, size_t *n,
                       struct ward_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    if (name != NULL) {
        if (kind == NULL) {
            return ward_error_set(err, -EINVAL, "history of a resource needs its kind");
        }
        s = stmt(st, S_HIST_RESOURCE);
        bind_text(s, 1, kind);
        bind_text(s, 2, ns_of(ns));
        bind_text(s, 3, name);
        sqlite3_bind_double(s, 4, since);
        sqlite3_bind_double(s, 5, until);
    } else {
        s = stmt(st, S_HIST_RANGE);
        sqlite3_bind_double(s, 1, since);
        sqlite3_bind_double(s, 2, until);
        bind_text(s, 3, kind);
        bind_text(s, 4, ns);
    }
    struct ward_history *list = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            struct ward_history *grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                abort();
            }
            list = grown;
        }
        struct ward_history *h = &list[len++];
        h->dimension = col_dup(s, 0);
        h->from = col_dup(s, 1);
        h->to = col_dup(s, 2);
        h->trigger = col_dup(s, 3);
        h->reason = col_dup(s, 4);
        h->actor = col_dup(s, 5);
        h->at = sqlite3_column_double(s, 6);
        h->version = sqlite3_column_int64(s, 7);
        h->kind = col_dup(s, 8);
        h->ns = col_dup(s, 9);
        h->resource = col_dup(s, 10);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ward_history_free(list, len);
        return db_fail(st, rc, "read history", err);
    }
    *out = list;
    *n = len;
    return 0;
}

int ward_store_prune(struct ward_store *st, int max_rows, struct ward_error *err)
{
    if (st->history_max_age <= 0 || st->read_only) {
        return 0;
    }
    ward_store_flush(st);
    sqlite3_stmt *s = stmt(st, S_HIST_AGE);
    sqlite3_bind_double(s, 1, store_now(st) - st->history_max_age);
    sqlite3_bind_int(s, 2, max_rows > 0 ? max_rows : STORE_PRUNE_STEP);
    int rc = exec_stmt(st, s, "prune history", err);
    return rc < 0 ? rc : sqlite3_changes(st->db);
}

static void prune_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct ward_store *st = ward_container_of(w, struct ward_store, prune_timer);
    struct ward_error err = {0};
    int rc = ward_store_prune(st, STORE_PRUNE_STEP, &err);
    if (rc < 0) {
        ward_log(WARD_LOG_WARN, "store", "history pruning failed: %s", err.text);
    }
    /* a backlog is worked off in short steps, each one its own small transaction */
    w->repeat = rc == STORE_PRUNE_STEP ? STORE_PRUNE_CATCHUP : st->prune_interval;
    ev_timer_again(loop, w);
}

/* ---- claims --------------------------------------------------------------------------- */

/*
 * The rendezvous score of (consumer, host): 64-bit FNV-1a over consumer, a NUL byte, the
 * namespace, '/', the name, then the splitmix64 finaliser for avalanche. Documented in
 * doc/store.md so other implementations (and the tests) can reproduce the choice.
 */
static uint64_t claim_score(const char *consumer, const char *ns, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[] = {consumer, "", ns, "/", name};
    for (size_t p = 0; p < WARD_ARRAY_SIZE(parts); p++) {
        const unsigned char *c = (const unsigned char *)parts[p];
        size_t len = strlen(parts[p]) + (p == 0 ? 1 : 0); /* the NUL after consumer */
        for (size_t i = 0; i < len; i++) {
            h ^= c[i];
            h *= 0x100000001b3ULL;
        }
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

struct candidate {
    uint64_t score;
    int64_t version;
    char *ns, *name; /* owned */
};

static int candidate_cmp(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->score != y->score) {
        return x->score < y->score ? 1 : -1; /* highest first */
    }
    int c = strcmp(x->ns, y->ns);
    return c != 0 ? c : strcmp(x->name, y->name);
}

static void count_attempt(struct ward_store *st, const char *outcome, const char *reason)
{
    if (st->claim_attempts != NULL) {
        ward_metric_add(st->claim_attempts, (const char *[]){outcome, reason}, 1);
    }
}

static const char *conflict_name(enum conflict c)
{
    switch (c) {
    case CONFLICT_VERSION:
        return "version_changed";
    case CONFLICT_STATE:
        return "state_changed";
    case CONFLICT_CLAIMED:
        return "already_claimed";
    default:
        return "none";
    }
}

int ward_store_claim(struct ward_store *st, const char *kind, const char *selector_json,
                     const char *consumer,
                     int (*eligible)(void *arg, const struct ward_resource *r,
                                     struct ward_error *err),
                     void *arg, struct ward_resource **claimed, struct ward_error *err)
{
    int rc;
    if (claimed != NULL) {
        *claimed = NULL;
    }
    if ((rc = check_name("kind", kind, false, err)) < 0 ||
        (rc = check_name("consumer", consumer, false, err)) < 0 ||
        (selector_json != NULL && (rc = check_object("selector", selector_json, true, err)) < 0)) {
        count_attempt(st, "error", "none");
        return rc;
    }
    if (st->read_only) {
        count_attempt(st, "error", "none");
        return write_begin(st, err);
    }
    if (st->bulk) {
        count_attempt(st, "error", "none");
        return ward_error_set(err, -EBUSY, "a claim cannot be part of a bulk write");
    }
    ward_store_flush(st);

    sqlite3_stmt *s = stmt(st, S_CANDIDATES);
    bind_text(s, 1, kind);
    bind_text(s, 2, selector_json);
    struct candidate *cands = NULL;
    size_t n = 0, cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            struct candidate *grown = realloc(cands, cap * sizeof(*cands));
            if (grown == NULL) {
                abort();
            }
            cands = grown;
        }
        /* no need to copy spec, status and labels of every host */
        const char *cns = (const char *)sqlite3_column_text(s, 2);
        const char *cname = (const char *)sqlite3_column_text(s, 3);
        cands[n++] =
            (struct candidate){claim_score(consumer, cns, cname), sqlite3_column_int64(s, 4),
                               dup_or_null(cns), dup_or_null(cname)};
    }
    sqlite3_reset(s); /* ends the read snapshot: the CAS below sees the latest data */
    if (rc != SQLITE_DONE) {
        rc = db_fail(st, rc, "find claim candidates", err);
        count_attempt(st, "error", "none");
        goto out;
    }
    if (n == 0) {
        count_attempt(st, "none_available", "none");
        rc = ward_error_set(err, -ENOENT, "no %s is %s, unclaimed and matching the selector", kind,
                            WARD_STORE_AVAILABLE);
        goto out;
    }
    qsort(cands, n, sizeof(*cands), candidate_cmp);

    size_t tries = 0, refused = 0;
    size_t i = 0;
    for (; i < n && tries < WARD_STORE_CLAIM_TRIES && refused < WARD_STORE_CLAIM_REFUSALS; i++) {
        if (eligible != NULL) {
            /* asked in rank order, only until a host is claimed: usually once */
            const struct ward_resource cand = {.kind = (char *)kind,
                                               .ns = cands[i].ns,
                                               .name = cands[i].name,
                                               .version = cands[i].version};
            int yes = eligible(arg, &cand, err);
            if (yes < 0) {
                count_attempt(st, "error", "none");
                rc = yes;
                goto out;
            }
            if (yes == 0) {
                refused++;
                continue;
            }
        }
        tries++;
        struct ward_transition t = {
            .kind = kind,
            .ns = cands[i].ns,
            .name = cands[i].name,
            .dimension = WARD_STORE_LIFECYCLE,
            .from = WARD_STORE_AVAILABLE,
            .to = WARD_STORE_CLAIMED,
            .trigger = "claim",
            .reason = "claimed by consumer",
            .actor = consumer,
            .expected_version = cands[i].version,
            .consumer = consumer,
        };
        enum conflict why = CONFLICT_NONE;
        int64_t version = 0;
        struct ward_error item_err = {0};
        rc = exec_id(st, S_BEGIN, "begin a claim", &item_err);
        if (rc == 0) {
            rc = apply(st, &t, true, &version, &why, &item_err);
            if (rc == 0) {
                /* the feed says "claimed" rather than the generic "transition" */
                st->changes[st->nchanges - 1].what = "claimed";
            }
            rc = write_end(st, rc, &item_err);
        }
        if (rc == 0) {
            count_attempt(st, "success", "none");
            struct ward_error reread = {0};
            if (claimed != NULL && load(st, kind, t.ns, t.name, NULL, claimed, &reread) < 0) {
                /* the claim is committed: report it even if the re-read failed */
                ward_log(WARD_LOG_WARN, "store", "claimed %s %s/%s but could not re-read it: %s",
                         kind, t.ns, t.name, reread.text);
            }
            goto out;
        }
        if (rc == -ESTALE || rc == -ENOENT) {
            /* another writer got there first (or deleted it): try the next best host */
            count_attempt(st, "conflict", rc == -ENOENT ? "deleted" : conflict_name(why));
            continue; /* what the claim ends with is said after the loop */
        }
        count_attempt(st, "error", "none");
        ward_error_set(err, rc, "%s", item_err.text);
        goto out;
    }
    /* candidates were left that this claim did not ask about */
    const char *capped =
        i < n && refused == WARD_STORE_CLAIM_REFUSALS ? ", the most one claim passes over" : "";
    if (tries == 0) {
        count_attempt(st, "none_available", "none");
        rc = ward_error_set(err, -ENOENT,
                            "no %s that is %s, unclaimed and matching the selector may be "
                            "claimed now (%zu refused%s)",
                            kind, WARD_STORE_AVAILABLE, refused, capped);
    } else if (refused > 0) {
        rc = ward_error_set(err, -ESTALE,
                            "every claim attempt (%zu) conflicted with another writer, and %zu "
                            "other candidates were refused%s; retry",
                            tries, refused, capped);
    } else {
        rc = ward_error_set(
            err, -ESTALE, "every claim attempt (%zu) conflicted with another writer; retry", tries);
    }
out:
    for (size_t k = 0; k < n; k++) {
        free(cands[k].ns);
        free(cands[k].name);
    }
    free(cands);
    return rc;
}

int ward_store_release(struct ward_store *st, const char *kind, const char *ns, const char *name,
                       const char *consumer, bool *released, struct ward_error *err)
{
    int rc;
    bool cleared = false;
    if (released != NULL) {
        *released = false;
    }
    if ((rc = check_name("kind", kind, false, err)) < 0 ||
        (rc = check_name("name", name, false, err)) < 0 ||
        (rc = check_name("consumer", consumer, false, err)) < 0) {
        return rc;
    }
    if ((rc = write_begin(st, err)) < 0) {
        return rc;
    }
    struct ward_resource *cur = NULL;
    rc = load(st, kind, ns, name, NULL, &cur, err);
    if (rc == 0 && cur->consumer != NULL) {
        if (strcmp(cur->consumer, consumer) != 0) {
            rc = ward_error_set(err, -EPERM, "%s %s/%s is held by another consumer", kind,
                                ns_of(ns), name);
        } else {
            struct ward_transition t = {
                .kind = kind,
                .ns = ns,
                .name = name,
                .dimension = WARD_STORE_LIFECYCLE,
                .from = WARD_STORE_CLAIMED,
                .to = WARD_STORE_AVAILABLE,
                .trigger = "release",
                .reason = "released by consumer",
                .actor = consumer,
                .expected_version = cur->version,
                .consumer = "",
            };
            enum conflict why;
            int64_t version;
            rc = apply(st, &t, false, &version, &why, err);
            if (rc == -ESTALE && why == CONFLICT_STATE) {
                rc = ward_error_set(err, -EBUSY,
                                    "%s %s/%s has moved past %s; only a %s host can be "
                                    "released (deprovision it instead)",
                                    kind, ns_of(ns), name, WARD_STORE_CLAIMED, WARD_STORE_CLAIMED);
            } else if (rc == 0) {
                st->changes[st->nchanges - 1].what = "released";
            }
            cleared = rc == 0;
        }
    }
    ward_resource_free(cur);
    rc = write_end(st, rc, err);
    if (released != NULL) {
        *released = rc == 0 && cleared;
    }
    return rc;
}

/* ---- open / close --------------------------------------------------------------------- */

static void store_free(struct ward_store *st)
{
    for (size_t i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->stmts[i]);
    }
    sqlite3_close(st->db);
    changes_truncate(st, 0);
    free(st->changes);
    free(st->subs);
    free(st->path);
    free(st);
}

static int pragma_int(struct ward_store *st, const char *sql, int64_t *out, struct ward_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : db_fail(st, rc, "open the store", err);
}

static int pragma_text(struct ward_store *st, const char *sql, char *out, size_t len,
                       struct ward_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(out, len, "%s", t != NULL ? (const char *)t : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : db_fail(st, rc, "open the store", err);
}

/*
 * Rows a hand edit broke. The schema says NOT NULL, but quick_check passes a file whose
 * schema was edited too, and a NULL name or namespace would crash its readers: refused,
 * naming the row. JSON that does not parse is reported and the store goes on: the row's
 * labels match no filter, and a write to it says its status is not JSON.
 */
static int check_rows(struct ward_store *st, struct ward_error *err)
{
    static const char nulls[] =
        "SELECT id FROM resources WHERE kind IS NULL OR ns IS NULL OR name IS NULL OR "
        "version IS NULL OR spec IS NULL OR status IS NULL OR labels IS NULL OR "
        "created IS NULL OR updated IS NULL LIMIT 1";
    static const char broken[] =
        "SELECT kind, ns, name FROM resources WHERE NOT json_valid(spec) OR "
        "NOT json_valid(status) OR NOT json_valid(labels) LIMIT 10";
    int64_t id = 0; /* row ids start at 1: 0 is none */
    int rc = pragma_int(st, nulls, &id, err);
    if (rc < 0) {
        return rc;
    }
    if (id != 0) {
        return ward_error_set(err, -EIO,
                              "%s: resource row %" PRId64 " has an empty (NULL) column the "
                              "schema forbids; the file was edited by hand: fix the row or "
                              "restore a backup",
                              st->path, id);
    }
    sqlite3_stmt *s = NULL;
    if ((rc = sqlite3_prepare_v2(st->db, broken, -1, &s, NULL)) != SQLITE_OK) {
        return db_fail(st, rc, "check the resources", err);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ward_log(WARD_LOG_WARN, "store",
                 "%s %s/%s: its spec, status or labels in %s is not JSON; its labels match no "
                 "filter and writes to it fail until the row is fixed",
                 (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
                 (const char *)sqlite3_column_text(s, 2), st->path);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "check the resources", err);
}

static int migrate(struct ward_store *st, int64_t from, struct ward_error *err)
{
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        return db_fail(st, rc, "migrate the store", err);
    }
    for (int64_t v = from; v < WARD_STORE_SCHEMA_VERSION && rc == SQLITE_OK; v++) {
        rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", WARD_STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int r = db_fail(st, rc, "migrate the store", err);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    if (from != WARD_STORE_SCHEMA_VERSION) {
        ward_log(WARD_LOG_INFO, "store", "store %s migrated from schema %" PRId64 " to %d",
                 st->path, from, WARD_STORE_SCHEMA_VERSION);
    }
    return 0;
}

/* The directory must exist, and be writable unless the store is opened read-only. */
static int check_dir(struct ward_store *st, struct ward_error *err)
{
    char *dir = dup_or_null(st->path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    struct stat sb;
    int rc = 0;
    if (stat(dir, &sb) != 0 && errno != ENOENT && errno != ENOTDIR) {
        rc = ward_error_set(err, -EACCES,
                            "cannot reach the state directory %s (%s); check the permissions of "
                            "it and its parents for the user wardd runs as",
                            dir, strerror(errno));
    } else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = ward_error_set(err, -ENOENT,
                            "the state directory %s does not exist; create it (owned by the user "
                            "wardd runs as) or point state_dir elsewhere",
                            dir);
    } else if (!st->read_only && access(dir, W_OK) != 0) {
        rc = ward_error_set(err, -EROFS,
                            "the state directory %s is not writable (%s); fix its permissions, "
                            "or open the store read-only to serve reads",
                            dir, strerror(errno));
    }
    free(dir);
    return rc;
}

/*
 * SQLite can read a WAL database without write access only when its -wal and -shm files
 * exist (or can be created). In a read-only state directory after a clean shutdown they
 * do not, so the file is reopened "immutable": safe then, because with no -wal file every
 * commit is in the main file, and nobody can write there.
 */
static int read_only_fallback(struct ward_store *st, struct ward_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE || rc == SQLITE_OK ||
        ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN)) {
        return 0; /* readable as it is, or a failure the version read will report */
    }
    struct ward_buf wal = {0};
    ward_buf_printf(&wal, "%s-wal", st->path);
    bool has_wal = access(wal.data, F_OK) == 0;
    ward_buf_free(&wal);
    if (has_wal) {
        return 0;
    }
    struct ward_buf uri = {0};
    ward_buf_puts(&uri, "file:");
    for (const unsigned char *c = (const unsigned char *)st->path; *c != '\0'; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/._-~", *c) != NULL) {
            ward_buf_putc(&uri, (char)*c);
        } else {
            ward_buf_printf(&uri, "%%%02X", *c);
        }
    }
    ward_buf_puts(&uri, "?immutable=1");
    sqlite3_close(st->db);
    st->db = NULL;
    rc = sqlite3_open_v2(uri.data, &st->db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    ward_buf_free(&uri);
    if (rc != SQLITE_OK) {
        return db_fail(st, rc, "open the store read-only", err);
    }
    sqlite3_extended_result_codes(st->db, 1);
    ward_log(WARD_LOG_WARN, "store",
             "%s is in a directory wardd cannot write: serving it read-only as a snapshot",
             st->path);
    return 0;
}

struct ward_store *ward_store_open(struct ev_loop *loop, const struct ward_store_options *o,
                                   struct ward_error *err)
{
    if (o == NULL || o->path == NULL || *o->path == '\0') {
        ward_error_set(err, -EINVAL, "the store needs a database path");
        return NULL;
    }
    struct ward_store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory opening the store");
        return NULL;
    }
    st->path = dup_or_null(o->path);
    st->loop = loop;
    st->tail = &st->head;
    st->now = o->now != NULL ? o->now : real_now;
    st->now_arg = o->now_arg;
    st->history_keep = o->history_keep > 0 ? o->history_keep : 0;
    st->history_max_age = o->history_max_age > 0 ? o->history_max_age : 0;
    st->prune_interval = o->prune_interval > 0 ? o->prune_interval : 60;
    st->read_only = o->read_only;
    if (check_dir(st, err) < 0) {
        store_free(st);
        return NULL;
    }

    int flags = st->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(st->path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        db_fail(st, rc, "open the store", err);
        store_free(st);
        return NULL;
    }
    sqlite3_extended_result_codes(st->db, 1);
    double busy = o->busy_timeout > 0 ? o->busy_timeout : 5;
    sqlite3_busy_timeout(st->db, (int)(busy * 1000));

    /* Read the version before anything that could write: a newer file stays untouched. */
    int64_t version = 0;
    char check[256];
    if (st->read_only && read_only_fallback(st, err) < 0) {
        goto fail;
    }
    if (pragma_int(st, "PRAGMA user_version", &version, err) < 0) {
        goto fail;
    }
    if (version > WARD_STORE_SCHEMA_VERSION) {
        ward_error_set(err, -ENOTSUP,
                       "%s has schema version %" PRId64 ", newer than this ward supports (%d): "
                       "it was written by a newer ward. Run that version, or restore a backup "
                       "made for this one; the file was not modified",
                       st->path, version, WARD_STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (version < 0) {
        ward_error_set(err, -EIO, "%s has an invalid schema version %" PRId64 "; restore a backup",
                       st->path, version);
        goto fail;
    }
    if (version == 0) {
        /* a new file, or one ward did not write: switching to WAL and adding tables would
           modify another program's database */
        int64_t objects = 0;
        if (pragma_int(st, "SELECT count(*) FROM sqlite_schema", &objects, err) < 0) {
            goto fail;
        }
        if (objects > 0) {
            ward_error_set(err, -EIO,
                           "%s is not a ward state database: it holds %" PRId64
                           " tables or indexes of its own and no ward schema version; it was "
                           "not modified (point state_dir at another directory)",
                           st->path, objects);
            goto fail;
        }
    }
    if (version > 0) {
        /* a truncated or damaged file is refused here rather than half-read later */
        if (pragma_text(st, "PRAGMA quick_check", check, sizeof(check), err) < 0) {
            goto fail;
        }
        if (strcmp(check, "ok") != 0) {
            ward_error_set(err, -EIO,
                           "%s is corrupt (integrity check: %.120s); stop wardd, move the file "
                           "(and its -wal/-shm files) aside and restore a backup",
                           st->path, check);
            goto fail;
        }
        if (check_rows(st, err) < 0) {
            goto fail;
        }
    }
    if (st->read_only) {
        if (version != WARD_STORE_SCHEMA_VERSION) {
            ward_error_set(err, -EROFS,
                           "%s needs its schema created or migrated (version %" PRId64
                           ") but the store is read-only; start wardd once read-write",
                           st->path, version);
            goto fail;
        }
        sqlite3_exec(st->db, "PRAGMA query_only = 1", NULL, NULL, NULL);
    } else {
        if (pragma_text(st, "PRAGMA journal_mode = WAL", check, sizeof(check), err) < 0) {
            goto fail;
        }
        if (strcmp(check, "wal") != 0) {
            ward_error_set(err, -EIO, "%s could not be switched to WAL mode (got %s)", st->path,
                           check);
            goto fail;
        }
        /* FULL: the WAL is fsynced at every commit, so done() means durable (doc/store.md) */
        if ((rc = sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL)) !=
            SQLITE_OK) {
            db_fail(st, rc, "open the store", err);
            goto fail;
        }
        if (migrate(st, version, err) < 0) {
            goto fail;
        }
        if (o->max_bytes > 0) {
            int64_t page = 4096, cur = 0;
            if (pragma_int(st, "PRAGMA page_size", &page, err) < 0 ||
                pragma_int(st, "PRAGMA page_count", &cur, err) < 0) {
                goto fail;
            }
            int64_t pages = o->max_bytes / (page > 0 ? page : 4096);
            char sql[80];
            snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64,
                     pages > cur ? pages : cur);
            sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        }
    }

    for (size_t i = 0; i < S_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmts[i],
                                NULL);
        if (rc != SQLITE_OK) {
            db_fail(st, rc, "prepare the store's statements", err);
            goto fail;
        }
    }

    if (o->metrics != NULL) {
        st->claim_attempts = ward_metrics_counter(
            o->metrics, "ward_host_claim_attempts_total", "Host claim attempts by outcome.",
            (const char *[]){"outcome", "conflict_reason", NULL});
        st->commits = ward_metrics_counter(o->metrics, "ward_store_commits_total",
                                           "Durable store commits.", NULL);
        st->group_size = ward_metrics_histogram(
            o->metrics, "ward_store_group_commit_size", "Transitions per group commit.", NULL,
            (const double[]){1, 2, 5, 10, 50, 100, 500, 1000}, 8);
    }
    if (loop != NULL) {
        ev_prepare_init(&st->commit_watcher, commit_cb);
        ev_idle_init(&st->wake_watcher, wake_cb);
        if (st->history_max_age > 0 && !st->read_only) {
            ev_timer_init(&st->prune_timer, prune_cb, st->prune_interval, st->prune_interval);
            ev_timer_start(loop, &st->prune_timer);
            ev_unref(loop); /* pruning alone must not keep the loop running */
        }
    }
    return st;
fail:
    store_free(st);
    return NULL;
}

char *ward_store_path(const char *state_dir)
{
#ifdef WARD_STATEDIR
    const char *dir = state_dir != NULL ? state_dir : WARD_STATEDIR;
#else
    const char *dir = state_dir != NULL ? state_dir : "/var/lib/ward";
#endif
    size_t len = strlen(dir) + sizeof(WARD_STORE_FILE) + 2;
    char *path = malloc(len);
    if (path != NULL) {
        size_t dl = strlen(dir);
        snprintf(path, len, "%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/",
                 WARD_STORE_FILE);
    }
    return path;
}

void ward_store_close(struct ward_store *st)
{
    if (st == NULL) {
        return;
    }
    /* done() callbacks may queue more: a few rounds commit, then the rest is cancelled */
    for (int round = 0; st->head != NULL; round++) {
        if (round < 16) {
            ward_store_flush(st);
            continue;
        }
        struct store_item *list = st->head;
        st->head = NULL;
        st->tail = &st->head;
        while (list != NULL) {
            struct store_item *it = list;
            list = it->next;
            struct ward_error err = {0};
            ward_error_set(&err, -ECANCELED, "the store closed before this transition committed");
            if (it->done != NULL && round < 32) {
                it->done(it->arg, -ECANCELED, 0, &err);
            }
            item_free(it);
        }
    }
    if (st->loop != NULL) {
        watchers_stop(st);
        if (ev_is_active(&st->prune_timer)) {
            ev_ref(st->loop);
            ev_timer_stop(st->loop, &st->prune_timer);
        }
    }
    store_free(st);
}
