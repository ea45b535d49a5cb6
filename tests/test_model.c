/* The whole network against the PyTorch reference: model_small (every stage, the
 * reconstruction pass, all parameter gradients), the 64x96x96 forward through lpm_fuse,
 * and the 160x240x240 forward when that fixture exists. Plus 1 vs 2 threads bit for bit.
 * Runs on the kernel set LPM_ISA picks (src/model/kernels.h), like every caller. */
#include "io/io.h"
#include "model/model.h"
#include "test.h"

#include <time.h>

static float *alloc_f(size_t n) {
    float *p = lpm_calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* (C, n) planar -> (n, C) channels innermost */
static void to_last(float *dst, const float *src, int C, size_t n) {
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n; i++) dst[i * C + c] = src[c * n + i];
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static double max_diff(const float *x, const float *y, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i] - y[i]));
    return m;
}

static const float *fx(const lpm_st_file *f, const char *name, size_t numel) {
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *t = lpm_st_find(f, name, &ndim, shape);
    size_t n = 1;
    for (int i = 0; t && i < ndim; i++) n *= (size_t)shape[i];
    CHECK(t && n == numel, "fixture tensor %s missing or has %zu values, want %zu", name,
          t ? n : 0, numel);
    return t && n == numel ? t : NULL;
}

/* Weights `<prefix><name>` of the fixture into w (allocated here); 0 when any is missing. */
static int load_weights(lpm_weights *w, const lpm_st_file *f, const char *prefix) {
    const lpm_tensor_info *t = lpm_tensor_table();
    w->data = alloc_f(LPM_NUM_PARAMS);
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, t[i].name);
        const float *src = fx(f, name, t[i].numel);
        if (!src) return 0;
        memcpy(w->data + t[i].offset, src, t[i].numel * sizeof(float));
    }
    return 1;
}

/* The worst tensor of a gradient: max|diff| / max|want| over the 92 tensors. */
static void check_grads(const char *what, const float *got, const lpm_st_file *f,
                        const char *prefix) {
    const lpm_tensor_info *t = lpm_tensor_table();
    double worst = 0;
    int worst_i = 0;
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, t[i].name);
        const float *want = fx(f, name, t[i].numel);
        if (!want) return;
        double scale = max_abs(want, t[i].numel);
        double d = max_diff(got + t[i].offset, want, t[i].numel);
        double rel = d / (scale > 0 ? scale : 1.0);
        if (rel > worst) worst = rel, worst_i = i;
    }
    CHECK(worst <= 1e-3, "%s: worst tensor %s%s: max|diff| / max|want| = %.3g", what, prefix,
          t[worst_i].name, worst);
    printf("  %s  %-40s worst tensor %s: max|diff|/max|want| %.3g\n",
           worst <= 1e-3 ? "ok " : "BAD", what, t[worst_i].name, worst);
}

/* Branch k run image by image with the layer functions: out (D,H,W,24). */
static void run_branch(float *out, float *dense_out, const float *X, const lpm_params *p, int k,
                       int64_t D, int64_t H, int64_t W) {
    int64_t nimg = k == 0 ? D : k == 1 ? H : W;
    int R = (int)(k == 0 ? H : D), Q = (int)(k == 2 ? H : W);
    float *feat = alloc_f((size_t)R * Q * 24), *s0 = alloc_f((size_t)R * Q * 24);
    float *s1 = alloc_f((size_t)R * Q * 24);
    float *swin = alloc_f(lpm_swin_scratch_floats());
    for (int64_t i = 0; i < nimg; i++) {
        for (int pass = 0; pass < 2; pass++) {
            for (int r = 0; r < R; r++)
                for (int q = 0; q < Q; q++) {
                    int64_t d = k == 0 ? i : r, h = k == 0 ? r : k == 1 ? i : q;
                    int64_t v = (d * H + h) * W + (k == 2 ? i : q);
                    size_t px = ((size_t)r * Q + q) * 24;
                    if (pass == 0) {
                        memcpy(feat + px + 16, X + v * 8, 8 * sizeof(float));
                    } else {
                        memcpy(out + v * 24, s1 + px, 24 * sizeof(float));
                        memcpy(dense_out + v * 24, feat + px, 24 * sizeof(float));
                    }
                }
            if (pass == 0) {
                lpm_dense_forward(feat, &p->dense[k], R, Q);
                lpm_swin_mamba_forward(s0, feat, &p->mamba[k][0], R, Q, 0, swin);
                lpm_swin_mamba_forward(s1, s0, &p->mamba[k][1], R, Q, 8, swin);
            }
        }
    }
    free(feat), free(s0), free(s1), free(swin);
}

