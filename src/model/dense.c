/* Dense module: y0 = lrelu(conv0(in)), y1 = lrelu(conv1(cat(y0, in))), output [y1, y0, in].
 * In the (R,Q,24) feature image: in = channels 16..23, y0 = 8..15, y1 = 0..7, so conv0 reads
 * channels 16..23 and conv1 reads 8..23 (= cat(y0, in) in PyTorch's channel order). */
#include "model.h"
#include "vmath.h"

#include <string.h>

enum { C = LPM_C, CO = 8, CI_MAX = 16 };

static const float slope = 0.01f;

static float lrelu(float a) { return a > 0 ? a : slope * a; }

/* One output pixel with the border checks (the first and last column, and what the
 * blocks below leave over). */
static inline void conv_pixel(float *feat, int out_off, int in_off, int ci,
                              const float (*wt)[CI_MAX][CO], const float *b, int R, int Q,
                              int r, int q) {
    float acc[CO];
    for (int o = 0; o < CO; o++) acc[o] = b[o];
    for (int kh = 0; kh < 3; kh++) {
        int sr = r + kh - 1;
        if (sr < 0 || sr >= R) continue;
        for (int kw = 0; kw < 3; kw++) {
            int sq = q + kw - 1;
            if (sq < 0 || sq >= Q) continue;
            const float *src = feat + ((size_t)sr * Q + sq) * C + in_off;
            const float(*wk)[CO] = wt[kh * 3 + kw];
            for (int i = 0; i < ci; i++) {
                float v = src[i];
                /* vectorise over the 8 outputs (left alone, -O3 picks the i loop
                 * and runs 4x slower) */
#pragma omp simd
                for (int o = 0; o < CO; o++) acc[o] += wk[i][o] * v;
            }
        }
    }
    float *dst = feat + ((size_t)r * Q + q) * C + out_off;
    for (int o = 0; o < CO; o++) dst[o] = lrelu(acc[o]);
}

/* out[r,q,o] = lrelu(b[o] + sum_{i,kh,kw} w[o,i,kh,kw] feat[r+kh-1, q+kw-1, in_off+i]),
 * written to feat channels out_off..out_off+7 (never overlapping the inputs).
 * Interior columns go four pixels at a time: each weight vector is loaded once for four
 * multiply-adds (one load per FMA instead of two). Every output sums its terms in the
 * same order as conv_pixel, so both paths give the same bits. */
LPM_CLONES static void conv_lrelu(float *feat, int out_off, int in_off, int ci, const float *w,
                                  const float *b, int R, int Q) {
    enum { PB = 4 };
    float wt[9][CI_MAX][CO]; /* (kh,kw,i,o) */
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < ci; i++)
            for (int k = 0; k < 9; k++) wt[k][i][o] = w[(o * ci + i) * 9 + k];
    for (int r = 0; r < R; r++) {
        int q = 1;
        conv_pixel(feat, out_off, in_off, ci, wt, b, R, Q, r, 0);
        for (; q + PB <= Q - 1; q += PB) {
            float acc[PB][CO];
            for (int p = 0; p < PB; p++)
                for (int o = 0; o < CO; o++) acc[p][o] = b[o];
            for (int kh = 0; kh < 3; kh++) {
                int sr = r + kh - 1;
                if (sr < 0 || sr >= R) continue;
                for (int kw = 0; kw < 3; kw++) {
                    const float *src = feat + ((size_t)sr * Q + q + kw - 1) * C + in_off;
                    const float(*wk)[CO] = wt[kh * 3 + kw];
                    for (int i = 0; i < ci; i++) {
                        const float v0 = src[i], v1 = src[C + i], v2 = src[2 * C + i],
                                    v3 = src[3 * C + i];
#pragma omp simd
                        for (int o = 0; o < CO; o++) {
                            acc[0][o] += wk[i][o] * v0;
                            acc[1][o] += wk[i][o] * v1;
                            acc[2][o] += wk[i][o] * v2;
                            acc[3][o] += wk[i][o] * v3;
                        }
                    }
                }
            }
            for (int p = 0; p < PB; p++) {
                float *dst = feat + ((size_t)r * Q + q + p) * C + out_off;
                for (int o = 0; o < CO; o++) dst[o] = lrelu(acc[p][o]);
            }
        }
        for (; q < Q; q++) conv_pixel(feat, out_off, in_off, ci, wt, b, R, Q, r, q);
    }
}

void lpm_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q) {
    conv_lrelu(feat, 8, 16, 8, p->w[0], p->b[0], R, Q);
    conv_lrelu(feat, 0, 8, 16, p->w[1], p->b[1], R, Q);
}

/* gk[i][o] = sum over n pixels of src[i] g[o] (one tap of one image row). With ci a
 * constant the ci x 8 sums stay in registers for the whole row. */
