/* The Mamba block (mamba_ssm's Mamba with d_model = d_inner = 24, d_state 8, d_conv 4,
 * dt_rank 2) on one sequence of L tokens, forward and backward.
 *
 * Every array is token-major (L, channels) so the per-token work runs over contiguous
 * channels. The forward runs the whole chain (in_proj to out_proj) on blocks of 16 tokens,
 * so a block's intermediates stay in the L1 cache; the causal conv's history and the scan
 * state carry from block to block. Backward recomputes the forward internals from u for
 * the whole sequence into the caller's scratch and keeps the L x 8 x 24 scan states, so
 * h_(t-1) is read back, never divided out. Both give the same values, bit for bit: every
 * token's arithmetic is the same whatever the blocking.
 *
 * Speed: the scan's 192 (state, channel) lanes are stored state-major, (8, 24), so every
 * per-token step is a loop over 24 contiguous channels (y = C . h is then a vertical sum
 * over the 8 states); exp, SiLU and softplus use the vectorisable vmath.h (intrinsics for
 * AVX-512 and AVX2); the kernels with register-blocked accumulators come in 16-lane
 * (AVX-512) and 8-lane (AVX2, NEON) forms (vmath.h's LPM_WIDE, LPM_NARROW), the width
 * fixed by the kernel set this file is compiled for (kernels.h: once per instruction
 * set, one set chosen at start). */
#include "model.h"
#include "../core/vmath.h"

#include <math.h>
#include <string.h>

enum {
    C = LPM_C,                             /* d_model = d_inner */
    N = LPM_NSTATE,
    R = LPM_DTRANK,
    K = LPM_DCONV,
    XZ = 2 * LPM_C,                        /* in_proj rows: x | z */
    DBC = LPM_DTRANK + 2 * LPM_NSTATE,     /* x_proj rows: dt | B | C */
    CN = LPM_C * LPM_NSTATE,
    XP = 32,                               /* x_proj's 18 outputs padded to whole vectors */
    OUTP = 32,                             /* out_proj's 24 outputs, likewise */
    TB = 16,                               /* tokens per block of the forward (>= K - 1) */
};

/* Views into the scratch, each piece starting on a 64-byte boundary. */
typedef struct {
    float *in_t;    /* (24, 48)  in_proj transposed */
    float *xp_t;    /* (24, 32)  x_proj transposed, zero-padded */
    float *out_t;   /* (24, 32)  out_proj transposed, zero-padded */
    float *conv_t;  /* (4, 24)   conv1d weight transposed */
    float *A;       /* (8, 24)   -exp(A_log), transposed */
    float *A2;      /* (8, 24)   A log2(e), for the AVX-512 scan exp */
    float *conv2;   /* (4, 48)   conv1d's taps for two tokens at once (each one twice) */
    float *conv_b2; /* (48)      conv1d's bias, twice */
    float *dt_w;    /* (2, 24)   dt_proj's two columns */
    float *x;       /* (L, 24)   in_proj's x half, after K - 1 rows of conv history */
    float *z;       /* (L, 24)   in_proj's z half (the gate's input) */
    float *xpre;    /* (L, 24)   conv1d output before SiLU */
    float *xc;      /* (L, 24)   SiLU(conv1d) */
    float *dbc;     /* (L, 18)   x_proj output */
    float *v;       /* (L, 24)   dt_proj output + bias, before softplus (the backward turns
                       it into sigmoid(v), softplus' derivative) */
    float *delta;   /* (L, 24) */
    float *y;       /* (L, 24)   scan output before the gate */
    float *E;       /* (8, L, 24) exp(delta A), state-major; the backward reuses it
                       (the forward's blocks of 16 use (8, min(L, 16), 24)) */
    /* backward only */
    float *hs;      /* (L, 8, 24) scan states h_t */
    float *yg;      /* (L, 24)   gated y (input of out_proj) */
    float *gy;      /* (L, 24)   gradient at the gate's output, then at y */
    float *dxc;     /* (L, 24)   gradient at xc, then at xpre */
    float *ddbc;    /* (L, 18) */
    float *dxz;     /* (L, 48)   gradient at in_proj's output, x | z */
} mamba_buf;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Lays the pieces out in order; with base == NULL only counts. */
static size_t carve(mamba_buf *b, float *base, int L) {
    size_t at = 0, l = (size_t)L;
#define PIECE(field, n)                          \
    do {                                         \
        if (base) b->field = base + at;          \
        at += round16(n);                        \
    } while (0)
    PIECE(in_t, C * XZ);
    PIECE(xp_t, C * XP);
    PIECE(out_t, C * OUTP);
    PIECE(conv_t, K * C);
    PIECE(A, CN);
    PIECE(A2, CN);
    PIECE(conv2, K * 2 * C);
    PIECE(conv_b2, 2 * C);
    PIECE(dt_w, R * C);
    PIECE(x, (l + K - 1) * C);
    PIECE(z, l * C);
    PIECE(xpre, l * C);
    PIECE(xc, l * C);
    PIECE(dbc, l * DBC);
    PIECE(v, l * C);
    PIECE(delta, l * C);
    PIECE(y, l * C);
    PIECE(E, l * CN);
    PIECE(hs, l * CN);
    PIECE(yg, l * C);
    PIECE(gy, l * C);
    PIECE(dxc, l * C);
    PIECE(ddbc, l * DBC);
    PIECE(dxz, l * XZ);
#undef PIECE
    if (base) b->x += (K - 1) * C;         /* 288 bytes: the pieces after stay aligned */
    return at;
}

size_t lpm_mamba_scratch_floats(int L) { return carve(NULL, NULL, L); }

/* dst (cols, ld) = src (rows, cols) transposed; columns rows..ld-1 of dst are zeroed */
static void transpose(float *dst, const float *src, int rows, int cols, int ld) {
    for (int j = 0; j < cols; j++)
        for (int i = rows; i < ld; i++) dst[j * ld + i] = 0.0f;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[j * ld + i] = src[i * cols + j];
}

/* Lanes [lo, lo + n) of v to dst, straight from the register (constants once inlined):
 * a whole vector, a half, or single lanes. An accumulator copied through a float array
 * instead is kept in that array by GCC, on the stack, through the whole loop. (Macros: a
 * function taking a 512-bit vector draws GCC's ABI note in the non-AVX-512 sets; one per
 * width, as a shuffle of an lpm_v8's lanes 8..15 does not compile even where unused.) */
