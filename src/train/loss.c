/* The LPM-Net training objective: 3D SSIM, spatial frequency, MSE and their gradients
 * (LPMNET.md section 2, GRADIENTS.md "Losses").
 *
 * Sums that make a reported value are accumulated in double, per slice or per block,
 * and the partial sums are added in a fixed order, so a value does not depend on the
 * number of threads. */
#include "loss.h"
#include "model/vmath.h"

#include <math.h>
#include <string.h>

#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)
#define WIN 11
#define RAD 5

/* ------------------------------------------------------------ Gaussian filter */

/* What the filter reads at each voxel: one volume, or a product of two, formed on the fly. */
enum { SRC_A, SRC_AA, SRC_AB };

static void gauss_taps(float g[WIN]) {
    double t[WIN], s = 0.0;
    for (int k = 0; k < WIN; k++) {
        double u = k - RAD;
        t[k] = exp(-u * u / (2.0 * 1.5 * 1.5));
        s += t[k];
    }
    for (int k = 0; k < WIN; k++) g[k] = (float)(t[k] / s);
}

/* o[j] += g v[j] for j < n: the filter's inner loop, over contiguous memory */
LPM_INLINE void add_tap(float *restrict o, const float *restrict v, float g, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) o[j] += g * v[j];
}

/* The taps k0..k1 of output i that read inside [0, n) (zero padding) */
LPM_INLINE void taps_inside(int64_t i, int64_t n, int64_t *k0, int64_t *k1) {
    *k0 = i < RAD ? RAD - i : 0;
    *k1 = i + RAD >= n ? n - 1 - i + RAD : WIN - 1;
}

/* Output row i of an 11-tap zero-padded "same" pass over n rows of len contiguous floats,
 * rows stride apart: o = sum_k g[k] v[i+k-5] over the rows inside [0, n), added tap by
 * tap so the inner loop runs over contiguous memory. */
LPM_INLINE void pass_row(float *o, const float *v, int64_t i, int64_t n, int64_t stride,
                         int64_t len, const float g[WIN]) {
    int64_t k0, k1;
    taps_inside(i, n, &k0, &k1);
    for (int64_t j = 0; j < len; j++) o[j] = 0.0f;
    for (int64_t k = k0; k <= k1; k++) add_tap(o, v + (i + k - RAD) * stride, g[k], len);
}

/* sum_k g[k] v[i+k-5] over the taps inside [0, n), in the order k = 0..10 */
LPM_INLINE float tap_sum(const float *v, int64_t n, int64_t i, const float g[WIN]) {
    int64_t k0, k1;
    taps_inside(i, n, &k0, &k1);
    float s = 0.0f;
    for (int64_t k = k0; k <= k1; k++) s += g[k] * v[i + k - RAD];
    return s;
}

/* The same pass along one contiguous row of n values (the innermost axis): the outputs
 * whose 11 taps are all inside, tap by tap over the row (whole vectors); the 5 at each end
 * one at a time. Both add the taps in the order k = 0..10. */
LPM_INLINE void pass_line(float *o, const float *v, int64_t n, const float g[WIN]) {
    const int64_t lo = n < RAD ? n : RAD, hi = n - RAD > lo ? n - RAD : lo;
    for (int64_t i = 0; i < lo; i++) o[i] = tap_sum(v, n, i, g);
    for (int64_t i = hi; i < n; i++) o[i] = tap_sum(v, n, i, g);
    for (int64_t i = lo; i < hi; i++) o[i] = 0.0f;
    for (int k = 0; k < WIN; k++) add_tap(o + lo, v + lo + k - RAD, g[k], hi - lo);
}

/* Slice d of the filter's first two passes (along W, then H) into tmp. Cloned (AVX-512,
 * AVX2, baseline) and called per slice from the OpenMP loop, whose own body GCC compiles
 * for baseline x86-64 only. */
