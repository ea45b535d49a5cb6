/* Intensity preprocessing (prep.h): min-max normalisation, exact percentiles, windows (a
 * percentile clip, a CT window), masks. */
#include "prep/prep.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The error for v's non-finite voxel i, naming its (w,h,d) position. */
static lpm_status refuse_non_finite(const lpm_volume *v, int64_t i, const char *name) {
    int64_t w = i % v->nx, h = (i / v->nx) % v->ny, d = i / (v->nx * v->ny);
    return lpm_fail(LPM_ERR_INPUT, "%s: voxel (%lld,%lld,%lld) is %s; lpmnet needs finite values", name,
                    (long long)w, (long long)h, (long long)d, isnan(v->data[i]) ? "NaN" : "infinite");
}

/* v's smallest and largest voxel; LPM_ERR_INPUT, naming name, for an empty volume or at the
 * first non-finite voxel. */
static lpm_status checked_range(const lpm_volume *v, const char *name, double *lo, double *hi) {
    int64_t n = lpm_volume_numel(v);
    if (!v->data || n <= 0) return lpm_fail(LPM_ERR_INPUT, "%s: empty volume", name);
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float x = v->data[i];
        if (!isfinite(x)) return refuse_non_finite(v, i, name);
        if (x < *lo) *lo = x;
        if (x > *hi) *hi = x;
    }
    return LPM_OK;
}

lpm_status lpm_normalize_minmax(lpm_volume *v, const char *name) {
    int64_t n = lpm_volume_numel(v);
    double lo = 0, hi = 0;
    lpm_status st = checked_range(v, name, &lo, &hi);
    if (st) return st;
    if (lo == hi)
        return lpm_fail(LPM_ERR_INPUT, "%s: constant volume (all voxels = %g), nothing to fuse", name, lo);
    /* In float, as the authors' (x - x.min()) / (x.max() - x.min()) on a float32 tensor, which also
     * leaves data already spanning exactly [0, 1] bit for bit unchanged. */
    float flo = (float)lo, range = (float)hi - flo;
    if (isfinite(range)) {
        for (int64_t i = 0; i < n; i++) v->data[i] = (v->data[i] - flo) / range;
    } else {
        /* max - min overflows float (values near +-FLT_MAX): only double can hold the range */
        for (int64_t i = 0; i < n; i++) v->data[i] = (float)(((double)v->data[i] - lo) / (hi - lo));
    }
    return LPM_OK;
}

lpm_status lpm_check_unit_range(const lpm_volume *v, const char *name) {
    double lo = 0, hi = 0;
    lpm_status st = checked_range(v, name, &lo, &hi);
    if (st) return st;
    if (!(lo >= 0 && hi <= 1))
        return lpm_fail(LPM_ERR_INPUT, "%s: values from %g to %g; a fusion scored as it is (not "
                        "min-max normalised) must lie in [0, 1], as lpmnet fuse writes it", name, lo, hi);
    return LPM_OK;
}

/* ------------------------------------------------------------------ percentiles */

/* Three-way partition of x[0..n) around pivot into [< pivot][== pivot][> pivot]; the middle part
 * is x[*lt..*gt). Three-way because a background of one value (often half a volume) would make
 * a two-way quickselect quadratic; here equal values leave in one pass. */
static void partition3(float *x, int64_t n, float pivot, int64_t *lt, int64_t *gt) {
    int64_t l = 0, i = 0, g = n;
    while (i < g) {
        float v = x[i];
        if (v < pivot) {
            x[i++] = x[l];
            x[l++] = v;
        } else if (v > pivot) {
            x[i] = x[--g];
            x[g] = v;
        } else {
            i++;
        }
    }
    *lt = l, *gt = g;
}

static float median3(float a, float b, float c) {
    if (a > b) { float t = a; a = b; b = t; }
    return c <= a ? a : c >= b ? b : c;
}

/* Quickselect: rearranges x[0..n) so that x[k] is the k-th smallest value (0-based), with
 * nothing larger before it and nothing smaller after it. Expected O(n): the pivot is the median
 * of three elements drawn by a fixed-seed generator, so no ordering of the data (sorted,
 * reversed) is a bad case and the result does not depend on a clock. */
static void select_kth(float *x, int64_t n, int64_t k, lpm_rng *rng) {
    int64_t lo = 0, hi = n; /* x[k] lies in x[lo..hi) */
    while (hi - lo > 1) {
        uint64_t m = (uint64_t)(hi - lo);
        float pivot = median3(x[lo + (int64_t)(lpm_rng_u64(rng) % m)], x[lo + (int64_t)(lpm_rng_u64(rng) % m)],
                              x[lo + (int64_t)(lpm_rng_u64(rng) % m)]);
        int64_t lt, gt;
        partition3(x + lo, hi - lo, pivot, &lt, &gt);
        if (k < lo + lt) {
            hi = lo + lt;
        } else if (k >= lo + gt) {
            lo += gt;
        } else {
            return; /* x[k] == pivot, in its final place */
        }
    }
}

