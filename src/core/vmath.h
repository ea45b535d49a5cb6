/* Vectorisable exp, log1p, sigmoid and softplus for the hot loops (scan, SiLU, gates).
 *
 * libm's expf and log1pf are calls the compiler cannot vectorise; these are branch-free
 * (selects only), so a `#pragma omp simd` loop over them becomes straight vector code.
 * Accuracy (tests/test_vmath.c against libm over the whole float range): exp within 1 ulp,
 * log1p on [0, 1] within 1.4 ulp, softplus within 3 ulp, sigmoid within 5 ulp of
 * 1 / (1 + expf(-x)); where a true result is below 2^-126 these return about 2^-126
 * (within 2^-126 absolute) instead of a subnormal or 0, which spares every range check but one clamp.
 * Plain IEEE float arithmetic, no fast-math and no FMA assumptions. */
#ifndef LPM_VMATH_H
#define LPM_VMATH_H

#include <stdint.h>

/* The network's kernels (src/model: conv, dense, layernorm, mamba, window, cfc, network)
 * are compiled once per instruction set with -DLPM_NO_CLONES and that set's -march
 * (cmake/kernels.cmake), and src/model/dispatch.c picks one set at start (LPM_ISA or the
 * CPU): in those builds the macros below are empty and the lpm_cpu_* tests are compile-time
 * constants of the set's target. Elsewhere (the metrics' and the losses' hot loops) a
 * function marked LPM_CLONES is compiled three times (AVX-512, AVX2+FMA, baseline x86-64)
 * and the loader picks the best the CPU runs; off x86-64 they are ordinary functions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(LPM_NO_CLONES)
/* (noinline: GCC may inline a static function with one caller and drop its clones) */
#define LPM_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
#else
#define LPM_CLONES
#endif

/* Kernels whose accumulators are 16-lane vectors (lpm_v16 below) come in two widths: GCC
 * keeps a 64-byte vector in one zmm register only with AVX-512; without it, it lowers the
 * type through the stack (every multiply-add a store and reloads), 10-20x slower than
 * 8-lane code. So a hot kernel's body takes a constant `wide` and is compiled twice:
 * LPM_WIDE (16 lanes, AVX-512 only) and LPM_NARROW (8-lane lpm_v8 blocks sized for AVX2's
 * 16 ymm registers; AVX2+FMA and baseline clones), and lpm_cpu_wide() picks one at run
 * time. With -DLPM_NO_CLONES the compiler's target decides, at compile time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(LPM_NO_CLONES)
#define LPM_WIDE __attribute__((target("arch=x86-64-v4"), noinline))
#define LPM_NARROW __attribute__((target_clones("arch=x86-64-v3", "default"), noinline))
#define LPM_WIDE_OR_BASE \
    __attribute__((target_clones("arch=x86-64-v4", "default"), noinline))
/* The same tests as the target_clones resolver's, so a wide kernel runs exactly where the
 * x86-64-v4 clones do (a CPU with AVX-512F alone, without BW/DQ/VL, takes the narrow path). */
static inline int lpm_cpu_wide(void) { return __builtin_cpu_supports("x86-64-v4"); }
static inline int lpm_cpu_avx2_only(void) {
    return !__builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("x86-64-v3");
}
#else
#define LPM_WIDE
#define LPM_NARROW
#define LPM_WIDE_OR_BASE
#if defined(__AVX512F__)
static inline int lpm_cpu_wide(void) { return 1; }
#else
static inline int lpm_cpu_wide(void) { return 0; }
#endif
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
static inline int lpm_cpu_avx2_only(void) { return 1; }
#else
static inline int lpm_cpu_avx2_only(void) { return 0; }
#endif
#endif
/* Some kernels (the Mamba backward's, the CfC head's) run their 16-lane form on baseline
 * x86-64 too, where it measured faster than the 8-lane one in SSE2's 128-bit halves: their
 * wide form is LPM_WIDE_OR_BASE (AVX-512 and baseline clones) and their narrow one runs
 * where lpm_narrow_kernels(): with AVX2 but not AVX-512, and on aarch64, where NEON's 32
 * 128-bit registers hold 16 lpm_v8 values, the register budget of AVX2's 16 ymm that the
 * 8-lane blocks are sized for (a 16-lane block's accumulators would need 4 registers each). */
