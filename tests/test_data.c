/* Training data: dataset discovery (folders, CSV, split files), epoch order, resize against
 * scikit-image, and the augmentations of a sample: the random contrast curve (--aug-gamma),
 * quarter turns (--aug-rotate) and noise (--aug-noise). */
#include "test.h"
#include "train/data.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[4096];

static void touch(const char *rel) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

static void mkdirs(const char *rel) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    mkdir(p, 0755);
}

static void test_folder_dataset(void) {
    mkdirs("ds");
    mkdirs("ds/sub01");
    mkdirs("ds/sub02");
    mkdirs("ds/sub03");
    touch("ds/sub01/BraTS-GLI-00001-000-t1n.nii.gz");
    touch("ds/sub01/BraTS-GLI-00001-000-t2w.nii.gz");
    touch("ds/sub01/BraTS-GLI-00001-000-t1c.nii.gz");
    touch("ds/sub02/x_t1n.nii");
    touch("ds/sub02/x_t2w.nii");
    touch("ds/sub02/x_seg.nii");
    touch("ds/sub03/only_t1n.nii.gz"); /* no t2w: skipped */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ds", tmp);
    lpm_dataset ds;
    lpm_status st = lpm_dataset_open(&ds, dir, "t1n,t2w", NULL, NULL);
    CHECK(st == LPM_OK, "open folder: %s", lpm_last_error());
    CHECK(ds.n == 2, "2 complete subjects, got %d", ds.n);
    if (ds.n == 2) {
        CHECK(strstr(ds.cases[0].a, "sub01/BraTS-GLI-00001-000-t1n.nii.gz") != NULL, "a[0] = %s", ds.cases[0].a);
        CHECK(strstr(ds.cases[1].b, "sub02/x_t2w.nii") != NULL, "b[1] = %s", ds.cases[1].b);
        CHECK(!strcmp(ds.cases[1].name, "sub02"), "name %s", ds.cases[1].name);
        CHECK(ds.cases[1].line == 0 && !ds.cases[1].mask && !ds.cases[1].out, "a folder case: no line, mask, out");
    }
    lpm_dataset_free(&ds);

    /* key words are whole words: "t1" must not match "t1n" */
    st = lpm_dataset_open(&ds, dir, "t1,t2", NULL, NULL);
    CHECK(st == LPM_ERR_INPUT, "no t1/t2 words -> input error, got %d", st);
    CHECK(strstr(lpm_last_error(), "t1") != NULL, "message names the keys: %s", lpm_last_error());

    st = lpm_dataset_open(&ds, dir, NULL, NULL, NULL);
    CHECK(st == LPM_ERR_USAGE, "folder without --pair is a usage error");

    /* the authors' split file */
    FILE *f = fopen(strcat(dir, "/IndicesTest.txt"), "w");
    fprintf(f, "1\n");
    fclose(f);
    snprintf(dir, sizeof dir, "%s/ds", tmp);
    st = lpm_dataset_open(&ds, dir, "t1n,t2w", "seg", "test");
    CHECK(st == LPM_OK && ds.n == 1 && !strcmp(ds.cases[0].name, "sub02"), "split keeps sub02 (n=%d)", ds.n);
    if (st == LPM_OK && ds.n == 1) CHECK(ds.cases[0].mask && strstr(ds.cases[0].mask, "x_seg.nii"), "mask found");
    lpm_dataset_free(&ds);
    st = lpm_dataset_open(&ds, dir, "t1n,t2w", NULL, "train");
    CHECK(st == LPM_OK && ds.n == 2, "no IndicesTrain.txt: all cases (n=%d)", ds.n);
    lpm_dataset_free(&ds);

    /* one subject folder given directly (like a phantom folder) */
    mkdirs("phantom");
    touch("phantom/t1.nii.gz");
    touch("phantom/t2.nii.gz");
    touch("phantom/labels.nii.gz");
    snprintf(dir, sizeof dir, "%s/phantom", tmp);
    st = lpm_dataset_open(&ds, dir, "t1,t2", NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 1, "single subject folder (n=%d)", ds.n);
    if (st == LPM_OK && ds.n == 1) CHECK(!strcmp(ds.cases[0].name, "phantom"), "named after its folder: %s", ds.cases[0].name);
    lpm_dataset_free(&ds);
    strcat(dir, "/.");  /* "phantom/." is the folder phantom too */
    st = lpm_dataset_open(&ds, dir, "t1,t2", NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 1 && !strcmp(ds.cases[0].name, "phantom"), "phantom/. named phantom: %s",
          st == LPM_OK && ds.n == 1 ? ds.cases[0].name : lpm_last_error());
    lpm_dataset_free(&ds);

    /* subject folder names with characters unfit for file names, equal once mended */
    mkdirs("odd");
    mkdirs("odd/a b");
    mkdirs("odd/a_b");
    mkdirs("odd/c'd");
    touch("odd/a b/t1.nii");
    touch("odd/a b/t2.nii");
    touch("odd/a_b/t1.nii");
    touch("odd/a_b/t2.nii");
    touch("odd/c'd/t1.nii");
    touch("odd/c'd/t2.nii");
    snprintf(dir, sizeof dir, "%s/odd", tmp);
    st = lpm_dataset_open(&ds, dir, "t1,t2", NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 3, "odd folder names (n=%d): %s", ds.n, lpm_last_error());
    if (st == LPM_OK && ds.n == 3)
        CHECK(!strcmp(ds.cases[0].name, "a_b_1") && !strcmp(ds.cases[1].name, "a_b_2") &&
              !strcmp(ds.cases[2].name, "c_d_3"), "names made safe and distinct: %s %s %s", ds.cases[0].name,
              ds.cases[1].name, ds.cases[2].name);
    lpm_dataset_free(&ds);
}

