-- SPDX-License-Identifier: Apache-2.0
local M = {kind = "Broken"}
M.machine = ward.machine {
    states = {"A", "B"},
    transitions = {A = {"B"}},
    guards = {
        ["B -> A"] = function(r)
            return true
        end,
    },
}
return M
