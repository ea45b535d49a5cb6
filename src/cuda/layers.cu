/* LPM-Net layers on the GPU, each mirroring the CPU function of the same name in
 * src/model (conv.c, dense.c, layernorm.c, mamba.c, window.c, cfc.c, max3.h) line by line.
 *
 * Kernels are the simplest that are correct: one thread per output element (or per scan
 * lane), sums in the CPU's order where one thread owns a sum. Parameter gradients are
 * reductions over millions of voxels or tokens: either cuBLAS (projections, as a GEMM over
 * all tokens) or reduce_params (a block per parameter and chunk of elements, double sums, no
 * atomics, so the result is the same on every run). */
#include "cuda_impl.h"

#include <limits.h>
#include <math.h>

/* ------------------------------------------------------------------ helpers */

template <class F> __global__ void each_kernel(int64_t n, F f) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) f(i);
}

/* f(i) for i in [0, n), one thread each. */
template <class F> static lpm_status each(int64_t n, F f) {
    if (n <= 0) return LPM_OK;
    each_kernel<<<(unsigned)((n + 255) / 256), 256>>>(n, f);
    CKL();
    return LPM_OK;
}

enum { RED_THREADS = 256, RED_CHUNK = 1 << 16 };

/* Block (j, c) sums f(j, e) over chunk c of the elements into part[c][j]. Blocks of one
 * chunk are numbered together, so they run together and share that chunk's data in L2. */
template <class F> __global__ void reduce_kernel(double *part, int64_t n, F f) {
    __shared__ double sh[RED_THREADS];
    const int j = blockIdx.x;
    const int64_t e0 = (int64_t)blockIdx.y * RED_CHUNK, e1 = e0 + RED_CHUNK < n ? e0 + RED_CHUNK : n;
    double s = 0;
    for (int64_t e = e0 + threadIdx.x; e < e1; e += RED_THREADS) s += f(j, e);
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = RED_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[(int64_t)blockIdx.y * gridDim.x + j] = sh[0];
}

__global__ void reduce_finish(float *grad, const double *part, int nparam, int nchunk) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= nparam) return;
    double s = 0;
    for (int c = 0; c < nchunk; c++) s += part[(int64_t)c * nparam + j];
    grad[j] += (float)s;
}

/* grad[j] += sum_{e < n} f(j, e) for j in [0, nparam): partial sums over fixed chunks, then
 * the chunks in order, so the result is the same on every run (no atomics). */
static double *red_part; /* the partial sums, grown on demand, one stream so one buffer */
static size_t red_cap;

static lpm_status reduce_room(size_t need) {
    if (need <= red_cap) return LPM_OK;
    cudaFree(red_part); /* synchronises: no kernel still reads the old one */
    red_part = NULL, red_cap = 0;
    CK(cudaMalloc((void **)&red_part, need * sizeof(double)));
    red_cap = need;
    return LPM_OK;
}

template <class F> static lpm_status reduce_params(float *grad, int nparam, int64_t n, F f) {
    if (nparam <= 0 || n <= 0) return LPM_OK;
    const int64_t nchunk = (n + RED_CHUNK - 1) / RED_CHUNK;
    if (nchunk > 65535) return lpm_fail(LPM_ERR_INTERNAL, "cuda: %lld elements to reduce", (long long)n);
    TRY(reduce_room((size_t)nchunk * (size_t)nparam));
    reduce_kernel<<<dim3((unsigned)nparam, (unsigned)nchunk), RED_THREADS>>>(red_part, n, f);
    CKL();
    reduce_finish<<<(nparam + 255) / 256, 256>>>(grad, red_part, nparam, (int)nchunk);
    CKL();
    return LPM_OK;
}

/* The same for parameters that come in groups of 8 sharing their inputs (a conv's 8 output
 * channels): f(j, e, v) writes the 8 terms of group j at element e, or returns false when
 * there are none, and grad[o * stride + j] += sum_e v[o]. */
template <class F> __global__ void reduce8_kernel(double *part, int64_t n, F f) {
    __shared__ double sh[8][RED_THREADS];
    const int j = blockIdx.x, ng = gridDim.x;
    const int64_t e0 = (int64_t)blockIdx.y * RED_CHUNK, e1 = e0 + RED_CHUNK < n ? e0 + RED_CHUNK : n;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t e = e0 + threadIdx.x; e < e1; e += RED_THREADS) {
        double v[8];
        if (!f(j, e, v)) continue;
#pragma unroll
        for (int o = 0; o < 8; o++) s[o] += v[o];
    }
#pragma unroll
    for (int o = 0; o < 8; o++) sh[o][threadIdx.x] = s[o];
    __syncthreads();
    for (int w = RED_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w)
#pragma unroll
            for (int o = 0; o < 8; o++) sh[o][threadIdx.x] += sh[o][threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x < 8) part[((int64_t)blockIdx.y * 8 + threadIdx.x) * ng + j] = sh[threadIdx.x][0];
}

__global__ void reduce8_finish(float *grad, const double *part, int ngroup, int stride, int nchunk) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= 8 * ngroup) return;
    const int o = idx / ngroup, j = idx % ngroup;
    double s = 0;
    for (int c = 0; c < nchunk; c++) s += part[((int64_t)c * 8 + o) * ngroup + j];
    grad[o * stride + j] += (float)s;
}

template <class F>
static lpm_status reduce_params8(float *grad, int ngroup, int stride, int64_t n, F f) {
    if (ngroup <= 0 || n <= 0) return LPM_OK;
    const int64_t nchunk = (n + RED_CHUNK - 1) / RED_CHUNK;
    if (nchunk > 65535) return lpm_fail(LPM_ERR_INTERNAL, "cuda: %lld elements to reduce", (long long)n);
    TRY(reduce_room((size_t)nchunk * 8 * (size_t)ngroup));
    reduce8_kernel<<<dim3((unsigned)ngroup, (unsigned)nchunk), RED_THREADS>>>(red_part, n, f);
    CKL();
    reduce8_finish<<<(8 * ngroup + 255) / 256, 256>>>(grad, red_part, ngroup, stride, (int)nchunk);
    CKL();
    return LPM_OK;
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

static cublasHandle_t blas_handle;

lpm_status lpm_cuda_blas(cublasHandle_t *h) {
    if (!blas_handle) {
        CKB(cublasCreate(&blas_handle));
        /* plain FP32: no TF32 tensor-op shortcuts (agreement with the CPU to 1e-6) */
        CKB(cublasSetMathMode(blas_handle, CUBLAS_DEFAULT_MATH));
    }
    *h = blas_handle;
    return LPM_OK;
}

static lpm_status check_int(int64_t n) {
    if (n > INT_MAX) return lpm_fail(LPM_ERR_INTERNAL, "cuda: %lld rows exceed cuBLAS's int", (long long)n);
    return LPM_OK;
}

/* out (n, O) = in (n, I) W^T + beta out, W (O, I) row-major (PyTorch Linear, no bias).
 * cuBLAS is column-major: a row-major (r, c) array is its (c, r) transpose. */
static lpm_status linear_forward(float *out, const float *in, const float *W, int64_t n, int I,
                                 int O, float beta) {
    cublasHandle_t h = NULL;
    TRY(lpm_cuda_blas(&h));
    TRY(check_int(n));
    const float one = 1.0f;
    CKB(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, O, (int)n, I, &one, W, I, in, I, &beta, out, O));
    return LPM_OK;
}