#define STORE_LANES16(dst, v, lo, n)                                        \
    do {                                                                    \
        if ((n) == 16) {                                                    \
            LPM_STORE16(dst, v);                                            \
        } else if ((n) == 8 && (lo) == 0) {                                 \
            LPM_STORE8(dst, LPM_LOW8(v));                                   \
        } else if ((n) == 8 && (lo) == 8) {                                 \
            LPM_STORE8(dst, LPM_HIGH8(v));                                  \
        } else {                                                            \
            for (int k_ = 0; k_ < (n); k_++) (dst)[k_] = (v)[(lo) + k_];    \
        }                                                                   \
    } while (0)
#define STORE_LANES8(dst, v, lo, n)                                         \
    do {                                                                    \
        if ((n) == 8) {                                                     \
            LPM_STORE8(dst, v);                                             \
        } else {                                                            \
            for (int k_ = 0; k_ < (n); k_++) (dst)[k_] = (v)[(lo) + k_];    \
        }                                                                   \
    } while (0)

/* out (L, S) | out2 (L, O - S) = in (L, I) W^T for W (O, I) given transposed and
 * zero-padded to (I, OP), OP a multiple of 16: output columns from S on go to out2
 * (in_proj's x | z halves). RT tokens at a time, their RT x ceil(O / VW) accumulators of
 * VW lanes (lpm_v16 or lpm_v8) held in registers while the I inputs stream past, each
 * weight vector loaded once for RT multiply-adds; each output sums its terms in the order
 * i = 0..I-1, so both widths give the same values. */
