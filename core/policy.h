/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine: loads policies/NAME.lua into sandboxed Lua states, reads
 * the machine each declares, and is the one path that changes a resource's
 * state (validate, guard, consistency, commit, log, count, event). Reconciles
 * and recovery steps run as coroutines that yield to the libev loop through
 * <ward/async.h>; a work queue serialises them per resource. A timer finds
 * resources stuck in a state and climbs the policy's recovery ladder.
 *
 * Everything here runs on the loop's thread.
 */
#ifndef WARD_CORE_POLICY_H
#define WARD_CORE_POLICY_H

#include <stdbool.h>
#include <stdio.h>

#include <ev.h>

#include <ward/async.h>
#include <ward/plugin.h>

#include "queue.h"

struct ward_plugins;
struct ward_metrics;
struct ward_policy_engine;
struct ward_machine;

/* What the store makes durable in one transaction: the new state and its history record. */
struct ward_policy_commit {
    const char *kind;
    const char *name;
    const char *dimension;
    const char *from;
    const char *to;
    const char *trigger;        /* bounded token ("enrolled", "stuck_recovery", "api") */
    const char *reason;         /* free text for the history; may be NULL */
    const char *actor;          /* "policy:PhysicalHost", "api:alice", ... */
    long long expected_version; /* compare-and-swap on the resource version */
    double entered_at;          /* Unix time (or the options' clock): when `to` is entered */
    const char *status_json;    /* the resource's status after the transition */
};

/* How an asynchronous sink reports a queued write: 0 with the new version once it is
 * durable, or a negative errno with err filled. */
typedef void (*ward_policy_done_fn)(void *arg, int rc, long long new_version,
                                    const struct ward_error *err);

/*
 * Where transitions go. Until the store is wired, tests pass a recording sink.
 * commit returns 0 with *new_version set, or a negative errno with err filled
 * (-ESTALE: somebody else changed the resource first). NULL sink: in memory.
 */
struct ward_policy_sink {
    void *self;
    int (*commit)(void *self, const struct ward_policy_commit *c, long long *new_version,
                  struct ward_error *err);
    /*
     * Optional: make a resource's spec durable before the engine takes it
     * (create when expected_version is 0). 0 with *new_version set, or -errno.
     */
    int (*put)(void *self, const char *kind, const char *name, const char *spec_json,
               long long expected_version, long long *new_version, struct ward_error *err);
    /*
     * Optional: queue the commit and call done once it is durable or failed
     * (the store group-commits everything queued in one loop iteration).
     * Returns 0 when queued (done will be called exactly once) or -errno (done
     * is not called). Transitions a reconcile asks for wait on it, so many
     * reconciles share one fsync; the strings in c are copied.
     */
    int (*commit_async)(void *self, const struct ward_policy_commit *c, ward_policy_done_fn done,
                        void *arg);
    /* Optional: complete everything queued now (the engine calls it before it goes away). */
    void (*flush)(void *self);
};

struct ward_store;

/* Namespace the engine's resources live in inside the store. */
#define WARD_POLICY_NAMESPACE "default"

/*
 * A sink that commits through the store: the new state, the status and the
 * history record in one transaction (the time a state is entered is recorded
 * by that transaction), and resource specs created or updated with a
 * compare-and-swap on the version. st stays owned by the caller.
 */
void ward_policy_sink_store(struct ward_policy_sink *sink, struct ward_store *st);
/*
 * Take every resource of a kind some policy declares from the store (spec,
 * status, version, and each dimension's state with the time it was entered,
 * so stuck detection survives a restart), and queue a reconcile for each.
 */
int ward_policy_engine_restore(struct ward_policy_engine *e, struct ward_store *st,
                               struct ward_error *err);

/* An event the engine emits (transition, stuck, recovery, refusal, a policy's ward.event). */
struct ward_policy_event {
    const char *type; /* "transition", "stuck", "recovery", "reconcile_failed", "policy" */
    const char *kind;
    const char *name;
    const char *message;
    /* type "event" (ward.event from a policy): "Normal"/"Warning" and the event's reason
       ("PowerMismatch"); NULL for the engine's own events */
    const char *severity;
    const char *reason;
};

