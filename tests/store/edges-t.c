/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's edges: a bulk that loses its transaction, a batch inside a bulk, a resource
 * created again under a deleted one's name, and files on disk that ward did not write or
 * that a hand edit broke. Each case was a silent loss or a crash before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../tap/basic.h"
#include "rawdb.h"
#include "store.h"

static char dbpath[512];

static void fresh(const char *name)
{
    snprintf(dbpath, sizeof(dbpath), "%s/%s", test_tmpdir(), name);
    unlink(dbpath);
}

static struct ward_store *open_store(long long max_bytes)
{
    struct ward_error err = {0};
    struct ward_store *st = ward_store_open(
        NULL, &(struct ward_store_options){.path = dbpath, .max_bytes = max_bytes}, &err);
    if (st == NULL) {
        bail("open %s: %s", dbpath, err.text);
    }
    return st;
}

static int dones;
static void on_done(void *arg, int rc, int64_t version, const struct ward_error *err)
{
    (void)arg, (void)rc, (void)version, (void)err;
    dones++;
}

static void create(struct ward_store *st, char *name, char *labels)
{
    struct ward_error err = {0};
    struct ward_resource r = {.kind = "Host", .ns = "n", .name = name, .labels = labels};
    if (ward_store_create(st, &r, &err) != 0) {
        bail("create %s: %s", name, err.text);
    }
}

static void available(struct ward_store *st, const char *name)
{
    struct ward_error err = {0};
    struct ward_transition t = {
        .kind = "Host", .ns = "n", .name = name, .dimension = "lifecycle", .to = "Available"};
    if (ward_store_transition_sync(st, &t, NULL, &err) != 0) {
        bail("transition %s: %s", name, err.text);
    }
}

static void bulks(void)
{
    struct ward_error err = {0};

    /* a failing batch inside a bulk undoes the batch, not the bulk's earlier writes */
    fresh("batch-in-bulk.db");
    struct ward_store *st = open_store(0);
    ward_store_bulk_begin(st, &err);
    create(st, "a", NULL);
    struct ward_transition bad = {.kind = "Host",
                                  .ns = "n",
                                  .name = "a",
                                  .dimension = "lifecycle",
                                  .from = "Nope",
                                  .to = "Available"};
    is_int(-ESTALE, ward_store_batch(st, &bad, 1, NULL, &err), "a bad batch in a bulk fails");
    struct ward_resource b = {.kind = "Host", .ns = "n", .name = "b"};
    is_int(0, ward_store_create(st, &b, &err), "the bulk goes on after it (%s)", err.text);
    is_int(0, ward_store_bulk_end(st, true, &err), "and commits (%s)", err.text);
    is_int(2, rawdb_count(dbpath, "SELECT count(*) FROM resources"), "with both of its creates");
    ward_store_close(st);

    /* a bulk whose transaction SQLite rolled back writes nothing more: a full database in
       an UPDATE (no statement journal for SQLite to undo it alone) takes the whole
       transaction down */
    fresh("lost-bulk.db");
    st = open_store(96 * 1024);
    char spec[2100];
    snprintf(spec, sizeof(spec), "{\"pad\":\"%02000d\"}", 1);
    ward_store_bulk_begin(st, &err);
    int full_at = -1, after = 0, refused = 0;
    char lost_why[sizeof(err.text)] = "";
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%d", i);
        struct ward_resource r = {.kind = "Host", .ns = "x", .name = name};
        int rc = ward_store_create(st, &r, &err);
        if (rc == 0 && full_at < 0) {
            r.spec = spec;
            rc = ward_store_update(st, &r, r.version, &err);
        }
        if (rc < 0 && full_at < 0) {
            full_at = i;
            snprintf(lost_why, sizeof(lost_why), "%s", err.text);
        } else if (full_at >= 0) {
            after++;
            refused += rc == -EIO;
        }
    }
    ok(full_at > 0, "the database fills up inside the bulk (write %d: %s)", full_at, lost_why);
    contains(lost_why, "the whole bulk write was rolled back", "the error that lost it says so");
    is_int(after, refused, "every later write of the bulk is refused, not committed alone");
    is_int(-EIO, ward_store_bulk_end(st, true, &err), "ending it reports the loss");
    is_int(0, rawdb_count(dbpath, "SELECT count(*) FROM resources"),
           "and nothing of it is on disk");
    ward_store_close(st);

    /* a batch whose transaction was lost: the items never tried read -ECANCELED */
    fresh("batch-full.db");
    st = open_store(96 * 1024);
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%d", i);
        struct ward_resource r = {.kind = "Host", .ns = "x", .name = name, .spec = spec};
        if (ward_store_create(st, &r, &err) < 0) {
            break;
        }
    }
    char big[3100];
    snprintf(big, sizeof(big), "{\"note\":\"%03000d\"}", 3);
    struct ward_transition items[3] = {
        {.kind = "Host", .ns = "x", .name = "h0", .dimension = "power", .to = "On"},
        {.kind = "Host", .ns = "x", .name = "h1", .dimension = "power", .to = "On", .status = big},
        {.kind = "Host", .ns = "x", .name = "h2", .dimension = "power", .to = "On"},
    };
    int res[3] = {0};
    ward_store_batch(st, items, 3, res, &err);
    ok(res[0] == -ECANCELED && res[1] == -ENOSPC && res[2] == -ECANCELED,
       "a full batch: the failing item has its error, the others -ECANCELED (%d %d %d)", res[0],
       res[1], res[2]);
    ward_store_close(st);

    /* without a loop, a transition queued inside a bulk commits when the bulk does */
    fresh("noloop.db");
    st = open_store(0);
    create(st, "h", NULL);
    ward_store_bulk_begin(st, &err);
    struct ward_transition t = {
        .kind = "Host", .ns = "n", .name = "h", .dimension = "power", .to = "On"};
    ward_store_transition(st, &t, on_done, NULL);
    is_int(0, dones, "a transition queued in a bulk waits for it");
    ward_store_bulk_end(st, true, &err);
    is_int(1, dones, "and is committed when the bulk ends");
    ward_store_close(st);
}

