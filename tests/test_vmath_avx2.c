/* The AVX2 exp, sigmoid and softplus of src/core/vmath.h (lpm_exp_nonpos8, lpm_sigmoid8,
 * lpm_softplus8: what the Mamba kernels run on CPUs without AVX-512) against libm, with the
 * bounds test_vmath.c holds the portable functions to: exp(x <= 0) within 1 ulp (results
 * below 2^-126 within 1.2e-38 absolute), sigmoid within 5 ulp, softplus within 3 ulp (true
 * values below 2^-126 within 2^-126 absolute), every 251st float in [-110, 110], plus the
 * edges (inf, NaN, the clamps). Skips (77) where the build or the CPU has no AVX2+FMA. */
#include "core/vmath.h"
#include "test.h"

#include <math.h>

#ifdef LPM_AVX2_EXP
/* Distance in ulps between two floats of the same sign (bit patterns are monotonic). */
static double ulps(float a, float b) {
    if (a == b) return 0;
    if (isnan(a) || isnan(b) || isinf(a) || isinf(b)) return 1e30;
    int64_t ia = lpm_float_bits(fabsf(a)), ib = lpm_float_bits(fabsf(b));
    if ((a < 0) != (b < 0)) return (double)(ia + ib);
    return (double)(ia > ib ? ia - ib : ib - ia);
}

/* the three functions on 8 lanes at once */
LPM_AVX2 static void lanes8(float *e, float *sig, float *sp, const float *x) {
    const __m256 v = _mm256_loadu_ps(x);
    _mm256_storeu_ps(e, lpm_exp_nonpos8(v));
    _mm256_storeu_ps(sig, lpm_sigmoid8(v));
    _mm256_storeu_ps(sp, lpm_softplus8(v));
}

/* error of got against want: ulps where want is a normal float, else 0 within the
 * absolute bound and 1e9 beyond it */
static double err(float got, float want, double abs_bound) {
    if (fabsf(want) >= 0x1p-126f || isnan(want)) return ulps(got, want);
    return fabs((double)got - want) <= abs_bound ? 0 : 1e9;
}

int main(void) {
    if (!lpm_cpu_avx2()) {
        printf("no AVX2+FMA on this CPU: skipped\n");
        return 77;
    }
    double worst_exp = 0, worst_sig = 0, worst_sp = 0;
    float at_exp = 0, at_sig = 0, at_sp = 0;
    float xs[8], e[8], sig[8], sp[8];
    int nx = 0;
    for (int64_t i = 0; i < 0x80000000LL; i += 251) {
        for (int s = 0; s < 2; s++) {
            const float x = lpm_bits_float((int32_t)(i | (s ? 0x80000000u : 0)));
            if (!(fabsf(x) <= 110.0f)) continue;
            xs[nx++] = x;
            if (nx < 8) continue;
            lanes8(e, sig, sp, xs);
            for (int j = 0; j < 8; j++) {
                const float v = xs[j];
                if (v <= 0) {
                    const double d = err(e[j], expf(v), 1.2e-38);
                    if (d > worst_exp) worst_exp = d, at_exp = v;
                }
                const double g = err(sig[j], 1.0f / (1.0f + expf(-v)), 0x1p-126);
                if (g > worst_sig) worst_sig = g, at_sig = v;
                if (v <= 30.0f) {
                    /* F.softplus, threshold 20 */
                    const double d = err(sp[j], v > 20.0f ? v : log1pf(expf(v)), 0x1p-126);
                    if (d > worst_sp) worst_sp = d, at_sp = v;
                }
            }
            nx = 0;
        }
    }
    printf("AVX2 max ulp error: exp(x <= 0) %.0f (at %g), sigmoid %.0f (at %g), "
           "softplus %.0f (at %g)\n", worst_exp, at_exp, worst_sig, at_sig, worst_sp, at_sp);
    CHECK(worst_exp <= 1, "AVX2 exp(x <= 0) bound: %g", worst_exp);
    CHECK(worst_sig <= 5, "AVX2 sigmoid bound: %g", worst_sig);
    CHECK(worst_sp <= 3, "AVX2 softplus bound: %g", worst_sp);

    /* edges, one lane each */
    const float edge[8] = {-INFINITY, INFINITY, NAN, -NAN, -200.0f, 200.0f, 0.0f, -0.0f};
    lanes8(e, sig, sp, edge);
    CHECK(e[0] <= 0x1p-126f && e[4] <= 0x1p-126f, "exp clamp: %g %g", e[0], e[4]);
    CHECK(e[6] == 1.0f && e[7] == 1.0f, "exp(0) = 1: %g %g", e[6], e[7]);
    CHECK(sig[0] <= 0x1p-126f && sig[4] <= 0x1p-126f, "sigmoid low: %g %g", sig[0], sig[4]);
    CHECK(sig[1] == 1.0f && sig[5] == 1.0f, "sigmoid high: %g %g", sig[1], sig[5]);
    CHECK(sig[6] == 0.5f && sig[7] == 0.5f, "sigmoid(0) = 0.5: %g %g", sig[6], sig[7]);
    CHECK(isnan(sig[2]) && isnan(sig[3]), "sigmoid NaN: %g %g", sig[2], sig[3]);
    CHECK(sp[0] <= 0x1p-126f && sp[4] <= 0x1p-126f, "softplus low: %g %g", sp[0], sp[4]);
    CHECK(sp[1] == INFINITY && sp[5] == 200.0f, "softplus high: %g %g", sp[1], sp[5]);
    CHECK(isnan(sp[2]) && isnan(sp[3]), "softplus NaN: %g %g", sp[2], sp[3]);
    const float near[8] = {25.0f, 20.001f, 20.0f, 1.0f, -1.0f, 0.5f, -87.0f, 87.0f};
    lanes8(e, sig, sp, near);
    CHECK(sp[0] == 25.0f && sp[1] == 20.001f, "softplus threshold: %.9g %.9g", sp[0], sp[1]);
    return test_summary();
}
#else
int main(void) {
    printf("built without the AVX2 paths: skipped\n");
    return 77;
}
#endif
