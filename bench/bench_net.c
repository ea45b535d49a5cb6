/* bench_net: time LPM-Net's forward (lpm_net_forward, cfc head with base and detail, as
 * lpmnet fuse runs it) and one training step (lpm_train_step), median of N after a
 * warm-up, with wall and CPU time, peak RSS and GFLOP/s from net_flops() below.
 *
 *   bench_net [--shape D,H,W] [--reps N] [--threads T] [--no-train] [--no-forward]
 *   bench_net --profile [--shape D,H,W]   per-layer-kind breakdown of one forward
 *
 * Not a test: timings depend on the machine and its load. */
#include "model/kernels.h"
#include "train/train.h"
#include "bench_util.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ---------------------------------------------------------------- FLOP model
 * Floating-point operations of one forward, per voxel, counted as PyTorch's dense
 * computation does them (zero-padded borders count like interior taps):
 *   a multiply-add = 2 (convolutions, projections, matvecs), any other add, multiply,
 *   divide, compare or max = 1, exp / log1p / tanh = 1 each (a "special" op).
 * Each of the three branches sees every voxel once (as one pixel of one 2-D image). */
typedef struct {
    double conv_in, dense, layernorm, mamba_proj, mamba_conv, mamba_scan, mamba_elem, fuse,
        head;
} flop_parts;

static flop_parts flops_per_voxel(void) {
    const double C = LPM_C, N = LPM_NSTATE, R = LPM_DTRANK, K = LPM_DCONV;
    flop_parts f;
    f.conv_in = 2.0 * 8 * 2 * 27 + 8;                        /* MACs + bias */
    /* dense: conv 8->8 and 16->8, 3x3, bias, LeakyReLU (compare + multiply) */
    f.dense = 3 * (2.0 * 8 * 8 * 9 + 2.0 * 8 * 16 * 9 + 16 + 2 * 16);
    /* per Swin-Mamba layer and token; two layers per branch, three branches */
    double per_layer_ln = C * 8;                             /* sum, sub, sq, sum, scale, affine */
    double proj = 2 * C * (2 * C)                            /* in_proj 24 -> 48 */
                  + 2 * C * (R + 2 * N)                      /* x_proj 24 -> 18 */
                  + 2 * R * C + C                            /* dt_proj + bias */
                  + 2 * C * C;                               /* out_proj */
    double conv = 2 * K * C + C;                             /* depthwise causal conv + bias */
    /* scan, per (channel, state) lane: delta*A, exp, a*h, (delta x)*B, +, h*C, + ;
     * per channel: delta*x, x*D, + */
    double scan = C * N * 7 + C * 3;
    /* SiLU(x) and SiLU(z): exp, +, /, * each; gate *; softplus: exp, log1p, + */
    double elem = C * 4 + C * 4 + C + C * 3;
    f.layernorm = 3 * 2 * per_layer_ln;
    f.mamba_proj = 3 * 2 * proj;
    f.mamba_conv = 3 * 2 * conv;
    f.mamba_scan = 3 * 2 * scan;
    f.mamba_elem = 3 * 2 * elem;
    f.fuse = 2 * C;                                          /* two maxima per channel */
    /* CfC: four 24x24 matvecs; sigmoid(ta + tb) (+, exp, +, /); m = a1(1-t) + t a2 (4);
     * fc on m, a1, a2 (24 MACs + bias + tanh + 2 for /2 + 0.5) */
    f.head = 4 * 2 * C * C + C * 4 + C * 4 + 3 * (2 * C + 1 + 1 + 2);
    return f;
}

static double flops_total(const flop_parts *f) {
    return f->conv_in + f->dense + f->layernorm + f->mamba_proj + f->mamba_conv +
           f->mamba_scan + f->mamba_elem + f->fuse + f->head;
}

/* Training step = two forwards (fusion pass, reconstruction pass) and two backwards;
 * the backward counted as 2x its forward (input and weight gradients) plus one
 * recomputed forward of every branch (the network recomputes rather than stores).
 * The losses and Adam are left out (< 1%). */
static double train_flops_per_voxel(const flop_parts *f) {
    double fwd = flops_total(f);
    double branch = f->dense + f->layernorm + f->mamba_proj + f->mamba_conv + f->mamba_scan +
                    f->mamba_elem;
    return 2 * (fwd + 2 * fwd + branch);
}

/* ---------------------------------------------------------------- timing helpers */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void die(const char *what) {
    fprintf(stderr, "bench_net: %s: %s\n", what, lpm_last_error());
    exit(3);
}

/* A smooth pair in [0,1]: two different blobs, so the network sees structure. */
static void make_pair(float *a, float *b, int64_t D, int64_t H, int64_t W) {
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                double z = (double)d / D - 0.5, y = (double)h / H - 0.5, x = (double)w / W - 0.5;
                double r2 = x * x + y * y + z * z;
                int64_t i = (d * H + h) * W + w;
                a[i] = (float)(0.5 + 0.5 * sin(12 * x) * cos(9 * y) * exp(-4 * r2));
                b[i] = (float)(r2 < 0.16 ? 0.8 - r2 + 0.1 * cos(20 * z) : 0.05);
            }
}

