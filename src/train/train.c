#include "train.h"

#include <string.h>

lpm_status lpm_trainer_init(lpm_trainer *t, int64_t D, int64_t H, int64_t W) {
    memset(t, 0, sizeof *t);
    if (D % 16 || H % 16 || W % 16 || D <= 0 || H <= 0 || W <= 0)
        return lpm_fail(LPM_ERR_USAGE, "training size %lldx%lldx%lld: each side must be a positive multiple of 16",
                        (long long)D, (long long)H, (long long)W);
    t->D = D, t->H = H, t->W = W;
    size_t n = (size_t)(D * H * W);
    lpm_status st = lpm_weights_alloc(&t->w);
    if (!st) st = lpm_weights_alloc(&t->grad);
    if (!st) st = lpm_adam_init(&t->adam, LPM_NUM_PARAMS);
    if (st) goto fail;
    lpm_params_bind(&t->p, t->w.data);
    lpm_params_bind(&t->g, t->grad.data);
    float **bufs[] = {&t->fused, &t->base, &t->detail, &t->dF, &t->dDet,
                      &t->am, &t->bm, &t->m1, &t->m2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = lpm_malloc(n, sizeof(float)))) goto oom;
    if (!(t->recon = lpm_malloc(2 * n, sizeof(float))) || !(t->dR = lpm_malloc(2 * n, sizeof(float))))
        goto oom;
    if (!(t->net = lpm_net_create(D, H, W, LPM_NET_TRAIN))) goto oom;
    return LPM_OK;
oom:
    st = LPM_ERR_INTERNAL;
fail:
    lpm_trainer_free(t);
    return st;
}

void lpm_trainer_free(lpm_trainer *t) {
    lpm_weights_free(&t->w);
    lpm_weights_free(&t->grad);
    lpm_adam_free(&t->adam);
    lpm_net_free(t->net);
    free(t->fused), free(t->base), free(t->detail), free(t->recon);
    free(t->dF), free(t->dDet), free(t->dR);
    free(t->am), free(t->bm), free(t->m1), free(t->m2);
    memset(t, 0, sizeof *t);
}

lpm_status lpm_train_step(lpm_trainer *t, const float *a, const float *b, const float *m1,
                          const float *m2, lpm_rng *rng, double rec, const lpm_loss_weights *lw,
                          double lr, lpm_loss_terms *terms) {
    int64_t D = t->D, H = t->H, W = t->W, n = D * H * W;
    memset(t->grad.data, 0, sizeof(float) * LPM_NUM_PARAMS);

    /* fusion pass */
    lpm_status st = lpm_net_forward(t->net, &t->p, a, b, 0, t->fused, t->base, t->detail, NULL, NULL);
    if (!st) st = lpm_loss_fusion(terms, lw, a, b, t->fused, t->detail, D, H, W, t->dF, t->dDet);
    if (!st) st = lpm_net_backward(t->net, &t->p, &t->g, t->dF, NULL, t->dDet);
    if (st) return st;

    /* reconstruction pass: the same network on masked inputs, the 2-channel head */
    if (!m1) {
        lpm_recon_masks(t->m1, t->m2, D, H, W, rec, rng);
        m1 = t->m1, m2 = t->m2;
    }
    for (int64_t i = 0; i < n; i++) {
        t->am[i] = a[i] * m1[i];
        t->bm[i] = b[i] * m2[i];
    }
    st = lpm_net_forward(t->net, &t->p, t->am, t->bm, 1, t->recon, NULL, NULL, NULL, NULL);
    if (!st) st = lpm_loss_recon(terms, a, b, t->recon, D, H, W, t->dR);
    if (!st) st = lpm_net_backward(t->net, &t->p, &t->g, t->dR, NULL, NULL);
    if (st) return st;
    terms->total = lpm_loss_total(terms, lw);

    lpm_adam_step(&t->adam, t->w.data, t->grad.data, lr);
    return LPM_OK;
}

/* ------------------------------------------------------------------ the run */

#include "../cuda/cuda.h"
#include "../io/io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

