/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /api/v1: parse and validate into a struct ward_api_call, then execute it
 * against the store, the events and the daemon's hooks. Every refusal is a
 * JSON error with a 4xx status; nothing a client sends reaches the store
 * unchecked.
 */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "daemon.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"

#define API_PREFIX "/api/v1/"
#define MAX_SEGMENTS 4
#define LIST_LIMIT_MAX 100000
#define HOST_TABLE_SIZE 16384
#define HOST_DIRTY_MAX 2048
#define HOST_STATE_MAX 32

struct host_slot;

struct ward_api {
    struct ward_http *http;     /* borrowed */
    struct ward_store *store;   /* borrowed; may be NULL */
    struct ward_events *events; /* borrowed; may be NULL */
    struct ward_metrics *metrics;
    struct ward_api_hooks hooks;
    struct ward_metric *hosts_gauge, *claim_duration, *claim_attempts, *requests_invalid;
    /* ward_hosts{state}: a map name -> state kept from the change feed (see on_scrape) */
    struct host_slot **host_table; /* owned, HOST_TABLE_SIZE chains */
    char **dirty;                  /* owned: "ns\x1fname" of hosts changed since the last scrape */
    size_t ndirty;
    bool recount; /* too many changes (or none counted yet): count everything */
};

/* --- validation helpers ------------------------------------------------------------------ */

bool ward_api_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > WARD_API_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i < n - 1)) {
            return false;
        }
    }
    return true;
}

bool ward_api_valid_image_url(const char *url)
{
    size_t n = strlen(url);
    /* schemes are case-insensitive (RFC 3986) */
    size_t scheme = strncasecmp(url, "https://", 8) == 0  ? 8
                    : strncasecmp(url, "http://", 7) == 0 ? 7
                                                          : 0;
    if (scheme == 0 || n > WARD_API_URL_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    /* the authority ends at the first '/', '?' or '#'; it needs a host and no user info */
    size_t end = scheme + strcspn(url + scheme, "/?#");
    if (end == scheme || url[scheme] == ':' || memchr(url + scheme, '@', end - scheme) != NULL) {
        return false;
    }
    return true;
}

static bool valid_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

/* Label keys may carry a DNS prefix ("ward.io/rack"); values are short tokens. */
static bool valid_label(const char *s, bool key)
{
    size_t n = strlen(s);
    if (n > (key ? 253u : 63u) || (key && n == 0)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || (key && c == '/');
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Free text for reasons: printable, bounded, no control characters (they end up in logs). */
static bool valid_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

enum field_type { FIELD_STRING, FIELD_VERSION, FIELD_LABELS, FIELD_OBJECT };

struct field {
    const char *name;
    enum field_type type;
    bool required;
};

static const struct field add_fields[] = {{"name", FIELD_STRING, true},
                                          {"namespace", FIELD_STRING, false},
                                          {"labels", FIELD_LABELS, false},
                                          {"spec", FIELD_OBJECT, false},
                                          {NULL, 0, false}};
static const struct field transition_fields[] = {{"to", FIELD_STRING, true},
                                                 {"reason", FIELD_STRING, true},
                                                 {"version", FIELD_VERSION, false},
                                                 {"dimension", FIELD_STRING, false},
                                                 {NULL, 0, false}};
static const struct field reset_fields[] = {
    {"reason", FIELD_STRING, true}, {"version", FIELD_VERSION, false}, {NULL, 0, false}};
static const struct field release_fields[] = {{"consumer", FIELD_STRING, true}, {NULL, 0, false}};
static const struct field claim_fields[] = {{"consumer", FIELD_STRING, true},
                                            {"selector", FIELD_LABELS, false},
                                            {"bootISOSource", FIELD_STRING, false},
                                            {NULL, 0, false}};
static const struct field image_fields[] = {{"consumer", FIELD_STRING, true},
                                            {"bootISOSource", FIELD_STRING, true},
                                            {"version", FIELD_VERSION, false},
                                            {NULL, 0, false}};
static const struct field no_fields[] = {{NULL, 0, false}};

static int check_labels(const cJSON *obj, const char *what, struct ward_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        if (!valid_label(item->string, true)) {
            return ward_error_set(
                err, 400, "%s: label keys are 1-253 letters, digits, '-', '_', '.' or '/'", what);
        }
        if (!cJSON_IsString(item) || !valid_label(item->valuestring, false)) {
            return ward_error_set(err, 400,
                                  "%s.%s: label values are strings of up to 63 letters, digits, "
                                  "'-', '_' or '.'",
                                  what, item->string);
        }
    }
    return 0;
}

/* A number cJSON would store as a different one: it prints 15 significant digits whenever
   they read back as nearly the same value (9007199254740991 is stored as ...990), and an
   infinity as null. */
static bool prints_back(const cJSON *number)
{
    char *text = cJSON_PrintUnformatted(number);
    if (text == NULL) {
        return false;
    }
    char *end;
    double back = strtod(text, &end);
    bool same = end != text && *end == '\0' && back == number->valuedouble;
    free(text);
    return same;
}

/*
 * Every object in the tree has each key once: with a key twice, cJSON's readers see the
 * first value and Lua's the last, so the store and the policy would disagree. field is the
 * top-level field the node is under (NULL for the body itself). The spec is stored as
 * printed, so under it every number must also print back to itself.
 */
static int check_tree(const cJSON *node, const char *field, bool numbers, struct ward_error *err)
{
    if (numbers && cJSON_IsNumber(node) && !prints_back(node)) {
        return ward_error_set(err, 422,
                              "%s: the number %.17g cannot be stored exactly (integers beyond "
                              "2^52 and more than 15 significant digits are rounded); write it "
                              "as a string",
                              field, node->valuedouble);
    }
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) {
        return 0;
    }
    struct ward_strmap seen = {0};
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, node)
    {
        if (cJSON_IsObject(node)) {
            if (ward_strmap_get(&seen, item->string) != NULL) {
                rc = field == NULL
                         ? ward_error_set(err, 400, "field '%.64s' appears twice", item->string)
                         : ward_error_set(err, 400, "%s: key '%.64s' appears twice", field,
                                          item->string);
                break;
            }
            if (ward_strmap_put(&seen, item->string, (void *)item) != 0) {
                rc = ward_error_set(err, 500, "out of memory");
                break;
            }
        }
        const char *under = field != NULL ? field : item->string;
        bool spec = field == NULL && strcmp(item->string, "spec") == 0;
        if ((rc = check_tree(item, under, numbers || spec, err)) != 0) {
            break;
        }
    }
    ward_strmap_free(&seen);
    return rc;
}

static int check_body(const cJSON *body, const struct field *fields, struct ward_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, body)
    {
        const struct field *f = fields;
        while (f->name != NULL && strcmp(f->name, item->string) != 0) {
            f++;
        }
        if (f->name == NULL) {
            struct ward_buf known = {0};
            for (const struct field *k = fields; k->name != NULL; k++) {
                ward_buf_printf(&known, "%s%s", k == fields ? "" : ", ", k->name);
            }
            char shown[80];
            snprintf(shown, sizeof(shown), "%s", item->string);
            int rc = ward_error_set(err, 400, "unknown field '%s' (known: %s)", shown,
                                    known.data != NULL ? known.data : "none");
            ward_buf_free(&known);
            return rc;
        }
        switch (f->type) {
        case FIELD_STRING:
            if (!cJSON_IsString(item)) {
                return ward_error_set(err, 400, "field '%s' must be a string", f->name);
            }
            break;
        case FIELD_VERSION:
            if (!cJSON_IsNumber(item) || item->valuedouble < 1 ||
                item->valuedouble > 9007199254740992.0 ||
                item->valuedouble != floor(item->valuedouble)) {
                return ward_error_set(err, 400, "field 'version' must be a positive integer");
            }
            break;
        case FIELD_LABELS:
            if (!cJSON_IsObject(item)) {
                return ward_error_set(err, 400, "field '%s' must be an object of strings", f->name);
            }
            if (check_labels(item, f->name, err) != 0) {
                return 400;
            }
            break;
        case FIELD_OBJECT:
            if (!cJSON_IsObject(item)) {
                return ward_error_set(err, 400, "field '%s' must be an object", f->name);
            }
            break;
        }
    }
    for (const struct field *f = fields; f->name != NULL; f++) {
        if (f->required && cJSON_GetObjectItemCaseSensitive(body, f->name) == NULL) {
            return ward_error_set(err, 400, "field '%s' is required", f->name);
        }
    }
    return check_tree(body, NULL, false, err);
}