/* din (n, I) = dout (n, O) W + beta din. */
static lpm_status linear_backward_in(float *din, const float *dout, const float *W, int64_t n,
                                     int I, int O, float beta) {
    cublasHandle_t h = NULL;
    TRY(lpm_cuda_blas(&h));
    TRY(check_int(n));
    const float one = 1.0f;
    CKB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, I, (int)n, O, &one, W, I, dout, O, &beta, din, I));
    return LPM_OK;
}

/* dW (O, I) += dout^T in, dout (n, O), in (n, I). */
static lpm_status linear_backward_w(float *dW, const float *dout, const float *in, int64_t n,
                                    int I, int O) {
    cublasHandle_t h = NULL;
    TRY(lpm_cuda_blas(&h));
    TRY(check_int(n));
    const float one = 1.0f;
    CKB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, I, O, (int)n, &one, in, I, dout, O, &one, dW, I));
    return LPM_OK;
}

/* ------------------------------------------------------------------ geometry */

branch_geom lpm_cuda_geom(int64_t D, int64_t H, int64_t W, int k) {
    branch_geom g;
    g.D = D, g.H = H, g.W = W, g.nvox = D * H * W, g.k = k;
    if (k == 0) g.nimg = D, g.R = (int)H, g.Q = (int)W, g.si = H * W, g.sr = W, g.sq = 1;
    else if (k == 1) g.nimg = H, g.R = (int)D, g.Q = (int)W, g.si = W, g.sr = H * W, g.sq = 1;
    else g.nimg = W, g.R = (int)D, g.Q = (int)H, g.si = 1, g.sr = H * W, g.sq = W;
    return g;
}

/* Row and column of voxel v in its branch-k image. */
__device__ __forceinline__ void voxel_rq(const branch_geom &g, int64_t v, int *r, int *q) {
    const int64_t d = v / (g.H * g.W), h = (v / g.W) % g.H, w = v % g.W;
    if (g.k == 0) *r = (int)h, *q = (int)w;
    else if (g.k == 1) *r = (int)d, *q = (int)w;
    else *r = (int)d, *q = (int)h;
}

/* Voxel of token t of window w (windows numbered image-major, then row, then column):
 * token t = 16 i + j of window (wr, wq) is pixel ((16 wr + i + shift) mod R,
 * (16 wq + j + shift) mod Q), as window.c's window_pixels. */
__device__ __forceinline__ int64_t token_voxel(const branch_geom &g, int shift, int64_t w,
                                               int t) {
    const int nwr = g.R / NWIN, nwq = g.Q / NWIN;
    const int64_t img = w / ((int64_t)nwr * nwq);
    const int rem = (int)(w % ((int64_t)nwr * nwq));
    const int wr = rem / nwq, wq = rem % nwq;
    const int r = (NWIN * wr + t / NWIN + shift) % g.R;
    const int q = (NWIN * wq + t % NWIN + shift) % g.Q;
    return img * g.si + (int64_t)r * g.sr + (int64_t)q * g.sq;
}

/* ------------------------------------------------------------------ Conv_in (conv.c) */

lpm_status cu_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                              const float *bias, int64_t D, int64_t H, int64_t W) {
    /* one thread per (voxel, output channel) */
    return each(D * H * W * NCX, [=] __device__(int64_t i) {
        const int o = (int)(i % NCX);
        const int64_t v = i / NCX, d = v / (H * W), h = (v / W) % H, x = v % W;
        const float *in[2] = {a, b};
        float acc = bias[o];
        for (int kd = 0; kd < 3; kd++) {
            const int64_t sd = d + kd - 1;
            if (sd < 0 || sd >= D) continue;
            for (int kh = 0; kh < 3; kh++) {
                const int64_t sh = h + kh - 1;
                if (sh < 0 || sh >= H) continue;
                for (int kw = 0; kw < 3; kw++) {
                    const int64_t sw = x + kw - 1;
                    if (sw < 0 || sw >= W) continue;
                    const int64_t at = (sd * H + sh) * W + sw;
                    const int k = (kd * 3 + kh) * 3 + kw;
                    for (int c = 0; c < 2; c++) acc += w[(o * 2 + c) * 27 + k] * in[c][at];
                }
            }
        }
        X[i] = acc;
    });
}

lpm_status cu_conv_in_backward(float *dw, float *dbias, const float *dX, const float *a,
                               const float *b, int64_t D, int64_t H, int64_t W) {
    const int64_t nvox = D * H * W;
    /* dw[o,c,k] = sum_v dX[v,o] in_c[v + tap k], the 8 o of a (c, k) at once */
    TRY(reduce_params8(dw, 2 * 27, 2 * 27, nvox, [=] __device__(int j, int64_t v, double *t) -> bool {
        const int k = j % 27, c = j / 27;
        const int kd = k / 9, kh = (k / 3) % 3, kw = k % 3;
        const int64_t d = v / (H * W) + kd - 1, h = (v / W) % H + kh - 1, x = v % W + kw - 1;
        if (d < 0 || d >= D || h < 0 || h >= H || x < 0 || x >= W) return false;
        const double in = (c ? b : a)[(d * H + h) * W + x];
        for (int o = 0; o < NCX; o++) t[o] = in * dX[v * NCX + o];
        return true;
    }));
    return reduce_params(dbias, NCX, nvox,
                         [=] __device__(int o, int64_t v) -> double { return dX[v * NCX + o]; });
}

/* ------------------------------------------------------------------ dense (dense.c) */

constexpr float slope = 0.01f;

/* feat[v, out_off + o] = lrelu(b[o] + sum_{kh,kw,i} w[o,i,kh,kw] feat[v', in_off + i]); one
 * thread a voxel with its 8 outputs in registers, its inputs read as float4, the weights in
 * shared memory as [tap][i][o] so the 8 weights of an input are two float4 reads. (Constant
 * memory was tried: 1152 weights overflow its cache, and the FMAs waited on it.) */
template <int CI>
__global__ void conv_lrelu_kernel(float *feat, int out_off, int in_off, const float *w,
                                  const float *b, const branch_geom g) {
    __shared__ __align__(16) float sw[9 * CI * 8];
    __shared__ float sb[8];
    for (int j = threadIdx.x; j < 8 * CI * 9; j += blockDim.x) {
        const int o = j / (CI * 9), i = (j / 9) % CI, k = j % 9;
        sw[(k * CI + i) * 8 + o] = w[j];
    }
    if (threadIdx.x < 8) sb[threadIdx.x] = b[threadIdx.x];
    __syncthreads();
    const int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= g.nvox) return;
    int r, q;
    voxel_rq(g, v, &r, &q);
    float acc[8];
#pragma unroll
    for (int o = 0; o < 8; o++) acc[o] = sb[o];
#pragma unroll
    for (int kh = 0; kh < 3; kh++) {
        const int sr = r + kh - 1;
        if (sr < 0 || sr >= g.R) continue;
#pragma unroll
        for (int kw = 0; kw < 3; kw++) {
            const int sq = q + kw - 1;
            if (sq < 0 || sq >= g.Q) continue;
            const float4 *src = reinterpret_cast<const float4 *>(
                feat + (v + (kh - 1) * g.sr + (kw - 1) * g.sq) * NC + in_off);
            const float4 *wk = reinterpret_cast<const float4 *>(sw + (kh * 3 + kw) * CI * 8);
#pragma unroll
            for (int i4 = 0; i4 < CI / 4; i4++) {
                const float4 x4 = src[i4];
                const float xs[4] = {x4.x, x4.y, x4.z, x4.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const float4 lo = wk[(i4 * 4 + j) * 2], hi = wk[(i4 * 4 + j) * 2 + 1];
                    acc[0] += lo.x * xs[j], acc[1] += lo.y * xs[j];
                    acc[2] += lo.z * xs[j], acc[3] += lo.w * xs[j];
                    acc[4] += hi.x * xs[j], acc[5] += hi.y * xs[j];
                    acc[6] += hi.z * xs[j], acc[7] += hi.w * xs[j];
                }
            }
        }
    }
