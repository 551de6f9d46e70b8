/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: a policy file, compiled and checked in the sandbox as `policy check` does. */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    static struct ward_policy_options o;
    if (sink == NULL) {
        sink = fopen("/dev/null", "w");
        ward_log_set_stream(sink);
        struct ward_error err = {0};
        if (ward_policy_options_init(&o, &err) != 0) {
            abort();
        }
        /* small limits keep each input fast; the checks are the same */
        o.instructions = 1000000;
        o.memory_limit = 16u << 20;
    }
    ward_policy_check_text((const char *)data, size, "fuzz.lua", &o, sink);
    return 0;
}