static const char *body_string(const cJSON *body, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(body, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int parse_since(const char *text, double *out, struct ward_error *err)
{
    double seconds;
    char *end;
    if (ward_time_parse_rfc3339(text, out) == 0) {
        return 0;
    }
    if (ward_duration_parse(text, &seconds) == 0 && seconds > 0) {
        *out = -seconds; /* relative: resolved against the clock when executed */
        return 0;
    }
    double v = strtod(text, &end);
    if (end != text && *end == '\0' && isfinite(v) && v >= 0) {
        *out = v;
        return 0;
    }
    return ward_error_set(err, 400,
                          "since: write an RFC 3339 time (2026-11-23T18:00:00Z), a duration "
                          "back from now (\"15m\") or unix seconds");
}

#define OP(x) (1u << (x))
#define HOST_OPS                                                                                   \
    (OP(WARD_API_HOSTS_LIST) | OP(WARD_API_HOST_GET) | OP(WARD_API_HOST_REMOVE) |                  \
     OP(WARD_API_HOST_HISTORY) | OP(WARD_API_HOST_TRANSITION) | OP(WARD_API_HOST_RESET) |          \
     OP(WARD_API_HOST_RELEASE) | OP(WARD_API_HOST_IMAGE) | OP(WARD_API_HOST_EXPLAIN))

/* The query parameters, and the requests that take each: a body's fields (a new host's
   namespace, a transition's version) are given in the body only. */
enum query_key {
    Q_NAMESPACE,
    Q_VERSION,
    Q_STATE,
    Q_LABEL,
    Q_TYPE,
    Q_KIND,
    Q_NAME,
    Q_LIMIT,
    Q_SINCE
};

static const struct query_param {
    const char *key;
    unsigned ops;
} query_params[] = {
    [Q_NAMESPACE] = {"namespace", HOST_OPS},
    [Q_VERSION] = {"version", OP(WARD_API_HOST_REMOVE)},
    [Q_STATE] = {"state", OP(WARD_API_HOSTS_LIST)},
    [Q_LABEL] = {"label", OP(WARD_API_HOSTS_LIST)},
    [Q_TYPE] = {"type", OP(WARD_API_EVENTS)},
    [Q_KIND] = {"kind", OP(WARD_API_EVENTS)},
    [Q_NAME] = {"name", OP(WARD_API_EVENTS)},
    [Q_LIMIT] = {"limit", OP(WARD_API_EVENTS)},
    [Q_SINCE] = {"since", OP(WARD_API_EVENTS) | OP(WARD_API_HOST_HISTORY)},
};

struct query_walk {
    struct ward_api_call *call;
    struct ward_error *err;
    unsigned seen; /* bit i: query_params[i] was given */
};

/* One value of a known parameter into the call. */
static int query_value(struct ward_api_call *call, enum query_key key, const char *v,
                       struct ward_error *err)
{
    if (key == Q_NAMESPACE) {
        if (!ward_api_valid_name(v) || strlen(v) >= sizeof(call->ns)) {
            return ward_error_set(err, 400, "namespace: not a valid name");
        }
        snprintf(call->ns, sizeof(call->ns), "%s", v);
    } else if (key == Q_VERSION) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < 1) {
            return ward_error_set(err, 400, "version: must be a positive integer");
        }
        call->version = n;
    } else if (key == Q_STATE) {
        if (!valid_token(v, 32)) {
            return ward_error_set(err, 400, "state: 1-32 letters and digits");
        }
        call->state = v;
    } else if (key == Q_LABEL) {
        const char *eq = strchr(v, '=');
        if (eq == NULL) {
            return ward_error_set(err, 400, "label: write it as key=value");
        }
        call->label_key = strndup(v, (size_t)(eq - v));
        call->label_value = strdup(eq + 1);
        if (call->label_key == NULL || call->label_value == NULL) {
            return ward_error_set(err, 500, "out of memory");
        }
        if (!valid_label(call->label_key, true) || !valid_label(call->label_value, false)) {
            return ward_error_set(err, 400, "label: not a valid key=value");
        }
    } else if (key == Q_TYPE) {
        if (strcmp(v, "Normal") != 0 && strcmp(v, "Warning") != 0) {
            return ward_error_set(err, 400, "type: Normal or Warning");
        }
        call->type = v;
    } else if (key == Q_KIND) {
        if (!valid_token(v, 63)) {
            return ward_error_set(err, 400, "kind: 1-63 letters and digits");
        }
        call->kind = v;
    } else if (key == Q_NAME) {
        if (!ward_api_valid_name(v)) {
            return ward_error_set(err, 400, "name: not a valid name");
        }
        snprintf(call->name, sizeof(call->name), "%s", v);
    } else if (key == Q_LIMIT) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < 1 || n > LIST_LIMIT_MAX) {
            return ward_error_set(err, 400, "limit: 1 to %d", LIST_LIMIT_MAX);
        }
        call->limit = n;
    } else if (key == Q_SINCE && parse_since(v, &call->since, err) != 0) {
        return 400;
    }
    return 0;
}

/* A parameter this request does not take, or one given twice, is refused: a misspelt or a
   second filter silently ignored would widen a list a script then acts on. */
static int query_arg(void *arg, const char *key, const char *value)
{
    struct query_walk *w = arg;
    size_t i = 0;
    while (i < WARD_ARRAY_SIZE(query_params) && (strcmp(query_params[i].key, key) != 0 ||
                                                 (query_params[i].ops & OP(w->call->op)) == 0)) {
        i++;
    }
    if (i == WARD_ARRAY_SIZE(query_params)) {
        struct ward_buf known = {0};
        for (size_t k = 0; k < WARD_ARRAY_SIZE(query_params); k++) {
            if ((query_params[k].ops & OP(w->call->op)) != 0) {
                ward_buf_printf(&known, "%s%s", known.len > 0 ? ", " : "", query_params[k].key);
            }
        }
        int rc =
            ward_error_set(w->err, 400, "unknown query parameter '%.64s' (this request takes %s)",
                           key, known.data != NULL ? known.data : "none");
        ward_buf_free(&known);
        return rc;
    }
    if ((w->seen & (1u << i)) != 0) {
        return ward_error_set(w->err, 400, "query parameter '%s' appears twice", key);
    }
    w->seen |= 1u << i;
    if (value == NULL) {
        return ward_error_set(w->err, 400, "query parameter '%s' needs a value", key);
    }
    return query_value(w->call, (enum query_key)i, value, w->err);
}

static int parse_query(struct ward_api_call *call, ward_api_query_fn query, void *qarg,
                       struct ward_error *err)
{
    struct query_walk w = {.call = call, .err = err};
    return query != NULL ? query(qarg, query_arg, &w) : 0;
}

struct route_def {
    const char *method;
    const char *segments[MAX_SEGMENTS]; /* "*" is a host name */
    enum ward_api_op op;
    const struct field *body;
};

static const struct route_def routes[] = {
    {"GET", {"hosts"}, WARD_API_HOSTS_LIST, NULL},
    {"POST", {"hosts"}, WARD_API_HOST_ADD, add_fields},
    {"GET", {"hosts", "*"}, WARD_API_HOST_GET, NULL},
    {"DELETE", {"hosts", "*"}, WARD_API_HOST_REMOVE, NULL},
    {"GET", {"hosts", "*", "history"}, WARD_API_HOST_HISTORY, NULL},
    {"POST", {"hosts", "*", "transition"}, WARD_API_HOST_TRANSITION, transition_fields},
    {"POST", {"hosts", "*", "reset"}, WARD_API_HOST_RESET, reset_fields},
    {"POST", {"hosts", "*", "release"}, WARD_API_HOST_RELEASE, release_fields},
    {"POST", {"hosts", "*", "image"}, WARD_API_HOST_IMAGE, image_fields},
    {"GET", {"hosts", "*", "explain"}, WARD_API_HOST_EXPLAIN, NULL},
    {"POST", {"claims"}, WARD_API_CLAIM, claim_fields},
    {"GET", {"events"}, WARD_API_EVENTS, NULL},
    {"POST", {"policy", "reload"}, WARD_API_POLICY_RELOAD, no_fields},
    {"GET", {"queue"}, WARD_API_QUEUE_STATUS, NULL},
    {"POST", {"queue", "drain"}, WARD_API_QUEUE_DRAIN, no_fields},
    {"POST", {"queue", "resume"}, WARD_API_QUEUE_RESUME, no_fields},
    {"GET", {"leader"}, WARD_API_LEADER, NULL},
};

void ward_api_call_free(struct ward_api_call *call)
{
    cJSON_Delete(call->body);
    free(call->selector);
    free(call->labels);
    free(call->spec);
    free(call->label_key);
    free(call->label_value);
    memset(call, 0, sizeof(*call));
}

/* cJSON keeps a string's \u0000 as a NUL, and every C reader after it stops there: the
   value would be cut short without a word. Scans text as JSON strings are written. */
static bool has_escaped_nul(const char *text, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"') {
            in_string = !in_string;
        } else if (in_string && text[i] == '\\') {
            if (len - i >= 6 && memcmp(text + i + 1, "u0000", 5) == 0) {
                return true;
            }
            i++; /* the escaped character, a quote or a backslash among them */
        }
    }
    return false;
}

