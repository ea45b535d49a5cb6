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

lpm_status lpm_train_grad(lpm_trainer *t, const float *a, const float *b, const float *m1,
                          const float *m2, lpm_rng *rng, double rec, const lpm_loss_weights *lw,
                          lpm_loss_terms *terms) {
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
    return LPM_OK;
}

lpm_status lpm_train_step(lpm_trainer *t, const float *a, const float *b, const float *m1,
                          const float *m2, lpm_rng *rng, double rec, const lpm_loss_weights *lw,
                          double lr, lpm_loss_terms *terms) {
    lpm_status st = lpm_train_grad(t, a, b, m1, m2, rng, rec, lw, terms);
    if (st) return st;
    lpm_adam_step(&t->adam, t->w.data, t->grad.data, lr);
    return LPM_OK;
}

/* ------------------------------------------------------------------ the run */

#include "../io/io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const lpm_train_config *cfg;
    lpm_trainer t;            /* host weights, Adam state and (for validation) the CPU net */
    void *gpu;                /* cfg->device's state: the weights and Adam state live there */
    lpm_dataset train, val;
    int64_t step;             /* steps done */
    int64_t n_epochs;         /* E = iters / n_train + 1 (authors) */
    double best_ssim;         /* best validation SSIM so far (-1: none) */
    uint64_t data_hash;       /* the training case list's identity (lpm_dataset_hash) */
    int64_t batch;            /* samples per step over all processes */
    int64_t ckpt_every;       /* cfg's, 0 meaning 25 */
    double ckpt_seconds;      /* cfg's, 0 meaning 300 */
    int rank, size;           /* this process of cfg->comm, and their number (0 and 1 without) */
    int talk;                 /* notes on stderr: rank 0 without --quiet */
    double comm_seconds;      /* time spent sending and receiving gradients (and validation
                               * results) to and from the other processes, this step */
    double wait_seconds;      /* time spent in the status exchange before that: mostly waiting
                               * for the slowest process to finish its share */
    char ckpt_path[4200], model_path[4200], csv_path[4200], val_path[4200], best_path[4200];
} run_state;

/* seconds: the step's wall time; comm_seconds: its part spent exchanging gradients (and
 * validation results) with the other processes of a data-parallel run; wait_seconds: its part
 * spent in the status exchange before, waiting for the slowest process (both 0 in one process). */
static const char *CSV_HEADER =
    "step,epoch,lr,loss,mse_af,mse_bf,ssim_af,ssim_bf,ssim_adet,ssim_bdet,sf_f,mse_rec,lambda_s,seconds,edge_f,"
    "comm_seconds,wait_seconds,target_f,qabf_f,sf_ratio\n";

/* Bring the GPU's weights and Adam state to the host copy (checkpoints, validation). */
static lpm_status sync_from_gpu(run_state *r) {
    return r->gpu ? r->cfg->device->get(r->gpu, r->t.w.data, r->t.adam.m, r->t.adam.v, &r->t.adam.t) : LPM_OK;
}

/* The data and the options that define a run, as its checkpoint records them: resuming with
 * other data or options would silently continue a different run. */
enum { RECORD_KEYS = 22 };
typedef struct {
    const char *key;      /* metadata key */
    const char *option;   /* what the user changes, for messages */
    const char *absent;   /* the value a checkpoint without the key implies (written before the
                           * option existed), or NULL: it must be there */
    char value[160];
} record_entry;

