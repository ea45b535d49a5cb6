/* The whole LPM-Net on the GPU (mirrors network.c, fuse.c, train.c's lpm_train_step), the
 * device probe, and host-in/host-out wrappers of each layer for tests/test_cuda.c.
 *
 * Memory (device, per voxel): X (8), M (24), two branch images (48) for inference; for
 * training also the winner bits (24 bytes), dX (8), dM (24) and six (D,H,W,24) buffers:
 * the branch's dense output, first Swin output and two gradients, reused by the head's
 * backward. The Swin layers run on up to CHUNK_WIN windows at a time. */
#include "cuda_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { CHUNK_WIN = 4096 };

/* ------------------------------------------------------------------ probe, memory */

int lpm_cuda_available(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    const char *reason = NULL;
    char buf[400];
    cudaDeviceProp prop;
    if (e != cudaSuccess) {
        reason = cudaGetErrorString(e);
    } else if (count == 0) {
        reason = "no CUDA device found";
    } else if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
        reason = cudaGetErrorString(e);
    } else if (prop.major < 8) {
        snprintf(buf, sizeof buf, "%s has compute capability %d.%d; lpmnet is built for 8.0+",
                 prop.name, prop.major, prop.minor);
        reason = buf;
    } else if ((e = cudaFree(0)) != cudaSuccess) { /* creates the context */
        reason = cudaGetErrorString(e);
    }
    if (why && n) {
        if (reason) snprintf(why, n, "%s", reason);
        else snprintf(why, n, "%s, compute capability %d.%d, %.0f GiB", prop.name, prop.major,
                      prop.minor, (double)prop.totalGlobalMem / 1073741824.0);
    }
    return reason == NULL;
}

lpm_status lpm_cuda_malloc(void **p, size_t bytes) {
    *p = NULL;
    CK(cudaMalloc(p, bytes ? bytes : 1));
    return LPM_OK;
}

void lpm_cuda_free(void *p) {
    if (p) cudaFree(p);
}

lpm_status lpm_cuda_upload(void *dev, const void *host, size_t bytes) {
    CK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    return LPM_OK;
}

lpm_status lpm_cuda_download(void *host, const void *dev, size_t bytes) {
    CK(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
    return LPM_OK;
}

static size_t mem_peak;

void lpm_cuda_mem_reset(void) { mem_peak = 0; }

size_t lpm_cuda_mem_sample(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b - free_b > mem_peak)
        mem_peak = total_b - free_b;
    return mem_peak;
}

/* ------------------------------------------------------------------ the network */

struct lpm_cuda_net {
    int64_t D, H, W, nvox;
    int training;
    float *X, *M, *dX, *dM;
    float *bufs;            /* nbuf (nvox,24) images; training: + 6 nvox for the head */
    float *buf[6];
    unsigned char *bits;
    float *swin_mem;
    swin_dev swin;
    /* state of the last forward, for backward */
    const float *a, *b;
    int head, ready;
};

static lpm_status net_alloc(lpm_cuda_net *n) {
    const size_t nv = (size_t)n->nvox, nbuf = n->training ? 6 : 2;
    const int64_t nwin = n->nvox / NTOK < (int64_t)CHUNK_WIN ? n->nvox / NTOK : (int64_t)CHUNK_WIN;
    void *p;
    TRY(lpm_cuda_malloc(&p, nv * NCX * sizeof(float)));
    n->X = (float *)p;
    TRY(lpm_cuda_malloc(&p, nv * NC * sizeof(float)));
    n->M = (float *)p;
    TRY(lpm_cuda_malloc(&p, (nbuf * nv * NC + (n->training ? 6 * nv : 0)) * sizeof(float)));
    n->bufs = (float *)p;
    for (size_t i = 0; i < nbuf; i++) n->buf[i] = n->bufs + i * nv * NC;
    if (n->training) {
        /* the backward's chunk scratch; the forward is fused and needs none */
        TRY(lpm_cuda_malloc(&p, lpm_cuda_swin_floats(nwin) * sizeof(float)));
        n->swin_mem = (float *)p;
        lpm_cuda_swin_carve(&n->swin, n->swin_mem, nwin);
        TRY(lpm_cuda_malloc(&p, nv * NC));
        n->bits = (unsigned char *)p;
        TRY(lpm_cuda_malloc(&p, nv * NCX * sizeof(float)));
        n->dX = (float *)p;
        TRY(lpm_cuda_malloc(&p, nv * NC * sizeof(float)));
        n->dM = (float *)p;
    }
    return LPM_OK;
}

lpm_cuda_net *lpm_cuda_net_create(int64_t D, int64_t H, int64_t W, int training) {
    if (D <= 0 || H <= 0 || W <= 0 || D % LPM_WIN || H % LPM_WIN || W % LPM_WIN) {
        lpm_fail(LPM_ERR_USAGE, "cuda: volume %lld x %lld x %lld is not a multiple of 16",
                 (long long)D, (long long)H, (long long)W);
        return NULL;
    }
    lpm_cuda_net *n = (lpm_cuda_net *)lpm_calloc(1, sizeof *n);
    if (!n) return NULL;
    n->D = D, n->H = H, n->W = W, n->nvox = D * H * W;
    n->training = training != 0;
    cublasHandle_t h;
    if (net_alloc(n) != LPM_OK || lpm_cuda_blas(&h) != LPM_OK) {
        lpm_cuda_net_free(n);
        return NULL;
    }
    lpm_cuda_mem_sample();
    return n;
}

