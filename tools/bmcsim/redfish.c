/* SPDX-License-Identifier: Apache-2.0 */
/* One simulated BMC's Redfish service: resources, sessions, power, boot and media state.
 * State changes are lazy: every request first brings the BMC up to the simulated clock
 * (finishing power changes and tasks, expiring sessions), so no timers are needed. */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "bmcsim.h"

#define MSG_PREFIX "Base.1.8."

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double sim_bmc_random(struct sim_bmc *b)
{
    return (double)(splitmix(&b->rng) >> 11) / (double)(1ULL << 53);
}

int sim_bmc_init(struct sim_bmc *b, int index, const struct sim_flavour *f,
                 const struct sim_options *opt)
{
    memset(b, 0, sizeof(*b));
    b->systems = calloc((size_t)opt->nsystems, sizeof(*b->systems));
    b->session_slots = opt->max_sessions;
    b->sessions = calloc((size_t)b->session_slots, sizeof(*b->sessions));
    if (b->systems == NULL || b->sessions == NULL) {
        free(b->systems);
        free(b->sessions);
        return -ENOMEM;
    }
    b->index = index;
    b->flavour = f;
    b->quirks = (f->quirks | opt->quirks_on) & ~opt->quirks_off;
    b->listen_fd = -1;
    snprintf(b->name, sizeof(b->name), "bmc-%04d", index);
    pthread_mutex_init(&b->lock, NULL);
    b->rng = opt->seed ^ ((uint64_t)index * 0x2545f4914f6cdd1dULL);
    b->faults = opt->faults;
    b->next_session_id = 1;
    b->next_task_id = 1;

    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        for (size_t i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (unsigned char)splitmix(&b->rng);
        }
    }
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    for (size_t i = 0; i < sizeof(rnd); i++) {
        b->password[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    }
    b->password[sizeof(rnd)] = '\0';

    snprintf(b->manager_path, sizeof(b->manager_path), "/redfish/v1/Managers/%s", f->manager_id);
    b->nsystems = opt->nsystems;
    for (int s = 0; s < b->nsystems; s++) {
        struct sim_system *sys = &b->systems[s];
        /* built in a local first: GCC cannot tell sys->id and sys->path apart */
        char id[sizeof(sys->id)];
        if (s == 0) {
            snprintf(id, sizeof(id), "%s", f->system_id);
        } else {
            snprintf(id, sizeof(id), "%s-%d", f->system_id, s + 1);
        }
        memcpy(sys->id, id, sizeof(id));
        snprintf(sys->path, sizeof(sys->path), "/redfish/v1/Systems/%s", id);
        uint64_t u1 = splitmix(&b->rng), u2 = splitmix(&b->rng);
        snprintf(sys->uuid, sizeof(sys->uuid), "%08" PRIx32 "-%04x-4%03x-8%03x-%012" PRIx64,
                 (uint32_t)u1, (unsigned)(u1 >> 32) & 0xffff, (unsigned)(u1 >> 48) & 0xfff,
                 (unsigned)u2 & 0xfff, (uint64_t)((u2 >> 12) & 0xffffffffffffULL));
        snprintf(sys->serial, sizeof(sys->serial), "SIM%05d%c%02d", index, 'A' + s,
                 (int)(u2 % 100));
        for (int n = 0; n < 2; n++) {
            snprintf(sys->macs[n], sizeof(sys->macs[n]), "52:54:%02x:%02x:%02x:%02x",
                     (index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff, (s << 4) | n);
        }
        sys->on = false;
        sys->off_at = -1e9;
        snprintf(sys->boot_target, sizeof(sys->boot_target), "None");
        snprintf(sys->boot_enabled, sizeof(sys->boot_enabled), "Disabled");
        snprintf(sys->boot_mode, sizeof(sys->boot_mode), "UEFI");
        snprintf(sys->last_boot_source, sizeof(sys->last_boot_source), "None");
    }
    return 0;
}

void sim_bmc_destroy(struct sim_bmc *b)
{
    for (int i = 0; i < SIM_MAX_TASKS; i++) {
        free(b->tasks[i].image);
    }
    free(b->systems);
    free(b->sessions);
    pthread_mutex_destroy(&b->lock);
}

/* ---------------------------------------------------------------------------------------- */
/* responses */

void sim_response_header(struct sim_response *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders >= SIM_MAX_HEADERS) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    if (vasprintf(&v, fmt, ap) < 0) {
        v = NULL;
    }
    va_end(ap);
    if (v == NULL) {
        return;
    }
    r->header_names[r->nheaders] = name;
    r->header_values[r->nheaders] = v;
    r->nheaders++;
}

void sim_response_free(struct sim_response *r)
{
    free(r->body);
    r->body = NULL;
    for (int i = 0; i < r->nheaders; i++) {
        free(r->header_values[i]);
    }
    r->nheaders = 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void etag_of(const char *body, char *out, size_t n)
{
    snprintf(out, n, "\"%016" PRIx64 "\"", fnv1a(body));
}

/* Send obj (consumed) with an ETag. */
static void reply_json(struct sim_response *rs, int status, cJSON *obj)
{
    rs->status = status;
    rs->body = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (rs->body != NULL) {
        char tag[24];
        etag_of(rs->body, tag, sizeof(tag));
        sim_response_header(rs, "ETag", "%s", tag);
    } else {
        rs->status = 500;
    }
}

static void reply_error(struct sim_response *rs, int status, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_error(struct sim_response *rs, int status, const char *id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char mid[96];
    snprintf(mid, sizeof(mid), MSG_PREFIX "%s", id);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code",
                            status >= 500 ? MSG_PREFIX "InternalError" : MSG_PREFIX "GeneralError");
    cJSON_AddStringToObject(e, "message",
                            "A general error has occurred. See ExtendedInfo for more information.");
    cJSON *info = cJSON_AddArrayToObject(e, "@Message.ExtendedInfo");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "@odata.type", "#Message.v1_1_1.Message");
    cJSON_AddStringToObject(m, "MessageId", mid);
    cJSON_AddStringToObject(m, "Message", msg);
    cJSON_AddItemToObject(m, "MessageArgs", cJSON_CreateArray());
    cJSON_AddStringToObject(m, "Severity", status >= 500 ? "Critical" : "Warning");
    cJSON_AddStringToObject(m, "Resolution", "See the message and correct the request.");
    cJSON_AddItemToArray(info, m);
    rs->status = status;
    rs->body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
}

static void reply_empty(struct sim_response *rs, int status)
{
    rs->status = status;
}

static void add_link(cJSON *obj, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_link(cJSON *obj, const char *key, const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    cJSON *l = cJSON_AddObjectToObject(obj, key);
    cJSON_AddStringToObject(l, "@odata.id", path);
}

static cJSON *member(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static cJSON *member(const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "@odata.id", path);
    return l;
}

static cJSON *collection(const char *type, const char *name, const char *path)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "@odata.type", type);
    cJSON_AddStringToObject(c, "Name", name);
    cJSON_AddNumberToObject(c, "Members@odata.count", 0);
    cJSON_AddArrayToObject(c, "Members");
    cJSON_AddStringToObject(c, "@odata.id", path);
    return c;
}

static void collection_add(cJSON *c, cJSON *m)
{
    cJSON *arr = cJSON_GetObjectItem(c, "Members");
    cJSON_AddItemToArray(arr, m);
    cJSON_SetNumberValue(cJSON_GetObjectItem(c, "Members@odata.count"), cJSON_GetArraySize(arr));
}

static cJSON *status_ok(void)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "State", "Enabled");
    cJSON_AddStringToObject(s, "Health", "OK");
    return s;
}

static cJSON *string_array(const char *const *v)
{
    cJSON *a = cJSON_CreateArray();
    for (; *v != NULL; v++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(*v));
    }
    return a;
}

