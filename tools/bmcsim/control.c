/* SPDX-License-Identifier: Apache-2.0 */
/* The control API: plain HTTP on 127.0.0.1, for tests and benchmarks to switch faults at
 * runtime, move the simulated clock and read per-BMC counters and state. */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "bmcsim.h"

#define CONTROL_UPLOAD_MAX (256 * 1024)

struct control_req {
    struct ward_buf body;
    bool too_big;
};

/* Which BMCs a "bmc" selector names: "*", an index, or a name; -1 for all. */
static int select_bmc(cJSON *sel, int *index, struct ward_error *err)
{
    if (sel == NULL || (cJSON_IsString(sel) && strcmp(sel->valuestring, "*") == 0)) {
        *index = -1;
        return 0;
    }
    if (cJSON_IsNumber(sel)) {
        double v = sel->valuedouble;
        if (v != floor(v) || v < 0 || v >= sim_fleet->nbmcs) {
            return ward_error_set(err, -EINVAL, "\"bmc\" index %g is not in 0..%d", v,
                                  sim_fleet->nbmcs - 1);
        }
        *index = (int)v;
        return 0;
    }
    if (cJSON_IsString(sel)) {
        for (int i = 0; i < sim_fleet->nbmcs; i++) {
            if (strcmp(sim_fleet->bmcs[i].name, sel->valuestring) == 0) {
                *index = i;
                return 0;
            }
        }
        return ward_error_set(err, -EINVAL, "no BMC named \"%.64s\"", sel->valuestring);
    }
    return ward_error_set(err, -EINVAL, "\"bmc\" must be \"*\", an index or a name");
}

