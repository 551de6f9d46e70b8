/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile policies are contained with a clear error while the engine keeps serving. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap/basic.h"
#include "fixture.h"
#include "policy.h"
#include "util.h"

static struct ward_policy_engine *e;
static struct ev_loop *loop;
static struct fixture_events events;
static struct ward_error err;

static const char *state(const char *name)
{
    const char *s = ward_policy_resource_state(e, "Hostile", name, NULL);
    return s != NULL ? s : "(none)";
}

/* Run one attack; it must fail with `expect` and leave the resource in Start. */
static void attack(const char *name, const char *expect)
{
    char spec[128];
    snprintf(spec, sizeof(spec), "{\"attack\":\"%s\"}", name);
    if (ward_policy_resource_put(e, "Hostile", name, spec, &err) != 0) {
        bail("put: %s", err.text);
    }
    fixture_settle(loop);
    char line[256];
    snprintf(line, sizeof(line), "reconcile_failed Hostile/%s: ", name);
    const char *at = strstr(events.text.data != NULL ? events.text.data : "", line);
    char got[512] = "(no failure event)";
    if (at != NULL) {
        snprintf(got, sizeof(got), "%s", at + strlen(line));
        got[strcspn(got, "\n")] = '\0';
    }
    ok(strcmp(state(name), "Start") == 0 && strstr(got, expect) != NULL, "%s is contained: %s",
       name, got);
}

static void guard(const char *name, const char *mode, const char *expect)
{
    char spec[128];
    snprintf(spec, sizeof(spec), "{\"guard\":\"%s\"}", mode);
    ward_policy_resource_put(e, "Hostile", name, spec, &err);
    memset(&err, 0, sizeof(err));
    int rc = ward_policy_transition(e, "Hostile", name, NULL, "Guarded", "api", NULL, "t", &err);
    ok(rc == -EPERM && strstr(err.text, expect) != NULL, "a guard that %s refuses: %s", mode,
       err.text);
}

/* err.text without its traceback, so each TAP line stays one line */
static const char *first_line(void)
{
    err.text[strcspn(err.text, "\n")] = '\0';
    return err.text;
}

static void serving(const char *name)
{
    ward_policy_resource_put(e, "Hostile", name, "{}", &err);
    fixture_settle(loop);
    is_string("Done", state(name), "the engine still serves a well-behaved resource (%s)", name);
}

