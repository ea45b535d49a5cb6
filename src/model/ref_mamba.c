/* Reference Mamba block (its parts, then the whole layer), Swin windows and the
 * Swin-Mamba layer: plain loops, sums in double (reference.h says what these are for).
 * PyTorch lines quote reference/lpmnet_ref.py (Mamba.forward, selective_scan,
 * SwinMambaLayer.forward). */
#include "reference.h"

#include <math.h>
#include <string.h>

enum {
    C = LPM_C,                          /* d_model = d_inner */
    N = LPM_NSTATE,                     /* d_state */
    RK = LPM_DTRANK,                    /* dt_rank */
    K = LPM_DCONV,                      /* d_conv */
    DBL = LPM_DTRANK + 2 * LPM_NSTATE,  /* x_proj's outputs: dt | B | C */
    WIN = LPM_WIN,
    T = LPM_WIN * LPM_WIN,              /* tokens per window */
};

/* ================================================================ the parts */

void lpm_ref_linear_forward(double *out, const double *in, const float *W, const float *bias,
                            int L, int I, int O) {
    for (int t = 0; t < L; t++)
        for (int o = 0; o < O; o++) {
            double s = bias ? bias[o] : 0.0;   /* F.linear(in, W, bias) = in @ W.T + bias */
            for (int i = 0; i < I; i++) s += W[o * I + i] * in[(size_t)t * I + i];
            out[(size_t)t * O + o] = s;
        }
}

void lpm_ref_linear_backward(double *din, float *dW, float *dbias, const double *dout,
                             const double *in, const float *W, int L, int I, int O) {
    for (int t = 0; din && t < L; t++)   /* din = dout @ W */
        for (int i = 0; i < I; i++) {
            double s = 0;
            for (int o = 0; o < O; o++) s += dout[(size_t)t * O + o] * W[o * I + i];
            din[(size_t)t * I + i] += s;
        }
    for (int o = 0; o < O; o++) {
        for (int i = 0; i < I; i++) {   /* dW = dout.T @ in */
            double s = 0;
            for (int t = 0; t < L; t++) s += dout[(size_t)t * O + o] * in[(size_t)t * I + i];
            dW[o * I + i] += (float)s;
        }
        if (dbias) {   /* dbias = dout.sum(0) */
            double s = 0;
            for (int t = 0; t < L; t++) s += dout[(size_t)t * O + o];
            dbias[o] += (float)s;
        }
    }
}

/* x[t, c], or 0 before the sequence (the conv's left padding; the right padding's outputs
 * are cut off by [..., :L]) */
static double token_at(const double *x, int t, int c) { return t < 0 ? 0.0 : x[(size_t)t * C + c]; }

void lpm_ref_causal_conv1d_forward(double *out, const double *x, const float *w,
                                   const float *bias, int L) {
    for (int t = 0; t < L; t++)
        for (int c = 0; c < C; c++) {
            /* xc = conv1d.bias + sum(xp[:, j:j + L] * conv1d.weight[:, 0, j] for j in range(4)) */
            double s = bias[c];
            for (int k = 0; k < K; k++) s += w[c * K + k] * token_at(x, t - (K - 1) + k, c);
            out[(size_t)t * C + c] = s;
        }
}

/* x[s] meets w[k] in output t = s + 3 - k: dx[s,c] = sum_k w[c,k] dout[s+3-k, c] (t < L);
 * dw[c,k] = sum_t dout[t,c] x[t-3+k, c]; dbias[c] = sum_t dout[t,c]. */
void lpm_ref_causal_conv1d_backward(double *dx, float *dw, float *dbias, const double *dout,
                                    const double *x, const float *w, int L) {
    for (int s = 0; s < L; s++)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                const int t = s + (K - 1) - k;
                if (t < L) acc += w[c * K + k] * dout[(size_t)t * C + c];
            }
            dx[(size_t)s * C + c] += acc;
        }
    for (int c = 0; c < C; c++) {
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int t = 0; t < L; t++)
                acc += dout[(size_t)t * C + c] * token_at(x, t - (K - 1) + k, c);
            dw[c * K + k] += (float)acc;
        }
        double acc = 0;
        for (int t = 0; t < L; t++) acc += dout[(size_t)t * C + c];
        dbias[c] += (float)acc;
    }
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

