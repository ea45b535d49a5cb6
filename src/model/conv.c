/* Conv_in: Conv3d 2 -> 8, kernel 3x3x3, zero padding 1, bias (PyTorch cross-correlation):
 * X[d,h,w,o] = bias[o] + sum_{i,kd,kh,kw} w[o,i,kd,kh,kw] in_i[d+kd-1, h+kh-1, w+kw-1]. */
#include "model.h"
#include "../core/vmath.h"

#include <string.h>

enum { CO = LPM_C_IN, CI = 2, K3 = 27 };

/* The (kd, kh) taps of output row (d, h) that fall inside the volume, in the order kd, kh:
 * each one's first kernel index (kd * 3 + kh) * 3 and the offset of its source row. The
 * forward and the weight gradient both walk them, then kw along the row. */
typedef struct {
    int n;
    int k[9];
    int64_t row[9];
} row_taps;

static row_taps taps_of_row(int64_t d, int64_t h, int64_t D, int64_t H, int64_t W) {
    row_taps t = {0};
    for (int kd = 0; kd < 3; kd++)
        for (int kh = 0; kh < 3; kh++) {
            const int64_t sd = d + kd - 1, sh = h + kh - 1;
            if (sd < 0 || sd >= D || sh < 0 || sh >= H) continue;
            t.k[t.n] = (kd * 3 + kh) * 3;
            t.row[t.n++] = (sd * H + sh) * W;
        }
    return t;
}

/* Voxel x of an output row: the 8 outputs are one vector, summed over the taps that exist
 * (the row's ends). */
LPM_INLINE void conv_in_voxel(float *X, const float *const *in, const float (*wt)[CI][CO],
                              const float *bias, const row_taps *rt, int64_t x, int64_t W) {
    float acc[CO];
    for (int o = 0; o < CO; o++) acc[o] = bias[o];
    for (int t = 0; t < rt->n; t++)
        for (int kw = 0; kw < 3; kw++) {
            const int64_t sw = x + kw - 1;
            if (sw < 0 || sw >= W) continue;
            const float(*wk)[CO] = wt[rt->k[t] + kw];
            for (int i = 0; i < CI; i++) {
                const float v = in[i][rt->row[t] + sw];
#pragma omp simd
                for (int o = 0; o < CO; o++) acc[o] += wk[i][o] * v;
            }
        }
    memcpy(X + x * CO, acc, sizeof acc);
}

/* Voxels x .. x+15 of a row, all inside it in w: 16 voxels to a vector and one
 * accumulator per output, so each tap's 16 inputs are one load for 8 independent
 * multiply-adds (one chain of 54 per voxel before); the block is transposed to (x, o) at
 * the end. Each output sums the same taps in the same order as conv_in_voxel. */
LPM_INLINE void conv_in_block(float *X, const float *const *in, const float (*wt)[CI][CO],
                              const float *bias, const row_taps *rt, int64_t x) {
    lpm_v16 acc[CO];
#pragma GCC unroll 8
    for (int o = 0; o < CO; o++) acc[o] = (lpm_v16){0} + bias[o];
    for (int t = 0; t < rt->n; t++)
        for (int kw = 0; kw < 3; kw++) {
            const float(*wk)[CO] = wt[rt->k[t] + kw];
            for (int i = 0; i < CI; i++) {
                const lpm_v16 v = LPM_LOAD16(in[i] + rt->row[t] + x + kw - 1);
#pragma GCC unroll 8
                for (int o = 0; o < CO; o++) acc[o] += wk[i][o] * v;
            }
        }
    float t[CO][16];
#pragma GCC unroll 8
    for (int o = 0; o < CO; o++) LPM_STORE16(t[o], acc[o]);
    for (int j = 0; j < 16; j++)
        for (int o = 0; o < CO; o++) X[(x + j) * CO + o] = t[o][j];
}

/* One output row (d, h): the two end voxels and any remainder one at a time, the rest in
 * blocks of 16. */
