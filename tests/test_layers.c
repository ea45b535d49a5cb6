/* Conv_in, dense module, CfC heads and the max of three branches: against PyTorch
 * ($LPM_FIXTURES/layers.safetensors) and against central finite differences (always). */
#include "io/io.h"
#include "model/max3.h"
#include "model/model.h"
#include "test.h"

/* ------------------------------------------------------------------ helpers */

static float *alloc_f(size_t n) {
    float *p = lpm_calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void fill_uniform(float *x, size_t n, double lo, double hi, lpm_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * lpm_rng_uniform(r));
}

static void fill_normal(float *x, size_t n, lpm_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)lpm_rng_normal(r);
}

/* (C, n) planar <-> (n, C) channels innermost */
static void to_last(float *dst, const float *src, int C, size_t n) {
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n; i++) dst[i * C + c] = src[c * n + i];
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* Tensor from the fixture with its element count checked; NULL (and a failed check) if absent. */
static const float *fx(const lpm_st_file *f, const char *prefix, const char *name, size_t numel) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *t = lpm_st_find(f, full, &ndim, shape);
    size_t n = 1;
    for (int i = 0; t && i < ndim; i++) n *= (size_t)shape[i];
    CHECK(t && n == numel, "fixture tensor %s missing or has %zu values, want %zu", full,
          t ? n : 0, numel);
    return t && n == numel ? t : NULL;
}

/* Finite differences: forward(ctx, out) fills nout outputs; the loss is sum(out * g).
 * Checks `samples` random entries of param against analytic (same length n). Only the
 * outputs that change contribute to sum((out+ - out-) g), so rounding stays small. */
typedef void (*forward_fn)(void *ctx, float *out);

static void fd_check(const char *what, void *ctx, forward_fn fwd, size_t nout, const float *g,
                     float *param, const float *analytic, size_t n, int samples, lpm_rng *r) {
    float *op = alloc_f(nout), *om = alloc_f(nout);
    double scale = max_abs(analytic, n), worst = 0;
    size_t worst_at = 0;
    double worst_fd = 0;
    const double h = 1e-3;
    for (int s = 0; s < samples; s++) {
        size_t i = (size_t)(lpm_rng_uniform(r) * (double)n);
        float v = param[i];
        param[i] = (float)(v + h);
        double hp = (double)param[i] - v;
        fwd(ctx, op);
        param[i] = (float)(v - h);
        double hm = v - (double)param[i];
        fwd(ctx, om);
        param[i] = v;
        double diff = 0;
        for (size_t k = 0; k < nout; k++) diff += ((double)op[k] - om[k]) * g[k];
        double fd = diff / (hp + hm);
        /* relative on entries that are not tiny next to the tensor's largest */
        double err = fabs(fd - analytic[i]) / (fabs(analytic[i]) + 0.05 * scale + 1e-12);
        if (err > worst) worst = err, worst_at = i, worst_fd = fd;
    }
    CHECK(worst <= 2e-2, "%s: finite difference %.6g vs analytic %.6g at [%zu] (rel %.3g)",
          what, worst_fd, (double)analytic[worst_at], worst_at, worst);
    if (worst <= 2e-2)
        printf("  ok   %-40s finite differences: worst rel err %.3g (%d samples)\n", what, worst,
               samples);
    free(op);
    free(om);
}

/* ------------------------------------------------------------------ conv_in */

typedef struct {
    float *a, *b, *w, *bias;
    int64_t D, H, W;
} conv_ctx;

static void conv_fwd(void *c, float *out) {
    conv_ctx *x = c;
    lpm_conv_in_forward(out, x->a, x->b, x->w, x->bias, x->D, x->H, x->W);
}

static void test_conv_in_fd(void) {
    lpm_rng r;
    lpm_rng_seed(&r, 11);
    conv_ctx c = {.D = 4, .H = 6, .W = 5};
    size_t nv = (size_t)(c.D * c.H * c.W), nw = 8 * 2 * 27;
    c.a = alloc_f(nv), c.b = alloc_f(nv), c.w = alloc_f(nw), c.bias = alloc_f(8);
    fill_uniform(c.a, nv, 0, 1, &r);
    fill_uniform(c.b, nv, 0, 1, &r);
    fill_uniform(c.w, nw, -0.2, 0.2, &r);
    fill_uniform(c.bias, 8, -0.2, 0.2, &r);
    float *g = alloc_f(nv * 8), *dw = alloc_f(nw), *db = alloc_f(8);
    fill_normal(g, nv * 8, &r);
    lpm_conv_in_backward(dw, db, g, c.a, c.b, c.D, c.H, c.W);
    fd_check("conv_in weight", &c, conv_fwd, nv * 8, g, c.w, dw, nw, 40, &r);
    fd_check("conv_in bias", &c, conv_fwd, nv * 8, g, c.bias, db, 8, 8, &r);
    free(c.a), free(c.b), free(c.w), free(c.bias), free(g), free(dw), free(db);
}

