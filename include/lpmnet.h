/* lpmnet: LPM-Net 3D medical image fusion in C.
 *
 * Conventions
 *   - Every function that can fail returns an lpm_status; on failure the message
 *     (naming the file and the reason) is in lpm_last_error() for this thread.
 *   - A volume is (D, H, W) in C order = NIfTI data with x fastest:
 *     W = nx, H = ny, D = nz, voxel (d, h, w) at offset w + W*(h + H*d).
 *   - Voxel counts and offsets are int64_t / size_t, never int.
 *   - liblpmnet.so exports exactly the declarations marked LPM_API; docs/library.md
 *     shows how to build against it (pkg-config lpmnet, or CMake's find_package(lpmnet)).
 */
#ifndef LPMNET_H
#define LPMNET_H

#include <signal.h>  /* sig_atomic_t (lpm_train_options.stop) */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LPM_VERSION "0.1.0"

/* The public API: exported from liblpmnet.so (everything else in it is hidden). */
#if defined(__GNUC__)
#define LPM_API __attribute__((visibility("default")))
#else
#define LPM_API
#endif

/* Status codes double as the command-line tool's exit codes. */
typedef enum {
    LPM_OK = 0,
    LPM_ERR_USAGE = 1,    /* bad arguments */
    LPM_ERR_INPUT = 2,    /* input/data error: unreadable file, wrong grid, constant volume, ... */
    LPM_ERR_INTERNAL = 3  /* out of memory, bug, I/O failure on output */
} lpm_status;

/* Message of the last failure on this thread ("" if none). */
LPM_API const char *lpm_last_error(void);

/* The library's version ("0.1.0"): LPM_VERSION of the header it was built with. */
LPM_API const char *lpm_version(void);
/* Threads of the library's OpenMP loops on this thread: n <= 0 means all cores. Returns the
 * number now used. (Functions with a threads argument set it for their own run only.) */
LPM_API int lpm_set_threads(int n);
/* The number of threads lpm_set_threads last chose on this thread. */
LPM_API int lpm_get_threads(void);

/* Record a failure for lpm_last_error() and return its code, so that a program built on the
 * library (a callback, a tool) reports its own failures the way the library does:
 *   return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file", path); */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
LPM_API lpm_status lpm_fail(lpm_status code, const char *fmt, ...);
/* Put a prefix, formatted as by printf, and ": " in front of the recorded failure and return
 * code: what the caller knows and the failing call did not (the file it was reading for):
 *   return lpm_prefix_error(st, "%s", model_path); */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
LPM_API lpm_status lpm_prefix_error(lpm_status code, const char *fmt, ...);

/* Wall-clock seconds (monotonic), for timing work. */
LPM_API double lpm_seconds(void);

/* Memory budget for one volume or tensor set read from a file: what a header declares is
 * refused above it before anything is allocated. 0 (the default) means the machine's
 * available memory (MemAvailable), read when first needed. */
LPM_API void lpm_set_max_memory(uint64_t bytes);
LPM_API uint64_t lpm_max_memory(void);

/* A program's main may call this once: SIGINT, SIGTERM, SIGHUP and SIGQUIT then remove the
 * library's temporary output files (see lpm_atomic_open) before the process dies of the same
 * signal (so its exit status is the signal's). Signals ignored at startup stay ignored. */
LPM_API void lpm_cleanup_on_signals(void);

/* ----------------------------------------------------------- this machine */

/* The CPU and the network's kernel set (what `lpmnet info --cpu` prints). The network's
 * kernels exist once per instruction set: avx512, avx2 and portable on x86-64, neon on
 * aarch64, and ref (the scalar reference layers, slow, for checking) everywhere. The library
 * takes the best set this CPU runs when the network is first needed, or the one the
 * environment variable LPM_ISA names (ref, portable, avx2, avx512, neon), and keeps it for
 * the life of the process; every set gives the same results within rounding. */
typedef struct {
    char cpu[256];      /* the CPU's model name (/proc/cpuinfo's "model name"), or "unknown" */
    char offered[96];   /* the sets this process can run, best first, space-separated:
                         * "avx512 avx2 portable ref" */
    char isa[16];       /* the set chosen: its LPM_ISA name ("avx512") */
    char kernels[160];  /* the set chosen, one line for people */
    char reason[400];   /* why that set: "LPM_ISA=avx2", or the CPU's features that chose it */
} lpm_cpu_info;
/* Fills info. When LPM_ISA names an unknown set, or one this CPU or this build lacks, it
 * returns LPM_ERR_USAGE with a message naming LPM_ISA, the value and the sets offered (the
 * network's functions fail the same way in such a process); cpu and offered are filled even
 * then, isa, kernels and reason are "". */
LPM_API lpm_status lpm_cpu_info_get(lpm_cpu_info *info);

/* ----------------------------------------------------------- output files */

/* Every file the library writes goes to "<path>.tmp.<pid>.XXXXXX" in the same folder first and
 * is renamed when complete, so a reader never sees half a file. The same for a caller's own
 * files: lpm_atomic_open (a message naming path when the folder is not writable; it also
 * removes temporary files of path left by killed processes), write to fp, then
 * lpm_atomic_commit (flush, fsync, close, rename; the temporary file is removed on failure) or
 * lpm_atomic_abort (close and remove it). */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4096];
} lpm_atomic_file;
LPM_API lpm_status lpm_atomic_open(lpm_atomic_file *f, const char *path);
LPM_API lpm_status lpm_atomic_commit(lpm_atomic_file *f);
LPM_API void lpm_atomic_abort(lpm_atomic_file *f);

/* The whole of a regular file into a new buffer (free with free()). */
LPM_API lpm_status lpm_read_file(const char *path, unsigned char **buf, size_t *size);

/* ---------------------------------------------------------------- volumes */

