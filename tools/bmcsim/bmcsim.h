/* SPDX-License-Identifier: Apache-2.0 */
/* ward-bmcsim: a fleet of simulated Redfish BMCs on loopback (shared declarations). */
#ifndef WARD_BMCSIM_H
#define WARD_BMCSIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SIM_MAX_SYSTEMS 8
#define SIM_MAX_MEDIA 2
#define SIM_MAX_TASKS 16
#define SIM_MAX_SESSIONS_CAP 64
#define SIM_IMAGE_MAX 512

/* Vendor quirks, each one switchable on any BMC (flavours only choose defaults). */
enum sim_quirk {
    SIM_Q_ETAG_REQUIRED = 1u << 0,       /* PATCH needs If-Match with the current ETag */
    SIM_Q_SESSIONS_ONLY = 1u << 1,       /* no basic auth */
    SIM_Q_TASK_MONITOR = 1u << 2,        /* actions answer 202 + task monitor */
    SIM_Q_NOTCONNECTED_FREE = 1u << 3,   /* empty CD slot claims Inserted but NotConnected */
    SIM_Q_NO_BOOT_MODE = 1u << 4,        /* no BootSourceOverrideMode at all */
    SIM_Q_VM_ON_SYSTEMS = 1u << 5,       /* VirtualMedia under Systems (newer firmware) */
    SIM_Q_EJECT_EMPTY_REFUSED = 1u << 6, /* EjectMedia with nothing inserted is an error */
    SIM_Q_POWERON_409 = 1u << 7,         /* power-on refused (409) for a while after off */
    SIM_Q_NO_INSERT_ACTION = 1u << 8,    /* no InsertMedia/EjectMedia: PATCH Image instead */
    SIM_Q_ACTION_INFO = 1u << 9,         /* ResetType values in an ActionInfo resource */
};

struct sim_quirk_name {
    const char *name;
    unsigned bit;
};
extern const struct sim_quirk_name sim_quirk_names[];
/* The bit for a quirk name, 0 if unknown. */
unsigned sim_quirk_lookup(const char *name);

struct sim_media_def {
    const char *id;
    const char *name;
    const char *types[2]; /* MediaTypes; NULL-terminated when shorter */
    bool cd;
};

struct sim_flavour {
    const char *name;
    const char *system_id; /* first system; others get "-N" appended */
    const char *manager_id;
    const char *username;
    const char *manufacturer;
    const char *model;
    const char *bios;
    const char *firmware_old; /* Manager FirmwareVersion without SIM_Q_VM_ON_SYSTEMS */
    const char *firmware_new; /* ... and with it: the "newer firmware" */
    const char *server;       /* Server header */
    const char *const *reset_types;
    const char *const *boot_targets;
    struct sim_media_def media[SIM_MAX_MEDIA];
    unsigned quirks;
    bool transitional; /* PowerState reads PoweringOn/Off while changing */
    bool expand;       /* advertises and honours $expand on collections; without it the query
                          is ignored, as services do with query options they lack */
};

extern const struct sim_flavour sim_flavours[];
const struct sim_flavour *sim_flavour_find(const char *name);

enum sim_wrong_cert {
    SIM_CERT_GOOD = 0,
    SIM_CERT_OTHER_CA = 1,   /* signed by a CA nobody trusts */
    SIM_CERT_EXPIRED = 2,    /* right CA, validity ended */
    SIM_CERT_WRONG_NAME = 3, /* right CA, SAN does not cover 127.0.0.1 */
    SIM_CERT_COUNT = 4,
};

/* Faults, switchable at runtime; read under the BMC's lock. */
struct sim_faults {
    double error_rate; /* share of requests answered 500 */
    bool hang;         /* hold requests (hang_ms) then close without answer */
    bool reset;        /* reset the connection instead of answering */
    bool malformed;    /* answer JSON that does not parse */
    bool truncated;    /* close after half the announced body */
    bool slow_drip;    /* body in small pieces, drip_ms apart */
    int wrong_cert;    /* enum sim_wrong_cert, for new connections */
    int latency_ms;
    int jitter_ms;
};

struct sim_media {
    bool inserted;
    bool write_protected;
    char image[SIM_IMAGE_MAX];
};

struct sim_system {
    char id[48];
    char path[96];
    char uuid[40];
    char serial[24];
    char macs[2][18];
    bool on;
    bool pending;      /* a power change is under way */
    bool pending_on;   /* its target */
    bool pending_boot; /* the change ends in a boot (on from off, restart) */
    double pending_at; /* sim time it completes */
    double off_at;     /* sim time power last went off */
    char boot_target[24];
    char boot_enabled[16];
    char boot_mode[8];
    unsigned boots;
    char last_boot_source[24];
    char last_boot_image[SIM_IMAGE_MAX];
    struct sim_media media[SIM_MAX_MEDIA]; /* used when VirtualMedia hangs under this system */
};

struct sim_session {
    bool used;
    unsigned id;
    char token[40];
    double created;
    double last_used;
};

enum sim_task_kind { SIM_TASK_RESET, SIM_TASK_INSERT, SIM_TASK_EJECT };

struct sim_task {
    bool used;
    unsigned id;
    enum sim_task_kind kind;
    int system;
    int media;
    double started;
    double done_at;
    bool applied;
    char *image; /* owned */
};

struct sim_bmc {
    int index;
    char name[32];
    const struct sim_flavour *flavour;
    unsigned quirks;
    int listen_fd;
    int port;
    char address[64]; /* https://127.0.0.1:PORT */
    char password[24];