typedef struct {
    const lpm_train_config *cfg;
    lpm_trainer t;            /* host weights, Adam state and (for validation) the CPU net */
    lpm_cuda_trainer *gpu;    /* with --device cuda: the weights and Adam state live here */
    lpm_dataset train, val;
    int64_t step;             /* steps done */
    int64_t n_epochs;         /* E = iters / n_train + 1 (authors) */
    double best_ssim;         /* best validation SSIM so far (-1: none) */
    char ckpt_path[4200], model_path[4200], csv_path[4200], val_path[4200], best_path[4200];
} run_state;

static const char *CSV_HEADER =
    "step,epoch,lr,loss,mse_af,mse_bf,ssim_af,ssim_bf,ssim_adet,ssim_bdet,sf_f,mse_rec,lambda_s,seconds,edge_f\n";

/* Bring the GPU's weights and Adam state to the host copy (checkpoints, validation). */
static lpm_status sync_from_gpu(run_state *r) {
    return r->gpu ? lpm_cuda_trainer_get(r->gpu, r->t.w.data, r->t.adam.m, r->t.adam.v, &r->t.adam.t) : LPM_OK;
}

static lpm_status save_checkpoint(run_state *r) {
    const lpm_train_config *c = r->cfg;
    lpm_status sync = sync_from_gpu(r);
    if (sync) return sync;
    char step[32], adam_t[32], seed[32], size[64], epochs[32], best[32], ncases[32];
    snprintf(step, sizeof step, "%" PRId64, r->step);
    snprintf(adam_t, sizeof adam_t, "%" PRId64, r->t.adam.t);
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    snprintf(size, sizeof size, "%lld,%lld,%lld", (long long)r->t.D, (long long)r->t.H, (long long)r->t.W);
    snprintf(epochs, sizeof epochs, "%" PRId64, r->n_epochs);
    snprintf(best, sizeof best, "%.17g", r->best_ssim);
    snprintf(ncases, sizeof ncases, "%d", r->train.n);
    const char *meta[] = {"format", "lpmnet-checkpoint", "step", step, "adam_t", adam_t,
                          "seed", seed, "size", size, "epochs", epochs, "cases", ncases, "best_val_ssim", best,
                          "pair", c->pair ? c->pair : "", "data", c->data};
    lpm_st_tensor ts[3] = {
        {"weights", 1, {LPM_NUM_PARAMS}, r->t.w.data},
        {"adam.m", 1, {LPM_NUM_PARAMS}, r->t.adam.m},
        {"adam.v", 1, {LPM_NUM_PARAMS}, r->t.adam.v},
    };
    lpm_status st = lpm_st_write(r->ckpt_path, ts, 3, meta, (int)(sizeof meta / sizeof meta[0] / 2));
    if (!st) st = lpm_weights_save(&r->t.w, r->model_path);
    return st;
}

static lpm_status load_checkpoint(run_state *r) {
    lpm_st_file *f = NULL;
    lpm_status st = lpm_st_read(r->ckpt_path, &f);
    if (st) return st;
    const char *keys[] = {"step", "adam_t", "seed", "size"};
    const char *vals[4];
    for (int i = 0; i < 4; i++)
        if (!(vals[i] = lpm_st_meta(f, keys[i]))) {
            lpm_st_close(f);
            return lpm_fail(LPM_ERR_INPUT, "%s: not an lpmnet checkpoint (no '%s')", r->ckpt_path, keys[i]);
        }
    char size[64];
    snprintf(size, sizeof size, "%lld,%lld,%lld", (long long)r->t.D, (long long)r->t.H, (long long)r->t.W);
    if (strcmp(vals[3], size) != 0) {
        st = lpm_fail(LPM_ERR_INPUT, "%s: checkpoint was trained at size %s, this run uses %s",
                      r->ckpt_path, vals[3], size);
    } else if (lpm_st_meta(f, "epochs") && strtoll(lpm_st_meta(f, "epochs"), NULL, 10) != r->n_epochs) {
        st = lpm_fail(LPM_ERR_USAGE, "%s: checkpoint schedules %s epochs, this run %" PRId64
                      " (--iters or the number of cases changed; the learning-rate schedule depends on both)",
                      r->ckpt_path, lpm_st_meta(f, "epochs"), r->n_epochs);
    } else if (lpm_st_meta(f, "cases") && atoi(lpm_st_meta(f, "cases")) != r->train.n) {
        st = lpm_fail(LPM_ERR_USAGE, "%s: checkpoint was trained on %s cases, this dataset has %d "
                      "(the data order depends on it)", r->ckpt_path, lpm_st_meta(f, "cases"), r->train.n);
    } else if (strtoull(vals[2], NULL, 10) != r->cfg->seed) {
        st = lpm_fail(LPM_ERR_INPUT, "%s: checkpoint has seed %s, this run --seed %" PRIu64
                      " (the data order depends on it)", r->ckpt_path, vals[2], r->cfg->seed);
    }
    const char *names[3] = {"weights", "adam.m", "adam.v"};
    float *dst[3] = {r->t.w.data, r->t.adam.m, r->t.adam.v};
    for (int i = 0; i < 3 && !st; i++) {
        int ndim;
        int64_t shape[LPM_ST_MAXDIM];
        const float *src = lpm_st_find(f, names[i], &ndim, shape);
        if (!src || ndim != 1 || shape[0] != LPM_NUM_PARAMS)
            st = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s' missing or of the wrong size", r->ckpt_path, names[i]);
        else
            memcpy(dst[i], src, sizeof(float) * LPM_NUM_PARAMS);
    }
    if (!st) {
        r->step = strtoll(vals[0], NULL, 10);
        r->t.adam.t = strtoll(vals[1], NULL, 10);
        const char *best = lpm_st_meta(f, "best_val_ssim");
        r->best_ssim = best ? strtod(best, NULL) : -1;
    }
    lpm_st_close(f);
    return st;
}

