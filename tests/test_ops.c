/* Every layer's fast kernel against its plain reference (src/model/reference.h), in the
 * style of ggml's test-backend-ops: a table of ops, each with a seeded input generator, the
 * reference forward/backward and the fast kernel forward/backward. For each op:
 *   torch-forward/backward  the reference against the PyTorch fixtures
 *                           ($LPM_FIXTURES/layers.safetensors) where they have the layer;
 *   fd-backward             the reference's backward against central finite differences of
 *                           its forward along random directions (sums in double);
 *   PATH forward/backward   each fast kernel set this build has and this CPU runs
 *                           (src/model/kernels.h: avx512, avx2, portable, neon) against
 *                           the reference at odd sizes (sequences under 16 tokens, sizes
 *                           that are not multiples of the vector width), by
 *                           NMSE = sum (fast - ref)^2 / sum ref^2, per tensor; a set the
 *                           CPU lacks is a skip that says why.
 * One line per op, check and size; a failure names the op, the path and the tensor:
 *   FAIL mamba avx2 backward L=17: nmse 3.2e-05 > 1e-10 (grad A_log)
 * Backward runs twice into zeroed gradients and the result is halved (exact in float): a
 * kernel that overwrites where it should add (+=) gives half the gradient and fails. */
#include "io/io.h"
#include "model/max3.h"
#include "model/model.h"
#include "model/kernels.h"
#include "model/reference.h"
#include "test.h"

enum { C = LPM_C, MAXT = 16, MAXS = 10 };

/* the fast kernel set under test (the ops' fast_fwd/fast_bwd call through it) */
static const lpm_kernels *K;

/* ------------------------------------------------------------------ cases and tensors */

enum role {
    IN,    /* an input or parameter with a gradient */
    DATA,  /* an input without one (Conv_in's volumes) */
    OUT,   /* an output; its g is the given output gradient */
    AUX,   /* an output saved for the backward (LayerNorm's statistics): forward only */
};

typedef struct {
    const char *name;
    size_t n;
    enum role role;
    float *x;     /* values */
    float *g;     /* IN: the gradient computed; OUT: the given output gradient */
    float *ref;   /* the reference's result (OUT/AUX: values, IN: gradient) */
    double *x64;  /* OUT: the reference's value before rounding to float (ops with f64) */
    float *want;  /* the PyTorch fixture's, or NULL */
} tensor;

typedef struct {
    int size[4];  /* meaning per op: L; n, C; R, Q, shift; D, H, W ... */
    int nt;
    tensor t[MAXT];
} op_case;

static float *alloc_f(size_t n) {
    float *p = lpm_calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    return p;
}

static double *alloc_d(size_t n) {
    double *p = lpm_calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    return p;
}

/* a double copy of a float array (free it) */
static double *d64(const float *x, size_t n) {
    double *y = alloc_d(n);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* Declares tensor number c->nt (ops name their tensors by enum in declaration order). */
static float *add(op_case *c, const char *name, size_t n, enum role role) {
    if (c->nt >= MAXT) {
        fprintf(stderr, "test_ops: more than %d tensors\n", MAXT);
        exit(3);
    }
    tensor *t = &c->t[c->nt++];
    *t = (tensor){.name = name, .n = n, .role = role, .x = alloc_f(n), .g = alloc_f(n),
                  .ref = alloc_f(n), .x64 = alloc_d(n)};
    return t->x;
}

static void case_free(op_case *c) {
    for (int i = 0; i < c->nt; i++) {
        tensor *t = &c->t[i];
        free(t->x), free(t->g), free(t->ref), free(t->want), free(t->x64);
    }
    memset(c, 0, sizeof *c);
}

static void fill_uniform(float *x, size_t n, double lo, double hi, lpm_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * lpm_rng_uniform(r));
}

static void fill_normal(float *x, size_t n, double scale, lpm_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * lpm_rng_normal(r));
}

/* Output gradients: standard normal for every OUT tensor. */
static void fill_output_grads(op_case *c, lpm_rng *r) {
    for (int i = 0; i < c->nt; i++)
        if (c->t[i].role == OUT) fill_normal(c->t[i].g, c->t[i].n, 1.0, r);
}

#define X(i) (c->t[i].x)
#define G(i) (c->t[i].g)

typedef void (*op_fn)(op_case *c);

typedef struct {
    const char *name;
    const char *size_fmt;            /* printf format of size[0..3] */
    int nsizes;
    int sizes[MAXS][4];
    int fd_sizes;                    /* finite differences on the first fd_sizes sizes */
    /* declares the tensors for c->size and fills the inputs; fd: inputs for finite
     * differences (kept away from kinks and ties) */
    void (*setup)(op_case *c, lpm_rng *r, int fd);
    op_fn ref_fwd, ref_bwd;          /* ref_bwd/fast_bwd may assume their forward just ran */
    op_fn fast_fwd, fast_bwd;        /* NULL: no fast kernel of its own (fast_note says) */
    double tol_fwd, tol_bwd;         /* NMSE, fast against reference */
    double fd_step, fd_tol;
    int f64;                         /* ref_fwd also leaves the unrounded outputs in x64 */
    const char *fast_note;
    /* the PyTorch fixture: declares and fills the case from f's tensors under prefix,
     * with want set; 0 when a tensor is missing */
    int (*fixture)(op_case *c, const lpm_st_file *f, const char *prefix);
    const char *prefixes[2];
} op_def;

/* torch-forward/backward: NMSE of float32-rounded float64 PyTorch against the
 * reference's double rounded to float32: both within half an ulp of the same value, so
 * mostly 0 or ~1e-15; LayerNorm's backward takes the forward's float statistics (as the
 * fast kernel does): 2.2e-13. 1e-11 leaves room and still fails on any real error. */
static const double tol_torch = 1e-11;

/* ------------------------------------------------------------------ comparisons */

/* NMSE = sum (a - b)^2 / sum b^2 (the plain sum when b is all 0); NaN when a has NaN/Inf. */
static double nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return NAN;
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static void size_str(char *buf, size_t len, const op_def *op, const op_case *c) {
    snprintf(buf, len, op->size_fmt, c->size[0], c->size[1], c->size[2], c->size[3]);
}

/* One result line, counted: "ok   op check size: metric v <= tol (tensor)" or FAIL. */
static void report(const op_def *op, const char *check, const char *size, const char *metric,
                   double v, double tol, const char *worst) {
    const int ok = v <= tol;   /* NaN fails */
    if (ok) {
        test_passed++;
        printf("ok   %s %s %s: %s %.3g <= %.3g (worst: %s)\n", op->name, check, size, metric, v,
               tol, worst);
    } else {
        test_failed++;
        printf("FAIL %s %s %s: %s %.3g > %.3g (%s)\n", op->name, check, size, metric, v, tol,
               worst);
    }
}

/* Worst NMSE over the tensors of the given roles: got = x (outputs) or g (gradients) of
 * c, against ref or want. */
static void compare(const op_def *op, const op_case *c, const char *check, int outputs,
                    int against_want, double tol) {
    double worst = 0;
    char what[64] = "-", size[64];
    for (int i = 0; i < c->nt; i++) {
        const tensor *t = &c->t[i];
        const int is_out = t->role == OUT || t->role == AUX;
        if (outputs ? !is_out : t->role != IN) continue;
        const float *want = against_want ? t->want : t->ref;
        if (!want) continue;
        const double e = nmse(outputs ? t->x : t->g, want, t->n);
        if (!(e <= worst) && !isnan(worst)) {   /* a NaN stays the worst */
            worst = e;
            snprintf(what, sizeof what, "%s%s", outputs ? "" : "grad ", t->name);
        }
    }
    size_str(size, sizeof size, op, c);
    report(op, check, size, "nmse", worst, tol, what);
}

