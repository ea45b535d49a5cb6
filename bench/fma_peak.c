/* The machine's FP32 multiply-add peak on one core: twelve independent chains of FMAs
 * (enough to cover the latency on two FMA ports), 512-bit where the CPU has AVX-512, and
 * 256-bit (AVX2), and 128-bit SSE2 multiply-then-add (the baseline x86-64 the portable kernels
 * are built for). Run one copy per core at once to see whether the cores share FMA units.
 * The figure to hold bench_net's GFLOP/s against. x86-64 with GCC or clang only. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* n rounds of 12 FMAs on 12 registers; the sum keeps the compiler from dropping them */
#define CHAINS(T, SET, FMA, ADD)                                                         \
    T a0 = SET(0), a1 = SET(1), a2 = SET(2), a3 = SET(3), a4 = SET(4), a5 = SET(5);      \
    T a6 = SET(6), a7 = SET(7), a8 = SET(8), a9 = SET(9), a10 = SET(10), a11 = SET(11);  \
    const T m = SET(0.999f), c = SET(0.001f);                                            \
    for (long k = 0; k < n; k++) {                                                       \
        a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c);  \
        a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c);  \
        a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c);                    \
        a11 = FMA(a11, m, c);                                                            \
    }                                                                                    \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));             \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));

__attribute__((target("avx512f"))) static float chains512(long n) {
    CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float chains256(long n) {
    CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0];
}
/* SSE2 has no FMA: a multiply then an add (2 FLOPs a lane), what the portable kernels
 * (baseline x86-64) have */
#define SSE_MULADD(a, m, c) _mm_add_ps(_mm_mul_ps(a, m), c)
static float chains128(long n) {
    CHAINS(__m128, _mm_set1_ps, SSE_MULADD, _mm_add_ps)
    float t[4];
    _mm_storeu_ps(t, s);
    return t[0];
}

int main(void) {
    const long n = 200000000;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        double t = now();
        float s = chains512(n);
        t = now() - t;
        printf("AVX-512 FMA: %.1f GFLOP/s on one core (check %g)\n", n * 12 * 32 / t / 1e9, s);
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        double t = now();
        float s = chains256(n);
        t = now() - t;
        printf("AVX2 FMA:    %.1f GFLOP/s on one core (check %g)\n", n * 12 * 16 / t / 1e9, s);
    }
    {
        double t = now();
        float s = chains128(n);
        t = now() - t;
        printf("SSE2 mul+add: %.1f GFLOP/s on one core (check %g)\n", n * 12 * 8 / t / 1e9, s);
    }
    return 0;
}
