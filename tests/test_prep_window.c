/* Intensity preprocessing (src/prep/prep.h): exact percentiles, windows, the CT presets, the
 * prep of a pair, masks, and the command-line options (src/cli/cli_prep.c).
 * Expected values are worked out by hand in the comments, taken from a full sort, or computed by
 * numpy.percentile (live through LPM_PYTHON, and a few printed once by numpy 1.24 and written
 * here), never by the code under test. */
#include "prep/prep.h"
#include "test.h"

/* The command-line sources are not in the library: compile the parser and the helpers it calls
 * into this test. */
#include "cli/cli_util.c"
#include "cli/cli_prep.c"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *scratch_base(void) {
    const char *base = test_env("LPM_TMP") ? test_env("LPM_TMP") : "/tmp";
    mkdir(base, 0777);
    return base;
}

static int near(double got, double want, double tol) { return fabs(got - want) <= tol * (1 + fabs(want)); }

static int error_has(const char *s) { return strstr(lpm_last_error(), s) != NULL; }

/* ------------------------------------------------------------------ percentiles */

static void shuffle(float *x, int64_t n, uint64_t seed) {
    lpm_rng r;
    lpm_rng_seed(&r, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(lpm_rng_u64(&r) % (uint64_t)(i + 1));
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
}

static void test_percentiles_known(void) {
    printf("percentiles: known answers\n");
    float x[100];
    uint8_t even[100];
    for (int i = 0; i < 100; i++) x[i] = (float)i;
    shuffle(x, 100, 7);
    for (int i = 0; i < 100; i++) even[i] = ((int)x[i] % 2) == 0;
    double lo, hi;
    /* 0..99: h = 99 p / 100, so p = 0 -> 0, 100 -> 99, 50 -> 49.5, 25 -> 24.75, 99.5 -> 98.505 */
    CHECK(lpm_percentiles(&lo, &hi, x, 100, NULL, 0, 100) == LPM_OK && lo == 0 && hi == 99, "%g %g", lo, hi);
    CHECK(lpm_percentiles(&lo, &hi, x, 100, NULL, 25, 50) == LPM_OK && near(lo, 24.75, 1e-12) &&
              near(hi, 49.5, 1e-12), "%g %g", lo, hi);
    CHECK(lpm_percentiles(&lo, &hi, x, 100, NULL, 0.5, 99.5) == LPM_OK && near(lo, 0.495, 1e-12) &&
              near(hi, 98.505, 1e-12), "%.17g %.17g", lo, hi);
    /* the even values 0, 2, ..., 98 (m = 50, h = 49 p / 100): p = 50 -> h = 24.5 -> 48 + 0.5 * 2 = 49;
     * p = 10 -> h = 4.9 -> 8 + 0.9 * 2 = 9.8 */
    CHECK(lpm_percentiles(&lo, &hi, x, 100, even, 10, 50) == LPM_OK && near(lo, 9.8, 1e-12) &&
              near(hi, 49, 1e-12), "masked: %g %g", lo, hi);
    CHECK(lpm_percentiles(&lo, &hi, x, 100, even, 0, 100) == LPM_OK && lo == 0 && hi == 98, "masked ends");
    /* equal percentiles ask for one order statistic twice */
    CHECK(lpm_percentiles(&lo, &hi, x, 100, NULL, 30, 30) == LPM_OK && near(lo, 29.7, 1e-12) && lo == hi,
          "p_lo = p_hi: %g %g", lo, hi);

    /* ties: sorted 1 5 5 5 5 9 (h = 5 p / 100): p = 10 -> 1 + 0.5 * 4 = 3; 50 -> 5; 90 -> 5 + 0.5 * 4 = 7 */
    float t[6] = {5, 9, 5, 1, 5, 5};
    CHECK(lpm_percentiles(&lo, &hi, t, 6, NULL, 10, 90) == LPM_OK && near(lo, 3, 1e-12) && near(hi, 7, 1e-12),
          "ties: %g %g", lo, hi);
    CHECK(lpm_percentiles(&lo, &hi, t, 6, NULL, 50, 50) == LPM_OK && lo == 5, "ties median %g", lo);
    /* one value: every percentile is it */
    float one = -3.25f;
    CHECK(lpm_percentiles(&lo, &hi, &one, 1, NULL, 0, 100) == LPM_OK && lo == -3.25 && hi == -3.25, "n = 1");
    CHECK(lpm_percentiles(&lo, &hi, &one, 1, NULL, 37, 38) == LPM_OK && lo == -3.25 && hi == -3.25, "n = 1");
    uint8_t only[6] = {0, 0, 0, 0, 0, 1};
    CHECK(lpm_percentiles(&lo, &hi, t, 6, only, 0, 100) == LPM_OK && lo == 5 && hi == 5, "one voxel in mask");

    /* numpy.percentile(x.astype(float64), p) of x_i = ((7919 i) mod 1009) / 8, i < 3000, and of
     * the x_i with i mod 3 = 0 (printed by numpy 1.24) */
    static float y[3000];
    static uint8_t third[3000];
    for (int i = 0; i < 3000; i++) y[i] = (float)((i * 7919) % 1009) / 8, third[i] = i % 3 == 0;
    static const struct { double p_lo, p_hi, lo, hi, mlo, mhi; } np[] = {
        {0.5, 99.5, 0.6243750000000001, 125.37562500000001, 0.624375, 125.375625},
        {37.3, 62.1, 47.0, 78.25, 47.078375, 78.172375},
        {0, 100, 0.0, 126.0, 0.0, 126.0},
        {12.345, 87.0, 15.528318750000004, 109.625, 15.54081875, 109.64125},
    };
    for (size_t k = 0; k < sizeof np / sizeof np[0]; k++) {
        CHECK(lpm_percentiles(&lo, &hi, y, 3000, NULL, np[k].p_lo, np[k].p_hi) == LPM_OK &&
                  near(lo, np[k].lo, 1e-13) && near(hi, np[k].hi, 1e-13),
              "numpy (%g, %g): got %.17g %.17g", np[k].p_lo, np[k].p_hi, lo, hi);
        CHECK(lpm_percentiles(&lo, &hi, y, 3000, third, np[k].p_lo, np[k].p_hi) == LPM_OK &&
                  near(lo, np[k].mlo, 1e-13) && near(hi, np[k].mhi, 1e-13),
              "numpy masked (%g, %g): got %.17g %.17g", np[k].p_lo, np[k].p_hi, lo, hi);
    }
}

static void test_percentiles_refused(void) {
    printf("percentiles: refused arguments\n");
    float x[4] = {1, 2, 3, 4};
    uint8_t none[4] = {0};
    double lo = -7, hi = -7;
    CHECK(lpm_percentiles(&lo, &hi, x, 4, NULL, 60, 40) == LPM_ERR_USAGE, "low > high");
    CHECK(lpm_percentiles(&lo, &hi, x, 4, NULL, -1, 40) == LPM_ERR_USAGE, "low < 0");
    CHECK(lpm_percentiles(&lo, &hi, x, 4, NULL, 1, 100.5) == LPM_ERR_USAGE, "high > 100");
    CHECK(lpm_percentiles(&lo, &hi, x, 4, NULL, NAN, 50) == LPM_ERR_USAGE, "NaN percentile");
    CHECK(lpm_percentiles(&lo, &hi, x, 4, none, 1, 99) == LPM_ERR_INPUT, "empty mask");
    CHECK(lpm_percentiles(&lo, &hi, x, 0, NULL, 1, 99) == LPM_ERR_INPUT, "no values");
    x[2] = NAN;
    CHECK(lpm_percentiles(&lo, &hi, x, 4, NULL, 1, 99) == LPM_ERR_INPUT && error_has("not finite"),
          "NaN value: %s", lpm_last_error());
    uint8_t skip_nan[4] = {1, 1, 0, 1};
    CHECK(lpm_percentiles(&lo, &hi, x, 4, skip_nan, 0, 100) == LPM_OK && lo == 1 && hi == 4,
          "a NaN outside the mask is not looked at");
    CHECK(lo == 1 && hi == 4, "outputs untouched by failures, set by success");
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The definition applied to a full sort. */
static double sorted_percentile(const float *s, int64_t m, double p) {
    double h = (double)(m - 1) * (p / 100);
    int64_t f = (int64_t)floor(h);
    double t = h - (double)f;
    return f + 1 < m ? s[f] + t * ((double)s[f + 1] - s[f]) : s[f];
}

static void test_percentiles_large(void) {
    printf("percentiles: large volumes\n");
    /* half the voxels one background value (as outside a head), the rest on a coarse grid of
     * values so that ties are everywhere, in random order; against qsort */
    const int64_t n = 2000000;
    float *x = malloc((size_t)n * sizeof(float)), *s = malloc((size_t)n * sizeof(float));
    lpm_rng r;
    lpm_rng_seed(&r, 11);
    for (int64_t i = 0; i < n; i++) x[i] = lpm_rng_uniform(&r) < 0.5 ? 0.0f : (float)(int)(lpm_rng_uniform(&r) * 5000) / 4;
    memcpy(s, x, (size_t)n * sizeof(float));
    qsort(s, (size_t)n, sizeof(float), cmp_float);
    static const double ps[][2] = {{0, 100}, {0.5, 99.5}, {49.99, 50.01}, {50.3, 99.99}, {12.5, 12.5}};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        double lo, hi, want_lo = sorted_percentile(s, n, ps[k][0]), want_hi = sorted_percentile(s, n, ps[k][1]);
        CHECK(lpm_percentiles(&lo, &hi, x, n, NULL, ps[k][0], ps[k][1]) == LPM_OK && near(lo, want_lo, 1e-12) &&
                  near(hi, want_hi, 1e-12),
              "(%g, %g): got %.17g %.17g, sort says %.17g %.17g", ps[k][0], ps[k][1], lo, hi, want_lo, want_hi);
    }
    free(x), free(s);

    /* 10^7 voxels, sorted ascending (a bad case for a naive pivot) and all equal: x_i = i gives
     * percentile p = (n - 1) p / 100 exactly */
    const int64_t big = 10000000;
    float *z = malloc((size_t)big * sizeof(float));
    for (int64_t i = 0; i < big; i++) z[i] = (float)i;
    double lo, hi, t0 = lpm_seconds();
    lpm_status st = lpm_percentiles(&lo, &hi, z, big, NULL, 0.5, 99.5);
    double dt = lpm_seconds() - t0;
    CHECK(st == LPM_OK && near(lo, (big - 1) * 0.005, 1e-12) && near(hi, (big - 1) * 0.995, 1e-12),
          "sorted 1e7: %.17g %.17g", lo, hi);
    printf("  10^7 sorted voxels: %.3f s\n", dt);
    for (int64_t i = 0; i < big; i++) z[i] = 42;
    t0 = lpm_seconds();
    st = lpm_percentiles(&lo, &hi, z, big, NULL, 0.5, 99.5);
    printf("  10^7 equal voxels: %.3f s\n", lpm_seconds() - t0);
    CHECK(st == LPM_OK && lo == 42 && hi == 42, "equal 1e7: %g %g", lo, hi);
    free(z);
}

/* Random data with ties and a random mask against numpy.percentile, live. */
static void test_percentiles_numpy(void) {
    printf("percentiles: numpy.percentile\n");
    const char *python = test_env("LPM_PYTHON") ? test_env("LPM_PYTHON") : "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        SKIP("no Python at %s", python);
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_prep_window.XXXXXX", scratch_base());
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot make a scratch folder: %s", strerror(errno));
        return;
    }
    enum { N = 20011 };
    static float x[N];
    static uint8_t m[N];
    lpm_rng r;
    lpm_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(lpm_rng_normal(&r) * 300 + 40);
        if (i % 7 == 0) x[i] = (float)(int)x[i]; /* ties */
        if (i % 11 == 0) x[i] = -1000;
        m[i] = lpm_rng_uniform(&r) < 0.3;
    }
    static const double ps[][2] = {{0, 100}, {0.5, 99.5}, {1, 99}, {2.5, 97.5}, {33.3, 66.6}, {50, 50}, {0, 0.001}};
    enum { NP = sizeof ps / sizeof ps[0] };
    char xf[1100], mf[1100], out[1100], cmd[6000];
    snprintf(xf, sizeof xf, "%s/x.f32", dir);
    snprintf(mf, sizeof mf, "%s/m.u8", dir);
    snprintf(out, sizeof out, "%s/p.f64", dir);
    FILE *fp = fopen(xf, "wb");
    fwrite(x, sizeof(float), N, fp);
    fclose(fp);
    fp = fopen(mf, "wb");
    fwrite(m, 1, N, fp);
    fclose(fp);
    char plist[512] = "";
    for (int k = 0; k < NP; k++)
        snprintf(plist + strlen(plist), sizeof plist - strlen(plist), "%s%.17g,%.17g", k ? "," : "", ps[k][0], ps[k][1]);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import numpy as np; x = np.fromfile('%s', '<f4').astype(np.float64); "
             "m = np.fromfile('%s', np.uint8) != 0; p = [%s]; "
             "np.array([np.percentile(x, p), np.percentile(x[m], p)]).astype('<f8').tofile('%s')\"",
             python, xf, mf, plist, out);
    double want[2][2 * NP];
    fp = system(cmd) == 0 ? fopen(out, "rb") : NULL;
    if (!fp || fread(want, sizeof(double), 4 * NP, fp) != 4 * NP) {
        SKIP("numpy did not run (%s)", cmd);
    } else {
        printf("  %d percentiles of %d values, with and without a mask\n", 2 * NP, N);
        for (int masked = 0; masked < 2; masked++)
            for (int k = 0; k < NP; k++) {
                double lo, hi;
                lpm_status st = lpm_percentiles(&lo, &hi, x, N, masked ? m : NULL, ps[k][0], ps[k][1]);
                CHECK(st == LPM_OK && near(lo, want[masked][2 * k], 1e-12) && near(hi, want[masked][2 * k + 1], 1e-12),
                      "%s (%g, %g): got %.17g %.17g, numpy %.17g %.17g", masked ? "masked" : "all", ps[k][0],
                      ps[k][1], lo, hi, want[masked][2 * k], want[masked][2 * k + 1]);
            }
    }
    if (fp) fclose(fp);
    remove(xf), remove(mf), remove(out), rmdir(dir);
}