/* ---------------------------------------------------------------- profile
 * The forward rebuilt from the public layer functions, timing each kind; it runs the
 * same work as lpm_net_forward on one thread (images in turn). */
typedef struct {
    double conv_in, gather, dense, swin, fuse, head;
} prof;

static void profile(const lpm_params *p, int64_t D, int64_t H, int64_t W) {
    const int C = LPM_C;
    size_t nvox = (size_t)(D * H * W);
    size_t img = (size_t)(H * W > D * W ? H * W : D * W);
    if ((size_t)(D * H) > img) img = (size_t)(D * H);
    float *a = malloc(nvox * 4), *b = malloc(nvox * 4), *X = malloc(nvox * 8 * 4);
    float *M = malloc(nvox * C * 4), *feat = malloc(img * C * 4), *s0 = malloc(img * C * 4);
    float *swin = malloc(lpm_swin_scratch_floats() * 4), *out = malloc(nvox * 4 * 3);
    if (!a || !b || !X || !M || !feat || !s0 || !swin || !out) {
        fprintf(stderr, "bench_net: out of memory\n");
        exit(3);
    }
    make_pair(a, b, D, H, W);
    prof t = {0};
    double t0 = now();
    lpm_conv_in_forward(X, a, b, p->conv_in_w, p->conv_in_b, D, H, W);
    t.conv_in = now() - t0;
    for (int k = 0; k < 3; k++) {
        int64_t nimg = k == 0 ? D : k == 1 ? H : W;
        int R = (int)(k == 0 ? H : D), Q = (int)(k == 2 ? H : W);
        for (int64_t i = 0; i < nimg; i++) {
            double s = now();
            for (int r = 0; r < R; r++)
                for (int q = 0; q < Q; q++) {
                    int64_t v = k == 0 ? (i * H + r) * W + q
                              : k == 1 ? ((int64_t)r * H + i) * W + q
                                       : ((int64_t)r * H + q) * W + i;
                    memcpy(feat + ((size_t)r * Q + q) * C + 16, X + v * 8, 8 * 4);
                }
            double s1 = now();
            lpm_dense_forward(feat, &p->dense[k], R, Q);
            double s2 = now();
            lpm_swin_mamba_forward(s0, feat, &p->mamba[k][0], R, Q, 0, swin);
            lpm_swin_mamba_forward(feat, s0, &p->mamba[k][1], R, Q, 8, swin);
            double s3 = now();
            for (int r = 0; r < R; r++)
                for (int q = 0; q < Q; q++) {
                    int64_t v = k == 0 ? (i * H + r) * W + q
                              : k == 1 ? ((int64_t)r * H + i) * W + q
                                       : ((int64_t)r * H + q) * W + i;
                    float *m = M + v * C;
                    const float *o = feat + ((size_t)r * Q + q) * C;
                    for (int c = 0; c < C; c++) m[c] = k == 0 || o[c] > m[c] ? o[c] : m[c];
                }
            double s4 = now();
            t.gather += s1 - s;
            t.dense += s2 - s1;
            t.swin += s3 - s2;
            t.fuse += s4 - s3;
        }
    }
    t0 = now();
    lpm_cfc_forward(out, out + nvox, out + 2 * nvox, M, &p->cfc, (int64_t)nvox);
    t.head = now() - t0;
    double total = t.conv_in + t.gather + t.dense + t.swin + t.fuse + t.head;
    flop_parts f = flops_per_voxel();
    double n = (double)nvox;
    printf("profile, one thread, %lld x %lld x %lld (%.0f voxels): %.3f s\n", (long long)D,
           (long long)H, (long long)W, n, total);
    printf("  %-22s %8s %6s %10s\n", "layer kind", "s", "%", "GFLOP/s");
#define ROW(name, sec, fl)                                                            \
    printf("  %-22s %8.3f %5.1f%% %10.2f\n", name, sec, 100 * (sec) / total,        \
           (fl) > 0 ? (fl) * n / (sec) / 1e9 : 0.0)
    ROW("conv_in (3-D 2->8)", t.conv_in, f.conv_in);
    ROW("image gather", t.gather, 0.0);
    ROW("dense (2x conv2d)", t.dense, f.dense);
    ROW("swin-mamba (x2)", t.swin,
        f.layernorm + f.mamba_proj + f.mamba_conv + f.mamba_scan + f.mamba_elem);
    ROW("max fusion", t.fuse, f.fuse);
    ROW("cfc head", t.head, f.head);
#undef ROW
    free(a), free(b), free(X), free(M), free(feat), free(s0), free(swin), free(out);
}

