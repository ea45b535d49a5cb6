/* LayerNorm, Mamba block and Swin-Mamba layer: central finite differences (always run),
 * an independent re-derivation of the shift/window permutation, and the PyTorch fixtures
 * ($LPM_FIXTURES/layers.safetensors, prefixes ln., mamba., swin0., swin8.) when present. */
#include "io/io.h"
#include "model/model.h"
#include "test.h"

enum { C = LPM_C, NT = 11 };

/* The 11 tensors of one Swin-Mamba layer, in the authors' order and names. */
static const struct { const char *name; size_t n; } tens[NT] = {
    {"norm.weight", 24},          {"norm.bias", 24},          {"mamba.A_log", 24 * 8},
    {"mamba.D", 24},              {"mamba.in_proj.weight", 48 * 24},
    {"mamba.conv1d.weight", 24 * 4}, {"mamba.conv1d.bias", 24},
    {"mamba.x_proj.weight", 18 * 24}, {"mamba.dt_proj.weight", 24 * 2},
    {"mamba.dt_proj.bias", 24},   {"mamba.out_proj.weight", 24 * 24},
};

static float **field(lpm_mamba_params *p, int i) {
    float **f[NT] = {&p->norm_w, &p->norm_b, &p->A_log,   &p->D,         &p->in_proj, &p->conv_w,
                     &p->conv_b, &p->x_proj, &p->dt_proj_w, &p->dt_proj_b, &p->out_proj};
    return f[i];
}

static size_t params_floats(void) {
    size_t n = 0;
    for (int i = 0; i < NT; i++) n += tens[i].n;
    return n;
}

static void bind(lpm_mamba_params *p, float *flat) {
    for (int i = 0; i < NT; i++) {
        *field(p, i) = flat;
        flat += tens[i].n;
    }
}

static float *alloc(size_t n) {
    float *x = lpm_calloc(n, sizeof(float));
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return x;
}

static void fill(float *x, size_t n, lpm_rng *r, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * lpm_rng_uniform(r));
}

/* Weights in the ranges the trained network sees, plus one dt channel above the softplus
 * threshold (v > 20) so both branches are exercised. */
static void init_params(lpm_mamba_params *p, lpm_rng *r) {
    fill(p->norm_w, 24, r, 0.5, 1.5);
    fill(p->norm_b, 24, r, -0.3, 0.3);
    for (int c = 0; c < 24; c++)
        for (int n = 0; n < 8; n++)
            p->A_log[c * 8 + n] = logf((float)(n + 1)) + (float)(0.3 * lpm_rng_normal(r));
    fill(p->D, 24, r, 0.0, 2.0);
    fill(p->in_proj, 48 * 24, r, -0.3, 0.3);
    fill(p->conv_w, 24 * 4, r, -0.5, 0.5);
    fill(p->conv_b, 24, r, -0.5, 0.5);
    fill(p->x_proj, 18 * 24, r, -0.3, 0.3);
    fill(p->dt_proj_w, 24 * 2, r, -0.7, 0.7);
    fill(p->dt_proj_b, 24, r, -2.0, 0.5);
    p->dt_proj_b[5] = 25.0f;
    fill(p->out_proj, 24 * 24, r, -0.3, 0.3);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ---------------------------------------------------------------- finite differences */

/* The loss sum(out * g) as a function of the whole parameter/input state. */
typedef double (*loss_fn)(void *ctx);

/* Central differences of loss at the entries idx[0..m) of x against the analytic grad.
 * Accepts |fd - an| <= 2e-2 |an| + 2e-3 max|grad| + 1e-4: relative 2e-2 on entries that
 * are not tiny, float32 round-off below that. */
static void fd_check(const char *what, float *x, const float *grad, size_t n, size_t m,
                     double step, loss_fn loss, void *ctx, lpm_rng *r) {
    double scale = max_abs(grad, n), worst = 0;
    size_t at = 0, bad = 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = m >= n ? k : (size_t)(lpm_rng_uniform(r) * (double)n);
        if (i >= n) break;
        float x0 = x[i];
        x[i] = x0 + (float)step;
        double lp = loss(ctx);
        x[i] = x0 - (float)step;
        double lm = loss(ctx);
        x[i] = x0;
        /* the step actually taken in float */
        double h2 = (double)(x0 + (float)step) - (double)(x0 - (float)step);
        double fd = (lp - lm) / h2, an = grad[i];
        double excess = fabs(fd - an) / (2e-2 * fabs(an) + 2e-3 * scale + 1e-4);
        if (excess > worst) worst = excess, at = i;
        if (excess > 1) bad++;
    }
    CHECK(bad == 0, "%s: %zu of %zu entries off; worst [%zu] analytic %.6g (max|grad| %.3g)",
          what, bad, m < n ? m : n, at, (double)grad[at], scale);
    printf("  %s   fd %-34s worst error/tolerance %.3f over %zu entries\n", bad ? "BAD" : "ok ",
           what, worst, m < n ? m : n);
}