void lpm_ref_silu_forward(double *y, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoid(x[i]);   /* F.silu */
}

/* silu'(x) = s + x s (1 - s), s = sigmoid(x) */
static double silu_grad(double x) {
    const double s = sigmoid(x);
    return s * (1 + x * (1 - s));
}

void lpm_ref_silu_backward(double *dx, const double *dy, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * silu_grad(x[i]);
}

void lpm_ref_softplus_forward(double *y, const double *x, size_t n) {
    /* F.softplus(x): x above the threshold 20, else log1p(exp(x)) */
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 20 ? x[i] : log1p(exp(x[i]));
}

void lpm_ref_softplus_backward(double *dx, const double *dy, const double *x, size_t n) {
    /* softplus' = sigmoid(x), 1 above the threshold (PyTorch's softplus_backward) */
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 20 ? dy[i] : dy[i] * sigmoid(x[i]);
}

void lpm_ref_gate_forward(double *out, const double *y, const double *z, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = y[i] * (z[i] * sigmoid(z[i]));   /* y * F.silu(z) */
}

void lpm_ref_gate_backward(double *dy, double *dz, const double *dout, const double *y,
                           const double *z, size_t n) {
    for (size_t i = 0; i < n; i++) {
        dy[i] += dout[i] * (z[i] * sigmoid(z[i]));
        dz[i] += dout[i] * y[i] * silu_grad(z[i]);
    }
}

/* ================================================================ selective scan */

/* A = -torch.exp(self.A_log), (24, 8) */
static void scan_A(double A[C][N], const float *A_log) {
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) A[c][n] = -exp((double)A_log[c * N + n]);
}

/* One step of the recurrence: h = exp(delta_t A) h + delta_t B_t xc_t (h: (24, 8)) and
 * y_t = C_t . h_t + D xc_t. */
static void scan_step(double h[C][N], double *y, const double A[C][N], const double *xc,
                      const double *delta, const double *B, const double *Cm, const float *D) {
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) {
            /* dA = torch.exp(dl * A); hs = (dl * x) * b; h = dA_t * h + dBx_t */
            h[c][n] = exp(delta[c] * A[c][n]) * h[c][n] + delta[c] * B[n] * xc[c];
            acc += Cm[n] * h[c][n];   /* (hs * cm).sum(-1) */
        }
        y[c] = acc + D[c] * xc[c];   /* ... + x * D */
    }
}

void lpm_ref_selective_scan_forward(double *y, const double *xc, const double *delta,
                                    const float *A_log, const double *B, const double *Cm,
                                    const float *D, int L) {
    double A[C][N], h[C][N];
    scan_A(A, A_log);
    memset(h, 0, sizeof h);   /* the state starts at 0 in every sequence */
    for (int t = 0; t < L; t++)
        scan_step(h, y + (size_t)t * C, A, xc + (size_t)t * C, delta + (size_t)t * C,
                  B + (size_t)t * N, Cm + (size_t)t * N, D);
}

/* The adjoint, backwards in t, with lam_t = dL/dh_t (24, 8):
 *   lam_t = dy_t C_t + exp(delta_(t+1) A) lam_(t+1)
 *   dxc_t += D dy_t + sum_n lam_t delta_t B_t      dB_t += sum_c lam_t delta_t xc_t
 *   dC_t += sum_c dy_t h_t                         dD += dy_t xc_t
 *   ddelta_t += sum_n lam_t (A exp(delta_t A) h_(t-1) + B_t xc_t)
 *   dA += lam_t delta_t exp(delta_t A) h_(t-1);    dA_log = dA A (A = -exp(A_log)). */
