/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small HTTPS Redfish service for the plugin's tests, run in the test process on
 * loopback (libmicrohttpd, one thread per connection so a hung answer stalls only its
 * own connection). It serves one BMC with a single system and manager, sessions, an
 * ETag-guarded PATCH, virtual media, a task monitor, and faults switched by the test.
 * Certificates come from a CA generated at start with libcrypto.
 */
#ifndef WARD_TEST_TSERVER_H
#define WARD_TEST_TSERVER_H

#include <stdbool.h>
#include <stdio.h>

struct tca; /* a generated certificate authority */

/* A fresh CA named cn; bails on failure. */
struct tca *tca_create(const char *cn);
/* Write the CA certificate as PEM to path. */
void tca_write(struct tca *ca, const char *path);
void tca_free(struct tca *ca);

/* What a client of a test BMC needs, under dir: a fresh CA written to dir/ca.pem and
   TSERVER_PASSWORD in dir/password (paths in ca_path and pw_path, 512 bytes each). Returns
   the CA; bails on failure. */
struct tca *tserver_client_files(const char *dir, char ca_path[512], char pw_path[512]);
/* ward's log goes to dir/log.jsonl, out of the TAP stream; the stream, for the test to close
   once it has set the log back (ward_log_set_stream(NULL)). Bails on failure. */
FILE *tserver_log_file(const char *dir);

enum tserver_cert {
    TSERVER_CERT_GOOD,    /* leaf for 127.0.0.1 signed by the CA */
    TSERVER_CERT_EXPIRED, /* same, but expired yesterday */
};

struct tserver_opts {
    struct tca *ca;
    enum tserver_cert cert;
    bool sessions;            /* SessionService present */
    bool basic_auth;          /* basic auth accepted */
    bool etag_required;       /* PATCH of the system needs a current If-Match */
    bool tasks;               /* InsertMedia answers 202 + task monitor */
    bool media_under_systems; /* VirtualMedia under Systems/1 instead of Managers/1 */
    bool action_info;         /* ResetType values in an ActionInfo resource */
    int systems;              /* members in the Systems collection (1 or 2) */
    int max_sessions;         /* beyond it, 503 */
    bool no_location;         /* a login's answer has no Location (the session is not found) */
    int token_len;            /* session tokens padded to this many bytes (0: short ones) */
    int power_delay_reads;    /* GETs of the system that still show the old power state (a
                                 ForceRestart of a host that is On: Off after as many, then On
                                 after as many again) */
    int latency_ms; /* each answer takes this long (the BMC's own time; a thread per connection) */
    enum {
        TSERVER_EXPAND_NONE,    /* the root advertises no $expand; a query is ignored */
        TSERVER_EXPAND_DOT,     /* it advertises "." ($levels too) and honours it */
        TSERVER_EXPAND_ALL,     /* it advertises only "*", without $levels, and honours it */
        TSERVER_EXPAND_REFUSED, /* it advertises "." but answers any $expand with 400 */
        TSERVER_EXPAND_HANGS,   /* it advertises "." but never answers a $expand request */
        TSERVER_EXPAND_BROKEN,  /* it advertises "." and answers $expand with broken JSON */
        TSERVER_EXPAND_BUSY,    /* it advertises "." and answers its first $expand with 503 */
        TSERVER_EXPAND_PARTIAL, /* it advertises "." and inlines only the first member */
    } expand;
    /* Serve a DMTF mockup directory read-only instead (<dir>/<path>/index.json); logins
       succeed, PATCHes are recorded (stats.patches, stats.image = the last path) and ignored. */
    const char *mockup_dir;
};

/* Faults the test flips between requests. */
struct tserver_faults {
    int error_500;          /* answer the next N requests with 500 and an ExtendedInfo body */
    int error_503;          /* answer the next N requests with 503 */
    int conflict_409;       /* answer the next N Reset actions with 409 */
    bool hang;              /* never answer (until the server stops) */
    bool reset;             /* close the connection without an answer */
    bool malformed;         /* answer GETs with broken JSON */
    bool truncated;         /* close the connection mid-body */
    bool slow_drip;         /* send the body one byte every 200 ms */
    bool expire_sessions;   /* drop every session now */
    bool lose_post_answers; /* carry out POSTs (not logins) but close without answering */
    int slow_next_ms;       /* the next request takes this long (then the fault is spent) */
};

struct tserver_stats {
    int requests;
    int system_reads; /* GETs of a ComputerSystem */
    int nic_reads;    /* GETs of one EthernetInterface */
    int manager_reads; /* GETs of the Manager */
    char expand[48];  /* the last $expand asked for, "" when none */
    int expand_asks;  /* requests that carried $expand */
    int max_in_flight;
    int logins;
    int logouts;
    int sessions; /* open now */
    int resets; /* Reset actions accepted */
    int inserts;
    int ejects;
    int patches;
    char power[32];
    char boot_target[32];
    char boot_enabled[32];
    char image[256];
    bool inserted;
    char manager_reset[32]; /* ResetType of the last Manager.Reset */
    int connections;        /* accepted so far */
    int open_connections;   /* accepted and not yet closed */
};

struct tserver;

/* Start on 127.0.0.1 with an ephemeral port; bails on failure. */
struct tserver *tserver_start(const struct tserver_opts *o);
/* "https://127.0.0.1:PORT" */
const char *tserver_url(const struct tserver *s);
void tserver_set_faults(struct tserver *s, const struct tserver_faults *f);
void tserver_stats(struct tserver *s, struct tserver_stats *out);
/* Wait up to bound seconds for every connection to be closed; false if one stays open. */
bool tserver_wait_closed(struct tserver *s, double bound);
/* Credentials the server accepts. */
#define TSERVER_USER "admin"
#define TSERVER_PASSWORD "s3cr3t-pa55word"
void tserver_stop(struct tserver *s);
/* From now on, a Reset shows in this many more reads of the system (a BMC still switching). */
void tserver_set_power_delay(struct tserver *s, int reads);

#endif