/* A scalar 3-D volume, float32 in memory, with the geometry of the file it came from. */
typedef struct {
    int64_t nx, ny, nz;      /* W, H, D */
    float *data;             /* nz*ny*nx floats, x fastest */
    double affine[4][4];     /* voxel (i,j,k,1) -> world mm (sform if set, else qform, else pixdim) */
    float pixdim[3];         /* voxel size in mm along x, y, z */
    void *header;            /* opaque copy of the source header (nifti_image without data), or NULL */
} lpm_volume;

/* Read .nii, .nii.gz or .hdr/.img (NIfTI-1/2): any scalar datatype, either byte order,
 * scl_slope/scl_inter applied, 4-D with a singleton 4th dimension read as 3-D.
 * Errors (LPM_ERR_INPUT): missing/unreadable file, not NIfTI, truncated data,
 * not 3-D, non-scalar datatype (RGB, complex). */
LPM_API lpm_status lpm_volume_read(const char *path, lpm_volume *out);
/* The same checks and geometry without reading the voxels (out->data is NULL): cheap, for
 * validating a whole dataset before work starts. Free with lpm_volume_free. */
LPM_API lpm_status lpm_volume_read_header(const char *path, lpm_volume *out);
/* path's file name without its folder and volume extension (.nii, .hdr, .img, each with or
 * without .gz, any case; or a bare .gz) into out, cut to n - 1 characters: "sub-01_T1w" of
 * "data/sub-01_T1w.nii.gz", for naming outputs after their inputs. */
LPM_API void lpm_volume_stem(const char *path, char *out, size_t n);

/* Write v as float32 with the geometry (qform/sform, pixdim, units) of ref
 * (ref may be v itself or NULL for an identity geometry). The file is written to a
 * temporary name in the same folder and renamed, so a failure leaves no partial file. */
LPM_API lpm_status lpm_volume_write(const char *path, const lpm_volume *v, const lpm_volume *ref);
/* The same with the header's 80-byte description set to descrip (at most 79 characters kept;
 * NULL keeps lpm_volume_write's choice: ref's description, else "lpmnet VERSION"). */
LPM_API lpm_status lpm_volume_write_described(const char *path, const lpm_volume *v,
                                              const lpm_volume *ref, const char *descrip);
/* A colour volume: rgb holds ref's nx*ny*nz voxels of 3 bytes (R, G, B) in volume order (x
 * fastest), written as NIFTI_TYPE_RGB24 (bitpix 24, unscaled, cal_min 0, cal_max 255) on ref's
 * grid with ref's geometry (ref is required). lpm_volume_read refuses such a file: it reads
 * scalar data only. */
LPM_API lpm_status lpm_volume_write_rgb(const char *path, const uint8_t *rgb, const lpm_volume *ref,
                                        const char *descrip);

/* Allocate a zeroed volume of the given size (geometry: identity, 1 mm). */
LPM_API lpm_status lpm_volume_alloc(lpm_volume *v, int64_t nx, int64_t ny, int64_t nz);
/* Allocate a zeroed volume with the size and geometry of ref. */
LPM_API lpm_status lpm_volume_alloc_like(lpm_volume *v, const lpm_volume *ref);
LPM_API void lpm_volume_free(lpm_volume *v);
static inline int64_t lpm_volume_numel(const lpm_volume *v) { return v->nx * v->ny * v->nz; }

/* ------------------------------------------------- a volume file's header */

/* What a volume's NIfTI or ANALYZE header says beyond lpm_volume's geometry (what `lpmnet
 * info FILE` prints). */
typedef struct {
    char format[96];        /* "NIfTI-1 single file (.nii), gzip-compressed, little-endian";
                             * also NIfTI-2, ANALYZE 7.5, "pair (.hdr/.img)", "uncompressed",
                             * "image gzip-compressed", "header gzip-compressed", big-endian */
    char datatype[32];      /* the stored type, NIfTI's name: "NIFTI_TYPE_INT16", ... */
    int bytes_per_voxel;    /* of the stored type */
    double scl_slope, scl_inter;  /* the stored scaling (slope 0: none); lpm_volume_read applies it */
    int64_t data_offset;    /* where the voxels start in data_file, in bytes */
    char data_file[4096];   /* the file that holds the voxels (a pair's .img) */
    int qform_code, sform_code;            /* NIfTI's codes, 0 = not set */
    char qform_name[32], sform_name[32];   /* NIfTI's words for them: "Scanner Anat", ... */
    char description[80];   /* the header's description ("" when it has none) */
} lpm_volume_file_info;
/* Fills info from v's copy of its file's header (v from lpm_volume_read or
 * lpm_volume_read_header). LPM_ERR_USAGE when v has none (made in memory, not read). */
LPM_API lpm_status lpm_volume_file_info_get(const lpm_volume *v, lpm_volume_file_info *info);

/* ---------------------------------------------------------- preprocessing */

/* LPM_OK when a and b share one grid (same dims, affines equal within 1e-3 mm);
 * otherwise LPM_ERR_INPUT with a message naming both files (name_a, name_b). */
LPM_API lpm_status lpm_check_same_grid(const lpm_volume *a, const lpm_volume *b,
                                       const char *name_a, const char *name_b);

/* Resample src onto ref's grid through the headers' world coordinates (trilinear,
 * 0 outside src). out is allocated with ref's geometry. */
LPM_API lpm_status lpm_resample_to(const lpm_volume *src, const lpm_volume *ref, lpm_volume *out);

/* Min-max normalise in place to [0, 1]. A constant volume or a NaN/Inf voxel is
 * LPM_ERR_INPUT (name is used in the message). */
