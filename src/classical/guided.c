/* Guided-filter fusion (GFF: S. Li, X. Kang, J. Hu, "Image fusion with guided filtering",
 * IEEE TIP 2013) carried over to 3-D with the paper's parameters:
 *   base   B_n = mean filter (31^3 box) of I_n, detail D_n = I_n - B_n
 *   saliency S_n = Gaussian(sigma 5, radius 5) of |6-neighbour Laplacian of I_n|
 *   P_n = 1 where S_n is the largest (ties go to the first source), else 0
 *   W^B_n = guided filter of P_n with guide I_n (r 45, eps 0.3), W^D_n (r 7, eps 1e-6)
 *   weights clipped at 0 and normalised to sum 1 per voxel (0.5 each when both vanish)
 *   F = sum W^B_n B_n + sum W^D_n D_n.
 * Box means use running sums along each axis with the window clipped at the borders, so
 * every filter is O(voxels) whatever its radius. */
#include "classical.h"
#include "classical_impl.h"

#include <math.h>
#include <string.h>

enum { BASE_R = 15, GAUSS_R = 5, R1 = 45, R2 = 7 };
static const double GAUSS_SIGMA = 5.0, EPS1 = 0.3, EPS2 = 1e-6;

/* out = 3-D box mean of in (radius r); tmp is scratch; in may not alias out or tmp. */
static void box3(const float *in, float *out, float *tmp, int64_t D, int64_t H, int64_t W,
                 int64_t r) {
    lpm_box_axis(in, out, D * H, W, 1, r, LPM_BOX_CLIP);
    lpm_box_axis(out, tmp, D, H, W, r, LPM_BOX_CLIP);
    lpm_box_axis(tmp, out, 1, D, H * W, r, LPM_BOX_CLIP);
}

/* out (A,n,B) = Gaussian (weights g[0..2R]) along the middle axis of in, mirror borders. */
static void gauss_axis(const float *in, float *out, const float *g, int64_t A, int64_t n,
                       int64_t B) {
    if (B == 1) {
#pragma omp parallel for schedule(static) if (A * n >= PAR_MIN)
        for (int64_t a = 0; a < A; a++) {
            const float *s = in + a * n;
            for (int64_t i = 0; i < n; i++) {
                int interior = i >= GAUSS_R && i + GAUSS_R < n;
                float v = 0;
                for (int k = -GAUSS_R; k <= GAUSS_R; k++)
                    v += g[k + GAUSS_R] * s[interior ? i + k : lpm_reflect(i + k, n)];
                out[a * n + i] = v;
            }
        }
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) if (A * n * B >= PAR_MIN)
    for (int64_t a = 0; a < A; a++)
        for (int64_t i = 0; i < n; i++) {
            float *o = out + (a * n + i) * B;
            for (int64_t b = 0; b < B; b++) o[b] = 0;
            int interior = i >= GAUSS_R && i + GAUSS_R < n;
            for (int k = -GAUSS_R; k <= GAUSS_R; k++) {
                const float *s = in + (a * n + (interior ? i + k : lpm_reflect(i + k, n))) * B;
                float w = g[k + GAUSS_R];
                for (int64_t b = 0; b < B; b++) o[b] += w * s[b];
            }
        }
}

/* Neighbours i - 1 and i + 1 with mirror borders (lpm_reflect without its division). */
static inline int64_t mirror_prev(int64_t i, int64_t n) { return i > 0 ? i - 1 : (n > 1 ? 1 : 0); }
static inline int64_t mirror_next(int64_t i, int64_t n) { return i + 1 < n ? i + 1 : (n > 1 ? n - 2 : 0); }