static void conv_in_row(float *X, const float *const *in, const float (*wt)[CI][CO],
                        const float *bias, int64_t d, int64_t h, int64_t D,
                        int64_t H, int64_t W) {
    const row_taps rt = taps_of_row(d, h, D, H, W);
    int64_t x = 0;
    conv_in_voxel(X, in, wt, bias, &rt, x++, W);
    for (; x + 16 < W; x += 16) conv_in_block(X, in, wt, bias, &rt, x);
    for (; x < W; x++) conv_in_voxel(X, in, wt, bias, &rt, x, W);
}

void lpm_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                         const float *bias, int64_t D, int64_t H, int64_t W) {
    /* (kd,kh,kw,i,o): the 8 outputs of one tap and input are contiguous */
    float wt[K3][CI][CO];
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < CI; i++)
            for (int k = 0; k < K3; k++) wt[k][i][o] = w[(o * CI + i) * K3 + k];
    const float *in[CI] = {a, b};

#pragma omp parallel for schedule(static)
    for (int64_t dh = 0; dh < D * H; dh++)
        conv_in_row(X + dh * W * CO, in, (const float(*)[CI][CO])wt, bias, dh / H, dh % H, D, H,
                    W);
}

/* Row (d, h)'s terms of the weight and bias gradients, added to g (double):
 * g[(k*CI + i)*CO + o] for the weights, g[K3*CI*CO + o] for the bias. */
static void wgrad_row(double *g, const float *dX, const float *const *in, int64_t d,
                      int64_t h, int64_t D, int64_t H, int64_t W) {
    const row_taps rt = taps_of_row(d, h, D, H, W);
    for (int64_t x = 0; x < W; x++) {
        const float *gx = dX + ((d * H + h) * W + x) * CO;
        for (int o = 0; o < CO; o++) g[K3 * CI * CO + o] += gx[o];
        for (int t = 0; t < rt.n; t++)
            for (int kw = 0; kw < 3; kw++) {
                const int64_t sw = x + kw - 1;
                if (sw < 0 || sw >= W) continue;
                for (int i = 0; i < CI; i++) {
                    const double v = in[i][rt.row[t] + sw];
                    double *gk = g + ((rt.k[t] + kw) * CI + i) * CO;
#pragma omp simd
                    for (int o = 0; o < CO; o++) gk[o] += gx[o] * v;
                }
            }
    }
}

void lpm_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                          const float *b, int64_t D, int64_t H, int64_t W) {
    const float *in[CI] = {a, b};
    int nt = lpm_get_threads();
    /* Per-thread double sums over a static schedule, reduced in thread order: the result
     * depends only on the thread count, and millions of terms keep float accuracy. */
    enum { NG = K3 * CI * CO + CO };
    double *acc = lpm_calloc((size_t)nt * NG, sizeof *acc);
    double local_acc[NG];
    if (!acc) nt = 1; /* out of memory: fall back to one thread and a stack buffer */
    if (!acc) memset(local_acc, 0, sizeof local_acc);

#pragma omp parallel num_threads(nt)
    {
        double *g = acc ? acc + (size_t)lpm_thread_id() * NG : local_acc;
        /* g[(k*CI + i)*CO + o] for the weights, g[K3*CI*CO + o] for the bias */
#pragma omp for schedule(static)
        for (int64_t dh = 0; dh < D * H; dh++) wgrad_row(g, dX, in, dh / H, dh % H, D, H, W);
    }

    for (int t = 0; t < nt; t++) {
        const double *g = acc ? acc + (size_t)t * NG : local_acc;
        for (int o = 0; o < CO; o++) {
            for (int i = 0; i < CI; i++)
                for (int k = 0; k < K3; k++)
                    dw[(o * CI + i) * K3 + k] += (float)g[(k * CI + i) * CO + o];
            dbias[o] += (float)g[K3 * CI * CO + o];
        }
    }
    free(acc);
}