static int get_bool(cJSON *v, const char *key, bool *out, struct ward_error *err)
{
    if (!cJSON_IsBool(v)) {
        return ward_error_set(err, -EINVAL, "\"%s\" must be true or false", key);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_ms(cJSON *v, const char *key, int *out, struct ward_error *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 86400000 ||
        v->valuedouble != floor(v->valuedouble)) {
        return ward_error_set(err, -EINVAL, "\"%s\" must be whole milliseconds (0..86400000)", key);
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* Validate one fault object fully, then apply it to the selected BMCs. */
static int apply_one(cJSON *obj, struct ward_error *err)
{
    if (!cJSON_IsObject(obj)) {
        return ward_error_set(err, -EINVAL, "a fault must be a JSON object");
    }
    int index = -1;
    int rc = select_bmc(cJSON_GetObjectItemCaseSensitive(obj, "bmc"), &index, err);
    if (rc != 0) {
        return rc;
    }
    /* What to change: a mask of fields and their new values. */
    struct sim_faults nf = {0};
    enum {
        F_RATE = 1 << 0,
        F_HANG = 1 << 1,
        F_RESET = 1 << 2,
        F_MALFORMED = 1 << 3,
        F_TRUNCATED = 1 << 4,
        F_DRIP = 1 << 5,
        F_CERT = 1 << 6,
        F_LAT = 1 << 7,
        F_JIT = 1 << 8,
    };
    unsigned set = 0;
    bool clear = false, expire = false;
    for (cJSON *it = obj->child; it != NULL; it = it->next) {
        const char *k = it->string;
        rc = 0;
        if (strcmp(k, "bmc") == 0) {
            continue;
        } else if (strcmp(k, "clear") == 0) {
            rc = get_bool(it, k, &clear, err);
        } else if (strcmp(k, "expire_sessions") == 0) {
            rc = get_bool(it, k, &expire, err);
        } else if (strcmp(k, "error_rate") == 0) {
            if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 1)) {
                rc = ward_error_set(err, -EINVAL, "\"error_rate\" must be a number in 0..1");
            }
            nf.error_rate = it->valuedouble;
            set |= F_RATE;
        } else if (strcmp(k, "hang") == 0) {
            rc = get_bool(it, k, &nf.hang, err);
            set |= F_HANG;
        } else if (strcmp(k, "reset") == 0) {
            rc = get_bool(it, k, &nf.reset, err);
            set |= F_RESET;
        } else if (strcmp(k, "malformed") == 0) {
            rc = get_bool(it, k, &nf.malformed, err);
            set |= F_MALFORMED;
        } else if (strcmp(k, "truncated") == 0) {
            rc = get_bool(it, k, &nf.truncated, err);
            set |= F_TRUNCATED;
        } else if (strcmp(k, "slow_drip") == 0) {
            rc = get_bool(it, k, &nf.slow_drip, err);
            set |= F_DRIP;
        } else if (strcmp(k, "wrong_cert") == 0) {
            int w = -1;
            if (cJSON_IsBool(it)) {
                w = cJSON_IsTrue(it) ? SIM_CERT_OTHER_CA : SIM_CERT_GOOD;
            } else if (cJSON_IsString(it)) {
                w = sim_wrong_cert_parse(it->valuestring);
            }
            if (w < 0) {
                rc = ward_error_set(err, -EINVAL,
                                    "\"wrong_cert\" must be true, false, \"ca\", \"expired\", "
                                    "\"name\" or \"none\"");
            }
            nf.wrong_cert = w;
            set |= F_CERT;
        } else if (strcmp(k, "latency_ms") == 0) {
            rc = get_ms(it, k, &nf.latency_ms, err);
            set |= F_LAT;
        } else if (strcmp(k, "jitter_ms") == 0) {
            rc = get_ms(it, k, &nf.jitter_ms, err);
            set |= F_JIT;
        } else {
            rc = ward_error_set(err, -EINVAL, "unknown fault \"%.64s\"", k);
        }
        if (rc != 0) {
            return rc;
        }
    }
    int from = index < 0 ? 0 : index;
    int to = index < 0 ? sim_fleet->nbmcs : index + 1;
    for (int i = from; i < to; i++) {
        struct sim_bmc *b = &sim_fleet->bmcs[i];
        pthread_mutex_lock(&b->lock);
        struct sim_faults *f = &b->faults;
        if (clear) {
            *f = (struct sim_faults){0};
        }
        if (set & F_RATE) {
            f->error_rate = nf.error_rate;
        }
        if (set & F_HANG) {
            f->hang = nf.hang;
        }
        if (set & F_RESET) {
            f->reset = nf.reset;
        }
        if (set & F_MALFORMED) {
            f->malformed = nf.malformed;
        }
        if (set & F_TRUNCATED) {
            f->truncated = nf.truncated;
        }
        if (set & F_DRIP) {
            f->slow_drip = nf.slow_drip;
        }
        if (set & F_CERT) {
            __atomic_store_n(&f->wrong_cert, nf.wrong_cert, __ATOMIC_RELAXED);
        }
        if (set & F_LAT) {
            f->latency_ms = nf.latency_ms;
        }
        if (set & F_JIT) {
            f->jitter_ms = nf.jitter_ms;
        }
        if (expire) {
            sim_bmc_expire_sessions(b);
        }
        pthread_mutex_unlock(&b->lock);
    }
    return 0;
}

int sim_faults_apply_json(const char *text, size_t len, struct ward_error *err)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (j == NULL) {
        return ward_error_set(err, -EINVAL, "the body is not valid JSON");
    }
    int rc = 0;
    if (cJSON_IsArray(j)) {
        /* Applied in order; the first bad entry stops the rest (earlier ones stay). */
        for (cJSON *it = j->child; it != NULL && rc == 0; it = it->next) {
            rc = apply_one(it, err);
        }
    } else {
        rc = apply_one(j, err);
    }
    cJSON_Delete(j);
    return rc;
}

/* {"bmc": sel, "<quirk>": true|false, ...}: validated fully, then applied. */
static int apply_quirks(const char *text, size_t len, struct ward_error *err)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ward_error_set(err, -EINVAL, "the body must be a JSON object");
    }
    int index = -1;
    int rc = select_bmc(cJSON_GetObjectItemCaseSensitive(j, "bmc"), &index, err);
    unsigned on = 0, off = 0;
    for (cJSON *it = j->child; it != NULL && rc == 0; it = it->next) {
        if (strcmp(it->string, "bmc") == 0) {
            continue;
        }
        unsigned bit = sim_quirk_lookup(it->string);
        if (bit == 0) {
            rc = ward_error_set(err, -EINVAL, "unknown quirk \"%.64s\"", it->string);
        } else if (!cJSON_IsBool(it)) {
            rc = ward_error_set(err, -EINVAL, "quirk \"%.64s\" must be true or false", it->string);
        } else if (cJSON_IsTrue(it)) {
            on |= bit;
        } else {
            off |= bit;
        }
    }
    cJSON_Delete(j);
    if (rc != 0) {
        return rc;
    }
    int from = index < 0 ? 0 : index;
    int to = index < 0 ? sim_fleet->nbmcs : index + 1;
    for (int i = from; i < to; i++) {
        struct sim_bmc *b = &sim_fleet->bmcs[i];
        pthread_mutex_lock(&b->lock);
        sim_bmc_set_quirks(b, on, off);
        pthread_mutex_unlock(&b->lock);
    }
    return 0;
}

