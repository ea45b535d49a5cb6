/* The CUDA backend against the CPU (ggml test-backend-ops style): every layer and the whole
 * network run on both with the same seeded inputs and weights (lpm_weights_init); outputs
 * and gradients are compared by normalised mean squared error and max |diff|, and checked
 * for NaN/Inf; then 10 training steps on each and the weights compared.
 * Exit 77 (skip) when no CUDA device can be used (always the case without a GPU or in a
 * build without CUDA). */
#include "cuda/cuda.h"
#include "model/model.h"
#include "test.h"
#include "train/train.h"

/* forward ops: FP32 with a different summation order / FMA contraction than the CPU */
#define TOL_FWD 1e-9
/* gradients: sums over thousands of terms in another order */
#define TOL_GRAD 1e-8

static lpm_rng rng;

static float *rnd(size_t n, float lo, float hi) {
    float *x = lpm_malloc(n, sizeof(float));
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)lpm_rng_uniform(&rng);
    return x;
}

static float *zeros(size_t n) {
    float *x = lpm_calloc(n, sizeof(float));
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return x;
}

static float *copy(const float *src, size_t n) {
    float *x = zeros(n);
    memcpy(x, src, n * sizeof(float));
    return x;
}

/* NMSE = sum (got - want)^2 / sum want^2 (the plain sum when want is all 0); the largest
 * |got - want| in *worst and the count of NaN/Inf values of got in *bad. */
static double nmse(const float *got, const float *want, size_t n, double *worst, size_t *bad) {
    double num = 0, den = 0;
    *worst = 0, *bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) ++*bad;
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
        if (fabs(d) > *worst) *worst = fabs(d);
    }
    return den > 0 ? num / den : num;
}

/* got against want by NMSE; NaN/Inf in got fail outright. */
static void compare(const char *what, const float *got, const float *want, size_t n, double tol) {
    double worst;
    size_t bad;
    const double e = nmse(got, want, n, &worst, &bad);
    CHECK(bad == 0, "%s: %zu NaN/Inf values on the GPU", what, bad);
    CHECK(e < tol, "%s: NMSE %.3g >= %.3g (max |diff| %.3g)", what, e, tol, worst);
    printf("  %-34s NMSE %.3g  max|diff| %.3g  (%zu values)\n", what, e, worst, n);
}

#define ST(call) CHECK((call) == LPM_OK, "%s: %s", #call, lpm_last_error())

