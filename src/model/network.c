/* The whole LPM-Net on the CPU: Conv_in, three branches of 2-D images (dense module, two
 * Swin-Mamba layers), element-wise max fusion, one CfC head; and its backward.
 *
 * Memory: the only full-volume buffers are X (D,H,W,8) and M (D,H,W,24), and for training
 * the winner bits (D,H,W,24), dX and dM. A branch runs one image at a time per thread.
 * Its backward needs the image's trunk (the dense output and the first Swin-Mamba
 * layer's): a training net keeps it from the forward where that fits in
 * LPM_NET_KEEP_MAX bytes (3 x 48 floats a voxel), else recomputes it image by image.
 *
 * Blank images: where both inputs are 0 all around an image (the background of a
 * skull-stripped scan, the padding), its X is Conv_in's bias at every pixel, and the
 * branch's output is the same for every such image. Inference computes that output once
 * per branch and merges it for each blank image: the same numbers, bit for bit, without
 * the work. */
#include "max3.h"
#include "model.h"
#include "../core/vmath.h"

#include <string.h>

enum { C = LPM_C, CX = LPM_C_IN, HEAD_CHUNK = 1024 };

struct lpm_net {
    int64_t D, H, W;
    int training, nthreads;
    float *trunk[3];       /* training, where kept: branch k's images in order, each its
                              feat (R,Q,24) then its s0 (R,Q,24) */
    float *X;              /* (D,H,W,8) Conv_in output */
    float *M;              /* (D,H,W,24) max of the three branches */
    unsigned char *bits;   /* (D,H,W,24) training: bit k where branch k equals the max */
    float *dX, *dM;        /* training: gradients at X and M */
    float *scratch;        /* nthreads x per_thread floats */
    float *blank[3];       /* inference: branch k's output for a blank image (R,Q,24) */
    size_t per_thread, img;/* floats per thread; pixels of the largest image */
    float *tgrad;          /* training: nthreads x LPM_NUM_PARAMS per-thread gradients */
    lpm_params *tparams;   /* training: nthreads views of tgrad */
    /* state of the last forward, for backward */
    const float *a, *b;
    int head, ready;
};

/* Thread t's buffers: up to four (R,Q,24) images, the Swin scratch. */
typedef struct {
    float *img[4];
    float *swin;
} thread_buf;

static thread_buf thread_scratch(const lpm_net *n, int t) {
    thread_buf b;
    float *at = n->scratch + (size_t)t * n->per_thread;
    int nimg = n->training ? 4 : 2;
    for (int i = 0; i < 4; i++) b.img[i] = i < nimg ? at + (size_t)i * n->img * C : NULL;
    b.swin = at + (size_t)nimg * n->img * C;
    return b;
}

/* Image i of branch k: pixel (r, q) is voxel base + r*sr + q*sq.
 * P1: one image per d (rows h, cols w); P2: per h (rows d, cols w); P3: per w (rows d, cols h). */
typedef struct {
    int R, Q;
    int64_t base, sr, sq;
} image_geom;

static int64_t branch_images(const lpm_net *n, int k) {
    return k == 0 ? n->D : k == 1 ? n->H : n->W;
}

static image_geom geom(const lpm_net *n, int k, int64_t i) {
    int64_t H = n->H, W = n->W;
    image_geom g;
    if (k == 0) g = (image_geom){(int)H, (int)W, i * H * W, W, 1};
    else if (k == 1) g = (image_geom){(int)n->D, (int)W, i * W, H * W, 1};
    else g = (image_geom){(int)n->D, (int)H, i, H * W, W};
    return g;
}

static int64_t voxel(const image_geom *g, int r, int q) {
    return g->base + (int64_t)r * g->sr + (int64_t)q * g->sq;
}

/* Branch 3's images (one per w) step through the volume W voxels at a time, a stride of
 * kilobytes that the hardware prefetchers do not follow: there the per floats of the pixel
 * PREFETCH columns ahead in a full-volume array are fetched early, so the loads that used
 * to wait on memory find them in the cache. Branches 1 and 2 read rows; nothing to do. */
enum { PREFETCH = 16 };
static inline void prefetch_ahead(const float *vol, int per, const image_geom *g, int r, int q,
                                  int write) {
    if (g->sq == 1 || q + PREFETCH >= g->Q) return;
    const char *at = (const char *)(vol + voxel(g, r, q + PREFETCH) * per);
    for (int off = 0; off < per * (int)sizeof(float); off += 64) {
        if (write) __builtin_prefetch(at + off, 1);
        else __builtin_prefetch(at + off, 0);
    }
}