/* lpm_fuse on a 13x30x45 volume (values not in [0,1]) against normalising and zero-padding
 * by hand to 16x32x48 and running the network directly. */
static void test_fuse_padding(const lpm_params *p, const float *a, const float *b,
                              const lpm_weights *w) {
    const int64_t D = 13, H = 30, W = 45, Dp = 16, Hp = 32, Wp = 48;
    const size_t n = (size_t)(D * H * W), np = (size_t)(Dp * Hp * Wp);
    lpm_volume va, vb, out[3];
    if (lpm_volume_alloc(&va, W, H, D) != LPM_OK || lpm_volume_alloc(&vb, W, H, D) != LPM_OK) {
        CHECK(0, "%s", lpm_last_error());
        return;
    }
    float *pa = alloc_f(np), *pb = alloc_f(np), *ref[3] = {alloc_f(np), alloc_f(np), alloc_f(np)};
    for (int pass = 0; pass < 2; pass++) {
        float *v = pass ? vb.data : va.data, *pad = pass ? pb : pa;
        const float *src = pass ? b : a;
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++) {
                    /* the fixture's volume (16x32x48) cropped, mapped to [-3, 5] */
                    float val = 8 * src[(d * 32 + h) * 48 + x] - 3;
                    v[(d * H + h) * W + x] = val;
                    lo = fminf(lo, val), hi = fmaxf(hi, val);
                }
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++)
                    pad[(d * Hp + h) * Wp + x] = (v[(d * H + h) * W + x] - lo) / (hi - lo);
    }
    lpm_net *net = lpm_net_create(Dp, Hp, Wp, LPM_NET_INFER);
    CHECK(net && lpm_net_forward(net, p, pa, pb, 0, ref[0], ref[1], ref[2], NULL, NULL) == LPM_OK,
          "%s", lpm_last_error());
    lpm_net_free(net);
    lpm_status st = lpm_fuse(w, &va, &vb, &out[0], &out[1], &out[2], NULL, 2, NULL, NULL);
    CHECK(st == LPM_OK, "lpm_fuse: %s", lpm_last_error());
    if (st == LPM_OK) {
        const char *names[3] = {"lpm_fuse 13x30x45 fused", "lpm_fuse 13x30x45 base",
                                "lpm_fuse 13x30x45 detail"};
        for (int j = 0; j < 3; j++) {
            CHECK(out[j].nx == W && out[j].ny == H && out[j].nz == D, "output size");
            float *crop = alloc_f(n);
            for (int64_t d = 0; d < D; d++)
                for (int64_t h = 0; h < H; h++)
                    memcpy(crop + (d * H + h) * W, ref[j] + (d * Hp + h) * Wp, W * sizeof(float));
            CHECK_CLOSE(names[j], out[j].data, crop, n, 0, 0);
            free(crop);
            lpm_volume_free(&out[j]);
        }
    }
    /* a different grid is refused */
    lpm_volume vc;
    if (lpm_volume_alloc(&vc, W, H, D - 1) == LPM_OK) {
        CHECK(lpm_fuse(w, &va, &vc, &out[0], NULL, NULL, NULL, 1, NULL, NULL) == LPM_ERR_INPUT,
              "lpm_fuse accepted two grids");
        lpm_volume_free(&vc);
    }
    lpm_volume_free(&va), lpm_volume_free(&vb);
    free(pa), free(pb), free(ref[0]), free(ref[1]), free(ref[2]);
}

/* lpm_fuse with LPM_FUSE_DEFAULT on a 13x30x45 volume against its definition computed by
 * hand: the inputs normalised, a corner block where both are at their minimum; for each
 * shift s = 0, 4, 8, 12 the inputs placed at (s,s,s) in a zero volume whose sides are
 * multiples of 16, the network run, the block at (s,s,s) taken; the four averaged in that
 * order; 0 where both normalised inputs are 0. */
