/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "tap/basic.h"

/* The guarded path stand-in: a host cannot be provisioned without a consumer. */
static int agent_transition(void *arg, const struct ward_api_transition *t, int64_t *version,
                            struct ward_error *err)
{
    struct test_agent *a = arg;
    struct ward_resource *r = NULL;
    int rc = ward_store_get(a->store, t->kind, t->ns, t->name, &r, err);
    if (rc != 0) {
        return rc;
    }
    bool consumer = r->consumer != NULL && *r->consumer != '\0';
    ward_resource_free(r);
    if (strcmp(t->to, "Provisioning") == 0 && !consumer) {
        ward_events_record(a->events, "Warning", "TransitionRefused",
                           "Claimed -> Provisioning requires a consumer reference", t->kind, t->ns,
                           t->name);
        return ward_error_set(err, -EPERM, "guard refused: the host has no consumer reference");
    }
    struct ward_transition tr = {.kind = t->kind,
                                 .ns = t->ns,
                                 .name = t->name,
                                 .dimension = t->dimension,
                                 .to = t->to,
                                 .trigger = t->reset ? "reset" : "api",
                                 .reason = t->reason,
                                 .actor = t->actor,
                                 .expected_version = t->expected_version,
                                 .consumer = t->reset ? "" : NULL};
    rc = ward_store_transition_sync(a->store, &tr, version, err);
    if (rc == 0) {
        ward_events_record(a->events, "Normal", "Transition", t->to, t->kind, t->ns, t->name);
    }
    return rc;
}

static int agent_reload(void *arg, struct ward_error *err)
{
    struct test_agent *a = arg;
    a->reloads++;
    return 0;
}

static void agent_queue(void *arg, struct ward_buf *out)
{
    struct test_agent *a = arg;
    ward_buf_printf(out, "{\"length\":%d,\"processing\":0,\"max_size\":%d,\"draining\":%s}\n",
                    a->queue_length, a->queue_max, a->draining ? "true" : "false");
}

static int agent_drain(void *arg, bool drain, struct ward_error *err)
{
    struct test_agent *a = arg;
    a->draining = drain;
    return 0;
}

static void agent_scrape(void *arg, struct ward_metrics *m)
{
    struct test_agent *a = arg;
    ward_metric_set(ward_metrics_gauge(m, "ward_provisioning_queue_length", "x", NULL), NULL,
                    a->queue_length);
    ward_metric_set(ward_metrics_gauge(m, "ward_provisioning_queue_max_size", "x", NULL), NULL,
                    a->queue_max);
}

void test_agent_start(struct test_agent *a, struct ev_loop *loop, const char *dir,
                      const char *token)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->queue_max = 100;
    a->metrics = ward_metrics_create();
    struct ward_error err = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    a->store = ward_store_open(
        loop, &(struct ward_store_options){.path = path, .metrics = a->metrics}, &err);
    if (a->store == NULL) {
        bail("store: %s", err.text);
    }
    snprintf(a->token_file, sizeof(a->token_file), "%s/token", dir);
    FILE *f = fopen(a->token_file, "w");
    if (f == NULL) {
        sysbail("token file");
    }
    fprintf(f, "%s\n", token);
    fclose(f);
    a->events = ward_events_create(&(struct ward_events_options){.metrics = a->metrics});
    a->http = ward_http_create(
        loop, a->metrics,
        &(struct ward_http_options){.listen = "127.0.0.1:0", .token_file = a->token_file}, &err);
    if (a->http == NULL) {
        bail("http: %s", err.text);
    }
    struct ward_api_hooks hooks = {.transition = agent_transition,
                                   .policy_reload = agent_reload,
                                   .queue_status = agent_queue,
                                   .queue_drain = agent_drain,
                                   .arg = a};
    a->api = ward_api_create(a->http, a->store, a->events, a->metrics, &hooks, &err);
    if (a->api == NULL) {
        bail("api: %s", err.text);
    }
    ward_http_on_scrape(a->http, agent_scrape, a);
    snprintf(a->base, sizeof(a->base), "http://127.0.0.1:%u", ward_http_port(a->http));
}

void test_agent_set_state(struct test_agent *a, const char *name, const char *state)
{
    struct ward_error err = {0};
    struct ward_transition t = {.kind = WARD_API_KIND,
                                .ns = WARD_API_DEFAULT_NS,
                                .name = name,
                                .dimension = WARD_STORE_LIFECYCLE,
                                .to = state,
                                .trigger = "test",
                                .reason = "test setup",
                                .actor = "test"};
    if (ward_store_transition_sync(a->store, &t, NULL, &err) != 0) {
        bail("set %s to %s: %s", name, state, err.text);
    }
}

void test_agent_add_hosts(struct test_agent *a, const char *prefix, int n, int racks)
{
    struct ward_error err = {0};
    for (int i = 0; i < n; i++) {
        char name[64], labels[64];
        snprintf(name, sizeof(name), "%s-%04d", prefix, i);
        snprintf(labels, sizeof(labels), "{\"rack\":\"r%d\"}", racks > 0 ? i % racks : 0);
        struct ward_resource r = {
            .kind = WARD_API_KIND, .ns = WARD_API_DEFAULT_NS, .name = name, .labels = labels};
        if (ward_store_create(a->store, &r, &err) != 0) {
            bail("add %s: %s", name, err.text);
        }
        test_agent_set_state(a, name, WARD_STORE_AVAILABLE);
    }
}

void test_agent_stop(struct test_agent *a)
{
    ward_http_destroy(a->http);
    ward_api_destroy(a->api);
    ward_events_destroy(a->events);
    ward_store_close(a->store);
    ward_metrics_destroy(a->metrics);
}
