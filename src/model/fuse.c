/* lpm_fuse: normalise both inputs, zero-pad to multiples of 16, run LPM-Net, crop back.
 *
 * Memory: at most the two padded inputs, the network's X and M, the padded outputs and
 * per-thread scratch; the cropped outputs are allocated after the network is released. */
#include "model.h"

#include <math.h>
#include <string.h>

/* Copy src into buf (room for the padded Dp x Hp x Wp volume), normalise it there, then
 * spread it in place to the padded layout: voxel (d,h,w) keeps its index, zeros after
 * the end of each axis. Rows move from the last to the first, so a row's destination
 * never overwrites a row not yet moved (destination offsets are >= source offsets). */
static lpm_status pad_input(float *buf, const lpm_volume *src, const char *name, int64_t Dp,
                            int64_t Hp, int64_t Wp) {
    const int64_t D = src->nz, H = src->ny, W = src->nx;
    memcpy(buf, src->data, (size_t)(D * H * W) * sizeof(float));
    lpm_volume view = *src;
    view.data = buf;
    view.header = NULL;
    lpm_status st = lpm_normalize_minmax(&view, name);
    if (st != LPM_OK) return st;
    memset(buf + D * Hp * Wp, 0, (size_t)((Dp - D) * Hp * Wp) * sizeof(float));
    for (int64_t d = D - 1; d >= 0; d--) {
        memset(buf + (d * Hp + H) * Wp, 0, (size_t)((Hp - H) * Wp) * sizeof(float));
        for (int64_t h = H - 1; h >= 0; h--) {
            float *dst = buf + (d * Hp + h) * Wp;
            memmove(dst, buf + (d * H + h) * W, (size_t)W * sizeof(float));
            memset(dst + W, 0, (size_t)(Wp - W) * sizeof(float));
        }
    }
    return LPM_OK;
}

static lpm_status crop_output(lpm_volume *v, const float *padded, const lpm_volume *like,
                              int64_t Hp, int64_t Wp) {
    lpm_status st = lpm_volume_alloc_like(v, like);
    if (st != LPM_OK) return st;
    for (int64_t d = 0; d < v->nz; d++)
        for (int64_t h = 0; h < v->ny; h++)
            memcpy(v->data + (d * v->ny + h) * v->nx, padded + (d * Hp + h) * Wp,
                   (size_t)v->nx * sizeof(float));
    return LPM_OK;
}

/* The network's output must be finite: weights that load (finite, within the load bound)
 * can still overflow for some inputs, and a NaN volume written with exit 0 looks like a
 * result. Names the first bad voxel as (x,y,z), the order NIfTI viewers show. */
static lpm_status check_finite_output(const lpm_volume *v, const char *what) {
    const int64_t n = lpm_volume_numel(v);
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(v->data[i])) continue;
        return lpm_fail(LPM_ERR_INPUT,
                        "the model gives non-finite values for these inputs (%s volume: %s at "
                        "voxel x=%lld y=%lld z=%lld); its weights are unusable", what,
                        isnan(v->data[i]) ? "NaN" : v->data[i] > 0 ? "+inf" : "-inf",
                        (long long)(i % v->nx), (long long)(i / v->nx % v->ny),
                        (long long)(i / (v->nx * v->ny)));
    }
    return LPM_OK;
}

lpm_status lpm_fuse(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                    lpm_volume *fused, lpm_volume *base, lpm_volume *detail, int threads,
                    lpm_progress_fn progress, void *progress_ctx) {
    lpm_volume *outs[3] = {fused, base, detail};
    for (int j = 0; j < 3; j++)
        if (outs[j]) memset(outs[j], 0, sizeof *outs[j]);
    if (!fused) return lpm_fail(LPM_ERR_USAGE, "fuse.c: no output volume");
    lpm_status st = lpm_check_same_grid(a, b, "input A", "input B");
    if (st != LPM_OK) return st;

    const int64_t Dp = lpm_pad16(a->nz), Hp = lpm_pad16(a->ny), Wp = lpm_pad16(a->nx);
    int ok = 1;
    const size_t np = lpm_mul_size(lpm_mul_size((size_t)Dp, (size_t)Hp, &ok), (size_t)Wp, &ok);
    if (!ok) return lpm_fail(LPM_ERR_INPUT, "fuse.c: volume size overflows");

    const int prev_threads = lpm_get_threads();
    lpm_set_threads(threads);
    lpm_params p;
    lpm_params_bind(&p, w->data);
    float *pa = NULL, *pb = NULL, *po[3] = {NULL, NULL, NULL};
    lpm_net *net = NULL;
    pa = lpm_malloc(np, sizeof(float));
    pb = lpm_malloc(np, sizeof(float));
    if (!pa || !pb) {
        st = LPM_ERR_INTERNAL;
        goto done;
    }
    if ((st = pad_input(pa, a, "input A", Dp, Hp, Wp)) != LPM_OK) goto done;
    if ((st = pad_input(pb, b, "input B", Dp, Hp, Wp)) != LPM_OK) goto done;
    for (int j = 0; j < 3; j++) {
        if (!outs[j]) continue;
        if (!(po[j] = lpm_malloc(np, sizeof(float)))) {
            st = LPM_ERR_INTERNAL;
            goto done;
        }
    }
    net = lpm_net_create(Dp, Hp, Wp, LPM_NET_INFER);
    if (!net) {
        st = LPM_ERR_INTERNAL;
        goto done;
    }
    st = lpm_net_forward(net, &p, pa, pb, 0, po[0], po[1], po[2], progress, progress_ctx);
    lpm_net_free(net);
    free(pa);
    free(pb);
    pa = pb = NULL;
    if (st != LPM_OK) goto done;
    static const char *const names[3] = {"fused", "base", "detail"};
    for (int j = 0; j < 3 && st == LPM_OK; j++)
        if (outs[j] && (st = crop_output(outs[j], po[j], a, Hp, Wp)) == LPM_OK)
            st = check_finite_output(outs[j], names[j]);

done:
    if (st != LPM_OK)
        for (int j = 0; j < 3; j++)
            if (outs[j]) lpm_volume_free(outs[j]);
    free(pa);
    free(pb);
    for (int j = 0; j < 3; j++) free(po[j]);
    lpm_set_threads(prev_threads);
    return st;
}