static bool in_list(const char *const *v, const char *s)
{
    for (; *v != NULL; v++) {
        if (strcmp(*v, s) == 0) {
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* state */

static const struct sim_options *opts(void)
{
    return &sim_fleet->opt;
}

static struct sim_media *media_of(struct sim_bmc *b, int sys)
{
    return (b->quirks & SIM_Q_VM_ON_SYSTEMS) ? b->systems[sys].media : b->manager_media;
}

static void vm_base(struct sim_bmc *b, int sys, char *out, size_t n)
{
    if (b->quirks & SIM_Q_VM_ON_SYSTEMS) {
        snprintf(out, n, "%s/VirtualMedia", b->systems[sys].path);
    } else {
        snprintf(out, n, "%s/VirtualMedia", b->manager_path);
    }
}

static bool is_cd_target(const char *t)
{
    return strcmp(t, "Cd") == 0 || strcmp(t, "UefiCd") == 0 || strcmp(t, "UsbCd") == 0;
}

static void system_boot(struct sim_bmc *b, int s)
{
    struct sim_system *sys = &b->systems[s];
    const char *source = "Hdd";
    if (strcmp(sys->boot_enabled, "Disabled") != 0 && strcmp(sys->boot_target, "None") != 0) {
        source = sys->boot_target;
    }
    char src[sizeof(sys->last_boot_source)];
    snprintf(src, sizeof(src), "%s", source);
    memcpy(sys->last_boot_source, src, sizeof(src));
    sys->last_boot_image[0] = '\0';
    if (is_cd_target(source)) {
        const struct sim_flavour *f = b->flavour;
        struct sim_media *m = media_of(b, s);
        for (int i = 0; i < SIM_MAX_MEDIA; i++) {
            if (f->media[i].types[0] != NULL &&
                (strcmp(f->media[i].types[0], "CD") == 0 ||
                 (f->media[i].types[1] != NULL && strcmp(f->media[i].types[1], "CD") == 0)) &&
                m[i].inserted) {
                snprintf(sys->last_boot_image, sizeof(sys->last_boot_image), "%s", m[i].image);
                break;
            }
        }
    }
    /* A one-time override is used up by this boot. */
    if (strcmp(sys->boot_enabled, "Once") == 0) {
        snprintf(sys->boot_enabled, sizeof(sys->boot_enabled), "Disabled");
        snprintf(sys->boot_target, sizeof(sys->boot_target), "None");
    }
    sys->boots++;
}

static void apply_task(struct sim_bmc *b, struct sim_task *t)
{
    struct sim_media *m = &media_of(b, t->system)[t->media];
    if (t->kind == SIM_TASK_INSERT) {
        m->inserted = true;
        snprintf(m->image, sizeof(m->image), "%s", t->image != NULL ? t->image : "");
    } else if (t->kind == SIM_TASK_EJECT) {
        m->inserted = false;
        m->image[0] = '\0';
    }
    t->applied = true;
}

/* Bring the BMC up to simulated time now. */
static void tick(struct sim_bmc *b, double now)
{
    for (int s = 0; s < b->nsystems; s++) {
        struct sim_system *sys = &b->systems[s];
        if (sys->pending && now >= sys->pending_at) {
            sys->pending = false;
            if (sys->pending_on) {
                sys->on = true;
                if (sys->pending_boot) {
                    system_boot(b, s);
                }
            } else {
                sys->on = false;
                sys->off_at = sys->pending_at;
            }
        }
    }
    for (int i = 0; i < SIM_MAX_TASKS; i++) {
        struct sim_task *t = &b->tasks[i];
        if (t->used && !t->applied && now >= t->done_at) {
            apply_task(b, t);
        }
    }
    for (int i = 0; i < b->session_slots; i++) {
        struct sim_session *s = &b->sessions[i];
        if (s->used && now - s->last_used > opts()->session_timeout) {
            s->used = false;
        }
    }
}

void sim_bmc_set_quirks(struct sim_bmc *b, unsigned on, unsigned off)
{
    unsigned before = b->quirks;
    b->quirks = (b->quirks | on) & ~off;
    /* A "firmware update" that moves virtual media keeps what is inserted. */
    bool was = (before & SIM_Q_VM_ON_SYSTEMS) != 0, now = (b->quirks & SIM_Q_VM_ON_SYSTEMS) != 0;
    if (!was && now) {
        memcpy(b->systems[0].media, b->manager_media, sizeof(b->manager_media));
        memset(b->manager_media, 0, sizeof(b->manager_media));
    } else if (was && !now) {
        memcpy(b->manager_media, b->systems[0].media, sizeof(b->manager_media));
        for (int s = 0; s < b->nsystems; s++) {
            memset(b->systems[s].media, 0, sizeof(b->systems[s].media));
        }
    }
}

void sim_bmc_expire_sessions(struct sim_bmc *b)
{
    for (int i = 0; i < b->session_slots; i++) {
        b->sessions[i].used = false;
    }
}

static int active_sessions(struct sim_bmc *b)
{
    int n = 0;
    for (int i = 0; i < b->session_slots; i++) {
        n += b->sessions[i].used;
    }
    return n;
}

static const char *power_state(struct sim_bmc *b, struct sim_system *sys)
{
    if (sys->pending && b->flavour->transitional) {
        return sys->pending_on ? "PoweringOn" : "PoweringOff";
    }
    return sys->on ? "On" : "Off";
}

static struct sim_task *task_new(struct sim_bmc *b, enum sim_task_kind kind, double now,
                                 double done_at)
{
    /* Reuse the oldest slot: a real BMC also forgets old tasks. */
    struct sim_task *t = &b->tasks[(b->next_task_id - 1) % SIM_MAX_TASKS];
    free(t->image);
    memset(t, 0, sizeof(*t));
    t->used = true;
    t->id = b->next_task_id++;
    t->kind = kind;
    t->started = now;
    t->done_at = done_at;
    return t;
}

static struct sim_task *task_find(struct sim_bmc *b, const char *id)
{
    char *end = NULL;
    unsigned long n = strtoul(id, &end, 10);
    if (end == id || *end != '\0') {
        return NULL;
    }
    for (int i = 0; i < SIM_MAX_TASKS; i++) {
        if (b->tasks[i].used && b->tasks[i].id == n) {
            return &b->tasks[i];
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* resources */

static cJSON *res_root(struct sim_bmc *b)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#ServiceRoot.v1_15_0.ServiceRoot");
    cJSON_AddStringToObject(r, "Id", "RootService");
    cJSON_AddStringToObject(r, "Name", "Root Service");
    cJSON_AddStringToObject(r, "RedfishVersion", "1.15.0");
    cJSON_AddStringToObject(r, "UUID", b->systems[0].uuid);
    cJSON_AddStringToObject(r, "Vendor", b->flavour->manufacturer);
    add_link(r, "Systems", "/redfish/v1/Systems");
    add_link(r, "Managers", "/redfish/v1/Managers");
    add_link(r, "Tasks", "/redfish/v1/TaskService");
    add_link(r, "SessionService", "/redfish/v1/SessionService");
    if (b->flavour->expand) {
        /* what sim_expand() does: one level, hyperlinks outside Links (.) or all (*) */
        cJSON *pf = cJSON_AddObjectToObject(r, "ProtocolFeaturesSupported");
        cJSON *eq = cJSON_AddObjectToObject(pf, "ExpandQuery");
        cJSON_AddBoolToObject(eq, "ExpandAll", true);
        cJSON_AddBoolToObject(eq, "Levels", true);
        cJSON_AddNumberToObject(eq, "MaxLevels", 1);
        cJSON_AddBoolToObject(eq, "Links", false);
        cJSON_AddBoolToObject(eq, "NoLinks", true);
        cJSON_AddBoolToObject(pf, "FilterQuery", false);
        cJSON_AddBoolToObject(pf, "SelectQuery", false);
        cJSON_AddBoolToObject(pf, "OnlyMemberQuery", false);
        cJSON_AddBoolToObject(pf, "ExcerptQuery", false);
    }
    cJSON *links = cJSON_AddObjectToObject(r, "Links");
    add_link(links, "Sessions", "/redfish/v1/SessionService/Sessions");
    cJSON_AddStringToObject(r, "@odata.id", "/redfish/v1/");
    return r;
}

static cJSON *res_system(struct sim_bmc *b, int s)
{
    const struct sim_flavour *f = b->flavour;
    struct sim_system *sys = &b->systems[s];
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#ComputerSystem.v1_20_0.ComputerSystem");
    cJSON_AddStringToObject(r, "Id", sys->id);
    cJSON_AddStringToObject(r, "Name", "System");
    cJSON_AddStringToObject(r, "SystemType", "Physical");
    cJSON_AddStringToObject(r, "Manufacturer", f->manufacturer);
    cJSON_AddStringToObject(r, "Model", f->model);
    cJSON_AddStringToObject(r, "SerialNumber", sys->serial);
    cJSON_AddStringToObject(r, "UUID", sys->uuid);
    cJSON_AddItemToObject(r, "Status", status_ok());
    cJSON_AddStringToObject(r, "PowerState", power_state(b, sys));
    cJSON *boot = cJSON_AddObjectToObject(r, "Boot");
    cJSON_AddStringToObject(boot, "BootSourceOverrideEnabled", sys->boot_enabled);
    cJSON_AddStringToObject(boot, "BootSourceOverrideTarget", sys->boot_target);
    cJSON_AddItemToObject(boot, "BootSourceOverrideTarget@Redfish.AllowableValues",
                          string_array(f->boot_targets));
    if (!(b->quirks & SIM_Q_NO_BOOT_MODE)) {
        cJSON_AddStringToObject(boot, "BootSourceOverrideMode", sys->boot_mode);
    }
    cJSON_AddStringToObject(r, "BiosVersion", f->bios);
    cJSON *ps = cJSON_AddObjectToObject(r, "ProcessorSummary");
    cJSON_AddNumberToObject(ps, "Count", 2);
    cJSON_AddStringToObject(ps, "Model", "Simulated 16-core processor");
    cJSON_AddNumberToObject(ps, "LogicalProcessorCount", 64);
    cJSON_AddNumberToObject(ps, "CoreCount", 32);
    cJSON_AddItemToObject(ps, "Status", status_ok());
    cJSON *ms = cJSON_AddObjectToObject(r, "MemorySummary");
    cJSON_AddNumberToObject(ms, "TotalSystemMemoryGiB", 256);
    cJSON_AddItemToObject(ms, "Status", status_ok());
    add_link(r, "EthernetInterfaces", "%s/EthernetInterfaces", sys->path);
    if (b->quirks & SIM_Q_VM_ON_SYSTEMS) {
        add_link(r, "VirtualMedia", "%s/VirtualMedia", sys->path);
    }
    cJSON *links = cJSON_AddObjectToObject(r, "Links");
    cJSON *mb = cJSON_AddArrayToObject(links, "ManagedBy");
    cJSON_AddItemToArray(mb, member("%s", b->manager_path));
    cJSON *actions = cJSON_AddObjectToObject(r, "Actions");
    cJSON *reset = cJSON_AddObjectToObject(actions, "#ComputerSystem.Reset");
    char target[160];
    snprintf(target, sizeof(target), "%s/Actions/ComputerSystem.Reset", sys->path);
    cJSON_AddStringToObject(reset, "target", target);
    if (b->quirks & SIM_Q_ACTION_INFO) {
        snprintf(target, sizeof(target), "%s/ResetActionInfo", sys->path);
        cJSON_AddStringToObject(reset, "@Redfish.ActionInfo", target);
    } else {
        cJSON_AddItemToObject(reset, "ResetType@Redfish.AllowableValues",
                              string_array(f->reset_types));
    }
    cJSON_AddStringToObject(r, "@odata.id", sys->path);
    return r;
}

static cJSON *res_reset_action_info(struct sim_bmc *b, int s)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#ActionInfo.v1_1_2.ActionInfo");
    cJSON_AddStringToObject(r, "Id", "ResetActionInfo");
    cJSON_AddStringToObject(r, "Name", "Reset Action Info");
    cJSON *params = cJSON_AddArrayToObject(r, "Parameters");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "Name", "ResetType");
    cJSON_AddBoolToObject(p, "Required", true);
    cJSON_AddStringToObject(p, "DataType", "String");
    cJSON_AddItemToObject(p, "AllowableValues", string_array(b->flavour->reset_types));
    cJSON_AddItemToArray(params, p);
    char path[160];
    snprintf(path, sizeof(path), "%s/ResetActionInfo", b->systems[s].path);
    cJSON_AddStringToObject(r, "@odata.id", path);
    return r;
}

static void mac_id(const char *mac, char *out, size_t n)
{
    size_t j = 0;
    for (const char *p = mac; *p != '\0' && j + 1 < n; p++) {
        if (*p != ':') {
            out[j++] = *p;
        }
    }
    out[j] = '\0';
}

static cJSON *res_nic(struct sim_bmc *b, int s, int nic)
{
    struct sim_system *sys = &b->systems[s];
    char id[20];
    mac_id(sys->macs[nic], id, sizeof(id));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#EthernetInterface.v1_6_0.EthernetInterface");
    cJSON_AddStringToObject(r, "Id", id);
    cJSON_AddStringToObject(r, "Name", "Ethernet Interface");
    cJSON_AddItemToObject(r, "Status", status_ok());
    cJSON_AddStringToObject(r, "LinkStatus", "LinkUp");
    cJSON_AddStringToObject(r, "MACAddress", sys->macs[nic]);
    cJSON_AddStringToObject(r, "PermanentMACAddress", sys->macs[nic]);
    cJSON_AddNumberToObject(r, "SpeedMbps", 25000);
    char path[160];
    snprintf(path, sizeof(path), "%s/EthernetInterfaces/%s", sys->path, id);
    cJSON_AddStringToObject(r, "@odata.id", path);
    return r;
}

static cJSON *res_manager(struct sim_bmc *b)
{
    const struct sim_flavour *f = b->flavour;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#Manager.v1_10_0.Manager");
    cJSON_AddStringToObject(r, "Id", f->manager_id);
    cJSON_AddStringToObject(r, "Name", "Manager");
    cJSON_AddStringToObject(r, "ManagerType", "BMC");
    cJSON_AddStringToObject(r, "Model", f->model);
    cJSON_AddStringToObject(r, "FirmwareVersion",
                            (b->quirks & SIM_Q_VM_ON_SYSTEMS) ? f->firmware_new : f->firmware_old);
    cJSON_AddStringToObject(r, "UUID", b->systems[0].uuid);
    cJSON_AddItemToObject(r, "Status", status_ok());
    cJSON_AddStringToObject(r, "PowerState", "On");
    if (!(b->quirks & SIM_Q_VM_ON_SYSTEMS)) {
        add_link(r, "VirtualMedia", "%s/VirtualMedia", b->manager_path);
    }
    cJSON *links = cJSON_AddObjectToObject(r, "Links");
    cJSON *mfs = cJSON_AddArrayToObject(links, "ManagerForServers");
    for (int s = 0; s < b->nsystems; s++) {
        cJSON_AddItemToArray(mfs, member("%s", b->systems[s].path));
    }
    cJSON *actions = cJSON_AddObjectToObject(r, "Actions");
    cJSON *reset = cJSON_AddObjectToObject(actions, "#Manager.Reset");
    char target[160];
    snprintf(target, sizeof(target), "%s/Actions/Manager.Reset", b->manager_path);
    cJSON_AddStringToObject(reset, "target", target);
    static const char *const mreset[] = {"ForceRestart", "GracefulRestart", NULL};
    cJSON_AddItemToObject(reset, "ResetType@Redfish.AllowableValues", string_array(mreset));
    cJSON_AddStringToObject(r, "@odata.id", b->manager_path);
    return r;
}

static cJSON *res_media(struct sim_bmc *b, int s, int i)
{
    const struct sim_media_def *def = &b->flavour->media[i];
    struct sim_media *m = &media_of(b, s)[i];
    char base[160];
    vm_base(b, s, base, sizeof(base));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#VirtualMedia.v1_3_0.VirtualMedia");
    cJSON_AddStringToObject(r, "Id", def->id);
    cJSON_AddStringToObject(r, "Name", def->name);
    cJSON *types = cJSON_AddArrayToObject(r, "MediaTypes");
    for (int t = 0; t < 2 && def->types[t] != NULL; t++) {
        cJSON_AddItemToArray(types, cJSON_CreateString(def->types[t]));
    }
    if (m->inserted) {
        cJSON_AddStringToObject(r, "Image", m->image);
        const char *slash = strrchr(m->image, '/');
        cJSON_AddStringToObject(r, "ImageName", slash != NULL ? slash + 1 : m->image);
        cJSON_AddStringToObject(r, "ConnectedVia", "URI");
        cJSON_AddBoolToObject(r, "Inserted", true);
    } else {
        cJSON_AddNullToObject(r, "Image");
        cJSON_AddNullToObject(r, "ImageName");
        cJSON_AddStringToObject(r, "ConnectedVia", "NotConnected");
        /* The quirk: an empty slot that claims to hold something. */
        cJSON_AddBoolToObject(r, "Inserted", (b->quirks & SIM_Q_NOTCONNECTED_FREE) != 0);
    }
    cJSON_AddBoolToObject(r, "WriteProtected", m->inserted ? m->write_protected : true);
    if (!(b->quirks & SIM_Q_NO_INSERT_ACTION)) {
        cJSON *actions = cJSON_AddObjectToObject(r, "Actions");
        cJSON *ins = cJSON_AddObjectToObject(actions, "#VirtualMedia.InsertMedia");
        char target[224];
        snprintf(target, sizeof(target), "%s/%s/Actions/VirtualMedia.InsertMedia", base, def->id);
        cJSON_AddStringToObject(ins, "target", target);
        cJSON *ej = cJSON_AddObjectToObject(actions, "#VirtualMedia.EjectMedia");
        snprintf(target, sizeof(target), "%s/%s/Actions/VirtualMedia.EjectMedia", base, def->id);
        cJSON_AddStringToObject(ej, "target", target);
    }
    char path[200];
    snprintf(path, sizeof(path), "%s/%s", base, def->id);
    cJSON_AddStringToObject(r, "@odata.id", path);
    return r;
}

static cJSON *res_session_service(void)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#SessionService.v1_1_8.SessionService");
    cJSON_AddStringToObject(r, "Id", "SessionService");
    cJSON_AddStringToObject(r, "Name", "Session Service");
    cJSON_AddItemToObject(r, "Status", status_ok());
    cJSON_AddBoolToObject(r, "ServiceEnabled", true);
    cJSON_AddNumberToObject(r, "SessionTimeout", (double)(long)opts()->session_timeout);
    add_link(r, "Sessions", "/redfish/v1/SessionService/Sessions");
    cJSON_AddStringToObject(r, "@odata.id", "/redfish/v1/SessionService");
    return r;
}

static cJSON *res_session(struct sim_bmc *b, struct sim_session *s)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#Session.v1_3_0.Session");
    char id[16];
    snprintf(id, sizeof(id), "%u", s->id);
    cJSON_AddStringToObject(r, "Id", id);
    cJSON_AddStringToObject(r, "Name", "User Session");
    cJSON_AddStringToObject(r, "UserName", b->flavour->username);
    char path[96];
    snprintf(path, sizeof(path), "/redfish/v1/SessionService/Sessions/%u", s->id);
    cJSON_AddStringToObject(r, "@odata.id", path);
    return r;
}

static cJSON *res_task(struct sim_task *t, double now)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "@odata.type", "#Task.v1_4_3.Task");
    char id[16];
    snprintf(id, sizeof(id), "%u", t->id);
    cJSON_AddStringToObject(r, "Id", id);
    cJSON_AddStringToObject(r, "Name", "Task");
    bool done = now >= t->done_at;
    cJSON_AddStringToObject(r, "TaskState", done ? "Completed" : "Running");
    cJSON_AddStringToObject(r, "TaskStatus", "OK");
    double span = t->done_at - t->started;
    int pct = done || span <= 0 ? 100 : (int)(100.0 * (now - t->started) / span);
    cJSON_AddNumberToObject(r, "PercentComplete", pct);
    char path[96];
    snprintf(path, sizeof(path), "/redfish/v1/TaskService/TaskMonitors/%u", t->id);
    cJSON_AddStringToObject(r, "TaskMonitor", path);
    cJSON_AddItemToObject(r, "Messages", cJSON_CreateArray());
    snprintf(path, sizeof(path), "/redfish/v1/TaskService/Tasks/%u", t->id);
    cJSON_AddStringToObject(r, "@odata.id", path);
    return r;
}