LPM_API lpm_status lpm_normalize_minmax(lpm_volume *v, const char *name);
/* LPM_OK when every voxel of v is finite and in [0, 1] (a fusion as lpm_fuse_pair returns
 * it, scored against inputs scaled by lpm_prepare_pair); else LPM_ERR_INPUT naming name and
 * the first non-finite voxel or the range found. */
LPM_API lpm_status lpm_check_unit_range(const lpm_volume *v, const char *name);

/* A volume is taken for CT in Hounsfield units when its minimum is <= LPM_CT_LOOKS_MIN (air is
 * -1000) and its maximum >= LPM_CT_LOOKS_MAX (bone); MRI and PET intensities are not negative.
 * lpm_looks_like_ct: 1 when v's finite values span that range, else 0. */
#define LPM_CT_LOOKS_MIN (-500.0)
#define LPM_CT_LOOKS_MAX 300.0
LPM_API int lpm_looks_like_ct(const lpm_volume *v);

/* Smallest multiple of 16 >= n. */
static inline int64_t lpm_pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* ---------------------------------------------------------------- weights */

#define LPM_NUM_TENSORS 92
#define LPM_NUM_PARAMS 26051

/* One tensor of the authors' state_dict: name, PyTorch shape, offset into the flat array. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[5];
    size_t numel;
    size_t offset;
} lpm_tensor_info;

/* The 92 tensors in canonical order (the order of the authors' state_dict). */
LPM_API const lpm_tensor_info *lpm_tensor_table(void);
/* Index of a tensor by name, or -1. */
LPM_API int lpm_tensor_index(const char *name);

/* All parameters in one allocation, in the tensor table's order (llm.c style);
 * gradients and Adam moments use the same layout. */
typedef struct {
    float *data;   /* LPM_NUM_PARAMS floats */
} lpm_weights;

LPM_API lpm_status lpm_weights_alloc(lpm_weights *w);       /* zeroed */
LPM_API void lpm_weights_free(lpm_weights *w);
/* PyTorch default initialisation (docs/lpmnet.md section 1) from a seed. */
LPM_API lpm_status lpm_weights_init(lpm_weights *w, uint64_t seed);
/* The largest |w| a usable LPM-Net weight may have. A fresh initialisation stays within
 * 6.91 (dt_proj.bias = softplus^-1(dt), dt >= 0.001) and the bundled models' largest is
 * about 6.75 (the same tensor); the scan's exp() and softplus turn weights a thousand times
 * larger into inf/NaN or saturated garbage, so a file beyond this is corrupt or wrongly
 * scaled, not a model. Loading refuses it and training stops before writing it. */
#define LPM_WEIGHT_MAX_ABS 1e4
/* safetensors: every name, shape and dtype (F32, F16, BF16) is checked; unknown or
 * missing tensors are errors that name the tensor and the file, and so is a value that is
 * not finite or beyond LPM_WEIGHT_MAX_ABS. */
LPM_API lpm_status lpm_weights_load(lpm_weights *w, const char *path);
/* Writes F32 safetensors atomically (temporary file + rename); refuses non-finite weights
 * (nothing is written). */
LPM_API lpm_status lpm_weights_save(const lpm_weights *w, const char *path);
/* Pointer to one tensor's data by name (NULL if unknown). */
LPM_API float *lpm_weights_tensor(const lpm_weights *w, const char *name);

/* Any safetensors file, read whole: names, stored dtypes ("F32", "F16", "BF16") and shapes,
 * values converted to float32. The header is checked (JSON syntax, dtypes, unique names,
 * offsets inside the file and disjoint, memory within lpm_max_memory()); values are not
 * judged (NaN and Inf are returned as stored: lpm_weights_load judges an LPM-Net file). */
#define LPM_ST_MAXDIM 8
typedef struct lpm_st_file lpm_st_file;
LPM_API lpm_status lpm_st_read(const char *path, lpm_st_file **out);
LPM_API void lpm_st_close(lpm_st_file *f);
LPM_API int lpm_st_count(const lpm_st_file *f);
LPM_API const char *lpm_st_name(const lpm_st_file *f, int i);
LPM_API const char *lpm_st_dtype(const lpm_st_file *f, int i);
/* Tensor by name: float32 data (owned by f), its ndim and shape; NULL when absent. */
LPM_API const float *lpm_st_find(const lpm_st_file *f, const char *name, int *ndim,
                                 int64_t shape[LPM_ST_MAXDIM]);
/* Value of a "__metadata__" key, or NULL. */
LPM_API const char *lpm_st_meta(const lpm_st_file *f, const char *key);

/* ----------------------------------------------------------------- fusion */

/* How lpm_fuse runs the network.
 * passes: 1 runs the network once, as the authors do. P = 2, 4, 8 or 16 averages P passes
 *   whose inputs are shifted by 0, 16/P, 2*16/P, ... voxels along all three axes: each pass
 *   puts the 16x16 Mamba windows somewhere else on the anatomy, so the faint seams a single
 *   pass leaves at the window borders are spread out and averaged down. Costs P passes.
 * zero_background: 1 sets the fused volume to exactly 0 wherever both normalised inputs
 *   are 0 (the head's tanh/2 + 0.5 only approaches 0); base and detail are left as the
 *   network gives them. */
typedef struct {
    int passes;
    int zero_background;
} lpm_fuse_options;
extern LPM_API const lpm_fuse_options LPM_FUSE_EXACT;   /* {1, 0}: the authors' forward pass */
extern LPM_API const lpm_fuse_options LPM_FUSE_DEFAULT; /* {4, 1}: what lpmnet fuse does */

/* Fuse two volumes on one grid with LPM-Net: normalise each to [0, 1] (min-max), zero-pad
 * to multiples of 16, run the network, crop back (options NULL: LPM_FUSE_EXACT). fused (and
 * base, detail when not NULL) are allocated with a's geometry, float32 in [0, 1].
 * threads <= 0: all cores. progress may be NULL; it is called with (done, total) units of
 * work over all passes. */