#pragma unroll
    for (int o = 0; o < 8; o++) feat[v * NC + out_off + o] = acc[o] > 0 ? acc[o] : slope * acc[o];
}

static lpm_status conv_lrelu(float *feat, int out_off, int in_off, int ci, const float *w,
                             const float *b, const branch_geom *gp) {
    const unsigned blocks = (unsigned)((gp->nvox + 255) / 256);
    if (ci == 8) conv_lrelu_kernel<8><<<blocks, 256>>>(feat, out_off, in_off, w, b, *gp);
    else conv_lrelu_kernel<16><<<blocks, 256>>>(feat, out_off, in_off, w, b, *gp);
    CKL();
    return LPM_OK;
}

lpm_status cu_dense_forward(float *feat, const lpm_dense_params *p, const branch_geom *g) {
    TRY(conv_lrelu(feat, 8, 16, 8, p->w[0], p->b[0], g));
    return conv_lrelu(feat, 0, 8, 16, p->w[1], p->b[1], g);
}

static lpm_status conv_lrelu_backward(float *dfeat, float *dw, float *db, const float *feat,
                                      int out_off, int in_off, int ci, const float *w,
                                      const branch_geom *gp) {
    const branch_geom g = *gp;
    /* lrelu' from the output: out > 0 exactly where the pre-activation is > 0 */
    TRY(each(g.nvox * 8, [=] __device__(int64_t e) {
        const int64_t at = (e / 8) * NC + out_off + e % 8;
        if (!(feat[at] > 0)) dfeat[at] *= slope;
    }));
    TRY(reduce_params(db, 8, g.nvox, [=] __device__(int o, int64_t v) -> double {
        return dfeat[v * NC + out_off + o];
    }));
    /* dw[o,i,kh,kw] = sum_v g[v,o] feat[v + tap, in_off + i], the 8 o of an (i, tap) at once */
    TRY(reduce_params8(dw, ci * 9, ci * 9, g.nvox, [=] __device__(int j, int64_t v, double *t) -> bool {
        const int k = j % 9, i = j / 9;
        const int kh = k / 3, kw = k % 3;
        int r, q;
        voxel_rq(g, v, &r, &q);
        const int sr = r + kh - 1, sq = q + kw - 1;
        if (sr < 0 || sr >= g.R || sq < 0 || sq >= g.Q) return false;
        const int64_t src = v + (kh - 1) * g.sr + (kw - 1) * g.sq;
        const double x = feat[src * NC + in_off + i];
        const float *gv = dfeat + v * NC + out_off;
        for (int o = 0; o < 8; o++) t[o] = x * gv[o];
        return true;
    }));
    /* din[v,i] = sum w[o,i,kh,kw] g[v - tap, o]; the channels read and written never overlap */
    return each(g.nvox * ci, [=] __device__(int64_t e) {
        const int i = (int)(e % ci);
        const int64_t v = e / ci;
        int r, q;
        voxel_rq(g, v, &r, &q);
        float acc = 0.0f;
        for (int kh = 0; kh < 3; kh++) {
            const int sr = r - kh + 1;
            if (sr < 0 || sr >= g.R) continue;
            for (int kw = 0; kw < 3; kw++) {
                const int sq = q - kw + 1;
                if (sq < 0 || sq >= g.Q) continue;
                const float *gs = dfeat + (v - (kh - 1) * g.sr - (kw - 1) * g.sq) * NC + out_off;
                for (int o = 0; o < 8; o++) acc += w[(o * ci + i) * 9 + kh * 3 + kw] * gs[o];
            }
        }
        dfeat[v * NC + in_off + i] += acc;
    });
}

lpm_status cu_dense_backward(float *dfeat, lpm_dense_params *grad, const float *feat,
                             const lpm_dense_params *p, const branch_geom *g) {
    TRY(conv_lrelu_backward(dfeat, grad->w[1], grad->b[1], feat, 0, 8, 16, p->w[1], g));
    return conv_lrelu_backward(dfeat, grad->w[0], grad->b[0], feat, 8, 16, 8, p->w[0], g);
}

/* ------------------------------------------------------------------ LayerNorm (layernorm.c) */

lpm_status cu_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                const float *w, const float *b, int64_t n) {
    return each(n, [=] __device__(int64_t r) {
        const float *x = in + r * NC;
        float *y = out + r * NC;
        double m = 0.0;
        for (int c = 0; c < NC; c++) m += x[c];
        m /= NC;
        double var = 0.0;
        for (int c = 0; c < NC; c++) {
            const double d = x[c] - m;
            var += d * d;
        }
        var /= NC;
        const double s = 1.0 / sqrt(var + 1e-5);
        for (int c = 0; c < NC; c++) y[c] = (float)((x[c] - m) * s) * w[c] + b[c];
        if (mean) mean[r] = (float)m;
        if (rstd) rstd[r] = (float)s;
    });
}

lpm_status cu_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                 const float *in, const float *mean, const float *rstd,
                                 const float *w, int64_t n) {
    TRY(reduce_params(dw, NC, n, [=] __device__(int c, int64_t r) -> double {
        const float xhat = (in[r * NC + c] - mean[r]) * rstd[r];
        return (double)(dout[r * NC + c] * xhat);
    }));
    TRY(reduce_params(db, NC, n, [=] __device__(int c, int64_t r) -> double {
        return dout[r * NC + c];
    }));
    return each(n, [=] __device__(int64_t r) {
        const float *x = in + r * NC, *g = dout + r * NC;
        float *dx = din + r * NC;
        const float m = mean[r], s = rstd[r];
        /* dx = s (g w - mean(g w) - xhat mean(g w xhat)) */
        float sum_gw = 0.0f, sum_gwx = 0.0f;
        for (int c = 0; c < NC; c++) {
            const float xhat = (x[c] - m) * s, gw = g[c] * w[c];
            sum_gw += gw;
            sum_gwx += gw * xhat;
        }
        const float mean_gw = sum_gw / (float)NC, mean_gwx = sum_gwx / (float)NC;
        for (int c = 0; c < NC; c++) {
            const float xhat = (x[c] - m) * s;
            dx[c] += s * (g[c] * w[c] - mean_gw - xhat * mean_gwx);
        }
    });
}

/* ------------------------------------------------------------------ Mamba (mamba.c) */

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Lays the pieces out in order; with base == NULL only counts. */
static size_t mamba_layout(mamba_dev *m, float *base, int64_t nseq, int L, int training) {
    const size_t t = (size_t)nseq * (size_t)L, s = (size_t)nseq;
    size_t at = 0;
#define PIECE(field, n)                     \
    do {                                    \
        if (base) m->field = base + at;     \
        at += round64(n);                   \
    } while (0)
    PIECE(xz, t * NXZ);
    PIECE(xpre, t * NC);
    PIECE(xc, t * NC);
    PIECE(dbc, t * NDBC);
    PIECE(v, t * NC);
    PIECE(delta, t * NC);
    PIECE(y, t * NC);
    PIECE(yg, t * NC);
    if (training) {
        PIECE(hs, t * NCN);
        PIECE(gy, t * NC);
        PIECE(dxc, t * NC);
        PIECE(ddbc, t * NDBC);
        PIECE(dxz, t * NXZ);
        PIECE(dv, t * NC);
        PIECE(dApart, s * NCN);
        PIECE(dDpart, s * NC);
    }
#undef PIECE
    return at;
}

