/* Reference Conv_in, dense module, LayerNorm, max fusion and CfC head: plain loops, sums in
 * double (reference.h says what these are for). PyTorch lines quote reference/lpmnet_ref.py. */
#include "reference.h"

#include <math.h>
#include <string.h>

/* ================================================================ Conv_in */

enum { CI3 = 2, CO3 = LPM_C_IN };

/* vol[d,h,x], or 0 outside the volume (padding=1 pads with zeros) */
static double volume_at(const float *vol, int64_t d, int64_t h, int64_t x, int64_t D,
                        int64_t H, int64_t W) {
    if (d < 0 || d >= D || h < 0 || h >= H || x < 0 || x >= W) return 0.0;
    return vol[(d * H + h) * W + x];
}

static size_t conv3_w(int o, int i, int kd, int kh, int kw) {
    return ((((size_t)o * CI3 + i) * 3 + kd) * 3 + kh) * 3 + kw;
}

/* One output: bias[o] + sum_{i,kd,kh,kw} w[o,i,kd,kh,kw] in_i[d+kd-1, h+kh-1, x+kw-1] */
static double conv_in_output(const float *const *in, const float *w, const float *bias, int o,
                             int64_t d, int64_t h, int64_t x, int64_t D, int64_t H, int64_t W) {
    double s = bias[o];
    for (int i = 0; i < CI3; i++)
        for (int kd = 0; kd < 3; kd++)
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++)
                    s += w[conv3_w(o, i, kd, kh, kw)] *
                         volume_at(in[i], d + kd - 1, h + kh - 1, x + kw - 1, D, H, W);
    return s;
}

void lpm_ref_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                             const float *bias, int64_t D, int64_t H, int64_t W) {
    const float *in[CI3] = {a, b};   /* torch.stack([a, b]): input channel 0 is A */
    /* self.Conv_in(...)[o, d, h, x], stored (D,H,W,8) */
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t x = 0; x < W; x++)
                for (int o = 0; o < CO3; o++)
                    X[((d * H + h) * W + x) * CO3 + o] =
                        (float)conv_in_output(in, w, bias, o, d, h, x, D, H, W);
}

/* dw[o,i,kd,kh,kw] += sum over voxels v of dX[v,o] in_i[v + (kd,kh,kw) - 1];
 * dbias[o] += sum over voxels of dX[v,o]. */
void lpm_ref_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                              const float *b, int64_t D, int64_t H, int64_t W) {
    const float *in[CI3] = {a, b};
    const int64_t nv = D * H * W;
    for (int o = 0; o < CO3; o++) {
        double gb = 0;
        for (int64_t v = 0; v < nv; v++) gb += dX[v * CO3 + o];
        dbias[o] += (float)gb;
        for (int i = 0; i < CI3; i++)
            for (int kd = 0; kd < 3; kd++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        double gw = 0;
                        for (int64_t d = 0; d < D; d++)
                            for (int64_t h = 0; h < H; h++)
                                for (int64_t x = 0; x < W; x++)
                                    gw += dX[((d * H + h) * W + x) * CO3 + o] *
                                          volume_at(in[i], d + kd - 1, h + kh - 1, x + kw - 1,
                                                    D, H, W);
                        dw[conv3_w(o, i, kd, kh, kw)] += (float)gw;
                    }
    }
}

/* ================================================================ dense module */

enum { C = LPM_C, CD = 8 };   /* the feature image's channels; each conv's 8 outputs */
static const double lrelu_slope = 0.01;

/* img[r,q,c] of an (R,Q,24) image, or 0 outside it (padding=1) */
static double image_at(const float *img, int r, int q, int c, int R, int Q) {
    if (r < 0 || r >= R || q < 0 || q >= Q) return 0.0;
    return img[((size_t)r * Q + q) * C + c];
}

static size_t conv2_w(int o, int i, int kh, int kw, int ci) {
    return (((size_t)o * ci + i) * 3 + kh) * 3 + kw;
}

