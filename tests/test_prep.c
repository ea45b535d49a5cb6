/* Preprocessing: same-grid check, resampling through world coordinates, min-max normalisation.
 * Expected values come from direct index arithmetic and, where available, SciPy's
 * map_coordinates (order 1, zero padding), never from the code under test. */
#include "core/core.h"
#include "test.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill_random(lpm_volume *v, uint64_t seed) {
    lpm_rng r;
    lpm_rng_seed(&r, seed);
    for (int64_t i = 0; i < lpm_volume_numel(v); i++) v->data[i] = (float)(lpm_rng_uniform(&r) * 10 - 3);
}

static float at(const lpm_volume *v, int64_t x, int64_t y, int64_t z) {
    if (x < 0 || y < 0 || z < 0 || x >= v->nx || y >= v->ny || z >= v->nz) return 0;
    return v->data[x + v->nx * (y + v->ny * z)];
}

static void test_same_grid(void) {
    printf("same grid\n");
    lpm_volume a, b, c;
    lpm_volume_alloc(&a, 6, 5, 4);
    lpm_volume_alloc(&b, 6, 5, 4);
    lpm_volume_alloc(&c, 6, 4, 5);
    CHECK(lpm_check_same_grid(&a, &b, "a.nii", "b.nii") == LPM_OK, "%s", lpm_last_error());
    lpm_status s = lpm_check_same_grid(&a, &c, "a.nii", "c.nii");
    CHECK(s == LPM_ERR_INPUT && strstr(lpm_last_error(), "a.nii (6x5x4)") && strstr(lpm_last_error(), "c.nii (6x4x5)"),
          "dims message: %s", lpm_last_error());
    b.affine[1][3] = 0.9e-3;  /* within tolerance */
    CHECK(lpm_check_same_grid(&a, &b, "a.nii", "b.nii") == LPM_OK, "%s", lpm_last_error());
    b.affine[0][0] = 1.002;
    s = lpm_check_same_grid(&a, &b, "a.nii", "b.nii");
    CHECK(s == LPM_ERR_INPUT && strstr(lpm_last_error(), "a.nii") && strstr(lpm_last_error(), "b.nii") &&
              strstr(lpm_last_error(), "0.002"),
          "affine message: %s", lpm_last_error());
    b.affine[0][0] = NAN;
    CHECK(lpm_check_same_grid(&a, &b, "a.nii", "b.nii") == LPM_ERR_INPUT, "NaN affine accepted");
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_volume_free(&c);
}