LPM_INLINE void wgrad_tap(float (*gk)[CO], const float *g, const float *src, int n, int ci) {
    float acc[CI_MAX][CO] = {{0}};
    for (int q = 0; q < n; q++, g += C, src += C)
        for (int i = 0; i < ci; i++) {
            const float v = src[i];
#pragma omp simd
            for (int o = 0; o < CO; o++) acc[i][o] += v * g[o];
        }
    for (int i = 0; i < ci; i++)
        for (int o = 0; o < CO; o++) gk[i][o] = acc[i][o];
}

/* Backward of conv_lrelu: dfeat channels out_off.. hold the gradient w.r.t. the activation
 * output (turned in place into the pre-activation gradient); adds the input gradient into
 * dfeat channels in_off..in_off+ci-1 and the parameter gradients into dw, db. */
LPM_CLONES static void conv_lrelu_backward(float *dfeat, float *dw, float *db, const float *feat,
                                int out_off, int in_off, int ci, const float *w, int R,
                                int Q) {
    size_t n = (size_t)R * Q;
    /* lrelu' from the output: out > 0 exactly where the pre-activation is > 0 */
    for (size_t v = 0; v < n; v++) {
        float *g = dfeat + v * C + out_off;
        const float *y = feat + v * C + out_off;
        for (int o = 0; o < CO; o++)
            if (!(y[o] > 0)) g[o] *= slope;
    }

    /* Weight sums: float over one image row (at most a few hundred terms), rows added in
     * double, so the inner loop stays in float vectors without conversions. */
    double gw[9][CI_MAX][CO], gb[CO];
    memset(gw, 0, sizeof gw);
    memset(gb, 0, sizeof gb);
    float wt[9][CO][CI_MAX]; /* (kh,kw,o,i) for the input gradient */
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < ci; i++)
            for (int k = 0; k < 9; k++) wt[k][o][i] = w[(o * ci + i) * 9 + k];

    for (int r = 0; r < R; r++) {
        float rw[9][CI_MAX][CO], rb[CO] = {0};
        for (int q = 0; q < Q; q++) {
            const float *g = dfeat + ((size_t)r * Q + q) * C + out_off;
            for (int o = 0; o < CO; o++) rb[o] += g[o];
        }
        for (int kh = 0; kh < 3; kh++) {
            int sr = r + kh - 1;
            for (int kw = 0; kw < 3; kw++) {
                float(*gk)[CO] = rw[kh * 3 + kw];
                if (sr < 0 || sr >= R) {
                    memset(gk, 0, sizeof rw[0]);
                    continue;
                }
                /* pixels q whose tap column q + kw - 1 lies inside the image */
                const int q0 = kw == 0, q1 = kw == 2 ? Q - 1 : Q;
                const float *g = dfeat + ((size_t)r * Q + q0) * C + out_off;
                const float *src = feat + ((size_t)sr * Q + q0 + kw - 1) * C + in_off;
                if (ci == 8) wgrad_tap(gk, g, src, q1 - q0, 8);
                else wgrad_tap(gk, g, src, q1 - q0, CI_MAX);
            }
        }
        for (int o = 0; o < CO; o++) gb[o] += rb[o];
        for (int k = 0; k < 9; k++)
            for (int i = 0; i < ci; i++)
                for (int o = 0; o < CO; o++) gw[k][i][o] += rw[k][i][o];
    }

    /* Input gradient gathered per input pixel: din[r,q,i] = sum w[o,i,kh,kw] g[r-kh+1,q-kw+1,o].
     * The gradient channels read (out_off..) and written (in_off..) never overlap. */
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) {
            float acc[CI_MAX] = {0};
            for (int kh = 0; kh < 3; kh++) {
                int sr = r - kh + 1;
                if (sr < 0 || sr >= R) continue;
                for (int kw = 0; kw < 3; kw++) {
                    int sq = q - kw + 1;
                    if (sq < 0 || sq >= Q) continue;
                    const float *g = dfeat + ((size_t)sr * Q + sq) * C + out_off;
                    const float(*wk)[CI_MAX] = wt[kh * 3 + kw];
                    for (int o = 0; o < CO; o++) {
                        float go = g[o];
#pragma omp simd
                        for (int i = 0; i < ci; i++) acc[i] += wk[o][i] * go;
                    }
                }
            }
            float *dst = dfeat + ((size_t)r * Q + q) * C + in_off;
            for (int i = 0; i < ci; i++) dst[i] += acc[i];
        }

    for (int o = 0; o < CO; o++) {
        db[o] += (float)gb[o];
        for (int i = 0; i < ci; i++)
            for (int k = 0; k < 9; k++) dw[(o * ci + i) * 9 + k] += (float)gw[k][i][o];
    }
}

void lpm_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                        const lpm_dense_params *p, int R, int Q) {
    /* y1 = lrelu(conv1(cat(y0, in))): its input gradient adds into the y0 and in parts */
    conv_lrelu_backward(dfeat, grad->w[1], grad->b[1], feat, 0, 8, 16, p->w[1], R, Q);
    conv_lrelu_backward(dfeat, grad->w[0], grad->b[0], feat, 8, 16, 8, p->w[0], R, Q);
}