lpm_status lpm_ref_selective_scan_backward(double *dxc, double *ddelta, float *dA_log,
                                           double *dB, double *dCm, float *dD,
                                           const double *dy, const double *xc,
                                           const double *delta, const float *A_log,
                                           const double *B, const double *Cm, const float *D,
                                           int L) {
    /* the states h_0 .. h_(L-1), replayed by the forward's own steps */
    double (*hs)[C][N] = lpm_calloc((size_t)(L > 0 ? L : 1), sizeof *hs);
    if (!hs) return LPM_ERR_INTERNAL;
    double A[C][N], h[C][N], lam[C][N], dA[C][N], dDs[C];
    double y[C];
    scan_A(A, A_log);
    memset(h, 0, sizeof h);
    for (int t = 0; t < L; t++) {
        scan_step(h, y, A, xc + (size_t)t * C, delta + (size_t)t * C, B + (size_t)t * N,
                  Cm + (size_t)t * N, D);
        memcpy(hs[t], h, sizeof h);
    }
    memset(lam, 0, sizeof lam), memset(dA, 0, sizeof dA), memset(dDs, 0, sizeof dDs);
    for (int t = L - 1; t >= 0; t--) {
        const double *g = dy + (size_t)t * C, *x = xc + (size_t)t * C, *dl = delta + (size_t)t * C;
        const double *Bt = B + (size_t)t * N, *Ct = Cm + (size_t)t * N;
        const double *dl_next = t + 1 < L ? delta + (size_t)(t + 1) * C : NULL;
        double dBt[N] = {0}, dCt[N] = {0};
        for (int c = 0; c < C; c++) {
            double dx = D[c] * g[c], ddl = 0;
            dDs[c] += g[c] * x[c];
            for (int n = 0; n < N; n++) {
                const double a_next = dl_next ? exp(dl_next[c] * A[c][n]) : 0.0;
                lam[c][n] = g[c] * Ct[n] + a_next * lam[c][n];
                const double h_prev = t > 0 ? hs[t - 1][c][n] : 0.0;
                const double a = exp(dl[c] * A[c][n]);
                dCt[n] += g[c] * hs[t][c][n];
                dBt[n] += lam[c][n] * dl[c] * x[c];
                dx += lam[c][n] * dl[c] * Bt[n];
                ddl += lam[c][n] * (A[c][n] * a * h_prev + Bt[n] * x[c]);
                dA[c][n] += lam[c][n] * dl[c] * a * h_prev;
            }
            dxc[(size_t)t * C + c] += dx;
            ddelta[(size_t)t * C + c] += ddl;
        }
        for (int n = 0; n < N; n++) {
            dB[(size_t)t * N + n] += dBt[n];
            dCm[(size_t)t * N + n] += dCt[n];
        }
    }
    for (int c = 0; c < C; c++) {
        dD[c] += (float)dDs[c];
        for (int n = 0; n < N; n++) dA_log[c * N + n] += (float)(dA[c][n] * A[c][n]);
    }
    free(hs);
    return LPM_OK;
}

/* ================================================================ the Mamba layer */

/* The layer's intermediate values for one sequence (or, in the backward, their gradients). */
typedef struct {
    double *xz;      /* (L, 48) in_proj(u) */
    double *x, *z;   /* (L, 24) its halves */
    double *xpre;    /* (L, 24) the causal conv's output */
    double *xc;      /* (L, 24) F.silu of it */
    double *dbl;     /* (L, 18) x_proj(xc) */
    double *dt;      /* (L, 2)  its columns 0..1 */
    double *B, *Cm;  /* (L, 8)  its columns 2..9 and 10..17 */
    double *v;       /* (L, 24) dt_proj(dt) */
    double *delta;   /* (L, 24) F.softplus(v) */
    double *y;       /* (L, 24) the scan's output */
    double *yg;      /* (L, 24) y * F.silu(z) */
    double *block;   /* the one allocation they live in */
} mamba_vals;

