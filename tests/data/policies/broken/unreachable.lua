-- SPDX-License-Identifier: Apache-2.0
local M = {kind = "Broken"}
M.machine = ward.machine {
    states = {"A", "B", "Island"},
    transitions = {A = {"B"}, B = {"A"}},
}
return M