LPM_CLONES static void plane_passes(float *tmp, const float *a, const float *b, int kind,
                                    float *src, float *wpass, int64_t H, int64_t W,
                                    const float g[WIN]) {
    for (int64_t h = 0; h < H; h++) {
        const float *ar = a + h * W, *row = ar;
        if (kind == SRC_AA) {
#pragma omp simd
            for (int64_t w = 0; w < W; w++) src[w] = ar[w] * ar[w];
            row = src;
        } else if (kind == SRC_AB) {
            const float *br = b + h * W;
#pragma omp simd
            for (int64_t w = 0; w < W; w++) src[w] = ar[w] * br[w];
            row = src;
        }
        pass_line(wpass + h * W, row, W, g);
    }
    for (int64_t h = 0; h < H; h++) pass_row(tmp + h * W, wpass, h, H, W, W, g);
}

/* Slice d of the pass along D: out[d] = sum_k g[k] tmp[d+k-5] (zero outside). Cloned, as
 * plane_passes. */
LPM_CLONES static void depth_pass(float *o, const float *tmp, int64_t d, int64_t D, int64_t HW,
                                  const float g[WIN]) {
    pass_row(o, tmp, d, D, HW, HW, g);
}

/* out = G * src, G the separable 11^3 Gaussian, zero padding 5, (D,H,W) in and out.
 * src is a, a*a or a*b (by kind). tmp is a full volume; rows holds lpm_get_threads()
 * slices of H*W + W floats. out may be a (a is read completely before out is written). */
static void gauss_filter(float *out, const float *a, const float *b, int kind, float *tmp,
                         float *rows, int64_t D, int64_t H, int64_t W, const float g[WIN]) {
    int64_t HW = H * W;
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        float *src = rows + (size_t)lpm_thread_id() * (size_t)(HW + W);
        plane_passes(tmp + d * HW, a + d * HW, b ? b + d * HW : NULL, kind, src, src + W, H, W, g);
    }
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) depth_pass(out + d * HW, tmp, d, D, HW, g);
}

static lpm_status check_dims(const char *fn, const void *p, const void *q, int64_t D, int64_t H,
                             int64_t W) {
    if (!p || !q) return lpm_fail(LPM_ERR_INTERNAL, "%s: NULL input", fn);
    if (D < 1 || H < 1 || W < 1 || H > INT64_MAX / W || D > INT64_MAX / (H * W))
        return lpm_fail(LPM_ERR_INTERNAL, "%s: bad size %lldx%lldx%lld", fn, (long long)D,
                        (long long)H, (long long)W);
    return LPM_OK;
}

/* ------------------------------------------------------------------ SSIM */

/* The SSIM map of n voxels from the five filtered volumes, its sum returned; with q != 0
 * the backward coefficients q dS/dmy, q dS/dEyy, q dS/dExy overwrite my, eyy, exy
 * (GRADIENTS.md "Losses"). Double arithmetic; cloned, so the divisions run 8 at a time. */
LPM_CLONES static double ssim_map(const float *mx, float *my, const float *exx, float *eyy,
                                  float *exy, int64_t n, double q) {
    double s_sum = 0.0;
#pragma omp simd reduction(+ : s_sum)
    for (int64_t i = 0; i < n; i++) {
        double ux = mx[i], uy = my[i];
        double a1 = 2.0 * ux * uy + SSIM_C1;
        double b1 = 2.0 * ((double)exy[i] - ux * uy) + SSIM_C2;
        double a2 = ux * ux + uy * uy + SSIM_C1;
        double b2 = ((double)exx[i] - ux * ux) + ((double)eyy[i] - uy * uy) + SSIM_C2;
        /* four divisions where the formulas have seven */
        double ia1 = 1.0 / a1, ib1 = 1.0 / b1, ia2 = 1.0 / a2, ib2 = 1.0 / b2;
        double s = (a1 * b1) * (ia2 * ib2);
        s_sum += s;
        if (q != 0.0) {
            my[i] = (float)(q * s * (2.0 * ux * ia1 - 2.0 * ux * ib1 - 2.0 * uy * ia2 + 2.0 * uy * ib2));
            eyy[i] = (float)(-q * s * ib2);
            exy[i] = (float)(2.0 * q * s * ib1);
        }
    }
    return s_sum;
}