/* Answer 202 with a task monitor for t. */
static void reply_task(struct sim_response *rs, struct sim_task *t, double now)
{
    sim_response_header(rs, "Location", "/redfish/v1/TaskService/TaskMonitors/%u", t->id);
    reply_json(rs, 202, res_task(t, now));
}

/* ---------------------------------------------------------------------------------------- */
/* request handling */

static cJSON *parse_body(const struct sim_request *rq, struct sim_response *rs)
{
    cJSON *j = NULL;
    if (rq->body != NULL && rq->body_len > 0) {
        j = cJSON_ParseWithLength(rq->body, rq->body_len);
    }
    if (j == NULL || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        reply_error(rs, 400, "MalformedJSON",
                    "The request body submitted was malformed JSON and could not be parsed.");
        return NULL;
    }
    return j;
}

/* If-Match against the resource's current ETag; false (and 412 queued) when it fails. */
static bool check_if_match(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs,
                           cJSON *current)
{
    char *body = cJSON_PrintUnformatted(current);
    cJSON_Delete(current);
    char tag[24] = "";
    if (body != NULL) {
        etag_of(body, tag, sizeof(tag));
    }
    free(body);
    if (rq->if_match == NULL) {
        if (b->quirks & SIM_Q_ETAG_REQUIRED) {
            reply_error(rs, 412, "PreconditionRequired",
                        "This resource requires an If-Match header with its current ETag.");
            return false;
        }
        return true;
    }
    if (strcmp(rq->if_match, "*") == 0 || strcmp(rq->if_match, tag) == 0) {
        return true;
    }
    /* Accept the weak form of the same tag too. */
    if (strncmp(rq->if_match, "W/", 2) == 0 && strcmp(rq->if_match + 2, tag) == 0) {
        return true;
    }
    reply_error(rs, 412, "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.");
    return false;
}

