/* The Mamba block (mamba_ssm's Mamba with d_model = d_inner = 24, d_state 8, d_conv 4,
 * dt_rank 2) on one sequence of L tokens, forward and backward.
 *
 * Every array is token-major (L, channels) so the per-token work runs over contiguous
 * channels. Backward recomputes the forward internals from u into the caller's scratch
 * and keeps the L x 24 x 8 scan states, so h_(t-1) is read back, never divided out. */
#include "model.h"

#include <math.h>
#include <string.h>

enum {
    C = LPM_C,                             /* d_model = d_inner */
    N = LPM_NSTATE,
    R = LPM_DTRANK,
    K = LPM_DCONV,
    XZ = 2 * LPM_C,                        /* in_proj rows: x | z */
    DBC = LPM_DTRANK + 2 * LPM_NSTATE,     /* x_proj rows: dt | B | C */
    CN = LPM_C * LPM_NSTATE,
};

/* Views into the scratch, each piece starting on a 64-byte boundary. */
typedef struct {
    float *in_t;    /* (24, 48)  in_proj transposed */
    float *xp_t;    /* (24, 18)  x_proj transposed */
    float *out_t;   /* (24, 24)  out_proj transposed */
    float *conv_t;  /* (4, 24)   conv1d weight transposed */
    float *A;       /* (24, 8)   -exp(A_log) */
    float *xz;      /* (L, 48)   in_proj output */
    float *xpre;    /* (L, 24)   conv1d output before SiLU */
    float *xc;      /* (L, 24)   SiLU(conv1d) */
    float *dbc;     /* (L, 18)   x_proj output */
    float *v;       /* (L, 24)   dt_proj output + bias, before softplus */
    float *delta;   /* (L, 24) */
    float *y;       /* (L, 24)   scan output before the gate */
    /* backward only */
    float *hs;      /* (L, 24, 8) scan states h_t */
    float *yg;      /* (L, 24)   gated y (input of out_proj) */
    float *gy;      /* (L, 24)   gradient at the gate's output, then at y */
    float *dxc;     /* (L, 24)   gradient at xc, then at xpre */
    float *ddbc;    /* (L, 18) */
    float *dxz;     /* (L, 48) */
} mamba_buf;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Lays the pieces out in order; with base == NULL only counts. */
static size_t carve(mamba_buf *b, float *base, int L) {
    size_t at = 0, l = (size_t)L;
#define PIECE(field, n)                          \
    do {                                         \
        if (base) b->field = base + at;          \
        at += round16(n);                        \
    } while (0)
    PIECE(in_t, C * XZ);
    PIECE(xp_t, C * DBC);
    PIECE(out_t, C * C);
    PIECE(conv_t, K * C);
    PIECE(A, CN);
    PIECE(xz, l * XZ);
    PIECE(xpre, l * C);
    PIECE(xc, l * C);
    PIECE(dbc, l * DBC);
    PIECE(v, l * C);
    PIECE(delta, l * C);
    PIECE(y, l * C);
    PIECE(hs, l * CN);
    PIECE(yg, l * C);
    PIECE(gy, l * C);
    PIECE(dxc, l * C);
    PIECE(ddbc, l * DBC);
    PIECE(dxz, l * XZ);
#undef PIECE
    return at;
}