typedef void (*lpm_progress_fn)(void *ctx, int64_t done, int64_t total);
LPM_API lpm_status lpm_fuse(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                            lpm_volume *fused, lpm_volume *base, lpm_volume *detail,
                            const lpm_fuse_options *options, int threads,
                            lpm_progress_fn progress, void *progress_ctx);

/* The network on an NVIDIA GPU: 1 when this build has the CUDA backend and a device can be
 * used, with the device described in why[0..n) (name, compute capability, memory); otherwise
 * 0 and the reason there. why may be NULL. */
LPM_API int lpm_cuda_available(char *why, size_t n);

/* ------------------------------------------------------ classical fusion */

/* The classical methods LPM-Net is compared with, on two volumes on one grid already scaled
 * to [0, 1]; the output is clamped to [0, 1]:
 *   average    (a + b) / 2
 *   max        max(a, b) voxel-wise
 *   pca        w_a a + w_b b, weights from the principal eigenvector of the 2x2 covariance
 *   dwt        3-level 3-D db2 wavelets: approximation averaged, larger detail kept
 *   laplacian  3-D Laplacian pyramid (4 reductions): top averaged, larger band value kept
 *   guided     guided-filter fusion (Li, Kang & Hu 2013) in 3-D
 * lpm_classical_names: "average, max, pca, dwt, laplacian, guided"; lpm_classical_known: 1 for
 * one of them. lpm_classical_fuse: out = the fusion of a and b (D*H*W floats each, x fastest;
 * out may not alias a or b); an unknown method is LPM_ERR_USAGE naming the valid ones. */
LPM_API const char *lpm_classical_names(void);
LPM_API int lpm_classical_known(const char *method);
LPM_API lpm_status lpm_classical_fuse(const char *method, const float *a, const float *b, float *out,
                                      int64_t D, int64_t H, int64_t W);

/* ---------------------------------------------------------- colour fusion */

/* Colour maps (t in [0, 1] -> RGB): "hot" (black, red, yellow, white), "jet" (MATLAB's
 * classic), "gray". lpm_colormap_known: 1 for one of them; lpm_colormap_names: "hot, jet, gray".
 * lpm_color_fuse (YCbCr fusion, ITU-R BT.601 full range: Y = 0.299 R + 0.587 G + 0.114 B): per voxel the map's
 * colour of func (the functional volume scaled to [0, 1]) with its luminance replaced by luma
 * (the fused volume in [0, 1]); both clamped to [0, 1], NaN counts as 0; rgb receives n*3
 * bytes, R G B interleaved in voxel order. An unknown map is LPM_ERR_USAGE. */
LPM_API int lpm_colormap_known(const char *name);
LPM_API const char *lpm_colormap_names(void);
LPM_API lpm_status lpm_color_fuse(uint8_t *rgb, const float *luma, const float *func, int64_t n,
                                  const char *map);

/* ---------------------------------------------------------------- pictures */

/* A PNG of the orthogonal mid-slices (axial, coronal, sagittal rows) of volumes on one grid
 * (D, H, W), one column each with its label on top (cut at 40 characters). Grey values in
 * [0, 1] map to 0..255 (clamped; NaN is black); an RGB column's bytes are shown as they are.
 * Large volumes are box-averaged to at most 256 pixels a side, small ones enlarged to at least
 * 128. Each column has exactly one of grey and rgb; at most LPM_MONTAGE_MAX_COLUMNS. title
 * (NULL or "": none) is drawn across the top. Written atomically. */
enum { LPM_MONTAGE_MAX_COLUMNS = 64 };
typedef struct {
    const char *label;   /* may be NULL: no label */
    const float *grey;   /* D*H*W values in [0, 1], or NULL for an RGB column */
    const uint8_t *rgb;  /* D*H*W voxels of R, G, B bytes (lpm_color_fuse's layout), or NULL */
} lpm_montage_column;
LPM_API lpm_status lpm_montage_write_titled(const char *png_path, const char *title,
                                            const lpm_montage_column *cols, int n, int64_t D,
                                            int64_t H, int64_t W);

/* ------------------------------------------------- bundled models by name */

/* One model per modality family, each lpmnet-NAME.safetensors beside its card lpmnet-NAME.md
 * (its data, recipe and test scores). */
typedef struct {
    const char *name;   /* "mri", "ct-mr", "pet-mr", "pet-ct" */
    const char *pairs;  /* what the family fuses, in words */
} lpm_model_family;
/* The families, "mri" (the default) first; the list ends with a NULL name. */
LPM_API const lpm_model_family *lpm_model_families(void);
/* 1 when name is one of the families, else 0. */
LPM_API int lpm_model_known(const char *name);
/* Path of a file installed under <prefix>/share/lpmnet/ (the models, the cards, the web
 * viewer's niivue/niivue.umd.js) into path (size bytes); relative is its name there, e.g.
 * "lpmnet-mri.md" or "niivue/niivue.umd.js". Looked for, in order, in <the library's
 * folder>/../share/lpmnet/ (for liblpmnet.so: <prefix>/share/lpmnet/ of the tree it is
 * installed in, wherever that was moved), in <bindir>/../share/lpmnet/ of a program linked
 * with liblpmnet.a, in the source tree's models/ and then vendor/ (a build tree), and in the
 * install prefix the library was configured with; the first readable file wins.
 * LPM_ERR_INPUT when it is in none of these places (the message lists them), LPM_ERR_USAGE
 * when the path does not fit in size bytes. */
LPM_API lpm_status lpm_share_path(const char *relative, char *path, size_t size);
/* Path of the bundled file lpmnet-FAMILY<ext> (ext ".safetensors" or ".md"; NULL:
 * ".safetensors") into path (size bytes), found as lpm_share_path finds it. LPM_ERR_USAGE
 * (the tool's exit code 1) for an unknown family (the message lists them), a path that does
 * not fit, or a family whose file is in none of lpm_share_path's places (the message lists
 * them). */