/* dL/dy += G*(q dS/dmy) + 2y G*(q dS/dEyy) + x G*(q dS/dExy), the three filtered already */
LPM_CLONES static void ssim_grad(float *dy, const float *x, const float *y, const float *gmy,
                                 const float *geyy, const float *gexy, int64_t n) {
    for (int64_t i = 0; i < n; i++) dy[i] += gmy[i] + 2.0f * y[i] * geyy[i] + x[i] * gexy[i];
}

/* Scratch of an SSIM: the five filtered volumes, the filter's temporary volume, per-thread
 * rows and per-slice sums. Kept across the SSIMs of one loss: mx and exx, x's statistics,
 * survive a call (the backward overwrites only the other three), so an SSIM against the
 * same x again skips two of its five filters. */
typedef struct {
    int64_t D, H, W;
    float *buf, *rows;
    double *slice_sum;
} ssim_ws;

static void ssim_ws_free(ssim_ws *ws) {
    free(ws->buf), free(ws->rows), free(ws->slice_sum);
    ws->buf = ws->rows = NULL, ws->slice_sum = NULL;
}

static lpm_status ssim_ws_alloc(ssim_ws *ws, int64_t D, int64_t H, int64_t W) {
    int64_t HW = H * W, N = D * HW;
    int ok = 1;
    size_t nbuf = lpm_mul_size((size_t)N, 6, &ok);
    size_t nrows = lpm_mul_size((size_t)lpm_get_threads(), (size_t)(HW + W), &ok);
    if (!ok) return lpm_fail(LPM_ERR_INTERNAL, "lpm_ssim3d: volume too large");
    *ws = (ssim_ws){D, H, W, lpm_malloc(nbuf, sizeof(float)), lpm_malloc(nrows, sizeof(float)),
                    lpm_malloc((size_t)D, sizeof(double))};
    if (!ws->buf || !ws->rows || !ws->slice_sum) {
        ssim_ws_free(ws);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_ssim3d: out of memory for %lld voxels", (long long)N);
    }
    return LPM_OK;
}

/* lpm_ssim3d in a workspace; x_ready: ws already holds x's mx and exx */
static void ssim3d_ws(ssim_ws *ws, double *ssim, const float *x, const float *y, int x_ready,
                      float *dy, double scale) {
    const int64_t D = ws->D, H = ws->H, W = ws->W, HW = H * W, N = D * HW;
    float *buf = ws->buf, *rows = ws->rows;
    double *slice_sum = ws->slice_sum;
    float *mx = buf, *my = buf + N, *exx = buf + 2 * N, *eyy = buf + 3 * N, *exy = buf + 4 * N;
    float *tmp = buf + 5 * N;
    float g[WIN];
    gauss_taps(g);

    if (!x_ready) {
        gauss_filter(mx, x, NULL, SRC_A, tmp, rows, D, H, W, g);
        gauss_filter(exx, x, NULL, SRC_AA, tmp, rows, D, H, W, g);
    }
    gauss_filter(my, y, NULL, SRC_A, tmp, rows, D, H, W, g);
    gauss_filter(eyy, y, NULL, SRC_AA, tmp, rows, D, H, W, g);
    gauss_filter(exy, x, y, SRC_AB, tmp, rows, D, H, W, g);

    /* q = d(scale * mean S)/dS; the backward coefficients overwrite my, eyy, exy */
    double q = scale / (double)N;
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++)
        slice_sum[d] = ssim_map(mx + d * HW, my + d * HW, exx + d * HW, eyy + d * HW,
                                exy + d * HW, HW, dy ? q : 0.0);
    double total = 0.0;
    for (int64_t d = 0; d < D; d++) total += slice_sum[d];
    *ssim = total / (double)N;

    if (dy) {
        /* dL/dy = G*(q dS/dmy) + 2y G*(q dS/dEyy) + x G*(q dS/dExy); G is its own adjoint */
        gauss_filter(my, my, NULL, SRC_A, tmp, rows, D, H, W, g);
        gauss_filter(eyy, eyy, NULL, SRC_A, tmp, rows, D, H, W, g);
        gauss_filter(exy, exy, NULL, SRC_A, tmp, rows, D, H, W, g);
#pragma omp parallel for schedule(static)
        for (int64_t d = 0; d < D; d++) {
            const int64_t at = d * HW;
            ssim_grad(dy + at, x + at, y + at, my + at, eyy + at, exy + at, HW);
        }
    }
}