int main(void)
{
    plan(48);
    loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_policy_options o;
    fixture_options(&o, NULL, &events);
    e = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    if (e == NULL ||
        ward_policy_engine_load(e, WARD_SRCDIR "/tests/data/policies/hostile", &err) != 0) {
        bail("load: %s", err.text);
    }
    attack("loop", "stopped: ");
    attack("pcall_loop", "instruction budget exhausted");
    attack("pattern", "stopped: ");
    attack("pcall_pattern", "instruction budget exhausted");
    attack("move", "instruction budget exhausted");
    attack("growth", "memory limit exceeded");
    attack("rep", "memory limit exceeded");
    attack("doubling", "memory limit exceeded");
    serving("good1");
    attack("recursion", "memory limit exceeded"); /* the stack grows into the cap */
    attack("cstack", "stack overflow");
    attack("execute", "attempt to call a nil value (field 'execute')");
    attack("exit", "attempt to call a nil value (field 'exit')");
    attack("getenv", "attempt to call a nil value (field 'getenv')");
    attack("io", "attempt to index a nil value (global 'io')");
    attack("bytecode", "binary chunks are not allowed");
    ward_policy_resource_put(e, "Hostile", "module", "{\"attack\":\"module\"}", &err);
    fixture_settle(loop);
    is_string("Done", state("module"), "require loads a module from the policy directory");
    attack("ffi", "module 'ffi' not found: policies can only require Lua modules");
    attack("cmodule", "module 'socket.core' not found");
    attack("escape", "module '..secret' not found");
    attack("debug", "global 'debug'");
    attack("coroutine", "global 'coroutine'");
    attack("finalizer", "__gc metamethods are not allowed");
    attack("tostring_loop", "could not be described: stopped: instruction budget exhausted");
    attack("table_error", "(error object is a table value)");
    attack("nil_error", "(error object is a nil value)");
    ok(access("/tmp/ward-pwned", F_OK) != 0, "nothing was executed");

    /* guards fail closed */
    guard("g1", "error", "guard Start -> Guarded failed: ");
    contains(err.text, "guard exploded", "with the guard's own message");
    guard("g2", "yield", "cannot yield here");
    guard("g3", "table", "(error object is a table value)");
    guard("g4", "number", "returned a number instead of true or false");
    guard("g5", "loop", "instruction budget exhausted");
    guard("g6", "transition", "ward.transition cannot be called from a guard");

    /* a guard that yields from inside a reconcile: contained the same way */
    ward_policy_resource_put(e, "Hostile", "gy", "{\"attack\":\"guarded\",\"guard\":\"yield\"}",
                             &err);
    fixture_settle(loop);
    contains(events.text.data,
             "reconcile_failed Hostile/gy: Hostile/gy: guard Start -> Guarded "
             "failed",
             "a yielding guard called by a reconcile refuses the transition");
    is_string("Start", state("gy"), "and nothing changed");
    serving("good2");
    ward_policy_resource_put(e, "Hostile", "g7", "{\"guard\":\"ok\"}", &err);
    is_int(0, ward_policy_transition(e, "Hostile", "g7", NULL, "Guarded", "api", NULL, "t", &err),
           "a guard that behaves still allows");

    /* hostile at load time: refused with a clear error */
    const char *dir = test_tmpdir();
    struct ward_policy_engine *e2 = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    fixture_write(dir, "spin.lua", "-- SPDX-License-Identifier: Apache-2.0\nwhile true do end\n");
    int rc = ward_policy_engine_load(e2, dir, &err);
    ok(rc != 0 && strstr(err.text, "instruction budget exhausted") != NULL,
       "a main chunk that never ends is refused: %s", first_line());
    char path[4096];
    snprintf(path, sizeof(path), "%s/spin.lua", dir);
    unlink(path);
    fixture_write(dir, "bin.lua", "\033LuaT\001\002");
    rc = ward_policy_engine_load(e2, dir, &err);
    ok(rc != 0 && strstr(err.text, "precompiled chunks are not accepted") != NULL,
       "a precompiled policy is refused: %s", first_line());
    snprintf(path, sizeof(path), "%s/bin.lua", dir);
    unlink(path);
    fixture_write(dir, "exec.lua",
                  "-- SPDX-License-Identifier: Apache-2.0\nos.execute('id')\nreturn {}\n");
    rc = ward_policy_engine_load(e2, dir, &err);
    ok(rc != 0 && strstr(err.text, "exec.lua:2:") != NULL &&
           strstr(err.text, "field 'execute'") != NULL,
       "os.execute at load time is refused with file:line: %s", first_line());
    snprintf(path, sizeof(path), "%s/exec.lua", dir);
    unlink(path);
    fixture_write(dir, "syntax.lua", "-- SPDX-License-Identifier: Apache-2.0\nlocal x = = 1\n");
    rc = ward_policy_engine_load(e2, dir, &err);
    ok(rc != 0 && strstr(err.text, "syntax.lua:2:") != NULL, "a syntax error names file:line: %s",
       first_line());
    snprintf(path, sizeof(path), "%s/syntax.lua", dir);
    unlink(path);
    /* The engine reads the returned module and its machine after the main chunk: their
       metamethods run then. Each used to crash wardd (a Lua panic) or hang it. */
    static const struct {
        const char *text;
        const char *expect;
        const char *what;
    } modules[] = {
        {"return setmetatable({}, {__index = function() error('no fields here') end})",
         "reading the module failed: ", "a module whose __index raises"},
        {"return setmetatable({}, {__index = function() while true do end end})",
         "instruction budget exhausted", "a module whose __index never returns"},
        {"return {kind = 'Meta', machine = setmetatable({states = {'A'}}, {__index =\n"
         "  function(_, k) if k == 'transitions' then error('boom') end end})}",
         "reading the module failed: ", "a machine whose __index raises half-way through"},
    };
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "-- SPDX-License-Identifier: Apache-2.0\n%s\n",
                 modules[i].text);
        fixture_write(dir, "meta.lua", text);
        rc = ward_policy_engine_load(e2, dir, &err);
        ok(rc != 0 && strstr(err.text, modules[i].expect) != NULL, "%s is refused: %s",
           modules[i].what, first_line());
    }
    fixture_write(dir, "meta.lua",
                  "-- SPDX-License-Identifier: Apache-2.0\n"
                  "return {kind = 'Meta', machine = ward.machine{states = {'A'}},\n"
                  "  tests = setmetatable({}, {__len = function() while true do end end})}\n");
    rc = ward_policy_engine_load(e2, dir, &err);
    ok(rc == 0, "a test list's __len is not called: the list is read as it is (%s)",
       rc == 0 ? "loaded" : first_line());
    ward_policy_engine_destroy(e2);
    ward_policy_engine_destroy(e);

    /* the time slice: what instructions do not count, and waiting, which it must not count */
    o.slice_timeout = 0.5;
    e = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    if (e == NULL ||
        ward_policy_engine_load(e, WARD_SRCDIR "/tests/data/policies/hostile", &err) != 0) {
        bail("load: %s", err.text);
    }
    attack("amplify", "time slice exhausted: ran 0.5 s without waiting");
    ward_policy_resource_put(e, "Hostile", "waits", "{\"attack\":\"waits\"}", &err);
    double give_up = ward_monotonic() + 30;
    while (strcmp(state("waits"), "Start") == 0 && ward_monotonic() < give_up) {
        ev_run(loop, EVRUN_ONCE);
    }
    is_string("Done", state("waits"),
              "a run that waits 0.8 s, running little between, is not stopped");
    ward_policy_engine_destroy(e);
    ward_buf_free(&events.text);
    ev_loop_destroy(loop);
    return 0;
}
