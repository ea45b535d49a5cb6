/* The metric set: names, selection, mask cropping, and the dispatch to the families. */
#include "metrics.h"
#include "core/core.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

static const char *const NAMES[LPM_NUM_METRICS] = {"ssim", "qabf", "mi", "scd", "vif", "ag",
                                                   "psnr", "en",   "sd", "sf",  "nabf", "rsfe"};

const char *lpm_metric_name(int i) { return i >= 0 && i < LPM_NUM_METRICS ? NAMES[i] : NULL; }

double lpm_metric_value(const lpm_metrics *m, int i) {
    const double v[LPM_NUM_METRICS] = {m->ssim, m->qabf, m->mi, m->scd, m->vif,  m->ag,
                                       m->psnr, m->en,   m->sd, m->sf,  m->nabf, m->rsfe};
    return i >= 0 && i < LPM_NUM_METRICS ? v[i] : NAN;
}

lpm_status lpm_metrics_parse(const char *list, unsigned *which) {
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[16];
        if (len == 0 || len >= sizeof name)
            return lpm_fail(LPM_ERR_USAGE, "bad metric list '%s'", list);
        for (size_t k = 0; k < len; k++) name[k] = (char)tolower((unsigned char)p[k]);
        name[len] = '\0';
        int found = strcmp(name, "all") == 0;
        if (found) bits |= LPM_M_ALL;
        for (int i = 0; i < LPM_NUM_METRICS && !found; i++)
            if (strcmp(name, NAMES[i]) == 0) bits |= 1u << i, found = 1;
        if (!found)
            return lpm_fail(LPM_ERR_USAGE,
                            "unknown metric '%s' (known: ssim qabf mi scd vif ag psnr "
                            "en sd sf nabf rsfe all)", name);
        p += len;
        if (*p == ',' && !*++p) return lpm_fail(LPM_ERR_USAGE, "bad metric list '%s'", list);
    }
    if (!bits) return lpm_fail(LPM_ERR_USAGE, "empty metric list");
    *which = bits;
    return LPM_OK;
}

/* Copy the box [lo, hi) of v (D, H, W) into out. */
static void crop(float *out, const float *v, int64_t H, int64_t W, const int64_t lo[3],
                 const int64_t hi[3]) {
    int64_t bw = hi[2] - lo[2];
    float *o = out;
    for (int64_t d = lo[0]; d < hi[0]; d++)
        for (int64_t h = lo[1]; h < hi[1]; h++, o += bw)
            memcpy(o, v + (d * H + h) * W + lo[2], (size_t)bw * sizeof(float));
}

static lpm_status check_finite(const float *v, size_t n, const char *name) {
    int bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static)
    for (size_t i = 0; i < n; i++) bad |= !isfinite(v[i]);
    return bad ? lpm_fail(LPM_ERR_INPUT, "metrics: %s has NaN or Inf voxels", name) : LPM_OK;
}

static lpm_status score(lpm_metrics *out, const float *a, const float *b, const float *f,
                        int64_t D, int64_t H, int64_t W, const uint8_t *m, unsigned which) {
    lpm_status st = LPM_OK;
    if (which & LPM_M_SSIM) {
        /* (SSIM(A,F) + SSIM(B,F))/2 */
        double sa, sb;
        if ((st = lpm_ssim3d(&sa, a, f, D, H, W, NULL, 0)) != LPM_OK) return st;
        if ((st = lpm_ssim3d(&sb, b, f, D, H, W, NULL, 0)) != LPM_OK) return st;
        out->ssim = (sa + sb) / 2;
    }
    if (which & (LPM_M_QABF | LPM_M_NABF)) {
        double q, n;
        if ((st = lpm_metric_edges(&q, &n, a, b, f, D, H, W)) != LPM_OK) return st;
        if (which & LPM_M_QABF) out->qabf = q;
        if (which & LPM_M_NABF) out->nabf = n;
    }
    if ((which & LPM_M_MI) && (st = lpm_metric_mi(&out->mi, a, b, f, D, H, W)) != LPM_OK)
        return st;
    if ((which & LPM_M_VIF) && (st = lpm_metric_vif(&out->vif, a, b, f, D, H, W)) != LPM_OK)
        return st;
    unsigned stats = LPM_M_SCD | LPM_M_AG | LPM_M_PSNR | LPM_M_EN | LPM_M_SD | LPM_M_SF | LPM_M_RSFE;
    if (which & stats) st = lpm_metric_stats(out, a, b, f, D, H, W, m, which);
    return st;
}

lpm_status lpm_metrics_compute(lpm_metrics *out, const float *a, const float *b, const float *f,
                               int64_t D, int64_t H, int64_t W, const uint8_t *mask,
                               unsigned which) {
    *out = (lpm_metrics){NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    if (D < 1 || H < 1 || W < 1) return lpm_fail(LPM_ERR_INPUT, "metrics: empty volume");
    size_t n = (size_t)(D * H * W);
    lpm_status st;
    if ((st = check_finite(a, n, "A")) != LPM_OK || (st = check_finite(b, n, "B")) != LPM_OK ||
        (st = check_finite(f, n, "F")) != LPM_OK)
        return st;
    if (!mask) return score(out, a, b, f, D, H, W, NULL, which & LPM_M_ALL);

    /* bounding box of the mask */
    int64_t lo[3] = {D, H, W}, hi[3] = {0, 0, 0};
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                if (!mask[(d * H + h) * W + w]) continue;
                int64_t c[3] = {d, h, w};
                for (int k = 0; k < 3; k++) {
                    if (c[k] < lo[k]) lo[k] = c[k];
                    if (c[k] + 1 > hi[k]) hi[k] = c[k] + 1;
                }
            }
    if (hi[0] == 0) return lpm_fail(LPM_ERR_INPUT, "the mask is empty (no nonzero voxel)");
    int64_t bd = hi[0] - lo[0], bh = hi[1] - lo[1], bw = hi[2] - lo[2];
    size_t bn = (size_t)(bd * bh * bw);
    float *c = lpm_malloc(3 * bn, sizeof(float));
    uint8_t *cm = lpm_malloc(bn, 1);
    if (!c || !cm) {
        free(c), free(cm);
        return LPM_ERR_INTERNAL;
    }
    crop(c, a, H, W, lo, hi);
    crop(c + bn, b, H, W, lo, hi);
    crop(c + 2 * bn, f, H, W, lo, hi);
    uint8_t *o = cm;
    for (int64_t d = lo[0]; d < hi[0]; d++)
        for (int64_t h = lo[1]; h < hi[1]; h++, o += bw)
            memcpy(o, mask + (d * H + h) * W + lo[2], (size_t)bw);
    st = score(out, c, c + bn, c + 2 * bn, bd, bh, bw, cm, which & LPM_M_ALL);
    free(c), free(cm);
    return st;
}
