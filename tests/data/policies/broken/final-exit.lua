-- SPDX-License-Identifier: Apache-2.0
local M = {kind = "Broken"}
M.machine = ward.machine {
    states = {"A", "Done"},
    transitions = {A = {"Done"}, Done = {"A"}},
    final = {"Done"},
}
return M
