/* CfC head, per voxel (all 1x1x1 convolutions):
 *   a1 = W_ff1 f, a2 = W_ff2 f, t = sigmoid(W_time_a f + W_time_b f), m = a1 (1 - t) + t a2,
 *   out = tanh(W_fc m + b)/2 + 0.5, base = tanh(W_fc a1 + b)/2 + 0.5, detail likewise with a2. */
#include "model.h"
#include "../core/vmath.h"

#include <string.h>

enum { C = LPM_C, NOUT_MAX = 2 };

enum { VB = 32, NV = VB / 16 };   /* voxels per block, in vectors of 16 */

/* One voxel's head values (the backward's per-voxel form). */
typedef struct {
    float a1[C], a2[C], t[C], m[C];
} cfc_state;

/* A block's values with the voxels innermost (c, j): the four 1x1 convs as one (96, 24)
 * matrix times the block's inputs, 16 voxels to a vector, so every multiply-add is a whole
 * vector and fc_out reads m, a1, a2 as they are. Rows past a short block hold stale
 * values that are computed on and never stored. */
typedef struct {
    float ft[C][VB];        /* the inputs, transposed */
    float cv[4 * C][VB];    /* the four convs' outputs: rows A1, A2, TA, TB on */
    float t[C][VB], mt[C][VB];
} cfc_block;

enum { A1 = 0, A2 = C, TA = 2 * C, TB = 3 * C };   /* ff1, ff2, time_a, time_b in cv */

/* The four convs' weights stacked in PyTorch's (out, in) layout: rows ff1 | ff2 | time_a |
 * time_b, the order of cfc_block's output arrays. */
typedef struct {
    float w[4 * C][C];
} cfc_wt;

static void stack_weights(cfc_wt *wt, const lpm_cfc_params *p) {
    const float *mats[4] = {p->ff1, p->ff2, p->time_a, p->time_b};
    for (int k = 0; k < 4; k++) memcpy(wt->w[k * C], mats[k], sizeof(float) * C * C);
}

/* OG outputs of the stacked convs for the whole block, their accumulators in registers
 * while the 24 inputs stream past; each output sums w[o][i] f[i] in the order i = 0..23,
 * as PyTorch's 1x1 conv does. wide (a constant once inlined): OG x NV 16-lane
 * accumulators (24 of AVX-512's 32 registers); else 8-lane ones, half the outputs over half
 * the voxels at a time (12 of AVX2's 16), the same sums. */
enum { OG = 12, OG8 = OG / 2, NV8 = 2 };
LPM_INLINE void block_convs(float (*out)[VB], const float (*w)[C], const float (*ft)[VB],
                            int wide) {
    if (wide) {
        lpm_v16 acc[OG][NV];
        LPM_UNROLL for (int o = 0; o < OG; o++)
            LPM_UNROLL for (int v = 0; v < NV; v++) acc[o][v] = (lpm_v16){0};
        for (int i = 0; i < C; i++) {
            lpm_v16 x[NV];
            LPM_UNROLL for (int v = 0; v < NV; v++) x[v] = LPM_LOAD16(&ft[i][16 * v]);
            LPM_UNROLL for (int o = 0; o < OG; o++)
                LPM_UNROLL for (int v = 0; v < NV; v++) acc[o][v] += w[o][i] * x[v];
        }
        LPM_UNROLL for (int o = 0; o < OG; o++)
            LPM_UNROLL for (int v = 0; v < NV; v++) LPM_STORE16(&out[o][16 * v], acc[o][v]);
        return;
    }
    _Static_assert(VB == 2 * 8 * NV8 && OG == 2 * OG8, "two halves of each");
    for (int o0 = 0; o0 < OG; o0 += OG8)
        for (int j0 = 0; j0 < VB; j0 += 8 * NV8) {
            lpm_v8 acc[OG8][NV8];
            LPM_UNROLL for (int o = 0; o < OG8; o++)
                LPM_UNROLL for (int v = 0; v < NV8; v++) acc[o][v] = (lpm_v8){0};
            for (int i = 0; i < C; i++) {
                lpm_v8 x[NV8];
                LPM_UNROLL for (int v = 0; v < NV8; v++) x[v] = LPM_LOAD8(&ft[i][j0 + 8 * v]);
                LPM_UNROLL for (int o = 0; o < OG8; o++)
                    LPM_UNROLL for (int v = 0; v < NV8; v++) acc[o][v] += w[o0 + o][i] * x[v];
            }
            LPM_UNROLL for (int o = 0; o < OG8; o++)
                LPM_UNROLL for (int v = 0; v < NV8; v++)
                    LPM_STORE8(&out[o0 + o][j0 + 8 * v], acc[o][v]);
        }
}

