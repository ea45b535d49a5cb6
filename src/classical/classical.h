/* Classical 3-D fusion of two volumes on one grid: the baselines LPM-Net is compared with.
 * Inputs are float (D,H,W) volumes already normalised to [0, 1]; the output is clamped to
 * [0, 1]. Every method works for any size >= 1 along every axis. */
#ifndef LPM_CLASSICAL_H
#define LPM_CLASSICAL_H

#include "core/core.h"

/* lpm_classical_names, lpm_classical_known and lpm_classical_fuse are public (lpmnet.h). */

/* PCA fusion weights (w[0] for a, w[1] for b, sum 1, both >= 0): the principal eigenvector
 * of the covariance of (a, b), absolute values normalised; 0.5/0.5 when both are constant. */
void lpm_pca_weights(const float *a, const float *b, int64_t n, double w[2]);

/* ---- the transforms themselves (exposed for the tests) */

/* In-place orthonormal 3-D db2 DWT of x (D,H,W), levels levels, periodic extension, Mallat
 * layout (the approximation in the low corner). D, H, W must be multiples of 2^levels. */
lpm_status lpm_dwt3_forward(float *x, int64_t D, int64_t H, int64_t W, int levels);
lpm_status lpm_dwt3_inverse(float *x, int64_t D, int64_t H, int64_t W, int levels);

/* Laplacian pyramid of x (D,H,W): band k has the size of Gaussian level k (level 0 = x,
 * each reduction halves a size rounding up); bands[levels] is the top Gaussian level.
 * The pyramid is one allocation *store (free() it); bands[k] points into it, dims[k]
 * holds (D,H,W) of level k. */
#define LPM_LAP_MAX 8
typedef struct {
    int levels;
    int64_t dims[LPM_LAP_MAX + 1][3];
    float *bands[LPM_LAP_MAX + 1];
    float *store;
} lpm_lap_pyramid;
lpm_status lpm_lap_build(lpm_lap_pyramid *p, const float *x, int64_t D, int64_t H, int64_t W,
                         int levels);
/* Collapse the pyramid into out (level-0 size). */
lpm_status lpm_lap_collapse(const lpm_lap_pyramid *p, float *out);
void lpm_lap_free(lpm_lap_pyramid *p);

/* ---- a filter shared with the training objective (lpm_fusion_target) */

/* How a box window meets the ends of a line: clipped to the line (the mean of the voxels it
 * covers) or with the end voxels repeated (always the mean of 2r+1 values). */
typedef enum { LPM_BOX_CLIP, LPM_BOX_REPLICATE } lpm_box_edge;

/* out (A,n,B) = the mean over the window [i-r, i+r] along the middle axis of in, both in C
 * order; in may not alias out. Running sums in double: O(voxels) whatever r. */
void lpm_box_axis(const float *in, float *out, int64_t A, int64_t n, int64_t B, int64_t r,
                  lpm_box_edge edge);

/* Index into [0, n) with mirror reflection about the end samples (..., 2, 1, 0, 1, 2, ...). */
static inline int64_t lpm_reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    int64_t p = 2 * (n - 1);
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - i;
}

#endif
