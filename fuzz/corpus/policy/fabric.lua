-- SPDX-License-Identifier: Apache-2.0
-- Three independent dimensions and a rule across them, like the Fabric kind.
local M = {kind = "Fabric"}

M.machine = ward.machine {
    primary = "configuration",
    dimensions = {
        configuration = {
            states = {"Pending", "Applied", "Failed"},
            transitions = {Pending = {"Applied", "Failed"}, Applied = {"Pending"},
                           Failed = {"Pending"}},
        },
        connection = {
            states = {"Down", "Up"},
            transitions = {Down = {"Up"}, Up = {"Down"}},
        },
        sync = {
            states = {"Unknown", "InSync", "OutOfSync"},
            transitions = {Unknown = {"InSync", "OutOfSync"}, InSync = {"OutOfSync"},
                           OutOfSync = {"InSync"}},
        },
    },
    consistency = {
        -- impossible combination: in sync with a link that is down
        sync_needs_link = function(r, state, states)
            if states.sync == "InSync" and states.connection ~= "Up" then
                return false, "InSync is impossible while the connection is Down"
            end
            return true
        end,
    },
}

return M
