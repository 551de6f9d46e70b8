-- SPDX-License-Identifier: Apache-2.0
-- PhysicalHost: a bare-metal host driven through its BMC.
--
--   None -> Enrolling -> Available -> Claimed -> Provisioning -> Provisioned
--   any state -> Error; Deprovisioning is final.
--
-- spec:   bmc = {address = ..., credentials = ...}, consumerRef, bootISOSource
-- status: redfish = {connected, error}, hardware = {...}, boot = {configured, iso},
--         power = "On" | "Off" (what ward last did or read), error = the reason of the last
--         failed attempt at the state's work or nil, observed = {power = ..., bmc = ...}
--         (written by the engine from what the BMC driver reads: power sync, inventory, power
--         operations; bmc is "ok" or why the power sync cannot read the BMC),
--         powerMismatch = {expected, observed} while the power differs from what the state
--         expects
local M = {}

M.kind = "PhysicalHost"

local CLAIMED = {Claimed = true, Provisioning = true, Provisioned = true}
local UNCLAIMED = {None = true, Enrolling = true, Available = true}
local NEEDS_ISO = {Provisioning = true, Provisioned = true}

local function set(v)
    return v ~= nil and v ~= "" and v ~= false
end

local function has_connection_info(h)
    return type(h.spec.bmc) == "table" and set(h.spec.bmc.address)
end

local function redfish_of(h)
    return type(h.status.redfish) == "table" and h.status.redfish or {}
end

local function connected(h)
    return redfish_of(h).connected == true
end

-- guards, named after the transition they guard --------------------------------------

local function enrolling_to_available(h)
    if not connected(h) then
        return false, "no successful Redfish connection yet"
    end
    if type(h.status.hardware) ~= "table" or not set(h.status.hardware.serial) then
        return false, "hardware details have not been retrieved"
    end
    return true
end

-- Also asked for every claim (POST /api/v1/claims), before the store gives the host away:
-- a host this refuses is skipped and the claim goes to the next candidate.
local function available_to_claimed(h)
    if not set(h.spec.consumerRef) then
        return false, "consumerRef is not set"
    end
    if set(h.status.error) then
        return false, "the host is in error: " .. tostring(h.status.error)
    end
    -- an outage the power sync reported (check_bmc): the host could not be provisioned
    local redfish = redfish_of(h)
    if redfish.connected == false then
        return false, "its BMC is unreachable: " .. tostring(redfish.error)
    end
    return true
end

local function claimed_to_provisioning(h)
    if not set(h.spec.consumerRef) then
        return false, "consumerRef is not set"
    end
    if not set(h.spec.bootISOSource) then
        return false, "bootISOSource is not set"
    end
    -- Provisioning skips a configuration it recorded itself (a retry); one left from an
    -- earlier provisioning must not reach it (the Claimed reconcile marks it stale)
    if type(h.status.boot) == "table" and h.status.boot.configured == true then
        return false, "a boot configuration from an earlier provisioning is still recorded"
    end
    return true
end

local function provisioning_to_provisioned(h)
    if type(h.status.boot) ~= "table" or h.status.boot.configured ~= true then
        return false, "boot configuration is not done"
    end
    if h.status.power ~= "On" then
        return false, "power is not on"
    end
    return true
end

local function error_to_enrolling(h)
    if not has_connection_info(h) then
        return false, "no Redfish connection info (spec.bmc.address)"
    end
    return true
end

local function error_to_available(h)
    if set(h.spec.consumerRef) then
        return false, "the host is claimed (consumerRef is set)"
    end
    if not connected(h) then
        return false, "the Redfish connection is not healthy"
    end
    return true
end

-- consistency rules: what must hold in the state a host is going to -------------------

local function consumer_ref(h, state)
    if CLAIMED[state] and not set(h.spec.consumerRef) then
        return false, state .. " requires consumerRef"
    end
    if UNCLAIMED[state] and set(h.spec.consumerRef) then
        return false, state .. " must not have consumerRef (release the claim first)"
    end
    return true
end

local function boot_iso(h, state)
    if NEEDS_ISO[state] and not set(h.spec.bootISOSource) then
        return false, state .. " requires bootISOSource"
    end
    return true
end

-- failures -----------------------------------------------------------------------------

-- A failed attempt at a state's work (enroll, provision, release): its reason goes to
-- status.error and the run fails, so the engine retries it with backoff. A state that stays
-- stuck climbs its recovery ladder and, after MAX_RETRIES attempts, goes to Error; the
-- engine names the last failure in that transition's reason.
local function failed(h, reason)
    h.status.error = reason
    return nil, reason
