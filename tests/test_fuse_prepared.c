/* lpm_prepare_pair + lpm_fuse_prepared (include/lpmnet.h), through the public API only: the
 * dispatch to LPM-Net on the CPU (the result of lpm_fuse on the prepared pair, with its
 * options), to a classical method (lpm_classical_fuse on the prepared pair), the base and
 * detail components, lpm_fuse_pair as the two halves, and the device setting: its refusals,
 * and on a build or machine without a usable GPU a clear failure with nothing returned. */
#include "lpmnet.h"
#include "test.h"

/* Two smooth, different volumes on a grid that is not a multiple of 16, with a zero border
 * (the background the default fusion keeps at exactly 0). */
static void make_pair(lpm_volume *a, lpm_volume *b) {
    const int64_t nx = 18, ny = 16, nz = 13;
    if (lpm_volume_alloc(a, nx, ny, nz) || lpm_volume_alloc(b, nx, ny, nz)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++) {
                const int64_t i = x + nx * (y + ny * z);
                const int inside = x > 1 && x < nx - 2 && y > 1 && y < ny - 2 && z > 0 && z < nz - 1;
                a->data[i] = inside ? (float)(100 + 40 * sin(0.5 * x) + 3 * y) : 0;
                b->data[i] = inside ? (float)(900 - 25 * z + 60 * cos(0.4 * y + 0.2 * x)) : 0;
            }
}

static int same(const lpm_volume *x, const lpm_volume *y) {
    return x->data && y->data && !memcmp(x->data, y->data, (size_t)lpm_volume_numel(x) * sizeof(float));
}

static int error_has(const char *s) { return strstr(lpm_last_error(), s) != NULL; }

