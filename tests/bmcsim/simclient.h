/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers: start ward-bmcsim, read its fleet.json, talk to BMCs and the control API. */
#ifndef WARD_TEST_SIMCLIENT_H
#define WARD_TEST_SIMCLIENT_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "../core/spawn.h"
#include "util.h"

struct sim {
    struct child child;
    char dir[512];    /* state dir */
    cJSON *fleet;     /* parsed fleet.json, owned */
    char ca[600];     /* ca.pem path */
    char control[64]; /* http://127.0.0.1:PORT */
};

struct http_result {
    long status;   /* 0 when the transfer failed */
    int curl_code; /* CURLcode */
    char *body;    /* owned, NUL-terminated (maybe empty) */
    char *headers; /* owned, raw response headers */
    cJSON *json;   /* body parsed, or NULL */
};

/* Start the simulator with extra arguments (NULL-terminated); bails if it is not ready in
 * 30 s. The simulator is killed at exit if the test forgets to stop it. */
void sim_start(struct sim *s, const char *const *args);
/* SIGTERM and wait; returns the exit status (0 on a clean stop). */
int sim_stop(struct sim *s);

const char *sim_addr(struct sim *s, int i);
const char *sim_user(struct sim *s, int i);
/* The password read from the BMC's password file (static buffer). */
const char *sim_pass(struct sim *s, int i);

/* One HTTPS request to BMC i. auth: "basic", a session token, or NULL. extra_header may be
 * NULL ("If-Match: ..."). timeout in seconds. */
struct http_result sim_http(struct sim *s, int i, const char *method, const char *path,
                            const char *body, const char *auth, const char *extra_header,
                            double timeout);
/* Like sim_http with a CA file of the caller's choice (NULL: system default). */
struct http_result sim_http_ca(struct sim *s, int i, const char *ca, const char *method,
                               const char *path, const char *body, const char *auth,
                               const char *extra_header, double timeout);
/* Log in; returns a heap token (caller frees) or NULL. */
char *sim_login(struct sim *s, int i);
/* A header's value from a result (static buffer), or NULL. */
const char *http_header(const struct http_result *r, const char *name);
void http_free(struct http_result *r);

/* Control API: POST json to path; returns the HTTP status. */
long sim_control_post(struct sim *s, const char *path, const char *json);
/* GET /control/bmcs/i parsed (caller frees with cJSON_Delete). */
cJSON *sim_control_bmc(struct sim *s, int i);
/* A number from the BMC's report (e.g. "max_concurrent"). */
double sim_counter(struct sim *s, int i, const char *name);

/* One request to a local agent at http://127.0.0.1:port (wardd's HTTP endpoint); token is the
 * bearer token or NULL. A POST without a body sends an empty one. */
struct http_result local_http(int port, const char *method, const char *path, const char *body,
                              const char *token);
/* local_http keeping only the status; the body is appended to out. */
long local_fetch(int port, const char *method, const char *path, const char *body,
                 const char *token, struct ward_buf *out);
/* The port a wardd child logged for its HTTP endpoint ("port":"N"), or 0 when not yet. */
int wardd_port(const struct child *c);

/* Write the part of a wardd configuration that manages this simulator: the in-tree Redfish
 * plugin (WARD_BUILDDIR, WARD_SRCDIR) and hosts node-01..node-N for BMCs 0..N-1 (none when s is
 * NULL: the plugin only). */
void sim_write_wardd_fleet(FILE *f, struct sim *s, int n);

/* Dig a value out of JSON by a slash path ("Boot/BootSourceOverrideTarget", "Members/0/@odata.id").
 */
const char *json_str(cJSON *root, const char *path);
double json_num(cJSON *root, const char *path);
cJSON *json_at(cJSON *root, const char *path);

#endif
