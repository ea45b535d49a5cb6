/* Synthetic multimodal phantoms of a brain-like head and of a chest (the public entries,
 * lpm_phantom_write and lpm_phantom_write_body, are in lpmnet.h). */
#ifndef LPM_PHANTOM_H
#define LPM_PHANTOM_H

#include "core/core.h"

/* Tissue labels of the head, stored as float in its labels volume. */
enum {
    LPM_PH_BACKGROUND = 0,
    LPM_PH_SKULL = 1,  /* skull and scalp */
    LPM_PH_CSF = 2,    /* subarachnoid space, fissure and ventricles */
    LPM_PH_GM = 3,     /* cortex and deep grey nuclei */
    LPM_PH_WM = 4,
    LPM_PH_OEDEMA = 5,
    LPM_PH_LESION = 6, /* with its necrotic core */
    LPM_PH_NLABELS = 7
};

/* Volumes of the head in the order of vols[]; file names are "<name>.nii.gz". */
enum {
    LPM_PH_T1,
    LPM_PH_T2,
    LPM_PH_FLAIR,
    LPM_PH_PD,
    LPM_PH_CT,
    LPM_PH_PET,
    LPM_PH_SPECT,
    LPM_PH_LABELS,
    LPM_PH_NVOLS
};
extern const char *const lpm_phantom_names[LPM_PH_NVOLS];

/* Tissue labels of the thorax. */
enum {
    LPM_TH_BACKGROUND = 0, /* air around the body */
    LPM_TH_FAT = 1,        /* subcutaneous fat */
    LPM_TH_SOFT = 2,       /* muscle and other soft tissue, intervertebral discs, spinal canal */
    LPM_TH_LUNG = 3,       /* lung parenchyma, trachea and main bronchi */
    LPM_TH_VESSEL = 4,     /* pulmonary vessels */
    LPM_TH_BONE = 5,       /* vertebrae, ribs, sternum */
    LPM_TH_MYOCARDIUM = 6,
    LPM_TH_MEDIASTINUM = 7, /* mediastinum and blood pool: heart chambers, aorta */
    LPM_TH_TUMOUR = 8,      /* lung nodules */
    LPM_TH_NLABELS = 9
};

/* Volumes of the thorax in the order of vols[]. */
enum { LPM_TH_CT, LPM_TH_PET, LPM_TH_LABELS, LPM_TH_NVOLS };
extern const char *const lpm_phantom_thorax_names[LPM_TH_NVOLS];

/* Allocate and fill the head's vols (t1, t2, flair, pd, ct, pet, spect, labels), each
 * (D,H,W) with 1 mm voxels. MR contrasts are in arbitrary units (~0..1000), CT in Hounsfield
 * units (air -1000, bone ~1200), PET and SPECT in counts (>= 0, PET up to ~20000).
 * Deterministic for a seed, whatever the thread count. D, H, W >= 8.
 * On failure nothing stays allocated. */
lpm_status lpm_phantom_make(lpm_volume vols[LPM_PH_NVOLS], int64_t D, int64_t H, int64_t W,
                            uint64_t seed);

/* The same for the thorax: ct (HU), pet (counts), labels. */
lpm_status lpm_phantom_thorax_make(lpm_volume vols[LPM_TH_NVOLS], int64_t D, int64_t H,
                                   int64_t W, uint64_t seed);

#endif