/* LayerNorm's forward against a double-precision one: 16-row blocks and a partial block
 * (n = 37), rows with large means and small spreads, and a channel count above the
 * batched path's 32 (the row-at-a-time statistics). */
static void test_layernorm_double(lpm_rng *r) {
    const int64_t n = 37;
    for (int Cn = C; Cn <= 40; Cn += 16) {
        size_t nc = (size_t)n * Cn;
        float *in = alloc(nc), *out = alloc(nc), *mean = alloc(n), *rstd = alloc(n);
        float *w = alloc(Cn), *b = alloc(Cn);
        fill(in, nc, r, -2, 3);
        for (int c = 0; c < Cn; c++) in[5 * Cn + c] = 1000.0f + 0.01f * in[5 * Cn + c];
        fill(w, Cn, r, 0.5, 1.5);
        fill(b, Cn, r, -0.5, 0.5);
        lpm_layernorm_forward(out, mean, rstd, in, w, b, n, Cn);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double m = 0, v = 0;
            for (int c = 0; c < Cn; c++) m += in[i * Cn + c];
            m /= Cn;
            for (int c = 0; c < Cn; c++) v += (in[i * Cn + c] - m) * (in[i * Cn + c] - m);
            double s = 1 / sqrt(v / Cn + 1e-5);
            for (int c = 0; c < Cn; c++) {
                double want = (in[i * Cn + c] - m) * s * w[c] + b[c];
                worst = fmax(worst, fabs(out[i * Cn + c] - want));
            }
            worst = fmax(worst, fabs(mean[i] - m) / (fabs(m) + 1));
            worst = fmax(worst, fabs(rstd[i] - s) / s);
        }
        CHECK(worst < 2e-5, "layernorm C=%d against double: %g", Cn, worst);
        printf("  ok   layernorm C=%d n=%lld against double: max error %.2g\n", Cn, (long long)n,
               worst);
        free(in), free(out), free(mean), free(rstd), free(w), free(b);
    }
}

typedef struct {
    float *out, *in, *g, *mean, *rstd, *w, *b;
    int64_t n;
} ln_ctx;

static double ln_loss(void *v) {
    ln_ctx *c = v;
    lpm_layernorm_forward(c->out, NULL, NULL, c->in, c->w, c->b, c->n, C);
    return dot(c->out, c->g, (size_t)c->n * C);
}

