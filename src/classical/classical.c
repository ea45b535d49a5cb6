/* Dispatch, the pixel-level methods (average, max, PCA) and the box mean the others share. */
#include "classical.h"
#include "classical_impl.h"

#include <math.h>
#include <string.h>

typedef lpm_status (*fuse_fn)(const float *a, const float *b, float *out, int64_t D, int64_t H,
                              int64_t W);

static lpm_status fuse_average(const float *a, const float *b, float *out, int64_t D, int64_t H,
                               int64_t W) {
    int64_t n = D * H * W;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = 0.5f * (a[i] + b[i]);
    return LPM_OK;
}

static lpm_status fuse_max(const float *a, const float *b, float *out, int64_t D, int64_t H,
                           int64_t W) {
    int64_t n = D * H * W;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] > b[i] ? a[i] : b[i];
    return LPM_OK;
}

void lpm_pca_weights(const float *a, const float *b, int64_t n, double w[2]) {
    /* Sums per block in a fixed order so the weights do not depend on the thread count. */
    enum { BLOCK = 65536 };
    int64_t nblocks = (n + BLOCK - 1) / BLOCK;
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    /* Two passes (means, then centred moments) keep the covariance accurate in float data. */
    for (int pass = 0; pass < 2; pass++) {
        double ma = n ? sa / (double)n : 0, mb = n ? sb / (double)n : 0;
        for (int64_t blk = 0; blk < nblocks; blk += 64) {
            double part[64][5];
            int64_t nb = nblocks - blk < 64 ? nblocks - blk : 64;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t k = 0; k < nb; k++) {
                int64_t lo = (blk + k) * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
                double s[5] = {0, 0, 0, 0, 0};
                for (int64_t i = lo; i < hi; i++) {
                    double x = (double)a[i] - ma, y = (double)b[i] - mb;
                    s[0] += x, s[1] += y, s[2] += x * x, s[3] += y * y, s[4] += x * y;
                }
                memcpy(part[k], s, sizeof s);
            }
            for (int64_t k = 0; k < nb; k++) {
                if (pass == 0) {
                    sa += part[k][0], sb += part[k][1];
                } else {
                    saa += part[k][2], sbb += part[k][3], sab += part[k][4];
                }
            }
        }
    }
    /* Covariance [[p, q], [q, r]]; its larger eigenvalue and eigenvector in closed form. */
    double p = saa, q = sab, r = sbb;
    double lam = 0.5 * (p + r) + sqrt(0.25 * (p - r) * (p - r) + q * q);
    double v0, v1;
    if (p >= r) {
        v0 = lam - r, v1 = q;
    } else {
        v0 = q, v1 = lam - p;
    }
    v0 = fabs(v0), v1 = fabs(v1);
    if (!(v0 + v1 > 0) || !isfinite(v0 + v1)) {
        w[0] = w[1] = 0.5;
    } else {
        w[0] = v0 / (v0 + v1);
        w[1] = v1 / (v0 + v1);
    }
}

static lpm_status fuse_pca(const float *a, const float *b, float *out, int64_t D, int64_t H,
                           int64_t W) {
    int64_t n = D * H * W;
    double w[2];
    lpm_pca_weights(a, b, n, w);
    float wa = (float)w[0], wb = (float)w[1];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = wa * a[i] + wb * b[i];
    return LPM_OK;
}

static const struct {
    const char *name;
    fuse_fn fn;
} methods[] = {
    {"average", fuse_average},
    {"max", fuse_max},
    {"pca", fuse_pca},
    {"dwt", lpm_fuse_dwt},
    {"laplacian", lpm_fuse_laplacian},
    {"guided", lpm_fuse_guided},
};
enum { N_METHODS = sizeof methods / sizeof methods[0] };

/* ------------------------------------------------------------------ box mean */

enum { BOX_CHUNK = 256 }; /* lines summed side by side when the axis is not the fastest */

static inline int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

