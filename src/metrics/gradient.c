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

/* Sobel of one H x W slice (zero padding 1) -> strength g and angle.
 * pad is (H+2) x (W+2) scratch. Rows are summed before they are subtracted, so flat
 * regions give exactly 0 and "Sx == 1e-10 exactly" holds there (as in the reference). */
static void sobel(double *g, double *ang, double *pad, const float *v, int64_t H, int64_t W) {
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
        sobel(gA, aA, p, a + off, H, W);
        sobel(gB, aB, p, b + off, H, W);
        sobel(gF, aF, p, f + off, H, W);
        double qn = 0, qd = 0, nn = 0, nd = 0;
        for (size_t i = 0; i < hw; i++) {
            double qa = edge_q(gA[i], aA[i], gF[i], aF[i], &QABF_C);
            double qb = edge_q(gB[i], aB[i], gF[i], aF[i], &QABF_C);
            qn += qa * gA[i] + qb * gB[i];
            qd += gA[i] + gB[i];
            double wa = gA[i] >= 2 ? pow(gA[i], 1.5) : 0.001;
            double wb = gB[i] >= 2 ? pow(gB[i], 1.5) : 0.001;
            nd += wa + wb;
            if (gF[i] > gA[i] && gF[i] > gB[i]) {
                qa = edge_q(gA[i], aA[i], gF[i], aF[i], &NABF_C);
                qb = edge_q(gB[i], aB[i], gF[i], aF[i], &NABF_C);
                nn += (1 - qa) * wa + (1 - qb) * wb;
            }
        }
        slice[2 * d] = qn / qd;
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