lpm_status lpm_ssim3d(double *ssim, const float *x, const float *y, int64_t D, int64_t H,
                      int64_t W, float *dy, double scale) {
    lpm_status st = check_dims("lpm_ssim3d", x, y, D, H, W);
    if (st) return st;
    ssim_ws ws;
    if ((st = ssim_ws_alloc(&ws, D, H, W))) return st;
    ssim3d_ws(&ws, ssim, x, y, 0, dy, scale);
    ssim_ws_free(&ws);
    return LPM_OK;
}

/* ------------------------------------------------------------------ SF */

lpm_status lpm_sf(double *sf, const float *f, int64_t D, int64_t H, int64_t W, float *df,
                  double scale) {
    lpm_status st = check_dims("lpm_sf", f, sf, D, H, W);
    if (st) return st;
    int64_t HW = H * W;
    double *part = lpm_malloc((size_t)D, 3 * sizeof(double));
    if (!part) return lpm_fail(LPM_ERR_INTERNAL, "lpm_sf: out of memory");
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double sd = 0.0, sh = 0.0, sw = 0.0;
        for (int64_t h = 0; h < H; h++) {
            const float *r = f + d * HW + h * W;
            for (int64_t w = 0; w < W; w++) {
                double v = r[w];
                if (d + 1 < D) sd += (r[w + HW] - v) * (r[w + HW] - v);
                if (h + 1 < H) sh += (r[w + W] - v) * (r[w + W] - v);
                if (w + 1 < W) sw += (r[w + 1] - v) * (r[w + 1] - v);
            }
        }
        part[3 * d] = sd, part[3 * d + 1] = sh, part[3 * d + 2] = sw;
    }
    double sum[3] = {0.0, 0.0, 0.0};
    for (int64_t d = 0; d < D; d++)
        for (int a = 0; a < 3; a++) sum[a] += part[3 * d + a];
    free(part);
    /* each mean over its own count; an axis of size 1 has none and adds nothing */
    double inv[3] = {D > 1 ? 1.0 / (double)((D - 1) * HW) : 0.0,
                     H > 1 ? 1.0 / (double)(D * (H - 1) * W) : 0.0,
                     W > 1 ? 1.0 / (double)(D * H * (W - 1)) : 0.0};
    double v = sqrt(sum[0] * inv[0] + sum[1] * inv[1] + sum[2] * inv[2]);
    *sf = v;
    if (!df || v == 0.0) return LPM_OK;

    /* dSF/df = (1/SF) sum_axes (1/N_axis) D_axis^T d_axis: a difference d_i = f_(i+1) - f_i
     * adds d_i at i+1 and subtracts it at i */
    double c = scale / v;
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        for (int64_t h = 0; h < H; h++) {
            const float *r = f + d * HW + h * W;
            float *o = df + d * HW + h * W;
            for (int64_t w = 0; w < W; w++) {
                double v0 = r[w], gd = 0.0, gh = 0.0, gw = 0.0;
                if (d > 0) gd += v0 - r[w - HW];
                if (d + 1 < D) gd -= r[w + HW] - v0;
                if (h > 0) gh += v0 - r[w - W];
                if (h + 1 < H) gh -= r[w + W] - v0;
                if (w > 0) gw += v0 - r[w - 1];
                if (w + 1 < W) gw -= r[w + 1] - v0;
                o[w] += (float)(c * (gd * inv[0] + gh * inv[1] + gw * inv[2]));
            }
        }
    }
    return LPM_OK;
}

/* ------------------------------------------------------------------ edge fidelity */

/* The stronger source's difference: a if |a| >= |b|, else b (A wins ties) */
LPM_INLINE double stronger(double a, double b) { return fabs(a) >= fabs(b) ? a : b; }

