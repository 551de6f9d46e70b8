-- SPDX-License-Identifier: Apache-2.0
-- A policy that attacks the agent in every way issue 3 lists. Each resource
-- names its attack in spec.attack; the engine must contain each one with a
-- clear error and keep serving the others.
local M = {kind = "Hostile"}

local attacks = {}

function attacks.loop()
    while true do end
end

function attacks.pcall_loop()
    -- pcall must not swallow the budget
    while true do
        pcall(function() while true do end end)
    end
end

function attacks.pattern()
    -- Lua's matcher backtracks in C, where the count hook never fires: about 1.7e8 steps,
    -- a second or so uncounted, against a budget of 5e6
    return string.find(string.rep("a", 1000), ".-.-b")
end

function attacks.pcall_pattern()
    pcall(string.gsub, string.rep("a", 1000), ".-.-b", "")
end

function attacks.move()
    -- one C call moving 3e8 nils: seconds uncounted, far past a 5e6 budget counted
    table.move({}, 1, 3e8, 2)
end

function attacks.amplify()
    -- each plain find scans a mebibyte for a few instructions: the instruction budget alone
    -- would let this hold the loop for half a minute
    local s = string.rep("x", 1 << 20)
    while true do
        s:find("y", 1, true)
    end
end

function attacks.waits()
    -- 0.8 s in all, nearly all of it waiting: only running counts against the time slice.
    -- The sums run enough instructions after each wait for the hook to look at the clock.
    local n = 0
    for _ = 1, 4 do
        ward.sleep(0.2)
        for i = 1, 5000 do
            n = n + i
        end
    end
end

function attacks.growth()
    local t = {}
    local i = 0
    while true do
        i = i + 1
        t[i] = {i, tostring(i)}
    end
end

function attacks.rep()
    return string.rep("x", 1 << 28)
end

function attacks.doubling()
    local s = "x"
    while true do
        s = s .. s
    end
end

function attacks.recursion()
    local function f(n)
        return 1 + f(n + 1)
    end
    return f(1)
end

function attacks.cstack()
    -- recursion through C (gsub calling back into Lua) hits the C stack limit
    local function f()
        return (string.gsub("x", "x", f))
    end
    return f()
end

function attacks.execute()
    return os.execute("touch /tmp/ward-pwned")
end

function attacks.exit()
    return os.exit(1)
end

function attacks.getenv()
    return os.getenv("HOME")
end

function attacks.io()
    return io.open("/etc/passwd")
end

function attacks.bytecode()
    local f, err = load("\27LuaT\0\25\147\13\10\26\10\4\8\8", "evil", "b")
    if not f then
        error(err)
    end
    return f()
end

function attacks.module()
    -- not an attack: a module from the policy directory loads, once
    local h = require "lib.helpers"
    if h.double(h.answer) ~= 84 or require "lib.helpers" ~= h then
        error("the policy module did not load as expected")
    end
end

function attacks.ffi()
    return require "ffi"
end

function attacks.cmodule()
    return require "socket.core"
end

function attacks.escape()
    return require "..secret"
end

function attacks.debug()
    return debug.getinfo(1)
end

function attacks.coroutine()
    return coroutine.yield()
end

function attacks.finalizer()
    setmetatable({}, {__gc = function() while true do end end})
end

function attacks.tostring_loop()
    error(setmetatable({}, {__tostring = function() while true do end end}))
end

function attacks.table_error()
    error({code = 42})
end

function attacks.nil_error()
    error(nil)
end

function attacks.guarded(r)
    local ok, err = ward.transition(r, "Guarded", "guarded")
    if not ok then
        error(err, 0)
    end
end

M.machine = ward.machine {
    states = {"Start", "Done", "Guarded"},
    transitions = {Start = {"Done", "Guarded"}},
    guards = {
        ["Start -> Guarded"] = function(r)
            local g = r.spec.guard
            if g == "error" then
                error("guard exploded")
            elseif g == "yield" then
                ward.sleep(0)
            elseif g == "table" then
                error({})
            elseif g == "number" then
                return 42
            elseif g == "loop" then
                while true do end
            elseif g == "transition" then
                ward.transition(r, "Done", "nested")
            end
            return true
        end,
    },
    reconcile = {
        Start = function(r)
            local attack = attacks[r.spec.attack]
            if attack then
                attack(r)
            end
            return ward.transition(r, "Done", "ok")
        end,
    },
}

return M
