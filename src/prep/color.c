/* Colour maps and YCbCr colour fusion (the scheme is described in color.h). */
#include "color.h"

#include <math.h>
#include <string.h>

/* ITU-R BT.601 luma weights; green's is 1 - KR - KB. */
#define KR 0.299
#define KB 0.114
#define KG (1.0 - KR - KB)

/* NaN maps to 0, like a value below the range. */
static float clamp01(double x) { return x > 0 ? (x < 1 ? (float)x : 1.0f) : 0.0f; }

static void map_hot(float t, float rgb[3]) {
    t = clamp01(t);
    rgb[0] = clamp01(t / 0.375);
    rgb[1] = clamp01((t - 0.375) / 0.375);
    rgb[2] = clamp01((t - 0.75) / 0.25);
}

static void map_jet(float t, float rgb[3]) {
    t = clamp01(t);
    rgb[0] = clamp01(1.5 - fabs(4.0 * t - 3.0));
    rgb[1] = clamp01(1.5 - fabs(4.0 * t - 2.0));
    rgb[2] = clamp01(1.5 - fabs(4.0 * t - 1.0));
}

static void map_gray(float t, float rgb[3]) { rgb[0] = rgb[1] = rgb[2] = clamp01(t); }

static const struct {
    const char *name;
    lpm_colormap_fn fn;
} MAPS[] = {{"hot", map_hot}, {"jet", map_jet}, {"gray", map_gray}};

lpm_colormap_fn lpm_colormap_find(const char *name) {
    if (!name) return NULL;
    for (size_t k = 0; k < sizeof MAPS / sizeof MAPS[0]; k++)
        if (strcmp(MAPS[k].name, name) == 0) return MAPS[k].fn;
    return NULL;
}

int lpm_colormap_known(const char *name) { return lpm_colormap_find(name) != NULL; }

const char *lpm_colormap_names(void) { return "hot, jet, gray"; }

static uint8_t to_byte(double x) { return (uint8_t)lround(clamp01(x) * 255.0); }

/* c with its BT.601 luminance replaced by luma, as bytes. */
static void replace_luma(const float c[3], float luma, uint8_t out[3]) {
    double y = KR * c[0] + KG * c[1] + KB * c[2];
    double cb = (c[2] - y) / (2.0 * (1.0 - KB));
    double cr = (c[0] - y) / (2.0 * (1.0 - KR));
    double l = clamp01(luma);
    double r = l + 2.0 * (1.0 - KR) * cr;
    double b = l + 2.0 * (1.0 - KB) * cb;
    double g = (l - KR * r - KB * b) / KG;
    out[0] = to_byte(r);
    out[1] = to_byte(g);
    out[2] = to_byte(b);
}

lpm_status lpm_color_fuse(uint8_t *rgb, const float *luma, const float *func, int64_t n,
                          const char *map) {
    lpm_colormap_fn fn = lpm_colormap_find(map);
    if (!fn)
        return lpm_fail(LPM_ERR_USAGE, "unknown colour map '%s' (known: %s)", map ? map : "(none)",
                        lpm_colormap_names());
    if (n < 0 || (n > 0 && (!rgb || !luma || !func)))
        return lpm_fail(LPM_ERR_INTERNAL, "colour fusion of %lld voxels without buffers", (long long)n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float c[3];
        fn(func[i], c);
        replace_luma(c, luma[i], rgb + 3 * i);
    }
    return LPM_OK;
}