static float min_of(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] < m ? x[i] : m;
    return m;
}

/* numpy's _lerp: a + t (b - a), computed from b's side when t >= 0.5 so that t = 1 gives b. */
static double lerp(double a, double b, double t) {
    double d = b - a;
    return t < 0.5 ? a + d * t : b - d * (1 - t);
}

/* The percentile at virtual index h of the m sorted values, given that x[f] (f = floor(h)) is
 * already the f-th smallest with all larger values after it. */
static double percentile_at(const float *x, int64_t m, double h) {
    int64_t f = (int64_t)floor(h);
    double t = h - (double)f;
    if (t == 0 || f + 1 >= m) return x[f];
    return lerp(x[f], min_of(x + f + 1, m - f - 1), t);
}

lpm_status lpm_percentiles(double *lo, double *hi, const float *x, int64_t n, const uint8_t *mask,
                           double p_lo, double p_hi) {
    if (!(p_lo >= 0 && p_lo <= p_hi && p_hi <= 100))
        return lpm_fail(LPM_ERR_USAGE, "percentiles %g and %g: need 0 <= low <= high <= 100", p_lo, p_hi);
    int64_t m = 0; /* the selected values */
    for (int64_t i = 0; i < n; i++) m += !mask || mask[i];
    if (m == 0) return lpm_fail(LPM_ERR_INPUT, "percentiles of no values (an empty volume or mask)");
    float *v = lpm_malloc((size_t)m, sizeof(float));
    if (!v) return LPM_ERR_INTERNAL;
    int64_t j = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        if (!isfinite(x[i])) {
            free(v);
            return lpm_fail(LPM_ERR_INPUT, "percentiles: value %lld is not finite", (long long)i);
        }
        v[j++] = x[i];
    }
    /* numpy: virtual index (m - 1) * (p / 100) */
    double h_lo = (double)(m - 1) * (p_lo / 100), h_hi = (double)(m - 1) * (p_hi / 100);
    int64_t f_lo = (int64_t)floor(h_lo), f_hi = (int64_t)floor(h_hi);
    lpm_rng rng;
    lpm_rng_seed(&rng, 0x5e1ec7);
    select_kth(v, m, f_lo, &rng);
    *lo = percentile_at(v, m, h_lo);
    /* v[f_lo..m) holds the order statistics f_lo..m-1 (in some order): select among them only */
    select_kth(v + f_lo, m - f_lo, f_hi - f_lo, &rng);
    *hi = percentile_at(v, m, h_hi);
    free(v);
    return LPM_OK;
}

/* ------------------------------------------------------------------ windows */

/* The window mapping without checks (hi > lo, finite): clamp, shift, scale in double. Rounding
 * is monotone, so x - lo <= hi - lo keeps every result in [0, 1]. */
static void map_window(lpm_volume *v, double lo, double hi, const uint8_t *mask) {
    int64_t n = lpm_volume_numel(v);
    double width = hi - lo;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) {
            v->data[i] = 0;
            continue;
        }
        double x = v->data[i];
        x = x < lo ? lo : x > hi ? hi : x;
        v->data[i] = (float)((x - lo) / width);
    }
}

/* Minimum and maximum of v inside mask (all voxels when NULL); refuses an empty volume or mask
 * and a non-finite voxel inside it. */
static lpm_status range_of(const lpm_volume *v, const uint8_t *mask, const char *name, double *lo,
                           double *hi) {
    int64_t n = lpm_volume_numel(v), inside = 0;
    if (!v->data || n <= 0) return lpm_fail(LPM_ERR_INPUT, "%s: empty volume", name);
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        float x = v->data[i];
        if (!isfinite(x)) return refuse_non_finite(v, i, name);
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
        inside++;
    }
    if (!inside) return lpm_fail(LPM_ERR_INPUT, "%s: no voxel inside the mask", name);
    *lo = mn, *hi = mx;
    return LPM_OK;
}

lpm_status lpm_normalize_window(lpm_volume *v, double lo, double hi, const uint8_t *mask,
                                const char *name) {
    if (!(hi > lo) || !isfinite(hi - lo))
        return lpm_fail(LPM_ERR_INPUT, "%s: intensity window [%g, %g] is empty or not finite", name, lo, hi);
    double mn, mx;
    lpm_status st = range_of(v, mask, name, &mn, &mx);
    if (st) return st;
    map_window(v, lo, hi, mask);
    return LPM_OK;
}

/* Min-max inside the mask, 0 outside: the float formula of lpm_normalize_minmax, so that the
 * voxels inside get exactly what they would get without a mask if they were the whole volume. */