void lpm_cuda_net_free(lpm_cuda_net *n) {
    if (!n) return;
    lpm_cuda_free(n->X);
    lpm_cuda_free(n->M);
    lpm_cuda_free(n->dX);
    lpm_cuda_free(n->dM);
    lpm_cuda_free(n->bufs);
    lpm_cuda_free(n->bits);
    lpm_cuda_free(n->swin_mem);
    free(n);
}

/* feat = [y1, y0, X] and s0 = the shift-0 Swin output of branch k (network.c's image_trunk) */
static lpm_status branch_trunk(lpm_cuda_net *n, const lpm_params *p, const branch_geom *g,
                               float *feat, float *s0) {
    TRY(cu_put_input(feat, n->X, n->nvox));
    TRY(cu_dense_forward(feat, &p->dense[g->k], g));
    return cu_swin_forward(s0, feat, &p->mamba[g->k][0], g, 0);
}

lpm_status lpm_cuda_net_forward(lpm_cuda_net *n, const float *params, const float *a,
                                const float *b, int head, float *out, float *base,
                                float *detail) {
    if (head != 0 && head != 1)
        return lpm_fail(LPM_ERR_USAGE, "cuda: head must be 0 (cfc) or 1 (cfc_mask), got %d", head);
    if (head == 1 && (base || detail))
        return lpm_fail(LPM_ERR_USAGE, "cuda: the cfc_mask head has no base or detail output");
    if (!out) return lpm_fail(LPM_ERR_USAGE, "cuda: no output buffer");
    n->ready = 0;
    lpm_params p;
    lpm_params_bind(&p, (float *)params);
    TRY(cu_conv_in_forward(n->X, a, b, p.conv_in_w, p.conv_in_b, n->D, n->H, n->W));
    for (int k = 0; k < 3; k++) {
        const branch_geom g = lpm_cuda_geom(n->D, n->H, n->W, k);
        float *feat = n->buf[0], *s0 = n->buf[1];
        TRY(branch_trunk(n, &p, &g, feat, s0));
        /* the dense output is no longer needed: the branch output goes over it */
        TRY(cu_swin_forward(feat, s0, &p.mamba[k][1], &g, 8));
        TRY(cu_max_merge(n->M, n->training ? n->bits : NULL, feat, k, n->nvox));
    }
    TRY(cu_cfc_forward(out, base, detail, n->M, head == 0 ? &p.cfc : &p.cfc_mask, n->nvox));
    CK(cudaDeviceSynchronize());
    lpm_cuda_mem_sample();
    if (n->training) {
        n->a = a, n->b = b, n->head = head;
        n->ready = 1;
    }
    return LPM_OK;
}

lpm_status lpm_cuda_net_backward(lpm_cuda_net *n, const float *params, float *grad,
                                 const float *dout, const float *dbase, const float *ddetail) {
    if (!n->training || !n->ready)
        return lpm_fail(LPM_ERR_USAGE, "cuda: backward needs a training net and a forward first");
    if (!dout) return lpm_fail(LPM_ERR_USAGE, "cuda: no output gradient");
    const int64_t nv = n->nvox;
    lpm_params p, g;
    lpm_params_bind(&p, (float *)params);
    lpm_params_bind(&g, grad);

    const lpm_cfc_params *hp = n->head == 0 ? &p.cfc : &p.cfc_mask;
    lpm_cfc_params *hg = n->head == 0 ? &g.cfc : &g.cfc_mask;
    if (hp->nout != 1) dbase = ddetail = NULL;
    CK(cudaMemset(n->dM, 0, (size_t)nv * NC * sizeof(float)));
    TRY(cu_cfc_backward(n->dM, hg, dout, dbase, ddetail, n->M, hp, nv, n->bufs));

    CK(cudaMemset(n->dX, 0, (size_t)nv * NCX * sizeof(float)));
    for (int k = 0; k < 3; k++) {
        const branch_geom geo = lpm_cuda_geom(n->D, n->H, n->W, k);
        float *feat = n->buf[0], *s0 = n->buf[1], *gout = n->buf[2], *ds0 = n->buf[3];
        TRY(branch_trunk(n, &p, &geo, feat, s0));
        /* the branch output's gradient: dM on the elements this branch won */
        TRY(cu_max_share(gout, n->dM, n->bits, k, nv));
        CK(cudaMemset(ds0, 0, (size_t)nv * NC * sizeof(float)));
        TRY(cu_swin_backward(ds0, &g.mamba[k][1], gout, s0, &p.mamba[k][1], &geo, 8, &n->swin));
        float *dfeat = gout;
        CK(cudaMemset(dfeat, 0, (size_t)nv * NC * sizeof(float)));
        TRY(cu_swin_backward(dfeat, &g.mamba[k][0], ds0, feat, &p.mamba[k][0], &geo, 0, &n->swin));
        TRY(cu_dense_backward(dfeat, &g.dense[k], feat, &p.dense[k], &geo));
        TRY(cu_add_input_grad(n->dX, dfeat, nv));
    }
    TRY(cu_conv_in_backward(g.conv_in_w, g.conv_in_b, n->dX, n->a, n->b, n->D, n->H, n->W));
    CK(cudaDeviceSynchronize());
    lpm_cuda_mem_sample();
    return LPM_OK;
}

