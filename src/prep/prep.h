/* Intensity preprocessing: how an input volume is brought to [0, 1] before fusion.
 *
 * Three ways, chosen per input (lpm_prep_apply):
 *   min-max     (x - min) / (max - min): the authors' normalisation, and the default.
 *   percentile  clip to [P_lo, P_hi], the lo-th and hi-th percentiles of the volume, then map that
 *               window to [0, 1]: a few hot PET voxels or metal artefacts no longer squeeze
 *               everything else into a small part of [0, 1].
 *   CT window   clip to [L - W/2, L + W/2] Hounsfield units (width W, level L), then map that
 *               window to [0, 1], as a radiologist's display window.
 * A window [lo, hi] maps x to (min(max(x, lo), hi) - lo) / (hi - lo), computed in double.
 * With a mask, everything (minimum, maximum, percentiles) is taken over the voxels inside it
 * (nonzero) and the voxels outside it are set to 0.
 *
 * Percentile p (0 to 100) of m values, as numpy.percentile's default ('linear'): with the values
 * sorted, v[0] <= ... <= v[m-1], h = (m - 1) p / 100, f = floor(h), t = h - f, it is
 * v[f] + t (v[f+1] - v[f]) (v[f] when t = 0): p = 0 is the minimum, p = 100 the maximum. */
#ifndef LPM_PREP_H
#define LPM_PREP_H

#include "core/core.h"

/* What lpm_prep_apply does to a volume; all zero = plain min-max. */
typedef struct {
    int clip;                  /* 1: clip to the percentiles [clip_lo, clip_hi] */
    double clip_lo, clip_hi;   /* 0 <= clip_lo < clip_hi <= 100 */
    int ct_window;             /* 1: CT window (takes precedence over clip) */
    double ct_width, ct_level; /* W > 0 and L, in HU */
    const char *mask_path;     /* a mask file for the command line to read, or NULL */
} lpm_prep;


/* The p_lo-th and p_hi-th percentiles (defined above; 0 <= p_lo <= p_hi <= 100, else
 * LPM_ERR_USAGE) of x[0..n) over the voxels where mask is nonzero (all when mask is NULL).
 * Exact, by selection on a copy of the selected values: expected O(n) time, 4 bytes a voxel.
 * No selected voxel, or a non-finite one, is LPM_ERR_INPUT. */
lpm_status lpm_percentiles(double *lo, double *hi, const float *x, int64_t n, const uint8_t *mask,
                           double p_lo, double p_hi);

/* Maps the window [lo, hi] to [0, 1] in place (clamped; formula above); voxels outside the mask
 * (when not NULL) become 0. hi <= lo, or a non-finite voxel inside the mask, is LPM_ERR_INPUT
 * naming name. */
lpm_status lpm_normalize_window(lpm_volume *v, double lo, double hi, const uint8_t *mask,
                                const char *name);

/* Brings v to [0, 1] as p says: CT window if p->ct_window, else percentile clip if p->clip,
 * else min-max (p may be NULL). With a mask, over the voxels inside it and 0 outside; without
 * a mask and without clip or window this is exactly lpm_normalize_minmax, and with a mask the
 * min-max is the same float formula inside it. LPM_ERR_INPUT, naming name, for a non-finite
 * voxel, an empty mask, a constant volume (inside the mask), a volume with every voxel on one
 * side of the CT window, or percentiles that coincide. p->mask_path is not read here. */
lpm_status lpm_prep_apply(const lpm_prep *p, lpm_volume *v, const uint8_t *mask, const char *name);

/* Applies p to the two inputs of a pair. The CT window goes only to the CT input: A when
 * ct_input = 0, B when 1, and when -1 each input that lpm_looks_like_ct (a CT window without
 * such an input is LPM_ERR_INPUT naming both files and their ranges). The other input gets the
 * percentile clip when p->clip, else min-max. mask (or NULL) applies to both. */
lpm_status lpm_prep_pair(const lpm_prep *p, lpm_volume *a, const char *name_a, lpm_volume *b,
                         const char *name_b, const uint8_t *mask, int ct_input);

/* The public settings' clip percentiles (both 0: no clip) and CT window string (NULL: none;
 * lpm_ct_window_parse's forms) as an lpm_prep (p->mask_path NULL). LPM_ERR_USAGE names a bad
 * value. Nothing is chosen by default here: fuse adds its default clip, train keeps min-max. */
lpm_status lpm_prep_from_settings(lpm_prep *p, double clip_lo, double clip_hi, const char *ct_window);

/* What fuse, eval and train do to a pair before the network: lpm_prep_pair (the CT window to
 * whichever input looks like CT), then each input stretched to [0, 1] over all its voxels.
 * p NULL (or all zero) is plain min-max, inside the mask when there is one. */
lpm_status lpm_prep_inputs(const lpm_prep *p, lpm_volume *a, const char *name_a, lpm_volume *b,
                           const char *name_b, const uint8_t *mask);

/* The option strings ("LOW,HIGH" percentiles, a CT window) are parsed by the public
 * lpm_clip_parse and lpm_ct_window_parse (lpmnet.h). */

#endif
