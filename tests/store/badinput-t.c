/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bad input: a database from a newer ward, a corrupt or truncated file, a full database,
 * a read-only store, a missing state directory. Each gives a clear error and nothing is
 * half-written. Tests may run as root, which ignores file permissions, so a read-only
 * state directory is simulated with the store's read_only option (SQLITE_OPEN_READONLY
 * plus PRAGMA query_only): SQLite itself then refuses every write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../tap/basic.h"
#include "rawdb.h"
#include "store.h"

static char *slurp_bin(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void make_db(const char *path, int hosts, int spec_bytes)
{
    struct ward_error err = {0};
    struct ward_store *st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    if (st == NULL) {
        bail("open %s: %s", path, err.text);
    }
    char *spec = malloc((size_t)spec_bytes + 16);
    snprintf(spec, (size_t)spec_bytes + 16, "{\"pad\":\"%0*d\"}", spec_bytes, 7);
    for (int i = 0; i < hosts; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%d", i);
        struct ward_resource r = {.kind = "Host", .ns = "x", .name = name, .spec = spec};
        if (ward_store_create(st, &r, &err) < 0) {
            bail("create: %s", err.text);
        }
    }
    free(spec);
    ward_store_close(st);
}

struct outcome {
    int ok, full, other;
};

static void on_done(void *arg, int rc, int64_t version, const struct ward_error *err)
{
    struct outcome *o = arg;
    if (rc == 0) {
        o->ok++;
    } else if (rc == -ENOSPC) {
        o->full++;
    } else {
        o->other++;
        diag("unexpected result %d: %s", rc, err != NULL ? err->text : "");
    }
}

int main(void)
{
    plan(35);
    const char *dir = test_tmpdir();
    char path[512];
    struct ward_error err = {0};
    struct ward_store *st;

    /* a database from a newer ward is refused and left untouched */
    snprintf(path, sizeof(path), "%s/newer.db", dir);
    make_db(path, 3, 10);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    size_t len_before = 0, len_after = 0;
    char *before = slurp_bin(path, &len_before);
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    ok(st == NULL, "a database with a newer schema is refused");
    is_int(-ENOTSUP, err.code, "with -ENOTSUP");
    contains(err.text, "schema version 99, newer than this ward supports", "the message says why");
    contains(err.text, "the file was not modified", "and that nothing was changed");
    char *after = slurp_bin(path, &len_after);
    ok(before != NULL && after != NULL && len_before == len_after &&
           memcmp(before, after, len_before) == 0,
       "the file is byte-for-byte unchanged");
    free(before);
    free(after);
    ward_store_close(st);

    /* a file that is not a database */
    snprintf(path, sizeof(path), "%s/garbage.db", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 512; i++) {
        fputs("this is not sqlite ", f);
    }
    fclose(f);
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    ok(st == NULL, "a file that is not a database is refused");
    is_int(-EIO, err.code, "with -EIO");
    contains(err.text, "corrupt or not a ward database", "saying what is wrong");
    contains(err.text, "restore a backup", "and what to do");

    /* a truncated database */
    snprintf(path, sizeof(path), "%s/truncated.db", dir);
    make_db(path, 300, 200);
    struct stat sb;
    stat(path, &sb);
    if (truncate(path, sb.st_size / 2) != 0) {
        sysbail("truncate");
    }
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    ok(st == NULL, "a truncated database is refused at open");
    is_int(-EIO, err.code, "with -EIO");
    contains(err.text, "corrupt", "calling it corrupt");
    contains(err.text, "move the file", "and saying what to do");
    ward_store_close(st);

    /* a full database (max_page_count stands in for a full disk) */
    snprintf(path, sizeof(path), "%s/full.db", dir);
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path, .max_bytes = 96 * 1024},
                         &err);
    if (st == NULL) {
        bail("open full.db: %s", err.text);
    }
    char spec[2100];
    snprintf(spec, sizeof(spec), "{\"pad\":\"%02000d\"}", 1);
    int created = 0, rc = 0;
    char name[32];
    while (created < 1000) {
        snprintf(name, sizeof(name), "h%d", created);
        struct ward_resource r = {.kind = "Host", .ns = "x", .name = name, .spec = spec};
        if ((rc = ward_store_create(st, &r, &err)) < 0) {
            break;
        }
        created++;
    }
    is_int(-ENOSPC, rc, "filling the database ends in -ENOSPC (after %d creates)", created);
    contains(err.text, "is full", "the message says the store is full");
    contains(err.text, "free disk space", "and what to do");
    struct ward_resource *got = NULL;
    is_int(-ENOENT, ward_store_get(st, "Host", "x", name, &got, &err),
           "the failed create left nothing behind");
    is_int(0, ward_store_get(st, "Host", "x", "h0", &got, &err), "reads still work");
    ward_resource_free(got);

    /* transitions into a full database: each item is all there or not there */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ward_store_close(st);
    st = ward_store_open(loop, &(struct ward_store_options){.path = path, .max_bytes = 96 * 1024},
                         &err);
    struct outcome out = {0};
    /* big statuses need pages the database cannot get; small ones still fit */
    char big[3100];
    snprintf(big, sizeof(big), "{\"note\":\"%03000d\"}", 3);
    for (int i = 0; i < created; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        struct ward_transition t = {.kind = "Host",
                                    .ns = "x",
                                    .name = name,
                                    .dimension = "lifecycle",
                                    .to = "Available",
                                    .status = i % 2 == 1 ? big : "{\"note\":1}"};
        ward_store_transition(st, &t, on_done, &out);
    }
    ev_run(loop, 0);
    ok(out.full > 0, "transitions that do not fit fail with -ENOSPC (%d of %d)", out.full, created);
    ok(out.ok > 0, "without failing the small ones queued with them (%d)", out.ok);
    is_int(0, out.other, "and none fails otherwise");
    ward_store_close(st);
    ev_loop_destroy(loop);
    is_int(out.ok, rawdb_count(path, "SELECT count(*) FROM history"),
           "exactly the reported transitions have history");
    is_int(out.ok, rawdb_count(path, "SELECT count(*) FROM states"), "and a state");
    is_int(out.ok,
           rawdb_count(path, "SELECT count(*) FROM resources WHERE version = 2 AND "
                             "json_extract(status, '$.states.lifecycle') = 'Available'"),
           "and a new version and status");

    /* read-only store: reads are served, writes refused with a clear reason */
    snprintf(path, sizeof(path), "%s/ro.db", dir);
    make_db(path, 2, 10);
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path, .read_only = true}, &err);
    ok(st != NULL, "a read-only store opens");
    is_int(0, ward_store_get(st, "Host", "x", "h1", &got, &err), "and serves reads");
    ward_resource_free(got);
    struct ward_resource r = {.kind = "Host", .ns = "x", .name = "new"};
    is_int(-EROFS, ward_store_create(st, &r, &err), "a write is -EROFS");
    contains(err.text, "read-only", "saying the store is read-only");
    struct ward_transition t = {
        .kind = "Host", .ns = "x", .name = "h1", .dimension = "lifecycle", .to = "Available"};
    is_int(-EROFS, ward_store_transition_sync(st, &t, NULL, &err), "so is a transition");
    ward_store_close(st);

    /*
     * A state directory wardd cannot write, for real: root ignores permissions, so as root
     * the check runs in a child that drops to nobody (65534) first.
     */
    char rodir[400], line[700] = "";
    snprintf(rodir, sizeof(rodir), "%s/rodir", dir);
    snprintf(path, sizeof(path), "%s/ward.db", rodir);
    mkdir(rodir, 0755);
    make_db(path, 2, 10);
    chmod(dir, 0755);
    chmod(rodir, 0555);
    int fds[2];
    if (pipe(fds) != 0) {
        sysbail("pipe");
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
            dprintf(fds[1], "cannot drop to nobody\n");
            _exit(0);
        }
        struct ward_error cerr = {0};
        struct ward_store *c =
            ward_store_open(NULL, &(struct ward_store_options){.path = path}, &cerr);
        int rw = c == NULL ? cerr.code : 0;
        ward_store_close(c);
        char first[512];
        snprintf(first, sizeof(first), "%s", cerr.text);
        c = ward_store_open(NULL, &(struct ward_store_options){.path = path, .read_only = true},
                            &cerr);
        struct ward_resource *g = NULL;
        int rd = c != NULL ? ward_store_get(c, "Host", "x", "h1", &g, &cerr) : cerr.code;
        ward_resource_free(g);
        ward_store_close(c);
        dprintf(fds[1], "%d %d %s\n", rw, rd, first);
        _exit(0);
    }
    close(fds[1]);
    ssize_t nread = read(fds[0], line, sizeof(line) - 1);
    line[nread > 0 ? nread : 0] = '\0';
    close(fds[0]);
    waitpid(pid, NULL, 0);
    chmod(rodir, 0755);
    int rw = 1, rd = 1;
    sscanf(line, "%d %d", &rw, &rd);
    is_int(-EROFS, rw, "an unwritable state directory is refused at open");
    contains(line, "is not writable", "saying so");
    contains(line, "open the store read-only to serve reads", "and what to do");
    is_int(0, rd, "opened read-only, the same store serves reads");

    /* a missing state directory */
    snprintf(path, sizeof(path), "%s/missing/state.db", dir);
    st = ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    ok(st == NULL && err.code == -ENOENT, "a missing state directory is refused");
    contains(err.text, "does not exist; create it", "with what to do");
    return 0;
}