static const char *json_string(cJSON *obj, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void do_reset(struct sim_bmc *b, int s, const struct sim_request *rq,
                     struct sim_response *rs, double now)
{
    cJSON *j = parse_body(rq, rs);
    if (j == NULL) {
        return;
    }
    cJSON *rt = cJSON_GetObjectItemCaseSensitive(j, "ResetType");
    if (rt == NULL) {
        reply_error(rs, 400, "ActionParameterMissing",
                    "The action ComputerSystem.Reset requires the parameter ResetType.");
        cJSON_Delete(j);
        return;
    }
    if (!cJSON_IsString(rt) || !in_list(b->flavour->reset_types, rt->valuestring)) {
        reply_error(rs, 400, "ActionParameterNotSupported",
                    "The parameter ResetType for the action ComputerSystem.Reset is not "
                    "supported with this value.");
        cJSON_Delete(j);
        return;
    }
    char type[32];
    snprintf(type, sizeof(type), "%s", rt->valuestring);
    cJSON_Delete(j);

    struct sim_system *sys = &b->systems[s];
    bool cur_on = sys->pending ? sys->pending_on : sys->on;
    bool want_on;
    bool boot = false;
    if (strcmp(type, "On") == 0 || strcmp(type, "ForceOn") == 0) {
        want_on = true;
        boot = !cur_on;
    } else if (strcmp(type, "ForceOff") == 0 || strcmp(type, "GracefulShutdown") == 0) {
        want_on = false;
    } else if (strcmp(type, "PushPowerButton") == 0) {
        want_on = !cur_on;
        boot = want_on;
    } else if (strcmp(type, "Nmi") == 0) {
        want_on = cur_on;
    } else {
        /* restarts and power cycles: the host boots again (or for the first time) */
        want_on = true;
        boot = true;
    }
    if (want_on && boot && !cur_on && (b->quirks & SIM_Q_POWERON_409)) {
        bool turning_off = sys->pending && !sys->pending_on;
        if (turning_off || now - sys->off_at < opts()->poweron_block) {
            reply_error(rs, 409, "ResourceInUse",
                        "The power-on request cannot be completed now: the server is still "
                        "powering down. Retry later.");
            return;
        }
    }
    double done = now;
    if (want_on != cur_on || boot) {
        sys->pending = true;
        sys->pending_on = want_on;
        sys->pending_boot = boot;
        sys->pending_at = now + opts()->power_delay;
        done = sys->pending_at;
        if (opts()->power_delay <= 0) {
            tick(b, now);
        }
    }
    if (b->quirks & SIM_Q_TASK_MONITOR) {
        struct sim_task *t = task_new(b, SIM_TASK_RESET, now, done);
        t->system = s;
        t->applied = true;
        reply_task(rs, t, now);
        return;
    }
    reply_empty(rs, 204);
}

static bool image_ok(const char *image)
{
    static const char *const schemes[] = {"http://", "https://", "nfs://",
                                          "cifs://", "smb://",   NULL};
    for (const char *const *s = schemes; *s != NULL; s++) {
        if (strncmp(image, *s, strlen(*s)) == 0 && strlen(image) > strlen(*s) &&
            strlen(image) < SIM_IMAGE_MAX) {
            return true;
        }
    }
    return false;
}

static void media_change(struct sim_bmc *b, int s, int i, bool insert, const char *image,
                         bool write_protected, struct sim_response *rs, double now)
{
    struct sim_media *m = &media_of(b, s)[i];
    if (b->quirks & SIM_Q_TASK_MONITOR) {
        struct sim_task *t =
            task_new(b, insert ? SIM_TASK_INSERT : SIM_TASK_EJECT, now, now + opts()->task_time);
        t->system = s;
        t->media = i;
        if (insert) {
            t->image = strdup(image);
        }
        m->write_protected = write_protected;
        if (opts()->task_time <= 0) {
            apply_task(b, t);
        }
        reply_task(rs, t, now);
        return;
    }
    if (insert) {
        m->inserted = true;
        snprintf(m->image, sizeof(m->image), "%s", image);
        m->write_protected = write_protected;
    } else {
        m->inserted = false;
        m->image[0] = '\0';
    }
    reply_empty(rs, 204);
}

static void do_insert(struct sim_bmc *b, int s, int i, const struct sim_request *rq,
                      struct sim_response *rs, double now)
{
    cJSON *j = parse_body(rq, rs);
    if (j == NULL) {
        return;
    }
    const char *image = json_string(j, "Image");
    cJSON *wp = cJSON_GetObjectItemCaseSensitive(j, "WriteProtected");
    cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "Inserted");
    if (image == NULL) {
        reply_error(rs, 400, "ActionParameterMissing",
                    "The action VirtualMedia.InsertMedia requires the parameter Image.");
    } else if (!image_ok(image)) {
        reply_error(rs, 400, "ActionParameterValueFormatError",
                    "The value for the parameter Image in the action VirtualMedia.InsertMedia "
                    "is of a different format than the parameter can accept.");
    } else if ((wp != NULL && !cJSON_IsBool(wp)) || (ins != NULL && !cJSON_IsBool(ins))) {
        reply_error(rs, 400, "ActionParameterValueTypeError",
                    "A parameter of the action VirtualMedia.InsertMedia has the wrong type.");
    } else if (media_of(b, s)[i].inserted) {
        reply_error(rs, 409, "ResourceInUse",
                    "Virtual media is already connected; eject it before inserting another "
                    "image.");
    } else {
        media_change(b, s, i, true, image, wp == NULL || cJSON_IsTrue(wp), rs, now);
    }
    cJSON_Delete(j);
}

