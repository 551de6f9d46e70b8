/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tap/basic.h"
#include "tserver.h"

struct tca {
    EVP_PKEY *key;
    X509 *cert;
};

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        bail("cannot add certificate extension %d", nid);
    }
    X509_EXTENSION_free(ext);
}

/* A P-256 key through the EVP interface (works with OpenSSL 1.1.1 and 3). */
static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) <= 0 ||
        EVP_PKEY_keygen(ctx, &key) <= 0) {
        bail("cannot generate a key");
    }
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, const struct tca *issuer, bool ca,
                       long not_before, long not_after)
{
    X509 *x = X509_new();
    unsigned char serial[8];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), not_before);
    X509_gmtime_adj(X509_getm_notAfter(x), not_after);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer->cert : x, x, NULL, NULL, 0);
    if (ca) {
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, &ctx, NID_basic_constraints, "CA:FALSE");
        add_ext(x, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth");
    }
    add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    if (X509_sign(x, issuer != NULL ? issuer->key : key, EVP_sha256()) == 0) {
        bail("cannot sign certificate");
    }
    return x;
}

struct tca *tca_create(const char *cn)
{
    struct tca *ca = calloc(1, sizeof(*ca));
    ca->key = ec_key();
    if (ca->key == NULL) {
        bail("cannot generate a key");
    }
    ca->cert = make_cert(ca->key, cn, NULL, true, -3600, 86400);
    return ca;
}

void tca_write(struct tca *ca, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || !PEM_write_X509(f, ca->cert)) {
        bail("cannot write %s", path);
    }
    fclose(f);
}

struct tca *tserver_client_files(const char *dir, char ca_path[512], char pw_path[512])
{
    snprintf(ca_path, 512, "%s/ca.pem", dir);
    snprintf(pw_path, 512, "%s/password", dir);
    FILE *f = fopen(pw_path, "w");
    if (f == NULL || fputs(TSERVER_PASSWORD "\n", f) < 0 || fclose(f) != 0) {
        bail("cannot write %s", pw_path);
    }
    struct tca *ca = tca_create("ward test CA");
    tca_write(ca, ca_path);
    return ca;
}

FILE *tserver_log_file(const char *dir)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/log.jsonl", dir);
    FILE *f = fopen(path, "w+");
    if (f == NULL) {
        sysbail("cannot open %s", path);
    }
    ward_log_set_stream(f);
    return f;
}

void tca_free(struct tca *ca)
{
    if (ca != NULL) {
        EVP_PKEY_free(ca->key);
        X509_free(ca->cert);
        free(ca);
    }
}

static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

/* ---- the service ------------------------------------------------------------------ */

struct tserver {
    struct MHD_Daemon *d;
    struct tserver_opts o;
    char url[64];
    char *key_pem, *cert_pem;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    struct tserver_faults f;
    struct tserver_stats st;
    int in_flight;
    int etag_gen;
    int pending_power_reads;
    char pending_power[32];
    char then_power[32];  /* a restart: the state after pending_power, as many reads later */
    char tokens[8][6000]; /* live session tokens, "" when free */
    int task_polls;     /* polls before the task monitor reports completion */
    int next_session;
};

struct reqctx {
    char *body;
    size_t len;
    bool counted;
};

static const char json_type[] = "application/json";

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *doc,
                                 const char *etag)
{
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", json_type);
    if (etag != NULL) {
        MHD_add_response_header(r, "ETag", etag);
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", json_type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *id,
                                  const char *message)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(err, "code", "Base.1.8.GeneralError");
    cJSON_AddStringToObject(err, "message", "A general error has occurred.");
    cJSON *info = cJSON_AddArrayToObject(err, "@Message.ExtendedInfo");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "MessageId", id);
    cJSON_AddStringToObject(m, "Message", message);
    cJSON_AddStringToObject(m, "Severity", "Critical");
    cJSON_AddItemToArray(info, m);
    return send_json(c, status, doc, NULL);
}

static enum MHD_Result send_empty(struct MHD_Connection *c, unsigned status, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (location != NULL) {
        MHD_add_response_header(r, "Location", location);
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static cJSON *odata_link(const char *path)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "@odata.id", path);
    return o;
}

static cJSON *collection(const char *path, const char *const *members, int n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "@odata.id", path);
    cJSON *arr = cJSON_AddArrayToObject(doc, "Members");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, odata_link(members[i]));
    }
    cJSON_AddNumberToObject(doc, "Members@odata.count", n);
    return doc;
}

