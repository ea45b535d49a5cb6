/* Voxel statistics of docs/lpmnet.md section 3: SCD, AG, PSNR, EN, SD, SF, rSFe.
 * Sums are formed per slice and added in slice order, so results do not depend on the
 * thread count. With a mask m, only mask voxels (and differences between two mask voxels)
 * count; see metrics.h. */
#include "metrics.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

#define EPS 1e-10
#define EN_BINS 255

/* pass 1 per slice: n, sum a, b, f, f-b, f-a, (a-f)^2, (b-f)^2 */
enum { S_N, S_A, S_B, S_F, S_FB, S_FA, S_EA, S_EB, S1_COUNT };
/* pass 2 per slice: SCD (x'a', x'^2, a'^2 for x = f-b; y'b', y'^2, b'^2 for y = f-a), SD,
 * AG sum and count, SF sums and counts for F and for max(|dA|,|dB|) along D, H, W */
enum {
    S_XA, S_XX, S_AA, S_YB, S_YY, S_BB, S_SD, S_AG, S_AGN,
    S_FD, S_FH, S_FW, S_RD, S_RH, S_RW, S_ND, S_NH, S_NW, S2_COUNT
};

static double sfr(double da, double db) {
    da = fabs(da), db = fabs(db);
    return da > db ? da : db;
}

static double corr(double ab, double aa, double bb) {
    return (ab + EPS) / (sqrt(aa * bb) + EPS);
}

static double psnr1(double se, double n) {
    double mse = se / n;
    return mse == 0 ? INFINITY : 10 * log10(1 / mse);
}

lpm_status lpm_metric_stats(lpm_metrics *out, const float *a, const float *b, const float *f,
                            int64_t D, int64_t H, int64_t W, const uint8_t *m, unsigned which) {
    size_t hw = (size_t)(H * W);
    int nt = lpm_get_threads();
    double *s1 = lpm_calloc((size_t)D * S1_COUNT, sizeof(double));
    double *s2 = lpm_calloc((size_t)D * S2_COUNT, sizeof(double));
    float *lo = lpm_malloc((size_t)D * 2, sizeof(float));
    int64_t *hist = lpm_calloc((size_t)nt * EN_BINS, sizeof(int64_t));
    if (!s1 || !s2 || !lo || !hist) {
        free(s1), free(s2), free(lo), free(hist);
        return LPM_ERR_INTERNAL;
    }
    float *hi = lo + D;
#define IN(i) (!m || m[i])
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double *t = s1 + d * S1_COUNT;
        float mn = INFINITY, mx = -INFINITY;
        for (size_t i = (size_t)d * hw; i < (size_t)(d + 1) * hw; i++) {
            if (!IN(i)) continue;
            double x = a[i], y = b[i], z = f[i];
            t[S_N] += 1, t[S_A] += x, t[S_B] += y, t[S_F] += z;
            t[S_FB] += z - y, t[S_FA] += z - x;
            t[S_EA] += (x - z) * (x - z), t[S_EB] += (y - z) * (y - z);
            mn = f[i] < mn ? f[i] : mn, mx = f[i] > mx ? f[i] : mx;
        }
        lo[d] = mn, hi[d] = mx;
    }
    double t1[S1_COUNT] = {0};
    float fmin = INFINITY, fmax = -INFINITY;
    for (int64_t d = 0; d < D; d++) {
        for (int k = 0; k < S1_COUNT; k++) t1[k] += s1[d * S1_COUNT + k];
        fmin = lo[d] < fmin ? lo[d] : fmin, fmax = hi[d] > fmax ? hi[d] : fmax;
    }
    double n = t1[S_N];
    if (n == 0) {
        free(s1), free(s2), free(lo), free(hist);
        return lpm_fail(LPM_ERR_INPUT, "the mask is empty (no nonzero voxel)");
    }
    double ma = t1[S_A] / n, mb = t1[S_B] / n, mf = t1[S_F] / n;
    double mfb = t1[S_FB] / n, mfa = t1[S_FA] / n;
    /* norm255 over the (mask) voxels of F, for AG and EN */
    double flo = fmin, fden = (double)fmax - (double)fmin;
