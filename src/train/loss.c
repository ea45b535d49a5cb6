/* The LPM-Net training objective: MSE, edge fidelity and the losses built from them and
 * from metrics' SSIM and SF (docs/lpmnet.md sections 2 and 4).
 *
 * Sums that make a reported value are accumulated in double, per slice or per block,
 * and the partial sums are added in a fixed order, so a value does not depend on the
 * number of threads. */
#include "loss.h"
#include "classical/classical.h" /* the pyramid fusion and the box mean of lpm_fusion_target */
#include "core/vmath.h"

#include <math.h>
#include <string.h>

static lpm_status check_dims(const char *fn, const void *p, const void *q, int64_t D, int64_t H,
                             int64_t W) {
    if (!p || !q) return lpm_fail(LPM_ERR_INTERNAL, "%s: NULL input", fn);
    if (D < 1 || H < 1 || W < 1 || H > INT64_MAX / W || D > INT64_MAX / (H * W))
        return lpm_fail(LPM_ERR_INTERNAL, "%s: bad size %lldx%lldx%lld", fn, (long long)D,
                        (long long)H, (long long)W);
    return LPM_OK;
}

/* ------------------------------------------------------------------ edge fidelity */

/* The stronger source's difference: a if |a| >= |b|, else b (A wins ties) */
LPM_INLINE double stronger(double a, double b) { return fabs(a) >= fabs(b) ? a : b; }

lpm_status lpm_edge(double *edge, const float *A, const float *B, const float *f, int64_t D,
                    int64_t H, int64_t W, float *df, double scale) {
    lpm_status st = check_dims("lpm_edge", A, B, D, H, W);
    if (!st) st = check_dims("lpm_edge", f, edge, D, H, W);
    if (st) return st;
    int64_t HW = H * W, N = D * HW;
    double *part = lpm_malloc((size_t)D, 3 * sizeof(double));
    float *res = df ? lpm_malloc((size_t)N, 3 * sizeof(float)) : NULL;  /* residuals per axis */
    if (!part || (df && !res)) {
        free(part), free(res);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_edge: out of memory");
    }
    /* residual e = (f_(i+1) - f_i) - stronger(A_(i+1) - A_i, B_(i+1) - B_i) on each axis;
     * 0 where the axis has no next voxel */
    const int64_t step[3] = {HW, W, 1};
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        double s[3] = {0.0, 0.0, 0.0};
        for (int64_t h = 0; h < H; h++) {
            for (int64_t w = 0; w < W; w++) {
                int64_t i = d * HW + h * W + w;
                const int inside[3] = {d + 1 < D, h + 1 < H, w + 1 < W};
                for (int a = 0; a < 3; a++) {
                    double e = 0.0;
                    if (inside[a]) {
                        int64_t j = i + step[a];
                        e = ((double)f[j] - f[i]) - stronger((double)A[j] - A[i], (double)B[j] - B[i]);
                    }
                    s[a] += e * e;
                    if (res) res[(size_t)a * N + i] = (float)e;
                }
            }
        }
        for (int a = 0; a < 3; a++) part[3 * d + a] = s[a];
    }
    double sum[3] = {0.0, 0.0, 0.0};
    for (int64_t d = 0; d < D; d++)
        for (int a = 0; a < 3; a++) sum[a] += part[3 * d + a];
    free(part);
    double inv[3] = {D > 1 ? 1.0 / (double)((D - 1) * HW) : 0.0,
                     H > 1 ? 1.0 / (double)(D * (H - 1) * W) : 0.0,
                     W > 1 ? 1.0 / (double)(D * H * (W - 1)) : 0.0};
    *edge = sum[0] * inv[0] + sum[1] * inv[1] + sum[2] * inv[2];
    if (!df) return LPM_OK;

    /* dE/df = sum_axes (2/N_axis) D_axis^T e: a residual at i adds at i+1, subtracts at i */
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; d++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t w = 0; w < W; w++) {
                int64_t i = d * HW + h * W + w;
                const int before[3] = {d > 0, h > 0, w > 0};
                double g = 0.0;
                for (int a = 0; a < 3; a++) {
                    const float *e = res + (size_t)a * N;
                    double ga = before[a] ? (double)e[i - step[a]] - e[i] : -(double)e[i];
                    g += 2.0 * inv[a] * ga;
                }
                df[i] += (float)(scale * g);
            }
        }
    }
    free(res);
    return LPM_OK;
}

/* ------------------------------------------------------------------ fusion target */

