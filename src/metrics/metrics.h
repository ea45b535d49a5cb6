/* The twelve fusion metrics of docs/lpmnet.md section 3 (authors' conventions).
 *
 * Everything is computed in double from float32 volumes (D, H, W), A and B the sources,
 * F the fused volume, all expected in [0, 1] (lpm_metrics_compute scores them as given:
 * `lpmnet metrics` min-max normalises each whole volume first unless --no-normalize).
 *
 * Choices where docs/lpmnet.md is silent (reference/metrics_ref.py makes the same ones):
 *   - mask (nonzero = inside): A, B, F are first cropped to the mask's bounding box.
 *     SSIM and VIF (windowed) and QABF, NABF, MI (slice-wise) then run on the cropped
 *     volumes as if they were whole; SCD, PSNR, SD, EN use mask voxels only; norm255 in EN
 *     and AG takes min/max over mask voxels; a forward difference (SF, rSFe) or corner (AG)
 *     counts only when every voxel it reads is in the mask. An empty mask is an input error.
 *   - PSNR with MSE 0 (F equal to A or B) is +inf; `lpmnet metrics --json` writes null.
 *   - SF/rSFe: an axis of size 1 has no differences and adds 0.
 *   - norm255 of a constant volume (possible only without normalisation or inside a mask)
 *     is 0/0: MI, AG and EN are then NAN, as in the reference.
 *   - VIF: a scale where the volume is smaller than the kernel adds nothing; when no scale
 *     fits (a side below 17), VIF = (0 + 1e-10)/(0 + 1e-10) = 1.
 *   - Results do not depend on the number of threads (per-slice partial sums are added in
 *     slice order).
 */
#ifndef LPM_METRICS_H
#define LPM_METRICS_H

#include "lpmnet.h"
#include <stdint.h>

/* Field order = the paper's table order, then the rest; lpm_metric_name(i) follows it. */
typedef struct {
    double ssim, qabf, mi, scd, vif, ag, psnr, en, sd, sf, nabf, rsfe;
} lpm_metrics;

#define LPM_NUM_METRICS 12
enum {
    LPM_M_SSIM = 1u << 0, LPM_M_QABF = 1u << 1, LPM_M_MI = 1u << 2, LPM_M_SCD = 1u << 3,
    LPM_M_VIF = 1u << 4, LPM_M_AG = 1u << 5, LPM_M_PSNR = 1u << 6, LPM_M_EN = 1u << 7,
    LPM_M_SD = 1u << 8, LPM_M_SF = 1u << 9, LPM_M_NABF = 1u << 10, LPM_M_RSFE = 1u << 11,
    LPM_M_ALL = (1u << LPM_NUM_METRICS) - 1
};

/* lpm_metric_name and lpm_metrics_parse (names and bit masks: bit 1u << i is metric i) are
 * public: include/lpmnet.h. */
/* Value of metric i in m. */
double lpm_metric_value(const lpm_metrics *m, int i);

/* Scores F against A and B. Metrics not in `which` are NAN. mask may be NULL.
 * Memory: the crop (when masked) plus a few float64 slices per thread and, for VIF, a ring of
 * 17 filtered float64 slices per product; time: linear in the voxels, OpenMP over slices. */
lpm_status lpm_metrics_compute(lpm_metrics *out, const float *a, const float *b, const float *f,
                               int64_t D, int64_t H, int64_t W, const uint8_t *mask,
                               unsigned which);

/* The families, on (cropped) volumes; m is the mask or NULL (used by the voxel statistics). */
lpm_status lpm_metric_edges(double *qabf, double *nabf, const float *a, const float *b,
                            const float *f, int64_t D, int64_t H, int64_t W);
/* QABF as lpm_metric_edges computes it, with its gradient: df += scale * dQABF/df (the sources
 * held fixed; the slopes of edge_q's ratio and |angle difference| taken one-sided at their
 * kinks, the angle's slope damped where F is flat). A loss term w (1 - QABF) passes -w. */
lpm_status lpm_qabf(double *qabf, const float *a, const float *b, const float *f, int64_t D,
                    int64_t H, int64_t W, float *df, double scale);
lpm_status lpm_metric_mi(double *mi, const float *a, const float *b, const float *f, int64_t D,
                         int64_t H, int64_t W);