#define MATMUL_FORWARD_W(name, I, O, OP, S, VW, RT, ATTR)                                 \
    /* rt (RT or 1, a constant once inlined) tokens from token t; the loops over tokens   \
     * and vectors unrolled, or GCC keeps some accumulators on the stack */               \
    LPM_INLINE void name##_rows(float *restrict out, float *restrict out2,                \
                                const float *restrict in, const float *restrict wt,       \
                                int t, int rt) {                                          \
        enum { NV = ((O) + (VW) - 1) / (VW) };                                            \
        _Static_assert((OP) % 16 == 0 && (O) <= (OP), "whole vectors");                   \
        lpm_v##VW acc[RT][NV];                                                            \
        LPM_UNROLL for (int r = 0; r < rt; r++)                                           \
            LPM_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (lpm_v##VW){0};           \
        const float *x = in + (size_t)t * (I);                                            \
        for (int i = 0; i < (I); i++)                                                     \
            LPM_UNROLL for (int v = 0; v < NV; v++) {                                     \
                const lpm_v##VW w = LPM_LOAD##VW(wt + i * (OP) + (VW) * v);               \
                LPM_UNROLL for (int r = 0; r < rt; r++) acc[r][v] += x[r * (I) + i] * w;  \
            }                                                                             \
        /* vector v holds outputs VW v .. VW v + VW - 1: those below S go to out, the     \
         * rest below O to out2 */                                                        \
        LPM_UNROLL for (int r = 0; r < rt; r++) {                                         \
            float *o = out + (size_t)(t + r) * (S), *o2 = out2 + (size_t)(t + r) * ((O) - (S)); \
            LPM_UNROLL for (int v = 0; v < NV; v++) {                                     \
                const int j0 = (VW) * v, j1 = j0 + (VW) < (O) ? j0 + (VW) : (O);          \
                if (j0 < (S)) STORE_LANES##VW(o + j0, acc[r][v], 0, (j1 < (S) ? j1 : (S)) - j0); \
                if (j1 > (S) && j0 < (O)) {                                               \
                    const int a = j0 > (S) ? j0 : (S);                                    \
                    STORE_LANES##VW(o2 + (a - (S)), acc[r][v], a - j0, j1 - a);           \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    ATTR static void name(float *restrict out, float *restrict out2,                      \
                          const float *restrict in, const float *restrict wt, int L) {    \
        int t = 0;                                                                        \
        for (; t + (RT) <= L; t += (RT)) name##_rows(out, out2, in, wt, t, (RT));         \
        for (; t < L; t++) name##_rows(out, out2, in, wt, t, 1);                          \
    }
/* Each projection at both widths, and the one that runs: with AVX-512 four tokens of
 * 16-lane vectors (up to 12 of the 32 zmm registers); otherwise 8 lanes, in_proj's 48
 * outputs two tokens at a time and x_proj's and out_proj's 24 four at a time (12
 * accumulators of AVX2's 16 ymm registers). */
#define MATMUL_FORWARD(name, I, O, OP, S, RT8)                                            \
    MATMUL_FORWARD_W(name##_w16, I, O, OP, S, 16, 4, LPM_WIDE)                            \
    MATMUL_FORWARD_W(name##_w8, I, O, OP, S, 8, RT8, LPM_NARROW)                          \
    static void name(float *restrict out, float *restrict out2, const float *restrict in, \
                     const float *restrict wt, int L) {                                   \
        if (lpm_cpu_wide())                                                               \
            name##_w16(out, out2, in, wt, L);                                             \
        else                                                                              \
            name##_w8(out, out2, in, wt, L);                                              \
    }
MATMUL_FORWARD(matmul_in, C, XZ, XZ, C, 2)
MATMUL_FORWARD(matmul_x, C, DBC, XP, DBC, 4)
MATMUL_FORWARD(matmul_out, C, C, OUTP, C, 4)

/* din (L, 24) += dout W;  dw (O, 24) += dout^T in, for W (O, 24). A row of 24 is one
 * lpm_v16 and one lpm_v8 (vmath.h). Four rows at a time (tokens of din, outputs of dw), so
 * eight independent accumulator chains hide the multiply-add latency where one row's two
 * chains waited on it; every sum keeps its order (o = 0..O-1 for din, t = 0..L-1 for dw). */
LPM_INLINE void load24(lpm_v16 *lo, lpm_v8 *hi, const float *x) {
    memcpy(lo, x, sizeof *lo);
    memcpy(hi, x + 16, sizeof *hi);
}

LPM_INLINE void store24(float *x, const lpm_v16 *lo, const lpm_v8 *hi) {
    memcpy(x, lo, sizeof *lo);
    memcpy(x + 16, hi, sizeof *hi);
}

/* din rows t..t+rt-1 (rt 4 or 1, a constant once inlined) */
LPM_INLINE void din_rows(float *restrict din, const float *restrict dout,
                         const float *restrict w, int O, int t, int rt) {
    lpm_v16 lo[4];
    lpm_v8 hi[4];
    for (int r = 0; r < rt; r++) load24(&lo[r], &hi[r], din + (size_t)(t + r) * C);
    for (int o = 0; o < O; o++) {
        lpm_v16 wl;
        lpm_v8 wh;
        load24(&wl, &wh, w + o * C);
        for (int r = 0; r < rt; r++) {
            const float g = dout[(size_t)(t + r) * O + o];
            lo[r] += g * wl;
            hi[r] += g * wh;
        }
    }
    for (int r = 0; r < rt; r++) store24(din + (size_t)(t + r) * C, &lo[r], &hi[r]);
}

/* dw rows o..o+ro-1 (ro 4 or 1) */
LPM_INLINE void dw_rows(float *restrict dw, const float *restrict dout,
                        const float *restrict in, int O, int L, int o, int ro) {
    lpm_v16 lo[4];
    lpm_v8 hi[4];
    for (int r = 0; r < ro; r++) lo[r] = (lpm_v16){0}, hi[r] = (lpm_v8){0};
    for (int t = 0; t < L; t++) {
        lpm_v16 xl;
        lpm_v8 xh;
        load24(&xl, &xh, in + (size_t)t * C);
        for (int r = 0; r < ro; r++) {
            const float g = dout[(size_t)t * O + o + r];
            lo[r] += g * xl;
            hi[r] += g * xh;
        }
    }
    for (int r = 0; r < ro; r++) {
        lpm_v16 dl;
        lpm_v8 dh;
        load24(&dl, &dh, dw + (size_t)(o + r) * C);
        dl += lo[r];
        dh += hi[r];
        store24(dw + (size_t)(o + r) * C, &dl, &dh);
    }
}

/* The same sums in 8-lane vectors (a row of 24 is three), for the narrow kernels: an
 * lpm_v16 without AVX-512 lives on the stack (vmath.h). Three rows at a time: 9
 * accumulators, 3 broadcasts and a load in AVX2's 16 ymm registers (with four rows GCC
 * kept an accumulator on the stack, its chain waiting on a store every step). */
LPM_INLINE void din_rows8(float *restrict din, const float *restrict dout,
                          const float *restrict w, int O, int t, int rt) {
    lpm_v8 acc[3][3];
    LPM_UNROLL for (int r = 0; r < rt; r++)
        LPM_UNROLL for (int v = 0; v < 3; v++) acc[r][v] = LPM_LOAD8(din + (size_t)(t + r) * C + 8 * v);
    for (int o = 0; o < O; o++)
        LPM_UNROLL for (int v = 0; v < 3; v++) {
            const lpm_v8 wv = LPM_LOAD8(w + o * C + 8 * v);
            LPM_UNROLL for (int r = 0; r < rt; r++) acc[r][v] += dout[(size_t)(t + r) * O + o] * wv;
        }
    LPM_UNROLL for (int r = 0; r < rt; r++)
        LPM_UNROLL for (int v = 0; v < 3; v++) LPM_STORE8(din + (size_t)(t + r) * C + 8 * v, acc[r][v]);
}

LPM_INLINE void dw_rows8(float *restrict dw, const float *restrict dout,
                         const float *restrict in, int O, int L, int o, int ro) {
    lpm_v8 acc[3][3];
    LPM_UNROLL for (int r = 0; r < ro; r++)
        LPM_UNROLL for (int v = 0; v < 3; v++) acc[r][v] = (lpm_v8){0};
    for (int t = 0; t < L; t++)
        LPM_UNROLL for (int v = 0; v < 3; v++) {
            const lpm_v8 xv = LPM_LOAD8(in + (size_t)t * C + 8 * v);
            LPM_UNROLL for (int r = 0; r < ro; r++) acc[r][v] += dout[(size_t)t * O + o + r] * xv;
        }
    LPM_UNROLL for (int r = 0; r < ro; r++)
        LPM_UNROLL for (int v = 0; v < 3; v++) {
            float *d = dw + (size_t)(o + r) * C + 8 * v;
            LPM_STORE8(d, (lpm_v8)LPM_LOAD8(d) + acc[r][v]);
        }
}

#define MATMUL_BACKWARD(name, O)                                                          \
    LPM_WIDE_OR_BASE static void name##_w16(float *restrict din, float *restrict dw,      \
                                    const float *restrict dout, const float *restrict in, \
                                    const float *restrict w, int L) {                     \
        int t = 0, o = 0;                                                                 \
        for (; t + 4 <= L; t += 4) din_rows(din, dout, w, (O), t, 4);                     \
        for (; t < L; t++) din_rows(din, dout, w, (O), t, 1);                             \
        for (; o + 4 <= (O); o += 4) dw_rows(dw, dout, in, (O), L, o, 4);                 \
        for (; o < (O); o++) dw_rows(dw, dout, in, (O), L, o, 1);                         \
    }                                                                                     \
    LPM_NARROW static void name##_w8(float *restrict din, float *restrict dw,             \
                                     const float *restrict dout, const float *restrict in, \
                                     const float *restrict w, int L) {                    \
        int t = 0, o = 0;                                                                 \
        for (; t + 3 <= L; t += 3) din_rows8(din, dout, w, (O), t, 3);                    \
        for (; t < L; t++) din_rows8(din, dout, w, (O), t, 1);                            \
        for (; o + 3 <= (O); o += 3) dw_rows8(dw, dout, in, (O), L, o, 3);                \
        for (; o < (O); o++) dw_rows8(dw, dout, in, (O), L, o, 1);                        \
    }                                                                                     \
    static void name(float *restrict din, float *restrict dw, const float *restrict dout, \
                     const float *restrict in, const float *restrict w, int L) {          \
        if (lpm_narrow_kernels())                                                         \
            name##_w8(din, dw, dout, in, w, L);                                           \
        else                                                                              \
            name##_w16(din, dw, dout, in, w, L);                                          \
    }
MATMUL_BACKWARD(matmul_in_backward, XZ)
MATMUL_BACKWARD(matmul_x_backward, DBC)
MATMUL_BACKWARD(matmul_out_backward, C)

/* E[n][t][c] = exp(delta[t][c] A[n][c]), for all tokens before the recurrence: the exps
 * do not depend on h, so they run as one flat loop, two tokens (48 lanes = three AVX-512
 * vectors) per step, and leave the sequential part three multiply-adds per lane.
 * State n's values start at E + n es. */
static void scan_exp_portable(float *restrict E, size_t es,
                              const float *restrict delta, const float *restrict A,
                              int L) {
    const size_t lc = (size_t)L * C, pairs = lc / (2 * C) * (2 * C);
    for (int n = 0; n < N; n++) {
        float a2[2 * C];
        for (int c = 0; c < C; c++) a2[c] = a2[C + c] = A[n * C + c];
        float *restrict En = E + (size_t)n * es;
        for (size_t s = 0; s < pairs; s += 2 * C) {
#pragma omp simd
            for (int j = 0; j < 2 * C; j++) En[s + j] = lpm_vexpf_nonpos(delta[s + j] * a2[j]);
        }
        for (size_t s = pairs; s < lc; s++) En[s] = lpm_vexpf_nonpos(delta[s] * a2[s - pairs]);
    }
}

#ifdef LPM_AVX512_EXP
/* The same as 2^(delta A log2(e)) with AVX-512 intrinsics (vmath.h), A log2(e) given as
 * A2: three vectors of two tokens per step; an odd last token is one vector and a masked
 * half (its 24 lanes read the first 24 of the two-token pattern). */
__attribute__((target("avx512f"), noinline)) static void scan_exp_avx512(
    float *restrict E, size_t es, const float *restrict delta, const float *restrict A2, int L) {
    const size_t lc = (size_t)L * C;
    for (int n = 0; n < N; n++) {
        /* the two-token pattern's vectors: channels 0..15, 16..23 then 0..7, 8..23, built
         * in registers (written to a float array and read back, the middle one waited
         * for two stores at every state: a quarter of this function's time at 16 tokens) */
        const __m512 lo = _mm512_loadu_ps(A2 + n * C), hi = _mm512_loadu_ps(A2 + n * C + 8);
        const __m512 w[3] = {lo, _mm512_shuffle_f32x4(hi, lo, _MM_SHUFFLE(1, 0, 3, 2)), hi};
        float *restrict En = E + (size_t)n * es;
        for (size_t s = 0; s < lc; s += 2 * C)
            for (int v = 0; v < 3; v++) {
                const size_t at = s + 16 * (size_t)v;
                if (at >= lc) break;
                const __mmask16 m = lc - at >= 16 ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
                const __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, delta + at), w[v]);
                _mm512_mask_storeu_ps(En + at, m, lpm_exp2_nonpos16(t));
            }
    }
}
#endif

#ifdef LPM_AVX2_EXP
/* The same with AVX2 (vmath.h): a token's 24 lanes are three whole vectors */
LPM_AVX2 __attribute__((noinline)) static void scan_exp_avx2(
    float *restrict E, size_t es, const float *restrict delta, const float *restrict A, int L) {
    const size_t lc = (size_t)L * C;
    for (int n = 0; n < N; n++) {
        const __m256 a0 = _mm256_loadu_ps(A + n * C), a1 = _mm256_loadu_ps(A + n * C + 8),
                     a2 = _mm256_loadu_ps(A + n * C + 16);
        float *restrict En = E + (size_t)n * es;
        for (size_t s = 0; s < lc; s += C) {
            _mm256_storeu_ps(En + s, lpm_exp_nonpos8(_mm256_mul_ps(_mm256_loadu_ps(delta + s), a0)));
            _mm256_storeu_ps(En + s + 8,
                             lpm_exp_nonpos8(_mm256_mul_ps(_mm256_loadu_ps(delta + s + 8), a1)));
            _mm256_storeu_ps(En + s + 16,
                             lpm_exp_nonpos8(_mm256_mul_ps(_mm256_loadu_ps(delta + s + 16), a2)));
        }
    }
}
#endif

static void scan_exp(const mamba_buf *b, size_t es, int L) {
#ifdef LPM_AVX512_EXP
    if (lpm_cpu_avx512()) {
        scan_exp_avx512(b->E, es, b->delta, b->A2, L);
        return;
    }
#endif
#ifdef LPM_AVX2_EXP
    if (lpm_cpu_avx2()) {
        scan_exp_avx2(b->E, es, b->delta, b->A, L);
        return;
    }
#endif
    scan_exp_portable(b->E, es, b->delta, b->A, L);
}

/* h_t = exp(delta_t A) h_(t-1) + delta_t B_t xc_t;  y_t = C_t . h_t + D xc_t, from the
 * state h (updated in place) and E's state stride es. States h_t go to hs (L, 8, 24) when
 * hs is not NULL. The state lives in registers through the tokens: for each of the 8
 * states, channels 0..15 in an lpm_v16 and 16..23 in an lpm_v8. */
LPM_WIDE static void scan_forward_w16(const mamba_buf *b, size_t es, const float *D, int L,
                                      float *restrict h, float *hs) {
    lpm_v16 hl[N];
    lpm_v8 hh[N];
    LPM_UNROLL for (int n = 0; n < N; n++) {
        hl[n] = LPM_LOAD16(h + n * C);
        hh[n] = LPM_LOAD8(h + n * C + 16);
    }
    const lpm_v16 Dl = LPM_LOAD16(D);
    const lpm_v8 Dh = LPM_LOAD8(D + 16);
    for (int t = 0; t < L; t++) {
        const float *delta = b->delta + (size_t)t * C, *xc = b->xc + (size_t)t * C;
        const float *Bt = b->dbc + (size_t)t * DBC + R, *Ct = Bt + N;
        const float *Et = b->E + (size_t)t * C;
        float *y = b->y + (size_t)t * C;
        /* (delta * x).unsqueeze(-1) * B */
        const lpm_v16 xl = LPM_LOAD16(xc), dxl = LPM_LOAD16(delta) * xl;
        const lpm_v8 xh = LPM_LOAD8(xc + 16), dxh = LPM_LOAD8(delta + 16) * xh;
        lpm_v16 al = {0};
        lpm_v8 ah = {0};
        LPM_UNROLL for (int n = 0; n < N; n++) {
            const float bn = Bt[n], cn = Ct[n];
            const float *En = Et + n * es;
            hl[n] = LPM_LOAD16(En) * hl[n] + dxl * bn;
            hh[n] = LPM_LOAD8(En + 16) * hh[n] + dxh * bn;
            al += hl[n] * cn;
            ah += hh[n] * cn;
        }
        LPM_STORE16(y, al + xl * Dl);
        LPM_STORE8(y + 16, ah + xh * Dh);
        if (hs) {
            float *ht = hs + (size_t)t * CN;
            LPM_UNROLL for (int n = 0; n < N; n++) {
                LPM_STORE16(ht + n * C, hl[n]);
                LPM_STORE8(ht + n * C + 16, hh[n]);
            }
        }
    }
    LPM_UNROLL for (int n = 0; n < N; n++) {
        LPM_STORE16(h + n * C, hl[n]);
        LPM_STORE8(h + n * C + 16, hh[n]);
    }
}

/* The same without AVX-512: the 8 states' 24 channels would take 24 of AVX2's 16 ymm
 * registers, so the channels go in three passes of 8 over the tokens (the channels are
 * independent: y sums over the states of one channel), each holding its 8 states' lanes in
 * 8 registers. Every lane's arithmetic is the 16-lane version's. */
LPM_NARROW static void scan_forward_w8(const mamba_buf *b, size_t es, const float *D, int L,
                                       float *restrict h, float *hs) {
    for (int c0 = 0; c0 < C; c0 += 8) {
        lpm_v8 hv[N];
        LPM_UNROLL for (int n = 0; n < N; n++) hv[n] = LPM_LOAD8(h + n * C + c0);
        const lpm_v8 Dv = LPM_LOAD8(D + c0);
        for (int t = 0; t < L; t++) {
            const float *delta = b->delta + (size_t)t * C + c0, *xc = b->xc + (size_t)t * C + c0;
            const float *Bt = b->dbc + (size_t)t * DBC + R, *Ct = Bt + N;
            const float *Et = b->E + (size_t)t * C + c0;
            const lpm_v8 x = LPM_LOAD8(xc), dx = LPM_LOAD8(delta) * x;
            lpm_v8 acc = {0};
            LPM_UNROLL for (int n = 0; n < N; n++) {
                hv[n] = LPM_LOAD8(Et + n * es) * hv[n] + dx * Bt[n];
                acc += hv[n] * Ct[n];
            }
            LPM_STORE8(b->y + (size_t)t * C + c0, acc + x * Dv);
            if (hs) {
                float *ht = hs + (size_t)t * CN + c0;
                LPM_UNROLL for (int n = 0; n < N; n++) LPM_STORE8(ht + n * C, hv[n]);
            }
        }
        LPM_UNROLL for (int n = 0; n < N; n++) LPM_STORE8(h + n * C + c0, hv[n]);
    }
}

static void scan_forward(const mamba_buf *b, size_t es, const float *D, int L,
                         float *restrict h, float *hs) {
    if (lpm_cpu_wide())
        scan_forward_w16(b, es, D, L, h, hs);
    else
        scan_forward_w8(b, es, D, L, h, hs);
}

/* out = sigmoid(x), times x where silu (F.silu), times mul where mul is not NULL (the
 * gate), flat over n values: whole vectors, no 24-lane remainders. */
static void sigmoid_portable(float *out, const float *mul, const float *x,
                             size_t n, int silu) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float y = lpm_vsigmoid(x[i]);
        if (silu) y = x[i] * y;
        out[i] = mul ? mul[i] * y : y;
    }
}