static void minmax_in_mask(lpm_volume *v, double lo, double hi, const uint8_t *mask) {
    int64_t n = lpm_volume_numel(v);
    float flo = (float)lo, range = (float)hi - flo;
    for (int64_t i = 0; i < n; i++) {
        float x = v->data[i];
        v->data[i] = !mask[i]           ? 0.0f
                     : isfinite(range) ? (x - flo) / range
                                       : (float)(((double)x - lo) / (hi - lo));
    }
}

lpm_status lpm_prep_apply(const lpm_prep *p, lpm_volume *v, const uint8_t *mask, const char *name) {
    static const lpm_prep none = {0};
    if (!p) p = &none;
    double mn, mx;
    lpm_status st = range_of(v, mask, name, &mn, &mx);
    if (st) return st;
    const char *where = mask ? " inside the mask" : "";
    if (mn == mx)
        return lpm_fail(LPM_ERR_INPUT, "%s: constant volume%s (all voxels = %g), nothing to fuse", name,
                        where, mn);
    if (p->ct_window) {
        double lo = p->ct_level - p->ct_width / 2, hi = p->ct_level + p->ct_width / 2;
        if (!(hi > lo) || !isfinite(hi - lo))
            return lpm_fail(LPM_ERR_INPUT, "%s: CT window [%g, %g] HU is empty or not finite", name, lo, hi);
        if (mx <= lo || mn >= hi)
            return lpm_fail(LPM_ERR_INPUT,
                            "%s: every voxel%s lies %s the CT window [%g, %g] HU (values from %g to %g), "
                            "so the result would be constant; is it CT in Hounsfield units?",
                            name, where, mx <= lo ? "below" : "above", lo, hi, mn, mx);
        map_window(v, lo, hi, mask);
    } else if (p->clip) {
        double lo, hi;
        st = lpm_percentiles(&lo, &hi, v->data, lpm_volume_numel(v), mask, p->clip_lo, p->clip_hi);
        if (st) return st;
        if (!(hi > lo))
            return lpm_fail(LPM_ERR_INPUT,
                            "%s: the %gth and %gth percentiles%s are both %g (most voxels share that "
                            "value); widen the clip range or use a mask", name, p->clip_lo, p->clip_hi,
                            where, lo);
        map_window(v, lo, hi, mask);
    } else if (mask) {
        minmax_in_mask(v, mn, mx, mask);
    } else {
        return lpm_normalize_minmax(v, name);
    }
    return LPM_OK;
}

/* The smallest and largest finite values of v. */
static void finite_range(const lpm_volume *v, float *lo, float *hi) {
    const int64_t n = lpm_volume_numel(v);
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; v->data && i < n; i++) {
        const float x = v->data[i];
        if (!isfinite(x)) continue;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    *lo = mn, *hi = mx;
}

int lpm_looks_like_ct(const lpm_volume *v) {
    float mn, mx;
    finite_range(v, &mn, &mx);
    return mn <= LPM_CT_LOOKS_MIN && mx >= LPM_CT_LOOKS_MAX;
}

/* "[min, max]" of v's finite values, for messages. */
static void describe_range(const lpm_volume *v, char *buf, size_t size) {
    float mn, mx;
    finite_range(v, &mn, &mx);
    snprintf(buf, size, "[%g, %g]", mn, mx);
}

lpm_status lpm_prep_pair(const lpm_prep *p, lpm_volume *a, const char *name_a, lpm_volume *b,
                         const char *name_b, const uint8_t *mask, int ct_input) {
    static const lpm_prep none = {0};
    if (!p) p = &none;
    int ct_a = 0, ct_b = 0;
    if (p->ct_window) {
        ct_a = ct_input == 0 || (ct_input < 0 && lpm_looks_like_ct(a));
        ct_b = ct_input == 1 || (ct_input < 0 && lpm_looks_like_ct(b));
        if (!ct_a && !ct_b) {
            char ra[64], rb[64];
            describe_range(a, ra, sizeof ra);
            describe_range(b, rb, sizeof rb);
            return lpm_fail(LPM_ERR_INPUT,
                            "a CT window was asked for, but neither %s (values in %s) nor %s (values "
                            "in %s) looks like CT in Hounsfield units (minimum <= %g, maximum >= %g)",
                            name_a, ra, name_b, rb, LPM_CT_LOOKS_MIN, LPM_CT_LOOKS_MAX);
        }
    }
    lpm_prep other = *p;
    other.ct_window = 0;
    lpm_status st = lpm_prep_apply(ct_a ? p : &other, a, mask, name_a);
    if (!st) st = lpm_prep_apply(ct_b ? p : &other, b, mask, name_b);
    return st;
}