/* A CSV's cases are named after their A files: the stem, else folder and stem, else stem
 * and line. */
static void test_csv_names(void) {
    static const struct {
        const char *rows, *names[3];
    } tests[] = {
        {"s1/t1.nii.gz,b.nii\ns2/T2w.img,b.nii\n# skipped\nflair.hdr.gz,b.nii\n", {"t1", "T2w", "flair"}},
        {"s1/t1.nii.gz,b.nii\ns2/t1.nii,b.nii\n/x/s3/t1.nii.gz,b.nii\n", {"s1_t1", "s2_t1", "s3_t1"}},
        {"s1/t1.nii.gz,b.nii\ns1/t1.nii.gz,c.nii\n\ns2/t1.nii,b.nii\n", {"t1_line2", "t1_line3", "t1_line5"}},
        {"my scans/sub 1.nii.gz,b.nii\n\"q\"/x.y.nii,b.nii\n", {"sub_1", "x.y"}},
    };
    char path[4200];
    snprintf(path, sizeof path, "%s/names.csv", tmp);
    for (size_t t = 0; t < sizeof tests / sizeof tests[0]; t++) {
        FILE *f = fopen(path, "w");
        fprintf(f, "a,b\n%s", tests[t].rows);
        fclose(f);
        lpm_dataset ds;
        int want = tests[t].names[2] ? 3 : 2;
        lpm_status st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
        CHECK(st == LPM_OK && ds.n == want, "csv names %zu: n=%d %s", t, ds.n, lpm_last_error());
        for (int i = 0; st == LPM_OK && i < ds.n && i < want; i++)
            CHECK(!strcmp(ds.cases[i].name, tests[t].names[i]), "csv names %zu: case %d is %s, want %s", t, i,
                  ds.cases[i].name, tests[t].names[i]);
        if (st == LPM_OK) lpm_dataset_free(&ds);
    }
}

