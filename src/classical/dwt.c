/* DWT fusion: 3-D separable Daubechies-2 (4-tap, orthonormal) wavelet transform with periodic
 * extension, 3 levels. A size that is not a multiple of 8 is first mirror-padded (so the
 * periodic wrap meets a continuation of the image rather than an edge), and cropped back
 * after the inverse. Rule: approximation averaged, each detail coefficient taken from the
 * source with the larger magnitude. */
#include "classical.h"
#include "classical_impl.h"

#include <math.h>
#include <string.h>

enum { LEVELS = 3 };

/* db2 low-pass h; the high-pass is g[j] = (-1)^j h[3-j]. */
#define S3 1.7320508075688772
#define N2 (4.0 * 1.4142135623730951)
static const float H4[4] = {(float)((1 + S3) / N2), (float)((3 + S3) / N2),
                            (float)((3 - S3) / N2), (float)((1 - S3) / N2)};
static const float G4[4] = {(float)((1 - S3) / N2), (float)(-(3 - S3) / N2),
                            (float)((3 + S3) / N2), (float)(-(1 + S3) / N2)};

/* One level on a line of even length n: x -> [approximation | detail]. */
static void line_forward(const float *x, float *y, int64_t n) {
    int64_t half = n / 2;
    for (int64_t k = 0; k < half; k++) {
        float a = 0, d = 0;
        for (int j = 0; j < 4; j++) {
            float v = x[(2 * k + j) % n];
            a += H4[j] * v;
            d += G4[j] * v;
        }
        y[k] = a;
        y[half + k] = d;
    }
}

/* The transpose of line_forward, which is its inverse because the filter bank is orthonormal. */
static void line_inverse(const float *y, float *x, int64_t n) {
    int64_t half = n / 2;
    memset(x, 0, sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < half; k++) {
        float a = y[k], d = y[half + k];
        for (int j = 0; j < 4; j++) x[(2 * k + j) % n] += H4[j] * a + G4[j] * d;
    }
}

/* Transform every line along axis (0 = D, 1 = H, 2 = W) of the sub-cube sd x sh x sw at the
 * low corner of the (D,H,W) array x. buf: 2 * max(D,H,W) floats per thread. */
static void transform_axis(float *x, int64_t H, int64_t W, int64_t sd, int64_t sh, int64_t sw,
                           int axis, int inverse, float *buf, int64_t buflen) {
    int64_t n = axis == 0 ? sd : axis == 1 ? sh : sw;
    int64_t stride = axis == 0 ? H * W : axis == 1 ? W : 1;
    /* The two indices that are not along the axis: (outer, inner) with their strides. */
    int64_t no = axis == 0 ? sh : sd, ni = axis == 2 ? sh : sw;
    int64_t so = axis == 0 ? W : H * W, si = axis == 2 ? W : 1;
#pragma omp parallel for collapse(2) schedule(static) if (no * ni * n >= PAR_MIN)
    for (int64_t o = 0; o < no; o++) {
        for (int64_t i = 0; i < ni; i++) {
            float *in = buf + (size_t)lpm_thread_id() * 2 * (size_t)buflen, *tmp = in + buflen;
            float *line = x + o * so + i * si;
            for (int64_t k = 0; k < n; k++) in[k] = line[k * stride];
            if (inverse)
                line_inverse(in, tmp, n);
            else
                line_forward(in, tmp, n);
            for (int64_t k = 0; k < n; k++) line[k * stride] = tmp[k];
        }
    }
}