struct ward_policy_options {
    double reconcile_timeout;   /* RECONCILE_TIMEOUT, default 30m */
    double stuck_timeout;       /* STUCK_STATE_TIMEOUT, default 15m */
    unsigned max_retries;       /* MAX_RETRIES, default 3 */
    size_t memory_limit;        /* bytes per policy state, default 64 MiB */
    unsigned long instructions; /* VM instructions per run (resume to yield), default 100M */
    double slice_timeout;       /* seconds policy code may run without waiting, default 10 */
    double stuck_interval;      /* stuck timer period; 0: no timer, call ..._tick() */
    struct ward_queue_options queue;
    /* The clock for stuck detection, deadlines and backoff; NULL: the monotonic clock, with
       the times the engine hands out or takes in (entered_at) converted to Unix time. A clock
       given here is used for both. */
    double (*now)(void *arg);
    void *now_arg;
    /* Receives every event; may be NULL. */
    void (*on_event)(void *arg, const struct ward_policy_event *ev);
    void *event_arg;
    /* A BMC driver to use instead of looking one up among the plugins (tests). */
    const struct ward_bmc_driver *bmc_driver;
};

/*
 * Defaults, then RECONCILE_TIMEOUT, STUCK_STATE_TIMEOUT and MAX_RETRIES from
 * the environment. A bad value is an error naming the variable and the value
 * (these are not secrets).
 */
int ward_policy_options_init(struct ward_policy_options *o, struct ward_error *err);
/*
 * Override one setting as the configuration would: "reconcile_timeout",
 * "stuck_state_timeout", "slice_timeout" (durations like "15m") or "max_retries" (a count).
 */
int ward_policy_options_set(struct ward_policy_options *o, const char *key, const char *value,
                            struct ward_error *err);

/* sink may be NULL (in memory); plugins and metrics may be NULL. opts is copied. */
struct ward_policy_engine *
ward_policy_engine_create(struct ev_loop *loop, const struct ward_policy_sink *sink,
                          struct ward_plugins *plugins, struct ward_metrics *metrics,
                          const struct ward_policy_options *opts, struct ward_error *err);
/* Load every policy in dir (*.lua but not *.test.lua). All or nothing. */
int ward_policy_engine_load(struct ward_policy_engine *e, const char *dir, struct ward_error *err);
/*
 * Recompile the policies from the same directory. On any failure the last
 * good set stays in force, the refusal is logged and counted, and err says why.
 * In-flight reconciles finish on the policy they started with.
 */
int ward_policy_engine_reload(struct ward_policy_engine *e, struct ward_error *err);
/*
 * Stop taking work (shutdown): no new runs start and the stuck timer stops;
 * runs in flight continue until they end or the engine is destroyed.
 */
void ward_policy_engine_stop(struct ward_policy_engine *e);

struct ward_daemon;
struct ward_config;
/*
 * Hooks with the shapes ward_daemon_on_reload() / ward_daemon_on_stop() take;
 * arg is the engine. The reload hook recompiles from next->policy_dir (the
 * daemon counts the outcome in ward_policy_reloads_total, so this path does
 * not count it again).
 */
int ward_policy_daemon_reload(struct ward_daemon *d, const struct ward_config *next, void *arg,
                              struct ward_error *err);
void ward_policy_daemon_stop(struct ward_daemon *d, void *arg);

/* Cancel every run (their async operations get cancel()), free everything. */
void ward_policy_engine_destroy(struct ward_policy_engine *e);
/*
 * Detect stuck resources, cancel runs past their deadline, start queued
 * reconciles. The stuck timer calls it; tests call it after moving the clock.
 */
void ward_policy_engine_tick(struct ward_policy_engine *e);
/* The machine in force for kind (owned by the engine, valid until the next reload), or NULL. */
const struct ward_machine *ward_policy_engine_machine(const struct ward_policy_engine *e,
                                                      const char *kind);
/* Runs (reconciles, recovery steps) in flight. */
unsigned ward_policy_engine_running(const struct ward_policy_engine *e);
/* A policy generation counter: bumps on every successful load or reload. */
unsigned ward_policy_engine_generation(const struct ward_policy_engine *e);

/*
 * Create a resource in its machine's initial state(s), or replace the spec of
 * an existing one; either way queue a reconcile. spec_json must be a JSON object.
 */
int ward_policy_resource_put(struct ward_policy_engine *e, const char *kind, const char *name,
                             const char *spec_json, struct ward_error *err);
/* Replace a resource's status (what reconciles observed); JSON object. */
int ward_policy_resource_set_status(struct ward_policy_engine *e, const char *kind,
                                    const char *name, const char *status_json,
                                    struct ward_error *err);
/* Current state in a dimension (NULL: primary), or NULL if the resource is unknown. */
const char *ward_policy_resource_state(const struct ward_policy_engine *e, const char *kind,
                                       const char *name, const char *dimension);