static void test_layernorm_fd(lpm_rng *r) {
    int64_t n = 6;
    size_t nc = (size_t)n * C;
    ln_ctx c = {alloc(nc), alloc(nc), alloc(nc), alloc(n), alloc(n), alloc(C), alloc(C), n};
    float *din = alloc(nc), *dw = alloc(C), *db = alloc(C);
    fill(c.in, nc, r, -2, 3);
    fill(c.g, nc, r, -1, 1);
    fill(c.w, C, r, 0.5, 1.5);
    fill(c.b, C, r, -0.5, 0.5);
    lpm_layernorm_forward(c.out, c.mean, c.rstd, c.in, c.w, c.b, n, C);
    lpm_layernorm_backward(din, dw, db, c.g, c.in, c.mean, c.rstd, c.w, n, C);
    fd_check("layernorm in", c.in, din, nc, nc, 1e-2, ln_loss, &c, r);
    fd_check("layernorm weight", c.w, dw, C, C, 1e-2, ln_loss, &c, r);
    fd_check("layernorm bias", c.b, db, C, C, 1e-2, ln_loss, &c, r);
    free(c.out), free(c.in), free(c.g), free(c.mean), free(c.rstd), free(c.w), free(c.b);
    free(din), free(dw), free(db);
}

typedef struct {
    float *out, *u, *g, *scratch;
    lpm_mamba_params p;
    int L;
} mamba_ctx;

static double mamba_loss(void *v) {
    mamba_ctx *c = v;
    lpm_mamba_prepare(&c->p, c->scratch);
    lpm_mamba_forward(c->out, c->u, &c->p, c->L, c->scratch);
    return dot(c->out, c->g, (size_t)c->L * C);
}

/* Every input and parameter entry when `sample` is 0, else `sample` random entries each. */
static void test_mamba_fd(int L, size_t sample, lpm_rng *r) {
    size_t lc = (size_t)L * C, np = params_floats();
    float *flat = alloc(np), *gflat = alloc(np), *du = alloc(lc);
    mamba_ctx c = {alloc(lc), alloc(lc), alloc(lc), alloc(lpm_mamba_scratch_floats(L)), {0}, L};
    lpm_mamba_params grad;
    bind(&c.p, flat);
    bind(&grad, gflat);
    init_params(&c.p, r);
    fill(c.u, lc, r, -1.5, 1.5);
    fill(c.g, lc, r, -1, 1);
    /* du starts at 1 and grad at 0.5: backward must add, not overwrite */
    for (size_t i = 0; i < lc; i++) du[i] = 1.0f;
    for (size_t i = 0; i < np; i++) gflat[i] = 0.5f;
    lpm_mamba_prepare(&c.p, c.scratch);
    lpm_mamba_backward(du, &grad, c.g, c.u, &c.p, L, c.scratch);
    for (size_t i = 0; i < lc; i++) du[i] -= 1.0f;
    for (size_t i = 0; i < np; i++) gflat[i] -= 0.5f;

    char what[96];
    snprintf(what, sizeof what, "mamba L=%d u", L);
    fd_check(what, c.u, du, lc, sample ? sample : lc, 1e-2, mamba_loss, &c, r);
    for (int i = 2; i < NT; i++) {
        snprintf(what, sizeof what, "mamba L=%d %s", L, tens[i].name + 6);
        size_t n = tens[i].n;
        fd_check(what, *field(&c.p, i), *field(&grad, i), n, sample ? sample : n, 1e-2,
                 mamba_loss, &c, r);
    }
    free(flat), free(gflat), free(du), free(c.out), free(c.u), free(c.g), free(c.scratch);
}

typedef struct {
    float *out, *in, *g, *scratch;
    lpm_mamba_params p;
    int R, Q, shift;
} swin_ctx;

static double swin_loss(void *v) {
    swin_ctx *c = v;
    lpm_swin_mamba_forward(c->out, c->in, &c->p, c->R, c->Q, c->shift, c->scratch);
    return dot(c->out, c->g, (size_t)c->R * c->Q * C);
}

