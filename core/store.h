/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The durable resource store: versioned resources, atomic state transitions with
 * history, group commit, claims. Backed by one SQLite database in WAL mode with
 * synchronous=FULL (see doc/store.md). Every function is for the loop's thread.
 *
 * Error codes: -ENOENT (no such resource), -ESTALE (version or state conflict: nothing
 * was written), -EEXIST, -EINVAL (bad argument or JSON that does not parse), -ENOSPC
 * (database or disk full), -EROFS (read-only store), -EIO (corrupt database or I/O
 * error), -ENOTSUP (database written by a newer ward), -EBUSY (locked by another
 * process past the busy timeout; also a release of a host past Claimed), -EPERM (release
 * by a consumer that does not hold the host), -ECANCELED (batch item rolled back because
 * another failed). The text in struct ward_error says what to do and never quotes a spec.
 * Reads see committed data only: a queued transition is invisible until its group commits.
 * A store must not cross fork(): close it first and open one in each process (SQLite rule).
 */
#ifndef WARD_CORE_STORE_H
#define WARD_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include <ward/metrics.h>
#include <ward/plugin.h>

/* The schema version this build writes (PRAGMA user_version). */
#define WARD_STORE_SCHEMA_VERSION 2

/* How many candidates a claim tries before giving up with -ESTALE. */
#define WARD_STORE_CLAIM_TRIES 8

/* The dimension and states claims work on. */
#define WARD_STORE_LIFECYCLE "lifecycle"
#define WARD_STORE_AVAILABLE "Available"
#define WARD_STORE_CLAIMED "Claimed"

/* The database's file name inside the configured state_dir. */
#define WARD_STORE_FILE "ward.db"

struct ward_store;

/* All strings owned by the struct; free with ward_resource_free. */
struct ward_resource {
    char *kind, *ns, *name;
    int64_t version; /* monotonic per resource; every write bumps it */
    char *spec;      /* JSON object text */
    char *status;    /* JSON object text; "states" ({dimension: state}) is kept by the store */
    char *labels;    /* JSON object text, {"rack":"r1"} */
    char *consumer;  /* claim holder or NULL */
    double created, updated; /* unix seconds */
};

/* entered = time of the transition that set it, recorded AT the transition. */
struct ward_state {
    char *dimension;
    char *state;
    double entered;
};

struct ward_store_options {
    const char *path;         /* database file; its directory must exist */
    double (*now)(void *arg); /* clock; NULL = real time (tests inject a fake) */
    void *now_arg;
    struct ward_metrics *metrics; /* may be NULL; claim attempts counted here */
    long history_keep;            /* retention: records kept per resource; 0 = keep all */
    double history_max_age;       /* retention: seconds; 0 = keep all */
    /* Added fields (zero = default): */
    bool read_only;        /* open SQLITE_OPEN_READONLY: serve reads, writes get -EROFS */
    int64_t max_bytes;     /* cap on the database size (PRAGMA max_page_count); 0 = none */
    double busy_timeout;   /* seconds to wait for another process's lock; 0 = 5 s */
    double prune_interval; /* seconds between age-retention steps on the loop; 0 = 60 */
};

/*
 * Open (creating if missing) and migrate forward. Refuses a database whose schema is
 * newer than WARD_STORE_SCHEMA_VERSION (-ENOTSUP, the file is left untouched), a corrupt
 * or truncated file (-EIO) and an unwritable one (-EROFS/-EACCES) with a message saying
 * what to do. @p loop may be NULL (tools): then ward_store_transition commits at once.
 */
struct ward_store *ward_store_open(struct ev_loop *loop, const struct ward_store_options *o,
                                   struct ward_error *err);
/* "<state_dir>/ward.db" (caller frees); state_dir NULL = the built-in default
 * ($localstatedir/lib/ward). NULL when out of memory. */
char *ward_store_path(const char *state_dir);

/* Commits anything pending first (running its done callbacks; transitions those queue
 * again are committed too, up to a bound, then cancelled with -ECANCELED), then closes. */
void ward_store_close(struct ward_store *st);

