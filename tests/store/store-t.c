/* SPDX-License-Identifier: Apache-2.0 */
/* Resources, compare-and-swap, atomic transitions with history, group commit, batches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "../tap/basic.h"
#include "rawdb.h"
#include "metrics.h"
#include "store.h"

struct clock {
    double t;
};

static double fake_now(void *arg)
{
    return ((struct clock *)arg)->t;
}

static char dbpath[512];

/* The state of one dimension as recorded in status.states (caller frees). */
static char *status_state(const char *status, const char *dim)
{
    cJSON *j = cJSON_Parse(status);
    const cJSON *states = cJSON_GetObjectItemCaseSensitive(j, "states");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(states, dim);
    char *out = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}

struct feed {
    int n;
    char last[128];
};

static void on_change(void *arg, const struct ward_store_change *c)
{
    struct feed *f = arg;
    f->n++;
    snprintf(f->last, sizeof(f->last), "%s %s/%s v%lld", c->what, c->ns, c->name,
             (long long)c->version);
}

struct done_log {
    int calls;
    int rc[8];
    long long version[8];
    long long visible[8]; /* history rows another connection saw when done() ran */
    char text[8][512];
};

static void on_done(void *arg, int rc, int64_t version, const struct ward_error *err)
{
    struct done_log *d = arg;
    int i = d->calls++;
    d->rc[i] = rc;
    d->version[i] = version;
    d->visible[i] =
        rawdb_count(dbpath, "SELECT count(*) FROM history WHERE name = 'g1' OR name = 'g2'");
    snprintf(d->text[i], sizeof(d->text[i]), "%s", err != NULL ? err->text : "");
}

static struct ward_transition tr(const char *name, const char *dim, const char *from,
                                 const char *to)
{
    return (struct ward_transition){.kind = "Host",
                                    .ns = "site",
                                    .name = name,
                                    .dimension = dim,
                                    .from = from,
                                    .to = to,
                                    .trigger = "test",
                                    .reason = "because",
                                    .actor = "tester"};
}

