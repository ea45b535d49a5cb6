/* The vectorisable exp / log1p / softplus / sigmoid of src/core/vmath.h against libm,
 * in units in the last place, over the whole float range (every 251st bit pattern, plus
 * the edges: overflow, the subnormal range of exp, underflow to exactly 0, NaN, inf). */
#include "core/vmath.h"
#include "test.h"

#include <math.h>

/* Distance in ulps between two floats of the same sign (bit patterns are monotonic). */
static double ulps(float a, float b) {
    if (a == b) return 0;
    if (isnan(a) || isnan(b) || isinf(a) || isinf(b)) return 1e30;
    int64_t ia = lpm_float_bits(fabsf(a)), ib = lpm_float_bits(fabsf(b));
    if ((a < 0) != (b < 0)) return (double)(ia + ib);
    return (double)(ia > ib ? ia - ib : ib - ia);
}

#ifdef LPM_AVX512_EXP
__attribute__((target("avx512f"))) static void exp2_lanes(float *out, const float *t) {
    _mm512_storeu_ps(out, lpm_exp2_nonpos16(_mm512_loadu_ps(t)));
}

__attribute__((target("avx512f"))) static void sigmoid_lanes(float *out, const float *x) {
    _mm512_storeu_ps(out, lpm_sigmoid16(_mm512_loadu_ps(x)));
}
#endif

