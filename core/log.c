/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured logging: one JSON object per line. Every string that reaches
 * the output goes through one escaper, so a BMC that returns quotes, newlines
 * or control bytes cannot forge a second line or a field. Redaction happens
 * twice: by key (a field named like a secret never shows its value) and by
 * value (registered secrets are replaced wherever they appear).
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "util.h"

static struct {
    enum ward_log_level level;
    FILE *out; /* NULL: stderr; owned when owns_out */
    bool owns_out;
    bool use_syslog;
    char **secrets; /* owned */
    size_t nsecrets;
} logger = {.level = WARD_LOG_INFO};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int ward_log_level_parse(const char *name, enum ward_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum ward_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = WARD_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *ward_log_level_name(enum ward_log_level level)
{
    return level <= WARD_LOG_ERROR ? level_names[level] : "unknown";
}

void ward_log_set_level(enum ward_log_level level)
{
    logger.level = level;
}

enum ward_log_level ward_log_get_level(void)
{
    return logger.level;
}

int ward_log_open_file(const char *path, struct ward_error *err)
{
    FILE *f = fopen(path, "ae");
    if (f == NULL) {
        return ward_error_set(err, -errno, "cannot open log file %s: %s", path, strerror(errno));
    }
    setvbuf(f, NULL, _IOLBF, 0);
    ward_log_close();
    logger.out = f;
    logger.owns_out = true;
    return 0;
}

void ward_log_set_stream(FILE *stream)
{
    ward_log_close();
    logger.out = stream;
    logger.owns_out = false;
}

void ward_log_use_syslog(bool on)
{
    logger.use_syslog = on;
    if (on) {
        openlog("wardd", LOG_PID, LOG_DAEMON);
    }
}

void ward_log_close(void)
{
    if (logger.owns_out && logger.out != NULL) {
        fclose(logger.out);
    }
    logger.out = NULL;
    logger.owns_out = false;
}

void ward_log_add_secret(const char *value)
{
    if (value == NULL || strlen(value) < 4) {
        return;
    }
    for (size_t i = 0; i < logger.nsecrets; i++) {
        if (strcmp(logger.secrets[i], value) == 0) {
            return;
        }
    }
    char **grown = realloc(logger.secrets, (logger.nsecrets + 1) * sizeof(*grown));
    char *copy = strdup(value);
    if (grown == NULL || copy == NULL) {
        free(copy);
        if (grown != NULL) {
            logger.secrets = grown;
        }
        return;
    }
    logger.secrets = grown;
    logger.secrets[logger.nsecrets++] = copy;
}

void ward_log_clear_secrets(void)
{
    for (size_t i = 0; i < logger.nsecrets; i++) {
        free(logger.secrets[i]);
    }
    free(logger.secrets);
    logger.secrets = NULL;
    logger.nsecrets = 0;
}

bool ward_log_key_is_secret(const char *key)
{
    static const char *const words[] = {"password", "passwd",     "secret", "token",
                                        "authorization", "credential", "cookie", "apikey",
                                        "api_key",  "private_key"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasestr(key, words[i]) != NULL) {
            return true;
        }
    }
    return false;
}

/* passwordFile, tokenEnv, password_path: where a secret is, not the secret itself; and
   a BMC's `credentials = "rack1"`, the name of a credentials set (<credentials_dir>/<set>) */
static bool names_a_reference(const char *key)
{
    if (strcmp(key, "credentials") == 0) {
        return true;
    }
    static const char *const suffixes[] = {"File", "Env", "Path", "_file", "_env", "_path"};
    size_t len = strlen(key);
    for (size_t i = 0; i < WARD_ARRAY_SIZE(suffixes); i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && strcmp(key + len - n, suffixes[i]) == 0) {
            return true;
        }
    }
    return false;
}

const char *ward_log_find_secret(const cJSON *tree)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, tree)
    {
        if (item->string != NULL && cJSON_IsString(item) && ward_log_key_is_secret(item->string) &&
            !names_a_reference(item->string)) {
            return item->string;
        }
        const char *inner = ward_log_find_secret(item);
        if (inner != NULL) {
            return inner;
        }
    }
    return NULL;
}

/* Replace every registered secret in s (in place, in a growable buffer). */
static void scrub(struct ward_buf *b, size_t start)
{
    for (size_t i = 0; i < logger.nsecrets; i++) {
        ward_buf_replace_all(b, start, logger.secrets[i], WARD_REDACTED);
    }
}

void ward_json_escape(struct ward_buf *b, const char *s)
{
    ward_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            ward_buf_puts(b, "\\\"");
            break;
        case '\\':
            ward_buf_puts(b, "\\\\");
            break;
        case '\n':
            ward_buf_puts(b, "\\n");
            break;
        case '\r':
            ward_buf_puts(b, "\\r");
            break;
        case '\t':
            ward_buf_puts(b, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                ward_buf_printf(b, "\\u%04x", *p);
            } else {
                ward_buf_putc(b, (char)*p);
            }
        }
    }
    ward_buf_putc(b, '"');
}

/* Escape a value after removing secrets from it, so a secret split by escaping still matches. */
static void put_value(struct ward_buf *out, const char *value)
{
    struct ward_buf raw = {0};
    ward_buf_puts(&raw, value);
    scrub(&raw, 0);
    ward_json_escape(out, raw.data != NULL ? raw.data : "");
    ward_buf_free(&raw);
}

__attribute__((format(printf, 5, 0))) static void emit(enum ward_log_level level,
                                                       const char *component,
                                                       const struct ward_log_field *fields,
                                                       size_t nfields, const char *fmt,
                                                       va_list ap)
{
    if (level < logger.level) {
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);

    struct ward_buf msg = {0};
    ward_buf_vprintf(&msg, fmt, ap);

    struct ward_buf line = {0};
    ward_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                    ward_log_level_name(level));
    put_value(&line, component != NULL ? component : "core");
    ward_buf_puts(&line, ",\"msg\":");
    put_value(&line, msg.data != NULL ? msg.data : "");
    for (size_t i = 0; i < nfields; i++) {
        const char *key = fields[i].key;
        if (key == NULL || strcmp(key, "ts") == 0 || strcmp(key, "level") == 0 ||
            strcmp(key, "msg") == 0 || strcmp(key, "component") == 0) {
            continue; /* a caller cannot overwrite the envelope */
        }
        ward_buf_putc(&line, ',');
        ward_json_escape(&line, key);
        ward_buf_putc(&line, ':');
        if (fields[i].value == NULL) {
            ward_buf_puts(&line, "null");
        } else if (ward_log_key_is_secret(key)) {
            ward_json_escape(&line, WARD_REDACTED);
        } else {
            put_value(&line, fields[i].value);
        }
    }
    ward_buf_puts(&line, "}\n");

    if (logger.use_syslog) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "%.*s", (int)line.len - 1, line.data);
    } else {
        FILE *out = logger.out != NULL ? logger.out : stderr;
        fwrite(line.data, 1, line.len, out);
        fflush(out);
    }
    ward_buf_free(&line);
    ward_buf_free(&msg);
}

void ward_log(enum ward_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, component, NULL, 0, fmt, ap);
    va_end(ap);
}

void ward_log_fields(enum ward_log_level level, const char *component,
                     const struct ward_log_field *fields, size_t nfields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, component, fields, nfields, fmt, ap);
    va_end(ap);
}

void ward_log_fieldsv(enum ward_log_level level, const char *component,
                      const struct ward_log_field *fields, size_t nfields, const char *fmt,
                      va_list ap)
{
    emit(level, component, fields, nfields, fmt, ap);
}
