/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lua BMC handle, run in a coroutine the way the policy engine runs reconciles. The
 * engine's ward/async.h is replaced by a small double here: it resumes the coroutine from
 * the test's loop once an operation completes.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>
#include <ward/async.h>

#include "log.h"
#include "loop.h"
#include "redfish/driver.h"
#include "tap/basic.h"
#include "tserver.h"

/* ---- the async double --------------------------------------------------------------- */

struct ward_async {
    lua_State *co;
    void (*cancel)(void *arg);
    void *arg;
};

static struct ward_async *pending;
static bool ready;
static int nresults;

struct ward_async *ward_async_begin(lua_State *L, void (*cancel)(void *arg), void *arg)
{
    if (!lua_isyieldable(L) || pending != NULL) {
        return NULL;
    }
    pending = calloc(1, sizeof(*pending));
    pending->co = L;
    pending->cancel = cancel;
    pending->arg = arg;
    return pending;
}

int ward_async_refuse(lua_State *L)
{
    return luaL_error(L, "this call has to wait and cannot yield here");
}

int ward_async_yield(lua_State *L, struct ward_async *a)
{
    if (a == NULL) {
        return ward_async_refuse(L);
    }
    return lua_yield(L, 0);
}

void ward_async_complete(struct ward_async *a, int (*push)(lua_State *L, void *arg), void *arg)
{
    nresults = push(a->co, arg);
    ready = true;
    free(a);
    pending = NULL;
}

static int push_fail(lua_State *L, void *arg)
{
    lua_pushnil(L);
    lua_pushstring(L, arg);
    return 2;
}

void ward_async_fail(struct ward_async *a, const char *reason)
{
    ward_async_complete(a, push_fail, (void *)reason);
}

/* ---- harness ------------------------------------------------------------------------ */

static struct ev_loop *loop;
static struct ward_rf_driver *driver;

static void on_bound(struct ev_loop *l, ev_timer *w, int revents)
{
}

