/* The public API's fusion as the tool does it (include/lpmnet.h): the inputs scaled to [0, 1]
 * by src/prep, then LPM-Net (src/model on the CPU, src/cuda on a GPU) or a classical method
 * (src/classical). */
#include "classical/classical.h"
#include "core/core.h"
#include "cuda/cuda.h"
#include "io/io.h"
#include "prep/prep.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The default percentile clip of `lpmnet fuse` (docs/preprocessing.md): the lowest 0.5 % of
 * each input's voxels, so that a few outliers below the background leave it at 0. */
#define DEFAULT_CLIP_LO 0.5
#define DEFAULT_CLIP_HI 100.0

static int is_lpmnet(const lpm_fuse_settings *s) { return !s->method || !strcmp(s->method, "lpmnet"); }

/* The settings as the tool's options are checked; p receives the preprocessing. */
static lpm_status check_settings(const lpm_fuse_settings *s, lpm_prep *p) {
    *p = (lpm_prep){0};
    if (!is_lpmnet(s) && !lpm_classical_known(s->method))
        return lpm_fail(LPM_ERR_USAGE, "unknown method '%s' (valid: lpmnet, %s)", s->method,
                        lpm_classical_names());
    if (s->passes && (s->passes < 1 || s->passes > 16 || 16 % s->passes))
        return lpm_fail(LPM_ERR_USAGE, "passes must be 1, 2, 4, 8 or 16, got %d", s->passes);
    if (s->exact && s->passes > 1) return lpm_fail(LPM_ERR_USAGE, "exact runs one pass; leave passes at 0");
    if (s->device != 0 && s->device != 1)
        return lpm_fail(LPM_ERR_USAGE, "device must be 0 (the CPU) or 1 (an NVIDIA GPU), got %d", s->device);
    if (s->device == 1 && !is_lpmnet(s))
        return lpm_fail(LPM_ERR_USAGE, "the GPU runs LPM-Net only (the classical methods are CPU code)");
    if (s->device == 1 && s->passes > 1)
        return lpm_fail(LPM_ERR_USAGE, "the GPU runs one pass; leave passes at 0 or 1");
    const int clip = s->clip_lo != 0 || s->clip_hi != 0;
    if (s->exact && (clip || s->ct_window || s->mask || s->mask_path))
        return lpm_fail(LPM_ERR_USAGE, "exact normalises each input min-max as the authors do; leave "
                        "out the clip, the CT window and the mask");
    if (s->exact) return LPM_OK;
    lpm_status st = lpm_prep_from_settings(p, s->clip_lo, s->clip_hi, s->ct_window);
    if (st) return st;
    if (!p->clip && !p->ct_window) p->clip = 1, p->clip_lo = DEFAULT_CLIP_LO, p->clip_hi = DEFAULT_CLIP_HI;
    return LPM_OK;
}

static lpm_status copy_volume(lpm_volume *dst, const lpm_volume *src) {
    lpm_status st = lpm_volume_alloc_like(dst, src);
    if (!st) memcpy(dst->data, src->data, (size_t)lpm_volume_numel(src) * sizeof(float));
    return st;
}

/* A NaN or Inf voxel in a result is never handed out (a reader would take it for data). */
static lpm_status check_finite(const lpm_volume *v, int from_model) {
    int64_t n = lpm_volume_numel(v), bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(v->data[i]);
    if (!bad) return LPM_OK;
    /* the inputs were checked finite: a model's weights are then the likely cause */
    return lpm_fail(from_model ? LPM_ERR_INPUT : LPM_ERR_INTERNAL,
                    "the fused volume has %lld non-finite voxels (NaN/Inf)%s", (long long)bad,
                    from_model ? " (are the model's weights finite?)" : "");
}

lpm_status lpm_prepare_pair(const lpm_volume *a, const char *name_a, const lpm_volume *b,
                            const char *name_b, const lpm_fuse_settings *settings, lpm_volume *a01,
                            lpm_volume *b01) {
    const lpm_fuse_settings s = settings ? *settings : (lpm_fuse_settings){0};
    if (!a01 || !b01) return lpm_fail(LPM_ERR_USAGE, "lpm_prepare_pair: no output volumes");
    *a01 = *b01 = (lpm_volume){0};
    if (!a || !b || !a->data || !b->data) return lpm_fail(LPM_ERR_USAGE, "lpm_prepare_pair: an input has no data");
    if (!name_a) name_a = "A";
    if (!name_b) name_b = "B";
    lpm_prep p;
    lpm_status st = check_settings(&s, &p);
    if (st) return st;
    uint8_t *mask_read = NULL;
    const int prev_threads = lpm_get_threads();
    lpm_set_threads(s.threads);
    if ((st = copy_volume(a01, a))) goto done;
    if (s.resample) {
        if ((st = lpm_resample_to(b, a, b01))) {
            st = lpm_prefix_error(st, "%s onto %s", name_b, name_a);
            goto done;
        }
    } else if ((st = lpm_check_same_grid(a, b, name_a, name_b)) || (st = copy_volume(b01, b))) {
        goto done;
    }
    const uint8_t *mask = s.mask;
    if (!mask && s.mask_path && !s.exact) {
        if ((st = lpm_mask_read(s.mask_path, a, name_a, &mask_read))) goto done;
        mask = mask_read;
    }
    /* scaled here, where the names are known; a window need not reach both ends, so both are
     * stretched to [0, 1] (LPM-Net's own min-max then changes nothing) */
    if ((st = lpm_prep_inputs(&p, a01, name_a, b01, name_b, mask))) goto done;
done:
    if (st) lpm_volume_free(a01), lpm_volume_free(b01);
    free(mask_read);
    lpm_set_threads(prev_threads);
    return st;
}

