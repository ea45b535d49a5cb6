/* LPM-Net weights: one flat float array in the tensor table's order, and safetensors
 * load/save under the authors' state_dict names. The fresh initialisation is model
 * knowledge and lives in src/model/params.c. */
#include "io.h"

#include <math.h>
#include <string.h>

lpm_status lpm_weights_alloc(lpm_weights *w) {
    const lpm_tensor_info *t = lpm_tensor_table();
    const lpm_tensor_info *last = &t[LPM_NUM_TENSORS - 1];
    if (last->offset + last->numel != LPM_NUM_PARAMS)
        return lpm_fail(LPM_ERR_INTERNAL, "tensor table holds %zu parameters, expected %d",
                        last->offset + last->numel, LPM_NUM_PARAMS);
    w->data = lpm_calloc(LPM_NUM_PARAMS, sizeof(float));
    return w->data ? LPM_OK : LPM_ERR_INTERNAL;
}

void lpm_weights_free(lpm_weights *w) {
    free(w->data);
    w->data = NULL;
}

float *lpm_weights_tensor(const lpm_weights *w, const char *name) {
    int i = lpm_tensor_index(name);
    return i < 0 || !w->data ? NULL : w->data + lpm_tensor_table()[i].offset;
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int k = 0; k < ndim && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", k ? "," : "", (long long)shape[k]);
    if (len < n) snprintf(buf + len, n - len, ")");
}


/* "i" of tensor t as its multi-index "(a,b,c)". */
static void format_index(char *buf, size_t n, const lpm_tensor_info *t, size_t i) {
    int64_t idx[5] = {0};
    for (int k = t->ndim - 1; k >= 0; k--) {
        idx[k] = (int64_t)(i % (size_t)t->shape[k]);
        i /= (size_t)t->shape[k];
    }
    format_shape(buf, n, t->ndim, idx);
}

/* First value of tensor t (data p) that is not finite, or (when bound > 0) whose magnitude
 * exceeds bound; fails naming the file, the tensor and the index. what says what is done. */
static lpm_status check_values(const char *path, const lpm_tensor_info *t, const float *p,
                               double bound, const char *what) {
    for (size_t i = 0; i < t->numel; i++) {
        int finite = isfinite(p[i]);
        if (finite && !(bound > 0 && fabs((double)p[i]) > bound)) continue;
        char at[128];
        format_index(at, sizeof at, t, i);
        if (!finite)
            return lpm_fail(LPM_ERR_INPUT,
                            "%s: %stensor '%s' holds a non-finite value (%s) at index %zu %s; "
                            "these weights are not usable (a diverged training run?)",
                            path, what, t->name, isnan(p[i]) ? "NaN" : p[i] > 0 ? "+inf" : "-inf",
                            i, at);
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: %stensor '%s' holds %g at index %zu %s, beyond the %g any usable "
                        "LPM-Net weight stays within (the bundled model's largest is about 7); "
                        "the file is corrupt or its weights are wrongly scaled",
                        path, what, t->name, (double)p[i], i, at, bound);
    }
    return LPM_OK;
}

lpm_status lpm_weights_load(lpm_weights *w, const char *path) {
    if (!w->data) return lpm_fail(LPM_ERR_INTERNAL, "weights are not allocated");
    lpm_st_file *f;
    lpm_status s = lpm_st_read(path, &f);
    if (s) return s;
    const lpm_tensor_info *tab = lpm_tensor_table();
    /* Check everything before copying, so a bad file leaves w untouched. */
    for (int i = 0; i < LPM_NUM_TENSORS && !s; i++) {
        int ndim;
        int64_t shape[LPM_ST_MAXDIM];
        if (!lpm_st_find(f, tab[i].name, &ndim, shape)) {
            s = lpm_fail(LPM_ERR_INPUT, "%s: missing tensor '%s'", path, tab[i].name);
            break;
        }
        int same = ndim == tab[i].ndim;
        for (int k = 0; same && k < ndim; k++) same = shape[k] == tab[i].shape[k];
        if (!same) {
            char got[128], want[128];
            format_shape(got, sizeof got, ndim, shape);
            format_shape(want, sizeof want, tab[i].ndim, tab[i].shape);
            s = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s' has shape %s but LPM-Net needs %s", path,
                         tab[i].name, got, want);
        }
    }
    for (int i = 0; i < lpm_st_count(f) && !s; i++)
        if (lpm_tensor_index(lpm_st_name(f, i)) < 0)
            s = lpm_fail(LPM_ERR_INPUT, "%s: unknown tensor '%s' (not part of LPM-Net)", path,
                         lpm_st_name(f, i));
    for (int i = 0; i < LPM_NUM_TENSORS && !s; i++)
        s = check_values(path, &tab[i], lpm_st_find(f, tab[i].name, NULL, NULL),
                         LPM_WEIGHT_MAX_ABS, "");
    for (int i = 0; i < LPM_NUM_TENSORS && !s; i++) {
        const float *src = lpm_st_find(f, tab[i].name, NULL, NULL);
        memcpy(w->data + tab[i].offset, src, tab[i].numel * sizeof(float));
    }
    lpm_st_close(f);
    return s;
}

lpm_status lpm_weights_save(const lpm_weights *w, const char *path) {
    if (!w->data) return lpm_fail(LPM_ERR_INTERNAL, "weights are not allocated");
    const lpm_tensor_info *tab = lpm_tensor_table();
    /* Weights that could not be loaded back are not written (a diverged run's NaN). */
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        lpm_status s = check_values(path, &tab[i], w->data + tab[i].offset, 0, "not written: ");
        if (s) return s;
    }
    lpm_st_tensor t[LPM_NUM_TENSORS];
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = tab[i].name;
        t[i].ndim = tab[i].ndim;
        for (int k = 0; k < tab[i].ndim; k++) t[i].shape[k] = tab[i].shape[k];
        t[i].data = w->data + tab[i].offset;
    }
    const char *meta[4] = {"format", "lpmnet", "version", LPM_VERSION};
    return lpm_st_write(path, t, LPM_NUM_TENSORS, meta, 2);
}
