/* LayerNorm over the channels of each row: nn.LayerNorm(C, eps=1e-5), biased variance. */
#include "model.h"
#include "../core/vmath.h"

#include <math.h>
#include <string.h>

#define LN_EPS 1e-5

/* Statistics of a block of up to 16 rows of C <= 32 channels: ms[j] = mean of
 * x - x[0] (float statistics of each row shifted by its first element: the rounding
 * errors then scale with the row's spread, not with its mean, where a row with a large
 * mean and a small spread loses ~1e-5 of the output in a plain float mean), s[j] the
 * reciprocal standard deviation. Two passes (the variance of x - mean avoids the
 * cancellation of E[x^2] - mean^2), each one batched reduction of the 16 rows. */
LPM_INLINE void ln_stats16(float *ms, float *s, const float *xb, int nb, int C, int wide) {
    _Alignas(64) float terms[16][32];
    memset(terms, 0, sizeof terms);
    for (int j = 0; j < nb; j++) {
        const float *x = xb + (int64_t)j * C, x0 = x[0];
#pragma omp simd
        for (int c = 0; c < C; c++) terms[j][c] = x[c] - x0;
    }
    lpm_hsum16(ms, (const float(*)[32])terms, wide);
    for (int j = 0; j < 16; j++) ms[j] /= (float)C;
    for (int j = 0; j < nb; j++) {
        const float m = ms[j];
#pragma omp simd
        for (int c = 0; c < C; c++) terms[j][c] = (terms[j][c] - m) * (terms[j][c] - m);
    }
    lpm_hsum16(s, (const float(*)[32])terms, wide);
    for (int j = 0; j < 16; j++) s[j] = 1.0f / sqrtf(s[j] / (float)C + (float)LN_EPS);
}

/* ln_stats16 for the network's 24 channels: each row's 32 terms (8 zeros after the 24) are
 * computed in registers and stored as the two vectors lpm_hsum16x32 reads. Written as 24
 * floats over a zeroed row instead, every row's second read waited for two stores to reach
 * the cache (a store-forwarding stall per row and pass). The same formulas as ln_stats16;
 * a sum of squares can round differently (GCC contracted ln_stats16's squares of channels
 * 16..23 into the reduction's first add): 8 of 256 random rows' rstd moved by 2 ulp. */
LPM_INLINE void ln_stats24_w16(float *ms, float *s, const float *xb, int nb) {
    enum { C24 = 24 };
    _Alignas(64) float terms[16][32];
    for (int j = 0; j < 16; j++) {
        lpm_v16 lo = {0};
        lpm_v8 hi = {0};
        if (j < nb) {
            const float *x = xb + (int64_t)j * C24, x0 = x[0];
            lo = LPM_LOAD16(x) - x0;
            hi = (lpm_v8)LPM_LOAD8(x + 16) - x0;
        }
        LPM_STORE_ROW32(terms[j], lo, hi);
    }
    lpm_hsum16x32(ms, (const float(*)[32])terms);
    for (int j = 0; j < 16; j++) ms[j] /= (float)C24;
    for (int j = 0; j < 16; j++) {
        lpm_v16 lo = {0};
        lpm_v8 hi = {0};
        if (j < nb) {
            const float *x = xb + (int64_t)j * C24, x0 = x[0], m = ms[j];
            lo = (LPM_LOAD16(x) - x0) - m;
            hi = ((lpm_v8)LPM_LOAD8(x + 16) - x0) - m;
            lo = lo * lo;
            hi = hi * hi;
        }
        LPM_STORE_ROW32(terms[j], lo, hi);
    }
    lpm_hsum16x32(s, (const float(*)[32])terms);
    for (int j = 0; j < 16; j++) s[j] = 1.0f / sqrtf(s[j] / (float)C24 + (float)LN_EPS);
}

/* ln_stats24 in 8-lane vectors (three a row), for CPUs without AVX-512: the same
 * formulas, each 8 rows' sums one lpm_hsum8 (its additions in another order: a row's mean
 * or rstd can differ from the 16-lane version's in the last bit). */
LPM_INLINE void ln_stats24_w8(float *ms, float *s, const float *xb, int nb) {
    enum { C24 = 24 };
    _Alignas(32) float terms[16][C24];
    for (int j = 0; j < 16; j++) {
        lpm_v8 v[3] = {{0}, {0}, {0}};
        if (j < nb) {
            const float *x = xb + (int64_t)j * C24, x0 = x[0];
            LPM_UNROLL for (int k = 0; k < 3; k++) v[k] = (lpm_v8)LPM_LOAD8(x + 8 * k) - x0;
        }
        LPM_UNROLL for (int k = 0; k < 3; k++) LPM_STORE8(&terms[j][8 * k], v[k]);
    }
    lpm_hsum8(ms, terms[0], C24, 3);
    lpm_hsum8(ms + 8, terms[8], C24, 3);
    for (int j = 0; j < 16; j++) ms[j] /= (float)C24;
    for (int j = 0; j < 16; j++) {
        lpm_v8 v[3] = {{0}, {0}, {0}};
        if (j < nb) {
            const float *x = xb + (int64_t)j * C24, x0 = x[0], m = ms[j];
            LPM_UNROLL for (int k = 0; k < 3; k++) {
                v[k] = ((lpm_v8)LPM_LOAD8(x + 8 * k) - x0) - m;
                v[k] = v[k] * v[k];
            }
        }
        LPM_UNROLL for (int k = 0; k < 3; k++) LPM_STORE8(&terms[j][8 * k], v[k]);
    }
    lpm_hsum8(s, terms[0], C24, 3);
    lpm_hsum8(s + 8, terms[8], C24, 3);
    for (int j = 0; j < 16; j++) s[j] = 1.0f / sqrtf(s[j] / (float)C24 + (float)LN_EPS);
}

