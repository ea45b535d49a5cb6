/* The public API's metrics (include/lpmnet.h): src/metrics on copies of the volumes, min-max
 * normalised first as `lpmnet metrics` does unless the caller says not to. */
#include "core/core.h"
#include "metrics/metrics.h"

#include <string.h>

_Static_assert(LPM_METRIC_COUNT == LPM_NUM_METRICS, "the public metric count follows metrics.h");

/* Copies of the volumes, each min-max normalised to [0, 1] (named in messages). */
static lpm_status normalized_copies(lpm_volume *out, const lpm_volume *const *in,
                                    const char *const *names, int n) {
    lpm_status st = LPM_OK;
    for (int k = 0; k < n && !st; k++) {
        st = lpm_volume_alloc_like(&out[k], in[k]);
        if (!st) memcpy(out[k].data, in[k]->data, (size_t)lpm_volume_numel(in[k]) * sizeof(float));
        if (!st) st = lpm_normalize_minmax(&out[k], names[k]);
    }
    return st;
}

static int same_size(const lpm_volume *a, const lpm_volume *b) {
    return a->nx == b->nx && a->ny == b->ny && a->nz == b->nz;
}

_Static_assert(LPM_METRICS_ALL == LPM_M_ALL, "the public metric bits follow metrics.h");

lpm_status lpm_metrics_volumes(double values[LPM_METRIC_COUNT], const lpm_volume *a,
                               const lpm_volume *b, const lpm_volume *fused, const uint8_t *mask,
                               int normalize) {
    return lpm_metrics_select(values, a, b, fused, mask, normalize, LPM_METRICS_ALL);
}

lpm_status lpm_metrics_select(double values[LPM_METRIC_COUNT], const lpm_volume *a,
                              const lpm_volume *b, const lpm_volume *fused, const uint8_t *mask,
                              int normalize, unsigned which) {
    const lpm_volume *in[3] = {a, b, fused};
    static const char *const names[3] = {"A", "B", "F"};
    for (int k = 0; k < 3; k++)
        if (!in[k] || !in[k]->data) return lpm_fail(LPM_ERR_USAGE, "lpm_metrics_select: %s has no data", names[k]);
    if (!values) return lpm_fail(LPM_ERR_USAGE, "lpm_metrics_select: no values array");
    for (int k = 1; k < 3; k++)
        if (!same_size(a, in[k]))
            return lpm_fail(LPM_ERR_INPUT, "%s is %lldx%lldx%lld but A is %lldx%lldx%lld: one grid needed",
                            names[k], (long long)in[k]->nx, (long long)in[k]->ny, (long long)in[k]->nz,
                            (long long)a->nx, (long long)a->ny, (long long)a->nz);
    lpm_volume v[3] = {{0}};
    lpm_status st = normalize ? normalized_copies(v, in, names, 3) : LPM_OK;
    const float *data[3] = {a->data, b->data, fused->data};
    if (normalize)
        for (int k = 0; k < 3; k++) data[k] = v[k].data;
    lpm_metrics m;
    if (!st) st = lpm_metrics_compute(&m, data[0], data[1], data[2], a->nz, a->ny, a->nx, mask,
                                       which & LPM_METRICS_ALL);
    for (int i = 0; i < LPM_METRIC_COUNT && !st; i++) values[i] = lpm_metric_value(&m, i);
    for (int k = 0; k < 3; k++) lpm_volume_free(&v[k]);
    return st;
}

lpm_status lpm_seam_volume(double index[3], const lpm_volume *fused, const uint8_t *mask,
                           int normalize) {
    return lpm_seam_volume_why(index, NULL, fused, mask, normalize);
}

lpm_status lpm_seam_volume_why(double index[3], const char *why[3], const lpm_volume *fused,
                               const uint8_t *mask, int normalize) {
    if (!fused || !fused->data) return lpm_fail(LPM_ERR_USAGE, "lpm_seam_volume: F has no data");
    const lpm_volume *in[1] = {fused};
    static const char *const names[1] = {"F"};
    lpm_volume v = {0};
    lpm_status st = normalize ? normalized_copies(&v, in, names, 1) : LPM_OK;
    if (!st)
        st = lpm_seam_index_why(index, why, normalize ? v.data : fused->data, fused->nz, fused->ny,
                                fused->nx, mask);
    lpm_volume_free(&v);
    return st;
}
