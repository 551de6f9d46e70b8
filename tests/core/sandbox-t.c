/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arming the budget at the memory cap. A thread's first arm allocates its budget; at the cap
 * that allocation is refused, and the refusal must come back as -ENOMEM: raised outside a
 * protected call it would be a Lua panic, which aborts wardd.
 */
#include "autoconf.h"

#include <errno.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../tap/basic.h"
#include "sandbox.h"

#define CAP (1u << 20)

/* A new userdata of the size asked, holding the previous one (the chain grows without any
 * other allocation, such as a table's array would need). */
static int grab(lua_State *L)
{
    lua_newuserdatauv(L, (size_t)lua_tointeger(L, 2), 1);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

/* Allocate from L until not even an empty userdata fits; leaves the chain on top. */
static void fill(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT);
    lua_pushnil(L);
    int head = lua_gettop(L);
    for (size_t size = 1u << 16;; size /= 2) {
        for (;;) {
            lua_pushcfunction(L, grab);
            lua_pushvalue(L, head);
            lua_pushinteger(L, (lua_Integer)size);
            if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                lua_pop(L, 1);
                break;
            }
            lua_replace(L, head);
        }
        if (size == 0) {
            break;
        }
    }
}

static int nothing(lua_State *L)
{
    (void)L;
    return 0;
}

static int spin(lua_State *L)
{
    return luaL_dostring(L, "while true do end") == LUA_OK ? 0 : lua_error(L);
}

int main(void)
{
    plan(9);

    lua_State *L = ward_sandbox_new(CAP);
    if (L == NULL) {
        bail("cannot create a sandbox");
    }
    lua_State *co = lua_newthread(L); /* anchored on L's stack, at 1 */
    /* a first call on the thread makes the CallInfo a protected call needs, so that at the
       cap what is refused is the budget itself */
    lua_pushcfunction(co, nothing);
    if (lua_pcall(co, 0, 0, 0) != LUA_OK) {
        bail("a call on a new thread failed");
    }
    fill(L);
    is_int(-ENOMEM, ward_sandbox_arm(co, 1000, 0, NULL),
           "a new thread's first arm at the cap is refused, not raised");
    is_int(-ENOMEM, ward_sandbox_arm(L, 1000, 0, NULL), "so is the main thread's");

    int top = lua_gettop(L);
    lua_pushcfunction(L, spin);
    lua_pushinteger(L, 1);
    struct ward_error err = {0};
    is_int(-ENOMEM, ward_sandbox_pcall_armed(L, 1, 0, 1000, 0, &err),
           "a protected call that cannot be armed fails");
    ok(strstr(err.text, "no room for a budget") != NULL, "and says why: %s", err.text);
    is_int(top, lua_gettop(L), "and pops its function and argument");

    lua_settop(L, 1); /* drop the chain, keep the thread */
    lua_gc(L, LUA_GCCOLLECT);
    is_int(0, ward_sandbox_arm(co, 1000, 0, NULL), "with room again the thread is armed");
    lua_pushcfunction(co, spin);
    int st = lua_pcall(co, 0, 0, 0);
    const char *msg = lua_tostring(co, -1);
    ok(st != LUA_OK && msg != NULL && strstr(msg, "instruction budget exhausted") != NULL,
       "and its budget stops a loop: %s", msg != NULL ? msg : "(no message)");
    lua_settop(co, 0);
    ward_sandbox_disarm(co);

    /* a thread armed once keeps its budget: arming it again needs no memory */
    is_int(0, ward_sandbox_arm(L, 1000, 0, NULL), "the main thread, armed with room");
    ward_sandbox_disarm(L);
    fill(L);
    is_int(0, ward_sandbox_arm(L, 1000, 0, NULL), "is armed again at the cap");
    ward_sandbox_disarm(L);

    ward_sandbox_close(L);
    return 0;
}