/* The same statistics for any C, one row at a time. */
LPM_INLINE void ln_stats_rows(float *ms, float *s, const float *xb, int nb, int C) {
    for (int j = 0; j < nb; j++) {
        const float *x = xb + (int64_t)j * C, x0 = x[0];
        float m = 0.0f, v = 0.0f;
        for (int c = 0; c < C; c++) m += x[c] - x0;
        m /= (float)C;
        for (int c = 0; c < C; c++) v += ((x[c] - x0) - m) * ((x[c] - x0) - m);
        ms[j] = m;
        s[j] = 1.0f / sqrtf(v / (float)C + (float)LN_EPS);
    }
}

LPM_INLINE void ln_rows(float *out, float *mean, float *rstd, const float *in, const float *w,
                        const float *b, int64_t n, int C, int wide) {
    enum { RB = 16 };
    for (int64_t r0 = 0; r0 < n; r0 += RB) {
        const int nb = n - r0 < RB ? (int)(n - r0) : RB;
        const float *xb = in + r0 * C;
        float ms[RB], s[RB];
        if (C == LPM_C && wide) ln_stats24_w16(ms, s, xb, nb);
        else if (C == LPM_C) ln_stats24_w8(ms, s, xb, nb);
        else if (C <= 32) ln_stats16(ms, s, xb, nb, C, wide);
        else ln_stats_rows(ms, s, xb, nb, C);
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

/* Each entry point at both widths (vmath.h: 16-lane reductions with AVX-512, 8-lane ones
 * otherwise), and the one the CPU runs. */
#define LN_FORWARD(name, wide, ATTR)                                                       \
    ATTR static void name(float *out, float *mean, float *rstd, const float *in,           \
                          const float *w, const float *b, int64_t n, int C) {              \
        /* the network's 24 channels as a constant: whole vectors, unrolled reductions */  \
        if (C == LPM_C) ln_rows(out, mean, rstd, in, w, b, n, LPM_C, wide);                \
        else ln_rows(out, mean, rstd, in, w, b, n, C, wide);                               \
    }
LN_FORWARD(ln_forward_w16, 1, LPM_WIDE)
LN_FORWARD(ln_forward_w8, 0, LPM_NARROW)

void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *w, const float *b, int64_t n, int C) {
    if (lpm_cpu_wide())
        ln_forward_w16(out, mean, rstd, in, w, b, n, C);
    else
        ln_forward_w8(out, mean, rstd, in, w, b, n, C);
}

/* dx += s (g w - mean(g w) - xhat mean(g w xhat)); dw += g xhat; db += g. Rows of C <= 32
 * in blocks of 16, the two row sums of each block as batched reductions. */
LPM_INLINE void ln_backward16(float *din, float *dw, float *db, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *w, int64_t r0, int nb, int C, int wide) {
    _Alignas(64) float gw_t[16][32], gwx_t[16][32];
    float sum_gw[16], sum_gwx[16];
    memset(gw_t, 0, sizeof gw_t);
    memset(gwx_t, 0, sizeof gwx_t);
    for (int j = 0; j < nb; j++) {
        const float *x = in + (r0 + j) * C, *g = dout + (r0 + j) * C;
        const float m = mean[r0 + j], s = rstd[r0 + j];
#pragma omp simd
        for (int c = 0; c < C; c++) {
            const float xhat = (x[c] - m) * s, gw = g[c] * w[c];
            gw_t[j][c] = gw;
            gwx_t[j][c] = gw * xhat;
            dw[c] += g[c] * xhat;
            db[c] += g[c];
        }
    }
    lpm_hsum16(sum_gw, (const float(*)[32])gw_t, wide);
    lpm_hsum16(sum_gwx, (const float(*)[32])gwx_t, wide);
    for (int j = 0; j < nb; j++) {
        const float *x = in + (r0 + j) * C, *g = dout + (r0 + j) * C;
        const float m = mean[r0 + j], s = rstd[r0 + j];
        const float mean_gw = sum_gw[j] / (float)C, mean_gwx = sum_gwx[j] / (float)C;
        float *dx = din + (r0 + j) * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            const float xhat = (x[c] - m) * s;
            dx[c] += s * (g[c] * w[c] - mean_gw - xhat * mean_gwx);
        }
    }
}

LPM_INLINE void ln_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C, int wide) {
    if (C <= 32) {
        /* the network's 24 channels as a constant: whole vectors, unrolled loops */
        for (int64_t r0 = 0; r0 < n; r0 += 16) {
            const int nb = n - r0 < 16 ? (int)(n - r0) : 16;
            if (C == LPM_C) ln_backward16(din, dw, db, dout, in, mean, rstd, w, r0, nb, LPM_C, wide);
            else ln_backward16(din, dw, db, dout, in, mean, rstd, w, r0, nb, C, wide);
        }
        return;
    }
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

LPM_WIDE static void ln_backward_w16(float *din, float *dw, float *db, const float *dout,
                                     const float *in, const float *mean, const float *rstd,
                                     const float *w, int64_t n, int C) {
    ln_backward(din, dw, db, dout, in, mean, rstd, w, n, C, 1);
}

LPM_NARROW static void ln_backward_w8(float *din, float *dw, float *db, const float *dout,
                                      const float *in, const float *mean, const float *rstd,
                                      const float *w, int64_t n, int C) {
    ln_backward(din, dw, db, dout, in, mean, rstd, w, n, C, 0);
}

void lpm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C) {
    if (lpm_cpu_wide())
        ln_backward_w16(din, dw, db, dout, in, mean, rstd, w, n, C);
    else
        ln_backward_w8(din, dw, db, dout, in, mean, rstd, w, n, C);
}