static void test_fuse_passes(const lpm_params *p, const float *a, const float *b,
                             const lpm_weights *w) {
    const int64_t D = 13, H = 30, W = 45;
    const size_t n = (size_t)(D * H * W);
    lpm_volume va, vb, out;
    if (lpm_volume_alloc(&va, W, H, D) != LPM_OK || lpm_volume_alloc(&vb, W, H, D) != LPM_OK) {
        CHECK(0, "%s", lpm_last_error());
        return;
    }
    float *norm[2] = {alloc_f(n), alloc_f(n)}, *want = alloc_f(n);
    for (int k = 0; k < 2; k++) {
        float *v = k ? vb.data : va.data;
        const float *src = k ? b : a;
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++) /* values in [0, 1]; the corner block 0 */
                    v[(d * H + h) * W + x] = d < 5 && h < 9 && x < 11 ? 0.0f : 0.1f + 0.8f * src[(d * 32 + h) * 48 + x];
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]);
        for (size_t i = 0; i < n; i++) norm[k][i] = (v[i] - lo) / (hi - lo);
    }
    for (int s = 0; s < 16; s += 4) {
        const int64_t Dp = lpm_pad16(D + s), Hp = lpm_pad16(H + s), Wp = lpm_pad16(W + s);
        const size_t np = (size_t)(Dp * Hp * Wp);
        float *pa = alloc_f(np), *pb = alloc_f(np), *po = alloc_f(np);
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++) {
                    pa[((d + s) * Hp + h + s) * Wp + x + s] = norm[0][(d * H + h) * W + x];
                    pb[((d + s) * Hp + h + s) * Wp + x + s] = norm[1][(d * H + h) * W + x];
                }
        lpm_net *net = lpm_net_create(Dp, Hp, Wp, LPM_NET_INFER);
        CHECK(net && lpm_net_forward(net, p, pa, pb, 0, po, NULL, NULL, NULL, NULL) == LPM_OK,
              "%s", lpm_last_error());
        lpm_net_free(net);
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t x = 0; x < W; x++) {
                    float *o = want + (d * H + h) * W + x;
                    const float v = 0.25f * po[((d + s) * Hp + h + s) * Wp + x + s];
                    *o = s == 0 ? v : *o + v;
                }
        free(pa), free(pb), free(po);
    }
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++)
        if (norm[0][i] == 0.0f && norm[1][i] == 0.0f) want[i] = 0.0f, zeros++;
    CHECK(zeros >= 5 * 9 * 11, "the test's background block is missing (%zu zeros)", zeros);
    lpm_status st = lpm_fuse(w, &va, &vb, &out, NULL, NULL, &LPM_FUSE_DEFAULT, 2, NULL, NULL);
    CHECK(st == LPM_OK, "lpm_fuse 4 passes: %s", lpm_last_error());
    if (st == LPM_OK) {
        CHECK_CLOSE("lpm_fuse 4 passes + background rule", out.data, want, n, 0, 0);
        lpm_volume_free(&out);
    }
    lpm_fuse_options bad = {.passes = 3};
    CHECK(lpm_fuse(w, &va, &vb, &out, NULL, NULL, &bad, 1, NULL, NULL) == LPM_ERR_USAGE,
          "lpm_fuse accepted 3 passes");
    lpm_volume_free(&va), lpm_volume_free(&vb);
    free(norm[0]), free(norm[1]), free(want);
}

/* Blank images (X = Conv_in's bias all over: both inputs 0 around them) take the branch
 * output computed once per branch in the inference net; the training net computes every
 * image. Inputs that are 0 outside a block leave blank images in every branch, and the two
 * nets must agree bit for bit, on 1 and 2 threads. */