/* ------------------------------------------------------------------ fusion (fuse.c) */

/* dst (Dp,Hp,Wp), zeroed <- src min-max normalised to [0,1], voxel (d,h,w) at its place */
static lpm_status pad_input(float *dst, const lpm_volume *src, const char *name, int64_t Hp,
                            int64_t Wp) {
    const int64_t D = src->nz, H = src->ny, W = src->nx;
    float *tmp = (float *)lpm_malloc((size_t)(D * H * W), sizeof(float));
    if (!tmp) return LPM_ERR_INTERNAL;
    memcpy(tmp, src->data, (size_t)(D * H * W) * sizeof(float));
    lpm_volume view = *src;
    view.data = tmp;
    view.header = NULL;
    lpm_status st = lpm_normalize_minmax(&view, name);
    if (st == LPM_OK)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + (d * Hp + h) * Wp, tmp + (d * H + h) * W, (size_t)W * sizeof(float));
    free(tmp);
    return st;
}

static lpm_status fuse_run(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                           lpm_volume *outs[3], float *host[3], float *dev[6],
                           lpm_cuda_net **net) {
    const int64_t Dp = lpm_pad16(a->nz), Hp = lpm_pad16(a->ny), Wp = lpm_pad16(a->nx);
    const size_t np = (size_t)(Dp * Hp * Wp);
    /* host[0..1]: padded inputs, then reused for the padded outputs */
    for (int j = 0; j < 3; j++)
        if (!(host[j] = (float *)lpm_calloc(np, sizeof(float)))) return LPM_ERR_INTERNAL;
    TRY(pad_input(host[0], a, "input A", Hp, Wp));
    TRY(pad_input(host[1], b, "input B", Hp, Wp));
    void *p;
    TRY(lpm_cuda_malloc(&p, LPM_NUM_PARAMS * sizeof(float)));
    dev[0] = (float *)p;
    TRY(lpm_cuda_upload(dev[0], w->data, LPM_NUM_PARAMS * sizeof(float)));
    for (int j = 1; j < 6; j++) {
        if (j >= 3 && !outs[j - 3]) continue;
        TRY(lpm_cuda_malloc(&p, np * sizeof(float)));
        dev[j] = (float *)p;
    }
    TRY(lpm_cuda_upload(dev[1], host[0], np * sizeof(float)));
    TRY(lpm_cuda_upload(dev[2], host[1], np * sizeof(float)));
    if (!(*net = lpm_cuda_net_create(Dp, Hp, Wp, 0))) return LPM_ERR_INTERNAL;
    TRY(lpm_cuda_net_forward(*net, dev[0], dev[1], dev[2], 0, dev[3], dev[4], dev[5]));
    for (int j = 0; j < 3; j++) {
        if (!outs[j]) continue;
        TRY(lpm_cuda_download(host[j], dev[3 + j], np * sizeof(float)));
        TRY(lpm_volume_alloc_like(outs[j], a));
        lpm_volume *v = outs[j];
        for (int64_t d = 0; d < v->nz; d++)
            for (int64_t h = 0; h < v->ny; h++)
                memcpy(v->data + (d * v->ny + h) * v->nx, host[j] + (d * Hp + h) * Wp,
                       (size_t)v->nx * sizeof(float));
    }
    return LPM_OK;
}