#ifdef LPM_AVX512_EXP
__attribute__((target("avx512f"), noinline)) static void sigmoid_avx512(
    float *out, const float *mul, const float *x, size_t n, int silu) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 y = lpm_sigmoid16(v);
        if (silu) y = _mm512_mul_ps(v, y);
        if (mul) y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, mul + i), y);
        _mm512_mask_storeu_ps(out + i, m, y);
    }
}
#endif

#ifdef LPM_AVX2_EXP
LPM_AVX2 __attribute__((noinline)) static void sigmoid_avx2(float *out, const float *mul,
                                                           const float *x, size_t n, int silu) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 y = lpm_sigmoid8(v);
        if (silu) y = _mm256_mul_ps(v, y);
        if (mul) y = _mm256_mul_ps(_mm256_loadu_ps(mul + i), y);
        _mm256_storeu_ps(out + i, y);
    }
    for (; i < n; i++) {
        float y = lpm_vsigmoid(x[i]);
        if (silu) y = x[i] * y;
        out[i] = mul ? mul[i] * y : y;
    }
}
#endif

static void sigmoid(float *out, const float *mul, const float *x, size_t n, int silu) {
#ifdef LPM_AVX512_EXP
    if (lpm_cpu_avx512()) {
        sigmoid_avx512(out, mul, x, n, silu);
        return;
    }
#endif
#ifdef LPM_AVX2_EXP
    if (lpm_cpu_avx2()) {
        sigmoid_avx2(out, mul, x, n, silu);
        return;
    }
#endif
    sigmoid_portable(out, mul, x, n, silu);
}

