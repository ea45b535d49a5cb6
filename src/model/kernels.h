/* The dispatch table: one struct of function pointers per kernel set, and the one this
 * process runs, chosen once at first use (dispatch.c).
 *
 * Kernel sets: the kernel sources compiled once per instruction set (cmake/kernels.cmake,
 * kernel_names.h), plus `ref`, the scalar reference layers (reference.h) behind the same
 * signatures, for checking (slow: the whole network runs on it, about 40-70x slower).
 *   avx512    -march=x86-64-v4: 16-lane kernels, AVX-512 intrinsics for exp and sigmoid
 *   avx2      -march=x86-64-v3: 8-lane blocks sized for 16 ymm registers, AVX2 intrinsics
 *   portable  -march=x86-64 (baseline SSE2), the generic vector code
 *   neon      aarch64: the generic vector code with the 8-lane blocks (32 q registers hold
 *             the same 16 8-float values as AVX2's 16 ymm)
 *   ref       the reference layers in double (reference.h), any CPU
 * Choice: LPM_ISA=ref|portable|avx2|avx512|neon forces one (an unknown value, or a set
 * this build or CPU lacks, is an error naming LPM_ISA, the value and what is offered);
 * otherwise the best the CPU runs: avx512 where it has x86-64-v4 (AVX-512F/BW/CD/DQ/VL),
 * avx2 where it has x86-64-v3 (AVX2, FMA, BMI2...), else portable; neon on aarch64. */
#ifndef LPM_KERNELS_H
#define LPM_KERNELS_H

#include "model.h"

typedef enum {
    LPM_ISA_REF,
    LPM_ISA_PORTABLE,
    LPM_ISA_AVX2,
    LPM_ISA_AVX512,
    LPM_ISA_NEON,
    LPM_ISA_COUNT
} lpm_isa;

typedef struct {
    lpm_isa isa;
    const char *name;   /* "avx512", the LPM_ISA value */
    const char *what;   /* one line for people */
    void (*conv_in_forward)(float *X, const float *a, const float *b, const float *w,
                            const float *bias, int64_t D, int64_t H, int64_t W);
    void (*conv_in_backward)(float *dw, float *dbias, const float *dX, const float *a,
                             const float *b, int64_t D, int64_t H, int64_t W);
    void (*dense_forward)(float *feat, const lpm_dense_params *p, int R, int Q);
    void (*dense_backward)(float *dfeat, lpm_dense_params *grad, const float *feat,
                           const lpm_dense_params *p, int R, int Q);
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *in,
                              const float *w, const float *b, int64_t n, int C);
    void (*layernorm_backward)(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *mean, const float *rstd,
                               const float *w, int64_t n, int C);
    size_t (*mamba_scratch_floats)(int L);
    void (*mamba_prepare)(const lpm_mamba_params *p, float *scratch);
    void (*mamba_forward)(float *out, const float *u, const lpm_mamba_params *p, int L,
                          float *scratch);
    void (*mamba_backward)(float *du, lpm_mamba_params *grad, const float *dout,
                           const float *u, const lpm_mamba_params *p, int L, float *scratch);
    size_t (*swin_scratch_floats)(void);
    void (*swin_mamba_forward)(float *out, const float *in, const lpm_mamba_params *p, int R,
                               int Q, int shift, float *scratch);
    void (*swin_mamba_backward)(float *din, lpm_mamba_params *grad, const float *dout,
                                const float *in, const lpm_mamba_params *p, int R, int Q,
                                int shift, float *scratch);
    void (*cfc_forward)(float *out, float *base, float *detail, const float *f,
                        const lpm_cfc_params *p, int64_t n);
    void (*cfc_backward)(float *df, lpm_cfc_params *grad, const float *dout,
                         const float *dbase, const float *ddetail, const float *f,
                         const lpm_cfc_params *p, int64_t n);
    lpm_net *(*net_create)(int64_t D, int64_t H, int64_t W, int mode);
    void (*net_free)(lpm_net *n);
    lpm_status (*net_forward)(lpm_net *n, const lpm_params *p, const float *a, const float *b,
                              int head, float *out, float *base, float *detail,
                              lpm_progress_fn progress, void *progress_ctx);
    lpm_status (*net_backward)(lpm_net *n, const lpm_params *p, lpm_params *grad,
                               const float *dout, const float *dbase, const float *ddetail);
    void (*recon_masks)(float *m1, float *m2, int64_t D, int64_t H, int64_t W, double rec,
                        lpm_rng *rng);
} lpm_kernels;

/* The table this process runs, chosen on the first call (thread-safe) and fixed after.
 * On a bad LPM_ISA: LPM_ERR_USAGE with the message recorded (lpm_last_error), *k NULL. */
lpm_status lpm_kernels_get(const lpm_kernels **k);
/* Why that table: "LPM_ISA=avx2" or the CPU features that chose it (after a successful
 * lpm_kernels_get). */
const char *lpm_kernels_reason(void);

/* Set isa's table where this build has it and this CPU runs it; NULL otherwise, with why
 * (when why is not NULL) saying which of the two. Any set can be used beside the chosen
 * one (tests/test_ops.c runs every set against ref), except that an lpm_net belongs to the
 * set that created it. */
const lpm_kernels *lpm_kernels_for(lpm_isa isa, char *why, size_t why_len);
/* "avx512" etc.; lpm_isa_parse: -1 for an unknown name. */
const char *lpm_isa_name(lpm_isa isa);
int lpm_isa_parse(const char *name);
/* The sets this process can run, best first, space-separated ("avx512 avx2 portable ref"). */
void lpm_isa_offered(char *buf, size_t n);

#endif
