/* Training data: datasets of co-registered pairs, augmentation, and the loader thread. */
#ifndef LPM_DATA_H
#define LPM_DATA_H

#include "../core/core.h"
#include "../prep/prep.h"
#include <pthread.h>

/* Datasets (lpm_dataset, lpm_case, lpm_dataset_open, lpm_dataset_free, lpm_dataset_check) are
 * public: include/lpmnet.h. What training adds to them follows. */

/* Identity of the case list for a checkpoint's record: each case's file names (relative to
 * the dataset folder, or to the CSV's folder) and file sizes, hashed (FNV-1a 64). spec is
 * what lpm_dataset_open was given. */
lpm_status lpm_dataset_hash(const lpm_dataset *ds, const char *spec, uint64_t *hash);

/* A sample's random augmentations, each off when zero. */
typedef struct {
    int flip;          /* random flip of each axis with p = 0.5 (same for A and B) */
    double gamma_max;  /* > 1: A and B each raised to its own random power g, log-uniform in
                        * [1/gamma_max, gamma_max], after the crop (0 and 1 stay); else none */
    double noise_max;  /* > 0: A and B each get Gaussian noise of their own standard deviation,
                        * uniform in [0, noise_max], on their nonzero voxels, clipped to [0, 1] */
    int rotate;        /* 1: A and B turned alike by 0-3 quarter turns in the (H, W) plane; the
                        * sample's H and W must be equal */
} lpm_augment;

/* How a training sample is made from a case. */
typedef struct {
    int64_t shape[3];  /* resize the whole volume to D,H,W (authors), when mode == 0 */
    int64_t crop[3];   /* random crop D,H,W, when mode == 1 */
    int mode;          /* 0 resize, 1 crop */
    lpm_augment aug;   /* random changes of the sample; zero: none (validation) */
    lpm_prep prep;     /* how A and B are brought to [0, 1] (lpm_prep_inputs); zero: min-max */
} lpm_sample_spec;

/* One sample: A and B as (D,H,W) in [0,1]. */
typedef struct {
    int64_t D, H, W;
    float *a, *b;
    int case_index;
} lpm_sample;
void lpm_sample_free(lpm_sample *s);

/* Read case i and make a sample (flip, min-max normalise, resize or crop, quarter turn,
 * random contrast curve, noise), with randomness from rng only, so a sample is a function
 * of (case, rng state). The pair is brought to [0, 1] as spec->prep says (lpm_prep_inputs):
 * inside the case's mask, 0 outside, when it has one. */
lpm_status lpm_make_sample(lpm_sample *out, const lpm_dataset *ds, int i,
                           const lpm_sample_spec *spec, lpm_rng *rng);

/* Trilinear resize of a (D,H,W) volume to (d,h,w) as scikit-image's
 * resize(order=1, anti_aliasing=True): Gaussian pre-smoothing with sigma (factor-1)/2 on
 * axes that shrink, then linear interpolation on pixel centres
 * (x_in = (x_out + 0.5) * in/out - 0.5, mirrored at the edges as scipy's 'mirror'). */
lpm_status lpm_resize(float *out, int64_t d, int64_t h, int64_t w, const float *in, int64_t D,
                      int64_t H, int64_t W);

/* Seeded order of the n cases for an epoch (a permutation; same seed and epoch, same order). */
void lpm_epoch_order(int *order, int n, uint64_t seed, int64_t epoch);

/* A loader thread that makes the next sample while the caller computes on the current one.
 * Sample k uses case order[k mod n] of its epoch and an RNG seeded from (seed, k), so the
 * stream is reproducible and resumable from any k. A loader may also take only a share of
 * every step's samples (lpm_loader_start_share): with a batch of B samples per step, step s
 * holds samples s*B .. s*B + B - 1, and a process of a data-parallel run makes only its own
 * count of them, from s*B + first on. */
typedef struct {
    const lpm_dataset *ds;
    lpm_sample_spec spec;
    uint64_t seed;
    int64_t steps_per_epoch;   /* = ds->n */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_k;            /* index of the sample being/just made */
    int64_t batch, first, count, first_step, taken;  /* the share (lpm_loader_start_share) */
    int ready, stop, running;
    lpm_status status;
    char error[1024];
    lpm_sample slot;
} lpm_loader;
lpm_status lpm_loader_start(lpm_loader *L, const lpm_dataset *ds, const lpm_sample_spec *spec,
                            uint64_t seed, int64_t first_k);
/* Samples (first_step + i / count) * batch + first + i % count for i = 0, 1, ...: this
 * process's share of each step from first_step on (lpm_loader_start is batch 1, count 1). */
lpm_status lpm_loader_start_share(lpm_loader *L, const lpm_dataset *ds, const lpm_sample_spec *spec,
                                  uint64_t seed, int64_t first_step, int64_t batch, int64_t first,
                                  int64_t count);
/* Take the next sample of the stream; the caller owns it (lpm_sample_free). */
lpm_status lpm_loader_next(lpm_loader *L, lpm_sample *out);
void lpm_loader_stop(lpm_loader *L);

#endif
