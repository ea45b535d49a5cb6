/* LPM-Net's layers in plain C: the specification of what each layer computes.
 *
 * Start reading here. The fast kernels (conv.c, dense.c, layernorm.c, mamba.c, window.c,
 * max3.h, cfc.c) are blocked, vectorised and reordered for speed, and cannot be read as a
 * statement of the maths. These functions are: one straightforward loop nest per step,
 * scalar C, with the PyTorch expression of reference/lpmnet_ref.py beside each step, and
 * the backward of each layer written out beside its forward.
 *
 * Conventions, the same as model.h so that a fast kernel and its reference can be run on
 * the same arrays and compared value by value (tests/test_ops.c does, at odd sizes):
 *   - the same memory layouts (channels innermost: volumes (D,H,W,C), images (R,Q,C),
 *     token sequences (L,C); PyTorch's weight layouts unchanged) and parameter structs;
 *   - backward functions ACCUMULATE (+=) into every gradient they are given;
 *   - float arrays in and out, every sum and intermediate value in double, rounded to
 *     float only at a layer's output (and where the layout itself stores one in a float
 *     array: the dense module's y0 and its gradient, in feat/dfeat), so a fast kernel's
 *     NMSE against these is its own rounding error. The Mamba block's parts, the window
 *     permutations and the _f64 layers work on double activations throughout.
 * Functions that need working memory allocate it and return LPM_ERR_INTERNAL, with the
 * message recorded, when that fails; they take no scratch argument.
 *
 * Speed is not a goal: a 256-token Mamba layer here takes ~40x (forward) and ~70x
 * (backward) mamba.c's time. Use these in tests and to read, never in the network. */
#ifndef LPM_REFERENCE_H
#define LPM_REFERENCE_H

#include "model.h"

#include <stddef.h>

/* ---- Conv_in (ref_layers.c): nn.Conv3d(2, 8, 3, padding=1) on torch.stack([a, b]).
 * X (D,H,W,8); a, b (D,H,W); w (8,2,3,3,3); bias (8). The backward has no input
 * gradient: the inputs are data. */
void lpm_ref_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                             const float *bias, int64_t D, int64_t H, int64_t W);
void lpm_ref_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                              const float *b, int64_t D, int64_t H, int64_t W);

/* ---- Dense module (ref_layers.c): two Conv2d 3x3 (padding 1) + LeakyReLU(0.01) layers,
 * new features first. feat (R,Q,24): on entry channels 16..23 hold the input image; the
 * forward writes y0 to channels 8..15 and y1 to 0..7 (feat = [y1, y0, in]).
 * Backward: dfeat holds the gradient w.r.t. all 24 output channels; on return channels
 * 16..23 hold the whole gradient w.r.t. the input image (0..15 are clobbered). */
void lpm_ref_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q);
void lpm_ref_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                            const lpm_dense_params *p, int R, int Q);

/* ---- LayerNorm over C channels, eps 1e-5, biased variance (ref_layers.c).
 * in/out (n, C); mean, rstd (n) saved for the backward (either may be NULL in forward). */
lpm_status lpm_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                     const float *w, const float *b, int64_t n, int C);
lpm_status lpm_ref_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                      const float *in, const float *mean, const float *rstd,
                                      const float *w, int64_t n, int C);
/* the same on double activations (float parameters and parameter gradients) */
void lpm_ref_layernorm_forward_f64(double *out, double *mean, double *rstd, const double *in,
                                   const float *w, const float *b, int64_t n, int C);
void lpm_ref_layernorm_backward_f64(double *din, float *dw, float *db, const double *dout,
                                    const double *in, const double *mean, const double *rstd,
                                    const float *w, int64_t n, int C);

/* ---- The Mamba block's parts (ref_mamba.c), token-major (L, channels). They work on
 * double activations (and their gradients) with the float parameters (and float parameter
 * gradients) of lpm_mamba_params, so the layer rounds to float only at its output. */

/* nn.Linear: out (L,O) = in (L,I) W^T + bias, W (O,I), bias (O) or NULL.
 * Backward: din += dout W, dW += dout^T in, dbias += column sums (din, dbias may be NULL). */
void lpm_ref_linear_forward(double *out, const double *in, const float *W, const float *bias,
                            int L, int I, int O);
void lpm_ref_linear_backward(double *din, float *dW, float *dbias, const double *dout,
                             const double *in, const float *W, int L, int I, int O);

/* Causal depthwise conv (nn.Conv1d(24, 24, 4, groups=24, padding=3), first L outputs):
 * out[t,c] = bias[c] + sum_k w[c,k] x[t-3+k, c], x = 0 before the first token.
 * x, out (L,24); w (24,1,4); bias (24). */
void lpm_ref_causal_conv1d_forward(double *out, const double *x, const float *w,
                                   const float *bias, int L);
void lpm_ref_causal_conv1d_backward(double *dx, float *dw, float *dbias, const double *dout,
                                    const double *x, const float *w, int L);

/* F.silu, elementwise over n values: y = x sigmoid(x). dx += dy silu'(x). */
void lpm_ref_silu_forward(double *y, const double *x, size_t n);
void lpm_ref_silu_backward(double *dx, const double *dy, const double *x, size_t n);

