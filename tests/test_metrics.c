/* The twelve fusion metrics against the NumPy reference (reference/metrics_ref.py):
 * fixtures (phantom-like triples, one masked), hand-checked closed forms, and, with
 * $LPM_REAL_DATA, a BraTS T1/T2 crop scored by the reference's command line. */
#include "core/core.h"
#include "io/io.h"
#include "metrics/metrics.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* |got - want| <= max(1e-4 |want|, 1e-6) */
static void check_metric(const char *where, const char *name, double got, double want) {
    double tol = fmax(1e-4 * fabs(want), 1e-6);
    int ok = (isinf(want) && got == want) || fabs(got - want) <= tol;
    CHECK(ok, "%s %s: got %.10g, want %.10g (tol %.3g)", where, name, got, want, tol);
    if (ok) printf("  ok   %-4s %-5s %.8g (ref %.8g)\n", where, name, got, want);
}

/* ------------------------------------------------------------------ fixtures */

static void test_fixtures(void) {
    const char *dir = test_env("LPM_FIXTURES");
    char path[4096];
    if (!dir) {
        SKIP("fixtures: LPM_FIXTURES is not set (run reference/make_fixtures.py)");
        return;
    }
    snprintf(path, sizeof path, "%s/metrics.safetensors", dir);
    lpm_st_file *st = NULL;
    if (lpm_st_read(path, &st) != LPM_OK) {
        SKIP("fixtures: %s", lpm_last_error());
        return;
    }
    static const char *cases[] = {"p1", "p2", "p3", "m1"};
    for (int c = 0; c < 4; c++) {
        char name[64];
        const float *v[4];
        int ndim;
        int64_t shape[LPM_ST_MAXDIM], sh0[3] = {0, 0, 0};
        static const char *parts[] = {"a", "b", "f", "mask"};
        int missing = 0;
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s.%s", cases[c], parts[k]);
            v[k] = lpm_st_find(st, name, &ndim, shape);
            if (!v[k] || ndim != 3) {
                missing = 1;
                break;
            }
            if (k == 0) memcpy(sh0, shape, sizeof sh0);
            missing |= memcmp(sh0, shape, sizeof sh0) != 0;
        }
        CHECK(!missing, "fixture case %s incomplete", cases[c]);
        if (missing) continue;
        int64_t D = sh0[0], H = sh0[1], W = sh0[2], n = D * H * W;
        uint8_t *mask = NULL;
        if (strcmp(cases[c], "m1") == 0) {
            mask = malloc((size_t)n);
            for (int64_t i = 0; i < n; i++) mask[i] = v[3][i] != 0;
        }
        lpm_metrics r;
        lpm_status s = lpm_metrics_compute(&r, v[0], v[1], v[2], D, H, W, mask, LPM_M_ALL);
        CHECK(s == LPM_OK, "%s: %s", cases[c], lpm_last_error());
        for (int i = 0; i < LPM_NUM_METRICS && s == LPM_OK; i++) {
            snprintf(name, sizeof name, "%s.%s", cases[c], lpm_metric_name(i));
            const float *want = lpm_st_find(st, name, &ndim, shape);
            CHECK(want != NULL, "missing %s", name);
            if (want) check_metric(cases[c], lpm_metric_name(i), lpm_metric_value(&r, i), want[0]);
        }
        if (c == 2) {
            /* per-slice sums are added in slice order: one thread gives the same bits */
            int nt = lpm_get_threads();
            lpm_metrics r1;
            lpm_set_threads(1);
            lpm_metrics_compute(&r1, v[0], v[1], v[2], D, H, W, NULL, LPM_M_ALL);
            lpm_set_threads(nt);
            int same = 1;
            for (int i = 0; i < LPM_NUM_METRICS; i++)
                same &= lpm_metric_value(&r, i) == lpm_metric_value(&r1, i);
            CHECK(same, "p3: 1 thread and %d threads differ", nt);
        }
        if (c == 3) {
            /* an all-ones mask is the same as no mask */
            uint8_t *ones = malloc((size_t)n);
            memset(ones, 1, (size_t)n);
            lpm_metrics r1, r2;
            lpm_metrics_compute(&r1, v[0], v[1], v[2], D, H, W, ones, LPM_M_ALL);
            lpm_metrics_compute(&r2, v[0], v[1], v[2], D, H, W, NULL, LPM_M_ALL);
            int same = 1;
            for (int i = 0; i < LPM_NUM_METRICS; i++)
                same &= lpm_metric_value(&r1, i) == lpm_metric_value(&r2, i);
            CHECK(same, "all-ones mask differs from no mask");
            free(ones);
        }
        free(mask);
    }
    lpm_st_close(st);
}