static void test_conv_in_ref(const lpm_st_file *f) {
    const int64_t D = 4, H = 5, W = 6;
    size_t nv = (size_t)(D * H * W);
    const float *a = fx(f, "conv_in.", "a", nv), *b = fx(f, "conv_in.", "b", nv);
    const float *w = fx(f, "conv_in.", "weight", 432), *bias = fx(f, "conv_in.", "bias", 8);
    const float *out = fx(f, "conv_in.", "out", nv * 8), *gout = fx(f, "conv_in.", "grad_out", nv * 8);
    const float *gw = fx(f, "conv_in.", "grad_weight", 432), *gb = fx(f, "conv_in.", "grad_bias", 8);
    if (!a || !b || !w || !bias || !out || !gout || !gw || !gb) return;
    float *X = alloc_f(nv * 8), *want = alloc_f(nv * 8), *dX = alloc_f(nv * 8);
    float *dw = alloc_f(432), *db = alloc_f(8);
    lpm_conv_in_forward(X, a, b, w, bias, D, H, W);
    to_last(want, out, 8, nv);
    CHECK_CLOSE("conv_in out", X, want, nv * 8, 1e-5, 1e-5);
    to_last(dX, gout, 8, nv);
    lpm_conv_in_backward(dw, db, dX, a, b, D, H, W);
    CHECK_CLOSE("conv_in grad_weight", dw, gw, 432, 1e-4 * max_abs(gw, 432), 1e-4);
    CHECK_CLOSE("conv_in grad_bias", db, gb, 8, 1e-4 * max_abs(gb, 8), 1e-4);
    free(X), free(want), free(dX), free(dw), free(db);
}

/* ------------------------------------------------------------------ dense */

typedef struct {
    float *in; /* (R,Q,8) */
    lpm_dense_params p;
    int R, Q;
} dense_ctx;

static void dense_fwd(void *c, float *out) {
    dense_ctx *x = c;
    size_t n = (size_t)x->R * x->Q;
    for (size_t i = 0; i < n; i++) memcpy(out + i * 24 + 16, x->in + i * 8, 8 * sizeof(float));
    lpm_dense_forward(out, &x->p, x->R, x->Q);
}

static void test_dense_fd(void) {
    lpm_rng r;
    lpm_rng_seed(&r, 12);
    dense_ctx c = {.R = 6, .Q = 7};
    size_t n = (size_t)c.R * c.Q;
    float *flat = alloc_f(8 * 8 * 9 + 8 + 8 * 16 * 9 + 8), *gflat = alloc_f(8 * 8 * 9 + 8 + 8 * 16 * 9 + 8);
    lpm_dense_params gp;
    c.p.w[0] = flat, c.p.b[0] = flat + 576, c.p.w[1] = flat + 584, c.p.b[1] = flat + 584 + 1152;
    gp.w[0] = gflat, gp.b[0] = gflat + 576, gp.w[1] = gflat + 584, gp.b[1] = gflat + 584 + 1152;
    fill_uniform(flat, 576 + 8 + 1152 + 8, -0.3, 0.3, &r);
    c.in = alloc_f(n * 8);
    fill_normal(c.in, n * 8, &r);
    float *feat = alloc_f(n * 24), *g = alloc_f(n * 24), *dfeat = alloc_f(n * 24), *din = alloc_f(n * 8);
    fill_normal(g, n * 24, &r);
    dense_fwd(&c, feat);
    memcpy(dfeat, g, n * 24 * sizeof(float));
    lpm_dense_backward(dfeat, &gp, feat, &c.p, c.R, c.Q);
    for (size_t i = 0; i < n; i++) memcpy(din + i * 8, dfeat + i * 24 + 16, 8 * sizeof(float));
    fd_check("dense input", &c, dense_fwd, n * 24, g, c.in, din, n * 8, 40, &r);
    fd_check("dense w0", &c, dense_fwd, n * 24, g, c.p.w[0], gp.w[0], 576, 30, &r);
    fd_check("dense b0", &c, dense_fwd, n * 24, g, c.p.b[0], gp.b[0], 8, 8, &r);
    fd_check("dense w1", &c, dense_fwd, n * 24, g, c.p.w[1], gp.w[1], 1152, 30, &r);
    fd_check("dense b1", &c, dense_fwd, n * 24, g, c.p.b[1], gp.b[1], 8, 8, &r);
    free(flat), free(gflat), free(c.in), free(feat), free(g), free(dfeat), free(din);
}