lpm_status lpm_prep_from_settings(lpm_prep *p, double clip_lo, double clip_hi, const char *ct_window) {
    *p = (lpm_prep){0};
    if (clip_lo != 0 || clip_hi != 0) {
        if (!(clip_lo >= 0 && clip_lo < clip_hi && clip_hi <= 100))
            return lpm_fail(LPM_ERR_USAGE, "clip %g,%g: expected percentiles 0 <= LOW < HIGH <= 100",
                            clip_lo, clip_hi);
        p->clip = 1, p->clip_lo = clip_lo, p->clip_hi = clip_hi;
    }
    if (ct_window) {
        lpm_status st = lpm_ct_window_parse(ct_window, &p->ct_width, &p->ct_level);
        if (st) return lpm_prefix_error(st, "CT window");
        p->ct_window = 1;
    }
    return LPM_OK;
}

lpm_status lpm_prep_inputs(const lpm_prep *p, lpm_volume *a, const char *name_a, lpm_volume *b,
                           const char *name_b, const uint8_t *mask) {
    lpm_status st = lpm_prep_pair(p, a, name_a, b, name_b, mask, -1);
    /* a window need not reach both of its ends in a volume: stretch each to [0, 1] (after plain
     * min-max, inside a mask or not, this changes no value: (x - 0) / (1 - 0) = x) */
    if (!st) st = lpm_normalize_minmax(a, name_a);
    if (!st) st = lpm_normalize_minmax(b, name_b);
    return st;
}

/* ------------------------------------------------------------------ parsing */

/* "X,Y": two finite numbers and nothing else. */
static int parse_two(const char *s, double *x, double *y) {
    char *end;
    *x = strtod(s, &end);
    if (end == s || *end != ',') return 0;
    const char *second = end + 1;
    *y = strtod(second, &end);
    return end != second && *end == '\0' && isfinite(*x) && isfinite(*y);
}

lpm_status lpm_clip_parse(const char *s, double *lo, double *hi) {
    if (!s || !lo || !hi) return lpm_fail(LPM_ERR_USAGE, "lpm_clip_parse: a NULL argument");
    double l, h;
    if (!parse_two(s, &l, &h) || !(l >= 0 && l < h && h <= 100))
        return lpm_fail(LPM_ERR_USAGE,
                        "'%s' is not a percentile range: expected LOW,HIGH with 0 <= LOW < HIGH <= 100 "
                        "(e.g. 0.5,99.5)", s);
    *lo = l, *hi = h;
    return LPM_OK;
}

static const struct {
    const char *name;
    double width, level;
} ct_presets[] = {
    {"bone", 2000, 500},
    {"soft", 400, 40},
    {"lung", 1500, -600},
};

lpm_status lpm_ct_window_parse(const char *s, double *width, double *level) {
    if (!s || !width || !level) return lpm_fail(LPM_ERR_USAGE, "lpm_ct_window_parse: a NULL argument");
    for (size_t i = 0; i < sizeof ct_presets / sizeof ct_presets[0]; i++)
        if (!strcmp(s, ct_presets[i].name)) {
            *width = ct_presets[i].width, *level = ct_presets[i].level;
            return LPM_OK;
        }
    double w, l;
    /* the window's ends must be finite and distinct in double, not only W and L */
    if (!parse_two(s, &w, &l) || !(w > 0) || !(l + w / 2 > l - w / 2) || !isfinite(l + w / 2) ||
        !isfinite(l - w / 2))
        return lpm_fail(LPM_ERR_USAGE,
                        "'%s' is not a CT window: expected bone, soft, lung or WIDTH,LEVEL in HU with "
                        "WIDTH > 0 (e.g. 400,40)", s);
    *width = w, *level = l;
    return LPM_OK;
}

/* ------------------------------------------------------------------ masks */

lpm_status lpm_mask_read(const char *path, const lpm_volume *like, const char *like_name,
                         uint8_t **mask) {
    *mask = NULL;
    lpm_volume m = {0};
    lpm_status st = lpm_volume_read(path, &m);
    if (!st) st = lpm_check_same_grid(like, &m, like_name, path);
    int64_t n = lpm_volume_numel(&m), inside = 0;
    uint8_t *out = st ? NULL : lpm_malloc((size_t)n, 1);
    if (!st && !out) st = LPM_ERR_INTERNAL;
    for (int64_t i = 0; !st && i < n; i++) {
        if (isnan(m.data[i])) st = refuse_non_finite(&m, i, path);
        out[i] = m.data[i] != 0;
        inside += out[i];
    }
    if (!st && !inside) st = lpm_fail(LPM_ERR_INPUT, "%s: the mask is empty (no nonzero voxel)", path);
    lpm_volume_free(&m);
    if (st) {
        free(out);
        return st;
    }
    *mask = out;
    return LPM_OK;
}
