/* Colour fusion for functional volumes (PET, SPECT) shown over a fused greyscale volume.
 *
 * Colour maps take t in [0, 1] (clamped; NaN counts as 0) to RGB in [0, 1], piecewise linear:
 *   hot   black -> red -> yellow -> white: R = t/(3/8), G = (t - 3/8)/(3/8), B = (t - 3/4)/(1/4),
 *         each clamped to [0, 1] (red at t = 3/8, yellow at 3/4, white at 1);
 *   jet   MATLAB's classic: R = 1.5 - |4t - 3|, G = 1.5 - |4t - 2|, B = 1.5 - |4t - 1|, clamped
 *         (dark blue (0, 0, 0.5) at 0, blue 1/8, cyan 3/8, yellow 5/8, red 7/8, dark red at 1);
 *   gray  R = G = B = t.
 *
 * YCbCr fusion (lpm_color_fuse): the functional volume gives the colour, the fused volume
 * the brightness. Per voxel, c = map(func) is converted to luminance and chroma with the
 * ITU-R BT.601 coefficients, full range (as in JPEG/JFIF: Y in [0, 1], no 16..235 footroom,
 * chroma centred on 0):
 *   Y  = 0.299 R + 0.587 G + 0.114 B
 *   Cb = (B - Y) / 1.772             Cr = (R - Y) / 1.402
 * Y is replaced by the fused value L, and the inverse transform gives the output colour:
 *   R = L + 1.402 Cr    B = L + 1.772 Cb    G = (L - 0.299 R - 0.114 B) / 0.587
 * which is c + (L - Y)(1, 1, 1): the hue and saturation of the map, the fused volume's
 * brightness. Each channel is then clamped to [0, 1] and rounded to 0..255. Where L is far
 * from Y for a saturated colour the clamp leaves part of the colour (L = 0 on pure red gives
 * (0.701, 0, 0), not black), so the output's luminance equals L only inside the gamut. */
#ifndef LPM_COLOR_H
#define LPM_COLOR_H

#include "core/core.h"

/* A colour map: t in [0, 1] -> rgb in [0, 1]. */
typedef void (*lpm_colormap_fn)(float t, float rgb[3]);

/* The map called name ("hot", "jet", "gray"), or NULL when there is none. */
lpm_colormap_fn lpm_colormap_find(const char *name);

#endif