size_t lpm_cuda_mamba_floats(int64_t nseq, int L, int training) {
    return mamba_layout(NULL, NULL, nseq, L, training);
}

void lpm_cuda_mamba_carve(mamba_dev *m, float *base, int64_t nseq, int L, int training) {
    *m = mamba_dev{};
    mamba_layout(m, base, nseq, L, training);
}

/* One block per sequence, one thread per (channel c, state n) lane, sequential over t:
 * h = exp(delta A) h + delta B x;  y = C . h + D x (the 8 lanes of a channel summed in
 * the order n = 0..7 by lane n = 0, as the CPU does). States go to hs when not NULL. */
__global__ void scan_forward_kernel(float *y, float *hs, const float *delta, const float *xc,
                                    const float *dbc, const float *A_log, const float *Dp,
                                    int L) {
    __shared__ float part[NCN];
    const int lane = threadIdx.x, c = lane / NS, n = lane % NS;
    const int64_t t0 = (int64_t)blockIdx.x * L;
    const float A = -expf(A_log[lane]);
    float h = 0.0f;
    for (int t = 0; t < L; t++) {
        const int64_t tok = t0 + t;
        const float d = delta[tok * NC + c], x = xc[tok * NC + c];
        const float *Bt = dbc + tok * NDBC + NR, *Ct = Bt + NS;
        /* (delta * x).unsqueeze(-1) * B */
        const float dx = d * x;
        h = expf(d * A) * h + dx * Bt[n];
        if (hs) hs[tok * NCN + lane] = h;
        part[lane] = h * Ct[n];
        __syncthreads();
        if (n == 0) {
            float acc = 0.0f;
            for (int j = 0; j < NS; j++) acc += part[c * NS + j];
            y[tok * NC + c] = acc + x * Dp[c];
        }
        __syncthreads();
    }
}

/* Everything from u up to y (before the gate), as mamba.c's forward_internals. */
static lpm_status mamba_internals(const float *u, const lpm_mamba_params *p, int64_t nseq,
                                  int L, mamba_dev *m, int keep_states) {
    const int64_t ntok = nseq * L;
    TRY(linear_forward(m->xz, u, p->in_proj, ntok, NC, NXZ, 0.0f));

    /* causal depthwise conv + SiLU: xpre[t,c] = bias[c] + sum_k w[c,k] x[t-3+k, c] */
    const float *conv_w = p->conv_w, *conv_b = p->conv_b;
    float *xz = m->xz, *xpre = m->xpre, *xc = m->xc;
    TRY(each(ntok * NC, [=] __device__(int64_t e) {
        const int c = (int)(e % NC);
        const int64_t tok = e / NC;
        const int t = (int)(tok % L);
        float o = conv_b[c];
        for (int k = 0; k < NK; k++) {
            const int s = t - (NK - 1) + k;
            if (s < 0) continue;
            o += conv_w[c * NK + k] * xz[(tok - t + s) * NXZ + c];
        }
        xpre[e] = o;
        /* F.silu */
        xc[e] = o * sigmoidf_(o);
    }));

    TRY(linear_forward(m->dbc, m->xc, p->x_proj, ntok, NC, NDBC, 0.0f));

    /* delta = F.softplus(dt_proj(dt)), threshold 20 */
    const float *dtw = p->dt_proj_w, *dtb = p->dt_proj_b;
    float *dbc = m->dbc, *v = m->v, *delta = m->delta;
    TRY(each(ntok * NC, [=] __device__(int64_t e) {
        const int c = (int)(e % NC);
        const float *dt = dbc + (e / NC) * NDBC;
        float s = dtb[c];
        for (int r = 0; r < NR; r++) s += dtw[c * NR + r] * dt[r];
        v[e] = s;
        delta[e] = s > 20.0f ? s : log1pf(expf(s));
    }));

    if (nseq > 0) {
        scan_forward_kernel<<<(unsigned)nseq, NCN>>>(m->y, keep_states ? m->hs : NULL, m->delta,
                                                     m->xc, m->dbc, p->A_log, p->D, L);
        CKL();
    }

    /* y = y * F.silu(z) */
    float *y = m->y, *yg = m->yg;
    return each(ntok * NC, [=] __device__(int64_t e) {
        const float z = xz[(e / NC) * NXZ + NC + e % NC];
        yg[e] = y[e] * (z * sigmoidf_(z));
    });
}

lpm_status cu_mamba_forward(float *out, const float *u, const lpm_mamba_params *p,
                            int64_t nseq, int L, mamba_dev *m) {
    TRY(mamba_internals(u, p, nseq, L, m, 0));
    return linear_forward(out, m->yg, p->out_proj, nseq * L, NC, NC, 0.0f);
}

/* Adjoint of the scan (docs/lpmnet.md section 4), one block per sequence, one thread per (c, n) lane,
 * backwards in t: lam_t = gy_t C_t + a_(t+1) lam_(t+1). Writes dxc, the dt|B|C rows of
 * ddbc and dv (the gradient at dt_proj's output) per token; dA and dD per sequence. */
__global__ void scan_backward_kernel(float *dxc, float *ddbc, float *dv, float *dApart,
                                     float *dDpart, const float *gy, const float *xc,
                                     const float *delta, const float *v, const float *dbc,
                                     const float *hs, const float *A_log, const float *Dp,
                                     const float *dt_w, int L) {
    __shared__ float s_lb[NCN], s_dd[NCN], s_db[NCN], s_dc[NCN], s_dv[NC];
    const int lane = threadIdx.x, c = lane / NS, n = lane % NS;
    const int64_t t0 = (int64_t)blockIdx.x * L;
    const float A = -expf(A_log[lane]);
    float lam = 0.0f, a_next = 0.0f, dA = 0.0f, dD = 0.0f;
    for (int t = L - 1; t >= 0; t--) {
        const int64_t tok = t0 + t;
        const float g = gy[tok * NC + c], d = delta[tok * NC + c], x = xc[tok * NC + c];
        const float *dt = dbc + tok * NDBC, *Bt = dt + NR, *Ct = Bt + NS;
        const float h = hs[tok * NCN + lane];
        const float hp = t > 0 ? hs[(tok - 1) * NCN + lane] : 0.0f;
        const float l = g * Ct[n] + a_next * lam;
        const float a = expf(d * A);
        const float ah = a * hp;
        s_dc[lane] = g * h;
        s_db[lane] = l * d * x;
        s_lb[lane] = l * Bt[n];
        s_dd[lane] = l * (Bt[n] * x + A * ah);
        dA += l * d * ah;
        lam = l;
        a_next = a;
        __syncthreads();
        if (n == 0) { /* sums over the states of channel c */
            float lam_b = 0.0f, ddelta = 0.0f;
            for (int j = 0; j < NS; j++) {
                lam_b += s_lb[c * NS + j];
                ddelta += s_dd[c * NS + j];
            }
            dxc[tok * NC + c] = Dp[c] * g + d * lam_b;
            dD += g * x;
            /* softplus' = sigmoid, identity above the threshold */
            const float vv = v[tok * NC + c];
            const float dvv = vv > 20.0f ? ddelta : ddelta * sigmoidf_(vv);
            dv[tok * NC + c] = dvv;
            s_dv[c] = dvv;
        }
        if (c == 0) { /* B and C are shared by all channels: sums over c */
            float db = 0.0f, dc = 0.0f;
            for (int j = 0; j < NC; j++) {
                db += s_db[j * NS + n];
                dc += s_dc[j * NS + n];
            }
            ddbc[tok * NDBC + NR + n] = db;
            ddbc[tok * NDBC + NR + NS + n] = dc;
        }
        __syncthreads();
        if (lane < NR) { /* dt_proj: v = W dt + bias */
            float s = 0.0f;
            for (int j = 0; j < NC; j++) s += s_dv[j] * dt_w[j * NR + lane];
            ddbc[tok * NDBC + lane] = s;
        }
    }
    dApart[(int64_t)blockIdx.x * NCN + lane] = dA;
    if (n == 0) dDpart[(int64_t)blockIdx.x * NC + c] = dD;
}

