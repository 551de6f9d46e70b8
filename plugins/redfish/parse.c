/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading Redfish documents. Everything here takes JSON a BMC sent, so every access is
 * checked for type and size; nothing is trusted to be present or well formed.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bmc.h"
#include "parse.h"

const char *ward_rf_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *ward_rf_link(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return ward_rf_str(v, "@odata.id");
}

static void append(char *out, size_t outlen, const char *text)
{
    size_t used = strlen(out);
    if (used + 1 >= outlen || text == NULL || text[0] == '\0') {
        return;
    }
    if (used > 0) {
        snprintf(out + used, outlen - used, "; ");
        used = strlen(out);
    }
    snprintf(out + used, outlen - used, "%s", text);
    /* a BMC's text goes to logs and events: keep it on one line and printable */
    for (char *p = out + used; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
}

char *ward_rf_error_reason(const char *body, char *out, size_t outlen)
{
    if (outlen == 0) {
        return out;
    }
    out[0] = '\0';
    if (body == NULL) {
        return out;
    }
    cJSON *doc = cJSON_Parse(body);
    const cJSON *err = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "error") : NULL;
    const cJSON *info = NULL;
    if (cJSON_IsObject(err)) {
        info = cJSON_GetObjectItemCaseSensitive(err, "@Message.ExtendedInfo");
    } else if (cJSON_IsObject(doc)) {
        /* some services put ExtendedInfo at the top level of an action's answer */
        info = cJSON_GetObjectItemCaseSensitive(doc, "@Message.ExtendedInfo");
    }
    const cJSON *m;
    int n = 0;
    cJSON_ArrayForEach(m, (cJSON_IsArray(info) ? info : NULL))
    {
        if (n++ >= 8) {
            break;
        }
        const char *msg = ward_rf_str(m, "Message");
        const char *id = ward_rf_str(m, "MessageId");
        if (msg != NULL) {
            append(out, outlen, msg);
        } else if (id != NULL) {
            append(out, outlen, id);
        }
    }
    if (out[0] == '\0') {
        append(out, outlen, ward_rf_str(err, "message"));
    }
    cJSON_Delete(doc);
    return out;
}

static void copy_str(cJSON *to, const char *name, const cJSON *from, const char *key)
{
    const char *v = ward_rf_str(from, key);
    if (v != NULL) {
        cJSON_AddStringToObject(to, name, v);
    }
}

cJSON *ward_rf_inventory_from_system(const cJSON *doc)
{
    if (!cJSON_IsObject(doc)) {
        return NULL;
    }
    cJSON *inv = cJSON_CreateObject();
    copy_str(inv, "manufacturer", doc, "Manufacturer");
    copy_str(inv, "model", doc, "Model");
    copy_str(inv, "serial", doc, "SerialNumber");
    copy_str(inv, "uuid", doc, "UUID");
    copy_str(inv, "bios_version", doc, "BiosVersion");
    copy_str(inv, "power_state", doc, "PowerState");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(doc, "ProcessorSummary");
    const cJSON *count = cJSON_IsObject(ps) ? cJSON_GetObjectItemCaseSensitive(ps, "Count") : NULL;
    if (cJSON_IsNumber(count) && count->valuedouble >= 0 && count->valuedouble < 1e6) {
        cJSON_AddNumberToObject(inv, "cpu_count", count->valuedouble);
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(doc, "MemorySummary");
    const cJSON *gib =
        cJSON_IsObject(ms) ? cJSON_GetObjectItemCaseSensitive(ms, "TotalSystemMemoryGiB") : NULL;
    if (cJSON_IsNumber(gib) && gib->valuedouble >= 0 && gib->valuedouble < 1e9) {
        cJSON_AddNumberToObject(inv, "memory_gib", gib->valuedouble);
    }
    cJSON_AddArrayToObject(inv, "macs");
    return inv;
}

size_t ward_rf_allowable_values(const cJSON *doc, const char *param, const char **out, size_t n)
{
    if (n == 0) {
        return 0;
    }
    size_t count = 0;
    out[0] = NULL;
    char key[128];
    snprintf(key, sizeof(key), "%s@Redfish.AllowableValues", param);
    const cJSON *vals = NULL;
    /* a ComputerSystem: Actions.#ComputerSystem.Reset.<param>@Redfish.AllowableValues */
    const cJSON *actions =
        cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "Actions") : NULL;
    const cJSON *reset = cJSON_IsObject(actions)
                             ? cJSON_GetObjectItemCaseSensitive(actions, "#ComputerSystem.Reset")
                             : NULL;
    if (cJSON_IsObject(reset)) {
        vals = cJSON_GetObjectItemCaseSensitive(reset, key);
    }
    /* an ActionInfo: Parameters[Name == param].AllowableValues */
    const cJSON *params =
        cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "Parameters") : NULL;
    const cJSON *p;
    cJSON_ArrayForEach(p, ((vals == NULL && cJSON_IsArray(params)) ? params : NULL))
    {
        const char *name = ward_rf_str(p, "Name");
        if (name != NULL && strcmp(name, param) == 0) {
            vals = cJSON_GetObjectItemCaseSensitive(p, "AllowableValues");
            break;
        }
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, (cJSON_IsArray(vals) ? vals : NULL))
    {
        if (cJSON_IsString(v) && count + 1 < n) {
            out[count++] = v->valuestring;
            out[count] = NULL;
        }
    }
    return count;
}

