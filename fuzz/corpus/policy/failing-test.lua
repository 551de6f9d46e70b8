-- SPDX-License-Identifier: Apache-2.0
local M = {kind = "Broken"}
M.machine = ward.machine {
    states = {"A", "B"},
    transitions = {A = {"B"}},
    guards = {["A -> B"] = function(r) return r.spec.ok == true, "spec.ok is not set" end},
}
M.tests = {
    ward.test {name = "B needs ok", resource = {state = "A", spec = {}}, to = "B",
               allowed = true},
}
return M
