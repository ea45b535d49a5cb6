/* The LPM-Net training objective (docs/lpmnet.md section 2) with its gradients.
 *
 * Volumes are (D,H,W) in C order. Every gradient argument may be NULL (value only).
 * The building blocks (SSIM and SF, declared in metrics.h, and MSE) ACCUMULATE:
 * d += scale * d(value)/d(input), so one buffer can collect several terms. The loss functions below OVERWRITE their
 * gradient outputs: they are the seeds of a backward pass.
 */
#ifndef LPM_LOSS_H
#define LPM_LOSS_H

#include "../core/core.h"
#include "../metrics/metrics.h" /* lpm_ssim3d, lpm_sf: the building blocks shared with metrics */

/* Edge fidelity (lpmnet's addition, not in the authors' objective):
 * E = sum over the three axes of mean((d f - t)^2), d the forward difference along the axis
 * and t the stronger source's difference there (d A where |d A| >= |d B|, else d B), each
 * mean over its own count as in SF. It asks F to carry the edges of whichever source has
 * the larger one, with its sign, and no edges that neither source has.
 * df += scale * dE/df (t is held fixed: it does not depend on f). */
lpm_status lpm_edge(double *edge, const float *A, const float *B, const float *f, int64_t D,
                    int64_t H, int64_t W, float *df, double scale);

/* The fusion target (lpmnet's addition, not in the authors' objective), held fixed:
 * T = (P + S) / 2 clipped to [0, 1], P the Laplacian-pyramid fusion of A and B (the classical
 * method "laplacian") and S = max(a, b) + d, where a and b are A and B blurred by a 9-voxel
 * triangle filter per axis (a 5-voxel mean applied twice, edges replicated) and d is the
 * larger in magnitude of A - a and B - b (A wins ties): the brighter source's low
 * frequencies with the stronger source's details. T is (D,H,W), written by the call. */
lpm_status lpm_fusion_target(float *T, const float *A, const float *B, int64_t D, int64_t H,
                             int64_t W);

/* MSE = mean((x - y)^2) over n values; dy += scale * dMSE/dy. */
lpm_status lpm_mse(double *mse, const float *x, const float *y, int64_t n, float *dy,
                   double scale);

/* Loss weights: authors' defaults alpha 0.05, beta 1, gamma 0.5, edge, target, qabf and
 * sf_match 0 (their objective has none of these terms); lambda_s from lpm_lambda_s. */
typedef struct {
    double alpha, beta, gamma, lambda_s, edge, target;
    double qabf;     /* weight of 1 - QABF(A,B,F) (lpm_qabf), lpmnet's addition */
    double sf_match; /* weight of (SF(F)/SF_R - 1)^2 (lpm_sf_match), lpmnet's addition */
} lpm_loss_weights;

/* Every term of the objective, and the total (lpm_loss_total). */
typedef struct {
    double mse_af, mse_bf;        /* MSE(A,F), MSE(B,F) */
    double ssim_af, ssim_bf;      /* SSIM(A,F), SSIM(B,F) */
    double ssim_adet, ssim_bdet;  /* SSIM(A,Det), SSIM(B,Det) */
    double sf_f;                  /* SF(F) */
    double edge_f;                /* E(A,B,F), 0 unless the edge weight is set */
    double target_f;              /* MSE(T,F), T = lpm_fusion_target(A,B); 0 unless its weight is set */
    double qabf_f;                /* QABF(A,B,F), 0 unless its weight is set */
    double sf_ratio;              /* SF(F)/SF_R (lpm_sf_match), 0 unless its weight is set */
    double mse_rec;               /* MSE(R, [A,B]), mean over both channels */
    double total;
} lpm_loss_terms;

/* lambda_s = exp(0.002 (s - E)): s = step index within the current epoch, E = epochs. */
double lpm_lambda_s(int64_t step_in_epoch, int64_t n_epochs);

/* The fusion pass: fills every term of t except mse_rec and total, and writes
 * dF = dL/dF and dDet = dL/dDet (either may be NULL). A, B, F, Det are (D,H,W). */
lpm_status lpm_loss_fusion(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A,
                           const float *B, const float *F, const float *Det, int64_t D,
                           int64_t H, int64_t W, float *dF, float *dDet);

/* The reconstruction pass: fills t->mse_rec and writes dR = dL/dR (may be NULL).
 * R and dR are (2,D,H,W), channel 0 against A, channel 1 against B. */
lpm_status lpm_loss_recon(lpm_loss_terms *t, const float *A, const float *B, const float *R,
                          int64_t D, int64_t H, int64_t W, float *dR);

/* L = alpha (MSE(A,F) + MSE(B,F))/2 + beta (1 - (SSIM(A,F) + SSIM(B,F))/2)
 *     + (1 - (SSIM(A,Det) + SSIM(B,Det))/2) - gamma lambda_s SF(F) + edge E(A,B,F)
 *     + target MSE(T,F) + qabf (1 - QABF(A,B,F)) + sf_match (SF(F)/SF_R - 1)^2
 *     + MSE(R, [A,B]) */
double lpm_loss_total(const lpm_loss_terms *t, const lpm_loss_weights *w);

/* Both passes' terms on given outputs, t->total set, dF, dDet, dR written (may be NULL). */
lpm_status lpm_loss(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A, const float *B,
                    const float *F, const float *Det, const float *R, int64_t D, int64_t H,
                    int64_t W, float *dF, float *dDet, float *dR);

#endif