static void zero_input_grads(op_case *c) {
    for (int i = 0; i < c->nt; i++)
        if (c->t[i].role == IN) memset(c->t[i].g, 0, c->t[i].n * sizeof(float));
}

/* forward, then backward twice into zeroed gradients, halved */
static void run(op_case *c, op_fn fwd, op_fn bwd) {
    fwd(c);
    zero_input_grads(c);
    bwd(c);
    bwd(c);
    for (int i = 0; i < c->nt; i++)
        if (c->t[i].role == IN)
            for (size_t k = 0; k < c->t[i].n; k++) c->t[i].g[k] *= 0.5f;
}

/* sum over the outputs of out * dout, in double: the scalar whose gradient backward gives */
static double loss(op_case *c, const op_def *op) {
    op->ref_fwd(c);
    double s = 0;
    for (int i = 0; i < c->nt; i++)
        if (c->t[i].role == OUT)
            for (size_t k = 0; k < c->t[i].n; k++)
                s += (op->f64 ? c->t[i].x64[k] : c->t[i].x[k]) * c->t[i].g[k];
    return s;
}

/* The reference's gradient of each IN tensor along 3 random directions v against
 * (loss(x + h v) - loss(x - h v)), with the step actually taken in float. The error is
 * relative to the typical size of a directional derivative, |grad| |dx| / sqrt(n), so it
 * reads as |grad error| / |grad| and a chance small <grad, v> cannot inflate it. */
static void fd_check(const op_def *op, op_case *c, lpm_rng *r) {
    op->ref_fwd(c);
    zero_input_grads(c);
    op->ref_bwd(c);
    double worst = 0;
    char what[64] = "-", size[64];
    for (int i = 0; i < c->nt; i++) {
        tensor *t = &c->t[i];
        if (t->role != IN) continue;
        float *x0 = alloc_f(t->n), *xp = alloc_f(t->n), *xm = alloc_f(t->n);
        memcpy(x0, t->x, t->n * sizeof(float));
        double gnorm = 0;
        for (size_t k = 0; k < t->n; k++) gnorm += (double)t->g[k] * t->g[k];
        gnorm = sqrt(gnorm);
        for (int d = 0; d < 3; d++) {
            for (size_t k = 0; k < t->n; k++) {
                const double v = lpm_rng_normal(r) * op->fd_step;
                xp[k] = (float)(x0[k] + v), xm[k] = (float)(x0[k] - v);
            }
            memcpy(t->x, xp, t->n * sizeof(float));
            const double lp = loss(c, op);
            memcpy(t->x, xm, t->n * sizeof(float));
            const double lm = loss(c, op);
            double an = 0, dxn = 0;
            for (size_t k = 0; k < t->n; k++) {
                const double dx = (double)xp[k] - xm[k];
                an += t->g[k] * dx;
                dxn += dx * dx;
            }
            const double typical = gnorm * sqrt(dxn / (double)t->n);
            const double diff = fabs((lp - lm) - an);
            const double e = diff == 0 ? 0 : diff / (typical > 0 ? typical : 1e-300);
            if (!(e <= worst) && !isnan(worst))
                worst = e, snprintf(what, sizeof what, "%s", t->name);
        }
        memcpy(t->x, x0, t->n * sizeof(float));
        free(x0), free(xp), free(xm);
    }
    size_str(size, sizeof size, op, c);
    report(op, "fd-backward", size, "rel err", worst, op->fd_tol, what);
}

/* ------------------------------------------------------------------ fixture helpers */

/* Tensor `prefix name` with its element count checked; NULL (counted as a failure) if
 * absent or of another size. */
static const float *fx(const lpm_st_file *f, const char *prefix, const char *name,
                       size_t numel) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *t = lpm_st_find(f, full, &ndim, shape);
    size_t n = 1;
    for (int i = 0; t && i < ndim; i++) n *= (size_t)shape[i];
    if (t && n == numel) return t;
    test_failed++;
    printf("FAIL fixture tensor %s missing or has %zu values, want %zu\n", full, t ? n : 0, numel);
    return NULL;
}

/* Fills tensor i from the fixture's `name` (its values; for an OUT tensor its output
 * gradient) and its want from `want_name` (values of an OUT/AUX, gradient of an IN;
 * NULL: none); planar (ch, n) is turned into (n, ch) when ch > 0. */
