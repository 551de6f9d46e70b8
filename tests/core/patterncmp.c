/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "patterncmp.h"

/*
 * Lua helpers defined in each state. They run every function on one case and write the
 * results, with their types, or the error as one string. They use no pattern function.
 */
static const char helpers[] =
    "local function dump(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    if type(v) == 'string' then out[i] = string.format('%q', v)\n"
    "    else out[i] = (math.type(v) or type(v)) .. ':' .. tostring(v) end\n"
    "  end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local function try(f, ...)\n"
    "  local r = table.pack(pcall(f, ...))\n"
    "  if not r[1] then return 'error:' .. tostring(r[2]) end\n"
    "  return dump(table.unpack(r, 2, r.n))\n"
    "end\n"
    "local function each(s, p, init)\n"
    "  local it, acc = string.gmatch(s, p, init), {}\n"
    "  for _ = 1, 200 do\n"
    "    local r = table.pack(it())\n"
    "    if r[1] == nil then break end\n"
    "    acc[#acc + 1] = dump(table.unpack(r, 1, r.n))\n"
    "  end\n"
    "  return table.concat(acc, ';')\n"
    "end\n"
    "function all(s, p, init, repl, max)\n"
    "  return table.concat({\n"
    "    'find ' .. try(string.find, s, p, init),\n"
    "    'plain ' .. try(string.find, s, p, init, true),\n"
    "    'match ' .. try(string.match, s, p, init),\n"
    "    'gmatch ' .. try(each, s, p, init),\n"
    "    'gsub ' .. try(string.gsub, s, p, repl, max),\n"
    "    'method ' .. try(function() return s:gsub(p, repl, max) end),\n"
    "  }, '\\n')\n"
    "end\n"
    "reps = {\n"
    "  upper = function(...) local t = {...} for i = 1, #t do t[i] = tostring(t[i]):upper() end\n"
    "                       return table.concat(t, '|') end,\n"
    "  keep = function() return false end,\n"
    "  bad = function() return {} end,\n"
    "  map = {a = 'A', ab = 1.5, x = false},\n"
    "}\n";

lua_State *patterncmp_state(ward_counted_charge_fn charge)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        return NULL;
    }
    luaL_openlibs(L);
    if (charge != NULL) {
        ward_counted_install(L, charge);
    }
    if (luaL_dostring(L, helpers) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}

char *patterncmp_run(lua_State *L, const char *s, size_t slen, const char *p, size_t plen,
                     long init, const char *repl, long max)
{
    lua_settop(L, 0);
    lua_getglobal(L, "all");
    lua_pushlstring(L, s, slen);
    lua_pushlstring(L, p, plen);
    if (init != PATTERNCMP_NONE) {
        lua_pushinteger(L, init);
    } else {
        lua_pushnil(L);
    }
    if (repl[0] == '=') {
        lua_getglobal(L, "reps");
        lua_getfield(L, -1, repl + 1);
        lua_remove(L, -2);
    } else {
        lua_pushstring(L, repl);
    }
    if (max != PATTERNCMP_NONE) {
        lua_pushinteger(L, max);
    } else {
        lua_pushnil(L);
    }
    int rc = lua_pcall(L, 5, 1, 0);
    const char *out = lua_tostring(L, -1);
    char *copy = malloc(strlen(out != NULL ? out : "") + 8);
    if (copy != NULL) {
        strcpy(copy, rc == LUA_OK ? "" : "fatal: ");
        strcat(copy, out != NULL ? out : "");
    }
    lua_settop(L, 0);
    return copy;
}