static lpm_status vals_alloc(mamba_vals *a, int L) {
    const size_t l = (size_t)L;
    const size_t sizes[] = {2 * C, C, C, C, C, DBL, RK, N, N, C, C, C, C};
    double **fields[] = {&a->xz, &a->x, &a->z, &a->xpre, &a->xc, &a->dbl, &a->dt,
                         &a->B, &a->Cm, &a->v, &a->delta, &a->y, &a->yg};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i] * l;
    a->block = lpm_calloc(total ? total : 1, sizeof(double));
    if (!a->block) return LPM_ERR_INTERNAL;
    double *at = a->block;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *fields[i] = at;
        at += sizes[i] * l;
    }
    return LPM_OK;
}

/* dst (L, n) = src[:, first:first + n] of src (L, ld) */
static void take_columns(double *dst, const double *src, int L, int ld, int first, int n) {
    for (int t = 0; t < L; t++)
        for (int j = 0; j < n; j++) dst[(size_t)t * n + j] = src[(size_t)t * ld + first + j];
}

/* dst[:, first:first + n] += src (L, n): the backward of take_columns */
static void add_columns(double *dst, const double *src, int L, int ld, int first, int n) {
    for (int t = 0; t < L; t++)
        for (int j = 0; j < n; j++) dst[(size_t)t * ld + first + j] += src[(size_t)t * n + j];
}

/* Mamba.forward up to the gated y (the input of out_proj). */
static void mamba_values(mamba_vals *a, const double *u, const lpm_mamba_params *p, int L) {
    const size_t lc = (size_t)L * C;
    /* xz = self.in_proj(u); x, z = xz[..., :24], xz[..., 24:] */
    lpm_ref_linear_forward(a->xz, u, p->in_proj, NULL, L, C, 2 * C);
    take_columns(a->x, a->xz, L, 2 * C, 0, C);
    take_columns(a->z, a->xz, L, 2 * C, C, C);
    /* xc = conv1d(x) (causal: x padded with 3 zero tokens in front), xc = F.silu(xc) */
    lpm_ref_causal_conv1d_forward(a->xpre, a->x, p->conv_w, p->conv_b, L);
    lpm_ref_silu_forward(a->xc, a->xpre, lc);
    /* dbl = self.x_proj(xc); dt, Bm, Cm = dbl[..., :2], dbl[..., 2:10], dbl[..., 10:] */
    lpm_ref_linear_forward(a->dbl, a->xc, p->x_proj, NULL, L, C, DBL);
    take_columns(a->dt, a->dbl, L, DBL, 0, RK);
    take_columns(a->B, a->dbl, L, DBL, RK, N);
    take_columns(a->Cm, a->dbl, L, DBL, RK + N, N);
    /* delta = F.softplus(self.dt_proj(dt)) */
    lpm_ref_linear_forward(a->v, a->dt, p->dt_proj_w, p->dt_proj_b, L, RK, C);
    lpm_ref_softplus_forward(a->delta, a->v, lc);
    /* y = selective_scan(xc, delta, A, Bm, Cm, self.D), A = -torch.exp(self.A_log) */
    lpm_ref_selective_scan_forward(a->y, a->xc, a->delta, p->A_log, a->B, a->Cm, p->D, L);
    /* y = y * F.silu(z) */
    lpm_ref_gate_forward(a->yg, a->y, a->z, lc);
}

lpm_status lpm_ref_mamba_forward_f64(double *out, const double *u, const lpm_mamba_params *p,
                                     int L) {
    mamba_vals a;
    if (vals_alloc(&a, L)) return LPM_ERR_INTERNAL;
    mamba_values(&a, u, p, L);
    lpm_ref_linear_forward(out, a.yg, p->out_proj, NULL, L, C, C);   /* self.out_proj(y) */
    free(a.block);
    return LPM_OK;
}