/* The 9-voxel triangle filter of x (D,H,W), in place: the 5-voxel mean (ends repeated) twice
 * along each axis; tmp is scratch of the same size. */
static void triangle9(float *x, float *tmp, int64_t D, int64_t H, int64_t W) {
    /* along W, H, D, W, H, D: six passes between x and tmp end in x */
    const int64_t before[3] = {D * H, D, 1}, len[3] = {W, H, D}, after[3] = {1, W, H * W};
    float *from = x, *to = tmp;
    for (int k = 0; k < 6; k++) {
        lpm_box_axis(from, to, before[k % 3], len[k % 3], after[k % 3], 2, LPM_BOX_REPLICATE);
        float *t = from;
        from = to, to = t;
    }
}

lpm_status lpm_fusion_target(float *T, const float *A, const float *B, int64_t D, int64_t H,
                             int64_t W) {
    lpm_status st = check_dims("lpm_fusion_target", A, B, D, H, W);
    if (st) return st;
    size_t N = (size_t)(D * H * W);
    float *a = lpm_malloc(N, sizeof(float)), *b = lpm_malloc(N, sizeof(float));
    if (!a || !b) {
        free(a), free(b);
        return lpm_fail(LPM_ERR_INTERNAL, "lpm_fusion_target: out of memory");
    }
    memcpy(a, A, N * sizeof(float));
    memcpy(b, B, N * sizeof(float));
    triangle9(a, T, D, H, W); /* T is scratch until the pyramid fills it */
    triangle9(b, T, D, H, W);
    st = lpm_classical_fuse("laplacian", A, B, T, D, H, W);
    if (!st) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < (int64_t)N; i++) {
            double da = (double)A[i] - a[i], db = (double)B[i] - b[i];
            double s = (a[i] > b[i] ? a[i] : b[i]) + stronger(da, db);
            double t = 0.5 * ((double)T[i] + s);
            T[i] = (float)(t > 0 ? (t < 1 ? t : 1) : 0);
        }
    }
    free(a), free(b);
    return st;
}

/* ------------------------------------------------------------------ MSE */

#define MSE_BLOCK ((int64_t)1 << 16)

lpm_status lpm_mse(double *mse, const float *x, const float *y, int64_t n, float *dy, double scale) {
    if (!x || !y || !mse || n < 1) return lpm_fail(LPM_ERR_INTERNAL, "lpm_mse: bad arguments");
    int64_t nb = (n + MSE_BLOCK - 1) / MSE_BLOCK;
    double *part = lpm_malloc((size_t)nb, sizeof(double));
    if (!part) return lpm_fail(LPM_ERR_INTERNAL, "lpm_mse: out of memory");
    /* d((x - y)^2)/dy = 2 (y - x) */
    float c = (float)(2.0 * scale / (double)n);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = b + 1 < nb ? (b + 1) * MSE_BLOCK : n;
        double s = 0.0;
        for (int64_t i = b * MSE_BLOCK; i < end; i++) {
            double e = (double)x[i] - (double)y[i];
            s += e * e;
            if (dy) dy[i] += c * (y[i] - x[i]);
        }
        part[b] = s;
    }
    double s = 0.0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    free(part);
    *mse = s / (double)n;
    return LPM_OK;
}

/* ------------------------------------------------------------------ the objective */

double lpm_lambda_s(int64_t step_in_epoch, int64_t n_epochs) {
    return exp(0.002 * (double)(step_in_epoch - n_epochs));
}