/* DenseLayer: y = F.leaky_relu(self.conv(x), 0.01), nn.Conv2d(ci, 8, 3, padding=1).
 * x = feat's channels in_c .. in_c + ci - 1, y = its channels out_c .. out_c + 7. */
static void conv3x3_lrelu(float *feat, int out_c, int in_c, int ci, const float *w,
                          const float *bias, int R, int Q) {
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            for (int o = 0; o < CD; o++) {
                double s = bias[o];   /* self.conv(x) */
                for (int i = 0; i < ci; i++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++)
                            s += w[conv2_w(o, i, kh, kw, ci)] *
                                 image_at(feat, r + kh - 1, q + kw - 1, in_c + i, R, Q);
                /* F.leaky_relu(., 0.01) */
                feat[((size_t)r * Q + q) * C + out_c + o] = (float)(s > 0 ? s : lrelu_slope * s);
            }
}

/* Backward of conv3x3_lrelu: dfeat's channels out_c.. hold dy and become the
 * pre-activation gradient g; dfeat's input channels in_c.. += conv^T g; dw, dbias += . */
static void conv3x3_lrelu_backward(float *dfeat, float *dw, float *dbias, const float *feat,
                                   int out_c, int in_c, int ci, const float *w, int R, int Q) {
    const size_t np = (size_t)R * Q;
    /* leaky_relu backward: g = dy where the input is > 0 (exactly where y > 0), else 0.01 dy */
    for (size_t v = 0; v < np; v++)
        for (int o = 0; o < CD; o++)
            if (!(feat[v * C + out_c + o] > 0)) dfeat[v * C + out_c + o] *= (float)lrelu_slope;
    double gw[CD * 2 * CD * 9] = {0}, gb[CD] = {0};
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            for (int o = 0; o < CD; o++) {
                const double g = dfeat[((size_t)r * Q + q) * C + out_c + o];
                gb[o] += g;   /* d bias = sum of g */
                for (int i = 0; i < ci; i++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++)   /* d w = g times the input it met */
                            gw[conv2_w(o, i, kh, kw, ci)] +=
                                g * image_at(feat, r + kh - 1, q + kw - 1, in_c + i, R, Q);
            }
    /* input (r,q) met output (r-kh+1, q-kw+1) through tap (kh,kw): dx = sum w g there */
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            for (int i = 0; i < ci; i++) {
                double s = 0;
                for (int o = 0; o < CD; o++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++)
                            s += w[conv2_w(o, i, kh, kw, ci)] *
                                 image_at(dfeat, r - kh + 1, q - kw + 1, out_c + o, R, Q);
                dfeat[((size_t)r * Q + q) * C + in_c + i] += (float)s;
            }
    for (int k = 0; k < CD * ci * 9; k++) dw[k] += (float)gw[k];
    for (int o = 0; o < CD; o++) dbias[o] += (float)gb[o];
}

void lpm_ref_dense_forward(float *feat, const lpm_dense_params *p, int R, int Q) {
    /* x = torch.cat([layer0(x), x], 1): y0 from the input (16..23) into channels 8..15 */
    conv3x3_lrelu(feat, 8, 16, 8, p->w[0], p->b[0], R, Q);
    /* x = torch.cat([layer1(x), x], 1): y1 from [y0, in] (8..23) into channels 0..7 */
    conv3x3_lrelu(feat, 0, 8, 16, p->w[1], p->b[1], R, Q);
}

void lpm_ref_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                            const lpm_dense_params *p, int R, int Q) {
    /* layer 1 first: its input gradient adds into y0's (8..15) and the input's (16..23) */
    conv3x3_lrelu_backward(dfeat, grad->w[1], grad->b[1], feat, 0, 8, 16, p->w[1], R, Q);
    /* then layer 0, with y0's whole gradient: adds into the input's */
    conv3x3_lrelu_backward(dfeat, grad->w[0], grad->b[0], feat, 8, 16, 8, p->w[0], R, Q);
}

