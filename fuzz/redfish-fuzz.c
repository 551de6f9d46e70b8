/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the Redfish plugin's response parsing: every reader the operations use on
 * a BMC's JSON (links, AllowableValues, ActionInfo, inventory, virtual media, error bodies).
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>

#include "redfish/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ward_rf_validate((const char *)data, size);
    return 0;
}
