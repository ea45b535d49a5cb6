/* Training data: datasets of co-registered pairs, augmentation, and the loader thread. */
#ifndef LPM_DATA_H
#define LPM_DATA_H

#include "../core/core.h"
#include <pthread.h>

/* A list of cases, each a pair of volume files (and an optional mask). */
typedef struct {
    int n;
    char **name;   /* case name (subject folder or CSV row) */
    char **a, **b; /* paths */
    char **mask;   /* paths or NULL entries */
    char **out;    /* a CSV's out column (lpmnet fuse --list): paths or NULL entries; NULL when
                    * no case has one */
} lpm_dataset;

/* spec is (a) a folder of subject folders (or one subject folder) whose NIfTI files carry the
 * modality key as a word of the file name ("BraTS-00001-t1n.nii.gz", "sub_t2.nii", "t1.nii.gz",
 * "Flair_subtrMeanDivStd.nii.gz"; words split at '_', '-', '.', case-insensitive), with
 * pair = "KEYA,KEYB" (and mask_key, may be NULL); or (b) a .csv file with a header "a,b",
 * "a,b,mask", "a,b,out" or "a,b,mask,out" and paths relative to the CSV's folder (out is read
 * for lpmnet fuse --list; training ignores it); its cases are named "rowN", N the line number
 * minus one. split: NULL for all cases, "train" or
 * "test" to apply the authors' IndicesTrain.txt / IndicesTest.txt found in the folder (each
 * line a 0-based index into the sorted subject list, or a subject name); with no such file,
 * every case is in both. Subjects lacking a modality are skipped with a note on stderr. */
lpm_status lpm_dataset_open(lpm_dataset *ds, const char *spec, const char *pair,
                            const char *mask_key, const char *split);
void lpm_dataset_free(lpm_dataset *ds);
/* Check every case before work starts, from the headers only: each file readable as a 3-D
 * NIfTI volume, A, B (and the mask) on one grid, and, when crop is not NULL, every side at
 * least the crop's (D,H,W). The message names the case and file. */
lpm_status lpm_dataset_check(const lpm_dataset *ds, const int64_t *crop);

/* Identity of the case list for a checkpoint's record: each case's file names (relative to
 * the dataset folder, or to the CSV's folder) and file sizes, hashed (FNV-1a 64). spec is
 * what lpm_dataset_open was given. */
lpm_status lpm_dataset_hash(const lpm_dataset *ds, const char *spec, uint64_t *hash);

/* How a training sample is made from a case. */
typedef struct {
    int64_t shape[3];  /* resize the whole volume to D,H,W (authors), when mode == 0 */
    int64_t crop[3];   /* random crop D,H,W, when mode == 1 */
    int mode;          /* 0 resize, 1 crop */
    int flip;          /* random flip of each axis with p = 0.5 (same for A and B) */
} lpm_sample_spec;

/* One sample: A and B as (D,H,W) in [0,1]. */
typedef struct {
    int64_t D, H, W;
    float *a, *b;
    int case_index;
} lpm_sample;
void lpm_sample_free(lpm_sample *s);

/* Read case i and make a sample (flip, min-max normalise, resize or crop), with randomness
 * from rng only, so a sample is a function of (case, rng state). A case with a mask is
 * normalised inside the mask and set to 0 outside it. */
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