void lpm_box_axis(const float *in, float *out, int64_t A, int64_t n, int64_t B, int64_t r,
                  lpm_box_edge edge) {
    const int repeat = edge == LPM_BOX_REPLICATE;
    if (B == 1) {
        /* contiguous lines: one running sum each, the same window rule as below */
#pragma omp parallel for schedule(static) if (A * n >= PAR_MIN)
        for (int64_t a = 0; a < A; a++) {
            const float *src = in + a * n;
            float *dst = out + a * n;
            double acc = 0;
            for (int64_t j = -r; j <= r; j++)
                if (repeat || (j >= 0 && j < n)) acc += src[clamp_index(j, n)];
            for (int64_t i = 0; i < n; i++) {
                const int64_t lo = i - r > 0 ? i - r : 0, hi = i + r < n - 1 ? i + r : n - 1;
                dst[i] = (float)(acc / (double)(repeat ? 2 * r + 1 : hi - lo + 1));
                if (repeat || i + r + 1 < n) acc += src[clamp_index(i + r + 1, n)];
                if (repeat || i - r >= 0) acc -= src[clamp_index(i - r, n)];
            }
        }
        return;
    }
    const int64_t nchunks = (B + BOX_CHUNK - 1) / BOX_CHUNK;
#pragma omp parallel for collapse(2) schedule(static) if (A * n * B >= PAR_MIN)
    for (int64_t a = 0; a < A; a++)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t b0 = c * BOX_CHUNK, nb = B - b0 < BOX_CHUNK ? B - b0 : BOX_CHUNK;
            const float *src = in + a * n * B + b0;
            float *dst = out + a * n * B + b0;
            double acc[BOX_CHUNK];
            for (int64_t b = 0; b < nb; b++) acc[b] = 0;
            /* the window of i = 0; a clipped window takes only the voxels inside the line */
            for (int64_t j = -r; j <= r; j++)
                if (repeat || (j >= 0 && j < n))
                    for (int64_t b = 0; b < nb; b++) acc[b] += src[clamp_index(j, n) * B + b];
            for (int64_t i = 0; i < n; i++) {
                const int64_t lo = i - r > 0 ? i - r : 0, hi = i + r < n - 1 ? i + r : n - 1;
                const double inv = 1.0 / (double)(repeat ? 2 * r + 1 : hi - lo + 1);
                for (int64_t b = 0; b < nb; b++) dst[i * B + b] = (float)(acc[b] * inv);
                if (repeat || i + r + 1 < n) {
                    const float *add = src + clamp_index(i + r + 1, n) * B;
                    for (int64_t b = 0; b < nb; b++) acc[b] += add[b];
                }
                if (repeat || i - r >= 0) {
                    const float *sub = src + clamp_index(i - r, n) * B;
                    for (int64_t b = 0; b < nb; b++) acc[b] -= sub[b];
                }
            }
        }
}

const char *lpm_classical_names(void) { return "average, max, pca, dwt, laplacian, guided"; }

int lpm_classical_known(const char *method) {
    for (int i = 0; method && i < N_METHODS; i++)
        if (strcmp(method, methods[i].name) == 0) return 1;
    return 0;
}

lpm_status lpm_classical_fuse(const char *method, const float *a, const float *b, float *out,
                              int64_t D, int64_t H, int64_t W) {
    int i = 0;
    while (i < N_METHODS && !(method && strcmp(method, methods[i].name) == 0)) i++;
    if (i == N_METHODS)
        return lpm_fail(LPM_ERR_USAGE, "unknown fusion method '%s' (valid: %s)",
                        method ? method : "(null)", lpm_classical_names());
    if (D < 1 || H < 1 || W < 1)
        return lpm_fail(LPM_ERR_USAGE, "%s fusion: bad volume size %lldx%lldx%lld", method,
                        (long long)D, (long long)H, (long long)W);
    lpm_status st = methods[i].fn(a, b, out, D, H, W);
    if (st) return st;
    int64_t n = D * H * W;
    /* NaN maps to 0 so the output stays inside [0, 1] whatever the inputs held. */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t k = 0; k < n; k++) out[k] = out[k] > 0 ? (out[k] < 1 ? out[k] : 1) : 0;
    return LPM_OK;
}
