/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file: a sandboxed Lua chunk with checked settings and plugin declarations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../tap/basic.h"
#include "config.h"
#include "log.h"
#include "util.h"

struct settings {
    char *greeting;
    char *password;
    long long count;
    bool loud;
    double every;
    char *needed;
};

static const struct ward_config_entry map[] = {
    {WARD_CONFIG_STRING, "greeting", "hello", offsetof(struct settings, greeting), "text"},
    {WARD_CONFIG_SECRET, "password", NULL, offsetof(struct settings, password), "secret"},
    {WARD_CONFIG_INT, "count", "7", offsetof(struct settings, count), "number"},
    {WARD_CONFIG_BOOL, "loud", "false", offsetof(struct settings, loud), "flag"},
    {WARD_CONFIG_DURATION, "every", "2m", offsetof(struct settings, every), "period"},
    {0},
};

static const struct ward_config_entry map_required[] = {
    {WARD_CONFIG_STRING, "needed", NULL, offsetof(struct settings, needed), "must be set", true},
    {0},
};

/* Load text expected to fail; return the error text (static). */
static const char *load_error(const char *text)
{
    static struct ward_error err;
    memset(&err, 0, sizeof(err));
    struct ward_config *cfg = ward_config_load_string(text, "t.conf", &err);
    if (cfg != NULL) {
        ward_config_destroy(cfg);
        return "(loaded)";
    }
    return err.text;
}

static const char *fill_error(const char *text, const struct ward_config_entry *m)
{
    static struct ward_error err;
    memset(&err, 0, sizeof(err));
    struct ward_config *cfg = ward_config_load_string(text, "t.conf", &err);
    if (cfg == NULL) {
        return err.text;
    }
    struct settings s = {0};
    int rc = ward_config_fill(cfg, &cfg->plugins[0], m, &s, &err);
    ward_config_free_instance(m, &s);
    ward_config_destroy(cfg);
    return rc == 0 ? "(filled)" : err.text;
}