static int from_fixture(op_case *c, int i, const lpm_st_file *f, const char *prefix,
                        const char *name, const char *want_name, int ch) {
    tensor *t = &c->t[i];
    const float *src = name ? fx(f, prefix, name, t->n) : NULL;
    const float *w = want_name ? fx(f, prefix, want_name, t->n) : NULL;
    if ((name && !src) || (want_name && !w)) return 0;
    float *dst[2] = {t->role == OUT ? t->g : t->x, NULL};
    const float *from[2] = {src, w};
    if (w) t->want = alloc_f(t->n), dst[1] = t->want;
    for (int k = 0; k < 2; k++) {
        if (!from[k]) continue;
        if (ch <= 0) {
            memcpy(dst[k], from[k], t->n * sizeof(float));
        } else {
            const size_t n = t->n / (size_t)ch;
            for (int cc = 0; cc < ch; cc++)
                for (size_t v = 0; v < n; v++) dst[k][v * ch + cc] = from[k][cc * n + v];
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ Conv_in */

enum { CV_A, CV_B, CV_W, CV_BIAS, CV_X };

static void conv_in_decl(op_case *c) {
    const size_t nv = (size_t)c->size[0] * c->size[1] * c->size[2];
    add(c, "a", nv, DATA), add(c, "b", nv, DATA);
    add(c, "weight", 8 * 2 * 27, IN), add(c, "bias", 8, IN);
    add(c, "out", nv * 8, OUT);
}

static void conv_in_setup(op_case *c, lpm_rng *r, int fd) {
    conv_in_decl(c);
    fill_uniform(X(CV_A), c->t[CV_A].n, 0, 1, r);
    fill_uniform(X(CV_B), c->t[CV_B].n, 0, 1, r);
    fill_uniform(X(CV_W), c->t[CV_W].n, -0.2, 0.2, r);
    fill_uniform(X(CV_BIAS), 8, -0.2, 0.2, r);
    fill_output_grads(c, r);
}

static void conv_in_ref_fwd(op_case *c) {
    lpm_ref_conv_in_forward(X(CV_X), X(CV_A), X(CV_B), X(CV_W), X(CV_BIAS), c->size[0],
                            c->size[1], c->size[2]);
}
static void conv_in_ref_bwd(op_case *c) {
    lpm_ref_conv_in_backward(G(CV_W), G(CV_BIAS), G(CV_X), X(CV_A), X(CV_B), c->size[0],
                             c->size[1], c->size[2]);
}
static void conv_in_fast_fwd(op_case *c) {
    K->conv_in_forward(X(CV_X), X(CV_A), X(CV_B), X(CV_W), X(CV_BIAS), c->size[0], c->size[1],
                        c->size[2]);
}
static void conv_in_fast_bwd(op_case *c) {
    K->conv_in_backward(G(CV_W), G(CV_BIAS), G(CV_X), X(CV_A), X(CV_B), c->size[0], c->size[1],
                         c->size[2]);
}

static int conv_in_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 4, c->size[1] = 5, c->size[2] = 6;
    conv_in_decl(c);
    return from_fixture(c, CV_A, f, p, "a", NULL, 0) && from_fixture(c, CV_B, f, p, "b", NULL, 0) &&
           from_fixture(c, CV_W, f, p, "weight", "grad_weight", 0) &&
           from_fixture(c, CV_BIAS, f, p, "bias", "grad_bias", 0) &&
           from_fixture(c, CV_X, f, p, "grad_out", "out", 8);
}

/* ------------------------------------------------------------------ dense module */

enum { DN_IN, DN_W0, DN_B0, DN_W1, DN_B1, DN_OUT };

static void dense_decl(op_case *c) {
    const size_t np = (size_t)c->size[0] * c->size[1];
    add(c, "in", np * 8, IN);
    add(c, "w0", 8 * 8 * 9, IN), add(c, "b0", 8, IN);
    add(c, "w1", 8 * 16 * 9, IN), add(c, "b1", 8, IN);
    add(c, "out", np * C, OUT);
}

static void dense_setup(op_case *c, lpm_rng *r, int fd) {
    dense_decl(c);
    fill_normal(X(DN_IN), c->t[DN_IN].n, 1.0, r);
    for (int i = DN_W0; i <= DN_B1; i++) fill_uniform(X(i), c->t[i].n, -0.3, 0.3, r);
    fill_output_grads(c, r);
}

static lpm_dense_params dense_params(op_case *c, int grad) {
    tensor *t = c->t;
    return grad ? (lpm_dense_params){{t[DN_W0].g, t[DN_W1].g}, {t[DN_B0].g, t[DN_B1].g}}
                : (lpm_dense_params){{t[DN_W0].x, t[DN_W1].x}, {t[DN_B0].x, t[DN_B1].x}};
}

/* feat = out: the input image into channels 16..23, then the forward in place */
static void dense_fwd(op_case *c, void (*fwd)(float *, const lpm_dense_params *, int, int)) {
    const size_t np = (size_t)c->size[0] * c->size[1];
    for (size_t v = 0; v < np; v++)
        memcpy(X(DN_OUT) + v * C + 16, X(DN_IN) + v * 8, 8 * sizeof(float));
    lpm_dense_params p = dense_params(c, 0);
    fwd(X(DN_OUT), &p, c->size[0], c->size[1]);
}

/* dfeat = a copy of the output gradient; its channels 16..23 are the input's gradient */
static void dense_bwd(op_case *c, void (*bwd)(float *, lpm_dense_params *, const float *,
                                              const lpm_dense_params *, int, int)) {
    const size_t np = (size_t)c->size[0] * c->size[1];
    float *dfeat = alloc_f(np * C);
    memcpy(dfeat, G(DN_OUT), np * C * sizeof(float));
    lpm_dense_params p = dense_params(c, 0), gp = dense_params(c, 1);
    bwd(dfeat, &gp, X(DN_OUT), &p, c->size[0], c->size[1]);
    for (size_t v = 0; v < np; v++)
        for (int i = 0; i < 8; i++) G(DN_IN)[v * 8 + i] += dfeat[v * C + 16 + i];
    free(dfeat);
}

static void dense_ref_fwd(op_case *c) { dense_fwd(c, lpm_ref_dense_forward); }
static void dense_ref_bwd(op_case *c) { dense_bwd(c, lpm_ref_dense_backward); }
static void dense_fast_fwd(op_case *c) { dense_fwd(c, K->dense_forward); }
static void dense_fast_bwd(op_case *c) { dense_bwd(c, K->dense_backward); }

static int dense_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 16, c->size[1] = 32;
    dense_decl(c);
    return from_fixture(c, DN_IN, f, p, "in", "grad_in", 8) &&
           from_fixture(c, DN_W0, f, p, "w0", "grad_w0", 0) &&
           from_fixture(c, DN_B0, f, p, "b0", "grad_b0", 0) &&
           from_fixture(c, DN_W1, f, p, "w1", "grad_w1", 0) &&
           from_fixture(c, DN_B1, f, p, "b1", "grad_b1", 0) &&
           from_fixture(c, DN_OUT, f, p, "grad_out", "out", C);
}

/* ------------------------------------------------------------------ LayerNorm */

enum { LN_IN, LN_W, LN_B, LN_OUT, LN_MEAN, LN_RSTD };

static void ln_decl(op_case *c) {
    const size_t n = (size_t)c->size[0], ch = (size_t)c->size[1];
    add(c, "in", n * ch, IN), add(c, "weight", ch, IN), add(c, "bias", ch, IN);
    add(c, "out", n * ch, OUT), add(c, "mean", n, AUX), add(c, "rstd", n, AUX);
}

/* rows with different means and spreads, one with a large mean and a small spread */
static void ln_setup(op_case *c, lpm_rng *r, int fd) {
    ln_decl(c);
    const int n = c->size[0], ch = c->size[1];
    for (int i = 0; i < n; i++) {
        const double m = 2 * lpm_rng_normal(r), s = 0.1 + 2 * lpm_rng_uniform(r);
        for (int k = 0; k < ch; k++) X(LN_IN)[i * ch + k] = (float)(m + s * lpm_rng_normal(r));
    }
    if (n > 5 && !fd)
        for (int k = 0; k < ch; k++) X(LN_IN)[5 * ch + k] = 300.0f + 0.05f * X(LN_IN)[5 * ch + k];
    fill_uniform(X(LN_W), (size_t)ch, 0.5, 1.5, r);
    fill_uniform(X(LN_B), (size_t)ch, -0.5, 0.5, r);
    fill_output_grads(c, r);
}

/* a reference call that could not allocate: counted as a failure (successes are not
 * counted: the finite differences make thousands of calls) */
static void check_status(lpm_status st, const char *what) {
    if (st == LPM_OK) return;
    test_failed++;
    printf("FAIL %s: %s\n", what, lpm_last_error());
}

/* the float layer, and the _f64 one for the unrounded outputs */
static void ln_ref_fwd(op_case *c) {
    const int64_t n = c->size[0];
    check_status(lpm_ref_layernorm_forward(X(LN_OUT), X(LN_MEAN), X(LN_RSTD), X(LN_IN), X(LN_W),
                                           X(LN_B), n, c->size[1]), "ref layernorm forward");
    double *in = d64(X(LN_IN), c->t[LN_IN].n);
    lpm_ref_layernorm_forward_f64(c->t[LN_OUT].x64, c->t[LN_MEAN].x64, c->t[LN_RSTD].x64, in,
                                  X(LN_W), X(LN_B), n, c->size[1]);
    free(in);
}
static void ln_ref_bwd(op_case *c) {
    check_status(lpm_ref_layernorm_backward(G(LN_IN), G(LN_W), G(LN_B), G(LN_OUT), X(LN_IN),
                                            X(LN_MEAN), X(LN_RSTD), X(LN_W), c->size[0],
                                            c->size[1]), "ref layernorm backward");
}
static void ln_fast_fwd(op_case *c) {
    K->layernorm_forward(X(LN_OUT), X(LN_MEAN), X(LN_RSTD), X(LN_IN), X(LN_W), X(LN_B),
                          c->size[0], c->size[1]);
}
static void ln_fast_bwd(op_case *c) {
    K->layernorm_backward(G(LN_IN), G(LN_W), G(LN_B), G(LN_OUT), X(LN_IN), X(LN_MEAN),
                           X(LN_RSTD), X(LN_W), c->size[0], c->size[1]);
}

static int ln_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 50, c->size[1] = C;
    ln_decl(c);
    return from_fixture(c, LN_IN, f, p, "in", "grad_in", 0) &&
           from_fixture(c, LN_W, f, p, "weight", "grad_weight", 0) &&
           from_fixture(c, LN_B, f, p, "bias", "grad_bias", 0) &&
           from_fixture(c, LN_OUT, f, p, "grad_out", "out", 0);
}

/* ------------------------------------------------------------------ Mamba and Swin-Mamba */

/* The 11 tensors of a Swin-Mamba layer in the authors' order (norm first); a Mamba op
 * declares them from A_log on. */