/* Finite differences through the whole layer (LayerNorm and Mamba chained), sampled. */
static void test_swin_fd(lpm_rng *r) {
    int R = 32, Q = 48;
    size_t nx = (size_t)R * Q * C, np = params_floats();
    float *flat = alloc(np), *gflat = alloc(np), *din = alloc(nx);
    swin_ctx c = {alloc(nx), alloc(nx), alloc(nx), alloc(lpm_swin_scratch_floats()), {0}, R, Q, 8};
    lpm_mamba_params grad;
    bind(&c.p, flat);
    bind(&grad, gflat);
    init_params(&c.p, r);
    fill(c.in, nx, r, -2, 2);
    fill(c.g, nx, r, -1, 1);
    lpm_swin_mamba_backward(din, &grad, c.g, c.in, &c.p, R, Q, c.shift, c.scratch);
    fd_check("swin8 32x48 in", c.in, din, nx, 24, 1e-2, swin_loss, &c, r);
    for (int i = 0; i < NT; i++) {
        char what[96];
        snprintf(what, sizeof what, "swin8 32x48 %s", tens[i].name);
        fd_check(what, *field(&c.p, i), *field(&grad, i), tens[i].n, 4, 1e-2, swin_loss, &c, r);
    }
    free(flat), free(gflat), free(din), free(c.out), free(c.in), free(c.g), free(c.scratch);
}

/* ---------------------------------------------------------------- repeated windows */

/* The forward copies the output of a window whose tokens it has seen (it remembers the
 * last 8 distinct ones). A 16x224 image of 14 windows whose contents repeat, near and
 * after more than 8 others (hits, misses, evictions), must give, window by window, bitwise
 * what each window gives alone. */
static void test_swin_repeats(lpm_rng *r) {
    enum { NW = 14, NPAT = 10 };
    const int R = 16, Q = 16 * NW, WQ = 16;
    const int order[NW] = {0, 1, 1, 2, 1, 3, 4, 5, 6, 7, 8, 9, 0, 9};
    size_t nx = (size_t)R * Q * C, nw = (size_t)16 * 16 * C, np = params_floats();
    float *flat = alloc(np), *in = alloc(nx), *out = alloc(nx), *pat = alloc(NPAT * nw);
    float *alone = alloc(nw), *scratch = alloc(lpm_swin_scratch_floats());
    lpm_mamba_params p;
    bind(&p, flat);
    init_params(&p, r);
    fill(pat, NPAT * nw, r, -2, 2);
    for (int w = 0; w < NW; w++)
        for (int y = 0; y < R; y++)
            memcpy(in + ((size_t)y * Q + w * WQ) * C, pat + order[w] * nw + (size_t)y * WQ * C,
                   WQ * C * sizeof(float));
    lpm_swin_mamba_forward(out, in, &p, R, Q, 0, scratch);
    for (int w = 0; w < NW; w++) {
        lpm_swin_mamba_forward(alone, pat + order[w] * nw, &p, 16, 16, 0, scratch);
        int same = 1;
        for (int y = 0; y < R; y++)
            same &= !memcmp(out + ((size_t)y * Q + w * WQ) * C, alone + (size_t)y * WQ * C,
                            WQ * C * sizeof(float));
        CHECK(same, "window %d (content %d) differs from the window computed alone", w, order[w]);
    }
    free(flat), free(in), free(out), free(pat), free(alone), free(scratch);
}

/* ---------------------------------------------------------------- the permutation */

/* Rebuilds the layer from LayerNorm + Mamba on explicitly rolled windows, written the
 * PyTorch way (roll by -s, partition, run, reverse), and compares forward and backward
 * with the window code on a non-square image. */
