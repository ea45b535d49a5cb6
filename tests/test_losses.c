/* Training objective and optimiser (src/train): hand-checked cases and finite differences,
 * then everything against PyTorch (losses.safetensors from reference/fixtures_losses.py). */
#include "io/io.h"
#include "test.h"
#include "train/adam.h"
#include "train/loss.h"

#include <stdint.h>

static float *alloc_f(size_t n) {
    float *p = lpm_calloc(n, sizeof(float));
    if (!p) {
        fprintf(stderr, "test_losses: out of memory\n");
        exit(1);
    }
    return p;
}

static void fill_uniform(float *v, size_t n, lpm_rng *r) {
    for (size_t i = 0; i < n; i++) v[i] = (float)lpm_rng_uniform(r);
}

static float max_abs(const float *v, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(v[i]));
    return m;
}

/* ---------------------------------------------------------------- hand-checked */

static void test_ssim_identity(void) {
    int64_t D = 9, H = 10, W = 11, N = D * H * W;
    float *x = alloc_f(N), *dy = alloc_f(N);
    lpm_rng r;
    lpm_rng_seed(&r, 1);
    fill_uniform(x, N, &r);
    double s = 0;
    CHECK(lpm_ssim3d(&s, x, x, D, H, W, dy, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(s - 1.0) <= 1e-6, "SSIM(x,x) = %.9f, want 1", s);
    /* y = x is the maximum of SSIM(x, .): the gradient vanishes there */
    CHECK(max_abs(dy, N) <= 1e-7f, "max |dSSIM(x,x)/dy| = %g, want 0", max_abs(dy, N));
    printf("  info SSIM(x,x) = %.9f, max|grad| %.3g\n", s, max_abs(dy, N));
    free(x), free(dy);
}

static void test_sf_ramp(void) {
    int64_t D = 5, H = 6, W = 7, N = D * H * W;
    float *f = alloc_f(N);
    double s = 0;
    /* a ramp along w with step c: every dW is c, dD = dH = 0, so SF = c */
    for (int64_t i = 0; i < N; i++) f[i] = 0.375f * (float)(i % W);
    CHECK(lpm_sf(&s, f, D, H, W, NULL, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(s - 0.375) <= 1e-12, "SF(ramp along w) = %.12g, want 0.375", s);
    /* ramp along all three axes: SF = sqrt(a^2 + b^2 + c^2) */
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) f[(d * H + h) * W + w] = 0.25f * d + 0.5f * h + 0.125f * w;
    CHECK(lpm_sf(&s, f, D, H, W, NULL, 1.0) == LPM_OK, "%s", lpm_last_error());
    double want = sqrt(0.25 * 0.25 + 0.5 * 0.5 + 0.125 * 0.125);
    CHECK(fabs(s - want) <= 1e-12, "SF(3-axis ramp) = %.12g, want %.12g", s, want);
    free(f);
}

/* A = 0.02 w, B = 0.03 d - 0.01 w, f = 0: the stronger difference is A's along W (0.02),
 * B's along D (0.03), and A's on the tie along H (both 0), so E = 0.02^2 + 0.03^2 + 0.
 * f = A: along W and H f matches, along D the residual is -0.03, so E = 0.03^2. */
static void test_edge_known(void) {
    int64_t D = 5, H = 6, W = 7, N = D * H * W;
    float *a = alloc_f(N), *b = alloc_f(N), *f = alloc_f(N), *df = alloc_f(N);
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t i = (d * H + h) * W + w;
                a[i] = 0.02f * (float)w, b[i] = 0.03f * (float)d - 0.01f * (float)w, f[i] = 0.0f;
            }
    double e = 0;
    CHECK(lpm_edge(&e, a, b, f, D, H, W, df, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(e - (0.02 * 0.02 + 0.03 * 0.03)) <= 1e-8, "E(A, B, 0) = %.9g, want 1.3e-3", e);
    /* f = 0 inside: the residuals of one voxel's two sides cancel along W and D */
    int64_t mid = (2 * H + 3) * W + 3;
    CHECK(fabsf(df[mid]) <= 1e-9f, "dE/df inside = %g, want 0", df[mid]);
    CHECK(lpm_edge(&e, a, b, a, D, H, W, NULL, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(e - 0.03 * 0.03) <= 1e-8, "E(A, B, A) = %.9g, want 9e-4", e);
    free(a), free(b), free(f), free(df);
}

/* The fusion target. Of one volume with itself it is that volume (the pyramid fusion and S
 * both give A back). Of the constants A = 0.3 and B = 0.2 it is (0.25 + 0.3) / 2: the pyramid
 * averages the flat sources, S takes the brighter one. One bright voxel added to B is kept:
 * there S is 0.3 plus B's detail, 1.01 - (0.2 + 0.81 / 125). */
static void test_target_known(void) {
    int64_t D = 9, H = 10, W = 11, N = D * H * W;
    float *a = alloc_f(N), *b = alloc_f(N), *t = alloc_f(N);
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    fill_uniform(a, N, &r);
    CHECK(lpm_fusion_target(t, a, a, D, H, W) == LPM_OK, "%s", lpm_last_error());
    float worst = 0;
    for (int64_t i = 0; i < N; i++) worst = fmaxf(worst, fabsf(t[i] - a[i]));
    CHECK(worst <= 1e-5f, "target(A, A) differs from A by %g", worst);
    for (int64_t i = 0; i < N; i++) a[i] = 0.3f, b[i] = 0.2f;
    CHECK(lpm_fusion_target(t, a, b, D, H, W) == LPM_OK, "%s", lpm_last_error());
    worst = 0;
    for (int64_t i = 0; i < N; i++) worst = fmaxf(worst, fabsf(t[i] - 0.275f));
    CHECK(worst <= 1e-6f, "target(0.3, 0.2) differs from 0.275 by %g", worst);
    int64_t mid = (4 * H + 5) * W + 5;
    b[mid] = 1.01f;
    CHECK(lpm_fusion_target(t, a, b, D, H, W) == LPM_OK, "%s", lpm_last_error());
    CHECK(t[mid] > 0.6f && t[mid] <= 1.0f, "target at the bright voxel = %g, want its detail kept", t[mid]);
    free(a), free(b), free(t);
}

/* lpm_qabf's value is the metric's QABF, bit for bit, and its gradient accumulates */
static void test_qabf_is_the_metric(void) {
    const int64_t D = 5, H = 12, W = 10, N = D * H * W;
    float *a = alloc_f(N), *b = alloc_f(N), *f = alloc_f(N), *df = alloc_f(N), *df2 = alloc_f(N);
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    fill_uniform(a, N, &r);
    fill_uniform(b, N, &r);
    for (int64_t i = 0; i < N; i++) f[i] = 0.5f * (a[i] + b[i]);
    double q, nabf, want;
    CHECK(lpm_metric_edges(&want, &nabf, a, b, f, D, H, W) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_qabf(&q, a, b, f, D, H, W, df, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(q == want, "lpm_qabf %.17g, the metric %.17g", q, want);
    for (int64_t i = 0; i < N; i++) df2[i] = 1.0f;
    CHECK(lpm_qabf(&q, a, b, f, D, H, W, df2, -2.0) == LPM_OK, "%s", lpm_last_error());
    double worst = 0;
    for (int64_t i = 0; i < N; i++) worst = fmax(worst, fabs(df2[i] - (1.0 - 2.0 * df[i])));
    CHECK(worst <= 1e-6 * fmax(1.0, max_abs(df, N)), "scale -2 onto 1: off by %g", worst);
    CHECK(max_abs(df, N) > 0, "QABF gradient is all zero");
    free(a), free(b), free(f), free(df), free(df2);
}

/* lpm_sf_match's ratio is the rSFe metric + 1 (no mask), its value (ratio - 1)^2; constant
 * sources give ratio 1 and no gradient */
static void test_sf_match_is_the_metric(void) {
    const int64_t D = 6, H = 9, W = 11, N = D * H * W;
    float *a = alloc_f(N), *b = alloc_f(N), *f = alloc_f(N), *df = alloc_f(N);
    lpm_rng r;
    lpm_rng_seed(&r, 13);
    fill_uniform(a, N, &r);
    fill_uniform(b, N, &r);
    for (int64_t i = 0; i < N; i++) f[i] = 0.3f * a[i] + 0.5f * b[i];
    lpm_metrics m;
    double value, ratio;
    CHECK(lpm_metric_stats(&m, a, b, f, D, H, W, NULL, LPM_M_RSFE) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_sf_match(&value, &ratio, a, b, f, D, H, W, df, 1.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs((ratio - 1) - m.rsfe) <= 1e-12 && ratio < 0.9, "SF ratio %.15g - 1, the metric's rSFe %.15g",
          ratio, m.rsfe);
    CHECK(fabs(value - (ratio - 1) * (ratio - 1)) <= 1e-15, "value %.15g = (ratio - 1)^2", value);
    CHECK(max_abs(df, N) > 0, "the SF-match gradient is all zero");
    for (int64_t i = 0; i < N; i++) a[i] = b[i] = 0.25f, df[i] = 0.0f;
    CHECK(lpm_sf_match(&value, &ratio, a, b, f, D, H, W, df, 1.0) == LPM_OK && ratio == 1.0 && value == 0.0 &&
          max_abs(df, N) == 0.0f, "constant sources: ratio %g, value %g, gradient %g", ratio, value, max_abs(df, N));
    free(a), free(b), free(f), free(df);
}

static void test_mse_known(void) {
    int64_t n = 1000;
    float *x = alloc_f(n), *y = alloc_f(n), *dy = alloc_f(n);
    /* y - x alternates +0.5, -1.5: MSE = (0.25 + 2.25)/2 = 1.25, dMSE/dy_i = 2 (y_i - x_i)/n */
    for (int64_t i = 0; i < n; i++) x[i] = 0.001f * i, y[i] = x[i] + (i % 2 ? -1.5f : 0.5f);
    double m = 0;
    CHECK(lpm_mse(&m, x, y, n, dy, 3.0) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(m - 1.25) <= 1e-6, "MSE = %.9g, want 1.25", m);
    CHECK(fabs(dy[0] - 3.0 * 2 * 0.5 / n) <= 1e-9 && fabs(dy[1] - 3.0 * 2 * -1.5 / n) <= 1e-9,
          "dMSE/dy = %g %g", dy[0], dy[1]);
    free(x), free(y), free(dy);
}

/* Central differences of value(y) at sampled voxels against the analytic gradient. */
typedef lpm_status (*scalar_fn)(double *v, const float *x, float *y, int64_t D, int64_t H,
                                int64_t W, float *dy);

static lpm_status ssim_fn(double *v, const float *x, float *y, int64_t D, int64_t H, int64_t W,
                          float *dy) {
    return lpm_ssim3d(v, x, y, D, H, W, dy, 1.0);
}

static lpm_status sf_fn(double *v, const float *x, float *y, int64_t D, int64_t H, int64_t W,
                        float *dy) {
    (void)x;
    return lpm_sf(v, y, D, H, W, dy, 1.0);
}

/* the edge term's second source; check_fd's x is the first */
static const float *edge_b;

static lpm_status edge_fn(double *v, const float *x, float *y, int64_t D, int64_t H, int64_t W,
                          float *dy) {
    return lpm_edge(v, x, edge_b, y, D, H, W, dy, 1.0);
}

/* (SF(y)/SF_R(x, edge_b) - 1)^2 with its gradient */
static lpm_status sf_match_fn(double *v, const float *x, float *y, int64_t D, int64_t H, int64_t W,
                              float *dy) {
    double ratio;
    return lpm_sf_match(v, &ratio, x, edge_b, y, D, H, W, dy, 1.0);
}

/* QABF of (x, edge_b) -> y: the metric's value with its gradient */
static lpm_status qabf_fn(double *v, const float *x, float *y, int64_t D, int64_t H, int64_t W,
                          float *dy) {
    return lpm_qabf(v, x, edge_b, y, D, H, W, dy, 1.0);
}

static void check_fd(const char *what, scalar_fn fn, float h) {
    int64_t D = 7, H = 8, W = 9, N = D * H * W;
    float *x = alloc_f(N), *y = alloc_f(N), *dy = alloc_f(N);
    lpm_rng r;
    lpm_rng_seed(&r, 7);
    fill_uniform(x, N, &r);
    for (int64_t i = 0; i < N; i++) y[i] = 0.6f * x[i] + 0.4f * (float)lpm_rng_uniform(&r);
    double v;
    CHECK(fn(&v, x, y, D, H, W, dy) == LPM_OK, "%s", lpm_last_error());
    float scale = max_abs(dy, N);
    double worst = 0;
    for (int k = 0; k < 40; k++) {
        int64_t i = (int64_t)(lpm_rng_uniform(&r) * N);
        if (k < 8) /* corners and faces, where the zero padding matters */
            i = (k & 1 ? D - 1 : 0) * H * W + (k & 2 ? H - 1 : 0) * W + (k & 4 ? W - 1 : 0);
        float y0 = y[i];
        double vp, vm;
        y[i] = y0 + h;
        double hp = (double)y[i] - y0;
        fn(&vp, x, y, D, H, W, NULL);
        y[i] = y0 - h;
        double hm = y0 - (double)y[i];
        fn(&vm, x, y, D, H, W, NULL);
        y[i] = y0;
        double fd = (vp - vm) / (hp + hm);
        worst = fmax(worst, fabs(fd - dy[i]) / scale);
    }
    CHECK(worst <= 2e-3, "%s: finite differences differ by %g of max|grad|", what, worst);
    printf("  info %-40s fd vs analytic: %.3g of max|grad| %.3g\n", what, worst, scale);
    free(x), free(y), free(dy);
}

static void test_cosine_closed(void) {
    CHECK(lpm_cosine_lr(1e-4, 0, 8) == 1e-4, "lr(0) = %g", lpm_cosine_lr(1e-4, 0, 8));
    CHECK(fabs(lpm_cosine_lr(1e-4, 4, 8) - 5e-5) <= 1e-18, "lr(E/2) = %g", lpm_cosine_lr(1e-4, 4, 8));
    CHECK(fabs(lpm_cosine_lr(1e-4, 8, 8)) <= 1e-18, "lr(E) = %g", lpm_cosine_lr(1e-4, 8, 8));
}

static void test_adam_first_step(void) {
    /* With zero moments the first step is lr * g / (|g| + eps'): a step of almost exactly lr
     * against the sign of g + wd p. */
    size_t n = 64;
    float p[64], g[64], p0[64];
    lpm_rng r;
    lpm_rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) p[i] = p0[i] = (float)lpm_rng_normal(&r), g[i] = (float)lpm_rng_normal(&r);
    lpm_adam a;
    CHECK(lpm_adam_init(&a, n) == LPM_OK, "%s", lpm_last_error());
    lpm_adam_step(&a, p, g, 1e-3);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double ge = g[i] + 3e-4 * p0[i];
        double want = p0[i] - 1e-3 * (ge > 0 ? 1 : -1);
        worst = fmax(worst, fabs(p[i] - want));
    }
    CHECK(worst <= 1e-6, "first Adam step: |p - (p0 - lr sign(g))| = %g", worst);
    CHECK(a.t == 1, "t = %lld", (long long)a.t);
    lpm_adam_free(&a);
}

/* ---------------------------------------------------------------- against PyTorch */

static const float *need(const lpm_st_file *f, const char *name, size_t numel) {
    int nd;
    int64_t shape[LPM_ST_MAXDIM];
    const float *p = lpm_st_find(f, name, &nd, shape);
    size_t n = 1;
    for (int i = 0; p && i < nd; i++) n *= (size_t)shape[i];
    CHECK(p && n == numel, "fixture tensor %s missing or not %zu values", name, numel);
    return p && n == numel ? p : NULL;
}

static void cmp_grad(const char *what, const float *got, const float *want, size_t n) {
    CHECK_CLOSE(what, got, want, n, 1e-4 * max_abs(want, n), 0.0);
}

static void fx_ssim_sf(const lpm_st_file *f, const char *size, int64_t D, int64_t H, int64_t W) {
    size_t N = (size_t)(D * H * W);
    char name[64], what[64];
    const float *x, *y, *val, *grad;
    snprintf(name, sizeof name, "ssim.%s.x", size), x = need(f, name, N);
    snprintf(name, sizeof name, "ssim.%s.y", size), y = need(f, name, N);
    snprintf(name, sizeof name, "ssim.%s.value", size), val = need(f, name, 1);
    snprintf(name, sizeof name, "ssim.%s.grad", size), grad = need(f, name, N);
    if (x && y && val && grad) {
        /* dy accumulates: start from 0.25 and use scale -2.5 */
        float *dy = alloc_f(N), *want = alloc_f(N);
        for (size_t i = 0; i < N; i++) dy[i] = 0.25f, want[i] = 0.25f - 2.5f * grad[i];
        double s = 0, s1 = 0;
        CHECK(lpm_ssim3d(&s, x, y, D, H, W, dy, -2.5) == LPM_OK, "%s", lpm_last_error());
        float sf32 = (float)s;
        snprintf(what, sizeof what, "ssim %s value", size);
        CHECK_CLOSE(what, &sf32, val, 1, 1e-5, 0.0);
        snprintf(what, sizeof what, "ssim %s grad (scaled, accumulated)", size);
        cmp_grad(what, dy, want, N);
        /* the value does not depend on the thread count */
        int nt = lpm_get_threads();
        lpm_set_threads(1);
        CHECK(lpm_ssim3d(&s1, x, y, D, H, W, NULL, 1.0) == LPM_OK, "%s", lpm_last_error());
        lpm_set_threads(nt);
        CHECK(s1 == s, "SSIM with 1 thread %.17g != %.17g with %d", s1, s, nt);
        free(dy), free(want);
    }
    snprintf(name, sizeof name, "sf.%s.f", size), x = need(f, name, N);
    snprintf(name, sizeof name, "sf.%s.value", size), val = need(f, name, 1);
    snprintf(name, sizeof name, "sf.%s.grad", size), grad = need(f, name, N);
    if (x && val && grad) {
        float *df = alloc_f(N);
        double s = 0;
        CHECK(lpm_sf(&s, x, D, H, W, df, 1.0) == LPM_OK, "%s", lpm_last_error());
        float sf32 = (float)s;
        snprintf(what, sizeof what, "sf %s value", size);
        CHECK_CLOSE(what, &sf32, val, 1, 0.0, 1e-6);
        snprintf(what, sizeof what, "sf %s grad", size);
        cmp_grad(what, df, grad, N);
        free(df);
    }

    const float *a, *b;
    snprintf(name, sizeof name, "edge.%s.a", size), a = need(f, name, N);
    snprintf(name, sizeof name, "edge.%s.b", size), b = need(f, name, N);
    snprintf(name, sizeof name, "edge.%s.f", size), x = need(f, name, N);
    snprintf(name, sizeof name, "edge.%s.value", size), val = need(f, name, 1);
    snprintf(name, sizeof name, "edge.%s.grad", size), grad = need(f, name, N);
    if (a && b && x && val && grad) {
        float *df = alloc_f(N);
        double e = 0;
        CHECK(lpm_edge(&e, a, b, x, D, H, W, df, 1.0) == LPM_OK, "%s", lpm_last_error());
        float e32 = (float)e;
        snprintf(what, sizeof what, "edge %s value", size);
        CHECK_CLOSE(what, &e32, val, 1, 0.0, 1e-6);
        snprintf(what, sizeof what, "edge %s grad", size);
        cmp_grad(what, df, grad, N);
        free(df);
    }
}

static void fx_mse(const lpm_st_file *f) {
    size_t N = 12 * 14 * 17;
    const float *x = need(f, "mse.x", N), *y = need(f, "mse.y", N), *val = need(f, "mse.value", 1),
                *grad = need(f, "mse.grad", N);
    if (!x || !y || !val || !grad) return;
    float *dy = alloc_f(N);
    double m = 0;
    CHECK(lpm_mse(&m, x, y, (int64_t)N, dy, 1.0) == LPM_OK, "%s", lpm_last_error());
    float m32 = (float)m;
    CHECK_CLOSE("mse value", &m32, val, 1, 0.0, 1e-6);
    cmp_grad("mse grad", dy, grad, N);
    free(dy);
}

/* S (the brighter blurred source plus the stronger detail) against PyTorch; T must then be
 * the mean of S and the pyramid fusion (tested in test_classical), clipped to [0, 1]. */
static void fx_target(const lpm_st_file *f) {
    int64_t D = 12, H = 14, W = 17;
    size_t N = (size_t)(D * H * W);
    const float *a = need(f, "target.a", N), *b = need(f, "target.b", N), *s = need(f, "target.s", N);
    if (!a || !b || !s) return;
    float *t = alloc_f(N), *p = alloc_f(N), *want = alloc_f(N);
    CHECK(lpm_fusion_target(t, a, b, D, H, W) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_classical_fuse("laplacian", a, b, p, D, H, W) == LPM_OK, "%s", lpm_last_error());
    for (size_t i = 0; i < N; i++) want[i] = fminf(fmaxf(0.5f * (p[i] + s[i]), 0.0f), 1.0f);
    CHECK_CLOSE("fusion target vs (pyramid + PyTorch's S) / 2", t, want, N, 1e-5, 0.0);
    free(t), free(p), free(want);
}

static void fx_loss(const lpm_st_file *f) {
    int64_t D = 16, H = 16, W = 32;
    size_t N = (size_t)(D * H * W);
    const float *A = need(f, "loss.A", N), *B = need(f, "loss.B", N), *F = need(f, "loss.F", N),
                *Det = need(f, "loss.Det", N), *R = need(f, "loss.R", 2 * N),
                *wt = need(f, "loss.weights", 5), *step = need(f, "loss.step", 2),
                *terms = need(f, "loss.terms", 10), *dF_want = need(f, "loss.dF", N),
                *dDet_want = need(f, "loss.dDet", N), *dR_want = need(f, "loss.dR", 2 * N);
    if (!A || !B || !F || !Det || !R || !wt || !step || !terms || !dF_want || !dDet_want || !dR_want)
        return;
    float lam = (float)lpm_lambda_s((int64_t)step[0], (int64_t)step[1]);
    CHECK_CLOSE("lambda_s(s, E)", &lam, &wt[3], 1, 0.0, 1e-6);
    lpm_loss_weights w = {.alpha = wt[0], .beta = wt[1], .gamma = wt[2],
                          .lambda_s = lpm_lambda_s((int64_t)step[0], (int64_t)step[1]), .edge = wt[4]};
    float *dF = alloc_f(N), *dDet = alloc_f(N), *dR = alloc_f(2 * N);
    /* stale values must be overwritten, not accumulated */
    for (size_t i = 0; i < N; i++) dF[i] = dDet[i] = dR[i] = dR[N + i] = 7.0f;
    lpm_loss_terms t;
    memset(&t, 0, sizeof t);
    CHECK(lpm_loss(&t, &w, A, B, F, Det, R, D, H, W, dF, dDet, dR) == LPM_OK, "%s", lpm_last_error());
    float got[10] = {(float)t.mse_af, (float)t.mse_bf, (float)t.ssim_af, (float)t.ssim_bf,
                     (float)t.ssim_adet, (float)t.ssim_bdet, (float)t.sf_f, (float)t.edge_f,
                     (float)t.mse_rec, (float)t.total};
    CHECK_CLOSE("loss terms (10) and total", got, terms, 10, 1e-5, 0.0);
    cmp_grad("loss dL/dF", dF, dF_want, N);
    cmp_grad("loss dL/dDet", dDet, dDet_want, N);
    cmp_grad("loss dL/dR", dR, dR_want, 2 * N);

    /* the two passes separately give the same numbers */
    lpm_loss_terms u;
    memset(&u, 0, sizeof u);
    CHECK(lpm_loss_fusion(&u, &w, A, B, F, Det, D, H, W, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_loss_recon(&u, A, B, R, D, H, W, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_loss_total(&u, &w) == t.total, "separate passes: total %.17g vs %.17g",
          lpm_loss_total(&u, &w), t.total);

    /* the target term adds target MSE(T, F) to the total and 2 target (F - T) / N to dF */
    lpm_loss_weights wt_target = w;
    wt_target.target = 30.0;
    float *dF2 = alloc_f(N), *T = alloc_f(N), *want = alloc_f(N);
    lpm_loss_terms v;
    memset(&v, 0, sizeof v);
    CHECK(lpm_loss_fusion(&v, &wt_target, A, B, F, Det, D, H, W, dF2, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_fusion_target(T, A, B, D, H, W) == LPM_OK, "%s", lpm_last_error());
    double m = 0;
    for (size_t i = 0; i < N; i++) {
        m += ((double)F[i] - T[i]) * ((double)F[i] - T[i]);
        want[i] = dF[i] + (float)(2.0 * 30.0 * ((double)F[i] - T[i]) / (double)N);
    }
    m /= (double)N;
    CHECK(m > 1e-3 && fabs(v.target_f - m) <= 1e-9 * (1 + m), "target_f %.9g, want MSE(T, F) = %.9g",
          v.target_f, m);
    v.mse_rec = u.mse_rec;
    CHECK(fabs(lpm_loss_total(&v, &wt_target) - (t.total + 30.0 * m)) <= 1e-9,
          "total with the target term %.12g, want %.12g", lpm_loss_total(&v, &wt_target), t.total + 30.0 * m);
    CHECK_CLOSE("dL/dF with the target term", dF2, want, N, 1e-6, 1e-5);
    free(dF2), free(T), free(want);
    free(dF), free(dDet), free(dR);
}

static void fx_adam(const lpm_st_file *f) {
    size_t n = 1000;
    int steps = 5;
    const float *p0 = need(f, "adam.p0", n), *grads = need(f, "adam.grads", steps * n),
                *params = need(f, "adam.params", steps * n), *lrs = need(f, "adam.lr", steps),
                *hp = need(f, "adam.hparams", 4);
    if (!p0 || !grads || !params || !lrs || !hp) return;
    lpm_adam a;
    CHECK(lpm_adam_init(&a, n) == LPM_OK, "%s", lpm_last_error());
    CHECK(a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 3e-4,
          "Adam defaults are not the authors'");
    CHECK(fabsf((float)a.beta1 - hp[0]) == 0 && fabsf((float)a.beta2 - hp[1]) == 0 &&
              fabsf((float)a.eps - hp[2]) == 0 && fabsf((float)a.weight_decay - hp[3]) == 0,
          "fixture hyperparameters differ from the defaults");
    float *p = alloc_f(n), *delta = alloc_f(n), *delta_want = alloc_f(n);
    memcpy(p, p0, n * sizeof(float));
    for (int k = 0; k < steps; k++) {
        char what[64];
        float lr = (float)lpm_cosine_lr(lrs[0], k, steps);
        snprintf(what, sizeof what, "adam lr at step %d (cosine, E = %d)", k + 1, steps);
        CHECK_CLOSE(what, &lr, &lrs[k], 1, 1e-8 * lrs[0], 1e-6);
        lpm_adam_step(&a, p, grads + k * n, lpm_cosine_lr(lrs[0], k, steps));
        const float *want = params + k * n;
        snprintf(what, sizeof what, "adam params after step %d", k + 1);
        CHECK_CLOSE(what, p, want, n, 1e-7, 1e-6);
        /* the update itself, not only the parameter it is added to */
        for (size_t i = 0; i < n; i++) delta[i] = p[i] - p0[i], delta_want[i] = want[i] - p0[i];
        snprintf(what, sizeof what, "adam p - p0 after step %d", k + 1);
        CHECK_CLOSE(what, delta, delta_want, n, 1e-4 * max_abs(delta_want, n), 0.0);
    }
    lpm_adam_free(&a);
    free(p), free(delta), free(delta_want);
}

static void fx_cosine(const lpm_st_file *f) {
    const float *meta = need(f, "cosine.meta", 2);
    if (!meta) return;
    int64_t E = (int64_t)meta[1];
    size_t n = (size_t)(2 * E + 1);
    const float *want = need(f, "cosine.lr", n);
    if (!want) return;
    float got[64];
    for (size_t e = 0; e < n && e < 64; e++) got[e] = (float)lpm_cosine_lr(meta[0], (int64_t)e, E);
    /* PyTorch steps the schedule recursively: last-bit differences, and a tiny non-zero
     * lr where the closed form gives exactly 0 */
    CHECK_CLOSE("cosine lr e = 0..2E vs CosineAnnealingLR", got, want, n, 1e-9 * meta[0], 1e-6);
}

int main(void) {
    printf("hand-checked\n");
    test_ssim_identity();
    test_sf_ramp();
    test_edge_known();
    test_target_known();
    test_mse_known();
    test_qabf_is_the_metric();
    test_sf_match_is_the_metric();
    check_fd("SSIM gradient", ssim_fn, 1e-2f);
    check_fd("SF gradient", sf_fn, 1e-2f);
    {
        lpm_rng r;
        lpm_rng_seed(&r, 11);
        float *b = alloc_f(7 * 8 * 9);
        fill_uniform(b, 7 * 8 * 9, &r);
        edge_b = b;
        check_fd("edge gradient", edge_fn, 1e-2f);
        check_fd("QABF gradient", qabf_fn, 1e-3f);
        check_fd("SF-match gradient", sf_match_fn, 1e-2f);
        free(b);
    }
    test_cosine_closed();
    test_adam_first_step();

    const char *dir = test_env("LPM_FIXTURES");
    char path[4096];
    lpm_st_file *f = NULL;
    if (!dir) {
        SKIP("PyTorch comparisons: LPM_FIXTURES is not set");
        return test_summary();
    }
    snprintf(path, sizeof path, "%s/losses.safetensors", dir);
    if (lpm_st_read(path, &f) != LPM_OK) {
        SKIP("PyTorch comparisons: %s (run reference/make_fixtures.py)", lpm_last_error());
        return test_summary();
    }
    printf("against PyTorch (%s)\n", path);
    fx_ssim_sf(f, "small", 12, 14, 17);
    fx_ssim_sf(f, "big", 16, 16, 32);
    fx_mse(f);
    fx_target(f);
    fx_loss(f);
    fx_adam(f);
    fx_cosine(f);
    lpm_st_close(f);
    return test_summary();
}
