/* Dense module: y0 = lrelu(conv0(in)), y1 = lrelu(conv1(cat(y0, in))), output [y1, y0, in].
 * In the (R,Q,24) feature image: in = channels 16..23, y0 = 8..15, y1 = 0..7, so conv0 reads
 * channels 16..23 and conv1 reads 8..23 (= cat(y0, in) in PyTorch's channel order). */
#include "model.h"
#include "../core/vmath.h"

#include <string.h>

/* L: lanes of one accumulator vector (one AVX-512 register); PB: pixels per block, enough
 * independent accumulators to cover the FMA latency on two FMA ports. */
enum { C = LPM_C, CO = 8, CI_MAX = 16, L = 16, PB = 8 };

static const float slope = 0.01f;

static float lrelu(float a) { return a > 0 ? a : slope * a; }

/* The weights of a 3x3 conv with ni inputs and no = 8 or 16 outputs, arranged for
 * conv_sums. Eight outputs fill half a vector, so one vector then carries two output rows:
 * input rows r and r+1 feed both halves, rows r-1 and r+2 one half each (3/4 of the lanes
 * do useful work, where an 8-lane vector per pixel leaves half of AVX-512 idle). An
 * accumulator vector holds nr = L / no output rows r+rr at lanes rr*no + o, and input row
 * r-1+t meets tap kh = t - rr: wt[t][kw][i][rr*no + o] is that weight, 0 where t - rr is
 * not a tap.
 * w is PyTorch's (co, ci, 3, 3); with flip the conv is the transposed one (the input
 * gradient of w: outputs are w's inputs, taps mirrored). */
static void conv_table(float (*wt)[3][CI_MAX][L], const float *w, int ni, int no, int flip) {
    const int nr = L / no;
    memset(wt, 0, sizeof(float[4][3][CI_MAX][L]));
    for (int t = 0; t < nr + 2; t++)
        for (int rr = 0; rr < nr; rr++) {
            const int kh = t - rr;
            if (kh < 0 || kh > 2) continue;
            for (int kw = 0; kw < 3; kw++)
                for (int i = 0; i < ni; i++)
                    for (int o = 0; o < no; o++)
                        wt[t][kw][i][rr * no + o] =
                            flip ? w[(i * no + o) * 9 + (2 - kh) * 3 + 2 - kw]
                                 : w[(o * ni + i) * 9 + kh * 3 + kw];
        }
}

/* acc[p] += the conv sums of pixel (r.., q+p) for n pixels: input rows r-1 .. r+nr, each
 * tap's ni channels from in_off, rows and columns outside the image skipped (zero
 * padding). Columns are checked for the block as a whole: the n pixels are either one
 * pixel or all interior. Each weight vector is loaded once for n broadcast FMAs. A zero
 * weight half adds 0 * x, which changes nothing for finite x. Every output sums its terms
 * in the order kh, kw, i whatever n is, so blocks and single pixels give the same bits. */
LPM_INLINE void conv_sums(float (*acc)[L], const float *img, int in_off, int ni, int nr,
                          const float (*wt)[3][CI_MAX][L], int R, int Q, int r, int q, int n) {
    for (int t = 0; t < nr + 2; t++) {
        const int sr = r - 1 + t;
        if (sr < 0 || sr >= R) continue;
        for (int kw = 0; kw < 3; kw++) {
            const int sq = q + kw - 1;
            if (sq < 0 || sq + n > Q) continue;
            const float *src = img + ((size_t)sr * Q + sq) * C + in_off;
            const float(*wk)[L] = wt[t][kw];
            for (int i = 0; i < ni; i++)
                for (int p = 0; p < n; p++) {
                    const float x = src[p * C + i];
#pragma omp simd
                    for (int l = 0; l < L; l++) acc[p][l] += wk[i][l] * x;
                }
        }
    }
}

/* Conv of n pixels from (r, q) for the output rows r .. r+L/no-1 that exist: with add the
 * sums are added to img's channels out_off.. (input gradient), else written through lrelu
 * after the bias (forward). */
LPM_INLINE void conv_block(float *img, int out_off, int in_off, int ni, int no,
                           const float (*wt)[3][CI_MAX][L], const float *bias, int add, int R,
                           int Q, int r, int q, int n) {
    const int nr = L / no;
    float acc[PB][L];
    for (int p = 0; p < n; p++)
        for (int l = 0; l < L; l++) acc[p][l] = add ? 0 : bias[l % no];
    conv_sums(acc, img, in_off, ni, nr, wt, R, Q, r, q, n);
    for (int rr = 0; rr < nr && r + rr < R; rr++)
        for (int p = 0; p < n; p++) {
            float *dst = img + ((size_t)(r + rr) * Q + q + p) * C + out_off;
            const float *a = acc[p] + rr * no;
            for (int o = 0; o < no; o++) dst[o] = add ? dst[o] + a[o] : lrelu(a[o]);
        }
}