lpm_status lpm_loss_fusion(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A,
                           const float *B, const float *F, const float *Det, int64_t D,
                           int64_t H, int64_t W, float *dF, float *dDet) {
    lpm_status st = check_dims("lpm_loss_fusion", A, B, D, H, W);
    if (!st) st = check_dims("lpm_loss_fusion", F, Det, D, H, W);
    if (st) return st;
    size_t N = (size_t)(D * H * W);
    if (dF) memset(dF, 0, N * sizeof(float));
    if (dDet) memset(dDet, 0, N * sizeof(float));
    /* alpha (MSE(A,F) + MSE(B,F))/2 */
    if ((st = lpm_mse(&t->mse_af, A, F, (int64_t)N, dF, w->alpha / 2))) return st;
    if ((st = lpm_mse(&t->mse_bf, B, F, (int64_t)N, dF, w->alpha / 2))) return st;
    /* beta (1 - (SSIM(A,F) + SSIM(B,F))/2) and 1 - (SSIM(A,Det) + SSIM(B,Det))/2,
     * unweighted (authors' quirk); in one workspace, A's and B's statistics filtered once.
     * dF and dDet each still receive A's term before B's. */
    lpm_ssim_ws ws;
    if ((st = lpm_ssim_ws_alloc(&ws, D, H, W))) return st;
    lpm_ssim3d_ws(&ws, &t->ssim_af, A, F, 0, dF, -w->beta / 2);
    lpm_ssim3d_ws(&ws, &t->ssim_adet, A, Det, 1, dDet, -0.5);
    lpm_ssim3d_ws(&ws, &t->ssim_bf, B, F, 0, dF, -w->beta / 2);
    lpm_ssim3d_ws(&ws, &t->ssim_bdet, B, Det, 1, dDet, -0.5);
    lpm_ssim_ws_free(&ws);
    /* - gamma lambda_s SF(F) */
    if ((st = lpm_sf(&t->sf_f, F, D, H, W, dF, -w->gamma * w->lambda_s))) return st;
    /* + sf_match (SF(F)/SF_R - 1)^2: lpmnet's optional term, 0 in the authors' objective */
    t->sf_ratio = 0.0;
    double sf_gap;
    if (w->sf_match != 0.0 && (st = lpm_sf_match(&sf_gap, &t->sf_ratio, A, B, F, D, H, W, dF, w->sf_match)))
        return st;
    /* + edge E(A,B,F): lpmnet's optional term, 0 in the authors' objective */
    t->edge_f = 0.0;
    if (w->edge != 0.0 && (st = lpm_edge(&t->edge_f, A, B, F, D, H, W, dF, w->edge))) return st;
    /* + qabf (1 - QABF(A,B,F)): lpmnet's optional term, 0 in the authors' objective */
    t->qabf_f = 0.0;
    if (w->qabf != 0.0 && (st = lpm_qabf(&t->qabf_f, A, B, F, D, H, W, dF, -w->qabf))) return st;
    /* + target MSE(T,F): lpmnet's optional term, 0 in the authors' objective */
    t->target_f = 0.0;
    if (w->target == 0.0) return LPM_OK;
    float *T = lpm_malloc(N, sizeof(float));
    if (!T) return lpm_fail(LPM_ERR_INTERNAL, "lpm_loss_fusion: out of memory");
    st = lpm_fusion_target(T, A, B, D, H, W);
    if (!st) st = lpm_mse(&t->target_f, T, F, (int64_t)N, dF, w->target);
    free(T);
    return st;
}

lpm_status lpm_loss_recon(lpm_loss_terms *t, const float *A, const float *B, const float *R,
                          int64_t D, int64_t H, int64_t W, float *dR) {
    lpm_status st = check_dims("lpm_loss_recon", A, B, D, H, W);
    if (!st) st = check_dims("lpm_loss_recon", R, R, D, H, W);
    if (st) return st;
    int64_t N = D * H * W;
    if (dR) memset(dR, 0, 2 * (size_t)N * sizeof(float));
    /* MSE(R, stack([A, B])): the mean over 2N values is the mean of the two channel means */
    double m0, m1;
    if ((st = lpm_mse(&m0, A, R, N, dR, 0.5))) return st;
    if ((st = lpm_mse(&m1, B, R + N, N, dR ? dR + N : NULL, 0.5))) return st;
    t->mse_rec = (m0 + m1) / 2;
    return LPM_OK;
}

double lpm_loss_total(const lpm_loss_terms *t, const lpm_loss_weights *w) {
    return w->alpha * (t->mse_af + t->mse_bf) / 2
         + w->beta * (1 - (t->ssim_af + t->ssim_bf) / 2)
         + (1 - (t->ssim_adet + t->ssim_bdet) / 2)
         - w->gamma * w->lambda_s * t->sf_f
         + w->edge * t->edge_f
         + w->target * t->target_f
         + (w->qabf != 0.0 ? w->qabf * (1 - t->qabf_f) : 0.0)
         + (w->sf_match != 0.0 ? w->sf_match * (t->sf_ratio - 1) * (t->sf_ratio - 1) : 0.0)
         + t->mse_rec;
}

lpm_status lpm_loss(lpm_loss_terms *t, const lpm_loss_weights *w, const float *A, const float *B,
                    const float *F, const float *Det, const float *R, int64_t D, int64_t H,
                    int64_t W, float *dF, float *dDet, float *dR) {
    lpm_status st = lpm_loss_fusion(t, w, A, B, F, Det, D, H, W, dF, dDet);
    if (!st) st = lpm_loss_recon(t, A, B, R, D, H, W, dR);
    if (st) return st;
    t->total = lpm_loss_total(t, w);
    return LPM_OK;
}