static void run_record(const run_state *r, record_entry e[RECORD_KEYS]) {
    const lpm_train_config *c = r->cfg;
    const lpm_sample_spec *sp = &c->sample;
    const int64_t *size = sp->mode == 1 ? sp->crop : sp->shape;
    int i = 0;
#define ENTRY_SINCE(k, opt, absent_, ...) \
    (e[i].key = k, e[i].option = opt, e[i].absent = absent_, snprintf(e[i].value, sizeof e[i].value, __VA_ARGS__), i++)
#define ENTRY(k, opt, ...) ENTRY_SINCE(k, opt, NULL, __VA_ARGS__)
    ENTRY("data_hash", "--data (the case list: file names and sizes)", "%016" PRIx64, r->data_hash);
    ENTRY("cases", "--data (the number of cases)", "%d", r->train.n);
    ENTRY("pair", "--pair", "%s", c->pair ? c->pair : "");
    ENTRY("mask_key", "--mask-key", "%s", c->mask_key ? c->mask_key : "");
    ENTRY("sample", "--crop/--shape", "%s %lld,%lld,%lld", sp->mode == 1 ? "crop" : "shape", (long long)size[0],
          (long long)size[1], (long long)size[2]);
    const lpm_augment *aug = &sp->aug;
    ENTRY("flip", "--no-flip", "%d", aug->flip);
    ENTRY_SINCE("aug_gamma", "--aug-gamma", "1", "%.17g", aug->gamma_max > 1 ? aug->gamma_max : 1.0);
    ENTRY_SINCE("aug_noise", "--aug-noise", "0", "%.17g", aug->noise_max > 0 ? aug->noise_max : 0.0);
    ENTRY_SINCE("aug_rotate", "--aug-rotate", "0", "%d", aug->rotate);
    ENTRY("seed", "--seed", "%" PRIu64, c->seed);
    ENTRY("iters", "--iters", "%" PRId64, c->iters);
    ENTRY("lr", "--lr", "%.17g", c->lr);
    ENTRY("alpha", "--alpha", "%.17g", c->alpha);
    ENTRY("beta", "--beta", "%.17g", c->beta);
    ENTRY("gamma", "--gamma", "%.17g", c->gamma);
    ENTRY("edge", "--edge", "%.17g", c->edge);
    ENTRY_SINCE("target", "--target", "0", "%.17g", c->target);
    ENTRY_SINCE("qabf", "--qabf", "0", "%.17g", c->qabf);
    ENTRY_SINCE("sf_match", "--sf-match", "0", "%.17g", c->sf_match);
    ENTRY("rec", "--rec", "%.17g", c->rec);
    ENTRY_SINCE("batch", "--batch", "1", "%" PRId64, r->batch);  /* not the number of processes: any resumes */
    const lpm_prep *p = &sp->prep;
    if (p->ct_window)
        ENTRY_SINCE("scaling", "--ct-window/--clip", "min-max", "ct-window %.17g,%.17g clip %.17g,%.17g", p->ct_width,
              p->ct_level, p->clip ? p->clip_lo : 0, p->clip ? p->clip_hi : 100);
    else if (p->clip)
        ENTRY_SINCE("scaling", "--clip", "min-max", "clip %.17g,%.17g", p->clip_lo, p->clip_hi);
    else
        ENTRY_SINCE("scaling", "--clip/--ct-window", "min-max", "%s", "min-max");
#undef ENTRY
#undef ENTRY_SINCE
}

static lpm_status save_checkpoint(run_state *r) {
    const lpm_train_config *c = r->cfg;
    char step[32], adam_t[32], size[64], epochs[32], best[32];
    snprintf(step, sizeof step, "%" PRId64, r->step);
    snprintf(adam_t, sizeof adam_t, "%" PRId64, r->t.adam.t);
    snprintf(size, sizeof size, "%lld,%lld,%lld", (long long)r->t.D, (long long)r->t.H, (long long)r->t.W);
    snprintf(epochs, sizeof epochs, "%" PRId64, r->n_epochs);
    snprintf(best, sizeof best, "%.17g", r->best_ssim);
    record_entry rec[RECORD_KEYS];
    run_record(r, rec);
    const char *meta[2 * (7 + RECORD_KEYS)] = {"format", "lpmnet-checkpoint", "step", step, "adam_t", adam_t,
                                               "size", size, "epochs", epochs, "best_val_ssim", best,
                                               "data", c->data};
    int n_meta = 7;
    for (int i = 0; i < RECORD_KEYS; i++, n_meta++) {
        meta[2 * n_meta] = rec[i].key;
        meta[2 * n_meta + 1] = rec[i].value;
    }
    lpm_st_tensor ts[3] = {
        {"weights", 1, {LPM_NUM_PARAMS}, r->t.w.data},
        {"adam.m", 1, {LPM_NUM_PARAMS}, r->t.adam.m},
        {"adam.v", 1, {LPM_NUM_PARAMS}, r->t.adam.v},
    };
    lpm_status st = lpm_st_write(r->ckpt_path, ts, 3, meta, n_meta);
    if (!st) st = lpm_weights_save(&r->t.w, r->model_path);
    return st;
}

/* The checkpoint's record against this run's: every difference named, an error unless
 * --force (then a note). A checkpoint without a record (older lpmnet) is refused likewise. */
