/* Adam (torch.optim.Adam, single-tensor path) and the cosine learning-rate schedule. */
#include "adam.h"

#include <math.h>

lpm_status lpm_adam_init(lpm_adam *a, size_t n) {
    *a = (lpm_adam){.n = n, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 3e-4};
    a->m = lpm_calloc(n, sizeof(float));
    a->v = lpm_calloc(n, sizeof(float));
    if (!a->m || !a->v) {
        lpm_adam_free(a);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_adam_init: out of memory for %zu moments", n);
    }
    return LPM_OK;
}

void lpm_adam_free(lpm_adam *a) {
    free(a->m), free(a->v);
    a->m = a->v = NULL;
}

void lpm_adam_step(lpm_adam *a, float *param, const float *grad, double lr) {
    a->t++;
    float b1 = (float)a->beta1, b2 = (float)a->beta2, wd = (float)a->weight_decay;
    /* 1 - beta in double, as PyTorch passes it: 1.0f - 0.999f would be off by 1e-5 */
    float c1 = (float)(1.0 - a->beta1), c2 = (float)(1.0 - a->beta2);
    /* step_size = lr / bias_correction1; denom = exp_avg_sq.sqrt() / sqrt(bias_correction2) + eps */
    double bc1 = 1.0 - pow(a->beta1, (double)a->t);
    double bc2 = 1.0 - pow(a->beta2, (double)a->t);
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)a->eps;
    float *m = a->m, *v = a->v;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < a->n; i++) {
        /* grad = grad.add(param, alpha=weight_decay) */
        float g = grad[i] + wd * param[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        param[i] -= step * (m[i] / (sqrtf(v[i]) / bc2s + eps));
    }
}

double lpm_cosine_lr(double base_lr, int64_t epoch, int64_t n_epochs) {
    const double pi = 3.14159265358979323846;
    if (n_epochs <= 0) return base_lr;
    return base_lr * (1.0 + cos(pi * (double)epoch / (double)n_epochs)) / 2.0;
}
