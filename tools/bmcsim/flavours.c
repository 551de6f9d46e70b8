/* SPDX-License-Identifier: Apache-2.0 */
/* The vendor-like flavours: ids, paths, value lists and default quirks that differ the way
 * real BMC firmware differs. Names say "-like": none of them is a real vendor's firmware. */
#include "autoconf.h"

#include <string.h>

#include "bmcsim.h"

const struct sim_quirk_name sim_quirk_names[] = {
    {"etag_required", SIM_Q_ETAG_REQUIRED},
    {"sessions_only", SIM_Q_SESSIONS_ONLY},
    {"task_monitor", SIM_Q_TASK_MONITOR},
    {"notconnected_free", SIM_Q_NOTCONNECTED_FREE},
    {"no_boot_mode", SIM_Q_NO_BOOT_MODE},
    {"vm_on_systems", SIM_Q_VM_ON_SYSTEMS},
    {"eject_empty_refused", SIM_Q_EJECT_EMPTY_REFUSED},
    {"poweron_409", SIM_Q_POWERON_409},
    {"no_insert_action", SIM_Q_NO_INSERT_ACTION},
    {"action_info", SIM_Q_ACTION_INFO},
    {NULL, 0},
};

unsigned sim_quirk_lookup(const char *name)
{
    for (const struct sim_quirk_name *q = sim_quirk_names; q->name != NULL; q++) {
        if (strcmp(q->name, name) == 0) {
            return q->bit;
        }
    }
    return 0;
}

/* The mockup's list. */
static const char *const generic_resets[] = {"On",
                                             "ForceOff",
                                             "GracefulShutdown",
                                             "GracefulRestart",
                                             "ForceRestart",
                                             "Nmi",
                                             "ForceOn",
                                             "PushPowerButton",
                                             NULL};
static const char *const generic_boots[] = {"None",   "Pxe",        "Cd",        "Usb",
                                            "Hdd",    "BiosSetup",  "Utilities", "Diags",
                                            "SDCard", "UefiTarget", NULL};

static const char *const dell_resets[] = {
    "On",         "ForceOff", "ForceRestart", "GracefulShutdown", "PushPowerButton", "Nmi",
    "PowerCycle", NULL};
static const char *const dell_boots[] = {"None",   "Pxe",       "Floppy",    "Cd",
                                         "Hdd",    "BiosSetup", "Utilities", "UefiTarget",
                                         "SDCard", "UefiHttp",  NULL};

/* No GracefulRestart: a client that restarts "gracefully" must look first. */
static const char *const hpe_resets[] = {
    "On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi", "PushPowerButton", NULL};
static const char *const hpe_boots[] = {"None",      "Cd",         "Hdd",       "Usb", "SDCard",
                                        "Utilities", "Diags",      "BiosSetup", "Pxe", "UefiShell",
                                        "UefiHttp",  "UefiTarget", NULL};

static const char *const smc_resets[] = {
    "On",           "ForceOff", "GracefulShutdown", "GracefulRestart",
    "ForceRestart", "Nmi",      "ForceOn",          NULL};
static const char *const smc_boots[] = {"None",
                                        "Pxe",
                                        "Hdd",
                                        "Diags",
                                        "Cd",
                                        "BiosSetup",
                                        "FloppyRemovableMedia",
                                        "UsbKey",
                                        "UsbHdd",
                                        "UsbFloppy",
                                        "UsbCd",
                                        "UefiUsbKey",
                                        "UefiCd",
                                        "UefiHdd",
                                        "UefiUsbHdd",
                                        "UefiUsbCd",
                                        NULL};

static const char *const obmc_resets[] = {
    "On",         "ForceOff", "ForceOn", "ForceRestart", "GracefulRestart", "GracefulShutdown",
    "PowerCycle", NULL};
static const char *const obmc_boots[] = {"None",  "Pxe",       "Hdd", "Cd",
                                         "Diags", "BiosSetup", "Usb", NULL};

/* $expand: iDRAC- and iLO-5-like firmware and DMTF's mockup advertise it; Supermicro-like
 * firmware does not, and bmcweb ships with query parameters switched off. */
