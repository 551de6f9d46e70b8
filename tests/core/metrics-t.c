/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry and its text exposition. */
#include <stdio.h>
#include <string.h>

#include "../tap/basic.h"
#include "metrics.h"
#include "util.h"

int main(void)
{
    plan(14);
    struct ward_metrics *reg = ward_metrics_create();
    struct ward_metric *c = ward_metrics_counter(reg, "ward_things_total", "Things.\\ done\nhere",
                                                 (const char *[]){"kind", NULL});
    ok(c != NULL, "a counter registers");
    ok(ward_metrics_counter(reg, "ward_things_total", "again", (const char *[]){"kind", NULL}) == c,
       "registering the same shape again returns the same family");
    ok(ward_metrics_gauge(reg, "ward_things_total", "other", NULL) == NULL,
       "the same name with another shape is refused");
    ok(ward_metrics_counter(reg, "bad-name", "x", NULL) == NULL, "an invalid name is refused");
    ward_metric_add(c, (const char *[]){"a\"b\\c\nd"}, 2);
    ward_metric_add(c, (const char *[]){"a\"b\\c\nd"}, 1);
    ward_metric_add(c, (const char *[]){"plain"}, -5);
    is_double(3, ward_metric_value(c, (const char *[]){"a\"b\\c\nd"}), 0, "counter adds");
    is_double(0, ward_metric_value(c, (const char *[]){"plain"}), 0,
              "a counter never goes down");

    struct ward_metric *h = ward_metrics_histogram(reg, "ward_op_seconds", "Op time.", NULL,
                                                   (const double[]){0.1, 1}, 2);
    ward_metric_observe(h, NULL, 0.05);
    ward_metric_observe(h, NULL, 0.5);
    ward_metric_observe(h, NULL, 5);
    struct ward_metric *g = ward_metrics_gauge(reg, "ward_level", "Level.", NULL);
    ward_metric_set(g, NULL, 2.5);

    struct ward_buf out = {0};
    ward_metrics_render(reg, &out);
    contains(out.data, "# HELP ward_things_total Things.\\\\ done\\nhere\n", "HELP is escaped");
    contains(out.data, "# TYPE ward_things_total counter\n", "TYPE line");
    contains(out.data, "ward_things_total{kind=\"a\\\"b\\\\c\\nd\"} 3\n", "label values are escaped");
    contains(out.data,
             "ward_op_seconds_bucket{le=\"0.1\"} 1\nward_op_seconds_bucket{le=\"1\"} 2\n"
             "ward_op_seconds_bucket{le=\"+Inf\"} 3\nward_op_seconds_sum 5.55\n"
             "ward_op_seconds_count 3\n",
             "histogram buckets are cumulative, with sum and count");
    contains(out.data, "ward_level 2.5\n", "gauge value");
    ward_buf_free(&out);

    struct ward_metric *wide = ward_metrics_counter(reg, "ward_wide_total", "Wide.",
                                                    (const char *[]){"id", NULL});
    char id[32];
    for (int i = 0; i < WARD_METRICS_MAX_SERIES + 50; i++) {
        snprintf(id, sizeof(id), "host-%d", i);
        ward_metric_add(wide, (const char *[]){id}, 1);
    }
    is_double(50, ward_metric_value(wide, (const char *[]){"_overflow"}), 0,
              "series past the bound fold into _overflow");
    is_double(0, ward_metric_value(wide, (const char *[]){"host-20010"}), 0,
              "and are not kept on their own");
    is_double(1, ward_metric_value(wide, (const char *[]){"host-10"}), 0,
              "series within the bound are kept");
    ward_metrics_destroy(reg);
    return 0;
}
