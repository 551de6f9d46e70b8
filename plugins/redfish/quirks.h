/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vendor quirks as Lua hooks (policy, not code). A quirks file returns a table whose
 * `quirks` list holds entries
 *
 *     { name = "...", match = { manufacturer = "lua pattern", model = ..., firmware = ... },
 *       request = function(req) ... end, response = function(req, resp) ... end }
 *
 * selected by the BMC's Manufacturer, Model and manager FirmwareVersion. A request hook may
 * change req.body before it is sent; a response hook may change resp.status, resp.body and
 * set resp.retry_after (seconds: send the same request again later, for a refusal whose
 * outcome is known). req = { op, method, path, body, current, system } where current is the
 * last document the operation read from the same path and system the ComputerSystem's path.
 * A hook returns true when it changed something (a JSON null in a changed body is lost).
 *
 * The hooks run in their own sandboxed Lua state (base without file access or load, string,
 * table, math, utf8; a memory cap; an instruction budget per call). A hook that fails leaves
 * the request or response as it was and is logged (fail open: quirks only ever help).
 * Credentials never reach a hook: logins bypass them.
 */
#ifndef WARD_REDFISH_QUIRKS_H
#define WARD_REDFISH_QUIRKS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <lua.h>

#include <ward/plugin.h>

struct ward_rf_quirks;

struct ward_rf_ident {
    const char *manufacturer; /* "" when unknown */
    const char *model;
    const char *firmware;
    const char *system; /* the system's path, given to hooks as req.system */
};

/* Load and check a quirks file. NULL with a reason (file:line) on error. */
struct ward_rf_quirks *ward_rf_quirks_load(const char *path, struct ward_error *err);
void ward_rf_quirks_free(struct ward_rf_quirks *q);
/* Number of quirk entries. */
unsigned ward_rf_quirks_count(const struct ward_rf_quirks *q);
/*
 * Whether an entry's match names the firmware: only then does discovery read the manager
 * for its FirmwareVersion (one request per BMC less otherwise). Decided when the file loads.
 */
bool ward_rf_quirks_by_firmware(const struct ward_rf_quirks *q);

/*
 * Run the request hooks. Returns a new body (caller frees) when a hook changed it, else
 * NULL. body may be NULL (no body); current may be NULL.
 */
char *ward_rf_quirks_request(struct ward_rf_quirks *q, const struct ward_rf_ident *id,
                             const char *op, const char *method, const char *path, const char *body,
                             const cJSON *current);

/*
 * Run the response hooks over an answer. *body is replaced (the old one freed) when a hook
 * changed it; *status and *retry_after likewise.
 */
void ward_rf_quirks_response(struct ward_rf_quirks *q, const struct ward_rf_ident *id,
                             const char *op, const char *method, const char *path, long *status,
                             cJSON **body, double *retry_after);

#endif