static void test_resample(void) {
    printf("resample\n");
    lpm_volume src, ref, out;
    lpm_volume_alloc(&src, 7, 6, 5);
    fill_random(&src, 1);

    /* one grid (identity, then a flipped/offset affine as in BraTS headers): exact copy */
    lpm_volume_alloc_like(&ref, &src);
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
    CHECK(memcmp(out.data, src.data, 7 * 6 * 5 * sizeof(float)) == 0, "identity resample is not a copy");
    lpm_volume_free(&out);
    double flip[4][4] = {{-1, 0, 0, 0}, {0, -1, 0, 239}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    memcpy(src.affine, flip, sizeof flip);
    memcpy(ref.affine, flip, sizeof flip);
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
    CHECK(memcmp(out.data, src.data, 7 * 6 * 5 * sizeof(float)) == 0, "same-grid resample is not a copy");
    lpm_volume_free(&out);
    double oblique[4][4] = {{0.8, 0.3, 0.1, -5}, {-0.2, 0.9, 0.05, 7}, {0.1, -0.1, 2.1, 1.5}, {0, 0, 0, 1}};
    memcpy(src.affine, oblique, sizeof oblique);
    memcpy(ref.affine, oblique, sizeof oblique);
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
    CHECK(memcmp(out.data, src.data, 7 * 6 * 5 * sizeof(float)) == 0, "oblique same-grid resample is not a copy");
    lpm_volume_free(&out);

    /* src shifted by one voxel in world x: ref voxel i sees src voxel i+1, the last one nothing */
    double id[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    memcpy(ref.affine, id, sizeof id);
    memcpy(src.affine, id, sizeof id);
    src.affine[0][3] = -1;
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
    float *want = malloc(7 * 6 * 5 * sizeof(float));
    for (int z = 0; z < 5; z++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 7; x++) want[x + 7 * (y + 6 * z)] = at(&src, x + 1, y, z);
    CHECK_CLOSE("shift by one voxel", out.data, want, 7 * 6 * 5, 0, 0);
    lpm_volume_free(&out);

    /* ref with half the voxel size along x, on the same origin: odd voxels average two */
    lpm_volume_free(&ref);
    lpm_volume_alloc(&ref, 14, 6, 5);
    ref.affine[0][0] = 0.5;
    src.affine[0][3] = 0;
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
    float *want2 = malloc(14 * 6 * 5 * sizeof(float));
    for (int z = 0; z < 5; z++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 14; x++)
                want2[x + 14 * (y + 6 * z)] = x % 2 ? 0.5f * (at(&src, x / 2, y, z) + at(&src, x / 2 + 1, y, z))
                                                    : at(&src, x / 2, y, z);
    CHECK_CLOSE("half voxel size (midpoints)", out.data, want2, 14 * 6 * 5, 1e-6, 1e-6);
    CHECK(out.affine[0][0] == 0.5 && out.nx == 14, "out has ref's geometry");
    lpm_volume_free(&out);
    free(want2);

    /* an oblique, scaled and shifted grid against SciPy's map_coordinates */
    const char *python = test_env("LPM_PYTHON") ? test_env("LPM_PYTHON") : "/usr/bin/python3";
    const char *base = test_env("LPM_TMP") ? test_env("LPM_TMP") : "/tmp";
    mkdir(base, 0777);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_prep.XXXXXX", base);
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot make a scratch folder: %s", strerror(errno));
    } else {
        lpm_volume_free(&ref);
        lpm_volume_alloc(&ref, 9, 8, 6);
        double rs[4][4] = {{0.7, 0.2, 0, -1.3}, {-0.1, 0.8, 0.1, 0.4}, {0.05, 0, 0.9, -0.6}, {0, 0, 0, 1}};
        double ss[4][4] = {{1.1, 0, 0.1, 0.2}, {0, 0.9, 0, -0.5}, {0, 0.1, 1.2, 0.3}, {0, 0, 0, 1}};
        memcpy(ref.affine, rs, sizeof rs);
        memcpy(src.affine, ss, sizeof ss);
        CHECK(lpm_resample_to(&src, &ref, &out) == LPM_OK, "%s", lpm_last_error());
        char srcf[1100], wantf[1100], script[1100], cmd[4000];
        snprintf(srcf, sizeof srcf, "%s/src.f32", dir);
        snprintf(wantf, sizeof wantf, "%s/want.f32", dir);
        snprintf(script, sizeof script, "%s/resample.py", dir);
        FILE *fp = fopen(srcf, "wb");
        fwrite(src.data, sizeof(float), 7 * 6 * 5, fp);
        fclose(fp);
        fp = fopen(script, "w");
        fprintf(fp,
                "import numpy as np\nfrom scipy.ndimage import map_coordinates\n"
                "src = np.fromfile('%s', '<f4').reshape(5, 6, 7).astype(np.float64)  # (z, y, x)\n"
                "R = np.array(%s); S = np.array(%s)\n"
                "M = np.linalg.inv(S) @ R\n"
                "k, j, i = np.meshgrid(np.arange(6), np.arange(8), np.arange(9), indexing='ij')\n"
                "ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])\n"
                "p = M @ ijk\n"
                "v = map_coordinates(src, [p[2], p[1], p[0]], order=1, mode='grid-constant', cval=0.0)\n"
                "v.astype('<f4').tofile('%s')\n",
                srcf,
                "[[0.7,0.2,0,-1.3],[-0.1,0.8,0.1,0.4],[0.05,0,0.9,-0.6],[0,0,0,1]]",
                "[[1.1,0,0.1,0.2],[0,0.9,0,-0.5],[0,0.1,1.2,0.3],[0,0,0,1]]", wantf);
        fclose(fp);
        snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", python, script);
        int rc = system(cmd);
        float *ref_vals = malloc(9 * 8 * 6 * sizeof(float));
        fp = rc == 0 ? fopen(wantf, "rb") : NULL;
        if (fp && fread(ref_vals, sizeof(float), 9 * 8 * 6, fp) == 9 * 8 * 6) {
            int inside = 0;
            for (int q = 0; q < 9 * 8 * 6; q++) inside += ref_vals[q] != 0;
            CHECK(inside > 50, "too few voxels inside (%d): a weak test", inside);
            CHECK_CLOSE("oblique resample vs scipy", out.data, ref_vals, 9 * 8 * 6, 1e-5, 1e-5);
        } else {
            SKIP("oblique resample: no Python with numpy/scipy (%s)", python);
        }
        if (fp) fclose(fp);
        free(ref_vals);
        lpm_volume_free(&out);
        remove(srcf);
        remove(wantf);
        remove(script);
        rmdir(dir);
    }

    /* a singular source affine is an error */
    memset(src.affine, 0, sizeof src.affine);
    CHECK(lpm_resample_to(&src, &ref, &out) == LPM_ERR_INPUT, "singular affine accepted");
    free(want);
    lpm_volume_free(&src);
    lpm_volume_free(&ref);
}

static void test_normalize(void) {
    printf("normalize\n");
    lpm_volume v;
    lpm_volume_alloc(&v, 8, 7, 6);
    int64_t n = lpm_volume_numel(&v);
    /* already in [0, 1] with min exactly 0 and max exactly 1: unchanged bit for bit */
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    for (int64_t i = 0; i < n; i++) v.data[i] = (float)lpm_rng_uniform(&r);
    v.data[3] = 0.0f;
    v.data[100] = 1.0f;
    float *copy = malloc((size_t)n * sizeof(float));
    memcpy(copy, v.data, (size_t)n * sizeof(float));
    CHECK(lpm_normalize_minmax(&v, "a.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK(memcmp(copy, v.data, (size_t)n * sizeof(float)) == 0, "[0,1] input changed");

    /* general range: compare with the formula in double */
    for (int64_t i = 0; i < n; i++) v.data[i] = (float)(lpm_rng_uniform(&r) * 3000 - 1000);
    v.data[7] = -1234.5f;
    v.data[8] = 4321.25f;
    float *want = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) want[i] = (float)(((double)v.data[i] + 1234.5) / (4321.25 + 1234.5));
    CHECK(lpm_normalize_minmax(&v, "a.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("normalize general range", v.data, want, (size_t)n, 1e-7, 1e-6);
    CHECK(v.data[7] == 0.0f && v.data[8] == 1.0f, "ends %g %g", v.data[7], v.data[8]);

    /* errors */
    for (int64_t i = 0; i < n; i++) v.data[i] = 3;
    lpm_status s = lpm_normalize_minmax(&v, "c.nii");
    CHECK(s == LPM_ERR_INPUT && strstr(lpm_last_error(), "c.nii: constant volume (all voxels = 3), nothing to fuse"),
          "constant: %s", lpm_last_error());
    v.data[2 + 8 * (1 + 7 * 4)] = NAN;  /* (x,y,z) = (2,1,4) */
    s = lpm_normalize_minmax(&v, "n.nii");
    CHECK(s == LPM_ERR_INPUT && strstr(lpm_last_error(), "n.nii") && strstr(lpm_last_error(), "(2,1,4)") &&
              strstr(lpm_last_error(), "NaN"),
          "NaN: %s", lpm_last_error());
    v.data[2 + 8 * (1 + 7 * 4)] = 0;
    v.data[7 + 8 * (6 + 7 * 5)] = -INFINITY;  /* the last voxel */
    s = lpm_normalize_minmax(&v, "i.nii");
    CHECK(s == LPM_ERR_INPUT && strstr(lpm_last_error(), "(7,6,5)") && strstr(lpm_last_error(), "infinite"),
          "Inf: %s", lpm_last_error());
    /* a range too wide for float arithmetic still maps to [0, 1] */
    for (int64_t i = 0; i < n; i++) v.data[i] = 0;
    v.data[0] = -3e38f;
    v.data[1] = 3e38f;
    CHECK(lpm_normalize_minmax(&v, "w.nii") == LPM_OK && v.data[0] == 0 && v.data[1] == 1 && v.data[2] == 0.5f,
          "wide range: %g %g %g", v.data[0], v.data[1], v.data[2]);
    free(copy);
    free(want);
    lpm_volume_free(&v);
}

int main(void) {
    test_same_grid();
    test_resample();
    test_normalize();
    return test_summary();
}