static void do_eject(struct sim_bmc *b, int s, int i, struct sim_response *rs, double now)
{
    if (!media_of(b, s)[i].inserted && (b->quirks & SIM_Q_EJECT_EMPTY_REFUSED)) {
        reply_error(rs, 400, "ActionNotSupported",
                    "No virtual media is currently connected: nothing to eject.");
        return;
    }
    media_change(b, s, i, false, NULL, true, rs, now);
}

static void patch_media(struct sim_bmc *b, int s, int i, const struct sim_request *rq,
                        struct sim_response *rs, double now)
{
    cJSON *j = parse_body(rq, rs);
    if (j == NULL) {
        return;
    }
    if (!check_if_match(b, rq, rs, res_media(b, s, i))) {
        cJSON_Delete(j);
        return;
    }
    cJSON *image = cJSON_GetObjectItemCaseSensitive(j, "Image");
    cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "Inserted");
    cJSON *wp = cJSON_GetObjectItemCaseSensitive(j, "WriteProtected");
    for (cJSON *it = j->child; it != NULL; it = it->next) {
        if (strcmp(it->string, "Image") != 0 && strcmp(it->string, "Inserted") != 0 &&
            strcmp(it->string, "WriteProtected") != 0 &&
            strcmp(it->string, "TransferProtocolType") != 0) {
            reply_error(rs, 400, "PropertyNotWritable",
                        "The property %.64s is a read only property and cannot be assigned a "
                        "value.",
                        it->string);
            cJSON_Delete(j);
            return;
        }
    }
    if ((image != NULL && !cJSON_IsString(image) && !cJSON_IsNull(image)) ||
        (ins != NULL && !cJSON_IsBool(ins)) || (wp != NULL && !cJSON_IsBool(wp))) {
        reply_error(rs, 400, "PropertyValueTypeError",
                    "A property of the request has a value of the wrong type.");
        cJSON_Delete(j);
        return;
    }
    bool eject = (image != NULL && (cJSON_IsNull(image) || image->valuestring[0] == '\0')) ||
                 (ins != NULL && cJSON_IsFalse(ins));
    if (eject) {
        media_change(b, s, i, false, NULL, true, rs, now);
    } else if (image != NULL) {
        if (!image_ok(image->valuestring)) {
            reply_error(rs, 400, "PropertyValueFormatError",
                        "The value for the property Image is of a different format than the "
                        "property can accept.");
        } else {
            media_change(b, s, i, true, image->valuestring, wp == NULL || cJSON_IsTrue(wp), rs,
                         now);
        }
    } else {
        if (wp != NULL) {
            media_of(b, s)[i].write_protected = cJSON_IsTrue(wp);
        }
        reply_empty(rs, 204);
    }
    cJSON_Delete(j);
}

static void patch_system(struct sim_bmc *b, int s, const struct sim_request *rq,
                         struct sim_response *rs)
{
    cJSON *j = parse_body(rq, rs);
    if (j == NULL) {
        return;
    }
    if (!check_if_match(b, rq, rs, res_system(b, s))) {
        cJSON_Delete(j);
        return;
    }
    struct sim_system *sys = &b->systems[s];
    const char *target = NULL, *enabled = NULL, *mode = NULL;
    for (cJSON *it = j->child; it != NULL; it = it->next) {
        if (strcmp(it->string, "Boot") != 0) {
            reply_error(rs, 400, "PropertyNotWritable",
                        "The property %.64s is a read only property and cannot be assigned a "
                        "value.",
                        it->string);
            goto out;
        }
    }
    cJSON *boot = cJSON_GetObjectItemCaseSensitive(j, "Boot");
    if (!cJSON_IsObject(boot)) {
        reply_error(rs, 400, "PropertyValueTypeError",
                    "The value for the property Boot is of a different type than the property "
                    "can accept.");
        goto out;
    }
    for (cJSON *it = boot->child; it != NULL; it = it->next) {
        const char *v = cJSON_IsString(it) ? it->valuestring : NULL;
        if (strcmp(it->string, "BootSourceOverrideTarget") == 0) {
            if (v == NULL || !in_list(b->flavour->boot_targets, v)) {
                reply_error(rs, 400, "PropertyValueNotInList",
                            "The value for the property BootSourceOverrideTarget is not in the "
                            "list of acceptable values.");
                goto out;
            }
            target = v;
        } else if (strcmp(it->string, "BootSourceOverrideEnabled") == 0) {
            static const char *const ok_enabled[] = {"Disabled", "Once", "Continuous", NULL};
            if (v == NULL || !in_list(ok_enabled, v)) {
                reply_error(rs, 400, "PropertyValueNotInList",
                            "The value for the property BootSourceOverrideEnabled is not in the "
                            "list of acceptable values.");
                goto out;
            }
            enabled = v;
        } else if (strcmp(it->string, "BootSourceOverrideMode") == 0 &&
                   !(b->quirks & SIM_Q_NO_BOOT_MODE)) {
            static const char *const ok_mode[] = {"Legacy", "UEFI", NULL};
            if (v == NULL || !in_list(ok_mode, v)) {
                reply_error(rs, 400, "PropertyValueNotInList",
                            "The value for the property BootSourceOverrideMode is not in the "
                            "list of acceptable values.");
                goto out;
            }
            mode = v;
        } else {
            reply_error(rs, 400, "PropertyUnknown",
                        "The property %.64s is not in the list of valid properties for the "
                        "resource.",
                        it->string);
            goto out;
        }
    }
    if (target != NULL) {
        snprintf(sys->boot_target, sizeof(sys->boot_target), "%s", target);
    }
    if (enabled != NULL) {
        snprintf(sys->boot_enabled, sizeof(sys->boot_enabled), "%s", enabled);
    }
    if (mode != NULL) {
        snprintf(sys->boot_mode, sizeof(sys->boot_mode), "%s", mode);
    }
    reply_empty(rs, 204);
out:
    cJSON_Delete(j);
}