bool ward_rf_path_ok(const char *base, const char *s, char *path, size_t pathlen)
{
    if (s == NULL || pathlen == 0) {
        return false;
    }
    size_t bl = strlen(base);
    if (strncasecmp(s, "http", 4) == 0) {
        /* an absolute link must point at this very BMC, or our token would leak */
        if (strncasecmp(s, base, bl) != 0 || s[bl] != '/') {
            return false;
        }
        s += bl;
    }
    if (s[0] != '/' || strlen(s) >= pathlen) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == '#' || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    if (strstr(s, "/../") != NULL || strstr(s, "//") != NULL) {
        return false;
    }
    snprintf(path, pathlen, "%s", s);
    return true;
}

bool ward_rf_media_is_cd(const cJSON *doc)
{
    const cJSON *types =
        cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "MediaTypes") : NULL;
    const cJSON *t;
    cJSON_ArrayForEach(t, (cJSON_IsArray(types) ? types : NULL))
    {
        if (cJSON_IsString(t) &&
            (strcmp(t->valuestring, "CD") == 0 || strcmp(t->valuestring, "DVD") == 0)) {
            return true;
        }
    }
    const char *id = ward_rf_str(doc, "Id");
    return types == NULL && id != NULL && (strcasecmp(id, "CD") == 0 || strstr(id, "CD") != NULL);
}

int ward_rf_media_inserted(const cJSON *doc)
{
    const cJSON *v = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "Inserted") : NULL;
    if (cJSON_IsBool(v)) {
        return cJSON_IsTrue(v) ? 1 : 0;
    }
    const char *img = ward_rf_str(doc, "Image");
    return img != NULL && img[0] != '\0' ? 1 : 0;
}

int ward_rf_validate(const char *body, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (doc == NULL) {
        return -1;
    }
    const char *links[16];
    char path[512];
    char reason[512];
    ward_rf_allowable_values(doc, "ResetType", links, 16);
    ward_rf_allowable_values(doc, "BootSourceOverrideTarget", links, 16);
    cJSON *inv = ward_rf_inventory_from_system(doc);
    cJSON_Delete(inv);
    ward_rf_media_is_cd(doc);
    ward_rf_media_inserted(doc);
    const char *id = ward_rf_str(doc, "@odata.id");
    ward_rf_path_ok("https://127.0.0.1:1", id, path, sizeof(path));
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(doc, "Members");
    const cJSON *m;
    cJSON_ArrayForEach(m, (cJSON_IsArray(members) ? members : NULL))
    {
        ward_rf_path_ok("https://127.0.0.1:1", ward_rf_str(m, "@odata.id"), path, sizeof(path));
    }
    cJSON_Delete(doc);
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, body, len);
        copy[len] = '\0';
        ward_rf_error_reason(copy, reason, sizeof(reason));
        free(copy);
    }
    return 0;
}