lpm_status lpm_fuse_cuda(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                         lpm_volume *fused, lpm_volume *base, lpm_volume *detail) {
    lpm_volume *outs[3] = {fused, base, detail};
    for (int j = 0; j < 3; j++)
        if (outs[j]) memset(outs[j], 0, sizeof *outs[j]);
    if (!fused) return lpm_fail(LPM_ERR_USAGE, "cuda: no output volume");
    lpm_status st = lpm_check_same_grid(a, b, "input A", "input B");
    if (st != LPM_OK) return st;
    char why[256];
    if (!lpm_cuda_available(why, sizeof why))
        return lpm_fail(LPM_ERR_USAGE, "cuda: no usable device: %s", why);
    float *host[3] = {NULL, NULL, NULL}, *dev[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    lpm_cuda_net *net = NULL;
    st = fuse_run(w, a, b, outs, host, dev, &net);
    lpm_cuda_net_free(net);
    for (int j = 0; j < 3; j++) free(host[j]);
    for (int j = 0; j < 6; j++) lpm_cuda_free(dev[j]);
    if (st != LPM_OK)
        for (int j = 0; j < 3; j++)
            if (outs[j]) lpm_volume_free(outs[j]);
    return st;
}

/* ------------------------------------------------------------------ training (train.c) */

struct lpm_cuda_trainer {
    int64_t D, H, W, n;
    lpm_cuda_net *net;
    float *w, *g, *m, *v;                 /* device, LPM_NUM_PARAMS each */
    float *a, *b, *out, *base, *detail, *dout, *ddet;   /* device volumes; out, dout (2,D,H,W) */
    float *h_out, *h_det, *h_dout, *h_ddet, *h_am, *h_bm, *h_m1, *h_m2;  /* host */
    int64_t adam_t;
    double beta1, beta2, eps, weight_decay;
};

void lpm_cuda_trainer_free(lpm_cuda_trainer *t) {
    if (!t) return;
    lpm_cuda_net_free(t->net);
    float *dev[] = {t->w, t->g, t->m, t->v, t->a, t->b, t->out, t->base, t->detail, t->dout, t->ddet};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lpm_cuda_free(dev[i]);
    float *host[] = {t->h_out, t->h_det, t->h_dout, t->h_ddet, t->h_am, t->h_bm, t->h_m1, t->h_m2};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    free(t);
}

static lpm_status trainer_alloc(lpm_cuda_trainer *t) {
    const size_t n = (size_t)t->n;
    float **params[] = {&t->w, &t->g, &t->m, &t->v};
    for (size_t i = 0; i < 4; i++) {
        void *p;
        TRY(lpm_cuda_malloc(&p, LPM_NUM_PARAMS * sizeof(float)));
        *params[i] = (float *)p;
        CK(cudaMemset(p, 0, LPM_NUM_PARAMS * sizeof(float)));
    }
    float **vols[] = {&t->a, &t->b, &t->out, &t->base, &t->detail, &t->dout, &t->ddet};
    const size_t len[] = {n, n, 2 * n, n, n, 2 * n, n};
    for (size_t i = 0; i < 7; i++) {
        void *p;
        TRY(lpm_cuda_malloc(&p, len[i] * sizeof(float)));
        *vols[i] = (float *)p;
    }
    float **host[] = {&t->h_out, &t->h_det, &t->h_dout, &t->h_ddet, &t->h_am, &t->h_bm, &t->h_m1, &t->h_m2};
    const size_t hlen[] = {2 * n, n, 2 * n, n, n, n, n, n};
    for (size_t i = 0; i < 8; i++)
        if (!(*host[i] = (float *)lpm_malloc(hlen[i], sizeof(float)))) return LPM_ERR_INTERNAL;
    if (!(t->net = lpm_cuda_net_create(t->D, t->H, t->W, 1))) return LPM_ERR_INTERNAL;
    return LPM_OK;
}

lpm_cuda_trainer *lpm_cuda_trainer_create(int64_t D, int64_t H, int64_t W) {
    if (D % 16 || H % 16 || W % 16 || D <= 0 || H <= 0 || W <= 0) {
        lpm_fail(LPM_ERR_USAGE, "cuda: training size %lldx%lldx%lld: each side must be a positive multiple of 16",
                 (long long)D, (long long)H, (long long)W);
        return NULL;
    }
    lpm_cuda_trainer *t = (lpm_cuda_trainer *)lpm_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->D = D, t->H = H, t->W = W, t->n = D * H * W;
    /* lpm_adam_init's hyperparameters */
    t->beta1 = 0.9, t->beta2 = 0.999, t->eps = 1e-8, t->weight_decay = 3e-4;
    if (trainer_alloc(t) != LPM_OK) {
        lpm_cuda_trainer_free(t);
        return NULL;
    }
    return t;
}

lpm_status lpm_cuda_trainer_set(lpm_cuda_trainer *t, const float *w, const float *adam_m,
                                const float *adam_v, int64_t adam_t) {
    const size_t bytes = LPM_NUM_PARAMS * sizeof(float);
    TRY(lpm_cuda_upload(t->w, w, bytes));
    if (adam_m) TRY(lpm_cuda_upload(t->m, adam_m, bytes));
    else CK(cudaMemset(t->m, 0, bytes));
    if (adam_v) TRY(lpm_cuda_upload(t->v, adam_v, bytes));
    else CK(cudaMemset(t->v, 0, bytes));
    t->adam_t = adam_t;
    return LPM_OK;
}

lpm_status lpm_cuda_trainer_get(lpm_cuda_trainer *t, float *w, float *adam_m, float *adam_v,
                                int64_t *adam_t) {
    const size_t bytes = LPM_NUM_PARAMS * sizeof(float);
    if (w) TRY(lpm_cuda_download(w, t->w, bytes));
    if (adam_m) TRY(lpm_cuda_download(adam_m, t->m, bytes));
    if (adam_v) TRY(lpm_cuda_download(adam_v, t->v, bytes));
    if (adam_t) *adam_t = t->adam_t;
    return LPM_OK;
}

/* lpm_adam_step on the device flat arrays */
static lpm_status adam_step(lpm_cuda_trainer *t, double lr) {
    t->adam_t++;
    const float b1 = (float)t->beta1, b2 = (float)t->beta2, wd = (float)t->weight_decay;
    /* 1 - beta in double, as PyTorch passes it */
    const float c1 = (float)(1.0 - t->beta1), c2 = (float)(1.0 - t->beta2);
    const double bc1 = 1.0 - pow(t->beta1, (double)t->adam_t);
    const double bc2 = 1.0 - pow(t->beta2, (double)t->adam_t);
    const float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)t->eps;
    return cu_adam(t->w, t->m, t->v, t->g, LPM_NUM_PARAMS, b1, b2, c1, c2, wd, step, bc2s, eps);
}

