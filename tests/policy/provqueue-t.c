/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning queue on its own: settings and their validation, FIFO
 * admission under min(workerCount, maxConcurrentOps), slots freed when a
 * request goes away, removal while waiting, drain and resume, a reload that
 * raises the limit, and refusal (counted) when maxQueueSize requests wait.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../tap/basic.h"
#include "config.h"
#include "metrics.h"
#include "provqueue.h"

/* Where each host stands, as the check callback answers; kicks are recorded in order. */
static struct {
    char name[16];
    int where;
} hosts[16];
static char kicks[256];

static int *where(const char *name)
{
    for (size_t i = 0; i < 16; i++) {
        if (strcmp(hosts[i].name, name) == 0) {
            return &hosts[i].where;
        }
    }
    for (size_t i = 0; i < 16; i++) {
        if (hosts[i].name[0] == '\0') {
            snprintf(hosts[i].name, sizeof(hosts[i].name), "%s", name);
            hosts[i].where = WARD_PROVQUEUE_WANTED;
            return &hosts[i].where;
        }
    }
    bail("too many hosts");
}

static int check(void *arg, const char *name)
{
    (void)arg;
    return *where(name);
}

static void kick(void *arg, const char *name)
{
    (void)arg;
    strncat(kicks, name, sizeof(kicks) - strlen(kicks) - 2);
    strcat(kicks, " ");
}

/* A host leaves (or enters) a state: the queue is told and re-checks it. */
static void set(struct ward_provqueue *q, const char *name, int w)
{
    *where(name) = w;
    ward_provqueue_changed(q, name);
    ward_provqueue_settle(q);
}

static int read_conf(const char *text, struct ward_provqueue_settings *s, struct ward_error *err)
{
    struct ward_config *cfg = ward_config_load_string(text, "test.conf.lua", err);
    if (cfg == NULL) {
        return -1000;
    }
    int rc = ward_provqueue_settings_read(cfg, s, err);
    ward_config_destroy(cfg);
    return rc;
}

