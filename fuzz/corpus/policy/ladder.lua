-- SPDX-License-Identifier: Apache-2.0
-- A full escalation ladder: retry -> BMC reset -> power cycle -> Error.
local M = {kind = "Ladder"}

local function bmc_reset(r)
    local bmc, err = ward.bmc(r)
    if not bmc then
        return nil, err
    end
    return bmc:reset()
end

local function power_cycle(r)
    local bmc, err = ward.bmc(r)
    if not bmc then
        return nil, err
    end
    bmc:power("ForceOff")
    return bmc:power("On")
end

M.machine = ward.machine {
    states = {"Working", "Ok", "Error"},
    transitions = {Working = {"Ok"}, Error = {"Working"}},
    any = {"Error"},
    stuck = {Working = "10m"},
    reconcile = {
        Working = function(r)
            if r.spec.fixed then
                return ward.transition(r, "Ok", "fixed")
            end
            return nil, "still broken"
        end,
    },
    recovery = {
        Working = {"retry", {"bmc_reset", bmc_reset}, {"power_cycle", power_cycle}, "error"},
    },
}

return M