static lpm_status check_record(const run_state *r, const lpm_st_file *f) {
    const lpm_train_config *c = r->cfg;
    if (!lpm_st_meta(f, "data_hash")) {
        if (c->force) {
            fprintf(stderr, "lpmnet train: note: %s does not record its data and options; resuming anyway (--force)\n",
                    r->ckpt_path);
            return LPM_OK;
        }
        return lpm_fail(LPM_ERR_USAGE, "%s: this checkpoint does not record the data and options of its run "
                        "(an older lpmnet wrote it); pass --force to resume it with these anyway", r->ckpt_path);
    }
    record_entry rec[RECORD_KEYS];
    run_record(r, rec);
    char diff[2048] = "";
    size_t len = 0;
    for (int i = 0; i < RECORD_KEYS; i++) {
        const char *was = lpm_st_meta(f, rec[i].key);
        if (!was) was = rec[i].absent;
        if (was && !strcmp(was, rec[i].value)) continue;
        int n = snprintf(diff + len, sizeof diff - len, "%s%s (checkpoint %s, this run %s)", len ? "; " : "",
                         rec[i].option, was ? was : "not recorded", rec[i].value);
        if (n > 0) len = len + (size_t)n < sizeof diff ? len + (size_t)n : sizeof diff - 1;
    }
    if (!len) return LPM_OK;
    if (c->force) {
        fprintf(stderr, "lpmnet train: note: resuming %s with other data or options (--force): %s\n", r->ckpt_path, diff);
        return LPM_OK;
    }
    return lpm_fail(LPM_ERR_USAGE, "%s: this run differs from the checkpoint's: %s; resume with the same data and "
                    "options, or pass --force", r->ckpt_path, diff);
}


/* Index of the first value that is not finite (or, with limit > 0, beyond +-limit), or -1. */
static int64_t first_unusable(const float *v, size_t n, double limit) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (limit > 0 && fabs(v[i]) > limit)) return (int64_t)i;
    return -1;
}

/* "is not finite (inf)" or "is 2e+04, beyond the 10000 ..." for weight value x. */
static void describe_weight(float x, char *buf, size_t n) {
    if (!isfinite(x)) snprintf(buf, n, "is not finite (%g)", (double)x);
    else snprintf(buf, n, "is %g, beyond the %g a usable model stays within", (double)x, LPM_WEIGHT_MAX_ABS);
}

/* "Conv_in.weight[3]" for flat parameter index i. */
static void param_name(int64_t i, char *buf, size_t n) {
    const lpm_tensor_info *t = lpm_tensor_table();
    for (int k = 0; k < LPM_NUM_TENSORS; k++)
        if ((size_t)i >= t[k].offset && (size_t)i < t[k].offset + t[k].numel) {
            snprintf(buf, n, "%s[%zu]", t[k].name, (size_t)i - t[k].offset);
            return;
        }
    snprintf(buf, n, "parameter %" PRId64, i);
}

/* A checkpoint's weights and Adam moments must be finite: a NaN would spread through the
 * first step and be written back as the run's result. */
static lpm_status check_finite_state(const char *path, const float *w, const float *m, const float *v) {
    const float *arrays[3] = {w, m, v};
    const char *what[3] = {"weight", "Adam moment (adam.m of)", "Adam moment (adam.v of)"};
    for (int a = 0; a < 3; a++) {
        int64_t i = first_unusable(arrays[a], LPM_NUM_PARAMS, a == 0 ? LPM_WEIGHT_MAX_ABS : 0);
        if (i < 0) continue;
        char name[128], why[128];
        param_name(i, name, sizeof name);
        if (a == 0) describe_weight(arrays[a][i], why, sizeof why);
        else snprintf(why, sizeof why, "is not finite (%g)", (double)arrays[a][i]);
        return lpm_fail(LPM_ERR_INPUT, "%s: %s %s %s", path, what[a], name, why);
    }
    return LPM_OK;
}

static lpm_status load_checkpoint(run_state *r) {
    lpm_st_file *f = NULL;
    lpm_status st = lpm_st_read(r->ckpt_path, &f);
    if (st) return st;
    const char *step = lpm_st_meta(f, "step"), *adam_t = lpm_st_meta(f, "adam_t");
    if (!step || !adam_t) st = lpm_fail(LPM_ERR_INPUT, "%s: not an lpmnet checkpoint (no '%s')", r->ckpt_path,
                                        step ? "adam_t" : "step");
    if (!st) st = check_record(r, f);
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
    if (!st) st = check_finite_state(r->ckpt_path, r->t.w.data, r->t.adam.m, r->t.adam.v);
    if (!st) {
        r->step = strtoll(step, NULL, 10);
        r->t.adam.t = strtoll(adam_t, NULL, 10);
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
                              .lambda_s = lambda_s, .edge = c->edge, .target = c->target,
                              .qabf = c->qabf, .sf_match = c->sf_match};
}

/* ------------------------------------------------------------------ exchanges between processes
 * A data-parallel run (cfg->comm) exchanges, once per step, every process's status and its
 * items (per-sample gradients and loss terms; validation results), so that every process
 * stops together with the first failure's message, or sums the same items in the same order. */