/* feat channels 16..23 <- the image's 8 channels of X. With bias, returns 1 when the image
 * is blank: every pixel's X is bitwise Conv_in's bias (NULL: no check, returns 0). */
static int gather_x(const lpm_net *n, const image_geom *g, const float *bias, float *feat) {
    int blank = bias != NULL;
    for (int r = 0; r < g->R; r++)
        for (int q = 0; q < g->Q; q++) {
            prefetch_ahead(n->X, CX, g, r, q, 0);
            const float *x = n->X + voxel(g, r, q) * CX;
            memcpy(feat + ((size_t)r * g->Q + q) * C + 16, x, CX * sizeof(float));
            if (blank) blank = !memcmp(x, bias, CX * sizeof(float));
        }
    return blank;
}

/* The dense module and the shift-0 Swin-Mamba layer on feat's channels 16..23:
 * feat = [y1, y0, in], s0 = its Swin output. */
static void image_layers(const lpm_params *p, int k, int R, int Q, float *feat, float *s0,
                         float *swin) {
    lpm_dense_forward(feat, &p->dense[k], R, Q);
    lpm_swin_mamba_forward(s0, feat, &p->mamba[k][0], R, Q, 0, swin);
}

static void image_trunk(const lpm_net *n, const lpm_params *p, int k, const image_geom *g,
                        float *feat, float *s0, float *swin) {
    gather_x(n, g, NULL, feat);  /* the backward's recomputation: no blank images there */
    image_layers(p, k, g->R, g->Q, feat, s0, swin);
}

/* Branch k's output image into the running max M (and the winner bits when training).
 * (Kept out of the OpenMP body in a function of its own, as every hot loop here.) */
static void merge_image(lpm_net *n, const image_geom *g, const float *out, int k) {
    for (int r = 0; r < g->R; r++)
        for (int q = 0; q < g->Q; q++) {
            int64_t v = voxel(g, r, q);
            prefetch_ahead(n->M, C, g, r, q, 1);
            float *m = n->M + v * C;
            const float *o = out + ((size_t)r * g->Q + q) * C;
            if (k == 0) {
                memcpy(m, o, C * sizeof(float));
                if (n->training) memset(n->bits + v * C, 1, C);
            } else if (n->training) {
                unsigned char *bits = n->bits + v * C;
#pragma omp simd
                for (int c = 0; c < C; c++) lpm_max3_merge(&m[c], &bits[c], o[c], k);
            } else {
                /* torch.maximum (the value does not depend on the merge order); a select
                 * of bits, which vectorises where a ?: on floats becomes a branch */
#pragma omp simd
                for (int c = 0; c < C; c++) m[c] = lpm_vsel(o[c] > m[c], o[c], m[c]);
            }
        }
}

/* Image i's kept trunk: its feat, then its s0, (R,Q,24) each. */
static void kept_trunk(const lpm_net *n, int k, int64_t i, const image_geom *g, float **feat,
                       float **s0) {
    const size_t np = (size_t)g->R * g->Q;
    *feat = n->trunk[k] + (size_t)i * 2 * np * C;
    *s0 = *feat + np * C;
}

static void image_forward(lpm_net *n, const lpm_params *p, int k, int64_t i, thread_buf *b) {
    image_geom g = geom(n, k, i);
    /* the branch output goes over the dense output unless that is kept */
    float *feat = b->img[0], *s0 = b->img[1], *out = b->img[0];
    if (n->trunk[k]) kept_trunk(n, k, i, &g, &feat, &s0);
    if (gather_x(n, &g, n->blank[k] ? p->conv_in_b : NULL, feat)) {
        merge_image(n, &g, n->blank[k], k);
        return;
    }
    image_layers(p, k, g.R, g.Q, feat, s0, b->swin);
    lpm_swin_mamba_forward(out, s0, &p->mamba[k][1], g.R, g.Q, 8, b->swin);
    merge_image(n, &g, out, k);
}

/* n->blank[k] <- branch k's output for an image whose X is the bias at every pixel, by the
 * same code as every other image (thread 0's scratch; called between parallel loops). */
static void blank_output(lpm_net *n, const lpm_params *p, int k) {
    thread_buf b = thread_scratch(n, 0);
    image_geom g = geom(n, k, 0);
    size_t npix = (size_t)g.R * g.Q;
    for (size_t j = 0; j < npix; j++) memcpy(b.img[0] + j * C + 16, p->conv_in_b, CX * sizeof(float));
    image_layers(p, k, g.R, g.Q, b.img[0], b.img[1], b.swin);
    lpm_swin_mamba_forward(n->blank[k], b.img[1], &p->mamba[k][1], g.R, g.Q, 8, b.swin);
}