static void test_swin_permutation(int shift, lpm_rng *r) {
    const int R = 32, Q = 48, T = 256;
    size_t nx = (size_t)R * Q * C, np = params_floats();
    float *flat = alloc(np), *g1 = alloc(np), *g2 = alloc(np);
    float *in = alloc(nx), *dout = alloc(nx), *out1 = alloc(nx), *out2 = alloc(nx);
    float *din1 = alloc(nx), *din2 = alloc(nx), *rolled = alloc(nx);
    float *tok = alloc(T * C), *ln = alloc(T * C), *mo = alloc(T * C), *mean = alloc(T);
    float *rstd = alloc(T), *dtok = alloc(T * C), *dln = alloc(T * C), *dx = alloc(T * C);
    float *scratch = alloc(lpm_swin_scratch_floats());
    lpm_mamba_params p, gr1, gr2;
    bind(&p, flat), bind(&gr1, g1), bind(&gr2, g2);
    init_params(&p, r);
    fill(in, nx, r, -2, 2);
    fill(dout, nx, r, -1, 1);

    lpm_swin_mamba_forward(out1, in, &p, R, Q, shift, scratch);
    lpm_swin_mamba_backward(din1, &gr1, dout, in, &p, R, Q, shift, scratch);

    /* torch.roll(x, (-s, -s)): rolled(r, q) = x((r + s) mod R, (q + s) mod Q) */
    for (int y = 0; y < R; y++)
        for (int x = 0; x < Q; x++)
            memcpy(rolled + ((size_t)y * Q + x) * C,
                   in + ((size_t)((y + shift) % R) * Q + (x + shift) % Q) * C, C * sizeof(float));
    for (int wr = 0; wr < R / 16; wr++)
        for (int wq = 0; wq < Q / 16; wq++) {
            for (int t = 0; t < T; t++) {
                size_t at = ((size_t)(16 * wr + t / 16) * Q + 16 * wq + t % 16) * C;
                memcpy(tok + t * C, rolled + at, C * sizeof(float));
            }
            lpm_layernorm_forward(ln, mean, rstd, tok, p.norm_w, p.norm_b, T, C);
            lpm_mamba_prepare(&p, scratch);
            lpm_mamba_forward(mo, ln, &p, T, scratch);
            /* roll back by +s: the token at rolled (y, x) lands on ((y + s) mod R, (x + s) mod Q) */
            for (int t = 0; t < T; t++) {
                int y = (16 * wr + t / 16 + shift) % R, x = (16 * wq + t % 16 + shift) % Q;
                memcpy(out2 + ((size_t)y * Q + x) * C, mo + t * C, C * sizeof(float));
                memcpy(dtok + t * C, dout + ((size_t)y * Q + x) * C, C * sizeof(float));
            }
            memset(dln, 0, sizeof(float) * T * C);
            lpm_mamba_backward(dln, &gr2, dtok, ln, &p, T, scratch);
            memset(dx, 0, sizeof(float) * T * C);
            lpm_layernorm_backward(dx, gr2.norm_w, gr2.norm_b, dln, tok, mean, rstd, p.norm_w, T, C);
            for (int t = 0; t < T; t++) {
                int y = (16 * wr + t / 16 + shift) % R, x = (16 * wq + t % 16 + shift) % Q;
                memcpy(din2 + ((size_t)y * Q + x) * C, dx + t * C, C * sizeof(float));
            }
        }
    char what[64];
    snprintf(what, sizeof what, "explicit roll s=%d 32x48 out", shift);
    CHECK_CLOSE(what, out1, out2, nx, 1e-6, 1e-5);
    snprintf(what, sizeof what, "explicit roll s=%d 32x48 grad_in", shift);
    CHECK_CLOSE(what, din1, din2, nx, 1e-6, 1e-5);
    /* parameter gradients sum over windows: allow for another summation order */
    snprintf(what, sizeof what, "explicit roll s=%d 32x48 grads", shift);
    CHECK_CLOSE(what, g1, g2, np, 1e-5 * max_abs(g2, np), 1e-5);
    free(flat), free(g1), free(g2), free(in), free(dout), free(out1), free(out2), free(din1);
    free(din2), free(rolled), free(tok), free(ln), free(mo), free(mean), free(rstd), free(dtok);
    free(dln), free(dx), free(scratch);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static const float *need(const lpm_st_file *f, const char *prefix, const char *name,
                         size_t n) {
    char key[128];
    int nd;
    int64_t shape[LPM_ST_MAXDIM];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const float *x = lpm_st_find(f, key, &nd, shape);
    size_t m = 1;
    for (int i = 0; x && i < nd; i++) m *= (size_t)shape[i];
    CHECK(x && m == n, "fixture tensor %s missing or not %zu values", key, n);
    return x && m == n ? x : NULL;
}

/* Gradients: 1e-4 of the tensor's largest value plus 1e-4 relative. */
static void check_grad(const char *what, const float *got, const float *want, size_t n) {
    CHECK_CLOSE(what, got, want, n, 1e-4 * max_abs(want, n), 1e-4);
}

static void test_fixture_ln(const lpm_st_file *f) {
    const int64_t n = 50;
    const size_t nc = (size_t)n * C;
    const float *in = need(f, "ln.", "in", nc), *w = need(f, "ln.", "weight", C),
                *b = need(f, "ln.", "bias", C), *out = need(f, "ln.", "out", nc),
                *g = need(f, "ln.", "grad_out", nc), *gin = need(f, "ln.", "grad_in", nc),
                *gw = need(f, "ln.", "grad_weight", C), *gb = need(f, "ln.", "grad_bias", C);
    if (!in || !w || !b || !out || !g || !gin || !gw || !gb) return;
    float *y = alloc(nc), *mean = alloc(n), *rstd = alloc(n), *din = alloc(nc);
    float *dw = alloc(C), *db = alloc(C);
    lpm_layernorm_forward(y, mean, rstd, in, w, b, n, C);
    CHECK_CLOSE("ln out", y, out, nc, 1e-5, 1e-5);
    lpm_layernorm_backward(din, dw, db, g, in, mean, rstd, w, n, C);
    check_grad("ln grad_in", din, gin, nc);
    check_grad("ln grad_weight", dw, gw, C);
    check_grad("ln grad_bias", db, gb, C);
    free(y), free(mean), free(rstd), free(din), free(dw), free(db);
}

/* Fills p with the fixture's tensors `prefix + name` (names with their "mamba." part
 * dropped when mamba_only); returns 0 when one is missing. */
static int load_params(lpm_mamba_params *p, float *flat, const lpm_st_file *f,
                       const char *prefix, int mamba_only) {
    bind(p, flat);
    for (int i = mamba_only ? 2 : 0; i < NT; i++) {
        const float *x = need(f, prefix, tens[i].name + (mamba_only ? 6 : 0), tens[i].n);
        if (!x) return 0;
        memcpy(*field(p, i), x, tens[i].n * sizeof(float));
    }
    return 1;
}

static void check_param_grads(lpm_mamba_params *grad, const lpm_st_file *f,
                              const char *prefix, int mamba_only) {
    for (int i = mamba_only ? 2 : 0; i < NT; i++) {
        char name[96], what[96];
        snprintf(name, sizeof name, "grad_%s", tens[i].name + (mamba_only ? 6 : 0));
        const float *want = need(f, prefix, name, tens[i].n);
        if (!want) continue;
        snprintf(what, sizeof what, "%s%s", prefix, name);
        check_grad(what, *field(grad, i), want, tens[i].n);
    }
}

static void test_fixture_mamba(const lpm_st_file *f) {
    const int L = 256;
    const size_t lc = (size_t)L * C, np = params_floats();
    float *flat = alloc(np), *gflat = alloc(np);
    lpm_mamba_params p, grad;
    bind(&grad, gflat);
    const float *u = need(f, "mamba.", "u", lc), *out = need(f, "mamba.", "out", lc),
                *g = need(f, "mamba.", "grad_out", lc), *gu = need(f, "mamba.", "grad_u", lc);
    if (u && out && g && gu && load_params(&p, flat, f, "mamba.", 1)) {
        float *y = alloc(lc), *du = alloc(lc), *scratch = alloc(lpm_mamba_scratch_floats(L));
        lpm_mamba_prepare(&p, scratch);
        lpm_mamba_forward(y, u, &p, L, scratch);
        CHECK_CLOSE("mamba out", y, out, lc, 1e-5, 1e-5);
        lpm_mamba_backward(du, &grad, g, u, &p, L, scratch);
        check_grad("mamba grad_u", du, gu, lc);
        check_param_grads(&grad, f, "mamba.", 1);
        free(y), free(du), free(scratch);
    }
    free(flat), free(gflat);
}

/* (24, R, Q) -> (R, Q, 24) */
static float *to_hwc(const float *x, int R, int Q) {
    size_t rq = (size_t)R * Q;
    float *y = alloc(rq * C);
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < rq; i++) y[i * C + c] = x[c * rq + i];
    return y;
}

