/* SPDX-License-Identifier: Apache-2.0 */
/* Checked accessors for Redfish documents (the part of the plugin the fuzz target drives). */
#ifndef WARD_REDFISH_PARSE_H
#define WARD_REDFISH_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* obj[key] when it is a string, else NULL; obj may be anything or NULL. */
const char *ward_rf_str(const cJSON *obj, const char *key);
/* obj[key]["@odata.id"] when it is a string, else NULL. */
const char *ward_rf_link(const cJSON *obj, const char *key);
/* A VirtualMedia member that can take a CD image. */
bool ward_rf_media_is_cd(const cJSON *doc);
/* 1 when a VirtualMedia member has media inserted, else 0. */
int ward_rf_media_inserted(const cJSON *doc);
/* Run every reader over one document (the fuzz entry); 0, or -1 when it is not JSON. */
int ward_rf_validate(const char *body, size_t len);

#endif