static void test_dense_ref(const lpm_st_file *f) {
    const int R = 16, Q = 32;
    size_t n = (size_t)R * Q;
    const float *in = fx(f, "dense.", "in", n * 8), *out = fx(f, "dense.", "out", n * 24);
    const float *gout = fx(f, "dense.", "grad_out", n * 24), *gin = fx(f, "dense.", "grad_in", n * 8);
    const char *pn[4] = {"w0", "b0", "w1", "b1"}, *gn[4] = {"grad_w0", "grad_b0", "grad_w1", "grad_b1"};
    size_t pc[4] = {576, 8, 1152, 8};
    const float *pt[4], *gt[4];
    int ok = in && out && gout && gin;
    for (int i = 0; i < 4; i++) {
        pt[i] = fx(f, "dense.", pn[i], pc[i]);
        gt[i] = fx(f, "dense.", gn[i], pc[i]);
        ok = ok && pt[i] && gt[i];
    }
    if (!ok) return;
    lpm_dense_params p = {{(float *)pt[0], (float *)pt[2]}, {(float *)pt[1], (float *)pt[3]}};
    float *gflat = alloc_f(576 + 8 + 1152 + 8);
    lpm_dense_params gp = {{gflat, gflat + 584}, {gflat + 576, gflat + 584 + 1152}};
    float *feat = alloc_f(n * 24), *want = alloc_f(n * 24), *dfeat = alloc_f(n * 24);
    float *tmp = alloc_f(n * 8), *din = alloc_f(n * 8);
    to_last(tmp, in, 8, n);
    for (size_t i = 0; i < n; i++) memcpy(feat + i * 24 + 16, tmp + i * 8, 8 * sizeof(float));
    lpm_dense_forward(feat, &p, R, Q);
    to_last(want, out, 24, n);
    CHECK_CLOSE("dense out", feat, want, n * 24, 1e-5, 1e-5);
    to_last(dfeat, gout, 24, n);
    lpm_dense_backward(dfeat, &gp, feat, &p, R, Q);
    to_last(tmp, gin, 8, n);
    for (size_t i = 0; i < n; i++) memcpy(din + i * 8, dfeat + i * 24 + 16, 8 * sizeof(float));
    CHECK_CLOSE("dense grad_in", din, tmp, n * 8, 1e-4 * max_abs(tmp, n * 8), 1e-4);
    float *gmine[4] = {gp.w[0], gp.b[0], gp.w[1], gp.b[1]};
    for (int i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "dense %s", gn[i]);
        CHECK_CLOSE(what, gmine[i], gt[i], pc[i], 1e-4 * max_abs(gt[i], pc[i]), 1e-4);
    }
    free(gflat), free(feat), free(want), free(dfeat), free(tmp), free(din);
}

/* ------------------------------------------------------------------ CfC */

enum { CFC_FLAT = 4 * 576 + 2 * 24 + 2 };

static void cfc_bind(lpm_cfc_params *p, float *flat, int nout) {
    p->ff1 = flat, p->ff2 = flat + 576, p->time_a = flat + 1152, p->time_b = flat + 1728;
    p->fc_w = flat + 2304, p->fc_b = flat + 2304 + 24 * nout, p->nout = nout;
}

typedef struct {
    float *f;
    lpm_cfc_params p;
    int64_t n;
} cfc_ctx;

/* outputs [out (nout,n), base, detail] (base, detail only for nout 1) */
static void cfc_fwd(void *c, float *o) {
    cfc_ctx *x = c;
    int one = x->p.nout == 1;
    lpm_cfc_forward(o, one ? o + x->n : NULL, one ? o + 2 * x->n : NULL, x->f, &x->p, x->n);
}