static const char *media_path(const struct tserver *s)
{
    return s->o.media_under_systems ? "/redfish/v1/Systems/1/VirtualMedia"
                                    : "/redfish/v1/Managers/1/VirtualMedia";
}

static cJSON *system_doc(struct tserver *s, const char *id)
{
    cJSON *doc = cJSON_CreateObject();
    char path[128];
    snprintf(path, sizeof(path), "/redfish/v1/Systems/%s", id);
    cJSON_AddStringToObject(doc, "@odata.id", path);
    cJSON_AddStringToObject(doc, "@odata.type", "#ComputerSystem.v1_20_0.ComputerSystem");
    cJSON_AddStringToObject(doc, "Id", id);
    cJSON_AddStringToObject(doc, "Manufacturer", "Contoso");
    cJSON_AddStringToObject(doc, "Model", "3500RX");
    cJSON_AddStringToObject(doc, "SerialNumber", strcmp(id, "1") == 0 ? "437XR1138R2" : "SN2");
    cJSON_AddStringToObject(doc, "UUID", "38947555-7742-3448-3784-823347823834");
    cJSON_AddStringToObject(doc, "BiosVersion", "P79 v1.45 (12/06/2017)");
    const char *power = s->st.power;
    if (s->pending_power[0] != '\0') {
        if (s->pending_power_reads > 0) {
            s->pending_power_reads--;
        } else {
            snprintf(s->st.power, sizeof(s->st.power), "%s", s->pending_power);
            snprintf(s->pending_power, sizeof(s->pending_power), "%s", s->then_power);
            s->then_power[0] = '\0';
            s->pending_power_reads = s->o.power_delay_reads;
        }
    }
    cJSON_AddStringToObject(doc, "PowerState", power);
    cJSON *ps = cJSON_AddObjectToObject(doc, "ProcessorSummary");
    cJSON_AddNumberToObject(ps, "Count", 2);
    cJSON *ms = cJSON_AddObjectToObject(doc, "MemorySummary");
    cJSON_AddNumberToObject(ms, "TotalSystemMemoryGiB", 96);
    cJSON *boot = cJSON_AddObjectToObject(doc, "Boot");
    cJSON_AddStringToObject(boot, "BootSourceOverrideEnabled", s->st.boot_enabled);
    cJSON_AddStringToObject(boot, "BootSourceOverrideTarget", s->st.boot_target);
    cJSON_AddStringToObject(boot, "BootSourceOverrideMode", "UEFI");
    const char *targets[] = {"None", "Pxe", "Cd", "Hdd", "BiosSetup"};
    cJSON_AddItemToObject(boot, "BootSourceOverrideTarget@Redfish.AllowableValues",
                          cJSON_CreateStringArray(targets, 5));
    char eth[160];
    snprintf(eth, sizeof(eth), "%s/EthernetInterfaces", path);
    cJSON_AddItemToObject(doc, "EthernetInterfaces", odata_link(eth));
    if (s->o.media_under_systems) {
        cJSON_AddItemToObject(doc, "VirtualMedia", odata_link(media_path(s)));
    }
    cJSON *actions = cJSON_AddObjectToObject(doc, "Actions");
    cJSON *reset = cJSON_AddObjectToObject(actions, "#ComputerSystem.Reset");
    char target[192];
    snprintf(target, sizeof(target), "%s/Actions/ComputerSystem.Reset", path);
    cJSON_AddStringToObject(reset, "target", target);
    if (s->o.action_info) {
        char ai[192];
        snprintf(ai, sizeof(ai), "%s/ResetActionInfo", path);
        cJSON_AddStringToObject(reset, "@Redfish.ActionInfo", ai);
    } else {
        const char *types[] = {"On", "ForceOff", "GracefulShutdown", "ForceRestart"};
        cJSON_AddItemToObject(reset, "ResetType@Redfish.AllowableValues",
                              cJSON_CreateStringArray(types, 4));
    }
    cJSON *links = cJSON_AddObjectToObject(doc, "Links");
    cJSON *mgrs = cJSON_AddArrayToObject(links, "ManagedBy");
    cJSON_AddItemToArray(mgrs, odata_link("/redfish/v1/Managers/1"));
    return doc;
}

