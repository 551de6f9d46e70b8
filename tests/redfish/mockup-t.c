/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DMTF's public-rackmount1 mockup (the directory comes from configure's
 * --with-redfish-mockups): every resource goes through the plugin's parsers, and the
 * operations run over HTTPS against the mockup served read-only.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>

#include "log.h"
#include "redfish/bmc.h"
#include "redfish/parse.h"
#include "tap/basic.h"
#include "tserver.h"

static int files, bad;

static void walk(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            walk(path);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0) {
            continue;
        }
        char *text = test_slurp(path);
        files++;
        if (text == NULL || ward_rf_validate(text, strlen(text)) != 0) {
            bad++;
            diag("cannot parse %s", path);
        }
        free(text);
    }
    closedir(d);
}

struct res {
    bool done;
    int code;
    char reason[1024];
    char *json;
};

static void on_op(void *arg, int code, const cJSON *result, const char *reason)
{
    struct res *r = arg;
    r->done = true;
    r->code = code;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    r->json = result != NULL ? cJSON_PrintUnformatted(result) : strdup("null");
}

static void on_bound(struct ev_loop *l, ev_timer *w, int revents)
{
}

static struct ev_loop *loop;

static struct res run(struct ward_rf_bmc *b, enum ward_rf_op_kind kind, const char *arg)
{
    struct res r = {0};
    ward_rf_op_start(b, kind, arg, NULL, on_op, &r);
    ev_timer t;
    ev_timer_init(&t, on_bound, 30, 0);
    ev_timer_start(loop, &t);
    while (!r.done && ev_is_active(&t)) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    if (r.json == NULL) {
        r.json = strdup("null");
    }
    return r;
}

int main(void)
{
    plan(19);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/public-rackmount1", WARD_REDFISH_MOCKUPS);
    walk(dir);
    ok(files > 200, "the mockup has its resources (%d JSON files in %s)", files, dir);
    is_int(0, bad, "every resource of public-rackmount1 parses");

    loop = ev_default_loop(0);
    const char *tmp = test_tmpdir();
    char ca_path[600], pw_path[600], logpath[600];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmp);
    snprintf(pw_path, sizeof(pw_path), "%s/pw", tmp);
    snprintf(logpath, sizeof(logpath), "%s/log", tmp);
    FILE *logf = fopen(logpath, "w+");
    ward_log_set_stream(logf);
    FILE *f = fopen(pw_path, "w");
    fputs("mockup-password\n", f);
    fclose(f);
    struct tca *ca = tca_create("ward test CA");
    tca_write(ca, ca_path);
    struct tserver *s = tserver_start(&(struct tserver_opts){.ca = ca, .mockup_dir = dir});

    struct ward_rf_client_opts o;
    ward_rf_client_opts_default(&o);
    o.timeout = 10;
    o.poll_interval = 0.02;
    o.rate_max = 1000;
    struct ward_error err = {0};
    char shipped[600];
    snprintf(shipped, sizeof(shipped), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    struct ward_rf_quirks *quirks = ward_rf_quirks_load(shipped, &err);
    o.quirks = quirks;
    struct ward_rf_client *c = ward_rf_client_create(loop, &o, &err);
    struct ward_rf_bmc *b =
        ward_rf_bmc_create(c,
                           &(struct ward_rf_bmc_config){.name = "rackmount1",
                                                        .address = tserver_url(s),
                                                        .username = "admin",
                                                        .password_file = pw_path,
                                                        .cainfo = ca_path},
                           &err);

    struct res r = run(b, WARD_RF_OP_INVENTORY, NULL);
    is_int(0, r.code, "inventory of the mockup (%s)", r.reason);
    cJSON *inv = cJSON_Parse(r.json);
    is_string("Contoso", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "manufacturer")),
              "Manufacturer");
    is_string("3500", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "model")), "Model");
    is_string("437XR1138R2", cJSON_GetStringValue(cJSON_GetObjectItem(inv, "serial")),
              "SerialNumber");
    is_string("38947555-7742-3448-3784-823347823834",
              cJSON_GetStringValue(cJSON_GetObjectItem(inv, "uuid")), "UUID");
    is_string("P79 v1.45 (12/06/2017)",
              cJSON_GetStringValue(cJSON_GetObjectItem(inv, "bios_version")), "BiosVersion");
    is_int(2, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(inv, "cpu_count")),
           "ProcessorSummary.Count");
    is_int(96, (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(inv, "memory_gib")),
           "MemorySummary.TotalSystemMemoryGiB");
    contains(r.json, "\"12:44:6A:3B:04:11\"", "a NIC MAC address (%s)", r.json);
    cJSON_Delete(inv);
    free(r.json);

    r = run(b, WARD_RF_OP_POWER_STATE, NULL);
    is_string("\"On\"", r.json, "PowerState");
    free(r.json);
    r = run(b, WARD_RF_OP_POWER, "On");
    is_int(0, r.code, "On is advertised and already reached (%s)", r.reason);
    free(r.json);
    r = run(b, WARD_RF_OP_POWER, "PowerCycle");
    contains(r.reason, "(it offers: On, ForceOff, GracefulShutdown, GracefulRestart",
             "PowerCycle is not advertised: %s", r.reason);
    free(r.json);

    /* CD1 lives under Systems (the manager has no VirtualMedia) and has no actions: the
       eject goes through the PATCH fallback; the read-only mockup still shows it inserted */
    r = run(b, WARD_RF_OP_EJECT_MEDIA, NULL);
    contains(r.reason, "media still inserted", "eject on a read-only mockup: %s", r.reason);
    free(r.json);
    struct tserver_stats st;
    tserver_stats(s, &st);
    is_string("/redfish/v1/Systems/437XR1138R2/VirtualMedia/CD1", st.image,
              "the CD member was found under Systems and PATCHed");

    r = run(b, WARD_RF_OP_BOOT_ONCE, "Cd");
    contains(r.reason, "reports Target=Pxe Enabled=Once",
             "boot override verified by reading back: %s", r.reason);
    free(r.json);
    r = run(b, WARD_RF_OP_BOOT_ONCE, "Floppy");
    is_int(-ENOTSUP, r.code, "a target outside AllowableValues is refused");
    free(r.json);
    tserver_stats(s, &st);
    is_int(1, st.logins, "one session for everything");

    ward_rf_bmc_destroy(b);
    ward_rf_client_destroy(c);
    ward_rf_quirks_free(quirks);
    tserver_stop(s);
    tca_free(ca);
    ward_log_set_stream(NULL);
    fclose(logf);
    ev_loop_destroy(loop);
    return 0;
}
