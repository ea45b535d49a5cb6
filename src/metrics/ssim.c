/* 3-D SSIM and spatial frequency with their gradients: shared by the fusion metrics and
 * the training objective (train/loss.c), so they live here, below train.
 *
 * Sums that make a reported value are accumulated in double, per slice, and the partial
 * sums are added in a fixed order, so a value does not depend on the number of threads. */
#include "metrics.h"
#include "core/core.h"
#include "core/vmath.h"

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
 * (docs/lpmnet.md section 4). Double arithmetic; cloned, so the divisions run 8 at a time. */
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

void lpm_ssim_ws_free(lpm_ssim_ws *ws) {
    free(ws->buf), free(ws->rows), free(ws->slice_sum);
    ws->buf = ws->rows = NULL, ws->slice_sum = NULL;
}

lpm_status lpm_ssim_ws_alloc(lpm_ssim_ws *ws, int64_t D, int64_t H, int64_t W) {
    int64_t HW = H * W, N = D * HW;
    int ok = 1;
    size_t nbuf = lpm_mul_size((size_t)N, 6, &ok);
    size_t nrows = lpm_mul_size((size_t)lpm_get_threads(), (size_t)(HW + W), &ok);
    if (!ok) return lpm_fail(LPM_ERR_INTERNAL, "lpm_ssim3d: volume too large");
    *ws = (lpm_ssim_ws){D, H, W, lpm_malloc(nbuf, sizeof(float)), lpm_malloc(nrows, sizeof(float)),
                    lpm_malloc((size_t)D, sizeof(double))};
    if (!ws->buf || !ws->rows || !ws->slice_sum) {
        lpm_ssim_ws_free(ws);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_ssim3d: out of memory for %lld voxels", (long long)N);
    }
    return LPM_OK;
}

void lpm_ssim3d_ws(lpm_ssim_ws *ws, double *ssim, const float *x, const float *y, int x_ready,
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
    lpm_ssim_ws ws;
    if ((st = lpm_ssim_ws_alloc(&ws, D, H, W))) return st;
    lpm_ssim3d_ws(&ws, ssim, x, y, 0, dy, scale);
    lpm_ssim_ws_free(&ws);
    return LPM_OK;
}

/* ------------------------------------------------------------------ SF */

/* The per-axis factors of SF: 1 / (number of differences along the axis), 0 for an axis of
 * size 1 (it has none and adds nothing). */
static void sf_axis_weights(double inv[3], int64_t D, int64_t H, int64_t W) {
    inv[0] = D > 1 ? 1.0 / (double)((D - 1) * H * W) : 0.0;
    inv[1] = H > 1 ? 1.0 / (double)(D * (H - 1) * W) : 0.0;
    inv[2] = W > 1 ? 1.0 / (double)(D * H * (W - 1)) : 0.0;
}

/* df += c sum_axes inv_axis D_axis^T d_axis: c dSF/df times SF. A difference
 * d_i = f_(i+1) - f_i adds d_i at i+1 and subtracts it at i. */
static void sf_backward(const float *f, int64_t D, int64_t H, int64_t W, float *df, double c) {
    const int64_t HW = H * W;
    double inv[3];
    sf_axis_weights(inv, D, H, W);
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
}

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
    double inv[3];
    sf_axis_weights(inv, D, H, W);
    double v = sqrt(sum[0] * inv[0] + sum[1] * inv[1] + sum[2] * inv[2]);
    *sf = v;
    /* dSF/df = (1/SF) sum_axes (1/N_axis) D_axis^T d_axis */
    if (df && v != 0.0) sf_backward(f, D, H, W, df, scale / v);
    return LPM_OK;
}

lpm_status lpm_sf_match(double *value, double *ratio, const float *a, const float *b, const float *f,
                        int64_t D, int64_t H, int64_t W, float *df, double scale) {
    lpm_status st = check_dims("lpm_sf_match", a, b, D, H, W);
    if (!st) st = check_dims("lpm_sf_match", f, value, D, H, W);
    if (st) return st;
    const int64_t step[3] = {H * W, W, 1}, size[3] = {D, H, W};
    double ref = 0.0;
    for (int k = 0; k < 3; k++) {
        double s2 = 0.0;
        int64_t count = 0;
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    const int64_t at[3] = {d, h, w};
                    if (at[k] + 1 >= size[k]) continue;
                    const int64_t i = (d * H + h) * W + w, j = i + step[k];
                    const double da = fabs((double)a[j] - a[i]), db = fabs((double)b[j] - b[i]);
                    const double m = da > db ? da : db;
                    s2 += m * m, count++;
                }
        if (count) ref += s2 / (double)count;
    }
    ref = sqrt(ref);
    double sf;
    if ((st = lpm_sf(&sf, f, D, H, W, NULL, 0.0))) return st;
    *ratio = ref > 0.0 ? sf / ref : 1.0;
    *value = (*ratio - 1.0) * (*ratio - 1.0);
    /* d(ratio - 1)^2/df = 2 (ratio - 1) / SF_R dSF/df, dSF/df as lpm_sf's */
    if (df && ref > 0.0 && sf != 0.0) sf_backward(f, D, H, W, df, scale * 2.0 * (*ratio - 1.0) / ref / sf);
    return LPM_OK;
}