/* The branch output's gradient: dM on the elements this branch won (the share of each of
 * the 8 winner-bit patterns looked up, not branched on). */
static void branch_output_grad(float *gout, const lpm_net *n, const image_geom *g,
                               int k) {
    float share[8];
    for (unsigned w = 0; w < 8; w++) share[w] = lpm_max3_share(w, k);
    for (int r = 0; r < g->R; r++)
        for (int q = 0; q < g->Q; q++) {
            int64_t v = voxel(g, r, q);
            const float *dm = n->dM + v * C;
            const unsigned char *bits = n->bits + v * C;
            float *go = gout + ((size_t)r * g->Q + q) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) go[c] = dm[c] * share[bits[c] & 7u];
        }
}

/* dX += the input channels (16..23) of the image's feature gradient; images of one branch
 * cover disjoint voxels, so no two threads add to one dX entry. */
static void add_input_grad(lpm_net *n, const image_geom *g, const float *dfeat) {
    for (int r = 0; r < g->R; r++)
        for (int q = 0; q < g->Q; q++) {
            float *dx = n->dX + voxel(g, r, q) * CX;
            const float *src = dfeat + ((size_t)r * g->Q + q) * C + 16;
#pragma omp simd
            for (int c = 0; c < CX; c++) dx[c] += src[c];
        }
}

static void image_backward(lpm_net *n, const lpm_params *p, lpm_params *grad, int k,
                           int64_t i, thread_buf *b) {
    image_geom g = geom(n, k, i);
    float *feat = b->img[0], *s0 = b->img[1], *gout = b->img[2], *ds0 = b->img[3];
    size_t np = (size_t)g.R * g.Q;
    if (n->trunk[k]) kept_trunk(n, k, i, &g, &feat, &s0);
    else image_trunk(n, p, k, &g, feat, s0, b->swin);
    branch_output_grad(gout, n, &g, k);
    memset(ds0, 0, np * C * sizeof(float));
    lpm_swin_mamba_backward(ds0, &grad->mamba[k][1], gout, s0, &p->mamba[k][1], g.R, g.Q, 8,
                            b->swin);
    float *dfeat = gout;
    memset(dfeat, 0, np * C * sizeof(float));
    lpm_swin_mamba_backward(dfeat, &grad->mamba[k][0], ds0, feat, &p->mamba[k][0], g.R, g.Q,
                            0, b->swin);
    lpm_dense_backward(dfeat, &grad->dense[k], feat, &p->dense[k], g.R, g.Q);
    add_input_grad(n, &g, dfeat);
}

lpm_net *lpm_net_create(int64_t D, int64_t H, int64_t W, int mode) {
    if (D <= 0 || H <= 0 || W <= 0 || D % LPM_WIN || H % LPM_WIN || W % LPM_WIN) {
        lpm_fail(LPM_ERR_USAGE, "network.c: volume %lld x %lld x %lld is not a multiple of 16",
                 (long long)D, (long long)H, (long long)W);
        return NULL;
    }
    lpm_net *n = lpm_calloc(1, sizeof *n);
    if (!n) return NULL;
    n->D = D, n->H = H, n->W = W;
    n->training = mode != LPM_NET_INFER;
    n->nthreads = lpm_get_threads();
    int ok = 1;
    size_t nvox = lpm_mul_size(lpm_mul_size((size_t)D, (size_t)H, &ok), (size_t)W, &ok);
    size_t hw = (size_t)(H * W), dw = (size_t)(D * W), dh = (size_t)(D * H);
    n->img = hw > dw ? hw : dw;
    if (dh > n->img) n->img = dh;
    size_t nimg = n->training ? 4 : 2;
    /* rounded to 16 floats so every thread's block stays 64-byte aligned */
    n->per_thread = (nimg * n->img * C + lpm_swin_scratch_floats() + 15) / 16 * 16;
    if (!ok) {
        lpm_fail(LPM_ERR_INTERNAL, "network.c: volume size overflows");
        goto fail;
    }
    n->X = lpm_malloc(lpm_mul_size(nvox, CX, &ok), sizeof(float));
    n->M = lpm_malloc(lpm_mul_size(nvox, C, &ok), sizeof(float));
    n->scratch = lpm_malloc(lpm_mul_size((size_t)n->nthreads, n->per_thread, &ok), sizeof(float));
    if (!ok || !n->X || !n->M || !n->scratch) goto oom;
    for (int k = 0; !n->training && k < 3; k++) {
        image_geom g = geom(n, k, 0);
        if (!(n->blank[k] = lpm_malloc((size_t)g.R * g.Q, C * sizeof(float)))) goto oom;
    }
    if (n->training) {
        n->bits = lpm_malloc(lpm_mul_size(nvox, C, &ok), 1);
        n->dX = lpm_malloc(lpm_mul_size(nvox, CX, &ok), sizeof(float));
        n->dM = lpm_malloc(lpm_mul_size(nvox, C, &ok), sizeof(float));
        n->tgrad = lpm_malloc((size_t)n->nthreads * LPM_NUM_PARAMS, sizeof(float));
        n->tparams = lpm_malloc((size_t)n->nthreads, sizeof(lpm_params));
        if (!ok || !n->bits || !n->dX || !n->dM || !n->tgrad || !n->tparams) goto oom;
        for (int t = 0; t < n->nthreads; t++)
            lpm_params_bind(&n->tparams[t], n->tgrad + (size_t)t * LPM_NUM_PARAMS);
        size_t keep = lpm_mul_size(nvox, 2 * C * sizeof(float), &ok);
        if (mode == LPM_NET_TRAIN && ok && keep <= LPM_NET_KEEP_MAX / 3)
            for (int k = 0; k < 3; k++)
                if (!(n->trunk[k] = lpm_malloc(keep, 1))) goto oom;
    }
    return n;
oom:
    lpm_fail(LPM_ERR_INTERNAL,
             "network.c: out of memory for a %lld x %lld x %lld volume (%s, %d threads)",
             (long long)D, (long long)H, (long long)W, n->training ? "training" : "inference",
             n->nthreads);
fail:
    lpm_net_free(n);
    return NULL;
}

