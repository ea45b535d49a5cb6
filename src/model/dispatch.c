/* The dispatch table (kernels.h): each kernel set's table, the choice made once per process
 * (LPM_ISA or the CPU's features), and model.h's layer and network functions, each a call
 * through the chosen table. */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sets this build compiles (cmake/kernels.cmake builds the same list). */
#if defined(__x86_64__)
#define LPM_HAVE_AVX512 1
#define LPM_HAVE_AVX2 1
#define LPM_HAVE_PORTABLE 1
#elif defined(__aarch64__)
#define LPM_HAVE_NEON 1
#else
#define LPM_HAVE_PORTABLE 1
#endif

/* extern declarations of one set's functions, typed from the table's fields */
#define LPM_DECLARE_ONE(field, set) extern __typeof__(*((lpm_kernels *)0)->field) lpm_##field##_##set;
#define LPM_DECLARE_SET(set)                                                                \
    LPM_DECLARE_ONE(conv_in_forward, set) LPM_DECLARE_ONE(conv_in_backward, set)            \
    LPM_DECLARE_ONE(dense_forward, set) LPM_DECLARE_ONE(dense_backward, set)                \
    LPM_DECLARE_ONE(layernorm_forward, set) LPM_DECLARE_ONE(layernorm_backward, set)        \
    LPM_DECLARE_ONE(mamba_scratch_floats, set) LPM_DECLARE_ONE(mamba_prepare, set)          \
    LPM_DECLARE_ONE(mamba_forward, set) LPM_DECLARE_ONE(mamba_backward, set)                \
    LPM_DECLARE_ONE(swin_scratch_floats, set) LPM_DECLARE_ONE(swin_mamba_forward, set)      \
    LPM_DECLARE_ONE(swin_mamba_backward, set) LPM_DECLARE_ONE(cfc_forward, set)             \
    LPM_DECLARE_ONE(cfc_backward, set) LPM_DECLARE_ONE(net_create, set)                     \
    LPM_DECLARE_ONE(net_free, set) LPM_DECLARE_ONE(net_forward, set)                        \
    LPM_DECLARE_ONE(net_backward, set) LPM_DECLARE_ONE(recon_masks, set)