lpm_status lpm_fuse_prepared(const lpm_weights *w, const lpm_volume *a01, const lpm_volume *b01,
                             const lpm_fuse_settings *settings, lpm_volume *fused, lpm_volume *base,
                             lpm_volume *detail) {
    const lpm_fuse_settings s = settings ? *settings : (lpm_fuse_settings){0};
    if (!fused) return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_prepared: no output volume");
    *fused = (lpm_volume){0};
    if (base) *base = (lpm_volume){0};
    if (detail) *detail = (lpm_volume){0};
    if (!a01 || !b01 || !a01->data || !b01->data)
        return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_prepared: an input has no data");
    lpm_prep p;
    lpm_status st = check_settings(&s, &p);
    if (st) return st;
    if (is_lpmnet(&s) && (!w || !w->data))
        return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_prepared: LPM-Net needs weights (lpm_weights_load_model)");
    if (!is_lpmnet(&s) && (base || detail))
        return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_prepared: base and detail come from LPM-Net only");
    const int prev_threads = lpm_get_threads();
    lpm_set_threads(s.threads);
    if (is_lpmnet(&s) && s.device == 1) {
        /* the authors' single pass, without the background rule (src/cuda) */
        st = lpm_fuse_cuda(w, a01, b01, fused, base, detail);
    } else if (is_lpmnet(&s)) {
        lpm_fuse_options opt = s.exact ? LPM_FUSE_EXACT : LPM_FUSE_DEFAULT;
        if (s.passes) opt.passes = s.passes;
        st = lpm_fuse(w, a01, b01, fused, base, detail, &opt, s.threads, s.progress, s.progress_ctx);
    } else {
        st = lpm_volume_alloc_like(fused, a01);
        if (!st) st = lpm_classical_fuse(s.method, a01->data, b01->data, fused->data, a01->nz, a01->ny, a01->nx);
    }
    if (!st) st = check_finite(fused, is_lpmnet(&s));
    if (!st && base) st = check_finite(base, 1);
    if (!st && detail) st = check_finite(detail, 1);
    if (st) {
        lpm_volume_free(fused);
        if (base) lpm_volume_free(base);
        if (detail) lpm_volume_free(detail);
    }
    lpm_set_threads(prev_threads);
    return st;
}

lpm_status lpm_fuse_pair(const lpm_weights *w, const lpm_volume *a, const char *name_a,
                         const lpm_volume *b, const char *name_b, lpm_volume *fused,
                         const lpm_fuse_settings *settings) {
    if (!fused) return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_pair: no output volume");
    *fused = (lpm_volume){0};
    const lpm_fuse_settings s = settings ? *settings : (lpm_fuse_settings){0};
    if (is_lpmnet(&s) && (!w || !w->data))  /* before the work of scaling */
        return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_pair: LPM-Net needs weights (lpm_weights_load_model)");
    lpm_volume a01 = {0}, b01 = {0};
    lpm_status st = lpm_prepare_pair(a, name_a, b, name_b, &s, &a01, &b01);
    if (!st) st = lpm_fuse_prepared(w, &a01, &b01, &s, fused, NULL, NULL);
    lpm_volume_free(&a01);
    lpm_volume_free(&b01);
    return st;
}

lpm_status lpm_fuse_files(const char *path_a, const char *path_b, const char *out_path,
                          const char *model, const lpm_fuse_settings *settings) {
    const lpm_fuse_settings s = settings ? *settings : (lpm_fuse_settings){0};
    lpm_volume a = {0}, b = {0}, fused = {0};
    lpm_weights w = {0};
    char model_path[PATH_MAX + 64] = "";
    lpm_status st = LPM_OK;
    if (!path_a || !path_b || !out_path) return lpm_fail(LPM_ERR_USAGE, "lpm_fuse_files: a file name is missing");
    if (is_lpmnet(&s) && ((st = lpm_model_resolve(model, model_path, sizeof model_path)) ||
                          (st = lpm_weights_load_model(&w, model_path))))
        goto done;
    if ((st = lpm_volume_read(path_a, &a)) || (st = lpm_volume_read(path_b, &b))) goto done;
    lpm_volume a01 = {0}, b01 = {0};
    if (!(st = lpm_prepare_pair(&a, path_a, &b, path_b, &s, &a01, &b01))) {
        st = lpm_fuse_prepared(&w, &a01, &b01, &s, &fused, NULL, NULL);
        /* the inputs passed their checks, so a data error now is the weights' (a non-finite
         * output): name them */
        if (st == LPM_ERR_INPUT && model_path[0]) st = lpm_prefix_error(st, "%s", model_path);
    }
    lpm_volume_free(&a01);
    lpm_volume_free(&b01);
    if (st) goto done;
    /* the header's description says who made the file and how, as the tool writes it */
    char descrip[80];
    if (is_lpmnet(&s)) {
        const char *slash = strrchr(model_path, '/');
        snprintf(descrip, sizeof descrip, "lpmnet %s LPM-Net %s%s", LPM_VERSION,
                 lpm_model_known(model ? model : "mri") ? (model ? model : "mri") : (slash ? slash + 1 : model_path),
                 s.exact ? " exact" : "");
    } else {
        snprintf(descrip, sizeof descrip, "lpmnet %s %s", LPM_VERSION, s.method);
    }
    st = lpm_volume_write_described(out_path, &fused, &a, descrip);
done:
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_volume_free(&fused);
    lpm_weights_free(&w);
    return st;
}