static void test_conv_in(const lpm_weights *w, const lpm_params *p) {
    const int64_t D = 6, H = 10, W = 12, n = D * H * W;
    float *a = rnd(n, 0, 1), *b = rnd(n, 0, 1), *dX = rnd(n * 8, -1, 1);
    float *Xc = zeros(n * 8), *Xg = zeros(n * 8);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    lpm_conv_in_forward(Xc, a, b, p->conv_in_w, p->conv_in_b, D, H, W);
    ST(lpm_cuda_conv_in_forward(Xg, a, b, w->data, D, H, W));
    compare("conv_in forward", Xg, Xc, n * 8, TOL_FWD);
    lpm_conv_in_backward(gp.conv_in_w, gp.conv_in_b, dX, a, b, D, H, W);
    ST(lpm_cuda_conv_in_backward(gg, dX, a, b, D, H, W));
    compare("conv_in backward dW", gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(a), free(b), free(dX), free(Xc), free(Xg), free(gc), free(gg);
}

static void test_dense(const lpm_weights *w, const lpm_params *p) {
    const int k = 1, R = 16, Q = 32;
    const size_t n = (size_t)R * Q * 24;
    float *fc = rnd(n, -1, 1), *fg = copy(fc, n);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    lpm_dense_forward(fc, &p->dense[k], R, Q);
    ST(lpm_cuda_dense_forward(fg, w->data, k, R, Q));
    compare("dense forward", fg, fc, n, TOL_FWD);
    float *dc = rnd(n, -1, 1), *dg = copy(dc, n);
    lpm_dense_backward(dc, &gp.dense[k], fc, &p->dense[k], R, Q);
    ST(lpm_cuda_dense_backward(dg, gg, fc, w->data, k, R, Q));
    compare("dense backward dfeat", dg, dc, n, TOL_GRAD);
    compare("dense backward dW", gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(fc), free(fg), free(gc), free(gg), free(dc), free(dg);
}

static void test_layernorm(const lpm_weights *w, const lpm_params *p) {
    const int k = 0, l = 1;
    const int64_t n = 300;
    float *x = rnd(n * 24, -2, 3), *g = rnd(n * 24, -1, 1);
    float *yc = zeros(n * 24), *yg = zeros(n * 24), *mc = zeros(n), *mg = zeros(n);
    float *rc = zeros(n), *rg = zeros(n), *dc = zeros(n * 24), *dg = zeros(n * 24);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    const lpm_mamba_params *mp = &p->mamba[k][l];
    lpm_layernorm_forward(yc, mc, rc, x, mp->norm_w, mp->norm_b, n, 24);
    ST(lpm_cuda_layernorm_forward(yg, mg, rg, x, w->data, k, l, n));
    compare("layernorm forward", yg, yc, n * 24, TOL_FWD);
    compare("layernorm rstd", rg, rc, n, TOL_FWD);
    lpm_layernorm_backward(dc, gp.mamba[k][l].norm_w, gp.mamba[k][l].norm_b, g, x, mc, rc,
                           mp->norm_w, n, 24);
    ST(lpm_cuda_layernorm_backward(dg, gg, g, x, mc, rc, w->data, k, l, n));
    compare("layernorm backward dx", dg, dc, n * 24, TOL_GRAD);
    compare("layernorm backward dW", gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(x), free(g), free(yc), free(yg), free(mc), free(mg), free(rc), free(rg);
    free(dc), free(dg), free(gc), free(gg);
}

static void test_mamba(const lpm_weights *w, const lpm_params *p) {
    const int k = 2, l = 1, nseq = 3, L = 256;
    const size_t nt = (size_t)nseq * L * 24;
    float *u = rnd(nt, -1.5f, 1.5f), *g = rnd(nt, -1, 1);
    float *oc = zeros(nt), *og = zeros(nt), *dc = zeros(nt), *dg = zeros(nt);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    float *scratch = zeros(lpm_mamba_scratch_floats(L));
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    for (int s = 0; s < nseq; s++) {
        size_t at = (size_t)s * L * 24;
        lpm_mamba_prepare(&p->mamba[k][l], scratch);
        lpm_mamba_forward(oc + at, u + at, &p->mamba[k][l], L, scratch);
        lpm_mamba_backward(dc + at, &gp.mamba[k][l], g + at, u + at, &p->mamba[k][l], L, scratch);
    }
    ST(lpm_cuda_mamba_forward(og, u, w->data, k, l, nseq, L));
    compare("mamba forward", og, oc, nt, TOL_FWD);
    ST(lpm_cuda_mamba_backward(dg, gg, g, u, w->data, k, l, nseq, L));
    compare("mamba backward du", dg, dc, nt, TOL_GRAD);
    compare("mamba backward dW", gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(u), free(g), free(oc), free(og), free(dc), free(dg), free(gc), free(gg), free(scratch);
}

static void test_swin(const lpm_weights *w, const lpm_params *p, int shift) {
    const int k = 0, l = shift ? 1 : 0, R = 32, Q = 48;
    const size_t n = (size_t)R * Q * 24;
    float *x = rnd(n, -1, 1), *g = rnd(n, -1, 1);
    float *oc = zeros(n), *og = zeros(n), *dc = zeros(n), *dg = zeros(n);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    float *scratch = zeros(lpm_swin_scratch_floats());
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    char name[64];
    lpm_swin_mamba_forward(oc, x, &p->mamba[k][l], R, Q, shift, scratch);
    ST(lpm_cuda_swin_mamba_forward(og, x, w->data, k, l, R, Q, shift));
    snprintf(name, sizeof name, "swin (shift %d) forward", shift);
    compare(name, og, oc, n, TOL_FWD);
    lpm_swin_mamba_backward(dc, &gp.mamba[k][l], g, x, &p->mamba[k][l], R, Q, shift, scratch);
    ST(lpm_cuda_swin_mamba_backward(dg, gg, g, x, w->data, k, l, R, Q, shift));
    snprintf(name, sizeof name, "swin (shift %d) backward din", shift);
    compare(name, dg, dc, n, TOL_GRAD);
    snprintf(name, sizeof name, "swin (shift %d) backward dW", shift);
    compare(name, gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(x), free(g), free(oc), free(og), free(dc), free(dg), free(gc), free(gg), free(scratch);
}

static void test_cfc(const lpm_weights *w, const lpm_params *p, int head) {
    const int64_t n = 1000;
    const lpm_cfc_params *hp = head ? &p->cfc_mask : &p->cfc;
    const size_t no = (size_t)n * hp->nout;
    float *f = rnd(n * 24, -1, 1), *go = rnd(no, -1, 1), *gb = rnd(no, -1, 1), *gd = rnd(no, -1, 1);
    float *oc = zeros(no), *og = zeros(no), *bc = zeros(no), *bg = zeros(no);
    float *ec = zeros(no), *eg = zeros(no), *dc = zeros(n * 24), *dg = zeros(n * 24);
    float *gc = zeros(LPM_NUM_PARAMS), *gg = zeros(LPM_NUM_PARAMS);
    lpm_params gp;
    lpm_params_bind(&gp, gc);
    const int bd = head == 0; /* base and detail exist for the fusion head only */
    char name[64];
    lpm_cfc_forward(oc, bd ? bc : NULL, bd ? ec : NULL, f, hp, n);
    ST(lpm_cuda_cfc_forward(og, bd ? bg : NULL, bd ? eg : NULL, f, w->data, head, n));
    snprintf(name, sizeof name, "cfc head %d forward", head);
    compare(name, og, oc, no, TOL_FWD);
    if (bd) {
        compare("cfc head 0 base", bg, bc, no, TOL_FWD);
        compare("cfc head 0 detail", eg, ec, no, TOL_FWD);
    }
    lpm_cfc_backward(dc, head ? &gp.cfc_mask : &gp.cfc, go, bd ? gb : NULL, bd ? gd : NULL, f, hp, n);
    ST(lpm_cuda_cfc_backward(dg, gg, go, bd ? gb : NULL, bd ? gd : NULL, f, w->data, head, n));
    snprintf(name, sizeof name, "cfc head %d backward df", head);
    compare(name, dg, dc, n * 24, TOL_GRAD);
    snprintf(name, sizeof name, "cfc head %d backward dW", head);
    compare(name, gg, gc, LPM_NUM_PARAMS, TOL_GRAD);
    free(f), free(go), free(gb), free(gd), free(oc), free(og), free(bc), free(bg);
    free(ec), free(eg), free(dc), free(dg), free(gc), free(gg);
}

/* The whole network, forward with both heads and backward, on device buffers. */
static void test_net(const lpm_weights *w, const lpm_params *p) {
    const int64_t D = 16, H = 32, W = 48, n = D * H * W;
    float *a = rnd(n, 0, 1), *b = rnd(n, 0, 1);
    float *dout = rnd(2 * n, -1e-3f, 1e-3f), *ddet = rnd(n, -1e-3f, 1e-3f);
    float *cpu[4] = {zeros(2 * n), zeros(n), zeros(n), zeros(LPM_NUM_PARAMS)};
    float *gpu[4] = {zeros(2 * n), zeros(n), zeros(n), zeros(LPM_NUM_PARAMS)};
    lpm_params gp;
    lpm_params_bind(&gp, cpu[3]);
    lpm_net *net = lpm_net_create(D, H, W, LPM_NET_TRAIN);
    lpm_cuda_net *cn = lpm_cuda_net_create(D, H, W, 1);
    CHECK(net && cn, "net create: %s", lpm_last_error());
    /* device: params, grad, a, b, out (2n), base, detail, dout (2n), ddet */
    void *d[9] = {0};
    const size_t len[9] = {LPM_NUM_PARAMS, LPM_NUM_PARAMS, n, n, 2 * n, n, n, 2 * n, n};
    int ok = net && cn;
    for (int i = 0; i < 9 && ok; i++) ok = lpm_cuda_malloc(&d[i], len[i] * sizeof(float)) == LPM_OK;
    CHECK(ok, "device buffers: %s", lpm_last_error());
    if (ok) {
        float *zero = zeros(LPM_NUM_PARAMS);
        ST(lpm_cuda_upload(d[0], w->data, LPM_NUM_PARAMS * sizeof(float)));
        ST(lpm_cuda_upload(d[1], zero, LPM_NUM_PARAMS * sizeof(float)));
        ST(lpm_cuda_upload(d[2], a, n * sizeof(float)));
        ST(lpm_cuda_upload(d[3], b, n * sizeof(float)));
        ST(lpm_cuda_upload(d[7], dout, 2 * n * sizeof(float)));
        ST(lpm_cuda_upload(d[8], ddet, n * sizeof(float)));
        free(zero);
        for (int head = 1; head >= 0; head--) {
            /* head 1 first, then head 0: the backward below is the fusion head's */
            ST(lpm_net_forward(net, p, a, b, head, cpu[0], head ? NULL : cpu[1], head ? NULL : cpu[2], NULL, NULL));
            ST(lpm_cuda_net_forward(cn, d[0], d[2], d[3], head, d[4], head ? NULL : d[5], head ? NULL : d[6]));
            ST(lpm_cuda_download(gpu[0], d[4], (size_t)(head ? 2 : 1) * n * sizeof(float)));
            compare(head ? "net forward (cfc_mask head)" : "net forward fused", gpu[0], cpu[0],
                    (size_t)(head ? 2 : 1) * n, TOL_FWD);
        }
        ST(lpm_cuda_download(gpu[1], d[5], n * sizeof(float)));
        ST(lpm_cuda_download(gpu[2], d[6], n * sizeof(float)));
        compare("net forward base", gpu[1], cpu[1], n, TOL_FWD);
        compare("net forward detail", gpu[2], cpu[2], n, TOL_FWD);
        ST(lpm_net_backward(net, p, &gp, dout, NULL, ddet));
        ST(lpm_cuda_net_backward(cn, d[0], d[1], d[7], NULL, d[8]));
        ST(lpm_cuda_download(gpu[3], d[1], LPM_NUM_PARAMS * sizeof(float)));
        compare("net backward dW (all 26051)", gpu[3], cpu[3], LPM_NUM_PARAMS, TOL_GRAD);
        /* tensor by tensor, so a failure names its layer */
        const lpm_tensor_info *t = lpm_tensor_table();
        for (int i = 0; i < LPM_NUM_TENSORS; i++)
            if (strncmp(t[i].name, "cfc_mask", 8) != 0)
                compare(t[i].name, gpu[3] + t[i].offset, cpu[3] + t[i].offset, t[i].numel, 1e-6);
    }
    for (int i = 0; i < 9; i++) lpm_cuda_free(d[i]);
    lpm_net_free(net);
    lpm_cuda_net_free(cn);
    for (int i = 0; i < 4; i++) free(cpu[i]), free(gpu[i]);
    free(a), free(b), free(dout), free(ddet);
}

/* Weight change after 10 Adam steps, (trained - start). */
static float *weight_change(const float *trained, const float *start) {
    float *d = zeros(LPM_NUM_PARAMS);
    for (int i = 0; i < LPM_NUM_PARAMS; i++) d[i] = trained[i] - start[i];
    return d;
}

/* 10 steps of the CPU trainer and of the GPU trainer from the same weights, data and masks.
 * Adam divides each gradient by its own running size, so a rounding difference in a
 * near-zero gradient becomes a difference of order lr, and it compounds: the weights after
 * 10 steps cannot agree to the precision of one step's gradient (checked to 1e-13 above).
 * The yardstick is the CPU itself: a third run from the same weights moved by one ulp. The
 * GPU, which rounds differently in every op and not only in the starting weights, must land
 * within 10 times that spread (a wrong gradient anywhere gives an NMSE near 1). */
static void test_train(const lpm_weights *w) {
    const int64_t D = 16, H = 32, W = 32, n = D * H * W;
    const int steps = 10;
    lpm_trainer ct, cu;
    lpm_cuda_trainer *gt = lpm_cuda_trainer_create(D, H, W);
    CHECK(gt != NULL, "cuda trainer: %s", lpm_last_error());
    if (!gt || lpm_trainer_init(&ct, D, H, W) != LPM_OK || lpm_trainer_init(&cu, D, H, W) != LPM_OK) {
        lpm_cuda_trainer_free(gt);
        return;
    }
    memcpy(ct.w.data, w->data, LPM_NUM_PARAMS * sizeof(float));
    for (int i = 0; i < LPM_NUM_PARAMS; i++) cu.w.data[i] = nextafterf(w->data[i], i % 2 ? INFINITY : -INFINITY);
    ST(lpm_cuda_trainer_set(gt, w->data, NULL, NULL, 0));
    float *a = rnd(n, 0, 1), *b = rnd(n, 0, 1), *m1 = zeros(n), *m2 = zeros(n);
    lpm_loss_weights lw = {.alpha = 0.05, .beta = 1.0, .gamma = 0.5, .lambda_s = 1.0};
    for (int s = 0; s < steps; s++) {
        lpm_recon_masks(m1, m2, D, H, W, 0.2, &rng);
        lpm_loss_terms tc = {0}, tu = {0}, tg = {0};
        ST(lpm_train_step(&ct, a, b, m1, m2, NULL, 0.2, &lw, 1e-3, &tc));
        ST(lpm_train_step(&cu, a, b, m1, m2, NULL, 0.2, &lw, 1e-3, &tu));
        ST(lpm_cuda_train_step(gt, a, b, m1, m2, NULL, 0.2, &lw, 1e-3, &tg));
        CHECK(fabs(tg.total - tc.total) <= 1e-5 * fabs(tc.total) + 1e-7,
              "step %d: loss GPU %.9g CPU %.9g", s, tg.total, tc.total);
        printf("  step %2d loss CPU %.9f GPU %.9f (CPU from weights 1 ulp away %.9f)\n", s, tc.total,
               tg.total, tu.total);
    }
    float *wg = zeros(LPM_NUM_PARAMS);
    ST(lpm_cuda_trainer_get(gt, wg, NULL, NULL, NULL));
    float *dc = weight_change(ct.w.data, w->data), *du = weight_change(cu.w.data, w->data);
    float *dg = weight_change(wg, w->data);
    double worst;
    size_t bad;
    const double ulp_nmse = nmse(du, dc, LPM_NUM_PARAMS, &worst, &bad);
    printf("  CPU vs CPU from weights 1 ulp away: weight change NMSE %.3g\n", ulp_nmse);
    CHECK(ulp_nmse < 1e-5, "the CPU's own 1-ulp spread %.3g is too wide to judge by", ulp_nmse);
    compare("10 Adam steps: weight change", dg, dc, LPM_NUM_PARAMS, 10 * ulp_nmse);
    free(wg), free(dg), free(dc), free(du), free(a), free(b), free(m1), free(m2);
    lpm_trainer_free(&ct);
    lpm_trainer_free(&cu);
    lpm_cuda_trainer_free(gt);
}

int main(void) {
    char why[256];
    if (!lpm_cuda_available(why, sizeof why)) {
        printf("skip: no CUDA device: %s\n", why);
        return 77;
    }
    lpm_rng_seed(&rng, 2024);
    lpm_weights w;
    if (lpm_weights_alloc(&w) != LPM_OK || lpm_weights_init(&w, 7) != LPM_OK) {
        fprintf(stderr, "weights: %s\n", lpm_last_error());
        return 1;
    }
    lpm_params p;
    lpm_params_bind(&p, w.data);
    test_conv_in(&w, &p);
    test_dense(&w, &p);
    test_layernorm(&w, &p);
    test_mamba(&w, &p);
    test_swin(&w, &p, 0);
    test_swin(&w, &p, 8);
    test_cfc(&w, &p, 0);
    test_cfc(&w, &p, 1);
    test_net(&w, &p);
    test_train(&w);
    lpm_weights_free(&w);
    return test_summary();
}