static void test_fixture_swin(const lpm_st_file *f, const char *prefix, int shift) {
    const int R = 32, Q = 48;
    const size_t nx = (size_t)R * Q * C, np = params_floats();
    float *flat = alloc(np), *gflat = alloc(np);
    lpm_mamba_params p, grad;
    bind(&grad, gflat);
    const float *in = need(f, prefix, "in", nx), *out = need(f, prefix, "out", nx),
                *g = need(f, prefix, "grad_out", nx), *gin = need(f, prefix, "grad_in", nx);
    if (in && out && g && gin && load_params(&p, flat, f, prefix, 0)) {
        float *x = to_hwc(in, R, Q), *want = to_hwc(out, R, Q), *dy = to_hwc(g, R, Q);
        float *want_din = to_hwc(gin, R, Q), *y = alloc(nx), *din = alloc(nx);
        float *scratch = alloc(lpm_swin_scratch_floats());
        char what[64];
        lpm_swin_mamba_forward(y, x, &p, R, Q, shift, scratch);
        snprintf(what, sizeof what, "%sout", prefix);
        CHECK_CLOSE(what, y, want, nx, 1e-5, 1e-5);
        lpm_swin_mamba_backward(din, &grad, dy, x, &p, R, Q, shift, scratch);
        snprintf(what, sizeof what, "%sgrad_in", prefix);
        check_grad(what, din, want_din, nx);
        check_param_grads(&grad, f, prefix, 0);
        free(x), free(want), free(dy), free(want_din), free(y), free(din), free(scratch);
    }
    free(flat), free(gflat);
}