lpm_status cu_mamba_backward(float *du, lpm_mamba_params *grad, const float *dout,
                             const float *u, const lpm_mamba_params *p, int64_t nseq, int L,
                             mamba_dev *m) {
    const int64_t ntok = nseq * L;
    TRY(mamba_internals(u, p, nseq, L, m, 1));

    /* out_proj, then the gate y * silu(z) */
    TRY(linear_backward_in(m->gy, dout, p->out_proj, ntok, NC, NC, 0.0f));
    TRY(linear_backward_w(grad->out_proj, dout, m->yg, ntok, NC, NC));
    float *gy = m->gy, *y = m->y, *xz = m->xz, *dxz = m->dxz;
    TRY(each(ntok * NC, [=] __device__(int64_t e) {
        const int64_t tok = e / NC;
        const int c = (int)(e % NC);
        const float z = xz[tok * NXZ + NC + c], s = sigmoidf_(z);
        dxz[tok * NXZ + NC + c] = gy[e] * y[e] * s * (1.0f + z * (1.0f - s));
        gy[e] *= z * s;
    }));

    if (nseq > 0) {
        scan_backward_kernel<<<(unsigned)nseq, NCN>>>(m->dxc, m->ddbc, m->dv, m->dApart,
                                                      m->dDpart, m->gy, m->xc, m->delta, m->v,
                                                      m->dbc, m->hs, p->A_log, p->D,
                                                      p->dt_proj_w, L);
        CKL();
    }
    /* A = -exp(A_log): dA_log = dA * A */
    const float *A_log = p->A_log, *dApart = m->dApart, *dDpart = m->dDpart;
    TRY(reduce_params(grad->A_log, NCN, nseq, [=] __device__(int j, int64_t s) -> double {
        return (double)dApart[s * NCN + j] * -expf(A_log[j]);
    }));
    TRY(reduce_params(grad->D, NC, nseq, [=] __device__(int c, int64_t s) -> double {
        return dDpart[s * NC + c];
    }));
    const float *dv = m->dv, *dbc = m->dbc;
    TRY(reduce_params(grad->dt_proj_w, NC * NR, ntok, [=] __device__(int j, int64_t tok) -> double {
        return (double)dv[tok * NC + j / NR] * dbc[tok * NDBC + j % NR];
    }));
    TRY(reduce_params(grad->dt_proj_b, NC, ntok, [=] __device__(int c, int64_t tok) -> double {
        return dv[tok * NC + c];
    }));

    TRY(linear_backward_in(m->dxc, m->ddbc, p->x_proj, ntok, NC, NDBC, 1.0f));
    TRY(linear_backward_w(grad->x_proj, m->ddbc, m->xc, ntok, NC, NDBC));

    /* SiLU: dxpre = dxc s (1 + xpre (1 - s)), in place */
    float *dxc = m->dxc, *xpre = m->xpre;
    TRY(each(ntok * NC, [=] __device__(int64_t e) {
        const float s = sigmoidf_(xpre[e]);
        dxc[e] *= s * (1.0f + xpre[e] * (1.0f - s));
    }));

    /* causal conv: dx[s,c] = sum_k w[c,k] g[s+3-k,c]; dw[c,k] = sum_t g[t,c] x[t-3+k,c] */
    const float *conv_w = p->conv_w;
    TRY(each(ntok * NC, [=] __device__(int64_t e) {
        const int c = (int)(e % NC);
        const int64_t tok = e / NC;
        const int s = (int)(tok % L);
        float acc = 0.0f;
        for (int k = 0; k < NK; k++) {
            const int t = s + (NK - 1) - k;
            if (t >= L) continue;
            acc += conv_w[c * NK + k] * dxc[(tok - s + t) * NC + c];
        }
        dxz[tok * NXZ + c] = acc;
    }));
    TRY(reduce_params(grad->conv_w, NC * NK, ntok, [=] __device__(int j, int64_t tok) -> double {
        const int c = j / NK, k = j % NK, t = (int)(tok % L), s = t - (NK - 1) + k;
        if (s < 0) return 0.0;
        return (double)dxc[tok * NC + c] * xz[(tok - t + s) * NXZ + c];
    }));
    TRY(reduce_params(grad->conv_b, NC, ntok, [=] __device__(int c, int64_t tok) -> double {
        return dxc[tok * NC + c];
    }));

    TRY(linear_backward_in(du, m->dxz, p->in_proj, ntok, NC, NXZ, 1.0f));
    return linear_backward_w(grad->in_proj, m->dxz, u, ntok, NC, NXZ);
}

/* ------------------------------------------------------------------ Swin-Mamba (window.c) */

/* The backward's scratch for nwin windows (the forward, fused, needs none). */
static size_t swin_layout(swin_dev *s, float *base, int64_t nwin) {
    const size_t t = (size_t)nwin * NTOK;
    size_t at = 0;
#define PIECE(field, n)                     \
    do {                                    \
        if (base) s->field = base + at;     \
        at += round64(n);                   \
    } while (0)
    PIECE(tok, t * NC);
    PIECE(ln, t * NC);
    PIECE(seq, t * NC);
    PIECE(mean, t);
    PIECE(rstd, t);
    PIECE(dln, t * NC);
    PIECE(dtok, t * NC);
#undef PIECE
    if (base) lpm_cuda_mamba_carve(&s->m, base + at, nwin, NTOK, 1);
    return at + lpm_cuda_mamba_floats(nwin, NTOK, 1);
}

size_t lpm_cuda_swin_floats(int64_t nwin) { return swin_layout(NULL, NULL, nwin); }

void lpm_cuda_swin_carve(swin_dev *s, float *base, int64_t nwin) {
    *s = swin_dev{};
    s->nwin = nwin;
    swin_layout(s, base, nwin);
}

/* seq (nw, 256, 24) <- the tokens of windows w0 .. w0 + nw - 1 of vol */
static lpm_status gather(float *seq, const float *vol, const branch_geom *gp, int shift,
                         int64_t w0, int64_t nw) {
    const branch_geom g = *gp;
    return each(nw * NTOK * NC, [=] __device__(int64_t e) {
        const int64_t tok = e / NC;
        seq[e] = vol[token_voxel(g, shift, w0 + tok / NTOK, (int)(tok % NTOK)) * NC + e % NC];
    });
}

/* vol <- seq (add: vol +=), the inverse permutation of gather */
static lpm_status scatter(float *vol, const float *seq, const branch_geom *gp, int shift,
                          int64_t w0, int64_t nw, int add) {
    const branch_geom g = *gp;
    return each(nw * NTOK * NC, [=] __device__(int64_t e) {
        const int64_t tok = e / NC;
        float *d = vol + token_voxel(g, shift, w0 + tok / NTOK, (int)(tok % NTOK)) * NC + e % NC;
        *d = add ? *d + seq[e] : seq[e];
    });
}

static int64_t branch_windows(const branch_geom *g) {
    return g->nimg * (g->R / NWIN) * (g->Q / NWIN);
}