/*
 * Create r (kind, ns, name required; spec/status/labels NULL mean "{}"). On success
 * r->version, r->created and r->updated are filled in. -EEXIST when it exists.
 */
int ward_store_create(struct ward_store *st, struct ward_resource *r, struct ward_error *err);
/* *out is owned by the caller (ward_resource_free). -ENOENT when absent. */
int ward_store_get(struct ward_store *st, const char *kind, const char *ns, const char *name,
                   struct ward_resource **out, struct ward_error *err);

/* Every non-NULL field must match; dimension+state together select by state. */
struct ward_store_filter {
    const char *kind;
    const char *dimension;
    const char *state;
    const char *label_key;
    const char *label_value;
};
/* *out (array of *n resources, ordered by kind, ns, name) is freed with
 * ward_resource_list_free. f may be NULL for everything. */
int ward_store_list(struct ward_store *st, const struct ward_store_filter *f,
                    struct ward_resource ***out, size_t *n, struct ward_error *err);

/*
 * Compare-and-swap write of spec, status and labels (NULL fields keep their value;
 * the consumer and the states are not changed here: use transitions and claims).
 * -ESTALE when the stored version is not expected_version: nothing is overwritten.
 * On success r->version and r->updated hold the new values.
 */
int ward_store_update(struct ward_store *st, struct ward_resource *r, int64_t expected_version,
                      struct ward_error *err);
/* expected_version 0 = do not check. History records stay (audit) until retention. */
int ward_store_delete(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      int64_t expected_version, struct ward_error *err);
/* The current state of every dimension; *out freed with ward_state_free. */
int ward_store_states(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      struct ward_state **out, size_t *n, struct ward_error *err);

/*
 * One state change. from NULL = any current state; a dimension never set reads as ""
 * (so the first transition uses from "" or NULL). The state, the resource version, the
 * status and its history record commit together or not at all.
 */
struct ward_transition {
    const char *kind, *ns, *name, *dimension, *from, *to, *trigger, *reason, *actor;
    int64_t expected_version; /* 0 = do not check */
    const char *status;       /* optional: new status JSON written in the same transaction */
    const char *consumer;     /* optional: set ("" clears) the claim in the same transaction */
    double entered;           /* optional: when the state is entered (Unix time, the caller's
                                 clock, also the record's time); 0: the store's clock */
};

typedef void (*ward_store_done_fn)(void *arg, int rc, int64_t new_version,
                                   const struct ward_error *err);

/*
 * Group commit: queued (strings are copied), committed with everything else queued in
 * the same loop iteration in ONE transaction and fsync; done() runs only after the
 * commit is durable (or failed). A failing item fails alone (per-item savepoint).
 * Returns 0 when queued, or -EINVAL for a malformed transition (done is then not called).
 * done may be NULL.
 */
int ward_store_transition(struct ward_store *st, const struct ward_transition *t,
                          ward_store_done_fn done, void *arg);
/* The same, committed before returning (after anything already queued). */
int ward_store_transition_sync(struct ward_store *st, const struct ward_transition *t,
                               int64_t *new_version, struct ward_error *err);
/*
 * A compare-and-swap write of the status alone, queued like a transition: it joins the
 * group commit (done() gets the new version, expected_version + 1, once it is durable;
 * -ESTALE when the version moved). -EINVAL (done not called) for a malformed request.
 */
int ward_store_status(struct ward_store *st, const char *kind, const char *ns, const char *name,
                      int64_t expected_version, const char *status, ward_store_done_fn done,
                      void *arg);
/*
 * All-or-nothing: results[i] is 0 or the item's error; when any item fails nothing is
 * written, the return is the first failure and items that would have succeeded read
 * -ECANCELED. results may be NULL.
 */
int ward_store_batch(struct ward_store *st, const struct ward_transition *items, size_t n,
                     int *results, struct ward_error *err);
