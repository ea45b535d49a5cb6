/* Laplacian-pyramid fusion in 3-D (Burt & Adelson): separable 5-tap [1 4 6 4 1]/16 kernel,
 * mirror boundaries, 4 reductions. A reduction keeps the even samples, so a size n becomes
 * ceil(n/2) and any size works without padding. Rule: top Gaussian level averaged, each
 * band value taken from the source with the larger magnitude. */
#include "classical.h"
#include "classical_impl.h"

#include <math.h>
#include <string.h>

enum { LEVELS = 4 };

static const float K5[5] = {1 / 16.f, 4 / 16.f, 6 / 16.f, 4 / 16.f, 1 / 16.f};

/* Five taps per output sample: source index and weight (weights of one sample sum to 1). */
typedef struct {
    int64_t idx[5];
    float wt[5];
} taps5;

/* Reduce a length-n axis to ceil(n/2): blur, keep the even samples. */
static taps5 *reduce_taps(int64_t n) {
    int64_t m = (n + 1) / 2;
    taps5 *t = lpm_malloc((size_t)m, sizeof *t);
    if (!t) return NULL;
    for (int64_t i = 0; i < m; i++)
        for (int k = 0; k < 5; k++) {
            t[i].idx[k] = lpm_reflect(2 * i + k - 2, n);
            t[i].wt[k] = K5[k];
        }
    return t;
}

/* Expand ceil(n/2) samples to n: place them at the even positions, blur, and divide by the
 * weight that landed on real samples (2 in the interior; exact at the edges and for n = 1). */
static taps5 *expand_taps(int64_t n) {
    taps5 *t = lpm_malloc((size_t)n, sizeof *t);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) {
        float sum = 0;
        for (int k = 0; k < 5; k++) {
            int64_t pos = i + k - 2;
            int even = (pos % 2) == 0;
            t[i].idx[k] = even ? lpm_reflect(pos, n) / 2 : 0;
            t[i].wt[k] = even ? K5[k] : 0;
            sum += t[i].wt[k];
        }
        for (int k = 0; k < 5; k++) t[i].wt[k] /= sum;
    }
    return t;
}

/* out (A, m, B) = taps applied along the middle axis of in (A, n, B). */
static void apply_axis(const float *in, float *out, const taps5 *t, int64_t A, int64_t n,
                       int64_t m, int64_t B) {
#pragma omp parallel for collapse(2) schedule(static) if (A * m * B >= PAR_MIN)
    for (int64_t a = 0; a < A; a++)
        for (int64_t i = 0; i < m; i++) {
            float *o = out + (a * m + i) * B;
            const float *s[5];
            for (int k = 0; k < 5; k++) s[k] = in + (a * n + t[i].idx[k]) * B;
            for (int64_t b = 0; b < B; b++) {
                float v = 0;
                for (int k = 0; k < 5; k++) v += t[i].wt[k] * s[k][b];
                o[b] = v;
            }
        }
}

/* 3-D resize by reduce (to ceil halves) or expand (from ceil halves to big) along W, H, D.
 * big = (D,H,W) of the larger level; tmp1, tmp2 hold D*H*W floats each. */
static lpm_status resize3(const float *in, float *out, const int64_t big[3], int expand,
                          float *tmp1, float *tmp2) {
    int64_t D = big[0], H = big[1], W = big[2];
    int64_t d = (D + 1) / 2, h = (H + 1) / 2, w = (W + 1) / 2;
    taps5 *tw = expand ? expand_taps(W) : reduce_taps(W);
    taps5 *th = expand ? expand_taps(H) : reduce_taps(H);
    taps5 *td = expand ? expand_taps(D) : reduce_taps(D);
    if (!tw || !th || !td) {
        free(tw), free(th), free(td);
        return LPM_ERR_INTERNAL;
    }
    if (!expand) {
        apply_axis(in, tmp1, tw, D * H, W, w, 1);   /* (D,H,W) -> (D,H,w) */
        apply_axis(tmp1, tmp2, th, D, H, h, w);     /* -> (D,h,w) */
        apply_axis(tmp2, out, td, 1, D, d, h * w);  /* -> (d,h,w) */
    } else {
        apply_axis(in, tmp1, td, 1, d, D, h * w);   /* (d,h,w) -> (D,h,w) */
        apply_axis(tmp1, tmp2, th, D, h, H, w);     /* -> (D,H,w) */
        apply_axis(tmp2, out, tw, D * H, w, W, 1);  /* -> (D,H,W) */
    }
    free(tw), free(th), free(td);
    return LPM_OK;
}