/* The forward of one Swin-Mamba layer, fused: one block of 256 threads a window, every
 * intermediate in shared memory, so a window's tokens go from the gather through LayerNorm,
 * in_proj, the causal conv, x_proj, dt_proj, the scan, the gate and out_proj to the scatter
 * without touching global memory (the unfused kernels above, which the backward uses to
 * recompute, move about 200 floats a token through it).
 *
 * Thread t owns token t in the token-wise steps and keeps its LayerNorm output in registers
 * until the gate, where z is computed from it (storing z would cost 2 blocks an SM their
 * room). The scan runs in chunks of SCAN_K tokens: threads 0..191 own the (channel, state)
 * lanes and write h C of each token to hc; then all threads sum the 8 states of each
 * (token, channel) in the CPU's order into y. Rows are padded to odd pitches so that
 * threads reading consecutive rows (or lanes) hit different banks.
 *
 * Every store below goes through a float pointer computed once from the base of its array.
 * nvcc 13.0 placed the store `s.x[k][c] = ...` of an earlier version of this scan, written
 * with struct member arrays, in s.z (seen in the PTX, and in test_cuda's results on an H100). */
enum { PITCH = NC + 1, DPITCH = NDBC + 1, HPITCH = NS + 1, SCAN_K = 32 };

struct swin_smem {
    float u[NTOK * PITCH];          /* input tokens, then xc (conv + SiLU), then the output */
    float x[NTOK * PITCH];          /* in_proj's x, then delta, then y */
    float dbc[NTOK * DPITCH];       /* x_proj: dt | B | C */
    float hc[SCAN_K * NC * HPITCH]; /* h C of a chunk, (token, channel, state) */
    long long vox[NTOK];            /* the voxel of each token */
    float in_proj[NXZ * NC], x_proj[NDBC * NC], out_proj[NC * NC];
    float conv_w[NC * NK], conv_b[NC], dt_w[NC * NR], dt_b[NC], A[NCN], D[NC], ln_w[NC], ln_b[NC];
};

/* The exps of the fused forward use the hardware's exp2 (__expf: a few ulp, growing with
 * |x|, instead of IEEE expf's 1): they were half of its instructions. The outputs stay
 * within test_cuda's 1e-9 NMSE of the CPU's; the backward keeps IEEE math. */
__device__ __forceinline__ float fast_sigmoid(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }

__device__ __forceinline__ void load_(float *dst, const float *src, int n) {
    for (int j = threadIdx.x; j < n; j += blockDim.x) dst[j] = src[j];
}

__global__ void __launch_bounds__(NTOK, 2)
swin_forward_kernel(float *out, const float *in, const lpm_mamba_params p, const branch_geom g,
                    int shift) {
    extern __shared__ __align__(16) unsigned char smem_bytes[];
    swin_smem *s = reinterpret_cast<swin_smem *>(smem_bytes);
    float *const U = s->u, *const X = s->x, *const DBC = s->dbc, *const HC = s->hc;
    const int t = threadIdx.x;
    load_(s->in_proj, p.in_proj, NXZ * NC);
    load_(s->x_proj, p.x_proj, NDBC * NC);
    load_(s->out_proj, p.out_proj, NC * NC);
    load_(s->conv_w, p.conv_w, NC * NK);
    load_(s->conv_b, p.conv_b, NC);
    load_(s->dt_w, p.dt_proj_w, NC * NR);
    load_(s->dt_b, p.dt_proj_b, NC);
    load_(s->D, p.D, NC);
    load_(s->ln_w, p.norm_w, NC);
    load_(s->ln_b, p.norm_b, NC);
    if (t < NCN) s->A[t] = -expf(p.A_log[t]);
    s->vox[t] = token_voxel(g, shift, blockIdx.x, t);
    __syncthreads();
    /* gather, consecutive threads on consecutive floats of a token */
    for (int e = t; e < NTOK * NC; e += NTOK) U[(e / NC) * PITCH + e % NC] = in[s->vox[e / NC] * NC + e % NC];
    __syncthreads();

    /* LayerNorm of token t (cu_layernorm_forward's arithmetic), kept in ln[] until the gate */
    float ln[NC], r[NC];
    const float *const ut = U + t * PITCH;
#pragma unroll
    for (int c = 0; c < NC; c++) ln[c] = ut[c];
    double m = 0.0;
#pragma unroll
    for (int c = 0; c < NC; c++) m += ln[c];
    m /= NC;
    double var = 0.0;
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const double d = ln[c] - m;
        var += d * d;
    }
    var /= NC;
    const double rs = 1.0 / sqrt(var + 1e-5);
#pragma unroll
    for (int c = 0; c < NC; c++) ln[c] = (float)((ln[c] - m) * rs) * s->ln_w[c] + s->ln_b[c];

    /* in_proj's x half */
    float *const xt = X + t * PITCH;
#pragma unroll 4
    for (int o = 0; o < NC; o++) {
        float acc = 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) acc += s->in_proj[o * NC + c] * ln[c];
        xt[o] = acc;
    }
    __syncthreads();

    /* causal depthwise conv + SiLU (reads tokens t-3..t), then x_proj of the result */
    float *const ut_w = U + t * PITCH;
#pragma unroll
    for (int c = 0; c < NC; c++) {
        float o = s->conv_b[c];
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const int src = t - (NK - 1) + k;
            if (src >= 0) o += s->conv_w[c * NK + k] * X[src * PITCH + c];
        }
        r[c] = o * fast_sigmoid(o);
        ut_w[c] = r[c];
    }
    float *const dt_row = DBC + t * DPITCH;
#pragma unroll 2
    for (int j = 0; j < NDBC; j++) {
        float acc = 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) acc += s->x_proj[j * NC + c] * r[c];
        dt_row[j] = acc;
    }
    __syncthreads(); /* every conv has read x: it can be overwritten */

    /* delta = softplus(dt_proj(dt)), threshold 20, over x */
    const float dt0 = dt_row[0], dt1 = dt_row[1];
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const float v = s->dt_b[c] + s->dt_w[c * NR] * dt0 + s->dt_w[c * NR + 1] * dt1;
        xt[c] = v > 20.0f ? v : log1pf(__expf(v));
    }
    __syncthreads();

    /* the scan: h = exp(delta A) h + delta x B;  y = C . h + D x, y over delta */
    const int c = t / NS, n = t % NS;
    const float A = t < NCN ? s->A[t] : 0.0f;
    float h = 0.0f;
    for (int k0 = 0; k0 < NTOK; k0 += SCAN_K) {
        if (t < NCN) {
            const float *dk = X + k0 * PITCH + c, *xk = U + k0 * PITCH + c;
            const float *bk = DBC + k0 * DPITCH + NR + n;
            float *hk = HC + c * HPITCH + n;
            /* token k+1's operands are read before token k's h C is stored: the compiler
             * cannot tell that the store leaves them alone, and would wait for it */
            float d = dk[0], xv = xk[0], B = bk[0], C = bk[NS];
#pragma unroll 8
            for (int k = 0; k < SCAN_K; k++) {
                const int k1 = k + 1 < SCAN_K ? k + 1 : k;
                const float d1 = dk[k1 * PITCH], x1 = xk[k1 * PITCH];
                const float B1 = bk[k1 * DPITCH], C1 = bk[k1 * DPITCH + NS];
                h = __expf(d * A) * h + (d * xv) * B;
                hk[k * NC * HPITCH] = h * C;
                d = d1, xv = x1, B = B1, C = C1;
            }
        }
        __syncthreads();
        for (int e = t; e < SCAN_K * NC; e += NTOK) {
            const int k = e / NC, cc = e % NC;
            const float *hp = HC + k * NC * HPITCH + cc * HPITCH;
            float acc = 0.0f;
#pragma unroll
            for (int j = 0; j < NS; j++) acc += hp[j];
            X[(k0 + k) * PITCH + cc] = acc + U[(k0 + k) * PITCH + cc] * s->D[cc];
        }
        __syncthreads();
    }

    /* gate y * SiLU(z) with z = in_proj's z half of ln, then out_proj into u */