#if defined(__aarch64__)
static inline int lpm_narrow_kernels(void) { return 1; }
#else
static inline int lpm_narrow_kernels(void) { return lpm_cpu_avx2_only(); }
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

/* exp(x) for x in [-87.34, 87.34] (2^-126 .. 2^126): x = k ln2 + r with r in
 * [-ln2/2, ln2/2] (Cody-Waite split of ln2), exp(r) by a degree-6 polynomial in Horner
 * form (minimax for the relative error, fitted for lpmnet: 3.1e-9 before rounding), 2^k
 * built in the exponent bits. Within 0.91 ulp of exp over the whole range (every float
 * checked). No range handling: callers clamp. */
/* exp(r) on [-ln2/2, ln2/2], highest power first (shared with the AVX-512 sigmoid) */
static const float lpm_exp_poly[7] = {1.3814610267e-3f, 8.3687103951e-3f, 4.1668387444e-2f,
                                      1.6666520684e-1f, 4.9999993451e-1f, 1.0f, 1.0f};

static inline float lpm_vexpf_core(float x) {
    /* kb = 1.5 * 2^23 + 127 + round(x / ln2): adding the constant rounds to the nearest
     * integer, and the low bits of kb's mantissa are then k + 127, 2^k's exponent field */
    const float shift = 12583039.0f;
    const float kb = x * 1.44269504088896341f + shift;
    const float kf = kb - shift;
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = lpm_exp_poly[0];
    for (int i = 1; i < 7; i++) p = p * r + lpm_exp_poly[i];
    return p * lpm_bits_float((int32_t)((uint32_t)lpm_float_bits(kb) << 23));
}

/* The bound of the clamped exps: log(2^126), rounded down. */
#define LPM_EXP_LIM 87.3365478515625f

/* exp(x) for x <= 0 (the scan's exp(delta A): delta >= 0, A < 0), results below 2^-126
 * returned as about 2^-126 instead of going subnormal (an absolute error under 1.2e-38);
 * NaN gives that value too (where delta is NaN, the scan's delta x B term is NaN anyway).
 * Clamping x through its bits is one integer min, where a float select costs two or three
 * instructions: for x <= 0, a larger magnitude is a larger signed bit pattern. */
static inline float lpm_vexpf_nonpos(float x) {
    const int32_t lo = lpm_float_bits(-LPM_EXP_LIM);
    int32_t xb = lpm_float_bits(x);
    return lpm_vexpf_core(lpm_bits_float(xb < lo ? xb : lo));
}

/* log1p(e) for e in [0, 1] (softplus' log1p(exp(-|v|))): 1 + e = 2^k (1 + f) with
 * 1 + f in [sqrt(1/2), sqrt(2)), so k = 0 and f = e below sqrt(2) - 1 (exact: no 1 + e is
 * rounded, so no correction and no division), else k = 1 and f = (e - 1) / 2; log(1 + f)
 * by the Cephes logf polynomial, k ln2 added in two parts. Within 1.4 ulp of log1p on
 * [2^-126, 1] (every float checked). */
static inline float lpm_vlog1pf_unit(float e) {
    const int big = e > 0.41421356237309505f;
    const float f = lpm_vsel(big, (e - 1.0f) * 0.5f, e);
    const float kf = lpm_vsel(big, 1.0f, 0.0f);
    const float z = f * f;
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
    const float r = f + y;
    return r + kf * 0.693359375f;
}

/* 1 / d for d in [1, 2^126] without a division: a division is one 512-bit instruction
 * every ~10 cycles, which made the sigmoids cost more than the scan's exps. The seed (the
 * float's bits subtracted from a constant) is within 12% of 1/d; three Newton steps
 * y += y (1 - d y) bring it within 1 ulp (checked for every float from 1 to 4 and every
 * 97th up to 2^126). */
static inline float lpm_vrcp_core(float d) {
    float y = lpm_bits_float(0x7ef311c7 - lpm_float_bits(d));
    for (int i = 0; i < 3; i++) y = y + y * (1.0f - d * y);
    return y;
}

/* F.softplus(v) with threshold 20 (v above it, else log1p(exp(v))), as
 * max(v, 0) + log1p(exp(-|v|)): the same function, and above 20 the second term is below
 * half an ulp of v, so the threshold comes out exactly without a select on the log.
 * Below -87.34 (true values under 2^-126) it returns about 2^-126; NaN stays NaN. */