int main(void) {
    lpm_rng r;
    lpm_rng_seed(&r, 20250101);

    printf("finite differences\n");
    test_layernorm_double(&r);
    test_layernorm_fd(&r);
    test_mamba_fd(7, 0, &r);
    test_mamba_fd(1, 0, &r);
    test_mamba_fd(70, 24, &r);
    test_swin_fd(&r);

    printf("shift and windows on a 32x48 image\n");
    test_swin_permutation(0, &r);
    test_swin_permutation(8, &r);
    test_swin_repeats(&r);

    const char *dir = test_env("LPM_FIXTURES");
    char path[4096];
    lpm_st_file *f = NULL;
    if (!dir) {
        SKIP("PyTorch comparison: LPM_FIXTURES not set");
    } else {
        snprintf(path, sizeof path, "%s/layers.safetensors", dir);
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            SKIP("PyTorch comparison: %s not found", path);
        } else {
            fclose(fp);
            CHECK(lpm_st_read(path, &f) == LPM_OK, "%s: %s", path, lpm_last_error());
        }
    }
    if (f) {
        printf("PyTorch fixtures %s\n", path);
        test_fixture_ln(f);
        test_fixture_mamba(f);
        test_fixture_swin(f, "swin0.", 0);
        test_fixture_swin(f, "swin8.", 8);
        lpm_st_close(f);
    }
    return test_summary();
}