#pragma unroll 4
    for (int o = 0; o < NC; o++) {
        float z = 0.0f;
#pragma unroll
        for (int j = 0; j < NC; j++) z += s->in_proj[(NC + o) * NC + j] * ln[j];
        r[o] = xt[o] * (z * fast_sigmoid(z));
    }
#pragma unroll 4
    for (int o = 0; o < NC; o++) {
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < NC; j++) acc += s->out_proj[o * NC + j] * r[j];
        ut_w[o] = acc;
    }
    __syncthreads();
    for (int e = t; e < NTOK * NC; e += NTOK) out[s->vox[e / NC] * NC + e % NC] = U[(e / NC) * PITCH + e % NC];
}

lpm_status cu_swin_forward(float *out, const float *in, const lpm_mamba_params *p,
                           const branch_geom *g, int shift) {
    static int ready;
    const int bytes = (int)sizeof(swin_smem);
    if (!ready) {
        CK(cudaFuncSetAttribute(swin_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        ready = 1;
    }
    const int64_t nwin = branch_windows(g);
    if (nwin <= 0) return LPM_OK;
    if (nwin > INT_MAX) return lpm_fail(LPM_ERR_INTERNAL, "cuda: %lld windows", (long long)nwin);
    swin_forward_kernel<<<(unsigned)nwin, NTOK, bytes>>>(out, in, *p, *g, shift);
    CKL();
    return LPM_OK;
}

lpm_status cu_swin_backward(float *din, lpm_mamba_params *grad, const float *dout,
                            const float *in, const lpm_mamba_params *p, const branch_geom *g,
                            int shift, swin_dev *s) {
    const int64_t total = branch_windows(g);
    for (int64_t w0 = 0; w0 < total; w0 += s->nwin) {
        const int64_t nw = total - w0 < s->nwin ? total - w0 : s->nwin, nt = nw * NTOK;
        TRY(gather(s->tok, in, g, shift, w0, nw));
        TRY(cu_layernorm_forward(s->ln, s->mean, s->rstd, s->tok, p->norm_w, p->norm_b, nt));
        TRY(gather(s->seq, dout, g, shift, w0, nw));
        CK(cudaMemset(s->dln, 0, (size_t)nt * NC * sizeof(float)));
        TRY(cu_mamba_backward(s->dln, grad, s->seq, s->ln, p, nw, NTOK, &s->m));
        CK(cudaMemset(s->dtok, 0, (size_t)nt * NC * sizeof(float)));
        TRY(cu_layernorm_backward(s->dtok, grad->norm_w, grad->norm_b, s->dln, s->tok, s->mean,
                                  s->rstd, p->norm_w, nt));
        TRY(scatter(din, s->dtok, g, shift, w0, nw, 1));
    }
    return LPM_OK;
}

/* ------------------------------------------------------------------ CfC head (cfc.c) */

typedef struct {
    float a1[NC], a2[NC], t[NC], m[NC];
} cfc_state;

/* w: ff1 | ff2 | time_a | time_b, each (24, 24) (o, i), in shared memory */
__device__ void cfc_voxel(cfc_state *s, const float *f, const float *w) {
    const float *ff1 = w, *ff2 = w + NC * NC, *wa = w + 2 * NC * NC, *wb = w + 3 * NC * NC;
    for (int o = 0; o < NC; o++) {
        float a1 = 0.0f, a2 = 0.0f, ta = 0.0f, tb = 0.0f;
        for (int i = 0; i < NC; i++) {
            const float x = f[i];
            a1 += ff1[o * NC + i] * x;
            a2 += ff2[o * NC + i] * x;
            ta += wa[o * NC + i] * x;
            tb += wb[o * NC + i] * x;
        }
        /* t_interp = torch.sigmoid(time_a(x) + time_b(x)) */
        const float t = 1.0f / (1.0f + expf(-(ta + tb)));
        s->a1[o] = a1, s->a2[o] = a2, s->t[o] = t;
        /* ff1 * (1.0 - t_interp) + t_interp * ff2 */
        s->m[o] = a1 * (1.0f - t) + t * a2;
    }
}

__device__ __forceinline__ float fc_row(const float *w, float b, const float *x) {
    float s = 0.0f;
    for (int i = 0; i < NC; i++) s += w[i] * x[i];
    return s + b;
}

__device__ void load_cfc_weights(float *sw, const lpm_cfc_params &p) {
    for (int j = threadIdx.x; j < NC * NC; j += blockDim.x) {
        sw[j] = p.ff1[j];
        sw[NC * NC + j] = p.ff2[j];
        sw[2 * NC * NC + j] = p.time_a[j];
        sw[3 * NC * NC + j] = p.time_b[j];
    }
    __syncthreads();
}

/* The forward alone needs no cfc_state: the voxel's features go to registers once, and each
 * o's m, a1, a2 go straight into the fc sums (fc_row's order: w . x over i, then + b). */
__global__ void cfc_forward_kernel(float *out, float *base, float *detail, const float *f,
                                   lpm_cfc_params p, int64_t n) {
    __shared__ float sw[4 * NC * NC];
    __shared__ float sfc[2 * NC];
    load_cfc_weights(sw, p);
    if ((int)threadIdx.x < p.nout * NC) sfc[threadIdx.x] = p.fc_w[threadIdx.x];
    __syncthreads();
    const int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= n) return;
    float x[NC];
    const float4 *f4 = reinterpret_cast<const float4 *>(f + v * NC);
#pragma unroll
    for (int i4 = 0; i4 < NC / 4; i4++) {
        const float4 q = f4[i4];
        x[4 * i4] = q.x, x[4 * i4 + 1] = q.y, x[4 * i4 + 2] = q.z, x[4 * i4 + 3] = q.w;
    }
    const float *ff1 = sw, *ff2 = sw + NC * NC, *wa = sw + 2 * NC * NC, *wb = sw + 3 * NC * NC;
    float om[2] = {0.0f, 0.0f}, o1[2] = {0.0f, 0.0f}, o2[2] = {0.0f, 0.0f};
    const int two = p.nout == 2;
#pragma unroll 2
    for (int o = 0; o < NC; o++) {
        float a1 = 0.0f, a2 = 0.0f, ta = 0.0f, tb = 0.0f;
#pragma unroll
        for (int i = 0; i < NC; i++) {
            a1 += ff1[o * NC + i] * x[i];
            a2 += ff2[o * NC + i] * x[i];
            ta += wa[o * NC + i] * x[i];
            tb += wb[o * NC + i] * x[i];
        }
        const float t = 1.0f / (1.0f + expf(-(ta + tb)));
        const float m = a1 * (1.0f - t) + t * a2;
        om[0] += sfc[o] * m, o1[0] += sfc[o] * a1, o2[0] += sfc[o] * a2;
        if (two) om[1] += sfc[NC + o] * m;
    }
    for (int k = 0; k < p.nout; k++) {
        const float b = p.fc_b[k];
        /* torch.tanh(fc(x)) / 2 + 0.5 */
        out[k * n + v] = tanhf(om[k] + b) / 2 + 0.5f;
        if (base) base[k * n + v] = tanhf(o1[k] + b) / 2 + 0.5f;
        if (detail) detail[k * n + v] = tanhf(o2[k] + b) / 2 + 0.5f;
    }
}

lpm_status cu_cfc_forward(float *out, float *base, float *detail, const float *f,
                          const lpm_cfc_params *p, int64_t n) {
    if (n <= 0) return LPM_OK;
    cfc_forward_kernel<<<(unsigned)((n + 127) / 128), 128>>>(out, base, detail, f, *p, n);
    CKL();
    return LPM_OK;
}

/* d(tanh(x)/2 + 0.5)/dx times g */
__device__ __forceinline__ float dmap(float g, float x) {
    const float th = tanhf(x);
    return g * (1 - th * th) / 2;
}

/* Per voxel: df += , and what the parameter gradients need: da1, da2, dp, a1, a2, m
 * (n, 24) and the mapped-output gradients go, gb, gd (n, nout). */
__global__ void cfc_backward_kernel(float *df, float *da1s, float *da2s, float *dps, float *a1s,
                                    float *a2s, float *ms, float *gos, float *gbs, float *gds,
                                    const float *dout, const float *dbase, const float *ddetail,
                                    const float *f, lpm_cfc_params p, int64_t n) {
    __shared__ float sw[4 * NC * NC];
    load_cfc_weights(sw, p);
    const int64_t v = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= n) return;
    const float *fv = f + v * NC;
    cfc_state s;
    cfc_voxel(&s, fv, sw);
    float dm[NC], da1[NC], da2[NC], dp[NC];
    for (int c = 0; c < NC; c++) dm[c] = da1[c] = da2[c] = 0.0f;
    for (int k = 0; k < p.nout; k++) {
        const float *w = p.fc_w + k * NC, b = p.fc_b[k];
        const float go = dmap(dout[k * n + v], fc_row(w, b, s.m));
        const float gb = dbase ? dmap(dbase[k * n + v], fc_row(w, b, s.a1)) : 0.0f;
        const float gd = ddetail ? dmap(ddetail[k * n + v], fc_row(w, b, s.a2)) : 0.0f;
        gos[v * p.nout + k] = go, gbs[v * p.nout + k] = gb, gds[v * p.nout + k] = gd;
        for (int c = 0; c < NC; c++) {
            dm[c] += w[c] * go;
            da1[c] += w[c] * gb;
            da2[c] += w[c] * gd;
        }
    }
    for (int c = 0; c < NC; c++) {
        const float t = s.t[c];
        da1[c] += dm[c] * (1 - t);
        da2[c] += dm[c] * t;
        dp[c] = dm[c] * (s.a2[c] - s.a1[c]) * t * (1 - t);
    }
    float dfv[NC];
    for (int i = 0; i < NC; i++) dfv[i] = df[v * NC + i];
    const float *ff1 = sw, *ff2 = sw + NC * NC, *wa = sw + 2 * NC * NC, *wb = sw + 3 * NC * NC;
    for (int o = 0; o < NC; o++)
        for (int i = 0; i < NC; i++)
            dfv[i] += ff1[o * NC + i] * da1[o] + ff2[o * NC + i] * da2[o] +
                      (wa[o * NC + i] + wb[o * NC + i]) * dp[o];
    for (int c = 0; c < NC; c++) {
        df[v * NC + c] = dfv[c];
        da1s[v * NC + c] = da1[c], da2s[v * NC + c] = da2[c], dps[v * NC + c] = dp[c];
        a1s[v * NC + c] = s.a1[c], a2s[v * NC + c] = s.a2[c], ms[v * NC + c] = s.m[c];
    }
}