/* What every process tells the others at each exchange, before its items. */
typedef struct {
    int32_t status;        /* lpm_status of this process's part */
    int32_t stop;          /* SIGINT or SIGTERM arrived here, or on_step asked to stop */
    char message[1016];    /* lpm_last_error() when status != 0 */
} exchange_header;         /* 1024 bytes: the items after it stay 8-byte aligned */

/* n items of item bytes each, process q holding items [share_begin(q), share_begin(q + 1)).
 * After exchange_run every process holds all of them. In one process nothing is copied:
 * the items stay where they were written. */
typedef struct {
    int64_t n;
    size_t item;
    unsigned char *send, *recv;
    size_t *counts, *offsets;    /* per process: its block's bytes, and where it starts in recv */
    exchange_header *headers;    /* every process's header (several processes only) */
    size_t *header_counts;
} exchange;

/* The first of the n items (or samples of a batch) that process rank computes. */
static int64_t share_begin(int64_t n, int rank, int size) { return n * rank / size; }

static void exchange_free(exchange *x) {
    if (x->recv != x->send) free(x->recv);
    free(x->send), free(x->counts), free(x->offsets), free(x->headers), free(x->header_counts);
    memset(x, 0, sizeof *x);
}

static lpm_status exchange_init(exchange *x, const run_state *r, int64_t n, size_t item) {
    memset(x, 0, sizeof *x);
    x->n = n;
    x->item = (item + 7) / 8 * 8;
    x->counts = calloc((size_t)r->size, sizeof(size_t));
    x->offsets = calloc((size_t)r->size, sizeof(size_t));
    if (!x->counts || !x->offsets) goto oom;
    size_t total = 0;
    for (int q = 0; q < r->size; q++) {
        int64_t count = share_begin(n, q + 1, r->size) - share_begin(n, q, r->size);
        x->counts[q] = sizeof(exchange_header) + (size_t)count * x->item;
        x->offsets[q] = total;
        total += x->counts[q];
    }
    if (!(x->send = malloc(x->counts[r->rank]))) goto oom;
    x->recv = r->size > 1 ? malloc(total) : x->send;
    if (!x->recv) goto oom;
    if (r->size > 1) {
        x->headers = calloc((size_t)r->size, sizeof *x->headers);
        x->header_counts = calloc((size_t)r->size, sizeof(size_t));
        if (!x->headers || !x->header_counts) goto oom;
        for (int q = 0; q < r->size; q++) x->header_counts[q] = sizeof(exchange_header);
    }
    return LPM_OK;
oom:
    exchange_free(x);
    return lpm_fail(LPM_ERR_INTERNAL, "out of memory for the exchange of %lld items of %zu bytes", (long long)n, item);
}

/* Where this process writes item i (one of its share). */
static void *exchange_mine(exchange *x, const run_state *r, int64_t i) {
    return x->send + sizeof(exchange_header) + (size_t)(i - share_begin(x->n, r->rank, r->size)) * x->item;
}

/* Item i after exchange_run, whichever process computed it. */
static const void *exchange_item(const exchange *x, const run_state *r, int64_t i) {
    int q = 0;
    while (q + 1 < r->size && share_begin(x->n, q + 1, r->size) <= i) q++;
    return x->recv + x->offsets[q] + sizeof(exchange_header) + (size_t)(i - share_begin(x->n, q, r->size)) * x->item;
}

/* Every process's status and stop flag to every process, then (when none failed or asked to
 * stop) every process's items. Returns the status of the lowest-ranked process that failed,
 * with its message (prefixed with its rank when there are several processes), on every
 * process; *stop becomes 1 everywhere when it was 1 anywhere (the items are then not sent).
 * The statuses go first, on their own, so that the time spent waiting for the slowest
 * process (wait_seconds) is told apart from the transfer of the items (comm_seconds). */
static lpm_status exchange_run(run_state *r, exchange *x, lpm_status mine, int *stop) {
    exchange_header h;
    memset(&h, 0, sizeof h);
    h.status = mine;
    h.stop = *stop;
    if (mine) snprintf(h.message, sizeof h.message, "%s", lpm_last_error());
    memcpy(x->send, &h, sizeof h);
    if (r->size <= 1) return mine;
    const lpm_train_comm *comm = r->cfg->comm;
    double t0 = lpm_seconds();
    lpm_status st = comm->allgather(comm->ctx, &h, x->headers, x->header_counts);
    r->wait_seconds += lpm_seconds() - t0;
    if (st) return st;
    lpm_status first = LPM_OK;
    for (int q = 0; q < r->size; q++) {
        h = x->headers[q];
        if (h.stop) *stop = 1;
        if (h.status && !first) {
            h.message[sizeof h.message - 1] = '\0';
            first = lpm_fail((lpm_status)h.status, "rank %d of %d: %s", q, r->size, h.message);
        }
    }
    if (first || *stop) return first;
    t0 = lpm_seconds();
    st = comm->allgather(comm->ctx, x->send, x->recv, x->counts);
    r->comm_seconds += lpm_seconds() - t0;
    return st;
}