/* Check a user/password pair, counting failures toward a lockout like real BMCs do: once
 * locked, even the right password is refused until the lock ends. */
static bool credentials_ok(struct sim_bmc *b, const char *user, const char *pass, double now)
{
    if (now < b->locked_until) {
        b->login_failures++;
        return false;
    }
    bool good = user != NULL && pass != NULL && strcmp(user, b->flavour->username) == 0 &&
                strcmp(pass, b->password) == 0;
    if (good) {
        b->failures_in_row = 0;
        return true;
    }
    b->login_failures++;
    b->failures_in_row++;
    if (opts()->lockout_after > 0 && b->failures_in_row >= opts()->lockout_after) {
        b->locked_until = now + opts()->lockout_time;
        b->lockouts++;
        b->failures_in_row = 0;
    }
    return false;
}

static void do_login(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs,
                     double now)
{
    cJSON *j = parse_body(rq, rs);
    if (j == NULL) {
        return;
    }
    const char *user = json_string(j, "UserName");
    const char *pass = json_string(j, "Password");
    if (user == NULL || pass == NULL) {
        reply_error(rs, 400, "PropertyMissing",
                    "The properties UserName and Password are required to create a session.");
        cJSON_Delete(j);
        return;
    }
    bool good = credentials_ok(b, user, pass, now);
    cJSON_Delete(j);
    if (!good) {
        reply_error(rs, 401, "NoValidSession",
                    "There is no valid session established with the implementation.");
        return;
    }
    int limit = opts()->max_sessions;
    if (active_sessions(b) >= limit) {
        reply_error(rs, 503, "SessionLimitExceeded",
                    "The session establishment failed due to the number of simultaneous "
                    "sessions exceeding the limit of the implementation.");
        return;
    }
    struct sim_session *s = NULL;
    for (int i = 0; i < b->session_slots; i++) {
        if (!b->sessions[i].used) {
            s = &b->sessions[i];
            break;
        }
    }
    unsigned char rnd[16];
    if (s == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        reply_error(rs, 500, "InternalError", "The session could not be created.");
        return;
    }
    s->used = true;
    s->id = b->next_session_id++;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        snprintf(s->token + 2 * i, 3, "%02x", rnd[i]);
    }
    s->created = s->last_used = now;
    b->logins++;
    sim_response_header(rs, "X-Auth-Token", "%s", s->token);
    sim_response_header(rs, "Location", "/redfish/v1/SessionService/Sessions/%u", s->id);
    reply_json(rs, 201, res_session(b, s));
}

static struct sim_session *session_by_id(struct sim_bmc *b, const char *id)
{
    char *end = NULL;
    unsigned long n = strtoul(id, &end, 10);
    if (end == id || *end != '\0') {
        return NULL;
    }
    for (int i = 0; i < b->session_slots; i++) {
        if (b->sessions[i].used && b->sessions[i].id == n) {
            return &b->sessions[i];
        }
    }
    return NULL;
}

/* 0 when the request may go on; otherwise the 401 is queued. */
static int authenticate(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs,
                        double now)
{
    bool basic_ok = !(b->quirks & SIM_Q_SESSIONS_ONLY);
    if (rq->token != NULL) {
        for (int i = 0; i < b->session_slots; i++) {
            struct sim_session *s = &b->sessions[i];
            if (s->used && strcmp(s->token, rq->token) == 0) {
                s->last_used = now;
                return 0;
            }
        }
    } else if (basic_ok && rq->basic_user != NULL) {
        if (credentials_ok(b, rq->basic_user, rq->basic_pass, now)) {
            return 0;
        }
    }
    reply_error(rs, 401, "NoValidSession",
                "There is no valid session established with the implementation.");
    rs->basic_challenge = basic_ok;
    return -EACCES;
}

static void not_allowed(struct sim_response *rs, const char *allow)
{
    reply_error(rs, 405, "OperationNotAllowed", "The HTTP method is not allowed on this resource.");
    sim_response_header(rs, "Allow", "%s", allow);
}

static bool is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* Match path against prefix + "/" and return the remainder (or NULL). */
static const char *under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) == 0 && path[n] == '/') {
        return path + n + 1;
    }
    return NULL;
}

static void route_media(struct sim_bmc *b, int s, const char *rest, const struct sim_request *rq,
                        struct sim_response *rs, double now)
{
    const struct sim_flavour *f = b->flavour;
    char base[160];
    vm_base(b, s, base, sizeof(base));
    if (*rest == '\0') {
        if (!is(rq->method, "GET")) {
            not_allowed(rs, "GET");
            return;
        }
        cJSON *c = collection("#VirtualMediaCollection.VirtualMediaCollection",
                              "Virtual Media Services", base);
        for (int i = 0; i < SIM_MAX_MEDIA; i++) {
            collection_add(c, member("%s/%s", base, f->media[i].id));
        }
        reply_json(rs, 200, c);
        return;
    }
    for (int i = 0; i < SIM_MAX_MEDIA; i++) {
        size_t n = strlen(f->media[i].id);
        if (strncmp(rest, f->media[i].id, n) != 0) {
            continue;
        }
        const char *tail = rest + n;
        if (*tail == '\0') {
            if (is(rq->method, "GET")) {
                reply_json(rs, 200, res_media(b, s, i));
            } else if (is(rq->method, "PATCH")) {
                patch_media(b, s, i, rq, rs, now);
            } else {
                not_allowed(rs, "GET, PATCH");
            }
            return;
        }
        if (!(b->quirks & SIM_Q_NO_INSERT_ACTION)) {
            if (strcmp(tail, "/Actions/VirtualMedia.InsertMedia") == 0) {
                if (is(rq->method, "POST")) {
                    do_insert(b, s, i, rq, rs, now);
                } else {
                    not_allowed(rs, "POST");
                }
                return;
            }
            if (strcmp(tail, "/Actions/VirtualMedia.EjectMedia") == 0) {
                if (is(rq->method, "POST")) {
                    do_eject(b, s, i, rs, now);
                } else {
                    not_allowed(rs, "POST");
                }
                return;
            }
        }
    }
    reply_error(rs, 404, "ResourceMissingAtURI", "The resource at the URI was not found.");
}