#define N255(v) (255.0 * ((double)(v) - flo) / fden)
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double *t = s2 + d * S2_COUNT;
        int64_t *hg = hist + (size_t)lpm_thread_id() * EN_BINS;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                size_t i = (size_t)((d * H + h) * W + w);
                if (!IN(i)) continue;
                double x = (double)f[i] - b[i] - mfb, xa = a[i] - ma;
                double y = (double)f[i] - a[i] - mfa, yb = b[i] - mb;
                t[S_XA] += x * xa, t[S_XX] += x * x, t[S_AA] += xa * xa;
                t[S_YB] += y * yb, t[S_YY] += y * y, t[S_BB] += yb * yb;
                t[S_SD] += (f[i] - mf) * (f[i] - mf);
                if (fden > 0) {
                    /* histogram of 255 unit bins over [0, 255]; 255 itself in the last */
                    int k = (int)floor(N255(f[i]));
                    hg[k < EN_BINS ? k : EN_BINS - 1]++;
                }
                size_t nb[3] = {i + hw, i + (size_t)W, i + 1};
                int ok[3] = {d + 1 < D && IN(nb[0]), h + 1 < H && IN(nb[1]), w + 1 < W && IN(nb[2])};
                for (int k = 0; k < 3; k++) {
                    if (!ok[k]) continue;
                    size_t j = nb[k];
                    double df = (double)f[j] - f[i];
                    double dr = sfr((double)a[j] - a[i], (double)b[j] - b[i]);
                    t[S_FD + k] += df * df, t[S_RD + k] += dr * dr, t[S_ND + k] += 1;
                }
                if (ok[0] && ok[1] && ok[2] && fden > 0) {
                    double c = N255(f[i]);
                    double dD = N255(f[nb[0]]) - c, dH = N255(f[nb[1]]) - c, dW = N255(f[nb[2]]) - c;
                    t[S_AG] += sqrt((dD * dD + dH * dH + dW * dW) / 3), t[S_AGN] += 1;
                }
            }
    }
#undef N255
#undef IN
    double t2[S2_COUNT] = {0};
    for (int64_t d = 0; d < D; d++)
        for (int k = 0; k < S2_COUNT; k++) t2[k] += s2[d * S2_COUNT + k];
    if (which & LPM_M_SCD)
        out->scd = (corr(t2[S_XA], t2[S_XX], t2[S_AA]) + corr(t2[S_YB], t2[S_YY], t2[S_BB])) / 2;
    if (which & LPM_M_PSNR) out->psnr = (psnr1(t1[S_EA], n) + psnr1(t1[S_EB], n)) / 2;
    if (which & LPM_M_SD) out->sd = sqrt(t2[S_SD] / n);
    /* an empty AG (no corner inside) or a constant F has no norm255: NAN */
    if (which & LPM_M_AG) out->ag = t2[S_AGN] > 0 ? t2[S_AG] / t2[S_AGN] : NAN;
    if (which & LPM_M_EN) {
        double en = NAN;
        if (fden > 0) {
            int64_t tot = 0, cnt[EN_BINS] = {0};
            for (int t = 0; t < nt; t++)
                for (int k = 0; k < EN_BINS; k++) cnt[k] += hist[t * EN_BINS + k];
            for (int k = 0; k < EN_BINS; k++) tot += cnt[k];
            en = 0;
            for (int k = 0; k < EN_BINS; k++) {
                double p = (double)cnt[k] / (double)tot;
                en -= p * log2(p + 1e-7);
            }
        }
        out->en = en;
    }
    double sf = 0, sfref = 0;
    for (int k = 0; k < 3; k++) {
        double c = t2[S_ND + k];
        if (c > 0) sf += t2[S_FD + k] / c, sfref += t2[S_RD + k] / c;
    }
    sf = sqrt(sf), sfref = sqrt(sfref);
    if (which & LPM_M_SF) out->sf = sf;
    if (which & LPM_M_RSFE) out->rsfe = (sf - sfref) / sfref;
    free(s1), free(s2), free(lo), free(hist);
    return LPM_OK;
}