static size_t numel3(const int64_t s[3]) { return (size_t)(s[0] * s[1] * s[2]); }

lpm_status lpm_lap_build(lpm_lap_pyramid *p, const float *x, int64_t D, int64_t H, int64_t W,
                         int levels) {
    memset(p, 0, sizeof *p);
    if (levels < 1 || levels > LPM_LAP_MAX)
        return lpm_fail(LPM_ERR_INTERNAL, "laplacian: %d levels (1..%d)", levels, LPM_LAP_MAX);
    p->levels = levels;
    size_t total = 0;
    for (int k = 0; k <= levels; k++) {
        for (int j = 0; j < 3; j++)
            p->dims[k][j] = k == 0 ? (j == 0 ? D : j == 1 ? H : W) : (p->dims[k - 1][j] + 1) / 2;
        total += numel3(p->dims[k]);
    }
    size_t n0 = numel3(p->dims[0]);
    p->store = lpm_malloc(total, sizeof(float));
    float *tmp = p->store ? lpm_malloc(3 * n0, sizeof(float)) : NULL;
    if (!tmp) {
        lpm_lap_free(p);
        return LPM_ERR_INTERNAL;
    }
    size_t off = 0;
    for (int k = 0; k <= levels; k++) {
        p->bands[k] = p->store + off;
        off += numel3(p->dims[k]);
    }
    memcpy(p->bands[0], x, n0 * sizeof(float));
    lpm_status st = LPM_OK;
    for (int k = 0; k < levels && !st; k++)
        st = resize3(p->bands[k], p->bands[k + 1], p->dims[k], 0, tmp, tmp + n0);
    /* Ascending, so level k+1 is still Gaussian when band k subtracts its expansion. */
    for (int k = 0; k < levels && !st; k++) {
        float *e = tmp + 2 * n0;
        st = resize3(p->bands[k + 1], e, p->dims[k], 1, tmp, tmp + n0);
        if (st) break;
        size_t n = numel3(p->dims[k]);
        float *band = p->bands[k];
#pragma omp parallel for schedule(static) if ((int64_t)n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) band[i] -= e[i];
    }
    free(tmp);
    if (st) lpm_lap_free(p);
    return st;
}

lpm_status lpm_lap_collapse(const lpm_lap_pyramid *p, float *out) {
    size_t n0 = numel3(p->dims[0]);
    float *tmp = lpm_malloc(4 * n0, sizeof(float));
    if (!tmp) return LPM_ERR_INTERNAL;
    float *cur = tmp + 2 * n0, *next = tmp + 3 * n0;
    lpm_status st = LPM_OK;
    memcpy(cur, p->bands[p->levels], numel3(p->dims[p->levels]) * sizeof(float));
    for (int k = p->levels - 1; k >= 0 && !st; k--) {
        st = resize3(cur, next, p->dims[k], 1, tmp, tmp + n0);
        if (st) break;
        size_t n = numel3(p->dims[k]);
        const float *band = p->bands[k];
#pragma omp parallel for schedule(static) if ((int64_t)n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) next[i] += band[i];
        float *t = cur;
        cur = next, next = t;
    }
    if (!st) memcpy(out, cur, n0 * sizeof(float));
    free(tmp);
    return st;
}

void lpm_lap_free(lpm_lap_pyramid *p) {
    free(p->store);
    memset(p, 0, sizeof *p);
}

lpm_status lpm_fuse_laplacian(const float *a, const float *b, float *out, int64_t D, int64_t H,
                              int64_t W) {
    lpm_lap_pyramid pa, pb;
    lpm_status st = lpm_lap_build(&pa, a, D, H, W, LEVELS);
    if (st) return st;
    st = lpm_lap_build(&pb, b, D, H, W, LEVELS);
    if (st) {
        lpm_lap_free(&pa);
        return st;
    }
    for (int k = 0; k <= LEVELS; k++) {
        size_t n = numel3(pa.dims[k]);
        float *x = pa.bands[k];
        const float *y = pb.bands[k];
        if (k == LEVELS) {
#pragma omp parallel for schedule(static) if ((int64_t)n >= PAR_MIN)
            for (size_t i = 0; i < n; i++) x[i] = 0.5f * (x[i] + y[i]);
        } else {
#pragma omp parallel for schedule(static) if ((int64_t)n >= PAR_MIN)
            for (size_t i = 0; i < n; i++)
                if (fabsf(y[i]) > fabsf(x[i])) x[i] = y[i];
        }
    }
    st = lpm_lap_collapse(&pa, out);
    lpm_lap_free(&pa);
    lpm_lap_free(&pb);
    return st;
}