LPM_API lpm_status lpm_model_path(const char *family, const char *ext, char *path, size_t size);
/* -m/--model of the tool: a family name, or a weights file (a name with a '/', with
 * ".safetensors" in it, or an existing file) taken as given; NULL = "mri". The weights file's
 * path goes into path (size bytes). Errors as lpm_model_path (an unknown name lists the
 * families). */
LPM_API lpm_status lpm_model_resolve(const char *name_or_file, char *path, size_t size);
/* lpm_weights_alloc and lpm_weights_load of lpm_model_resolve(name_or_file); a failure leaves
 * w empty, with the message naming the weights file. Free with lpm_weights_free. */
LPM_API lpm_status lpm_weights_load_model(lpm_weights *w, const char *name_or_file);

/* ----------------------------------------------- fusion as the tool does it */

/* How lpm_fuse_pair and lpm_fuse_files fuse; all zero = what `lpmnet fuse A B -o OUT` does. */
typedef struct {
    const char *method;   /* NULL or "lpmnet": LPM-Net; or a classical method: "average",
                           * "max", "pca", "dwt", "laplacian", "guided" (docs/lpmnet.md) */
    int exact;            /* 1: the authors' computation (plain min-max, one pass, no
                           * background rule), as `lpmnet fuse --exact` */
    int passes;           /* LPM-Net passes at shifted window grids: 1, 2, 4, 8, 16; 0 = the
                           * default (4, or 1 with exact) */
    double clip_lo, clip_hi;  /* each input clipped to these percentiles before scaling to
                               * [0, 1]; both 0 = the default 0.5, 100 (not with exact) */
    const char *ct_window;    /* NULL, or a CT window for the Hounsfield-like input(s):
                               * "bone", "soft", "lung" or "WIDTH,LEVEL" (not with exact) */
    int resample;         /* 1: resample B onto A's grid through the headers' world
                           * coordinates (trilinear) instead of requiring one grid */
    const uint8_t *mask;  /* NULL, or one byte a voxel on A's grid: each input scaled inside
                           * the nonzero voxels and 0 outside (`--mask`; not with exact) */
    const char *mask_path;    /* when mask is NULL: the mask read from this file (A's grid) */
    int threads;          /* <= 0: all cores */
    lpm_progress_fn progress;  /* may be NULL: LPM-Net's (done, total) units of work */
    void *progress_ctx;
    int device;           /* 0: the CPU; 1: LPM-Net on an NVIDIA GPU through CUDA (`--device
                           * cuda`; lpm_cuda_available says whether this build and machine
                           * have one): one pass, no background rule, no progress; more passes
                           * or a classical method are LPM_ERR_USAGE */
} lpm_fuse_settings;

/* Fuses a and b as `lpmnet fuse` does between reading and writing: copies of both brought to
 * [0, 1] (docs/preprocessing.md), then LPM-Net with w (may be NULL for a classical method) or
 * the classical method. fused is allocated with a's geometry, float32 in [0, 1]; a and b are
 * not changed. settings NULL = all defaults. name_a, name_b (NULL: "A", "B") name the inputs
 * in messages. A non-finite result is an error, never returned. */
LPM_API lpm_status lpm_fuse_pair(const lpm_weights *w, const lpm_volume *a, const char *name_a,
                                 const lpm_volume *b, const char *name_b, lpm_volume *fused,
                                 const lpm_fuse_settings *settings);
/* lpm_fuse_pair in two halves, for a caller that also wants the scaled inputs (to score the
 * result against them, to show them beside it) or fuses one pair with several methods.
 * lpm_prepare_pair: copies of a and b brought to [0, 1] as lpm_fuse_pair does (B resampled
 * onto A's grid with settings->resample, else required on it; the clip or CT window; the
 * mask: settings->mask, else read from settings->mask_path); a01 and b01 are allocated with
 * a's geometry. lpm_fuse_prepared: LPM-Net with w, or the classical method of settings, on a
 * prepared pair; base and detail (LPM-Net only; NULL when not wanted) receive the network's
 * two components; settings->device chooses the CPU or the GPU. A non-finite result is an
 * error, never returned. */
LPM_API lpm_status lpm_prepare_pair(const lpm_volume *a, const char *name_a, const lpm_volume *b,
                                    const char *name_b, const lpm_fuse_settings *settings,
                                    lpm_volume *a01, lpm_volume *b01);
LPM_API lpm_status lpm_fuse_prepared(const lpm_weights *w, const lpm_volume *a01,
                                     const lpm_volume *b01, const lpm_fuse_settings *settings,
                                     lpm_volume *fused, lpm_volume *base, lpm_volume *detail);
/* The option strings of the settings, checked as lpm_prepare_pair checks them (a tool can
 * refuse a bad value while reading its command line): lpm_ct_window_parse takes "bone"
 * (width 2000, level 500 HU), "soft" (400, 40), "lung" (1500, -600) or "WIDTH,LEVEL" with
 * WIDTH > 0; lpm_clip_parse takes "LOW,HIGH" percentiles, 0 <= LOW < HIGH <= 100 (e.g.
 * "0.5,99.5"). LPM_ERR_USAGE, the message saying what is expected, otherwise; the outputs are
 * set only on success. */
LPM_API lpm_status lpm_ct_window_parse(const char *s, double *width, double *level);
LPM_API lpm_status lpm_clip_parse(const char *s, double *lo, double *hi);
/* Reads a mask volume on like's grid (named like_name in messages): *mask receives one byte
 * a voxel, 1 where the file is nonzero, else 0 (free() it). A missing file, another grid, a
 * NaN voxel or no nonzero voxel is LPM_ERR_INPUT naming path. */
