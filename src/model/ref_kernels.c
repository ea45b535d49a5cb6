/* The `ref` kernel set (kernels.h): model.h's layer functions as calls of the scalar
 * reference layers (reference.h), compiled only into the ref set (-DLPM_KERNEL_SUFFIX=ref,
 * so these definitions are lpm_dense_forward_ref and so on), where network.c runs on them:
 * LPM_ISA=ref runs the whole network in the reference's double arithmetic, for checking.
 * The reference layers allocate their own working memory and need no scratch; where that
 * allocation fails the process ends with the message (these functions return no status). */
#include "model.h"
#include "reference.h"

#include <stdio.h>
#include <stdlib.h>

static void check(lpm_status st) {
    if (st == LPM_OK) return;
    fprintf(stderr, "lpmnet: LPM_ISA=ref: %s\n", lpm_last_error());
    exit(st);
}

void lpm_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                         const float *bias, int64_t D, int64_t H, int64_t W) {
    lpm_ref_conv_in_forward(X, a, b, w, bias, D, H, W);
}
void lpm_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                          const float *b, int64_t D, int64_t H, int64_t W) {
    lpm_ref_conv_in_backward(dw, dbias, dX, a, b, D, H, W);
}
void lpm_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q) {
    lpm_ref_dense_forward(feat, p, R, Q);
}
void lpm_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                        const lpm_dense_params *p, int R, int Q) {
    lpm_ref_dense_backward(dfeat, grad, feat, p, R, Q);
}
void lpm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *w, const float *b, int64_t n, int C) {
    check(lpm_ref_layernorm_forward(out, mean, rstd, in, w, b, n, C));
}
void lpm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *w, int64_t n, int C) {
    check(lpm_ref_layernorm_backward(din, dw, db, dout, in, mean, rstd, w, n, C));
}
/* one float, so callers that allocate scratch never ask for 0 bytes */
size_t lpm_mamba_scratch_floats(int L) { return 1; }
void lpm_mamba_prepare(const lpm_mamba_params *p, float *scratch) {}
void lpm_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L,
                       float *scratch) {
    check(lpm_ref_mamba_forward(out, u, p, L));
}
void lpm_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                        const float *u, const lpm_mamba_params *p, int L, float *scratch) {
    check(lpm_ref_mamba_backward(du, grad, dout, u, p, L));
}
size_t lpm_swin_scratch_floats(void) { return 1; }
void lpm_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p, int R,
                            int Q, int shift, float *scratch) {
    check(lpm_ref_swin_mamba_forward(out, in, p, R, Q, shift));
}
void lpm_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                             const float *in, const lpm_mamba_params *p, int R, int Q,
                             int shift, float *scratch) {
    check(lpm_ref_swin_mamba_backward(din, grad, dout, in, p, R, Q, shift));
}
void lpm_cfc_forward(float *out, float *base, float *detail, const float *f,
                     const lpm_cfc_params *p, int64_t n) {
    lpm_ref_cfc_forward(out, base, detail, f, p, n);
}
void lpm_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout, const float *dbase,
                      const float *ddetail, const float *f, const lpm_cfc_params *p, int64_t n) {
    lpm_ref_cfc_backward(df, grad, dout, dbase, ddetail, f, p, n);
}