/* An exchange of statuses alone: every process goes on, or every process stops with the
 * first failure's message. */
static lpm_status agree(run_state *r, lpm_status mine) {
    if (r->size <= 1) return mine;
    char message[1016];
    snprintf(message, sizeof message, "%s", mine ? lpm_last_error() : "");
    exchange x;
    lpm_status st = exchange_init(&x, r, 0, 0);
    if (st) return st;
    if (mine) lpm_fail(mine, "%s", message);  /* exchange_init may have overwritten it */
    int stop = 0;
    st = exchange_run(r, &x, mine, &stop);
    exchange_free(&x);
    return st;
}

/* Mean fusion SSIM, (SSIM(A,F) + SSIM(B,F))/2, and fusion loss over the validation cases:
 * each process scores its share of the cases; the sums run over all in case order. */
static lpm_status validate(run_state *r, double *ssim, double *loss) {
    exchange x;
    lpm_status st = exchange_init(&x, r, r->val.n, 2 * sizeof(double));
    if (st) return st;
    st = sync_from_gpu(r);
    lpm_sample_spec spec = r->cfg->sample;
    spec.aug = (lpm_augment){0};
    lpm_loss_weights lw = run_weights(r->cfg, 1.0);
    for (int64_t i = share_begin(r->val.n, r->rank, r->size); i < share_begin(r->val.n, r->rank + 1, r->size) && !st; i++) {
        lpm_sample s;
        lpm_rng rng;
        lpm_rng_seed(&rng, 12345 + (uint64_t)i);  /* the same crop at every validation */
        st = lpm_make_sample(&s, &r->val, (int)i, &spec, &rng);
        if (!st) st = lpm_net_forward(r->t.net, &r->t.p, s.a, s.b, 0, r->t.fused, r->t.base, r->t.detail, NULL, NULL);
        lpm_loss_terms terms = {0};
        if (!st) st = lpm_loss_fusion(&terms, &lw, s.a, s.b, r->t.fused, r->t.detail, s.D, s.H, s.W, NULL, NULL);
        lpm_sample_free(&s);
        if (st) break;
        terms.mse_rec = 0;
        double v[2] = {(terms.ssim_af + terms.ssim_bf) / 2, lpm_loss_total(&terms, &lw)};
        memcpy(exchange_mine(&x, r, i), v, sizeof v);
    }
    int stop = 0;
    st = exchange_run(r, &x, st, &stop);
    double s_sum = 0, l_sum = 0;
    for (int64_t i = 0; i < r->val.n && !st; i++) {
        double v[2];
        memcpy(v, exchange_item(&x, r, i), sizeof v);
        s_sum += v[0];
        l_sum += v[1];
    }
    exchange_free(&x);
    *ssim = s_sum / r->val.n;
    *loss = l_sum / r->val.n;
    return st;
}

/* The loss terms of a batch: sum (first: copy) in sample order, then divide by the count. */
static void add_terms(lpm_loss_terms *sum, const lpm_loss_terms *t, int first) {
#define TERM(f) sum->f = first ? t->f : sum->f + t->f
    TERM(mse_af), TERM(mse_bf), TERM(ssim_af), TERM(ssim_bf), TERM(ssim_adet), TERM(ssim_bdet);
    TERM(sf_f), TERM(edge_f), TERM(target_f), TERM(qabf_f), TERM(sf_ratio), TERM(mse_rec), TERM(total);
#undef TERM
}

static void divide_terms(lpm_loss_terms *t, double n) {
#define TERM(f) t->f /= n
    TERM(mse_af), TERM(mse_bf), TERM(ssim_af), TERM(ssim_bf), TERM(ssim_adet), TERM(ssim_bdet);
    TERM(sf_f), TERM(edge_f), TERM(target_f), TERM(qabf_f), TERM(sf_ratio), TERM(mse_rec), TERM(total);
#undef TERM
}

/* After the step that would be step r->step + 1: the loss and every weight must be finite
 * (and the weights within LPM_WEIGHT_MAX_ABS). Otherwise the run stops before anything is
 * written, so the checkpoint and model file stay those of step last_saved. The weights are
 * checked too: an update can overflow them while the loss it was computed from is still
 * finite, and the next checkpoint would keep them. */
