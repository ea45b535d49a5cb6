/* LayerNorm over the channels of each row: nn.LayerNorm(C, eps=1e-5), biased variance. */
#include "model.h"
#include "vmath.h"

#include <math.h>

#define LN_EPS 1e-5

LPM_INLINE void ln_rows(float *out, float *mean, float *rstd, const float *in, const float *w,
                        const float *b, int64_t n, int C) {
    /* Rows in blocks, each statistic for the whole block before the next: the rows'
     * reductions and the square root are independent work the CPU overlaps, instead of
     * one row's chain of dependent reductions at a time. */
    enum { RB = 16 };
    for (int64_t r0 = 0; r0 < n; r0 += RB) {
        const int nb = n - r0 < RB ? (int)(n - r0) : RB;
        const float *xb = in + r0 * C;
        float ms[RB], var[RB], s[RB];
        /* Float statistics of each row shifted by its first element: the rounding errors
         * then scale with the row's spread, not with its mean (a row with a large mean and
         * a small spread is where a plain float mean loses ~1e-5 of the output). */
        for (int j = 0; j < nb; j++) {
            const float *x = xb + (int64_t)j * C, x0 = x[0];
            float m = 0.0f;
#pragma omp simd reduction(+ : m)
            for (int c = 0; c < C; c++) m += x[c] - x0;
            ms[j] = m / (float)C;
        }
        /* two passes: var of (x - m) avoids the cancellation of E[x^2] - m^2 */
        for (int j = 0; j < nb; j++) {
            const float *x = xb + (int64_t)j * C, x0 = x[0], m = ms[j];
            float v = 0.0f;
#pragma omp simd reduction(+ : v)
            for (int c = 0; c < C; c++) {
                const float d = (x[c] - x0) - m;
                v += d * d;
            }
            var[j] = v / (float)C;
        }
#pragma omp simd
        for (int j = 0; j < nb; j++) s[j] = 1.0f / sqrtf(var[j] + (float)LN_EPS);
        for (int j = 0; j < nb; j++) {
            const float *x = xb + (int64_t)j * C, x0 = x[0], m = ms[j], sj = s[j];
            float *y = out + (r0 + j) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) y[c] = ((x[c] - x0) - m) * sj * w[c] + b[c];
            if (mean) mean[r0 + j] = x0 + m;
            if (rstd) rstd[r0 + j] = sj;
        }
    }
}

LPM_CLONES void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                      const float *w, const float *b, int64_t n, int C) {
    /* the network's 24 channels as a constant: whole vectors, unrolled reductions */
    if (C == LPM_C) ln_rows(out, mean, rstd, in, w, b, n, LPM_C);
    else ln_rows(out, mean, rstd, in, w, b, n, C);
}

LPM_CLONES void lpm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C) {
    for (int64_t r = 0; r < n; r++) {
        const float *x = in + r * C;
        const float *g = dout + r * C;
        float *dx = din + r * C;
        float m = mean[r], s = rstd[r];
        /* dx = s (g w - mean(g w) - xhat mean(g w xhat)) */
        float sum_gw = 0.0f, sum_gwx = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            float gw = g[c] * w[c];
            sum_gw += gw;
            sum_gwx += gw * xhat;
            dw[c] += g[c] * xhat;
            db[c] += g[c];
        }
        float mean_gw = sum_gw / (float)C, mean_gwx = sum_gwx / (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (g[c] * w[c] - mean_gw - xhat * mean_gwx);
        }
    }
}