const struct sim_flavour sim_flavours[] = {
    {
        .name = "generic",
        .system_id = "437XR1138R2",
        .manager_id = "BMC",
        .username = "admin",
        .manufacturer = "Contoso",
        .model = "3500",
        .bios = "P79 v1.45 (12/06/2017)",
        .firmware_old = "1.45.455b66-rev4",
        .firmware_new = "1.45.455b66-rev4",
        .server = "ward-bmcsim",
        .reset_types = generic_resets,
        .boot_targets = generic_boots,
        .media = {{"CD1", "Virtual CD", {"CD", "DVD"}, true},
                  {"Floppy1", "Virtual Removable Media", {"Floppy", "USBStick"}, false}},
        .quirks = SIM_Q_VM_ON_SYSTEMS,
        .transitional = true,
        .expand = true,
    },
    {
        .name = "dell-like",
        .system_id = "System.Embedded.1",
        .manager_id = "Manager.Embedded.1",
        .username = "root",
        .manufacturer = "DellLike Inc.",
        .model = "PowerLike R650",
        .bios = "1.6.5",
        .firmware_old = "4.40.00.00",
        .firmware_new = "6.10.00.00",
        .server = "Appweb/4.5",
        .reset_types = dell_resets,
        .boot_targets = dell_boots,
        .media = {{"CD", "Virtual CD", {"CD", "DVD"}, true},
                  {"RemovableDisk", "Virtual Removable Disk", {"USBStick", NULL}, false}},
        .quirks = SIM_Q_EJECT_EMPTY_REFUSED,
        .transitional = false,
        .expand = true,
    },
    {
        .name = "hpe-like",
        .system_id = "1",
        .manager_id = "1",
        .username = "Administrator",
        .manufacturer = "HPELike",
        .model = "ProLike DL360 Gen10",
        .bios = "U32 v2.68 (07/14/2022)",
        .firmware_old = "iLike 5 v2.72",
        .firmware_new = "iLike 5 v3.01",
        .server = "HTTPD",
        .reset_types = hpe_resets,
        .boot_targets = hpe_boots,
        .media = {{"1", "Virtual Removable Media", {"Floppy", "USBStick"}, false},
                  {"2", "Virtual Removable Media", {"CD", "DVD"}, true}},
        .quirks = SIM_Q_ETAG_REQUIRED | SIM_Q_TASK_MONITOR,
        .transitional = false,
        .expand = true,
    },
    {
        .name = "supermicro-like",
        .system_id = "1",
        .manager_id = "1",
        .username = "ADMIN",
        .manufacturer = "SupermicroLike",
        .model = "SYS-LIKE-1029U",
        .bios = "3.4",
        .firmware_old = "01.73.06",
        .firmware_new = "01.73.06",
        .server = "nginx",
        .reset_types = smc_resets,
        .boot_targets = smc_boots,
        .media = {{"CD1", "Virtual Removable Media", {"CD", "DVD"}, true},
                  {"USB1", "Virtual Removable Media", {"USBStick", NULL}, false}},
        .quirks =
            SIM_Q_SESSIONS_ONLY | SIM_Q_NOTCONNECTED_FREE | SIM_Q_NO_BOOT_MODE | SIM_Q_POWERON_409,
        .transitional = false,
    },
    {
        .name = "openbmc-like",
        .system_id = "system",
        .manager_id = "bmc",
        .username = "root",
        .manufacturer = "OpenBMCLike",
        .model = "Romulike",
        .bios = "2.15.0",
        .firmware_old = "2.14.0-dev",
        .firmware_new = "2.14.0-dev",
        .server = "bmcweb-like",
        .reset_types = obmc_resets,
        .boot_targets = obmc_boots,
        .media = {{"Slot_0", "Virtual media slot 0", {"CD", "USBStick"}, true},
                  {"Slot_1", "Virtual media slot 1", {"CD", "USBStick"}, false}},
        .quirks = SIM_Q_NO_INSERT_ACTION | SIM_Q_ACTION_INFO,
        .transitional = true,
    },
    {0},
};

const struct sim_flavour *sim_flavour_find(const char *name)
{
    for (const struct sim_flavour *f = sim_flavours; f->name != NULL; f++) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}