static void test_cfc_fd(int nout) {
    lpm_rng r;
    lpm_rng_seed(&r, 13 + (uint64_t)nout);
    cfc_ctx c = {.n = 30};
    size_t n = (size_t)c.n, nouts = nout == 1 ? 3 * n : 2 * n;
    float *flat = alloc_f(CFC_FLAT), *gflat = alloc_f(CFC_FLAT);
    lpm_cfc_params gp;
    cfc_bind(&c.p, flat, nout);
    cfc_bind(&gp, gflat, nout);
    fill_uniform(flat, CFC_FLAT, -0.3, 0.3, &r);
    c.f = alloc_f(n * 24);
    fill_normal(c.f, n * 24, &r);
    float *g = alloc_f(nouts), *df = alloc_f(n * 24);
    fill_normal(g, nouts, &r);
    if (nout == 1)
        lpm_cfc_backward(df, &gp, g, g + n, g + 2 * n, c.f, &c.p, c.n);
    else
        lpm_cfc_backward(df, &gp, g, NULL, NULL, c.f, &c.p, c.n);
    const char *pre = nout == 1 ? "cfc" : "cfcm";
    char what[64];
    struct { const char *name; float *p, *g; size_t n; } t[] = {
        {"f", c.f, df, n * 24},          {"ff1", c.p.ff1, gp.ff1, 576},
        {"ff2", c.p.ff2, gp.ff2, 576},   {"time_a", c.p.time_a, gp.time_a, 576},
        {"time_b", c.p.time_b, gp.time_b, 576}, {"fc.weight", c.p.fc_w, gp.fc_w, 24 * (size_t)nout},
        {"fc.bias", c.p.fc_b, gp.fc_b, (size_t)nout},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(what, sizeof what, "%s %s", pre, t[i].name);
        fd_check(what, &c, cfc_fwd, nouts, g, t[i].p, t[i].g, t[i].n, 20, &r);
    }
    free(flat), free(gflat), free(c.f), free(g), free(df);
}

static void test_cfc_ref(const lpm_st_file *f, const char *pre, int nout) {
    const size_t n = 100;
    const float *fin = fx(f, pre, "f", 24 * n), *out = fx(f, pre, "out", nout * n);
    const float *gout = fx(f, pre, "grad_out", nout * n), *gf = fx(f, pre, "grad_f", 24 * n);
    const char *names[6] = {"ff1.weight", "ff2.weight", "time_a.weight", "time_b.weight",
                            "fc.weight", "fc.bias"};
    size_t counts[6] = {576, 576, 576, 576, 24 * (size_t)nout, (size_t)nout};
    const float *pt[6], *gt[6];
    int ok = fin && out && gout && gf;
    for (int i = 0; i < 6; i++) {
        char gname[64];
        snprintf(gname, sizeof gname, "grad_%s", names[i]);
        pt[i] = fx(f, pre, names[i], counts[i]);
        gt[i] = fx(f, pre, gname, counts[i]);
        ok = ok && pt[i] && gt[i];
    }
    const float *base = NULL, *detail = NULL, *gbase = NULL, *gdetail = NULL;
    if (nout == 1) {
        base = fx(f, pre, "base", n), detail = fx(f, pre, "detail", n);
        gbase = fx(f, pre, "grad_base", n), gdetail = fx(f, pre, "grad_detail", n);
        ok = ok && base && detail && gbase && gdetail;
    }
    if (!ok) return;
    float *flat = alloc_f(CFC_FLAT), *gflat = alloc_f(CFC_FLAT);
    lpm_cfc_params p, gp;
    cfc_bind(&p, flat, nout);
    cfc_bind(&gp, gflat, nout);
    float *pp[6] = {p.ff1, p.ff2, p.time_a, p.time_b, p.fc_w, p.fc_b};
    float *gg[6] = {gp.ff1, gp.ff2, gp.time_a, gp.time_b, gp.fc_w, gp.fc_b};
    for (int i = 0; i < 6; i++) memcpy(pp[i], pt[i], counts[i] * sizeof(float));
    float *fl = alloc_f(24 * n), *o = alloc_f(3 * n), *df = alloc_f(24 * n), *want = alloc_f(24 * n);
    to_last(fl, fin, 24, n);
    char what[64];
    lpm_cfc_forward(o, nout == 1 ? o + n : NULL, nout == 1 ? o + 2 * n : NULL, fl, &p, (int64_t)n);
    snprintf(what, sizeof what, "%s out", pre);
    CHECK_CLOSE(what, o, out, nout * n, 1e-5, 1e-5);
    if (nout == 1) {
        CHECK_CLOSE("cfc base", o + n, base, n, 1e-5, 1e-5);
        CHECK_CLOSE("cfc detail", o + 2 * n, detail, n, 1e-5, 1e-5);
    }
    lpm_cfc_backward(df, &gp, gout, gbase, gdetail, fl, &p, (int64_t)n);
    to_last(want, gf, 24, n);
    snprintf(what, sizeof what, "%s grad_f", pre);
    CHECK_CLOSE(what, df, want, 24 * n, 1e-4 * max_abs(want, 24 * n), 1e-4);
    for (int i = 0; i < 6; i++) {
        snprintf(what, sizeof what, "%s grad_%s", pre, names[i]);
        CHECK_CLOSE(what, gg[i], gt[i], counts[i], 1e-4 * max_abs(gt[i], counts[i]), 1e-4);
    }
    free(flat), free(gflat), free(fl), free(o), free(df), free(want);
}