static int parse_body(struct ward_api_call *call, const struct field *fields, const char *body,
                      size_t len, struct ward_error *err)
{
    size_t start = 0;
    while (start < len && (body[start] == ' ' || body[start] == '\n' || body[start] == '\r' ||
                           body[start] == '\t')) {
        start++;
    }
    if (start == len) {
        if (fields == no_fields) {
            return 0;
        }
        return ward_error_set(err, 400, "a JSON object body is required");
    }
    if (memchr(body, '\0', len) != NULL) {
        return ward_error_set(err, 400, "the body contains NUL bytes");
    }
    if (has_escaped_nul(body, len)) {
        return ward_error_set(err, 400, "a string in the body contains \\u0000");
    }
    const char *end = NULL;
    call->body = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (call->body == NULL) {
        size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        return ward_error_set(err, 400, "malformed JSON near byte %zu", at);
    }
    if (end != NULL) {
        while ((size_t)(end - body) < len &&
               (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) {
            end++;
        }
        if ((size_t)(end - body) < len) {
            return ward_error_set(err, 400, "trailing data after the JSON value");
        }
    }
    if (!cJSON_IsObject(call->body)) {
        return ward_error_set(err, 400, "the body must be a JSON object");
    }
    return check_body(call->body, fields, err);
}

static int fill_from_body(struct ward_api_call *call, struct ward_error *err)
{
    const cJSON *b = call->body;
    if (b == NULL) {
        return 0;
    }
    const char *s;
    if ((s = body_string(b, "name")) != NULL) {
        if (!ward_api_valid_name(s)) {
            return ward_error_set(err, 422,
                                  "name '%.64s' is not valid: use lower-case letters, digits, "
                                  "'-' and '.', starting and ending with a letter or digit",
                                  s);
        }
        snprintf(call->name, sizeof(call->name), "%s", s);
    }
    if ((s = body_string(b, "namespace")) != NULL) {
        if (!ward_api_valid_name(s) || strlen(s) >= sizeof(call->ns)) {
            return ward_error_set(err, 422, "namespace is not a valid name");
        }
        snprintf(call->ns, sizeof(call->ns), "%s", s);
    }
    if ((s = body_string(b, "to")) != NULL) {
        if (!valid_token(s, 32)) {
            return ward_error_set(err, 422, "to: a state name of 1-32 letters and digits");
        }
        call->to = s;
    }
    if ((s = body_string(b, "dimension")) != NULL) {
        if (!valid_label(s, false) || *s == '\0') {
            return ward_error_set(err, 422, "dimension: 1-63 letters, digits, '-', '_' or '.'");
        }
        call->dimension = s;
    }
    if ((s = body_string(b, "reason")) != NULL) {
        if (!valid_text(s, WARD_API_REASON_MAX)) {
            return ward_error_set(err, 422, "reason: 1-%d characters without control characters",
                                  WARD_API_REASON_MAX);
        }
        call->reason = s;
    }
    if ((s = body_string(b, "consumer")) != NULL) {
        if (!ward_api_valid_name(s)) {
            return ward_error_set(err, 422, "consumer '%.64s' is not a valid name", s);
        }
        call->consumer = s;
    }
    if ((s = body_string(b, "bootISOSource")) != NULL) {
        /* "" clears the image of a claimed host; a claim must name a real one */
        if ((*s != '\0' || call->op == WARD_API_CLAIM) && !ward_api_valid_image_url(s)) {
            return ward_error_set(err, 422,
                                  "bootISOSource must be an http:// or https:// URL with a host, "
                                  "printable, without spaces or user:password@, at most %d bytes",
                                  WARD_API_URL_MAX);
        }
        call->boot_iso = s;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "version");
    if (v != NULL) {
        call->version = (int64_t)v->valuedouble;
    }
    const cJSON *o;
    if ((o = cJSON_GetObjectItemCaseSensitive(b, "selector")) != NULL &&
        (call->selector = cJSON_PrintUnformatted(o)) == NULL) {
        return ward_error_set(err, 500, "out of memory");
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(b, "labels")) != NULL &&
        (call->labels = cJSON_PrintUnformatted(o)) == NULL) {
        return ward_error_set(err, 500, "out of memory");
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(b, "spec")) != NULL) {
        /* the configuration refuses the same: a spec is stored and every read shows it */
        const char *secret = ward_log_find_secret(o);
        if (secret != NULL) {
            return ward_error_set(err, 422,
                                  "spec: '%.64s' is a secret, and a host's spec is stored and "
                                  "shown to every reader; give the BMC's password as "
                                  "passwordFile or passwordEnv",
                                  secret);
        }
        if ((call->spec = cJSON_PrintUnformatted(o)) == NULL) {
            return ward_error_set(err, 500, "out of memory");
        }
    }
    return 0;
}

int ward_api_parse(const char *method, const char *path, ward_api_query_fn query, void *qarg,
                   const char *body, size_t body_len, struct ward_api_call *call,
                   struct ward_error *err)
{
    memset(call, 0, sizeof(*call));
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0) {
        return ward_error_set(err, 404, "no such endpoint");
    }
    /* split into segments; a name segment is validated below */
    char copy[512];
    const char *rest = path + strlen(API_PREFIX);
    if (strlen(rest) >= sizeof(copy)) {
        return ward_error_set(err, 404, "no such endpoint (path too long)");
    }
    snprintf(copy, sizeof(copy), "%s", rest);
    char *segs[MAX_SEGMENTS + 1];
    size_t nseg = 0;
    char *p = copy;
    while (*p != '\0') {
        if (nseg == MAX_SEGMENTS) {
            return ward_error_set(err, 404, "no such endpoint");
        }
        segs[nseg++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0') {
            break; /* one trailing slash is tolerated */
        }
    }
    bool path_known = false;
    const struct route_def *route = NULL;
    for (size_t i = 0; i < WARD_ARRAY_SIZE(routes) && route == NULL; i++) {
        const struct route_def *r = &routes[i];
        size_t k = 0;
        while (k < MAX_SEGMENTS && r->segments[k] != NULL) {
            k++;
        }
        if (k != nseg) {
            continue;
        }
        bool match = true;
        for (size_t j = 0; j < nseg && match; j++) {
            match = strcmp(r->segments[j], "*") == 0 ? segs[j][0] != '\0'
                                                     : strcmp(r->segments[j], segs[j]) == 0;
        }
        if (!match) {
            continue;
        }
        path_known = true;
        if (strcmp(method, r->method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
            route = r;
        }
    }
    if (route == NULL) {
        return path_known ? ward_error_set(err, 405, "method %s is not allowed here", method)
                          : ward_error_set(err, 404, "no such endpoint");
    }
    call->op = route->op;
    snprintf(call->ns, sizeof(call->ns), "%s", WARD_API_DEFAULT_NS);
    call->dimension = WARD_STORE_LIFECYCLE;
    if (nseg >= 2 && strcmp(route->segments[1], "*") == 0) {
        if (!ward_api_valid_name(segs[1])) {
            ward_api_call_free(call);
            return ward_error_set(err, 422,
                                  "host name '%.64s' is not valid: use lower-case letters, "
                                  "digits, '-' and '.'",
                                  segs[1]);
        }
        snprintf(call->name, sizeof(call->name), "%s", segs[1]);
    }
    int rc = 0;
    if (route->body != NULL) {
        rc = parse_body(call, route->body, body, body_len, err);
        if (rc == 0) {
            rc = fill_from_body(call, err);
        }
    } else if (body_len > 0 && strspn(body, " \r\n\t") < body_len) {
        rc = ward_error_set(err, 400, "this request takes no body");
    }
    if (rc == 0) {
        rc = parse_query(call, query, qarg, err);
    }
    if (rc != 0) {
        ward_api_call_free(call);
        return rc;
    }
    return 0;
}

/* --- responses ------------------------------------------------------------------------------ */

static void put_time(struct ward_buf *out, double t)
{
    ward_buf_putc(out, '"');
    ward_time_rfc3339(t, out);
    ward_buf_putc(out, '"');
}

static void put_raw_json(struct ward_buf *out, const char *text)
{
    ward_buf_puts(out, text != NULL && *text != '\0' ? text : "{}");
}

static void put_host(struct ward_api *api, struct ward_buf *out, const struct ward_resource *r,
                     bool with_states)
{
    ward_buf_puts(out, "{\"kind\":");
    ward_json_escape(out, r->kind);
    ward_buf_puts(out, ",\"namespace\":");
    ward_json_escape(out, r->ns);
    ward_buf_puts(out, ",\"name\":");
    ward_json_escape(out, r->name);
    ward_buf_printf(out, ",\"version\":%lld,\"labels\":", (long long)r->version);
    put_raw_json(out, r->labels);
    ward_buf_puts(out, ",\"spec\":");
    put_raw_json(out, r->spec);
    ward_buf_puts(out, ",\"status\":");
    put_raw_json(out, r->status);
    ward_buf_puts(out, ",\"consumer\":");
    if (r->consumer != NULL && *r->consumer != '\0') {
        ward_json_escape(out, r->consumer);
    } else {
        ward_buf_puts(out, "null");
    }
    ward_buf_puts(out, ",\"created\":");
    put_time(out, r->created);
    ward_buf_puts(out, ",\"updated\":");
    put_time(out, r->updated);
    if (with_states && api->store != NULL) {
        struct ward_state *states = NULL;
        size_t n = 0;
        ward_buf_puts(out, ",\"states\":{");
        if (ward_store_states(api->store, r->kind, r->ns, r->name, &states, &n, NULL) == 0) {
            for (size_t i = 0; i < n; i++) {
                ward_buf_printf(out, "%s", i > 0 ? "," : "");
                ward_json_escape(out, states[i].dimension);
                ward_buf_puts(out, ":{\"state\":");
                ward_json_escape(out, states[i].state);
                ward_buf_puts(out, ",\"entered\":");
                put_time(out, states[i].entered);
                ward_buf_putc(out, '}');
            }
            ward_state_free(states, n);
        }
        ward_buf_putc(out, '}');
    }
    ward_buf_putc(out, '}');
}

/* Map a store error to a status; the store's text says what to do. */
static void store_error(struct ward_http_response *res, int rc, const struct ward_error *err)
{
    int status;
    switch (rc) {
    case -ENOENT:
        status = 404;
        break;
    case -ESTALE:
    case -EEXIST:
    case -EPERM:
        status = 409;
        break;
    case -EINVAL:
        status = 422;
        break;
    case -ENOSPC:
    case -EROFS:
    case -EBUSY:
        status = 503;
        break;
    default:
        status = 500;
        break;
    }
    ward_http_error(res, status, "%s", err->text[0] != '\0' ? err->text : strerror(-rc));
}

