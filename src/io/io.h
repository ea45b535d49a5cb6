/* File formats: safetensors (weights and test fixtures), atomic output files, NIfTI output
 * variants (described, RGB), PNG. */
#ifndef LPM_IO_H
#define LPM_IO_H

#include "../core/core.h"
#include <stdio.h>

/* ---- atomic output: write to "<path>.tmp.<pid>.XXXXXX" in the same folder, then rename.
 * lpm_atomic_open fails with a message naming path when the folder is not writable. It
 * first removes "<path>.tmp.<pid>.*" files of processes that no longer exist (a writer
 * killed with SIGKILL), and registers its temporary file for lpm_cleanup_on_signals. */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4096];
} lpm_atomic_file;
lpm_status lpm_atomic_open(lpm_atomic_file *f, const char *path);
/* Flush, fsync, close and rename; on any failure the temporary file is removed. */
lpm_status lpm_atomic_commit(lpm_atomic_file *f);
/* Close and remove the temporary file (after a failed write). */
void lpm_atomic_abort(lpm_atomic_file *f);
/* A temporary file name next to path (for libraries that open files themselves, such
 * as nifti_clib): writes "<dir>/.<base>.tmp.<pid>.<counter><ext>" into tmp, registers it
 * (lpm_temp_forget it once renamed or removed), and removes the same output's stale
 * temporary files of dead processes, as lpm_atomic_open does. */
lpm_status lpm_temp_name_like(char *tmp, size_t n, const char *path, const char *ext);

/* The registry of live temporary files: a fatal signal removes every registered path.
 * Register a name before creating the file and forget it after renaming or removing it.
 * Fixed size (32 names); safe to call from any thread. */
void lpm_temp_register(const char *tmp);
void lpm_temp_forget(const char *tmp);
/* Install (once, from main) handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT that remove
 * the registered temporary files and then die of the same signal (so the exit status is
 * the signal's). Signals ignored at startup stay ignored. A handler installed later (the
 * trainer's graceful stop) takes over until it restores this one. */
void lpm_cleanup_on_signals(void);

/* The whole of a regular file into a new buffer (free with free()). */
lpm_status lpm_read_file(const char *path, unsigned char **buf, size_t *size);

/* ---- safetensors: any tensors, stored F32/F16/BF16, converted to float32 on read. */
#define LPM_ST_MAXDIM 8
typedef struct lpm_st_file lpm_st_file;
/* Parses the whole file (regular files only; header checked: JSON syntax, dtypes, unique
 * names, offsets inside the file and disjoint, memory within lpm_max_memory()). Values
 * are not judged: NaN and Inf are returned as stored. */
lpm_status lpm_st_read(const char *path, lpm_st_file **out);
void lpm_st_close(lpm_st_file *f);
int lpm_st_count(const lpm_st_file *f);
const char *lpm_st_name(const lpm_st_file *f, int i);
/* The stored dtype ("F32", "F16", "BF16") of tensor i. */
const char *lpm_st_dtype(const lpm_st_file *f, int i);
/* Tensor by name: float32 data (owned by f), its ndim and shape; NULL when absent. */
const float *lpm_st_find(const lpm_st_file *f, const char *name, int *ndim,
                         int64_t shape[LPM_ST_MAXDIM]);
/* Value of a "__metadata__" key, or NULL. */
const char *lpm_st_meta(const lpm_st_file *f, const char *key);
/* Write n F32 tensors atomically; metadata (string key/value pairs, may be NULL/0)
 * goes into "__metadata__". */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *data;
} lpm_st_tensor;
lpm_status lpm_st_write(const char *path, const lpm_st_tensor *tensors, int n,
                        const char *const *meta_kv, int n_meta);

/* ---- NIfTI output beyond lpm_volume_write (nifti.c); both share its geometry, file
 * formats (.nii, .nii.gz, .hdr/.img) and temporary-file-and-rename path.
 * descrip: the header's 80-byte description (at most 79 characters kept; longer is cut);
 * NULL keeps lpm_volume_write's choice (ref's header's description, else "lpmnet VERSION"). */
lpm_status lpm_volume_write_described(const char *path, const lpm_volume *v, const lpm_volume *ref,
                                      const char *descrip);
/* rgb: ref's nx*ny*nz voxels of 3 bytes (R, G, B) in volume order (x fastest), written as
 * NIFTI_TYPE_RGB24 (bitpix 24, scl_slope 0 = unscaled, cal_min 0, cal_max 255) on ref's grid
 * and with ref's geometry (ref is required: it gives the dimensions). lpm_volume_read
 * refuses such a file: it reads scalar data only. */
lpm_status lpm_volume_write_rgb(const char *path, const uint8_t *rgb, const lpm_volume *ref,
                                const char *descrip);

/* ---- gzip: src compressed into dst as one gzip member per thread (gzip.c). */
lpm_status lpm_gzip_file(const char *src, const char *dst);

/* ---- PNG (libpng): 8-bit RGB image, rows top to bottom, written atomically. */
lpm_status lpm_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height);

#endif