static lpm_status check_step(const run_state *r, const lpm_loss_terms *terms, int64_t last_saved) {
    char what[512] = "";
    if (!isfinite(terms->total)) {
        snprintf(what, sizeof what, "the loss is not finite (%g)", terms->total);
    } else {
        int64_t i = first_unusable(r->t.w.data, LPM_NUM_PARAMS, LPM_WEIGHT_MAX_ABS);
        if (i < 0) return LPM_OK;
        char name[128], why[128];
        param_name(i, name, sizeof name);
        describe_weight(r->t.w.data[i], why, sizeof why);
        snprintf(what, sizeof what, "after the Adam update, weight %s %s", name, why);
    }
    char kept[4300];
    if (last_saved > 0)
        snprintf(kept, sizeof kept, "%s keeps step %" PRId64, r->ckpt_path, last_saved);
    else
        snprintf(kept, sizeof kept, "no checkpoint written");
    return lpm_fail(LPM_ERR_INPUT, "step %" PRId64 ": %s; stopped (%s); try a lower --lr or other loss weights",
                    r->step + 1, what, kept);
}

/* Everything before the first step: the data checked, the weights loaded or initialised,
 * the logs opened (rank 0). Every process does it; rank 0 alone writes. */
static lpm_status setup(run_state *r, FILE **csv, FILE **valcsv) {
    const lpm_train_config *cfg = r->cfg;
    const int64_t *size = cfg->sample.mode == 1 ? cfg->sample.crop : cfg->sample.shape;
    lpm_status st;
    if (r->batch < r->size)
        return lpm_fail(LPM_ERR_USAGE, "--batch %" PRId64 " with %d processes: each process needs at least one "
                        "sample per step; give --batch %d or more", r->batch, r->size, r->size);
    if (cfg->device && (r->batch > 1 || r->size > 1))
        return lpm_fail(LPM_ERR_USAGE, "--device cuda trains one sample per step in one process (--batch 1, "
                        "no mpirun)");

    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.safetensors", cfg->out);
    /* --resume without a checkpoint used to start over and overwrite the run's files */
    if (cfg->resume && lpm_check_input_file(r->ckpt_path)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lpm_last_error());
        return lpm_fail(LPM_ERR_INPUT, "--resume: %s; nothing to continue (drop --resume to start a new run)", msg);
    }
    if (!cfg->resume && access(r->ckpt_path, F_OK) == 0)
        return lpm_fail(LPM_ERR_USAGE, "%s already holds a checkpoint: pass --resume to continue it, or choose "
                        "another --out", cfg->out);
    if (r->rank == 0 && mkdir(cfg->out, 0755) != 0 && errno != EEXIST)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot create the output folder (%s)", cfg->out, strerror(errno));
    snprintf(r->model_path, sizeof r->model_path, "%s/model.safetensors", cfg->out);
    snprintf(r->csv_path, sizeof r->csv_path, "%s/train.csv", cfg->out);
    snprintf(r->val_path, sizeof r->val_path, "%s/val.csv", cfg->out);
    snprintf(r->best_path, sizeof r->best_path, "%s/best.safetensors", cfg->out);

    if ((st = lpm_dataset_open(&r->train, cfg->data, cfg->pair, cfg->mask_key, "train"))) return st;
    if (cfg->val_every > 0) {
        const char *spec = cfg->val ? cfg->val : cfg->data;
        if ((st = lpm_dataset_open(&r->val, spec, cfg->pair, cfg->mask_key, cfg->val ? NULL : "test"))) return st;
    }
    /* Every case is checked before the first step: a bad pair fails now, not hours in. */
    if ((st = lpm_dataset_check(&r->train, cfg->sample.mode == 1 ? cfg->sample.crop : NULL))) return st;
    if (r->val.n && (st = lpm_dataset_check(&r->val, cfg->sample.mode == 1 ? cfg->sample.crop : NULL))) return st;
    if ((st = lpm_dataset_hash(&r->train, cfg->data, &r->data_hash))) return st;
    if ((st = lpm_trainer_init(&r->t, size[0], size[1], size[2]))) return st;
    r->n_epochs = cfg->iters * r->batch / r->train.n + 1;

    if (cfg->resume) {
        if ((st = load_checkpoint(r))) return st;
        if (r->talk) fprintf(stderr, "lpmnet train: resuming %s at step %" PRId64 "\n", r->ckpt_path, r->step);
    } else if (cfg->init) {
        /* the loader refuses a FIFO, NaN/Inf and weights beyond LPM_WEIGHT_MAX_ABS */
        if ((st = lpm_weights_load(&r->t.w, cfg->init))) return st;
    } else if ((st = lpm_weights_init(&r->t.w, cfg->seed))) {
        return st;
    }
    if (cfg->device) {
        if (!(r->gpu = cfg->device->create(size[0], size[1], size[2]))) return LPM_ERR_INTERNAL;
        if ((st = cfg->device->set(r->gpu, r->t.w.data, r->t.adam.m, r->t.adam.v, r->t.adam.t))) return st;
    }
    if (r->rank == 0) {
        if ((st = open_log(r, r->csv_path, CSV_HEADER, csv))) return st;
        if (cfg->val_every > 0 && (st = open_log(r, r->val_path, "step,ssim,fusion_loss\n", valcsv))) return st;
    }
    if (r->talk) {
        fprintf(stderr, "lpmnet train: %d training case(s)%s, %lldx%lldx%lld samples, %" PRId64 " steps (%" PRId64
                " epochs), %d thread(s)", r->train.n, cfg->val_every > 0 ? "" : ", no validation",
                (long long)size[0], (long long)size[1], (long long)size[2], cfg->iters, r->n_epochs, lpm_get_threads());
        if (r->batch > 1) fprintf(stderr, ", %" PRId64 " samples per step", r->batch);
        if (r->size > 1) fprintf(stderr, " over %d processes", r->size);
        fputc('\n', stderr);
    }
    return LPM_OK;
}