/* ------------------------------------------------------------------ windows */

static void volume_of(lpm_volume *v, const float *x, int64_t n) {
    lpm_volume_alloc(v, n, 1, 1);
    memcpy(v->data, x, (size_t)n * sizeof(float));
}

static int all_in_unit(const lpm_volume *v) {
    for (int64_t i = 0; i < lpm_volume_numel(v); i++)
        if (!(v->data[i] >= 0 && v->data[i] <= 1)) return 0;
    return 1;
}

static void test_window(void) {
    printf("window\n");
    lpm_volume v;
    /* [-500, 1500]: -1000 -> 0 (clamped), 0 -> 0.25, 500 -> 0.5, 1500 -> 1, 3000 -> 1 (clamped) */
    const float x[5] = {-1000, 0, 500, 1500, 3000};
    const float want[5] = {0, 0.25f, 0.5f, 1, 1};
    volume_of(&v, x, 5);
    CHECK(lpm_normalize_window(&v, -500, 1500, NULL, "w.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("window [-500, 1500]", v.data, want, 5, 0, 0);
    lpm_volume_free(&v);
    const uint8_t mask[5] = {1, 0, 1, 1, 0};
    const float want_masked[5] = {0, 0, 0.5f, 1, 0};
    volume_of(&v, x, 5);
    CHECK(lpm_normalize_window(&v, -500, 1500, mask, "w.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("window with a mask", v.data, want_masked, 5, 0, 0);
    CHECK(lpm_normalize_window(&v, 3, 3, NULL, "w.nii") == LPM_ERR_INPUT && error_has("w.nii"),
          "hi = lo: %s", lpm_last_error());
    CHECK(lpm_normalize_window(&v, 4, 3, NULL, "w.nii") == LPM_ERR_INPUT && error_has("w.nii"), "hi < lo");
    CHECK(lpm_normalize_window(&v, NAN, 3, NULL, "w.nii") == LPM_ERR_INPUT, "NaN window");
    CHECK(lpm_normalize_window(&v, -1e308, 1e308, NULL, "w.nii") == LPM_ERR_INPUT, "width overflows");
    v.data[1] = NAN;
    CHECK(lpm_normalize_window(&v, 0, 1, NULL, "w.nii") == LPM_ERR_INPUT && error_has("w.nii") &&
              error_has("(1,0,0) is NaN"), "NaN voxel: %s", lpm_last_error());
    CHECK(lpm_normalize_window(&v, 0, 1, mask, "w.nii") == LPM_OK && v.data[1] == 0, "NaN outside the mask -> 0");
    lpm_volume_free(&v);

    /* values near the float range stay in [0, 1] */
    const float extreme[4] = {-3e38f, 3e38f, 1e-30f, -7};
    volume_of(&v, extreme, 4);
    CHECK(lpm_normalize_window(&v, -3.4e38, 3.4e38, NULL, "w.nii") == LPM_OK && all_in_unit(&v), "extreme values");
    lpm_volume_free(&v);
}

static void test_parse(void) {
    printf("parsing --clip and --ct-window values\n");
    double w = -1, l = -1;
    CHECK(lpm_ct_window_parse("bone", &w, &l) == LPM_OK && w == 2000 && l == 500, "bone");
    CHECK(lpm_ct_window_parse("soft", &w, &l) == LPM_OK && w == 400 && l == 40, "soft");
    CHECK(lpm_ct_window_parse("lung", &w, &l) == LPM_OK && w == 1500 && l == -600, "lung");
    CHECK(lpm_ct_window_parse("350,50", &w, &l) == LPM_OK && w == 350 && l == 50, "350,50");
    CHECK(lpm_ct_window_parse("80,-1e3", &w, &l) == LPM_OK && w == 80 && l == -1000, "80,-1e3");
    const char *bad_windows[] = {"", "Bone", "brain", "400", "400,", ",40", "400,40,1", "0,40", "-400,40",
                                 "nan,40", "400,inf", "400 40", "400,40x", "1e308,1.7e308"};
    for (size_t i = 0; i < sizeof bad_windows / sizeof bad_windows[0]; i++) {
        w = l = -7;
        CHECK(lpm_ct_window_parse(bad_windows[i], &w, &l) == LPM_ERR_USAGE && w == -7 && l == -7 &&
                  error_has("WIDTH,LEVEL"), "'%s' accepted or message '%s'", bad_windows[i], lpm_last_error());
    }
    double lo = -1, hi = -1;
    CHECK(lpm_clip_parse("0.5,99.5", &lo, &hi) == LPM_OK && lo == 0.5 && hi == 99.5, "0.5,99.5");
    CHECK(lpm_clip_parse("0,100", &lo, &hi) == LPM_OK && lo == 0 && hi == 100, "0,100");
    CHECK(lpm_clip_parse("0,99.5", &lo, &hi) == LPM_OK && lo == 0 && hi == 99.5, "0,99.5");
    const char *bad_clips[] = {"", "1", "50,50", "60,40", "-1,50", "1,100.01", "a,b", "1,99,", "1;99", "nan,99",
                               "1,inf"};
    for (size_t i = 0; i < sizeof bad_clips / sizeof bad_clips[0]; i++) {
        lo = hi = -7;
        CHECK(lpm_clip_parse(bad_clips[i], &lo, &hi) == LPM_ERR_USAGE && lo == -7 && hi == -7 &&
                  error_has("LOW,HIGH"), "'%s' accepted or message '%s'", bad_clips[i], lpm_last_error());
    }
}

/* ------------------------------------------------------------------ lpm_prep_apply */

static void test_apply(void) {
    printf("lpm_prep_apply\n");
    lpm_volume v, u;
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    float x[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)(lpm_rng_uniform(&r) * 900 - 100);

    /* nothing set: lpm_normalize_minmax bit for bit */
    lpm_prep none = {0};
    volume_of(&v, x, 1000), volume_of(&u, x, 1000);
    CHECK(lpm_prep_apply(&none, &v, NULL, "a.nii") == LPM_OK && lpm_normalize_minmax(&u, "a.nii") == LPM_OK &&
              !memcmp(v.data, u.data, sizeof x), "no prep = min-max");
    lpm_volume_free(&v), lpm_volume_free(&u);
    volume_of(&v, x, 1000);
    CHECK(lpm_prep_apply(NULL, &v, NULL, "a.nii") == LPM_OK && all_in_unit(&v), "NULL prep = min-max");
    lpm_volume_free(&v);

    /* min-max inside a mask: (x - lo) / (hi - lo) over the voxels inside, 0 outside */
    uint8_t mask[1000];
    float lo = INFINITY, hi = -INFINITY, want[1000];
    for (int i = 0; i < 1000; i++) {
        mask[i] = i % 4 != 0;
        if (mask[i]) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    }
    for (int i = 0; i < 1000; i++) want[i] = mask[i] ? (float)(((double)x[i] - lo) / ((double)hi - lo)) : 0;
    volume_of(&v, x, 1000);
    CHECK(lpm_prep_apply(&none, &v, mask, "a.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("min-max inside a mask", v.data, want, 1000, 2e-7, 0);
    lpm_volume_free(&v);

    /* clip 0,99 of 0..99 with one hot voxel of 10000 (n = 101, h = 100 * 0.99 = 99 -> the value 99):
     * window [0, 99], so x -> x / 99 and the hot voxel -> 1 */
    float hot[101], want_hot[101];
    for (int i = 0; i < 100; i++) hot[i] = (float)i, want_hot[i] = (float)(i / 99.0);
    hot[100] = 10000, want_hot[100] = 1;
    lpm_prep clip = {.clip = 1, .clip_lo = 0, .clip_hi = 99};
    volume_of(&v, hot, 101);
    CHECK(lpm_prep_apply(&clip, &v, NULL, "pet.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("clip 0,99 with a hot voxel", v.data, want_hot, 101, 0, 0);
    lpm_volume_free(&v);
    /* the same data min-max normalised puts 0..99 below 0.01 */
    volume_of(&v, hot, 101);
    CHECK(lpm_prep_apply(&none, &v, NULL, "pet.nii") == LPM_OK && v.data[99] < 0.01f, "min-max squeezes");
    lpm_volume_free(&v);

    /* CT window soft = [40 - 200, 40 + 200] = [-160, 240]: -1000 -> 0, -160 -> 0, 40 -> 0.5,
     * 140 -> 0.75, 240 -> 1, 3000 -> 1 */
    const float ct[6] = {-1000, -160, 40, 140, 240, 3000};
    const float want_ct[6] = {0, 0, 0.5f, 0.75f, 1, 1};
    lpm_prep soft = {.ct_window = 1, .ct_width = 400, .ct_level = 40, .clip = 1, .clip_lo = 10, .clip_hi = 90};
    volume_of(&v, ct, 6);
    CHECK(lpm_prep_apply(&soft, &v, NULL, "ct.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("CT soft window (takes precedence over clip)", v.data, want_ct, 6, 0, 0);
    lpm_volume_free(&v);
    const uint8_t ct_mask[6] = {1, 1, 1, 0, 1, 1};
    const float want_ct_masked[6] = {0, 0, 0.5f, 0, 1, 1};
    volume_of(&v, ct, 6);
    CHECK(lpm_prep_apply(&soft, &v, ct_mask, "ct.nii") == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("CT window with a mask", v.data, want_ct_masked, 6, 0, 0);
    lpm_volume_free(&v);

    /* refused: constant volume, constant inside the mask, every voxel on one side of the window,
     * percentiles that coincide, a NaN voxel */
    const float flat[4] = {3, 3, 3, 3};
    volume_of(&v, flat, 4);
    CHECK(lpm_prep_apply(&none, &v, NULL, "flat.nii") == LPM_ERR_INPUT && error_has("flat.nii") &&
              error_has("constant"), "constant: %s", lpm_last_error());
    CHECK(lpm_prep_apply(&soft, &v, NULL, "flat.nii") == LPM_ERR_INPUT && error_has("constant"),
          "constant with a window: %s", lpm_last_error());
    CHECK(lpm_prep_apply(&clip, &v, NULL, "flat.nii") == LPM_ERR_INPUT && error_has("constant"),
          "constant with a clip: %s", lpm_last_error());
    lpm_volume_free(&v);
    const float step[4] = {1, 2, 2, 2};
    const uint8_t on_twos[4] = {0, 1, 1, 1}, empty[4] = {0};
    volume_of(&v, step, 4);
    CHECK(lpm_prep_apply(&none, &v, on_twos, "s.nii") == LPM_ERR_INPUT && error_has("s.nii") &&
              error_has("inside the mask"), "constant in mask: %s", lpm_last_error());
    CHECK(lpm_prep_apply(&none, &v, empty, "s.nii") == LPM_ERR_INPUT && error_has("s.nii"),
          "empty mask: %s", lpm_last_error());
    /* 1 2 2 2: the 40th and 90th percentiles are both 2 */
    lpm_prep clip40 = {.clip = 1, .clip_lo = 40, .clip_hi = 90};
    CHECK(lpm_prep_apply(&clip40, &v, NULL, "s.nii") == LPM_ERR_INPUT && error_has("s.nii") &&
              error_has("percentiles"), "coinciding percentiles: %s", lpm_last_error());
    CHECK(lpm_prep_apply(&soft, &v, NULL, "s.nii") == LPM_OK, "1..2 lies inside the soft window");
    lpm_volume_free(&v);
    const float mri[3] = {300, 900, 1200};
    lpm_prep lung = {.ct_window = 1, .ct_width = 1500, .ct_level = -600}; /* [-1350, 150] */
    volume_of(&v, mri, 3);
    CHECK(lpm_prep_apply(&lung, &v, NULL, "t1.nii") == LPM_ERR_INPUT && error_has("t1.nii") &&
              error_has("above the CT window"), "all above the window: %s", lpm_last_error());
    v.data[1] = NAN;
    CHECK(lpm_prep_apply(&clip, &v, NULL, "t1.nii") == LPM_ERR_INPUT && error_has("(1,0,0) is NaN"),
          "NaN: %s", lpm_last_error());
    lpm_volume_free(&v);

    /* always in [0, 1], whatever the method, on data with outliers */
    float wild[1000];
    for (int i = 0; i < 1000; i++) wild[i] = x[i] * (i % 97 == 0 ? 1e6f : 1);
    const lpm_prep all[] = {none, clip, soft, {.clip = 1, .clip_lo = 0.5, .clip_hi = 99.5}};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        for (int masked = 0; masked < 2; masked++) {
            volume_of(&v, wild, 1000);
            CHECK(lpm_prep_apply(&all[k], &v, masked ? mask : NULL, "w.nii") == LPM_OK && all_in_unit(&v),
                  "prep %zu, mask %d: %s", k, masked, lpm_last_error());
            lpm_volume_free(&v);
        }
}

static void test_pair(void) {
    printf("lpm_prep_pair and lpm_looks_like_ct\n");
    /* a CT in HU and an MRI: air, soft tissue and bone against positive intensities */
    const float ct[6] = {-1000, -160, 40, 140, 240, 1500};
    const float mr[6] = {0, 100, 200, 300, 400, 800};
    const float want_ct[6] = {0, 0, 0.5f, 0.75f, 1, 1}, want_mr[6] = {0, 0.125f, 0.25f, 0.375f, 0.5f, 1};
    lpm_volume a, b;
    volume_of(&a, ct, 6), volume_of(&b, mr, 6);
    CHECK(lpm_looks_like_ct(&a) && !lpm_looks_like_ct(&b), "CT is CT, MR is not");
    lpm_prep soft = {.ct_window = 1, .ct_width = 400, .ct_level = 40};
    CHECK(lpm_prep_pair(&soft, &a, "ct.nii", &b, "mr.nii", NULL, -1) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("auto: CT windowed", a.data, want_ct, 6, 0, 0);
    CHECK_CLOSE("auto: MR min-max", b.data, want_mr, 6, 0, 0);
    lpm_volume_free(&a), lpm_volume_free(&b);
    /* the other order, and the CT named explicitly */
    volume_of(&a, mr, 6), volume_of(&b, ct, 6);
    CHECK(lpm_prep_pair(&soft, &a, "mr.nii", &b, "ct.nii", NULL, 1) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("ct_input = 1: B windowed", b.data, want_ct, 6, 0, 0);
    CHECK_CLOSE("ct_input = 1: A min-max", a.data, want_mr, 6, 0, 0);
    lpm_volume_free(&a), lpm_volume_free(&b);
    /* forced onto an input that does not look like CT: MR 0..800 in [-160, 240] */
    const float want_forced[6] = {0.4f, 0.65f, 0.9f, 1, 1, 1};
    volume_of(&a, mr, 6), volume_of(&b, ct, 6);
    CHECK(lpm_prep_pair(&soft, &a, "mr.nii", &b, "ct.nii", NULL, 0) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("ct_input = 0 forces the window on A", a.data, want_forced, 6, 1e-7, 0);
    lpm_volume_free(&a), lpm_volume_free(&b);
    /* neither looks like CT: refused, naming both */
    volume_of(&a, mr, 6), volume_of(&b, mr, 6);
    CHECK(lpm_prep_pair(&soft, &a, "t1.nii", &b, "t2.nii", NULL, -1) == LPM_ERR_INPUT && error_has("t1.nii") &&
              error_has("t2.nii") && error_has("[0, 800]"), "no CT: %s", lpm_last_error());
    /* no window: both min-max, with a clip on the non-CT input */
    lpm_prep clip = {.clip = 1, .clip_lo = 0, .clip_hi = 80}; /* mr: h = 4 -> 400 */
    const float want_clip[6] = {0, 0.25f, 0.5f, 0.75f, 1, 1};
    CHECK(lpm_prep_pair(&clip, &a, "t1.nii", &b, "t2.nii", NULL, -1) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("clip on A", a.data, want_clip, 6, 0, 0);
    CHECK_CLOSE("clip on B", b.data, want_clip, 6, 0, 0);
    lpm_volume_free(&a), lpm_volume_free(&b);
    /* window and clip: the CT is windowed, the other clipped; the mask applies to both */
    lpm_prep both = soft;
    both.clip = 1, both.clip_lo = 0, both.clip_hi = 80;
    const uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
    /* mr inside the mask: 0..400, h = 4 * 0.8 = 3.2 -> 300 + 0.2 * 100 = 320 */
    const float want_mr_clip[6] = {0, 100 / 320.0f, 200 / 320.0f, 300 / 320.0f, 1, 0};
    const float want_ct_masked[6] = {0, 0, 0.5f, 0.75f, 1, 0};
    volume_of(&a, ct, 6), volume_of(&b, mr, 6);
    CHECK(lpm_prep_pair(&both, &a, "ct.nii", &b, "mr.nii", mask, -1) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("window + mask on the CT", a.data, want_ct_masked, 6, 0, 0);
    CHECK_CLOSE("clip + mask on the MR", b.data, want_mr_clip, 6, 1e-7, 0);
    lpm_volume_free(&a), lpm_volume_free(&b);

    const float edges[][3] = {{-500, 0, 300}, {-499, 0, 3000}, {-3000, 0, 299}, {NAN, -600, 400}};
    const int want_edges[] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        volume_of(&a, edges[k], 3);
        CHECK(lpm_looks_like_ct(&a) == want_edges[k], "looks like CT: case %d", k);
        lpm_volume_free(&a);
    }
}

/* ------------------------------------------------------------------ masks */

static void test_mask_read(void) {
    printf("lpm_mask_read\n");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_prep_window.XXXXXX", scratch_base());
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot make a scratch folder: %s", strerror(errno));
        return;
    }
    char good[1100], empty[1100], other[1100], nan_file[1100], missing[1100];
    snprintf(good, sizeof good, "%s/mask.nii", dir);
    snprintf(empty, sizeof empty, "%s/empty.nii", dir);
    snprintf(other, sizeof other, "%s/other.nii", dir);
    snprintf(nan_file, sizeof nan_file, "%s/nan.nii", dir);
    snprintf(missing, sizeof missing, "%s/missing.nii", dir);
    lpm_volume like, m;
    lpm_volume_alloc(&like, 4, 3, 2);
    lpm_volume_alloc(&m, 4, 3, 2);
    uint8_t want[24];
    for (int i = 0; i < 24; i++) {
        m.data[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? 2.5f : -1;
        want[i] = i % 3 != 0;
    }
    lpm_volume_write(good, &m, &like);
    uint8_t *mask = NULL;
    CHECK(lpm_mask_read(good, &like, "a.nii", &mask) == LPM_OK && mask && !memcmp(mask, want, 24),
          "nonzero = inside: %s", lpm_last_error());
    free(mask);
    memset(m.data, 0, 24 * sizeof(float));
    lpm_volume_write(empty, &m, &like);
    CHECK(lpm_mask_read(empty, &like, "a.nii", &mask) == LPM_ERR_INPUT && !mask && error_has(empty) &&
              error_has("empty"), "empty: %s", lpm_last_error());
    m.data[5] = NAN;
    lpm_volume_write(nan_file, &m, &like);
    CHECK(lpm_mask_read(nan_file, &like, "a.nii", &mask) == LPM_ERR_INPUT && !mask && error_has(nan_file),
          "NaN: %s", lpm_last_error());
    lpm_volume o;
    lpm_volume_alloc(&o, 4, 2, 3);
    o.data[0] = 1;
    lpm_volume_write(other, &o, &o);
    CHECK(lpm_mask_read(other, &like, "a.nii", &mask) == LPM_ERR_INPUT && !mask && error_has(other) &&
              error_has("a.nii"), "other grid: %s", lpm_last_error());
    CHECK(lpm_mask_read(missing, &like, "a.nii", &mask) == LPM_ERR_INPUT && !mask && error_has(missing),
          "missing: %s", lpm_last_error());
    lpm_volume_free(&like), lpm_volume_free(&m), lpm_volume_free(&o);

    /* lpm_prepare_pair reads the mask file on A's grid and applies it to both (a clip of
     * 0,100 is min-max inside the mask) */
    lpm_volume a, b, a01, b01;
    lpm_volume_alloc(&a, 4, 3, 2), lpm_volume_alloc(&b, 4, 3, 2);
    for (int i = 0; i < 24; i++) a.data[i] = (float)i, b.data[i] = (float)(100 - i);
    lpm_fuse_settings p = {.mask_path = good, .clip_lo = 0, .clip_hi = 100};
    CHECK(lpm_prepare_pair(&a, "a.nii", &b, "b.nii", &p, &a01, &b01) == LPM_OK, "%s", lpm_last_error());
    /* inside: i % 3 != 0, i from 1 to 23, so a = i -> (i - 1) / 22 and b = 100 - i (77 to 99) ->
     * (100 - i - 77) / 22 = (23 - i) / 22; 0 outside */
    int ok = 1;
    for (int i = 0; i < 24; i++) {
        float wa = i % 3 ? (float)(i - 1) / 22 : 0, wb = i % 3 ? (float)(23 - i) / 22 : 0;
        ok &= fabsf(a01.data[i] - wa) < 1e-6f && fabsf(b01.data[i] - wb) < 1e-6f;
    }
    CHECK(ok, "lpm_prepare_pair with a mask file");
    lpm_volume_free(&a01), lpm_volume_free(&b01);
    p.mask_path = missing;
    CHECK(lpm_prepare_pair(&a, "a.nii", &b, "b.nii", &p, &a01, &b01) == LPM_ERR_INPUT && error_has(missing) &&
              !a01.data && !b01.data, "lpm_prepare_pair, missing mask: %s", lpm_last_error());
    lpm_volume_free(&a), lpm_volume_free(&b);
    remove(good), remove(empty), remove(other), remove(nan_file), rmdir(dir);
}

/* ------------------------------------------------------------------ the command line */

/* Runs cli_prep_option on argv with stderr captured into msg. */
static int run_option(int argc, char **argv, int *i, lpm_fuse_settings *p, char *msg, size_t size) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    int r = cli_prep_option("fuse", argc, argv, i, p);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t got = fread(msg, 1, size - 1, tmp);
    msg[got] = '\0';
    fclose(tmp);
    return r;
}

static void test_cli_option(void) {
    printf("cli_prep_option\n");
    char msg[1024];
    lpm_fuse_settings p = {0};
    char *args[] = {"a.nii", "--clip", "0.5,99.5", "--ct-window", "lung", "--mask", "brain.nii", "--clipx", "1"};
    int argc = sizeof args / sizeof args[0];
    int i = 0;
    CHECK(run_option(argc, args, &i, &p, msg, sizeof msg) == 0 && i == 0 && !msg[0], "a positional is not ours");
    i = 1;
    CHECK(run_option(argc, args, &i, &p, msg, sizeof msg) == 1 && i == 2 && p.clip_lo == 0.5 &&
              p.clip_hi == 99.5, "--clip 0.5,99.5");
    i = 3;
    CHECK(run_option(argc, args, &i, &p, msg, sizeof msg) == 1 && i == 4 && p.ct_window == args[4],
          "--ct-window lung");
    i = 5;
    CHECK(run_option(argc, args, &i, &p, msg, sizeof msg) == 1 && i == 6 && p.mask_path == args[6],
          "--mask brain.nii");
    i = 7;
    CHECK(run_option(argc, args, &i, &p, msg, sizeof msg) == 0 && i == 7, "--clipx is not ours");

    /* bad or missing values: CLI_PREP_BAD, a message naming the option and the value, p unchanged */
    const lpm_fuse_settings before = p;
    char *bad[][2] = {{"--clip", "99.5,0.5"}, {"--clip", "0.5"}, {"--clip", "0,101"},
                      {"--ct-window", "brain"}, {"--ct-window", "0,40"}, {"--mask", ""}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *argv[2] = {bad[k][0], bad[k][1]};
        i = 0;
        int r = run_option(2, argv, &i, &p, msg, sizeof msg);
        CHECK(r == CLI_PREP_BAD && strstr(msg, "lpmnet fuse: ") && strstr(msg, bad[k][0]) &&
                  (!*bad[k][1] || strstr(msg, bad[k][1])) && !memcmp(&p, &before, sizeof p),
              "%s '%s': returned %d, message '%s'", bad[k][0], bad[k][1], r, msg);
    }
    char *last[] = {"--ct-window"};
    i = 0;
    CHECK(run_option(1, last, &i, &p, msg, sizeof msg) == CLI_PREP_BAD && strstr(msg, "needs a value"),
          "missing value: '%s'", msg);
    CHECK(strstr(CLI_PREP_HELP, "--clip LOW,HIGH") && strstr(CLI_PREP_HELP, "--ct-window") &&
              strstr(CLI_PREP_HELP, "--mask FILE"), "help lists the three options");

    /* --exact with any of them is refused after the loop; the public parsers are the prep ones */
    lpm_fuse_settings exact = {.exact = 1};
    CHECK(cli_prep_finish("fuse", &exact) == 0, "--exact alone");
    exact.mask_path = "brain.nii";
    CHECK(cli_prep_finish("fuse", &exact) == LPM_ERR_USAGE, "--exact --mask");
    double width = 0, level = 0, lo = 0, hi = 0;
    CHECK(lpm_ct_window_parse("lung", &width, &level) == LPM_OK && width == 1500 && level == -600 &&
              lpm_ct_window_parse("0,40", &width, &level) == LPM_ERR_USAGE && width == 1500,
          "lpm_ct_window_parse");
    CHECK(lpm_clip_parse("0.5,99.5", &lo, &hi) == LPM_OK && lo == 0.5 && hi == 99.5 &&
              lpm_clip_parse("0,101", &lo, &hi) == LPM_ERR_USAGE && hi == 99.5, "lpm_clip_parse");
}

int main(void) {
    test_percentiles_known();
    test_percentiles_refused();
    test_percentiles_large();
    test_percentiles_numpy();
    test_window();
    test_parse();
    test_apply();
    test_pair();
    test_mask_read();
    test_cli_option();
    return test_summary();
}
