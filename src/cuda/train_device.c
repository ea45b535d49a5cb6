/* The CUDA trainer as the training loop's device (lpm_train_device, src/train/train.h): the
 * loop calls these through the table, so src/train depends on no backend. Without CUDA the
 * calls reach cuda_stub.c and fail with its message. */
#include "cuda.h"

static void *create(int64_t D, int64_t H, int64_t W) { return lpm_cuda_trainer_create(D, H, W); }

static lpm_status set(void *dev, const float *w, const float *adam_m, const float *adam_v, int64_t adam_t) {
    return lpm_cuda_trainer_set(dev, w, adam_m, adam_v, adam_t);
}

static lpm_status get(void *dev, float *w, float *adam_m, float *adam_v, int64_t *adam_t) {
    return lpm_cuda_trainer_get(dev, w, adam_m, adam_v, adam_t);
}

static lpm_status step(void *dev, const float *a, const float *b, lpm_rng *mask_rng, double rec,
                       const lpm_loss_weights *lw, double lr, lpm_loss_terms *terms) {
    return lpm_cuda_train_step(dev, a, b, NULL, NULL, mask_rng, rec, lw, lr, terms);
}

static void destroy(void *dev) { lpm_cuda_trainer_free(dev); }

const lpm_train_device *lpm_cuda_train_device(void) {
    static const lpm_train_device device = {create, set, get, step, destroy};
    return &device;
}
