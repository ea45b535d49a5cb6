/* LPM-Net layers on the CPU: one forward and one backward per layer kind (llm.c style).
 *
 * Layouts (channels innermost, so a voxel's or token's features are contiguous):
 *   full volume features  (D, H, W, C)   e.g. X = Conv_in output (C = 8), M = branch max (C = 24)
 *   one 2-D image         (R, Q, C)      rows R, cols Q, C = 24 (see the dense module)
 *   a token sequence      (L, C)         L = 256 for a 16x16 window
 *   network inputs/outputs are plain volumes (D, H, W); multi-channel outputs are planar
 *   (k, D, H, W) like PyTorch's (C, D, H, W) without the batch.
 * PyTorch weight layouts are used unchanged (the flat array holds the authors' tensors).
 *
 * Backward functions ACCUMULATE (+=) into parameter gradients and into input gradients
 * unless the comment says otherwise; callers zero what needs zeroing.
 */
#ifndef LPM_MODEL_H
#define LPM_MODEL_H

#include "../core/core.h"
#include "kernel_names.h"   /* per-instruction-set symbol names (kernel builds only) */

enum { LPM_C_IN = 8, LPM_C = 24, LPM_NSTATE = 8, LPM_DTRANK = 2, LPM_DCONV = 4, LPM_WIN = 16 };

typedef struct {
    float *norm_w, *norm_b;   /* (24), (24)            LayerNorm */
    float *A_log;             /* (24, 8) */
    float *D;                 /* (24) */
    float *in_proj;           /* (48, 24)  rows 0..23 -> x, 24..47 -> z */
    float *conv_w;            /* (24, 1, 4) */
    float *conv_b;            /* (24) */
    float *x_proj;            /* (18, 24)  rows 0..1 dt, 2..9 B, 10..17 C */
    float *dt_proj_w;         /* (24, 2) */
    float *dt_proj_b;         /* (24) */
    float *out_proj;          /* (24, 24) */
} lpm_mamba_params;

typedef struct {
    float *w[2];              /* (8, 8, 3, 3), (8, 16, 3, 3) */
    float *b[2];              /* (8), (8) */
} lpm_dense_params;

typedef struct {
    float *ff1, *ff2, *time_a, *time_b;   /* (24, 24) each (PyTorch (24,24,1,1,1)) */
    float *fc_w;                          /* (nout, 24) */
    float *fc_b;                          /* (nout) */
    int nout;                             /* 1 for cfc, 2 for cfc_mask */
} lpm_cfc_params;

/* Named pointers into one flat array of LPM_NUM_PARAMS floats (weights, gradients or
 * Adam moments: all share the layout of lpm_tensor_table()). conv_in_w is the first tensor,
 * so it is also the start of the flat array. */
typedef struct {
    float *conv_in_w;         /* (8, 2, 3, 3, 3) */
    float *conv_in_b;         /* (8) */
    lpm_dense_params dense[3];        /* Conv_P1..3 */
    lpm_mamba_params mamba[3][2];     /* Mamba_P1..3, layers 0 (shift 0) and 1 (shift 8) */
    lpm_cfc_params cfc;               /* fusion head, nout 1 */
    lpm_cfc_params cfc_mask;          /* reconstruction head, nout 2 */
} lpm_params;

void lpm_params_bind(lpm_params *p, float *flat);

/* ---- Conv_in: Conv3d 2 -> 8, 3x3x3, zero padding 1 (conv.c)
 * X (D,H,W,8); a, b (D,H,W); w (8,2,3,3,3); bias (8). */
void lpm_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                         const float *bias, int64_t D, int64_t H, int64_t W);
/* dw, dbias += ; no input gradient (the inputs are data). */
void lpm_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                          const float *b, int64_t D, int64_t H, int64_t W);

/* ---- Dense module: two Conv2d 3x3 + LeakyReLU(0.01), new features first (dense.c)
 * feat (R,Q,24): on entry channels 16..23 hold the input image; forward writes
 * y0 = lrelu(conv0(in)) to channels 8..15 and y1 = lrelu(conv1([y0, in])) to 0..7,
 * so feat ends as [y1, y0, in] with no copies. */
void lpm_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q);
/* dfeat (R,Q,24): on entry the gradient w.r.t. the 24-channel output; on return its
 * channels 16..23 hold the whole gradient w.r.t. the input image (channels 0..15 are
 * clobbered). feat is the forward's output. grad += . */
void lpm_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                        const lpm_dense_params *p, int R, int Q);

/* ---- LayerNorm over C channels, eps 1e-5 (layernorm.c)
 * in/out (n, C); mean, rstd (n) are saved for backward (may be NULL in forward). */