static void silu(float *out, const float *mul, const float *x, size_t n) {
    sigmoid(out, mul, x, n, 1);
}

/* m lanes (one or two tokens) of the causal conv, taps in the order k = 0..K-1 */
LPM_INLINE void conv_lanes(float *restrict o, const float *restrict x,
                           const float (*w2)[2 * C], const float *b2, int m) {
#pragma omp simd
    for (int j = 0; j < m; j++) {
        float a = b2[j];
        for (int k = 0; k < K; k++) a += w2[k][j] * x[j - (K - 1 - k) * C];
        o[j] = a;
    }
}

/* causal depthwise conv: xpre[t,c] = bias[c] + sum_k w[c,k] x[t-3+k, c]; xc = F.silu.
 * The K - 1 rows before x's first hold the earlier tokens' x (zeros at the sequence's
 * start: the conv's padding). Two tokens (48 lanes, three AVX-512 vectors) per step. */
static void conv_silu(const mamba_buf *b, int L) {
    const float(*w2)[2 * C] = (const float(*)[2 * C])b->conv2, *b2 = b->conv_b2;
    const size_t lc = (size_t)L * C;
    size_t s = 0;
    for (; s + 2 * C <= lc; s += 2 * C) conv_lanes(b->xpre + s, b->x + s, w2, b2, 2 * C);
    if (s < lc) conv_lanes(b->xpre + s, b->x + s, w2, b2, C);
    silu(b->xc, NULL, b->xpre, lc);
}

/* out = F.softplus(v) (threshold 20) over n values */
static void softplus_portable(float *restrict out, const float *restrict v, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = lpm_vsoftplus(v[i]);
}