static inline float lpm_vsoftplus(float v) {
    /* max(v, 0) as an integer max of the bits: negative floats are negative integers */
    const int32_t vb = lpm_float_bits(v);
    float pos = lpm_bits_float(vb > 0 ? vb : 0);
    float sp = pos + lpm_vlog1pf_unit(lpm_vexpf_nonpos(-__builtin_fabsf(v)));
    return lpm_vsel(v != v, v, sp);
}

/* 1 / (1 + exp(-x)), with -x clamped to [-87.34, 87.34] so that neither the exp nor the
 * reciprocal needs range handling: above 87.34 the sigmoid is 1 (1 + 2^-126 rounds to 1),
 * below -87.34 it is under 2^-126 and returned as about 2^-126. NaN stays NaN. */
static inline float lpm_vsigmoid(float x) {
    float t = lpm_vsel(x > LPM_EXP_LIM, LPM_EXP_LIM, x);
    t = lpm_vsel(t >= -LPM_EXP_LIM, t, -LPM_EXP_LIM);   /* NaN lands here, restored below */
    const float s = lpm_vrcp_core(1.0f + lpm_vexpf_core(-t));
    return lpm_vsel(x != x, x, s);
}

/* AVX-512 through intrinsics, for the loops where the instruction count decides (the
 * scan's exp(delta A), the largest single cost, and the SiLUs): vrndscaleps and vscalefps
 * do the range reduction and 2^k in one instruction each, vrcp14ps the reciprocal's first
 * 14 bits. Called only where lpm_cpu_avx512() says the CPU runs it; elsewhere the portable
 * code runs. */
#if defined(__x86_64__) && defined(__GNUC__) && (!defined(LPM_NO_CLONES) || defined(__AVX512F__))
#include <immintrin.h>
#define LPM_AVX512_EXP 1

#if defined(LPM_NO_CLONES)
static inline int lpm_cpu_avx512(void) { return 1; }
#else
static inline int lpm_cpu_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#endif

/* 2^t for 16 lanes of t <= 0: k = round(16 t) (t + 1.5 2^19 rounds t to sixteenths and
 * leaves k in the low bits), 2^t = 2^floor(k/16) 2^(j/16) 2^f with j = k mod 16 (vpermps
 * reads the index's low 4 bits: the table is one register) and f = t - k/16 in
 * [-1/32, 1/32], where a degree-3 polynomial is within 1e-8. Eleven instructions, none of
 * them the two-uop vrndscaleps of a round(t) reduction, which needs a degree-6 polynomial.
 * Below -150 (results under 2^-150) t is clamped there, giving 0; far below 2^-126 the
 * results are the subnormals. Within 1.06 ulp on normal results (tests/test_vmath.c). */
__attribute__((target("avx512f"))) static inline __m512 lpm_exp2_nonpos16(__m512 t) {
    static const float sixteenths[16] = {
        1.0f, 1.0442737824274138f, 1.0905077326652577f, 1.1387886347566916f,
        1.1892071150027210f, 1.2418578120734840f, 1.2968395546510096f, 1.3542555469368927f,
        1.4142135623730951f, 1.4768261459394993f, 1.5422108254079407f, 1.6104903319492543f,
        1.6817928305074290f, 1.7562521603732995f, 1.8340080864093424f, 1.9152065613971474f};
    t = _mm512_max_ps(t, _mm512_set1_ps(-150.0f));
    const __m512 shift = _mm512_set1_ps(0x1.8p19f);
    const __m512 m = _mm512_add_ps(t, shift);
    const __m512 k = _mm512_sub_ps(m, shift);   /* k / 16 */
    const __m512 f = _mm512_sub_ps(t, k);
    const __m512 s = _mm512_permutexvar_ps(_mm512_castps_si512(m), _mm512_loadu_ps(sixteenths));
    /* 2^f - 1 = f (ln2 + f (ln2^2/2 + f ln2^3/6)) */
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(5.5504108664821580e-2f), f,
                               _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_mul_ps(p, f);
    return _mm512_scalef_ps(_mm512_fmadd_ps(s, p, s), k);
}

