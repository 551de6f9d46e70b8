/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lua pattern matching that counts its steps.
 *
 * Lua's own string.find, match, gmatch and gsub backtrack in C, where the count hook
 * never fires: a pattern such as "(.-)%.(.-)%.(.-)$" on a long string from a BMC runs
 * for hours while the instruction budget waits for the next VM instruction. These
 * replacements follow the Lua 5.4 manual (section 6.4.1) and give the same results and
 * errors, but hand every step of the matcher to a charge function, which raises once the
 * caller's budget is spent.
 */
#ifndef WARD_CORE_PATTERN_H
#define WARD_CORE_PATTERN_H

#include <lua.h>

/*
 * Called with the thread running the match and the steps taken since the last call
 * (at most WARD_PATTERN_CHARGE_EVERY). Raises a Lua error to stop the match; returns to
 * let it go on.
 */
typedef void (*ward_pattern_charge_fn)(lua_State *L, unsigned long steps);

#define WARD_PATTERN_CHARGE_EVERY 1024

/*
 * Replace find, match, gmatch and gsub in the table at stack index `string_table` (the
 * state's string library, which is also the strings' metatable __index) with the counted
 * ones. charge may not be NULL.
 */
void ward_pattern_install(lua_State *L, int string_table, ward_pattern_charge_fn charge);

#endif
