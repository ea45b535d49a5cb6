/* VIF (LPMNET.md section 3): pixel-domain visual information fidelity, 3-D, four scales.
 *
 * Every "valid" Gaussian filtering is separable (W, then H, then D) and streamed over the
 * D axis: each input slice is filtered in-plane into a ring of N slices, and an output
 * slice is formed as soon as its N input slices are in the ring. Memory is the ring
 * (N x products x in-plane output size, float64) instead of full filtered volumes. */
#include "metrics.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

#define EPS 1e-10
#define NSRC 3   /* sources: A, B, F */

/* A source volume is float32 (scale 1, the caller's data) or float64 (later scales). */
typedef struct {
    const float *f32[NSRC];
    const double *f64[NSRC];
    int64_t D, H, W;
} sources;

static inline double src_at(const sources *s, int i, size_t off) {
    return s->f32[i] ? (double)s->f32[i][off] : s->f64[i][off];
}

/* One filtered product: source i, times source j when j >= 0. */
typedef struct { int i, j; } product;

/* Called with output slice od (in strided units): out[p] is that slice of product p,
 * oh x ow values. */
typedef void (*slice_fn)(void *ctx, int64_t od, double *const *out, int64_t oh, int64_t ow);

/* Valid filtering with the 1-D kernel g (n taps) on every axis, keeping every stride-th
 * output voxel (from 0) on every axis, for np products of s; calls fn per output slice.
 * Output slices arrive in order; fn may use OpenMP inside. */
static lpm_status filter_valid(const sources *s, const product *pr, int np, const double *g,
                               int n, int stride, slice_fn fn, void *ctx) {
    int64_t D = s->D, H = s->H, W = s->W;
    int64_t vd = D - n + 1, vh = H - n + 1, vw = W - n + 1;
    if (vd <= 0 || vh <= 0 || vw <= 0) return LPM_OK;
    int64_t oh = (vh + stride - 1) / stride, ow = (vw + stride - 1) / stride;
    size_t plane = (size_t)(oh * ow), rowsW = (size_t)(H * ow);
    /* (np, H, ow) after the W pass; ring (n, np, oh, ow) after the H pass; (np, oh, ow) out */
    double *tw = lpm_malloc((size_t)np * rowsW, sizeof(double));
    double *ring = lpm_malloc((size_t)n * (size_t)np * plane, sizeof(double));
    double *out = lpm_malloc((size_t)np * plane, sizeof(double));
    double *row = lpm_malloc((size_t)lpm_get_threads() * (size_t)W, sizeof(double));
    double **outp = lpm_malloc((size_t)np, sizeof(double *));
    if (!tw || !ring || !out || !row || !outp) {
        free(tw), free(ring), free(out), free(row), free(outp);
        return LPM_ERR_INTERNAL;
    }
    for (int p = 0; p < np; p++) outp[p] = out + (size_t)p * plane;
    for (int64_t d = 0; d < D; d++) {
        /* W pass: one row of one product per iteration */
#pragma omp parallel for schedule(static)
        for (int64_t ph = 0; ph < (int64_t)np * H; ph++) {
            int p = (int)(ph / H);
            int64_t h = ph % H;
            double *r = row + (size_t)lpm_thread_id() * (size_t)W;
            size_t base = (size_t)((d * H + h) * W);
            for (int64_t w = 0; w < W; w++) {
                double v = src_at(s, pr[p].i, base + (size_t)w);
                r[w] = pr[p].j >= 0 ? v * src_at(s, pr[p].j, base + (size_t)w) : v;
            }
            double *o = tw + (size_t)p * rowsW + (size_t)(h * ow);
            for (int64_t x = 0; x < ow; x++) {
                const double *q = r + x * stride;
                double acc = 0;
                for (int k = 0; k < n; k++) acc += g[k] * q[k];
                o[x] = acc;
            }
        }
        /* H pass into ring slot d mod n */
        double *slot = ring + (size_t)(d % n) * (size_t)np * plane;
#pragma omp parallel for schedule(static)
        for (int64_t py = 0; py < (int64_t)np * oh; py++) {
            int p = (int)(py / oh);
            int64_t y = py % oh;
            const double *src = tw + (size_t)p * rowsW + (size_t)(y * stride * ow);
            double *o = slot + (size_t)p * plane + (size_t)(y * ow);
            for (int64_t x = 0; x < ow; x++) {
                double acc = 0;
                for (int k = 0; k < n; k++) acc += g[k] * src[(size_t)(k * ow) + (size_t)x];
                o[x] = acc;
            }
        }
        /* D pass: output slice od0 = d - n + 1 needs input slices od0 .. d */
        int64_t od0 = d - n + 1;
        if (od0 < 0 || od0 % stride) continue;
#pragma omp parallel for schedule(static)
        for (int64_t py = 0; py < (int64_t)np * oh; py++) {
            int p = (int)(py / oh);
            int64_t y = py % oh;
            double *o = out + (size_t)p * plane + (size_t)(y * ow);
            for (int64_t x = 0; x < ow; x++) {
                double acc = 0;
                for (int k = 0; k < n; k++)
                    acc += g[k] * ring[((size_t)((od0 + k) % n) * (size_t)np + (size_t)p) * plane +
                                       (size_t)(y * ow + x)];
                o[x] = acc;
            }
        }
        fn(ctx, od0 / stride, outp, oh, ow);
    }
    free(tw), free(ring), free(out), free(row), free(outp);
    return LPM_OK;
}

/* ---- scale statistics: products A, B, F, AA, BB, FF, AF, BF */
static const product STAT_PR[8] = {{0, -1}, {1, -1}, {2, -1}, {0, 0},
                                   {1, 1},  {2, 2},  {0, 2},  {1, 2}};

