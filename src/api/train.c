/* The public API's training (include/lpmnet.h): lpm_train maps its options onto the run of
 * src/train (lpm_train_config; `lpmnet train` is built on lpm_train); a session wraps
 * lpm_trainer and lpm_train_step for callers that bring their own pairs. */
#include "cuda/cuda.h"
#include "train/train.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Larger samples would not fit any machine's memory (a 1024^3 step needs hundreds of GB). */
enum { MAX_SIDE = 1024 };

void lpm_train_options_init(lpm_train_options *o) {
    *o = (lpm_train_options){.iters = 3000, .ckpt_every = 25, .shape = {96, 160, 160}, .flip = 1,
                             .batch = 1, .lr = 1e-4, .alpha = 0.05, .beta = 1, .gamma = 0.5,
                             .rec = 0.2, .seed = 1, .aug_gamma = 1};
}

static lpm_status check_range(const char *name, double value, double lo, int lo_open, double hi) {
    if ((lo_open ? value > lo : value >= lo) && value <= hi) return LPM_OK;
    return lpm_fail(LPM_ERR_USAGE, "%s %g: must be in %c%g, %g]", name, value, lo_open ? '(' : '[', lo, hi);
}

/* The checks of `lpmnet train`'s options that the run itself leaves to its caller. */
static lpm_status check_options(const lpm_train_options *o, const int64_t **size) {
    *size = o->shape;
    if (!o->data || !o->out) return lpm_fail(LPM_ERR_USAGE, "training needs data and out");
    const int crop = o->crop[0] > 0 && o->crop[1] > 0 && o->crop[2] > 0;
    const char *what = crop ? "crop" : "shape";
    *size = crop ? o->crop : o->shape;
    for (int k = 0; k < 3; k++)
        if ((*size)[k] <= 0 || (*size)[k] % 16 || (*size)[k] > MAX_SIDE)
            return lpm_fail(LPM_ERR_USAGE, "%s %lld,%lld,%lld: each side must be a positive multiple of 16, "
                            "at most %d", what, (long long)(*size)[0], (long long)(*size)[1],
                            (long long)(*size)[2], MAX_SIDE);
    if (o->iters < 1) return lpm_fail(LPM_ERR_USAGE, "iters %lld: must be at least 1", (long long)o->iters);
    if (o->val_every < 0 || o->ckpt_every < 0 || o->batch < 0)
        return lpm_fail(LPM_ERR_USAGE, "val_every, ckpt_every and batch must not be negative");
    lpm_status st = check_range("lr", o->lr, 0, 1, 1);
    const char *names[] = {"alpha", "beta", "gamma", "edge", "target", "qabf", "sf_match"};
    const double values[] = {o->alpha, o->beta, o->gamma, o->edge, o->target, o->qabf, o->sf_match};
    for (int i = 0; i < 7 && !st; i++) st = check_range(names[i], values[i], 0, 0, LPM_TRAIN_WEIGHT_MAX);
    if (!st && !(o->rec >= 0 && o->rec < 1)) st = lpm_fail(LPM_ERR_USAGE, "rec %g: must be in [0, 1)", o->rec);
    if (!st && o->aug_gamma != 0) st = check_range("aug_gamma", o->aug_gamma, 1, 0, LPM_TRAIN_AUG_GAMMA_MAX);
    if (!st) st = check_range("aug_noise", o->aug_noise, 0, 0, LPM_TRAIN_AUG_NOISE_MAX);
    if (st) return st;
    if (o->aug_rotate != 0 && o->aug_rotate != 1)
        return lpm_fail(LPM_ERR_USAGE, "aug_rotate %d: 0 or 1", o->aug_rotate);
    if (o->aug_rotate && (*size)[1] != (*size)[2])
        return lpm_fail(LPM_ERR_USAGE, "aug_rotate: quarter turns need a %s with as many rows as columns "
                        "(%s %lld,%lld,%lld)", what, what, (long long)(*size)[0], (long long)(*size)[1],
                        (long long)(*size)[2]);
    if (o->force && !o->resume) return lpm_fail(LPM_ERR_USAGE, "force applies only with resume");
    if (o->device != 0 && o->device != 1)
        return lpm_fail(LPM_ERR_USAGE, "device %d: 0 (the CPU) or 1 (CUDA)", o->device);
    if (o->comm && (o->comm->size < 1 || o->comm->rank < 0 || o->comm->rank >= o->comm->size ||
                    (o->comm->size > 1 && !o->comm->allgather)))
        return lpm_fail(LPM_ERR_USAGE, "comm: rank %d of %d processes, or no allgather", o->comm->rank,
                        o->comm->size);
    char why[512];
    if (o->device == 1 && !lpm_cuda_available(why, sizeof why))
        return lpm_fail(LPM_ERR_USAGE, "device cuda: %s", why);
    return LPM_OK;
}