/* sigmoid(x) = 1 / (1 + exp(-x)) for 16 lanes: -x clamped to [-87.34, 87.34] as in
 * lpm_vsigmoid (a NaN passes: max and min return their second operand for a NaN), exp by
 * the same Cody-Waite reduction and polynomial as lpm_vexpf_core with vrndscaleps and
 * vscalefps, the reciprocal by vrcp14ps and one Newton step. Within 5 ulp, like
 * lpm_vsigmoid (tests/test_vmath.c). */
__attribute__((target("avx512f"))) static inline __m512 lpm_sigmoid16(__m512 x) {
    __m512 t = _mm512_max_ps(_mm512_set1_ps(-LPM_EXP_LIM), _mm512_sub_ps(_mm512_setzero_ps(), x));
    t = _mm512_min_ps(_mm512_set1_ps(LPM_EXP_LIM), t);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), t);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(lpm_exp_poly[0]);
    for (int i = 1; i < 7; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(lpm_exp_poly[i]));
    const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, k));
    const __m512 y = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(y, _mm512_fnmadd_ps(d, y, _mm512_set1_ps(1.0f)), y);
}
#endif

/* AVX2+FMA through intrinsics, for the same loops on CPUs without AVX-512 (where GCC does
 * not vectorise the portable loops: their NaN selects are float compares it will not
 * if-convert without masks). The same algorithms as lpm_vexpf_nonpos, lpm_vsigmoid and
 * lpm_vsoftplus, eight lanes at a time (FMA contracted as a -ffp-contract=fast build of
 * the portable code is), so the same accuracy bounds (tests/test_vmath.c). Called only
 * where lpm_cpu_avx2() says the CPU runs them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    (!defined(LPM_NO_CLONES) || (defined(__AVX2__) && defined(__FMA__)))
#include <immintrin.h>
#define LPM_AVX2_EXP 1
#define LPM_AVX2 __attribute__((target("avx2,fma")))

#if defined(LPM_NO_CLONES)
static inline int lpm_cpu_avx2(void) { return 1; }
#else
static inline int lpm_cpu_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* lpm_vexpf_core for 8 lanes */
LPM_AVX2 static inline __m256 lpm_exp_core8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(12583039.0f);
    const __m256 kb = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shift);
    const __m256 kf = _mm256_sub_ps(kb, shift);
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(lpm_exp_poly[0]);
    for (int i = 1; i < 7; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(lpm_exp_poly[i]));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(kb), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* lpm_vexpf_nonpos: max returns its second operand for a NaN, the clamp, like the
 * portable integer min */
LPM_AVX2 static inline __m256 lpm_exp_nonpos8(__m256 x) {
    return lpm_exp_core8(_mm256_max_ps(x, _mm256_set1_ps(-LPM_EXP_LIM)));
}

/* lpm_vrcp_core: the same seed and three Newton steps */
LPM_AVX2 static inline __m256 lpm_rcp8(__m256 d) {
    __m256 y = _mm256_castsi256_ps(
        _mm256_sub_epi32(_mm256_set1_epi32(0x7ef311c7), _mm256_castps_si256(d)));
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < 3; i++) y = _mm256_fmadd_ps(y, _mm256_fnmadd_ps(d, y, one), y);
    return y;
}

/* lpm_vsigmoid: -x clamped to [-87.34, 87.34]; a NaN passes both clamps (max and min
 * return the second operand, x's) and stays NaN through the arithmetic */
LPM_AVX2 static inline __m256 lpm_sigmoid8(__m256 x) {
    __m256 t = _mm256_max_ps(_mm256_set1_ps(-LPM_EXP_LIM), _mm256_sub_ps(_mm256_setzero_ps(), x));
    t = _mm256_min_ps(_mm256_set1_ps(LPM_EXP_LIM), t);
    return lpm_rcp8(_mm256_add_ps(_mm256_set1_ps(1.0f), lpm_exp_core8(t)));
}

