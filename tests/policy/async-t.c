/* SPDX-License-Identifier: Apache-2.0 */
/* ward/async.h outside the engine's coroutines: refused cleanly, never a crash. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include <ward/async.h>

#include "../tap/basic.h"
#include "sandbox.h"

static struct ward_async *seen;
static int called;

static int binding(lua_State *L)
{
    called++;
    seen = ward_async_begin(L, NULL, NULL);
    return ward_async_yield(L, seen);
}

int main(void)
{
    plan(6);
    lua_State *L = ward_sandbox_new(0);
    ok(ward_async_begin(L, NULL, NULL) == NULL, "the main thread of a foreign state cannot wait");

    lua_pushcfunction(L, binding);
    struct ward_error err = {0};
    int rc = ward_sandbox_pcall(L, 0, 0, &err);
    ok(rc != 0 && strstr(err.text, "cannot yield here") != NULL,
       "a binding refused by ward_async_begin raises a clear error: %.60s", err.text);
    ok(seen == NULL && called == 1, "and got no handle");

    /* a coroutine the engine does not drive */
    lua_State *co = lua_newthread(L);
    lua_pushcfunction(co, binding);
    int nres = 0;
    seen = NULL;
    rc = lua_resume(co, L, 0, &nres);
    is_int(LUA_ERRRUN, rc, "a foreign coroutine is refused too");
    ok(seen == NULL, "without a handle");
    contains(lua_tostring(co, -1), "cannot yield here", "with the same message");
    ward_sandbox_close(L);
    return 0;
}
