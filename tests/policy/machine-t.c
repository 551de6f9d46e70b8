/* SPDX-License-Identifier: Apache-2.0 */
/* The PhysicalHost machine exactly as the reference, paths, dimensions, policy check. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "machine.h"
#include "policy.h"
#include "../tap/basic.h"

static const char *const states[] = {"None",         "Enrolling",   "Available", "Claimed",
                                     "Provisioning", "Provisioned", "Error",     "Deprovisioning"};

/* Written out from the issue, not computed: from -> allowed targets. */
static const char *const allowed[][2] = {
    {"None", "Enrolling"},
    {"None", "Error"},
    {"Enrolling", "Available"},
    {"Enrolling", "Error"},
    {"Available", "Claimed"},
    {"Available", "Error"},
    {"Available", "Deprovisioning"},
    {"Claimed", "Provisioning"},
    {"Claimed", "Available"},
    {"Claimed", "Error"},
    {"Provisioning", "Provisioned"},
    {"Provisioning", "Available"},
    {"Provisioning", "Error"},
    {"Provisioned", "Available"},
    {"Provisioned", "Deprovisioning"},
    {"Provisioned", "Error"},
    {"Error", "Enrolling"},
    {"Error", "Available"},
    {"Error", "Deprovisioning"},
    {"Deprovisioning", "Error"},
};

static bool expected(const char *from, const char *to)
{
    for (size_t i = 0; i < WARD_ARRAY_SIZE(allowed); i++) {
        if (strcmp(allowed[i][0], from) == 0 && strcmp(allowed[i][1], to) == 0) {
            return true;
        }
    }
    return false;
}

static char *check_output(const char *path, int *rc)
{
    FILE *f = tmpfile();
    if (f == NULL) {
        sysbail("tmpfile");
    }
    *rc = ward_policy_check_file(path, f);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        bail("read check output");
    }
    fclose(f);
    for (char *c = buf; *c != '\0'; c++) {
        if (*c == '\n') {
            *c = ' '; /* keep each TAP line on one line */
        }
    }
    return buf;
}