int main(void)
{
    plan(45);
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logmem = open_memstream(&logbuf, &loglen);
    ward_log_set_stream(logmem);

    struct ward_error err = {0};
    const char *valid = "-- a comment\n"
                        "log_level = \"debug\"\n"
                        "state_dir = \"/tmp/ward-state\"\n"
                        "shutdown_grace = \"3s\"\n"
                        "local base = 40\n"
                        "plugin \"alpha\" { greeting = \"hi \" .. \"there\", count = base + 2,\n"
                        "                 loud = true, every = \"1h30m\",\n"
                        "                 password = \"correct-horse-battery\" }\n"
                        "plugin(\"beta\", { optional = true, path = \"/x/beta.so\" })\n";
    struct ward_config *cfg = ward_config_load_string(valid, "t.conf", &err);
    ok(cfg != NULL, "a valid configuration loads (%s)", err.text);
    if (cfg == NULL) {
        bail("cannot continue");
    }
    is_int(WARD_LOG_DEBUG, cfg->log_level, "log_level is read");
    is_string("/tmp/ward-state", cfg->state_dir, "state_dir is read");
    ok(cfg->shutdown_grace > 2.99 && cfg->shutdown_grace < 3.01, "shutdown_grace is a duration");
    ok(cfg->policy_dir != NULL && cfg->plugin_dir != NULL, "unset directories get defaults");
    is_int(2, (long long)cfg->nplugins, "both plugins are declared, in order");
    is_string("alpha", cfg->plugins[0].name, "first plugin name");
    is_int(6, cfg->plugins[0].line, "the declaration line is remembered");
    ok(!cfg->plugins[0].optional && cfg->plugins[1].optional, "optional is read");
    is_string("/x/beta.so", cfg->plugins[1].path, "an explicit path is read");

    struct settings s = {0};
    int rc = ward_config_fill(cfg, &cfg->plugins[0], map, &s, &err);
    is_int(0, rc, "the config map fills the instance (%s)", err.text);
    is_string("hi there", s.greeting, "string setting, computed by Lua");
    is_int(42, s.count, "integer setting");
    ok(s.loud, "boolean setting");
    ok(s.every > 5399 && s.every < 5401, "duration setting in seconds");
    ward_config_free_instance(map, &s);
    ok(s.greeting == NULL, "strings are released");

    struct settings d = {0};
    ward_config_fill(cfg, &cfg->plugins[1], map, &d, &err);
    ok(d.greeting != NULL && strcmp(d.greeting, "hello") == 0 && d.count == 7 && !d.loud &&
           d.every > 119 && d.every < 121,
       "defaults fill what is missing");
    ward_config_free_instance(map, &d);
    ward_config_destroy(cfg);

    ward_log(WARD_LOG_INFO, "test", "the password is correct-horse-battery");
    fflush(logmem);
    lacks(logbuf, "correct-horse-battery", "a secret setting is registered for redaction");

    contains(load_error("log_level = \"info\"\nstate_dir = \"/tmp\"\nplugin \"x\" {\n  a = = 1\n}\n"),
             "t.conf:4:", "a syntax error names the file and line");
    contains(load_error("log_level = \"info\"\nos.execute(\"touch /tmp/ward-pwned\")\n"),
             "t.conf:2: 'os' is not available", "os.execute is refused with its line");
    contains(load_error("local f = io.open(\"/etc/passwd\")\n"), "t.conf:1: 'io' is not available",
             "io.open is refused");
    contains(load_error("require \"ffi\"\n"), "'require' is not available", "require is refused");
    contains(load_error("dofile(\"/etc/passwd\")\n"), "'dofile' is not available",
             "dofile is refused");
    contains(load_error("local f = load(\"\\27Lua\\84\\0\")\nassert(f)\n"), "t.conf:1: 'load' is not",
             "load of bytecode is refused");
    contains(load_error("\x1bLua\x54"), "precompiled", "a precompiled config is refused");
    contains(load_error("stat_dir = \"/tmp\"\n"), "unknown setting 'stat_dir'",
             "a misspelt setting is refused");
    contains(load_error("shutdown_grace = \"10\"\n"), "not a duration", "a bare number is not a duration");
    contains(load_error("log_level = \"chatty\"\n"), "unknown level", "a bad log level is refused");
    contains(load_error("while true do end\n"), "instruction budget", "an endless loop is stopped");
    contains(load_error("local t = {} for i = 1, 1e9 do t[i] = i end\n"), "memory",
             "unbounded growth hits the memory cap");
    contains(load_error("plugin \"a\" {}\nplugin \"a\" {}\n"), "declared twice",
             "a plugin declared twice is refused");

    contains(fill_error("plugin \"p\" { gretting = \"typo\" }\n", map), "unknown setting 'gretting'",
             "an unknown plugin setting is refused by name");
    const char *typed = fill_error("plugin \"p\" { count = \"many-s3cr3t\" }\n", map);
    ok(strstr(typed, "'count' must be an integer") != NULL && strstr(typed, "s3cr3t") == NULL,
       "a wrongly typed setting is named, its value is not echoed (%s)", typed);
    contains(fill_error("plugin \"p\" {}\n", map_required), "'needed' is required",
             "a missing required setting is refused");

    /* an agent section (store = {...}) goes through the same checks */
    struct ward_config *sec = ward_config_load_string(
        "store = { count = 3, every = \"1h\" }\nplugin \"p\" {}\n", "t.conf", &err);
    struct settings ss = {0};
    ok(sec != NULL && ward_config_fill_section(sec, "store", map, &ss, &err) == 0 &&
           ss.count == 3 && ss.every == 3600 && strcmp(ss.greeting, "hello") == 0,
       "a section fills its settings and the defaults of the rest (%s)", err.text);
    ward_config_free_instance(map, &ss);
    ok(ward_config_fill_section(sec, "absent", map, &ss, &err) == 0 && ss.count == 7 &&
           ss.every == 120,
       "an absent section gives every default (%s)", err.text);
    ward_config_free_instance(map, &ss);
    ward_config_destroy(sec);
    sec = ward_config_load_string("store = { cont = 3 }\n", "t.conf", &err);
    ok(sec != NULL && ward_config_fill_section(sec, "store", map, &ss, &err) != 0 &&
           strcmp(err.text, "store: unknown setting 'cont'") == 0,
       "an unknown key of a section is refused by name (%s)", err.text);
    ward_config_free_instance(map, &ss);
    ward_config_destroy(sec);
    sec = ward_config_load_string("store = { every = 5 }\n", "t.conf", &err);
    ok(sec != NULL && ward_config_fill_section(sec, "store", map, &ss, &err) != 0 &&
           strstr(err.text, "store: setting 'every' must be a duration string") != NULL,
       "a wrongly typed one too (%s)", err.text);
    ward_config_free_instance(map, &ss);
    ward_config_destroy(sec);

    cfg = ward_config_load_string(
        "host \"node-01\" { bmc = { address = \"https://127.0.0.1:8443\",\n"
        "  credentials = { username = \"admin\", passwordFile = \"/etc/ward/pw\" } },\n"
        "  labels = { rack = \"r1\" }, macs = { \"aa:bb\", \"cc:dd\" } }\n",
        "t.conf", &err);
    ok(cfg != NULL && cfg->nhosts == 1, "a host of the inventory is declared (%s)", err.text);
    cJSON *wanted = cJSON_Parse(
        "{\"bmc\":{\"address\":\"https://127.0.0.1:8443\",\"credentials\":{\"username\":"
        "\"admin\",\"passwordFile\":\"/etc/ward/pw\"}},\"labels\":{\"rack\":\"r1\"},"
        "\"macs\":[\"aa:bb\",\"cc:dd\"]}");
    cJSON *seen = cJSON_Parse(cfg != NULL ? cfg->hosts[0].spec_json : "null");
    ok(cJSON_Compare(wanted, seen, true), "its table becomes the spec as JSON (objects and lists): %s",
       cfg != NULL ? cfg->hosts[0].spec_json : "(none)");
    cJSON_Delete(wanted);
    cJSON_Delete(seen);
    ward_config_destroy(cfg);
    const char *inline_pw =
        load_error("host \"n1\" { bmc = { credentials = { password = \"s3cr3t-inline\" } } }\n");
    ok(strstr(inline_pw, "use passwordFile or passwordEnv") != NULL &&
           strstr(inline_pw, "s3cr3t-inline") == NULL,
       "a password written into a host is refused without echoing it (%s)", inline_pw);
    is_string("(loaded)",
              load_error("host \"n2\" { bmc = { address = \"https://10.0.0.2\", credentials = "
                         "\"rack1\" } }\n"),
              "a host naming its credentials set loads: the set's name is no secret");
    contains(load_error("host \"n1\" {}\nhost \"n1\" {}\n"), "declared twice",
             "a host declared twice is refused");
    /* 40 hosts (the list grows past 16 and 32), then the 33rd again */
    struct ward_buf many = {0};
    for (int i = 1; i <= 40; i++) {
        ward_buf_printf(&many, "host \"h%d\" {}\n", i);
    }
    ward_buf_printf(&many, "host \"h33\" {}\n");
    contains(load_error(many.data), "'h33' is declared twice (first at line 33)",
             "the refusal names the first declaration");
    ward_buf_free(&many);
    contains(load_error("host \"Node_1\" {}\n"), "host name 'Node_1'",
             "a host name that is not a DNS label is refused");

    ward_log_set_stream(NULL);
    ward_log_clear_secrets();
    fclose(logmem);
    free(logbuf);
    return 0;
}