lpm_status lpm_cuda_train_step(lpm_cuda_trainer *t, const float *a, const float *b,
                               const float *m1, const float *m2, lpm_rng *rng, double rec,
                               const lpm_loss_weights *lw, double lr, lpm_loss_terms *terms) {
    const int64_t D = t->D, H = t->H, W = t->W, n = t->n;
    const size_t bytes = (size_t)n * sizeof(float);
    CK(cudaMemset(t->g, 0, LPM_NUM_PARAMS * sizeof(float)));

    /* fusion pass; the loss and its gradient on the host (src/train/loss.c) */
    TRY(lpm_cuda_upload(t->a, a, bytes));
    TRY(lpm_cuda_upload(t->b, b, bytes));
    TRY(lpm_cuda_net_forward(t->net, t->w, t->a, t->b, 0, t->out, t->base, t->detail));
    TRY(lpm_cuda_download(t->h_out, t->out, bytes));
    TRY(lpm_cuda_download(t->h_det, t->detail, bytes));
    TRY(lpm_loss_fusion(terms, lw, a, b, t->h_out, t->h_det, D, H, W, t->h_dout, t->h_ddet));
    TRY(lpm_cuda_upload(t->dout, t->h_dout, bytes));
    TRY(lpm_cuda_upload(t->ddet, t->h_ddet, bytes));
    TRY(lpm_cuda_net_backward(t->net, t->w, t->g, t->dout, NULL, t->ddet));

    /* reconstruction pass: the same network on masked inputs, the 2-channel head */
    if (!m1) {
        lpm_recon_masks(t->h_m1, t->h_m2, D, H, W, rec, rng);
        m1 = t->h_m1, m2 = t->h_m2;
    }
    for (int64_t i = 0; i < n; i++) {
        t->h_am[i] = a[i] * m1[i];
        t->h_bm[i] = b[i] * m2[i];
    }
    TRY(lpm_cuda_upload(t->a, t->h_am, bytes));
    TRY(lpm_cuda_upload(t->b, t->h_bm, bytes));
    TRY(lpm_cuda_net_forward(t->net, t->w, t->a, t->b, 1, t->out, NULL, NULL));
    TRY(lpm_cuda_download(t->h_out, t->out, 2 * bytes));
    TRY(lpm_loss_recon(terms, a, b, t->h_out, D, H, W, t->h_dout));
    TRY(lpm_cuda_upload(t->dout, t->h_dout, 2 * bytes));
    TRY(lpm_cuda_net_backward(t->net, t->w, t->g, t->dout, NULL, NULL));
    terms->total = lpm_loss_total(terms, lw);

    TRY(adam_step(t, lr));
    CK(cudaDeviceSynchronize());
    return LPM_OK;
}

/* ------------------------------------------------------------------ per-op wrappers */

/* Device buffers of one wrapper call, all released at its end. */
typedef struct {
    void *p[24];
    int n;
} arena;

static void arena_free(arena *A) {
    for (int i = 0; i < A->n; i++) lpm_cuda_free(A->p[i]);
    A->n = 0;
}

static lpm_status dalloc(arena *A, float **d, size_t nfloat) {
    if (A->n == (int)(sizeof A->p / sizeof A->p[0]))
        return lpm_fail(LPM_ERR_INTERNAL, "cuda: too many buffers in one test wrapper");
    void *p;
    TRY(lpm_cuda_malloc(&p, nfloat * sizeof(float)));
    A->p[A->n++] = p;
    *d = (float *)p;
    return LPM_OK;
}

/* device copy of h (NULL stays NULL) */
static lpm_status dput(arena *A, float **d, const float *h, size_t nfloat) {
    *d = NULL;
    if (!h) return LPM_OK;
    TRY(dalloc(A, d, nfloat));
    return lpm_cuda_upload(*d, h, nfloat * sizeof(float));
}

static lpm_status dzero(arena *A, float **d, size_t nfloat) {
    TRY(dalloc(A, d, nfloat));
    CK(cudaMemset(*d, 0, nfloat * sizeof(float)));
    return LPM_OK;
}

static lpm_status dget(float *h, const float *d, size_t nfloat) {
    if (!h) return LPM_OK;
    CK(cudaDeviceSynchronize());
    return lpm_cuda_download(h, d, nfloat * sizeof(float));
}

