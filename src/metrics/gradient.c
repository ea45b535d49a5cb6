/* QABF and NABF (docs/lpmnet.md section 3): slice-wise Sobel edge preservation. */
#include "metrics.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

/* pi/2 as NumPy has it (np.pi / 2 is exact in binary). */
#define HALF_PI 1.57079632679489661923

typedef struct { double Tg, kg, Dg, Ta, ka, Da; } edge_consts;
static const edge_consts QABF_C = {0.9994, -15, 0.5, 0.9879, -22, 0.8};
static const edge_consts NABF_C = {0.9999, -19, 0.5, 0.9995, -22, 0.5};

/* Sobel of one H x W slice (zero padding 1) -> strength g and angle (and, where sx_out is
 * not NULL, the responses sx + 1e-10 and sy they come from).
 * pad is (H+2) x (W+2) scratch. Rows are summed before they are subtracted, so flat
 * regions give exactly 0 and "Sx == 1e-10 exactly" holds there (as in the reference). */
static void sobel(double *g, double *ang, double *pad, const float *v, int64_t H, int64_t W,
                  double *sx_out, double *sy_out) {
    int64_t P = W + 2;
    memset(pad, 0, sizeof(double) * (size_t)(P * (H + 2)));
    for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++) pad[(h + 1) * P + w + 1] = v[h * W + w];
    for (int64_t h = 0; h < H; h++) {
        const double *u = pad + h * P, *c = u + P, *d = c + P;  /* rows h-1, h, h+1 */
        for (int64_t w = 0; w < W; w++) {
            /* Sx: [[1,2,1],[0,0,0],[-1,-2,-1]], Sy: [[-1,0,1],[-2,0,2],[-1,0,1]] */
            double sx = (u[w] + 2 * u[w + 1] + u[w + 2]) - (d[w] + 2 * d[w + 1] + d[w + 2]);
            double sy = (u[w + 2] + 2 * c[w + 2] + d[w + 2]) - (u[w] + 2 * c[w] + d[w]);
            sx = sx + 1e-10;
            if (sx_out) sx_out[h * W + w] = sx, sy_out[h * W + w] = sy;
            g[h * W + w] = sqrt(sx * sx + sy * sy) + 1e-30;
            ang[h * W + w] = sx == 1e-10 ? HALF_PI : atan(sy / sx);
        }
    }
}

/* Q_XF of one pixel. */
static double edge_q(double gx, double ax, double gf, double af, const edge_consts *k) {
    double G = gf > gx ? gx / gf : gf < gx ? gf / gx : gf;
    double A = 1 - fabs(ax - af) / HALF_PI;
    return k->Tg / (1 + exp(k->kg * (G - k->Dg))) * k->Ta / (1 + exp(k->ka * (A - k->Da)));
}

/* QABF of one slice from the Sobel strengths and angles of A, B and F: the edge preservation
 * of each source weighted by its strength; *den (if not NULL) receives the sum of the weights. */
static double qabf_slice(const double *gA, const double *aA, const double *gB, const double *aB,
                         const double *gF, const double *aF, size_t hw, double *den) {
    double qn = 0, qd = 0;
    for (size_t i = 0; i < hw; i++) {
        qn += edge_q(gA[i], aA[i], gF[i], aF[i], &QABF_C) * gA[i] +
              edge_q(gB[i], aB[i], gF[i], aF[i], &QABF_C) * gB[i];
        qd += gA[i] + gB[i];
    }
    if (den) *den = qd;
    return qn / qd;
}

lpm_status lpm_metric_edges(double *qabf, double *nabf, const float *a, const float *b,
                            const float *f, int64_t D, int64_t H, int64_t W) {
    int nt = lpm_get_threads();
    size_t hw = (size_t)(H * W), pad = (size_t)((H + 2) * (W + 2));
    size_t per = 6 * hw + pad;
    double *scratch = lpm_malloc((size_t)nt * per, sizeof(double));
    double *slice = lpm_malloc((size_t)(2 * D), sizeof(double));
    if (!scratch || !slice) {
        free(scratch);
        free(slice);
        return LPM_ERR_INTERNAL;
    }
#pragma omp parallel for schedule(dynamic)
    for (int64_t d = 0; d < D; d++) {
        double *s = scratch + (size_t)lpm_thread_id() * per;
        double *gA = s, *aA = s + hw, *gB = s + 2 * hw, *aB = s + 3 * hw;
        double *gF = s + 4 * hw, *aF = s + 5 * hw, *p = s + 6 * hw;
        size_t off = (size_t)d * hw;
        sobel(gA, aA, p, a + off, H, W, NULL, NULL);
        sobel(gB, aB, p, b + off, H, W, NULL, NULL);
        sobel(gF, aF, p, f + off, H, W, NULL, NULL);
        double nn = 0, nd = 0;
        slice[2 * d] = qabf_slice(gA, aA, gB, aB, gF, aF, hw, NULL);
        for (size_t i = 0; i < hw; i++) {
            double wa = gA[i] >= 2 ? pow(gA[i], 1.5) : 0.001;
            double wb = gB[i] >= 2 ? pow(gB[i], 1.5) : 0.001;
            nd += wa + wb;
            if (gF[i] > gA[i] && gF[i] > gB[i]) {
                double qa = edge_q(gA[i], aA[i], gF[i], aF[i], &NABF_C);
                double qb = edge_q(gB[i], aB[i], gF[i], aF[i], &NABF_C);
                nn += (1 - qa) * wa + (1 - qb) * wb;
            }
        }
        slice[2 * d + 1] = nn / nd;
    }
    double sq = 0, sn = 0;
    for (int64_t d = 0; d < D; d++) sq += slice[2 * d], sn += slice[2 * d + 1];
    *qabf = sq / (double)D;
    *nabf = sn / (double)D;
    free(scratch);
    free(slice);
    return LPM_OK;
}