lpm_status lpm_metric_vif(double *vif, const float *a, const float *b, const float *f, int64_t D,
                          int64_t H, int64_t W);
/* SCD, AG, PSNR, EN, SD, SF, rSFe into out (only the fields selected by which). */
lpm_status lpm_metric_stats(lpm_metrics *out, const float *a, const float *b, const float *f,
                            int64_t D, int64_t H, int64_t W, const uint8_t *m, unsigned which);

/* Mean 3D SSIM: 11^3 Gaussian window (sigma 1.5, sum 1), zero padding 5, C1 = 0.01^2,
 * C2 = 0.03^2. Symmetric in x and y; the gradient is taken w.r.t. y:
 * dy += scale * d(mean SSIM)/dy. Allocates about 6 volumes of float scratch. */
lpm_status lpm_ssim3d(double *ssim, const float *x, const float *y, int64_t D, int64_t H,
                      int64_t W, float *dy, double scale);

/* SF = sqrt(mean(dD^2) + mean(dH^2) + mean(dW^2)), forward differences, each mean over
 * its own count (an axis of size 1 has no differences and contributes 0).
 * df += scale * dSF/df; at SF == 0 (constant f) the gradient is taken as 0. */
lpm_status lpm_sf(double *sf, const float *f, int64_t D, int64_t H, int64_t W, float *df,
                  double scale);

/* The rSFe metric as a loss term: *ratio = SF(f) / SF_R (rSFe + 1), SF_R the sources'
 * reference spatial frequency (per axis and position the larger of |dA| and |dB|, each
 * mean over its own count, as lpm_metric_stats computes it without a mask), and *value =
 * (ratio - 1)^2. df += scale * dvalue/df. Where SF_R is 0 (both sources constant) the ratio
 * is taken as 1: value 0, no gradient. */
lpm_status lpm_sf_match(double *value, double *ratio, const float *a, const float *b, const float *f,
                        int64_t D, int64_t H, int64_t W, float *df, double scale);

/* SSIM's scratch: the five filtered volumes, the filter's temporary volume, per-thread
 * rows and per-slice sums. Kept across the SSIMs of one loss: mx and exx, x's statistics,
 * survive a call (the backward overwrites only the other three), so an SSIM against the
 * same x again skips two of its five filters. */
typedef struct {
    int64_t D, H, W;
    float *buf, *rows;
    double *slice_sum;
} lpm_ssim_ws;

lpm_status lpm_ssim_ws_alloc(lpm_ssim_ws *ws, int64_t D, int64_t H, int64_t W);
void lpm_ssim_ws_free(lpm_ssim_ws *ws);
/* lpm_ssim3d in a workspace (no size checks: the caller's); x_ready: ws already holds x's
 * mx and exx from the previous call with the same x. */
void lpm_ssim3d_ws(lpm_ssim_ws *ws, double *ssim, const float *x, const float *y, int x_ready,
                   float *dy, double scale);

/* Window-seam index of F (docs/lpmnet.md section 3) along x (W, index[0]), y (H, index[1])
 * and z (D, index[2]): the mean ratio r[p] = d[p] / ((d[p-1] + d[p+1]) / 2) at planes
 * p = 16, 32, ... over the mean ratio at the other planes, d[p] the mean |F[p] - F[p-1]| over
 * the voxel pairs where either value of F, min-max scaled to [0, 1], exceeds 0.01. 1.0 = no
 * seam. mask (NULL = all voxels): the scaling uses mask voxels, a pair counts only when both
 * voxels are inside. An index that is undefined (an axis shorter than 18, F constant, too
 * few values above 0.01) is NAN; lpm_seam_index_why also sets why[k] to a static sentence
 * saying why (NULL when index[k] is defined). An empty mask or a NaN/Inf voxel is an input
 * error. Memory: two float64 and int64 slice-by-plane tables; OpenMP over slices. */
lpm_status lpm_seam_index(double index[3], const float *f, int64_t D, int64_t H, int64_t W,
                          const uint8_t *mask);
lpm_status lpm_seam_index_why(double index[3], const char *why[3], const float *f, int64_t D,
                              int64_t H, int64_t W, const uint8_t *mask);

#endif
