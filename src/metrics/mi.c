/* MI (docs/lpmnet.md section 3): slice-wise normalised mutual information from Parzen histograms.
 *
 * Bin centres b_k = k * 255/127 (k = 0..127, as numpy.linspace(0, 255, 128)), weight
 * k(v, b) = exp(-0.5 t^2), t = (v - b)/0.1: with a spacing of 2.008 and sigma 0.1 only the
 * centre or two nearest to v matter, so there is no pixels x bins matrix here.
 *
 * Cutoff: weights with 0.5 t^2 > 100 (|v - b| > 1.414, weight < 3.8e-44) are left out.
 * float64 exp is already exactly 0 beyond 0.5 t^2 = 745.2 (|v - b| > 3.861); between the
 * two, the left-out weights are below 3.8e-44 each, at most 3 per pixel and volume, and
 * every product they would enter is below that too (the other weight is <= 1). Over a slice
 * of up to 1e6 pixels that moves a marginal or joint sum by < 1e-36, while every one of them
 * is divided by (its total + 1e-10) >= 1e-10: no probability moves by more than 1e-26 and no
 * entropy by more than 1e-20 (|d(p log(p + 1e-10))/dp| <= 24, 128^2 bins), far below float64
 * rounding of the results. It also keeps every product normal (>= 1e-87): no slow subnormal
 * arithmetic. A kept weight has |v - b| <= 1.414 < 1.5 spacings, so at most two centres,
 * among the nearest centre k0 and k0 +- 1, qualify. */
#include "metrics.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

#define NB 128
#define EPS 1e-10

static const double BIN_STEP = 255.0 / 127;

static double bin_centre(int k) { return k == NB - 1 ? 255.0 : (double)k * BIN_STEP; }

/* Parzen weights of one value v in [0, 255] above the cutoff: returns their count (<= 2). */
static int parzen(double v, int *idx, double *w) {
    int k0 = (int)floor(v / BIN_STEP + 0.5), n = 0;
    for (int k = k0 - 1; k <= k0 + 1; k++) {
        if (k < 0 || k >= NB) continue;
        double t = (v - bin_centre(k)) / 0.1;
        double e = -0.5 * (t * t);
        if (e >= -100) idx[n] = k, w[n++] = exp(e);
    }
    return n;
}

/* -sum p log(p + 1e-10), with p + 1e-10 rounded to float32 as the authors' float32 PyTorch
 * code has it: a slice where one bin holds everything (an empty background slice) then has
 * entropy exactly 0 and NMI (0 + 1e-10)/(0 + 1e-10) = 1. In float64, log(1 + 1e-10) = 1e-10
 * would leave H_X + H_Y + 1e-10 near -1e-10 and NMI in the hundreds or thousands. */
static double entropy(const double *p, int n) {
    double h = 0;
    /* an empty bin adds exactly 0 (0 x log(1e-10) is -0): most joint bins are empty, and
     * skipping them skips their log */
    for (int i = 0; i < n; i++)
        if (p[i] != 0) h -= p[i] * log((double)(float)(p[i] + EPS));
    return h;
}

/* p = s / (sum s + 1e-10) in place; returns the entropy. */
static double normalised_entropy(double *s, int n) {
    double t = 0;
    for (int i = 0; i < n; i++) t += s[i];
    for (int i = 0; i < n; i++) s[i] /= t + EPS;
    return entropy(s, n);
}

static void minmax(const float *v, size_t n, double *lo, double *hi) {
    float a = v[0], b = v[0];
    for (size_t i = 1; i < n; i++) a = v[i] < a ? v[i] : a, b = v[i] > b ? v[i] : b;
    *lo = a, *hi = b;
}

lpm_status lpm_metric_mi(double *mi, const float *a, const float *b, const float *f, int64_t D,
                         int64_t H, int64_t W) {
    size_t hw = (size_t)(H * W), n = (size_t)D * hw;
    const float *vol[3] = {a, b, f};
    double lo[3], hi[3];
    for (int i = 0; i < 3; i++) {
        minmax(vol[i], n, &lo[i], &hi[i]);
        if (!(hi[i] > lo[i])) {
            *mi = NAN;   /* norm255 of a constant volume is 0/0, as in the reference */
            return LPM_OK;
        }
    }
    int nt = lpm_get_threads();
    /* per thread: marginals of A, B, F and the joints A-F, B-F */
    size_t per = 3 * NB + 2 * NB * NB;
    double *scratch = lpm_malloc((size_t)nt * per, sizeof(double));
    double *slice = lpm_malloc((size_t)D, sizeof(double));
    if (!scratch || !slice) {
        free(scratch);
        free(slice);
        return LPM_ERR_INTERNAL;
    }
#pragma omp parallel for schedule(dynamic)
    for (int64_t d = 0; d < D; d++) {
        double *s = scratch + (size_t)lpm_thread_id() * per;
        double *pm[3] = {s, s + NB, s + 2 * NB};
        double *jaf = s + 3 * NB, *jbf = jaf + NB * NB;
        memset(s, 0, per * sizeof(double));
        for (size_t i = (size_t)d * hw; i < (size_t)(d + 1) * hw; i++) {
            int idx[3][3], cnt[3];
            double w[3][3];
            for (int v = 0; v < 3; v++) {
                /* norm255(V) = 255 (V - min V)/(max V - min V) over the whole volume */
                double x = 255.0 * ((double)vol[v][i] - lo[v]) / (hi[v] - lo[v]);
                cnt[v] = parzen(x, idx[v], w[v]);
                for (int k = 0; k < cnt[v]; k++) pm[v][idx[v][k]] += w[v][k];
            }
            for (int p = 0; p < 2; p++) {
                double *j = p ? jbf : jaf;
                for (int k = 0; k < cnt[p]; k++)
                    for (int l = 0; l < cnt[2]; l++)
                        j[idx[p][k] * NB + idx[2][l]] += w[p][k] * w[2][l];
            }
        }
        double hm[3];
        for (int v = 0; v < 3; v++) {
            /* p_X(b) = mean over pixels of k, then / (sum_b p_X + 1e-10) */
            for (int k = 0; k < NB; k++) pm[v][k] /= (double)hw;
            hm[v] = normalised_entropy(pm[v], NB);
        }
        double nmi = 0;
        for (int p = 0; p < 2; p++) {
            double hxy = normalised_entropy(p ? jbf : jaf, NB * NB);
            nmi += (2 * (hm[p] + hm[2] - hxy) + EPS) / (hm[p] + hm[2] + EPS);
        }
        slice[d] = nmi;
    }
    double sum = 0;
    for (int64_t d = 0; d < D; d++) sum += slice[d];
    *mi = sum / (double)D / 2;
    free(scratch);
    free(slice);
    return LPM_OK;
}