/* ------------------------------------------------------------ closed forms */

static void test_closed_forms(void) {
    enum { D = 12, H = 14, W = 18 };
    int64_t n = D * H * W;
    float *a = malloc(sizeof(float) * (size_t)n), *f = malloc(sizeof(float) * (size_t)n);
    lpm_metrics r;

    /* A = B = F: SSIM 1, PSNR +inf, SCD 1 ((0 + 1e-10)/(0 + 1e-10)), rSFe 0 */
    for (int64_t i = 0; i < n; i++) a[i] = (float)(0.5 + 0.4 * sin(0.37 * (double)i) * cos(0.011 * (double)i));
    CHECK(lpm_metrics_compute(&r, a, a, a, D, H, W, NULL, LPM_M_ALL) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(r.ssim - 1) < 1e-6, "identical: SSIM %.10g", r.ssim);
    CHECK(isinf(r.psnr) && r.psnr > 0, "identical: PSNR %g, want +inf", r.psnr);
    CHECK(fabs(r.scd - 1) < 1e-12, "identical: SCD %.10g", r.scd);
    CHECK(r.rsfe == 0, "identical: rSFe %.3g", r.rsfe);

    /* PSNR: F = A + 1/8 everywhere (dyadic values: exact in float) -> MSE 1/64 -> 10 log10(64) */
    for (int64_t i = 0; i < n; i++) a[i] = (float)(i % 32) / 64.0f, f[i] = a[i] + 0.125f;
    CHECK(lpm_metrics_compute(&r, a, a, f, D, H, W, NULL, LPM_M_PSNR) == LPM_OK, "psnr");
    CHECK(fabs(r.psnr - 10 * log10(64.0)) < 1e-9, "PSNR %.12g, want %.12g", r.psnr, 10 * log10(64.0));
    CHECK(isnan(r.ssim) && isnan(r.sd), "--only psnr left other metrics set");

    /* ramp F = d/64 + h/32 + w/16 (exact in float): SF = sqrt(64^-2 + 32^-2 + 16^-2);
     * AG on norm255(F) = 255/max F * sqrt((64^-2 + 32^-2 + 16^-2)/3) */
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) f[(d * H + h) * W + w] = d / 64.0f + h / 32.0f + w / 16.0f;
    CHECK(lpm_metrics_compute(&r, a, a, f, D, H, W, NULL, LPM_M_SF | LPM_M_AG) == LPM_OK, "ramp");
    double q = 1 / 4096.0 + 1 / 1024.0 + 1 / 256.0;
    double fmax_ = (D - 1) / 64.0 + (H - 1) / 32.0 + (W - 1) / 16.0;
    CHECK(fabs(r.sf - sqrt(q)) < 1e-12, "ramp SF %.15g, want %.15g", r.sf, sqrt(q));
    CHECK(fabs(r.ag - 255 / fmax_ * sqrt(q / 3)) < 1e-9, "ramp AG %.15g, want %.15g", r.ag,
          255 / fmax_ * sqrt(q / 3));

    /* two values, a fraction p at 0.8 and the rest at 0.2: SD = 0.6 sqrt(p (1-p));
     * p = 1/2: EN = -log2(1/2 + 1e-7) (norm255 puts them in bins 0 and 254) */
    for (int pass = 0; pass < 2; pass++) {
        int64_t k = pass ? n / 2 : n / 3;
        for (int64_t i = 0; i < n; i++) f[i] = i < k ? 0.8f : 0.2f;
        double p = (double)k / (double)n, sd = ((double)0.8f - (double)0.2f) * sqrt(p * (1 - p));
        CHECK(lpm_metrics_compute(&r, a, a, f, D, H, W, NULL, LPM_M_SD | LPM_M_EN) == LPM_OK, "sd");
        CHECK(fabs(r.sd - sd) < 1e-12, "SD %.15g, want %.15g", r.sd, sd);
        double en = -(p * log2(p + 1e-7) + (1 - p) * log2(1 - p + 1e-7));
        CHECK(fabs(r.en - en) < 1e-12, "EN %.15g, want %.15g", r.en, en);
        if (pass) CHECK(fabs(r.en - 1) < 1e-6, "EN of two equal halves %.10g, want 1 bit", r.en);
    }

    /* errors: empty mask, NaN voxel, unknown metric name */
    uint8_t *zero = calloc((size_t)n, 1);
    CHECK(lpm_metrics_compute(&r, a, a, a, D, H, W, zero, LPM_M_ALL) == LPM_ERR_INPUT, "empty mask");
    a[5] = NAN;
    CHECK(lpm_metrics_compute(&r, a, a, f, D, H, W, NULL, LPM_M_ALL) == LPM_ERR_INPUT, "NaN input");
    unsigned which = 0;
    CHECK(lpm_metrics_parse("ssim,QABF,rsfe", &which) == LPM_OK &&
              which == (LPM_M_SSIM | LPM_M_QABF | LPM_M_RSFE), "parse list");
    CHECK(lpm_metrics_parse("ssim,foo", &which) == LPM_ERR_USAGE, "unknown name accepted");
    CHECK(lpm_metrics_parse("ssim,", &which) == LPM_ERR_USAGE, "trailing comma accepted");
    free(zero), free(a), free(f);
}

