/* SPDX-License-Identifier: Apache-2.0 */
/* ward-bmcsim flavours differ the way real BMCs do: ids and paths, where VirtualMedia lives,
 * ETag-guarded PATCH, sessions-only auth, task monitors, and the quirks ward's hooks handle. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap/basic.h"
#include "simclient.h"

enum { GENERIC, DELL, HPE, SMC, OBMC };

static void advance(struct sim *s, int ms)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"advance_ms\":%d}", ms);
    if (sim_control_post(s, "/control/clock", body) != 200) {
        bail("cannot move the simulator's clock");
    }
}

static long status_of(struct sim *s, int i, const char *method, const char *path, const char *body,
                      const char *auth, const char *hdr)
{
    struct http_result r = sim_http(s, i, method, path, body, auth, hdr, 10);
    long st = r.status;
    http_free(&r);
    return st;
}

static void test_dell(struct sim *s)
{
    const char *sys = "/redfish/v1/Systems/System.Embedded.1";
    const char *cd = "/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia/CD";
    struct http_result r = sim_http(s, DELL, "GET", "/redfish/v1/Systems", NULL, "basic", NULL, 10);
    is_string(sys, json_str(r.json, "Members/0/@odata.id"), "dell-like: System.Embedded.1");
    http_free(&r);
    r = sim_http(s, DELL, "GET", sys, NULL, "basic", NULL, 10);
    ok(json_at(r.json, "VirtualMedia") == NULL, "dell-like: no VirtualMedia under Systems");
    is_string("DellLike Inc.", json_str(r.json, "Manufacturer"), "dell-like: manufacturer");
    http_free(&r);
    r = sim_http(s, DELL, "GET", "/redfish/v1/Managers/Manager.Embedded.1", NULL, "basic", NULL,
                 10);
    is_string("/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia",
              json_str(r.json, "VirtualMedia/@odata.id"), "dell-like: VirtualMedia under Managers");
    is_string("4.40.00.00", json_str(r.json, "FirmwareVersion"), "dell-like: older firmware");
    http_free(&r);
    r = sim_http(s, DELL, "POST",
                 "/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia/CD/Actions/"
                 "VirtualMedia.EjectMedia",
                 "{}", "basic", NULL, 10);
    is_int(400, r.status, "dell-like: EjectMedia with nothing inserted is refused");
    ok(json_at(r.json, "error/@Message.ExtendedInfo/0/Message") != NULL,
       "dell-like: the refusal has a Redfish error body");
    http_free(&r);
    char path[256];
    snprintf(path, sizeof(path), "%s/Actions/VirtualMedia.InsertMedia", cd);
    is_int(
        204,
        status_of(s, DELL, "POST", path, "{\"Image\":\"https://10.0.0.1/a.iso\"}", "basic", NULL),
        "dell-like: InsertMedia");
    snprintf(path, sizeof(path), "%s/Actions/VirtualMedia.EjectMedia", cd);
    is_int(204, status_of(s, DELL, "POST", path, "{}", "basic", NULL),
           "dell-like: EjectMedia of inserted media");
    /* the old value until the change is done */
    snprintf(path, sizeof(path), "%s/Actions/ComputerSystem.Reset", sys);
    is_int(204, status_of(s, DELL, "POST", path, "{\"ResetType\":\"On\"}", "basic", NULL),
           "dell-like: power on accepted");
    r = sim_http(s, DELL, "GET", sys, NULL, "basic", NULL, 10);
    is_string("Off", json_str(r.json, "PowerState"), "dell-like: reads Off until powered on");
    http_free(&r);
    advance(s, 1000);
    r = sim_http(s, DELL, "GET", sys, NULL, "basic", NULL, 10);
    is_string("On", json_str(r.json, "PowerState"), "dell-like: On after the delay");
    http_free(&r);
}

