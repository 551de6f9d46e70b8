/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file ward/async.h
 * @brief Yield a policy coroutine from a plugin's Lua binding, resume it from the loop.
 *
 * Policies run as Lua coroutines owned by the core. A binding that starts an
 * asynchronous operation (an HTTP request on libcurl's multi interface, a
 * timer) suspends the calling coroutine instead of blocking the loop:
 *
 * @code
 * static int bmc_get(lua_State *L)
 * {
 *     struct req *r = start_request(...);            // no Lua error after this point
 *     struct ward_async *a = ward_async_begin(L, req_cancel, r);
 *     if (a == NULL) {                               // L cannot yield (a guard, the main chunk)
 *         req_abort(r);
 *         return ward_async_refuse(L);               // raises a clear Lua error
 *     }
 *     r->async = a;
 *     return ward_async_yield(L, a);                 // the coroutine sleeps here
 * }
 *
 * static void req_done(struct req *r)                // later, from a libev / libcurl callback
 * {
 *     ward_async_complete(r->async, push_result, r); // pushes results; resumes soon after
 *     req_free(r);
 * }
 * @endcode
 *
 * The results pushed by the @c push callback become the return values of the
 * binding as seen by Lua. By convention a binding returns a value on success
 * and `nil, "readable reason"` on failure.
 *
 * All functions are for the loop's thread only.
 */
#ifndef WARD_ASYNC_H
#define WARD_ASYNC_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief One suspended coroutine waiting on one operation; owned by the core. */
struct ward_async;

/**
 * @brief Register a pending operation for the coroutine running the binding.
 *
 * @param L      the lua_State the binding was called with
 * @param cancel called (at most once) if the coroutine is cancelled before the
 *               operation completes: reconcile deadline, shutdown, engine
 *               teardown. The plugin stops the operation and frees what it
 *               owns; after cancel returns, the handle is gone and
 *               ward_async_complete() must not be called. May be NULL when the
 *               operation can simply be dropped, but then the plugin must still
 *               never complete it (so pass a cancel in practice).
 * @param arg    passed to cancel; owned by the plugin
 * @return the handle, or NULL when L cannot yield here (a guard or a
 *         consistency rule, which must not yield; the main chunk of a policy;
 *         a thread the core does not drive). Nothing is registered then.
 */
struct ward_async *ward_async_begin(lua_State *L, void (*cancel)(void *arg), void *arg);

/**
 * @brief Raise the standard Lua error for a binding that was refused by
 *        ward_async_begin(). Never returns.
 */
int ward_async_refuse(lua_State *L);

/**
 * @brief Suspend the coroutine; use as `return ward_async_yield(L, a);`.
 *
 * Must be the binding's last action; the binding's own stack is discarded
 * and replaced by what the completion pushes. With a = NULL (begin refused)
 * it raises the same error as ward_async_refuse().
 */
int ward_async_yield(lua_State *L, struct ward_async *a);

/**
 * @brief Complete a pending operation from a loop callback.
 *
 * Calls push(L, arg) at once with the suspended coroutine's state; push
 * pushes the results and returns how many it pushed (it must not raise a
 * Lua error and should push little: the state has a memory cap, a failed
 * push is reported to the policy as an error). The coroutine is resumed from
 * the loop shortly after, never from inside this call, so it is safe to call
 * from within a libcurl callback. The handle is invalid after this call;
 * @p arg only needs to live until push returns.
 *
 * Must not be called from inside the binding itself (before
 * ward_async_yield() returned) nor after cancel was called.
 */
void ward_async_complete(struct ward_async *a, int (*push)(lua_State *L, void *arg), void *arg);

/**
 * @brief Complete with the failure convention: the binding returns
 *        `nil, reason`. The reason is copied; it must not contain secrets.
 */
void ward_async_fail(struct ward_async *a, const char *reason);

/**
 * @brief The BMC driver capability, registered by a plugin with
 *        `ward_plugin_register(ctx, WARD_CAP_BMC_DRIVER, "redfish", drv, free_fn)`.
 *
 * Policies reach it through `local bmc, err = ward.bmc(host)`. The handle
 * the driver pushes is a userdata whose methods yield through this header
 * and return a value, or `nil, "readable reason"`:
 *
 * | method                        | result                                            |
 * |-------------------------------|---------------------------------------------------|
 * | `bmc:connect()`               | true (service root discovered, session opened)    |
 * | `bmc:inventory()`             | `{manufacturer, model, serial, uuid, bios_version, power_state,
 * cpu_count, memory_gib, macs = {...}}` | | `bmc:power(action)`           | true once PowerState
 * reflects "On", "ForceOff", "GracefulShutdown" or "ForceRestart" | | `bmc:power_state()` | "On" /
 * "Off" / ...                                | | `bmc:eject_media()`           | true | |
 * `bmc:insert_media(url)`       | true                                              | |
 * `bmc:set_boot_once("Cd")`     | true                                              | |
 * `bmc:clear_boot_override()`   | true                                              | |
 * `bmc:reset()`                 | true (BMC manager reset, the recovery ladder uses it) | |
 * `bmc:get(path)`               | decoded JSON as a table                           | |
 * `bmc:patch(path, t)`, `bmc:post(path, t)`, `bmc:action(target, t)` | decoded reply or true | |
 * `bmc:close()`                 | true                                              |
 */
struct ward_bmc_driver {
    void *self; /**< the driver's own state, owned by the plugin */
    /**
     * Push a BMC handle for @p host onto L and return 1; or push nil and an
     * error string and return 2. @p spec_json is the host's spec as JSON (it
     * has a "bmc" object: address, credentials reference, ...). Called from
     * a running policy coroutine; must not yield itself and must not raise.
     */
    int (*open)(void *self, lua_State *L, const char *host, const char *spec_json);
    /**
     * The host was removed from ward (deleted from the store through the API or
     * `wardctl host rm`): end its BMC session and forget it. May be NULL. Called
     * from the loop, after the host's run (if any) was cancelled.
     */
    void (*forget)(void *self, const char *host);
};

/**
 * @brief Report what a plugin observed about a resource, outside any policy run.
 *
 * For example the power sync: `ward_policy_observe(NULL, "host-1", "power", "Off")`.
 * When the value differs from the last one reported for that field, the engine
 * records it in the resource's status as `status.observed.<field>` (written
 * through the store with a compare-and-swap on the version, like every write of
 * the engine) and queues the resource's reconcile, so the policy decides what a
 * difference means in the state the resource is in. The same value again changes
 * nothing.
 *
 * @param kind  the resource kind, or NULL for any kind with that name
 * @param name  the resource's name
 * @param field 1-64 bytes
 * @param value at most 256 bytes; not a secret (it is logged and stored)
 * @return 1 when recorded, 0 when unchanged, -ENOENT when no engine has the
 *         resource, -EINVAL on bad arguments. Loop thread only.
 */
int ward_policy_observe(const char *kind, const char *name, const char *field, const char *value);

#ifdef __cplusplus
}
#endif

#endif /* WARD_ASYNC_H */