/* ================================================================ LayerNorm */

static const double ln_eps = 1e-5;

void lpm_ref_layernorm_forward_f64(double *out, double *mean, double *rstd, const double *in,
                                   const float *w, const float *b, int64_t n, int Cn) {
    for (int64_t r = 0; r < n; r++) {
        const double *x = in + r * Cn;
        double m = 0, var = 0;
        for (int c = 0; c < Cn; c++) m += x[c];
        m /= Cn;                                            /* x.mean(-1) */
        for (int c = 0; c < Cn; c++) var += (x[c] - m) * (x[c] - m);
        var /= Cn;                                          /* x.var(-1, unbiased=False) */
        const double s = 1.0 / sqrt(var + ln_eps);          /* 1 / sqrt(var + eps) */
        for (int c = 0; c < Cn; c++) out[r * Cn + c] = (x[c] - m) * s * w[c] + b[c];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
    }
}

/* xhat = (x - mean) rstd, y = xhat w + b:
 *   dx += rstd (g w - mean_c(g w) - xhat mean_c(g w xhat)),
 *   dw += sum_rows g xhat, db += sum_rows g. */
static double xhat(const double *in, const double *mean, const double *rstd, int64_t r, int c,
                   int Cn) {
    return (in[r * Cn + c] - mean[r]) * rstd[r];
}

void lpm_ref_layernorm_backward_f64(double *din, float *dw, float *db, const double *dout,
                                    const double *in, const double *mean, const double *rstd,
                                    const float *w, int64_t n, int Cn) {
    for (int64_t r = 0; r < n; r++) {
        const double *g = dout + r * Cn;
        double mean_gw = 0, mean_gwx = 0;
        for (int c = 0; c < Cn; c++) {
            mean_gw += g[c] * w[c];
            mean_gwx += g[c] * w[c] * xhat(in, mean, rstd, r, c, Cn);
        }
        mean_gw /= Cn;
        mean_gwx /= Cn;
        for (int c = 0; c < Cn; c++)
            din[r * Cn + c] +=
                rstd[r] * (g[c] * w[c] - mean_gw - xhat(in, mean, rstd, r, c, Cn) * mean_gwx);
    }
    for (int c = 0; c < Cn; c++) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < n; r++) {
            sw += dout[r * Cn + c] * xhat(in, mean, rstd, r, c, Cn);
            sb += dout[r * Cn + c];
        }
        dw[c] += (float)sw;
        db[c] += (float)sb;
    }
}

/* The float layer of model.h: everything converted at the boundary. The backward takes
 * the forward's float statistics, as the fast kernel does. */
static double *to_f64(const float *x, size_t n) {
    double *y = lpm_calloc(n ? n : 1, sizeof *y);
    for (size_t i = 0; y && i < n; i++) y[i] = x[i];
    return y;
}

lpm_status lpm_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                     const float *w, const float *b, int64_t n, int Cn) {
    const size_t nc = (size_t)n * Cn;
    double *in64 = to_f64(in, nc), *out64 = lpm_calloc(nc ? nc : 1, sizeof(double));
    double *m64 = lpm_calloc(n ? (size_t)n : 1, sizeof(double));
    double *s64 = lpm_calloc(n ? (size_t)n : 1, sizeof(double));
    const int ok = in64 && out64 && m64 && s64;
    if (ok) {
        lpm_ref_layernorm_forward_f64(out64, m64, s64, in64, w, b, n, Cn);
        for (size_t i = 0; i < nc; i++) out[i] = (float)out64[i];
        for (int64_t r = 0; r < n; r++) {
            if (mean) mean[r] = (float)m64[r];
            if (rstd) rstd[r] = (float)s64[r];
        }
    }
    free(in64), free(out64), free(m64), free(s64);
    return ok ? LPM_OK : LPM_ERR_INTERNAL;
}