static lpm_status dwt3(float *x, int64_t D, int64_t H, int64_t W, int levels, int inverse) {
    int64_t m = (int64_t)1 << levels;
    if (levels < 1 || levels > 20 || D % m || H % m || W % m)
        return lpm_fail(LPM_ERR_INTERNAL, "dwt: size %lldx%lldx%lld is not a multiple of %lld",
                        (long long)D, (long long)H, (long long)W, (long long)m);
    int64_t buflen = D > H ? D : H;
    buflen = buflen > W ? buflen : W;
    float *buf = lpm_malloc((size_t)lpm_get_threads() * 2, (size_t)buflen * sizeof(float));
    if (!buf) return LPM_ERR_INTERNAL;
    for (int step = 0; step < levels; step++) {
        int l = inverse ? levels - 1 - step : step;
        int64_t sd = D >> l, sh = H >> l, sw = W >> l;
        for (int k = 0; k < 3; k++) {
            /* Inverse undoes the axes in the opposite order (they commute, but keep it exact). */
            int axis = inverse ? k : 2 - k;
            transform_axis(x, H, W, sd, sh, sw, axis, inverse, buf, buflen);
        }
    }
    free(buf);
    return LPM_OK;
}

lpm_status lpm_dwt3_forward(float *x, int64_t D, int64_t H, int64_t W, int levels) {
    return dwt3(x, D, H, W, levels, 0);
}

lpm_status lpm_dwt3_inverse(float *x, int64_t D, int64_t H, int64_t W, int levels) {
    return dwt3(x, D, H, W, levels, 1);
}

/* Copy src (D,H,W) into dst (Dp,Hp,Wp) with mirror padding beyond the end of each axis. */
static void pad_mirror(const float *src, float *dst, int64_t D, int64_t H, int64_t W, int64_t Dp,
                       int64_t Hp, int64_t Wp) {
#pragma omp parallel for collapse(2) schedule(static) if (Dp * Hp * Wp >= PAR_MIN)
    for (int64_t d = 0; d < Dp; d++)
        for (int64_t h = 0; h < Hp; h++) {
            const float *s = src + (lpm_reflect(d, D) * H + lpm_reflect(h, H)) * W;
            float *t = dst + (d * Hp + h) * Wp;
            memcpy(t, s, sizeof(float) * (size_t)W);
            for (int64_t w = W; w < Wp; w++) t[w] = s[lpm_reflect(w, W)];
        }
}

lpm_status lpm_fuse_dwt(const float *a, const float *b, float *out, int64_t D, int64_t H,
                        int64_t W) {
    int64_t m = 1 << LEVELS;
    int64_t Dp = (D + m - 1) / m * m, Hp = (H + m - 1) / m * m, Wp = (W + m - 1) / m * m;
    size_t np = (size_t)(Dp * Hp * Wp);
    float *ca = lpm_malloc(np, sizeof(float));
    float *cb = ca ? lpm_malloc(np, sizeof(float)) : NULL;
    if (!cb) {
        free(ca);
        return LPM_ERR_INTERNAL;
    }
    pad_mirror(a, ca, D, H, W, Dp, Hp, Wp);
    pad_mirror(b, cb, D, H, W, Dp, Hp, Wp);
    lpm_status st = lpm_dwt3_forward(ca, Dp, Hp, Wp, LEVELS);
    if (!st) st = lpm_dwt3_forward(cb, Dp, Hp, Wp, LEVELS);
    if (!st) {
        int64_t ad = Dp >> LEVELS, ah = Hp >> LEVELS, aw = Wp >> LEVELS;
#pragma omp parallel for collapse(2) schedule(static) if (Dp * Hp * Wp >= PAR_MIN)
        for (int64_t d = 0; d < Dp; d++)
            for (int64_t h = 0; h < Hp; h++)
                for (int64_t w = 0; w < Wp; w++) {
                    int64_t i = (d * Hp + h) * Wp + w;
                    if (d < ad && h < ah && w < aw)
                        ca[i] = 0.5f * (ca[i] + cb[i]);
                    else if (fabsf(cb[i]) > fabsf(ca[i]))
                        ca[i] = cb[i];
                }
        st = lpm_dwt3_inverse(ca, Dp, Hp, Wp, LEVELS);
    }
    if (!st) {
#pragma omp parallel for collapse(2) schedule(static) if (D * H * W >= PAR_MIN)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                memcpy(out + (d * H + h) * W, ca + (d * Hp + h) * Wp, sizeof(float) * (size_t)W);
    }
    free(ca);
    free(cb);
    return st;
}