static int64_t current_version(struct ward_api *api, const struct ward_api_call *call)
{
    struct ward_resource *r = NULL;
    int64_t v = 0;
    if (ward_store_get(api->store, WARD_API_KIND, call->ns, call->name, &r, NULL) == 0) {
        v = r->version;
        ward_resource_free(r);
    }
    return v;
}

/* 409 and 428 tell the client the version to retry with. */
static void version_error(struct ward_api *api, struct ward_http_response *res, int status,
                          const struct ward_api_call *call, const char *why)
{
    int64_t v = current_version(api, call);
    res->status = status;
    res->body.len = 0;
    ward_buf_printf(&res->body, "{\"error\":{\"code\":%d,\"reason\":\"%s\",\"message\":", status,
                    status == 428   ? "Precondition Required"
                    : status == 404 ? "Not Found"
                                    : "Conflict");
    ward_json_escape(&res->body, why);
    ward_buf_printf(&res->body, ",\"currentVersion\":%lld}}\n", (long long)v);
}

static void record_event(struct ward_api *api, const char *type, const char *reason, const char *ns,
                         const char *name, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void record_event(struct ward_api *api, const char *type, const char *reason, const char *ns,
                         const char *name, const char *fmt, ...)
{
    if (api->events == NULL) {
        return;
    }
    char message[WARD_EVENT_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    ward_events_record(api->events, type, reason, message, WARD_API_KIND, ns, name);
}

/* --- execution ------------------------------------------------------------------------------- */

static void do_list(struct ward_api *api, struct ward_api_call *call,
                    struct ward_http_response *res)
{
    struct ward_store_filter f = {
        .kind = WARD_API_KIND, .label_key = call->label_key, .label_value = call->label_value};
    if (call->state != NULL) {
        f.dimension = WARD_STORE_LIFECYCLE;
        f.state = call->state;
    }
    struct ward_resource **list = NULL;
    size_t n = 0;
    struct ward_error err = {0};
    int rc = ward_store_list(api->store, &f, &list, &n, &err);
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    ward_buf_puts(&res->body, "{\"kind\":\"PhysicalHostList\",\"items\":[");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i]->ns, call->ns) != 0) {
            continue;
        }
        ward_buf_puts(&res->body, shown++ > 0 ? "," : "");
        put_host(api, &res->body, list[i], false);
    }
    ward_buf_puts(&res->body, "]}\n");
    ward_resource_list_free(list, n);
}

static void do_add(struct ward_api *api, struct ward_api_call *call, struct ward_http_response *res)
{
    struct ward_resource r = {.kind = WARD_API_KIND,
                              .ns = call->ns,
                              .name = call->name,
                              .spec = call->spec,
                              .labels = call->labels};
    struct ward_error err = {0};
    int rc = api->hooks.add != NULL ? api->hooks.add(api->hooks.arg, call->ns, call->name,
                                                     call->spec, call->labels, &err)
                                    : ward_store_create(api->store, &r, &err);
    if (rc != 0) {
        if (rc == -EEXIST) {
            ward_http_error(res, 409, "host %s already exists", call->name);
        } else {
            store_error(res, rc, &err);
        }
        return;
    }
    record_event(api, "Normal", "Added", call->ns, call->name, "added to the inventory");
    ward_log_fields(WARD_LOG_INFO, "api", (struct ward_log_field[]){{"host", call->name}}, 1,
                    "host added to the inventory");
    res->status = 201;
    struct ward_resource *got = NULL;
    if (ward_store_get(api->store, WARD_API_KIND, call->ns, call->name, &got, NULL) == 0) {
        put_host(api, &res->body, got, true);
        ward_buf_putc(&res->body, '\n');
        ward_resource_free(got);
    }
}

/* The host the call names (caller frees), or NULL once res says why: 404 or the store's error. */
static struct ward_resource *host_or_error(struct ward_api *api, const struct ward_api_call *call,
                                           struct ward_http_response *res)
{
    struct ward_resource *r = NULL;
    struct ward_error err = {0};
    int rc = ward_store_get(api->store, WARD_API_KIND, call->ns, call->name, &r, &err);
    if (rc == -ENOENT) {
        ward_http_error(res, 404, "no host named %s", call->name);
    } else if (rc != 0) {
        store_error(res, rc, &err);
    }
    return rc == 0 ? r : NULL;
}

static void do_get(struct ward_api *api, struct ward_api_call *call, struct ward_http_response *res)
{
    struct ward_resource *r = host_or_error(api, call, res);
    if (r == NULL) {
        return;
    }
    put_host(api, &res->body, r, true);
    ward_buf_putc(&res->body, '\n');
    ward_resource_free(r);
}

static void do_remove(struct ward_api *api, struct ward_api_call *call,
                      struct ward_http_response *res)
{
    struct ward_resource *r = host_or_error(api, call, res);
    if (r == NULL) {
        return;
    }
    bool claimed = r->consumer != NULL && *r->consumer != '\0';
    char consumer[WARD_API_NAME_MAX + 1];
    snprintf(consumer, sizeof(consumer), "%s", claimed ? r->consumer : "");
    ward_resource_free(r);
    if (call->version == 0) {
        version_error(api, res, 428, call, "removing a host needs ?version=<current version>");
        return;
    }
    if (claimed) {
        ward_http_error(res, 409, "host %s is claimed by %s: release it first", call->name,
                        consumer);
        return;
    }
    struct ward_error err = {0};
    int rc =
        ward_store_delete(api->store, WARD_API_KIND, call->ns, call->name, call->version, &err);
    if (rc == -ESTALE) {
        version_error(api, res, 409, call, "the host changed since that version");
        return;
    }
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    record_event(api, "Normal", "Removed", call->ns, call->name, "removed from the inventory");
    ward_buf_printf(&res->body, "{\"removed\":true,\"name\":");
    ward_json_escape(&res->body, call->name);
    ward_buf_puts(&res->body, "}\n");
}

/* Read-only: asks the policy what it would do, changes nothing. */
static void do_explain(struct ward_api *api, struct ward_api_call *call,
                       struct ward_http_response *res)
{
    if (api->hooks.explain == NULL) {
        ward_http_error(res, 503, "explain needs the policy engine");
        return;
    }
    struct ward_error err = {0};
    char *json = api->hooks.explain(api->hooks.arg, call->ns, call->name, &err);
    if (json == NULL) {
        ward_http_error(res, err.code == -ENOENT ? 404 : 500, "%s", err.text);
        return;
    }
    ward_buf_puts(&res->body, json);
    ward_buf_putc(&res->body, '\n');
    free(json);
}

static void do_history(struct ward_api *api, struct ward_api_call *call,
                       struct ward_http_response *res)
{
    struct ward_resource *r = NULL;
    struct ward_error err = {0};
    int rc = ward_store_get(api->store, WARD_API_KIND, call->ns, call->name, &r, &err);
    if (rc == -ENOENT) {
        ward_http_error(res, 404, "no host named %s", call->name);
        return;
    }
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    ward_resource_free(r);
    double since = call->since < 0 ? ward_wall_clock() + call->since : call->since;
    struct ward_history *h = NULL;
    size_t n = 0;
    rc =
        ward_store_history(api->store, WARD_API_KIND, call->ns, call->name, since, 0, &h, &n, &err);
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    ward_buf_puts(&res->body, "{\"kind\":\"HistoryList\",\"name\":");
    ward_json_escape(&res->body, call->name);
    ward_buf_puts(&res->body, ",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        ward_buf_puts(&res->body, i > 0 ? ",{\"dimension\":" : "{\"dimension\":");
        ward_json_escape(&res->body, h[i].dimension != NULL ? h[i].dimension : "");
        ward_buf_puts(&res->body, ",\"from\":");
        ward_json_escape(&res->body, h[i].from != NULL ? h[i].from : "");
        ward_buf_puts(&res->body, ",\"to\":");
        ward_json_escape(&res->body, h[i].to != NULL ? h[i].to : "");
        ward_buf_puts(&res->body, ",\"trigger\":");
        ward_json_escape(&res->body, h[i].trigger != NULL ? h[i].trigger : "");
        ward_buf_puts(&res->body, ",\"reason\":");
        ward_json_escape(&res->body, h[i].reason != NULL ? h[i].reason : "");
        ward_buf_puts(&res->body, ",\"actor\":");
        ward_json_escape(&res->body, h[i].actor != NULL ? h[i].actor : "");
        ward_buf_printf(&res->body, ",\"version\":%lld,\"at\":", (long long)h[i].version);
        put_time(&res->body, h[i].at);
        ward_buf_putc(&res->body, '}');
    }
    ward_buf_puts(&res->body, "]}\n");
    ward_history_free(h, n);
}