#ifdef LPM_AVX2_EXP
LPM_AVX2 __attribute__((noinline)) static void softplus_avx2(float *restrict out,
                                                            const float *restrict v, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, lpm_softplus8(_mm256_loadu_ps(v + i)));
    for (; i < n; i++) out[i] = lpm_vsoftplus(v[i]);
}
#endif

/* AVX-512 vectorises the portable loop; AVX2 takes the intrinsics */
static void softplus(float *out, const float *v, size_t n) {
#ifdef LPM_AVX2_EXP
    if (lpm_cpu_avx2() && !lpm_cpu_wide()) {
        softplus_avx2(out, v, n);
        return;
    }
#endif
    softplus_portable(out, v, n);
}

/* delta = F.softplus(dt_proj(dt)), threshold 20 */
static void dt_softplus(const mamba_buf *b, const lpm_mamba_params *p, int L) {
    const float *w0 = b->dt_w, *w1 = b->dt_w + C;
    for (int t = 0; t < L; t++) {
        const float *dt = b->dbc + (size_t)t * DBC;
        float *v = b->v + (size_t)t * C;
        const float d0 = dt[0], d1 = dt[1];
#pragma omp simd
        for (int c = 0; c < C; c++) v[c] = p->dt_proj_b[c] + w0[c] * d0 + w1[c] * d1;
    }
    softplus(b->delta, b->v, (size_t)L * C);
}

/* The weights in the layouts the kernels read (the first pieces of the scratch, whatever
 * L is). */
void lpm_mamba_prepare(const lpm_mamba_params *p, float *scratch) {
    mamba_buf bv = {0}, *b = &bv;
    carve(b, scratch, 0);
    _Static_assert(R == 2, "dt_softplus unrolls dt_rank 2");
    transpose(b->in_t, p->in_proj, XZ, C, XZ);
    transpose(b->xp_t, p->x_proj, DBC, C, XP);
    transpose(b->out_t, p->out_proj, C, C, OUTP);
    transpose(b->conv_t, p->conv_w, C, K, C);
    for (int c = 0; c < C; c++) {
        b->conv_b2[c] = b->conv_b2[C + c] = p->conv_b[c];
        for (int k = 0; k < K; k++)
            b->conv2[k * 2 * C + c] = b->conv2[k * 2 * C + C + c] = b->conv_t[k * C + c];
        for (int r = 0; r < R; r++) b->dt_w[r * C + c] = p->dt_proj_w[c * R + r];
    }
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) {
            b->A[n * C + c] = -expf(p->A_log[c * N + n]);
            b->A2[n * C + c] = b->A[n * C + c] * 1.44269504088896341f;
        }
}

/* Everything from u up to y (before the gate) for L consecutive tokens: the conv reads the
 * K - 1 rows before b->x, the scan starts from h and leaves the last state there. */
static void forward_internals(const mamba_buf *b, const float *u, const lpm_mamba_params *p,
                              int L, size_t es, float *h, float *hs) {
    matmul_in(b->x, b->z, u, b->in_t, L);
    conv_silu(b, L);
    matmul_x(b->dbc, NULL, b->xc, b->xp_t, L);
    dt_softplus(b, p, L);
    scan_exp(b, es, L);
    scan_forward(b, es, p->D, L, h, hs);
}

/* y = y * F.silu(z), into yg (may be y itself) */
static void gate(float *yg, const float *y, const float *z, int L) { silu(yg, y, z, (size_t)L * C); }

void lpm_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L,
                       float *scratch) {
    mamba_buf b = {0};
    carve(&b, scratch, L);
    float h[CN] = {0};
    memset(b.x - (K - 1) * C, 0, (K - 1) * C * sizeof(float));
    /* E's state stride: a block's tokens (the piece holds L x 192 floats) */
    const size_t es = (size_t)(L < TB ? L : TB) * C;
    for (int t0 = 0; t0 < L; t0 += TB) {
        const int n = L - t0 < TB ? L - t0 : TB;
        forward_internals(&b, u + (size_t)t0 * C, p, n, es, h, NULL);
        gate(b.y, b.y, b.z, n);
        matmul_out(out + (size_t)t0 * C, NULL, b.y, b.out_t, n);
        /* the block's last K - 1 tokens' x are the next block's conv history (only the
         * last block can be shorter than K - 1 tokens) */
        if (t0 + n < L)
            memcpy(b.x - (K - 1) * C, b.x + (size_t)(n - (K - 1)) * C,
                   (K - 1) * C * sizeof(float));
    }
}

/* The per-channel part of the adjoint, the same at both widths: the D and dt_proj
 * weights, and the gradients accumulated over the tokens. (Local arrays: loaded through p
 * inside the loop, GCC cannot prove the stores leave the weights alone and gives up
 * vectorising it.) */
typedef struct {
    float Dw[C], w0[C], w1[C];
    float dD[C], dvb[C], dvw0[C], dvw1[C];
} scan_channels;

LPM_INLINE void scan_channels_init(scan_channels *s, const lpm_mamba_params *p) {
    for (int c = 0; c < C; c++) {
        s->Dw[c] = p->D[c], s->w0[c] = p->dt_proj_w[c * R], s->w1[c] = p->dt_proj_w[c * R + 1];
        s->dD[c] = s->dvb[c] = s->dvw0[c] = s->dvw1[c] = 0.0f;
    }
}

/* Token t's channels, given lam . B (lam_bs) and the delta adjoint before softplus'
 * (ddeltas): dxc (=), the dt part of ddbc (=), the sums of dD and dt_proj's gradients. */
LPM_INLINE void scan_channels_step(scan_channels *s, float *dxc, float *ddt, const float *gy,
                                   const float *xc, const float *delta, const float *sv,
                                   const float *dt, const float *lam_bs,
                                   const float *ddeltas) {
    float s0 = 0.0f, s1 = 0.0f;
    const float t0 = dt[0], t1 = dt[1];
#pragma omp simd simdlen(8) reduction(+ : s0, s1)
    for (int c = 0; c < C; c++) {
        dxc[c] = s->Dw[c] * gy[c] + delta[c] * lam_bs[c];
        s->dD[c] += gy[c] * xc[c];
        /* softplus' = sigmoid, identity above the threshold 20, where the sigmoid
         * is exactly 1.0f anyway (1 + exp(-v) rounds to 1 from v > 17.4) */
        const float dv = ddeltas[c] * sv[c];
        /* dt_proj: v = W dt + bias */
        s->dvb[c] += dv;
        s->dvw0[c] += dv * t0;
        s->dvw1[c] += dv * t1;
        s0 += dv * s->w0[c];
        s1 += dv * s->w1[c];
    }
    ddt[0] = s0;
    ddt[1] = s1;
}