/* {"bmc": sel, "password": "..." (optional: random), "write_file": true}: a new password, as
 * when someone changes it on the BMC (write_file false: the file keeps the old one). */
static int apply_password(const char *text, size_t len, struct ward_error *err)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ward_error_set(err, -EINVAL, "the body must be a JSON object");
    }
    int index = -1;
    int rc = select_bmc(cJSON_GetObjectItemCaseSensitive(j, "bmc"), &index, err);
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(j, "password");
    cJSON *wf = cJSON_GetObjectItemCaseSensitive(j, "write_file");
    char password[24] = "";
    for (cJSON *it = j->child; it != NULL && rc == 0; it = it->next) {
        if (strcmp(it->string, "bmc") != 0 && strcmp(it->string, "password") != 0 &&
            strcmp(it->string, "write_file") != 0) {
            rc = ward_error_set(err, -EINVAL, "unknown key \"%.64s\"", it->string);
        }
    }
    if (rc == 0 && pw != NULL) {
        size_t n = cJSON_IsString(pw) ? strlen(pw->valuestring) : 0;
        bool printable = n > 0 && n < sizeof(password);
        for (size_t i = 0; printable && i < n; i++) {
            printable = pw->valuestring[i] > ' ' && pw->valuestring[i] < 127;
        }
        if (!printable) {
            rc = ward_error_set(err, -EINVAL, "\"password\" must be 1..%zu printable characters",
                                sizeof(password) - 1);
        } else {
            memcpy(password, pw->valuestring, n + 1);
        }
    }
    if (rc == 0 && wf != NULL && !cJSON_IsBool(wf)) {
        rc = ward_error_set(err, -EINVAL, "\"write_file\" must be true or false");
    }
    bool write = wf == NULL || cJSON_IsTrue(wf);
    cJSON_Delete(j);
    if (rc == 0 && sim_fleet->opt.shared_password && index >= 0) {
        rc = ward_error_set(err, -EINVAL,
                            "the fleet shares one password (--shared-password): use \"bmc\":\"*\"");
    }
    if (rc != 0) {
        return rc;
    }
    int from = index < 0 ? 0 : index;
    int to = index < 0 ? sim_fleet->nbmcs : index + 1;
    for (int i = from; i < to && rc == 0; i++) {
        struct sim_bmc *b = &sim_fleet->bmcs[i];
        pthread_mutex_lock(&b->lock);
        const char *want = password[0] != '\0' ? password : NULL;
        if (sim_fleet->opt.shared_password && i > 0) {
            want = sim_fleet->bmcs[0].password; /* one password for all, one file */
        }
        if (write && !(sim_fleet->opt.shared_password && i > 0)) {
            rc = sim_bmc_set_password(b, want, true);
        } else {
            char keep[sizeof(b->password_file)];
            memcpy(keep, b->password_file, sizeof(keep));
            b->password_file[0] = '\0';
            rc = sim_bmc_set_password(b, want, true);
            memcpy(b->password_file, keep, sizeof(keep));
        }
        pthread_mutex_unlock(&b->lock);
    }
    explicit_bzero(password, sizeof(password));
    if (rc != 0) {
        return ward_error_set(err, rc, "cannot write the password file: %s", strerror(-rc));
    }
    return 0;
}

static void reset_counters(int index)
{
    int from = index < 0 ? 0 : index;
    int to = index < 0 ? sim_fleet->nbmcs : index + 1;
    for (int i = from; i < to; i++) {
        struct sim_bmc *b = &sim_fleet->bmcs[i];
        pthread_mutex_lock(&b->lock);
        b->requests = b->expanded = b->responses_2xx = b->responses_4xx = b->responses_5xx = 0;
        b->faults_injected = b->logins = b->login_failures = b->logouts = 0;
        b->max_active = b->active;
        pthread_mutex_unlock(&b->lock);
    }
}