/* Each forward step's backward, in reverse order; d holds the gradient of each value. */
lpm_status lpm_ref_mamba_backward_f64(double *du, lpm_mamba_params *grad, const double *dout,
                                      const double *u, const lpm_mamba_params *p, int L) {
    const size_t lc = (size_t)L * C;
    mamba_vals a, d;
    if (vals_alloc(&a, L)) return LPM_ERR_INTERNAL;
    if (vals_alloc(&d, L)) {
        free(a.block);
        return LPM_ERR_INTERNAL;
    }
    mamba_values(&a, u, p, L);
    /* out = out_proj(yg) */
    lpm_ref_linear_backward(d.yg, grad->out_proj, NULL, dout, a.yg, p->out_proj, L, C, C);
    /* yg = y * silu(z) */
    lpm_ref_gate_backward(d.y, d.z, d.yg, a.y, a.z, lc);
    /* y = selective_scan(xc, delta, A_log, B, Cm, D) */
    lpm_status st = lpm_ref_selective_scan_backward(d.xc, d.delta, grad->A_log, d.B, d.Cm,
                                                    grad->D, d.y, a.xc, a.delta, p->A_log, a.B,
                                                    a.Cm, p->D, L);
    /* delta = softplus(v), v = dt_proj(dt) */
    lpm_ref_softplus_backward(d.v, d.delta, a.v, lc);
    lpm_ref_linear_backward(d.dt, grad->dt_proj_w, grad->dt_proj_b, d.v, a.dt, p->dt_proj_w, L,
                            RK, C);
    /* dbl = x_proj(xc), split into dt | B | Cm */
    add_columns(d.dbl, d.dt, L, DBL, 0, RK);
    add_columns(d.dbl, d.B, L, DBL, RK, N);
    add_columns(d.dbl, d.Cm, L, DBL, RK + N, N);
    lpm_ref_linear_backward(d.xc, grad->x_proj, NULL, d.dbl, a.xc, p->x_proj, L, C, DBL);
    /* xc = silu(xpre), xpre = conv1d(x) */
    lpm_ref_silu_backward(d.xpre, d.xc, a.xpre, lc);
    lpm_ref_causal_conv1d_backward(d.x, grad->conv_w, grad->conv_b, d.xpre, a.x, p->conv_w, L);
    /* xz = in_proj(u), split into x | z */
    add_columns(d.xz, d.x, L, 2 * C, 0, C);
    add_columns(d.xz, d.z, L, 2 * C, C, C);
    lpm_ref_linear_backward(du, grad->in_proj, NULL, d.xz, u, p->in_proj, L, C, 2 * C);
    free(a.block), free(d.block);
    return st;
}

/* The float layer of model.h: u and out converted at the boundary. */
static double *to_f64(const float *x, size_t n) {
    double *y = lpm_calloc(n ? n : 1, sizeof *y);
    for (size_t i = 0; y && i < n; i++) y[i] = x[i];
    return y;
}

static void add_f32(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += (float)src[i];
}

static void store_f32(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

lpm_status lpm_ref_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L) {
    const size_t lc = (size_t)L * C;
    double *u64 = to_f64(u, lc), *out64 = lpm_calloc(lc ? lc : 1, sizeof *out64);
    lpm_status st = u64 && out64 ? lpm_ref_mamba_forward_f64(out64, u64, p, L) : LPM_ERR_INTERNAL;
    if (!st) store_f32(out, out64, lc);
    free(u64), free(out64);
    return st;
}

lpm_status lpm_ref_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                                  const float *u, const lpm_mamba_params *p, int L) {
    const size_t lc = (size_t)L * C;
    double *u64 = to_f64(u, lc), *dout64 = to_f64(dout, lc);
    double *du64 = lpm_calloc(lc ? lc : 1, sizeof *du64);
    lpm_status st = u64 && dout64 && du64
                        ? lpm_ref_mamba_backward_f64(du64, grad, dout64, u64, p, L)
                        : LPM_ERR_INTERNAL;
    if (!st) add_f32(du, du64, lc);
    free(u64), free(dout64), free(du64);
    return st;
}