lpm_status lpm_edge(double *edge, const float *A, const float *B, const float *f, int64_t D,
                    int64_t H, int64_t W, float *df, double scale) {
    lpm_status st = check_dims("lpm_edge", A, B, D, H, W);
    if (!st) st = check_dims("lpm_edge", f, edge, D, H, W);
    if (st) return st;
    int64_t HW = H * W, N = D * HW;
    double *part = lpm_malloc((size_t)D, 3 * sizeof(double));
    float *res = df ? lpm_malloc((size_t)N, 3 * sizeof(float)) : NULL;  /* residuals per axis */
    if (!part || (df && !res)) {
        free(part), free(res);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_edge: out of memory");
    }
    /* residual e = (f_(i+1) - f_i) - stronger(A_(i+1) - A_i, B_(i+1) - B_i) on each axis;
     * 0 where the axis has no next voxel */
    const int64_t step[3] = {HW, W, 1};
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double s[3] = {0.0, 0.0, 0.0};
        for (int64_t h = 0; h < H; h++) {
            for (int64_t w = 0; w < W; w++) {
                int64_t i = d * HW + h * W + w;
                const int inside[3] = {d + 1 < D, h + 1 < H, w + 1 < W};
                for (int a = 0; a < 3; a++) {
                    double e = 0.0;
                    if (inside[a]) {
                        int64_t j = i + step[a];
                        e = ((double)f[j] - f[i]) - stronger((double)A[j] - A[i], (double)B[j] - B[i]);
                    }
                    s[a] += e * e;
                    if (res) res[(size_t)a * N + i] = (float)e;
                }
            }
        }
        for (int a = 0; a < 3; a++) part[3 * d + a] = s[a];
    }
    double sum[3] = {0.0, 0.0, 0.0};
    for (int64_t d = 0; d < D; d++)
        for (int a = 0; a < 3; a++) sum[a] += part[3 * d + a];
    free(part);
    double inv[3] = {D > 1 ? 1.0 / (double)((D - 1) * HW) : 0.0,
                     H > 1 ? 1.0 / (double)(D * (H - 1) * W) : 0.0,
                     W > 1 ? 1.0 / (double)(D * H * (W - 1)) : 0.0};
    *edge = sum[0] * inv[0] + sum[1] * inv[1] + sum[2] * inv[2];
    if (!df) return LPM_OK;

    /* dE/df = sum_axes (2/N_axis) D_axis^T e: a residual at i adds at i+1, subtracts at i */
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t w = 0; w < W; w++) {
                int64_t i = d * HW + h * W + w;
                const int before[3] = {d > 0, h > 0, w > 0};
                double g = 0.0;
                for (int a = 0; a < 3; a++) {
                    const float *e = res + (size_t)a * N;
                    double ga = before[a] ? (double)e[i - step[a]] - e[i] : -(double)e[i];
                    g += 2.0 * inv[a] * ga;
                }
                df[i] += (float)(scale * g);
            }
        }
    }
    free(res);
    return LPM_OK;
}

/* ------------------------------------------------------------------ MSE */

#define MSE_BLOCK ((int64_t)1 << 16)

lpm_status lpm_mse(double *mse, const float *x, const float *y, int64_t n, float *dy, double scale) {
    if (!x || !y || !mse || n < 1) return lpm_fail(LPM_ERR_INTERNAL, "lpm_mse: bad arguments");
    int64_t nb = (n + MSE_BLOCK - 1) / MSE_BLOCK;
    double *part = lpm_malloc((size_t)nb, sizeof(double));
    if (!part) return lpm_fail(LPM_ERR_INTERNAL, "lpm_mse: out of memory");
    /* d((x - y)^2)/dy = 2 (y - x) */
    float c = (float)(2.0 * scale / (double)n);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = b + 1 < nb ? (b + 1) * MSE_BLOCK : n;
        double s = 0.0;
        for (int64_t i = b * MSE_BLOCK; i < end; i++) {
            double e = (double)x[i] - (double)y[i];
            s += e * e;
            if (dy) dy[i] += c * (y[i] - x[i]);
        }
        part[b] = s;
    }
    double s = 0.0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    free(part);
    *mse = s / (double)n;
    return LPM_OK;
}

/* ------------------------------------------------------------------ the objective */

double lpm_lambda_s(int64_t step_in_epoch, int64_t n_epochs) {
    return exp(0.002 * (double)(step_in_epoch - n_epochs));
}