static void test_blank_images(const lpm_params *p) {
    const int64_t D = 32, H = 48, W = 64;
    const size_t n = (size_t)(D * H * W);
    float *a = alloc_f(n), *b = alloc_f(n);
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    for (int64_t d = 9; d < 21; d++)
        for (int64_t h = 14; h < 31; h++)
            for (int64_t w = 20; w < 41; w++)
                a[(d * H + h) * W + w] = (float)lpm_rng_uniform(&r),
                b[(d * H + h) * W + w] = (float)lpm_rng_uniform(&r);
    float *want[3] = {alloc_f(n), alloc_f(n), alloc_f(n)}, *got[3] = {alloc_f(n), alloc_f(n), alloc_f(n)};
    lpm_net *net = lpm_net_create(D, H, W, LPM_NET_TRAIN);
    CHECK(net && lpm_net_forward(net, p, a, b, 0, want[0], want[1], want[2], NULL, NULL) == LPM_OK,
          "training net: %s", lpm_last_error());
    lpm_net_free(net);
    for (int t = 1; t <= 2; t++) {
        lpm_set_threads(t);
        net = lpm_net_create(D, H, W, LPM_NET_INFER);
        CHECK(net && lpm_net_forward(net, p, a, b, 0, got[0], got[1], got[2], NULL, NULL) == LPM_OK,
              "inference net: %s", lpm_last_error());
        lpm_net_free(net);
        for (int j = 0; j < 3; j++)
            CHECK(memcmp(got[j], want[j], n * sizeof(float)) == 0,
                  "output %d with blank images, %d thread(s): inference net differs from the "
                  "training net", j, t);
    }
    /* the blank part of the output is not trivially constant: the windows' scan varies it */
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++) lo = fminf(lo, want[0][h * W + w]), hi = fmaxf(hi, want[0][h * W + w]);
    printf("  info blank slice 0: fused output in [%.6g, %.6g]\n", lo, hi);
    for (int j = 0; j < 3; j++) free(want[j]), free(got[j]);
    free(a), free(b);
}