end

local function succeeded(h)
    h.status.error = nil
end

-- power sync ---------------------------------------------------------------------------

-- The power a host's state expects: On once Provisioned; in Available or Claimed what ward
-- left it at (Off after a release; what the inventory read right after enrollment). Other
-- states are work in progress and expect nothing.
local function expected_power(h)
    if h.state == "Provisioned" then
        return "On"
    end
    if h.state == "Available" or h.state == "Claimed" then
        return h.status.power
    end
    return nil
end

-- The driver's power sync reports what it reads as status.observed.power and the engine
-- runs the reconcile. A settled state that differs from what the state expects is reported
-- (status.powerMismatch and a Warning event "PowerMismatch", which the event set aggregates)
-- but NOT corrected: a Provisioned host belongs to its consumer, who may have turned it off
-- on purpose, and powering off an Available host could end work somebody started by hand.
-- An operator (or a site policy built on this one) decides.
local function check_power(h)
    local seen = type(h.status.observed) == "table" and h.status.observed.power or nil
    local want = expected_power(h)
    local settled = {On = true, Off = true}
    if settled[seen] and settled[want] and seen ~= want then
        h.status.powerMismatch = {expected = want, observed = seen}
        ward.event(h, "Warning", "PowerMismatch",
                   string.format("%s host is powered %s, its state expects %s", h.state, seen,
                                 want))
    else
        h.status.powerMismatch = nil
    end
end

-- The power sync also says whether the BMC can be read at all (status.observed.bmc: "ok",
-- or, when several syncs in a row failed, why and since when: an expired certificate, a
-- BMC that stopped answering). A host at rest (Available, Claimed, Provisioned) hears of its
-- BMC from nothing else, so the policy notes it in status.redfish (connected, error) and
-- says it once with an event: a Warning "BMCUnreachable" when the BMC stops answering, a
-- Normal "BMCReachable" when it answers again. status.redfish.seen is the observation
-- already taken into account (a connection the policy made itself counts as newer news);
-- warned says a BMCUnreachable stands. Nothing else changes: the host keeps its state and
-- its claim, and work that needs the BMC fails and is retried as always.
local function observed_bmc(h)
    local seen = type(h.status.observed) == "table" and h.status.observed.bmc or nil
    return type(seen) == "string" and seen or nil
end

local function note_unreachable(h, was, why, seen)
    if not was.warned then
        ward.event(h, "Warning", "BMCUnreachable", why)
    end
    h.status.redfish = {connected = false, error = why, seen = seen, warned = true}
end

local function check_bmc(h)
    local was = redfish_of(h)
    local seen = observed_bmc(h)
    if has_connection_info(h) then
        -- the driver syncs the hosts it knows: after a restart, this is how an idle one is
        local bmc, err = ward.bmc(h)
        if not bmc then
            local why = "cannot use the BMC: " .. tostring(err)
            if was.error ~= why then
                note_unreachable(h, was, why, seen)
            end
            return
        end
    end
    -- nothing new, and the status says what the observation says
    if seen == nil or (seen == was.seen and (seen == "ok") == (was.connected == true)) then
        return
    end
    if seen == "ok" then
        if was.warned then
            ward.event(h, "Normal", "BMCReachable", "the power sync reads the BMC again")
        end
        h.status.redfish = {connected = true, seen = seen}
    else
        note_unreachable(h, was, seen, seen)
    end
end

-- BMC work -----------------------------------------------------------------------------

local function open_bmc(h)
    local bmc, err = ward.bmc(h)
    if not bmc then
        return nil, err
    end
    local was = redfish_of(h)
    local ok, cerr = bmc:connect()
    if not ok then
        h.status.redfish = {connected = false, error = cerr, seen = observed_bmc(h),
                            warned = was.warned}
        return nil, cerr
    end
    -- a connect may not ask the BMC (its session is open): a standing warning ends only when
    -- the power sync or another operation reads the BMC (check_bmc)
    h.status.redfish = {connected = true, seen = observed_bmc(h), warned = was.warned}
    return bmc
end

local function released(h)
    if not set(h.spec.consumerRef) then
        return ward.transition(h, "Available", "released", "consumerRef cleared")
    end
end