static void do_transition(struct ward_api *api, struct ward_api_call *call,
                          struct ward_http_response *res, bool reset)
{
    if (api->hooks.transition == NULL) {
        ward_http_error(res, 503,
                        "no policy engine is running in this agent: transitions go through its "
                        "guarded path only");
        return;
    }
    if (call->version == 0) {
        version_error(api, res, current_version(api, call) == 0 ? 404 : 428, call,
                      current_version(api, call) == 0 ? "no such host"
                                                      : "a transition needs the host's version");
        return;
    }
    struct ward_api_transition t = {.kind = WARD_API_KIND,
                                    .ns = call->ns,
                                    .name = call->name,
                                    .dimension = call->dimension,
                                    .to = reset ? "Enrolling" : call->to,
                                    .reason = call->reason,
                                    .actor = "api",
                                    .expected_version = call->version,
                                    .reset = reset};
    int64_t version = 0;
    struct ward_error err = {0};
    int rc = api->hooks.transition(api->hooks.arg, &t, &version, &err);
    if (rc == -ESTALE) {
        version_error(api, res, 409, call,
                      err.text[0] != '\0' ? err.text : "the host changed since that version");
        return;
    }
    if (rc == -EAGAIN) {
        /* admitted later: the provisioning queue holds it and the policy moves it then */
        res->status = 202;
        ward_buf_printf(&res->body, "{\"name\":");
        ward_json_escape(&res->body, call->name);
        ward_buf_puts(&res->body, ",\"to\":");
        ward_json_escape(&res->body, t.to);
        ward_buf_puts(&res->body, ",\"queued\":true,\"message\":");
        ward_json_escape(&res->body, err.text);
        ward_buf_puts(&res->body, "}\n");
        return;
    }
    if (rc == -EPERM || rc == -EINVAL) {
        /* the guard's or the machine's reason goes back to the operator as is */
        ward_http_error(res, rc == -EPERM ? 409 : 422, "%s",
                        err.text[0] != '\0' ? err.text : "refused");
        return;
    }
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    ward_buf_printf(&res->body, "{\"name\":");
    ward_json_escape(&res->body, call->name);
    ward_buf_puts(&res->body, ",\"to\":");
    ward_json_escape(&res->body, t.to);
    ward_buf_printf(&res->body, ",\"version\":%lld}\n", (long long)version);
}

static void do_release(struct ward_api *api, struct ward_api_call *call,
                       struct ward_http_response *res)
{
    struct ward_error err = {0};
    bool released = false;
    int rc = api->hooks.release != NULL
                 ? api->hooks.release(api->hooks.arg, call->ns, call->name, call->consumer,
                                      &released, &err)
                 : ward_store_release(api->store, WARD_API_KIND, call->ns, call->name,
                                      call->consumer, &released, &err);
    if (rc != 0) {
        if (rc == -ENOENT) {
            ward_http_error(res, 404, "no host named %s", call->name);
        } else if (rc == -EBUSY) {
            ward_http_error(res, 409, "%s", err.text);
        } else {
            store_error(res, rc, &err);
        }
        return;
    }
    if (released) { /* a release of a host nobody held changed nothing: no event */
        record_event(api, "Normal", "Released", call->ns, call->name, "released by %s",
                     call->consumer);
    }
    ward_buf_printf(&res->body, "{\"released\":%s,\"name\":", released ? "true" : "false");
    ward_json_escape(&res->body, call->name);
    ward_buf_puts(&res->body, "}\n");
}

/* Claim answers carry the attempts and conflicts this claim cost, as counted in the metrics. */
static void claim_error(struct ward_http_response *res, int status, const char *message,
                        double attempts, double conflicts)
{
    ward_http_error(res, status, "%s", message);
    /* reopen the top-level object to add the figures */
    res->body.len -= 2;
    res->body.data[res->body.len] = '\0';
    ward_buf_printf(&res->body, ",\"attempts\":%.0f,\"conflicts\":%.0f}\n", attempts, conflicts);
}

/* The provisioning queue refuses a new request when it is full: 429, counted by the queue. */
static bool queue_full(struct ward_api *api, struct ward_http_response *res)
{
    struct ward_error err = {0};
    if (api->hooks.queue_offer == NULL || api->hooks.queue_offer(api->hooks.arg, NULL, &err) == 0) {
        return false;
    }
    ward_http_error(res, err.code == -EBUSY ? 429 : 503, "%s", err.text);
    return true;
}

static void queue_add(struct ward_api *api, const char *name)
{
    struct ward_error err = {0};
    if (api->hooks.queue_offer != NULL && api->hooks.queue_offer(api->hooks.arg, name, &err) != 0) {
        /* the engine still finds the host and queues it when it asks to provision it */
        ward_log(WARD_LOG_WARN, "api", "%s not queued for provisioning now: %s", name, err.text);
    }
}

/*
 * Write bootISOSource ("" removes it) into a host's spec, compare-and-swap on
 * version. The policy engine follows the store's change feed, so the spec it
 * sees (and its reconcile) follows without another call.
 */
static int write_image(struct ward_api *api, const struct ward_resource *r, const char *url,
                       int64_t version, struct ward_error *err)
{
    cJSON *spec = cJSON_Parse(r->spec != NULL && *r->spec != '\0' ? r->spec : "{}");
    if (!cJSON_IsObject(spec)) {
        cJSON_Delete(spec);
        return ward_error_set(err, -EIO, "the stored spec of %s is not a JSON object", r->name);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "bootISOSource");
    if (*url != '\0' && cJSON_AddStringToObject(spec, "bootISOSource", url) == NULL) {
        cJSON_Delete(spec);
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    char *text = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    if (text == NULL) {
        return ward_error_set(err, -ENOMEM, "out of memory");
    }
    struct ward_resource update = {.kind = r->kind, .ns = r->ns, .name = r->name, .spec = text};
    int rc = ward_store_update(api->store, &update, version, err);
    free(text);
    return rc;
}

/* What a claim's eligibility check saw: the best-ranked refusal explains a 404. */
struct claim_check {
    struct ward_api *api;
    const char *consumer;
    unsigned refused;
    struct ward_error first;
};

static int claim_eligible(void *arg, const struct ward_resource *r, struct ward_error *err)
{
    struct claim_check *c = arg;
    struct ward_error why = {0};
    int rc = c->api->hooks.claimable(c->api->hooks.arg, r->ns, r->name, c->consumer, &why);
    if (rc == 0) {
        return 1;
    }
    if (rc != -EPERM) {
        /* the check itself failed (the store, the engine): not a reason to pass the host by,
           and not the client's fault either (422, 404, 409 would say so) */
        *err = why;
        return rc == -EBUSY || rc == -ENOMEM ? rc : -EIO;
    }
    if (c->refused++ == 0) {
        c->first = why;
    }
    return 0;
}

static void do_claim(struct ward_api *api, struct ward_api_call *call,
                     struct ward_http_response *res)
{
    struct ward_resource *r = NULL;
    struct ward_error err = {0};
    bool provision = call->boot_iso != NULL && *call->boot_iso != '\0';
    if (provision && queue_full(api, res)) {
        return; /* refused before anything is written */
    }
    double attempts = ward_metric_sum(api->claim_attempts, NULL, NULL);
    double conflicts = ward_metric_sum(api->claim_attempts, "outcome", "conflict");
    double started = ward_monotonic();
    struct claim_check check = {.api = api, .consumer = call->consumer};
    int rc =
        ward_store_claim(api->store, WARD_API_KIND, call->selector, call->consumer,
                         api->hooks.claimable != NULL ? claim_eligible : NULL, &check, &r, &err);
    ward_metric_observe(api->claim_duration, NULL, ward_monotonic() - started);
    /* single-threaded: the deltas are exactly this claim's */
    attempts = ward_metric_sum(api->claim_attempts, NULL, NULL) - attempts;
    conflicts = ward_metric_sum(api->claim_attempts, "outcome", "conflict") - conflicts;
    if (rc == -ENOENT && check.refused > 0) {
        char msg[sizeof(check.first.text) + 128];
        snprintf(msg, sizeof(msg),
                 "no available host matching the selector may be claimed now (%u refused; "
                 "the first: %s)",
                 check.refused, check.first.text);
        claim_error(res, 404, msg, attempts, conflicts);
        return;
    }
    if (rc == -ENOENT) {
        claim_error(res, 404, "no available host matches the selector", attempts, conflicts);
        return;
    }
    if (rc == -ESTALE) {
        claim_error(res, 409, err.text, attempts, conflicts);
        return;
    }
    if (rc != 0) {
        store_error(res, rc, &err);
        return;
    }
    /*
     * The image belongs to the claim: the one asked for, or none, so an image
     * a previous holder left is never provisioned for the new one.
     */
    const char *image = call->boot_iso != NULL ? call->boot_iso : "";
    cJSON *spec = cJSON_Parse(r->spec != NULL ? r->spec : "{}");
    const cJSON *left = cJSON_GetObjectItemCaseSensitive(spec, "bootISOSource");
    bool rewrite = cJSON_IsString(left) ? strcmp(left->valuestring, image) != 0
                                        : (left != NULL || *image != '\0');
    cJSON_Delete(spec);
    if (rewrite) {
        /*
         * A versioned update right after the claim, on the version the claim
         * produced: nobody can slip in between unnoticed, and ward_store_claim
         * keeps its shape. Should it fail, the claim is undone so the client
         * never holds a host without the image it asked for.
         */
        rc = write_image(api, r, image, r->version, &err);
        struct ward_resource *got = NULL;
        if (rc == 0 && ward_store_get(api->store, WARD_API_KIND, r->ns, r->name, &got, &err) == 0) {
            ward_resource_free(r);
            r = got;
        }
        if (rc != 0) {
            struct ward_error undo = {0};
            if (ward_store_release(api->store, WARD_API_KIND, r->ns, r->name, call->consumer, NULL,
                                   &undo) != 0) {
                ward_log(WARD_LOG_WARN, "api", "claim of %s not undone: %s", r->name, undo.text);
            }
            ward_resource_free(r);
            store_error(res, rc, &err);
            return;
        }
    }
    if (provision) {
        queue_add(api, r->name);
    }
    record_event(api, "Normal", "Claimed", r->ns, r->name, "claimed by %s", call->consumer);
    put_host(api, &res->body, r, false);
    res->body.len -= 1;
    res->body.data[res->body.len] = '\0';
    ward_buf_printf(&res->body, ",\"attempts\":%.0f,\"conflicts\":%.0f}\n", attempts, conflicts);
    ward_resource_free(r);
}

/* Set or clear the boot image of a host the caller holds, while it is still Claimed. */
static void do_image(struct ward_api *api, struct ward_api_call *call,
                     struct ward_http_response *res)
{
    struct ward_resource *r = host_or_error(api, call, res);
    if (r == NULL) {
        return;
    }
    struct ward_error err = {0};
    int rc;
    struct ward_state *states = NULL;
    size_t n = 0;
    char state[64] = "";
    if (ward_store_states(api->store, r->kind, r->ns, r->name, &states, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(states[i].dimension, WARD_STORE_LIFECYCLE) == 0) {
                snprintf(state, sizeof(state), "%s", states[i].state);
            }
        }
        ward_state_free(states, n);
    }
    if (r->consumer == NULL || strcmp(r->consumer, call->consumer) != 0) {
        ward_http_error(res, 409, "host %s is not held by %s: claim it first", call->name,
                        call->consumer);
    } else if (strcmp(state, WARD_STORE_CLAIMED) != 0) {
        /* later states were provisioned from the image: changing it would not redo that */
        ward_http_error(res, 409,
                        "host %s is %s: its image can change only while it is Claimed (release "
                        "it and claim again to provision another image)",
                        call->name, state[0] != '\0' ? state : "in no lifecycle state");
    } else if (call->version != 0 && call->version != r->version) {
        version_error(api, res, 409, call, "the host changed since that version");
    } else if (*call->boot_iso != '\0' && queue_full(api, res)) {
        /* refused before anything is written */
    } else if ((rc = write_image(api, r, call->boot_iso, r->version, &err)) == -ESTALE) {
        version_error(api, res, 409, call, "the host changed while the image was written; retry");
    } else if (rc != 0) {
        store_error(res, rc, &err);
    } else {
        if (*call->boot_iso != '\0') {
            queue_add(api, call->name);
        }
        record_event(api, "Normal", "ImageSet", call->ns, call->name, "boot image %s by %s",
                     *call->boot_iso != '\0' ? "set" : "cleared", call->consumer);
        struct ward_resource *got = NULL;
        if (ward_store_get(api->store, WARD_API_KIND, call->ns, call->name, &got, NULL) == 0) {
            put_host(api, &res->body, got, true);
            ward_buf_putc(&res->body, '\n');
            ward_resource_free(got);
        }
    }
    ward_resource_free(r);
}