/* lpm_vlog1pf_unit */
LPM_AVX2 static inline __m256 lpm_log1p_unit8(__m256 e) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 big = _mm256_cmp_ps(e, _mm256_set1_ps(0.41421356237309505f), _CMP_GT_OQ);
    const __m256 f = _mm256_blendv_ps(e, _mm256_mul_ps(_mm256_sub_ps(e, one), _mm256_set1_ps(0.5f)), big);
    const __m256 kf = _mm256_and_ps(big, one);
    const __m256 z = _mm256_mul_ps(f, f);
    static const float c[9] = {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f,
                               -1.2420140846e-1f, 1.4249322787e-1f, -1.6668057665e-1f,
                               2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f};
    __m256 p = _mm256_set1_ps(c[0]);
    for (int i = 1; i < 9; i++) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c[i]));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, f), z);
    y = _mm256_fmadd_ps(kf, _mm256_set1_ps(-2.12194440e-4f), y);
    y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
    const __m256 r = _mm256_add_ps(f, y);
    return _mm256_fmadd_ps(kf, _mm256_set1_ps(0.693359375f), r);
}

/* lpm_vsoftplus: max(v, 0) as an integer max of the bits, + log1p(exp(-|v|)); NaN kept */
LPM_AVX2 static inline __m256 lpm_softplus8(__m256 v) {
    const __m256i vb = _mm256_castps_si256(v);
    const __m256 pos = _mm256_castsi256_ps(_mm256_max_epi32(vb, _mm256_setzero_si256()));
    const __m256 negabs = _mm256_or_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 sp = _mm256_add_ps(pos, lpm_log1p_unit8(lpm_exp_nonpos8(negabs)));
    return _mm256_blendv_ps(sp, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
#endif

/* Sixteen floats as one value (GCC and clang vector extensions): arithmetic on it is
 * element-wise, a scalar operand is broadcast, and small arrays of it stay in registers
 * where GCC spills a float array that a vectorised loop accumulates into. AVX-512 builds
 * use one register per value, narrower ones split it. Loads and stores go through
 * memcpy (no alignment assumed). */
typedef float lpm_v16 __attribute__((vector_size(64)));
typedef float lpm_v8 __attribute__((vector_size(32)));   /* the 8 left of 24 channels */

/* Unaligned loads and stores of an lpm_v16 without taking the vector's address: GCC keeps
 * a register-blocked kernel's accumulators in registers either way, but where a memcpy
 * takes their address it can also store them back on every pass of the loop. (Macros: a
 * function returning a 512-bit vector draws GCC's ABI warning in the non-AVX-512 clones.) */
typedef float lpm_v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LPM_LOAD16(p) (*(const lpm_v16u *)(p))
#define LPM_STORE16(p, v) (*(lpm_v16u *)(p) = (v))
typedef float lpm_v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define LPM_LOAD8(p) (*(const lpm_v8u *)(p))
#define LPM_STORE8(p, v) (*(lpm_v8u *)(p) = (v))
/* An lpm_v16's halves (shuffles, no trip through memory), and the pragma that unrolls the
 * small loops over a kernel's accumulators, which GCC otherwise may keep on the stack. */
#define LPM_LOW8(v) __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7)
#define LPM_HIGH8(v) __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15)
/* A 24-float row (channels 0..15 in lo, 16..23 in hi8) stored as one of lpm_hsum16x32's
 * 32-float rows, zeros after the 24, in two whole vectors: its loads are then forwarded
 * from these stores, where rows written as 24 floats over zeroed ones made each wait. */
#define LPM_STORE_ROW32(row, lo, hi8)                                                       \
    do {                                                                                    \
        LPM_STORE16(row, lo);                                                               \
        LPM_STORE16((row) + 16, __builtin_shufflevector((hi8), (lpm_v8){0}, 0, 1, 2, 3, 4, \
                                                        5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)); \
    } while (0)
#define LPM_UNROLL _Pragma("GCC unroll 16")

/* Sixteen horizontal sums at once: lane j of the result is the sum of row j's 32 values
 * (rows padded with zeros to 32). Each row's two halves are added, then a four-level
 * butterfly of two-source shuffles and adds reduces the 16 vectors to one: 15 adds and
 * 30 shuffles (one vpermt2ps each with AVX-512) where 16 separate reductions cost about
 * 8 dependent instructions each. GCC vector extensions; other compilers sum in order. */
#if defined(__GNUC__) && !defined(__clang__)
typedef int32_t lpm_m16 __attribute__((vector_size(64)));

/* (a macro: a function returning a 512-bit vector draws GCC's ABI warning in the clones
 * built without AVX-512) */
#define LPM_SHUFFLE_ADD(x, y, a, b) (__builtin_shuffle(x, y, a) + __builtin_shuffle(x, y, b))

LPM_INLINE void lpm_hsum16x32(float *sums, const float (*rows)[32]) {
    /* the butterfly leaves row r's sum in lane bitreverse4(r): feed rows in that order */
    static const int rev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    const lpm_m16 a1 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const lpm_m16 a2 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    const lpm_m16 a3 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    const lpm_m16 a4 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    lpm_v16 v[16];
    for (int i = 0; i < 16; i++) {
        lpm_v16 lo, hi;
        __builtin_memcpy(&lo, rows[rev[i]], sizeof lo);
        __builtin_memcpy(&hi, rows[rev[i]] + 16, sizeof hi);
        v[i] = lo + hi;
    }
    for (int i = 0; i < 8; i++) v[i] = LPM_SHUFFLE_ADD(v[2 * i], v[2 * i + 1], a1, a1 + 8);
    for (int i = 0; i < 4; i++) v[i] = LPM_SHUFFLE_ADD(v[2 * i], v[2 * i + 1], a2, a2 + 4);
    for (int i = 0; i < 2; i++) v[i] = LPM_SHUFFLE_ADD(v[2 * i], v[2 * i + 1], a3, a3 + 2);
    v[0] = LPM_SHUFFLE_ADD(v[0], v[1], a4, a4 + 1);
    __builtin_memcpy(sums, &v[0], sizeof v[0]);
}

/* Eight horizontal sums in 8-lane vectors, for the narrow kernels (lpm_hsum16x32's
 * 16-lane values live on the stack without AVX-512): lane j of the result is the sum of
 * row j's first 8 nvec values (rows `stride` floats apart; nvec 3 or 4, a constant once
 * inlined), its vectors added first, then a three-level butterfly of shuffles and adds. */
typedef int32_t lpm_m8 __attribute__((vector_size(32)));
LPM_INLINE void lpm_hsum8(float *sums, const float *rows, int stride, int nvec) {
    /* the butterfly leaves row r's sum in lane bitreverse3(r): feed rows in that order */
    static const int rev[8] = {0, 4, 2, 6, 1, 5, 3, 7};
    const lpm_m8 a1 = {0, 1, 2, 3, 8, 9, 10, 11}, a2 = {0, 1, 8, 9, 4, 5, 12, 13};
    const lpm_m8 a3 = {0, 8, 2, 10, 4, 12, 6, 14};
    lpm_v8 v[8];
    LPM_UNROLL for (int i = 0; i < 8; i++) {
        const float *r = rows + rev[i] * stride;
        v[i] = LPM_LOAD8(r);
        LPM_UNROLL for (int k = 1; k < nvec; k++) v[i] += (lpm_v8)LPM_LOAD8(r + 8 * k);
    }
    LPM_UNROLL for (int i = 0; i < 4; i++) v[i] = LPM_SHUFFLE_ADD(v[2 * i], v[2 * i + 1], a1, a1 + 4);
    LPM_UNROLL for (int i = 0; i < 2; i++) v[i] = LPM_SHUFFLE_ADD(v[2 * i], v[2 * i + 1], a2, a2 + 2);
    v[0] = LPM_SHUFFLE_ADD(v[0], v[1], a3, a3 + 1);
    LPM_STORE8(sums, v[0]);
}
#else
LPM_INLINE void lpm_hsum8(float *sums, const float *rows, int stride, int nvec) {
    for (int j = 0; j < 8; j++) {
        float s = 0.0f;
        for (int c = 0; c < 8 * nvec; c++) s += rows[j * stride + c];
        sums[j] = s;
    }
}

LPM_INLINE void lpm_hsum16x32(float *sums, const float (*rows)[32]) {
    for (int j = 0; j < 16; j++) {
        float s = 0.0f;
        for (int c = 0; c < 32; c++) s += rows[j][c];
        sums[j] = s;
    }
}
#endif

/* lpm_hsum16x32 in the kernel's width (wide: a constant once inlined) */
LPM_INLINE void lpm_hsum16(float *sums, const float (*rows)[32], int wide) {
    if (wide) {
        lpm_hsum16x32(sums, rows);
    } else {
        lpm_hsum8(sums, rows[0], 32, 4);
        lpm_hsum8(sums + 8, rows[8], 32, 4);
    }
}

#endif
