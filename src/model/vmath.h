/* Vectorisable exp, log1p, sigmoid and softplus for the hot loops (scan, SiLU, gates).
 *
 * libm's expf and log1pf are calls the compiler cannot vectorise; these are branch-free
 * (selects only), so a `#pragma omp simd` loop over them becomes straight vector code.
 * Accuracy (tests/test_vmath.c against libm over the whole float range): exp and log1p
 * within 1 ulp (exp down through the subnormals to the exact underflow to 0), softplus
 * within 3 ulp, sigmoid within 5 ulp of 1 / (1 + expf(-x)) (within 2^-126 absolute where
 * that is below 2^-126).
 * Plain IEEE float arithmetic, no fast-math and no FMA assumptions. */
#ifndef LPM_VMATH_H
#define LPM_VMATH_H

#include <stdint.h>

/* Hot functions are compiled three times (AVX-512, AVX2+FMA, baseline x86-64) and the
 * loader picks the best the CPU runs; elsewhere they are ordinary functions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define LPM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LPM_CLONES
#endif

/* Inlined even into a big caller, so a helper runs in its LPM_CLONES caller's instruction
 * set (a helper left out of line is compiled once, for baseline x86-64). */
#if defined(__GNUC__)
#define LPM_INLINE static inline __attribute__((always_inline))
#else
#define LPM_INLINE static inline
#endif

static inline float lpm_bits_float(int32_t i) {
    union { int32_t i; float f; } u = {.i = i};
    return u.f;
}

static inline int32_t lpm_float_bits(float f) {
    union { float f; int32_t i; } u = {.f = f};
    return u.i;
}

/* cond ? a : b as bit operations. GCC turns a ?: on floats into a branch and then cannot
 * vectorise the loop without AVX-512 masks (float compares may trap); an and/or of the
 * compare's all-ones mask vectorises on every target. */
static inline float lpm_vsel(int cond, float a, float b) {
    const int32_t m = -(int32_t)(cond != 0);
    return lpm_bits_float((lpm_float_bits(a) & m) | (lpm_float_bits(b) & ~m));
}

/* exp(x) = 2^k exp(r), r = x - k ln2 in [-ln2/2, ln2/2] (Cody-Waite split of ln2),
 * exp(r) by a degree-7 minimax polynomial (Cephes). 2^k is applied as two factors so
 * k down to -150 (results in the subnormals) never needs an out-of-range exponent. */
static inline float lpm_vexpf(float x) {
    const float hi = 88.72283935546875f, lo = -103.972084045410156f;
    float xc = lpm_vsel(x >= lo, x, lo);   /* NaN lands on lo here and is restored below */
    xc = lpm_vsel(xc <= hi, xc, hi);
    /* round(x / ln2) by the 1.5 * 2^23 trick: exact round-to-nearest, no libm call */
    float kf = xc * 1.44269504088896341f + 12582912.0f;
    kf -= 12582912.0f;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t k = (int32_t)kf, k1 = k / 2, k2 = k - k1;
    float y = p * lpm_bits_float((k1 + 127) << 23) * lpm_bits_float((k2 + 127) << 23);
    y = lpm_vsel(x < lo, 0.0f, y);
    y = lpm_vsel(x > hi, lpm_bits_float(0x7f800000), y);
    return lpm_vsel(x != x, x, y);
}

/* exp(x) for x <= 0 (the scan's exp(delta A): delta >= 0, A < 0), results below 2^-126
 * returned as about 2^-126 instead of going subnormal (an absolute error under 1.2e-38);
 * NaN gives that value too (where delta is NaN, the scan's delta x B term is NaN anyway).
 * Clamping x through its bits is one integer min, where a float select costs three
 * instructions: for x <= 0, a larger magnitude is a larger signed bit pattern. */
static inline float lpm_vexpf_nonpos(float x) {
    const int32_t lo = lpm_float_bits(-87.3365478515625f);   /* ~ log(2^-126) */
    int32_t xb = lpm_float_bits(x);
    const float xc = lpm_bits_float(xb < lo ? xb : lo);
    float kf = xc * 1.44269504088896341f + 12582912.0f;
    kf -= 12582912.0f;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * lpm_bits_float(((int32_t)kf + 127) << 23);
}

/* log(u) for u >= 1 finite: u = m 2^k with m in [sqrt(1/2), sqrt(2)), log(m) by the
 * Cephes logf polynomial in f = m - 1, k ln2 added in two parts. */
static inline float lpm_vlogf_ge1(float u) {
    int32_t bits = lpm_float_bits(u);
    int32_t k = ((bits >> 23) & 0xff) - 127;
    float m = lpm_bits_float((bits & 0x007fffff) | 0x3f800000);
    int big = m > 1.41421356237309505f;
    m = lpm_vsel(big, m * 0.5f, m);
    k += big;
    float f = m - 1.0f, z = f * f, kf = (float)k;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = p * f * z;
    y = y + kf * -2.12194440e-4f;
    y = y - 0.5f * z;
    float r = f + y;
    return r + kf * 0.693359375f;
}

/* 1 / d for d >= 1 without a division: a division is one 512-bit instruction every ~10
 * cycles, which made the sigmoids cost more than the scan's exps. The seed (the float's
 * bits subtracted from a constant) is within 12% of 1/d; three Newton steps
 * y += y (1 - d y) bring it within 1 ulp (checked for every float from 1 to 4 and every
 * 98th up to 1e30). d from 2^126 up is clamped there (its reciprocal, ~2^-126, is off by
 * less than 2^-126 absolute); 1/inf is 0 and NaN stays NaN. */
static inline float lpm_vrcp_ge1(float d) {
    const int32_t db = lpm_float_bits(d), top = 0x7e800000, inf = 0x7f800000;
    const int32_t dcb = db < top ? db : top;
    const float dc = lpm_bits_float(dcb);
    float y = lpm_bits_float(0x7ef311c7 - dcb);
    for (int i = 0; i < 3; i++) y = y + y * (1.0f - dc * y);
    return lpm_vsel(db < inf, y, lpm_vsel(d != d, d, 0.0f));
}

/* log1p(e) for e >= 0 finite: log(1 + e) corrected by the rounding of 1 + e. Where 1 + e
 * rounds to 1 this gives log(1) + e = e, right to within 2^-25. (No select here: GCC would
 * turn one into a branch around the division and give up vectorising.) */
static inline float lpm_vlog1pf_pos(float e) {
    float u = 1.0f + e;
    float um1 = u - 1.0f;   /* exact */
    return lpm_vlogf_ge1(u) + (e - um1) * lpm_vrcp_ge1(u);
}

/* F.softplus(v) with threshold 20 (v above it, else log1p(exp(v))), as
 * max(v, 0) + log1p(exp(-|v|)): the same function, and above 20 the second term is below
 * half an ulp of v, so the threshold comes out exactly without a select on the log. */
static inline float lpm_vsoftplus(float v) {
    /* max(v, 0) as an integer max of the bits: negative floats are negative integers */
    const int32_t vb = lpm_float_bits(v);
    float pos = lpm_bits_float(vb > 0 ? vb : 0);
    return pos + lpm_vlog1pf_pos(lpm_vexpf(-__builtin_fabsf(v)));
}

static inline float lpm_vsigmoid(float x) { return lpm_vrcp_ge1(1.0f + lpm_vexpf(-x)); }

#endif
