-- SPDX-License-Identifier: Apache-2.0
-- wardd configuration. This file is Lua, run once at start and on SIGHUP in a
-- sandbox: string, table, math and utf8 are there; io, os, require and loading
-- files or C modules are not. A misspelt setting is an error, not a default.

-- debug, info, warn or error; wardd --log-level overrides it.
log_level = "info"

-- JSON log lines go to stderr when wardd runs in the foreground; set a file
-- to keep them elsewhere. In the background without a file they go to syslog.
-- log_file = "/var/log/ward/wardd.log"

-- Where the state database lives (SQLite, WAL mode).
-- state_dir = "/var/lib/ward"

-- Where site policies are read from, and where plugins are found.
-- policy_dir = "/etc/ward/policies"
-- plugin_dir = "/usr/lib/ward/plugins"

-- How long in-flight BMC operations may run after SIGTERM before wardd exits.
shutdown_grace = "20s"

-- Transition history in the state database, bounded so months of running do not
-- grow it without end: records per host (newest kept; 0 keeps all) and an age past
-- which records go ("0s" keeps them). Read at start.
-- store = { history_keep = 1000, history_max_age = "90d" }

-- The policy engine. RECONCILE_TIMEOUT, STUCK_STATE_TIMEOUT and MAX_RETRIES in
-- the environment set the same values; what is written here wins.
-- policy = { reconcile_timeout = "30m", stuck_state_timeout = "15m", max_retries = 3,
--            slice_timeout = "10s" }

-- The provisioning queue: a host claimed with a boot image (or given one while
-- Claimed) enters Provisioning only when one of min(workerCount,
-- maxConcurrentOps) slots is free; the others wait in FIFO order. A claim with
-- an image or an image set is refused (429) while maxQueueSize hosts wait.
-- maxConcurrentOps is 1-20, workerCount 1-1000, maxQueueSize 1-100000; a bad
-- value stops wardd at start and refuses a reload (the last good values stay).
-- `wardctl queue drain` sets the effective limit to 0 at runtime.
-- provisioning = { maxQueueSize = 100, workerCount = 4, maxConcurrentOps = 10 }

-- The operator endpoint: /metrics, /healthz, /readyz and /api/v1. Changes
-- through the API need the bearer token in token_file. A listener that is not
-- loopback is refused unless tls_cert, tls_key and token_file are all set.
-- http = { listen = "127.0.0.1:9580", token_file = "/etc/ward/api.token" }

-- Plugins, loaded in this order and stopped in reverse. Each takes its own
-- settings: `wardd --describe-plugin NAME` prints them, generated from the
-- plugin's config map. `optional = true` lets wardd start when the plugin fails
-- to initialise, with a warning instead of an exit.
--
-- plugin "redfish" { maxConcurrentOps = 10, bmcCooldownPeriod = "2s" }
-- plugin "hello" { greeting = "site 7", every = "30s", optional = true }

-- The inventory: each host enters the state database once and is enrolled.
-- Later starts only take a changed `bmc` or `labels` from here, never a claim. A
-- password written here is refused: name a file (passwordFile) or a variable
-- (passwordEnv). `labels` are the host's labels in the store: what
-- `GET /api/v1/hosts?label=rack=r1` and claim selectors match.
--
-- host "node-01" {
--     labels = { rack = "r1" },
--     bmc = {
--         address = "https://10.0.40.11",
--         caBundle = "/etc/ward/bmc-ca.pem",   -- or insecure = true, logged at every start
--         credentials = { username = "ward", passwordFile = "/etc/ward/bmc/node-01" },
--     },
-- }