static bool wait_ready(double bound)
{
    ev_timer t;
    ev_timer_init(&t, on_bound, bound, 0);
    ev_timer_start(loop, &t);
    while (!ready && ev_is_active(&t)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    return ready;
}

static int l_open(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    const char *spec = luaL_checkstring(L, 2);
    return ward_rf_driver_open(driver, L, host, spec);
}

/* Run src as a coroutine to its end, completing each wait from the loop. */
static const char *run_script(lua_State *L, const char *src)
{
    static char error[1024];
    lua_State *co = lua_newthread(L);
    if (luaL_loadstring(co, src) != LUA_OK) {
        snprintf(error, sizeof(error), "%s", lua_tostring(co, -1));
        lua_pop(L, 1);
        return error;
    }
    int nargs = 0;
    for (;;) {
        int nres = 0;
        int rc = lua_resume(co, L, nargs, &nres);
        if (rc == LUA_OK) {
            lua_pop(L, 1);
            return NULL;
        }
        if (rc != LUA_YIELD) {
            snprintf(error, sizeof(error), "%s", lua_tostring(co, -1));
            lua_pop(L, 1);
            return error;
        }
        lua_pop(co, nres);
        ready = false;
        if (!wait_ready(30)) {
            snprintf(error, sizeof(error), "an operation did not complete in time");
            lua_pop(L, 1);
            return error;
        }
        nargs = nresults;
    }
}

static const char *global_str(lua_State *L, const char *table, const char *key)
{
    static char buf[8][512];
    static int slot;
    lua_getglobal(L, table);
    lua_getfield(L, -1, key);
    const char *v = lua_tostring(L, -1);
    char *out = buf[slot++ % 8];
    snprintf(out, 512, "%s", v != NULL ? v : "(nil)");
    lua_pop(L, 2);
    return out;
}

struct hook_seen {
    int calls;
    char expected[32], seen[32];
};

static void on_power(void *arg, const char *host, const char *expected, const char *seen)
{
    struct hook_seen *h = arg;
    h->calls++;
    snprintf(h->expected, sizeof(h->expected), "%s", expected);
    snprintf(h->seen, sizeof(h->seen), "%s", seen);
}

/* What the driver tells the policy (the engine's entry point, weak in the plugin): the last
   power, how often it was told Off, and how many syncs read the BMC (each observes "bmc"). */
static char observed_power[32];
static int told_off, synced;

int ward_policy_observe(const char *kind, const char *name, const char *field, const char *value)
{
    (void)kind;
    (void)name;
    if (strcmp(field, "power") == 0) {
        snprintf(observed_power, sizeof(observed_power), "%s", value);
        told_off += strcmp(value, "Off") == 0;
    } else if (strcmp(field, "bmc") == 0) {
        synced++;
    }
    return 0;
}

/* Start src (a power change of B) as a run and run the loop until the test BMC has taken its
   Reset (bounded). The run's thread, on L's stack, or NULL (nothing pushed) when the run did
   not wait or the BMC never took the Reset. */
static lua_State *start_until_reset(lua_State *L, struct tserver *s, const char *src)
{
    struct tserver_stats st;
    tserver_stats(s, &st);
    int resets = st.resets;
    lua_State *co = lua_newthread(L);
    luaL_loadstring(co, src);
    int nres = 0;
    ready = false;
    bool waits = lua_resume(co, L, 0, &nres) == LUA_YIELD && pending != NULL;
    ev_timer bound;
    ev_timer_init(&bound, on_bound, 20, 0);
    ev_timer_start(loop, &bound);
    do {
        ev_run(loop, EVRUN_ONCE);
        tserver_stats(s, &st);
    } while (st.resets == resets && ev_is_active(&bound));
    ev_timer_stop(loop, &bound);
    if (waits && st.resets == resets + 1 && pending != NULL) {
        return co;
    }
    lua_pop(L, 1);
    return NULL;
}

/* Start src (a power change of B) as a run, and let go of it once the test BMC has taken its
   Reset: what a run past its deadline does. False when the BMC never took it. */
static bool abandon_power_change(lua_State *L, struct tserver *s, const char *src)
{
    lua_State *co = start_until_reset(L, s, src);
    struct ward_async *let_go = pending;
    pending = NULL;
    if (let_go != NULL) {
        let_go->cancel(let_go->arg);
        free(let_go);
    }
    if (co != NULL) {
        lua_pop(L, 1);
    }
    return co != NULL;
}

/* Start src (a power change of B) and, once the test BMC has taken its Reset, answer every
   read with broken JSON until the change fails. True when it failed that way. */
static bool fail_after_reset(lua_State *L, struct tserver *s, const char *src)
{
    lua_State *co = start_until_reset(L, s, src);
    if (co == NULL) {
        return false;
    }
    tserver_set_faults(s, &(struct tserver_faults){.malformed = true});
    bool failed = wait_ready(20) && nresults == 2 && lua_isnil(co, -2);
    tserver_set_faults(s, &(struct tserver_faults){0});
    lua_pop(L, 1);
    return failed;
}

static void on_raw(void *arg, int code, const cJSON *result, const char *reason);

/* Someone else changes host-1's power (a raw Reset the driver does not look at); bounded. */
static void behind_wards_back(const char *type)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"ResetType\":\"%s\"}", type);
    bool done = false;
    ward_rf_op_start(ward_rf_driver_bmc(driver, "host-1"), WARD_RF_OP_POST,
                     "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", body, on_raw, &done);
    ev_timer bound;
    ev_timer_init(&bound, on_bound, 20, 0);
    ev_timer_start(loop, &bound);
    while (!done && ev_is_active(&bound)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &bound);
}

/* One power sync of every host, until it has read the BMC (bounded). */
static void sync_and_observe(void)
{
    int before = synced;
    ward_rf_driver_sync_now(driver);
    ev_timer bound;
    ev_timer_init(&bound, on_bound, 20, 0);
    ev_timer_start(loop, &bound);
    while (synced == before && ev_is_active(&bound)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &bound);
}

/* One sync, then append the power the test BMC showed it to path (64 bytes). */
static void sync_and_note(struct tserver *s, char *path)
{
    sync_and_observe();
    struct tserver_stats st;
    tserver_stats(s, &st);
    snprintf(path + strlen(path), 64 - strlen(path), "%s ", st.power);
}

static void on_raw(void *arg, int code, const cJSON *result, const char *reason)
{
    *(bool *)arg = true;
}