-- The release flow, also the work of Deprovisioning: power off, eject the media, clear the
-- one-time boot. Any step that fails fails the run, which is retried with backoff.
local function clean_host(h, bmc)
    local ok, err = bmc:power("ForceOff")
    if not ok then
        return nil, "power off: " .. tostring(err)
    end
    h.status.power = "Off"
    ok, err = bmc:eject_media()
    if not ok then
        return nil, "eject media: " .. tostring(err)
    end
    ok, err = bmc:clear_boot_override()
    if not ok then
        return nil, "clear boot override: " .. tostring(err)
    end
    h.status.boot = nil
    return true
end

-- An unclaimed host going back to Available from Error or Enrolling: a provisioning that set
-- up (or began to set up) boot media left status.boot, and the old consumer's image, boot
-- override and power must not reach the next consumer. A host never provisioned is left as
-- it is.
local function clean_if_provisioned(h, bmc)
    if h.status.boot == nil or set(h.spec.consumerRef) then
        return true
    end
    return clean_host(h, bmc)
end

-- A configuration recorded in an earlier stay in Provisioning does not count for the next
-- one: paths back to Available that do not clean (an operator's transitions through Error)
-- keep status.boot, and the next consumer must get its image installed, not the previous
-- consumer's running host. What remains says the host may still hold boot media, for
-- clean_if_provisioned.
local function forget_configuration(h)
    local boot = h.status.boot
    if type(boot) == "table" and boot.configured then
        h.status.boot = {configured = false, iso = boot.iso}
    end
end

-- reconciles: the work of each state ---------------------------------------------------

local function reconcile_none(h)
    if not has_connection_info(h) then
        return -- nothing to do until spec.bmc.address is set (a spec change requeues)
    end
    return ward.transition(h, "Enrolling", "registered")
end

local function reconcile_enrolling(h)
    local bmc, err = open_bmc(h)
    if not bmc then
        return failed(h, "connect: " .. tostring(err))
    end
    local ok, cerr = clean_if_provisioned(h, bmc)
    if not ok then
        bmc:close()
        return failed(h, cerr)
    end
    local inv, ierr = bmc:inventory()
    bmc:close()
    if not inv then
        return failed(h, "inventory: " .. tostring(ierr))
    end
    h.status.hardware = inv
    h.status.power = inv.power_state
    succeeded(h)
    return ward.transition(h, "Available", "enrolled")
end

local function reconcile_available(h)
    forget_configuration(h)
    check_power(h)
    check_bmc(h)
    if set(h.spec.consumerRef) then
        return ward.transition(h, "Claimed", "claimed")
    end
end

local function reconcile_claimed(h)
    forget_configuration(h)
    check_power(h)
    check_bmc(h)
    if not set(h.spec.consumerRef) then
        return released(h)
    end
    if set(h.spec.bootISOSource) then
        return ward.transition(h, "Provisioning", "provision")
    end
end

-- The boot configuration: eject what is inserted, insert the image, boot once from the CD,
-- restart. Done once per stay in Provisioning: a run retried after it succeeded (the power
-- read after it failed, or the host was not on yet) does not restart the host again.
-- (Provisioning is entered from Claimed only, and Available and Claimed forget a recorded
-- configuration: see forget_configuration.)
local function configure_boot(h, bmc)
    local boot = h.status.boot
    if type(boot) == "table" and boot.configured and boot.iso == h.spec.bootISOSource then
        return true
    end
    local steps = {
        function() return bmc:eject_media() end,
        function() return bmc:insert_media(h.spec.bootISOSource) end,
        function() return bmc:set_boot_once("Cd") end,
        function() return bmc:power("ForceRestart") end,
    }
    for _, step in ipairs(steps) do
        local ok, err = step()
        if not ok then
            h.status.boot = {configured = false, error = err}
            return nil, err
        end
    end
    h.status.boot = {configured = true, iso = h.spec.bootISOSource}
    return true
end

-- Release after boot media may have been set up (Provisioning or Provisioned): clean the
-- host through its BMC, then hand it back as Available.
local function release_host(h)
    local bmc, err = open_bmc(h)
    if not bmc then
        return failed(h, "connect: " .. tostring(err))
    end
    local ok, cerr = clean_host(h, bmc)
    bmc:close()
    if not ok then
        return failed(h, cerr)
    end
    succeeded(h)
    return released(h)
end

local function reconcile_provisioning(h)
    if not set(h.spec.consumerRef) then
        return release_host(h)
    end
    local bmc, err = open_bmc(h)
    if not bmc then
        return failed(h, "connect: " .. tostring(err))
    end
    local ok, berr = configure_boot(h, bmc)
    if not ok then
        bmc:close()
        return failed(h, "boot configuration: " .. tostring(berr))
    end
    local power, perr = bmc:power_state()
    bmc:close()
    if not power then
        return failed(h, "power state: " .. tostring(perr))
    end
    h.status.power = power
    succeeded(h)
    return ward.transition(h, "Provisioned", "provisioned")
end

local function reconcile_provisioned(h)
    if set(h.spec.consumerRef) then
        check_power(h)
        check_bmc(h)
        return
    end
    return release_host(h)
end

-- Deprovisioning is final: leave the host off and empty, and end the BMC session.
local function reconcile_deprovisioning(h)
    if h.status.deprovisioned then
        return
    end
    local bmc, err = open_bmc(h)
    if not bmc then
        return failed(h, "connect: " .. tostring(err))
    end
    local ok, cerr = clean_host(h, bmc)
    if ok and bmc.logout then
        bmc:logout()
    end
    bmc:close()
    if not ok then
        return failed(h, cerr)
    end
    succeeded(h)
    h.status.deprovisioned = true
end

-- recovery steps -----------------------------------------------------------------------

-- Provisioning stuck: look at the BMC again before doing the work over.
local function recheck_boot(h)
    local bmc, err = open_bmc(h)
    if not bmc then
        return nil, err
    end
    local power, perr = bmc:power_state()
    bmc:close()
    if not power then
        return nil, "power state: " .. tostring(perr)
    end
    h.status.power = power
    if type(h.status.boot) == "table" and h.status.boot.configured and power == "On" then
        return ward.transition(h, "Provisioned", "stuck_recovery", "boot was configured")
    end
    h.status.boot = {configured = false}
    return nil, "boot configuration not in place"
end

-- Error: enroll again when we can reach the BMC, or go back to Available when healthy.
local function recover_error(h)
    if not has_connection_info(h) then
        return nil, "no connection info; waiting for an operator"
    end
    local bmc = open_bmc(h)
    if bmc then
        local ok, cerr = clean_if_provisioned(h, bmc)
        bmc:close()
        if not ok then
            -- enrolling cleans it again, retried with backoff, instead of recovery attempts
            -- that run out and leave the host for an operator after a passing outage
            h.status.error = cerr
        elseif not set(h.spec.consumerRef) then
            h.status.error = nil
            return ward.transition(h, "Available", "stuck_recovery", "healthy and unclaimed")
        end
    end
    return ward.transition(h, "Enrolling", "stuck_recovery", "retrying enrollment")
end

M.machine = ward.machine {
    dimension = "lifecycle",
    initial = "None",
    states = {"None", "Enrolling", "Available", "Claimed", "Provisioning", "Provisioned",
              "Error", "Deprovisioning"},
    transitions = {
        None           = {"Enrolling"},
        Enrolling      = {"Available", "Error"},
        Available      = {"Claimed", "Error", "Deprovisioning"},
        Claimed        = {"Provisioning", "Available", "Error"},
        Provisioning   = {"Provisioned", "Available", "Error"},
        Provisioned    = {"Available", "Deprovisioning"},
        Error          = {"Enrolling", "Available", "Deprovisioning"},
        Deprovisioning = {},
    },
    any = {"Error"},
    final = {"Deprovisioning"},
    error_state = "Error",
    stuck = {Enrolling = true, Provisioning = true, Error = true},
    guards = {
        ["Enrolling -> Available"]      = enrolling_to_available,
        ["Available -> Claimed"]        = available_to_claimed,
        ["Claimed -> Provisioning"]     = claimed_to_provisioning,
        ["Provisioning -> Provisioned"] = provisioning_to_provisioned,
        ["Error -> Enrolling"]          = error_to_enrolling,
        ["Error -> Available"]          = error_to_available,
    },
    consistency = {
        consumer_ref = consumer_ref,
        boot_iso = boot_iso,
    },
    reconcile = {
        None = reconcile_none,
        Enrolling = reconcile_enrolling,
        Available = reconcile_available,
        Claimed = reconcile_claimed,
        Provisioning = reconcile_provisioning,
        Provisioned = reconcile_provisioned,
        Deprovisioning = reconcile_deprovisioning,
    },
    recovery = {
        Enrolling = {"retry"},
        Provisioning = {{"recheck_boot", recheck_boot}, "retry"},
        Error = {{"recover_error", recover_error}},
    },
}

return M
