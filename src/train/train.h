/* Training LPM-Net: one step (both passes, backward, Adam) and the resumable loop. */
#ifndef LPM_TRAIN_H
#define LPM_TRAIN_H

#include "../model/model.h"
#include <signal.h>  /* sig_atomic_t */
#include "adam.h"
#include "data.h"
#include "loss.h"

/* Everything one training step needs for a fixed sample size (D,H,W multiples of 16). */
typedef struct {
    int64_t D, H, W;
    lpm_weights w, grad;      /* the parameters and their gradients (same flat layout) */
    lpm_params p, g;          /* named views of w and grad */
    lpm_adam adam;
    lpm_net *net;
    float *fused, *base, *detail, *recon;   /* (D,H,W) x3 and (2,D,H,W) */
    float *dF, *dDet, *dR;
    float *am, *bm, *m1, *m2;               /* masked inputs and masks */
} lpm_trainer;

/* Allocate for samples of size D,H,W; weights zeroed (load or init them into t->w). */
lpm_status lpm_trainer_init(lpm_trainer *t, int64_t D, int64_t H, int64_t W);
void lpm_trainer_free(lpm_trainer *t);

/* One step on the pair (a, b), each (D,H,W) in [0,1]:
 *   fusion pass: forward (fused, base, detail), loss terms, backward;
 *   reconstruction pass: a*m1, b*m2 through the same network and cfc_mask, MSE against
 *   [a, b], backward (masks given, or drawn from rng with drop probability rec when
 *   m1 == NULL);
 *   then Adam with learning rate lr. terms gets every loss term and the total. */
lpm_status lpm_train_step(lpm_trainer *t, const float *a, const float *b, const float *m1,
                          const float *m2, lpm_rng *rng, double rec, const lpm_loss_weights *lw,
                          double lr, lpm_loss_terms *terms);

/* The same step without the Adam update: t->grad receives the gradient of this one sample
 * (overwritten) and terms its loss terms. lpm_train_step is this, then Adam on t->grad. */
lpm_status lpm_train_grad(lpm_trainer *t, const float *a, const float *b, const float *m1,
                          const float *m2, lpm_rng *rng, double rec, const lpm_loss_weights *lw,
                          lpm_loss_terms *terms);

/* lpm_train_comm, one process's part in a data-parallel run (the caller's allgather), is
 * public: include/lpmnet.h. */

/* A device that keeps the weights and Adam state and takes whole steps itself, one sample
 * each (the CUDA backend: lpm_cuda_train_device() in src/cuda/cuda.h). The caller passes it,
 * so the training loop depends on no backend. */
typedef struct {
    void *(*create)(int64_t D, int64_t H, int64_t W);  /* NULL on failure (message recorded) */
    /* weights (LPM_NUM_PARAMS floats) and Adam state in (set) and out (get) */
    lpm_status (*set)(void *dev, const float *w, const float *adam_m, const float *adam_v, int64_t adam_t);
    lpm_status (*get)(void *dev, float *w, float *adam_m, float *adam_v, int64_t *adam_t);
    /* one step on host volumes a, b (D,H,W) in [0,1], as lpm_train_step without masks */
    lpm_status (*step)(void *dev, const float *a, const float *b, lpm_rng *mask_rng, double rec,
                       const lpm_loss_weights *lw, double lr, lpm_loss_terms *terms);
    void (*destroy)(void *dev);
} lpm_train_device;

/* The command-line training run (lpmnet train). A zeroed field means the default (NULL
 * strings: none; batch 0: one sample per step; comm NULL: one process). The data order,
 * crops, flips and masks are functions of (seed, sample index), sample index = step * batch +
 * position in the batch, so a run gives the same weights on any number of processes (the
 * per-sample gradients are summed in sample order) and resumes exactly. */
typedef struct {
    const char *data, *pair, *mask_key, *out, *init, *val;
    lpm_sample_spec sample;
    int64_t iters;            /* total steps (authors: 3000) */
    int64_t val_every;        /* 0: no validation */
    int64_t ckpt_every;       /* steps between checkpoints (also every ckpt_seconds); 0: 25 */
    double ckpt_seconds;      /* 0: 300 */
    double lr, alpha, beta, gamma, edge, rec;  /* edge: lpmnet's edge-fidelity weight, 0 = authors' */
    double target;            /* lpmnet's fusion-target weight (lpm_fusion_target), 0 = authors' */
    double qabf;              /* lpmnet's edge-preservation weight (lpm_qabf), 0 = authors' */
    double sf_match;          /* lpmnet's spatial-frequency weight (lpm_sf_match), 0 = authors' */
    uint64_t seed;
    int resume;
    int force;                /* resume even when the data or options differ from the checkpoint's record */
    const lpm_train_device *device; /* NULL: the CPU */
    int threads;
    int quiet;                /* no notes on stderr (the library prints no progress: on_step) */
    /* A flag the caller sets to stop (e.g. from its SIGINT handler): every process stops after
     * the step under way, the checkpoint is saved and lpm_train_run returns LPM_OK. NULL: none. */
    volatile sig_atomic_t *stop;
    int64_t batch;            /* samples per step over all processes; gradients summed in sample
                               * order, then divided by batch (their mean); 0 or 1: one sample */
    const lpm_train_comm *comm; /* NULL (or size 1): one process. Otherwise each process computes
                               * the gradients of its share of every batch (samples
                               * [rank*batch/size, (rank+1)*batch/size)), and validation cases
                               * likewise; rank 0 alone writes the files of the run */
    /* Called on rank 0 after every step, once its train.csv row is written: step (done so
     * far), iters, epoch, the step's learning rate, its seconds and its (batch-mean) loss
     * terms. Return 0 to go on; non-zero stops the run after this step as SIGINT does (the
     * checkpoint is saved, lpm_train_run returns LPM_OK). NULL: none. */
    int (*on_step)(void *ctx, int64_t step, int64_t iters, int64_t epoch, double lr, double seconds,
                   const lpm_loss_terms *terms);
    void *on_step_ctx;
} lpm_train_config;

lpm_status lpm_train_run(const lpm_train_config *cfg);

#endif