static void do_events(struct ward_api *api, struct ward_api_call *call,
                      struct ward_http_response *res)
{
    struct ward_events_filter f = {.kind = call->kind,
                                   .name = call->name[0] != '\0' ? call->name : NULL,
                                   .type = call->type,
                                   .since = call->since < 0 ? ward_wall_clock() + call->since
                                                            : call->since,
                                   .limit = (size_t)call->limit};
    ward_events_to_json(api->events, &f, &res->body);
}

static void execute(struct ward_api *api, struct ward_api_call *call,
                    struct ward_http_response *res)
{
    bool needs_store = call->op <= WARD_API_CLAIM || call->op == WARD_API_HOST_IMAGE;
    if (needs_store && api->store == NULL) {
        ward_http_error(res, 503, "the store is not open");
        return;
    }
    struct ward_error err = {0};
    switch (call->op) {
    case WARD_API_HOSTS_LIST:
        do_list(api, call, res);
        return;
    case WARD_API_HOST_ADD:
        do_add(api, call, res);
        return;
    case WARD_API_HOST_GET:
        do_get(api, call, res);
        return;
    case WARD_API_HOST_REMOVE:
        do_remove(api, call, res);
        return;
    case WARD_API_HOST_HISTORY:
        do_history(api, call, res);
        return;
    case WARD_API_HOST_TRANSITION:
        do_transition(api, call, res, false);
        return;
    case WARD_API_HOST_RESET:
        do_transition(api, call, res, true);
        return;
    case WARD_API_HOST_RELEASE:
        do_release(api, call, res);
        return;
    case WARD_API_CLAIM:
        do_claim(api, call, res);
        return;
    case WARD_API_HOST_IMAGE:
        do_image(api, call, res);
        return;
    case WARD_API_HOST_EXPLAIN:
        do_explain(api, call, res);
        return;
    case WARD_API_EVENTS:
        if (api->events == NULL) {
            ward_http_error(res, 503, "events are not recorded in this agent");
            return;
        }
        do_events(api, call, res);
        return;
    case WARD_API_POLICY_RELOAD:
        if (api->hooks.policy_reload == NULL) {
            ward_http_error(res, 503, "no policy engine is running in this agent");
            return;
        }
        if (api->hooks.policy_reload(api->hooks.arg, &err) != 0) {
            ward_http_error(res, 422, "reload refused, the running policies stay: %s", err.text);
            return;
        }
        ward_buf_puts(&res->body, "{\"reloaded\":true}\n");
        return;
    case WARD_API_QUEUE_STATUS:
        if (api->hooks.queue_status == NULL) {
            ward_http_error(res, 503, "no provisioning queue is running in this agent");
            return;
        }
        api->hooks.queue_status(api->hooks.arg, &res->body);
        return;
    case WARD_API_QUEUE_DRAIN:
    case WARD_API_QUEUE_RESUME:
        if (api->hooks.queue_drain == NULL) {
            ward_http_error(res, 503, "no provisioning queue is running in this agent");
            return;
        }
        if (api->hooks.queue_drain(api->hooks.arg, call->op == WARD_API_QUEUE_DRAIN, &err) != 0) {
            ward_http_error(res, 409, "%s", err.text);
            return;
        }
        ward_buf_printf(&res->body, "{\"draining\":%s}\n",
                        call->op == WARD_API_QUEUE_DRAIN ? "true" : "false");
        return;
    case WARD_API_LEADER:
        if (api->hooks.leader_status == NULL) {
            /* without a coordinator this agent is the only one deciding claims */
            ward_buf_puts(&res->body, "{\"leader\":true,\"mode\":\"standalone\",\"holder\":null,"
                                      "\"transitions\":0}\n");
            return;
        }
        api->hooks.leader_status(api->hooks.arg, &res->body);
        return;
    }
    ward_http_error(res, 500, "unhandled request");
}

static int query_from_http(void *arg, ward_api_query_each_fn each, void *ctx)
{
    return ward_http_query_each(arg, each, ctx);
}

static void on_api(void *arg, const struct ward_http_request *req, struct ward_http_response *res)
{
    struct ward_api *api = arg;
    struct ward_api_call call;
    struct ward_error err = {0};
    int status = ward_api_parse(req->method, req->path, query_from_http, (void *)req, req->body,
                                req->body_len, &call, &err);
    if (status != 0) {
        ward_metric_add(api->requests_invalid, NULL, 1);
        ward_http_error(res, status, "%s", err.text);
        return;
    }
    execute(api, &call, res);
    ward_api_call_free(&call);
}

/* --- the ward_hosts gauge ------------------------------------------------------------------ */

/*
 * Scrapes must stay cheap with 10,000 hosts, so the gauge is not recounted
 * from the store each time: the change feed names the hosts that changed, a
 * scrape looks up only those and moves each between state series. A full
 * count runs at start and when more than HOST_DIRTY_MAX changes piled up.
 */
struct host_slot {
    struct host_slot *next;
    char *key;                      /* owned: "ns\x1fname" */
    char state[HOST_STATE_MAX + 1]; /* lifecycle state as counted in the gauge */
};

static size_t host_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (; *key != '\0'; key++) {
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    }
    return (size_t)(h % HOST_TABLE_SIZE);
}

static struct host_slot **host_find(struct ward_api *api, const char *key)
{
    struct host_slot **p = &api->host_table[host_hash(key)];
    while (*p != NULL && strcmp((*p)->key, key) != 0) {
        p = &(*p)->next;
    }
    return p;
}

static void hosts_clear(struct ward_api *api)
{
    for (size_t i = 0; api->host_table != NULL && i < HOST_TABLE_SIZE; i++) {
        struct host_slot *s = api->host_table[i];
        while (s != NULL) {
            struct host_slot *next = s->next;
            free(s->key);
            free(s);
            s = next;
        }
        api->host_table[i] = NULL;
    }
    for (size_t i = 0; i < api->ndirty; i++) {
        free(api->dirty[i]);
    }
    api->ndirty = 0;
}

/* State names are bounded by the machine; anything else counts as "None" to keep labels small. */
static void bounded_state(const char *state, char out[HOST_STATE_MAX + 1])
{
    snprintf(out, HOST_STATE_MAX + 1, "%s",
             state != NULL && valid_token(state, HOST_STATE_MAX) ? state : "None");
}

/* Move one host to state (NULL: it is gone) in the map and the gauge. */
static void host_set(struct ward_api *api, const char *key, const char *state)
{
    struct host_slot **p = host_find(api, key);
    char now[HOST_STATE_MAX + 1];
    if (*p != NULL) {
        ward_metric_add(api->hosts_gauge, (const char *const[]){(*p)->state}, -1);
        if (state == NULL) {
            struct host_slot *gone = *p;
            *p = gone->next;
            free(gone->key);
            free(gone);
            return;
        }
    } else if (state != NULL) {
        struct host_slot *s = calloc(1, sizeof(*s));
        if (s == NULL || (s->key = strdup(key)) == NULL) {
            free(s);
            api->recount = true;
            return;
        }
        *p = s;
    } else {
        return;
    }
    bounded_state(state, now);
    memcpy((*p)->state, now, sizeof(now));
    ward_metric_add(api->hosts_gauge, (const char *const[]){now}, 1);
}