#define LPM_TABLE(set, isa, what)                                                           \
    {isa, #set, what,                                                                       \
     lpm_conv_in_forward_##set, lpm_conv_in_backward_##set, lpm_dense_forward_##set,        \
     lpm_dense_backward_##set, lpm_layernorm_forward_##set, lpm_layernorm_backward_##set,  \
     lpm_mamba_scratch_floats_##set, lpm_mamba_prepare_##set, lpm_mamba_forward_##set,      \
     lpm_mamba_backward_##set, lpm_swin_scratch_floats_##set, lpm_swin_mamba_forward_##set, \
     lpm_swin_mamba_backward_##set, lpm_cfc_forward_##set, lpm_cfc_backward_##set,          \
     lpm_net_create_##set, lpm_net_free_##set, lpm_net_forward_##set,                       \
     lpm_net_backward_##set, lpm_recon_masks_##set}

LPM_DECLARE_SET(ref)
static const lpm_kernels table_ref =
    LPM_TABLE(ref, LPM_ISA_REF, "ref: the scalar reference layers in double (reference.h), for checking; slow");
#ifdef LPM_HAVE_PORTABLE
LPM_DECLARE_SET(portable)
#if defined(__x86_64__)
#define LPM_PORTABLE_WHAT "portable: baseline x86-64 (SSE2), the generic vector code"
#else
#define LPM_PORTABLE_WHAT "portable: the compiler's generic vector code for this architecture"
#endif
static const lpm_kernels table_portable = LPM_TABLE(portable, LPM_ISA_PORTABLE, LPM_PORTABLE_WHAT);
#endif
#ifdef LPM_HAVE_AVX2
LPM_DECLARE_SET(avx2)
static const lpm_kernels table_avx2 =
    LPM_TABLE(avx2, LPM_ISA_AVX2, "avx2: 8-lane kernels (x86-64-v3: AVX2, FMA)");
#endif
#ifdef LPM_HAVE_AVX512
LPM_DECLARE_SET(avx512)
static const lpm_kernels table_avx512 =
    LPM_TABLE(avx512, LPM_ISA_AVX512, "avx512: 16-lane kernels (x86-64-v4: AVX-512F/BW/CD/DQ/VL)");
#endif
#ifdef LPM_HAVE_NEON
LPM_DECLARE_SET(neon)
static const lpm_kernels table_neon =
    LPM_TABLE(neon, LPM_ISA_NEON, "neon: aarch64 Advanced SIMD, 8-lane blocks for 32 q registers");
#endif

static const char *const isa_names[LPM_ISA_COUNT] = {"ref", "portable", "avx2", "avx512", "neon"};

const char *lpm_isa_name(lpm_isa isa) {
    return (unsigned)isa < LPM_ISA_COUNT ? isa_names[isa] : "?";
}

int lpm_isa_parse(const char *name) {
    for (int i = 0; i < LPM_ISA_COUNT; i++)
        if (!strcmp(name, isa_names[i])) return i;
    return -1;
}

/* Whether this CPU runs isa's set (the set built), else why not. x86-64-v4 and -v3 are the
 * tests GCC's own function multiversioning makes (AVX-512F alone, without BW/DQ/VL, does
 * not count as x86-64-v4). */
static int cpu_runs(lpm_isa isa, char *why, size_t n) {
    switch (isa) {
    case LPM_ISA_REF:
        return 1;
#if defined(__x86_64__)
    case LPM_ISA_PORTABLE:
        return 1;
    case LPM_ISA_AVX2:
        if (__builtin_cpu_supports("x86-64-v3")) return 1;
        snprintf(why, n, "this CPU lacks x86-64-v3 (AVX2, FMA, BMI2)");
        return 0;
    case LPM_ISA_AVX512:
        if (__builtin_cpu_supports("x86-64-v4")) return 1;
        snprintf(why, n, "this CPU lacks x86-64-v4 (AVX-512F/BW/CD/DQ/VL)");
        return 0;
    case LPM_ISA_NEON:
        snprintf(why, n, "neon is for aarch64 and this is an x86-64 build");
        return 0;
    default:
        break;
#elif defined(__aarch64__)
    case LPM_ISA_NEON:
        return 1;
    default:
        snprintf(why, n, "%s is for x86-64 and this is an aarch64 build", lpm_isa_name(isa));
        return 0;
#else
    case LPM_ISA_PORTABLE:
        return 1;
    default:
        snprintf(why, n, "this build has no %s kernels (not x86-64 or aarch64)", lpm_isa_name(isa));
        return 0;
#endif
    }
    snprintf(why, n, "no such set");
    return 0;
}

static const lpm_kernels *built_table(lpm_isa isa) {
    switch (isa) {
    case LPM_ISA_REF: return &table_ref;
#ifdef LPM_HAVE_PORTABLE
    case LPM_ISA_PORTABLE: return &table_portable;
#endif
#ifdef LPM_HAVE_AVX2
    case LPM_ISA_AVX2: return &table_avx2;
#endif
#ifdef LPM_HAVE_AVX512
    case LPM_ISA_AVX512: return &table_avx512;
#endif
#ifdef LPM_HAVE_NEON
    case LPM_ISA_NEON: return &table_neon;
#endif
    default: return NULL;
    }
}

const lpm_kernels *lpm_kernels_for(lpm_isa isa, char *why, size_t why_len) {
    char tmp[160];
    if (!why) why = tmp, why_len = sizeof tmp;
    if (!cpu_runs(isa, why, why_len)) return NULL;
    const lpm_kernels *k = built_table(isa);
    if (!k) snprintf(why, why_len, "this build has no %s kernels", lpm_isa_name(isa));
    return k;
}

/* best first; ref last */
static const lpm_isa preference[] = {LPM_ISA_AVX512, LPM_ISA_AVX2, LPM_ISA_NEON,
                                     LPM_ISA_PORTABLE, LPM_ISA_REF};

void lpm_isa_offered(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++) {
        if (!lpm_kernels_for(preference[i], NULL, 0)) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? " " : "", lpm_isa_name(preference[i]));
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
}

/* ---- the choice, made once */
static pthread_once_t choice_once = PTHREAD_ONCE_INIT;
static const lpm_kernels *chosen;
static char choice_reason[400];
static char choice_error[400];

static void choose(void) {
    char offered[96], why[160];
    lpm_isa_offered(offered, sizeof offered);
    const char *env = getenv("LPM_ISA");
    if (env && *env) {
        const int isa = lpm_isa_parse(env);
        if (isa < 0) {
            snprintf(choice_error, sizeof choice_error,
                     "LPM_ISA=%s: unknown kernel set (one of ref, portable, avx2, avx512, neon; "
                     "this CPU offers: %s)", env, offered);
            return;
        }
        chosen = lpm_kernels_for((lpm_isa)isa, why, sizeof why);
        if (!chosen) {
            snprintf(choice_error, sizeof choice_error,
                     "LPM_ISA=%s: not available: %s (this CPU offers: %s)", env, why, offered);
            return;
        }
        snprintf(choice_reason, sizeof choice_reason, "LPM_ISA=%s", env);
        return;
    }
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if ((chosen = lpm_kernels_for(preference[i], NULL, 0))) break;
    const char *by = "the only set this build has for this architecture";
    switch (chosen->isa) {
    case LPM_ISA_AVX512: by = "the CPU has x86-64-v4 (AVX-512F/BW/CD/DQ/VL)"; break;
    case LPM_ISA_AVX2: by = "the CPU has x86-64-v3 (AVX2, FMA) but not x86-64-v4"; break;
    case LPM_ISA_PORTABLE: by = "the CPU has neither x86-64-v3 nor x86-64-v4"; break;
    case LPM_ISA_NEON: by = "aarch64 (Advanced SIMD is part of the architecture)"; break;
    default: break;
    }
    snprintf(choice_reason, sizeof choice_reason, "the CPU's features: %s (LPM_ISA overrides)", by);
}