LPM_INLINE void block_states(cfc_block *b, const float *f, const cfc_wt *wt, int nb, int wide) {
    for (int j = 0; j < nb; j++)
        for (int i = 0; i < C; i++) b->ft[i][j] = f[(int64_t)j * C + i];
    _Static_assert(4 * C % OG == 0, "whole output groups");
    for (int o = 0; o < 4 * C; o += OG)
        block_convs(b->cv + o, (const float(*)[C])wt->w[o], (const float(*)[VB])b->ft, wide);
    float *t = &b->t[0][0], *m = &b->mt[0][0];
    const float *a1 = b->cv[A1], *a2 = b->cv[A2], *ta = b->cv[TA], *tb = b->cv[TB];
#pragma omp simd
    for (int e = 0; e < C * VB; e++) {
        /* t_interp = torch.sigmoid(time_a(x) + time_b(x)) */
        t[e] = lpm_vsigmoid(ta[e] + tb[e]);
        /* ff1 * (1.0 - t_interp) + t_interp * ff2 */
        m[e] = a1[e] * (1.0f - t[e]) + t[e] * a2[e];
    }
}

/* s[j] = sigmoid(2 fc(x_j)) = tanh(fc(x_j))/2 + 0.5 for a block's voxels, from x transposed
 * to (i, j): vectorised over the voxels, each fc summing w[i] x[i] in the order
 * i = 0..23, then + b. tanh(z)/2 + 0.5 as sigmoid(2z) is the same function (within 1e-7 of
 * tanhf's result; tanhf itself is a libm call per value). */
LPM_INLINE void fc_out(float *s, const float *w, float b, const float (*xt)[VB], int nb) {
    float acc[VB] = {0};
    for (int i = 0; i < C; i++) {
        const float wi = w[i];
#pragma omp simd
        for (int j = 0; j < VB; j++) acc[j] += wi * xt[i][j];
    }
#pragma omp simd
    for (int j = 0; j < nb; j++) s[j] = lpm_vsigmoid(2.0f * (acc[j] + b));
}

/* Voxels go in blocks of 32: the stacked 1x1 convs, then fc and the output maps, each as
 * vector loops over the block's voxels. */
LPM_INLINE void cfc_forward(float *out, float *base, float *detail, const float *f,
                            const lpm_cfc_params *p, int64_t n, int wide) {
    cfc_wt wt;
    stack_weights(&wt, p);
    cfc_block b;
    memset(&b, 0, sizeof b);
    for (int64_t v0 = 0; v0 < n; v0 += VB) {
        const int nb = n - v0 < VB ? (int)(n - v0) : VB;
        block_states(&b, f + v0 * C, &wt, nb, wide);
        for (int k = 0; k < p->nout; k++) {
            /* torch.tanh(fc(x)) / 2 + 0.5 */
            const float *w = p->fc_w + k * C;
            fc_out(out + k * n + v0, w, p->fc_b[k], (const float(*)[VB])b.mt, nb);
            if (base) fc_out(base + k * n + v0, w, p->fc_b[k], (const float(*)[VB])(b.cv + A1), nb);
            if (detail)
                fc_out(detail + k * n + v0, w, p->fc_b[k], (const float(*)[VB])(b.cv + A2), nb);
        }
    }
}

/* The forward at each width (block_convs) and the one the CPU runs (vmath.h: the 16-lane
 * form also on baseline x86-64). */
LPM_WIDE_OR_BASE static void cfc_forward_w16(float *out, float *base, float *detail,
                                             const float *f, const lpm_cfc_params *p,
                                             int64_t n) {
    cfc_forward(out, base, detail, f, p, n, 1);
}

LPM_NARROW static void cfc_forward_w8(float *out, float *base, float *detail, const float *f,
                                      const lpm_cfc_params *p, int64_t n) {
    cfc_forward(out, base, detail, f, p, n, 0);
}

void lpm_cfc_forward(float *out, float *base, float *detail, const float *f,
                     const lpm_cfc_params *p, int64_t n) {
    if (lpm_narrow_kernels())
        cfc_forward_w8(out, base, detail, f, p, n);
    else
        cfc_forward_w16(out, base, detail, f, p, n);
}

/* g[j] = dy[j] d(tanh(z)/2 + 0.5)/dz at z = fc(x_j): (1 - tanh^2)/2 = 2 s (1 - s) with
 * s = sigmoid(2z), the forward's own form; 0 where dy is NULL. */
LPM_INLINE void fc_grad(float *g, const float *dy, const float *w, float b,
                        const float (*xt)[VB], int nb) {
    if (!dy) {
        for (int j = 0; j < nb; j++) g[j] = 0.0f;
        return;
    }
    float s[VB];
    fc_out(s, w, b, xt, nb);
#pragma omp simd
    for (int j = 0; j < nb; j++) g[j] = dy[j] * 2.0f * s[j] * (1.0f - s[j]);
}

/* The CfC backward in blocks of 32 voxels: the forward recomputed, the gradients at fc's
 * outputs as vector loops over the block, then each voxel's gradients. Weight gradients
 * sum in double: millions of voxels keep float accuracy. */