/* ------------------------------------------------------------- seam index */

/* F = w/64 + floor(w/16)/16 on (D, H, W) = (20, 20, 40): along x every difference is 1/64
 * except 5/64 at w = 16, 32, so r = 5 there, 1/3 at w = 15, 17, 31, 33 and 1 at the other
 * 31 planes of 2..38: index 5 / ((31 + 4/3) / 35) = 525/97. F is constant along y and z:
 * every difference 0, no defined ratio. Scaling by max F leaves all values but w = 0's above
 * 0.01, so every pair along x counts. */
static void test_seam(void) {
    enum { D = 20, H = 20, W = 40 };
    int64_t n = D * H * W;
    float *f = malloc(sizeof(float) * (size_t)n);
    uint8_t *mask = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t w = i % W;
        f[i] = (float)w / 64.0f + (float)(w / 16) / 16.0f;
        mask[i] = 1;
    }
    double idx[3];
    const char *why[3];
    CHECK(lpm_seam_index_why(idx, why, f, D, H, W, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(idx[0] - 525.0 / 97.0) < 1e-12, "seam ramp+steps: x %.15g, want %.15g", idx[0], 525.0 / 97.0);
    CHECK(isnan(idx[1]) && isnan(idx[2]) && why[1] && strstr(why[1], "no defined ratio") && why[0] == NULL,
          "seam along constant axes: %g %g (%s)", idx[1], idx[2], why[1] ? why[1] : "no reason");

    /* the same inside a mask that leaves out a row of 100s: scaled over mask voxels, the
     * pairs with an outside voxel skipped, so the index does not move */
    for (int64_t i = 0; i < n; i++)
        if (i / W % H == 0) f[i] = 100, mask[i] = 0;
    CHECK(lpm_seam_index(idx, f, D, H, W, mask) == LPM_OK, "%s", lpm_last_error());
    CHECK(fabs(idx[0] - 525.0 / 97.0) < 1e-12, "seam masked: x %.15g, want %.15g", idx[0], 525.0 / 97.0);
    /* without the mask, scaling by 100 puts the whole ramp under the 0.01 floor */
    CHECK(lpm_seam_index(idx, f, D, H, W, NULL) == LPM_OK && isnan(idx[0]),
          "seam without the mask: x %.15g, want undefined", idx[0]);

    /* an axis of 17 planes: undefined, and says so */
    CHECK(lpm_seam_index_why(idx, why, f, D, H, 17, NULL) == LPM_OK && isnan(idx[0]) && why[0] &&
              strstr(why[0], "shorter than 18"), "17 planes along x: %g (%s)", idx[0], why[0] ? why[0] : "");
    memset(mask, 0, (size_t)n);
    CHECK(lpm_seam_index(idx, f, D, H, W, mask) == LPM_ERR_INPUT, "empty mask accepted");
    f[7] = NAN;
    CHECK(lpm_seam_index(idx, f, D, H, W, NULL) == LPM_ERR_INPUT, "NaN voxel accepted");
    free(f), free(mask);

    /* a BraTS-sized noise volume: the same bits on 1 and 2 threads, and fast */
    enum { BD = 155, BH = 240, BW = 240 };
    size_t bn = (size_t)BD * BH * BW;
    float *big = malloc(sizeof(float) * bn);
    lpm_rng rng;
    lpm_rng_seed(&rng, 7);
    for (size_t i = 0; i < bn; i++) big[i] = (float)lpm_rng_uniform(&rng);
    double one[3], two[3];
    int threads = lpm_get_threads();
    lpm_set_threads(1);
    CHECK(lpm_seam_index(one, big, BD, BH, BW, NULL) == LPM_OK, "%s", lpm_last_error());
    lpm_set_threads(2);
    double t0 = lpm_seconds();
    CHECK(lpm_seam_index(two, big, BD, BH, BW, NULL) == LPM_OK, "%s", lpm_last_error());
    double secs = lpm_seconds() - t0;
    lpm_set_threads(threads);
    CHECK(memcmp(one, two, sizeof one) == 0, "seam index depends on the threads: %.17g %.17g %.17g vs %.17g %.17g %.17g",
          one[0], one[1], one[2], two[0], two[1], two[2]);
    /* uniform noise: every ratio near 1 */
    CHECK(fabs(one[0] - 1) < 0.02 && fabs(one[1] - 1) < 0.02 && fabs(one[2] - 1) < 0.02,
          "noise seam index %.6g %.6g %.6g, want ~1", one[0], one[1], one[2]);
    printf("  ok   seam index 155x240x240 on 2 threads: %.3f s (%.6f %.6f %.6f)\n", secs, one[0], one[1], one[2]);
    free(big);
}