/* The run's per-step hook (lpm_train_config.on_step) -> the caller's callbacks. */
static int report_step(void *ctx, int64_t step, int64_t iters, int64_t epoch, double lr,
                       double seconds, const lpm_loss_terms *t) {
    const lpm_train_options *o = ctx;
    const lpm_train_report report = {
        .step = step, .iters = iters, .epoch = epoch, .lr = lr, .seconds = seconds,
        .losses = {t->total, t->mse_af, t->mse_bf, t->ssim_af, t->ssim_bf, t->ssim_adet,
                   t->ssim_bdet, t->sf_f, t->edge_f, t->mse_rec, t->target_f, t->qabf_f, t->sf_ratio}};
    if (o->progress) o->progress(o->ctx, step, iters);
    return o->on_step ? o->on_step(o->ctx, &report) : 0;
}

lpm_status lpm_train(const lpm_train_options *o) {
    const int64_t *size = NULL;
    lpm_status st = check_options(o, &size);
    if (st) return st;
    char init[PATH_MAX + 64];
    if (o->init && (st = lpm_model_resolve(o->init, init, sizeof init))) return st;
    lpm_train_config c = {.data = o->data, .pair = o->pair, .mask_key = o->mask_key, .out = o->out,
                          .init = o->init ? init : NULL, .val = o->val, .iters = o->iters,
                          .val_every = o->val_every, .ckpt_every = o->ckpt_every ? o->ckpt_every : 25,
                          .ckpt_seconds = 300, .lr = o->lr, .alpha = o->alpha, .beta = o->beta,
                          .gamma = o->gamma, .edge = o->edge, .target = o->target, .qabf = o->qabf, .sf_match = o->sf_match, .rec = o->rec, .seed = o->seed,
                          .resume = o->resume, .force = o->force, .quiet = o->quiet, .stop = o->stop,
                          .batch = o->batch, .comm = o->comm};
    /* the backend is chosen here, so the training loop and the caller depend on none */
    c.device = o->device == 1 ? lpm_cuda_train_device() : NULL;
    if ((st = lpm_prep_from_settings(&c.sample.prep, o->clip_lo, o->clip_hi, o->ct_window))) return st;
    c.sample.mode = size == o->crop;
    c.sample.aug = (lpm_augment){.flip = o->flip, .gamma_max = o->aug_gamma, .noise_max = o->aug_noise,
                                 .rotate = o->aug_rotate};
    memcpy(size == o->crop ? c.sample.crop : c.sample.shape, size, 3 * sizeof(int64_t));
    if (o->progress || o->on_step) c.on_step = report_step, c.on_step_ctx = (void *)o;
    const int prev_threads = lpm_get_threads();
    c.threads = lpm_set_threads(o->threads);
    st = lpm_train_run(&c);
    lpm_set_threads(prev_threads);
    return st;
}

struct lpm_train_session {
    lpm_trainer t;
    lpm_rng rng;   /* the reconstruction masks */
};

lpm_status lpm_train_session_new(lpm_train_session **session, int64_t nx, int64_t ny, int64_t nz,
                                 const char *weights, uint64_t seed) {
    *session = NULL;
    lpm_train_session *s = lpm_calloc(1, sizeof *s);
    if (!s) return LPM_ERR_INTERNAL;
    char path[PATH_MAX + 64];
    lpm_status st = lpm_trainer_init(&s->t, nz, ny, nx);
    if (!st && weights && !(st = lpm_model_resolve(weights, path, sizeof path)))
        st = lpm_weights_load(&s->t.w, path);
    else if (!st && !weights)
        st = lpm_weights_init(&s->t.w, seed);
    if (st) {
        lpm_train_session_free(s);
        return st;
    }
    lpm_rng_seed(&s->rng, seed);
    *session = s;
    return LPM_OK;
}

lpm_status lpm_train_session_step(lpm_train_session *s, const float *a, const float *b,
                                  const lpm_train_options *options, double lambda_s,
                                  lpm_step_losses *losses) {
    lpm_train_options defaults;
    lpm_train_options_init(&defaults);
    const lpm_train_options *o = options ? options : &defaults;
    if (!s || !a || !b) return lpm_fail(LPM_ERR_USAGE, "lpm_train_session_step: no session or no data");
    lpm_status st = check_range("lr", o->lr, 0, 1, 1);
    if (!st && !(o->rec >= 0 && o->rec < 1)) st = lpm_fail(LPM_ERR_USAGE, "rec %g: must be in [0, 1)", o->rec);
    if (st) return st;
    const lpm_loss_weights lw = {.alpha = o->alpha, .beta = o->beta, .gamma = o->gamma,
                                 .lambda_s = lambda_s, .edge = o->edge, .target = o->target,
                                 .qabf = o->qabf, .sf_match = o->sf_match};
    lpm_loss_terms terms = {0};
    st = lpm_train_step(&s->t, a, b, NULL, NULL, &s->rng, o->rec, &lw, o->lr, &terms);
    if (!st && losses)
        *losses = (lpm_step_losses){terms.total, terms.mse_af, terms.mse_bf, terms.ssim_af,
                                    terms.ssim_bf, terms.ssim_adet, terms.ssim_bdet, terms.sf_f,
                                    terms.edge_f, terms.mse_rec, terms.target_f, terms.qabf_f,
                                    terms.sf_ratio};
    return st;
}

const lpm_weights *lpm_train_session_weights(const lpm_train_session *s) { return s ? &s->t.w : NULL; }

void lpm_train_session_free(lpm_train_session *s) {
    if (!s) return;
    lpm_trainer_free(&s->t);
    free(s);
}