void lpm_net_free(lpm_net *n) {
    if (!n) return;
    free(n->X);
    free(n->M);
    free(n->bits);
    free(n->dX);
    free(n->dM);
    free(n->scratch);
    for (int k = 0; k < 3; k++) free(n->blank[k]), free(n->trunk[k]);
    free(n->tgrad);
    free(n->tparams);
    free(n);
}

static const lpm_cfc_params *head_params(const lpm_params *p, int head) {
    return head == 0 ? &p->cfc : &p->cfc_mask;
}

lpm_status lpm_net_forward(lpm_net *n, const lpm_params *p, const float *a, const float *b,
                           int head, float *out, float *base, float *detail,
                           lpm_progress_fn progress, void *progress_ctx) {
    if (head != 0 && head != 1)
        return lpm_fail(LPM_ERR_USAGE, "network.c: head must be 0 (cfc) or 1 (cfc_mask), got %d", head);
    if (head == 1 && (base || detail))
        return lpm_fail(LPM_ERR_USAGE, "network.c: the cfc_mask head has no base or detail output");
    if (!out) return lpm_fail(LPM_ERR_USAGE, "network.c: no output buffer");
    n->ready = 0;
    const int64_t D = n->D, H = n->H, W = n->W, nvox = D * H * W;
    lpm_conv_in_forward(n->X, a, b, p->conv_in_w, p->conv_in_b, D, H, W);

    const int64_t total = D + H + W;
    int64_t done = 0;
    for (int k = 0; k < 3; k++) {
        const int64_t nimg = branch_images(n, k);
        if (n->blank[k]) blank_output(n, p, k);
#pragma omp parallel for schedule(dynamic) num_threads(n->nthreads)
        for (int64_t i = 0; i < nimg; i++) {
            int t = lpm_thread_id();
            thread_buf tb = thread_scratch(n, t);
            image_forward(n, p, k, i, &tb);
            int64_t now;
#pragma omp atomic capture
            now = ++done;
            if (progress && t == 0) progress(progress_ctx, now, total);
        }
    }

    const lpm_cfc_params *hp = head_params(p, head);
    const int64_t nchunk = (nvox + HEAD_CHUNK - 1) / HEAD_CHUNK;
#pragma omp parallel for schedule(static) num_threads(n->nthreads)
    for (int64_t c = 0; c < nchunk; c++) {
        int64_t s = c * HEAD_CHUNK, len = nvox - s < HEAD_CHUNK ? nvox - s : HEAD_CHUNK;
        const float *f = n->M + s * C;
        if (hp->nout == 1) {
            lpm_cfc_forward(out + s, base ? base + s : NULL, detail ? detail + s : NULL, f, hp, len);
        } else {
            /* planar (2, nvox): the chunk's two rows go through a (2, len) buffer */
            float *tmp = thread_scratch(n, lpm_thread_id()).img[0];
            lpm_cfc_forward(tmp, NULL, NULL, f, hp, len);
            memcpy(out + s, tmp, (size_t)len * sizeof(float));
            memcpy(out + nvox + s, tmp + len, (size_t)len * sizeof(float));
        }
    }
    if (progress) progress(progress_ctx, total, total);
    if (n->training) {
        n->a = a, n->b = b, n->head = head;
        n->ready = 1;
    }
    return LPM_OK;
}