/* ---------------------------------------------------------------- real data */

/* value of "key": in a flat JSON object; NAN if absent or null */
static double json_get(const char *js, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (strncmp(p, "null", 4) == 0) return INFINITY;
    return strtod(p, NULL);
}

/* Crop (D, H, W) box starting at o of size s from v into a new volume. */
static lpm_status crop_volume(const lpm_volume *v, const int64_t o[3], const int64_t s[3], lpm_volume *out) {
    lpm_status st = lpm_volume_alloc(out, s[2], s[1], s[0]);
    if (st) return st;
    for (int64_t d = 0; d < s[0]; d++)
        for (int64_t h = 0; h < s[1]; h++)
            memcpy(out->data + (d * s[1] + h) * s[2],
                   v->data + ((d + o[0]) * v->ny + h + o[1]) * v->nx + o[2], sizeof(float) * (size_t)s[2]);
    return LPM_OK;
}

/* Run cmd, keep its stdout in js; returns the exit status (-1 when it could not run). */
static int run_json(const char *cmd, char *js, size_t n) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t got = fread(js, 1, n - 1, p);
    js[got] = '\0';
    int rc = pclose(p);
    return got ? rc : -1;
}

/* The C library on files, as `lpmnet metrics` does it (read, normalise, score). */
static lpm_status score_files(char path[4][4096], int masked, lpm_metrics *m) {
    lpm_volume r[4] = {{0}};
    uint8_t *mask = NULL;
    lpm_status st = LPM_OK;
    for (int k = 0; k < 3 + masked && !st; k++) st = lpm_volume_read(path[k], &r[k]);
    for (int k = 0; k < 3 && !st; k++) st = lpm_normalize_minmax(&r[k], path[k]);
    int64_t n = lpm_volume_numel(&r[0]);
    if (!st && masked) {
        mask = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) mask[i] = r[3].data[i] != 0;
    }
    if (!st)
        st = lpm_metrics_compute(m, r[0].data, r[1].data, r[2].data, r[0].nz, r[0].ny, r[0].nx, mask, LPM_M_ALL);
    for (int k = 0; k < 4; k++) lpm_volume_free(&r[k]);
    free(mask);
    return st;
}

