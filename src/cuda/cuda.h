/* LPM-Net on an NVIDIA GPU (the .cu files in src/cuda), mirroring src/model and src/train.
 *
 * Built when CMake finds nvcc (cmake/cuda.cmake defines LPM_HAVE_CUDA); otherwise
 * cuda_stub.c implements the same functions, which fail with "lpmnet was built without
 * CUDA". Layouts are the CPU's (model.h): features channels-innermost (D,H,W,C), outputs
 * planar (k,D,H,W), parameters one flat array in lpm_tensor_table() order, so a device
 * copy of lpm_weights.data binds with lpm_params_bind exactly like the host one.
 *
 * Not thread-safe: one host thread drives the GPU (one cuBLAS handle, the default stream).
 */
#ifndef LPM_CUDA_H
#define LPM_CUDA_H

/* The project headers are C: from the .cu files (C++) they must get C linkage. System
 * headers come first, outside the block, so their include guards keep them out of it. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../model/model.h"
#include "../train/train.h"


/* Exactly lpm_fuse (normalise, pad to 16, network, crop) with the network on the GPU. */
lpm_status lpm_fuse_cuda(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                         lpm_volume *fused, lpm_volume *base, lpm_volume *detail);

/* ---- device memory (bytes); errors are LPM_ERR_INTERNAL with CUDA's message */
lpm_status lpm_cuda_malloc(void **p, size_t bytes);
void lpm_cuda_free(void *p);
lpm_status lpm_cuda_upload(void *dev, const void *host, size_t bytes);
lpm_status lpm_cuda_download(void *host, const void *dev, size_t bytes);
/* Peak of (total - free) device memory seen by lpm_cuda_mem_sample since the last reset. */
void lpm_cuda_mem_reset(void);
size_t lpm_cuda_mem_sample(void);

/* ---- the network on device buffers (mirrors lpm_net). params and grad are device copies
 * of the flat LPM_NUM_PARAMS array; a, b, out, base, detail and the gradients are device
 * arrays with the CPU layouts. Backward accumulates (+=) into grad. */
typedef struct lpm_cuda_net lpm_cuda_net;
lpm_cuda_net *lpm_cuda_net_create(int64_t D, int64_t H, int64_t W, int training);
void lpm_cuda_net_free(lpm_cuda_net *n);
lpm_status lpm_cuda_net_forward(lpm_cuda_net *n, const float *params, const float *a,
                                const float *b, int head, float *out, float *base,
                                float *detail);
lpm_status lpm_cuda_net_backward(lpm_cuda_net *n, const float *params, float *grad,
                                 const float *dout, const float *dbase, const float *ddetail);

/* ---- training (mirrors lpm_train_step; the loss runs on the host with src/train/loss.c,
 * everything else on the GPU). Weights and Adam state live on the device. */
typedef struct lpm_cuda_trainer lpm_cuda_trainer;
lpm_cuda_trainer *lpm_cuda_trainer_create(int64_t D, int64_t H, int64_t W);
void lpm_cuda_trainer_free(lpm_cuda_trainer *t);
/* Upload weights (LPM_NUM_PARAMS floats) and Adam state (m, v NULL: zeros; t steps taken). */
lpm_status lpm_cuda_trainer_set(lpm_cuda_trainer *t, const float *w, const float *adam_m,
                                const float *adam_v, int64_t adam_t);
/* Download them (any pointer may be NULL). */
lpm_status lpm_cuda_trainer_get(lpm_cuda_trainer *t, float *w, float *adam_m, float *adam_v,
                                int64_t *adam_t);
/* One step on host volumes a, b (D,H,W) in [0,1], same arguments as lpm_train_step. */
lpm_status lpm_cuda_train_step(lpm_cuda_trainer *t, const float *a, const float *b,
                               const float *m1, const float *m2, lpm_rng *rng, double rec,
                               const lpm_loss_weights *lw, double lr, lpm_loss_terms *terms);

/* The trainer above as the training loop's device (lpm_train_config.device). */
const lpm_train_device *lpm_cuda_train_device(void);

/* ---- per-op entry points for tests: host in, host out. Weights are the full flat host
 * array w (LPM_NUM_PARAMS); the op picks its tensors like the CPU code does (branch k,
 * layer l, head); parameter gradients are ADDED into the flat host array grad. */
lpm_status lpm_cuda_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                                    int64_t D, int64_t H, int64_t W);
lpm_status lpm_cuda_conv_in_backward(float *grad, const float *dX, const float *a,
                                     const float *b, int64_t D, int64_t H, int64_t W);
/* feat, dfeat (R,Q,24) as lpm_dense_forward / lpm_dense_backward. */
lpm_status lpm_cuda_dense_forward(float *feat, const float *w, int k, int R, int Q);
lpm_status lpm_cuda_dense_backward(float *dfeat, float *grad, const float *feat,
                                   const float *w, int k, int R, int Q);
/* n rows of 24 channels, LayerNorm of Mamba_P{k+1}.layers.l; din += . */
lpm_status lpm_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                      const float *w, int k, int l, int64_t n);
lpm_status lpm_cuda_layernorm_backward(float *din, float *grad, const float *dout,
                                       const float *in, const float *mean, const float *rstd,
                                       const float *w, int k, int l, int64_t n);
/* nseq independent sequences of L tokens each, (nseq, L, 24); du += . */
lpm_status lpm_cuda_mamba_forward(float *out, const float *u, const float *w, int k, int l,
                                  int nseq, int L);
lpm_status lpm_cuda_mamba_backward(float *du, float *grad, const float *dout, const float *u,
                                   const float *w, int k, int l, int nseq, int L);
/* One (R,Q,24) image, as lpm_swin_mamba_forward / _backward; din += . */
lpm_status lpm_cuda_swin_mamba_forward(float *out, const float *in, const float *w, int k,
                                       int l, int R, int Q, int shift);
lpm_status lpm_cuda_swin_mamba_backward(float *din, float *grad, const float *dout,
                                        const float *in, const float *w, int k, int l, int R,
                                        int Q, int shift);
/* head 0 = cfc, 1 = cfc_mask; f (n,24); outputs planar (nout,n); df += . */
lpm_status lpm_cuda_cfc_forward(float *out, float *base, float *detail, const float *f,
                                const float *w, int head, int64_t n);
lpm_status lpm_cuda_cfc_backward(float *df, float *grad, const float *dout, const float *dbase,
                                 const float *ddetail, const float *f, const float *w,
                                 int head, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
