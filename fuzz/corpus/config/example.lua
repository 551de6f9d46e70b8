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

-- Plugins, loaded in this order and stopped in reverse. Each takes its own
-- settings (see `doc/plugins.md`); `optional = true` lets wardd start when the
-- plugin fails to initialise, with a warning instead of an exit.
--
-- plugin "hello" { greeting = "site 7", every = "30s", optional = true }
