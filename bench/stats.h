/* SPDX-License-Identifier: Apache-2.0 */
/* What the benchmarks report of repeated measurements: medians and percentiles. */
#ifndef WARD_BENCH_STATS_H
#define WARD_BENCH_STATS_H

#include <stddef.h>

/* The median of v[0..n-1], n > 0. Sorts v. */
double bench_median(double *v, size_t n);
/* The value at fraction p (0 to 1) of the sorted v[0..n-1], n > 0. Sorts v. */
double bench_percentile(double *v, size_t n, double p);

#endif
