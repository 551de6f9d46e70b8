/* SPDX-License-Identifier: Apache-2.0 */
/* Logger internals used by the core; plugins see only ward/plugin.h. */
#ifndef WARD_CORE_LOG_H
#define WARD_CORE_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include <ward/plugin.h>

struct ward_buf;

int ward_log_level_parse(const char *name, enum ward_log_level *out);
const char *ward_log_level_name(enum ward_log_level level);
void ward_log_set_level(enum ward_log_level level);
enum ward_log_level ward_log_get_level(void);

/* Append to a file (created if missing); lines are flushed one by one. */
int ward_log_open_file(const char *path, struct ward_error *err);
/* Write to a stream the caller keeps owning (tests use a memory stream). */
void ward_log_set_stream(FILE *stream);
void ward_log_use_syslog(bool on);
void ward_log_close(void);
void ward_log_clear_secrets(void);

/* True when a field of this name never shows its value. */
bool ward_log_key_is_secret(const char *key);
/*
 * The first key in a JSON tree whose value is a string and whose name says it is a secret
 * (password, token, ...), or NULL. Names of where a secret is kept (passwordFile, tokenEnv,
 * password_path) are not secrets. A host's spec is stored and shown, so none may hold one.
 */
struct cJSON;
const char *ward_log_find_secret(const struct cJSON *tree);

void ward_log_fieldsv(enum ward_log_level level, const char *component,
                      const struct ward_log_field *fields, size_t nfields, const char *fmt,
                      va_list ap) __attribute__((format(printf, 5, 0)));

/* Append s to b as a JSON string literal, escaping quotes and control bytes. */
void ward_json_escape(struct ward_buf *b, const char *s);

#endif