void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *w, const float *b, int64_t n, int C);
void lpm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C);

/* ---- Mamba block on one sequence (mamba.c): u, out (L, 24); state starts at 0.
 * scratch: lpm_mamba_scratch_floats(L) floats, private to the caller's thread, where
 * lpm_mamba_prepare puts the weights in the kernels' layouts: call it before forward and
 * backward, once for any number of sequences, and again whenever p changes. */
size_t lpm_mamba_scratch_floats(int L);
void lpm_mamba_prepare(const lpm_mamba_params *p, float *scratch);
void lpm_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L,
                       float *scratch);
/* Recomputes the forward internals from u; du += , grad += . */
void lpm_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                        const float *u, const lpm_mamba_params *p, int L, float *scratch);

/* ---- Swin-Mamba layer on one image (window.c): cyclic shift by `shift`, 16x16 windows
 * of 256 row-major tokens, LayerNorm, Mamba, windows back, shift undone; no residual.
 * in, out (R,Q,24), distinct; R, Q multiples of 16. Token t = 16 i + j of window
 * (wr, wq) is pixel ((16 wr + i + shift) mod R, (16 wq + j + shift) mod Q).
 * scratch: lpm_swin_scratch_floats() floats, private to the caller's thread. */
size_t lpm_swin_scratch_floats(void);
void lpm_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p,
                            int R, int Q, int shift, float *scratch);
/* din += , grad += ; recomputes every window's internals. */
void lpm_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                             const float *in, const lpm_mamba_params *p, int R, int Q,
                             int shift, float *scratch);

/* ---- CfC head, per voxel (cfc.c): f (n, 24). Outputs are planar (nout, n), already
 * mapped through tanh(.)/2 + 0.5. base, detail may be NULL. */
void lpm_cfc_forward(float *out, float *base, float *detail, const float *f,
                     const lpm_cfc_params *p, int64_t n);
/* Gradients w.r.t. the mapped outputs (planar, like forward; dbase/ddetail may be NULL).
 * df += , grad += . Recomputes the head's internals from f. */
void lpm_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout, const float *dbase,
                      const float *ddetail, const float *f, const lpm_cfc_params *p, int64_t n);

/* ---- The whole network (network.c) on inputs already in [0,1] with D, H, W multiples
 * of 16. An lpm_net holds the full-volume buffers for one size (X, M, and for training
 * the winner bits and gradients) plus per-thread scratch. */
typedef struct lpm_net lpm_net;
/* mode: LPM_NET_INFER, or LPM_NET_TRAIN, whose forward keeps every image's trunk (the
 * dense output and the first Swin-Mamba layer's, 3 x 48 floats a voxel) for the backward
 * where that takes at most LPM_NET_KEEP_MAX bytes, and recomputes it there otherwise; or
 * LPM_NET_TRAIN_RECOMPUTE, which always recomputes. Both training modes give the same
 * numbers, bit for bit. */
enum { LPM_NET_INFER, LPM_NET_TRAIN, LPM_NET_TRAIN_RECOMPUTE };
#define LPM_NET_KEEP_MAX ((size_t)2 << 30)
lpm_net *lpm_net_create(int64_t D, int64_t H, int64_t W, int mode);
void lpm_net_free(lpm_net *n);

/* Forward through Conv_in, the three branches, max fusion and one head:
 * head 0 = cfc (out (1,D,H,W), base and detail may be NULL),
 * head 1 = cfc_mask (out (2,D,H,W), base and detail must be NULL).
 * In a training net the state for lpm_net_backward is kept, and a and b must stay valid
 * until lpm_net_backward (Conv_in's backward reads them). */
lpm_status lpm_net_forward(lpm_net *n, const lpm_params *p, const float *a, const float *b,
                           int head, float *out, float *base, float *detail,
                           lpm_progress_fn progress, void *progress_ctx);
/* Backward of the last lpm_net_forward (training nets only): gradients w.r.t. that
 * call's outputs in, parameter gradients accumulated into grad. */
lpm_status lpm_net_backward(lpm_net *n, const lpm_params *p, lpm_params *grad,
                            const float *dout, const float *dbase, const float *ddetail);

/* Reconstruction masks: for each 8x8x8 block of a (D,H,W) volume keep it (1) where
 * uniform(0,1) > rec, else 0; m1 for A then m2 for B, blocks in C order. */
void lpm_recon_masks(float *m1, float *m2, int64_t D, int64_t H, int64_t W, double rec,
                     lpm_rng *rng);

#endif