/* ================================================================ Swin windows */

/* The pixel of token t = 16 i + j of window w (row-major over the R/16 x Q/16 windows):
 * x = torch.roll(x, shifts=(-s, -s), dims=(1, 2)) makes x'(r, q) = x((r + s) mod R,
 * (q + s) mod Q); then x.reshape(R/16, 16, Q/16, 16, C).permute(0, 2, 1, 3, 4)
 * .reshape(-1, 256, C) puts pixel (16 wr + i, 16 wq + j) of x' at token 16 i + j of
 * window wr * (Q/16) + wq. */
static size_t window_pixel(int w, int t, int R, int Q, int shift) {
    const int wr = w / (Q / WIN), wq = w % (Q / WIN), i = t / WIN, j = t % WIN;
    const int r = (WIN * wr + i + shift) % R, q = (WIN * wq + j + shift) % Q;
    return (size_t)r * Q + q;
}

void lpm_ref_window_partition(double *tok, const double *img, int R, int Q, int Cn, int shift) {
    const int nw = (R / WIN) * (Q / WIN);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < Cn; c++)
                tok[((size_t)w * T + t) * Cn + c] = img[window_pixel(w, t, R, Q, shift) * Cn + c];
}

/* the inverse: windows back (reshape/permute), then torch.roll(x, shifts=(s, s)) */
void lpm_ref_window_merge(double *img, const double *tok, int R, int Q, int Cn, int shift) {
    const int nw = (R / WIN) * (Q / WIN);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < Cn; c++)
                img[window_pixel(w, t, R, Q, shift) * Cn + c] = tok[((size_t)w * T + t) * Cn + c];
}

void lpm_ref_window_partition_backward(double *dimg, const double *dtok, int R, int Q, int Cn,
                                       int shift) {
    const int nw = (R / WIN) * (Q / WIN);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < Cn; c++)
                dimg[window_pixel(w, t, R, Q, shift) * Cn + c] +=
                    dtok[((size_t)w * T + t) * Cn + c];
}

void lpm_ref_window_merge_backward(double *dtok, const double *dimg, int R, int Q, int Cn,
                                   int shift) {
    const int nw = (R / WIN) * (Q / WIN);
    for (int w = 0; w < nw; w++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < Cn; c++)
                dtok[((size_t)w * T + t) * Cn + c] +=
                    dimg[window_pixel(w, t, R, Q, shift) * Cn + c];
}

/* ================================================================ Swin-Mamba layer */

/* Working arrays: the windows' tokens and their gradients (nw, 256, 24), and per window
 * the LayerNorm output, its statistics and the gradients at its output and input. */
typedef struct {
    double *tok, *dtok, *ln, *mean, *rstd, *mo, *dln, *dwin;
} swin_vals;

static lpm_status swin_alloc(swin_vals *s, int R, int Q) {
    const size_t nx = (size_t)R * Q * C;
    s->tok = lpm_calloc(nx ? nx : 1, sizeof(double));
    s->dtok = lpm_calloc(nx ? nx : 1, sizeof(double));
    s->ln = lpm_calloc(T * C, sizeof(double));
    s->mean = lpm_calloc(T, sizeof(double));
    s->rstd = lpm_calloc(T, sizeof(double));
    s->mo = lpm_calloc(T * C, sizeof(double));
    s->dln = lpm_calloc(T * C, sizeof(double));
    s->dwin = lpm_calloc(T * C, sizeof(double));
    return s->tok && s->dtok && s->ln && s->mean && s->rstd && s->mo && s->dln && s->dwin
               ? LPM_OK
               : LPM_ERR_INTERNAL;
}

static void swin_free(swin_vals *s) {
    free(s->tok), free(s->dtok), free(s->ln), free(s->mean), free(s->rstd), free(s->mo);
    free(s->dln), free(s->dwin);
}