static void test_csv_dataset(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/pairs.csv", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "a,b,mask\nds/sub01/a.nii.gz, ds/sub01/b.nii.gz ,m.nii\n/abs/a.nii,/abs/b.nii,/abs/m.nii\n");
    fclose(f);
    lpm_dataset ds;
    lpm_status st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 2, "csv rows: %s", lpm_last_error());
    if (st == LPM_OK && ds.n == 2) {
        CHECK(!strcmp(ds.cases[0].b + strlen(tmp), "/ds/sub01/b.nii.gz"), "relative path: %s", ds.cases[0].b);
        CHECK(!strcmp(ds.cases[1].a, "/abs/a.nii"), "absolute path kept: %s", ds.cases[1].a);
        CHECK(ds.cases[0].mask != NULL && !ds.cases[0].out, "mask column, no out column");
        CHECK(ds.cases[0].line == 2 && ds.cases[1].line == 3, "lines %d, %d", ds.cases[0].line, ds.cases[1].line);
    }
    lpm_dataset_free(&ds);
    /* a spreadsheet export: byte-order mark, a comment before the header, CRLF endings */
    f = fopen(path, "w");
    fprintf(f, "\xEF\xBB\xBF# exported pairs\r\n\r\na,b\r\nx/a.nii,x/b.nii\r\n");
    fclose(f);
    st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 1 && strstr(ds.cases[0].b, "x/b.nii") && !strchr(ds.cases[0].b, '\r') &&
          ds.cases[0].line == 4 && !strcmp(ds.cases[0].name, "a"),
          "BOM, comment and CRLF: %s", lpm_last_error());
    lpm_dataset_free(&ds);
    f = fopen(path, "w");
    fprintf(f, "a,b,out,mask\nx/a.nii,x/b.nii,o.nii,m.nii\n");
    fclose(f);
    st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 1 && strstr(ds.cases[0].out, "/o.nii") && strstr(ds.cases[0].mask, "/m.nii"),
          "out and mask columns in either order: %s", lpm_last_error());
    lpm_dataset_free(&ds);
    f = fopen(path, "w");
    fprintf(f, "a,b,mask\nx/a.nii,x/b.nii,\n");
    fclose(f);
    st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_ERR_INPUT, "an empty mask field is an error");
    f = fopen(path, "w");
    fprintf(f, "x,y\n1,2\n");
    fclose(f);
    st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_ERR_INPUT && strstr(lpm_last_error(), "pairs.csv"), "bad header: %s", lpm_last_error());
}

static void test_epoch_order(void) {
    int o1[50], o2[50], o3[50], seen[50] = {0};
    lpm_epoch_order(o1, 50, 7, 3);
    lpm_epoch_order(o2, 50, 7, 3);
    lpm_epoch_order(o3, 50, 7, 4);
    int same = 1, differs = 0;
    for (int i = 0; i < 50; i++) {
        seen[o1[i]]++;
        same &= o1[i] == o2[i];
        differs |= o1[i] != o3[i];
    }
    int perm = 1;
    for (int i = 0; i < 50; i++) perm &= seen[i] == 1;
    CHECK(perm, "order is a permutation");
    CHECK(same, "same seed and epoch, same order");
    CHECK(differs, "another epoch, another order");
}

/* lpm_resize against scikit-image's resize(order=1, anti_aliasing=True) where installed. */
static void test_resize(void) {
    const int64_t D = 9, H = 14, W = 11;
    float in[9 * 14 * 11];
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    for (int i = 0; i < D * H * W; i++) in[i] = (float)lpm_rng_uniform(&r);
    float same[9 * 14 * 11];
    CHECK(lpm_resize(same, D, H, W, in, D, H, W) == LPM_OK, "resize");
    CHECK_CLOSE("resize to the same shape is a copy", same, in, (size_t)(D * H * W), 0, 0);

    const char *py = test_env("LPM_PYTHON");
    if (!py) py = "/usr/bin/python3";
    char in_path[4200], out_path[4200], cmd[10000];
    snprintf(in_path, sizeof in_path, "%s/resize_in.f32", tmp);
    snprintf(out_path, sizeof out_path, "%s/resize_out.f32", tmp);
    FILE *f = fopen(in_path, "wb");
    fwrite(in, sizeof(float), (size_t)(D * H * W), f);
    fclose(f);
    const int64_t shapes[2][3] = {{5, 7, 16}, {16, 20, 6}};
    for (int s = 0; s < 2; s++) {
        const int64_t *o = shapes[s];
        snprintf(cmd, sizeof cmd,
                 "%s -c \"import numpy as np, sys\n"
                 "from skimage.transform import resize\n"
                 "x = np.fromfile('%s', np.float32).reshape(%lld, %lld, %lld).astype(np.float64)\n"
                 "resize(x, (%lld, %lld, %lld), order=1, mode='reflect', anti_aliasing=True).astype(np.float32).tofile('%s')\" 2>/dev/null",
                 py, in_path, (long long)D, (long long)H, (long long)W, (long long)o[0], (long long)o[1],
                 (long long)o[2], out_path);
        if (system(cmd) != 0) {
            SKIP("scikit-image not available: resize not compared");
            return;
        }
        size_t n = (size_t)(o[0] * o[1] * o[2]);
        float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
        f = fopen(out_path, "rb");
        size_t nread = fread(want, sizeof(float), n, f);
        fclose(f);
        CHECK(nread == n, "read skimage output");
        CHECK(lpm_resize(got, o[0], o[1], o[2], in, D, H, W) == LPM_OK, "resize");
        CHECK_CLOSE(s == 0 ? "resize (shrink) vs scikit-image" : "resize (grow) vs scikit-image", got, want,
                    n, 1e-4, 1e-4);
        free(want);
        free(got);
    }
}

