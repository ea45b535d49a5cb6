/* VIF (docs/lpmnet.md section 3): pixel-domain visual information fidelity, 3-D, four scales.
 *
 * Every "valid" Gaussian filtering is separable (W, then H, then D) and streamed over the
 * D axis: each input slice is filtered in-plane into a ring of N slices, and an output
 * slice is formed as soon as its N input slices are in the ring. Memory is one ring of a
 * band of rows per thread instead of full filtered float64 volumes. */
#include "metrics.h"
#include "core/core.h"
#include "core/vmath.h"

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

LPM_INLINE void load_row(double *r, const sources *s, int i, size_t off, int64_t n) {
    if (s->f32[i])
        for (int64_t k = 0; k < n; k++) r[k] = s->f32[i][off + (size_t)k];
    else
        memcpy(r, s->f64[i] + off, (size_t)n * sizeof(double));
}

/* One filtered product: source i, times source j when j >= 0. */
typedef struct { int i, j; } product;

/* Output rows per task: fixed (not tied to the thread count) so that the sums, formed per
 * (slice, band) and added in order, do not depend on the number of threads. */
#define BAND 32

/* Called with output rows y0 .. y0+ny-1 of output slice od (strided units) of band `band`:
 * out[p] holds them for product p, ny x ow values. Called concurrently for different bands. */
typedef void (*band_fn)(void *ctx, int64_t od, int64_t band, int64_t y0, int64_t ny,
                        double *const *out, int64_t ow);

/* Band b of filter_valid (one task): r is the task's thread's buffer. Cloned, so its loops
 * run 8 doubles a vector where an OpenMP body is compiled for baseline x86-64 (2). */
LPM_CLONES static void filter_band(const sources *s, const product *pr, int np, const double *g,
                                   int n, int stride, band_fn fn, void *ctx, int64_t b,
                                   double *r) {
    const int64_t D = s->D, H = s->H, W = s->W;
    const int64_t vh = H - n + 1, vw = W - n + 1;
    const int64_t oh = (vh + stride - 1) / stride, ow = (vw + stride - 1) / stride;
    const int64_t hin = (BAND - 1) * stride + n;
    const size_t band = (size_t)(BAND * ow);
    double *r2 = r + W;
    double *tw = r2 + W, *ring = tw + (size_t)np * (size_t)hin * (size_t)ow;
    double *out = ring + (size_t)n * (size_t)np * band, *outp[8];
    int64_t y0 = b * BAND, ny = oh - y0 < BAND ? oh - y0 : BAND;
    int64_t h0 = y0 * stride, nh = (ny - 1) * stride + n;   /* input rows of the band */
    int c = n / 2;                                           /* centre tap (n is odd) */
    for (int p = 0; p < np; p++) outp[p] = out + (size_t)p * band;
    for (int64_t d = 0; d < D; d++) {
        /* W pass of the band's input rows */
        for (int p = 0; p < np; p++)
            for (int64_t h = 0; h < nh; h++) {
                size_t base = (size_t)((d * H + h0 + h) * W);
                load_row(r, s, pr[p].i, base, W);
                if (pr[p].j >= 0) {
                    load_row(r2, s, pr[p].j, base, W);
                    for (int64_t w = 0; w < W; w++) r[w] *= r2[w];
                }
                double *o = tw + ((size_t)p * (size_t)hin + (size_t)h) * (size_t)ow;
                /* the kernel is symmetric: pair tap k with tap n-1-k; k outer, x inner vectorises */
                for (int64_t x = 0; x < ow; x++) o[x] = g[c] * r[x * stride + c];
                for (int k = 0; k < c; k++)
                    for (int64_t x = 0; x < ow; x++)
                        o[x] += g[k] * (r[x * stride + k] + r[x * stride + n - 1 - k]);
            }
        /* H pass into ring slot d mod n */
        double *slot = ring + (size_t)(d % n) * (size_t)np * band;
        for (int p = 0; p < np; p++)
            for (int64_t y = 0; y < ny; y++) {
                const double *t = tw + ((size_t)p * (size_t)hin + (size_t)(y * stride)) * (size_t)ow;
                double *o = slot + (size_t)p * band + (size_t)(y * ow);
                const double *tc = t + (size_t)c * (size_t)ow;
                for (int64_t x = 0; x < ow; x++) o[x] = g[c] * tc[x];
                for (int k = 0; k < c; k++) {
                    const double *t0 = t + (size_t)k * (size_t)ow, *t1 = t + (size_t)(n - 1 - k) * (size_t)ow;
                    for (int64_t x = 0; x < ow; x++) o[x] += g[k] * (t0[x] + t1[x]);
                }
            }
        /* D pass: output slice od0 = d - n + 1 needs input slices od0 .. d */
        int64_t od0 = d - n + 1;
        if (od0 < 0 || od0 % stride) continue;
        for (int p = 0; p < np; p++) {
            double *o = outp[p];
#define RING(k) (ring + ((size_t)((od0 + (k)) % n) * (size_t)np + (size_t)p) * band)
            const double *tc = RING(c);
            for (int64_t x = 0; x < ny * ow; x++) o[x] = g[c] * tc[x];
            for (int k = 0; k < c; k++) {
                const double *t0 = RING(k), *t1 = RING(n - 1 - k);
                for (int64_t x = 0; x < ny * ow; x++) o[x] += g[k] * (t0[x] + t1[x]);
            }
#undef RING
        }
        fn(ctx, od0 / stride, b, y0, ny, outp, ow);
    }
}