int main(void) {
    lpm_volume a = {0}, b = {0}, a01 = {0}, b01 = {0};
    lpm_weights w = {0};
    make_pair(&a, &b);
    if (lpm_weights_load_model(&w, "mri")) {
        printf("skip: the bundled model: %s\n", lpm_last_error());
        return 77;
    }
    const lpm_fuse_settings defaults = {.threads = 2};
    CHECK(lpm_prepare_pair(&a, "a.nii", &b, "b.nii", &defaults, &a01, &b01) == LPM_OK, "%s", lpm_last_error());
    CHECK(a01.nx == a.nx && a01.ny == a.ny && a01.nz == a.nz, "the prepared pair is on A's grid");

    printf("LPM-Net on the CPU\n");
    lpm_volume got = {0}, want = {0}, base = {0}, detail = {0}, want_base = {0}, want_detail = {0};
    CHECK(lpm_fuse_prepared(&w, &a01, &b01, &defaults, &got, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_fuse(&w, &a01, &b01, &want, NULL, NULL, &LPM_FUSE_DEFAULT, 2, NULL, NULL) == LPM_OK, "%s",
          lpm_last_error());
    CHECK(same(&got, &want), "default: lpm_fuse with LPM_FUSE_DEFAULT on the prepared pair");
    lpm_volume pair = {0};
    CHECK(lpm_fuse_pair(&w, &a, "a.nii", &b, "b.nii", &pair, &defaults) == LPM_OK && same(&pair, &got),
          "lpm_fuse_pair is the two halves: %s", lpm_last_error());
    lpm_volume_free(&pair), lpm_volume_free(&got), lpm_volume_free(&want);

    const lpm_fuse_settings exact = {.exact = 1, .threads = 2};
    CHECK(lpm_fuse_prepared(&w, &a01, &b01, &exact, &got, &base, &detail) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_fuse(&w, &a01, &b01, &want, &want_base, &want_detail, &LPM_FUSE_EXACT, 2, NULL, NULL) == LPM_OK,
          "%s", lpm_last_error());
    CHECK(same(&got, &want) && same(&base, &want_base) && same(&detail, &want_detail),
          "exact: fused, base and detail of lpm_fuse with LPM_FUSE_EXACT");
    lpm_volume_free(&got), lpm_volume_free(&want), lpm_volume_free(&base), lpm_volume_free(&detail);
    lpm_volume_free(&want_base), lpm_volume_free(&want_detail);

    const lpm_fuse_settings two = {.passes = 2, .threads = 2};
    const lpm_fuse_options two_passes = {2, 1};
    CHECK(lpm_fuse_prepared(&w, &a01, &b01, &two, &got, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_fuse(&w, &a01, &b01, &want, NULL, NULL, &two_passes, 2, NULL, NULL) == LPM_OK, "%s",
          lpm_last_error());
    CHECK(same(&got, &want), "passes 2: lpm_fuse with {2, 1}");
    lpm_volume_free(&got), lpm_volume_free(&want);

    printf("a classical method\n");
    const lpm_fuse_settings pca = {.method = "pca", .threads = 2};
    CHECK(lpm_fuse_prepared(NULL, &a01, &b01, &pca, &got, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_alloc_like(&want, &a01) == LPM_OK &&
              lpm_classical_fuse("pca", a01.data, b01.data, want.data, a01.nz, a01.ny, a01.nx) == LPM_OK,
          "%s", lpm_last_error());
    CHECK(same(&got, &want), "pca: lpm_classical_fuse on the prepared pair");
    lpm_volume_free(&got), lpm_volume_free(&want);
    CHECK(lpm_fuse_prepared(NULL, &a01, &b01, &pca, &got, &base, NULL) == LPM_ERR_USAGE && !got.data && !base.data,
          "base from a classical method is refused: %s", lpm_last_error());
    CHECK(lpm_fuse_prepared(NULL, &a01, &b01, &defaults, &got, NULL, NULL) == LPM_ERR_USAGE && !got.data,
          "LPM-Net without weights is refused: %s", lpm_last_error());

    printf("the device\n");
    const lpm_fuse_settings bad_device = {.device = 2};
    CHECK(lpm_fuse_prepared(&w, &a01, &b01, &bad_device, &got, NULL, NULL) == LPM_ERR_USAGE && !got.data &&
              error_has("device"), "device 2: %s", lpm_last_error());
    const lpm_fuse_settings gpu_max = {.method = "max", .device = 1};
    CHECK(lpm_fuse_prepared(NULL, &a01, &b01, &gpu_max, &got, NULL, NULL) == LPM_ERR_USAGE && !got.data &&
              error_has("LPM-Net only"), "a classical method on the GPU: %s", lpm_last_error());
    const lpm_fuse_settings gpu_two = {.passes = 2, .device = 1};
    CHECK(lpm_fuse_prepared(&w, &a01, &b01, &gpu_two, &got, NULL, NULL) == LPM_ERR_USAGE && !got.data &&
              error_has("one pass"), "two passes on the GPU: %s", lpm_last_error());
    const lpm_fuse_settings gpu = {.device = 1, .threads = 2};
    char why[512];
    if (lpm_cuda_available(why, sizeof why)) {
        /* the authors' single pass on the GPU: lpm_fuse's exact result within float rounding */
        printf("  (GPU: %s)\n", why);
        CHECK(lpm_fuse_prepared(&w, &a01, &b01, &gpu, &got, &base, &detail) == LPM_OK, "%s", lpm_last_error());
        CHECK(lpm_fuse(&w, &a01, &b01, &want, NULL, NULL, &LPM_FUSE_EXACT, 2, NULL, NULL) == LPM_OK, "%s",
              lpm_last_error());
        if (got.data && want.data)
            CHECK_CLOSE("GPU vs CPU exact", got.data, want.data, (size_t)lpm_volume_numel(&want), 1e-4, 0);
        CHECK(base.data && detail.data, "the GPU gives base and detail");
    } else {
        printf("  (no GPU: %s)\n", why);
        CHECK(lpm_fuse_prepared(&w, &a01, &b01, &gpu, &got, &base, &detail) != LPM_OK && !got.data &&
                  !base.data && !detail.data && *lpm_last_error(),
              "device 1 without a usable GPU fails, returning nothing: %s", lpm_last_error());
        lpm_volume pair_gpu = {0};
        CHECK(lpm_fuse_pair(&w, &a, "a.nii", &b, "b.nii", &pair_gpu, &gpu) != LPM_OK && !pair_gpu.data,
              "lpm_fuse_pair with device 1 too: %s", lpm_last_error());
    }
    lpm_volume_free(&got), lpm_volume_free(&want), lpm_volume_free(&base), lpm_volume_free(&detail);

    lpm_volume_free(&a), lpm_volume_free(&b), lpm_volume_free(&a01), lpm_volume_free(&b01);
    lpm_weights_free(&w);
    return test_summary();
}