/* The resource as JSON {kind,name,states,spec,status,version,entered_at}; caller frees. */
char *ward_policy_resource_json(const struct ward_policy_engine *e, const char *kind,
                                const char *name);
/*
 * Admission: before the engine commits a transition of a resource of kind into
 * to_state (primary dimension; from a reconcile, a recovery or the API), it
 * asks fn(arg, name, err). 0 admits. -EAGAIN parks it: nothing is committed,
 * a reconcile that asked ends as "waiting" (not a failure: no failure count,
 * no backoff, no event, no requeue) and the resource runs again only when
 * somebody queues it (ward_policy_enqueue: the owner of fn kicks it once it
 * admits it); the API is answered -EAGAIN with fn's text. Any other error
 * refuses the transition. fn must not call back into the engine except
 * ward_policy_enqueue. At most WARD_POLICY_MAX_ADMIT hooks; kind and to_state
 * are copied, arg is borrowed. 0, -ENOSPC or -ENOMEM.
 */
#define WARD_POLICY_MAX_ADMIT 4
typedef int (*ward_policy_admit_fn)(void *arg, const char *name, struct ward_error *err);
int ward_policy_engine_on_admit(struct ward_policy_engine *e, const char *kind,
                                const char *to_state, ward_policy_admit_fn fn, void *arg);
/* Queue a reconcile now. */
int ward_policy_enqueue(struct ward_policy_engine *e, const char *kind, const char *name);
/*
 * With the store sink: re-read a resource from the store now if the store has a
 * newer version than the engine (spec, status, states, and spec.consumerRef from
 * the store's consumer), and queue a reconcile when it changed. The change feed does
 * this by itself on the next loop iteration; this is for a caller that wrote to
 * the store and acts through the engine at once (the API's reset clears the claim,
 * then re-enrolls). 0, -ENOENT, -ENOTSUP without the store sink, or a store error.
 */
int ward_policy_resource_refresh(struct ward_policy_engine *e, const char *kind, const char *name,
                                 struct ward_error *err);

/*
 * The one path that changes state: validate against the machine, run the
 * guard, check consistency of the target, commit state + history through the
 * sink, then log, count and emit an event. trigger must be a short token
 * (letters, digits, '_'); it labels the transition metric. A refusal returns
 * -EPERM (not allowed / guard / consistency) with err naming the allowed
 * targets and the shortest path; -ESTALE on a version conflict.
 */
int ward_policy_transition(struct ward_policy_engine *e, const char *kind, const char *name,
                           const char *dimension, const char *to, const char *trigger,
                           const char *reason, const char *actor, struct ward_error *err);
/* The same checks without committing anything. */
int ward_policy_transition_check(struct ward_policy_engine *e, const char *kind, const char *name,
                                 const char *dimension, const char *to, struct ward_error *err);
/*
 * Would a claim by consumer pass the machine's checks? A claim is written by the store
 * (ward_store_claim: consumer and lifecycle -> Claimed in one transaction), so this is how
 * the policy takes part: the same checks as ward_policy_transition_check to "Claimed",
 * run on the resource as the engine knows it with spec.consumerRef = consumer. 0 when it
 * would pass; -EPERM with the guard's or consistency rule's reason; -ENOENT when the engine
 * does not know the resource or kind. Commits nothing.
 */
int ward_policy_claim_check(struct ward_policy_engine *e, const char *kind, const char *name,
                            const char *consumer, struct ward_error *err);
/*
 * For `wardctl host explain`: JSON with the current state, each allowed
 * target and what its guard and the consistency rules answer now, and the
 * recovery that would fire next. Changes nothing. Caller frees; NULL + err.
 */
char *ward_policy_explain(struct ward_policy_engine *e, const char *kind, const char *name,
                          struct ward_error *err);

/*
 * `wardctl policy check FILE`: compile the policy in the same sandbox,
 * validate its machine and run the test cases it declares (M.tests and a
 * FILE.test.lua beside it). Messages go to out as "file:line: message".
 * Returns 0 when everything passed, 1 otherwise.
 */
int ward_policy_check_file(const char *path, FILE *out);
/*
 * The same on text (name is used in messages; no FILE.test.lua is looked
 * for). opts NULL: defaults and the environment. For the fuzz target.
 */
int ward_policy_check_text(const char *text, size_t len, const char *name,
                           const struct ward_policy_options *opts, FILE *out);
/* argv: ward-policy-check FILE...; exit status as above. */
int ward_policy_check_main(int argc, char **argv);

#endif