/* ---------------------------------------------------------------- main */
int main(int argc, char **argv) {
    int64_t D = 64, H = 96, W = 96;
    int reps = 5, threads = 0, do_train = 1, do_fwd = 1, do_prof = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            long long d, h, w;
            if (sscanf(argv[++i], "%lld,%lld,%lld", &d, &h, &w) != 3) {
                fprintf(stderr, "bench_net: --shape D,H,W\n");
                return 1;
            }
            D = d, H = h, W = w;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--no-train")) {
            do_train = 0;
        } else if (!strcmp(argv[i], "--no-forward")) {
            do_fwd = 0;
        } else if (!strcmp(argv[i], "--profile")) {
            do_prof = 1;
        } else {
            fprintf(stderr, "usage: bench_net [--shape D,H,W] [--reps N] [--threads T] "
                            "[--no-train] [--no-forward] [--profile]\n");
            return 1;
        }
    }
    if (reps < 1) reps = 1;
    int nt = lpm_set_threads(threads);
    lpm_weights w;
    if (lpm_weights_alloc(&w) != LPM_OK || lpm_weights_init(&w, 1) != LPM_OK) die("weights");
    lpm_params p;
    lpm_params_bind(&p, w.data);
    flop_parts fp = flops_per_voxel();
    const double nvox = (double)(D * H * W);
    const double fwd_flops = flops_total(&fp) * nvox, step_flops = train_flops_per_voxel(&fp) * nvox;
    const lpm_kernels *kern;
    if (lpm_kernels_get(&kern) != LPM_OK) die("kernels");
    printf("shape %lld x %lld x %lld, %d threads, median of %d after a warm-up\n",
           (long long)D, (long long)H, (long long)W, nt, reps);
    printf("kernels %s\n  chosen by %s\n", kern->what, lpm_kernels_reason());
    printf("FLOP model: forward %.0f per voxel (%.2f GFLOP), training step %.0f per voxel "
           "(%.2f GFLOP)\n", flops_total(&fp), fwd_flops / 1e9, train_flops_per_voxel(&fp),
           step_flops / 1e9);

    if (do_prof) {
        profile(&p, D, H, W);
        lpm_weights_free(&w);
        return 0;
    }

    double *wall = calloc((size_t)reps, sizeof(double)), *cpu = calloc((size_t)reps, sizeof(double));
    if (!wall || !cpu) return 3;
    if (do_fwd) {
        size_t n = (size_t)nvox;
        float *a = malloc(n * 4), *b = malloc(n * 4), *o = malloc(n * 4 * 3);
        if (!a || !b || !o) return 3;
        make_pair(a, b, D, H, W);
        lpm_net *net = lpm_net_create(D, H, W, LPM_NET_INFER);
        if (!net) die("net");
        for (int r = -1; r < reps; r++) {
            double t0 = now(), c0 = cpu_now();
            if (lpm_net_forward(net, &p, a, b, 0, o, o + n, o + 2 * n, NULL, NULL) != LPM_OK)
                die("forward");
            if (r >= 0) wall[r] = now() - t0, cpu[r] = cpu_now() - c0;
        }
        double mw = bench_median(wall, reps), mc = bench_median(cpu, reps);
        printf("forward:       wall %.3f s  cpu %.3f s  %.2f GFLOP/s (wall)  peak RSS %.0f MB\n",
               mw, mc, fwd_flops / mw / 1e9, peak_rss_mb());
        lpm_net_free(net);
        free(a), free(b), free(o);
    }
    if (do_train) {
        lpm_trainer t;
        if (lpm_trainer_init(&t, D, H, W) != LPM_OK) die("trainer");
        if (lpm_weights_init(&t.w, 1) != LPM_OK) die("weights");
        size_t n = (size_t)nvox;
        float *a = malloc(n * 4), *b = malloc(n * 4);
        if (!a || !b) return 3;
        make_pair(a, b, D, H, W);
        lpm_rng rng;
        lpm_rng_seed(&rng, 7);
        lpm_loss_weights lw = {.alpha = 0.05, .beta = 1.0, .gamma = 0.5, .lambda_s = 1.0};
        lpm_loss_terms terms;
        for (int r = -1; r < reps; r++) {
            double t0 = now(), c0 = cpu_now();
            if (lpm_train_step(&t, a, b, NULL, NULL, &rng, 0.3, &lw, 1e-4, &terms) != LPM_OK)
                die("train step");
            if (r >= 0) wall[r] = now() - t0, cpu[r] = cpu_now() - c0;
        }
        double mw = bench_median(wall, reps), mc = bench_median(cpu, reps);
        printf("training step: wall %.3f s  cpu %.3f s  %.2f GFLOP/s (wall)  peak RSS %.0f MB\n",
               mw, mc, step_flops / mw / 1e9, peak_rss_mb());
        lpm_trainer_free(&t);
        /* the part of a step that is the losses and their gradients (src/train/loss.c) */
        double loss_s;
        if (bench_loss_seconds(&loss_s, a, b, D, H, W, &lw, wall, reps)) die("losses");
        printf("  of which the losses:  wall %.3f s\n", loss_s);
        free(a), free(b);
    }
    free(wall), free(cpu);
    lpm_weights_free(&w);
    return 0;
}