enum { MP_NORM_W, MP_NORM_B, MP_A_LOG, MP_D, MP_IN, MP_CONV_W, MP_CONV_B, MP_XPROJ,
       MP_DT_W, MP_DT_B, MP_OUT, MP_COUNT };
static const struct {
    const char *name;
    size_t n;
} mparam[MP_COUNT] = {
    {"norm.weight", 24},          {"norm.bias", 24},          {"mamba.A_log", 24 * 8},
    {"mamba.D", 24},              {"mamba.in_proj.weight", 48 * 24},
    {"mamba.conv1d.weight", 24 * 4}, {"mamba.conv1d.bias", 24},
    {"mamba.x_proj.weight", 18 * 24}, {"mamba.dt_proj.weight", 24 * 2},
    {"mamba.dt_proj.bias", 24},   {"mamba.out_proj.weight", 24 * 24},
};

/* Tensor layout of both ops: [0] the input, then the parameters from `first`, then out. */
static void mamba_decl(op_case *c, size_t nin, int first) {
    add(c, "u", nin, IN);
    for (int i = first; i < MP_COUNT; i++)
        add(c, mparam[i].name + (first ? 6 : 0), mparam[i].n, IN);
    add(c, "out", nin, OUT);
}

static lpm_mamba_params mamba_params(op_case *c, int first, int grad) {
    lpm_mamba_params p = {0};
    float **f[MP_COUNT] = {&p.norm_w, &p.norm_b, &p.A_log,  &p.D,         &p.in_proj, &p.conv_w,
                           &p.conv_b, &p.x_proj, &p.dt_proj_w, &p.dt_proj_b, &p.out_proj};
    for (int i = first; i < MP_COUNT; i++) {
        tensor *t = &c->t[1 + i - first];
        *f[i] = grad ? t->g : t->x;
    }
    return p;
}

/* Weights in the ranges the trained network sees, plus one dt channel above the softplus
 * threshold (v > 20) so both of its branches run. */
static void mamba_fill(op_case *c, int first, lpm_rng *r) {
    lpm_mamba_params p = mamba_params(c, first, 0);
    if (first == 0) {
        fill_uniform(p.norm_w, 24, 0.5, 1.5, r);
        fill_uniform(p.norm_b, 24, -0.3, 0.3, r);
    }
    for (int ch = 0; ch < 24; ch++)
        for (int n = 0; n < 8; n++)
            p.A_log[ch * 8 + n] = logf((float)(n + 1)) + (float)(0.3 * lpm_rng_normal(r));
    fill_uniform(p.D, 24, 0.0, 2.0, r);
    fill_uniform(p.in_proj, 48 * 24, -0.3, 0.3, r);
    fill_uniform(p.conv_w, 24 * 4, -0.5, 0.5, r);
    fill_uniform(p.conv_b, 24, -0.5, 0.5, r);
    fill_uniform(p.x_proj, 18 * 24, -0.3, 0.3, r);
    fill_uniform(p.dt_proj_w, 24 * 2, -0.7, 0.7, r);
    fill_uniform(p.dt_proj_b, 24, -2.0, 0.5, r);
    p.dt_proj_b[5] = 25.0f;
    fill_uniform(p.out_proj, 24 * 24, -0.3, 0.3, r);
}

enum { MB_U = 0, MB_OUT = 1 + MP_COUNT - MP_A_LOG };

static void mamba_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t lc = (size_t)c->size[0] * C;
    mamba_decl(c, lc, MP_A_LOG);
    fill_uniform(X(MB_U), lc, -1.5, 1.5, r);
    mamba_fill(c, MP_A_LOG, r);
    fill_output_grads(c, r);
}

static void mamba_ref_fwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, MP_A_LOG, 0);
    check_status(lpm_ref_mamba_forward(X(MB_OUT), X(MB_U), &p, c->size[0]), "ref mamba forward");
    double *u = d64(X(MB_U), c->t[MB_U].n);
    check_status(lpm_ref_mamba_forward_f64(c->t[MB_OUT].x64, u, &p, c->size[0]),
                 "ref mamba forward f64");
    free(u);
}
static void mamba_ref_bwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, MP_A_LOG, 0), gp = mamba_params(c, MP_A_LOG, 1);
    check_status(lpm_ref_mamba_backward(G(MB_U), &gp, G(MB_OUT), X(MB_U), &p, c->size[0]),
                 "ref mamba backward");
}
static void mamba_fast_fwd(op_case *c) {
    const int L = c->size[0];
    lpm_mamba_params p = mamba_params(c, MP_A_LOG, 0);
    float *scratch = alloc_f(K->mamba_scratch_floats(L));
    K->mamba_prepare(&p, scratch);
    K->mamba_forward(X(MB_OUT), X(MB_U), &p, L, scratch);
    free(scratch);
}
static void mamba_fast_bwd(op_case *c) {
    const int L = c->size[0];
    lpm_mamba_params p = mamba_params(c, MP_A_LOG, 0), gp = mamba_params(c, MP_A_LOG, 1);
    float *scratch = alloc_f(K->mamba_scratch_floats(L));
    K->mamba_prepare(&p, scratch);
    K->mamba_backward(G(MB_U), &gp, G(MB_OUT), X(MB_U), &p, L, scratch);
    free(scratch);
}

/* the fixture's names for the parameters: "mamba." dropped for the Mamba op */
static int mamba_params_fixture(op_case *c, const lpm_st_file *f, const char *p, int first) {
    for (int i = first; i < MP_COUNT; i++) {
        char name[96], gname[128];
        snprintf(name, sizeof name, "%s", mparam[i].name + (first ? 6 : 0));
        snprintf(gname, sizeof gname, "grad_%s", name);
        if (!from_fixture(c, 1 + i - first, f, p, name, gname, 0)) return 0;
    }
    return 1;
}

static int mamba_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 256;
    mamba_decl(c, 256 * C, MP_A_LOG);
    return from_fixture(c, MB_U, f, p, "u", "grad_u", 0) &&
           mamba_params_fixture(c, f, p, MP_A_LOG) &&
           from_fixture(c, MB_OUT, f, p, "grad_out", "out", 0);
}

enum { SW_IN = 0, SW_OUT = 1 + MP_COUNT };

static void swin_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t nx = (size_t)c->size[0] * c->size[1] * C;
    mamba_decl(c, nx, 0);
    c->t[SW_IN].name = "in";
    fill_uniform(X(SW_IN), nx, -2, 2, r);
    mamba_fill(c, 0, r);
    fill_output_grads(c, r);
}

static void swin_ref_fwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, 0, 0);
    check_status(lpm_ref_swin_mamba_forward(X(SW_OUT), X(SW_IN), &p, c->size[0], c->size[1],
                                            c->size[2]), "ref swin forward");
    double *in = d64(X(SW_IN), c->t[SW_IN].n);
    check_status(lpm_ref_swin_mamba_forward_f64(c->t[SW_OUT].x64, in, &p, c->size[0], c->size[1],
                                                c->size[2]), "ref swin forward f64");
    free(in);
}
static void swin_ref_bwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, 0, 0), gp = mamba_params(c, 0, 1);
    check_status(lpm_ref_swin_mamba_backward(G(SW_IN), &gp, G(SW_OUT), X(SW_IN), &p, c->size[0],
                                             c->size[1], c->size[2]), "ref swin backward");
}
static void swin_fast_fwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, 0, 0);
    float *scratch = alloc_f(K->swin_scratch_floats());
    K->swin_mamba_forward(X(SW_OUT), X(SW_IN), &p, c->size[0], c->size[1], c->size[2], scratch);
    free(scratch);
}
static void swin_fast_bwd(op_case *c) {
    lpm_mamba_params p = mamba_params(c, 0, 0), gp = mamba_params(c, 0, 1);
    float *scratch = alloc_f(K->swin_scratch_floats());
    K->swin_mamba_backward(G(SW_IN), &gp, G(SW_OUT), X(SW_IN), &p, c->size[0], c->size[1],
                            c->size[2], scratch);
    free(scratch);
}