/* ------------------------------------------------------------------ max3 */

static void test_max3_ref(const lpm_st_file *f) {
    const size_t n = 24 * 64;
    const float *p[3] = {fx(f, "max3.", "p1", n), fx(f, "max3.", "p2", n), fx(f, "max3.", "p3", n)};
    const float *out = fx(f, "max3.", "out", n), *gout = fx(f, "max3.", "grad_out", n);
    const float *gp[3] = {fx(f, "max3.", "grad_p1", n), fx(f, "max3.", "grad_p2", n),
                          fx(f, "max3.", "grad_p3", n)};
    if (!p[0] || !p[1] || !p[2] || !out || !gout || !gp[0] || !gp[1] || !gp[2]) return;
    float *m = alloc_f(n), *g = alloc_f(3 * n);
    unsigned char *bits = calloc(n, 1);
    size_t ties = 0;
    /* merge in the order 3, 1, 2 on purpose: the bits must not depend on it */
    const int order[3] = {2, 0, 1};
    for (int j = 0; j < 3; j++)
        for (size_t i = 0; i < n; i++) {
            int k = order[j];
            if (j == 0) m[i] = p[k][i], bits[i] = (unsigned char)(1u << k);
            else lpm_max3_merge(&m[i], &bits[i], p[k][i], k);
        }
    for (size_t i = 0; i < n; i++) {
        ties += (bits[i] & (bits[i] - 1)) != 0;
        for (int k = 0; k < 3; k++) g[k * n + i] = gout[i] * lpm_max3_share(bits[i], k);
    }
    CHECK(ties > 0, "the fixture should plant exact ties");
    printf("  max3: %zu of %zu elements tie\n", ties, n);
    CHECK_CLOSE("max3 out", m, out, n, 0, 0);
    CHECK_CLOSE("max3 grad_p1", g, gp[0], n, 0, 0);
    CHECK_CLOSE("max3 grad_p2", g + n, gp[1], n, 0, 0);
    CHECK_CLOSE("max3 grad_p3", g + 2 * n, gp[2], n, 0, 0);
    free(m), free(g), free(bits);
}

int main(void) {
    lpm_set_threads(2);
    test_conv_in_fd();
    test_dense_fd();
    test_cfc_fd(1);
    test_cfc_fd(2);

    const char *dir = test_env("LPM_FIXTURES");
    char path[4096];
    lpm_st_file *f = NULL;
    if (!dir) {
        SKIP("PyTorch comparisons: LPM_FIXTURES is not set");
    } else {
        snprintf(path, sizeof path, "%s/layers.safetensors", dir);
        if (lpm_st_read(path, &f) != LPM_OK) {
            SKIP("PyTorch comparisons: %s", lpm_last_error());
            f = NULL;
        }
    }
    if (f) {
        test_conv_in_ref(f);
        test_dense_ref(f);
        test_cfc_ref(f, "cfc.", 1);
        test_cfc_ref(f, "cfcm.", 2);
        test_max3_ref(f);
        lpm_st_close(f);
    }
    return test_summary();
}