lpm_status lpm_ref_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                      const float *in, const float *mean, const float *rstd,
                                      const float *w, int64_t n, int Cn) {
    const size_t nc = (size_t)n * Cn;
    double *in64 = to_f64(in, nc), *g64 = to_f64(dout, nc), *m64 = to_f64(mean, (size_t)n);
    double *s64 = to_f64(rstd, (size_t)n), *d64 = lpm_calloc(nc ? nc : 1, sizeof(double));
    const int ok = in64 && g64 && m64 && s64 && d64;
    if (ok) {
        lpm_ref_layernorm_backward_f64(d64, dw, db, g64, in64, m64, s64, w, n, Cn);
        for (size_t i = 0; i < nc; i++) din[i] += (float)d64[i];
    }
    free(in64), free(g64), free(m64), free(s64), free(d64);
    return ok ? LPM_OK : LPM_ERR_INTERNAL;
}

/* ================================================================ max fusion */

void lpm_ref_max3_forward(float *m, const float *p1, const float *p2, const float *p3,
                          size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float inner = p1[i] > p2[i] ? p1[i] : p2[i];   /* torch.maximum(P1, P2) */
        m[i] = inner > p3[i] ? inner : p3[i];                /* torch.maximum(., P3) */
    }
}

/* torch.maximum(a, b)'s backward: g to the larger side, g/2 to each on a tie. */
static void maximum_backward(double *da, double *db, double g, float a, float b) {
    *da = a > b ? g : a == b ? g / 2 : 0.0;
    *db = b > a ? g : a == b ? g / 2 : 0.0;
}

void lpm_ref_max3_backward(float *dp1, float *dp2, float *dp3, const float *dm,
                           const float *p1, const float *p2, const float *p3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float inner = p1[i] > p2[i] ? p1[i] : p2[i];
        double d_inner, d3, d1, d2;
        maximum_backward(&d_inner, &d3, dm[i], inner, p3[i]);   /* outer maximum */
        maximum_backward(&d1, &d2, d_inner, p1[i], p2[i]);      /* inner maximum */
        dp1[i] += (float)d1;
        dp2[i] += (float)d2;
        dp3[i] += (float)d3;
    }
}

/* ================================================================ CfC head */

/* One voxel's values: the four 1x1x1 convs, the time gate and the mix. */
typedef struct {
    double a1[C], a2[C], t[C], m[C];
} cfc_voxel;

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* out[o] = sum_i w[o,i] f[i]: a bias-free nn.Conv3d(24, 24, 1) at one voxel */
static double conv1x1(const float *w, int o, const float *f) {
    double s = 0;
    for (int i = 0; i < C; i++) s += (double)w[o * C + i] * f[i];
    return s;
}

static void cfc_voxel_forward(cfc_voxel *v, const float *f, const lpm_cfc_params *p) {
    for (int c = 0; c < C; c++) {
        v->a1[c] = conv1x1(p->ff1, c, f);                                 /* self.ff1(f) */
        v->a2[c] = conv1x1(p->ff2, c, f);                                 /* self.ff2(f) */
        v->t[c] = sigmoid(conv1x1(p->time_a, c, f) + conv1x1(p->time_b, c, f));
        /* torch.sigmoid(self.time_a(f) + self.time_b(f)) */
        v->m[c] = v->a1[c] * (1 - v->t[c]) + v->t[c] * v->a2[c];       /* a1 (1 - g) + g a2 */
    }
}

/* self.fc(x)[k] = fc_b[k] + sum_c fc_w[k,c] x[c] */
static double fc(const lpm_cfc_params *p, int k, const double *x) {
    double s = p->fc_b[k];
    for (int c = 0; c < C; c++) s += p->fc_w[k * C + c] * x[c];
    return s;
}

