/* SPDX-License-Identifier: Apache-2.0 */
/* Claims: deterministic (rendezvous) selection, CAS conflicts, selectors, release. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "metrics.h"
#include "store.h"

#define HOSTS 40

/*
 * The selection rule as doc/store.md states it, written out independently: 64-bit FNV-1a
 * over consumer, NUL, namespace, "/", name, then the splitmix64 finaliser; highest wins.
 */
static uint64_t doc_score(const char *consumer, const char *ns, const char *name)
{
    struct ward_buf_like {
        char bytes[256];
        size_t len;
    } in = {{0}, 0};
    in.len = (size_t)snprintf(in.bytes, sizeof(in.bytes), "%s%c%s/%s", consumer, 0, ns, name);
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < in.len; i++) {
        h = (h ^ (unsigned char)in.bytes[i]) * 1099511628211ULL;
    }
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* The best host for consumer among host-<first>..host-<last-1> minus the excluded mask. */
static int doc_pick(const char *consumer, int first, int last, const bool *excluded)
{
    int best = -1;
    uint64_t best_score = 0;
    for (int i = first; i < last; i++) {
        char name[32];
        snprintf(name, sizeof(name), "host-%02d", i);
        uint64_t s = doc_score(consumer, "dc1", name);
        if ((excluded == NULL || !excluded[i]) && (best < 0 || s > best_score)) {
            best = i;
            best_score = s;
        }
    }
    return best;
}

/* host-00 .. host-<n-1>, all Available but the last (Enrolling) */
static void make_hosts(struct ward_store *st, bool reverse, int n)
{
    struct ward_error err = {0};
    for (int k = 0; k < n; k++) {
        int i = reverse ? n - 1 - k : k;
        char name[32], labels[64];
        snprintf(name, sizeof(name), "host-%02d", i);
        snprintf(labels, sizeof(labels), "{\"rack\":\"r%d\",\"gpu\":\"%s\"}", i % 2,
                 i < 4 ? "yes" : "no");
        struct ward_resource r = {
            .kind = "PhysicalHost", .ns = "dc1", .name = name, .labels = labels};
        if (ward_store_create(st, &r, &err) < 0) {
            bail("create %s: %s", name, err.text);
        }
        struct ward_transition t = {.kind = "PhysicalHost",
                                    .ns = "dc1",
                                    .name = name,
                                    .dimension = "lifecycle",
                                    .from = "",
                                    .to = i == n - 1 ? "Enrolling" : "Available",
                                    .trigger = "enroll"};
        if (ward_store_transition_sync(st, &t, NULL, &err) < 0) {
            bail("transition %s: %s", name, err.text);
        }
    }
}

static int host_index(const struct ward_resource *r)
{
    return r != NULL ? atoi(r->name + 5) : -1;
}

struct interference {
    struct ward_store *other;
    int calls;
    bool all; /* bump every candidate, not only the first seen */
    const char *only;
    bool claim; /* claim `only` for another consumer instead of editing it */
    int refuse_after; /* > 0: refuse every candidate from this call on, untouched */
};

/* Runs just before the claimer tries a candidate: another writer changes it under it. */
static int interfere(void *arg, const struct ward_resource *r, struct ward_error *unused)
{
    (void)unused;
    struct interference *x = arg;
    struct ward_error err = {0};
    if (x->refuse_after > 0 && x->calls >= x->refuse_after) {
        x->calls++;
        return 0;
    }
    if (x->claim && strcmp(r->name, x->only) == 0) {
        struct ward_transition t = {.kind = r->kind,
                                    .ns = r->ns,
                                    .name = r->name,
                                    .dimension = "lifecycle",
                                    .from = "Available",
                                    .to = "Claimed",
                                    .consumer = "zed"};
        if (ward_store_transition_sync(x->other, &t, NULL, &err) < 0) {
            bail("interfering claim: %s", err.text);
        }
    } else if ((x->all || (x->only != NULL && strcmp(r->name, x->only) == 0)) && x->other != NULL) {
        struct ward_resource u = {
            .kind = r->kind, .ns = r->ns, .name = r->name, .spec = "{\"touched\":true}"};
        if (ward_store_update(x->other, &u, r->version, &err) < 0) {
            bail("interfering update: %s", err.text);
        }
    }
    x->calls++;
    return 1;
}

