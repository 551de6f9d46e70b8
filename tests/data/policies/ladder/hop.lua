-- SPDX-License-Identifier: Apache-2.0
-- A recovery that transitions: stuck in Waiting, the ladder moves the resource to Retrying.
local M = {kind = "Hop"}

M.machine = ward.machine {
    states = {"Waiting", "Retrying"},
    transitions = {Waiting = {"Retrying"}, Retrying = {"Waiting"}},
    stuck = {Waiting = "5m"},
    recovery = {Waiting = {{transition = "Retrying"}}},
}

return M