static int swin_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 32, c->size[1] = 48, c->size[2] = strcmp(p, "swin8.") ? 0 : 8;
    mamba_decl(c, 32 * 48 * C, 0);
    c->t[SW_IN].name = "in";
    return from_fixture(c, SW_IN, f, p, "in", "grad_in", C) &&
           mamba_params_fixture(c, f, p, 0) && from_fixture(c, SW_OUT, f, p, "grad_out", "out", C);
}

/* ------------------------------------------------------------------ Mamba's parts */

/* The parts work on double activations: the tensors' float values are converted in, the
 * outputs come back in x64 (and rounded into x), activation gradients are added back. */

/* the OUT tensors' x from their x64 */
static void round_outputs(op_case *c) {
    for (int i = 0; i < c->nt; i++)
        if (c->t[i].role == OUT)
            for (size_t k = 0; k < c->t[i].n; k++) c->t[i].x[k] = (float)c->t[i].x64[k];
}

/* g of tensor i += d (n values), then free d */
static void add_grad(op_case *c, int i, double *d) {
    for (size_t k = 0; k < c->t[i].n; k++) c->t[i].g[k] += (float)d[k];
    free(d);
}

#define D64(i) d64(c->t[i].x, c->t[i].n)
#define ZERO64(i) alloc_d(c->t[i].n)

/* linear: size L, I, O (with bias, as dt_proj; in_proj, x_proj, out_proj have none) */
enum { LI_IN, LI_W, LI_B, LI_OUT };
static void linear_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t L = (size_t)c->size[0], I = (size_t)c->size[1], O = (size_t)c->size[2];
    fill_normal(add(c, "in", L * I, IN), L * I, 1.0, r);
    fill_uniform(add(c, "weight", O * I, IN), O * I, -0.3, 0.3, r);
    fill_uniform(add(c, "bias", O, IN), O, -0.3, 0.3, r);
    add(c, "out", L * O, OUT);
    fill_output_grads(c, r);
}
static void linear_ref_fwd(op_case *c) {
    double *in = D64(LI_IN);
    lpm_ref_linear_forward(c->t[LI_OUT].x64, in, X(LI_W), X(LI_B), c->size[0], c->size[1],
                           c->size[2]);
    round_outputs(c);
    free(in);
}
static void linear_ref_bwd(op_case *c) {
    double *in = D64(LI_IN), *dout = d64(G(LI_OUT), c->t[LI_OUT].n), *din = ZERO64(LI_IN);
    lpm_ref_linear_backward(din, G(LI_W), G(LI_B), dout, in, X(LI_W), c->size[0], c->size[1],
                            c->size[2]);
    add_grad(c, LI_IN, din);
    free(in), free(dout);
}

enum { CO_X, CO_W, CO_B, CO_OUT };
static void conv1d_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t lc = (size_t)c->size[0] * C;
    fill_normal(add(c, "x", lc, IN), lc, 1.0, r);
    fill_uniform(add(c, "weight", C * 4, IN), C * 4, -0.5, 0.5, r);
    fill_uniform(add(c, "bias", C, IN), C, -0.5, 0.5, r);
    add(c, "out", lc, OUT);
    fill_output_grads(c, r);
}
static void conv1d_ref_fwd(op_case *c) {
    double *x = D64(CO_X);
    lpm_ref_causal_conv1d_forward(c->t[CO_OUT].x64, x, X(CO_W), X(CO_B), c->size[0]);
    round_outputs(c);
    free(x);
}
static void conv1d_ref_bwd(op_case *c) {
    double *x = D64(CO_X), *dout = d64(G(CO_OUT), c->t[CO_OUT].n), *dx = ZERO64(CO_X);
    lpm_ref_causal_conv1d_backward(dx, G(CO_W), G(CO_B), dout, x, X(CO_W), c->size[0]);
    add_grad(c, CO_X, dx);
    free(x), free(dout);
}

/* elementwise ops: size n; x in [-8, 8], and a few values above softplus' threshold 20
 * (none within a step of it) */
enum { EW_X, EW_OUT };
static void eltwise_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t n = (size_t)c->size[0];
    float *x = add(c, "x", n, IN);
    fill_uniform(x, n, -8, 8, r);
    for (size_t i = 3; i < n; i += 7) x[i] = 20.5f + 10.0f * (float)lpm_rng_uniform(r);
    add(c, "out", n, OUT);
    fill_output_grads(c, r);
}
typedef void (*ew_fwd_fn)(double *, const double *, size_t);
typedef void (*ew_bwd_fn)(double *, const double *, const double *, size_t);
static void eltwise_fwd(op_case *c, ew_fwd_fn fwd) {
    double *x = D64(EW_X);
    fwd(c->t[EW_OUT].x64, x, c->t[EW_X].n);
    round_outputs(c);
    free(x);
}
static void eltwise_bwd(op_case *c, ew_bwd_fn bwd) {
    double *x = D64(EW_X), *dy = d64(G(EW_OUT), c->t[EW_OUT].n), *dx = ZERO64(EW_X);
    bwd(dx, dy, x, c->t[EW_X].n);
    add_grad(c, EW_X, dx);
    free(x), free(dy);
}
static void silu_ref_fwd(op_case *c) { eltwise_fwd(c, lpm_ref_silu_forward); }
static void silu_ref_bwd(op_case *c) { eltwise_bwd(c, lpm_ref_silu_backward); }
static void softplus_ref_fwd(op_case *c) { eltwise_fwd(c, lpm_ref_softplus_forward); }
static void softplus_ref_bwd(op_case *c) { eltwise_bwd(c, lpm_ref_softplus_backward); }

enum { GA_Y, GA_Z, GA_OUT };
static void gate_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t n = (size_t)c->size[0];
    fill_normal(add(c, "y", n, IN), n, 1.0, r);
    fill_uniform(add(c, "z", n, IN), n, -6, 6, r);
    add(c, "out", n, OUT);
    fill_output_grads(c, r);
}
static void gate_ref_fwd(op_case *c) {
    double *y = D64(GA_Y), *z = D64(GA_Z);
    lpm_ref_gate_forward(c->t[GA_OUT].x64, y, z, c->t[GA_Y].n);
    round_outputs(c);
    free(y), free(z);
}
static void gate_ref_bwd(op_case *c) {
    double *y = D64(GA_Y), *z = D64(GA_Z), *dout = d64(G(GA_OUT), c->t[GA_OUT].n);
    double *dy = ZERO64(GA_Y), *dz = ZERO64(GA_Z);
    lpm_ref_gate_backward(dy, dz, dout, y, z, c->t[GA_Y].n);
    add_grad(c, GA_Y, dy), add_grad(c, GA_Z, dz);
    free(y), free(z), free(dout);
}

