/* What the benchmarks share: the median of a sample, and the time of the training
 * losses (src/train/loss.c), which run on the host in both the CPU and the GPU step. */
#ifndef LPM_BENCH_UTIL_H
#define LPM_BENCH_UTIL_H

#include "core/core.h"
#include "train/loss.h"

#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median wall time of both loss passes with their gradients, after one warm-up, on
 * stand-in outputs F = Det = (A + B)/2 and R = [F, F]; t holds reps values. */
static inline lpm_status bench_loss_seconds(double *median_s, const float *a, const float *b,
                                            int64_t D, int64_t H, int64_t W,
                                            const lpm_loss_weights *lw, double *t, int reps) {
    size_t n = (size_t)(D * H * W);
    float *f = lpm_malloc(2 * n, sizeof(float)), *df = lpm_malloc(2 * n, sizeof(float)),
          *dd = lpm_malloc(n, sizeof(float));
    lpm_status st = f && df && dd ? LPM_OK : lpm_fail(LPM_ERR_INTERNAL, "bench: out of memory");
    for (size_t i = 0; !st && i < 2 * n; i++) f[i] = 0.5f * (a[i % n] + b[i % n]);
    for (int r = -1; !st && r < reps; r++) {
        lpm_loss_terms terms;
        double t0 = lpm_seconds();
        st = lpm_loss_fusion(&terms, lw, a, b, f, f, D, H, W, df, dd);
        if (!st) st = lpm_loss_recon(&terms, a, b, f, D, H, W, df);
        if (r >= 0) t[r] = lpm_seconds() - t0;
    }
    if (!st) *median_s = bench_median(t, reps);
    free(f), free(df), free(dd);
    return st;
}

#endif
