/* SPDX-License-Identifier: Apache-2.0 */
/* Certificates made at start: a CA clients can trust, a good server certificate, and the
 * wrong ones the "wrong_cert" fault serves (other CA, expired, wrong name). */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bmcsim.h"

static char *bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc((size_t)n + 1);
    if (s != NULL) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static char *pem_cert(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (bio != NULL && PEM_write_bio_X509(bio, x) == 1) {
        s = bio_string(bio);
    }
    BIO_free(bio);
    return s;
}

static char *pem_key(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
        s = bio_string(bio);
    }
    BIO_free(bio);
    return s;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return -EINVAL;
    }
    int rc = X509_add_ext(cert, ext, -1) == 1 ? 0 : -EINVAL;
    X509_EXTENSION_free(ext);
    return rc;
}

/* Make a certificate for key, signed by (issuer, issuer_key), or self-signed when issuer is
 * NULL. not_before/not_after are offsets from now in seconds. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san, long not_before, long not_after)
{
    X509 *x = X509_new();
    if (x == NULL) {
        return NULL;
    }
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1) {
        goto fail;
    }
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL) {
        goto fail;
    }
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), not_before);
    X509_gmtime_adj(X509_getm_notAfter(x), not_after);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"ward-bmcsim", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer != NULL ? issuer : x;
    if (ca) {
        if (add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
            add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
            add_ext(x, iss, NID_subject_key_identifier, "hash") != 0) {
            goto fail;
        }
    } else {
        if (add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") != 0 ||
            add_ext(x, iss, NID_ext_key_usage, "serverAuth") != 0 ||
            add_ext(x, iss, NID_subject_alt_name, san) != 0 ||
            add_ext(x, iss, NID_authority_key_identifier, "keyid") != 0) {
            goto fail;
        }
    }
    if (X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) == 0) {
        goto fail;
    }
    return x;
fail:
    X509_free(x);
    return NULL;
}

int sim_tls_create(struct sim_tls *t, const char *extra_san, const char *const *group_sans,
                   int ngroups, struct ward_error *err)
{
    memset(t, 0, sizeof(*t));
    int rc = -ENOMEM;
    char *san = NULL;
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *rogue_key = EVP_EC_gen("P-256");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *rogue = NULL;
    X509 *certs[SIM_CERT_COUNT] = {0};
    if (ca_key == NULL || rogue_key == NULL || key == NULL) {
        goto out;
    }
    const long day = 86400;
    ca = make_cert(ca_key, "ward-bmcsim CA", NULL, NULL, true, NULL, -day, 30 * day);
    rogue =
        make_cert(rogue_key, "ward-bmcsim untrusted CA", NULL, NULL, true, NULL, -day, 30 * day);
    if (ca == NULL || rogue == NULL) {
        goto out;
    }
    if (asprintf(&san, "IP:127.0.0.1,IP:::1,DNS:localhost%s", extra_san) < 0) {
        san = NULL;
        goto out;
    }
    certs[SIM_CERT_GOOD] = make_cert(key, "127.0.0.1", ca, ca_key, false, san, -day, 30 * day);
    certs[SIM_CERT_OTHER_CA] =
        make_cert(key, "127.0.0.1", rogue, rogue_key, false, san, -day, 30 * day);
    certs[SIM_CERT_EXPIRED] =
        make_cert(key, "127.0.0.1", ca, ca_key, false, san, -10 * day, -2 * day);
    certs[SIM_CERT_WRONG_NAME] = make_cert(key, "bmc.invalid", ca, ca_key, false,
                                           "DNS:bmc.invalid,IP:192.0.2.1", -day, 30 * day);
    t->ca_pem = pem_cert(ca);
    if (t->ca_pem == NULL) {
        goto out;
    }
    /* Good certificates naming a block of addresses each: one naming all 10,000 would cost
     * every client a parse of 80 KB per handshake. */
    if (ngroups > 0) {
        t->group_pem = calloc((size_t)ngroups, sizeof(*t->group_pem));
        if (t->group_pem == NULL) {
            goto out;
        }
        t->ngroups = ngroups;
        for (int g = 0; g < ngroups; g++) {
            char *gsan = NULL;
            if (asprintf(&gsan, "IP:127.0.0.1,IP:::1,DNS:localhost%s", group_sans[g]) < 0) {
                goto out;
            }
            X509 *x = make_cert(key, "127.0.0.1", ca, ca_key, false, gsan, -day, 30 * day);
            free(gsan);
            t->group_pem[g] = x != NULL ? pem_cert(x) : NULL;
            X509_free(x);
            if (t->group_pem[g] == NULL) {
                goto out;
            }
        }
    }
    for (int i = 0; i < SIM_CERT_COUNT; i++) {
        if (certs[i] == NULL) {
            goto out;
        }
        t->cert_pem[i] = pem_cert(certs[i]);
        t->key_pem[i] = pem_key(key);
        if (t->cert_pem[i] == NULL || t->key_pem[i] == NULL) {
            goto out;
        }
    }
    rc = 0;
out:
    free(san);
    for (int i = 0; i < SIM_CERT_COUNT; i++) {
        X509_free(certs[i]);
    }
    X509_free(ca);
    X509_free(rogue);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(rogue_key);
    EVP_PKEY_free(key);
    if (rc != 0) {
        unsigned long e = ERR_get_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        sim_tls_free(t);
        return ward_error_set(err, rc, "cannot make the simulator's certificates: %s", buf);
    }
    return 0;
}

void sim_tls_free(struct sim_tls *t)
{
    for (int g = 0; g < t->ngroups; g++) {
        free(t->group_pem[g]);
    }
    free(t->group_pem);
    t->group_pem = NULL;
    t->ngroups = 0;
    free(t->ca_pem);
    t->ca_pem = NULL;
    for (int i = 0; i < SIM_CERT_COUNT; i++) {
        free(t->cert_pem[i]);
        free(t->key_pem[i]);
        t->cert_pem[i] = t->key_pem[i] = NULL;
    }
}