/* The sums into grad; dA (n, c) as the scan keeps it, A = -exp(A_log) likewise. */
LPM_INLINE void scan_channels_finish(const scan_channels *s, lpm_mamba_params *grad,
                                     const float *dA, const float *A) {
    for (int c = 0; c < C; c++) {
        grad->dt_proj_b[c] += s->dvb[c];
        grad->dt_proj_w[c * R] += s->dvw0[c];
        grad->dt_proj_w[c * R + 1] += s->dvw1[c];
        grad->D[c] += s->dD[c];
        /* A = -exp(A_log): dA_log = dA * A */
        for (int n = 0; n < N; n++) grad->A_log[c * N + n] += dA[n * C + c] * A[n * C + c];
    }
}

/* Adjoint of the scan, backwards in t (docs/lpmnet.md section 4):
 * lam_t = gy_t C_t + a_(t+1) lam_(t+1), with b->v holding sigmoid(v), softplus'
 * (lpm_mamba_backward computes it for the whole sequence at once, in whole vectors).
 * Writes dxc = D gy + delta sum_n lam B (=) and the
 * B, C, dt parts of ddbc (=); accumulates dA_log, dD, dt_proj's gradients.
 * Lanes are (state, channel) like the forward: the sums over n are vertical; a token's
 * 16 sums over the 24 channels (dB and dC per state) are one batched reduction. */
LPM_WIDE_OR_BASE static void scan_backward_w16(mamba_buf *b, lpm_mamba_params *grad,
                                               const lpm_mamba_params *p, int L) {
    float lam[CN] = {0}, a_next[CN] = {0}, dA[CN] = {0};
    scan_channels sc;
    scan_channels_init(&sc, p);
    static const float zero[CN];
    /* rows 0..7: the dB terms of each state, 8..15: the dC terms; columns 24..31 are 0.
     * Each row is stored as the two whole vectors lpm_hsum16x32 reads: written as 24
     * floats, every row's second read waited for two stores (16 stalls a token). */
    _Alignas(64) float terms[2 * N][32];
    _Static_assert(C == 24 && 2 * N == 16 && DBC == R + 2 * N, "one 16-row reduction");
    for (int t = L - 1; t >= 0; t--) {
        const float *gy = b->gy + (size_t)t * C, *xc = b->xc + (size_t)t * C;
        const float *delta = b->delta + (size_t)t * C, *sv = b->v + (size_t)t * C;
        const float *dt = b->dbc + (size_t)t * DBC, *Bt = dt + R, *Ct = Bt + N;
        const float *h = b->hs + (size_t)t * CN;
        const float *hp = t > 0 ? h - CN : zero;
        float *dxc = b->dxc + (size_t)t * C;
        float *ddt = b->ddbc + (size_t)t * DBC;
        const float *Et = b->E + (size_t)t * C;
        /* channels 0..15 in the lpm_v16 values, 16..23 in the lpm_v8 ones */
        const lpm_v16 g = LPM_LOAD16(gy), d = LPM_LOAD16(delta), x = LPM_LOAD16(xc);
        const lpm_v8 g8 = LPM_LOAD8(gy + 16), d8 = LPM_LOAD8(delta + 16), x8 = LPM_LOAD8(xc + 16);
        const lpm_v16 dx = d * x;
        const lpm_v8 dx8 = d8 * x8;
        lpm_v16 lam_b = {0}, ddelta = {0};
        lpm_v8 lam_b8 = {0}, ddelta8 = {0};
        LPM_UNROLL for (int n = 0; n < N; n++) {
            const float bn = Bt[n], cn = Ct[n];
            const float *An = b->A + n * C, *hn = h + n * C, *hpn = hp + n * C;
            const float *En = Et + n * (size_t)L * C;
            float *ln = lam + n * C, *an = a_next + n * C, *dAn = dA + n * C;
            const lpm_v16 l = g * cn + LPM_LOAD16(an) * LPM_LOAD16(ln);
            const lpm_v8 l8 = g8 * cn + LPM_LOAD8(an + 16) * LPM_LOAD8(ln + 16);
            const lpm_v16 a = LPM_LOAD16(En), ah = a * LPM_LOAD16(hpn);
            const lpm_v8 a8 = LPM_LOAD8(En + 16), ah8 = a8 * LPM_LOAD8(hpn + 16);
            LPM_STORE_ROW32(terms[N + n], g * LPM_LOAD16(hn), g8 * LPM_LOAD8(hn + 16));
            LPM_STORE_ROW32(terms[n], l * dx, l8 * dx8);
            lam_b += l * bn;
            lam_b8 += l8 * bn;
            ddelta += l * (bn * x + LPM_LOAD16(An) * ah);
            ddelta8 += l8 * (bn * x8 + LPM_LOAD8(An + 16) * ah8);
            LPM_STORE16(dAn, LPM_LOAD16(dAn) + l * d * ah);
            LPM_STORE8(dAn + 16, (lpm_v8)LPM_LOAD8(dAn + 16) + l8 * d8 * ah8);
            LPM_STORE16(ln, l);
            LPM_STORE8(ln + 16, l8);
            LPM_STORE16(an, a);
            LPM_STORE8(an + 16, a8);
        }
        lpm_hsum16x32(ddt + R, terms);   /* dB then dC */
        float lam_bs[C], ddeltas[C];
        LPM_STORE16(lam_bs, lam_b);
        LPM_STORE8(lam_bs + 16, lam_b8);
        LPM_STORE16(ddeltas, ddelta);
        LPM_STORE8(ddeltas + 16, ddelta8);
        scan_channels_step(&sc, dxc, ddt, gy, xc, delta, sv, dt, lam_bs, ddeltas);
    }
    scan_channels_finish(&sc, grad, dA, b->A);
}

/* The same adjoint in 8-lane vectors (three per token's 24 channels) for CPUs without
 * AVX-512, where scan_backward_w16's 16-lane values would live on the stack. */