enum { SC_XC, SC_DELTA, SC_ALOG, SC_B, SC_C, SC_D, SC_Y };
static void scan_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t L = (size_t)c->size[0];
    fill_normal(add(c, "xc", L * C, IN), L * C, 1.0, r);
    fill_uniform(add(c, "delta", L * C, IN), L * C, 0.05, 1.0, r);
    float *A_log = add(c, "A_log", C * 8, IN);
    for (int i = 0; i < C * 8; i++)
        A_log[i] = logf((float)(i % 8 + 1)) + (float)(0.3 * lpm_rng_normal(r));
    fill_normal(add(c, "B", L * 8, IN), L * 8, 1.0, r);
    fill_normal(add(c, "C", L * 8, IN), L * 8, 1.0, r);
    fill_uniform(add(c, "D", C, IN), C, 0, 2, r);
    add(c, "y", L * C, OUT);
    fill_output_grads(c, r);
}
static void scan_ref_fwd(op_case *c) {
    double *xc = D64(SC_XC), *delta = D64(SC_DELTA), *B = D64(SC_B), *Cm = D64(SC_C);
    lpm_ref_selective_scan_forward(c->t[SC_Y].x64, xc, delta, X(SC_ALOG), B, Cm, X(SC_D),
                                   c->size[0]);
    round_outputs(c);
    free(xc), free(delta), free(B), free(Cm);
}
static void scan_ref_bwd(op_case *c) {
    double *xc = D64(SC_XC), *delta = D64(SC_DELTA), *B = D64(SC_B), *Cm = D64(SC_C);
    double *dy = d64(G(SC_Y), c->t[SC_Y].n);
    double *dxc = ZERO64(SC_XC), *ddelta = ZERO64(SC_DELTA), *dB = ZERO64(SC_B), *dC = ZERO64(SC_C);
    check_status(lpm_ref_selective_scan_backward(dxc, ddelta, G(SC_ALOG), dB, dC, G(SC_D), dy, xc,
                                                 delta, X(SC_ALOG), B, Cm, X(SC_D), c->size[0]),
                 "ref scan backward");
    add_grad(c, SC_XC, dxc), add_grad(c, SC_DELTA, ddelta), add_grad(c, SC_B, dB);
    add_grad(c, SC_C, dC);
    free(xc), free(delta), free(B), free(Cm), free(dy);
}

/* window partition: size R, Q, channels, shift */
enum { WP_IMG, WP_TOK };
static void window_setup(op_case *c, lpm_rng *r, int fd) {
    const size_t n = (size_t)c->size[0] * c->size[1] * c->size[2];
    fill_normal(add(c, "img", n, IN), n, 1.0, r);
    add(c, "tokens", n, OUT);
    fill_output_grads(c, r);
}
static void window_ref_fwd(op_case *c) {
    double *img = D64(WP_IMG);
    lpm_ref_window_partition(c->t[WP_TOK].x64, img, c->size[0], c->size[1], c->size[2],
                             c->size[3]);
    round_outputs(c);
    free(img);
}
static void window_ref_bwd(op_case *c) {
    double *dtok = d64(G(WP_TOK), c->t[WP_TOK].n), *dimg = ZERO64(WP_IMG);
    lpm_ref_window_partition_backward(dimg, dtok, c->size[0], c->size[1], c->size[2], c->size[3]);
    add_grad(c, WP_IMG, dimg);
    free(dtok);
}

/* merge(partition(x)) = x bitwise, and token t = 16 i + j of window (wr, wq) is pixel
 * ((16 wr + i + s) mod R, (16 wq + j + s) mod Q) (model.h's statement) */
static void test_window_roundtrip(int R, int Q, int shift) {
    const size_t n = (size_t)R * Q;
    double *img = alloc_d(n), *tok = alloc_d(n), *back = alloc_d(n);
    for (size_t i = 0; i < n; i++) img[i] = (double)i;
    lpm_ref_window_partition(tok, img, R, Q, 1, shift);
    lpm_ref_window_merge(back, tok, R, Q, 1, shift);
    int same = !memcmp(img, back, n * sizeof(double)), placed = 1;
    for (int wr = 0; wr < R / 16; wr++)
        for (int wq = 0; wq < Q / 16; wq++)
            for (int t = 0; t < 256; t++) {
                const size_t want = (size_t)((16 * wr + t / 16 + shift) % R) * Q +
                                    (16 * wq + t % 16 + shift) % Q;
                placed &= tok[((size_t)wr * (Q / 16) + wq) * 256 + t] == (double)want;
            }
    CHECK(same && placed, "window partition R,Q=%d,%d shift=%d: round trip %d, token placement %d",
          R, Q, shift, same, placed);
    if (same && placed)
        printf("ok   window_partition roundtrip R,Q=%d,%d shift=%d: merge(partition(x)) == x, "
               "tokens where model.h says\n", R, Q, shift);
    free(img), free(tok), free(back);
}

/* ------------------------------------------------------------------ max fusion */

enum { MX_P1, MX_P2, MX_P3, MX_M };

static void max3_decl(op_case *c) {
    const size_t n = (size_t)c->size[0];
    add(c, "p1", n, IN), add(c, "p2", n, IN), add(c, "p3", n, IN), add(c, "out", n, OUT);
}

/* Exact ties in every pattern (as the winner and as a loser) in the first 5 of every 8
 * values; none for finite differences, where the values keep 0.03 apart. */
static void max3_setup(op_case *c, lpm_rng *r, int fd) {
    max3_decl(c);
    float *p[3] = {X(MX_P1), X(MX_P2), X(MX_P3)};
    for (int i = 0; i < c->size[0]; i++) {
        for (int k = 0; k < 3; k++)   /* a 0.1 grid offset 0.03 k: any two 0.03 apart */
            p[k][i] = (float)(0.1 * (int)(40 * lpm_rng_uniform(r)) - 2 + 0.03 * k);
        if (fd) continue;
        switch (i % 8) {
        case 0: p[1][i] = p[0][i], p[2][i] = p[0][i] - 1; break;
        case 1: p[2][i] = p[0][i], p[1][i] = p[0][i] - 1; break;
        case 2: p[2][i] = p[1][i], p[0][i] = p[1][i] - 1; break;
        case 3: p[1][i] = p[2][i] = p[0][i]; break;
        case 4: p[1][i] = p[0][i], p[2][i] = p[0][i] + 1; break;
        }
    }
    fill_output_grads(c, r);
}

static void max3_ref_fwd(op_case *c) {
    lpm_ref_max3_forward(X(MX_M), X(MX_P1), X(MX_P2), X(MX_P3), c->t[MX_M].n);
}
static void max3_ref_bwd(op_case *c) {
    lpm_ref_max3_backward(G(MX_P1), G(MX_P2), G(MX_P3), G(MX_M), X(MX_P1), X(MX_P2), X(MX_P3),
                          c->t[MX_M].n);
}

/* network.c's way: merge the branches into a running max with winner bits (in the order
 * 3, 1, 2: the bits must not depend on it), then share the gradient by the bits */
static unsigned char *max3_bits(op_case *c) {
    const size_t n = c->t[MX_M].n;
    unsigned char *bits = calloc(n ? n : 1, 1);
    const int order[3] = {2, 0, 1};
    for (int j = 0; j < 3; j++)
        for (size_t i = 0; i < n; i++) {
            const int k = order[j];
            const float v = c->t[MX_P1 + k].x[i];
            if (j == 0) X(MX_M)[i] = v, bits[i] = (unsigned char)(1u << k);
            else lpm_max3_merge(&X(MX_M)[i], &bits[i], v, k);
        }
    return bits;
}
static void max3_fast_fwd(op_case *c) { free(max3_bits(c)); }
static void max3_fast_bwd(op_case *c) {
    unsigned char *bits = max3_bits(c);
    for (size_t i = 0; i < c->t[MX_M].n; i++)
        for (int k = 0; k < 3; k++) c->t[MX_P1 + k].g[i] += G(MX_M)[i] * lpm_max3_share(bits[i], k);
    free(bits);
}

static int max3_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 24 * 64;
    max3_decl(c);
    return from_fixture(c, MX_P1, f, p, "p1", "grad_p1", 0) &&
           from_fixture(c, MX_P2, f, p, "p2", "grad_p2", 0) &&
           from_fixture(c, MX_P3, f, p, "p3", "grad_p3", 0) &&
           from_fixture(c, MX_M, f, p, "grad_out", "out", 0);
}

/* ------------------------------------------------------------------ CfC head */