/* F.softplus (beta 1, threshold 20): y = x for x > 20, else log(1 + exp(x)). */
void lpm_ref_softplus_forward(double *y, const double *x, size_t n);
void lpm_ref_softplus_backward(double *dx, const double *dy, const double *x, size_t n);

/* Selective scan over one sequence, state 0 at the start, A = -exp(A_log):
 *   h_t = exp(delta_t A) h_(t-1) + delta_t B_t xc_t;  y_t = C_t . h_t + D xc_t.
 * xc, delta, y (L,24); A_log (24,8); B, Cm (L,8); D (24). The backward adds into dxc,
 * ddelta (L,24), dA_log (24,8), dB, dCm (L,8), dD (24). */
void lpm_ref_selective_scan_forward(double *y, const double *xc, const double *delta,
                                    const float *A_log, const double *B, const double *Cm,
                                    const float *D, int L);
lpm_status lpm_ref_selective_scan_backward(double *dxc, double *ddelta, float *dA_log,
                                           double *dB, double *dCm, float *dD,
                                           const double *dy, const double *xc,
                                           const double *delta, const float *A_log,
                                           const double *B, const double *Cm, const float *D,
                                           int L);

/* The gate: out = y * F.silu(z), elementwise over n values. dy, dz += . */
void lpm_ref_gate_forward(double *out, const double *y, const double *z, size_t n);
void lpm_ref_gate_backward(double *dy, double *dz, const double *dout, const double *y,
                           const double *z, size_t n);

/* ---- The Mamba block on one sequence: u, out (L,24); in_proj, causal conv1d, SiLU,
 * x_proj, dt_proj, softplus, selective scan, gate, out_proj (p->norm_* unused).
 * Backward: du += , grad += (the forward recomputed from u). The _f64 forms take and give
 * double activations (finite differences need outputs that are not rounded to float). */
lpm_status lpm_ref_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L);
lpm_status lpm_ref_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                                  const float *u, const lpm_mamba_params *p, int L);
lpm_status lpm_ref_mamba_forward_f64(double *out, const double *u, const lpm_mamba_params *p,
                                     int L);
lpm_status lpm_ref_mamba_backward_f64(double *du, lpm_mamba_params *grad, const double *dout,
                                      const double *u, const lpm_mamba_params *p, int L);

/* ---- Swin windows: cyclic shift by `shift`, then 16x16 windows of 256 row-major tokens.
 * img (R,Q,C), R and Q multiples of 16; tok (R/16 * Q/16, 256, C), windows in row-major
 * order. Token t = 16 i + j of window (wr, wq) is pixel
 * ((16 wr + i + shift) mod R, (16 wq + j + shift) mod Q). merge is the inverse.
 * Both are permutations, so each one's backward is the other one, adding (+=). */
void lpm_ref_window_partition(double *tok, const double *img, int R, int Q, int C, int shift);
void lpm_ref_window_merge(double *img, const double *tok, int R, int Q, int C, int shift);
void lpm_ref_window_partition_backward(double *dimg, const double *dtok, int R, int Q, int C,
                                       int shift);
void lpm_ref_window_merge_backward(double *dtok, const double *dimg, int R, int Q, int C,
                                   int shift);

/* ---- Swin-Mamba layer on one image: partition, LayerNorm (p->norm_w, norm_b), Mamba per
 * window, merge; no residual. in, out (R,Q,24), distinct. din += , grad += . */
lpm_status lpm_ref_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p,
                                      int R, int Q, int shift);
lpm_status lpm_ref_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                                       const float *in, const lpm_mamba_params *p, int R,
                                       int Q, int shift);
lpm_status lpm_ref_swin_mamba_forward_f64(double *out, const double *in,
                                          const lpm_mamba_params *p, int R, int Q, int shift);
lpm_status lpm_ref_swin_mamba_backward_f64(double *din, lpm_mamba_params *grad,
                                           const double *dout, const double *in,
                                           const lpm_mamba_params *p, int R, int Q, int shift);

/* ---- Max fusion of the three branches (ref_layers.c), elementwise over n values:
 * m = torch.maximum(torch.maximum(p1, p2), p3). The backward follows torch.maximum's:
 * a tie halves the gradient between the two sides, at each of the two maxima. */
void lpm_ref_max3_forward(float *m, const float *p1, const float *p2, const float *p3,
                          size_t n);
void lpm_ref_max3_backward(float *dp1, float *dp2, float *dp3, const float *dm,
                           const float *p1, const float *p2, const float *p3, size_t n);

/* ---- CfC head per voxel (ref_layers.c): f (n,24); out, base, detail planar (nout, n),
 * after tanh(.)/2 + 0.5; base, detail may be NULL. Backward: gradients w.r.t. the three
 * mapped outputs (dbase, ddetail may be NULL); df += , grad += . */
void lpm_ref_cfc_forward(float *out, float *base, float *detail, const float *f,
                         const lpm_cfc_params *p, int64_t n);
void lpm_ref_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout,
                          const float *dbase, const float *ddetail, const float *f,
                          const lpm_cfc_params *p, int64_t n);

#endif