/* h += d (accumulating outputs: gradients) */
static lpm_status dadd(float *h, const float *d, size_t nfloat) {
    float *tmp = (float *)lpm_malloc(nfloat, sizeof(float));
    if (!tmp) return LPM_ERR_INTERNAL;
    lpm_status st = dget(tmp, d, nfloat);
    if (st == LPM_OK)
        for (size_t i = 0; i < nfloat; i++) h[i] += tmp[i];
    free(tmp);
    return st;
}

/* weights (and zeroed gradients when g != NULL) on the device, bound to p / gp */
static lpm_status dparams(arena *A, const float *w, float **dw, lpm_params *p, float **dg,
                          lpm_params *gp) {
    TRY(dput(A, dw, w, LPM_NUM_PARAMS));
    lpm_params_bind(p, *dw);
    if (dg) {
        TRY(dzero(A, dg, LPM_NUM_PARAMS));
        lpm_params_bind(gp, *dg);
    }
    return LPM_OK;
}

static lpm_status check_kl(int k, int l) {
    if (k < 0 || k > 2 || l < 0 || l > 1)
        return lpm_fail(LPM_ERR_USAGE, "cuda: branch %d layer %d out of range", k, l);
    return LPM_OK;
}

#define RUN(call)                       \
    do {                                \
        arena A_ = {};                  \
        lpm_status st_ = (call);        \
        arena_free(&A_);                \
        return st_;                     \
    } while (0)

static lpm_status conv_in_fwd(arena *A, float *X, const float *a, const float *b,
                              const float *w, int64_t D, int64_t H, int64_t W) {
    const size_t n = (size_t)(D * H * W);
    float *dw = NULL, *da = NULL, *db = NULL, *dX = NULL;
    lpm_params p;
    TRY(dparams(A, w, &dw, &p, NULL, NULL));
    TRY(dput(A, &da, a, n));
    TRY(dput(A, &db, b, n));
    TRY(dalloc(A, &dX, n * NCX));
    TRY(cu_conv_in_forward(dX, da, db, p.conv_in_w, p.conv_in_b, D, H, W));
    return dget(X, dX, n * NCX);
}
lpm_status lpm_cuda_conv_in_forward(float *X, const float *a, const float *b, const float *w,
                                    int64_t D, int64_t H, int64_t W) {
    RUN(conv_in_fwd(&A_, X, a, b, w, D, H, W));
}

