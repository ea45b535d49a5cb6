/* The CUDA backend's API when lpmnet is built without CUDA: every entry point fails with
 * the same clear message, so callers need no #ifdef. */
#ifndef LPM_HAVE_CUDA
#include "cuda.h"

#include <stdio.h>

#define NO_CUDA "lpmnet was built without CUDA (`make cuda` builds build-cuda/lpmnet with it)"

static lpm_status no_cuda(void) { return lpm_fail(LPM_ERR_USAGE, NO_CUDA); }

int lpm_cuda_available(char *why, size_t n) {
    if (why && n) snprintf(why, n, "%s", NO_CUDA);
    return 0;
}

lpm_status lpm_fuse_cuda(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                         lpm_volume *fused, lpm_volume *base, lpm_volume *detail) {
    return no_cuda();
}

lpm_status lpm_cuda_malloc(void **p, size_t bytes) {
    *p = NULL;
    return no_cuda();
}
void lpm_cuda_free(void *p) {}
lpm_status lpm_cuda_upload(void *dev, const void *host, size_t bytes) { return no_cuda(); }
lpm_status lpm_cuda_download(void *host, const void *dev, size_t bytes) { return no_cuda(); }
void lpm_cuda_mem_reset(void) {}
size_t lpm_cuda_mem_sample(void) { return 0; }

lpm_cuda_net *lpm_cuda_net_create(int64_t D, int64_t H, int64_t W, int training) {
    no_cuda();
    return NULL;
}
void lpm_cuda_net_free(lpm_cuda_net *n) {}
lpm_status lpm_cuda_net_forward(lpm_cuda_net *n, const float *params, const float *a,
                                const float *b, int head, float *out, float *base,
                                float *detail) {
    return no_cuda();
}
lpm_status lpm_cuda_net_backward(lpm_cuda_net *n, const float *params, float *grad,
                                 const float *dout, const float *dbase, const float *ddetail) {
    return no_cuda();
}

lpm_cuda_trainer *lpm_cuda_trainer_create(int64_t D, int64_t H, int64_t W) {
    no_cuda();
    return NULL;
}
void lpm_cuda_trainer_free(lpm_cuda_trainer *t) {}
lpm_status lpm_cuda_trainer_set(lpm_cuda_trainer *t, const float *w, const float *adam_m,
                                const float *adam_v, int64_t adam_t) {
    return no_cuda();
}
lpm_status lpm_cuda_trainer_get(lpm_cuda_trainer *t, float *w, float *adam_m, float *adam_v,
                                int64_t *adam_t) {
    return no_cuda();
}
lpm_status lpm_cuda_train_step(lpm_cuda_trainer *t, const float *a, const float *b,
                               const float *m1, const float *m2, lpm_rng *rng, double rec,
                               const lpm_loss_weights *lw, double lr, lpm_loss_terms *terms) {
    return no_cuda();
}

lpm_status lpm_cuda_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                                    int64_t D, int64_t H, int64_t W) {
    return no_cuda();
}
lpm_status lpm_cuda_conv_in_backward(float *grad, const float *dX, const float *a,
                                     const float *b, int64_t D, int64_t H, int64_t W) {
    return no_cuda();
}
lpm_status lpm_cuda_dense_forward(float *feat, const float *w, int k, int R, int Q) {
    return no_cuda();
}
lpm_status lpm_cuda_dense_backward(float *dfeat, float *grad, const float *feat,
                                   const float *w, int k, int R, int Q) {
    return no_cuda();
}
lpm_status lpm_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                      const float *w, int k, int l, int64_t n) {
    return no_cuda();
}
lpm_status lpm_cuda_layernorm_backward(float *din, float *grad, const float *dout,
                                       const float *in, const float *mean, const float *rstd,
                                       const float *w, int k, int l, int64_t n) {
    return no_cuda();
}
lpm_status lpm_cuda_mamba_forward(float *out, const float *u, const float *w, int k, int l,
                                  int nseq, int L) {
    return no_cuda();
}
lpm_status lpm_cuda_mamba_backward(float *du, float *grad, const float *dout, const float *u,
                                   const float *w, int k, int l, int nseq, int L) {
    return no_cuda();
}
lpm_status lpm_cuda_swin_mamba_forward(float *out, const float *in, const float *w, int k,
                                       int l, int R, int Q, int shift) {
    return no_cuda();
}
lpm_status lpm_cuda_swin_mamba_backward(float *din, float *grad, const float *dout,
                                        const float *in, const float *w, int k, int l, int R,
                                        int Q, int shift) {
    return no_cuda();
}
lpm_status lpm_cuda_cfc_forward(float *out, float *base, float *detail, const float *f,
                                const float *w, int head, int64_t n) {
    return no_cuda();
}
lpm_status lpm_cuda_cfc_backward(float *df, float *grad, const float *dout, const float *dbase,
                                 const float *ddetail, const float *f, const float *w,
                                 int head, int64_t n) {
    return no_cuda();
}
#else
/* ISO C forbids an empty translation unit */
typedef int lpm_cuda_stub_unused;
#endif
