/* Adam as torch.optim.Adam computes it (L2 weight decay added to the gradient, not AdamW),
 * and the per-epoch cosine learning rate of torch.optim.lr_scheduler.CosineAnnealingLR. */
#ifndef LPM_ADAM_H
#define LPM_ADAM_H

#include "../core/core.h"

typedef struct {
    float *m, *v;          /* first and second moments, n floats each (the weights' layout) */
    size_t n;
    int64_t t;             /* steps taken */
    double beta1, beta2, eps, weight_decay;
} lpm_adam;

/* Zeroed moments, t = 0, the authors' hyperparameters: betas (0.9, 0.999), eps 1e-8,
 * weight decay 3e-4. Change the fields after init for others. */
lpm_status lpm_adam_init(lpm_adam *a, size_t n);
void lpm_adam_free(lpm_adam *a);

/* One step with learning rate lr: t += 1, then for every i
 *   g = grad + wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * grad is not modified. */
void lpm_adam_step(lpm_adam *a, float *param, const float *grad, double lr);

/* lr at epoch e of E: base_lr (1 + cos(pi e / E)) / 2 (CosineAnnealingLR, eta_min 0,
 * stepped once per epoch; periodic beyond E like PyTorch's). */
double lpm_cosine_lr(double base_lr, int64_t epoch, int64_t n_epochs);

#endif
