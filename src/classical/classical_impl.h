/* The transform-domain methods, one file each; called through lpm_classical_fuse. */
#ifndef LPM_CLASSICAL_IMPL_H
#define LPM_CLASSICAL_IMPL_H

#include "core/core.h"

/* Loops over fewer voxels than this run on one thread: waking threads would cost more. */
enum { PAR_MIN = 1 << 16 };

lpm_status lpm_fuse_dwt(const float *a, const float *b, float *out, int64_t D, int64_t H,
                        int64_t W);
lpm_status lpm_fuse_laplacian(const float *a, const float *b, float *out, int64_t D, int64_t H,
                              int64_t W);
lpm_status lpm_fuse_guided(const float *a, const float *b, float *out, int64_t D, int64_t H,
                           int64_t W);

#endif