LPM_API lpm_status lpm_mask_read(const char *path, const lpm_volume *like, const char *like_name,
                                 uint8_t **mask);
/* `lpmnet fuse A B -o OUT -m MODEL`: reads path_a and path_b, fuses them (lpm_fuse_pair with
 * model's weights: a family name or a weights file, NULL = "mri"; not read for a classical
 * method) and writes out_path, float32 with A's geometry, atomically. */
LPM_API lpm_status lpm_fuse_files(const char *path_a, const char *path_b, const char *out_path,
                                  const char *model, const lpm_fuse_settings *settings);

/* ---------------------------------------------------------------- metrics */

/* The twelve fusion metrics (docs/lpmnet.md section 3), in this order: ssim qabf mi scd vif ag
 * psnr en sd sf nabf rsfe. */
#define LPM_METRIC_COUNT 12
/* Lower-case name of metric i (0 <= i < LPM_METRIC_COUNT), NULL when out of range. */
LPM_API const char *lpm_metric_name(int i);
/* A set of metrics is a bit mask: bit 1u << i selects metric i. */
#define LPM_METRICS_ALL ((1u << LPM_METRIC_COUNT) - 1u)
/* A comma-separated list of metric names ("ssim,qabf,rsfe"; any case; "all" for every one)
 * into *which. An empty entry or an unknown name is LPM_ERR_USAGE naming it (*which is then
 * unchanged). */
LPM_API lpm_status lpm_metrics_parse(const char *list, unsigned *which);
/* `lpmnet metrics A B F`: values[i] = metric i of fused against its sources a and b (all
 * three on one grid). normalize 1 min-max normalises copies of the three volumes first, as
 * the tool does (a constant volume is then an error); 0 scores them as given (expected in
 * [0, 1]). mask: NULL, or one byte a voxel in the volumes' layout, nonzero = inside (docs of
 * `lpmnet metrics --mask`). A metric that is undefined for these volumes is NAN, PSNR +inf
 * when F equals A or B. */
LPM_API lpm_status lpm_metrics_volumes(double values[LPM_METRIC_COUNT], const lpm_volume *a,
                                       const lpm_volume *b, const lpm_volume *fused,
                                       const uint8_t *mask, int normalize);
/* lpm_metrics_volumes for the metrics in which only (an lpm_metrics_parse result, or
 * LPM_METRICS_ALL); the others are not computed and come back as NAN. Each metric's value is
 * the one lpm_metrics_volumes gives. */
LPM_API lpm_status lpm_metrics_select(double values[LPM_METRIC_COUNT], const lpm_volume *a,
                                      const lpm_volume *b, const lpm_volume *fused,
                                      const uint8_t *mask, int normalize, unsigned which);
/* The window-seam index of fused along x, y, z (1.0 = no seam; `lpmnet metrics` seam_x,
 * seam_y, seam_z; NAN where undefined, e.g. an axis shorter than 18). normalize and mask as
 * in lpm_metrics_volumes. */
LPM_API lpm_status lpm_seam_volume(double index[3], const lpm_volume *fused, const uint8_t *mask,
                                   int normalize);
/* lpm_seam_volume that also says why an index is undefined: why[k] is a sentence (static
 * text, not to be freed) when index[k] is NAN (a short axis, a constant F, ...), NULL when
 * it is defined. */
LPM_API lpm_status lpm_seam_volume_why(double index[3], const char *why[3], const lpm_volume *fused,
                                       const uint8_t *mask, int normalize);

/* --------------------------------------------------------------- datasets */

/* A dataset is a list of cases, each a pair of co-registered volume files, as `lpmnet train`,
 * `lpmnet eval` and `lpmnet fuse --list` read them. */
typedef struct {
    char *name;    /* the case's name: letters, digits, '-', '_' and '.' only (it names output
                    * files: montage_NAME.png, NAME_METHOD.nii.gz) */
    char *a, *b;   /* the two volumes' paths */
    char *mask;    /* a mask volume's path, or NULL */
    char *out;     /* a CSV's out column (`lpmnet fuse --list`), or NULL */
    int line;      /* the case's line number in a CSV file (1 = its first line); 0 in a folder */
} lpm_case;
typedef struct {
    int n;
    lpm_case *cases;  /* n cases, in the order of the folder listing or the CSV */
} lpm_dataset;

/* Reads a dataset's case list (the files themselves are not opened: see lpm_dataset_check).
 * spec is one of
 *   - a folder of subject folders, or a single subject folder, with pair = "KEYA,KEYB": in
 *     each subject folder, A is the one NIfTI file (.nii, .nii.gz, .hdr) whose name holds KEYA
 *     as a word (words are split at '_', '-' and '.', any case: "sub01_T1.nii.gz",
 *     "BraTS-00001-t1n.nii.gz" and "t1.nii" all hold "t1"), B likewise for KEYB, the mask for
 *     mask_key (NULL: no mask). Subject folders in name order; one lacking A or B is skipped
 *     with a note on stderr, one with two files for a key is an error. A case is named after
 *     its subject folder (a single subject folder: after itself); should two names be equal
 *     once made safe (below: "a b" and "a_b"), every case gets its position: "a_b_1", ...
 *     split: NULL for every case, or "train" / "test" to keep the cases
 *     listed in the folder's IndicesTrain.txt / IndicesTest.txt (the authors' split files:
 *     one subject name, or 0-based index into the sorted subjects, a line); without such a
 *     file, every case.
 *   - a .csv file: blank lines and lines starting with '#' are skipped; the first other line
 *     is the header "a,b", optionally followed by the columns "mask" and "out" in either
 *     order; then one case a line, its paths relative to the CSV's folder (or absolute); pair,
 *     mask_key and split are not used. A case is named after its A file: the file name
 *     without folder and volume extension ("t1" for "sub01/t1.nii.gz") when these differ
 *     between all cases; else the folder and that ("sub01_t1") when these do; else the file
 *     name and the line ("t1_line3", always distinct).
 *   In every name, characters other than letters, digits, '-', '_' and '.' become '_', and a
 *   folder's or file's name counts with at most 80 characters.
 * Errors: LPM_ERR_USAGE for a folder without a usable pair; LPM_ERR_INPUT naming the file
 * (and line) for a missing or unreadable folder or file, a bad header or line, no case;
 * LPM_ERR_INTERNAL when out of memory. On failure ds is left empty. Free with
 * lpm_dataset_free. */