typedef struct {
    double *slice;   /* per output slice: num_A, den_A, num_B, den_B */
    double *rows;    /* per output row, the same four */
} stat_ctx;

/* One voxel's num/den terms for reference X against F. */
static void vif_terms(double mx, double mf, double xx, double ff, double xf, double *num,
                      double *den) {
    double s1 = xx - mx * mx, s2 = ff - mf * mf, s12 = xf - mx * mf;
    if (s1 < 0) s1 = 0;
    if (s2 < 0) s2 = 0;
    double g = s12 / (s1 + EPS), sv = s2 - g * s12;
    if (s1 < EPS) g = 0, sv = s2, s1 = 0;
    if (s2 < EPS) g = 0, sv = 0;
    if (g < 0) sv = s2, g = 0;
    if (sv < EPS) sv = EPS;
    *num += log10(1 + g * g * s1 / (sv + 2));
    *den += log10(1 + s1 / 2);
}

static void stat_slice(void *vctx, int64_t od, double *const *o, int64_t oh, int64_t ow) {
    stat_ctx *c = vctx;
#pragma omp parallel for schedule(static)
    for (int64_t y = 0; y < oh; y++) {
        double t[4] = {0, 0, 0, 0};
        for (int64_t x = y * ow; x < (y + 1) * ow; x++) {
            vif_terms(o[0][x], o[2][x], o[3][x], o[5][x], o[6][x], &t[0], &t[1]);
            vif_terms(o[1][x], o[2][x], o[4][x], o[5][x], o[7][x], &t[2], &t[3]);
        }
        memcpy(c->rows + 4 * y, t, sizeof t);
    }
    double *s = c->slice + 4 * od;
    for (int64_t y = 0; y < oh; y++)
        for (int k = 0; k < 4; k++) s[k] += c->rows[4 * y + k];
}

/* ---- decimation: filtered A, B, F at every second voxel into dst */
typedef struct {
    double *dst[NSRC];
} down_ctx;

static void down_slice(void *vctx, int64_t od, double *const *o, int64_t oh, int64_t ow) {
    down_ctx *c = vctx;
    size_t plane = (size_t)(oh * ow);
    for (int i = 0; i < NSRC; i++)
        memcpy(c->dst[i] + (size_t)od * plane, o[i], plane * sizeof(double));
}

static void gauss(double *g, int n, double sigma) {
    double sum = 0;
    for (int k = 0; k < n; k++) {
        double x = k - (n - 1) / 2.0;
        g[k] = exp(-(x * x) / (2.0 * sigma * sigma));
        sum += g[k];
    }
    for (int k = 0; k < n; k++) g[k] /= sum;
}

lpm_status lpm_metric_vif(double *vif, const float *a, const float *b, const float *f, int64_t D,
                          int64_t H, int64_t W) {
    sources s = {{a, b, f}, {NULL, NULL, NULL}, D, H, W};
    double *owned = NULL;   /* the current scale's float64 A, B, F (one allocation) */
    double num[2] = {0, 0}, den[2] = {0, 0};
    lpm_status st = LPM_OK;
    for (int scale = 1; scale <= 4 && st == LPM_OK; scale++) {
        int n = (1 << (5 - scale)) + 1;
        double g[17];
        gauss(g, n, n / 5.0);
        if (scale > 1) {
            int64_t vd = s.D - n + 1, vh = s.H - n + 1, vw = s.W - n + 1;
            if (vd <= 0 || vh <= 0 || vw <= 0) break;
            int64_t nd = (vd + 1) / 2, nh = (vh + 1) / 2, nw = (vw + 1) / 2;
            size_t nv = (size_t)(nd * nh * nw);
            double *next = lpm_malloc(NSRC * nv, sizeof(double));
            if (!next) {
                st = LPM_ERR_INTERNAL;
                break;
            }
            down_ctx dc = {{next, next + nv, next + 2 * nv}};
            static const product DOWN_PR[NSRC] = {{0, -1}, {1, -1}, {2, -1}};
            st = filter_valid(&s, DOWN_PR, NSRC, g, n, 2, down_slice, &dc);
            free(owned);
            owned = next;
            s = (sources){{NULL, NULL, NULL}, {dc.dst[0], dc.dst[1], dc.dst[2]}, nd, nh, nw};
            if (st != LPM_OK) break;
        }
        int64_t vd = s.D - n + 1, vh = s.H - n + 1;
        if (vd <= 0 || vh <= 0 || s.W - n + 1 <= 0) continue;
        stat_ctx c = {lpm_calloc((size_t)vd * 4, sizeof(double)),
                      lpm_malloc((size_t)vh * 4, sizeof(double))};
        if (!c.slice || !c.rows) {
            free(c.slice), free(c.rows);
            st = LPM_ERR_INTERNAL;
            break;
        }
        st = filter_valid(&s, STAT_PR, 8, g, n, 1, stat_slice, &c);
        for (int64_t d = 0; d < vd; d++)
            for (int k = 0; k < 2; k++) num[k] += c.slice[4 * d + 2 * k], den[k] += c.slice[4 * d + 2 * k + 1];
        free(c.slice), free(c.rows);
    }
    free(owned);
    if (st != LPM_OK) return st;
    /* VIF_X = (num + 1e-10)/(den + 1e-10); VIF = (VIF_A + VIF_B)/2 */
    *vif = ((num[0] + EPS) / (den[0] + EPS) + (num[1] + EPS) / (den[1] + EPS)) / 2;
    return LPM_OK;
}
