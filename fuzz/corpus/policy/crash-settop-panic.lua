-- SPDX-License-Identifier: Apache-2.0
-- Found by libFuzzer: a recovery rung that is a table with a misspelt key unbalanced the Lua stack.
local M = {kind = "Hop"}

M.machine = ward.machine {
    states = {"Waiting", "Retrying"},
    transitions = {Waiting = {"Retrying"}, Retrying = {"Waiting"}},
    stuck = {Waiting = "5m"},
    recovery = {Waiting = {{transgtion = "Retrying"}}},
}

return M