/* One case of two 32x32x16 volumes with varied values, for the augmentation tests. */
static lpm_status augmentation_data(lpm_dataset *ds, const char *name) {
    lpm_volume a = {0}, b = {0};
    if (lpm_volume_alloc(&a, 32, 32, 16) || lpm_volume_alloc(&b, 32, 32, 16)) return LPM_ERR_INTERNAL;
    const size_t n = 32 * 32 * 16;
    for (size_t i = 0; i < n; i++) {
        a.data[i] = (float)(i % 97);
        b.data[i] = (float)((i * 7) % 89) * 0.5f;
    }
    char pa[4200], pb[4200], csv[4200];
    snprintf(pa, sizeof pa, "%s/%s_a.nii", tmp, name);
    snprintf(pb, sizeof pb, "%s/%s_b.nii", tmp, name);
    snprintf(csv, sizeof csv, "%s/%s.csv", tmp, name);
    FILE *f = fopen(csv, "w");
    if (f) fprintf(f, "a,b\n%s,%s\n", pa, pb), fclose(f);
    lpm_status st = lpm_volume_write(pa, &a, NULL);
    if (!st) st = lpm_volume_write(pb, &b, NULL);
    if (!st) st = lpm_dataset_open(ds, csv, NULL, NULL, NULL);
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    CHECK(st == LPM_OK && ds->n == 1, "%s data: %s", name, lpm_last_error());
    return st ? st : ds->n == 1 ? LPM_OK : LPM_ERR_INTERNAL;
}

/* gamma_max > 1: A and B are each the plain sample raised to its own power in
 * [1/gamma_max, gamma_max] (0 and 1 kept), the same for the same rng state; gamma_max 1
 * changes nothing and draws nothing (a run without it keeps its crops). */