enum { CF_F, CF_FF1, CF_FF2, CF_TA, CF_TB, CF_FCW, CF_FCB, CF_OUT, CF_BASE, CF_DETAIL };

/* size n, nout; base and detail are outputs for nout 1 only (the network's use) */
static void cfc_decl(op_case *c) {
    const size_t n = (size_t)c->size[0], nout = (size_t)c->size[1];
    add(c, "f", n * C, IN);
    add(c, "ff1.weight", C * C, IN), add(c, "ff2.weight", C * C, IN);
    add(c, "time_a.weight", C * C, IN), add(c, "time_b.weight", C * C, IN);
    add(c, "fc.weight", nout * C, IN), add(c, "fc.bias", nout, IN);
    add(c, "out", nout * n, OUT);
    if (nout == 1) add(c, "base", n, OUT), add(c, "detail", n, OUT);
}

static void cfc_setup(op_case *c, lpm_rng *r, int fd) {
    cfc_decl(c);
    fill_normal(X(CF_F), c->t[CF_F].n, 1.0, r);
    for (int i = CF_FF1; i <= CF_FCB; i++) fill_uniform(X(i), c->t[i].n, -0.3, 0.3, r);
    fill_output_grads(c, r);
}

static lpm_cfc_params cfc_params(op_case *c, int grad) {
    float *v[CF_OUT];
    for (int i = 0; i < CF_OUT; i++) v[i] = grad ? c->t[i].g : c->t[i].x;
    return (lpm_cfc_params){v[CF_FF1], v[CF_FF2], v[CF_TA], v[CF_TB], v[CF_FCW], v[CF_FCB],
                            c->size[1]};
}

typedef void (*cfc_fwd_fn)(float *, float *, float *, const float *, const lpm_cfc_params *,
                           int64_t);
typedef void (*cfc_bwd_fn)(float *, lpm_cfc_params *, const float *, const float *,
                           const float *, const float *, const lpm_cfc_params *, int64_t);

static void cfc_fwd(op_case *c, cfc_fwd_fn fwd) {
    lpm_cfc_params p = cfc_params(c, 0);
    const int one = c->size[1] == 1;
    fwd(X(CF_OUT), one ? X(CF_BASE) : NULL, one ? X(CF_DETAIL) : NULL, X(CF_F), &p, c->size[0]);
}
static void cfc_bwd(op_case *c, cfc_bwd_fn bwd) {
    lpm_cfc_params p = cfc_params(c, 0), gp = cfc_params(c, 1);
    const int one = c->size[1] == 1;
    bwd(G(CF_F), &gp, G(CF_OUT), one ? G(CF_BASE) : NULL, one ? G(CF_DETAIL) : NULL, X(CF_F), &p,
        c->size[0]);
}
static void cfc_ref_fwd(op_case *c) { cfc_fwd(c, lpm_ref_cfc_forward); }
static void cfc_ref_bwd(op_case *c) { cfc_bwd(c, lpm_ref_cfc_backward); }
static void cfc_fast_fwd(op_case *c) { cfc_fwd(c, K->cfc_forward); }
static void cfc_fast_bwd(op_case *c) { cfc_bwd(c, K->cfc_backward); }

static int cfc_fixture(op_case *c, const lpm_st_file *f, const char *p) {
    c->size[0] = 100, c->size[1] = strcmp(p, "cfcm.") ? 1 : 2;
    cfc_decl(c);
    const char *names[6] = {"ff1.weight", "ff2.weight", "time_a.weight", "time_b.weight",
                            "fc.weight", "fc.bias"};
    int ok = from_fixture(c, CF_F, f, p, "f", "grad_f", C) &&
             from_fixture(c, CF_OUT, f, p, "grad_out", "out", 0);
    for (int i = 0; ok && i < 6; i++) {
        char g[64];
        snprintf(g, sizeof g, "grad_%s", names[i]);
        ok = from_fixture(c, CF_FF1 + i, f, p, names[i], g, 0);
    }
    if (ok && c->size[1] == 1)
        ok = from_fixture(c, CF_BASE, f, p, "grad_base", "base", 0) &&
             from_fixture(c, CF_DETAIL, f, p, "grad_detail", "detail", 0);
    return ok;
}

/* ------------------------------------------------------------------ the table */

/* Sizes: 1, 3, 7, 15, 17, 33 where the API allows any size (vector widths are 8 and 16
 * floats, the Mamba forward works in blocks of 16 tokens, the CfC in blocks of 32 voxels,
 * Conv_in in runs of 16 voxels along W, LayerNorm in blocks of 16 rows). The Swin layer
 * needs R and Q to be multiples of 16: it is tested at the smallest such sizes.
 *
 * Thresholds (NMSE, fast against reference), from the worst values observed in the
 * avx512, avx2 and portable kernel sets (Release and ASan builds), times ~20-100: */
/* Conv_in, dense, LayerNorm, CfC: float sums of <= 432 terms in another order than the
 * reference's double, sigmoid/tanh within a few ulp: observed <= 1.6e-13 (CfC backward,
 * baseline x86-64; <= 6e-14 with the AVX-512 clones) */
#define TOL_SUMS 1e-11
/* Mamba and the Swin layer: vmath.h's exp/sigmoid/softplus (a few ulp) through a
 * recurrence over up to 256 tokens and four matmuls: observed <= 1.3e-12 */
#define TOL_MAMBA 1e-10
/* (max fusion: exact selections, 0.) Finite differences, rel err = |fd - analytic| over
 * the typical directional derivative. With the unrounded double outputs (f64 ops) only the
 * step's truncation error remains: observed <= 2.7e-7 at the steps below. With float
 * outputs (Conv_in, dense, CfC, max3) their rounding dominates: Conv_in (linear) 5.5e-7,
 * dense 4.8e-5 -> 1e-3, max3 (piecewise linear, no ties) 0 -> 1e-4, CfC (24x24 weights
 * with small gradients against 3 float outputs a voxel) 4.4e-3 -> TOL_FD_F32; its
 * backward is also held to PyTorch's autograd at NMSE 1e-11 (torch-backward). A missing
 * or wrong term gives 1 and more (a dropped term of the scan's ddelta: 2 to 1e296). */
