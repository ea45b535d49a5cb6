/* Internals shared by the .cu files of the CUDA backend: error macros, the branch
 * geometry, and the device-level layers (every pointer a device pointer). */
#ifndef LPM_CUDA_IMPL_H
#define LPM_CUDA_IMPL_H

#include "cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

/* Every CUDA / cuBLAS call is checked; a failure becomes an lpm_status with the place. */
#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            return lpm_fail(LPM_ERR_INTERNAL, "cuda: %s at %s:%d", cudaGetErrorString(e_),    \
                            __FILE__, __LINE__);                                              \
    } while (0)
#define CKL() CK(cudaGetLastError())
#define CKB(call)                                                                             \
    do {                                                                                      \
        cublasStatus_t s_ = (call);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return lpm_fail(LPM_ERR_INTERNAL, "cublas: status %d at %s:%d", (int)s_,          \
                            __FILE__, __LINE__);                                              \
    } while (0)
#define TRY(call)                                     \
    do {                                              \
        lpm_status st_ = (call);                      \
        if (st_ != LPM_OK) return st_;                \
    } while (0)

enum {
    NC = LPM_C,                          /* 24 features */
    NCX = LPM_C_IN,                      /* 8 Conv_in outputs */
    NS = LPM_NSTATE,                     /* 8 scan states */
    NR = LPM_DTRANK,                     /* 2 */
    NK = LPM_DCONV,                      /* 4 */
    NXZ = 2 * LPM_C,                     /* in_proj rows: x | z */
    NDBC = LPM_DTRANK + 2 * LPM_NSTATE,  /* x_proj rows: dt | B | C */
    NCN = LPM_C * LPM_NSTATE,            /* 192 scan lanes of one sequence */
    NWIN = LPM_WIN,
    NTOK = LPM_WIN * LPM_WIN,            /* 256 tokens a window */
};

/* Branch k sees the (D,H,W) volume as nimg images of R x Q pixels; pixel (r, q) of image i
 * is voxel i*si + r*sr + q*sq (network.c's geom()). */
typedef struct {
    int64_t D, H, W, nvox;
    int k, R, Q;
    int64_t nimg, si, sr, sq;
} branch_geom;

branch_geom lpm_cuda_geom(int64_t D, int64_t H, int64_t W, int k);

/* Mamba internals for ntok = nseq * L tokens (token-major, like mamba.c's scratch). */
typedef struct {
    float *xz, *xpre, *xc, *dbc, *v, *delta, *y, *yg;           /* forward */
    float *hs, *gy, *dxc, *ddbc, *dxz, *dv, *dApart, *dDpart;   /* backward */
} mamba_dev;
size_t lpm_cuda_mamba_floats(int64_t nseq, int L, int training);
void lpm_cuda_mamba_carve(mamba_dev *m, float *base, int64_t nseq, int L, int training);

/* The Swin-Mamba backward's scratch for up to nwin windows at once (the fused forward needs
 * none). */
typedef struct {
    int64_t nwin;      /* capacity in windows */
    float *tok, *ln, *mean, *rstd, *seq, *dln, *dtok;
    mamba_dev m;
} swin_dev;
size_t lpm_cuda_swin_floats(int64_t nwin);
void lpm_cuda_swin_carve(swin_dev *s, float *base, int64_t nwin);

lpm_status lpm_cuda_blas(cublasHandle_t *h);

/* Device layers: same semantics as the CPU functions of the same name (model.h). */
lpm_status cu_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                              const float *bias, int64_t D, int64_t H, int64_t W);
lpm_status cu_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                               const float *b, int64_t D, int64_t H, int64_t W);
lpm_status cu_dense_forward(float *feat, const lpm_dense_params *p, const branch_geom *g);
lpm_status cu_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                             const lpm_dense_params *p, const branch_geom *g);
lpm_status cu_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                const float *w, const float *b, int64_t n);
lpm_status cu_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                 const float *in, const float *mean, const float *rstd,
                                 const float *w, int64_t n);
lpm_status cu_mamba_forward(float *out, const float *u, const lpm_mamba_params *p,
                            int64_t nseq, int L, mamba_dev *m);
lpm_status cu_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                             const float *u, const lpm_mamba_params *p, int64_t nseq, int L,
                             mamba_dev *m);
/* One Swin-Mamba layer over every image of a branch (in, out, din: (D,H,W,24) volumes); the
 * forward is one fused kernel and needs no scratch, the backward recomputes in chunks. */
lpm_status cu_swin_forward(float *out, const float *in, const lpm_mamba_params *p,
                           const branch_geom *g, int shift);
lpm_status cu_swin_backward(float *din, lpm_mamba_params *grad, const float *dout,
                            const float *in, const lpm_mamba_params *p, const branch_geom *g,
                            int shift, swin_dev *s);
lpm_status cu_cfc_forward(float *out, float *base, float *detail, const float *f,
                          const lpm_cfc_params *p, int64_t n);
/* scratch: 6 * n * 24 + 3 * nout * n floats. */
lpm_status cu_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout,
                           const float *dbase, const float *ddetail, const float *f,
                           const lpm_cfc_params *p, int64_t n, float *scratch);
/* Branch k's output into the running max M (and winner bits when bits != NULL). */
lpm_status cu_max_merge(float *M, unsigned char *bits, const float *out, int k, int64_t nvox);
/* gout = dM * share(bits, k) (max3.h). */
lpm_status cu_max_share(float *gout, const float *dM, const unsigned char *bits, int k,
                        int64_t nvox);
/* Copy X (nvox,8) into channels 16..23 of feat (nvox,24); dX += channels 16..23 of dfeat. */
lpm_status cu_put_input(float *feat, const float *X, int64_t nvox);
lpm_status cu_add_input_grad(float *dX, const float *dfeat, int64_t nvox);
lpm_status cu_adam(float *p, float *m, float *v, const float *g, int64_t n, float b1, float b2,
                   float c1, float c2, float wd, float step, float bc2s, float eps);

#endif
