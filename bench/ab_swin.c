/* One-process before/after of the Swin-Mamba layer (window.c, mamba.c and the vmath.h they
 * include): bench/ab.sh compiles an older tree's two files with every lpm_swin_* and
 * lpm_mamba_* symbol renamed old_*, and links them beside this build's. The two versions
 * then run alternately on the same image, so a host whose speed drifts over minutes slows
 * both alike, and a change of a few per cent shows where timing two builds apart cannot.
 *
 *   ab_swin WEIGHTS [--shape R,Q] [--rounds N] [--backward]
 *
 * Prints each version's median and fastest time over the rounds, their ratios (before /
 * after: above 1 is faster now; under bursts of load from other tenants the fastest runs
 * are the steadier measure) and the largest difference between their outputs. */
#include "bench_util.h"
#include "io/io.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t old_swin_scratch_floats(void);
void old_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p, int R,
                            int Q, int shift, float *scratch);
void old_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                             const float *in, const lpm_mamba_params *p, int R, int Q,
                             int shift, float *scratch);

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *floats(size_t n) {
    float *p = calloc(n, sizeof *p);
    if (!p) {
        fprintf(stderr, "ab_swin: out of memory\n");
        exit(1);
    }
    return p;
}

int main(int argc, char **argv) {
    int R = 192, Q = 192, rounds = 61, backward = 0;
    const char *weights = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d", &R, &Q) != 2) R = 0;
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--backward")) {
            backward = 1;
        } else if (!weights && argv[i][0] != '-') {
            weights = argv[i];
        } else {
            weights = NULL;
            break;
        }
    }
    if (!weights || R <= 0 || Q <= 0 || R % LPM_WIN || Q % LPM_WIN || rounds < 1 || rounds > 99) {
        fprintf(stderr, "usage: ab_swin WEIGHTS [--shape R,Q (multiples of 16)] "
                        "[--rounds N (1..99)] [--backward]\n");
        return 2;
    }
    lpm_weights w = {0}, gw = {0};
    if (lpm_weights_alloc(&w) || lpm_weights_alloc(&gw) || lpm_weights_load(&w, weights)) {
        fprintf(stderr, "ab_swin: %s\n", lpm_last_error());
        return 1;
    }
    lpm_params p, gp;
    lpm_params_bind(&p, w.data);
    lpm_params_bind(&gp, gw.data);
    const lpm_mamba_params *mp = &p.mamba[0][0];

    /* uniform noise: every window distinct, as in the phantom's background */
    const size_t n = (size_t)R * Q * LPM_C;
    float *in = floats(n), *out[2] = {floats(n), floats(n)};
    lpm_rng rng;
    lpm_rng_seed(&rng, 1);
    for (size_t i = 0; i < n; i++) in[i] = (float)lpm_rng_uniform(&rng) - 0.5f;
    float *scratch[2] = {floats(old_swin_scratch_floats()), floats(lpm_swin_scratch_floats())};

    double t[2][99];
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < 2; v++) {
            const double t0 = seconds();
            if (backward) {
                memset(out[v], 0, n * sizeof(float));
                (v ? lpm_swin_mamba_backward : old_swin_mamba_backward)(
                    out[v], &gp.mamba[0][0], in, in, mp, R, Q, 0, scratch[v]);
            } else {
                (v ? lpm_swin_mamba_forward : old_swin_mamba_forward)(out[v], in, mp, R, Q, 0,
                                                                      scratch[v]);
            }
            t[v][r] = seconds() - t0;
        }
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)out[0][i] - out[1][i]));
    /* bench_median sorts: t[v][0] is then the fastest */
    const double before = bench_median(t[0], rounds), after = bench_median(t[1], rounds);
    printf("Swin-Mamba %s, %dx%d image, %d rounds: before %.2f ms (fastest %.2f), after %.2f ms "
           "(fastest %.2f), before/after %.3f (fastest %.3f); max|diff| %.3g\n",
           backward ? "backward" : "forward", R, Q, rounds, 1e3 * before, 1e3 * t[0][0],
           1e3 * after, 1e3 * t[1][0], before / after, t[0][0] / t[1][0], diff);
    free(in), free(out[0]), free(out[1]), free(scratch[0]), free(scratch[1]);
    free(w.data), free(gw.data);
    return 0;
}
