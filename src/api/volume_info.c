/* The public lpm_volume_file_info_get: the header details of a volume read from a file, from
 * the copy of its nifti_image that lpm_volume keeps (src/io/nifti.c), for `lpmnet info`. */
#include "core/core.h"

#include <nifti2_io.h>
#include <stdio.h>
#include <string.h>

/* nifti_clib's MSB_FIRST, which its header defines only for the library's own sources. */
enum { NIFTI_MSB_FIRST = 2 };

/* What the file is, from the header's own magic (the reader sets nifti_type from it), the
 * files' names and the byte order: "NIfTI-2 single file (.nii), gzip-compressed, big-endian". */
static void format_name(char *buf, size_t n, const nifti_image *h) {
    int v2 = h->nifti_type == NIFTI_FTYPE_NIFTI2_1 || h->nifti_type == NIFTI_FTYPE_NIFTI2_2;
    int pair = h->nifti_type == NIFTI_FTYPE_NIFTI1_2 || h->nifti_type == NIFTI_FTYPE_NIFTI2_2;
    int gz_hdr = h->fname && nifti_is_gzfile(h->fname), gz_img = h->iname && nifti_is_gzfile(h->iname);
    const char *version = h->nifti_type == NIFTI_FTYPE_ANALYZE ? "ANALYZE 7.5" : v2 ? "NIfTI-2" : "NIfTI-1";
    pair = pair || h->nifti_type == NIFTI_FTYPE_ANALYZE;
    snprintf(buf, n, "%s %s, %s, %s-endian", version, pair ? "pair (.hdr/.img)" : "single file (.nii)",
             gz_hdr && gz_img ? "gzip-compressed"
             : gz_img         ? "image gzip-compressed"
             : gz_hdr         ? "header gzip-compressed"
                              : "uncompressed",
             h->byteorder == NIFTI_MSB_FIRST ? "big" : "little");
}

lpm_status lpm_volume_file_info_get(const lpm_volume *v, lpm_volume_file_info *info) {
    if (!info) return lpm_fail(LPM_ERR_USAGE, "lpm_volume_file_info_get: no info given");
    memset(info, 0, sizeof *info);
    const nifti_image *h = v ? v->header : NULL;
    if (!h) return lpm_fail(LPM_ERR_USAGE, "this volume was not read from a file: it has no header to describe");
    format_name(info->format, sizeof info->format, h);
    snprintf(info->datatype, sizeof info->datatype, "%s", nifti_datatype_to_string(h->datatype));
    info->bytes_per_voxel = h->nbyper;
    info->scl_slope = h->scl_slope;
    info->scl_inter = h->scl_inter;
    info->data_offset = (int64_t)h->iname_offset;
    snprintf(info->data_file, sizeof info->data_file, "%s", h->iname ? h->iname : "");
    info->qform_code = h->qform_code;
    info->sform_code = h->sform_code;
    snprintf(info->qform_name, sizeof info->qform_name, "%s", nifti_xform_string(h->qform_code));
    snprintf(info->sform_name, sizeof info->sform_name, "%s", nifti_xform_string(h->sform_code));
    snprintf(info->description, sizeof info->description, "%.79s", h->descrip);
    return LPM_OK;
}