static void incarnations(void)
{
    struct ward_error err = {0};
    fresh("aba.db");
    struct ward_store *st = open_store(0);
    struct ward_resource old = {.kind = "Host", .ns = "n", .name = "h", .spec = "{\"v\":1}"};
    ward_store_create(st, &old, &err);
    old.spec = "{\"v\":2}";
    ward_store_update(st, &old, old.version, &err);
    ward_store_delete(st, "Host", "n", "h", 0, &err);
    struct ward_resource again = {.kind = "Host", .ns = "n", .name = "h"};
    is_int(0, ward_store_create(st, &again, &err), "a name is created again (%s)", err.text);
    is_int(3, (int)again.version, "going on from the deleted one's last version");
    struct ward_resource stale = {.kind = "Host", .ns = "n", .name = "h", .spec = "{}"};
    is_int(-ESTALE, ward_store_update(st, &stale, 2, &err),
           "a version read from the deleted one is stale");
    struct ward_resource other = {.kind = "Host", .ns = "n", .name = "other"};
    ward_store_create(st, &other, &err);
    is_int(1, (int)other.version, "a new name still starts at 1");

    /* forged states: a status with "states" twice keeps neither */
    struct ward_resource f = {.kind = "Host",
                              .ns = "n",
                              .name = "f",
                              .status = "{\"states\":{},\"states\":{\"lifecycle\":\"Available\"}}"};
    ward_store_create(st, &f, &err);
    struct ward_resource *got = NULL;
    ward_store_get(st, "Host", "n", "f", &got, &err);
    ok(got != NULL && strstr(got->status, "Available") == NULL,
       "status.states cannot be forged with a key given twice (%s)", got ? got->status : "");
    ward_resource_free(got);
    ward_store_close(st);

    /* a version 1 file: the upgrade seeds the retired versions from history */
    fresh("v1.db");
    st = open_store(0);
    create(st, "h", NULL);
    available(st, "h"); /* history: version 2 */
    ward_store_delete(st, "Host", "n", "h", 0, &err);
    ward_store_close(st);
    rawdb_exec(dbpath, "DROP TABLE retired; PRAGMA user_version = 1");
    st = open_store(0);
    is_int(WARD_STORE_SCHEMA_VERSION, rawdb_count(dbpath, "PRAGMA user_version"),
           "a version 1 file is migrated");
    struct ward_resource h = {.kind = "Host", .ns = "n", .name = "h"};
    ward_store_create(st, &h, &err);
    is_int(3, (int)h.version, "and a name deleted before it goes on from its history");
    ward_store_close(st);
}

static void files(void)
{
    struct ward_error err = {0};

    /* another program's SQLite file is not taken over */
    fresh("foreign.db");
    rawdb_exec(dbpath, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)");
    long long pages = rawdb_count(dbpath, "PRAGMA page_count");
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    ok(st == NULL && strstr(err.text, "is not a ward state database") != NULL,
       "a foreign database is refused (%s)", err.text);
    ok(rawdb_count(dbpath, "SELECT count(*) FROM sqlite_schema") == 1 &&
           rawdb_count(dbpath, "PRAGMA page_count") == pages &&
           rawdb_count(dbpath, "PRAGMA user_version") == 0,
       "and left as it was");
    ward_store_close(st);

    /* one hand-edited labels value: the rest of the fleet is still listed and claimed */
    fresh("labels.db");
    st = open_store(0);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%d", i);
        create(st, name, "{\"rack\":\"r1\"}");
        available(st, name);
    }
    ward_store_close(st);
    rawdb_exec(dbpath, "UPDATE resources SET labels = 'rack=r1' WHERE name = 'h3'");
    st = open_store(0);
    struct ward_resource **list = NULL;
    size_t n = 0;
    int rc = ward_store_list(
        st, &(struct ward_store_filter){.label_key = "rack", .label_value = "r1"}, &list, &n, &err);
    ok(rc == 0 && n == 4, "a broken labels value hides only its own host (%d, %zu: %s)", rc, n,
       err.text);
    ward_resource_list_free(list, n);
    struct ward_resource *c = NULL;
    is_int(0, ward_store_claim(st, "Host", "{\"rack\":\"r1\"}", "alice", NULL, NULL, &c, &err),
           "and claims by selector go on (%s)", err.text);
    ward_resource_free(c);
    ward_store_close(st);

    /* a NULL where the schema says NOT NULL (schema and row both edited) is refused */
    rawdb_exec(dbpath, "PRAGMA writable_schema = ON;"
                       "UPDATE sqlite_schema SET sql = replace(sql, 'ns TEXT NOT NULL, name',"
                       " 'ns TEXT, name') WHERE name = 'resources';");
    rawdb_exec(dbpath, "UPDATE resources SET ns = NULL WHERE name = 'h1'");
    st = ward_store_open(NULL, &(struct ward_store_options){.path = dbpath}, &err);
    ok(st == NULL && strstr(err.text, "has an empty (NULL) column") != NULL,
       "a row with a NULL name part is refused at open, not a crash later (%s)", err.text);
    ward_store_close(st);
}

int main(void)
{
    plan(24);
    bulks();
    incarnations();
    files();
    return 0;
}
