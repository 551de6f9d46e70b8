/* SPDX-License-Identifier: Apache-2.0 */
/* Registry lifetime and rendering; the recording API is public in ward/metrics.h. */
#ifndef WARD_CORE_METRICS_H
#define WARD_CORE_METRICS_H

#include <ward/metrics.h>

struct ward_buf;

/* Most series one family keeps before folding new ones into "_overflow". */
#define WARD_METRICS_MAX_SERIES 20000

struct ward_metrics *ward_metrics_create(void);
void ward_metrics_destroy(struct ward_metrics *reg);

/* Append the Prometheus text exposition (format 0.0.4) of every family. */
void ward_metrics_render(const struct ward_metrics *reg, struct ward_buf *out);

/*
 * A gauge exposed with TYPE untyped, for a name the operations contract fixes
 * with a suffix promtool's lint reserves for histograms and summaries
 * (ward_provisioning_queue_processing_count): set and add work as on a gauge.
 */
struct ward_metric *ward_metrics_untyped(struct ward_metrics *reg, const char *name,
                                         const char *help, const char *const *labels);

/* Current value of one series (counter or gauge), or the count of a histogram; 0 if absent. */
double ward_metric_value(const struct ward_metric *m, const char *const *values);

/* Sum of ward_metric_value over every series whose label `label` reads `value` (label NULL: all). */
double ward_metric_sum(const struct ward_metric *m, const char *label, const char *value);

#endif