LPM_API lpm_status lpm_dataset_open(lpm_dataset *ds, const char *spec, const char *pair,
                                    const char *mask_key, const char *split);
LPM_API void lpm_dataset_free(lpm_dataset *ds);
/* Checks every case from its files' headers before long work starts: A, B (and the mask)
 * readable as 3-D NIfTI volumes on one grid and, when crop is not NULL, every side at least
 * crop's (D, H, W). The first failure is LPM_ERR_INPUT, "case NAME: " and the file's problem.
 * To check one case: lpm_dataset one = {1, &ds->cases[i]}. */
LPM_API lpm_status lpm_dataset_check(const lpm_dataset *ds, const int64_t *crop);

/* --------------------------------------------------------------- training */

/* The loss terms of one step (docs/lpmnet.md section 2) and their weighted total. */
typedef struct {
    double total;
    double mse_af, mse_bf, ssim_af, ssim_bf, ssim_adet, ssim_bdet, sf_f, edge_f, mse_rec;
    double target_f;  /* MSE of the fusion against the fusion target (0 unless target is set) */
    double qabf_f;    /* QABF of the fusion against its sources (0 unless qabf is set) */
    double sf_ratio;  /* SF of the fusion over the sources' reference SF, rSFe + 1 (0 unless
                       * sf_match is set) */
} lpm_step_losses;

/* What the training run reports after each step. */
typedef struct {
    int64_t step, iters;  /* steps done (1-based) of iters */
    int64_t epoch;
    double lr;            /* the step's learning rate (cosine-annealed per epoch) */
    double seconds;       /* the step's wall time */
    lpm_step_losses losses;
} lpm_train_report;
/* Called after each step; a non-zero return stops the run after saving a checkpoint (as
 * Ctrl-C does in lpmnet train; continue it with resume). lpm_train installs no signal
 * handlers of its own. */
typedef int (*lpm_train_step_fn)(void *ctx, const lpm_train_report *report);

/* One process's part in a data-parallel run over several processes (lpm_train_options.comm).
 * The library does no communication itself: the caller brings an allgather over its own
 * transport (the lpmnet tool's is MPI_Allgatherv, src/cli/dist.c). Every process calls
 * lpm_train with the same options and its own rank. Each computes the gradients of its share
 * of every batch (samples [rank*batch/size, (rank+1)*batch/size), so batch >= size) and of
 * the validation cases; every process then sums all the gradients in sample order, so any
 * number of processes gives the weights of one process with the same batch (bit for bit when
 * the thread counts match: a sample's gradient sums its parts in the threads' order).
 * Rank 0 alone writes the files and calls progress and on_step. A failure on any process
 * (or a stop flag set on any) stops every process after the same step, each returning the
 * lowest failing rank's status with its message ("rank R of P: ..."). */
typedef struct {
    int rank, size;   /* this process (0 .. size-1) and the number of processes */
    void *ctx;        /* passed to allgather */
    /* Collective: every process passes its block (counts[rank] bytes at mine); on return all
     * holds every process's block in rank order (block r: counts[r] bytes, right after block
     * r-1). All processes call it the same number of times with the same counts. A non-zero
     * status (its message recorded with lpm_fail) ends the run on that process. */
    lpm_status (*allgather)(void *ctx, const void *mine, void *all, const size_t *counts);
} lpm_train_comm;