/* Valid filtering with the 1-D kernel g (n taps) on every axis, keeping every stride-th
 * output voxel (from 0) on every axis, for np (<= 8) products of s. The output rows are cut
 * into bands of BAND rows, one task each; a task streams over D with its own ring of n
 * in-plane filtered slices (memory per thread: n x np x BAND x ow doubles) and has no
 * barrier inside, so it stays fast on a machine shared with other jobs. */
static lpm_status filter_valid(const sources *s, const product *pr, int np, const double *g,
                               int n, int stride, band_fn fn, void *ctx) {
    int64_t D = s->D, H = s->H, W = s->W;
    int64_t vd = D - n + 1, vh = H - n + 1, vw = W - n + 1;
    if (vd <= 0 || vh <= 0 || vw <= 0) return LPM_OK;
    int64_t oh = (vh + stride - 1) / stride, ow = (vw + stride - 1) / stride;
    int64_t nbands = (oh + BAND - 1) / BAND, hin = (BAND - 1) * stride + n;
    size_t band = (size_t)(BAND * ow);
    /* per thread: rows (2W), W pass (np, hin, ow), ring (n, np, BAND, ow), out (np, BAND, ow) */
    size_t per = 2 * (size_t)W + (size_t)np * ((size_t)hin * (size_t)ow + ((size_t)n + 1) * band);
    double *buf = lpm_malloc((size_t)lpm_get_threads() * per, sizeof(double));
    if (!buf) return LPM_ERR_INTERNAL;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < nbands; b++)
        filter_band(s, pr, np, g, n, stride, fn, ctx, b, buf + (size_t)lpm_thread_id() * per);
    free(buf);
    return LPM_OK;
}

/* ---- scale statistics: products A, B, F, AA, BB, FF, AF, BF */
static const product STAT_PR[8] = {{0, -1}, {1, -1}, {2, -1}, {0, 0},
                                   {1, 1},  {2, 2},  {0, 2},  {1, 2}};

typedef struct {
    double *part;    /* per (output slice, band): num_A, den_A, num_B, den_B */
    int64_t nbands;
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

static void stat_band(void *vctx, int64_t od, int64_t band, int64_t y0, int64_t ny,
                      double *const *o, int64_t ow) {
    stat_ctx *c = vctx;
    double t[4] = {0, 0, 0, 0};
    for (int64_t x = 0; x < ny * ow; x++) {
        vif_terms(o[0][x], o[2][x], o[3][x], o[5][x], o[6][x], &t[0], &t[1]);
        vif_terms(o[1][x], o[2][x], o[4][x], o[5][x], o[7][x], &t[2], &t[3]);
    }
    memcpy(c->part + 4 * (od * c->nbands + band), t, sizeof t);
}

/* ---- decimation: filtered A, B, F at every second voxel into dst (nh x nw slices) */
typedef struct {
    double *dst[NSRC];
    int64_t nh;
} down_ctx;

static void down_band(void *vctx, int64_t od, int64_t band, int64_t y0, int64_t ny,
                      double *const *o, int64_t ow) {
    down_ctx *c = vctx;
    for (int i = 0; i < NSRC; i++)
        memcpy(c->dst[i] + (size_t)((od * c->nh + y0) * ow), o[i], (size_t)(ny * ow) * sizeof(double));
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
            down_ctx dc = {{next, next + nv, next + 2 * nv}, nh};
            static const product DOWN_PR[NSRC] = {{0, -1}, {1, -1}, {2, -1}};
            st = filter_valid(&s, DOWN_PR, NSRC, g, n, 2, down_band, &dc);
            free(owned);
            owned = next;
            s = (sources){{NULL, NULL, NULL}, {dc.dst[0], dc.dst[1], dc.dst[2]}, nd, nh, nw};
            if (st != LPM_OK) break;
        }
        int64_t vd = s.D - n + 1, vh = s.H - n + 1;
        if (vd <= 0 || vh <= 0 || s.W - n + 1 <= 0) continue;
        int64_t nb = (vh + BAND - 1) / BAND;
        stat_ctx c = {lpm_calloc((size_t)(vd * nb) * 4, sizeof(double)), nb};
        if (!c.part) {
            st = LPM_ERR_INTERNAL;
            break;
        }
        st = filter_valid(&s, STAT_PR, 8, g, n, 1, stat_band, &c);
        for (int64_t i = 0; i < vd * nb; i++)
            for (int k = 0; k < 2; k++) num[k] += c.part[4 * i + 2 * k], den[k] += c.part[4 * i + 2 * k + 1];
        free(c.part);
    }
    free(owned);
    if (st != LPM_OK) return st;
    /* VIF_X = (num + 1e-10)/(den + 1e-10); VIF = (VIF_A + VIF_B)/2 */
    *vif = ((num[0] + EPS) / (den[0] + EPS) + (num[1] + EPS) / (den[1] + EPS)) / 2;
    return LPM_OK;
}