lpm_status lpm_kernels_get(const lpm_kernels **k) {
    pthread_once(&choice_once, choose);
    *k = chosen;
    if (!chosen) return lpm_fail(LPM_ERR_USAGE, "%s", choice_error);
    return LPM_OK;
}

const char *lpm_kernels_reason(void) {
    pthread_once(&choice_once, choose);
    return chosen ? choice_reason : choice_error;
}

/* The chosen table for the functions that cannot report an error: a bad LPM_ISA ends the
 * process with its message (lpm_net_create, which the tool calls first, reports it). */
static const lpm_kernels *kernels(void) {
    const lpm_kernels *k;
    if (lpm_kernels_get(&k) != LPM_OK) {
        fprintf(stderr, "lpmnet: %s\n", lpm_last_error());
        exit(LPM_ERR_USAGE);
    }
    return k;
}

/* ---- model.h's functions through the table */

void lpm_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                         const float *bias, int64_t D, int64_t H, int64_t W) {
    kernels()->conv_in_forward(X, a, b, w, bias, D, H, W);
}
void lpm_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                          const float *b, int64_t D, int64_t H, int64_t W) {
    kernels()->conv_in_backward(dw, dbias, dX, a, b, D, H, W);
}
void lpm_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q) {
    kernels()->dense_forward(feat, p, R, Q);
}
void lpm_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                        const lpm_dense_params *p, int R, int Q) {
    kernels()->dense_backward(dfeat, grad, feat, p, R, Q);
}
void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *w, const float *b, int64_t n, int C) {
    kernels()->layernorm_forward(out, mean, rstd, in, w, b, n, C);
}
void lpm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C) {
    kernels()->layernorm_backward(din, dw, db, dout, in, mean, rstd, w, n, C);
}
size_t lpm_mamba_scratch_floats(int L) { return kernels()->mamba_scratch_floats(L); }
void lpm_mamba_prepare(const lpm_mamba_params *p, float *scratch) {
    kernels()->mamba_prepare(p, scratch);
}
void lpm_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L,
                       float *scratch) {
    kernels()->mamba_forward(out, u, p, L, scratch);
}
void lpm_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                        const float *u, const lpm_mamba_params *p, int L, float *scratch) {
    kernels()->mamba_backward(du, grad, dout, u, p, L, scratch);
}
size_t lpm_swin_scratch_floats(void) { return kernels()->swin_scratch_floats(); }
void lpm_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p, int R,
                            int Q, int shift, float *scratch) {
    kernels()->swin_mamba_forward(out, in, p, R, Q, shift, scratch);
}
void lpm_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                             const float *in, const lpm_mamba_params *p, int R, int Q,
                             int shift, float *scratch) {
    kernels()->swin_mamba_backward(din, grad, dout, in, p, R, Q, shift, scratch);
}
void lpm_cfc_forward(float *out, float *base, float *detail, const float *f,
                     const lpm_cfc_params *p, int64_t n) {
    kernels()->cfc_forward(out, base, detail, f, p, n);
}
void lpm_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout, const float *dbase,
                      const float *ddetail, const float *f, const lpm_cfc_params *p, int64_t n) {
    kernels()->cfc_backward(df, grad, dout, dbase, ddetail, f, p, n);
}
lpm_net *lpm_net_create(int64_t D, int64_t H, int64_t W, int mode) {
    const lpm_kernels *k;
    if (lpm_kernels_get(&k) != LPM_OK) return NULL;
    return k->net_create(D, H, W, mode);
}
void lpm_net_free(lpm_net *n) {
    if (n) kernels()->net_free(n);
}
lpm_status lpm_net_forward(lpm_net *n, const lpm_params *p, const float *a, const float *b,
                           int head, float *out, float *base, float *detail,
                           lpm_progress_fn progress, void *progress_ctx) {
    return kernels()->net_forward(n, p, a, b, head, out, base, detail, progress, progress_ctx);
}
lpm_status lpm_net_backward(lpm_net *n, const lpm_params *p, lpm_params *grad,
                            const float *dout, const float *dbase, const float *ddetail) {
    return kernels()->net_backward(n, p, grad, dout, dbase, ddetail);
}
void lpm_recon_masks(float *m1, float *m2, int64_t D, int64_t H, int64_t W, double rec,
                     lpm_rng *rng) {
    kernels()->recon_masks(m1, m2, D, H, W, rec, rng);
}