static cJSON *media_doc(struct tserver *s)
{
    cJSON *doc = cJSON_CreateObject();
    char path[160];
    snprintf(path, sizeof(path), "%s/CD", media_path(s));
    cJSON_AddStringToObject(doc, "@odata.id", path);
    cJSON_AddStringToObject(doc, "Id", "CD");
    const char *types[] = {"CD", "DVD"};
    cJSON_AddItemToObject(doc, "MediaTypes", cJSON_CreateStringArray(types, 2));
    cJSON_AddBoolToObject(doc, "Inserted", s->st.inserted);
    if (s->st.inserted) {
        cJSON_AddStringToObject(doc, "Image", s->st.image);
    } else {
        cJSON_AddNullToObject(doc, "Image");
    }
    cJSON_AddStringToObject(doc, "ConnectedVia", s->st.inserted ? "URI" : "NotConnected");
    cJSON *actions = cJSON_AddObjectToObject(doc, "Actions");
    char t[224];
    cJSON *ins = cJSON_AddObjectToObject(actions, "#VirtualMedia.InsertMedia");
    snprintf(t, sizeof(t), "%s/Actions/VirtualMedia.InsertMedia", path);
    cJSON_AddStringToObject(ins, "target", t);
    cJSON *ej = cJSON_AddObjectToObject(actions, "#VirtualMedia.EjectMedia");
    snprintf(t, sizeof(t), "%s/Actions/VirtualMedia.EjectMedia", path);
    cJSON_AddStringToObject(ej, "target", t);
    return doc;
}

static bool authorised(struct tserver *s, struct MHD_Connection *c)
{
    const char *tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Auth-Token");
    if (tok != NULL) {
        for (size_t i = 0; i < 8; i++) {
            if (s->tokens[i][0] != '\0' && strcmp(s->tokens[i], tok) == 0) {
                return true;
            }
        }
        return false;
    }
    if (!s->o.basic_auth) {
        return false;
    }
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    bool good = user != NULL && pass != NULL && strcmp(user, TSERVER_USER) == 0 &&
                strcmp(pass, TSERVER_PASSWORD) == 0;
    MHD_free(user);
    MHD_free(pass);
    return good;
}

struct drip {
    struct tserver *s;
    char *text;
    size_t len;
};

static ssize_t drip_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct drip *d = cls;
    pthread_mutex_lock(&d->s->mu);
    bool stopping = d->s->stopping;
    bool truncate = d->s->f.truncated;
    pthread_mutex_unlock(&d->s->mu);
    if (stopping || pos >= d->len) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (truncate) {
        if (pos >= d->len / 2) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = d->len / 2 - (size_t)pos;
        memcpy(buf, d->text + pos, n < max ? n : max);
        return (ssize_t)(n < max ? n : max);
    }
    usleep(200 * 1000); /* a server thread; the client under test never sleeps */
    buf[0] = d->text[pos];
    return 1;
}

static void drip_free(void *cls)
{
    struct drip *d = cls;
    free(d->text);
    free(d);
}

static enum MHD_Result send_special(struct tserver *s, struct MHD_Connection *c, cJSON *doc)
{
    struct drip *d = calloc(1, sizeof(*d));
    d->s = s;
    d->text = cJSON_PrintUnformatted(doc);
    d->len = strlen(d->text);
    cJSON_Delete(doc);
    struct MHD_Response *r = MHD_create_response_from_callback(d->len, 64, drip_read, d, drip_free);
    MHD_add_response_header(r, "Content-Type", json_type);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static bool is(const char *url, const char *want)
{
    return strcmp(url, want) == 0;
}

/* An EthernetInterface; the last digit of its path picks its MAC. */
static cJSON *nic_doc(const char *path)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "@odata.id", path);
    cJSON_AddStringToObject(doc, "Id", path + strlen(path) - 1);
    cJSON_AddStringToObject(doc, "MACAddress",
                            path[strlen(path) - 1] == '1' ? "12:44:6A:3B:04:11"
                                                          : "12:44:6A:3B:04:12");
    return doc;
}