static void test_real(void) {
    const char *real = test_env("LPM_REAL_DATA"), *tmp = test_env("LPM_TMP");
    const char *py = test_env("LPM_PYTHON"), *src = test_env("LPM_SOURCE_DIR"), *bin = test_env("LPM_BIN");
    if (!real) {
        SKIP("real data: LPM_REAL_DATA is not set");
        return;
    }
    char in[2][4096], out[4][4096], cmd[20000], js[4096];
    static const char *mod[2] = {"t1n", "t2w"}, *nm[4] = {"a", "b", "f", "mask"};
    for (int k = 0; k < 2; k++)
        snprintf(in[k], sizeof in[k], "%s/brats_gli_00001_000/BraTS-GLI-00001-000-%s.nii.gz", real, mod[k]);
    FILE *probe = fopen(in[0], "rb");
    if (!probe) {
        SKIP("real data: %s not found", in[0]);
        return;
    }
    fclose(probe);
    if (!tmp) tmp = "/tmp";
    if (!py) py = "/usr/bin/python3";
    if (!src) src = ".";
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp);
    if (system(cmd) != 0) {
        CHECK(0, "cannot create %s", tmp);
        return;
    }
    /* The NumPy reference builds pixels x 128 matrices: a 48x80x80 crop (still enough for
     * all four VIF scales) keeps it to seconds. A, B normalised, F = (A + B)/2, mask = A > 0.1. */
    lpm_volume v[2] = {{0}}, c[4] = {{0}};
    const int64_t o[3] = {53, 80, 80}, s[3] = {48, 80, 80};
    lpm_status st = LPM_OK;
    for (int k = 0; k < 2 && !st; k++) st = lpm_volume_read(in[k], &v[k]);
    for (int k = 0; k < 2 && !st; k++) st = crop_volume(&v[k], o, s, &c[k]);
    for (int k = 0; k < 2 && !st; k++) st = lpm_normalize_minmax(&c[k], in[k]);
    for (int k = 2; k < 4 && !st; k++) st = lpm_volume_alloc(&c[k], s[2], s[1], s[0]);
    for (int64_t i = 0; !st && i < s[0] * s[1] * s[2]; i++) {
        c[2].data[i] = (c[0].data[i] + c[1].data[i]) / 2;
        c[3].data[i] = c[0].data[i] > 0.1f;
    }
    for (int k = 0; k < 4 && !st; k++) {
        snprintf(out[k], sizeof out[k], "%s/metrics_brats_%s.nii.gz", tmp, nm[k]);
        st = lpm_volume_write(out[k], &c[k], &c[0]);
    }
    for (int k = 0; k < 2; k++) lpm_volume_free(&v[k]);
    for (int k = 0; k < 4; k++) lpm_volume_free(&c[k]);
    CHECK(st == LPM_OK, "real data: %s", lpm_last_error());
    if (st) return;

    int have_bin = bin && access(bin, X_OK) == 0;
    if (!have_bin) SKIP("lpmnet metrics: LPM_BIN is not set");
    for (int masked = 0; masked < 2; masked++) {
        const char *tag = masked ? "realm" : "real";
        lpm_metrics m;
        double t0 = lpm_seconds();
        st = score_files(out, masked, &m);
        double tc = lpm_seconds() - t0;
        CHECK(st == LPM_OK, "%s: %s", tag, lpm_last_error());
        if (st) continue;
        char opt[4200] = "";
        if (masked) snprintf(opt, sizeof opt, " --mask '%s'", out[3]);
        snprintf(cmd, sizeof cmd, "'%s' '%s/reference/metrics_ref.py' '%s' '%s' '%s'%s", py, src, out[0],
                 out[1], out[2], opt);
        t0 = lpm_seconds();
        int rc = run_json(cmd, js, sizeof js);
        CHECK(rc == 0, "reference failed: %s", cmd);
        if (rc) continue;
        printf("  %s: 48x80x80 BraTS T1/T2/avg%s: C %.2f s, NumPy %.2f s\n", tag, masked ? ", masked" : "",
               tc, lpm_seconds() - t0);
        for (int i = 0; i < LPM_NUM_METRICS; i++)
            check_metric(tag, lpm_metric_name(i), lpm_metric_value(&m, i), json_get(js, lpm_metric_name(i)));
        if (!have_bin) continue;
        /* the command line prints the library's numbers */
        snprintf(cmd, sizeof cmd, "'%s' metrics '%s' '%s' '%s' --json --threads 2%s", bin, out[0], out[1],
                 out[2], opt);
        rc = run_json(cmd, js, sizeof js);
        CHECK(rc == 0, "failed: %s", cmd);
        for (int i = 0; i < LPM_NUM_METRICS && !rc; i++) {
            double want = lpm_metric_value(&m, i), got = json_get(js, lpm_metric_name(i));
            CHECK(fabs(got - want) <= 1e-9 * fabs(want), "lpmnet metrics --json %s: %.10g, library %.10g",
                  lpm_metric_name(i), got, want);
        }
    }
}

int main(void) {
    test_closed_forms();
    test_seam();
    test_fixtures();
    test_real();
    return test_summary();
}
