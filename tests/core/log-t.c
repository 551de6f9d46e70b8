/* SPDX-License-Identifier: Apache-2.0 */
/* Structured logging: every line is one valid JSON object, hostile values stay inside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../tap/basic.h"
#include "log.h"

static char *buf;
static size_t len;
static FILE *mem;

static void reset(void)
{
    if (mem != NULL) {
        fclose(mem);
        free(buf);
    }
    buf = NULL;
    len = 0;
    mem = open_memstream(&buf, &len);
    ward_log_set_stream(mem);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

int main(void)
{
    plan(22);

    reset();
    ward_log_set_level(WARD_LOG_DEBUG);
    const char *hostile = "ok\"}\n{\"level\":\"error\",\"msg\":\"forged\x01\x1b[31m";
    struct ward_log_field f[] = {{"resource", hostile}, {"from", "Enrolling"}, {"to", NULL}};
    ward_log_fields(WARD_LOG_WARN, "redfish", f, 3, "BMC said: %s", hostile);
    is_int(1, (long long)count_lines(buf), "a hostile value does not start a second line");
    cJSON *j = cJSON_Parse(buf);
    ok(j != NULL, "the line is valid JSON");
    is_string("warn", cJSON_GetStringValue(cJSON_GetObjectItem(j, "level")), "level kept");
    is_string("redfish", cJSON_GetStringValue(cJSON_GetObjectItem(j, "component")),
              "component kept");
    is_string(hostile, cJSON_GetStringValue(cJSON_GetObjectItem(j, "resource")),
              "the field decodes back to exactly what was given");
    ok(cJSON_IsNull(cJSON_GetObjectItem(j, "to")), "a NULL value is written as null");
    ok(cJSON_GetObjectItem(j, "ts") != NULL, "every line has ts");
    lacks(buf, "\x1b", "escape bytes are not written raw");
    cJSON_Delete(j);

    reset();
    struct ward_log_field envelope[] = {{"level", "debug"}, {"msg", "overwritten"}};
    ward_log_fields(WARD_LOG_ERROR, "core", envelope, 2, "real message");
    j = cJSON_Parse(buf);
    is_string("error", cJSON_GetStringValue(cJSON_GetObjectItem(j, "level")),
              "a field cannot overwrite the level");
    is_string("real message", cJSON_GetStringValue(cJSON_GetObjectItem(j, "msg")),
              "a field cannot overwrite the message");
    cJSON_Delete(j);

    reset();
    struct ward_log_field secrets[] = {{"password", "pa55word!"},
                                       {"X-Auth-Token", "abc123tok"},
                                       {"Authorization", "Basic YWRtaW46cGFzcw=="},
                                       {"bmc_api_key", "k-9"}};
    ward_log_fields(WARD_LOG_INFO, "core", secrets, 4, "login");
    lacks(buf, "pa55word!", "a field named password is redacted");
    lacks(buf, "abc123tok", "a field named like a token is redacted");
    lacks(buf, "YWRtaW46cGFzcw==", "an authorization header is redacted");
    lacks(buf, "k-9", "an api key is redacted");
    contains(buf, "[REDACTED]", "redacted fields say so");

    reset();
    ward_log_add_secret("hunter2-very-secret");
    ward_log(WARD_LOG_INFO, "redfish", "POST /Sessions {\"Password\":\"hunter2-very-secret\"}");
    struct ward_log_field leak[] = {{"reason", "bad credentials hunter2-very-secret for admin"}};
    ward_log_fields(WARD_LOG_WARN, "redfish", leak, 1, "login failed");
    lacks(buf, "hunter2", "a registered secret never appears, in the message or in a field");
    contains(buf, "for admin", "the rest of the text survives");

    reset();
    ward_log_add_secret("tab\tsecret");
    ward_log(WARD_LOG_INFO, "core", "value tab\tsecret here");
    lacks(buf, "tab\\tsecret", "a secret is removed before escaping changes its bytes");

    reset();
    ward_log_set_level(WARD_LOG_WARN);
    ward_log(WARD_LOG_INFO, "core", "quiet");
    ward_log(WARD_LOG_DEBUG, "core", "quieter");
    is_int(0, (long long)len, "lines below the level are dropped");
    ward_log(WARD_LOG_ERROR, "core", "loud");
    is_int(1, (long long)count_lines(buf), "lines at or above the level are written");

    enum ward_log_level lvl;
    ok(ward_log_level_parse("WARNING", &lvl) == 0 && lvl == WARD_LOG_WARN,
       "level names parse case-insensitively");
    ok(ward_log_level_parse("loud", &lvl) != 0, "an unknown level is refused");

    ward_log_set_stream(NULL);
    ward_log_clear_secrets();
    fclose(mem);
    free(buf);
    return 0;
}
