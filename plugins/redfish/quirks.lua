-- SPDX-License-Identifier: Apache-2.0
-- Vendor quirks of the Redfish plugin, as policy: Lua hooks that adjust a request before it
-- is sent or an answer before ward uses it.
--
-- Each entry has a name, an optional `match` of Lua patterns on the BMC's identity
-- (manufacturer and model of the ComputerSystem, firmware of its Manager: discovery reads
-- the Manager only when some entry matches on firmware), and a `request`
-- and/or `response` hook. Hooks change the tables they are given and return true when they
-- did:
--   req  = {op, method, path, body, current, system}
--          current: the document the operation last read from the same path
--          system:  the ComputerSystem's path
--   resp = {status, body, retry_after}
--          retry_after (seconds): send the same request again later (a refusal whose
--          outcome is known)
-- req.body, req.current and resp.body are made into tables only when a hook first reads
-- them, so a hook that looks at the method, path, op or status first costs little on the
-- answers it leaves alone. A hook that fails is logged and ignored; logins never reach a
-- hook. The inventory that directly follows a discovery uses the system's answer discovery
-- read instead of reading it again; its hooks see that answer with op "inventory". Sites add their own
-- entries here; the plugin's `quirks` setting names the file.
local M = {}

local function ends_with(s, suffix)
    return type(s) == "string" and s:sub(-#suffix) == suffix
end

local function error_text(body)
    local e = type(body) == "table" and body.error
    if type(e) ~= "table" then
        return ""
    end
    local parts = {tostring(e.message or "")}
    for _, m in ipairs(e["@Message.ExtendedInfo"] or {}) do
        if type(m) == "table" then
            parts[#parts + 1] = tostring(m.Message or m.MessageId or "")
        end
    end
    return table.concat(parts, " "):lower()
end

M.quirks = {
    {
        -- An empty CD slot reported as Inserted = true, ConnectedVia = "NotConnected" and no
        -- Image. The slot is free: ejecting it would fail or be verified as still inserted.
        name = "cd-notconnected-is-free",
        response = function(req, resp)
            local media_op = req.op == "insert_media" or req.op == "eject_media"
            if req.method ~= "GET" or not (media_op or req.path:find("/VirtualMedia/", 1, true)) then
                return false
            end
            local d = resp.body
            if type(d) == "table" and d.Inserted == true
                and d.ConnectedVia == "NotConnected" and (d.Image == nil or d.Image == "") then
                d.Inserted = false
                return true
            end
        end,
    },
    {
        -- Firmware without BootSourceOverrideMode refuses the property in a PATCH. Drop it
        -- when the system, as just read, has no such property.
        name = "no-boot-override-mode",
        request = function(req)
            local boot = type(req.body) == "table" and req.body.Boot
            local now = type(req.current) == "table" and req.current.Boot
            if req.method == "PATCH" and type(boot) == "table"
                and boot.BootSourceOverrideMode ~= nil
                and type(now) == "table" and now.BootSourceOverrideMode == nil then
                boot.BootSourceOverrideMode = nil
                return true
            end
        end,
    },
    {
        -- Newer firmware moved VirtualMedia from the Manager to the ComputerSystem; the
        -- Manager no longer links it. Point the Manager's answer at the system's collection.
        name = "virtual-media-moved-to-systems",
        response = function(req, resp)
            if req.method ~= "GET" or (req.op ~= "insert_media" and req.op ~= "eject_media") then
                return false
            end
            local d = resp.body
            if type(d) == "table" and d.VirtualMedia == nil
                and (d.ManagerType ~= nil or req.path:find("/Managers/", 1, true))
                and req.system ~= "" then
                d.VirtualMedia = {["@odata.id"] = req.system .. "/VirtualMedia"}
                return true
            end
        end,
    },
    {
        -- EjectMedia is answered with an error when nothing is inserted. The drive is empty,
        -- which is what was asked for.
        name = "eject-empty-refused",
        match = {manufacturer = "^Dell"},
        response = function(req, resp)
            if req.method == "POST" and ends_with(req.path, "VirtualMedia.EjectMedia")
                and resp.status >= 400 and resp.status < 500 then
                local why = error_text(resp.body)
                if why:find("nothing to eject", 1, true) or why:find("not connected", 1, true)
                    or why:find("no virtual media", 1, true) or why:find("not inserted", 1, true) then
                    resp.status = 204
                    resp.body = nil
                    return true
                end
            end
        end,
    },
    {
        -- Power-on is refused with 409 for a while after a power-off. The refusal is a known
        -- outcome: ask again a little later.
        name = "poweron-409-after-off",
        match = {manufacturer = "^Supermicro"},
        response = function(req, resp)
            if req.method == "POST" and ends_with(req.path, "ComputerSystem.Reset")
                and resp.status == 409 then
                resp.retry_after = 1
                return true
            end
        end,
    },
}

return M
