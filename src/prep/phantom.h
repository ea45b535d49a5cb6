/* A synthetic brain-like multimodal phantom (the public entry is lpm_phantom_write). */
#ifndef LPM_PHANTOM_H
#define LPM_PHANTOM_H

#include "core/core.h"

/* Tissue labels, stored as float in the labels volume. */
enum {
    LPM_PH_BACKGROUND = 0,
    LPM_PH_SKULL = 1,  /* skull and scalp */
    LPM_PH_CSF = 2,    /* subarachnoid space, fissure and ventricles */
    LPM_PH_GM = 3,     /* cortex and deep grey nuclei */
    LPM_PH_WM = 4,
    LPM_PH_OEDEMA = 5,
    LPM_PH_LESION = 6,
    LPM_PH_NLABELS = 7
};

/* Volumes of the phantom in the order of vols[]; file names are "<name>.nii.gz". */
enum { LPM_PH_T1, LPM_PH_T2, LPM_PH_FLAIR, LPM_PH_PD, LPM_PH_CT, LPM_PH_LABELS, LPM_PH_NVOLS };
extern const char *const lpm_phantom_names[LPM_PH_NVOLS];

/* Allocate and fill vols (t1, t2, flair, pd, ct, labels), each (D,H,W) with 1 mm voxels.
 * MR contrasts are in arbitrary units (~0..1000), CT in Hounsfield units (air -1000,
 * bone ~1200). Deterministic for a seed, whatever the thread count. D, H, W >= 8.
 * On failure nothing stays allocated. */
lpm_status lpm_phantom_make(lpm_volume vols[LPM_PH_NVOLS], int64_t D, int64_t H, int64_t W,
                            uint64_t seed);

#endif