static enum MHD_Result route(struct tserver *s, struct MHD_Connection *c, const char *url,
                             const char *method, const char *body)
{
    bool get = strcmp(method, "GET") == 0;
    bool post = strcmp(method, "POST") == 0;
    char mp[160];
    snprintf(mp, sizeof(mp), "%s", media_path(s));
    if (get && (is(url, "/redfish/v1") || is(url, "/redfish/v1/"))) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "@odata.id", "/redfish/v1");
        cJSON_AddStringToObject(doc, "RedfishVersion", "1.15.0");
        cJSON_AddItemToObject(doc, "Systems", odata_link("/redfish/v1/Systems"));
        cJSON_AddItemToObject(doc, "Managers", odata_link("/redfish/v1/Managers"));
        cJSON_AddItemToObject(doc, "TaskService", odata_link("/redfish/v1/TaskService"));
        if (s->o.expand != TSERVER_EXPAND_NONE) {
            cJSON *eq = cJSON_AddObjectToObject(
                cJSON_AddObjectToObject(doc, "ProtocolFeaturesSupported"), "ExpandQuery");
            bool all_only = s->o.expand == TSERVER_EXPAND_ALL;
            cJSON_AddBoolToObject(eq, "ExpandAll", true);
            cJSON_AddBoolToObject(eq, "Levels", !all_only);
            cJSON_AddBoolToObject(eq, "NoLinks", !all_only);
        }
        if (s->o.sessions) {
            cJSON_AddItemToObject(doc, "SessionService", odata_link("/redfish/v1/SessionService"));
            cJSON *links = cJSON_AddObjectToObject(doc, "Links");
            cJSON_AddItemToObject(links, "Sessions",
                                  odata_link("/redfish/v1/SessionService/Sessions"));
        }
        return send_json(c, 200, doc, NULL);
    }
    if (s->o.sessions && post && is(url, "/redfish/v1/SessionService/Sessions")) {
        cJSON *req = cJSON_Parse(body);
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItem(req, "UserName"));
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(req, "Password"));
        bool good = u != NULL && p != NULL && strcmp(u, TSERVER_USER) == 0 &&
                    strcmp(p, TSERVER_PASSWORD) == 0;
        s->st.logins++;
        if (!good) {
            /* as some firmware does, quoting the value it refused */
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Invalid username or password. The value '%.64s' for the property Password "
                     "was refused.",
                     p != NULL ? p : "");
            cJSON_Delete(req);
            return send_error(c, 401, "Base.1.8.NoValidSession", msg);
        }
        cJSON_Delete(req);
        int live = 0;
        int slot = -1;
        for (int i = 0; i < 8; i++) {
            if (s->tokens[i][0] != '\0') {
                live++;
            } else if (slot < 0) {
                slot = i;
            }
        }
        if (live >= s->o.max_sessions || slot < 0) {
            return send_error(c, 503, "Base.1.8.SessionLimitExceeded",
                              "The session establishment failed due to the number of simultaneous "
                              "sessions exceeding the limit of the implementation.");
        }
        int id = ++s->next_session;
        snprintf(s->tokens[slot], sizeof(s->tokens[slot]), "tok-%d-%08x", id, (unsigned)rand());
        for (size_t len = strlen(s->tokens[slot]);
             (int)len < s->o.token_len && len + 1 < sizeof(s->tokens[slot]); len++) {
            s->tokens[slot][len] = 'x'; /* a long token, as JWT-style ones are */
            s->tokens[slot][len + 1] = '\0';
        }
        char loc[96];
        snprintf(loc, sizeof(loc), "/redfish/v1/SessionService/Sessions/%d", slot);
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "@odata.id", loc);
        cJSON_AddStringToObject(doc, "UserName", TSERVER_USER);
        char *text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "X-Auth-Token", s->tokens[slot]);
        if (!s->o.no_location) {
            MHD_add_response_header(r, "Location", loc);
        }
        enum MHD_Result ret = MHD_queue_response(c, 201, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!authorised(s, c)) {
        return send_error(c, 401, "Base.1.8.NoValidSession",
                          "There is no valid session established with the implementation.");
    }
    if (strcmp(method, "DELETE") == 0 &&
        strncmp(url, "/redfish/v1/SessionService/Sessions/", 36) == 0) {
        int slot = atoi(url + 36);
        if (slot >= 0 && slot < 8) {
            s->tokens[slot][0] = '\0';
        }
        s->st.logouts++;
        return send_empty(c, 204, NULL);
    }
    if (get && is(url, "/redfish/v1/SessionService")) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "@odata.id", "/redfish/v1/SessionService");
        cJSON_AddItemToObject(doc, "Sessions", odata_link("/redfish/v1/SessionService/Sessions"));
        return send_json(c, 200, doc, NULL);
    }
    if (get && is(url, "/redfish/v1/Systems")) {
        const char *m[] = {"/redfish/v1/Systems/1", "/redfish/v1/Systems/2"};
        return send_json(c, 200, collection(url, m, s->o.systems), NULL);
    }
    char etag[32];
    snprintf(etag, sizeof(etag), "W/\"%d\"", s->etag_gen);
    if (get && (is(url, "/redfish/v1/Systems/1") ||
                (s->o.systems > 1 && is(url, "/redfish/v1/Systems/2")))) {
        cJSON *doc = system_doc(s, url + strlen("/redfish/v1/Systems/"));
        if (s->f.slow_drip || s->f.truncated) {
            return send_special(s, c, doc);
        }
        return send_json(c, 200, doc, etag);
    }
    if (get && is(url, "/redfish/v1/Systems/1/ResetActionInfo")) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *params = cJSON_AddArrayToObject(doc, "Parameters");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "Name", "ResetType");
        const char *types[] = {"On", "ForceOff", "ForceRestart"};
        cJSON_AddItemToObject(p, "AllowableValues", cJSON_CreateStringArray(types, 3));
        cJSON_AddItemToArray(params, p);
        return send_json(c, 200, doc, NULL);
    }
    if (get && (is(url, "/redfish/v1/Systems/1/EthernetInterfaces") ||
                is(url, "/redfish/v1/Systems/2/EthernetInterfaces"))) {
        const char *expand = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "$expand");
        snprintf(s->st.expand, sizeof(s->st.expand), "%s", expand != NULL ? expand : "");
        if (expand != NULL && s->o.expand == TSERVER_EXPAND_REFUSED) {
            return send_error(c, 400, "Base.1.8.QueryNotSupported",
                              "Querying is not supported by the implementation.");
        }
        if (expand != NULL && s->o.expand == TSERVER_EXPAND_BROKEN) {
            return send_text(c, 200, "{\"Members\": [{\"@odata.id\": ");
        }
        if (expand != NULL && s->o.expand == TSERVER_EXPAND_BUSY && s->st.expand_asks == 1) {
            return send_error(c, 503, "Base.1.8.ServiceTemporarilyUnavailable",
                              "The service is temporarily unavailable.");
        }
        char m1[96], m2[96];
        snprintf(m1, sizeof(m1), "%s/1", url);
        snprintf(m2, sizeof(m2), "%s/2", url);
        const char *m[] = {m1, m2};
        cJSON *doc = collection(url, m, 2);
        if (expand != NULL && s->o.expand != TSERVER_EXPAND_NONE) {
            cJSON *members = cJSON_GetObjectItem(doc, "Members");
            for (int i = 0; i < (s->o.expand == TSERVER_EXPAND_PARTIAL ? 1 : 2); i++) {
                cJSON_ReplaceItemInArray(members, i, nic_doc(m[i]));
            }
        }
        return send_json(c, 200, doc, NULL);
    }
    if (get && (is(url, "/redfish/v1/Systems/1/EthernetInterfaces/1") ||
                is(url, "/redfish/v1/Systems/1/EthernetInterfaces/2") ||
                is(url, "/redfish/v1/Systems/2/EthernetInterfaces/1") ||
                is(url, "/redfish/v1/Systems/2/EthernetInterfaces/2"))) {
        s->st.nic_reads++;
        return send_json(c, 200, nic_doc(url), NULL);
    }
    if (strcmp(method, "PATCH") == 0 && is(url, "/redfish/v1/Systems/1")) {
        const char *im = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match");
        if (s->o.etag_required && (im == NULL || strcmp(im, etag) != 0)) {
            return send_error(c, 412, "Base.1.8.PreconditionFailed",
                              "The ETag supplied did not match the ETag required to change this "
                              "resource.");
        }
        cJSON *req = cJSON_Parse(body);
        cJSON *boot = cJSON_GetObjectItem(req, "Boot");
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(boot, "BootSourceOverrideTarget"));
        const char *e =
            cJSON_GetStringValue(cJSON_GetObjectItem(boot, "BootSourceOverrideEnabled"));
        if (boot == NULL) {
            cJSON_Delete(req);
            return send_error(c, 400, "Base.1.8.PropertyUnknown", "Unknown property.");
        }
        if (t != NULL) {
            snprintf(s->st.boot_target, sizeof(s->st.boot_target), "%s", t);
        }
        if (e != NULL) {
            snprintf(s->st.boot_enabled, sizeof(s->st.boot_enabled), "%s", e);
        }
        cJSON_Delete(req);
        s->st.patches++;
        s->etag_gen++;
        return send_empty(c, 204, NULL);
    }
    if (post && is(url, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset")) {
        if (s->f.conflict_409 > 0) {
            s->f.conflict_409--;
            return send_error(c, 409, "Base.1.8.ResourceInUse",
                              "The change could not be made because the resource is in use.");
        }
        cJSON *req = cJSON_Parse(body);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(req, "ResetType"));
        const char *to = NULL;
        if (t != NULL && (strcmp(t, "On") == 0 || strcmp(t, "ForceRestart") == 0)) {
            to = "On";
        } else if (t != NULL &&
                   (strcmp(t, "ForceOff") == 0 || strcmp(t, "GracefulShutdown") == 0)) {
            to = "Off";
        }
        if (to == NULL) {
            cJSON_Delete(req);
            return send_error(c, 400, "Base.1.8.ActionParameterValueNotInList",
                              "The value for the parameter ResetType is not in the list of "
                              "acceptable values.");
        }
        if (strcmp(to, "On") == 0 && strcmp(s->st.boot_enabled, "Once") == 0) {
            snprintf(s->st.boot_enabled, sizeof(s->st.boot_enabled), "Disabled");
        }
        snprintf(s->pending_power, sizeof(s->pending_power), "%s", to);
        s->then_power[0] = '\0';
        if (strcmp(t, "ForceRestart") == 0 && strcmp(s->st.power, "On") == 0 &&
            s->o.power_delay_reads > 0) {
            /* a power cycle: Off, then On again, each after the delay */
            snprintf(s->pending_power, sizeof(s->pending_power), "Off");
            snprintf(s->then_power, sizeof(s->then_power), "On");
        }
        s->pending_power_reads = s->o.power_delay_reads;
        cJSON_Delete(req);
        s->st.resets++;
        return send_empty(c, 204, NULL);
    }
    if (get && strncmp(url, mp, strlen(mp)) == 0) {
        if (url[strlen(mp)] == '\0') {
            char cd[176];
            snprintf(cd, sizeof(cd), "%s/CD", mp);
            const char *m[] = {cd};
            return send_json(c, 200, collection(url, m, 1), NULL);
        }
        if (strcmp(url + strlen(mp), "/CD") == 0) {
            return send_json(c, 200, media_doc(s), NULL);
        }
    }
    if (post && strncmp(url, mp, strlen(mp)) == 0 &&
        strcmp(url + strlen(mp), "/CD/Actions/VirtualMedia.InsertMedia") == 0) {
        cJSON *req = cJSON_Parse(body);
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(req, "Image"));
        if (img == NULL || s->st.inserted) {
            cJSON_Delete(req);
            return send_error(c, 400, "Base.1.8.ActionNotSupported",
                              img == NULL ? "Image missing." : "Media already inserted.");
        }
        snprintf(s->st.image, sizeof(s->st.image), "%s", img);
        s->st.inserted = true;
        s->st.inserts++;
        cJSON_Delete(req);
        if (s->o.tasks) {
            s->task_polls = 2;
            return send_empty(c, 202, "/redfish/v1/TaskService/TaskMonitors/1");
        }
        return send_empty(c, 204, NULL);
    }
    if (post && strncmp(url, mp, strlen(mp)) == 0 &&
        strcmp(url + strlen(mp), "/CD/Actions/VirtualMedia.EjectMedia") == 0) {
        if (!s->st.inserted) {
            return send_error(c, 400, "Base.1.8.ActionNotSupported", "No media is inserted.");
        }
        s->st.inserted = false;
        s->st.image[0] = '\0';
        s->st.ejects++;
        return send_empty(c, 204, NULL);
    }
    if (get && is(url, "/redfish/v1/TaskService/TaskMonitors/1")) {
        if (s->task_polls > 0) {
            s->task_polls--;
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddStringToObject(doc, "TaskState", "Running");
            return send_json(c, 202, doc, NULL);
        }
        return send_empty(c, 204, NULL);
    }
    if (get && is(url, "/redfish/v1/Managers")) {
        const char *m[] = {"/redfish/v1/Managers/1"};
        return send_json(c, 200, collection(url, m, 1), NULL);
    }
    if (get && is(url, "/redfish/v1/Managers/1")) {
        s->st.manager_reads++;
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "@odata.id", url);
        cJSON_AddStringToObject(doc, "@odata.type", "#Manager.v1_10_0.Manager");
        cJSON_AddStringToObject(doc, "ManagerType", "BMC");
        cJSON *ma = cJSON_AddObjectToObject(doc, "Actions");
        cJSON *mr = cJSON_AddObjectToObject(ma, "#Manager.Reset");
        cJSON_AddStringToObject(mr, "target", "/redfish/v1/Managers/1/Actions/Manager.Reset");
        const char *mt[] = {"ForceRestart", "GracefulRestart"};
        cJSON_AddItemToObject(mr, "ResetType@Redfish.AllowableValues",
                              cJSON_CreateStringArray(mt, 2));
        cJSON_AddStringToObject(doc, "FirmwareVersion", "1.00");
        if (!s->o.media_under_systems) {
            cJSON_AddItemToObject(doc, "VirtualMedia", odata_link(mp));
        }
        return send_json(c, 200, doc, NULL);
    }
    if (post && is(url, "/redfish/v1/Managers/1/Actions/Manager.Reset")) {
        cJSON *req = cJSON_Parse(body);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(req, "ResetType"));
        snprintf(s->st.manager_reset, sizeof(s->st.manager_reset), "%s", t != NULL ? t : "");
        cJSON_Delete(req);
        memset(s->tokens, 0, sizeof(s->tokens)); /* a restarted BMC forgets its sessions */
        return send_empty(c, 204, NULL);
    }
    if (get && is(url, "/redfish/v1/TaskService")) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "@odata.id", url);
        return send_json(c, 200, doc, NULL);
    }
    return send_error(c, 404, "Base.1.8.ResourceMissingAtURI",
                      "The resource at the URI was not found.");
}

