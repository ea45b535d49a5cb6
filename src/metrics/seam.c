/* The window-seam index of docs/lpmnet.md section 3: does F change more between planes
 * p-1 and p at p = 16, 32, ... (LPM-Net's window borders) than between other neighbouring
 * planes? Per axis, d[p] = mean |F[p] - F[p-1]| over the pairs where either value exceeds
 * 0.01, r[p] = d[p] / ((d[p-1] + d[p+1]) / 2), and the index is the mean r at multiples of
 * 16 over the mean r elsewhere. Sums are formed per slice and added in slice order, so the
 * result does not depend on the thread count. */
#include "metrics.h"
#include "core/core.h"

#include <math.h>

#define SEAM_PERIOD 16
#define SEAM_FLOOR 0.01 /* pairs where both scaled values are at most this are background */

typedef struct {
    double lo, range; /* F scaled = (F - lo) / range */
    const uint8_t *mask;
} scaling;

/* Adds the pair (i, j) of voxels of f to *sum and *n when it counts. */
static inline void add_pair(double *sum, int64_t *n, const float *f, int64_t i, int64_t j,
                            const scaling *s) {
    if (s->mask && !(s->mask[i] && s->mask[j])) return;
    double a = ((double)f[i] - s->lo) / s->range, b = ((double)f[j] - s->lo) / s->range;
    if (a <= SEAM_FLOOR && b <= SEAM_FLOOR) return;
    *sum += fabs(b - a);
    *n += 1;
}

/* min and max of f over the scored voxels; *finite = 0 if one of them is NaN or Inf. */
static void value_range(double *lo, double *hi, int *finite, const float *f, int64_t n,
                        const uint8_t *mask) {
    double mn = INFINITY, mx = -INFINITY;
    int bad = 0;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) reduction(| : bad) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        bad |= !isfinite(f[i]);
        if (f[i] < mn) mn = f[i];
        if (f[i] > mx) mx = f[i];
    }
    *lo = mn, *hi = mx, *finite = !bad;
}

/* Difference sums and counts per plane: x (along W) and y (along H) per D slice, reduced in
 * slice order afterwards; z (along D) directly, one plane pair per iteration. */
static lpm_status plane_differences(double *sum[3], int64_t *cnt[3], const float *f, int64_t D,
                                    int64_t H, int64_t W, const scaling *s) {
    double *px = lpm_calloc((size_t)(D * W), sizeof(double));
    double *py = lpm_calloc((size_t)(D * H), sizeof(double));
    int64_t *nx = lpm_calloc((size_t)(D * W), sizeof(int64_t));
    int64_t *ny = lpm_calloc((size_t)(D * H), sizeof(int64_t));
    if (!px || !py || !nx || !ny) {
        free(px), free(py), free(nx), free(ny);
        return LPM_ERR_INTERNAL;
    }
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double *sx = px + d * W, *sy = py + d * H;
        int64_t *cx = nx + d * W, *cy = ny + d * H;
        for (int64_t h = 0; h < H; h++) {
            int64_t row = (d * H + h) * W;
            for (int64_t w = 1; w < W; w++) add_pair(&sx[w], &cx[w], f, row + w - 1, row + w, s);
            if (h > 0)
                for (int64_t w = 0; w < W; w++) add_pair(&sy[h], &cy[h], f, row - W + w, row + w, s);
        }
    }
    for (int64_t d = 0; d < D; d++) {
        for (int64_t w = 0; w < W; w++) sum[0][w] += px[d * W + w], cnt[0][w] += nx[d * W + w];
        for (int64_t h = 0; h < H; h++) sum[1][h] += py[d * H + h], cnt[1][h] += ny[d * H + h];
    }
    free(px), free(py), free(nx), free(ny);
    int64_t hw = H * W;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t p = 1; p < D; p++)
        for (int64_t i = p * hw; i < (p + 1) * hw; i++) add_pair(&sum[2][p], &cnt[2][p], f, i - hw, i, s);
    return LPM_OK;
}

/* The index of one axis of n planes from its difference sums; NAN and *why when undefined. */
static double axis_index(const double *sum, const int64_t *cnt, int64_t n, const char **why) {
    if (n < SEAM_PERIOD + 2) {
        *why = "axis shorter than 18 voxels";
        return NAN;
    }
#define MEAN_DIFF(p) (cnt[p] ? sum[p] / (double)cnt[p] : NAN)
    double seam = 0, other = 0;
    int64_t n_seam = 0, n_other = 0;
    for (int64_t p = 2; p <= n - 2; p++) {
        double prev = MEAN_DIFF(p - 1), here = MEAN_DIFF(p), next = MEAN_DIFF(p + 1);
        double den = (prev + next) / 2;
        if (!isfinite(here) || !isfinite(den) || !(den > 0)) continue;
        if (p % SEAM_PERIOD == 0) seam += here / den, n_seam++;
        else other += here / den, n_other++;
    }
#undef MEAN_DIFF
    if (!n_seam) *why = "no defined ratio at planes 16, 32, ...: too few values above 0.01 there";
    else if (!n_other) *why = "no defined ratio away from planes 16, 32, ...: too few values above 0.01";
    else if (other == 0) *why = "every ratio away from planes 16, 32, ... is 0";
    else return (seam / (double)n_seam) / (other / (double)n_other);
    return NAN;
}

lpm_status lpm_seam_index_why(double index[3], const char *why[3], const float *f, int64_t D,
                              int64_t H, int64_t W, const uint8_t *mask) {
    const char *reason[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) index[k] = NAN;
    if (why)
        for (int k = 0; k < 3; k++) why[k] = NULL;
    if (D < 1 || H < 1 || W < 1) return lpm_fail(LPM_ERR_INPUT, "seam index: empty volume");
    double lo, hi;
    int finite;
    value_range(&lo, &hi, &finite, f, D * H * W, mask);
    if (!finite) return lpm_fail(LPM_ERR_INPUT, "seam index: F has NaN or Inf voxels");
    if (lo > hi) return lpm_fail(LPM_ERR_INPUT, "seam index: the mask is empty (no nonzero voxel)");
    if (lo == hi) {
        for (int k = 0; k < 3 && why; k++)
            why[k] = mask ? "F is constant inside the mask: no scaling to [0, 1]"
                          : "F is constant: no scaling to [0, 1]";
        return LPM_OK;
    }
    const int64_t len[3] = {W, H, D};
    double *sum[3];
    int64_t *cnt[3];
    sum[0] = lpm_calloc((size_t)(W + H + D), sizeof(double));
    cnt[0] = lpm_calloc((size_t)(W + H + D), sizeof(int64_t));
    if (!sum[0] || !cnt[0]) {
        free(sum[0]), free(cnt[0]);
        return LPM_ERR_INTERNAL;
    }
    sum[1] = sum[0] + W, sum[2] = sum[1] + H;
    cnt[1] = cnt[0] + W, cnt[2] = cnt[1] + H;
    const scaling s = {lo, hi - lo, mask};
    lpm_status st = plane_differences(sum, cnt, f, D, H, W, &s);
    for (int k = 0; k < 3 && !st; k++) index[k] = axis_index(sum[k], cnt[k], len[k], &reason[k]);
    if (why)
        for (int k = 0; k < 3; k++) why[k] = reason[k];
    free(sum[0]), free(cnt[0]);
    return st;
}

lpm_status lpm_seam_index(double index[3], const float *f, int64_t D, int64_t H, int64_t W,
                          const uint8_t *mask) {
    return lpm_seam_index_why(index, NULL, f, D, H, W, mask);
}