lpm_status lpm_ref_swin_mamba_forward_f64(double *out, const double *in,
                                          const lpm_mamba_params *p, int R, int Q, int shift) {
    swin_vals s;
    lpm_status st = swin_alloc(&s, R, Q);
    const int nw = (R / WIN) * (Q / WIN);
    /* x = roll(x, (-s, -s)); w = the windows' tokens (nw, 256, 24) */
    if (!st) lpm_ref_window_partition(s.tok, in, R, Q, C, shift);
    for (int w = 0; !st && w < nw; w++) {
        double *tok = s.tok + (size_t)w * T * C;
        /* w = self.mamba(self.norm(w)), one window at a time */
        lpm_ref_layernorm_forward_f64(s.ln, NULL, NULL, tok, p->norm_w, p->norm_b, T, C);
        st = lpm_ref_mamba_forward_f64(s.mo, s.ln, p, T);
        memcpy(tok, s.mo, sizeof(double) * T * C);
    }
    /* windows back, x = roll(x, (s, s)) */
    if (!st) lpm_ref_window_merge(out, s.tok, R, Q, C, shift);
    swin_free(&s);
    return st;
}

lpm_status lpm_ref_swin_mamba_backward_f64(double *din, lpm_mamba_params *grad,
                                           const double *dout, const double *in,
                                           const lpm_mamba_params *p, int R, int Q, int shift) {
    swin_vals s;
    lpm_status st = swin_alloc(&s, R, Q);
    const int nw = (R / WIN) * (Q / WIN);
    if (!st) {
        lpm_ref_window_partition(s.tok, in, R, Q, C, shift);
        /* merge's backward: the output gradient as windows */
        lpm_ref_window_merge_backward(s.dtok, dout, R, Q, C, shift);
    }
    for (int w = 0; !st && w < nw; w++) {
        const double *tok = s.tok + (size_t)w * T * C;
        double *dtok = s.dtok + (size_t)w * T * C;
        lpm_ref_layernorm_forward_f64(s.ln, s.mean, s.rstd, tok, p->norm_w, p->norm_b, T, C);
        memset(s.dln, 0, sizeof(double) * T * C);
        st = lpm_ref_mamba_backward_f64(s.dln, grad, dtok, s.ln, p, T);
        memset(s.dwin, 0, sizeof(double) * T * C);
        lpm_ref_layernorm_backward_f64(s.dwin, grad->norm_w, grad->norm_b, s.dln, tok, s.mean,
                                       s.rstd, p->norm_w, T, C);
        memcpy(dtok, s.dwin, sizeof(double) * T * C);
    }
    /* partition's backward: the windows' input gradients back onto the image, added */
    if (!st) lpm_ref_window_partition_backward(din, s.dtok, R, Q, C, shift);
    swin_free(&s);
    return st;
}

lpm_status lpm_ref_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p,
                                      int R, int Q, int shift) {
    const size_t nx = (size_t)R * Q * C;
    double *in64 = to_f64(in, nx), *out64 = lpm_calloc(nx ? nx : 1, sizeof *out64);
    lpm_status st = in64 && out64 ? lpm_ref_swin_mamba_forward_f64(out64, in64, p, R, Q, shift)
                                  : LPM_ERR_INTERNAL;
    if (!st) store_f32(out, out64, nx);
    free(in64), free(out64);
    return st;
}

lpm_status lpm_ref_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                                       const float *in, const lpm_mamba_params *p, int R,
                                       int Q, int shift) {
    const size_t nx = (size_t)R * Q * C;
    double *in64 = to_f64(in, nx), *dout64 = to_f64(dout, nx);
    double *din64 = lpm_calloc(nx ? nx : 1, sizeof *din64);
    lpm_status st = in64 && dout64 && din64
                        ? lpm_ref_swin_mamba_backward_f64(din64, grad, dout64, in64, p, R, Q, shift)
                        : LPM_ERR_INTERNAL;
    if (!st) add_f32(din, din64, nx);
    free(in64), free(dout64), free(din64);
    return st;
}
