/* The public functions `lpmnet eval`, `lpmnet metrics` and the --html pages are built on
 * (include/lpmnet.h): choosing metrics, the seam index with its reason, and finding a file
 * under share/lpmnet. Uses only lpmnet.h. */
#include "lpmnet.h"
#include "test.h"

#include <limits.h>

/* A smooth volume with some structure, values in [0, 1]. */
static void fill(lpm_volume *v, double phase) {
    for (int64_t z = 0; z < v->nz; z++)
        for (int64_t y = 0; y < v->ny; y++)
            for (int64_t x = 0; x < v->nx; x++)
                v->data[(z * v->ny + y) * v->nx + x] =
                    (float)(0.5 + 0.25 * sin(0.3 * (double)x + phase) * cos(0.2 * (double)y) +
                            0.2 * sin(0.25 * (double)z + 2 * phase));
}

static void test_parse(void) {
    unsigned which = 0;
    CHECK(lpm_metrics_parse("ssim,QABF,rsfe", &which) == LPM_OK && which == (1u | 2u | (1u << 11)),
          "ssim,QABF,rsfe -> %#x", which);
    CHECK(lpm_metrics_parse("all", &which) == LPM_OK && which == LPM_METRICS_ALL, "all -> %#x", which);
    which = 5;
    CHECK(lpm_metrics_parse("ssim,nope", &which) == LPM_ERR_USAGE && strstr(lpm_last_error(), "nope") &&
              which == 5,
          "an unknown name: %s", lpm_last_error());
    CHECK(lpm_metrics_parse("ssim,", &which) == LPM_ERR_USAGE, "a trailing comma");
    for (int i = 0; i < LPM_METRIC_COUNT; i++) {
        CHECK(lpm_metrics_parse(lpm_metric_name(i), &which) == LPM_OK && which == 1u << i, "%s is bit %d",
              lpm_metric_name(i), i);
    }
}

static void test_select_and_seam(void) {
    lpm_volume a = {0}, b = {0}, f = {0}, thin = {0};
    CHECK(lpm_volume_alloc(&a, 40, 36, 20) == LPM_OK && lpm_volume_alloc(&b, 40, 36, 20) == LPM_OK &&
              lpm_volume_alloc(&f, 40, 36, 20) == LPM_OK && lpm_volume_alloc(&thin, 40, 36, 12) == LPM_OK,
          "alloc");
    fill(&a, 0), fill(&b, 1), fill(&f, 0.4), fill(&thin, 0.7);
    for (int64_t i = 0; i < lpm_volume_numel(&f); i++) f.data[i] = 0.5f * (a.data[i] + b.data[i]);

    double all[LPM_METRIC_COUNT], some[LPM_METRIC_COUNT];
    unsigned which = 0;
    CHECK(lpm_metrics_volumes(all, &a, &b, &f, NULL, 1) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_metrics_parse("ssim,psnr,rsfe", &which) == LPM_OK, "parse");
    CHECK(lpm_metrics_select(some, &a, &b, &f, NULL, 1, which) == LPM_OK, "%s", lpm_last_error());
    for (int i = 0; i < LPM_METRIC_COUNT; i++) {
        if (which & (1u << i))
            CHECK(some[i] == all[i], "%s selected: %.17g, all: %.17g", lpm_metric_name(i), some[i], all[i]);
        else
            CHECK(isnan(some[i]), "%s not selected: NAN, got %g", lpm_metric_name(i), some[i]);
    }
    CHECK(lpm_metrics_select(some, &a, &b, &f, NULL, 1, LPM_METRICS_ALL) == LPM_OK &&
              !memcmp(some, all, sizeof all),
          "every metric selected = lpm_metrics_volumes");
    CHECK(lpm_metrics_select(some, &a, &b, &thin, NULL, 1, LPM_METRICS_ALL) == LPM_ERR_INPUT, "another grid");

    double seam[3], seam_why[3];
    const char *why[3] = {"x", "x", "x"};
    CHECK(lpm_seam_volume(seam, &f, NULL, 1) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_seam_volume_why(seam_why, why, &f, NULL, 1) == LPM_OK, "%s", lpm_last_error());
    CHECK(!memcmp(seam, seam_why, sizeof seam), "lpm_seam_volume_why gives lpm_seam_volume's indices");
    for (int k = 0; k < 3; k++) CHECK(!why[k] && !isnan(seam[k]), "axis %d defined: no reason", k);
    CHECK(lpm_seam_volume_why(seam_why, why, &thin, NULL, 1) == LPM_OK && why[2] && isnan(seam_why[2]),
          "a 12-plane axis: undefined with a reason");
    CHECK(lpm_seam_volume_why(seam_why, NULL, &thin, NULL, 1) == LPM_OK, "why may be NULL");
    lpm_volume_free(&a), lpm_volume_free(&b), lpm_volume_free(&f), lpm_volume_free(&thin);
}

static void test_share_path(void) {
    char path[PATH_MAX + 64], model[PATH_MAX + 64];
    lpm_status st = lpm_share_path("niivue/niivue.umd.js", path, sizeof path);
    CHECK(st == LPM_OK && strstr(path, "niivue/niivue.umd.js"), "the viewer script: %s",
          st ? lpm_last_error() : path);
    st = lpm_share_path("no-such-file.txt", path, sizeof path);
    CHECK(st == LPM_ERR_INPUT && strstr(lpm_last_error(), "no-such-file.txt") && strstr(lpm_last_error(), "/"),
          "a missing file names itself and the places: %s", lpm_last_error());
    char tiny[8];
    st = lpm_share_path("niivue/niivue.umd.js", tiny, sizeof tiny);
    CHECK(st == LPM_ERR_USAGE && strstr(lpm_last_error(), "does not fit"), "a short buffer: %s", lpm_last_error());
    CHECK(lpm_share_path("", path, sizeof path) == LPM_ERR_USAGE, "an empty name");
    /* the models are found the same way */
    st = lpm_model_path("mri", ".md", model, sizeof model);
    if (st == LPM_OK) {
        CHECK(lpm_share_path("lpmnet-mri.md", path, sizeof path) == LPM_OK && !strcmp(path, model),
              "lpm_model_path = lpm_share_path: %s vs %s", model, path);
    } else {
        CHECK(st == LPM_ERR_USAGE && strstr(lpm_last_error(), "is not installed here"), "no model: %s",
              lpm_last_error());
    }
}

int main(void) {
    test_parse();
    test_select_and_seam();
    test_share_path();
    return test_summary();
}
