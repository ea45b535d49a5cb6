/* For `make test-arm64` only (the aarch64 build of test_ops and test_model under qemu): no
 * aarch64 build of nifti_clib is installed, and those tests never read or write a NIfTI
 * file. They do call io/nifti.c's lpm_volume_alloc and lpm_volume_free, which are built
 * with -ffunction-sections and --gc-sections so that only these two nifti_clib functions
 * stay referenced, for a volume that carries a NIfTI header, which these tests never make.
 * If one is reached all the same, it says so and ends the program. */
#include <nifti2_io.h>
#include <stdio.h>
#include <stdlib.h>

static void no_nifti(const char *fn) {
    fprintf(stderr, "%s: this aarch64 test build has no nifti_clib (tests/arm64_nifti_stub.c)\n", fn);
    abort();
}

nifti_image *nifti_copy_nim_info(const nifti_image *src) {
    no_nifti("nifti_copy_nim_info");
    return NULL;
}

void nifti_image_free(nifti_image *nim) { no_nifti("nifti_image_free"); }