/* Keep the log rows of the steps the checkpoint holds (a kill between a row and the next
 * checkpoint would otherwise repeat steps); start a new log when there is none. */
static lpm_status open_log(run_state *r, const char *path, const char *header, FILE **out) {
    FILE *old = r->cfg->resume ? fopen(path, "r") : NULL;
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st) {
        if (old) fclose(old);
        return st;
    }
    fputs(header, f.fp);
    char line[4096];
    if (old) {
        while (fgets(line, sizeof line, old)) {
            char *end;
            long long s = strtoll(line, &end, 10);
            if (end != line && *end == ',' && s <= r->step) fputs(line, f.fp);
        }
        fclose(old);
    }
    if ((st = lpm_atomic_commit(&f))) return st;
    if (!(*out = fopen(path, "a")))
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot open for appending (%s)", path, strerror(errno));
    return LPM_OK;
}

/* The run's loss weights, with lambda_s given. */
static lpm_loss_weights run_weights(const lpm_train_config *c, double lambda_s) {
    return (lpm_loss_weights){.alpha = c->alpha, .beta = c->beta, .gamma = c->gamma,
                              .lambda_s = lambda_s, .edge = c->edge};
}

/* Mean fusion SSIM, (SSIM(A,F) + SSIM(B,F))/2, and fusion loss over the validation cases. */
static lpm_status validate(run_state *r, double *ssim, double *loss) {
    lpm_status sync = sync_from_gpu(r);
    if (sync) return sync;
    lpm_sample_spec spec = r->cfg->sample;
    spec.flip = 0;
    double s_sum = 0, l_sum = 0;
    lpm_loss_weights lw = run_weights(r->cfg, 1.0);
    for (int i = 0; i < r->val.n; i++) {
        lpm_sample s;
        lpm_rng rng;
        lpm_rng_seed(&rng, 12345 + (uint64_t)i);  /* the same crop at every validation */
        lpm_status st = lpm_make_sample(&s, &r->val, i, &spec, &rng);
        if (!st) st = lpm_net_forward(r->t.net, &r->t.p, s.a, s.b, 0, r->t.fused, r->t.base, r->t.detail, NULL, NULL);
        lpm_loss_terms terms = {0};
        if (!st) st = lpm_loss_fusion(&terms, &lw, s.a, s.b, r->t.fused, r->t.detail, s.D, s.H, s.W, NULL, NULL);
        lpm_sample_free(&s);
        if (st) return st;
        s_sum += (terms.ssim_af + terms.ssim_bf) / 2;
        terms.mse_rec = 0;
        l_sum += lpm_loss_total(&terms, &lw);
    }
    *ssim = s_sum / r->val.n;
    *loss = l_sum / r->val.n;
    return LPM_OK;
}