static void test_random_contrast(void) {
    lpm_dataset ds = {0};
    if (augmentation_data(&ds, "contrast")) return;
    lpm_status st;
    lpm_sample_spec spec = {.crop = {16, 16, 16}, .mode = 1, .aug = {.flip = 1}};
    lpm_sample plain, same, curved, again;
    lpm_rng r1, r2, r3, r4;
    lpm_rng_seed(&r1, 5), lpm_rng_seed(&r2, 5), lpm_rng_seed(&r3, 5), lpm_rng_seed(&r4, 5);
    st = lpm_make_sample(&plain, &ds, 0, &spec, &r1);
    spec.aug.gamma_max = 1;
    if (!st) st = lpm_make_sample(&same, &ds, 0, &spec, &r2);
    spec.aug.gamma_max = 2;
    if (!st) st = lpm_make_sample(&curved, &ds, 0, &spec, &r3);
    if (!st) st = lpm_make_sample(&again, &ds, 0, &spec, &r4);
    CHECK(st == LPM_OK, "samples: %s", lpm_last_error());
    if (!st) {
        const size_t m = 16 * 16 * 16;
        CHECK(!memcmp(plain.a, same.a, m * sizeof(float)) && !memcmp(plain.b, same.b, m * sizeof(float)) &&
              !memcmp(&r1, &r2, sizeof r1), "gamma_max 1: the plain sample, the same random numbers drawn");
        CHECK(!memcmp(curved.a, again.a, m * sizeof(float)) && !memcmp(curved.b, again.b, m * sizeof(float)),
              "the same rng state, the same curves");
        double g[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            const float *p = k ? plain.b : plain.a, *c = k ? curved.b : curved.a;
            int fit = 1, zeros = 1, ones = 1, found = 0;
            for (size_t i = 0; i < m; i++) {
                if (p[i] == 0) zeros &= c[i] == 0;
                else if (p[i] == 1) ones &= c[i] == 1;
                else if (!found) g[k] = log(c[i]) / log(p[i]), found = 1;
                else fit &= fabs(c[i] - pow(p[i], g[k])) < 2e-6;
            }
            CHECK(found && fit && zeros && ones && g[k] >= 0.5 - 1e-6 && g[k] <= 2 + 1e-6,
                  "input %c: one power %.4f in [1/2, 2] for every voxel (fits %d), 0 and 1 kept (%d, %d)",
                  "AB"[k], g[k], fit, zeros, ones);
        }
        CHECK(fabs(g[0] - g[1]) > 1e-4 && fabs(g[0] - 1) > 1e-4, "A and B get their own curves: %.4f, %.4f",
              g[0], g[1]);
    }
    lpm_sample_free(&plain), lpm_sample_free(&same), lpm_sample_free(&curved), lpm_sample_free(&again);
    lpm_dataset_free(&ds);
}

/* rotate: A and B are the plain sample (drawn from the same rng state) turned alike by one of
 * 0-3 quarter turns in the (H, W) plane, the same for the same state; over a few states more
 * than one turn occurs. */
static void test_quarter_turns(void) {
    lpm_dataset ds = {0};
    if (augmentation_data(&ds, "turns")) return;
    const int64_t D = 16, N = 16;
    int seen[4] = {0};
    for (uint64_t seed = 1; seed <= 6; seed++) {
        lpm_sample_spec spec = {.crop = {D, N, N}, .mode = 1, .aug = {.flip = 1}};
        lpm_sample plain, turned, again;
        lpm_rng r1, r2, r3;
        lpm_rng_seed(&r1, seed), lpm_rng_seed(&r2, seed), lpm_rng_seed(&r3, seed);
        lpm_status st = lpm_make_sample(&plain, &ds, 0, &spec, &r1);
        spec.aug.rotate = 1;
        if (!st) st = lpm_make_sample(&turned, &ds, 0, &spec, &r2);
        if (!st) st = lpm_make_sample(&again, &ds, 0, &spec, &r3);
        CHECK(st == LPM_OK, "turned samples: %s", lpm_last_error());
        if (st) return;
        const size_t m = (size_t)(D * N * N);
        int turns = -1;
        for (int k = 0; k < 4 && turns < 0; k++) {
            int same = 1;
            for (int64_t z = 0; z < D && same; z++)
                for (int64_t y = 0; y < N && same; y++)
                    for (int64_t x = 0; x < N && same; x++) {
                        /* k quarter turns of (y, x): each takes (y, x) from (x, N-1-y) */
                        int64_t sy = y, sx = x;
                        for (int t = 0; t < k; t++) {
                            const int64_t ty = sx, tx = N - 1 - sy;
                            sy = ty, sx = tx;
                        }
                        const size_t dst = (size_t)((z * N + y) * N + x), src = (size_t)((z * N + sy) * N + sx);
                        same = turned.a[dst] == plain.a[src] && turned.b[dst] == plain.b[src];
                    }
            if (same) turns = k;
        }
        CHECK(turns >= 0, "seed %llu: A and B are the plain sample turned alike by 0-3 quarter turns",
              (unsigned long long)seed);
        CHECK(!memcmp(turned.a, again.a, m * sizeof(float)) && !memcmp(turned.b, again.b, m * sizeof(float)),
              "seed %llu: the same rng state, the same turn", (unsigned long long)seed);
        if (turns >= 0) seen[turns] = 1;
        lpm_sample_free(&plain), lpm_sample_free(&turned), lpm_sample_free(&again);
    }
    CHECK(seen[0] + seen[1] + seen[2] + seen[3] >= 2, "6 seeds drew more than one number of turns");
    lpm_sample_spec wide = {.crop = {16, 16, 32}, .mode = 1, .aug = {.rotate = 1}};
    lpm_sample s;
    lpm_rng r;
    lpm_rng_seed(&r, 1);
    CHECK(lpm_make_sample(&s, &ds, 0, &wide, &r) == LPM_ERR_USAGE, "a sample with H != W is refused");
    lpm_dataset_free(&ds);
}