lpm_status cu_cfc_backward(float *df, lpm_cfc_params *grad, const float *dout,
                           const float *dbase, const float *ddetail, const float *f,
                           const lpm_cfc_params *p, int64_t n, float *scratch) {
    if (n <= 0) return LPM_OK;
    const int nout = p->nout;
    float *da1 = scratch, *da2 = da1 + n * NC, *dp = da2 + n * NC, *a1 = dp + n * NC;
    float *a2 = a1 + n * NC, *m = a2 + n * NC, *go = m + n * NC, *gb = go + n * nout;
    float *gd = gb + n * nout;
    cfc_backward_kernel<<<(unsigned)((n + 127) / 128), 128>>>(df, da1, da2, dp, a1, a2, m, go, gb,
                                                              gd, dout, dbase, ddetail, f, *p, n);
    CKL();
    TRY(linear_backward_w(grad->ff1, da1, f, n, NC, NC));
    TRY(linear_backward_w(grad->ff2, da2, f, n, NC, NC));
    TRY(linear_backward_w(grad->time_a, dp, f, n, NC, NC));
    TRY(linear_backward_w(grad->time_b, dp, f, n, NC, NC));
    TRY(linear_backward_w(grad->fc_w, go, m, n, NC, nout));
    TRY(linear_backward_w(grad->fc_w, gb, a1, n, NC, nout));
    TRY(linear_backward_w(grad->fc_w, gd, a2, n, NC, nout));
    return reduce_params(grad->fc_b, nout, n, [=] __device__(int k, int64_t v) -> double {
        return (double)go[v * nout + k] + gb[v * nout + k] + gd[v * nout + k];
    });
}

/* ------------------------------------------------------------------ max fusion (max3.h) */

__device__ __forceinline__ void max3_merge(float *m, unsigned char *bits, float v, int k) {
    if (v > *m) {
        *m = v;
        *bits = (unsigned char)(1u << k);
    } else if (v == *m) {
        *bits |= (unsigned char)(1u << k);
    }
}

__device__ __forceinline__ float max3_share(unsigned bits, int k) {
    const int inner = (bits & 3u) != 0, outer_p3 = (bits & 4u) != 0;
    const float inner_share = (bits & 3u) == 3u ? 0.5f : 1.0f;
    if (k == 2) return outer_p3 ? (inner ? 0.5f : 1.0f) : 0.0f;
    if (!(bits & (1u << k))) return 0.0f;
    return (outer_p3 ? 0.5f : 1.0f) * inner_share;
}

lpm_status cu_max_merge(float *M, unsigned char *bits, const float *out, int k, int64_t nvox) {
    return each(nvox * NC, [=] __device__(int64_t e) {
        if (k == 0) {
            M[e] = out[e];
            if (bits) bits[e] = 1;
        } else if (bits) {
            max3_merge(&M[e], &bits[e], out[e], k);
        } else {
            /* torch.maximum */
            M[e] = out[e] > M[e] ? out[e] : M[e];
        }
    });
}

lpm_status cu_max_share(float *gout, const float *dM, const unsigned char *bits, int k,
                        int64_t nvox) {
    return each(nvox * NC, [=] __device__(int64_t e) { gout[e] = dM[e] * max3_share(bits[e], k); });
}

lpm_status cu_put_input(float *feat, const float *X, int64_t nvox) {
    return each(nvox * NCX, [=] __device__(int64_t e) { feat[(e / NCX) * NC + 16 + e % NCX] = X[e]; });
}

lpm_status cu_add_input_grad(float *dX, const float *dfeat, int64_t nvox) {
    return each(nvox * NCX, [=] __device__(int64_t e) { dX[e] += dfeat[(e / NCX) * NC + 16 + e % NCX]; });
}

/* ------------------------------------------------------------------ Adam (adam.c) */

lpm_status cu_adam(float *p, float *m, float *v, const float *g, int64_t n, float b1, float b2,
                   float c1, float c2, float wd, float step, float bc2s, float eps) {
    return each(n, [=] __device__(int64_t i) {
        /* grad = grad.add(param, alpha=weight_decay) */
        const float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + c1 * gi;
        v[i] = b2 * v[i] + c2 * gi * gi;
        /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        p[i] -= step * (m[i] / (sqrtf(v[i]) / bc2s + eps));
    });
}