/*
 * Bulk write: the creates, updates, deletes and synchronous transitions made between
 * begin and end share ONE transaction and fsync (wardd loads its inventory this way:
 * 10,000 hosts are one commit, not 10,000). Each returns 0 as soon as it is written into
 * the open transaction; nothing is durable, and the change feed does not run, until
 * ward_store_bulk_end(st, true) commits. A failing write is undone alone (savepoint).
 * bulk_end(st, false) rolls everything back. Claims are refused (-EBUSY) inside a bulk;
 * transitions queued for the group commit meanwhile are committed after it. The caller
 * must not return to the loop with a bulk open. A failed commit, or an I/O error inside,
 * ends the bulk with nothing written: the caller's view of what it wrote is then wrong.
 */
int ward_store_bulk_begin(struct ward_store *st, struct ward_error *err);
int ward_store_bulk_end(struct ward_store *st, bool commit, struct ward_error *err);
/* Commit whatever is queued now (the loop does it by itself; tools and tests may call it). */
void ward_store_flush(struct ward_store *st);

struct ward_history {
    char *dimension, *from, *to, *trigger, *reason, *actor;
    double at;
    int64_t version; /* the resource version the transition produced */
    /* Added fields: the resource the record belongs to. */
    char *kind, *ns, *resource;
};
/*
 * Records with since <= at < until (until 0 = no upper bound), oldest first.
 * name NULL = all resources in the time range (kind/ns may then be NULL too).
 */
int ward_store_history(struct ward_store *st, const char *kind, const char *ns, const char *name,
                       double since, double until, struct ward_history **out, size_t *n,
                       struct ward_error *err);
/* Remove up to max_rows records older than history_max_age; returns how many went
 * (the loop runs it in small steps so pruning never holds the loop for long). */
int ward_store_prune(struct ward_store *st, int max_rows, struct ward_error *err);

/*
 * claim: candidates = kind, dimension "lifecycle" in state "Available", no consumer, labels
 * match selector (JSON object of label=value, or NULL); eligible(arg, r) true if given.
 * Rank by a stable hash of (consumer, name) (rendezvous hashing), CAS the best; on conflict
 * try the next, up to WARD_STORE_CLAIM_TRIES. The winner gets consumer set AND lifecycle
 * Available->Claimed with a history record (actor = consumer) in ONE transaction. Counted
 * in ward_host_claim_attempts_total{outcome,conflict_reason}. -ENOENT when nothing is
 * eligible, -ESTALE when every try conflicted. *claimed (may be NULL) is the caller's.
 * eligible() is asked in rank order, before each try and only until a host is claimed, with
 * kind, ns, name and version set (nothing else): 1 to try the host, 0 to skip it (not a try;
 * after WARD_STORE_CLAIM_REFUSALS skips the claim gives up with -ENOENT), or a negative
 * errno with err filled to end the claim with that error. It may read @p st but must not
 * write to it.
 */
#define WARD_STORE_CLAIM_REFUSALS 64
int ward_store_claim(struct ward_store *st, const char *kind, const char *selector_json,
                     const char *consumer,
                     int (*eligible)(void *arg, const struct ward_resource *r,
                                     struct ward_error *err),
                     void *arg, struct ward_resource **claimed, struct ward_error *err);
/*
 * Clear the consumer and move lifecycle Claimed -> Available with history. Idempotent:
 * an unclaimed host is 0 too, and *released (when not NULL) tells the two apart. -EPERM
 * when another consumer holds it; -EBUSY when its lifecycle has moved past Claimed
 * (deprovision it instead); -ENOENT when absent.
 */
int ward_store_release(struct ward_store *st, const char *kind, const char *ns, const char *name,
                       const char *consumer, bool *released, struct ward_error *err);

/* what: "created", "updated", "deleted", "transition", "claimed", "released". */
struct ward_store_change {
    const char *kind, *ns, *name;
    int64_t version;
    const char *what;
};
/* In-process change feed, called after commit. -ENOMEM or 0. */
int ward_store_subscribe(struct ward_store *st,
                         void (*cb)(void *arg, const struct ward_store_change *c), void *arg);
void ward_store_unsubscribe(struct ward_store *st,
                            void (*cb)(void *arg, const struct ward_store_change *c), void *arg);

void ward_resource_free(struct ward_resource *r);
void ward_resource_list_free(struct ward_resource **list, size_t n);
void ward_state_free(struct ward_state *s, size_t n);
void ward_history_free(struct ward_history *h, size_t n);

#endif