/* Step r->step + 1 on this process's share of the batch: each sample's gradient and loss
 * terms into x (the GPU trainer instead takes its whole step, Adam included). */
static lpm_status compute_share(run_state *r, lpm_loader *loader, exchange *x, const lpm_loss_weights *lw,
                                double lr, lpm_loss_terms *gpu_terms) {
    const lpm_train_config *cfg = r->cfg;
    int64_t k0 = r->step * r->batch;
    for (int64_t j = share_begin(r->batch, r->rank, r->size); j < share_begin(r->batch, r->rank + 1, r->size); j++) {
        lpm_sample s;
        lpm_status st = lpm_loader_next(loader, &s);
        if (st) return st;
        lpm_rng mask_rng;  /* masks are a function of (seed, sample index): resumable */
        lpm_rng_seed(&mask_rng, cfg->seed * 0x2545F4914F6CDD1DULL + (uint64_t)(k0 + j));
        if (r->gpu) {
            st = cfg->device->step(r->gpu, s.a, s.b, &mask_rng, cfg->rec, lw, lr, gpu_terms);
        } else {
            lpm_loss_terms terms = {0};
            st = lpm_train_grad(&r->t, s.a, s.b, NULL, NULL, &mask_rng, cfg->rec, lw, &terms);
            unsigned char *item = exchange_mine(x, r, j);
            memcpy(item, &terms, sizeof terms);
            memcpy(item + sizeof terms, r->t.grad.data, sizeof(float) * LPM_NUM_PARAMS);
        }
        lpm_sample_free(&s);
        if (st) return st;
    }
    return LPM_OK;
}

/* The batch's mean gradient (summed in sample order, then divided by the batch) into sum,
 * its mean loss terms into terms; then Adam. The same on every process. */
static void apply_batch(run_state *r, const exchange *x, float *sum, lpm_loss_terms *terms, double lr) {
    for (int64_t j = 0; j < r->batch; j++) {
        const unsigned char *item = exchange_item(x, r, j);
        lpm_loss_terms tj;
        memcpy(&tj, item, sizeof tj);
        add_terms(terms, &tj, j == 0);
        const float *g = (const float *)(item + sizeof tj);
        if (j == 0) memcpy(sum, g, sizeof(float) * LPM_NUM_PARAMS);
        else
            for (size_t i = 0; i < LPM_NUM_PARAMS; i++) sum[i] += g[i];
    }
    if (r->batch > 1) {
        for (size_t i = 0; i < LPM_NUM_PARAMS; i++) sum[i] /= (float)r->batch;
        divide_terms(terms, (double)r->batch);
    }
    lpm_adam_step(&r->t.adam, r->t.w.data, sum, lr);
}

