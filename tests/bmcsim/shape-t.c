/* SPDX-License-Identifier: Apache-2.0 */
/* The generic flavour agrees with DMTF's public-rackmount1 mockup: same ids and paths, and
 * for every property ward reads, the same name and JSON type. The mockup directory comes
 * from configure (--with-redfish-mockups) or WARD_REDFISH_MOCKUPS. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tap/basic.h"
#include "simclient.h"

#ifndef WARD_REDFISH_MOCKUPS
#define WARD_REDFISH_MOCKUPS ""
#endif

#define SYS "/redfish/v1/Systems/437XR1138R2"

struct shape {
    const char *mockup; /* file under public-rackmount1 */
    const char *path;   /* the simulator's resource */
    const char *props[32];
};

/* The properties ward's Redfish plugin reads (discovery, inventory, power, boot, media,
 * sessions). */
static const struct shape shapes[] = {
    {"index.json",
     "/redfish/v1/",
     {"@odata.id", "@odata.type", "Id", "Name", "RedfishVersion", "UUID", "Systems/@odata.id",
      "Managers/@odata.id", "SessionService/@odata.id", "Tasks/@odata.id",
      "Links/Sessions/@odata.id", NULL}},
    {"Systems/index.json",
     "/redfish/v1/Systems",
     {"@odata.id", "Members", "Members@odata.count", "Members/0/@odata.id", NULL}},
    {"Systems/437XR1138R2/index.json",
     SYS,
     {"@odata.id",
      "@odata.type",
      "Id",
      "Name",
      "Manufacturer",
      "Model",
      "SerialNumber",
      "UUID",
      "BiosVersion",
      "PowerState",
      "Status/State",
      "Status/Health",
      "Boot/BootSourceOverrideTarget",
      "Boot/BootSourceOverrideEnabled",
      "Boot/BootSourceOverrideMode",
      "Boot/BootSourceOverrideTarget@Redfish.AllowableValues",
      "Boot/BootSourceOverrideTarget@Redfish.AllowableValues/0",
      "ProcessorSummary/Count",
      "ProcessorSummary/Model",
      "ProcessorSummary/CoreCount",
      "ProcessorSummary/LogicalProcessorCount",
      "MemorySummary/TotalSystemMemoryGiB",
      "EthernetInterfaces/@odata.id",
      "VirtualMedia/@odata.id",
      "Links/ManagedBy/0/@odata.id",
      "Actions/#ComputerSystem.Reset/target",
      "Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues/0",
      NULL}},
    {"Systems/437XR1138R2/EthernetInterfaces/index.json",
     SYS "/EthernetInterfaces",
     {"@odata.id", "Members", "Members@odata.count", "Members/0/@odata.id", NULL}},
    {"Systems/437XR1138R2/EthernetInterfaces/12446A3B0411/index.json",
     NULL, /* first member of the collection */
     {"@odata.id", "Id", "MACAddress", "PermanentMACAddress", "SpeedMbps", "LinkStatus",
      "Status/State", NULL}},
    {"Managers/index.json",
     "/redfish/v1/Managers",
     {"@odata.id", "Members", "Members@odata.count", "Members/0/@odata.id", NULL}},
    {"Managers/BMC/index.json",
     "/redfish/v1/Managers/BMC",
     {"@odata.id", "@odata.type", "Id", "Name", "ManagerType", "Model", "FirmwareVersion", "UUID",
      "PowerState", "Status/State", "Links/ManagerForServers/0/@odata.id",
      "Actions/#Manager.Reset/target", "Actions/#Manager.Reset/ResetType@Redfish.AllowableValues",
      NULL}},
    {"Systems/437XR1138R2/VirtualMedia/index.json",
     SYS "/VirtualMedia",
     {"@odata.id", "Members", "Members@odata.count", "Members/0/@odata.id", NULL}},
    {"Systems/437XR1138R2/VirtualMedia/CD1/index.json",
     SYS "/VirtualMedia/CD1",
     {"@odata.id", "@odata.type", "Id", "Name", "MediaTypes", "MediaTypes/0", "Image", "ImageName",
      "Inserted", "WriteProtected", "ConnectedVia", NULL}},
    {"SessionService/index.json",
     "/redfish/v1/SessionService",
     {"@odata.id", "@odata.type", "Id", "Name", "ServiceEnabled", "SessionTimeout",
      "Sessions/@odata.id", "Status/State", NULL}},
    {"SessionService/Sessions/index.json",
     "/redfish/v1/SessionService/Sessions",
     {"@odata.id", "Members", "Members@odata.count", "Members/0/@odata.id", NULL}},
    {"SessionService/Sessions/1234567890ABCDEF/index.json",
     NULL, /* the session we logged in with */
     {"@odata.id", "@odata.type", "Id", "Name", "UserName", NULL}},
    {"TaskService/index.json",
     "/redfish/v1/TaskService",
     {"@odata.id", "@odata.type", "Id", "ServiceEnabled", "Tasks/@odata.id", NULL}},
};

static const char *type_name(cJSON *v)
{
    if (v == NULL) {
        return "missing";
    }
    if (cJSON_IsString(v)) {
        return "string";
    }
    if (cJSON_IsNumber(v)) {
        return "number";
    }
    if (cJSON_IsBool(v)) {
        return "boolean";
    }
    if (cJSON_IsNull(v)) {
        return "null";
    }
    if (cJSON_IsArray(v)) {
        return "array";
    }
    return "object";
}

