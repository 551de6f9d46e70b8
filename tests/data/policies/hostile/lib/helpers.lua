-- SPDX-License-Identifier: Apache-2.0
-- A policy module: what `require` may load (Lua text under the policy directory).
local M = {}

M.answer = 42

function M.double(x)
    return 2 * x
end

return M
