/* bench_gpu: LPM-Net on the GPU. Inference: lpm_cuda_net_forward (cfc head with base and
 * detail, as lpmnet fuse runs it) on device buffers, and lpm_fuse_cuda end to end (host
 * normalise/pad/crop and the copies); training: lpm_cuda_train_step. Median of N after a
 * warm-up; peak device memory from cudaMemGetInfo (the whole device, context included).
 *
 *   bench_gpu [--shape D,H,W] [--reps N] [--train]
 *
 * Not a test: exits 77 with the reason when no CUDA device can be used. */
#include "cuda/cuda.h"
#include "train/train.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, lpm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    long long D = 128, H = 192, W = 192;
    int reps = 5, train = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            if (sscanf(argv[++i], "%lld,%lld,%lld", &D, &H, &W) != 3) return fprintf(stderr, "bad --shape\n"), 2;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--train")) {
            train = 1;
        } else {
            fprintf(stderr, "usage: bench_gpu [--shape D,H,W] [--reps N] [--train]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 1000) reps = 5;
    char why[256];
    if (!lpm_cuda_available(why, sizeof why)) {
        printf("bench_gpu: no CUDA device: %s\n", why);
        return 77;
    }
    const int64_t n = D * H * W;
    lpm_weights w;
    if (lpm_weights_alloc(&w) || lpm_weights_init(&w, 1)) return fail("weights");
    lpm_rng rng;
    lpm_rng_seed(&rng, 3);
    float *a = lpm_malloc((size_t)n, sizeof(float)), *b = lpm_malloc((size_t)n, sizeof(float));
    if (!a || !b) return fail("host memory");
    for (int64_t i = 0; i < n; i++) a[i] = (float)lpm_rng_uniform(&rng), b[i] = (float)lpm_rng_uniform(&rng);
    double *t = lpm_malloc((size_t)reps, sizeof(double));
    if (!t) return fail("host memory");

    if (!train) {
        /* device: params, a, b, fused, base, detail */
        void *d[6];
        size_t len[6] = {LPM_NUM_PARAMS, (size_t)n, (size_t)n, (size_t)n, (size_t)n, (size_t)n};
        for (int i = 0; i < 6; i++)
            if (lpm_cuda_malloc(&d[i], len[i] * sizeof(float))) return fail("device memory");
        if (lpm_cuda_upload(d[0], w.data, LPM_NUM_PARAMS * sizeof(float)) ||
            lpm_cuda_upload(d[1], a, (size_t)n * sizeof(float)) ||
            lpm_cuda_upload(d[2], b, (size_t)n * sizeof(float)))
            return fail("upload");
        lpm_cuda_mem_reset();
        lpm_cuda_net *net = lpm_cuda_net_create(D, H, W, 0);
        if (!net) return fail("net");
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double t0 = lpm_seconds();
            if (lpm_cuda_net_forward(net, d[0], d[1], d[2], 0, d[3], d[4], d[5])) return fail("forward");
            if (r >= 0) t[r] = lpm_seconds() - t0;
        }
        double net_s = bench_median(t, reps);
        size_t peak = lpm_cuda_mem_sample();
        lpm_cuda_net_free(net);
        for (int i = 0; i < 6; i++) lpm_cuda_free(d[i]);

        lpm_volume va, vb, f, bs, dt;
        if (lpm_volume_alloc(&va, W, H, D) || lpm_volume_alloc(&vb, W, H, D)) return fail("volumes");
        memcpy(va.data, a, (size_t)n * sizeof(float));
        memcpy(vb.data, b, (size_t)n * sizeof(float));
        for (int r = -1; r < reps; r++) {
            double t0 = lpm_seconds();
            if (lpm_fuse_cuda(&w, &va, &vb, &f, &bs, &dt)) return fail("lpm_fuse_cuda");
            if (r >= 0) t[r] = lpm_seconds() - t0;
            lpm_volume_free(&f), lpm_volume_free(&bs), lpm_volume_free(&dt);
        }
        double fuse_s = bench_median(t, reps);
        printf("inference %lldx%lldx%lld: network %.1f ms (%.2f volumes/s), lpm_fuse_cuda %.1f ms "
               "(%.2f volumes/s), peak device memory %.2f GiB\n",
               D, H, W, 1e3 * net_s, 1 / net_s, 1e3 * fuse_s, 1 / fuse_s, peak / 1073741824.0);
        /* the same fusion on the CPU (all cores): the GPU's output must stay within 1e-3 */
        lpm_volume fc, fg;
        double t0 = lpm_seconds();
        if (lpm_fuse(&w, &va, &vb, &fc, NULL, NULL, NULL, 0, NULL, NULL)) return fail("lpm_fuse");
        const double cpu_s = lpm_seconds() - t0;
        if (lpm_fuse_cuda(&w, &va, &vb, &fg, NULL, NULL)) return fail("lpm_fuse_cuda");
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double d = fabs((double)fg.data[i] - fc.data[i]);
            if (!(d <= worst)) worst = d; /* NaN wins */
        }
        printf("  fused output against the CPU (lpm_fuse, %.2f s): max |diff| %.3g (%s 1e-3)\n",
               cpu_s, worst, worst <= 1e-3 ? "within" : "NOT within");
        lpm_volume_free(&fc), lpm_volume_free(&fg);
        lpm_volume_free(&va), lpm_volume_free(&vb);
        if (!(worst <= 1e-3)) return 1;
    } else {
        lpm_cuda_mem_reset();
        lpm_cuda_trainer *tr = lpm_cuda_trainer_create(D, H, W);
        if (!tr || lpm_cuda_trainer_set(tr, w.data, NULL, NULL, 0)) return fail("trainer");
        lpm_loss_weights lw = {.alpha = 0.05, .beta = 1.0, .gamma = 0.5, .lambda_s = 1.0};
        for (int r = -1; r < reps; r++) {
            lpm_loss_terms terms;
            double t0 = lpm_seconds();
            if (lpm_cuda_train_step(tr, a, b, NULL, NULL, &rng, 0.2, &lw, 1e-4, &terms)) return fail("train step");
            if (r >= 0) t[r] = lpm_seconds() - t0;
        }
        double s = bench_median(t, reps);
        printf("training %lldx%lldx%lld: %.1f ms a step (%.3f steps/s; loss on the host), "
               "peak device memory %.2f GiB\n", D, H, W, 1e3 * s, 1 / s,
               lpm_cuda_mem_sample() / 1073741824.0);
        lpm_cuda_trainer_free(tr);
        /* the part of a step spent on the host: both losses and their gradients (loss.c) */
        double loss_s;
        if (bench_loss_seconds(&loss_s, a, b, D, H, W, &lw, t, reps)) return fail("host loss");
        printf("  of which the losses on the host (all cores): %.1f ms\n", 1e3 * loss_s);
    }
    free(t), free(a), free(b);
    lpm_weights_free(&w);
    return 0;
}