int main(void)
{
    plan(106);
    snprintf(dbpath, sizeof(dbpath), "%s/state.db", test_tmpdir());
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_metrics *reg = ward_metrics_create();
    struct clock clk = {1000};
    struct ward_store_options o = {
        .path = dbpath, .now = fake_now, .now_arg = &clk, .metrics = reg};
    struct ward_error err = {0};
    struct ward_store *st = ward_store_open(loop, &o, &err);
    if (st == NULL) {
        bail("open: %s", err.text);
    }
    is_int(WARD_STORE_SCHEMA_VERSION, rawdb_count(dbpath, "PRAGMA user_version"),
           "a new database gets the current schema version");
    struct feed feed = {0};
    ward_store_subscribe(st, on_change, &feed);

    /* create / get */
    struct ward_resource r = {.kind = "Host",
                              .ns = "site",
                              .name = "h1",
                              .spec = "{\"bmc\":\"10.0.0.1\"}",
                              .status = "{\"note\":\"x\",\"states\":{\"lifecycle\":\"Forged\"}}",
                              .labels = "{\"rack\":\"r1\"}"};
    is_int(0, ward_store_create(st, &r, &err), "create succeeds");
    is_int(1, r.version, "a new resource has version 1");
    is_double(1000, r.created, 0, "created comes from the injected clock");
    is_int(-EEXIST, ward_store_create(st, &r, &err), "creating it again is -EEXIST");
    contains(err.text, "already exists", "and says so");
    is_string("created site/h1 v1", feed.last, "the change feed saw the creation");
    struct ward_resource *got = NULL;
    is_int(0, ward_store_get(st, "Host", "site", "h1", &got, &err), "get finds it");
    is_string("{\"bmc\":\"10.0.0.1\"}", got->spec, "spec round-trips");
    is_string("{\"note\":\"x\"}", got->status, "a caller cannot forge states through status");
    is_string("{\"rack\":\"r1\"}", got->labels, "labels round-trip");
    ok(got->consumer == NULL, "no consumer yet");
    ward_resource_free(got);
    is_int(-ENOENT, ward_store_get(st, "Host", "site", "nope", &got, &err),
           "get of a missing resource is -ENOENT");
    ok(got == NULL, "and returns nothing");

    /* bad JSON is refused before anything is written, without echoing the content */
    struct ward_resource bad = {
        .kind = "Host", .ns = "site", .name = "h9", .spec = "{\"password\":\"hunter2\""};
    is_int(-EINVAL, ward_store_create(st, &bad, &err), "a spec that does not parse is -EINVAL");
    contains(err.text, "spec is not valid JSON", "the error names the field");
    lacks(err.text, "hunter2", "and never echoes the content");
    is_int(-ENOENT, ward_store_get(st, "Host", "site", "h9", &got, &err),
           "nothing was written for it");
    bad.spec = "[1,2]";
    is_int(-EINVAL, ward_store_create(st, &bad, &err), "a spec that is not an object is refused");
    bad.spec = "{}";
    bad.labels = "{\"rack\":7}";
    is_int(-EINVAL, ward_store_create(st, &bad, &err), "a label that is not a string is refused");

    /* compare-and-swap */
    struct ward_resource upd = {
        .kind = "Host", .ns = "site", .name = "h1", .spec = "{\"bmc\":\"10.0.0.2\"}"};
    clk.t = 1010;
    is_int(0, ward_store_update(st, &upd, 1, &err), "update with the current version succeeds");
    is_int(2, upd.version, "and bumps the version");
    upd.spec = "{\"bmc\":\"stale\"}";
    is_int(-ESTALE, ward_store_update(st, &upd, 1, &err), "update with a stale version conflicts");
    contains(err.text, "version is 2, not 1", "the conflict says which versions");
    ward_store_get(st, "Host", "site", "h1", &got, &err);
    is_string("{\"bmc\":\"10.0.0.2\"}", got->spec, "a stale update never overwrites");
    is_int(2, got->version, "and leaves the version alone");
    is_string("{\"rack\":\"r1\"}", got->labels, "fields left NULL keep their value");
    ward_resource_free(got);
    upd.spec = "{nope";
    is_int(-EINVAL, ward_store_update(st, &upd, 2, &err), "update with bad JSON is refused");

    /* transitions: state + version + status + history in one transaction */
    struct ward_transition t = tr("h1", "lifecycle", "", "Available");
    int64_t v = 0;
    clk.t = 1020;
    is_int(0, ward_store_transition_sync(st, &t, &v, &err),
           "first transition from the unset state");
    is_int(3, v, "it returns the new version");
    struct ward_state *states = NULL;
    size_t ns = 0;
    ward_store_states(st, "Host", "site", "h1", &states, &ns, &err);
    is_int(1, (long long)ns, "one dimension recorded");
    is_string("Available", ns == 1 ? states[0].state : NULL, "with the new state");
    is_double(1020, ns == 1 ? states[0].entered : 0, 0, "entered is the transition's time");
    ward_state_free(states, ns);
    ward_store_get(st, "Host", "site", "h1", &got, &err);
    char *s = status_state(got->status, "lifecycle");
    is_string("Available", s, "status.states follows the transition");
    free(s);
    ward_resource_free(got);
    is_string("transition site/h1 v3", feed.last, "the feed saw the transition");

    t = tr("h1", "lifecycle", "Enrolling", "Claimed");
    is_int(-ESTALE, ward_store_transition_sync(st, &t, &v, &err),
           "a transition from the wrong state conflicts");
    contains(err.text, "lifecycle is \"Available\", not \"Enrolling\"", "and says why");
    t = tr("h1", "lifecycle", "Available", "Error");
    t.expected_version = 2;
    is_int(-ESTALE, ward_store_transition_sync(st, &t, &v, &err),
           "a transition with a stale expected version conflicts");

    /* atomicity: make the history insert fail; the state change must not survive */
    rawdb_exec(dbpath, "CREATE TRIGGER fail_history BEFORE INSERT ON history "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    ward_store_close(st);
    st = ward_store_open(loop, &o, &err);
    ward_store_subscribe(st, on_change, &feed);
    t = tr("h1", "lifecycle", "Available", "Error");
    int frc = ward_store_transition_sync(st, &t, &v, &err);
    ok(frc < 0, "a transition whose history record cannot be written fails (%d)", frc);
    ward_store_states(st, "Host", "site", "h1", &states, &ns, &err);
    is_string("Available", ns == 1 ? states[0].state : NULL, "and its state change is not kept");
    ward_state_free(states, ns);
    ward_store_get(st, "Host", "site", "h1", &got, &err);
    is_int(3, got->version, "nor its version bump");
    ward_resource_free(got);
    rawdb_exec(dbpath, "DROP TRIGGER fail_history");
    ward_store_close(st);
    st = ward_store_open(loop, &o, &err);
    ward_store_subscribe(st, on_change, &feed);

    /* history */
    clk.t = 1030;
    t = tr("h1", "power", NULL, "On");
    t.status = "{\"watts\":120}";
    ward_store_transition_sync(st, &t, &v, &err);
    struct ward_history *h = NULL;
    size_t nh = 0;
    is_int(0, ward_store_history(st, "Host", "site", "h1", 0, 0, &h, &nh, &err),
           "history of a resource");
    is_int(2, (long long)nh, "has one record per transition");
    if (nh == 2) {
        is_string("lifecycle", h[0].dimension, "oldest first: dimension");
        is_string("", h[0].from, "from");
        is_string("Available", h[0].to, "to");
        is_string("test", h[0].trigger, "trigger");
        is_string("because", h[0].reason, "reason");
        is_string("tester", h[0].actor, "actor");
        is_double(1020, h[0].at, 0, "timestamp");
        is_int(3, h[0].version, "the version it produced");
        is_string("power", h[1].dimension, "another dimension has its own history");
    } else {
        for (int i = 0; i < 9; i++) {
            ok(false, "history record %d", i);
        }
    }
    ward_history_free(h, nh);
    ward_store_get(st, "Host", "site", "h1", &got, &err);
    contains(got->status, "\"watts\":120", "a transition writes its status in the same commit");
    s = status_state(got->status, "lifecycle");
    is_string("Available", s, "and keeps the other dimensions' states");
    free(s);
    ward_resource_free(got);
    ward_store_history(st, NULL, NULL, NULL, 1025, 1035, &h, &nh, &err);
    is_int(1, (long long)nh, "history by time range, all resources");
    is_string("h1", nh == 1 ? h[0].resource : NULL, "names the resource");
    ward_history_free(h, nh);

    /* list */
    struct ward_resource r2 = {
        .kind = "Host", .ns = "site", .name = "h2", .labels = "{\"rack\":\"r2\"}"};
    ward_store_create(st, &r2, &err);
    struct ward_resource **list = NULL;
    size_t nl = 0;
    ward_store_list(st, &(struct ward_store_filter){.kind = "Host"}, &list, &nl, &err);
    is_int(2, (long long)nl, "list by kind");
    ward_resource_list_free(list, nl);
    ward_store_list(st, &(struct ward_store_filter){.dimension = "lifecycle", .state = "Available"},
                    &list, &nl, &err);
    is_int(1, (long long)nl, "list by state");
    is_string("h1", nl == 1 ? list[0]->name : NULL, "finds the host in that state");
    ward_resource_list_free(list, nl);
    ward_store_list(st, &(struct ward_store_filter){.label_key = "rack", .label_value = "r2"},
                    &list, &nl, &err);
    is_int(1, (long long)nl, "list by label");
    is_string("h2", nl == 1 ? list[0]->name : NULL, "finds the labelled host");
    ward_resource_list_free(list, nl);

    /* group commit */
    struct ward_resource g1 = {.kind = "Host", .ns = "site", .name = "g1"};
    struct ward_resource g2 = {.kind = "Host", .ns = "site", .name = "g2"};
    ward_store_create(st, &g1, &err);
    ward_store_create(st, &g2, &err);
    struct ward_metric *commits = ward_metrics_counter(reg, "ward_store_commits_total", "", NULL);
    double before = ward_metric_value(commits, NULL);
    struct done_log dl = {0};
    int feed_before = feed.n;
    struct ward_transition a = tr("g1", "lifecycle", "", "Enrolling");
    struct ward_transition b = tr("g2", "lifecycle", "Available", "Claimed"); /* conflicts */
    struct ward_transition c = tr("g2", "lifecycle", "", "Enrolling");
    ward_store_transition(st, &a, on_done, &dl);
    ward_store_transition(st, &b, on_done, &dl);
    ward_store_transition(st, &c, on_done, &dl);
    is_int(0, dl.calls, "queued transitions are not reported before their commit");
    is_int(0, rawdb_count(dbpath, "SELECT count(*) FROM history WHERE name IN ('g1', 'g2')"),
           "nor written yet");
    ev_run(loop, 0);
    is_int(3, dl.calls, "every done() ran after one loop iteration");
    is_int(0, dl.rc[0], "the first item committed");
    is_int(-ESTALE, dl.rc[1], "the conflicting item failed alone");
    contains(dl.text[1], "not \"Available\"", "with its own reason");
    is_int(0, dl.rc[2], "the item after it committed too");
    is_int(2, dl.version[2], "with its new version");
    is_int(2, dl.visible[0], "done() ran only once the commit was visible on disk");
    is_int(2, feed.n - feed_before, "the feed saw the two committed items, not the failed one");
    is_double(1, ward_metric_value(commits, NULL) - before, 0,
              "the group shared one commit (one fsync)");
    ok(ward_store_transition(st, &(struct ward_transition){.kind = "Host"}, on_done, &dl) ==
           -EINVAL,
       "a malformed transition is refused when queued");

    /* batch: all or nothing */
    struct ward_transition items[3] = {tr("g1", "power", NULL, "On"),
                                       tr("g2", "lifecycle", "Provisioned", "Error"),
                                       tr("h2", "power", NULL, "On")};
    int results[3] = {1, 1, 1};
    is_int(-ESTALE, ward_store_batch(st, items, 3, results, &err),
           "a batch with a failing item fails");
    contains(err.text, "batch item 1", "naming the item");
    is_int(-ECANCELED, results[0], "items that would have worked are reported cancelled");
    is_int(-ESTALE, results[1], "the failing item has its own result");
    is_int(-ECANCELED, results[2], "every other item is cancelled");
    is_int(0,
           rawdb_count(dbpath, "SELECT count(*) FROM history WHERE dimension = 'power' AND "
                               "name IN ('g1', 'h2')"),
           "nothing of the batch was written");
    items[1] = tr("g2", "lifecycle", "Enrolling", "Available");
    is_int(0, ward_store_batch(st, items, 3, results, &err), "a batch of good items commits");
    is_int(3,
           rawdb_count(dbpath, "SELECT count(*) FROM history WHERE version > 0 AND at > 0 AND "
                               "(dimension = 'power' AND name IN ('g1', 'h2') OR name = 'g2' AND "
                               "to_state = 'Available')"),
           "all of it");

    /* delete with version */
    is_int(-ESTALE, ward_store_delete(st, "Host", "site", "h2", 1, &err),
           "delete with a stale version conflicts");
    is_int(0, ward_store_delete(st, "Host", "site", "h2", 2, &err), "delete with the version");
    is_int(-ENOENT, ward_store_get(st, "Host", "site", "h2", &got, &err), "it is gone");
    is_string("deleted site/h2 v2", feed.last, "the feed saw the deletion");

    /* bulk: one transaction for many writes; a failing write fails alone; the feed and the
     * other connections see the writes only after the commit; a rollback leaves nothing */
    long long commits0 = rawdb_count(dbpath, "SELECT count(*) FROM resources");
    int feed0 = feed.n;
    is_int(0, ward_store_bulk_begin(st, &err), "a bulk write opens");
    is_int(-EBUSY, ward_store_bulk_begin(st, &err), "a second one inside it is refused");
    struct ward_resource b1 = {.kind = "Host", .ns = "site", .name = "b1"};
    struct ward_resource b2 = {.kind = "Host", .ns = "site", .name = "b2"};
    struct ward_resource dup = {.kind = "Host", .ns = "site", .name = "b1"};
    is_int(0, ward_store_create(st, &b1, &err), "a create inside the bulk");
    is_int(-EEXIST, ward_store_create(st, &dup, &err), "a failing create inside it fails alone");
    is_int(0, ward_store_create(st, &b2, &err), "and the next one still goes in");
    b2.status = "{\"note\":\"bulk\"}";
    is_int(0, ward_store_update(st, &b2, 1, &err), "an update inside the bulk sees the create");
    is_int(-EBUSY, ward_store_claim(st, "Host", NULL, "c", NULL, NULL, NULL, &err),
           "a claim inside a bulk is refused");
    is_int(commits0, rawdb_count(dbpath, "SELECT count(*) FROM resources"),
           "another connection sees nothing before the commit");
    is_int(feed0, feed.n, "nor does the change feed");
    is_int(0, ward_store_bulk_end(st, true, &err), "the bulk commits");
    is_int(commits0 + 2, rawdb_count(dbpath, "SELECT count(*) FROM resources"),
           "both creates are on disk");
    is_int(1,
           rawdb_count(dbpath, "SELECT count(*) FROM resources WHERE name = 'b2' AND version = 2"),
           "with the update");
    is_int(feed0 + 3, feed.n, "the feed then reports the three writes");
    struct ward_resource b3 = {.kind = "Host", .ns = "site", .name = "b3"};
    is_int(0, ward_store_bulk_begin(st, &err), "another bulk");
    is_int(0, ward_store_create(st, &b3, &err), "a create in it");
    is_int(0, ward_store_bulk_end(st, false, &err), "rolled back");
    is_int(0, rawdb_count(dbpath, "SELECT count(*) FROM resources WHERE name = 'b3'"),
           "leaves nothing");
    is_int(feed0 + 3, feed.n, "and reports nothing");

    /* close commits what is still queued, and only then reports it */
    struct done_log last = {0};
    struct ward_transition z = tr("g1", "power", NULL, "Off");
    ward_store_transition(st, &z, on_done, &last);
    ward_store_close(st);
    is_int(1, last.calls, "closing the store runs the done() of a queued transition");
    is_int(0, last.rc[0], "after committing it");
    is_int(1,
           rawdb_count(dbpath, "SELECT count(*) FROM states s JOIN resources r ON r.id = s.rid "
                               "WHERE r.name = 'g1' AND s.dimension = 'power' AND s.state = 'Off'"),
           "and it is on disk");
    ward_metrics_destroy(reg);
    ev_loop_destroy(loop);
    return 0;
}
