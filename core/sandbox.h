/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lua sandbox shared by configuration files and policies: a state with a
 * counting allocator and a memory cap, only the safe libraries, and an
 * instruction budget that pcall cannot swallow.
 */
#ifndef WARD_CORE_SANDBOX_H
#define WARD_CORE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include <ward/plugin.h>

struct ward_sandbox_alloc {
    size_t used;  /* bytes currently allocated by the state */
    size_t limit; /* 0: unlimited */
    size_t peak;
    bool refused; /* an allocation was refused since the last reset */
};

/*
 * Create a state capped at mem_limit bytes (0: no cap) with base, string,
 * table, math, utf8 and os.{time,clock,date}. dofile, loadfile, require,
 * collectgarbage, string.dump and binary chunks are not available.
 * Returns NULL on allocation failure.
 */
lua_State *ward_sandbox_new(size_t mem_limit);
void ward_sandbox_close(lua_State *L);
struct ward_sandbox_alloc *ward_sandbox_alloc_of(lua_State *L);

/*
 * Arm the budget on thread L: after `instructions` VM instructions (each step of a string
 * pattern function counts as one), or once one stretch of running has lasted `slice`
 * seconds (0: no limit), every further instruction raises "instruction budget exhausted"
 * or "time slice exhausted", so a pcall in the script cannot swallow it. The slice bounds
 * what instructions do not measure: C functions whose cost grows with their data
 * (string.rep, table.concat, '..' on long strings) called in a loop. Call
 * ward_sandbox_disarm before reusing the thread. L's status must be LUA_OK: a main thread,
 * or a coroutine not yet resumed (not a suspended or dead one). Returns 0, or -ENOMEM when
 * the state is too near its memory cap to hold the budget (the first arm of each thread
 * makes it), with err (may be NULL) saying so: L is then unarmed, and nothing was raised.
 */
int ward_sandbox_arm(lua_State *L, unsigned long instructions, double slice,
                     struct ward_error *err);
/* Take `steps` from L's budget, as ward_counted_install's charge: the steps of the counted
 * string and table functions (core/counted.h) spend the same budget as instructions. Raises
 * once it is spent; does nothing while L is not armed. */
void ward_sandbox_charge(lua_State *L, unsigned long steps);
/* A new stretch of running on armed L: call before resuming a coroutine that waited. */
void ward_sandbox_new_slice(lua_State *L);
void ward_sandbox_disarm(lua_State *L);
/* True when the budget on L was exhausted since it was armed. */
bool ward_sandbox_exhausted(lua_State *L);

/*
 * lua_pcall with a message handler that adds a traceback; the error text
 * (whatever the error object was: string, table, nil) goes into err.
 * Returns 0 or -EINVAL (script error), -ENOMEM (memory cap), -ETIME (budget).
 */
int ward_sandbox_pcall(lua_State *L, int nargs, int nresults, struct ward_error *err);

/* ward_sandbox_pcall between ward_sandbox_arm and ward_sandbox_disarm; the function and
 * its arguments are popped when there is no room for the budget. */
int ward_sandbox_pcall_armed(lua_State *L, int nargs, int nresults, unsigned long instructions,
                             double slice, struct ward_error *err);

/*
 * Load text (never bytecode) as a chunk named "@name", with the table at
 * stack index env_index as its _ENV. Leaves the function on the stack.
 */
int ward_sandbox_load(lua_State *L, const char *text, size_t len, const char *name, int env_index,
                      struct ward_error *err);

/* Deepest table nesting ward_sandbox_to_json accepts (a cycle ends here too). */
#define WARD_SANDBOX_JSON_DEPTH 32
/* Most values, and bytes of strings and keys, it makes from one Lua value: a table that
 * holds itself twice at each level ({x, x}), or one long string many times, is small in Lua
 * and huge in JSON. */
#define WARD_SANDBOX_JSON_NODES 100000
#define WARD_SANDBOX_JSON_BYTES (16 << 20)

struct cJSON;
/*
 * The Lua value at idx as JSON: a table whose keys are all whole numbers from 1 up (the
 * largest at most 2n + 8 for n keys) becomes an array as long as its largest key, the
 * missing ones null; other tables objects with string keys; a table met again is copied.
 * Functions, userdata, threads, NaN, infinities and numbers above 1.7976931348623149e308 in
 * magnitude (which cJSON prints wrong), integers beyond 2^52, strings or keys with a NUL,
 * cycles, and more than WARD_SANDBOX_JSON_NODES values or WARD_SANDBOX_JSON_BYTES of printed
 * text are refused with err naming `what` ("status", "host spec").
 * Caller frees the result with cJSON_Delete.
 */
struct cJSON *ward_sandbox_to_json(lua_State *L, int idx, const char *what,
                                   struct ward_error *err);
/*
 * Push v as a Lua value: objects and arrays become tables (an object's null members are
 * left out, an array's leave holes), whole numbers within 2^53 integers; NULL, null, and
 * anything nested deeper than WARD_SANDBOX_JSON_DEPTH, nil. Raises on memory: call it
 * under a protected call.
 */
void ward_sandbox_push_json(lua_State *L, const struct cJSON *v);

/* Turn any error object at the top of the stack into a readable string. */
const char *ward_sandbox_error_string(lua_State *L, int index);

#endif