/* sal = Gaussian of |Laplacian of x|; tmp is scratch. */
static void saliency(const float *x, float *sal, float *tmp, int64_t D, int64_t H, int64_t W) {
#pragma omp parallel for collapse(2) schedule(static) if (D * H * W >= PAR_MIN)
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t i = (d * H + h) * W + w;
                float c = x[i];
                float s = x[(mirror_prev(d, D) * H + h) * W + w] +
                          x[(mirror_next(d, D) * H + h) * W + w] +
                          x[(d * H + mirror_prev(h, H)) * W + w] +
                          x[(d * H + mirror_next(h, H)) * W + w] +
                          x[(d * H + h) * W + mirror_prev(w, W)] +
                          x[(d * H + h) * W + mirror_next(w, W)] - 6 * c;
                tmp[i] = fabsf(s);
            }
    float g[2 * GAUSS_R + 1];
    double sum = 0;
    for (int k = -GAUSS_R; k <= GAUSS_R; k++)
        sum += g[k + GAUSS_R] = (float)exp(-0.5 * k * k / (GAUSS_SIGMA * GAUSS_SIGMA));
    for (int k = 0; k <= 2 * GAUSS_R; k++) g[k] = (float)(g[k] / sum);
    gauss_axis(tmp, sal, g, D * H, W, 1);
    gauss_axis(sal, tmp, g, D, H, W);
    gauss_axis(tmp, sal, g, 1, D, H * W);
}

/* q = guided filter (He, Sun & Tang) of p with guide I, radius r, regulariser eps.
 * s: five scratch volumes. */
static void guided_filter(const float *I, const float *p, float *q, float *const s[5], int64_t D,
                          int64_t H, int64_t W, int64_t r, double eps) {
    int64_t n = D * H * W;
    float *mean_i = s[0], *mean_p = s[1], *corr_ip = s[2], *corr_ii = s[3], *t = s[4];
    box3(I, mean_i, t, D, H, W, r);
    box3(p, mean_p, t, D, H, W, r);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) q[i] = I[i] * p[i];
    box3(q, corr_ip, t, D, H, W, r);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) q[i] = I[i] * I[i];
    box3(q, corr_ii, t, D, H, W, r);
    /* a = cov(I, p) / (var(I) + eps) into corr_ip, b = mean_p - a mean_I into mean_p */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double mi = mean_i[i], mp = mean_p[i];
        double a = ((double)corr_ip[i] - mi * mp) / ((double)corr_ii[i] - mi * mi + eps);
        corr_ip[i] = (float)a;
        mean_p[i] = (float)(mp - a * mi);
    }
    box3(corr_ip, corr_ii, t, D, H, W, r);
    box3(mean_p, mean_i, t, D, H, W, r);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) q[i] = corr_ii[i] * I[i] + mean_i[i];
}

/* Clip two weight maps at 0 and normalise them to sum 1. */
static void normalise_pair(float *wa, float *wb, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float x = wa[i] > 0 ? wa[i] : 0, y = wb[i] > 0 ? wb[i] : 0;
        float s = x + y;
        if (s > 1e-12f) {
            wa[i] = x / s, wb[i] = y / s;
        } else {
            wa[i] = wb[i] = 0.5f;
        }
    }
}

lpm_status lpm_fuse_guided(const float *a, const float *b, float *out, int64_t D, int64_t H,
                           int64_t W) {
    int64_t n = D * H * W;
    enum { NBUF = 11 };
    float *buf = lpm_malloc((size_t)n, NBUF * sizeof(float));
    if (!buf) return LPM_ERR_INTERNAL;
    float *pa = buf, *pb = buf + n, *base_a = buf + 2 * n, *base_b = buf + 3 * n;
    float *wa = buf + 4 * n, *wb = buf + 5 * n;
    float *const s[5] = {buf + 6 * n, buf + 7 * n, buf + 8 * n, buf + 9 * n, buf + 10 * n};

    saliency(a, pa, s[0], D, H, W);
    saliency(b, pb, s[0], D, H, W);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float m = pa[i] >= pb[i] ? 1.f : 0.f;
        pa[i] = m, pb[i] = 1.f - m;
    }
    box3(a, base_a, s[0], D, H, W, BASE_R);
    box3(b, base_b, s[0], D, H, W, BASE_R);

    guided_filter(a, pa, wa, s, D, H, W, R1, EPS1);
    guided_filter(b, pb, wb, s, D, H, W, R1, EPS1);
    normalise_pair(wa, wb, n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = wa[i] * base_a[i] + wb[i] * base_b[i];

    guided_filter(a, pa, wa, s, D, H, W, R2, EPS2);
    guided_filter(b, pb, wb, s, D, H, W, R2, EPS2);
    normalise_pair(wa, wb, n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] += wa[i] * (a[i] - base_a[i]) + wb[i] * (b[i] - base_b[i]);
    free(buf);
    return LPM_OK;
}
