/* A labelled PNG of the orthogonal mid-slices of several volumes on one grid
 * (lpm_montage_write_titled and lpm_montage_column are public, in lpmnet.h). */
#ifndef LPM_MONTAGE_H
#define LPM_MONTAGE_H

#include "io.h"

/* One column per volume (its label on top, in a built-in 5x7 font with upper and lower case,
 * drawn at twice its size; labels are cut at 40 characters), one row per view (row names on
 * the left):
 *   AX   axial    slice d = D/2: rows h (h = 0 at the top), columns w
 *   COR  coronal  slice h = H/2: rows d (larger d at the top), columns w
 *   SAG  sagittal slice w = W/2: rows d (larger d at the top), columns h
 * Values in [0, 1] map to grey 0..255 (clamped; NaN is black); an RGB column's bytes are
 * shown as they are. Every view has one scale:
 * m = max(D,H,W); m > 256: box-average by f = ceil(m/256), a size n becomes ceil(n/f);
 * m < 128: nearest-neighbour enlargement by u = floor(128/m), n becomes n*u.
 * Layout in pixels, with P = 4 and s(n) the displayed size of n:
 *   column width  c = max(s(W), s(H), 12*len(label) - 2)
 *   width  = 42 + n_vols*(c + P)
 *   height = 22 + s(H) + P + 2*(s(D) + P) */
/* Each column has exactly one of grey and rgb; at most LPM_MONTAGE_MAX_COLUMNS columns. When
 * a view is box-averaged, an RGB column is averaged channel by channel.
 * lpm_montage_write_titled adds a title line across the top (title NULL or "": exactly this
 * picture): cut at 100 characters, drawn at (4, 4), it moves everything below it down by 18
 * pixels (height = 40 + s(H) + P + 2*(s(D) + P)); the picture widens to 8 + 12*len(title) - 2
 * when the title needs it. */
lpm_status lpm_montage_write_columns(const char *png_path, const lpm_montage_column *cols, int n,
                                     int64_t D, int64_t H, int64_t W);
/* The same with n grey columns: labels[i] (labels may be NULL) over vols[i]. */
lpm_status lpm_montage_write(const char *png_path, const char *const *labels,
                             const float *const *vols, int n, int64_t D, int64_t H, int64_t W);

#endif
