/* LayerNorm over the channels of each row: nn.LayerNorm(C, eps=1e-5), biased variance. */
#include "model.h"
#include "vmath.h"

#include <math.h>

#define LN_EPS 1e-5

LPM_CLONES void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *w, const float *b, int64_t n, int C) {
    for (int64_t r = 0; r < n; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        /* Statistics in double: on a row with a large mean and a small spread, float
         * rounding of the mean alone, times rstd, costs ~1e-5 in the output. */
        double m = 0.0;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        /* two passes: var of (x - m) avoids the cancellation of E[x^2] - m^2 */
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        v /= C;
        double s = 1.0 / sqrt(v + LN_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (float)((x[c] - m) * s) * w[c] + b[c];
        if (mean) mean[r] = (float)m;
        if (rstd) rstd[r] = (float)s;
    }
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