size_t lpm_mamba_scratch_floats(int L) { return carve(NULL, NULL, L); }

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void transpose(float *dst, const float *src, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

/* out (L, O) = in (L, I) W^T for W (O, I) given transposed (I, O): the inner loop is an
 * axpy over contiguous outputs. */
static void matmul_forward(float *restrict out, const float *restrict in,
                           const float *restrict wt, int L, int I, int O) {
    for (int t = 0; t < L; t++) {
        float *o = out + (size_t)t * O;
        const float *x = in + (size_t)t * I;
        for (int j = 0; j < O; j++) o[j] = 0.0f;
        for (int i = 0; i < I; i++) {
            const float xi = x[i];
            const float *w = wt + i * O;
            for (int j = 0; j < O; j++) o[j] += xi * w[j];
        }
    }
}

/* din (L, I) += dout W;  dw (O, I) += dout^T in. */
static void matmul_backward(float *restrict din, float *restrict dw,
                            const float *restrict dout, const float *restrict in,
                            const float *restrict w, int L, int I, int O) {
    for (int t = 0; t < L; t++) {
        float *dx = din + (size_t)t * I;
        const float *x = in + (size_t)t * I;
        for (int o = 0; o < O; o++) {
            const float g = dout[(size_t)t * O + o];
            const float *wo = w + o * I;
            float *dwo = dw + o * I;
            for (int i = 0; i < I; i++) {
                dx[i] += g * wo[i];
                dwo[i] += g * x[i];
            }
        }
    }
}

/* h_t = exp(delta_t A) h_(t-1) + delta_t B_t xc_t;  y_t = C_t . h_t + D xc_t.
 * States h_t go to hs (L, 24, 8) when hs is not NULL. */
static void scan_forward(mamba_buf *b, const float *D, int L, float *hs) {
    float h[CN] = {0};
    for (int t = 0; t < L; t++) {
        const float *delta = b->delta + (size_t)t * C, *xc = b->xc + (size_t)t * C;
        const float *Bt = b->dbc + (size_t)t * DBC + R, *Ct = Bt + N;
        float *y = b->y + (size_t)t * C;
        for (int c = 0; c < C; c++) {
            const float d = delta[c];
            /* (delta * x).unsqueeze(-1) * B */
            const float dx = d * xc[c];
            float *hc = h + c * N;
            const float *Ac = b->A + c * N;
            float acc = 0.0f;
            for (int n = 0; n < N; n++) {
                hc[n] = expf(d * Ac[n]) * hc[n] + dx * Bt[n];
                acc += hc[n] * Ct[n];
            }
            y[c] = acc + xc[c] * D[c];
        }
        if (hs) memcpy(hs + (size_t)t * CN, h, sizeof h);
    }
}

/* Everything from u up to y (before the gate). */
static void forward_internals(mamba_buf *b, const float *u, const lpm_mamba_params *p, int L,
                              int keep_states) {
    transpose(b->in_t, p->in_proj, XZ, C);
    transpose(b->xp_t, p->x_proj, DBC, C);
    transpose(b->out_t, p->out_proj, C, C);
    transpose(b->conv_t, p->conv_w, C, K);
    for (int i = 0; i < CN; i++) b->A[i] = -expf(p->A_log[i]);

    matmul_forward(b->xz, u, b->in_t, L, C, XZ);

    /* causal depthwise conv: xpre[t,c] = bias[c] + sum_k w[c,k] x[t-3+k, c] */
    for (int t = 0; t < L; t++) {
        float *o = b->xpre + (size_t)t * C;
        float *xc = b->xc + (size_t)t * C;
        for (int c = 0; c < C; c++) o[c] = p->conv_b[c];
        for (int k = 0; k < K; k++) {
            const int s = t - (K - 1) + k;
            if (s < 0) continue;
            const float *x = b->xz + (size_t)s * XZ;
            const float *w = b->conv_t + k * C;
            for (int c = 0; c < C; c++) o[c] += w[c] * x[c];
        }
        /* F.silu */
        for (int c = 0; c < C; c++) xc[c] = o[c] * sigmoidf(o[c]);
    }

    matmul_forward(b->dbc, b->xc, b->xp_t, L, C, DBC);

    /* delta = F.softplus(dt_proj(dt)), threshold 20 */
    for (int t = 0; t < L; t++) {
        const float *dt = b->dbc + (size_t)t * DBC;
        float *v = b->v + (size_t)t * C, *delta = b->delta + (size_t)t * C;
        for (int c = 0; c < C; c++) {
            float s = p->dt_proj_b[c];
            for (int r = 0; r < R; r++) s += p->dt_proj_w[c * R + r] * dt[r];
            v[c] = s;
            delta[c] = s > 20.0f ? s : log1pf(expf(s));
        }
    }

    scan_forward(b, p->D, L, keep_states ? b->hs : NULL);
}

void lpm_mamba_forward(float *out, const float *u, const lpm_mamba_params *p, int L,
                       float *scratch) {
    mamba_buf b = {0};
    carve(&b, scratch, L);
    forward_internals(&b, u, p, L, 0);
    /* y = y * F.silu(z) */
    for (int t = 0; t < L; t++) {
        float *y = b.y + (size_t)t * C;
        const float *z = b.xz + (size_t)t * XZ + C;
        for (int c = 0; c < C; c++) y[c] *= z[c] * sigmoidf(z[c]);
    }
    matmul_forward(out, b.y, b.out_t, L, C, C);
}

/* Adjoint of the scan, backwards in t (GRADIENTS.md, selective scan):
 * lam_t = gy_t C_t + a_(t+1) lam_(t+1). Writes dxc = D gy + delta sum_n lam B (=) and the
 * B, C, dt parts of ddbc (=); accumulates dA_log, dD, dt_proj's gradients. */
static void scan_backward(mamba_buf *b, lpm_mamba_params *grad, const lpm_mamba_params *p,
                          int L) {
    float lam[CN] = {0}, a_next[CN] = {0}, dA[CN] = {0}, dD[C] = {0};
    static const float zero[CN];
    for (int t = L - 1; t >= 0; t--) {
        const float *gy = b->gy + (size_t)t * C, *xc = b->xc + (size_t)t * C;
        const float *delta = b->delta + (size_t)t * C, *v = b->v + (size_t)t * C;
        const float *dt = b->dbc + (size_t)t * DBC, *Bt = dt + R, *Ct = Bt + N;
        const float *h = b->hs + (size_t)t * CN;
        const float *hp = t > 0 ? h - CN : zero;
        float *dxc = b->dxc + (size_t)t * C;
        float *ddt = b->ddbc + (size_t)t * DBC, *dB = ddt + R, *dC = dB + N;
        float dv[C];
        for (int n = 0; n < N; n++) dB[n] = dC[n] = 0.0f;
        for (int c = 0; c < C; c++) {
            const float g = gy[c], d = delta[c], x = xc[c];
            const float *Ac = b->A + c * N;
            float *lc = lam + c * N, *anc = a_next + c * N, *dAc = dA + c * N;
            const float *hc = h + c * N, *hpc = hp + c * N;
            float lam_b = 0.0f, ddelta = 0.0f;
            for (int n = 0; n < N; n++) {
                const float l = g * Ct[n] + anc[n] * lc[n];
                const float a = expf(d * Ac[n]);
                const float ah = a * hpc[n];
                dC[n] += g * hc[n];
                dB[n] += l * d * x;
                lam_b += l * Bt[n];
                ddelta += l * (Bt[n] * x + Ac[n] * ah);
                dAc[n] += l * d * ah;
                lc[n] = l;
                anc[n] = a;
            }
            dxc[c] = p->D[c] * g + d * lam_b;
            dD[c] += g * x;
            /* softplus' = sigmoid, identity above the threshold */
            dv[c] = v[c] > 20.0f ? ddelta : ddelta * sigmoidf(v[c]);
        }
        /* dt_proj: v = W dt + bias */
        for (int r = 0; r < R; r++) ddt[r] = 0.0f;
        for (int c = 0; c < C; c++) {
            grad->dt_proj_b[c] += dv[c];
            for (int r = 0; r < R; r++) {
                grad->dt_proj_w[c * R + r] += dv[c] * dt[r];
                ddt[r] += dv[c] * p->dt_proj_w[c * R + r];
            }
        }
    }
    /* A = -exp(A_log): dA_log = dA * A */
    for (int i = 0; i < CN; i++) grad->A_log[i] += dA[i] * b->A[i];
    for (int c = 0; c < C; c++) grad->D[c] += dD[c];
}

void lpm_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                        const float *u, const lpm_mamba_params *p, int L, float *scratch) {
    mamba_buf b = {0};
    carve(&b, scratch, L);
    forward_internals(&b, u, p, L, 1);
    const size_t lc = (size_t)L * C;

    /* out_proj, then the gate y * silu(z) */
    for (int t = 0; t < L; t++) {
        const float *y = b.y + (size_t)t * C, *z = b.xz + (size_t)t * XZ + C;
        float *yg = b.yg + (size_t)t * C;
        for (int c = 0; c < C; c++) yg[c] = y[c] * z[c] * sigmoidf(z[c]);
    }
    memset(b.gy, 0, lc * sizeof(float));
    matmul_backward(b.gy, grad->out_proj, dout, b.yg, p->out_proj, L, C, C);
    for (int t = 0; t < L; t++) {
        const float *y = b.y + (size_t)t * C, *z = b.xz + (size_t)t * XZ + C;
        float *gy = b.gy + (size_t)t * C, *dz = b.dxz + (size_t)t * XZ + C;
        for (int c = 0; c < C; c++) {
            const float s = sigmoidf(z[c]);
            dz[c] = gy[c] * y[c] * s * (1.0f + z[c] * (1.0f - s));
            gy[c] *= z[c] * s;
        }
    }

    scan_backward(&b, grad, p, L);
    matmul_backward(b.dxc, grad->x_proj, b.ddbc, b.xc, p->x_proj, L, C, DBC);

    /* SiLU: dxpre = dxc s (1 + xpre (1 - s)), in place */
    for (size_t i = 0; i < lc; i++) {
        const float s = sigmoidf(b.xpre[i]);
        b.dxc[i] *= s * (1.0f + b.xpre[i] * (1.0f - s));
    }

    /* causal conv: dx[s,c] = sum_k w[c,k] g[s+3-k,c]; dw[c,k] = sum_t g[t,c] x[t-3+k,c] */
    float dw[K][C] = {{0}}, db[C] = {0};
    for (int s = 0; s < L; s++) {
        const float *x = b.xz + (size_t)s * XZ;
        float *dx = b.dxz + (size_t)s * XZ;
        for (int c = 0; c < C; c++) dx[c] = 0.0f;
        for (int k = 0; k < K; k++) {
            const int t = s + (K - 1) - k;
            if (t >= L) continue;
            const float *g = b.dxc + (size_t)t * C;
            const float *w = b.conv_t + k * C;
            for (int c = 0; c < C; c++) {
                dx[c] += w[c] * g[c];
                dw[k][c] += g[c] * x[c];
            }
        }
        const float *g = b.dxc + (size_t)s * C;
        for (int c = 0; c < C; c++) db[c] += g[c];
    }
    for (int c = 0; c < C; c++) {
        grad->conv_b[c] += db[c];
        for (int k = 0; k < K; k++) grad->conv_w[c * K + k] += dw[k][c];
    }

    matmul_backward(du, grad->in_proj, b.dxz, u, p->in_proj, L, C, XZ);
}