/* noise_max > 0: every nonzero voxel moves by at most a few standard deviations (<= 6 of
 * noise_max), zeros stay 0, values stay in [0, 1], A and B get their own standard deviation,
 * and the same rng state gives the same noise. */
static void test_random_noise(void) {
    lpm_dataset ds = {0};
    if (augmentation_data(&ds, "noise")) return;
    lpm_sample_spec spec = {.crop = {16, 16, 16}, .mode = 1, .aug = {.flip = 1}};
    lpm_sample plain, noisy, again;
    lpm_rng r1, r2, r3;
    lpm_rng_seed(&r1, 9), lpm_rng_seed(&r2, 9), lpm_rng_seed(&r3, 9);
    lpm_status st = lpm_make_sample(&plain, &ds, 0, &spec, &r1);
    spec.aug.noise_max = 0.1;
    if (!st) st = lpm_make_sample(&noisy, &ds, 0, &spec, &r2);
    if (!st) st = lpm_make_sample(&again, &ds, 0, &spec, &r3);
    CHECK(st == LPM_OK, "noisy samples: %s", lpm_last_error());
    if (st) return;
    const size_t m = 16 * 16 * 16;
    double sd[2];
    for (int k = 0; k < 2; k++) {
        const float *p = k ? plain.b : plain.a, *q = k ? noisy.b : noisy.a;
        int zeros = 1, range = 1, bounded = 1;
        double sum2 = 0;
        size_t count = 0;
        for (size_t i = 0; i < m; i++) {
            range &= q[i] >= 0 && q[i] <= 1;
            if (p[i] == 0) zeros &= q[i] == 0;
            else bounded &= fabs(q[i] - p[i]) <= 0.6;
            if (p[i] > 0.2 && p[i] < 0.8) sum2 += (q[i] - p[i]) * (q[i] - p[i]), count++;
        }
        sd[k] = count ? sqrt(sum2 / (double)count) : 0;
        CHECK(zeros && range && bounded && count > 1000 && sd[k] <= 0.1 * 1.1,
              "input %c: zeros kept (%d), values in [0, 1] (%d), within 6 x noise_max (%d), "
              "standard deviation %.4f in [0, 0.1]", "AB"[k], zeros, range, bounded, sd[k]);
    }
    CHECK(fabs(sd[0] - sd[1]) > 1e-3 && sd[0] > 1e-3 && sd[1] > 1e-3,
          "A and B get their own standard deviation: %.4f, %.4f", sd[0], sd[1]);
    CHECK(!memcmp(noisy.a, again.a, m * sizeof(float)) && !memcmp(noisy.b, again.b, m * sizeof(float)),
          "the same rng state, the same noise");
    lpm_sample_free(&plain), lpm_sample_free(&noisy), lpm_sample_free(&again);
    lpm_dataset_free(&ds);
}

int main(void) {
    const char *base = test_env("LPM_TMP");
    snprintf(tmp, sizeof tmp, "%s/test_data.%d", base ? base : "/tmp", (int)getpid());
    mkdir(base ? base : "/tmp", 0755);
    mkdir(tmp, 0755);
    test_folder_dataset();
    test_csv_dataset();
    test_csv_names();
    test_epoch_order();
    test_resize();
    test_random_contrast();
    test_quarter_turns();
    test_random_noise();
    return test_summary();
}