lpm_status lpm_loss_fusion(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A,
                           const float *B, const float *F, const float *Det, int64_t D,
                           int64_t H, int64_t W, float *dF, float *dDet) {
    lpm_status st = check_dims("lpm_loss_fusion", A, B, D, H, W);
    if (!st) st = check_dims("lpm_loss_fusion", F, Det, D, H, W);
    if (st) return st;
    size_t N = (size_t)(D * H * W);
    if (dF) memset(dF, 0, N * sizeof(float));
    if (dDet) memset(dDet, 0, N * sizeof(float));
    /* alpha (MSE(A,F) + MSE(B,F))/2 */
    if ((st = lpm_mse(&t->mse_af, A, F, (int64_t)N, dF, w->alpha / 2))) return st;
    if ((st = lpm_mse(&t->mse_bf, B, F, (int64_t)N, dF, w->alpha / 2))) return st;
    /* beta (1 - (SSIM(A,F) + SSIM(B,F))/2) and 1 - (SSIM(A,Det) + SSIM(B,Det))/2,
     * unweighted (authors' quirk); in one workspace, A's and B's statistics filtered once.
     * dF and dDet each still receive A's term before B's. */
    ssim_ws ws;
    if ((st = ssim_ws_alloc(&ws, D, H, W))) return st;
    ssim3d_ws(&ws, &t->ssim_af, A, F, 0, dF, -w->beta / 2);
    ssim3d_ws(&ws, &t->ssim_adet, A, Det, 1, dDet, -0.5);
    ssim3d_ws(&ws, &t->ssim_bf, B, F, 0, dF, -w->beta / 2);
    ssim3d_ws(&ws, &t->ssim_bdet, B, Det, 1, dDet, -0.5);
    ssim_ws_free(&ws);
    /* - gamma lambda_s SF(F) */
    if ((st = lpm_sf(&t->sf_f, F, D, H, W, dF, -w->gamma * w->lambda_s))) return st;
    /* + edge E(A,B,F): lpmnet's optional term, 0 in the authors' objective */
    t->edge_f = 0.0;
    return w->edge == 0.0 ? LPM_OK : lpm_edge(&t->edge_f, A, B, F, D, H, W, dF, w->edge);
}

lpm_status lpm_loss_recon(lpm_loss_terms *t, const float *A, const float *B, const float *R,
                          int64_t D, int64_t H, int64_t W, float *dR) {
    lpm_status st = check_dims("lpm_loss_recon", A, B, D, H, W);
    if (!st) st = check_dims("lpm_loss_recon", R, R, D, H, W);
    if (st) return st;
    int64_t N = D * H * W;
    if (dR) memset(dR, 0, 2 * (size_t)N * sizeof(float));
    /* MSE(R, stack([A, B])): the mean over 2N values is the mean of the two channel means */
    double m0, m1;
    if ((st = lpm_mse(&m0, A, R, N, dR, 0.5))) return st;
    if ((st = lpm_mse(&m1, B, R + N, N, dR ? dR + N : NULL, 0.5))) return st;
    t->mse_rec = (m0 + m1) / 2;
    return LPM_OK;
}

double lpm_loss_total(const lpm_loss_terms *t, const lpm_loss_weights *w) {
    return w->alpha * (t->mse_af + t->mse_bf) / 2
         + w->beta * (1 - (t->ssim_af + t->ssim_bf) / 2)
         + (1 - (t->ssim_adet + t->ssim_bdet) / 2)
         - w->gamma * w->lambda_s * t->sf_f
         + w->edge * t->edge_f
         + t->mse_rec;
}

lpm_status lpm_loss(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A, const float *B,
                    const float *F, const float *Det, const float *R, int64_t D, int64_t H,
                    int64_t W, float *dF, float *dDet, float *dR) {
    lpm_status st = lpm_loss_fusion(t, w, A, B, F, Det, D, H, W, dF, dDet);
    if (!st) st = lpm_loss_recon(t, A, B, R, D, H, W, dR);
    if (st) return st;
    t->total = lpm_loss_total(t, w);
    return LPM_OK;
}