static void on_change(void *arg, const struct ward_store_change *c)
{
    struct ward_api *api = arg;
    if (strcmp(c->kind, WARD_API_KIND) != 0 || api->recount) {
        return;
    }
    struct ward_buf key = {0};
    ward_buf_printf(&key, "%s\x1f%s", c->ns, c->name);
    char **grown = api->ndirty < HOST_DIRTY_MAX
                       ? realloc(api->dirty, (api->ndirty + 1) * sizeof(*grown))
                       : NULL;
    if (grown == NULL) {
        api->recount = true;
        ward_buf_free(&key);
        return;
    }
    api->dirty = grown;
    api->dirty[api->ndirty++] = ward_buf_steal(&key);
}

static void hosts_recount(struct ward_api *api)
{
    struct ward_resource **list = NULL;
    size_t n = 0;
    if (ward_store_list(api->store, &(struct ward_store_filter){.kind = WARD_API_KIND}, &list, &n,
                        NULL) != 0) {
        return; /* keep the old figures and try again next scrape */
    }
    for (size_t i = 0; i < HOST_TABLE_SIZE; i++) {
        for (struct host_slot *s = api->host_table[i]; s != NULL; s = s->next) {
            ward_metric_add(api->hosts_gauge, (const char *const[]){s->state}, -1);
        }
    }
    hosts_clear(api);
    struct ward_buf key = {0};
    for (size_t i = 0; i < n; i++) {
        cJSON *status = cJSON_Parse(list[i]->status != NULL ? list[i]->status : "{}");
        const cJSON *states = cJSON_GetObjectItemCaseSensitive(status, "states");
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(states, WARD_STORE_LIFECYCLE);
        key.len = 0;
        ward_buf_printf(&key, "%s\x1f%s", list[i]->ns, list[i]->name);
        host_set(api, key.data, cJSON_IsString(lc) ? lc->valuestring : "None");
        cJSON_Delete(status);
    }
    ward_buf_free(&key);
    ward_resource_list_free(list, n);
    api->recount = false;
}

static void on_scrape(void *arg, struct ward_metrics *metrics)
{
    struct ward_api *api = arg;
    if (api->store == NULL) {
        return;
    }
    if (api->recount) {
        hosts_recount(api);
        return;
    }
    for (size_t i = 0; i < api->ndirty; i++) {
        char *sep = strchr(api->dirty[i], '\x1f');
        *sep = '\0';
        struct ward_state *states = NULL;
        size_t n = 0;
        const char *state = NULL;
        int rc =
            ward_store_states(api->store, WARD_API_KIND, api->dirty[i], sep + 1, &states, &n, NULL);
        char found[HOST_STATE_MAX + 1] = "None";
        if (rc == 0) {
            for (size_t k = 0; k < n; k++) {
                if (strcmp(states[k].dimension, WARD_STORE_LIFECYCLE) == 0) {
                    bounded_state(states[k].state, found);
                }
            }
            state = found;
        }
        ward_state_free(states, n);
        *sep = '\x1f';
        if (rc == 0 || rc == -ENOENT) {
            host_set(api, api->dirty[i], state);
        }
        free(api->dirty[i]);
    }
    api->ndirty = 0;
}

/* --- lifetime ------------------------------------------------------------------------------- */