static lpm_status conv_in_bwd(arena *A, float *grad, const float *dX, const float *a,
                              const float *b, int64_t D, int64_t H, int64_t W) {
    const size_t n = (size_t)(D * H * W);
    float *dg = NULL, *da = NULL, *db = NULL, *ddX = NULL;
    TRY(dzero(A, &dg, LPM_NUM_PARAMS));
    lpm_params g;
    lpm_params_bind(&g, dg);
    TRY(dput(A, &da, a, n));
    TRY(dput(A, &db, b, n));
    TRY(dput(A, &ddX, dX, n * NCX));
    TRY(cu_conv_in_backward(g.conv_in_w, g.conv_in_b, ddX, da, db, D, H, W));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_conv_in_backward(float *grad, const float *dX, const float *a,
                                     const float *b, int64_t D, int64_t H, int64_t W) {
    RUN(conv_in_bwd(&A_, grad, dX, a, b, D, H, W));
}

/* An (R,Q,24) image is branch 0's only image of a (1,R,Q) volume. */
static lpm_status dense_fwd(arena *A, float *feat, const float *w, int k, int R, int Q) {
    TRY(check_kl(k, 0));
    const size_t n = (size_t)R * Q * NC;
    float *dw = NULL, *df = NULL;
    lpm_params p;
    TRY(dparams(A, w, &dw, &p, NULL, NULL));
    TRY(dput(A, &df, feat, n));
    const branch_geom g = lpm_cuda_geom(1, R, Q, 0);
    TRY(cu_dense_forward(df, &p.dense[k], &g));
    return dget(feat, df, n);
}
lpm_status lpm_cuda_dense_forward(float *feat, const float *w, int k, int R, int Q) {
    RUN(dense_fwd(&A_, feat, w, k, R, Q));
}

static lpm_status dense_bwd(arena *A, float *dfeat, float *grad, const float *feat,
                            const float *w, int k, int R, int Q) {
    TRY(check_kl(k, 0));
    const size_t n = (size_t)R * Q * NC;
    float *dw = NULL, *dg = NULL, *dd = NULL, *df = NULL;
    lpm_params p, g;
    TRY(dparams(A, w, &dw, &p, &dg, &g));
    TRY(dput(A, &dd, dfeat, n));
    TRY(dput(A, &df, feat, n));
    const branch_geom geo = lpm_cuda_geom(1, R, Q, 0);
    TRY(cu_dense_backward(dd, &g.dense[k], df, &p.dense[k], &geo));
    TRY(dget(dfeat, dd, n));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_dense_backward(float *dfeat, float *grad, const float *feat,
                                   const float *w, int k, int R, int Q) {
    RUN(dense_bwd(&A_, dfeat, grad, feat, w, k, R, Q));
}

static lpm_status ln_fwd(arena *A, float *out, float *mean, float *rstd, const float *in,
                         const float *w, int k, int l, int64_t n) {
    TRY(check_kl(k, l));
    float *dw = NULL, *din = NULL, *dout = NULL, *dm = NULL, *ds = NULL;
    lpm_params p;
    TRY(dparams(A, w, &dw, &p, NULL, NULL));
    TRY(dput(A, &din, in, (size_t)n * NC));
    TRY(dalloc(A, &dout, (size_t)n * NC));
    TRY(dalloc(A, &dm, (size_t)n));
    TRY(dalloc(A, &ds, (size_t)n));
    const lpm_mamba_params *mp = &p.mamba[k][l];
    TRY(cu_layernorm_forward(dout, dm, ds, din, mp->norm_w, mp->norm_b, n));
    TRY(dget(out, dout, (size_t)n * NC));
    TRY(dget(mean, dm, (size_t)n));
    return dget(rstd, ds, (size_t)n);
}
lpm_status lpm_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                                      const float *w, int k, int l, int64_t n) {
    RUN(ln_fwd(&A_, out, mean, rstd, in, w, k, l, n));
}

static lpm_status ln_bwd(arena *A, float *din, float *grad, const float *dout, const float *in,
                         const float *mean, const float *rstd, const float *w, int k, int l,
                         int64_t n) {
    TRY(check_kl(k, l));
    float *dw = NULL, *dg = NULL, *ddin = NULL, *ddout = NULL, *din_ = NULL, *dm = NULL, *ds = NULL;
    lpm_params p, g;
    TRY(dparams(A, w, &dw, &p, &dg, &g));
    TRY(dput(A, &ddin, din, (size_t)n * NC));
    TRY(dput(A, &ddout, dout, (size_t)n * NC));
    TRY(dput(A, &din_, in, (size_t)n * NC));
    TRY(dput(A, &dm, mean, (size_t)n));
    TRY(dput(A, &ds, rstd, (size_t)n));
    TRY(cu_layernorm_backward(ddin, g.mamba[k][l].norm_w, g.mamba[k][l].norm_b, ddout, din_, dm,
                              ds, p.mamba[k][l].norm_w, n));
    TRY(dget(din, ddin, (size_t)n * NC));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_layernorm_backward(float *din, float *grad, const float *dout,
                                       const float *in, const float *mean, const float *rstd,
                                       const float *w, int k, int l, int64_t n) {
    RUN(ln_bwd(&A_, din, grad, dout, in, mean, rstd, w, k, l, n));
}

static lpm_status mamba_op(arena *A, float *out, float *du, float *grad, const float *dout,
                           const float *u, const float *w, int k, int l, int nseq, int L) {
    TRY(check_kl(k, l));
    const int training = du != NULL;
    const size_t nt = (size_t)nseq * L * NC;
    float *dw = NULL, *dg = NULL, *dU = NULL, *dOut = NULL, *dDu = NULL, *scr = NULL;
    lpm_params p, g;
    TRY(dparams(A, w, &dw, &p, training ? &dg : NULL, &g));
    TRY(dput(A, &dU, u, nt));
    TRY(dalloc(A, &scr, lpm_cuda_mamba_floats(nseq, L, training)));
    mamba_dev m;
    lpm_cuda_mamba_carve(&m, scr, nseq, L, training);
    if (!training) {
        TRY(dalloc(A, &dOut, nt));
        TRY(cu_mamba_forward(dOut, dU, &p.mamba[k][l], nseq, L, &m));
        return dget(out, dOut, nt);
    }
    TRY(dput(A, &dOut, dout, nt));
    TRY(dput(A, &dDu, du, nt));
    TRY(cu_mamba_backward(dDu, &g.mamba[k][l], dOut, dU, &p.mamba[k][l], nseq, L, &m));
    TRY(dget(du, dDu, nt));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_mamba_forward(float *out, const float *u, const float *w, int k, int l,
                                  int nseq, int L) {
    RUN(mamba_op(&A_, out, NULL, NULL, NULL, u, w, k, l, nseq, L));
}
lpm_status lpm_cuda_mamba_backward(float *du, float *grad, const float *dout, const float *u,
                                   const float *w, int k, int l, int nseq, int L) {
    if (!du) return lpm_fail(LPM_ERR_USAGE, "cuda: mamba backward needs du");
    RUN(mamba_op(&A_, NULL, du, grad, dout, u, w, k, l, nseq, L));
}

static lpm_status swin_op(arena *A, float *out, float *din, float *grad, const float *dout,
                          const float *in, const float *w, int k, int l, int R, int Q,
                          int shift) {
    TRY(check_kl(k, l));
    if (R <= 0 || Q <= 0 || R % NWIN || Q % NWIN)
        return lpm_fail(LPM_ERR_USAGE, "cuda: image %d x %d is not a multiple of 16", R, Q);
    const int training = din != NULL;
    const size_t n = (size_t)R * Q * NC;
    const int64_t nwin = (int64_t)(R / NWIN) * (Q / NWIN);
    float *dw = NULL, *dg = NULL, *dIn = NULL, *dOut = NULL, *dDin = NULL, *scr = NULL;
    lpm_params p, g;
    TRY(dparams(A, w, &dw, &p, training ? &dg : NULL, &g));
    TRY(dput(A, &dIn, in, n));
    const branch_geom geo = lpm_cuda_geom(1, R, Q, 0);
    if (!training) {
        TRY(dalloc(A, &dOut, n));
        TRY(cu_swin_forward(dOut, dIn, &p.mamba[k][l], &geo, shift));
        return dget(out, dOut, n);
    }
    TRY(dalloc(A, &scr, lpm_cuda_swin_floats(nwin)));
    swin_dev s;
    lpm_cuda_swin_carve(&s, scr, nwin);
    TRY(dput(A, &dOut, dout, n));
    TRY(dput(A, &dDin, din, n));
    TRY(cu_swin_backward(dDin, &g.mamba[k][l], dOut, dIn, &p.mamba[k][l], &geo, shift, &s));
    TRY(dget(din, dDin, n));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_swin_mamba_forward(float *out, const float *in, const float *w, int k,
                                       int l, int R, int Q, int shift) {
    RUN(swin_op(&A_, out, NULL, NULL, NULL, in, w, k, l, R, Q, shift));
}
lpm_status lpm_cuda_swin_mamba_backward(float *din, float *grad, const float *dout,
                                        const float *in, const float *w, int k, int l, int R,
                                        int Q, int shift) {
    if (!din) return lpm_fail(LPM_ERR_USAGE, "cuda: swin backward needs din");
    RUN(swin_op(&A_, NULL, din, grad, dout, in, w, k, l, R, Q, shift));
}

static lpm_status cfc_fwd(arena *A, float *out, float *base, float *detail, const float *f,
                          const float *w, int head, int64_t n) {
    if (head != 0 && head != 1) return lpm_fail(LPM_ERR_USAGE, "cuda: head %d out of range", head);
    float *dw = NULL, *dF = NULL, *dO = NULL, *dB = NULL, *dD = NULL;
    lpm_params p;
    TRY(dparams(A, w, &dw, &p, NULL, NULL));
    const lpm_cfc_params *hp = head ? &p.cfc_mask : &p.cfc;
    const size_t len = (size_t)n * hp->nout;
    TRY(dput(A, &dF, f, (size_t)n * NC));
    TRY(dalloc(A, &dO, len));
    if (base) TRY(dalloc(A, &dB, len));
    if (detail) TRY(dalloc(A, &dD, len));
    TRY(cu_cfc_forward(dO, dB, dD, dF, hp, n));
    TRY(dget(out, dO, len));
    TRY(dget(base, dB, len));
    return dget(detail, dD, len);
}
lpm_status lpm_cuda_cfc_forward(float *out, float *base, float *detail, const float *f,
                                const float *w, int head, int64_t n) {
    RUN(cfc_fwd(&A_, out, base, detail, f, w, head, n));
}

static lpm_status cfc_bwd(arena *A, float *df, float *grad, const float *dout,
                          const float *dbase, const float *ddetail, const float *f,
                          const float *w, int head, int64_t n) {
    if (head != 0 && head != 1) return lpm_fail(LPM_ERR_USAGE, "cuda: head %d out of range", head);
    float *dw = NULL, *dg = NULL, *dF = NULL, *ddF = NULL, *dO = NULL, *dB = NULL, *dD = NULL, *scr = NULL;
    lpm_params p, g;
    TRY(dparams(A, w, &dw, &p, &dg, &g));
    const lpm_cfc_params *hp = head ? &p.cfc_mask : &p.cfc;
    lpm_cfc_params *hg = head ? &g.cfc_mask : &g.cfc;
    const size_t len = (size_t)n * hp->nout;
    TRY(dput(A, &dF, f, (size_t)n * NC));
    TRY(dput(A, &ddF, df, (size_t)n * NC));
    TRY(dput(A, &dO, dout, len));
    TRY(dput(A, &dB, dbase, len));
    TRY(dput(A, &dD, ddetail, len));
    TRY(dalloc(A, &scr, (size_t)n * (6 * NC + 3 * hp->nout)));
    TRY(cu_cfc_backward(ddF, hg, dO, dB, dD, dF, hp, n, scr));
    TRY(dget(df, ddF, (size_t)n * NC));
    return dadd(grad, dg, LPM_NUM_PARAMS);
}
lpm_status lpm_cuda_cfc_backward(float *df, float *grad, const float *dout, const float *dbase,
                                 const float *ddetail, const float *f, const float *w,
                                 int head, int64_t n) {
    RUN(cfc_bwd(&A_, df, grad, dout, dbase, ddetail, f, w, head, n));
}
