/* libFuzzer harness for the NIfTI reader (src/io/nifti.c through nifti_clib).
 *
 * Each input is one .nii file's bytes. It is read three ways, so every mutation reaches each
 * container: as v.nii, gzip-compressed as v.nii.gz, and split into a p.hdr / p.img pair
 * (the single-file magic "n+1"/"n+2" turned into the pair magic "ni1"/"ni2"). Each file goes
 * through lpm_volume_read_header and lpm_volume_read; a volume that reads is checked voxel by
 * voxel, copied (header included) and, when small, written and read back. */
#include "fuzz_util.h"

#include <zlib.h>

enum { NIFTI2_HDR = 540, ROUND_TRIP_MAX_VOXELS = 4096 };

static void read_and_check(const char *path) {
    lpm_volume h, v;
    if (lpm_volume_read_header(path, &h) == LPM_OK) lpm_volume_free(&h);
    if (lpm_volume_read(path, &v) != LPM_OK) return;
    size_t n = (size_t)lpm_volume_numel(&v);
    volatile double sink = fuzz_touch(v.data, n);
    (void)sink;
    lpm_volume copy;
    if (lpm_volume_alloc_like(&copy, &v) == LPM_OK) lpm_volume_free(&copy);
    if (n <= ROUND_TRIP_MAX_VOXELS) {
        char out[1024];
        fuzz_path(out, sizeof out, "out.nii");
        lpm_volume back;
        if (lpm_volume_write(out, &v, &v) == LPM_OK && lpm_volume_read(out, &back) == LPM_OK) {
            if (back.nx != v.nx || back.ny != v.ny || back.nz != v.nz) {
                fprintf(stderr, "fuzz_nifti: %s: round trip changed %lldx%lldx%lld into %lldx%lldx%lld\n",
                        path, (long long)v.nx, (long long)v.ny, (long long)v.nz,
                        (long long)back.nx, (long long)back.ny, (long long)back.nz);
                abort();
            }
            lpm_volume_free(&back);
        }
        unlink(out);
    }
    lpm_volume_free(&v);
}

static void write_gz(const char *path, const uint8_t *data, size_t size) {
    gzFile gz = gzopen(path, "wb1");
    if (!gz || (size && gzwrite(gz, data, (unsigned)size) != (int)size) || gzclose(gz) != Z_OK) {
        fprintf(stderr, "%s: gzip write failed\n", path);
        abort();
    }
}

static uint32_t u32_either_order(const uint8_t *p, int big) {
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* A pair: both files are the whole input, the header file with the single-file magic made a
 * pair magic (the first int32 says which NIfTI version, in either byte order). The voxels
 * stay at vox_offset as in the .nii, and extensions are read from the header file as usual. */
static void write_pair(const char *hdr, const char *img, const uint8_t *data, size_t size) {
    size_t magic_at = 344;
    if (size >= NIFTI2_HDR &&
        (u32_either_order(data, 0) == NIFTI2_HDR || u32_either_order(data, 1) == NIFTI2_HDR))
        magic_at = 4;
    uint8_t *h = malloc(size ? size : 1);
    if (!h) abort();
    memcpy(h, data, size);
    if (magic_at + 4 <= size && h[magic_at] == 'n' && h[magic_at + 1] == '+') h[magic_at + 1] = 'i';
    fuzz_write(hdr, h, size);
    free(h);
    fuzz_write(img, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char nii[1024], gz[1024], hdr[1024], img[1024];
    if (!nii[0]) {
        fuzz_path(nii, sizeof nii, "v.nii");
        fuzz_path(gz, sizeof gz, "v.nii.gz");
        fuzz_path(hdr, sizeof hdr, "p.hdr");
        fuzz_path(img, sizeof img, "p.img");
    }
    fuzz_write(nii, data, size);
    read_and_check(nii);
    write_gz(gz, data, size);
    read_and_check(gz);
    write_pair(hdr, img, data, size);
    read_and_check(hdr);
    return 0;
}