void lpm_ref_cfc_forward(float *out, float *base, float *detail, const float *f,
                         const lpm_cfc_params *p, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        cfc_voxel v;
        cfc_voxel_forward(&v, f + j * C, p);
        for (int k = 0; k < p->nout; k++) {
            /* torch.tanh(self.fc(v)) / 2 + 0.5 for v in (m, a1, a2) */
            out[k * n + j] = (float)(tanh(fc(p, k, v.m)) / 2 + 0.5);
            if (base) base[k * n + j] = (float)(tanh(fc(p, k, v.a1)) / 2 + 0.5);
            if (detail) detail[k * n + j] = (float)(tanh(fc(p, k, v.a2)) / 2 + 0.5);
        }
    }
}

/* dy d(tanh(z)/2 + 0.5)/dz = dy (1 - tanh(z)^2) / 2 at z = fc(x); 0 without a gradient */
static double fc_grad(const float *dy, int64_t at, const lpm_cfc_params *p, int k,
                      const double *x) {
    if (!dy) return 0.0;
    const double th = tanh(fc(p, k, x));
    return dy[at] * (1 - th * th) / 2;
}

/* The parameter gradients' sums over the voxels. */
typedef struct {
    double ff1[C * C], ff2[C * C], time[C * C], fc_w[2 * C], fc_b[2];
} cfc_sums;

void lpm_ref_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout,
                          const float *dbase, const float *ddetail, const float *f,
                          const lpm_cfc_params *p, int64_t n) {
    cfc_sums g;   /* nout is 1 or 2 */
    memset(&g, 0, sizeof g);
    for (int64_t j = 0; j < n; j++) {
        const float *fv = f + j * C;
        cfc_voxel v;
        cfc_voxel_forward(&v, fv, p);
        double dm[C] = {0}, da1[C] = {0}, da2[C] = {0};
        for (int k = 0; k < p->nout; k++) {
            /* gradients at fc's output for the three uses of fc */
            const double go = fc_grad(dout, k * n + j, p, k, v.m);
            const double gb = fc_grad(dbase, k * n + j, p, k, v.a1);
            const double gd = fc_grad(ddetail, k * n + j, p, k, v.a2);
            g.fc_b[k] += go + gb + gd;
            for (int c = 0; c < C; c++) {
                g.fc_w[k * C + c] += go * v.m[c] + gb * v.a1[c] + gd * v.a2[c];
                dm[c] += p->fc_w[k * C + c] * go;
                da1[c] += p->fc_w[k * C + c] * gb;
                da2[c] += p->fc_w[k * C + c] * gd;
            }
        }
        /* m = a1 (1 - t) + t a2, t = sigmoid(ta + tb): dpre = dm (a2 - a1) t (1 - t) */
        double dpre[C];
        for (int c = 0; c < C; c++) {
            da1[c] += dm[c] * (1 - v.t[c]);
            da2[c] += dm[c] * v.t[c];
            dpre[c] = dm[c] * (v.a2[c] - v.a1[c]) * v.t[c] * (1 - v.t[c]);
        }
        /* the 1x1 convs: df += W^T d(out); dW += d(out) f^T */
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int o = 0; o < C; o++)
                s += p->ff1[o * C + i] * da1[o] + p->ff2[o * C + i] * da2[o] +
                     ((double)p->time_a[o * C + i] + p->time_b[o * C + i]) * dpre[o];
            df[j * C + i] += (float)s;
        }
        for (int o = 0; o < C; o++)
            for (int i = 0; i < C; i++) {
                g.ff1[o * C + i] += da1[o] * fv[i];
                g.ff2[o * C + i] += da2[o] * fv[i];
                g.time[o * C + i] += dpre[o] * fv[i];   /* time_a and time_b alike */
            }
    }
    for (int k = 0; k < C * C; k++) {
        grad->ff1[k] += (float)g.ff1[k];
        grad->ff2[k] += (float)g.ff2[k];
        grad->time_a[k] += (float)g.time[k];
        grad->time_b[k] += (float)g.time[k];
    }
    for (int k = 0; k < p->nout; k++) {
        grad->fc_b[k] += (float)g.fc_b[k];
        for (int c = 0; c < C; c++) grad->fc_w[k * C + c] += (float)g.fc_w[k * C + c];
    }
}