/* `lpmnet train` (its --help and README's Training section say what each option does). */
typedef struct {
    const char *data;      /* folder of subject folders, or a CSV with the header a,b[,mask] */
    const char *pair;      /* "KEYA,KEYB" modality keys for a folder dataset, else NULL */
    const char *mask_key;  /* mask modality key in a folder dataset, or NULL */
    const char *out;       /* writes OUT/model.safetensors, checkpoint.safetensors, train.csv */
    const char *init;      /* start from this weights file or bundled family; NULL: fresh */
    const char *val;       /* validation data (NULL: the dataset's IndicesTest.txt cases) */
    int64_t iters;         /* steps [3000] */
    int64_t val_every;     /* validate every N steps, 0: never [0] */
    int64_t ckpt_every;    /* checkpoint every N steps [25] (and at least every 5 minutes) */
    int64_t shape[3];      /* resize each volume to D,H,W, multiples of 16 [96,160,160] */
    int64_t crop[3];       /* all > 0: random D,H,W crops instead of resizing [0,0,0] */
    int flip;              /* random flips [1] */
    int64_t batch;         /* samples per step, their gradients averaged [1] */
    double lr, alpha, beta, gamma, edge, rec;  /* [1e-4, 0.05, 1, 0.5, 0, 0.2]; the loss weights
                                                * alpha ... edge, target and qabf each in
                                                * [0, LPM_TRAIN_WEIGHT_MAX] */
    uint64_t seed;         /* [1] */
    int resume;            /* continue OUT/checkpoint.safetensors */
    int threads;           /* <= 0: all cores */
    int quiet;             /* 1: nothing on stderr */
    lpm_progress_fn progress;   /* may be NULL: (steps done, iters) after each step */
    lpm_train_step_fn on_step;  /* may be NULL: the step's report */
    void *ctx;                  /* passed to both */
    int force;             /* with resume: continue even when the data or options differ from
                            * the checkpoint's record, or it has none (a note on stderr) [0] */
    int device;            /* 0: the CPU [0]; 1: an NVIDIA GPU (a build with CUDA and a usable
                            * device, see lpm_cuda_available; one sample per step, one process) */
    volatile sig_atomic_t *stop;  /* NULL, or a flag the caller sets to stop (e.g. from its
                            * SIGINT handler): the run stops after the step under way, saves
                            * the checkpoint and returns LPM_OK; continue it with resume */
    const lpm_train_comm *comm;   /* NULL (or size 1): one process; else data-parallel, above */
    double clip_lo, clip_hi;  /* each input clipped to these percentiles, then scaled to [0, 1]
                               * (as lpm_fuse_settings; inside a case's mask when it has one);
                               * both 0: plain min-max, the authors' training [0, 0] */
    const char *ct_window;    /* NULL, or a CT window for the Hounsfield-like input of each case
                               * ("bone", "soft", "lung", "WIDTH,LEVEL") [NULL] */
    double target;            /* weight of lpmnet's fusion-target term: the mean
                               * squared gap between the fusion and a classical target (the
                               * Laplacian-pyramid fusion averaged with the brighter source's
                               * low frequencies plus the stronger source's details) [0: the
                               * authors' objective] */
    double qabf;              /* weight of lpmnet's edge-preservation term, qabf (1 - QABF(A,B,F)):
                               * the fusion metric QABF, differentiated [0: the authors'] */
    double aug_gamma;         /* random contrast: each input of a sample raised to its own power,
                               * log-uniform in [1/aug_gamma, aug_gamma]; 1 (or 0): none; at most
                               * LPM_TRAIN_AUG_GAMMA_MAX [1] */
    double aug_noise;         /* random noise: each input of a sample gets Gaussian noise of its
                               * own standard deviation, uniform in [0, aug_noise], on its nonzero
                               * voxels (then clipped to [0, 1]); 0: none; at most
                               * LPM_TRAIN_AUG_NOISE_MAX [0] */
    int aug_rotate;           /* 1: each sample turned by a random number of quarter turns in the
                               * plane of its rows and columns (A and B alike; the sample's H and
                               * W must be equal) [0] */
    double sf_match;          /* weight of lpmnet's spatial-frequency term, sf_match (SF(F)/SF_R -
                               * 1)^2: the fusion metric rSFe, squared; SF_R the sources' reference
                               * spatial frequency [0: the authors'] */
} lpm_train_options;
#define LPM_TRAIN_WEIGHT_MAX 10000.0 /* the largest loss weight lpm_train accepts */
#define LPM_TRAIN_AUG_GAMMA_MAX 4.0  /* the largest aug_gamma lpm_train accepts */
#define LPM_TRAIN_AUG_NOISE_MAX 0.2  /* the largest aug_noise lpm_train accepts */
/* Fills o with the defaults above (what `lpmnet train` uses); set data and out after it. */
LPM_API void lpm_train_options_init(lpm_train_options *o);
/* A whole training run, resumable, as `lpmnet train`. The options are checked as the tool
 * checks them (LPM_ERR_USAGE naming the option). o->threads applies to this run only. */
LPM_API lpm_status lpm_train(const lpm_train_options *o);

/* One step at a time on pairs the caller brings: the network, its gradients and Adam state
 * for samples of nx x ny x nz voxels (each a multiple of 16). */
typedef struct lpm_train_session lpm_train_session;
/* weights: a family name or weights file to start from, or NULL for a fresh initialisation
 * from seed (seed also draws the reconstruction masks). */
LPM_API lpm_status lpm_train_session_new(lpm_train_session **session, int64_t nx, int64_t ny,
                                         int64_t nz, const char *weights, uint64_t seed);
/* One step (fusion pass, reconstruction pass, backward, Adam) on a and b, each nx*ny*nz
 * floats in [0, 1], x fastest. lr, alpha, beta, gamma, edge, rec, target as in lpm_train_options;
 * lambda_s weighs the spatial-frequency term (the run uses exp(0.002 (s - E)), s the step in
 * the epoch, E the epochs). losses may be NULL. */
LPM_API lpm_status lpm_train_session_step(lpm_train_session *session, const float *a,
                                          const float *b, const lpm_train_options *o,
                                          double lambda_s, lpm_step_losses *losses);
/* The session's current weights (owned by it). */
LPM_API const lpm_weights *lpm_train_session_weights(const lpm_train_session *session);
LPM_API void lpm_train_session_free(lpm_train_session *session);

/* Phantom: a brain-like multimodal volume set on a 1 mm grid, deterministic for a seed.
 * Writes DIR/t1.nii.gz, t2.nii.gz, flair.nii.gz, pd.nii.gz (MR, arbitrary units), ct.nii.gz
 * (HU), pet.nii.gz (FDG-PET, counts), spect.nii.gz (perfusion SPECT, counts), labels.nii.gz.
 * (`lpmnet phantom --body thorax` also makes a chest phantom.) */
LPM_API lpm_status lpm_phantom_write(const char *dir, int64_t D, int64_t H, int64_t W, uint64_t seed);
/* The same for either body: LPM_PHANTOM_HEAD (the files above) or LPM_PHANTOM_THORAX (a chest:
 * DIR/ct.nii.gz in HU, pet.nii.gz with 1-3 hot nodules, labels.nii.gz). D, H, W >= 8. */
typedef enum { LPM_PHANTOM_HEAD, LPM_PHANTOM_THORAX } lpm_phantom_body;
LPM_API lpm_status lpm_phantom_write_body(const char *dir, lpm_phantom_body body, int64_t D, int64_t H,
                                          int64_t W, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