static int only_even(void *arg, const struct ward_resource *r, struct ward_error *err)
{
    (void)arg;
    (void)err;
    return host_index(r) % 2 == 0;
}

static int broken_check(void *arg, const struct ward_resource *r, struct ward_error *err)
{
    (void)arg;
    return ward_error_set(err, -EIO, "cannot check %s", r->name);
}

/* Refuses the first `refuse` hosts it is asked about and remembers what it was asked. */
struct asked {
    int refuse;
    int n;
    char names[16][32];
    bool saw_spec;
};

static int refuse_first(void *arg, const struct ward_resource *r, struct ward_error *err)
{
    (void)err;
    struct asked *a = arg;
    if (a->n < 16) {
        snprintf(a->names[a->n], sizeof(a->names[a->n]), "%s", r->name);
    }
    a->saw_spec = a->saw_spec || r->spec != NULL;
    return a->n++ >= a->refuse;
}

static double attempts(struct ward_metrics *reg, const char *outcome, const char *reason)
{
    struct ward_metric *m = ward_metrics_counter(
        reg, "ward_host_claim_attempts_total", "Host claim attempts by outcome.",
        (const char *[]){"outcome", "conflict_reason", NULL});
    return ward_metric_value(m, (const char *[]){outcome, reason});
}

int main(void)
{
    plan(68);
    char path[512], path2[512];
    snprintf(path, sizeof(path), "%s/a.db", test_tmpdir());
    snprintf(path2, sizeof(path2), "%s/b.db", test_tmpdir());
    struct ward_metrics *reg = ward_metrics_create();
    struct ward_error err = {0};
    struct ward_store *st =
        ward_store_open(NULL, &(struct ward_store_options){.path = path, .metrics = reg}, &err);
    struct ward_store *rev =
        ward_store_open(NULL, &(struct ward_store_options){.path = path2}, &err);
    if (st == NULL || rev == NULL) {
        bail("open: %s", err.text);
    }
    make_hosts(st, false, HOSTS);
    make_hosts(rev, true, HOSTS);

    /* deterministic selection */
    struct ward_resource *got = NULL;
    int want = doc_pick("alice", 0, HOSTS - 1, NULL);
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "alice", NULL, NULL, &got, &err),
           "a claim succeeds");
    is_int(want, host_index(got), "it picks the documented rendezvous choice (host-%02d)", want);
    is_string("alice", got != NULL ? got->consumer : NULL, "and records the consumer");
    contains(got != NULL ? got->status : "", "\"lifecycle\":\"Claimed\"",
             "and moves the lifecycle to Claimed");
    int64_t claimed_version = got != NULL ? got->version : 0;
    char alice_host[32];
    snprintf(alice_host, sizeof(alice_host), "%s", got != NULL ? got->name : "");
    ward_resource_free(got);
    struct ward_history *h = NULL;
    size_t nh = 0;
    ward_store_history(st, "PhysicalHost", "dc1", alice_host, 0, 0, &h, &nh, &err);
    ok(nh == 2 && strcmp(h[1].to, "Claimed") == 0 && strcmp(h[1].from, "Available") == 0 &&
           strcmp(h[1].actor, "alice") == 0 && h[1].version == claimed_version,
       "the claim wrote its history record in the same version");
    ward_history_free(h, nh);
    ward_store_claim(rev, "PhysicalHost", NULL, "alice", NULL, NULL, &got, &err);
    is_int(want, host_index(got),
           "the same consumer picks the same host in another store "
           "whose hosts were created in the other order");
    ward_resource_free(got);
    is_double(1, attempts(reg, "success", "none"), 0, "a success is counted");

    /* consumers spread out: most get their own first choice, no collisions needed */
    int own = 0, as_documented = 0;
    bool taken[HOSTS] = {false};
    taken[want] = true;
    for (int c = 0; c < 10; c++) {
        char consumer[32];
        snprintf(consumer, sizeof(consumer), "consumer-%d", c);
        int first = doc_pick(consumer, 0, HOSTS - 1, NULL);
        int next = doc_pick(consumer, 0, HOSTS - 1, taken);
        ward_store_claim(st, "PhysicalHost", NULL, consumer, NULL, NULL, &got, &err);
        own += host_index(got) == first;
        as_documented += host_index(got) == next;
        if (got != NULL) {
            taken[host_index(got)] = true;
        }
        ward_resource_free(got);
    }
    is_int(10, as_documented, "each takes the best host still free, as documented");
    ok(own >= 7, "10 consumers mostly land on their own first choice (%d did)", own);
    bool all_distinct = true;
    int holders = 0;
    struct ward_resource **list = NULL;
    size_t nl = 0;
    ward_store_list(st, &(struct ward_store_filter){.dimension = "lifecycle", .state = "Claimed"},
                    &list, &nl, &err);
    for (size_t i = 0; i < nl; i++) {
        holders += list[i]->consumer != NULL;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(list[i]->consumer, list[k]->consumer) == 0) {
                all_distinct = false;
            }
        }
    }
    ward_resource_list_free(list, nl);
    is_int(11, holders, "eleven hosts are held");
    ok(all_distinct, "each by a different consumer");

    /* selectors and the eligible callback */
    is_int(0,
           ward_store_claim(st, "PhysicalHost", "{\"gpu\":\"yes\",\"rack\":\"r1\"}", "bob", NULL,
                            NULL, &got, &err),
           "a claim with a label selector");
    ok(got != NULL && (host_index(got) == 1 || host_index(got) == 3),
       "picks a host matching every label");
    char bob_host[32];
    snprintf(bob_host, sizeof(bob_host), "%s", got != NULL ? got->name : "");
    if (got != NULL) {
        taken[host_index(got)] = true;
    }
    ward_resource_free(got);
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "carol", only_even, NULL, &got, &err),
           "a claim with an eligibility callback");
    is_int(0, host_index(got) % 2, "honours it");
    if (got != NULL) {
        taken[host_index(got)] = true;
    }
    ward_resource_free(got);
    /* the callback is asked lazily, best ranked first: refusing one host moves the claim to
       the next in rank, and nothing else is asked */
    int erin_first = doc_pick("erin", 0, HOSTS - 1, taken);
    struct asked a = {.refuse = 1};
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "erin", refuse_first, &a, &got, &err),
           "a claim whose best candidate is refused");
    is_int(2, a.n, "asks about two hosts only");
    char erin_want[32];
    snprintf(erin_want, sizeof(erin_want), "host-%02d", erin_first);
    is_string(erin_want, a.names[0], "the first asked is the best ranked");
    is_string(a.names[1], got != NULL ? got->name : "", "and claims the second one asked");
    ok(!a.saw_spec, "with name and version only");
    char erin_host[32];
    snprintf(erin_host, sizeof(erin_host), "%s", got != NULL ? got->name : "");
    ward_resource_free(got);
    bool released = false;
    is_int(0, ward_store_release(st, "PhysicalHost", "dc1", erin_host, "erin", &released, &err),
           "released again");
    ok(released, "and says so");
    struct asked again = {.refuse = 0};
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "erin", refuse_first, &again, &got, &err),
           "the same consumer claims again");
    is_string(a.names[0], again.names[0], "the ranking is the same (deterministic)");
    if (got != NULL) {
        taken[host_index(got)] = true;
    }
    ward_resource_free(got);
    int free_hosts = 0;
    for (int i = 0; i < HOSTS - 1; i++) {
        free_hosts += !taken[i];
    }
    double none_before = attempts(reg, "none_available", "none");
    struct asked all = {.refuse = 1000};
    got = NULL;
    is_int(-ENOENT,
           ward_store_claim(st, "PhysicalHost", NULL, "frank", refuse_first, &all, &got, &err),
           "every candidate refused is -ENOENT");
    contains(err.text, "may be claimed now", "saying why (%s)", err.text);
    ok(got == NULL && all.n == free_hosts, "after asking about each of the %d free hosts (%d)",
       free_hosts, all.n);
    double errors_before = attempts(reg, "error", "none");
    is_int(-EIO,
           ward_store_claim(st, "PhysicalHost", NULL, "frank", broken_check, NULL, &got, &err),
           "a check that fails ends the claim with its error");
    ok(got == NULL && strstr(err.text, "cannot check host-") != NULL, "and its reason (%s)",
       err.text);
    is_double(none_before + 1, attempts(reg, "none_available", "none"), 0,
              "counted as none_available");
    is_int(
        -ENOENT,
        ward_store_claim(st, "PhysicalHost", "{\"rack\":\"r9\"}", "dave", NULL, NULL, &got, &err),
        "nothing matching the selector is -ENOENT");
    contains(err.text, "no PhysicalHost is Available", "with a clear reason");
    ok(got == NULL, "and no host");
    is_double(none_before + 2, attempts(reg, "none_available", "none"), 0,
              "none_available is counted");
    is_int(-EINVAL,
           ward_store_claim(st, "PhysicalHost", "{\"rack\":", "dave", NULL, NULL, &got, &err),
           "a selector that does not parse is -EINVAL");
    is_int(-EINVAL,
           ward_store_claim(st, "PhysicalHost", "{\"rack\":1}", "dave", NULL, NULL, &got, &err),
           "a selector value must be a string");
    is_double(errors_before + 3, attempts(reg, "error", "none"), 0,
              "errors are counted (the failed check and the two selectors)");
    is_int(-EINVAL, ward_store_claim(st, "PhysicalHost", NULL, "", NULL, NULL, &got, &err),
           "an empty consumer is refused");

    /* CAS conflicts: another writer changes the best candidate between read and claim */
    struct ward_store *other =
        ward_store_open(NULL, &(struct ward_store_options){.path = path}, &err);
    bool busy[HOSTS] = {false};
    list = NULL;
    ward_store_list(st, &(struct ward_store_filter){.dimension = "lifecycle", .state = "Available"},
                    &list, &nl, &err);
    for (int i = 0; i < HOSTS; i++) {
        busy[i] = true;
    }
    for (size_t i = 0; i < nl; i++) {
        if (list[i]->consumer == NULL) {
            busy[host_index(list[i])] = false;
        }
    }
    ward_resource_list_free(list, nl);
    int top = doc_pick("erin", 0, HOSTS - 1, busy);
    busy[top] = true;
    int second = doc_pick("erin", 0, HOSTS - 1, busy);
    char top_name[32];
    snprintf(top_name, sizeof(top_name), "host-%02d", top);
    struct interference x = {.other = other, .only = top_name};
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "erin", interfere, &x, &got, &err),
           "a claim whose best host changed under it still succeeds");
    is_int(second, host_index(got), "on the next candidate");
    ward_resource_free(got);
    is_double(1, attempts(reg, "conflict", "version_changed"), 0,
              "the conflict is counted with its reason");
    busy[second] = true;
    top = doc_pick("gina", 0, HOSTS - 1, busy);
    busy[top] = true;
    second = doc_pick("gina", 0, HOSTS - 1, busy);
    snprintf(top_name, sizeof(top_name), "host-%02d", top);
    x = (struct interference){.other = other, .only = top_name, .claim = true};
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "gina", interfere, &x, &got, &err),
           "a claim whose best host was just claimed by someone else");
    is_int(second, host_index(got), "takes the next candidate");
    ward_resource_free(got);
    is_double(1, attempts(reg, "conflict", "already_claimed"), 0,
              "and counts the conflict as already_claimed");
    x = (struct interference){.other = other, .all = true};
    is_int(-ESTALE, ward_store_claim(st, "PhysicalHost", NULL, "frank", interfere, &x, &got, &err),
           "when every try conflicts the claim gives up with -ESTALE");
    contains(err.text, "conflicted", "saying to retry");
    is_double(1 + WARD_STORE_CLAIM_TRIES, attempts(reg, "conflict", "version_changed"), 0,
              "after a bounded number of tries");
    x = (struct interference){.other = other, .all = true, .refuse_after = 1};
    is_int(-ESTALE, ward_store_claim(st, "PhysicalHost", NULL, "frank", interfere, &x, &got, &err),
           "one try that conflicts, every other candidate refused: -ESTALE");
    contains(err.text, "other candidates were refused", "and the refusals are not hidden (%s)",
             err.text);
    ward_store_close(other);

    /* release */
    is_int(-EPERM, ward_store_release(st, "PhysicalHost", "dc1", alice_host, "mallory", NULL, &err),
           "another consumer cannot release a host");
    is_int(0, ward_store_release(st, "PhysicalHost", "dc1", alice_host, "alice", NULL, &err),
           "the holder releases it");
    ward_store_get(st, "PhysicalHost", "dc1", alice_host, &got, &err);
    ok(got != NULL && got->consumer == NULL, "the consumer is cleared");
    contains(got != NULL ? got->status : "", "\"lifecycle\":\"Available\"",
             "and the host is Available again");
    int64_t v = got != NULL ? got->version : 0;
    ward_resource_free(got);
    ward_store_history(st, "PhysicalHost", "dc1", alice_host, 0, 0, &h, &nh, &err);
    ok(nh == 3 && strcmp(h[2].trigger, "release") == 0 && strcmp(h[2].to, "Available") == 0,
       "with a history record");
    ward_history_free(h, nh);
    released = true;
    is_int(0, ward_store_release(st, "PhysicalHost", "dc1", alice_host, "alice", &released, &err),
           "releasing again is 0 (idempotent)");
    ok(!released, "and says it released nothing");
    ward_store_get(st, "PhysicalHost", "dc1", alice_host, &got, &err);
    is_int(v, got != NULL ? got->version : -1, "and changes nothing");
    ward_resource_free(got);
    is_int(0, ward_store_release(st, "PhysicalHost", "dc1", "host-39", "alice", NULL, &err),
           "releasing a host nobody holds is 0");
    is_int(-ENOENT, ward_store_release(st, "PhysicalHost", "dc1", "host-99", "alice", NULL, &err),
           "releasing a missing host is -ENOENT");
    struct ward_transition t = {.kind = "PhysicalHost",
                                .ns = "dc1",
                                .name = bob_host,
                                .dimension = "lifecycle",
                                .from = "Claimed",
                                .to = "Provisioning"};
    ward_store_transition_sync(st, &t, NULL, &err);
    is_int(-EBUSY, ward_store_release(st, "PhysicalHost", "dc1", bob_host, "bob", NULL, &err),
           "a host past Claimed is not released behind the lifecycle's back");
    contains(err.text, "deprovision", "and the error says what to do");

    /* a released host can be claimed again by its rendezvous owner */
    is_int(0, ward_store_claim(st, "PhysicalHost", NULL, "alice", NULL, NULL, &got, &err),
           "claim after release");
    is_string(alice_host, got != NULL ? got->name : NULL, "gives alice the same host again");
    ward_resource_free(got);

    /* a claim passes over at most WARD_STORE_CLAIM_REFUSALS candidates */
    char path3[512];
    snprintf(path3, sizeof(path3), "%s/c.db", test_tmpdir());
    struct ward_store *big =
        ward_store_open(NULL, &(struct ward_store_options){.path = path3}, &err);
    if (big == NULL) {
        bail("open: %s", err.text);
    }
    make_hosts(big, false, WARD_STORE_CLAIM_REFUSALS + 10);
    struct asked many = {.refuse = 1000};
    is_int(-ENOENT,
           ward_store_claim(big, "PhysicalHost", NULL, "ivan", refuse_first, &many, &got, &err),
           "a claim with more candidates than it may pass over, all refused");
    is_int(WARD_STORE_CLAIM_REFUSALS, many.n, "asks about %d of them", WARD_STORE_CLAIM_REFUSALS);
    contains(err.text, "the most one claim passes over", "and says it stopped there (%s)",
             err.text);
    ward_store_close(big);
    /* exactly as many candidates as the cap, all refused: every one was asked */
    snprintf(path3, sizeof(path3), "%s/d.db", test_tmpdir());
    big = ward_store_open(NULL, &(struct ward_store_options){.path = path3}, &err);
    if (big == NULL) {
        bail("open: %s", err.text);
    }
    make_hosts(big, false, WARD_STORE_CLAIM_REFUSALS + 1);
    many = (struct asked){.refuse = 1000};
    is_int(-ENOENT,
           ward_store_claim(big, "PhysicalHost", NULL, "ivan", refuse_first, &many, &got, &err),
           "as many candidates as the cap, all refused");
    ok(many.n == WARD_STORE_CLAIM_REFUSALS && strstr(err.text, "passes over") == NULL,
       "all asked, and no word of stopping early (%s)", err.text);
    ward_store_close(big);

    ward_store_close(st);
    ward_store_close(rev);
    ward_metrics_destroy(reg);
    return 0;
}
