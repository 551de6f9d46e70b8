/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The BMC driver behind `ward.bmc(host)`: a registry of hosts (one ward_rf_bmc, and so one
 * session, per host, shared by every handle a policy opens), the Lua handle whose methods
 * yield through <ward/async.h>, and the periodic power sync.
 */
#ifndef WARD_REDFISH_DRIVER_H
#define WARD_REDFISH_DRIVER_H

#include <lua.h>

#include "bmc.h"

struct ward_rf_driver;

/*
 * Reports a power state read by the sync that differs from the last one ward knew. Every
 * power state the driver learns (sync, inventory, its own power operations) also reaches
 * the policy engine through ward_policy_observe(NULL, host, "power", state).
 */
typedef void (*ward_rf_power_hook)(void *arg, const char *host, const char *expected,
                                   const char *seen);

struct ward_rf_driver_opts {
    const char *credentials_dir; /* <dir>/<set>/username and <dir>/<set>/password, or NULL */
    double power_sync_interval;  /* seconds, 0 disables the sync */
};

/* The driver does not own the client. NULL on allocation failure. */
struct ward_rf_driver *ward_rf_driver_create(struct ward_rf_client *client,
                                             const struct ward_rf_driver_opts *o);
/* Stops the sync and removes every host (logging its session out). */
void ward_rf_driver_destroy(struct ward_rf_driver *d);

/* ward_bmc_driver.open: push a handle for host, or nil and a reason. Never raises. */
int ward_rf_driver_open(void *self, lua_State *L, const char *host, const char *spec_json);

/* Forget a host: cancel its work, log its session out. 0 or -ENOENT. */
int ward_rf_driver_remove(struct ward_rf_driver *d, const char *host);
/* ward_bmc_driver.forget: the host was removed from ward; ward_rf_driver_remove(). */
void ward_rf_driver_forget(void *self, const char *host);

/*
 * Stop the sync and close every host's BMC (ward_rf_bmc_close): operations end, new ones
 * are refused, and each session is deleted once the request on the wire has finished;
 * done(arg) runs once per logout queued, from the loop. Returns how many were queued.
 */
unsigned ward_rf_driver_logout_all(struct ward_rf_driver *d, void (*done)(void *arg), void *arg);

void ward_rf_driver_set_power_hook(struct ward_rf_driver *d, ward_rf_power_hook fn, void *arg);
/* Start the jittered periodic power sync on the loop (no-op when the interval is 0). */
void ward_rf_driver_start_sync(struct ward_rf_driver *d, struct ev_loop *loop);
/* Run one sync round now (tests, and the engine when it wants fresh state). */
void ward_rf_driver_sync_now(struct ward_rf_driver *d);
/* Hosts known to the driver. */
unsigned ward_rf_driver_hosts(const struct ward_rf_driver *d);
/* The ward_rf_bmc of a host, or NULL. */
struct ward_rf_bmc *ward_rf_driver_bmc(struct ward_rf_driver *d, const char *host);

#endif