static void test_small(const lpm_st_file *f) {
    const int64_t D = 16, H = 32, W = 48;
    const size_t n = (size_t)(D * H * W);
    lpm_weights w;
    if (!load_weights(&w, f, "w.")) return;
    lpm_params p;
    lpm_params_bind(&p, w.data);
    const float *a = fx(f, "a", n), *b = fx(f, "b", n), *X_ref = fx(f, "X", 8 * n);
    const float *M_ref = fx(f, "M", 24 * n), *fused = fx(f, "fused", n);
    const float *base = fx(f, "base", n), *detail = fx(f, "detail", n);
    const float *mask1 = fx(f, "mask1", n), *mask2 = fx(f, "mask2", n);
    const float *recon = fx(f, "recon", 2 * n);
    const float *gf = fx(f, "grad_fused", n), *gb = fx(f, "grad_base", n);
    const float *gd = fx(f, "grad_detail", n), *grec = fx(f, "grad_recon", 2 * n);
    if (!a || !b || !X_ref || !M_ref || !fused || !base || !detail || !mask1 || !mask2 ||
        !recon || !gf || !gb || !gd || !grec) {
        free(w.data);
        return;
    }

    /* stage by stage with the layer functions */
    float *X = alloc_f(8 * n), *want = alloc_f(24 * n), *M = alloc_f(24 * n);
    float *P = alloc_f(24 * n), *Pd = alloc_f(24 * n);
    lpm_conv_in_forward(X, a, b, p.conv_in_w, p.conv_in_b, D, H, W);
    to_last(want, X_ref, 8, n);
    CHECK_CLOSE("X", X, want, 8 * n, 1e-5, 0);
    for (int k = 0; k < 3; k++) {
        char name[32];
        run_branch(P, Pd, X, &p, k, D, H, W);
        snprintf(name, sizeof name, "P%d.dense", k + 1);
        const float *ref = fx(f, name, 24 * n);
        if (ref) {
            to_last(want, ref, 24, n);
            CHECK_CLOSE(name, Pd, want, 24 * n, 1e-5, 0);
        }
        snprintf(name, sizeof name, "P%d.out", k + 1);
        ref = fx(f, name, 24 * n);
        if (ref) {
            to_last(want, ref, 24, n);
            CHECK_CLOSE(name, P, want, 24 * n, 1e-5, 0);
        }
        for (size_t i = 0; i < 24 * n; i++) M[i] = k == 0 || P[i] > M[i] ? P[i] : M[i];
    }
    to_last(want, M_ref, 24, n);
    CHECK_CLOSE("M", M, want, 24 * n, 1e-5, 0);

    /* the network, inference net, 1 and 2 threads */
    float *out[2][3];
    for (int t = 0; t < 2; t++) {
        lpm_set_threads(t + 1);
        lpm_net *net = lpm_net_create(D, H, W, LPM_NET_INFER);
        CHECK(net, "lpm_net_create: %s", lpm_last_error());
        if (!net) return;
        for (int j = 0; j < 3; j++) out[t][j] = alloc_f(n);
        lpm_status st = lpm_net_forward(net, &p, a, b, 0, out[t][0], out[t][1], out[t][2], NULL, NULL);
        CHECK(st == LPM_OK, "lpm_net_forward: %s", lpm_last_error());
        lpm_net_free(net);
    }
    CHECK_CLOSE("fused", out[1][0], fused, n, 1e-5, 0);
    CHECK_CLOSE("base", out[1][1], base, n, 1e-5, 0);
    CHECK_CLOSE("detail", out[1][2], detail, n, 1e-5, 0);
    for (int j = 0; j < 3; j++)
        CHECK(memcmp(out[0][j], out[1][j], n * sizeof(float)) == 0,
              "output %d differs between 1 and 2 threads", j);

    /* LPM_TEST_SMALL=1 (make test-arm64, under qemu): the network's numbers against
     * PyTorch only; the blank-image shortcut and lpm_fuse's passes and padding are the
     * same code on every kernel set, checked natively */
    const int small_only = test_env("LPM_TEST_SMALL") != NULL;
    if (small_only) SKIP("blank images, lpm_fuse padding and passes: LPM_TEST_SMALL is set");
    else test_blank_images(&p);

    /* training net: the fusion pass, then the reconstruction pass; the trunk kept from the
     * forward (checked against PyTorch) and recomputed in the backward (bit for bit the
     * same), each on 2 threads */
    float *grads[2][2];
    for (int mode = 0; mode < 2; mode++) {
        lpm_net *net = lpm_net_create(D, H, W, mode ? LPM_NET_TRAIN_RECOMPUTE : LPM_NET_TRAIN);
        CHECK(net, "lpm_net_create (training): %s", lpm_last_error());
        if (!net) return;
        grads[mode][0] = alloc_f(LPM_NUM_PARAMS), grads[mode][1] = alloc_f(LPM_NUM_PARAMS);
        lpm_params gp;
        lpm_params_bind(&gp, grads[mode][0]);
        float *o[3] = {alloc_f(n), alloc_f(n), alloc_f(n)};
        CHECK(lpm_net_forward(net, &p, a, b, 0, o[0], o[1], o[2], NULL, NULL) == LPM_OK, "%s",
              lpm_last_error());
        CHECK(memcmp(o[0], out[1][0], n * sizeof(float)) == 0, "training forward differs");
        CHECK(lpm_net_backward(net, &p, &gp, gf, gb, gd) == LPM_OK, "%s", lpm_last_error());

        float *am = alloc_f(n), *bm = alloc_f(n), *r = alloc_f(2 * n);
        for (size_t i = 0; i < n; i++) am[i] = a[i] * mask1[i], bm[i] = b[i] * mask2[i];
        lpm_params_bind(&gp, grads[mode][1]);
        CHECK(lpm_net_forward(net, &p, am, bm, 1, r, NULL, NULL, NULL, NULL) == LPM_OK, "%s",
              lpm_last_error());
        CHECK_CLOSE("recon", r, recon, 2 * n, 1e-5, 0);
        CHECK(lpm_net_backward(net, &p, &gp, grec, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
        lpm_net_free(net);
        free(o[0]), free(o[1]), free(o[2]), free(am), free(bm), free(r);
    }
    check_grads("fusion gradients", grads[0][0], f, "grad.");
    check_grads("reconstruction gradients", grads[0][1], f, "grad_rec.");
    for (int pass = 0; pass < 2; pass++) {
        CHECK(memcmp(grads[1][pass], grads[0][pass], LPM_NUM_PARAMS * sizeof(float)) == 0,
              "%s gradients: the recomputed trunk differs from the kept one",
              pass ? "reconstruction" : "fusion");
        free(grads[0][pass]), free(grads[1][pass]);
    }

    /* masks: 8x8x8 blocks, about 80 % kept */
    float *m1 = alloc_f(n), *m2 = alloc_f(n);
    lpm_rng rng;
    lpm_rng_seed(&rng, 3);
    lpm_recon_masks(m1, m2, D, H, W, 0.2, &rng);
    double kept = 0;
    int blocky = 1;
    for (int64_t i = 0; i < (int64_t)n; i++) {
        kept += m1[i] + m2[i];
        int64_t d = i / (H * W), h = i / W % H, x = i % W;
        int64_t corner = ((d / 8 * 8) * H + h / 8 * 8) * W + x / 8 * 8;
        blocky &= m1[i] == m1[corner] && m2[i] == m2[corner] && (m1[i] == 0 || m1[i] == 1);
    }
    CHECK(blocky, "masks are not constant 0/1 on 8x8x8 blocks");
    CHECK(kept / (2.0 * n) > 0.6 && kept / (2.0 * n) < 0.95, "kept fraction %.3f", kept / (2.0 * n));

    if (!small_only) {
        test_fuse_padding(&p, a, b, &w);
        test_fuse_passes(&p, a, b, &w);
    }

    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 3; j++) free(out[t][j]);
    free(m1), free(m2), free(X), free(want), free(M), free(P), free(Pd), free(w.data);
}

/* Forward of a large fixture through lpm_fuse (inputs already in [0,1], sizes multiples of 16). */
static void test_large(const char *path, int64_t D, int64_t H, int64_t W) {
    lpm_st_file *f;
    if (lpm_st_read(path, &f) != LPM_OK) {
        SKIP("%s", lpm_last_error());
        return;
    }
    const size_t n = (size_t)(D * H * W);
    lpm_weights w;
    const float *a = fx(f, "a", n), *b = fx(f, "b", n), *ref[3] = {fx(f, "fused", n),
                                                                   fx(f, "base", n), fx(f, "detail", n)};
    if (load_weights(&w, f, "w.") && a && b && ref[0] && ref[1] && ref[2]) {
        lpm_volume va, vb, out[3];
        CHECK(lpm_volume_alloc(&va, W, H, D) == LPM_OK, "%s", lpm_last_error());
        CHECK(lpm_volume_alloc(&vb, W, H, D) == LPM_OK, "%s", lpm_last_error());
        memcpy(va.data, a, n * sizeof(float));
        memcpy(vb.data, b, n * sizeof(float));
        double t0 = lpm_seconds();
        clock_t c0 = clock();
        lpm_status st = lpm_fuse(&w, &va, &vb, &out[0], &out[1], &out[2], NULL, 1, NULL, NULL);
        double secs = lpm_seconds() - t0, cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
        CHECK(st == LPM_OK, "lpm_fuse: %s", lpm_last_error());
        if (st == LPM_OK) {
            const char *names[3] = {"fused", "base", "detail"};
            for (int j = 0; j < 3; j++) {
                char what[64];
                snprintf(what, sizeof what, "%lldx%lldx%lld %s", (long long)D, (long long)H,
                         (long long)W, names[j]);
                CHECK_CLOSE(what, out[j].data, ref[j], n, 1e-5, 0);
                lpm_volume_free(&out[j]);
            }
            printf("  lpm_fuse %lldx%lldx%lld, 1 thread: %.2f s wall, %.2f s CPU\n", (long long)D,
                   (long long)H, (long long)W, secs, cpu);
        }
        lpm_volume_free(&va);
        lpm_volume_free(&vb);
    }
    free(w.data);
    lpm_st_close(f);
}

int main(void) {
    const char *dir = test_env("LPM_FIXTURES");
    if (!dir) {
        printf("skip: LPM_FIXTURES is not set (run reference/make_fixtures.py)\n");
        return 77;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model_small.safetensors", dir);
    lpm_st_file *f;
    if (lpm_st_read(path, &f) != LPM_OK) {
        printf("skip: %s\n", lpm_last_error());
        return 77;
    }
    test_small(f);
    lpm_st_close(f);

    /* LPM_TEST_SMALL=1 (make test-arm64, under qemu): model_small only */
    if (test_env("LPM_TEST_SMALL")) {
        SKIP("the 64x96x96, 160x240x240 and bundled-model forwards: LPM_TEST_SMALL is set");
        return test_summary();
    }
    snprintf(path, sizeof path, "%s/model_64x96x96.safetensors", dir);
    test_large(path, 64, 96, 96);
    snprintf(path, sizeof path, "%s/model_160x240x240.safetensors", dir);
    test_large(path, 160, 240, 240);
    /* the bundled trained model: a varied output, not the nearly flat fresh initialisation */
    snprintf(path, sizeof path, "%s/model_bundled_32x64x64.safetensors", dir);
    test_large(path, 32, 64, 64);
    return test_summary();
}
