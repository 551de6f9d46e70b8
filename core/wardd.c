/* SPDX-License-Identifier: Apache-2.0 */
/* wardd: the edge agent's entry point. */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>

#include "agent.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "plugin.h"
#include "policy.h"
#include "util.h"

#ifndef WARD_SYSCONFDIR
#define WARD_SYSCONFDIR "/etc/ward"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wardd [OPTION]...\n"
            "Enroll, provision and recover bare-metal hosts through their BMCs.\n"
            "\n"
            "  -c, --config FILE     configuration file (default %s/wardd.conf.lua)\n"
            "  -f, --foreground      stay in the foreground and log to stderr\n"
            "  -l, --log-level LEVEL debug, info, warn or error (overrides the config)\n"
            "  -t, --test            load the configuration and plugins, then exit:\n"
            "                        status 0 when wardd would start\n"
            "  -D, --describe-plugin NAME[=PATH]\n"
            "                        print the settings reference of a plugin, generated\n"
            "                        from its config map, then exit\n"
            "  -V, --version         print the version and plugin ABI, then exit\n"
            "  -h, --help            print this help, then exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain in-flight work and exit 0; SIGHUP reloads the\n"
            "configuration and policies, keeping the running ones if the new ones fail.\n",
            WARD_SYSCONFDIR);
}

/* --test: the policies compile and self-check, without touching the state directory. */
static int check_policies(struct ward_daemon *d, struct ward_error *err)
{
    struct ward_policy_options o;
    if (ward_policy_options_init(&o, err) != 0) {
        return -EINVAL;
    }
    struct ward_policy_engine *e = ward_policy_engine_create(
        ward_daemon_loop(d), NULL, ward_daemon_plugins(d), ward_daemon_metrics(d), &o, err);
    int rc = e != NULL ? ward_policy_engine_load(e, ward_daemon_config(d)->policy_dir, err) : -1;
    ward_policy_engine_destroy(e);
    return rc;
}

static int describe_plugin(const char *arg)
{
    char name[128];
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    if (len == 0 || len >= sizeof(name)) {
        fprintf(stderr, "wardd: --describe-plugin takes NAME or NAME=PATH\n");
        return 2;
    }
    memcpy(name, arg, len);
    name[len] = '\0';
    struct ward_buf path = {0};
    if (eq != NULL) {
        ward_buf_puts(&path, eq + 1);
    } else {
        ward_buf_printf(&path, "%s/ward-%s.so", WARD_PLUGINDIR, name);
    }
    struct ward_buf out = {0};
    struct ward_error err = {0};
    int rc = ward_plugin_describe(path.data, name, &out, &err);
    if (rc == 0) {
        fputs(out.data, stdout);
    } else {
        fprintf(stderr, "wardd: %s\n", err.text);
    }
    ward_buf_free(&out);
    ward_buf_free(&path);
    return rc == 0 ? 0 : 1;
}

/* A fleet agent holds a connection per BMC it is talking to and one per API client: take
 * the hard limit on open files (up to 65,536) rather than a soft one that is often 1,024.
 * The Redfish plugin sizes its connection cache from the limit it finds. */
static void raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'}, {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {"describe-plugin", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = WARD_SYSCONFDIR "/wardd.conf.lua";
    const char *level_arg = NULL;
    bool foreground = false;
    bool test_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:fl:tVhD:", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 'l':
            level_arg = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'D':
            return describe_plugin(optarg);
        case 'V':
            printf("wardd %s (plugin ABI %u)\n", PACKAGE_VERSION, (unsigned)WARD_PLUGIN_ABI);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wardd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    enum ward_log_level cli_level = WARD_LOG_INFO;
    if (level_arg != NULL && ward_log_level_parse(level_arg, &cli_level) != 0) {
        fprintf(stderr, "wardd: unknown log level '%s' (use debug, info, warn or error)\n",
                level_arg);
        return 2;
    }

    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load(config_path, &err);
    if (cfg == NULL) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: %s", err.text);
        return 1;
    }
    ward_log_set_level(level_arg != NULL ? cli_level : cfg->log_level);
    if (cfg->log_file != NULL && ward_log_open_file(cfg->log_file, &err) != 0) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: %s", err.text);
        ward_config_destroy(cfg);
        return 1;
    }
    if (!foreground && !test_only) {
        if (cfg->log_file == NULL) {
            ward_log_use_syslog(true);
        }
        if (daemon(0, 0) != 0) {
            ward_log(WARD_LOG_ERROR, "core", "cannot detach: %s", strerror(errno));
            ward_config_destroy(cfg);
            return 1;
        }
    }

    raise_open_files();
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: libev found no usable backend");
        ward_config_destroy(cfg);
        return 1;
    }
    struct ward_daemon *d = ward_daemon_create(loop, cfg, &err);
    if (d == NULL) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: %s", err.text);
        return 1;
    }
    int status = 0;
    struct ward_agent *agent = NULL;
    if (ward_daemon_start(d, &err) != 0) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: %s", err.text);
        status = 1;
    } else if (test_only) {
        if (check_policies(d, &err) != 0) {
            ward_log(WARD_LOG_ERROR, "core", "policies: %s", err.text);
            status = 1;
        } else if (ward_agent_check_config(ward_daemon_config(d), &err) != 0) {
            ward_log(WARD_LOG_ERROR, "core", "configuration %s: %s", config_path, err.text);
            status = 1;
        } else {
            ward_log(WARD_LOG_INFO, "core", "configuration %s is valid", config_path);
        }
    } else if ((agent = ward_agent_start(d, &err)) == NULL) {
        ward_log(WARD_LOG_ERROR, "core", "cannot start: %s", err.text);
        status = 1;
    } else {
        ward_daemon_run(d);
    }
    ward_agent_destroy(agent);
    ward_daemon_destroy(d);
    ev_loop_destroy(loop);
    ward_log_clear_secrets();
    ward_log_close();
    return status;
}
