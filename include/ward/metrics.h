/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file ward/metrics.h
 * @brief The metrics registry exposed on wardd's /metrics endpoint.
 *
 * Families are registered once (registering the same name again with the
 * same type and labels returns the same family, so a plugin may register on
 * every start). Label values are copied. Each family holds a bounded number
 * of series; values past the bound are counted into one series whose labels
 * all read "_overflow", so a hostile label value cannot exhaust memory.
 * All functions are meant for the loop's thread.
 */
#ifndef WARD_METRICS_H
#define WARD_METRICS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A registry of metric families; owned by the core. */
struct ward_metrics;

/** @brief One metric family (name, help, type, label names); owned by its registry. */
struct ward_metric;

/**
 * @brief Register a counter.
 * @param name   full metric name, "ward_" prefixed, ending in "_total"
 * @param help   one line of HELP text
 * @param labels NULL-terminated label names, or NULL for none
 * @return the family, or NULL when the name is invalid or taken by another shape
 */
struct ward_metric *ward_metrics_counter(struct ward_metrics *reg, const char *name,
                                         const char *help, const char *const *labels);

/** @brief Register a gauge; arguments as for ward_metrics_counter(). */
struct ward_metric *ward_metrics_gauge(struct ward_metrics *reg, const char *name,
                                       const char *help, const char *const *labels);

/**
 * @brief Register a histogram.
 * @param buckets ascending upper bounds, without +Inf; NULL for the default
 *                latency buckets (5 ms .. 10 min)
 */
struct ward_metric *ward_metrics_histogram(struct ward_metrics *reg, const char *name,
                                           const char *help, const char *const *labels,
                                           const double *buckets, size_t nbuckets);

/**
 * @brief Add @p delta to a counter (delta >= 0) or a gauge.
 * @param values label values in the order of the family's label names; NULL for none
 */
void ward_metric_add(struct ward_metric *m, const char *const *values, double delta);

/** @brief Set a gauge. */
void ward_metric_set(struct ward_metric *m, const char *const *values, double value);

/** @brief Record one observation in a histogram. */
void ward_metric_observe(struct ward_metric *m, const char *const *values, double value);

#ifdef __cplusplus
}
#endif

#endif /* WARD_METRICS_H */