#define TOL_FD_F64 1e-5
#define TOL_FD_F32 2e-2
#define NO_FAST NULL, NULL
static const op_def ops[] = {
    {"conv_in", "D,H,W=%d,%d,%d", 6,
     {{1, 1, 1}, {2, 3, 5}, {3, 4, 7}, {2, 3, 15}, {2, 2, 17}, {1, 3, 33}},
     2, conv_in_setup, conv_in_ref_fwd, conv_in_ref_bwd, conv_in_fast_fwd, conv_in_fast_bwd,
     TOL_SUMS, TOL_SUMS, 1e-2, 1e-4, 0, NULL, conv_in_fixture, {"conv_in.", NULL}},
    {"dense", "R,Q=%d,%d", 7, {{1, 1}, {1, 3}, {3, 7}, {2, 15}, {5, 17}, {2, 33}, {4, 9}},
     2, dense_setup, dense_ref_fwd, dense_ref_bwd, dense_fast_fwd, dense_fast_bwd,
     TOL_SUMS, TOL_SUMS, 1e-3, 1e-3, 0, NULL, dense_fixture, {"dense.", NULL}},
    {"layernorm", "n=%d C=%d", 8,
     {{1, 24}, {3, 24}, {7, 24}, {15, 24}, {17, 24}, {33, 24}, {17, 13}, {7, 40}},
     3, ln_setup, ln_ref_fwd, ln_ref_bwd, ln_fast_fwd, ln_fast_bwd,
     TOL_SUMS, TOL_SUMS, 1e-3, TOL_FD_F64, 1, NULL, ln_fixture, {"ln.", NULL}},
    {"mamba", "L=%d", 8, {{1}, {3}, {7}, {15}, {16}, {17}, {33}, {256}},
     3, mamba_setup, mamba_ref_fwd, mamba_ref_bwd, mamba_fast_fwd, mamba_fast_bwd,
     TOL_MAMBA, TOL_MAMBA, 1e-4, TOL_FD_F64, 1, NULL, mamba_fixture, {"mamba.", NULL}},
    {"swin_mamba", "R,Q=%d,%d shift=%d", 3, {{16, 16, 0}, {16, 16, 8}, {32, 16, 8}},
     1, swin_setup, swin_ref_fwd, swin_ref_bwd, swin_fast_fwd, swin_fast_bwd,
     TOL_MAMBA, TOL_MAMBA, 1e-4, TOL_FD_F64, 1, NULL, swin_fixture, {"swin0.", "swin8."}},
    {"max3", "n=%d", 4, {{1}, {3}, {17}, {64}},
     2, max3_setup, max3_ref_fwd, max3_ref_bwd, max3_fast_fwd, max3_fast_bwd,
     0, 0, 1e-3, 1e-4, 0, NULL, max3_fixture, {"max3.", NULL}},
    {"cfc", "n=%d nout=%d", 8,
     {{1, 1}, {3, 1}, {7, 1}, {15, 1}, {17, 1}, {33, 1}, {65, 1}, {17, 2}},
     3, cfc_setup, cfc_ref_fwd, cfc_ref_bwd, cfc_fast_fwd, cfc_fast_bwd,
     TOL_SUMS, TOL_SUMS, 1e-2, TOL_FD_F32, 0, NULL, cfc_fixture, {"cfc.", "cfcm."}},
    /* Mamba's parts: reference only (the fast ones are static inside mamba.c and checked
     * through the whole layer above) */
    {"mamba.linear", "L=%d I=%d O=%d", 3, {{1, 24, 48}, {7, 24, 18}, {17, 2, 24}},
     3, linear_setup, linear_ref_fwd, linear_ref_bwd, NO_FAST, 0, 0, 1e-3, TOL_FD_F64, 1,
     "static in mamba.c (matmul_in/_x/_out, dt_softplus)", NULL, {NULL, NULL}},
    {"mamba.conv1d", "L=%d", 3, {{1}, {3}, {7}},
     3, conv1d_setup, conv1d_ref_fwd, conv1d_ref_bwd, NO_FAST, 0, 0, 1e-3, TOL_FD_F64, 1,
     "static in mamba.c (conv_silu, conv_backward)", NULL, {NULL, NULL}},
    {"mamba.silu", "n=%d", 1, {{33}},
     1, eltwise_setup, silu_ref_fwd, silu_ref_bwd, NO_FAST, 0, 0, 1e-3, TOL_FD_F64, 1,
     "static in mamba.c (sigmoid, silu_backward)", NULL, {NULL, NULL}},
    {"mamba.softplus", "n=%d", 1, {{33}},
     1, eltwise_setup, softplus_ref_fwd, softplus_ref_bwd, NO_FAST, 0, 0, 1e-3, TOL_FD_F64, 1,
     "static in mamba.c (dt_softplus)", NULL, {NULL, NULL}},
    {"mamba.scan", "L=%d", 3, {{1}, {7}, {17}},
     3, scan_setup, scan_ref_fwd, scan_ref_bwd, NO_FAST, 0, 0, 1e-4, TOL_FD_F64, 1,
     "static in mamba.c (scan_exp, scan_forward, scan_backward)", NULL, {NULL, NULL}},
    {"mamba.gate", "n=%d", 1, {{33}},
     1, gate_setup, gate_ref_fwd, gate_ref_bwd, NO_FAST, 0, 0, 1e-3, TOL_FD_F64, 1,
     "static in mamba.c (gate, gate_backward)", NULL, {NULL, NULL}},
    {"window_partition", "R,Q=%d,%d C=%d shift=%d", 2, {{16, 16, 3, 0}, {32, 48, 2, 8}},
     2, window_setup, window_ref_fwd, window_ref_bwd, NO_FAST, 0, 0, 1e-2, TOL_FD_F64, 1,
     "static in window.c (window_pixels, gather, scatter)", NULL, {NULL, NULL}},
};

/* ------------------------------------------------------------------ driver */

static void run_fixtures(const op_def *op, const lpm_st_file *f) {
    for (int k = 0; k < 2 && op->prefixes[k]; k++) {
        op_case c = {0};
        if (!op->fixture(&c, f, op->prefixes[k])) {
            case_free(&c);
            continue;
        }
        op->ref_fwd(&c);
        compare(op, &c, "torch-forward", 1, 1, tol_torch);
        zero_input_grads(&c);
        op->ref_bwd(&c);
        compare(op, &c, "torch-backward", 0, 1, tol_torch);
        case_free(&c);
    }
}

/* the fast sets this process runs (nsets of them) */
static const lpm_kernels *sets[LPM_ISA_COUNT];
static int nsets;

static void run_sizes(const op_def *op, lpm_rng *r) {
    for (int s = 0; s < op->nsizes; s++) {
        op_case c = {0};
        memcpy(c.size, op->sizes[s], sizeof c.size);
        char size[64];
        size_str(size, sizeof size, op, &c);
        if (op->fast_fwd) {
            op->setup(&c, r, 0);
            run(&c, op->ref_fwd, op->ref_bwd);
            for (int i = 0; i < c.nt; i++) {
                const tensor *t = &c.t[i];
                memcpy(t->ref, t->role == IN ? t->g : t->x, t->n * sizeof(float));
            }
            /* every set on the same inputs (the ops keep their inputs, as the reference
             * run before the first set already requires) */
            for (int k = 0; k < nsets; k++) {
                K = sets[k];
                char check[2][32];
                snprintf(check[0], sizeof check[0], "%s forward", K->name);
                snprintf(check[1], sizeof check[1], "%s backward", K->name);
                run(&c, op->fast_fwd, op->fast_bwd);
                compare(op, &c, check[0], 1, 0, op->tol_fwd);
                compare(op, &c, check[1], 0, 0, op->tol_bwd);
            }
            case_free(&c);
        } else if (s == 0) {
            SKIP("%s forward/backward: no fast kernel of its own: %s", op->name, op->fast_note);
        }
        if (s < op->fd_sizes) {
            memcpy(c.size, op->sizes[s], sizeof c.size);
            op->setup(&c, r, 1);
            fd_check(op, &c, r);
            case_free(&c);
        }
    }
}

int main(void) {
    lpm_set_threads(2);
    lpm_rng r;
    lpm_rng_seed(&r, 20251205);

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
    /* the fast kernel sets: every one this build has and this CPU runs */
    /* (and ref: the table's adapters, ref_kernels.c, against the reference layers called
     * directly: 0 unless an adapter is miswired) */
    const lpm_isa fast[] = {LPM_ISA_AVX512, LPM_ISA_AVX2, LPM_ISA_NEON, LPM_ISA_PORTABLE,
                            LPM_ISA_REF};
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        char why[160];
        const lpm_kernels *k = lpm_kernels_for(fast[i], why, sizeof why);
        if (k) sets[nsets++] = k;
        else SKIP("%s kernels: %s", lpm_isa_name(fast[i]), why);
    }
    printf("kernel sets under test:");
    for (int k = 0; k < nsets; k++) printf(" %s", sets[k]->name);
    printf(" (each against the reference layers)\n");
    test_window_roundtrip(32, 48, 0);
    test_window_roundtrip(32, 48, 8);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (f && ops[i].fixture) run_fixtures(&ops[i], f);
        run_sizes(&ops[i], &r);
    }
    if (f) lpm_st_close(f);
    return test_summary();
}