static enum MHD_Result route_mockup(struct tserver *s, struct MHD_Connection *c, const char *url,
                                    const char *method)
{
    if (strcmp(method, "POST") == 0 && is(url, "/redfish/v1/SessionService/Sessions")) {
        s->st.logins++;
        struct MHD_Response *r = MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "X-Auth-Token", "mockup-token-0001");
        MHD_add_response_header(r, "Location", "/redfish/v1/SessionService/Sessions/1");
        enum MHD_Result ret = MHD_queue_response(c, 201, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(method, "DELETE") == 0) {
        s->st.logouts++;
        return send_empty(c, 204, NULL);
    }
    if (strcmp(method, "PATCH") == 0) {
        s->st.patches++;
        snprintf(s->st.image, sizeof(s->st.image), "%s", url);
        return send_empty(c, 204, NULL);
    }
    if (strcmp(method, "GET") != 0) {
        return send_error(c, 405, "Base.1.8.OperationNotAllowed", "Read-only mockup.");
    }
    if (strncmp(url, "/redfish/v1", 11) != 0 || strstr(url, "..") != NULL) {
        return send_error(c, 404, "Base.1.8.ResourceMissingAtURI", "Not in the mockup.");
    }
    char path[1024];
    snprintf(path, sizeof(path), "%s%s", s->o.mockup_dir, url + 11);
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/') {
        path[--n] = '\0';
    }
    snprintf(path + n, sizeof(path) - n, "/index.json");
    char *text = test_slurp(path);
    if (text == NULL) {
        return send_error(c, 404, "Base.1.8.ResourceMissingAtURI", "Not in the mockup.");
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", json_type);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/*
 * A request stops counting as in flight once its answer is queued: the client cannot send
 * its next request before it has read this answer, so overlap seen here is real overlap
 * (counting until MHD's completion callback would also count its thread's cleanup).
 */
static void answered(struct tserver *s, struct reqctx *rc)
{
    if (rc->counted) {
        rc->counted = false;
        s->in_flight--;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct tserver *s = cls;
    struct reqctx *rc = *con_cls;
    if (rc == NULL) {
        rc = calloc(1, sizeof(*rc));
        *con_cls = rc;
        pthread_mutex_lock(&s->mu);
        s->st.requests++;
        const char *systems = "/redfish/v1/Systems/";
        if (strcmp(method, "GET") == 0 && strncmp(url, systems, strlen(systems)) == 0 &&
            url[strlen(systems)] != '\0' && strchr(url + strlen(systems), '/') == NULL) {
            s->st.system_reads++;
        }
        s->in_flight++;
        rc->counted = true;
        if (s->in_flight > s->st.max_in_flight) {
            s->st.max_in_flight = s->in_flight;
        }
        int slow = s->f.slow_next_ms;
        s->f.slow_next_ms = 0;
        pthread_mutex_unlock(&s->mu);
        if (s->o.latency_ms + slow > 0) {
            usleep((useconds_t)(s->o.latency_ms + slow) * 1000);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        rc->body = realloc(rc->body, rc->len + *upload_data_size + 1);
        memcpy(rc->body + rc->len, upload_data, *upload_data_size);
        rc->len += *upload_data_size;
        rc->body[rc->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    if (s->f.expire_sessions) {
        memset(s->tokens, 0, sizeof(s->tokens));
        s->f.expire_sessions = false;
    }
    bool asks_expand = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "$expand") != NULL;
    s->st.expand_asks += asks_expand;
    bool hang_expand = asks_expand && s->o.expand == TSERVER_EXPAND_HANGS;
    if (s->f.hang || hang_expand) {
        while ((s->f.hang || hang_expand) && !s->stopping) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        answered(s, rc);
        pthread_mutex_unlock(&s->mu);
        return MHD_NO;
    }
    if (s->f.reset) {
        answered(s, rc);
        pthread_mutex_unlock(&s->mu);
        return MHD_NO;
    }
    enum MHD_Result ret;
    if (s->f.error_500 > 0) {
        s->f.error_500--;
        ret = send_error(c, 500, "Base.1.8.InternalError",
                         "The request failed due to an internal service error.");
    } else if (s->f.error_503 > 0) {
        s->f.error_503--;
        ret = send_error(c, 503, "Base.1.8.ServiceTemporarilyUnavailable",
                         "The service is temporarily unavailable.");
    } else if (s->o.mockup_dir != NULL) {
        ret = route_mockup(s, c, url, method);
    } else if (s->f.malformed && strcmp(method, "GET") == 0) {
        ret = send_text(c, 200, "{\"@odata.id\": \"/redfish/v1\", \"Systems\": {");
    } else {
        ret = route(s, c, url, method, rc->body != NULL ? rc->body : "");
        if (s->f.lose_post_answers && strcmp(method, "POST") == 0 &&
            strstr(url, "/Sessions") == NULL) {
            /* the action happened, but the answer never reaches the client */
            ret = MHD_NO;
        }
    }
    answered(s, rc);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct tserver *s = cls;
    struct reqctx *rc = *con_cls;
    if (rc == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (rc->counted) {
        s->in_flight--;
    }
    pthread_mutex_unlock(&s->mu);
    free(rc->body);
    free(rc);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct tserver *s = cls;
    pthread_mutex_lock(&s->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        s->st.connections++;
        s->st.open_connections++;
    } else {
        s->st.open_connections--;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool tserver_wait_closed(struct tserver *s, double bound)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)bound;
    pthread_mutex_lock(&s->mu);
    while (s->st.open_connections > 0 &&
           pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT) {
    }
    bool closed = s->st.open_connections == 0;
    pthread_mutex_unlock(&s->mu);
    return closed;
}

struct tserver *tserver_start(const struct tserver_opts *o)
{
    struct tserver *s = calloc(1, sizeof(*s));
    s->o = *o;
    if (s->o.systems < 1) {
        s->o.systems = 1;
    }
    if (s->o.max_sessions < 1) {
        s->o.max_sessions = 4;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca; /* waits on it count monotonic time, whatever a test does to the
                              wall clock (tests/core/clockstep.c) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(s->st.power, sizeof(s->st.power), "Off");
    snprintf(s->st.boot_target, sizeof(s->st.boot_target), "None");
    snprintf(s->st.boot_enabled, sizeof(s->st.boot_enabled), "Disabled");

    EVP_PKEY *key = ec_key();
    long after = o->cert == TSERVER_CERT_EXPIRED ? -86400 : 86400;
    long before = o->cert == TSERVER_CERT_EXPIRED ? -2 * 86400 : -3600;
    X509 *leaf = make_cert(key, "127.0.0.1", o->ca, false, before, after);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    s->key_pem = bio_string(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, leaf);
    s->cert_pem = bio_string(b);
    EVP_PKEY_free(key);
    X509_free(leaf);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_TLS | MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_HTTPS_MEM_CERT,
                            s->cert_pem, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (s->d == NULL) {
        bail("cannot start the test HTTPS server");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof(s->url), "https://127.0.0.1:%u", (unsigned)info->port);
    return s;
}

const char *tserver_url(const struct tserver *s)
{
    return s->url;
}

void tserver_set_faults(struct tserver *s, const struct tserver_faults *f)
{
    pthread_mutex_lock(&s->mu);
    s->f = *f;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void tserver_stats(struct tserver *s, struct tserver_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->sessions = 0;
    for (size_t i = 0; i < sizeof(s->tokens) / sizeof(s->tokens[0]); i++) {
        out->sessions += s->tokens[i][0] != '\0';
    }
    pthread_mutex_unlock(&s->mu);
}

void tserver_stop(struct tserver *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->key_pem);
    free(s->cert_pem);
    free(s);
}

void tserver_set_power_delay(struct tserver *s, int reads)
{
    pthread_mutex_lock(&s->mu);
    s->o.power_delay_reads = reads;
    pthread_mutex_unlock(&s->mu);
}