/* ------------------------------------------------------------------ QABF as a loss term */

/* d q / d gf and d q / d af of edge_q (QABF's constants). At gf == gx, where G switches
 * between the two ratios, the ratio gf/gx's slope is taken; at af == ax the slope of |.| is 0. */
static void edge_q_grad(double gx, double ax, double gf, double af, double *dq_dg, double *dq_da) {
    const edge_consts *k = &QABF_C;
    double G = gf > gx ? gx / gf : gf < gx ? gf / gx : gf;
    double dG = gf > gx ? -gx / (gf * gf) : 1 / gx;
    double A = 1 - fabs(ax - af) / HALF_PI;
    double dA = ax > af ? 1 / HALF_PI : ax < af ? -1 / HALF_PI : 0;
    double eg = exp(k->kg * (G - k->Dg)), ea = exp(k->ka * (A - k->Da));
    double Qg = k->Tg / (1 + eg), Qa = k->Ta / (1 + ea);
    double dQg = -k->Tg * k->kg * eg / ((1 + eg) * (1 + eg));
    double dQa = -k->Ta * k->ka * ea / ((1 + ea) * (1 + ea));
    *dq_dg = Qa * dQg * dG;
    *dq_da = Qg * dQa * dA;
}

/* The angle's slope is 1/g: damped by this in g^2 + QABF_FLAT where F is flat (g -> 0, the
 * angle undefined), so that flat voxels do not get the largest steps. */
#define QABF_FLAT 1e-4

lpm_status lpm_qabf(double *qabf, const float *a, const float *b, const float *f, int64_t D,
                    int64_t H, int64_t W, float *df, double scale) {
    int nt = lpm_get_threads();
    size_t hw = (size_t)(H * W), pad = (size_t)((H + 2) * (W + 2));
    size_t per = 8 * hw + 3 * pad;
    double *scratch = lpm_malloc((size_t)nt * per, sizeof(double));
    double *slice = lpm_malloc((size_t)D, sizeof(double));
    if (!scratch || !slice) {
        free(scratch);
        free(slice);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_qabf: out of memory");
    }
    const int64_t P = W + 2;
#pragma omp parallel for schedule(dynamic)
    for (int64_t d = 0; d < D; d++) {
        double *s = scratch + (size_t)lpm_thread_id() * per;
        double *gA = s, *aA = s + hw, *gB = s + 2 * hw, *aB = s + 3 * hw;
        double *gF = s + 4 * hw, *aF = s + 5 * hw, *sx = s + 6 * hw, *sy = s + 7 * hw;
        double *p = s + 8 * hw, *dsx = p + pad, *dsy = dsx + pad; /* dsx, dsy: padded */
        size_t off = (size_t)d * hw;
        sobel(gA, aA, p, a + off, H, W, NULL, NULL);
        sobel(gB, aB, p, b + off, H, W, NULL, NULL);
        sobel(gF, aF, p, f + off, H, W, sx, sy);
        double qd;
        slice[d] = qabf_slice(gA, aA, gB, aB, gF, aF, hw, &qd);
        if (!df) continue;
        /* d slice[d] / d (sx, sy) at each pixel, then Sobel's adjoint onto the slice of f */
        const double c = scale / ((double)D * qd);
        memset(dsx, 0, sizeof(double) * 2 * pad);
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                size_t i = (size_t)(h * W + w);
                double ga, aa, gb, ab;
                edge_q_grad(gA[i], aA[i], gF[i], aF[i], &ga, &aa);
                edge_q_grad(gB[i], aB[i], gF[i], aF[i], &gb, &ab);
                double dg = c * (ga * gA[i] + gb * gB[i]), dang = c * (aa * gA[i] + ab * gB[i]);
                double x = sx[i], y = sy[i], r = sqrt(x * x + y * y);
                double gx = r > 0 ? dg * x / r : 0, gy = r > 0 ? dg * y / r : 0;
                if (x != 1e-10) { /* the angle is atan(sy/sx); pi/2 (constant) where sx is 0 */
                    double damp = x * x + y * y + QABF_FLAT;
                    gx -= dang * y / damp;
                    gy += dang * x / damp;
                }
                dsx[(h + 1) * P + w + 1] = gx;
                dsy[(h + 1) * P + w + 1] = gy;
            }
        /* f[h][w] feeds sx at rows h+1 (weight +1,+2,+1 over w-1..w+1 as the row above)
         * and h-1 (-1,-2,-1), and sy at columns w-1 (+1,+2,+1 over h-1..h+1, as the right
         * neighbour) and w+1 (-1,-2,-1); padded buffers hold 0 outside the slice. */
        float *o = df + off;
        for (int64_t h = 0; h < H; h++) {
            const double *xu = dsx + h * P, *xd = dsx + (h + 2) * P;  /* sx rows h-1, h+1 */
            const double *yu = dsy + h * P, *yc = dsy + (h + 1) * P, *yd = dsy + (h + 2) * P;
            for (int64_t w = 0; w < W; w++) {
                double v = (xd[w] + 2 * xd[w + 1] + xd[w + 2]) - (xu[w] + 2 * xu[w + 1] + xu[w + 2]);
                v += (yu[w] + 2 * yc[w] + yd[w]) - (yu[w + 2] + 2 * yc[w + 2] + yd[w + 2]);
                o[h * W + w] += (float)v;
            }
        }
    }
    double sq = 0;
    for (int64_t d = 0; d < D; d++) sq += slice[d];
    *qabf = sq / (double)D;
    free(scratch);
    free(slice);
    return LPM_OK;
}