int main(void)
{
    plan(56);
    struct ward_error err = {0};
    struct ward_provqueue_settings s;

    /* settings */
    ward_provqueue_settings_init(&s);
    is_int(100, s.max_queue_size, "maxQueueSize defaults to 100");
    is_int(4, s.worker_count, "workerCount defaults to 4");
    is_int(10, s.max_concurrent_ops, "maxConcurrentOps defaults to 10");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "maxConcurrentOps", "0", &err),
           "maxConcurrentOps 0 is refused");
    contains(err.text, "provisioning.maxConcurrentOps must be a whole number from 1 to 20",
             "the error names the setting and its range");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "maxConcurrentOps", "21", &err),
           "maxConcurrentOps 21 is refused");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "maxConcurrentOps", "ten", &err),
           "a maxConcurrentOps that is not a number is refused");
    contains(err.text, "\"ten\"", "the error shows the value");
    is_int(0, ward_provqueue_settings_set(&s, "maxConcurrentOps", "20", &err), "20 is accepted");
    is_int(20, s.max_concurrent_ops, "and set");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "workerCount", "0", &err),
           "workerCount 0 is refused");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "maxQueueSize", "0", &err),
           "maxQueueSize 0 is refused");
    is_int(-EINVAL, ward_provqueue_settings_set(&s, "maxQueueSise", "5", &err),
           "an unknown setting is refused");
    contains(err.text, "unknown setting 'maxQueueSise'", "and named");

    is_int(0, read_conf("log_level = \"info\"\n", &s, &err), "no provisioning section: defaults");
    is_int(10, s.max_concurrent_ops, "maxConcurrentOps is the default");
    is_int(0,
           read_conf("provisioning = { maxQueueSize = 7, workerCount = 2, maxConcurrentOps = 3 }\n",
                     &s, &err),
           "a good section is read");
    ok(s.max_queue_size == 7 && s.worker_count == 2 && s.max_concurrent_ops == 3,
       "with every value");
    is_int(-EINVAL, read_conf("provisioning = { maxConcurrentOps = 0 }\n", &s, &err),
           "maxConcurrentOps = 0 in the file is refused");
    contains(err.text, "provisioning.maxConcurrentOps", "naming the setting");
    is_int(-EINVAL, read_conf("provisioning = { maxConcurrentOps = 21 }\n", &s, &err),
           "maxConcurrentOps = 21 in the file is refused");
    is_int(-EINVAL, read_conf("provisioning = { maxConcurrentOps = \"lots\" }\n", &s, &err),
           "a string that is not a number is refused");
    is_int(-EINVAL, read_conf("provisioning = { workerCount = 2.5 }\n", &s, &err),
           "a fraction is refused");
    is_int(-EINVAL, read_conf("provisioning = { workerCount = -1 }\n", &s, &err),
           "a negative count is refused");
    contains(err.text, "\"-1\"", "showing the value as written");

    /* the queue: workerCount 4, maxConcurrentOps 2 -> two at once */
    struct ward_metrics *m = ward_metrics_create();
    struct ward_provqueue_options o = {
        .settings = {.max_queue_size = 3, .worker_count = 4, .max_concurrent_ops = 2},
        .metrics = m,
        .check = check,
        .kick = kick};
    struct ward_provqueue *q = ward_provqueue_create(&o, &err);
    if (q == NULL) {
        bail("create: %s", err.text);
    }
    is_int(2, ward_provqueue_limit(q), "the limit is min(workerCount, maxConcurrentOps)");
    is_int(0, ward_provqueue_admit(q, "h1", &err), "h1 is admitted");
    is_int(0, ward_provqueue_admit(q, "h2", &err), "h2 is admitted");
    is_int(-EAGAIN, ward_provqueue_admit(q, "h3", &err), "h3 waits");
    contains(err.text, "position 1", "and is told its position");
    is_int(-EAGAIN, ward_provqueue_admit(q, "h4", &err), "h4 waits");
    is_int(0, ward_provqueue_admit(q, "h1", &err), "asking again for h1 admits it again");
    ok(ward_provqueue_processing(q) == 2 && ward_provqueue_length(q) == 2,
       "two in flight, two waiting");
    is_string("", kicks, "nobody was kicked yet");

    set(q, "h1", WARD_PROVQUEUE_INSIDE);
    is_int(2, ward_provqueue_processing(q), "h1 entering Provisioning frees nothing");
    set(q, "h1", WARD_PROVQUEUE_GONE);
    is_string("h3 ", kicks, "h1 leaving frees its slot: the head, h3, is admitted and kicked");
    is_int(0, ward_provqueue_position(q, "h3"), "h3 is admitted");

    /* removal while waiting: h5 queues behind h4 and goes away */
    is_int(-EAGAIN, ward_provqueue_admit(q, "h5", &err), "h5 waits");
    is_int(2, ward_provqueue_position(q, "h5"), "behind h4");
    set(q, "h5", WARD_PROVQUEUE_GONE);
    is_int(-1, ward_provqueue_position(q, "h5"), "h5 left the queue when its request went away");
    set(q, "h2", WARD_PROVQUEUE_GONE);
    is_string("h3 h4 ", kicks, "the next free slot goes to h4, in FIFO order");

    /* drain: nothing new; admitted work continues; resume restores */
    ward_provqueue_drain(q, true);
    is_int(-EAGAIN, ward_provqueue_admit(q, "h6", &err), "while drained a new host waits");
    contains(err.text, "drained", "and is told the queue is drained");
    set(q, "h3", WARD_PROVQUEUE_GONE);
    ok(ward_provqueue_processing(q) == 1 && ward_provqueue_length(q) == 1,
       "a freed slot is not reused while drained");
    ward_provqueue_configure(q, &(struct ward_provqueue_settings){3, 4, 3});
    is_int(0, ward_provqueue_limit(q), "a reload while drained keeps it drained");
    ward_provqueue_drain(q, false);
    is_string("h3 h4 h6 ", kicks, "resume admits the waiting host");

    /* refusal when maxQueueSize requests wait: limit 1 now */
    ward_provqueue_configure(q, &(struct ward_provqueue_settings){2, 1, 1});
    is_int(0, ward_provqueue_offer(q, "h7", &err), "h7 is offered");
    is_int(0, ward_provqueue_offer(q, "h8", &err), "h8 is offered");
    is_int(-EBUSY, ward_provqueue_offer(q, NULL, &err), "a third waiting request is refused");
    contains(err.text, "the provisioning queue is full", "the error says the queue is full");
    contains(err.text, "maxQueueSize 2", "and its size");
    is_double(1,
              ward_metric_value(ward_metrics_counter(m, "ward_provisioning_queue_rejected_total",
                                                     "Provisioning requests refused because the "
                                                     "queue was full.",
                                                     NULL),
                                NULL),
              0, "the refusal is counted");

    /* a bigger limit by reload admits waiting hosts at once */
    ward_provqueue_configure(q, &(struct ward_provqueue_settings){2, 4, 4});
    is_string("h3 h4 h6 h7 h8 ", kicks, "raising maxConcurrentOps admits h7 and h8 in order");
    is_int(0, ward_provqueue_offer(q, NULL, &err), "with room again an offer is accepted");

    struct ward_buf st = {0};
    ward_provqueue_status(q, &st);
    contains(st.data,
             "{\"length\":0,\"processing\":4,\"max_size\":2,\"workers\":4,\"max_concurrent_ops\":4,"
             "\"limit\":4,\"draining\":false,\"waiting\":[]",
             "the status JSON has the figures");
    ward_buf_free(&st);
    struct ward_buf text = {0};
    ward_metrics_render(m, &text);
    contains(text.data, "ward_provisioning_queue_processing_count 4", "the gauges follow");
    ward_buf_free(&text);

    ward_provqueue_destroy(q);
    ward_metrics_destroy(m);
    return 0;
}