lpm_status lpm_train_run(const lpm_train_config *cfg) {
    const lpm_train_comm *comm = cfg->comm && cfg->comm->size > 1 ? cfg->comm : NULL;
    run_state r = {.cfg = cfg, .best_ssim = -1, .batch = cfg->batch > 1 ? cfg->batch : 1,
                   .ckpt_every = cfg->ckpt_every > 0 ? cfg->ckpt_every : 25,
                   .ckpt_seconds = cfg->ckpt_seconds > 0 ? cfg->ckpt_seconds : 300,
                   .rank = comm ? comm->rank : 0, .size = comm ? comm->size : 1};
    r.talk = !cfg->quiet && r.rank == 0;
    lpm_loader loader = {0};
    exchange x = {0};
    float *grad_sum = NULL;
    FILE *csv = NULL, *valcsv = NULL;

    /* every process set up, or every process stops with the first failure's message */
    lpm_status st = agree(&r, setup(&r, &csv, &valcsv));
    if (st || r.step >= cfg->iters) goto done;
    if (!(grad_sum = lpm_malloc(LPM_NUM_PARAMS, sizeof(float)))) st = LPM_ERR_INTERNAL;
    if (!st) st = exchange_init(&x, &r, r.batch, sizeof(lpm_loss_terms) + sizeof(float) * LPM_NUM_PARAMS);
    if (!st) st = lpm_loader_start_share(&loader, &r.train, &cfg->sample, cfg->seed, r.step, r.batch,
                                         share_begin(r.batch, r.rank, r.size),
                                         share_begin(r.batch, r.rank + 1, r.size) - share_begin(r.batch, r.rank, r.size));
    if ((st = agree(&r, st))) goto done;

    lpm_loss_weights lw = run_weights(cfg, 0.0);  /* lambda_s set per step */
    double t_ckpt = lpm_seconds();
    int64_t last_saved = r.step;
    lpm_loss_terms terms = {0};
    lpm_status pending = LPM_OK;  /* rank 0's failed write, told to the others at the next exchange */
    int hook_stop = 0;            /* cfg->on_step asked to stop (rank 0), told at the next exchange */
    while (r.step < cfg->iters) {
        double t0 = lpm_seconds();
        r.comm_seconds = r.wait_seconds = 0;
        int64_t k0 = r.step * r.batch;  /* the batch's first sample */
        int64_t epoch = k0 / r.train.n, s_in_epoch = (k0 % r.train.n) / r.batch;
        double lr = lpm_cosine_lr(cfg->lr, epoch, r.n_epochs);
        lw.lambda_s = lpm_lambda_s(s_in_epoch, r.n_epochs);
        int stop = (cfg->stop && *cfg->stop) || hook_stop;
        lpm_status mine = pending;
        if (!mine && !stop) mine = compute_share(&r, &loader, &x, &lw, lr, &terms);
        if ((st = exchange_run(&r, &x, mine, &stop)) || stop) break;
        if (r.gpu) st = sync_from_gpu(&r);
        else apply_batch(&r, &x, grad_sum, &terms, lr);
        if (st || (st = check_step(&r, &terms, last_saved))) break;
        r.step++;
        if (r.rank == 0) {
            fprintf(csv, "%" PRId64 ",%" PRId64 ",%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.4f,%.8g,%.6f,%.6f,%.8g,%.8g,%.8g\n",
                    r.step, epoch, lr, terms.total, terms.mse_af, terms.mse_bf, terms.ssim_af, terms.ssim_bf,
                    terms.ssim_adet, terms.ssim_bdet, terms.sf_f, terms.mse_rec, lw.lambda_s, lpm_seconds() - t0,
                    terms.edge_f, r.comm_seconds, r.wait_seconds, terms.target_f, terms.qabf_f, terms.sf_ratio);
            fflush(csv);
            if (cfg->on_step && cfg->on_step(cfg->on_step_ctx, r.step, cfg->iters, epoch, lr, lpm_seconds() - t0, &terms))
                hook_stop = 1;
        }
        if (cfg->val_every > 0 && r.step % cfg->val_every == 0) {
            double vs, vl;
            if ((st = validate(&r, &vs, &vl))) break;
            if (r.rank == 0) {
                fprintf(valcsv, "%" PRId64 ",%.8g,%.8g\n", r.step, vs, vl);
                fflush(valcsv);
            }
            if (vs > r.best_ssim) {  /* the best model so far, as the authors keep it */
                r.best_ssim = vs;
                if (r.rank == 0 && !pending) pending = lpm_weights_save(&r.t.w, r.best_path);
            }
        }
        double now = lpm_seconds();
        if (r.rank == 0 && !pending &&
            (r.step % r.ckpt_every == 0 || now - t_ckpt >= r.ckpt_seconds || r.step == cfg->iters)) {
            if (!(pending = save_checkpoint(&r))) last_saved = r.step, t_ckpt = now;
        }
        if (pending && r.size == 1) break;
    }
    /* A failed step, exchange or validation is known to every process already; rank 0's last
     * writes are told to the others here. */
    if (!st) {
        st = pending;
        if (!st && r.rank == 0 && r.step != last_saved) st = save_checkpoint(&r);
        st = agree(&r, st);
    }

done:
    lpm_loader_stop(&loader);
    exchange_free(&x);
    free(grad_sum);
    if (csv) fclose(csv);
    if (valcsv) fclose(valcsv);
    lpm_trainer_free(&r.t);
    if (r.gpu) cfg->device->destroy(r.gpu);
    lpm_dataset_free(&r.train);
    lpm_dataset_free(&r.val);
    return st;
}
