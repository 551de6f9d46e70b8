/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The machine model: what a policy declares with ward.machine{...}, turned
 * into plain C data so that validation, the 64-pair table and the shortest
 * path never run Lua. Lua functions (guards, consistency rules, reconciles,
 * recovery steps) stay in the policy's state and are referenced here by
 * registry reference; this module never calls them.
 */
#ifndef WARD_CORE_MACHINE_H
#define WARD_CORE_MACHINE_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include <ward/plugin.h>

struct ward_buf;

/* No Lua function attached (same value as LUA_NOREF). */
#define WARD_MACHINE_NOREF (-2)

/* One recovery step of a ladder. */
enum ward_recovery_kind {
    WARD_RECOVERY_RETRY = 1,  /* run the state's reconcile again */
    WARD_RECOVERY_ERROR,      /* transition to the machine's error state */
    WARD_RECOVERY_TRANSITION, /* transition to `target` */
    WARD_RECOVERY_FUNCTION,   /* run the policy's own step (may yield) */
};

struct ward_recovery_step {
    enum ward_recovery_kind kind;
    int target; /* state index for TRANSITION */
    int ref;    /* registry reference for FUNCTION */
    char *name; /* owned; "retry", "error", "to Available" or the function's name */
};

/* One independent state dimension of a kind. */
struct ward_machine_dim {
    char *name; /* owned */
    size_t nstates;
    char **states;    /* owned, declaration order */
    int initial;      /* state index */
    int error_state;  /* target of the "error" recovery step, or -1 */
    bool *allowed;    /* owned, nstates * nstates: explicit from -> to */
    bool *any_target; /* owned, nstates: any state -> X */
    bool *final;      /* owned, nstates */
    double *stuck;    /* owned, nstates: seconds, 0 = not watched, <0 = default timeout */
    int *guard;       /* owned, nstates * nstates: registry refs or WARD_MACHINE_NOREF */
    int *guard_line;  /* owned, nstates * nstates: where the guard was defined */
    int *reconcile;   /* owned, nstates: registry refs */
    struct ward_recovery_step **recovery; /* owned, nstates arrays */
    size_t *nrecovery;                    /* owned, nstates */
};

struct ward_machine_rule {
    char *name; /* owned */
    int ref;    /* registry reference: function(resource, states) -> ok, reason */
    int line;
};

struct ward_machine {
    char *kind;  /* owned */
    char *where; /* owned: "file:line" of the ward.machine{} declaration */
    size_t ndims;
    struct ward_machine_dim *dims;   /* owned; dims[0] is the primary dimension */
    struct ward_machine_rule *rules; /* owned: consistency rules, sorted by name */
    size_t nrules;
    /* Problems found while reading the declaration that do not stop loading
       but that `policy check` reports (guards for missing transitions, ...). */
    char **warnings; /* owned */
    size_t nwarnings;
};

/*
 * Read the declaration table at idx of L (as returned by ward.machine{}).
 * Function references are taken in L's registry and released by
 * ward_machine_free(m, L). Returns NULL with err "where: reason" on a
 * structural error (unknown state, bad duration, ...).
 */
struct ward_machine *ward_machine_from_lua(lua_State *L, int idx, const char *kind,
                                           const char *where, double default_stuck,
                                           struct ward_error *err);
/* Release m; L (may be NULL when the state is already closed) gets its refs back. */
void ward_machine_free(struct ward_machine *m, lua_State *L);

/* Dimension by name (NULL: the primary one), or NULL. */
const struct ward_machine_dim *ward_machine_dim(const struct ward_machine *m, const char *name);
/* State index by name, or -1. */
int ward_machine_state(const struct ward_machine_dim *d, const char *name);
/* May the machine go from -> to? (explicit transition or an "any" rule; never to itself) */
bool ward_machine_allows(const struct ward_machine_dim *d, int from, int to);
/*
 * Shortest allowed path from -> to (breadth first, ties broken by declaration
 * order). Writes at most max indices (from excluded, to included) into path
 * and returns the length, 0 when from == to, or -ENOENT when unreachable.
 */
int ward_machine_path(const struct ward_machine_dim *d, int from, int to, int *path, size_t max);
/* "Available, Error" style list of the states reachable in one step from `from`. */
void ward_machine_targets(const struct ward_machine_dim *d, int from, struct ward_buf *out);
/*
 * Structural checks for `policy check`: unreachable states, final states with
 * exits, states with no way out that are not final. Appends one line per
 * problem ("where: message\n") to out; returns the number of problems.
 */
int ward_machine_validate(const struct ward_machine *m, struct ward_buf *out);

#endif