static void route_system(struct sim_bmc *b, int s, const char *rest, const struct sim_request *rq,
                         struct sim_response *rs, double now)
{
    struct sim_system *sys = &b->systems[s];
    if (*rest == '\0') {
        if (is(rq->method, "GET")) {
            reply_json(rs, 200, res_system(b, s));
        } else if (is(rq->method, "PATCH")) {
            patch_system(b, s, rq, rs);
        } else {
            not_allowed(rs, "GET, PATCH");
        }
        return;
    }
    if (strcmp(rest, "/Actions/ComputerSystem.Reset") == 0) {
        if (is(rq->method, "POST")) {
            do_reset(b, s, rq, rs, now);
        } else {
            not_allowed(rs, "POST");
        }
        return;
    }
    if (strcmp(rest, "/ResetActionInfo") == 0 && (b->quirks & SIM_Q_ACTION_INFO) &&
        is(rq->method, "GET")) {
        reply_json(rs, 200, res_reset_action_info(b, s));
        return;
    }
    if (strncmp(rest, "/EthernetInterfaces", 19) == 0 && is(rq->method, "GET")) {
        const char *nic = rest + 19;
        char path[160];
        snprintf(path, sizeof(path), "%s/EthernetInterfaces", sys->path);
        if (*nic == '\0') {
            cJSON *c = collection("#EthernetInterfaceCollection.EthernetInterfaceCollection",
                                  "Ethernet Interface Collection", path);
            for (int n = 0; n < 2; n++) {
                char id[20];
                mac_id(sys->macs[n], id, sizeof(id));
                collection_add(c, member("%s/%s", path, id));
            }
            reply_json(rs, 200, c);
            return;
        }
        for (int n = 0; n < 2; n++) {
            char id[20];
            mac_id(sys->macs[n], id, sizeof(id));
            if (nic[0] == '/' && strcmp(nic + 1, id) == 0) {
                reply_json(rs, 200, res_nic(b, s, n));
                return;
            }
        }
    }
    if ((b->quirks & SIM_Q_VM_ON_SYSTEMS) && strncmp(rest, "/VirtualMedia", 13) == 0 &&
        (rest[13] == '\0' || rest[13] == '/')) {
        route_media(b, s, rest[13] == '/' ? rest + 14 : rest + 13, rq, rs, now);
        return;
    }
    reply_error(rs, 404, "ResourceMissingAtURI", "The resource at the URI was not found.");
}

/* Resources that only answer GET (collections, services, tasks). */
static bool read_only(const char *path, struct sim_bmc *b)
{
    static const char *const fixed[] = {"/redfish/v1/Systems",           "/redfish/v1/Managers",
                                        "/redfish/v1/SessionService",    "/redfish/v1/TaskService",
                                        "/redfish/v1/TaskService/Tasks", NULL};
    if (in_list(fixed, path) || strcmp(path, b->manager_path) == 0) {
        return true;
    }
    return under(path, "/redfish/v1/TaskService/Tasks") != NULL ||
           under(path, "/redfish/v1/TaskService/TaskMonitors") != NULL;
}

static void route(struct sim_bmc *b, const char *path, const struct sim_request *rq,
                  struct sim_response *rs, double now)
{
    const char *rest;
    bool get = is(rq->method, "GET");
    if ((!get && read_only(path, b)) ||
        (strcmp(path, "/redfish/v1/SessionService/Sessions") == 0 && !get)) {
        not_allowed(rs, "GET");
        return;
    }
    if (strcmp(path, "/redfish/v1/Systems") == 0) {
        cJSON *c = collection("#ComputerSystemCollection.ComputerSystemCollection",
                              "Computer System Collection", "/redfish/v1/Systems");
        for (int s = 0; s < b->nsystems; s++) {
            collection_add(c, member("%s", b->systems[s].path));
        }
        reply_json(rs, 200, c);
        return;
    }
    if ((rest = under(path, "/redfish/v1/Systems")) != NULL) {
        for (int s = 0; s < b->nsystems; s++) {
            size_t n = strlen(b->systems[s].id);
            if (strncmp(rest, b->systems[s].id, n) == 0 && (rest[n] == '\0' || rest[n] == '/')) {
                route_system(b, s, rest + n, rq, rs, now);
                return;
            }
        }
    } else if (strcmp(path, "/redfish/v1/Managers") == 0) {
        cJSON *c = collection("#ManagerCollection.ManagerCollection", "Manager Collection",
                              "/redfish/v1/Managers");
        collection_add(c, member("%s", b->manager_path));
        reply_json(rs, 200, c);
        return;
    } else if (strcmp(path, b->manager_path) == 0) {
        reply_json(rs, 200, res_manager(b));
        return;
    } else if (!(b->quirks & SIM_Q_VM_ON_SYSTEMS) && (rest = under(path, b->manager_path)) &&
               strncmp(rest, "VirtualMedia", 12) == 0 && (rest[12] == '\0' || rest[12] == '/')) {
        route_media(b, 0, rest[12] == '/' ? rest + 13 : rest + 12, rq, rs, now);
        return;
    } else if (strcmp(path, "/redfish/v1/SessionService") == 0) {
        reply_json(rs, 200, res_session_service());
        return;
    } else if (strcmp(path, "/redfish/v1/SessionService/Sessions") == 0) {
        cJSON *c = collection("#SessionCollection.SessionCollection", "Session Collection",
                              "/redfish/v1/SessionService/Sessions");
        for (int i = 0; i < b->session_slots; i++) {
            if (b->sessions[i].used) {
                collection_add(c,
                               member("/redfish/v1/SessionService/Sessions/%u", b->sessions[i].id));
            }
        }
        reply_json(rs, 200, c);
        return;
    } else if ((rest = under(path, "/redfish/v1/SessionService/Sessions")) != NULL) {
        struct sim_session *s = session_by_id(b, rest);
        if (s != NULL) {
            if (is(rq->method, "DELETE")) {
                s->used = false;
                b->logouts++;
                reply_empty(rs, 204);
            } else if (is(rq->method, "GET")) {
                reply_json(rs, 200, res_session(b, s));
            } else {
                not_allowed(rs, "GET, DELETE");
            }
            return;
        }
    } else if (strcmp(path, "/redfish/v1/TaskService") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "@odata.type", "#TaskService.v1_1_4.TaskService");
        cJSON_AddStringToObject(r, "Id", "TaskService");
        cJSON_AddStringToObject(r, "Name", "Task Service");
        cJSON_AddBoolToObject(r, "ServiceEnabled", true);
        cJSON_AddItemToObject(r, "Status", status_ok());
        add_link(r, "Tasks", "/redfish/v1/TaskService/Tasks");
        cJSON_AddStringToObject(r, "@odata.id", "/redfish/v1/TaskService");
        reply_json(rs, 200, r);
        return;
    } else if (strcmp(path, "/redfish/v1/TaskService/Tasks") == 0) {
        cJSON *c = collection("#TaskCollection.TaskCollection", "Task Collection",
                              "/redfish/v1/TaskService/Tasks");
        for (int i = 0; i < SIM_MAX_TASKS; i++) {
            if (b->tasks[i].used) {
                collection_add(c, member("/redfish/v1/TaskService/Tasks/%u", b->tasks[i].id));
            }
        }
        reply_json(rs, 200, c);
        return;
    } else if ((rest = under(path, "/redfish/v1/TaskService/Tasks")) != NULL) {
        struct sim_task *t = task_find(b, rest);
        if (t != NULL) {
            reply_json(rs, 200, res_task(t, now));
            return;
        }
    } else if ((rest = under(path, "/redfish/v1/TaskService/TaskMonitors")) != NULL) {
        struct sim_task *t = task_find(b, rest);
        if (t != NULL) {
            if (now < t->done_at) {
                reply_task(rs, t, now);
            } else {
                reply_json(rs, 200, res_task(t, now));
            }
            return;
        }
    }
    reply_error(rs, 404, "ResourceMissingAtURI", "The resource at the URI was not found.");
}

/* The $levels an $expand value asks for: ".", "*" or "~", then optionally "($levels=N)"
 * (1 when absent); -1 when the value is not of that form. */
static long expand_levels(const char *v)
{
    if (v[0] != '.' && v[0] != '*' && v[0] != '~') {
        return -1;
    }
    if (v[1] == '\0') {
        return 1;
    }
    if (strncmp(v + 1, "($levels=", 9) != 0 || !(v[10] >= '0' && v[10] <= '9')) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long levels = strtol(v + 10, &end, 10);
    return errno == 0 && strcmp(end, ")") == 0 ? levels : -1;
}

/*
 * $expand on a collection: each member's own GET answer inline, as a service that supports
 * the option does. One level only (the root says MaxLevels 1). A member that would not
 * answer 200 stays a reference. Counts the members expanded into rs->expanded.
 */