int main(void)
{
    plan(52);
    loop = ev_default_loop(0);
    const char *dir = test_tmpdir();
    char ca_path[512], pw_path[512], spec[2048], logpath[600];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
    snprintf(pw_path, sizeof(pw_path), "%s/password", dir);
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    FILE *logf = fopen(logpath, "w+");
    ward_log_set_stream(logf);
    FILE *f = fopen(pw_path, "w");
    fputs(TSERVER_PASSWORD "\n", f);
    fclose(f);
    struct tca *ca = tca_create("ward test CA");
    tca_write(ca, ca_path);
    struct tserver *s =
        tserver_start(&(struct tserver_opts){.ca = ca, .sessions = true, .etag_required = true});

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 5;
    o.poll_interval = 0.02;
    o.backoff = 0.01;
    o.power_timeout = 2; /* how long a power change on its way is waited for */
    o.rate_max = 1000;
    struct ward_error err = {0};
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    driver = ward_rf_driver_create(c, &(struct ward_rf_driver_opts){.power_sync_interval = 0});
    ok(driver != NULL, "driver created");

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "bmc_open", l_open);
    snprintf(spec, sizeof(spec),
             "{\"bmc\":{\"address\":\"%s\",\"caBundle\":\"%s\",\"credentials\":"
             "{\"username\":\"%s\",\"passwordFile\":\"%s\"}}}",
             tserver_url(s), ca_path, TSERVER_USER, pw_path);
    lua_pushstring(L, spec);
    lua_setglobal(L, "SPEC");

    const char *e = run_script(L, "R = {}\n"
                                  "local bmc, err = bmc_open('host-1', SPEC)\n"
                                  "assert(bmc, err)\n"
                                  "R.name = tostring(bmc)\n"
                                  "R.connect = tostring(bmc:connect())\n"
                                  "local inv = assert(bmc:inventory())\n"
                                  "R.serial = inv.serial\n"
                                  "R.cpus = inv.cpu_count\n"
                                  "R.mac = inv.macs[1]\n"
                                  "R.power = tostring(bmc:power('On'))\n"
                                  "R.state = bmc:power_state()\n"
                                  "R.insert = tostring(bmc:insert_media('http://10.0.0.1/a.iso'))\n"
                                  "R.boot = tostring(bmc:set_boot_once('Cd'))\n"
                                  "local sys = assert(bmc:get('/redfish/v1/Systems/1'))\n"
                                  "R.model = sys.Model\n"
                                  "R.boot_target = sys.Boot.BootSourceOverrideTarget\n"
                                  "R.patch = tostring(bmc:patch('/redfish/v1/Systems/1', "
                                  "{Boot = {BootSourceOverrideTarget = 'Pxe'}}))\n"
                                  "local bad, berr = bmc:get('https://elsewhere.example/x')\n"
                                  "R.bad = berr\n"
                                  "local nope, nerr = bmc:power('Explode')\n"
                                  "R.explode = nerr\n"
                                  "R.eject = tostring(bmc:eject_media())\n"
                                  "R.clear = tostring(bmc:clear_boot_override())\n"
                                  "R.close = tostring(bmc:close())\n");
    ok(e == NULL, "the script ran to its end (%s)", e != NULL ? e : "");
    is_string("redfish BMC of host-1", global_str(L, "R", "name"), "handle names its host");
    is_string("true", global_str(L, "R", "connect"), "connect returns true");
    is_string("437XR1138R2", global_str(L, "R", "serial"), "inventory serial");
    is_string("2", global_str(L, "R", "cpus"), "inventory CPU count is an integer");
    is_string("12:44:6A:3B:04:11", global_str(L, "R", "mac"), "inventory MACs");
    is_string("true", global_str(L, "R", "power"), "power('On') returns true");
    is_string("On", global_str(L, "R", "state"), "power_state() returns On");
    is_string("true", global_str(L, "R", "insert"), "insert_media returns true");
    is_string("true", global_str(L, "R", "boot"), "set_boot_once returns true");
    is_string("3500RX", global_str(L, "R", "model"), "get returns the document as a table");
    is_string("Cd", global_str(L, "R", "boot_target"), "nested tables too");
    is_string("true", global_str(L, "R", "patch"), "patch with a table body works");
    contains(global_str(L, "R", "bad"), "not a path on the BMC", "another host is refused");
    contains(global_str(L, "R", "explode"), "unsupported power action", "bad action: reason");
    is_string("true", global_str(L, "R", "eject"), "eject_media returns true");
    is_string("true", global_str(L, "R", "clear"), "clear_boot_override returns true");
    is_string("true", global_str(L, "R", "close"), "close returns true");
    struct tserver_stats st;
    tserver_stats(s, &st);
    is_int(1, st.logins, "one session served every call of the script");

    /* a call that cannot yield (a guard, the main chunk) is a clear error */
    lua_getglobal(L, "bmc_open");
    lua_pushstring(L, "host-1");
    lua_pushstring(L, spec);
    lua_call(L, 2, 1);
    lua_setglobal(L, "B");
    int rc = luaL_dostring(L, "return B:power_state()");
    ok(rc != LUA_OK, "calling from a context that cannot yield fails");
    contains(lua_tostring(L, -1), "cannot yield", "with a clear message");
    lua_pop(L, 1);

    e = run_script(L, "R2 = {}\nlocal b, err = bmc_open('host-2', '{\"bmc\":{}}')\nR2.err = err\n");
    contains(global_str(L, "R2", "err"), "no bmc.address", "a spec without address is refused");

    /* a named credentials set from the plugin's credentials directory */
    char cdir[600], cpath[700];
    snprintf(cdir, sizeof(cdir), "%s/creds", dir);
    snprintf(cpath, sizeof(cpath), "%s/set1", cdir);
    mkdir(cdir, 0700);
    mkdir(cpath, 0700);
    snprintf(cpath, sizeof(cpath), "%s/set1/username", cdir);
    f = fopen(cpath, "w");
    fputs(TSERVER_USER "\n", f);
    fclose(f);
    snprintf(cpath, sizeof(cpath), "%s/set1/password", cdir);
    f = fopen(cpath, "w");
    fputs(TSERVER_PASSWORD "\n", f);
    fclose(f);
    struct ward_rf_driver *d1 = driver;
    driver = ward_rf_driver_create(
        c, &(struct ward_rf_driver_opts){.credentials_dir = cdir, .power_sync_interval = 0});
    snprintf(spec, sizeof(spec),
             "{\"bmc\":{\"address\":\"%s\",\"caBundle\":\"%s\",\"credentials\":\"set1\"}}",
             tserver_url(s), ca_path);
    lua_pushstring(L, spec);
    lua_setglobal(L, "SPEC2");
    e = run_script(
        L, "R3 = {}\nlocal b = assert(bmc_open('host-3', SPEC2))\n"
           "R3.ok = tostring(b:connect())\n"
           "local b2, err = bmc_open('host-4', '{\"bmc\":{\"address\":\"https://127.0.0.1:1\",'"
           " .. '\"credentials\":\"../etc\"}}')\nR3.err = err\n");
    is_string("true", global_str(L, "R3", "ok"), "a named credentials set logs in (%s)",
              e != NULL ? e : "");
    contains(global_str(L, "R3", "err"), "cannot be used", "a set name with a path is refused");
    ward_rf_driver_destroy(driver);
    driver = d1;

    /* power sync reports a host whose power changed behind ward's back */
    struct hook_seen seen = {0};
    ward_rf_driver_set_power_hook(driver, on_power, &seen);
    behind_wards_back("ForceOff");
    ready = false;
    ev_timer bound;
    ev_timer_init(&bound, on_bound, 20, 0);
    ward_rf_driver_sync_now(driver);
    ev_timer_set(&bound, 20, 0);
    ev_timer_start(loop, &bound);
    while (seen.calls == 0 && ev_is_active(&bound)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &bound);
    is_int(1, seen.calls, "the power sync reported a mismatch");
    ok(strcmp(seen.expected, "On") == 0 && strcmp(seen.seen, "Off") == 0,
       "expected On, saw Off (%s/%s)", seen.expected, seen.seen);

    /* a power change whose run let go while it was on the wire: the BMC carries it out, and
       the next power sync must not report that as a change made behind ward's back */
    ok(abandon_power_change(L, s, "return B:power('On')"),
       "a power change waits on the BMC, which takes the Reset before the run lets go");
    sync_and_observe();
    is_string("On", observed_power, "the next sync sees the power the abandoned change set");
    is_int(1, seen.calls, "and does not report it as changed behind ward's back");

    /* the same with a BMC that takes a while to switch: syncs see the old state first */
    tserver_set_power_delay(s, 3);
    bool took = abandon_power_change(L, s, "return B:power('ForceOff')");
    char path[64] = "";
    for (int i = 0; i < 8 && strcmp(observed_power, "Off") != 0; i++) {
        sync_and_note(s, path);
    }
    ok(took && strcmp(observed_power, "Off") == 0,
       "a slower BMC: the policy is told Off once the syncs saw it (BMC showed %s)", path);
    is_int(1, seen.calls, "none of them is reported as a change behind ward's back");
    tserver_set_power_delay(s, 0);
    /* once arrived, a change behind ward's back is reported again */
    behind_wards_back("On");
    ward_rf_driver_sync_now(driver);
    ev_timer_set(&bound, 20, 0);
    ev_timer_start(loop, &bound);
    while (seen.calls == 1 && ev_is_active(&bound)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &bound);
    is_int(2, seen.calls, "a later change made behind ward's back is reported (%s/%s)",
           seen.expected, seen.seen);

    /* a Reset the BMC refuses changes nothing: a change behind ward's back right after it is
       still reported */
    tserver_set_faults(s, &(struct tserver_faults){.conflict_409 = 1});
    e = run_script(L, "R4 = {}\nR4.ok, R4.err = B:power('ForceOff')\n");
    contains(global_str(L, "R4", "err"), "409", "the BMC refuses a ForceOff (%s)", e ? e : "");
    behind_wards_back("ForceOff");
    sync_and_observe();
    is_int(3, seen.calls, "then someone else's ForceOff is reported (%s/%s)", seen.expected,
           seen.seen);

    /* a restart the BMC carries out as a power cycle: the run ends while the host still shows
       On, and the syncs after it see Off, then On again */
    e = run_script(L, "assert(B:power('On'))\n");
    int reported = seen.calls;
    tserver_set_power_delay(s, 2);
    e = run_script(L, "R5 = {}\nR5.ok = tostring((B:power('ForceRestart')))\n");
    is_string("true", global_str(L, "R5", "ok"), "a ForceRestart of a host that is On ends (%s)",
              e != NULL ? e : "");
    int offs = told_off;
    path[0] = '\0';
    for (int i = 0; i < 8 && strstr(path, "Off On") == NULL; i++) {
        sync_and_note(s, path);
    }
    ok(strstr(path, "Off On") != NULL && strcmp(observed_power, "On") == 0,
       "syncs saw the BMC cycle the host (%s), the policy is told On", path);
    is_int(offs, told_off, "the policy is not told of the Off on the way");
    is_int(reported, seen.calls, "and it is not reported as a change behind ward's back");

    /* a power change that fails after the BMC took its Reset (its state reads answer broken
       JSON): the BMC still switches, and that is not reported either */
    tserver_set_power_delay(s, 3);
    reported = seen.calls;
    ok(fail_after_reset(L, s, "return B:power('ForceOff')"),
       "a ForceOff fails after the BMC took its Reset");
    path[0] = '\0';
    for (int i = 0; i < 8 && strcmp(observed_power, "Off") != 0; i++) {
        sync_and_note(s, path);
    }
    ok(strcmp(observed_power, "Off") == 0,
       "the policy is told Off once the syncs saw it (BMC showed %s)", path);
    is_int(reported, seen.calls, "none of them is reported as a change behind ward's back");
    tserver_set_power_delay(s, 0);

    /* a power change whose first read timed out never sent its Reset: a change behind ward's
       back right after it is reported */
    reported = seen.calls;
    tserver_set_faults(s, &(struct tserver_faults){.hang = true});
    e = run_script(L, "R6 = {}\nR6.ok, R6.err = B:power('On')\n");
    tserver_set_faults(s, &(struct tserver_faults){0});
    contains(global_str(L, "R6", "err"), "timed out", "a power change times out reading the host");
    behind_wards_back("On");
    sync_and_observe();
    is_int(reported + 1, seen.calls, "then someone else's power-on is reported (%s/%s)",
           seen.expected, seen.seen);

    /* a power change whose login fails (the session expired, the password is wrong now)
       never sent its Reset: someone else's ForceOff right after it is reported */
    reported = seen.calls;
    struct tserver_stats ts;
    tserver_stats(s, &ts);
    int resets = ts.resets;
    FILE *pw = fopen(pw_path, "w");
    fputs("not-the-password\n", pw);
    fclose(pw);
    tserver_set_faults(s, &(struct tserver_faults){.expire_sessions = true});
    e = run_script(L, "R7 = {}\nR7.ok, R7.err = B:power('ForceOff')\n");
    tserver_stats(s, &ts);
    ok(strstr(global_str(L, "R7", "err"), "login") != NULL && ts.resets == resets,
       "a ForceOff fails logging in, before its Reset (%s)", global_str(L, "R7", "err"));
    pw = fopen(pw_path, "w");
    fputs(TSERVER_PASSWORD "\n", pw);
    fclose(pw);
    behind_wards_back("ForceOff");
    sync_and_observe();
    ok(seen.calls == reported + 1 && strcmp(observed_power, "Off") == 0,
       "then someone else's ForceOff is reported, and the policy told (%s/%s, told %s)",
       seen.expected, seen.seen, observed_power);

    /* someone else powers a host off right after ward restarted it: the syncs take the Off
       for the restart's own until power_timeout, then it is reported */
    behind_wards_back("On");
    sync_and_observe();
    e = run_script(L, "R8 = {}\nR8.ok = tostring((B:power('ForceRestart')))\n");
    reported = seen.calls;
    behind_wards_back("ForceOff");
    sync_and_observe();
    bool quiet = seen.calls == reported && strcmp(observed_power, "On") == 0;
    test_loop_for(loop, 2.2); /* power_timeout */
    sync_and_observe();
    ok(quiet && seen.calls == reported + 1 && strcmp(observed_power, "Off") == 0,
       "after a restart, someone else's ForceOff is reported once power_timeout has passed "
       "(%s/%s, told %s)",
       seen.expected, seen.seen, observed_power);

    /* the policy reads the power itself during such a wait (power_state()): its read neither
       hides someone else's change nor makes the restart's own cycle look like one */
    behind_wards_back("On");
    sync_and_observe();
    e = run_script(L, "R9 = {}\nR9.ok = tostring((B:power('ForceRestart')))\n");
    reported = seen.calls;
    behind_wards_back("ForceOff");
    e = run_script(L, "R9.read = B:power_state()\n");
    sync_and_observe();
    test_loop_for(loop, 2.2); /* power_timeout */
    sync_and_observe();
    ok(seen.calls == reported + 1,
       "someone else's ForceOff the policy read during the wait is still reported (read %s, "
       "%d reports)",
       global_str(L, "R9", "read"), seen.calls - reported);
    behind_wards_back("On");
    sync_and_observe();
    e = run_script(L, "R10 = {}\nR10.ok = tostring((B:power('ForceRestart')))\n");
    reported = seen.calls;
    behind_wards_back("ForceOff"); /* the cycle the policy catches, instead of a sync */
    e = run_script(L, "R10.read = B:power_state()\n");
    behind_wards_back("On");
    sync_and_observe();
    test_loop_for(loop, 2.2);
    sync_and_observe();
    ok(seen.calls == reported,
       "a restart's cycle the policy read is not reported (read %s, %d reports)",
       global_str(L, "R10", "read"), seen.calls - reported);

    /* the same change behind ward's back, when the first read after power_timeout is the
       policy's own: it is still reported */
    behind_wards_back("On");
    sync_and_observe();
    e = run_script(L, "R11 = {}\nR11.ok = tostring((B:power('ForceRestart')))\n");
    reported = seen.calls;
    behind_wards_back("ForceOff");
    test_loop_for(loop, 2.2);
    e = run_script(L, "R11.read = B:power_state()\n");
    sync_and_observe();
    ok(seen.calls == reported + 1,
       "someone else's ForceOff is reported when the policy's read ends the wait (read %s, %d "
       "reports)",
       global_str(L, "R11", "read"), seen.calls - reported);

    is_int(0, ward_rf_driver_remove(driver, "host-1"), "host removed");
    is_int(-ENOENT, ward_rf_driver_remove(driver, "host-1"), "removing it again says so");

    lua_close(L);
    ward_rf_driver_destroy(driver);
    ward_rf_client_destroy(c);
    tserver_stop(s);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