lpm_status lpm_net_backward(lpm_net *n, const lpm_params *p, lpm_params *grad,
                            const float *dout, const float *dbase, const float *ddetail) {
    if (!n->training || !n->ready)
        return lpm_fail(LPM_ERR_USAGE, "network.c: backward needs a training net and a forward first");
    if (!dout) return lpm_fail(LPM_ERR_USAGE, "network.c: no output gradient");
    const int64_t D = n->D, H = n->H, W = n->W, nvox = D * H * W;
    const int nt = n->nthreads;
    lpm_params *tg = n->tparams;
    memset(n->tgrad, 0, (size_t)nt * LPM_NUM_PARAMS * sizeof(float));

    const lpm_cfc_params *hp = head_params(p, n->head);
    if (hp->nout != 1) dbase = ddetail = NULL;
    memset(n->dM, 0, (size_t)nvox * C * sizeof(float));
    const int64_t nchunk = (nvox + HEAD_CHUNK - 1) / HEAD_CHUNK;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t c = 0; c < nchunk; c++) {
        int t = lpm_thread_id();
        lpm_cfc_params *g = n->head == 0 ? &tg[t].cfc : &tg[t].cfc_mask;
        int64_t s = c * HEAD_CHUNK, len = nvox - s < HEAD_CHUNK ? nvox - s : HEAD_CHUNK;
        const float *f = n->M + s * C;
        float *df = n->dM + s * C;
        if (hp->nout == 1) {
            lpm_cfc_backward(df, g, dout + s, dbase ? dbase + s : NULL,
                             ddetail ? ddetail + s : NULL, f, hp, len);
        } else {
            float *tmp = thread_scratch(n, t).img[0];
            memcpy(tmp, dout + s, (size_t)len * sizeof(float));
            memcpy(tmp + len, dout + nvox + s, (size_t)len * sizeof(float));
            lpm_cfc_backward(df, g, tmp, NULL, NULL, f, hp, len);
        }
    }

    memset(n->dX, 0, (size_t)nvox * CX * sizeof(float));
    for (int k = 0; k < 3; k++) {
        const int64_t nimg = branch_images(n, k);
        /* a fixed image -> thread map keeps the per-thread sums, and so the gradients,
         * the same from run to run */
#pragma omp parallel for schedule(static, 1) num_threads(nt)
        for (int64_t i = 0; i < nimg; i++) {
            int t = lpm_thread_id();
            thread_buf tb = thread_scratch(n, t);
            image_backward(n, p, &tg[t], k, i, &tb);
        }
    }
    lpm_conv_in_backward(grad->conv_in_w, grad->conv_in_b, n->dX, n->a, n->b, D, H, W);

    /* lpm_params_bind puts Conv_in.weight at offset 0: grad->conv_in_w is the flat array */
    float *flat = grad->conv_in_w;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t j = 0; j < LPM_NUM_PARAMS; j++) {
        float s = 0;
        for (int t = 0; t < nt; t++) s += n->tgrad[(size_t)t * LPM_NUM_PARAMS + j];
        flat[j] += s;
    }
    return LPM_OK;
}

void lpm_recon_masks(float *m1, float *m2, int64_t D, int64_t H, int64_t W, double rec,
                     lpm_rng *rng) {
    float *masks[2] = {m1, m2};
    const int64_t B = 8;
    for (int m = 0; m < 2; m++)
        for (int64_t bd = 0; bd < (D + B - 1) / B; bd++)
            for (int64_t bh = 0; bh < (H + B - 1) / B; bh++)
                for (int64_t bw = 0; bw < (W + B - 1) / B; bw++) {
                    /* (torch.rand(D/8, H/8, W/8) > rec) repeated over each 8x8x8 block */
                    float keep = lpm_rng_uniform(rng) > rec ? 1.0f : 0.0f;
                    for (int64_t d = bd * B; d < D && d < bd * B + B; d++)
                        for (int64_t h = bh * B; h < H && h < bh * B + B; h++)
                            for (int64_t w = bw * B; w < W && w < bw * B + B; w++)
                                masks[m][(d * H + h) * W + w] = keep;
                }
}