static void sim_expand(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs,
                       double now)
{
    long levels = expand_levels(rq->expand);
    if (levels != 1) {
        bool range = levels >= 0;
        sim_response_free(rs);
        *rs = (struct sim_response){0};
        reply_error(rs, 400, range ? "QueryParameterOutOfRange" : "QueryParameterValueFormatError",
                    "The value %s for the query parameter $expand %s.", rq->expand,
                    range ? "is out of range: at most 1 level"
                          : "is of a different format than the parameter can accept");
        return;
    }
    /* "~" expands what is under Links, which holds no members */
    cJSON *doc = rq->expand[0] != '~' && rs->status == 200 && rs->body != NULL
                     ? cJSON_Parse(rs->body)
                     : NULL;
    cJSON *members = cJSON_GetObjectItemCaseSensitive(doc, "Members");
    cJSON *m;
    cJSON_ArrayForEach(m, (cJSON_IsArray(members) ? members : NULL))
    {
        const char *id = json_string(m, "@odata.id");
        if (id == NULL) {
            continue;
        }
        struct sim_response one = {0};
        route(b, id, rq, &one, now);
        cJSON *body = one.status == 200 && one.body != NULL ? cJSON_Parse(one.body) : NULL;
        sim_response_free(&one);
        if (body != NULL) {
            cJSON_ReplaceItemViaPointer(members, m, body);
            m = body;
            rs->expanded++;
        }
    }
    if (rs->expanded > 0) {
        char *text = cJSON_PrintUnformatted(doc);
        if (text != NULL) {
            free(rs->body);
            rs->body = text;
            char tag[24];
            etag_of(text, tag, sizeof(tag));
            for (int i = 0; i < rs->nheaders; i++) {
                char *v = strcmp(rs->header_names[i], "ETag") == 0 ? strdup(tag) : NULL;
                if (v != NULL) {
                    free(rs->header_values[i]);
                    rs->header_values[i] = v;
                }
            }
        }
        b->expanded += (uint64_t)rs->expanded;
    }
    cJSON_Delete(doc);
}

void sim_redfish_handle(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", rq->url);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') {
        path[--len] = '\0';
    }
    pthread_mutex_lock(&b->lock);
    double now = sim_now();
    tick(b, now);
    /* HEAD is answered like GET; libmicrohttpd leaves the body out. */
    struct sim_request req = *rq;
    if (is(req.method, "HEAD")) {
        req.method = "GET";
    }
    rq = &req;
    bool get = is(rq->method, "GET");
    if ((strcmp(path, "/redfish") == 0 || strcmp(path, "/redfish/v1") == 0) && !get) {
        not_allowed(rs, "GET");
    } else if (strcmp(path, "/redfish") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "v1", "/redfish/v1/");
        reply_json(rs, 200, r);
    } else if (strcmp(path, "/redfish/v1") == 0) {
        reply_json(rs, 200, res_root(b));
    } else if (strcmp(path, "/redfish/v1/SessionService/Sessions") == 0 && is(rq->method, "POST")) {
        do_login(b, rq, rs, now);
    } else if (authenticate(b, rq, rs, now) == 0) {
        if (!get && !is(rq->method, "POST") && !is(rq->method, "PATCH") &&
            !is(rq->method, "DELETE")) {
            not_allowed(rs, "GET, POST, PATCH, DELETE");
        } else {
            route(b, path, rq, rs, now);
            if (get && rq->expand != NULL && b->flavour->expand) {
                sim_expand(b, rq, rs, now);
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
}

/* ---------------------------------------------------------------------------------------- */
/* control API report */

void sim_bmc_report(struct sim_bmc *b, cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&b->lock);
    tick(b, sim_now());
    cJSON_AddNumberToObject(o, "index", b->index);
    cJSON_AddStringToObject(o, "name", b->name);
    cJSON_AddStringToObject(o, "address", b->address);
    cJSON_AddStringToObject(o, "flavour", b->flavour->name);
    cJSON *q = cJSON_AddArrayToObject(o, "quirks");
    for (const struct sim_quirk_name *qn = sim_quirk_names; qn->name != NULL; qn++) {
        if (b->quirks & qn->bit) {
            cJSON_AddItemToArray(q, cJSON_CreateString(qn->name));
        }
    }
    cJSON_AddNumberToObject(o, "requests", (double)b->requests);
    cJSON_AddNumberToObject(o, "expanded", (double)b->expanded);
    cJSON_AddNumberToObject(o, "active_requests", b->active);
    cJSON_AddNumberToObject(o, "max_concurrent", b->max_active);
    cJSON_AddNumberToObject(o, "responses_2xx", (double)b->responses_2xx);
    cJSON_AddNumberToObject(o, "responses_4xx", (double)b->responses_4xx);
    cJSON_AddNumberToObject(o, "responses_5xx", (double)b->responses_5xx);
    cJSON_AddNumberToObject(o, "faults_injected", (double)b->faults_injected);
    cJSON_AddNumberToObject(o, "logins", (double)b->logins);
    cJSON_AddNumberToObject(o, "login_failures", (double)b->login_failures);
    cJSON_AddNumberToObject(o, "logouts", (double)b->logouts);
    cJSON_AddNumberToObject(o, "lockouts", (double)b->lockouts);
    cJSON_AddBoolToObject(o, "locked", sim_now() < b->locked_until);
    cJSON_AddNumberToObject(o, "active_sessions", active_sessions(b));
    cJSON *f = cJSON_AddObjectToObject(o, "faults");
    cJSON_AddNumberToObject(f, "error_rate", b->faults.error_rate);
    cJSON_AddBoolToObject(f, "hang", b->faults.hang);
    cJSON_AddBoolToObject(f, "reset", b->faults.reset);
    cJSON_AddBoolToObject(f, "malformed", b->faults.malformed);
    cJSON_AddBoolToObject(f, "truncated", b->faults.truncated);
    cJSON_AddBoolToObject(f, "slow_drip", b->faults.slow_drip);
    static const char *const certs[] = {"none", "ca", "expired", "name"};
    cJSON_AddStringToObject(f, "wrong_cert", certs[b->faults.wrong_cert]);
    cJSON_AddNumberToObject(f, "latency_ms", b->faults.latency_ms);
    cJSON_AddNumberToObject(f, "jitter_ms", b->faults.jitter_ms);
    cJSON *systems = cJSON_AddArrayToObject(o, "systems");
    for (int s = 0; s < b->nsystems; s++) {
        struct sim_system *sys = &b->systems[s];
        cJSON *so = cJSON_CreateObject();
        cJSON_AddStringToObject(so, "id", sys->id);
        cJSON_AddStringToObject(so, "path", sys->path);
        cJSON_AddStringToObject(so, "power", sys->on ? "On" : "Off");
        cJSON_AddBoolToObject(so, "power_changing", sys->pending);
        cJSON *boot = cJSON_AddObjectToObject(so, "boot");
        cJSON_AddStringToObject(boot, "target", sys->boot_target);
        cJSON_AddStringToObject(boot, "enabled", sys->boot_enabled);
        cJSON_AddStringToObject(boot, "mode", sys->boot_mode);
        cJSON_AddNumberToObject(so, "boots", sys->boots);
        cJSON_AddStringToObject(so, "last_boot_source", sys->last_boot_source);
        cJSON_AddStringToObject(so, "last_boot_image", sys->last_boot_image);
        cJSON *media = cJSON_AddArrayToObject(so, "media");
        if ((b->quirks & SIM_Q_VM_ON_SYSTEMS) || s == 0) {
            struct sim_media *m = media_of(b, s);
            for (int i = 0; i < SIM_MAX_MEDIA; i++) {
                cJSON *mo = cJSON_CreateObject();
                cJSON_AddStringToObject(mo, "id", b->flavour->media[i].id);
                cJSON_AddBoolToObject(mo, "inserted", m[i].inserted);
                cJSON_AddStringToObject(mo, "image", m[i].image);
                cJSON_AddItemToArray(media, mo);
            }
        }
        cJSON_AddItemToArray(systems, so);
    }
    pthread_mutex_unlock(&b->lock);
    cJSON_AddItemToArray(arr, o);
}
