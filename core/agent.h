/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent: what wardd runs on top of the daemon's loop and plugins — the
 * store, the policy engine on it, the hosts of the configuration's
 * inventory, and the operator surface (HTTP, API, events).
 */
#ifndef WARD_CORE_AGENT_H
#define WARD_CORE_AGENT_H

#include <ward/plugin.h>

struct ward_daemon;
struct ward_agent;

/*
 * Open the store under the configured state_dir (created if missing), start
 * the policy engine from policy_dir on it, restore every resource, add the
 * inventory's hosts that the store does not have yet, and start the operator
 * surface. Registers its reload and stop hooks with the daemon.
 */
struct ward_agent *ward_agent_start(struct ward_daemon *d, struct ward_error *err);
/*
 * The agent's own configuration sections (today `provisioning = {...}`), as
 * start and reload read them; for `wardd --test`. 0 or -EINVAL with err
 * naming the setting.
 */
struct ward_config;
int ward_agent_check_config(const struct ward_config *cfg, struct ward_error *err);
/* After the loop has ended and before the daemon (and its plugins) go. */
void ward_agent_destroy(struct ward_agent *a);

#endif