LPM_INLINE void cfc_backward(float *df, lpm_cfc_params *grad, const float *dout,
                             const float *dbase, const float *ddetail, const float *f,
                             const lpm_cfc_params *p, int64_t n, int wide) {
    const int nout = p->nout;
    double g_ff1[C * C], g_ff2[C * C], g_time[C * C], g_fcw[NOUT_MAX * C], g_fcb[NOUT_MAX];
    memset(g_ff1, 0, sizeof g_ff1);
    memset(g_ff2, 0, sizeof g_ff2);
    memset(g_time, 0, sizeof g_time);
    memset(g_fcw, 0, sizeof g_fcw);
    memset(g_fcb, 0, sizeof g_fcb);
    cfc_wt wt;
    stack_weights(&wt, p);
    cfc_block blk;
    memset(&blk, 0, sizeof blk);
    for (int64_t v0 = 0; v0 < n; v0 += VB) {
        const int nb = n - v0 < VB ? (int)(n - v0) : VB;
        block_states(&blk, f + v0 * C, &wt, nb, wide);
        /* gradients at fc's outputs: go (out), gb (base), gd (detail) per voxel */
        float go[NOUT_MAX][VB], gb[NOUT_MAX][VB], gd[NOUT_MAX][VB];
        for (int k = 0; k < nout; k++) {
            const float *w = p->fc_w + k * C, b = p->fc_b[k];
            const int64_t at = k * n + v0;
            fc_grad(go[k], dout + at, w, b, (const float(*)[VB])blk.mt, nb);
            fc_grad(gb[k], dbase ? dbase + at : NULL, w, b, (const float(*)[VB])(blk.cv + A1), nb);
            fc_grad(gd[k], ddetail ? ddetail + at : NULL, w, b, (const float(*)[VB])(blk.cv + A2),
                    nb);
        }
        for (int j = 0; j < nb; j++) {
            cfc_state sv, *s = &sv;
            for (int c = 0; c < C; c++) {
                sv.a1[c] = blk.cv[A1 + c][j], sv.a2[c] = blk.cv[A2 + c][j];
                sv.t[c] = blk.t[c][j], sv.m[c] = blk.mt[c][j];
            }
            const float *fv = f + (v0 + j) * C;
            float dm[C] = {0}, da1[C] = {0}, da2[C] = {0};
            for (int k = 0; k < nout; k++) {
                const float *w = p->fc_w + k * C;
                const float o = go[k][j], bb = gb[k][j], d = gd[k][j];
                g_fcb[k] += (double)o + bb + d;
                for (int c = 0; c < C; c++) {
                    g_fcw[k * C + c] += (double)o * s->m[c] + (double)bb * s->a1[c] +
                                        (double)d * s->a2[c];
                    dm[c] += w[c] * o;
                    da1[c] += w[c] * bb;
                    da2[c] += w[c] * d;
                }
            }
            float dp[C];
#pragma omp simd
            for (int c = 0; c < C; c++) {
                const float t = s->t[c];
                da1[c] += dm[c] * (1 - t);
                da2[c] += dm[c] * t;
                dp[c] = dm[c] * (s->a2[c] - s->a1[c]) * t * (1 - t);
            }
            float *dfv = df + (v0 + j) * C;
            for (int o = 0; o < C; o++) {
                const float *w1 = p->ff1 + o * C, *w2 = p->ff2 + o * C;
                const float *wa = p->time_a + o * C, *wb = p->time_b + o * C;
#pragma omp simd
                for (int i = 0; i < C; i++) {
                    dfv[i] += w1[i] * da1[o] + w2[i] * da2[o] + (wa[i] + wb[i]) * dp[o];
                    const double fi = fv[i];
                    g_ff1[o * C + i] += da1[o] * fi;
                    g_ff2[o * C + i] += da2[o] * fi;
                    g_time[o * C + i] += dp[o] * fi;
                }
            }
        }
    }

    for (int i = 0; i < C * C; i++) {
        grad->ff1[i] += (float)g_ff1[i];
        grad->ff2[i] += (float)g_ff2[i];
        grad->time_a[i] += (float)g_time[i];
        grad->time_b[i] += (float)g_time[i];
    }
    for (int k = 0; k < nout; k++) {
        grad->fc_b[k] += (float)g_fcb[k];
        for (int c = 0; c < C; c++) grad->fc_w[k * C + c] += (float)g_fcw[k * C + c];
    }
}

LPM_WIDE_OR_BASE static void cfc_backward_w16(float *df, lpm_cfc_params *grad,
                                              const float *dout, const float *dbase,
                                              const float *ddetail, const float *f,
                                              const lpm_cfc_params *p, int64_t n) {
    cfc_backward(df, grad, dout, dbase, ddetail, f, p, n, 1);
}

LPM_NARROW static void cfc_backward_w8(float *df, lpm_cfc_params *grad, const float *dout,
                                       const float *dbase, const float *ddetail, const float *f,
                                       const lpm_cfc_params *p, int64_t n) {
    cfc_backward(df, grad, dout, dbase, ddetail, f, p, n, 0);
}

void lpm_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout, const float *dbase,
                      const float *ddetail, const float *f, const lpm_cfc_params *p, int64_t n) {
    if (lpm_narrow_kernels())
        cfc_backward_w8(df, grad, dout, dbase, ddetail, f, p, n);
    else
        cfc_backward_w16(df, grad, dout, dbase, ddetail, f, p, n);
}
