/* Min-max normalisation of an input volume to [0, 1]. */
#include "core/core.h"

#include <math.h>

lpm_status lpm_normalize_minmax(lpm_volume *v, const char *name) {
    int64_t n = lpm_volume_numel(v);
    if (!v->data || n <= 0) return lpm_fail(LPM_ERR_INPUT, "%s: empty volume", name);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float x = v->data[i];
        if (!isfinite(x)) {
            int64_t w = i % v->nx, h = (i / v->nx) % v->ny, d = i / (v->nx * v->ny);
            return lpm_fail(LPM_ERR_INPUT, "%s: voxel (%lld,%lld,%lld) is %s; lpmnet needs finite values",
                            name, (long long)w, (long long)h, (long long)d, isnan(x) ? "NaN" : "infinite");
        }
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
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