int main(void)
{
    plan(64 + 1 + 6 + 6 + 12 + 7);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct ward_policy_options o;
    fixture_options(&o, NULL, NULL);
    struct ward_error err = {0};
    struct ward_policy_engine *e = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/policies", &err) != 0) {
        bail("load: %s", err.text);
    }
    const struct ward_machine *m = ward_policy_engine_machine(e, "PhysicalHost");
    if (m == NULL) {
        bail("no PhysicalHost machine");
    }
    const struct ward_machine_dim *d = ward_machine_dim(m, NULL);
    /* all 64 pairs */
    for (size_t a = 0; a < 8; a++) {
        for (size_t b = 0; b < 8; b++) {
            int fa = ward_machine_state(d, states[a]);
            int tb = ward_machine_state(d, states[b]);
            bool want = expected(states[a], states[b]);
            ok(fa >= 0 && tb >= 0 && ward_machine_allows(d, fa, tb) == want, "%s -> %s %s",
               states[a], states[b], want ? "allowed" : "refused");
        }
    }
    is_int(8, (long long)d->nstates, "eight states");

    /* the transition path names allowed targets and the shortest path */
    fixture_now = 5000;
    ward_policy_resource_put(e, "PhysicalHost", "h1", "{}", &err);
    is_string("None", ward_policy_resource_state(e, "PhysicalHost", "h1", NULL),
              "a new host starts in None");
    int rc = ward_policy_transition(e, "PhysicalHost", "h1", NULL, "Provisioned", "api", NULL,
                                    "test", &err);
    is_int(-EPERM, rc, "None -> Provisioned is refused");
    contains(err.text, "allowed from None: Enrolling, Error", "naming the allowed targets");
    contains(err.text,
             "shortest path: None -> Enrolling -> Available -> Claimed -> Provisioning -> "
             "Provisioned",
             "and the shortest path");
    rc = ward_policy_transition(e, "PhysicalHost", "h1", NULL, "Limbo", "api", NULL, "t", &err);
    is_int(-EINVAL, rc, "an unknown state is refused");
    contains(err.text, "unknown state 'Limbo'", "by name");

    /* Deprovisioning is final: its only way out is the any -> Error rule */
    rc = ward_policy_transition(e, "PhysicalHost", "h1", NULL, "Deprovisioning", "api", NULL, "t",
                                &err);
    contains(err.text, "shortest path: None -> Error -> Deprovisioning",
             "the shortest path may go through Error");
    int path[16];
    int n = ward_machine_path(d, ward_machine_state(d, "Deprovisioning"),
                              ward_machine_state(d, "Available"), path, 16);
    ok(n == 2 && path[0] == ward_machine_state(d, "Error"),
       "the only way out of Deprovisioning is through Error");
    is_int(2,
           ward_machine_path(d, ward_machine_state(d, "Deprovisioning"),
                             ward_machine_state(d, "Enrolling"), path, 16),
           "Deprovisioning -> Error -> Enrolling");
    ok(d->final[ward_machine_state(d, "Deprovisioning")], "Deprovisioning is final");
    ok(d->stuck[ward_machine_state(d, "Enrolling")] == 900.0,
       "Enrolling is watched with STUCK_STATE_TIMEOUT (15m)");
    ward_policy_engine_destroy(e);

    /* dimensions: independent tables plus a rule across them */
    e = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    if (e == NULL || ward_policy_engine_load(e, WARD_SRCDIR "/tests/data/policies/dims", &err)) {
        bail("load dims: %s", err.text);
    }
    m = ward_policy_engine_machine(e, "Fabric");
    is_int(3, (long long)m->ndims, "Fabric has three dimensions");
    is_string("configuration", m->dims[0].name, "the declared primary comes first");
    ward_policy_resource_put(e, "Fabric", "f1", "{}", &err);
    is_string("Down", ward_policy_resource_state(e, "Fabric", "f1", "connection"),
              "each dimension starts in its initial state");
    rc = ward_policy_transition(e, "Fabric", "f1", "sync", "InSync", "api", NULL, "t", &err);
    is_int(-EPERM, rc, "InSync while Down is refused by the cross-dimension rule");
    contains(err.text, "sync_needs_link: InSync is impossible", "with the rule's reason");
    rc = ward_policy_transition(e, "Fabric", "f1", "connection", "Up", "api", NULL, "t", &err);
    is_int(0, rc, "connection Down -> Up");
    rc = ward_policy_transition(e, "Fabric", "f1", "sync", "InSync", "api", NULL, "t", &err);
    is_int(0, rc, "then InSync is allowed");
    is_string("Pending", ward_policy_resource_state(e, "Fabric", "f1", NULL),
              "the configuration dimension did not move");
    rc = ward_policy_transition(e, "Fabric", "f1", "connection", "Down", "api", NULL, "t", &err);
    is_int(-EPERM, rc, "the link cannot go down under an InSync state");
    rc = ward_policy_transition(e, "Fabric", "f1", "configuration", "Applied", "api", NULL, "t",
                                &err);
    is_int(0, rc, "configuration moves on its own");
    rc = ward_policy_transition(e, "Fabric", "f1", "bogus", "Applied", "api", NULL, "t", &err);
    is_int(-EINVAL, rc, "an unknown dimension is refused");
    ok(strstr(err.text, "no dimension 'bogus'") != NULL, "by name: %s", err.text);
    ward_policy_engine_destroy(e);

    /* policy check: file:line messages and exit status */
    char *out = check_output(WARD_SRCDIR "/policies/physicalhost.lua", &rc);
    is_int(0, rc, "physicalhost.lua passes policy check");
    contains(out, "21 test cases passed", "and runs its test cases");
    free(out);
    out = check_output(WARD_SRCDIR "/tests/data/policies/broken/unknown-state.lua", &rc);
    ok(rc == 1 && strstr(out, "unknown-state.lua:3: transitions: unknown state 'C'") != NULL,
       "unknown state in a transition, with file:line: %s", out);
    free(out);
    out = check_output(WARD_SRCDIR "/tests/data/policies/broken/unreachable.lua", &rc);
    ok(rc == 1 && strstr(out, "unreachable.lua:3: state Island is unreachable") != NULL,
       "unreachable state: %s", out);
    free(out);
    out = check_output(WARD_SRCDIR "/tests/data/policies/broken/final-exit.lua", &rc);
    ok(rc == 1 && strstr(out, "final-exit.lua:3: final state Done has transitions out") != NULL,
       "final state with exits: %s", out);
    free(out);
    out = check_output(WARD_SRCDIR "/tests/data/policies/broken/guard-missing.lua", &rc);
    ok(rc == 1 && strstr(out, "guard-missing.lua:7: guard for B -> A, a transition the machine "
                              "does not allow") != NULL,
       "guard for a transition that does not exist, at the guard's line: %s", out);
    free(out);
    out = check_output(WARD_SRCDIR "/tests/data/policies/broken/failing-test.lua", &rc);
    ok(rc == 1 && strstr(out, "failing-test.lua:9: test 'B needs ok': expected allowed") != NULL,
       "a failing test case, with its line: %s", out);
    free(out);
    out = check_output("/nonexistent/policy.lua", &rc);
    ok(rc == 1 && strstr(out, "/nonexistent/policy.lua: cannot open") != NULL, "a missing file: %s",
       out);
    free(out);

    ev_loop_destroy(loop);
    return 0;
}