struct ward_api *ward_api_create(struct ward_http *http, struct ward_store *store,
                                 struct ward_events *events, struct ward_metrics *metrics,
                                 const struct ward_api_hooks *hooks, struct ward_error *err)
{
    struct ward_api *api = calloc(1, sizeof(*api));
    if (api == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    api->http = http;
    api->store = store;
    api->events = events;
    api->metrics = metrics;
    if (hooks != NULL) {
        api->hooks = *hooks;
    }
    api->hosts_gauge =
        ward_metrics_gauge(metrics, "ward_hosts", "Hosts in the inventory by lifecycle state.",
                           (const char *[]){"state", NULL});
    api->claim_duration =
        ward_metrics_histogram(metrics, "ward_host_claim_duration_seconds",
                               "Time from a claim request to its answer.", NULL, NULL, 0);
    api->claim_attempts =
        ward_metrics_counter(metrics, "ward_host_claim_attempts_total",
                             "Host claim attempts by outcome and conflict reason.",
                             (const char *[]){"outcome", "conflict_reason", NULL});
    api->requests_invalid = ward_metrics_counter(
        metrics, "ward_api_invalid_requests_total",
        "API requests refused by validation (bad route, JSON, fields or names).", NULL);
    ward_metric_add(api->requests_invalid, NULL, 0);
    api->recount = true;
    api->host_table = calloc(HOST_TABLE_SIZE, sizeof(*api->host_table));
    if (api->host_table == NULL ||
        (store != NULL && ward_store_subscribe(store, on_change, api) != 0) ||
        ward_http_route(http, NULL, "/api/v1/", WARD_HTTP_PREFIX, on_api, api) != 0 ||
        ward_http_on_scrape(http, on_scrape, api) != 0) {
        ward_error_set(err, -ENOMEM, "out of memory");
        ward_api_destroy(api);
        return NULL;
    }
    return api;
}

void ward_api_destroy(struct ward_api *api)
{
    if (api == NULL) {
        return;
    }
    if (api->store != NULL) {
        ward_store_unsubscribe(api->store, on_change, api);
    }
    hosts_clear(api);
    free(api->host_table);
    free(api->dirty);
    free(api);
}

/* --- daemon wiring ---------------------------------------------------------------------------- */

struct ward_operator {
    struct ward_daemon *daemon; /* borrowed */
    struct ward_store *store;   /* borrowed */
    struct ward_events *events; /* owned */
    struct ward_http *http;     /* owned */
    struct ward_api *api;       /* owned */
};

static int store_ready(void *arg, struct ward_error *err)
{
    struct ward_operator *op = arg;
    return op->store != NULL ? 0 : ward_error_set(err, -ENODEV, "the state store is not open");
}

static int on_reload(struct ward_daemon *d, const struct ward_config *next, void *arg,
                     struct ward_error *err)
{
    struct ward_operator *op = arg;
    /* the listener cannot move under a running loop; the token can rotate */
    return ward_http_reload_token(op->http, err);
}

struct ward_operator *ward_operator_start(struct ward_daemon *d, struct ward_store *store,
                                          const struct ward_api_hooks *hooks,
                                          struct ward_error *err)
{
    struct ward_operator *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    op->daemon = d;
    op->store = store;
    struct ward_http_options o;
    if (ward_http_options_from_config(ward_daemon_config(d), &o, err) != 0) {
        free(op);
        return NULL;
    }
    struct ward_metrics *metrics = ward_daemon_metrics(d);
    op->events = ward_events_create(&(struct ward_events_options){.metrics = metrics});
    if (op->events == NULL) {
        ward_error_set(err, -ENOMEM, "out of memory");
    } else {
        op->http = ward_http_create(ward_daemon_loop(d), metrics, &o, err);
    }
    ward_http_options_free(&o);
    if (op->http != NULL) {
        op->api = ward_api_create(op->http, store, op->events, metrics, hooks, err);
    }
    if (op->api == NULL || ward_http_ready_check(op->http, "store", store_ready, op) != 0 ||
        ward_daemon_on_reload(d, on_reload, op) != 0) {
        if (op->api != NULL) {
            ward_error_set(err, -ENOMEM, "out of memory");
        }
        ward_operator_stop(op);
        return NULL;
    }
    return op;
}

void ward_operator_stop(struct ward_operator *op)
{
    if (op == NULL) {
        return;
    }
    ward_http_destroy(op->http);
    ward_api_destroy(op->api);
    ward_events_destroy(op->events);
    free(op);
}

struct ward_http *ward_operator_http(const struct ward_operator *op)
{
    return op->http;
}

struct ward_events *ward_operator_events(const struct ward_operator *op)
{
    return op->events;
}

/* --- the policy engine behind the API ----------------------------------------------------- */

static int policy_add(void *arg, const char *ns, const char *name, const char *spec,
                      const char *labels, struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    if (strcmp(ns, WARD_POLICY_NAMESPACE) != 0) {
        return ward_error_set(err, -EINVAL, "the policy engine manages namespace %s only",
                              WARD_POLICY_NAMESPACE);
    }
    struct ward_resource *existing = NULL;
    if (ward_store_get(p->store, WARD_API_KIND, ns, name, &existing, NULL) == 0) {
        ward_resource_free(existing);
        return ward_error_set(err, -EEXIST, "host %s already exists", name);
    }
    int rc =
        ward_policy_resource_put(p->engine, WARD_API_KIND, name, spec != NULL ? spec : "{}", err);
    if (rc != 0 || labels == NULL) {
        return rc;
    }
    /* the engine creates from the spec; labels (for claim selectors) are written after */
    struct ward_resource *r = NULL;
    rc = ward_store_get(p->store, WARD_API_KIND, ns, name, &r, err);
    if (rc == 0) {
        struct ward_resource update = {
            .kind = r->kind, .ns = r->ns, .name = r->name, .labels = (char *)labels};
        rc = ward_store_update(p->store, &update, r->version, err);
        ward_resource_free(r);
    }
    return rc;
}

/* The engine re-reads a resource after a version conflict, so one retry is enough. */
static int policy_step(struct ward_api_policy *p, const struct ward_api_transition *t,
                       const char *to, const char *trigger, const char *reason,
                       struct ward_error *err)
{
    int rc = -ESTALE;
    for (int attempt = 0; attempt < 2 && rc == -ESTALE; attempt++) {
        rc = ward_policy_transition(p->engine, t->kind, t->name, t->dimension, to, trigger, reason,
                                    t->actor, err);
    }
    if (rc == -EPERM && p->events != NULL) {
        /* the engine emits events for what it does; refusals asked for over the API are ours */
        ward_events_record(p->events, "Warning", "TransitionRefused", err->text, t->kind, t->ns,
                           t->name);
    }
    return rc;
}

/* The engine's view of a host after a write to the store; an engine on another sink has none. */
static int engine_catch_up(struct ward_api_policy *p, const char *kind, const char *name,
                           struct ward_error *err)
{
    int rc = ward_policy_resource_refresh(p->engine, kind, name, err);
    return rc == -ENOTSUP ? 0 : rc;
}

/* The policy's checks for Available -> Claimed, on the host as the store has it now. */
static int policy_claimable(void *arg, const char *ns, const char *name, const char *consumer,
                            struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    if (strcmp(ns, WARD_POLICY_NAMESPACE) != 0) {
        return ward_error_set(err, -EPERM, "the policy engine manages namespace %s only",
                              WARD_POLICY_NAMESPACE);
    }
    /* a release a moment ago may not have reached the engine through the feed yet */
    int rc = engine_catch_up(p, WARD_API_KIND, name, err);
    if (rc == 0) {
        rc = ward_policy_claim_check(p->engine, WARD_API_KIND, name, consumer, err);
    }
    /* a host the engine does not run (yet) is not one it lets anybody claim */
    return rc == -ENOENT ? -EPERM : rc;
}

static int policy_transition(void *arg, const struct ward_api_transition *t, int64_t *new_version,
                             struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    if (strcmp(t->ns, WARD_POLICY_NAMESPACE) != 0) {
        return ward_error_set(err, -EINVAL, "the policy engine manages namespace %s only",
                              WARD_POLICY_NAMESPACE);
    }
    struct ward_resource *r = NULL;
    int rc = ward_store_get(p->store, t->kind, t->ns, t->name, &r, err);
    if (rc != 0) {
        return rc;
    }
    int64_t current = r->version;
    bool claimed = r->consumer != NULL && *r->consumer != '\0';
    ward_resource_free(r);
    if (t->expected_version != 0 && t->expected_version != current) {
        return ward_error_set(err, -ESTALE, "the host is at version %lld, not %lld",
                              (long long)current, (long long)t->expected_version);
    }
    /* a claim or release a moment ago may not have reached the engine through the feed yet */
    if ((rc = engine_catch_up(p, t->kind, t->name, err)) != 0) {
        return rc;
    }
    if (!t->reset) {
        rc = policy_step(p, t, t->to, "api", t->reason, err);
    } else {
        /* the reference's host reset: Error, claim cleared, then re-enroll through the guard */
        const char *state = ward_policy_resource_state(p->engine, t->kind, t->name, t->dimension);
        bool moved = false;
        rc = 0;
        if (state == NULL) {
            rc = ward_error_set(err, -ENOENT, "the policy engine does not know %s", t->name);
        } else if (strcmp(state, "Error") != 0) {
            rc = policy_step(p, t, "Error", "reset", t->reason, err);
            moved = rc == 0;
        }
        if (rc == 0 && claimed) {
            struct ward_transition clear = {.kind = t->kind,
                                            .ns = t->ns,
                                            .name = t->name,
                                            .dimension = t->dimension,
                                            .from = "Error",
                                            .to = "Error",
                                            .trigger = "reset",
                                            .reason = "claim cleared by host reset",
                                            .actor = t->actor,
                                            .consumer = ""};
            rc = ward_store_transition_sync(p->store, &clear, NULL, err);
            if (rc == 0) {
                /* the engine's guards must see the claim gone before Error -> Enrolling */
                rc = engine_catch_up(p, t->kind, t->name, err);
            }
        }
        bool cleared = rc == 0 && claimed;
        if (rc == 0) {
            rc = policy_step(p, t, "Enrolling", "reset", t->reason, err);
        }
        if (rc != 0 && (moved || cleared)) {
            /* the first steps are committed: the answer must not read as "nothing changed" */
            char why[sizeof(err->text)];
            snprintf(why, sizeof(why), "%s", err->text);
            ward_error_set(err, rc, "the reset %s%s%s, then stopped: %.380s",
                           moved ? "moved the host to Error" : "", moved && cleared ? " and " : "",
                           cleared ? "cleared its claim" : "", why);
        }
    }
    if (rc == 0 && ward_store_get(p->store, t->kind, t->ns, t->name, &r, NULL) == 0) {
        *new_version = r->version;
        ward_resource_free(r);
    }
    return rc;
}

/*
 * Release in any state. Claimed -> Available stays the store's own release (consumer
 * and state in one transaction). Past Claimed the store must not invent the way back
 * (media, boot override, power): only the claim is cleared, recorded as a history
 * record that keeps the state, and the engine, following the change feed, re-reads
 * the host without consumerRef and runs the policy's release flow on the guarded path.
 */
static char *policy_explain(void *arg, const char *ns, const char *name, struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    /* explain from what the store holds now, not from a view a claim has overtaken */
    if (ward_policy_resource_refresh(p->engine, WARD_API_KIND, name, err) != 0 &&
        err->code == -ENOENT) {
        return NULL;
    }
    return ward_policy_explain(p->engine, WARD_API_KIND, name, err);
}

static int policy_release(void *arg, const char *ns, const char *name, const char *consumer,
                          bool *released, struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    int rc = -ESTALE;
    for (int attempt = 0; attempt < 3 && rc == -ESTALE; attempt++) {
        struct ward_resource *r = NULL;
        rc = ward_store_get(p->store, WARD_API_KIND, ns, name, &r, err);
        if (rc != 0) {
            return rc;
        }
        if (r->consumer == NULL) {
            ward_resource_free(r);
            return 0; /* idempotent: nobody holds it */
        }
        if (strcmp(r->consumer, consumer) != 0) {
            ward_resource_free(r);
            return ward_error_set(err, -EPERM, "host %s is held by another consumer", name);
        }
        struct ward_state *states = NULL;
        size_t n = 0;
        char state[64] = "";
        rc = ward_store_states(p->store, WARD_API_KIND, ns, name, &states, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (strcmp(states[i].dimension, WARD_STORE_LIFECYCLE) == 0) {
                snprintf(state, sizeof(state), "%s", states[i].state);
            }
        }
        ward_state_free(states, n);
        if (rc == 0 && strcmp(state, WARD_STORE_CLAIMED) == 0) {
            rc = ward_store_release(p->store, WARD_API_KIND, ns, name, consumer, released, err);
        } else if (rc == 0) {
            struct ward_transition clear = {.kind = WARD_API_KIND,
                                            .ns = ns,
                                            .name = name,
                                            .dimension = WARD_STORE_LIFECYCLE,
                                            .from = state,
                                            .to = state,
                                            .trigger = "release",
                                            .reason =
                                                "claim released; the policy releases the host",
                                            .actor = consumer,
                                            .expected_version = r->version,
                                            .consumer = ""};
            rc = ward_store_transition_sync(p->store, &clear, NULL, err);
            *released = rc == 0;
        }
        ward_resource_free(r);
    }
    return rc;
}

static int policy_reload(void *arg, struct ward_error *err)
{
    struct ward_api_policy *p = arg;
    return ward_policy_engine_reload(p->engine, err);
}

void ward_api_policy_hooks(struct ward_api_hooks *hooks, struct ward_api_policy *glue)
{
    hooks->add = policy_add;
    hooks->transition = policy_transition;
    hooks->policy_reload = policy_reload;
    hooks->release = policy_release;
    hooks->explain = policy_explain;
    hooks->claimable = policy_claimable;
    hooks->arg = glue;
}

void ward_api_policy_event(void *events, const struct ward_policy_event *ev)
{
    static const struct {
        const char *engine_type, *type, *reason;
    } map[] = {
        {"transition", "Normal", "Transition"},
        {"stuck", "Warning", "StuckDetected"},
        {"recovery", "Normal", "RecoveryAttempt"},
        {"reconcile_failed", "Warning", "ReconcileFailed"},
        /* the engine emits "policy" when a load or reload is refused */
        {"policy", "Warning", "PolicyReloadRefused"},
    };
    const char *type = "Warning", *reason = "PolicyEvent";
    for (size_t i = 0; i < WARD_ARRAY_SIZE(map); i++) {
        if (ev->type != NULL && strcmp(ev->type, map[i].engine_type) == 0) {
            type = map[i].type;
            reason = map[i].reason;
        }
    }
    if (ev->severity != NULL && ev->reason != NULL) {
        type = ev->severity; /* a policy's own event (ward.event) */
        reason = ev->reason;
    }
    ward_events_record(events, type, reason, ev->message, ev->kind != NULL ? ev->kind : "Agent",
                       WARD_POLICY_NAMESPACE, ev->name != NULL ? ev->name : "wardd");
}