static enum MHD_Result reply(struct MHD_Connection *conn, int status, cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (text == NULL) {
        return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    return reply(conn, status, o);
}

static enum MHD_Result on_control(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct control_req *cr = *con_cls;
    if (cr == NULL) {
        cr = calloc(1, sizeof(*cr));
        if (cr == NULL) {
            return MHD_NO;
        }
        *con_cls = cr;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (cr->body.len + *upload_data_size > CONTROL_UPLOAD_MAX) {
            cr->too_big = true;
        } else {
            ward_buf_put(&cr->body, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cr->too_big) {
        return reply_error(conn, 413, "request body too large");
    }
    bool get = strcmp(method, "GET") == 0;
    bool post = strcmp(method, "POST") == 0;
    struct ward_error err = {0};
    if (get && strcmp(url, "/control/health") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        cJSON_AddNumberToObject(o, "bmcs", sim_fleet->nbmcs);
        return reply(conn, 200, o);
    }
    if (get && strcmp(url, "/control/bmcs") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "now", sim_now());
        cJSON *arr = cJSON_AddArrayToObject(o, "bmcs");
        for (int i = 0; i < sim_fleet->nbmcs; i++) {
            sim_bmc_report(&sim_fleet->bmcs[i], arr);
        }
        return reply(conn, 200, o);
    }
    if (get && strncmp(url, "/control/bmcs/", 14) == 0) {
        cJSON *sel = cJSON_CreateString(url + 14);
        char *end = NULL;
        long n = strtol(url + 14, &end, 10);
        if (end != url + 14 && *end == '\0') {
            cJSON_Delete(sel);
            sel = cJSON_CreateNumber((double)n);
        }
        int index = -1;
        int rc = select_bmc(sel, &index, &err);
        cJSON_Delete(sel);
        if (rc != 0 || index < 0) {
            return reply_error(conn, 404, rc != 0 ? err.text : "name one BMC");
        }
        cJSON *arr = cJSON_CreateArray();
        sim_bmc_report(&sim_fleet->bmcs[index], arr);
        cJSON *one = cJSON_DetachItemFromArray(arr, 0);
        cJSON_Delete(arr);
        return reply(conn, 200, one);
    }
    if (post && strcmp(url, "/control/faults") == 0) {
        if (sim_faults_apply_json(cr->body.data ? cr->body.data : "", cr->body.len, &err) != 0) {
            return reply_error(conn, 400, err.text);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return reply(conn, 200, o);
    }
    if (post && strcmp(url, "/control/quirks") == 0) {
        if (apply_quirks(cr->body.data ? cr->body.data : "", cr->body.len, &err) != 0) {
            return reply_error(conn, 400, err.text);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return reply(conn, 200, o);
    }
    if (post && strcmp(url, "/control/password") == 0) {
        if (apply_password(cr->body.data ? cr->body.data : "", cr->body.len, &err) != 0) {
            return reply_error(conn, 400, err.text);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return reply(conn, 200, o);
    }
    if (post && strcmp(url, "/control/clock") == 0) {
        cJSON *j = cJSON_ParseWithLength(cr->body.data ? cr->body.data : "", cr->body.len);
        cJSON *adv = cJSON_GetObjectItemCaseSensitive(j, "advance_ms");
        if (!cJSON_IsNumber(adv) || adv->valuedouble < 0 || adv->valuedouble > 1e10) {
            cJSON_Delete(j);
            return reply_error(conn, 400, "want {\"advance_ms\": N} with N >= 0");
        }
        sim_clock_advance(adv->valuedouble / 1000.0);
        cJSON_Delete(j);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "now", sim_now());
        return reply(conn, 200, o);
    }
    if (post && strcmp(url, "/control/counters/reset") == 0) {
        int index = -1;
        cJSON *j = NULL;
        if (cr->body.len > 0) {
            j = cJSON_ParseWithLength(cr->body.data, cr->body.len);
            if (j == NULL) {
                return reply_error(conn, 400, "the body is not valid JSON");
            }
        }
        int rc = select_bmc(cJSON_GetObjectItemCaseSensitive(j, "bmc"), &index, &err);
        cJSON_Delete(j);
        if (rc != 0) {
            return reply_error(conn, 400, err.text);
        }
        reset_counters(index);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        return reply(conn, 200, o);
    }
    return reply_error(conn, 404, "unknown control endpoint");
}

static void on_control_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct control_req *cr = *con_cls;
    if (cr != NULL) {
        ward_buf_free(&cr->body);
        free(cr);
        *con_cls = NULL;
    }
}

struct MHD_Daemon *sim_control_start(int port, int *bound_port, struct ward_error *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL, NULL, on_control,
        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_control_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == NULL) {
        ward_error_set(err, -EADDRINUSE, "cannot start the control API on 127.0.0.1:%d", port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info != NULL ? info->port : port;
    return d;
}
