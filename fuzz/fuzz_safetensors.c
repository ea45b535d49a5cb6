/* libFuzzer harness for the safetensors reader (src/io/safetensors.c) and the weights loader
 * (src/io/weights.c). Each input is a whole .safetensors file: lpm_st_read parses it, then
 * every tensor is looked up by name and each of its floats read (ASan checks that the buffer
 * holds what the shape claims), the usual metadata keys are queried, and lpm_weights_load
 * maps it onto LPM-Net's 92 tensors. */
#include "fuzz_util.h"

#include "io/io.h"

static void walk_tensors(const lpm_st_file *f) {
    volatile double sink = 0.0;
    for (int i = 0; i < lpm_st_count(f); i++) {
        const char *name = lpm_st_name(f, i);
        const char *dtype = lpm_st_dtype(f, i);
        if (!name || !dtype) abort();  /* an index below count must name a tensor */
        int ndim = -1;
        int64_t shape[LPM_ST_MAXDIM];
        const float *p = lpm_st_find(f, name, &ndim, shape);
        if (!p) continue;  /* a repeated name may shadow, but is found again below */
        if (ndim < 0 || ndim > LPM_ST_MAXDIM) abort();
        size_t numel = 1;
        int ok = 1;
        for (int k = 0; k < ndim; k++) {
            if (shape[k] < 0) abort();
            numel = lpm_mul_size(numel, (size_t)shape[k], &ok);
        }
        if (!ok) abort();  /* the reader accepted a shape whose size overflows */
        sink += fuzz_touch(p, numel);
    }
    (void)sink;
    static const char *keys[] = {"format", "step", "adam_t", "seed", "size", "epochs", "cases", ""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) (void)lpm_st_meta(f, keys[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1024];
    if (!path[0]) fuzz_path(path, sizeof path, "w.safetensors");
    fuzz_write(path, data, size);
    lpm_st_file *f = NULL;
    if (lpm_st_read(path, &f) == LPM_OK) {
        walk_tensors(f);
        lpm_st_close(f);
    }
    lpm_weights w;
    if (lpm_weights_alloc(&w) != LPM_OK) abort();
    (void)lpm_weights_load(&w, path);
    lpm_weights_free(&w);
    return 0;
}