int main(void) {
    double worst_exp = 0, worst_log = 0, worst_sp = 0, worst_sig = 0;
    float at_exp = 0, at_log = 0, at_sp = 0;
    /* every 251st float in [-110, 110] (both signs via the bit patterns) */
    for (int64_t i = 0; i < 0x80000000LL; i += 251) {
        for (int s = 0; s < 2; s++) {
            float x = lpm_bits_float((int32_t)(i | (s ? 0x80000000u : 0)));
            if (!(fabsf(x) <= 110.0f)) continue;
            if (fabsf(x) <= LPM_EXP_LIM) {
                double e = ulps(lpm_vexpf_core(x), expf(x));
                if (e > worst_exp) worst_exp = e, at_exp = x;
            }
            if (x <= 30.0f) {
                /* F.softplus, threshold 20; true values below 2^-126 come out within
                 * 2^-126 absolute (vmath.h) */
                const float sp = x > 20.0f ? x : log1pf(expf(x));
                double d = sp < 0x1p-126f ? (fabsf(lpm_vsoftplus(x) - sp) <= 0x1p-126f ? 0 : 1e9)
                                          : ulps(lpm_vsoftplus(x), sp);
                if (d > worst_sp) worst_sp = d, at_sp = x;
            }
            /* below 2^-126 the reciprocal is within 2^-126 absolute (vmath.h) */
            const float sig = 1.0f / (1.0f + expf(-x));
            double g = sig < 0x1p-126f ? (fabsf(lpm_vsigmoid(x) - sig) <= 0x1p-126f ? 0 : 1e9)
                                       : ulps(lpm_vsigmoid(x), sig);
            if (g > worst_sig) worst_sig = g;
        }
    }
    /* log1p over [0, 1] (softplus' range of exp(-|v|)): every 61st float, and 1 */
    for (int32_t i = 0; i <= lpm_float_bits(1.0f) + 61; i += 61) {
        float e = i > lpm_float_bits(1.0f) ? 1.0f : lpm_bits_float(i);
        double d = ulps(lpm_vlog1pf_unit(e), log1pf(e));
        if (d > worst_log) worst_log = d, at_log = e;
    }
    printf("max ulp error: exp %.0f (at %g), log1p %.0f (at %g), softplus %.0f (at %g), "
           "sigmoid %.0f\n", worst_exp, at_exp, worst_log, at_log, worst_sp, at_sp, worst_sig);
    CHECK(worst_exp <= 2, "ulp bound");
    CHECK(worst_log <= 2, "ulp bound");
    CHECK(worst_sp <= 3, "ulp bound");
    CHECK(worst_sig <= 5, "ulp bound");

    /* exp(x) for x <= 0, the scan's exp(delta A): every 97th non-positive float down to -110;
     * results below 2^-126 are clamped near 2^-126 (absolute error < 1.2e-38, stated) */
    double worst_np = 0, worst_np_abs = 0;
    for (int64_t i = 0x80000000LL; i <= 0xFFFFFFFFLL; i += 97) {
        float x = lpm_bits_float((int32_t)(uint32_t)i);
        if (!(x >= -110.0f)) continue;
        float got = lpm_vexpf_nonpos(x), want = expf(x);
        if (want >= 0x1p-126f) {
            double d = ulps(got, want);
            if (d > worst_np) worst_np = d;
        } else if (fabs((double)got - want) > worst_np_abs) {
            worst_np_abs = fabs((double)got - want);
        }
    }
    printf("exp(x <= 0): max ulp error %.0f on normal results, max abs error %.3g below 2^-126\n",
           worst_np, worst_np_abs);
    CHECK(worst_np <= 1, "exp(x <= 0) ulp bound: %g", worst_np);
    CHECK(worst_np_abs < 1.2e-38, "exp(x <= 0) underflow clamp: %g", worst_np_abs);
    CHECK(lpm_vexpf_nonpos(-0.0f) == 1.0f, "exp(-0) = 1");

    /* the division-free reciprocal: every float in [1, 4), every 97th up to 2^126 */
    double worst_rcp = 0;
    for (int32_t i = lpm_float_bits(1.0f); i < lpm_float_bits(0x1p126f);
         i += i < lpm_float_bits(4.0f) ? 1 : 97) {
        const float d = lpm_bits_float(i);
        double e = ulps(lpm_vrcp_core(d), 1.0f / d);
        if (e > worst_rcp) worst_rcp = e;
    }
    printf("1/d for d >= 1: max ulp error %.0f\n", worst_rcp);
    CHECK(worst_rcp <= 1, "reciprocal ulp bound: %g", worst_rcp);

    /* edges */
    CHECK(lpm_vsoftplus(25.0f) == 25.0f && lpm_vsoftplus(20.001f) == 20.001f, "edge case");
    CHECK(lpm_vsoftplus(-200.0f) <= 0x1p-126f && lpm_vsoftplus(-INFINITY) <= 0x1p-126f,
          "edge case");
    CHECK(lpm_vsoftplus(INFINITY) == INFINITY, "edge case");
    CHECK(isnan(lpm_vsoftplus(NAN)) && isnan(lpm_vsoftplus(-NAN)), "edge case");
    CHECK(lpm_vsigmoid(-200.0f) <= 0x1p-126f && lpm_vsigmoid(-INFINITY) <= 0x1p-126f,
          "edge case");
    CHECK(lpm_vsigmoid(200.0f) == 1.0f && lpm_vsigmoid(INFINITY) == 1.0f, "edge case");
    CHECK(lpm_vsigmoid(0.0f) == 0.5f, "edge case");
    CHECK(isnan(lpm_vsigmoid(NAN)) && isnan(lpm_vsigmoid(-NAN)), "edge case");

#ifdef LPM_AVX512_EXP
    /* the AVX-512 scan exp, 2^t for t <= 0: every 7th float in [-150, 0] against exp2 in
     * double; results from 2^-126 within 1.1 ulp (the table's rounding and the result's),
     * below that within one subnormal step */
    if (lpm_cpu_avx512()) {
        double worst_e2 = 0, worst_e2_sub = 0;
        float at_e2 = 0;
        _Alignas(64) float tv[16], ev[16];
        int nv = 0;
        for (int64_t i = lpm_float_bits(-0.0f) & 0xFFFFFFFFLL; i <= 0xC3160000LL; i += 7) {
            tv[nv++] = lpm_bits_float((int32_t)(uint32_t)i);
            if (nv < 16 && i + 7 <= 0xC3160000LL) continue;
            exp2_lanes(ev, tv);
            for (int j = 0; j < nv; j++) {
                const double want = exp2((double)tv[j]);
                if (want >= 0x1p-126) {
                    double d = fabs(ev[j] - want) / (ldexp(1.0, ilogb(want) - 23));
                    if (d > worst_e2) worst_e2 = d, at_e2 = tv[j];
                } else if (fabs(ev[j] - want) > worst_e2_sub) {
                    worst_e2_sub = fabs(ev[j] - want);
                }
            }
            nv = 0;
        }
        printf("AVX-512 exp2(t <= 0): max error %.2f ulp (at %g), %.3g absolute below 2^-126\n",
               worst_e2, at_e2, worst_e2_sub);
        CHECK(worst_e2 <= 1.1, "AVX-512 exp2 ulp bound: %g", worst_e2);
        CHECK(worst_e2_sub <= 0x1p-149, "AVX-512 exp2 subnormals: %g", worst_e2_sub);
        tv[0] = -INFINITY, tv[1] = -1000.0f, tv[2] = 0.0f, tv[3] = -0.0f, tv[4] = -1.0f;
        exp2_lanes(ev, tv);
        CHECK(ev[0] == 0.0f && ev[1] == 0.0f && ev[2] == 1.0f && ev[3] == 1.0f && ev[4] == 0.5f,
              "AVX-512 exp2 edge cases");

        /* the AVX-512 sigmoid: every 251st float in [-110, 110], as for lpm_vsigmoid */
        double worst_s16 = 0;
        float at_s16 = 0;
        nv = 0;
        for (int64_t i = 0; i < 0x100000000LL; i += 251) {
            const float x = lpm_bits_float((int32_t)(uint32_t)i);
            if (fabsf(x) <= 110.0f) tv[nv++] = x;
            if (nv < 16 && i + 251 < 0x100000000LL) continue;
            sigmoid_lanes(ev, tv);
            for (int j = 0; j < nv; j++) {
                const float sig = 1.0f / (1.0f + expf(-tv[j]));
                double g = sig < 0x1p-126f ? (fabsf(ev[j] - sig) <= 0x1p-126f ? 0 : 1e9)
                                           : ulps(ev[j], sig);
                if (g > worst_s16) worst_s16 = g, at_s16 = tv[j];
            }
            nv = 0;
        }
        printf("AVX-512 sigmoid: max error %.0f ulp (at %g)\n", worst_s16, at_s16);
        CHECK(worst_s16 <= 5, "AVX-512 sigmoid ulp bound: %g", worst_s16);
        tv[0] = NAN, tv[1] = INFINITY, tv[2] = -INFINITY, tv[3] = 0.0f, tv[4] = 200.0f;
        sigmoid_lanes(ev, tv);
        CHECK(isnan(ev[0]) && ev[1] == 1.0f && ev[2] <= 0x1p-126f && ev[3] == 0.5f &&
                  ev[4] == 1.0f,
              "AVX-512 sigmoid edge cases");
    } else {
        printf("AVX-512 exp2: skipped, this CPU has no AVX-512\n");
    }
#endif

    /* sixteen horizontal sums: each row's own sum in its own lane, against double sums */
    _Alignas(64) float rows[16][32];
    uint32_t seed = 12345;
    double worst_sum = 0;
    for (int trial = 0; trial < 100; trial++) {
        double want[16];
        for (int j = 0; j < 16; j++) {
            want[j] = 0;
            for (int c = 0; c < 32; c++) {
                seed = seed * 1664525u + 1013904223u;
                rows[j][c] = (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 20) + j;
                want[j] += rows[j][c];
            }
        }
        float got[16];
        lpm_hsum16x32(got, (const float(*)[32])rows);
        for (int j = 0; j < 16; j++) {
            double e = fabs(got[j] - want[j]) / (fabs(want[j]) + 32);
            if (e > worst_sum) worst_sum = e;
        }
    }
    printf("16 horizontal sums: max relative error %.2g\n", worst_sum);
    CHECK(worst_sum < 1e-6, "lpm_hsum16x32: %g", worst_sum);
    return test_summary();
}