    pthread_mutex_t lock; /* guards everything below */
    uint64_t rng;
    struct sim_faults faults;
    int nsystems;
    struct sim_system *systems; /* owned, nsystems of them */
    char manager_path[96];
    struct sim_media manager_media[SIM_MAX_MEDIA]; /* used when VirtualMedia is under Managers */
    struct sim_session *sessions;                  /* owned, session_slots of them */
    int session_slots;
    unsigned next_session_id;
    struct sim_task tasks[SIM_MAX_TASKS];
    unsigned next_task_id;
    /* counters */
    uint64_t requests;
    uint64_t expanded; /* members answered inline by $expand, each costing a request's latency */
    uint64_t responses_2xx, responses_4xx, responses_5xx;
    uint64_t faults_injected;
    int active;
    int max_active;
    uint64_t logins;
    uint64_t login_failures;
    uint64_t logouts;
    uint64_t lockouts;
    int failures_in_row; /* failed logins since the last good one */
    double locked_until; /* sim time */
    char password_file[600];
};

struct sim_options {
    int nbmcs;
    char **flavour_names; /* round robin over these */
    int nflavours;
    int nsystems;
    int base_port;         /* 0: any free port per BMC */
    uint32_t address_base; /* host order; 0: every BMC on 127.0.0.1 with its own port */
    int control_port;
    const char *state_dir;
    bool plain_http;
    bool shared_password; /* one password (and file) for the whole fleet */
    int threads;
    double power_delay;   /* seconds */
    double poweron_block; /* seconds power-on is refused after off (quirk) */
    double task_time;     /* seconds a task monitor stays Running */
    double session_timeout;
    int max_sessions;
    double hang_time;
    double drip_interval;
    int idle_timeout;    /* seconds an idle keep-alive connection lives */
    int lockout_after;   /* failed logins in a row that lock the account; 0: never */
    double lockout_time; /* seconds the lock lasts */
    unsigned quirks_on, quirks_off;
    struct sim_faults faults;
    uint64_t seed;
};

struct sim_fleet {
    struct sim_options opt;
    int nbmcs;
    struct sim_bmc *bmcs; /* owned */
};

extern struct sim_fleet *sim_fleet;

/* Simulated time: monotonic seconds plus an offset the control API can advance. */
double sim_now(void);
void sim_clock_advance(double seconds);

/* A response under construction (redfish.c fills it; main.c sends it). */
#define SIM_MAX_HEADERS 6
struct sim_response {
    int status;
    char *body; /* owned, NUL-terminated JSON or NULL */
    const char *header_names[SIM_MAX_HEADERS];
    char *header_values[SIM_MAX_HEADERS]; /* owned */
    int nheaders;
    bool basic_challenge; /* 401 that offers basic auth */
    int expanded;         /* members expanded inline: the answer waits that many latencies more */
};

void sim_response_header(struct sim_response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_response_free(struct sim_response *r);

/* What redfish.c needs to know about a request. */
struct sim_request {
    const char *method;
    const char *url;
    const char *body;
    size_t body_len;
    const char *token;    /* X-Auth-Token or NULL */
    const char *if_match; /* If-Match or NULL */
    const char *basic_user;
    const char *basic_pass;
    const char *expand; /* the $expand query option or NULL */
};

/* Initialise one BMC's state (before serving); 0 or -ENOMEM. */
int sim_bmc_init(struct sim_bmc *b, int index, const struct sim_flavour *f,
                 const struct sim_options *opt);
void sim_bmc_destroy(struct sim_bmc *b);
/* Answer one Redfish request; takes the BMC's lock itself. */
void sim_redfish_handle(struct sim_bmc *b, const struct sim_request *rq, struct sim_response *rs);
/* Switch quirks on and off at runtime (lock held), as a firmware update would. */
void sim_bmc_set_quirks(struct sim_bmc *b, unsigned on, unsigned off);
/* Drop every session of the BMC (fault "expire_sessions"). */
void sim_bmc_expire_sessions(struct sim_bmc *b);
/* Append the BMC's counters and state as a JSON object (cJSON *) to arr. */
struct cJSON;
void sim_bmc_report(struct sim_bmc *b, struct cJSON *arr);
/* Next pseudo-random number in [0,1) from the BMC's generator (lock held). */
double sim_bmc_random(struct sim_bmc *b);

/* TLS material: a CA and server certificates made at start (tls.c). */
struct sim_tls {
    char *ca_pem;                   /* owned */
    char *cert_pem[SIM_CERT_COUNT]; /* owned; [0] is the good one */
    char *key_pem[SIM_CERT_COUNT];  /* owned */
    char **group_pem;               /* owned, ngroups: good certificates per address block */
    int ngroups;
};
/* extra_san: ",IP:a,IP:b..." appended to every cert_pem's names ("" for none); group_sans:
 * the same for each of ngroups extra good certificates (address mode). */
int sim_tls_create(struct sim_tls *t, const char *extra_san, const char *const *group_sans,
                   int ngroups, struct ward_error *err);
/* BMCs per certificate (and per HTTPS thread) in address mode. */
#define SIM_ADDRESS_GROUP 16
void sim_tls_free(struct sim_tls *t);

/* Give BMC b a new password (random when password is NULL) and write it to its password file
 * when it has one (atomic: through a rename, for changes at runtime); 0 or negative errno.
 * Lock held by the caller at runtime. */
int sim_bmc_set_password(struct sim_bmc *b, const char *password, bool atomic);

/* The control API (control.c). */
struct MHD_Daemon;
struct MHD_Daemon *sim_control_start(int port, int *bound_port, struct ward_error *err);

/* enum sim_wrong_cert for ca|expired|name|none|true|false (NULL: ca); -1 if unknown. */
int sim_wrong_cert_parse(const char *s);

/* Apply one fault object ({"bmc":..., "error_rate":...}); 0 or -EINVAL with a reason. */
int sim_faults_apply_json(const char *text, size_t len, struct ward_error *err);

#endif
