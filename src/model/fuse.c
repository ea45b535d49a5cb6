/* lpm_fuse: normalise both inputs, zero-pad to multiples of 16, run LPM-Net, crop back;
 * with more than one pass, the mean of passes at shifted window grids.
 *
 * Memory: the two normalised inputs, the outputs, and per pass the padded inputs and
 * outputs, the network's X and M and per-thread scratch. */
#include "model.h"

#include <math.h>
#include <string.h>

const lpm_fuse_options LPM_FUSE_EXACT = {.passes = 1, .zero_background = 0};
const lpm_fuse_options LPM_FUSE_DEFAULT = {.passes = 4, .zero_background = 1};

/* dst (Dp,Hp,Wp) <- zeros, with src (D,H,W) placed at voxel (s,s,s). */
static void place(float *dst, const float *src, int64_t D, int64_t H, int64_t W, int64_t s,
                  int64_t Dp, int64_t Hp, int64_t Wp) {
    memset(dst, 0, (size_t)(Dp * Hp * Wp) * sizeof(float));
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            memcpy(dst + ((d + s) * Hp + h + s) * Wp + s, src + (d * H + h) * W,
                   (size_t)W * sizeof(float));
}

/* out (D,H,W) <- (first ? 0 : out) + scale * the (D,H,W) block of padded at (s,s,s). */
static void gather(float *out, const float *padded, int64_t D, int64_t H, int64_t W, int64_t s,
                   int64_t Hp, int64_t Wp, int first, float scale) {
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++) {
            const float *src = padded + ((d + s) * Hp + h + s) * Wp + s;
            float *dst = out + (d * H + h) * W;
            if (first && scale == 1.0f) {
                memcpy(dst, src, (size_t)W * sizeof(float));
            } else {
                for (int64_t x = 0; x < W; x++) dst[x] = (first ? 0.0f : dst[x]) + scale * src[x];
            }
        }
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

/* Progress over all passes: pass k's (done, total) becomes (k total + done, passes total). */
typedef struct {
    lpm_progress_fn fn;
    void *ctx;
    int pass, passes;
} pass_progress;

static void report_pass_progress(void *ctx, int64_t done, int64_t total) {
    const pass_progress *p = ctx;
    p->fn(p->ctx, p->pass * total + done, p->passes * total);
}

/* One pass with the inputs placed at (s,s,s); outs[j] gets scale * its output (or adds it). */
static lpm_status run_pass(const lpm_params *p, const float *na, const float *nb, int64_t D,
                           int64_t H, int64_t W, int64_t s, lpm_volume *outs[3], int first,
                           float scale, lpm_progress_fn progress, void *progress_ctx) {
    const int64_t Dp = lpm_pad16(D + s), Hp = lpm_pad16(H + s), Wp = lpm_pad16(W + s);
    int ok = 1;
    const size_t np = lpm_mul_size(lpm_mul_size((size_t)Dp, (size_t)Hp, &ok), (size_t)Wp, &ok);
    if (!ok) return lpm_fail(LPM_ERR_INPUT, "fuse.c: volume size overflows");
    lpm_status st = LPM_OK;
    float *pa = lpm_malloc(np, sizeof(float)), *pb = lpm_malloc(np, sizeof(float));
    float *po[3] = {NULL, NULL, NULL};
    lpm_net *net = NULL;
    if (!pa || !pb) {
        st = LPM_ERR_INTERNAL;
        goto done;
    }
    for (int j = 0; j < 3; j++)
        if (outs[j] && !(po[j] = lpm_malloc(np, sizeof(float)))) {
            st = LPM_ERR_INTERNAL;
            goto done;
        }
    place(pa, na, D, H, W, s, Dp, Hp, Wp);
    place(pb, nb, D, H, W, s, Dp, Hp, Wp);
    if (!(net = lpm_net_create(Dp, Hp, Wp, LPM_NET_INFER))) {
        st = LPM_ERR_INTERNAL;
        goto done;
    }
    st = lpm_net_forward(net, p, pa, pb, 0, po[0], po[1], po[2], progress, progress_ctx);
    for (int j = 0; j < 3 && st == LPM_OK; j++)
        if (outs[j]) gather(outs[j]->data, po[j], D, H, W, s, Hp, Wp, first, scale);
done:
    lpm_net_free(net);
    free(pa);
    free(pb);
    for (int j = 0; j < 3; j++) free(po[j]);
    return st;
}

lpm_status lpm_fuse(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                    lpm_volume *fused, lpm_volume *base, lpm_volume *detail,
                    const lpm_fuse_options *options, int threads, lpm_progress_fn progress,
                    void *progress_ctx) {
    lpm_volume *outs[3] = {fused, base, detail};
    for (int j = 0; j < 3; j++)
        if (outs[j]) memset(outs[j], 0, sizeof *outs[j]);
    if (!fused) return lpm_fail(LPM_ERR_USAGE, "fuse.c: no output volume");
    const lpm_fuse_options *o = options ? options : &LPM_FUSE_EXACT;
    if (o->passes < 1 || o->passes > 16 || 16 % o->passes)
        return lpm_fail(LPM_ERR_USAGE, "fuse.c: %d passes (must be 1, 2, 4, 8 or 16)", o->passes);
    lpm_status st = lpm_check_same_grid(a, b, "input A", "input B");
    if (st != LPM_OK) return st;

    const int64_t D = a->nz, H = a->ny, W = a->nx, n = lpm_volume_numel(a);
    const int prev_threads = lpm_get_threads();
    lpm_set_threads(threads);
    lpm_params p;
    lpm_params_bind(&p, w->data);
    lpm_volume na = *a, nb = *b;
    na.header = nb.header = NULL;
    na.data = lpm_malloc((size_t)n, sizeof(float));
    nb.data = lpm_malloc((size_t)n, sizeof(float));
    if (!na.data || !nb.data) {
        st = LPM_ERR_INTERNAL;
        goto done;
    }
    memcpy(na.data, a->data, (size_t)n * sizeof(float));
    memcpy(nb.data, b->data, (size_t)n * sizeof(float));
    if ((st = lpm_normalize_minmax(&na, "input A")) || (st = lpm_normalize_minmax(&nb, "input B")))
        goto done;
    for (int j = 0; j < 3; j++)
        if (outs[j] && (st = lpm_volume_alloc_like(outs[j], a))) goto done;

    pass_progress pp = {progress, progress_ctx, 0, o->passes};
    for (int k = 0; k < o->passes && st == LPM_OK; k++) {
        pp.pass = k;
        st = run_pass(&p, na.data, nb.data, D, H, W, (int64_t)k * 16 / o->passes, outs, k == 0,
                      1.0f / (float)o->passes, progress ? report_pass_progress : NULL, &pp);
    }
    if (st == LPM_OK && o->zero_background)
        for (int64_t i = 0; i < n; i++)
            if (na.data[i] == 0.0f && nb.data[i] == 0.0f) fused->data[i] = 0.0f;
    static const char *const names[3] = {"fused", "base", "detail"};
    for (int j = 0; j < 3 && st == LPM_OK; j++)
        if (outs[j]) st = check_finite_output(outs[j], names[j]);

done:
    if (st != LPM_OK)
        for (int j = 0; j < 3; j++)
            if (outs[j]) lpm_volume_free(outs[j]);
    free(na.data);
    free(nb.data);
    lpm_set_threads(prev_threads);
    return st;
}
