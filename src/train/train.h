/* Training LPM-Net: one step (both passes, backward, Adam) and the resumable loop. */
#ifndef LPM_TRAIN_H
#define LPM_TRAIN_H

#include "../model/model.h"
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

/* The command-line training run (lpmnet train). */
typedef struct {
    const char *data, *pair, *mask_key, *out, *init, *val;
    lpm_sample_spec sample;
    int64_t iters;            /* total steps (authors: 3000) */
    int64_t val_every;        /* 0: no validation */
    int64_t ckpt_every;       /* steps between checkpoints (also every ckpt_seconds) */
    double ckpt_seconds;
    double lr, alpha, beta, gamma, edge, rec;  /* edge: lpmnet's edge-fidelity weight, 0 = authors' */
    uint64_t seed;
    int resume;
    int force;                /* resume even when the data or options differ from the checkpoint's record */
    int cuda;                 /* train on the GPU (src/cuda) */
    int threads;
    int quiet;
} lpm_train_config;

lpm_status lpm_train_run(const lpm_train_config *cfg);

#endif
