/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Library functions whose work the instruction budget cannot see, counted.
 *
 * The count hook fires between VM instructions, never inside a C function. Two library
 * calls can run for hours as one instruction:
 *   - string.find, match, gmatch and gsub backtrack in C: "(.-)%.(.-)%.(.-)$" on a long
 *     string from a BMC takes time that grows with the cube of its length;
 *   - table.move({}, 1, 1e12, 2) copies a trillion nils.
 * These replacements follow the Lua 5.4 manual (sections 6.4.1 and 6.6), give Lua's
 * results and errors, and hand every step (a character a pattern item tries, an element
 * moved) to a charge function, which raises once the caller's budget is spent.
 */
#ifndef WARD_CORE_COUNTED_H
#define WARD_CORE_COUNTED_H

#include <lua.h>

/*
 * Called with the thread doing the work and the steps taken since the last call: about
 * WARD_COUNTED_CHARGE_EVERY for a pattern (more after a long set or back reference), the
 * whole length for a table.move before it starts, what is left when a call ends or fails.
 * Raises a Lua error to stop the work; returns to let it go on. It must leave the stack as
 * it found it (a luaL_Buffer may be in use).
 */
typedef void (*ward_counted_charge_fn)(lua_State *L, unsigned long steps);

#define WARD_COUNTED_CHARGE_EVERY 1024

/*
 * Replace find, match, gmatch and gsub in the state's string library (which is also the
 * strings' metatable __index) and move in its table library with the counted ones. A
 * library that is not loaded is left alone. charge may not be NULL.
 */
void ward_counted_install(lua_State *L, ward_counted_charge_fn charge);

#endif