/* Every property both documents have must have the same type, at any depth. */
static bool same_types(cJSON *mock, cJSON *sim, char *where, size_t n)
{
    for (cJSON *it = sim->child; it != NULL; it = it->next) {
        if (it->string == NULL) {
            continue;
        }
        cJSON *m = cJSON_GetObjectItemCaseSensitive(mock, it->string);
        if (m == NULL) {
            continue;
        }
        if (strcmp(type_name(m), type_name(it)) != 0) {
            snprintf(where, n, "%s: mockup %s, simulator %s", it->string, type_name(m),
                     type_name(it));
            return false;
        }
        if (cJSON_IsObject(it) && !same_types(m, it, where, n)) {
            return false;
        }
    }
    return true;
}

/* "#ComputerSystem.v1_20_0.ComputerSystem" -> "ComputerSystem" (the part after the version). */
static const char *odata_kind(const char *t)
{
    const char *dot = t != NULL ? strrchr(t, '.') : NULL;
    return dot != NULL ? dot + 1 : "";
}

int main(void)
{
    const char *dir = getenv("WARD_REDFISH_MOCKUPS");
    if (dir == NULL || *dir == '\0') {
        dir = WARD_REDFISH_MOCKUPS;
    }
    char base[1024];
    snprintf(base, sizeof(base), "%s/public-rackmount1", dir);
    struct stat st;
    if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode)) {
        skip_all("DMTF mockup public-rackmount1 not found under '%s' (configure "
                 "--with-redfish-mockups=DIR)",
                 dir);
    }
    size_t nshapes = sizeof(shapes) / sizeof(shapes[0]);
    size_t nprops = 0;
    for (size_t i = 0; i < nshapes; i++) {
        nprops += shapes[i].path != NULL;
        for (size_t p = 0; shapes[i].props[p] != NULL; p++) {
            nprops++;
        }
    }
    /* per resource: 200, same type everywhere, same @odata.type kind; per property: agree;\n     *
     * per fixed path: same @odata.id */
    plan(3 * nshapes + nprops + 3);

    struct sim s;
    const char *args[] = {"--flavour", "generic", NULL};
    sim_start(&s, args);
    char *tok = sim_login(&s, 0);
    ok(tok != NULL, "logged in");
    struct http_result r =
        sim_http(&s, 0, "POST", SYS "/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia",
                 "{\"Image\":\"http://10.0.0.1/freeOS.iso\"}", tok, NULL, 10);
    is_int(204, r.status, "media inserted, so Image and ImageName are strings as in the mockup");
    http_free(&r);

    char first_nic[256] = "", session[256] = "";
    for (size_t i = 0; i < nshapes; i++) {
        const struct shape *sh = &shapes[i];
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", base, sh->mockup);
        char *text = test_slurp(path);
        cJSON *mock = text != NULL ? cJSON_Parse(text) : NULL;
        free(text);
        if (mock == NULL) {
            bail("cannot parse %s", path);
        }
        const char *res = sh->path;
        if (res == NULL) {
            res = strstr(sh->mockup, "Sessions") != NULL ? session : first_nic;
        }
        r = sim_http(&s, 0, "GET", res, NULL, tok, NULL, 10);
        is_int(200, r.status, "GET %s", res);
        if (r.json == NULL) {
            r.json = cJSON_CreateObject();
        }
        if (strcmp(res, SYS "/EthernetInterfaces") == 0 &&
            json_str(r.json, "Members/0/@odata.id")) {
            snprintf(first_nic, sizeof(first_nic), "%s", json_str(r.json, "Members/0/@odata.id"));
        }
        if (strcmp(res, "/redfish/v1/SessionService/Sessions") == 0 &&
            json_str(r.json, "Members/0/@odata.id")) {
            snprintf(session, sizeof(session), "%s", json_str(r.json, "Members/0/@odata.id"));
        }
        for (size_t p = 0; sh->props[p] != NULL; p++) {
            cJSON *mv = json_at(mock, sh->props[p]);
            cJSON *sv = json_at(r.json, sh->props[p]);
            const char *mt = type_name(mv), *stn = type_name(sv);
            ok(mv != NULL && strcmp(mt, stn) == 0, "%s %s: mockup %s, simulator %s", sh->mockup,
               sh->props[p], mt, stn);
        }
        char where[256] = "";
        ok(same_types(mock, r.json, where, sizeof(where)),
           "%s: shared properties agree in type%s%s", sh->mockup, where[0] ? " - " : "", where);
        const char *mk = odata_kind(json_str(mock, "@odata.type"));
        const char *sk = odata_kind(json_str(r.json, "@odata.type"));
        ok(mk[0] == '\0' || strcmp(mk, sk) == 0, "%s: @odata.type is a %s", sh->mockup, mk);
        if (sh->path != NULL) {
            /* the generic flavour uses the mockup's ids, so its paths are the mockup's */
            is_string(json_str(mock, "@odata.id"), json_str(r.json, "@odata.id"),
                      "%s: same @odata.id", sh->mockup);
        }
        cJSON_Delete(mock);
        http_free(&r);
    }
    free(tok);
    is_int(0, sim_stop(&s), "simulator stopped");
    return 0;
}
