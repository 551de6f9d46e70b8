/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the configuration loader, on arbitrary text, with a plugin config map. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_settings {
    char *text;
    char *secret;
    long long number;
    bool flag;
    double period;
};

static const struct ward_config_entry map[] = {
    {WARD_CONFIG_STRING, "text", "x", offsetof(struct fuzz_settings, text), "text"},
    {WARD_CONFIG_SECRET, "secret", NULL, offsetof(struct fuzz_settings, secret), "secret"},
    {WARD_CONFIG_INT, "number", "1", offsetof(struct fuzz_settings, number), "number"},
    {WARD_CONFIG_BOOL, "flag", "false", offsetof(struct fuzz_settings, flag), "flag"},
    {WARD_CONFIG_DURATION, "period", "1s", offsetof(struct fuzz_settings, period), "period"},
    {0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL) {
        sink = fopen("/dev/null", "w");
        ward_log_set_stream(sink);
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    struct ward_error err = {0};
    struct ward_config *cfg = ward_config_load_string(text, "fuzz.conf", &err);
    if (cfg != NULL) {
        for (size_t i = 0; i < cfg->nplugins; i++) {
            struct fuzz_settings s = {0};
            ward_config_fill(cfg, &cfg->plugins[i], map, &s, &err);
            ward_config_free_instance(map, &s);
        }
        ward_config_destroy(cfg);
    }
    ward_log_clear_secrets();
    free(text);
    return 0;
}
