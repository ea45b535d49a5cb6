/* File formats, the internal parts (the public ones are in lpmnet.h: reading safetensors,
 * atomic output files, the NIfTI writers): temporary files, writing safetensors, gzip, PNG. */
#ifndef LPM_IO_H
#define LPM_IO_H

#include "../core/core.h"
#include <stdio.h>

/* ---- atomic output (lpm_atomic_open in lpmnet.h) where another library opens the file.
 * A temporary file name next to path (for nifti_clib): writes "<dir>/.<base>.tmp.<pid>.<counter><ext>" into tmp, registers it
 * (lpm_temp_forget it once renamed or removed), and removes the same output's stale
 * temporary files of dead processes, as lpm_atomic_open does. */
lpm_status lpm_temp_name_like(char *tmp, size_t n, const char *path, const char *ext);

/* The registry of live temporary files: a fatal signal removes every registered path.
 * Register a name before creating the file and forget it after renaming or removing it.
 * Fixed size (32 names); safe to call from any thread. */
void lpm_temp_register(const char *tmp);
void lpm_temp_forget(const char *tmp);

/* ---- safetensors (reading: lpm_st_read in lpmnet.h).
 * Write n F32 tensors atomically; metadata (string key/value pairs, may be NULL/0)
 * goes into "__metadata__". */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *data;
} lpm_st_tensor;
lpm_status lpm_st_write(const char *path, const lpm_st_tensor *tensors, int n,
                        const char *const *meta_kv, int n_meta);

/* ---- gzip: src compressed into dst as one gzip member per thread (gzip.c). */
lpm_status lpm_gzip_file(const char *src, const char *dst);

/* ---- PNG (libpng): 8-bit RGB image, rows top to bottom, written atomically. */
lpm_status lpm_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height);

#endif