static void test_hpe(struct sim *s)
{
    const char *sys = "/redfish/v1/Systems/1";
    struct http_result r = sim_http(s, HPE, "GET", sys, NULL, "basic", NULL, 10);
    char etag[128];
    snprintf(etag, sizeof(etag), "If-Match: %s",
             http_header(&r, "ETag") ? http_header(&r, "ETag") : "");
    cJSON *allowed = json_at(r.json, "Actions/#ComputerSystem.Reset/"
                                     "ResetType@Redfish.AllowableValues");
    bool graceful = false;
    cJSON *v;
    cJSON_ArrayForEach(v, allowed)
    {
        graceful |= cJSON_IsString(v) && strcmp(v->valuestring, "GracefulRestart") == 0;
    }
    ok(cJSON_IsArray(allowed) && !graceful, "hpe-like: no GracefulRestart advertised");
    http_free(&r);
    const char *patch = "{\"Boot\":{\"BootSourceOverrideTarget\":\"Cd\","
                        "\"BootSourceOverrideEnabled\":\"Once\"}}";
    r = sim_http(s, HPE, "PATCH", sys, patch, "basic", NULL, 10);
    is_int(412, r.status, "hpe-like: PATCH without If-Match: 412");
    contains(r.body, "If-Match", "hpe-like: the error says what is missing");
    http_free(&r);
    is_int(412, status_of(s, HPE, "PATCH", sys, patch, "basic", "If-Match: \"0000\""),
           "hpe-like: PATCH with a stale ETag: 412");
    is_int(204, status_of(s, HPE, "PATCH", sys, patch, "basic", etag),
           "hpe-like: PATCH with the current ETag");
    is_int(400,
           status_of(s, HPE, "POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                     "{\"ResetType\":\"GracefulRestart\"}", "basic", NULL),
           "hpe-like: a ResetType it does not advertise: 400");
    /* task monitor */
    r = sim_http(s, HPE, "POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                 "{\"ResetType\":\"On\"}", "basic", NULL, 10);
    is_int(202, r.status, "hpe-like: Reset answers 202");
    char mon[256] = "";
    if (http_header(&r, "Location") != NULL) {
        snprintf(mon, sizeof(mon), "%s", http_header(&r, "Location"));
    }
    contains(mon, "/redfish/v1/TaskService/TaskMonitors/", "hpe-like: Location is a task monitor");
    http_free(&r);
    r = sim_http(s, HPE, "GET", mon, NULL, "basic", NULL, 10);
    is_int(202, r.status, "hpe-like: monitor says still running");
    is_string("Running", json_str(r.json, "TaskState"), "hpe-like: TaskState Running");
    http_free(&r);
    advance(s, 1000);
    r = sim_http(s, HPE, "GET", mon, NULL, "basic", NULL, 10);
    is_int(200, r.status, "hpe-like: monitor done");
    is_string("Completed", json_str(r.json, "TaskState"), "hpe-like: TaskState Completed");
    http_free(&r);
    r = sim_http(s, HPE, "GET", sys, NULL, "basic", NULL, 10);
    is_string("On", json_str(r.json, "PowerState"), "hpe-like: powered on when the task is done");
    is_string("None", json_str(r.json, "Boot/BootSourceOverrideTarget"),
              "hpe-like: override consumed by the boot");
    http_free(&r);
    /* InsertMedia through a task: not inserted until the task completes */
    const char *vm = "/redfish/v1/Managers/1/VirtualMedia/2";
    r = sim_http(s, HPE, "POST",
                 "/redfish/v1/Managers/1/VirtualMedia/2/Actions/VirtualMedia.InsertMedia",
                 "{\"Image\":\"http://10.0.0.1/b.iso\"}", "basic", NULL, 10);
    is_int(202, r.status, "hpe-like: InsertMedia answers 202");
    http_free(&r);
    r = sim_http(s, HPE, "GET", vm, NULL, "basic", NULL, 10);
    ok(cJSON_IsFalse(json_at(r.json, "Inserted")), "hpe-like: not inserted while the task runs");
    http_free(&r);
    advance(s, 2000);
    r = sim_http(s, HPE, "GET", vm, NULL, "basic", NULL, 10);
    ok(cJSON_IsTrue(json_at(r.json, "Inserted")), "hpe-like: inserted once the task is done");
    http_free(&r);
}

static void test_smc(struct sim *s)
{
    const char *sys = "/redfish/v1/Systems/1";
    struct http_result r = sim_http(s, SMC, "GET", sys, NULL, "basic", NULL, 10);
    is_int(401, r.status, "supermicro-like: basic auth refused");
    ok(http_header(&r, "WWW-Authenticate") == NULL, "supermicro-like: no basic challenge");
    http_free(&r);
    char *tok = sim_login(s, SMC);
    ok(tok != NULL, "supermicro-like: session login works");
    r = sim_http(s, SMC, "GET", sys, NULL, tok, NULL, 10);
    is_int(200, r.status, "supermicro-like: token accepted");
    ok(json_at(r.json, "Boot/BootSourceOverrideTarget") != NULL &&
           json_at(r.json, "Boot/BootSourceOverrideMode") == NULL,
       "supermicro-like: Boot has no BootSourceOverrideMode");
    http_free(&r);
    r = sim_http(s, SMC, "PATCH", sys, "{\"Boot\":{\"BootSourceOverrideMode\":\"UEFI\"}}", tok,
                 NULL, 10);
    is_int(400, r.status, "supermicro-like: PATCH of the mode is refused");
    contains(r.body, "PropertyUnknown", "supermicro-like: as an unknown property");
    http_free(&r);
    r = sim_http(s, SMC, "GET", "/redfish/v1/Managers/1/VirtualMedia/CD1", NULL, tok, NULL, 10);
    ok(cJSON_IsTrue(json_at(r.json, "Inserted")), "supermicro-like: empty slot claims Inserted");
    is_string("NotConnected", json_str(r.json, "ConnectedVia"),
              "supermicro-like: but is NotConnected");
    ok(cJSON_IsNull(json_at(r.json, "Image")), "supermicro-like: and has no image");
    http_free(&r);
    const char *reset = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";
    is_int(204, status_of(s, SMC, "POST", reset, "{\"ResetType\":\"On\"}", tok, NULL),
           "supermicro-like: power on");
    advance(s, 1000);
    is_int(204, status_of(s, SMC, "POST", reset, "{\"ResetType\":\"ForceOff\"}", tok, NULL),
           "supermicro-like: power off");
    r = sim_http(s, SMC, "POST", reset, "{\"ResetType\":\"On\"}", tok, NULL, 10);
    is_int(409, r.status, "supermicro-like: power on while powering off: 409");
    ok(json_at(r.json, "error/@Message.ExtendedInfo/0/MessageId") != NULL,
       "supermicro-like: 409 has a Redfish error body");
    http_free(&r);
    advance(s, 1000);
    is_int(409, status_of(s, SMC, "POST", reset, "{\"ResetType\":\"On\"}", tok, NULL),
           "supermicro-like: still 409 just after power off");
    advance(s, 10000);
    is_int(204, status_of(s, SMC, "POST", reset, "{\"ResetType\":\"On\"}", tok, NULL),
           "supermicro-like: power on accepted after the block");
    free(tok);
}

static void test_obmc(struct sim *s)
{
    const char *sys = "/redfish/v1/Systems/system";
    const char *slot = "/redfish/v1/Managers/bmc/VirtualMedia/Slot_0";
    struct http_result r = sim_http(s, OBMC, "GET", sys, NULL, "basic", NULL, 10);
    is_int(200, r.status, "openbmc-like: Systems/system");
    const char *info = json_str(r.json, "Actions/#ComputerSystem.Reset/@Redfish.ActionInfo");
    char infopath[256] = "";
    if (info != NULL) {
        snprintf(infopath, sizeof(infopath), "%s", info);
    }
    ok(json_at(r.json, "Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues") == NULL,
       "openbmc-like: ResetType values not inline");
    http_free(&r);
    r = sim_http(s, OBMC, "GET", infopath, NULL, "basic", NULL, 10);
    is_string("ResetType", json_str(r.json, "Parameters/0/Name"),
              "openbmc-like: ActionInfo describes ResetType");
    ok(cJSON_GetArraySize(json_at(r.json, "Parameters/0/AllowableValues")) > 3,
       "openbmc-like: ActionInfo lists the values");
    http_free(&r);
    r = sim_http(s, OBMC, "GET", slot, NULL, "basic", NULL, 10);
    ok(r.status == 200 && json_at(r.json, "Actions") == NULL,
       "openbmc-like: no InsertMedia action");
    http_free(&r);
    is_int(404,
           status_of(s, OBMC, "POST",
                     "/redfish/v1/Managers/bmc/VirtualMedia/Slot_0/Actions/"
                     "VirtualMedia.InsertMedia",
                     "{\"Image\":\"http://10.0.0.1/c.iso\"}", "basic", NULL),
           "openbmc-like: InsertMedia is not there");
    is_int(
        204,
        status_of(s, OBMC, "PATCH", slot, "{\"Image\":\"http://10.0.0.1/c.iso\"}", "basic", NULL),
        "openbmc-like: PATCH Image inserts");
    r = sim_http(s, OBMC, "GET", slot, NULL, "basic", NULL, 10);
    is_string("http://10.0.0.1/c.iso", json_str(r.json, "Image"), "openbmc-like: image set");
    http_free(&r);
    is_int(204, status_of(s, OBMC, "PATCH", slot, "{\"Image\":null}", "basic", NULL),
           "openbmc-like: PATCH Image null ejects");
    r = sim_http(s, OBMC, "GET", slot, NULL, "basic", NULL, 10);
    ok(cJSON_IsFalse(json_at(r.json, "Inserted")), "openbmc-like: ejected");
    http_free(&r);
}

/* $expand: the flavours that offer it inline a collection's members in one request; the
 * others ignore the query, as services do with query options they lack. */
static void test_expand(struct sim *s)
{
    struct http_result r = sim_http(s, GENERIC, "GET", "/redfish/v1", NULL, NULL, NULL, 10);
    ok(cJSON_IsTrue(json_at(r.json, "ProtocolFeaturesSupported/ExpandQuery/NoLinks")),
       "generic: the root offers $expand=.");
    is_int(1, (long long)json_num(r.json, "ProtocolFeaturesSupported/ExpandQuery/MaxLevels"),
           "generic: one level");
    http_free(&r);
    const char *nics = "/redfish/v1/Systems/437XR1138R2/EthernetInterfaces";
    char path[256];
    double requests = sim_counter(s, GENERIC, "requests");
    double expanded = sim_counter(s, GENERIC, "expanded");
    snprintf(path, sizeof(path), "%s?$expand=.($levels=1)", nics);
    r = sim_http(s, GENERIC, "GET", path, NULL, "basic", NULL, 10);
    ok(r.status == 200 && json_str(r.json, "Members/1/MACAddress") != NULL,
       "generic: $expand=.($levels=1) inlines the NICs (%ld)", r.status);
    http_free(&r);
    /* the counters are read through the control API, which the simulator does not count */
    is_int(1, (long long)(sim_counter(s, GENERIC, "requests") - requests), "in one request");
    is_int(2, (long long)(sim_counter(s, GENERIC, "expanded") - expanded),
           "that answers two members inline");
    snprintf(path, sizeof(path), "%s?$expand=~", nics);
    r = sim_http(s, GENERIC, "GET", path, NULL, "basic", NULL, 10);
    ok(r.status == 200 && json_str(r.json, "Members/0/MACAddress") == NULL,
       "generic: $expand=~ leaves members as links (Links holds none)");
    http_free(&r);
    snprintf(path, sizeof(path), "%s?$expand=.($levels=2)", nics);
    is_int(400, status_of(s, GENERIC, "GET", path, NULL, "basic", NULL),
           "generic: two levels are out of range");
    snprintf(path, sizeof(path), "%s?$expand=*($levels=0)", nics);
    is_int(400, status_of(s, GENERIC, "GET", path, NULL, "basic", NULL),
           "generic: zero levels are out of range");
    snprintf(path, sizeof(path), "%s?$expand=Members", nics);
    is_int(400, status_of(s, GENERIC, "GET", path, NULL, "basic", NULL),
           "generic: an $expand value it does not take is refused");
    r = sim_http(s, OBMC, "GET", "/redfish/v1", NULL, NULL, NULL, 10);
    ok(r.status == 200 && json_at(r.json, "ProtocolFeaturesSupported") == NULL,
       "openbmc-like: the root offers no query options");
    http_free(&r);
    r = sim_http(s, OBMC, "GET", "/redfish/v1/Systems/system/EthernetInterfaces?$expand=.", NULL,
                 "basic", NULL, 10);
    ok(r.status == 200 && json_str(r.json, "Members/0/@odata.id") != NULL &&
           json_str(r.json, "Members/0/MACAddress") == NULL,
       "openbmc-like: $expand is ignored, members stay links (%ld)", r.status);
    http_free(&r);
}

int main(void)
{
    plan(83);
    struct sim s;
    const char *args[] = {"--bmcs",    "5",    "--flavour",          "all",
                          "--task-ms", "2000", "--poweron-block-ms", "10000",
                          NULL};
    sim_start(&s, args);
    is_string("generic", json_str(s.fleet, "bmcs/0/flavour"), "flavours assigned round robin");
    is_string("openbmc-like", json_str(s.fleet, "bmcs/4/flavour"), "... up to openbmc-like");
    test_dell(&s);
    test_hpe(&s);
    test_smc(&s);
    test_obmc(&s);
    test_expand(&s);
    struct http_result r =
        sim_http(&s, GENERIC, "GET", "/redfish/v1/Managers/BMC", NULL, "basic", NULL, 10);
    ok(r.status == 200 && json_at(r.json, "VirtualMedia") == NULL,
       "generic: VirtualMedia not under the Manager");
    http_free(&r);
    /* a firmware update at runtime moves virtual media, keeping what is inserted */
    is_int(204,
           status_of(&s, DELL, "POST",
                     "/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia/CD/Actions/"
                     "VirtualMedia.InsertMedia",
                     "{\"Image\":\"https://10.0.0.1/d.iso\"}", "basic", NULL),
           "dell-like: insert before the update");
    is_int(200, sim_control_post(&s, "/control/quirks", "{\"bmc\":1,\"vm_on_systems\":true}"),
           "control: switch vm_on_systems on at runtime");
    r = sim_http(&s, DELL, "GET", "/redfish/v1/Systems/System.Embedded.1/VirtualMedia/CD", NULL,
                 "basic", NULL, 10);
    is_string("https://10.0.0.1/d.iso", json_str(r.json, "Image"),
              "after the update the media is found under Systems");
    http_free(&r);
    is_int(400, sim_control_post(&s, "/control/quirks", "{\"bmc\":1,\"bogus\":true}"),
           "control: unknown quirk refused");
    cJSON *rep = sim_control_bmc(&s, DELL);
    cJSON *q;
    bool listed = false;
    cJSON_ArrayForEach(q, json_at(rep, "quirks"))
    {
        listed |= cJSON_IsString(q) && strcmp(q->valuestring, "vm_on_systems") == 0;
    }
    ok(listed, "control report lists the switched quirk");
    cJSON_Delete(rep);
    is_int(0, sim_stop(&s), "simulator stopped");

    /* newer firmware: virtual media moved to Systems; several systems per BMC */
    const char *args2[] = {"--flavour", "dell-like", "--quirk", "vm_on_systems",
                           "--systems", "2",         NULL};
    sim_start(&s, args2);
    r = sim_http(&s, 0, "GET", "/redfish/v1/Systems", NULL, "basic", NULL, 10);
    is_int(2, (long long)json_num(r.json, "Members@odata.count"), "two systems listed");
    is_string("/redfish/v1/Systems/System.Embedded.1-2", json_str(r.json, "Members/1/@odata.id"),
              "the second system has its own id");
    http_free(&r);
    r = sim_http(&s, 0, "GET", "/redfish/v1/Managers/Manager.Embedded.1", NULL, "basic", NULL, 10);
    ok(json_at(r.json, "VirtualMedia") == NULL, "newer firmware: no VirtualMedia on the Manager");
    is_string("6.10.00.00", json_str(r.json, "FirmwareVersion"), "newer firmware version shown");
    http_free(&r);
    r = sim_http(&s, 0, "GET", "/redfish/v1/Systems/System.Embedded.1", NULL, "basic", NULL, 10);
    is_string("/redfish/v1/Systems/System.Embedded.1/VirtualMedia",
              json_str(r.json, "VirtualMedia/@odata.id"),
              "newer firmware: VirtualMedia on Systems");
    http_free(&r);
    is_int(404,
           status_of(&s, 0, "GET", "/redfish/v1/Managers/Manager.Embedded.1/VirtualMedia", NULL,
                     "basic", NULL),
           "the old location is gone");
    is_int(200,
           status_of(&s, 0, "GET", "/redfish/v1/Systems/System.Embedded.1-2/VirtualMedia/CD", NULL,
                     "basic", NULL),
           "each system has its own virtual media");
    is_int(0, sim_stop(&s), "simulator stopped");
    return 0;
}