static void progress_line(const run_state *r, int64_t first_step, double t_start, const lpm_loss_terms *terms,
                          int last) {
    static double last_print;
    double now = lpm_seconds();
    int tty = isatty(STDERR_FILENO);
    if (r->cfg->quiet || (!last && now - last_print < (tty ? 0.5 : 30.0))) return;
    last_print = now;
    double rate = (double)(r->step - first_step) / (now - t_start);
    double eta = rate > 0 ? (double)(r->cfg->iters - r->step) / rate : 0;
    fprintf(stderr, "%strain step %" PRId64 "/%" PRId64 "  loss %.5f  ssim %.4f  %.3f steps/s  ETA %.0f s%s",
            tty ? "\r" : "", r->step, r->cfg->iters, terms->total, (terms->ssim_af + terms->ssim_bf) / 2, rate,
            eta, tty && !last ? "   " : "\n");
}

lpm_status lpm_train_run(const lpm_train_config *cfg) {
    run_state r = {.cfg = cfg, .best_ssim = -1};
    lpm_loader loader = {0};
    FILE *csv = NULL, *valcsv = NULL;
    lpm_status st;
    const int64_t *size = cfg->sample.mode == 1 ? cfg->sample.crop : cfg->sample.shape;

    if (mkdir(cfg->out, 0755) != 0 && errno != EEXIST)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot create the output folder (%s)", cfg->out, strerror(errno));
    snprintf(r.ckpt_path, sizeof r.ckpt_path, "%s/checkpoint.safetensors", cfg->out);
    snprintf(r.model_path, sizeof r.model_path, "%s/model.safetensors", cfg->out);
    snprintf(r.csv_path, sizeof r.csv_path, "%s/train.csv", cfg->out);
    snprintf(r.val_path, sizeof r.val_path, "%s/val.csv", cfg->out);
    snprintf(r.best_path, sizeof r.best_path, "%s/best.safetensors", cfg->out);

    if ((st = lpm_dataset_open(&r.train, cfg->data, cfg->pair, cfg->mask_key, "train"))) goto done;
    if (cfg->val_every > 0) {
        const char *spec = cfg->val ? cfg->val : cfg->data;
        if ((st = lpm_dataset_open(&r.val, spec, cfg->pair, cfg->mask_key, cfg->val ? NULL : "test"))) goto done;
    }
    /* Every case is checked before the first step: a bad pair fails now, not hours in. */
    if ((st = lpm_dataset_check(&r.train, cfg->sample.mode == 1 ? cfg->sample.crop : NULL))) goto done;
    if (r.val.n && (st = lpm_dataset_check(&r.val, cfg->sample.mode == 1 ? cfg->sample.crop : NULL))) goto done;
    if ((st = lpm_trainer_init(&r.t, size[0], size[1], size[2]))) goto done;
    r.n_epochs = cfg->iters / r.train.n + 1;

    if (!cfg->resume && access(r.ckpt_path, F_OK) == 0) {
        st = lpm_fail(LPM_ERR_USAGE, "%s already holds a checkpoint: pass --resume to continue it, or choose another --out",
                      cfg->out);
        goto done;
    }
    if (cfg->resume && access(r.ckpt_path, F_OK) == 0) {
        if ((st = load_checkpoint(&r))) goto done;
        if (!cfg->quiet) fprintf(stderr, "lpmnet train: resuming %s at step %" PRId64 "\n", r.ckpt_path, r.step);
    } else if (cfg->init) {
        if ((st = lpm_weights_load(&r.t.w, cfg->init))) goto done;
    } else if ((st = lpm_weights_init(&r.t.w, cfg->seed))) {
        goto done;
    }
    if (cfg->cuda) {
        if (!(r.gpu = lpm_cuda_trainer_create(size[0], size[1], size[2]))) {
            st = LPM_ERR_INTERNAL;
            goto done;
        }
        if ((st = lpm_cuda_trainer_set(r.gpu, r.t.w.data, r.t.adam.m, r.t.adam.v, r.t.adam.t))) goto done;
    }
    if ((st = open_log(&r, r.csv_path, CSV_HEADER, &csv))) goto done;
    if (cfg->val_every > 0 && (st = open_log(&r, r.val_path, "step,ssim,fusion_loss\n", &valcsv))) goto done;
    if (!cfg->quiet)
        fprintf(stderr, "lpmnet train: %d training case(s)%s, %lldx%lldx%lld samples, %" PRId64 " steps (%" PRId64 " epochs), %d thread(s)\n",
                r.train.n, cfg->val_every > 0 ? "" : ", no validation", (long long)size[0], (long long)size[1],
                (long long)size[2], cfg->iters, r.n_epochs, lpm_get_threads());
    if (r.step >= cfg->iters) goto done;
    if ((st = lpm_loader_start(&loader, &r.train, &cfg->sample, cfg->seed, r.step))) goto done;

    stop_requested = 0;
    void (*old_int)(int) = signal(SIGINT, on_signal);
    void (*old_term)(int) = signal(SIGTERM, on_signal);
    lpm_loss_weights lw = run_weights(cfg, 0.0);  /* lambda_s set per step */
    double t_start = lpm_seconds(), t_ckpt = t_start;
    int64_t first_step = r.step, last_saved = r.step;
    lpm_loss_terms terms = {0};
    while (r.step < cfg->iters && !stop_requested) {
        double t0 = lpm_seconds();
        lpm_sample s;
        if ((st = lpm_loader_next(&loader, &s))) break;
        int64_t epoch = r.step / r.train.n, s_in_epoch = r.step % r.train.n;
        double lr = lpm_cosine_lr(cfg->lr, epoch, r.n_epochs);
        lw.lambda_s = lpm_lambda_s(s_in_epoch, r.n_epochs);
        lpm_rng mask_rng;  /* masks are a function of (seed, step): resumable */
        lpm_rng_seed(&mask_rng, cfg->seed * 0x2545F4914F6CDD1DULL + (uint64_t)r.step);
        st = r.gpu ? lpm_cuda_train_step(r.gpu, s.a, s.b, NULL, NULL, &mask_rng, cfg->rec, &lw, lr, &terms)
                   : lpm_train_step(&r.t, s.a, s.b, NULL, NULL, &mask_rng, cfg->rec, &lw, lr, &terms);
        lpm_sample_free(&s);
        if (st) break;
        if (!isfinite(terms.total)) {
            st = lpm_fail(LPM_ERR_INTERNAL, "step %" PRId64 ": the loss is not finite (%g); try a lower --lr",
                          r.step + 1, terms.total);
            break;
        }
        r.step++;
        fprintf(csv, "%" PRId64 ",%" PRId64 ",%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.4f,%.8g\n", r.step,
                epoch, lr, terms.total, terms.mse_af, terms.mse_bf, terms.ssim_af, terms.ssim_bf, terms.ssim_adet,
                terms.ssim_bdet, terms.sf_f, terms.mse_rec, lw.lambda_s, lpm_seconds() - t0, terms.edge_f);
        fflush(csv);
        if (cfg->val_every > 0 && r.step % cfg->val_every == 0) {
            double vs, vl;
            if ((st = validate(&r, &vs, &vl))) break;
            fprintf(valcsv, "%" PRId64 ",%.8g,%.8g\n", r.step, vs, vl);
            fflush(valcsv);
            if (vs > r.best_ssim) {  /* the best model so far, as the authors keep it */
                r.best_ssim = vs;
                if ((st = lpm_weights_save(&r.t.w, r.best_path))) break;
            }
        }
        progress_line(&r, first_step, t_start, &terms, 0);
        double now = lpm_seconds();
        if (r.step % cfg->ckpt_every == 0 || now - t_ckpt >= cfg->ckpt_seconds || r.step == cfg->iters) {
            if ((st = save_checkpoint(&r))) break;
            last_saved = r.step, t_ckpt = now;
        }
    }
    if (!st && r.step != last_saved) st = save_checkpoint(&r);
    progress_line(&r, first_step, t_start, &terms, 1);
    if (stop_requested && !st && !cfg->quiet)
        fprintf(stderr, "lpmnet train: stopped at step %" PRId64 "; checkpoint saved, continue with --resume\n", r.step);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);

done:
    lpm_loader_stop(&loader);
    if (csv) fclose(csv);
    if (valcsv) fclose(valcsv);
    lpm_trainer_free(&r.t);
    if (r.gpu) lpm_cuda_trainer_free(r.gpu);
    lpm_dataset_free(&r.train);
    lpm_dataset_free(&r.val);
    return st;
}
