/* SPDX-License-Identifier: Apache-2.0 */
/* wardd as a process: signals, reload, bounded shutdown, plugin failure, redaction end to end. */
#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "spawn.h"
#include "util.h"

static char wardd[4096];
static char conf[4200];

static const char *build(const char *rel, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", getenv("WARD_BUILDDIR"), rel);
    return out;
}

static void write_conf(const char *text)
{
    FILE *f = fopen(conf, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        sysbail("write %s", conf);
    }
}

static void good_conf(const char *in_flight, const char *grace)
{
    char good[4096], text[12000];
    build("tests/fixtures/.libs/good.so", good, sizeof(good));
    snprintf(text, sizeof(text),
             "log_level = \"debug\"\n"
             "state_dir = \"%s/state\"\n"
             "policy_dir = \"%s/policies\"\n"
             "http = { listen = \"127.0.0.1:0\" }\n"
             "shutdown_grace = \"%s\"\n"
             "plugin \"good\" { path = \"%s\", in_flight = \"%s\",\n"
             "                password = \"bmc-pass-7f3a9c\" }\n",
             test_tmpdir(), getenv("WARD_SRCDIR"), grace, good, in_flight);
    write_conf(text);
}

int main(void)
{
    if (getenv("WARD_BUILDDIR") == NULL) {
        bail("WARD_BUILDDIR is not set; run through make check");
    }
    plan(35);
    build("wardd", wardd, sizeof(wardd));
    snprintf(conf, sizeof(conf), "%s/wardd.conf.lua", test_tmpdir());
    char *run[] = {wardd, "--foreground", "--config", conf, NULL};
    struct child c;

    /* version and help */
    child_spawn(&c, (char *[]){wardd, "--version", NULL});
    is_int(0, child_wait_exit(&c, 10), "--version exits 0");
    contains(c.out.data, "wardd " PACKAGE_VERSION, "--version names the version");
    child_free(&c);

    /* the settings reference is generated from the plugin's config map */
    char good_so[4096], describe[4200];
    build("tests/fixtures/.libs/good.so", good_so, sizeof(good_so));
    snprintf(describe, sizeof(describe), "good=%s", good_so);
    child_spawn(&c, (char *[]){wardd, "--describe-plugin", describe, NULL});
    is_int(0, child_wait_exit(&c, 10), "--describe-plugin exits 0");
    contains(c.out.data, "| `greeting` | string | hello | what to say |",
             "each setting is documented with its type and default");
    contains(c.out.data, "| `password` | secret | — |", "a secret's default is never shown");
    child_free(&c);

    /* a running daemon: SIGHUP reloads, a bad reload is refused, SIGTERM drains and exits 0 */
    good_conf("300ms", "10s");
    child_spawn(&c, run);
    ok(child_wait_for(&c, "running with 1 plugin", 20), "wardd starts and reports its plugins");
    kill(c.pid, SIGHUP);
    ok(child_wait_for(&c, "configuration reloaded", 20), "SIGHUP reloads the configuration");
    ok(kill(c.pid, 0) == 0, "and wardd keeps running");
    write_conf("log_level = \"info\"\nplugin \"good\" {\n  oops = = 1\n}\n");
    kill(c.pid, SIGHUP);
    ok(child_wait_for(&c, "reload refused", 20), "a broken configuration is refused on reload");
    contains(c.out.data, "wardd.conf.lua:3:", "the refusal carries file and line");
    ok(kill(c.pid, 0) == 0, "and wardd keeps running on the last good one");
    kill(c.pid, SIGTERM);
    ok(child_wait_for(&c, "shutdown requested (SIGTERM)", 20), "SIGTERM starts the shutdown");
    ok(child_wait_for(&c, "in-flight work finished", 20), "in-flight work is allowed to finish");
    is_int(0, child_wait_exit(&c, 20), "wardd exits 0");
    lacks(c.out.data, "bmc-pass-7f3a9c", "the password set in the config never reaches the log");
    contains(c.out.data, "[REDACTED]", "the line that tried to print it was redacted");
    child_free(&c);

    /* in-flight work longer than the grace period is abandoned, and the exit is still clean;
       while it waits for that work, the loop sleeps (it used to poll without blocking, a core
       busy for the whole grace) */
    good_conf("1h", "1s");
    child_spawn(&c, run);
    ok(child_wait_for(&c, "running with", 20), "wardd starts again");
    kill(c.pid, SIGINT);
    ok(child_wait_for(&c, "shutdown requested", 20), "SIGINT starts the shutdown");
    double cpu_before = child_cpu(&c);
    ok(child_wait_for(&c, "grace period over", 20), "shutdown is bounded by shutdown_grace");
    is_int(0, child_wait_exit(&c, 20), "and exits 0");
    ok(cpu_before >= 0 && c.cpu - cpu_before < 0.25,
       "waiting 1 s for in-flight work took %.3f s of CPU", c.cpu - cpu_before);
    child_free(&c);

    /* a failing, non-optional plugin stops startup with its reason */
    char failing[4096], text[8192];
    build("tests/fixtures/.libs/failinit.so", failing, sizeof(failing));
    snprintf(text, sizeof(text), "plugin \"failinit\" { path = \"%s\" }\n", failing);
    write_conf(text);
    child_spawn(&c, run);
    is_int(1, child_wait_exit(&c, 20), "a failing plugin makes wardd exit non-zero");
    contains(c.out.data, "cannot reach the widget service", "with the plugin's reason");
    child_free(&c);

    snprintf(text, sizeof(text),
             "policy_dir = \"%s/policies\"\n"
             "plugin \"failinit\" { path = \"%s\", optional = true }\n",
             getenv("WARD_SRCDIR"), failing);
    write_conf(text);
    child_spawn(&c, (char *[]){wardd, "--test", "--config", conf, NULL});
    is_int(0, child_wait_exit(&c, 20), "unless the plugin is optional (--test)");
    contains(c.out.data, "optional plugin skipped", "the skip is logged");
    child_free(&c);

    /* the policy and store sections: not a table (the configuration loader knows it only as one),
     * or a bad setting, is refused by --test and by a start */
    static const char *const bad_policy[] = {
        "policy = \"fast\"\n", "policy = { max_retries = \"many\" }\n",
        "store = { history_max_age = \"forever\" }\n", "store = { history_keep = -1 }\n"};
    static const char *const why[] = {"wardd.conf.lua:3: unknown setting 'policy'", "max_retries",
                                      "store: setting 'history_max_age' is not a duration",
                                      "store: history_keep must be 0 to 100000000, not -1"};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(why); i++) {
        snprintf(text, sizeof(text), "state_dir = \"%s/state\"\npolicy_dir = \"%s/policies\"\n%s",
                 test_tmpdir(), getenv("WARD_SRCDIR"), bad_policy[i]);
        write_conf(text);
        child_spawn(&c, (char *[]){wardd, "--test", "--config", conf, NULL});
        is_int(1, child_wait_exit(&c, 20), "wardd --test refuses %.*s",
               (int)strcspn(bad_policy[i], "\n"), bad_policy[i]);
        contains(c.out.data, why[i], "saying why");
        child_free(&c);
    }
    child_spawn(&c, run);
    is_int(1, child_wait_exit(&c, 20), "and so does a start");
    contains(c.out.data, "cannot start:", "with the reason");
    child_free(&c);
    return 0;
}