LPM_NARROW static void scan_backward_w8(mamba_buf *b, lpm_mamba_params *grad,
                                        const lpm_mamba_params *p, int L) {
    float lam[CN] = {0}, a_next[CN] = {0}, dA[CN] = {0};
    scan_channels sc;
    scan_channels_init(&sc, p);
    static const float zero[CN];
    /* rows 0..7: the dB terms of each state, 8..15: the dC terms */
    _Alignas(32) float terms[2 * N][C];
    for (int t = L - 1; t >= 0; t--) {
        const float *gy = b->gy + (size_t)t * C, *xc = b->xc + (size_t)t * C;
        const float *delta = b->delta + (size_t)t * C, *sv = b->v + (size_t)t * C;
        const float *dt = b->dbc + (size_t)t * DBC, *Bt = dt + R, *Ct = Bt + N;
        const float *h = b->hs + (size_t)t * CN;
        const float *hp = t > 0 ? h - CN : zero;
        float *dxc = b->dxc + (size_t)t * C;
        float *ddt = b->ddbc + (size_t)t * DBC;
        const float *Et = b->E + (size_t)t * C;
        float lam_bs[C], ddeltas[C];
        for (int c0 = 0; c0 < C; c0 += 8) {
            const lpm_v8 g = LPM_LOAD8(gy + c0), d = LPM_LOAD8(delta + c0), x = LPM_LOAD8(xc + c0);
            const lpm_v8 dx = d * x;
            lpm_v8 lam_b = {0}, ddelta = {0};
            LPM_UNROLL for (int n = 0; n < N; n++) {
                const float bn = Bt[n], cn = Ct[n];
                const int at = n * C + c0;
                const float *En = Et + n * (size_t)L * C + c0;
                const lpm_v8 l = g * cn + (lpm_v8)LPM_LOAD8(a_next + at) * (lpm_v8)LPM_LOAD8(lam + at);
                const lpm_v8 a = LPM_LOAD8(En), ah = a * (lpm_v8)LPM_LOAD8(hp + at);
                LPM_STORE8(&terms[N + n][c0], g * (lpm_v8)LPM_LOAD8(h + at));
                LPM_STORE8(&terms[n][c0], l * dx);
                lam_b += l * bn;
                ddelta += l * (bn * x + (lpm_v8)LPM_LOAD8(b->A + at) * ah);
                LPM_STORE8(dA + at, (lpm_v8)LPM_LOAD8(dA + at) + l * d * ah);
                LPM_STORE8(lam + at, l);
                LPM_STORE8(a_next + at, a);
            }
            LPM_STORE8(lam_bs + c0, lam_b);
            LPM_STORE8(ddeltas + c0, ddelta);
        }
        lpm_hsum8(ddt + R, terms[0], C, 3);       /* dB */
        lpm_hsum8(ddt + R + N, terms[N], C, 3);   /* dC */
        scan_channels_step(&sc, dxc, ddt, gy, xc, delta, sv, dt, lam_bs, ddeltas);
    }
    scan_channels_finish(&sc, grad, dA, b->A);
}

static void scan_backward(mamba_buf *b, lpm_mamba_params *grad, const lpm_mamba_params *p,
                          int L) {
    if (lpm_narrow_kernels())
        scan_backward_w8(b, grad, p, L);
    else
        scan_backward_w16(b, grad, p, L);
}

/* SiLU: dxpre = dxc s (1 + xpre (1 - s)), in place */
static void silu_backward(float *restrict dx, const float *restrict x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float s = lpm_vsigmoid(x[i]);
        dx[i] *= s * (1.0f + x[i] * (1.0f - s));
    }
}

/* The gate's backward: dz (in dxz's z half) and gy *= silu(z), in place. */
static void gate_backward(float *dxz, float *gy, const float *y, const float *z_all,
                          int L) {
    for (int t = 0; t < L; t++) {
        const float *yt = y + (size_t)t * C, *z = z_all + (size_t)t * C;
        float *g = gy + (size_t)t * C, *dz = dxz + (size_t)t * XZ + C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            const float s = lpm_vsigmoid(z[c]);
            dz[c] = g[c] * yt[c] * s * (1.0f + z[c] * (1.0f - s));
            g[c] *= z[c] * s;
        }
    }
}

/* The causal conv's backward: dx[s,c] = sum_k w[c,k] g[s+3-k,c] into dxz's x half (=);
 * dw[c,k] += sum_t g[t,c] x[t-3+k,c], dbias += sum_t g[t,c], g = dxc (at xpre). */
static void conv_backward(const mamba_buf *b, lpm_mamba_params *grad, int L) {
    float dw[K][C] = {{0}}, db[C] = {0};
    for (int s = 0; s < L; s++) {
        const float *x = b->x + (size_t)s * C;
        float *dx = b->dxz + (size_t)s * XZ;
        for (int c = 0; c < C; c++) dx[c] = 0.0f;
        for (int k = 0; k < K; k++) {
            const int t = s + (K - 1) - k;
            if (t >= L) continue;
            const float *g = b->dxc + (size_t)t * C;
            const float *w = b->conv_t + k * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                dx[c] += w[c] * g[c];
                dw[k][c] += g[c] * x[c];
            }
        }
        const float *g = b->dxc + (size_t)s * C;
#pragma omp simd
        for (int c = 0; c < C; c++) db[c] += g[c];
    }
    for (int c = 0; c < C; c++) {
        grad->conv_b[c] += db[c];
        for (int k = 0; k < K; k++) grad->conv_w[c * K + k] += dw[k][c];
    }
}

void lpm_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                        const float *u, const lpm_mamba_params *p, int L, float *scratch) {
    mamba_buf b = {0};
    carve(&b, scratch, L);
    const size_t lc = (size_t)L * C;
    float h[CN] = {0};
    memset(b.x - (K - 1) * C, 0, (K - 1) * C * sizeof(float));
    forward_internals(&b, u, p, L, lc, h, b.hs);

    /* out_proj, then the gate y * silu(z) */
    gate(b.yg, b.y, b.z, L);
    memset(b.gy, 0, lc * sizeof(float));
    matmul_out_backward(b.gy, grad->out_proj, dout, b.yg, p->out_proj, L);
    gate_backward(b.dxz, b.gy, b.y, b.z, L);

    sigmoid(b.v, NULL, b.v, lc, 0);   /* v is needed only as softplus' from here */
    scan_backward(&b, grad, p, L);
    matmul_x_backward(b.dxc, grad->x_proj, b.ddbc, b.xc, p->x_proj, L);
    silu_backward(b.dxc, b.xpre, lc);

    conv_backward(&b, grad, L);
    matmul_in_backward(du, grad->in_proj, b.dxz, u, p->in_proj, L);
}
