/* lpmnet: LPM-Net 3D medical image fusion in C.
 *
 * Conventions
 *   - Every function that can fail returns an lpm_status; on failure the message
 *     (naming the file and the reason) is in lpm_last_error() for this thread.
 *   - A volume is (D, H, W) in C order = NIfTI data with x fastest:
 *     W = nx, H = ny, D = nz, voxel (d, h, w) at offset w + W*(h + H*d).
 *   - Voxel counts and offsets are int64_t / size_t, never int.
 */
#ifndef LPMNET_H
#define LPMNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LPM_VERSION "0.1.0"

/* Status codes double as the command-line tool's exit codes. */
typedef enum {
    LPM_OK = 0,
    LPM_ERR_USAGE = 1,    /* bad arguments */
    LPM_ERR_INPUT = 2,    /* input/data error: unreadable file, wrong grid, constant volume, ... */
    LPM_ERR_INTERNAL = 3  /* out of memory, bug, I/O failure on output */
} lpm_status;

/* Message of the last failure on this thread ("" if none). */
const char *lpm_last_error(void);

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
lpm_status lpm_volume_read(const char *path, lpm_volume *out);
/* The same checks and geometry without reading the voxels (out->data is NULL): cheap, for
 * validating a whole dataset before work starts. Free with lpm_volume_free. */
lpm_status lpm_volume_read_header(const char *path, lpm_volume *out);

/* Write v as float32 with the geometry (qform/sform, pixdim, units) of ref
 * (ref may be v itself or NULL for an identity geometry). The file is written to a
 * temporary name in the same folder and renamed, so a failure leaves no partial file. */
lpm_status lpm_volume_write(const char *path, const lpm_volume *v, const lpm_volume *ref);

/* Allocate a zeroed volume of the given size (geometry: identity, 1 mm). */
lpm_status lpm_volume_alloc(lpm_volume *v, int64_t nx, int64_t ny, int64_t nz);
/* Allocate a zeroed volume with the size and geometry of ref. */
lpm_status lpm_volume_alloc_like(lpm_volume *v, const lpm_volume *ref);
void lpm_volume_free(lpm_volume *v);
static inline int64_t lpm_volume_numel(const lpm_volume *v) { return v->nx * v->ny * v->nz; }

/* ---------------------------------------------------------- preprocessing */

/* LPM_OK when a and b share one grid (same dims, affines equal within 1e-3 mm);
 * otherwise LPM_ERR_INPUT with a message naming both files (name_a, name_b). */
lpm_status lpm_check_same_grid(const lpm_volume *a, const lpm_volume *b,
                               const char *name_a, const char *name_b);

/* Resample src onto ref's grid through the headers' world coordinates (trilinear,
 * 0 outside src). out is allocated with ref's geometry. */
lpm_status lpm_resample_to(const lpm_volume *src, const lpm_volume *ref, lpm_volume *out);

/* Min-max normalise in place to [0, 1]. A constant volume or a NaN/Inf voxel is
 * LPM_ERR_INPUT (name is used in the message). */
lpm_status lpm_normalize_minmax(lpm_volume *v, const char *name);

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
const lpm_tensor_info *lpm_tensor_table(void);
/* Index of a tensor by name, or -1. */
int lpm_tensor_index(const char *name);

/* All parameters in one allocation, in the tensor table's order (llm.c style);
 * gradients and Adam moments use the same layout. */
typedef struct {
    float *data;   /* LPM_NUM_PARAMS floats */
} lpm_weights;

lpm_status lpm_weights_alloc(lpm_weights *w);       /* zeroed */
void lpm_weights_free(lpm_weights *w);
/* PyTorch default initialisation (LPMNET.md section 1) from a seed. */
lpm_status lpm_weights_init(lpm_weights *w, uint64_t seed);
/* The largest |w| a usable LPM-Net weight may have. A fresh initialisation stays within
 * 6.91 (dt_proj.bias = softplus^-1(dt), dt >= 0.001) and the bundled models' largest is
 * about 6.75 (the same tensor); the scan's exp() and softplus turn weights a thousand times
 * larger into inf/NaN or saturated garbage, so a file beyond this is corrupt or wrongly
 * scaled, not a model. Loading refuses it and training stops before writing it. */
#define LPM_WEIGHT_MAX_ABS 1e4
/* safetensors: every name, shape and dtype (F32, F16, BF16) is checked; unknown or
 * missing tensors are errors that name the tensor and the file, and so is a value that is
 * not finite or beyond LPM_WEIGHT_MAX_ABS. */
lpm_status lpm_weights_load(lpm_weights *w, const char *path);
/* Writes F32 safetensors atomically (temporary file + rename); refuses non-finite weights
 * (nothing is written). */
lpm_status lpm_weights_save(const lpm_weights *w, const char *path);
/* Pointer to one tensor's data by name (NULL if unknown). */
float *lpm_weights_tensor(const lpm_weights *w, const char *name);

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
extern const lpm_fuse_options LPM_FUSE_EXACT;   /* {1, 0}: the authors' forward pass */
extern const lpm_fuse_options LPM_FUSE_DEFAULT; /* {4, 1}: what lpmnet fuse does */

/* Fuse two volumes on one grid with LPM-Net: normalise each to [0, 1] (min-max), zero-pad
 * to multiples of 16, run the network, crop back (options NULL: LPM_FUSE_EXACT). fused (and
 * base, detail when not NULL) are allocated with a's geometry, float32 in [0, 1].
 * threads <= 0: all cores. progress may be NULL; it is called with (done, total) units of
 * work over all passes. */
typedef void (*lpm_progress_fn)(void *ctx, int64_t done, int64_t total);
lpm_status lpm_fuse(const lpm_weights *w, const lpm_volume *a, const lpm_volume *b,
                    lpm_volume *fused, lpm_volume *base, lpm_volume *detail,
                    const lpm_fuse_options *options, int threads, lpm_progress_fn progress,
                    void *progress_ctx);

/* Phantom: a brain-like multimodal volume set on a 1 mm grid, deterministic for a seed.
 * Writes DIR/t1.nii.gz, t2.nii.gz, flair.nii.gz, pd.nii.gz (MR, arbitrary units), ct.nii.gz
 * (HU), pet.nii.gz (FDG-PET, counts), spect.nii.gz (perfusion SPECT, counts), labels.nii.gz.
 * (`lpmnet phantom --body thorax` also makes a chest phantom.) */
lpm_status lpm_phantom_write(const char *dir, int64_t D, int64_t H, int64_t W, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