/* The whole image: row groups of L / no, the first and last column one pixel at a time,
 * the columns between in near-equal blocks of PB or PB - 1 pixels (the sizes compiled
 * as blocks). The channels written never overlap those read. */
LPM_INLINE void conv_image(float *img, int out_off, int in_off, int ni, int no,
                           const float *w, const float *bias, int add, int flip, int R, int Q) {
    float wt[4][3][CI_MAX][L];
    conv_table(wt, w, ni, no, flip);
    const int m = Q - 2, nb = m > 0 ? (m + PB - 1) / PB : 0;
    for (int r = 0; r < R; r += L / no) {
        conv_block(img, out_off, in_off, ni, no, wt, bias, add, R, Q, r, 0, 1);
        for (int b = 0, q = 1; b < nb; b++) {
            const int n = m / nb + (b < m % nb);
            if (n == PB)
                conv_block(img, out_off, in_off, ni, no, wt, bias, add, R, Q, r, q, PB);
            else if (n == PB - 1)
                conv_block(img, out_off, in_off, ni, no, wt, bias, add, R, Q, r, q, PB - 1);
            else
                for (int p = 0; p < n; p++)
                    conv_block(img, out_off, in_off, ni, no, wt, bias, add, R, Q, r, q + p, 1);
            q += n;
        }
        if (Q > 1) conv_block(img, out_off, in_off, ni, no, wt, bias, add, R, Q, r, Q - 1, 1);
    }
}

/* out[r,q,o] = lrelu(b[o] + sum_{i,kh,kw} w[o,i,kh,kw] feat[r+kh-1, q+kw-1, in_off+i]),
 * written to feat channels out_off..out_off+7. */
static void conv_lrelu(float *feat, int out_off, int in_off, int ci, const float *w,
                       const float *b, int R, int Q) {
    if (ci == 8) conv_image(feat, out_off, in_off, 8, CO, w, b, 0, 0, R, Q);
    else conv_image(feat, out_off, in_off, CI_MAX, CO, w, b, 0, 0, R, Q);
}

void lpm_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q) {
    conv_lrelu(feat, 8, 16, 8, p->w[0], p->b[0], R, Q);
    conv_lrelu(feat, 0, 8, 16, p->w[1], p->b[1], R, Q);
}

/* gk[i][o] = sum over n pixels of src[i] g[o] (one tap of one image row). With ci a
 * constant the ci x 8 sums stay in registers for the whole row. Sixteen inputs fill a
 * 16-lane vector (one load and eight broadcast FMAs per pixel); eight go across the
 * outputs instead. Either way each sum adds its terms in pixel order. */
LPM_INLINE void wgrad_tap(float (*gk)[CO], const float *g, const float *src, int n, int ci) {
    if (ci == CI_MAX) {
        float acc[CO][CI_MAX] = {{0}};
        for (int q = 0; q < n; q++, g += C, src += C)
            for (int o = 0; o < CO; o++) {
                const float go = g[o];
#pragma omp simd
                for (int i = 0; i < CI_MAX; i++) acc[o][i] += src[i] * go;
            }
        for (int i = 0; i < CI_MAX; i++)
            for (int o = 0; o < CO; o++) gk[i][o] = acc[o][i];
        return;
    }
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
static void conv_lrelu_backward(float *dfeat, float *dw, float *db, const float *feat,
                     int out_off, int in_off, int ci, const float *w, int R,
                     int Q) {
    /* Weight sums: float over one image row (at most a few hundred terms), rows added in
     * double, so the inner loop stays in float vectors without conversions. */
    double gw[9][CI_MAX][CO], gb[CO];
    memset(gw, 0, sizeof gw);
    memset(gb, 0, sizeof gb);

    for (int r = 0; r < R; r++) {
        float rw[9][CI_MAX][CO], rb[CO] = {0};
        /* lrelu' from the output (out > 0 exactly where the pre-activation is > 0; a
         * select, not a branch, so the loop vectorises; g * 1 is g), fused with the bias
         * sum while the row is in cache, just ahead of the row's weight sums */
        for (int q = 0; q < Q; q++) {
            float *g = dfeat + ((size_t)r * Q + q) * C + out_off;
            const float *y = feat + ((size_t)r * Q + q) * C + out_off;
#pragma omp simd
            for (int o = 0; o < CO; o++) {
                g[o] *= lpm_vsel(y[o] > 0, 1.0f, slope);
                rb[o] += g[o];
            }
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

    /* Input gradient: din[r,q,i] = sum w[o,i,kh,kw] g[r-kh+1,q-kw+1,o], the conv of g with
     * the mirrored taps (the gradient channels read and written never overlap) */
    if (ci == 8) conv_image(dfeat, in_off, out_off, CO, 8, w, NULL, 1, 1, R, Q);
    else conv_image(dfeat, in_off, out_off, CO, CI_MAX, w, NULL, 1, 1, R, Q);

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
