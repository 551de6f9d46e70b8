/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: a policy file. It is compiled and checked in the sandbox as `policy
 * check` does; a file that passes is then loaded by an engine, as wardd would load it,
 * and driven against the tests' fake BMC: resources of each kind it declares are
 * created and reconciled, asked to go to every state, explained, and left until the
 * stuck timeouts and recoveries have fired. Whatever the file does, the engine must
 * contain it: no crash, no leak, no sanitizer report.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/policy/fixture.h"
#include "log.h"
#include "machine.h"
#include "policy.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KINDS 4

static char dir[4096];
static char file[4200];

static void remove_dir(void)
{
    unlink(file);
    rmdir(dir);
}

/* A directory of our own for the one policy file the engine loads. */
static void make_dir(void)
{
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (getenv("TMPDIR") != NULL) {
        tmp = getenv("TMPDIR");
    }
    snprintf(dir, sizeof(dir), "%s/ward-policy-fuzz-XXXXXX", tmp);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(file, sizeof(file), "%s/fuzz.lua", dir);
    atexit(remove_dir);
}

/* The kinds the text names as `kind = "Name"` (how policies declare theirs). */
static size_t find_kinds(const char *text, size_t len, char kinds[][64])
{
    size_t n = 0;
    for (size_t i = 0; i + 4 < len && n < FUZZ_KINDS; i++) {
        if (memcmp(text + i, "kind", 4) != 0) {
            continue;
        }
        size_t j = i + 4;
        while (j < len && (text[j] == ' ' || text[j] == '=')) {
            j++;
        }
        if (j >= len || (text[j] != '"' && text[j] != '\'')) {
            continue;
        }
        char quote = text[j++];
        size_t k = 0;
        while (j < len && text[j] != quote && k + 1 < 64) {
            kinds[n][k++] = text[j++];
        }
        kinds[n][k] = '\0';
        if (k > 0 && j < len && text[j] == quote) {
            n++;
        }
    }
    return n;
}

/* Everything the engine offers from outside, on each resource of one kind. */
static void drive(struct ev_loop *loop, struct ward_policy_engine *e, const char *kind)
{
    static const char *const names[] = {"a", "b"};
    static const char *const specs[] = {
        "{}",
        "{\"bmc\":{\"address\":\"https://127.0.0.1:1\",\"credentials\":\"fuzz\"},"
        "\"consumerRef\":\"fuzz\",\"bootISOSource\":\"http://127.0.0.1:1/boot.iso\"}",
    };
    struct ward_error err = {0};
    for (size_t i = 0; i < WARD_ARRAY_SIZE(names); i++) {
        ward_policy_resource_put(e, kind, names[i], specs[i], &err);
    }
    fixture_settle(loop);
    const struct ward_machine *m = ward_policy_engine_machine(e, kind);
    for (size_t d = 0; m != NULL && d < m->ndims; d++) {
        const char *dim = m->dims[d].name;
        /* the machine stays valid until a reload, and nothing here reloads */
        for (size_t s = 0; s < m->dims[d].nstates; s++) {
            const char *to = m->dims[d].states[s];
            ward_policy_transition_check(e, kind, "a", dim, to, &err);
            ward_policy_transition(e, kind, "a", dim, to, "fuzz", "fuzzed", "fuzz", &err);
            ward_policy_claim_check(e, kind, "b", "fuzz", &err);
            fixture_settle(loop);
        }
    }
    for (size_t i = 0; i < WARD_ARRAY_SIZE(names); i++) {
        free(ward_policy_explain(e, kind, names[i], &err));
        free(ward_policy_resource_json(e, kind, names[i]));
    }
    /* past every stuck timeout and deadline: recoveries and requeues run */
    for (int round = 0; round < 3; round++) {
        fixture_now += 86400.0;
        ward_policy_engine_tick(e);
        fixture_settle(loop);
    }
}

static void run_engine(const char *text, size_t len)
{
    char kinds[FUZZ_KINDS][64];
    size_t nkinds = find_kinds(text, len, kinds);
    if (nkinds == 0) {
        return;
    }
    FILE *f = fopen(file, "wb");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(file);
        abort();
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL) {
        abort();
    }
    struct fakebmc bmc;
    fakebmc_init(&bmc, loop);
    /* the input picks which BMC operations fail, so the failure paths run too */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)text[i]) * 16777619u;
    }
    bmc.fail_connect = (h & 1u) != 0;
    bmc.fail_inventory = (h & 2u) != 0;
    bmc.fail_boot = (h & 4u) != 0;
    struct ward_policy_options o;
    fixture_options(&o, &bmc, NULL);
    o.instructions = 1000000;
    o.memory_limit = 16u << 20;
    o.slice_timeout = 1.0;
    fixture_now = 1000000.0;
    struct ward_error err = {0};
    struct ward_policy_engine *e = ward_policy_engine_create(loop, NULL, NULL, NULL, &o, &err);
    if (e == NULL) {
        abort();
    }
    if (ward_policy_engine_load(e, dir, &err) == 0) {
        for (size_t k = 0; k < nkinds; k++) {
            drive(loop, e, kinds[k]);
        }
        ward_policy_engine_reload(e, &err);
        fixture_settle(loop);
        ward_policy_engine_stop(e);
        fixture_settle(loop);
    }
    ward_policy_engine_destroy(e);
    fixture_settle(loop);
    ev_loop_destroy(loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    static struct ward_policy_options o;
    if (sink == NULL) {
        sink = fopen("/dev/null", "w");
        ward_log_set_stream(sink);
        struct ward_error err = {0};
        if (ward_policy_options_init(&o, &err) != 0) {
            abort();
        }
        /* small limits keep each input fast; the checks are the same */
        o.instructions = 1000000;
        o.memory_limit = 16u << 20;
        make_dir();
    }
    if (ward_policy_check_text((const char *)data, size, "fuzz.lua", &o, sink) == 0) {
        run_engine((const char *)data, size);
    }
    return 0;
}
