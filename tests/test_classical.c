/* Classical fusion methods, the montage PNG and the synthetic phantom. */
#include "classical/classical.h"
#include "io/montage.h"
#include "prep/phantom.h"
#include "test.h"

#include <errno.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const METHODS[] = {"average", "max", "pca", "dwt", "laplacian", "guided"};
enum { NM = 6 };

static float *random_volume(int64_t n, uint64_t seed, float lo, float hi) {
    lpm_rng r;
    lpm_rng_seed(&r, seed);
    float *v = lpm_malloc((size_t)n, sizeof(float));
    for (int64_t i = 0; v && i < n; i++) v[i] = lo + (hi - lo) * (float)lpm_rng_uniform(&r);
    return v;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Energy of the differences between neighbours along w: what detail-preserving fusion keeps. */
static double gradient_energy(const float *v, int64_t D, int64_t H, int64_t W) {
    double e = 0;
    for (int64_t r = 0; r < D * H; r++)
        for (int64_t w = 0; w + 1 < W; w++) {
            double g = (double)v[r * W + w + 1] - (double)v[r * W + w];
            e += g * g;
        }
    return e;
}

static void test_identity_and_range(void) {
    const int64_t D = 13, H = 10, W = 17, n = D * H * W;
    float *a = random_volume(n, 1, 0, 1), *b = random_volume(n, 2, 0, 1);
    float *out = lpm_malloc((size_t)n, sizeof(float));
    for (int m = 0; m < NM; m++) {
        char what[64];
        CHECK(lpm_classical_fuse(METHODS[m], a, a, out, D, H, W) == LPM_OK, "%s", lpm_last_error());
        snprintf(what, sizeof what, "%s(A, A) == A", METHODS[m]);
        CHECK_CLOSE(what, out, a, (size_t)n, 2e-5, 0);

        CHECK(lpm_classical_fuse(METHODS[m], a, b, out, D, H, W) == LPM_OK, "%s", lpm_last_error());
        int in_range = 1;
        for (int64_t i = 0; i < n; i++) in_range &= out[i] >= 0 && out[i] <= 1;
        CHECK(in_range, "%s(A, B) leaves [0, 1]", METHODS[m]);
    }
    /* inputs outside [0, 1] (and a NaN) still give an output inside it */
    a[0] = 1.7f, a[1] = -0.4f, a[2] = NAN;
    for (int m = 0; m < NM; m++) {
        CHECK(lpm_classical_fuse(METHODS[m], a, b, out, D, H, W) == LPM_OK, "%s", lpm_last_error());
        int in_range = 1;
        for (int64_t i = 0; i < n; i++) in_range &= out[i] >= 0 && out[i] <= 1;
        CHECK(in_range, "%s with out-of-range input leaves [0, 1]", METHODS[m]);
    }
    free(a), free(b), free(out);
}

static void test_pixel_methods(void) {
    const int64_t D = 3, H = 5, W = 7, n = D * H * W;
    float *a = random_volume(n, 3, 0, 1), *b = random_volume(n, 4, 0, 1);
    float *out = lpm_malloc((size_t)n, sizeof(float)), *want = lpm_malloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) want[i] = (a[i] + b[i]) / 2;
    lpm_classical_fuse("average", a, b, out, D, H, W);
    CHECK_CLOSE("average == (a + b) / 2", out, want, (size_t)n, 0, 0);
    for (int64_t i = 0; i < n; i++) want[i] = fmaxf(a[i], b[i]);
    lpm_classical_fuse("max", a, b, out, D, H, W);
    CHECK_CLOSE("max == max(a, b)", out, want, (size_t)n, 0, 0);
    for (int64_t i = 0; i < n; i++) b[i] = 0;
    lpm_classical_fuse("max", a, b, out, D, H, W);
    CHECK_CLOSE("max(A, 0) == A", out, a, (size_t)n, 0, 0);
    /* PCA against a constant: all variance is in a, so the weights are (1, 0) */
    for (int64_t i = 0; i < n; i++) b[i] = 0.3f;
    lpm_classical_fuse("pca", a, b, out, D, H, W);
    CHECK_CLOSE("pca(A, constant) == A", out, a, (size_t)n, 1e-6, 0);

    /* a = (0,0,1,1), b = (0,1,1,1): covariance [[1/4, 1/8], [1/8, 3/16]] (n-normalised);
     * by hand (and numpy.linalg.eigh) the principal eigenvector normalised to sum 1 is
     * (0.5615528, 0.4384472). */
    const float pa[4] = {0, 0, 1, 1}, pb[4] = {0, 1, 1, 1};
    double w[2];
    lpm_pca_weights(pa, pb, 4, w);
    CHECK(fabs(w[0] - 0.56155281) < 1e-7 && fabs(w[1] - 0.43844719) < 1e-7,
          "pca weights %.8f %.8f", w[0], w[1]);
    /* b = 2a: covariance v [[1, 2], [2, 4]], eigenvector (1, 2): weights (1/3, 2/3) */
    for (int64_t i = 0; i < n; i++) a[i] *= 0.3f, b[i] = 2 * a[i];
    lpm_pca_weights(a, b, n, w);
    CHECK(fabs(w[0] - 1.0 / 3) < 1e-6 && fabs(w[1] - 2.0 / 3) < 1e-6, "pca weights %.8f %.8f",
          w[0], w[1]);
    lpm_classical_fuse("pca", a, b, out, D, H, W);
    for (int64_t i = 0; i < n; i++) want[i] = a[i] / 3 + 2 * b[i] / 3;
    CHECK_CLOSE("pca(x, 2x) == x/3 + 4x/3", out, want, (size_t)n, 1e-6, 0);
    /* two constants: no principal direction, equal weights */
    for (int64_t i = 0; i < n; i++) a[i] = 0.2f, b[i] = 0.6f;
    lpm_pca_weights(a, b, n, w);
    CHECK(w[0] == 0.5 && w[1] == 0.5, "pca weights of constants %g %g", w[0], w[1]);
    free(a), free(b), free(out), free(want);
}

static void test_dwt(void) {
    const int64_t D = 16, H = 8, W = 24, n = D * H * W;
    float *x = random_volume(n, 5, -1, 1), *y = lpm_malloc((size_t)n, sizeof(float));
    memcpy(y, x, sizeof(float) * (size_t)n);
    double e0 = 0, e1 = 0;
    for (int64_t i = 0; i < n; i++) e0 += (double)x[i] * x[i];
    CHECK(lpm_dwt3_forward(y, D, H, W, 3) == LPM_OK, "%s", lpm_last_error());
    for (int64_t i = 0; i < n; i++) e1 += (double)y[i] * y[i];
    CHECK(fabs(e1 - e0) < 1e-4 * e0, "orthonormal DWT keeps the energy: %g vs %g", e1, e0);
    CHECK(max_abs_diff(x, y, n) > 0.1, "the transform changes the data");
    CHECK(lpm_dwt3_inverse(y, D, H, W, 3) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("dwt inverse(forward(x)) == x", y, x, (size_t)n, 1e-5, 0);

    /* A constant has no detail; each level multiplies it by sqrt(2) per axis: 3 levels,
     * 3 axes -> 2^4.5 in the 2x1x3 approximation corner. */
    for (int64_t i = 0; i < n; i++) y[i] = 0.25f;
    lpm_dwt3_forward(y, D, H, W, 3);
    double worst_detail = 0, worst_approx = 0;
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                double v = y[(d * H + h) * W + w];
                if (d < 2 && h < 1 && w < 3)
                    worst_approx = fmax(worst_approx, fabs(v - 0.25 * pow(2, 4.5)));
                else
                    worst_detail = fmax(worst_detail, fabs(v));
            }
    CHECK(worst_approx < 1e-5 && worst_detail < 1e-5, "constant: approx err %g, detail %g",
          worst_approx, worst_detail);
    CHECK(lpm_dwt3_forward(y, 15, H, W, 3) != LPM_OK, "size not a multiple of 8 is refused");
    free(x), free(y);
}

static void test_laplacian(void) {
    const int64_t D = 13, H = 7, W = 21, n = D * H * W;
    float *x = random_volume(n, 6, 0, 1), *y = lpm_malloc((size_t)n, sizeof(float));
    lpm_lap_pyramid p;
    CHECK(lpm_lap_build(&p, x, D, H, W, 4) == LPM_OK, "%s", lpm_last_error());
    CHECK(p.dims[4][0] == 1 && p.dims[4][1] == 1 && p.dims[4][2] == 2,
          "top level 13x7x21 -> %lldx%lldx%lld, want 1x1x2", (long long)p.dims[4][0],
          (long long)p.dims[4][1], (long long)p.dims[4][2]);
    CHECK(lpm_lap_collapse(&p, y) == LPM_OK, "%s", lpm_last_error());
    CHECK_CLOSE("laplacian collapse(build(x)) == x", y, x, (size_t)n, 1e-5, 0);
    lpm_lap_free(&p);

    /* a constant: band-pass levels vanish, the top keeps the constant */
    for (int64_t i = 0; i < n; i++) x[i] = 0.7f;
    lpm_lap_build(&p, x, D, H, W, 4);
    double band = 0, top = 0;
    for (int k = 0; k <= 4; k++) {
        int64_t m = p.dims[k][0] * p.dims[k][1] * p.dims[k][2];
        for (int64_t i = 0; i < m; i++)
            if (k < 4)
                band = fmax(band, fabs(p.bands[k][i]));
            else
                top = fmax(top, fabs(p.bands[k][i] - 0.7));
    }
    CHECK(band < 1e-6 && top < 1e-6, "constant pyramid: band %g, top err %g", band, top);
    lpm_lap_free(&p);
    free(x), free(y);
}

/* Fusing texture with a flat volume: the multi-scale methods keep most of the texture's
 * detail, the average keeps a quarter of its gradient energy. */
static void test_detail_kept(void) {
    const int64_t D = 11, H = 19, W = 23, n = D * H * W;
    float *a = random_volume(n, 7, 0.2f, 0.8f), *b = lpm_malloc((size_t)n, sizeof(float));
    float *out = lpm_malloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) b[i] = 0.5f;
    double ea = gradient_energy(a, D, H, W);
    const char *keep[] = {"dwt", "laplacian", "guided"};
    for (int m = 0; m < 3; m++) {
        lpm_classical_fuse(keep[m], a, b, out, D, H, W);
        double r = gradient_energy(out, D, H, W) / ea;
        CHECK(r > 0.6, "%s keeps %.3f of the detail energy", keep[m], r);
        printf("  ok   %-40s %.3f of the detail energy\n", keep[m], r);
    }
    lpm_classical_fuse("average", a, b, out, D, H, W);
    double r = gradient_energy(out, D, H, W) / ea;
    CHECK(fabs(r - 0.25) < 1e-3, "average keeps %.4f of the detail energy, want 0.25", r);
    free(a), free(b), free(out);
}

/* lpm_box_axis against the mean written out voxel by voxel, along each axis of an odd-sized
 * volume, for both ends' rules and radii from 0 to beyond the axis. */
static void test_box_mean(void) {
    const int64_t dims[3] = {7, 5, 9}, n = 7 * 5 * 9, radii[] = {0, 1, 2, 4, 12};
    float *x = random_volume(n, 11, -1, 1), *got = lpm_malloc((size_t)n, sizeof(float));
    float *want = lpm_malloc((size_t)n, sizeof(float));
    if (!x || !got || !want) {
        CHECK(0, "box mean: out of memory");
        free(x), free(got), free(want);
        return;
    }
    for (int edge = 0; edge < 2; edge++)
        for (int axis = 0; axis < 3; axis++)
            for (size_t k = 0; k < sizeof radii / sizeof radii[0]; k++) {
                const int64_t r = radii[k], len = dims[axis];
                const int64_t after = axis == 0 ? dims[1] * dims[2] : axis == 1 ? dims[2] : 1;
                const int64_t before = n / (len * after);
                for (int64_t a = 0; a < before; a++)
                    for (int64_t i = 0; i < len; i++)
                        for (int64_t b = 0; b < after; b++) {
                            double s = 0;
                            int count = 0;
                            for (int64_t j = i - r; j <= i + r; j++) {
                                if (edge == LPM_BOX_CLIP && (j < 0 || j >= len)) continue;
                                const int64_t jj = j < 0 ? 0 : j >= len ? len - 1 : j;
                                s += x[(a * len + jj) * after + b];
                                count++;
                            }
                            want[(a * len + i) * after + b] = (float)(s / count);
                        }
                lpm_box_axis(x, got, before, len, after, r, (lpm_box_edge)edge);
                char what[96];
                snprintf(what, sizeof what, "box mean, %s ends, axis %d, radius %d",
                         edge == LPM_BOX_CLIP ? "clipped" : "repeated", axis, (int)r);
                CHECK_CLOSE(what, got, want, (size_t)n, 1e-6, 0);
            }
    free(x), free(got), free(want);
}

static void test_unknown_method(void) {
    float a[8] = {0}, out[8];
    lpm_status st = lpm_classical_fuse("wavelet", a, a, out, 2, 2, 2);
    CHECK(st == LPM_ERR_USAGE, "unknown method gives %d", st);
    CHECK(strstr(lpm_last_error(), "wavelet") && strstr(lpm_last_error(), "laplacian"),
          "message names the method and the valid ones: %s", lpm_last_error());
    CHECK(!lpm_classical_known("wavelet") && lpm_classical_known("guided"), "lpm_classical_known");
    /* the smallest volume works for every method */
    float one = 0.25f, two = 0.75f, f;
    for (int m = 0; m < NM; m++) {
        CHECK(lpm_classical_fuse(METHODS[m], &one, &two, &f, 1, 1, 1) == LPM_OK && f >= 0 && f <= 1,
              "%s on 1x1x1: %s", METHODS[m], lpm_last_error());
    }
}

static const char *scratch_dir(void) {
    static char dir[512];
    const char *t = test_env("LPM_TMP");
    snprintf(dir, sizeof dir, "%s/classical-%d", t ? t : "/tmp", (int)getpid());
    if (t) mkdir(t, 0777);
    mkdir(dir, 0777);
    return dir;
}

/* Read a PNG back as RGB; returns NULL on failure. */
static uint8_t *read_png(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width, *h = (int)img.height;
    return buf;
}

static void test_montage(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/m1.png", dir);
    /* 20x30x40, two volumes: max 40 < 128, enlarged 3x -> views 120 (W), 90 (H), 60 (D);
     * width 42 + 2 * (120 + 4) = 290, height 22 + 90 + 4 + 2 * (60 + 4) = 244 */
    const int64_t D = 20, H = 30, W = 40, n = D * H * W;
    float *ramp = lpm_malloc((size_t)n, sizeof(float)), *zero = lpm_calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) ramp[i] = (float)(i / (H * W)) / (float)(D - 1);
    const char *labels[2] = {"t1", "zero"};
    const float *vols[2] = {ramp, zero};
    CHECK(lpm_montage_write(path, labels, vols, 2, D, H, W) == LPM_OK, "%s", lpm_last_error());
    int w = 0, h = 0;
    uint8_t *rgb = read_png(path, &w, &h);
    CHECK(rgb && w == 290 && h == 244, "montage 20x30x40 x2 is %dx%d, want 290x244", w, h);
    if (rgb && w == 290 && h == 244) {
#define PIX(x, y) rgb[3 * ((y) * w + (x))]
        /* axial of the ramp at d = 10: 10/19 -> 134; the zero volume's axial is black */
        CHECK(PIX(42 + 60, 22 + 45) == 134, "axial grey %d, want 134", PIX(42 + 60, 22 + 45));
        CHECK(PIX(42 + 124 + 60, 22 + 45) == 0, "zero volume grey %d", PIX(42 + 124 + 60, 22 + 45));
        /* coronal rows: top = largest d (white), bottom = d 0 (black) */
        int cy = 22 + 90 + 4;
        CHECK(PIX(42 + 60, cy) == 255 && PIX(42 + 60, cy + 59) == 0,
              "coronal top %d bottom %d, want 255 and 0", PIX(42 + 60, cy), PIX(42 + 60, cy + 59));
        /* sagittal is H = 90 wide, centred in the 120 column: its left edge is at 42 + 15 */
        int sy = cy + 64;
        CHECK(PIX(42 + 15, sy) == 255 && PIX(42 + 14, sy) == 22, "sagittal placement %d %d",
              PIX(42 + 15, sy), PIX(42 + 14, sy));
#undef PIX
    }
    free(rgb);

    /* 10x20x520, one long label: max 520 > 256 -> box-average by 3: 174, 7, 4; the label is
     * 38 characters = 454 px wide: width 42 + 454 + 4 = 500, height 22 + 7 + 4 + 2 * 8 = 49 */
    const int64_t D2 = 10, H2 = 20, W2 = 520;
    float *v = random_volume(D2 * H2 * W2, 8, 0, 1);
    const char *long_label[1] = {"a very long label for the column width"};
    CHECK(strlen(long_label[0]) == 38, "label length");
    snprintf(path, sizeof path, "%s/m2.png", dir);
    CHECK(lpm_montage_write(path, long_label, (const float *const *)&v, 1, D2, H2, W2) == LPM_OK,
          "%s", lpm_last_error());
    rgb = read_png(path, &w, &h);
    CHECK(rgb && w == 42 + 38 * 12 - 2 + 4 && h == 49, "montage 10x20x520 is %dx%d, want %dx49", w,
          h, 42 + 38 * 12 - 2 + 4);
    free(rgb);

    snprintf(path, sizeof path, "%s/no/such/folder/m.png", dir);
    CHECK(lpm_montage_write(path, labels, vols, 2, D, H, W) != LPM_OK &&
              strstr(lpm_last_error(), "no/such/folder"),
          "unwritable path is reported: %s", lpm_last_error());
    free(ramp), free(zero), free(v);
}

/* Mean of v over the voxels of one label whose six neighbours share it (partial-volume free). */
static double mean_where(const lpm_volume *v, const lpm_volume *lab, int label) {
    const int64_t W = v->nx, H = v->ny, D = v->nz;
    const float *l = lab->data;
    double s = 0;
    int64_t c = 0;
    for (int64_t d = 1; d + 1 < D; d++)
        for (int64_t h = 1; h + 1 < H; h++)
            for (int64_t w = 1; w + 1 < W; w++) {
                int64_t i = (d * H + h) * W + w;
                float x = (float)label;
                if (l[i] == x && l[i - 1] == x && l[i + 1] == x && l[i - W] == x && l[i + W] == x &&
                    l[i - H * W] == x && l[i + H * W] == x)
                    s += v->data[i], c++;
            }
    return c ? s / (double)c : NAN;
}

static int same_volumes(const lpm_volume *a, const lpm_volume *b) {
    for (int k = 0; k < LPM_PH_NVOLS; k++)
        if (memcmp(a[k].data, b[k].data, sizeof(float) * (size_t)lpm_volume_numel(&a[k])))
            return 0;
    return 1;
}

static int files_equal(const char *p, const char *q) {
    FILE *f = fopen(p, "rb"), *g = fopen(q, "rb");
    int same = f && g;
    while (same) {
        int a = fgetc(f), b = fgetc(g);
        if (a != b) same = 0;
        if (a == EOF) break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static void test_phantom(const char *dir) {
    const int64_t D = 40, H = 48, W = 44;
    lpm_volume p1[LPM_PH_NVOLS], p2[LPM_PH_NVOLS], p3[LPM_PH_NVOLS];
    CHECK(lpm_phantom_make(p1, D, H, W, 7) == LPM_OK, "%s", lpm_last_error());
    int threads = lpm_get_threads();
    lpm_set_threads(1);
    CHECK(lpm_phantom_make(p2, D, H, W, 7) == LPM_OK, "%s", lpm_last_error());
    lpm_set_threads(threads);
    CHECK(lpm_phantom_make(p3, D, H, W, 8) == LPM_OK, "%s", lpm_last_error());
    CHECK(p1[0].nx == W && p1[0].ny == H && p1[0].nz == D, "phantom dims");
    CHECK(same_volumes(p1, p2), "same seed (1 thread vs %d) gives identical volumes", threads);
    CHECK(memcmp(p1[LPM_PH_T1].data, p3[LPM_PH_T1].data, sizeof(float) * (size_t)(D * H * W)) &&
              memcmp(p1[LPM_PH_LABELS].data, p3[LPM_PH_LABELS].data,
                     sizeof(float) * (size_t)(D * H * W)),
          "another seed gives another phantom");

    const lpm_volume *lab = &p1[LPM_PH_LABELS];
    int64_t count[LPM_PH_NLABELS] = {0}, bad = 0;
    for (int64_t i = 0; i < D * H * W; i++) {
        float l = lab->data[i];
        if (l != floorf(l) || l < 0 || l >= LPM_PH_NLABELS)
            bad++;
        else
            count[(int)l]++;
    }
    CHECK(bad == 0, "%lld labels are not integers in 0..6", (long long)bad);
    for (int l = 0; l < LPM_PH_NLABELS; l++) CHECK(count[l] > 0, "label %d present", l);
    printf("  ok   label voxels: bg %lld skull %lld csf %lld gm %lld wm %lld oedema %lld lesion %lld\n",
           (long long)count[0], (long long)count[1], (long long)count[2], (long long)count[3],
           (long long)count[4], (long long)count[5], (long long)count[6]);

    double t1[7], t2[7], fl[7], ct[7];
    for (int l = 0; l < 7; l++) {
        t1[l] = mean_where(&p1[LPM_PH_T1], lab, l);
        t2[l] = mean_where(&p1[LPM_PH_T2], lab, l);
        fl[l] = mean_where(&p1[LPM_PH_FLAIR], lab, l);
        ct[l] = mean_where(&p1[LPM_PH_CT], lab, l);
    }
    CHECK(t1[4] > t1[3] && t1[3] > t1[2], "T1 WM %.0f > GM %.0f > CSF %.0f", t1[4], t1[3], t1[2]);
    CHECK(t2[2] > t2[3] && t2[3] > t2[4], "T2 CSF %.0f > GM %.0f > WM %.0f", t2[2], t2[3], t2[4]);
    CHECK(fl[5] > fl[3] && fl[6] > fl[3] && fl[3] > fl[2],
          "FLAIR oedema %.0f, lesion %.0f > GM %.0f > CSF %.0f", fl[5], fl[6], fl[3], fl[2]);
    CHECK(ct[1] > 300 && ct[0] < -900 && fabs(ct[3] - 38) < 15,
          "CT skull %.0f HU, air %.0f, GM %.0f", ct[1], ct[0], ct[3]);
    for (int m = 0; m < 5; m++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < D * H * W; i++)
            lo = fminf(lo, p1[m].data[i]), hi = fmaxf(hi, p1[m].data[i]);
        int ok = m == LPM_PH_CT ? lo > -1100 && lo < -900 && hi > 800 && hi < 1600
                                : lo >= 0 && lo < 50 && hi > 600 && hi < 2000;
        CHECK(ok, "%s range [%g, %g]", lpm_phantom_names[m], lo, hi);
        printf("  ok   %-6s range [%8.1f, %8.1f]\n", lpm_phantom_names[m], lo, hi);
    }

    lpm_volume tiny[LPM_PH_NVOLS];
    CHECK(lpm_phantom_make(tiny, 8, 8, 8, 1) == LPM_OK, "8x8x8 phantom: %s", lpm_last_error());
    for (int k = 0; k < LPM_PH_NVOLS; k++) lpm_volume_free(&tiny[k]);
    CHECK(lpm_phantom_make(tiny, 7, 8, 8, 1) == LPM_ERR_USAGE, "7x8x8 is refused");

    /* files: nested folders created, same seed -> identical bytes, read back equal */
    char d1[600], d2[600], f1[700], f2[700];
    snprintf(d1, sizeof d1, "%s/ph/a/b", dir);
    snprintf(d2, sizeof d2, "%s/ph2", dir);
    CHECK(lpm_phantom_write(d1, D, H, W, 7) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_phantom_write(d2, D, H, W, 7) == LPM_OK, "%s", lpm_last_error());
    for (int k = 0; k < LPM_PH_NVOLS; k++) {
        snprintf(f1, sizeof f1, "%s/%s.nii.gz", d1, lpm_phantom_names[k]);
        snprintf(f2, sizeof f2, "%s/%s.nii.gz", d2, lpm_phantom_names[k]);
        CHECK(files_equal(f1, f2), "%s and %s are identical", f1, f2);
        lpm_volume r = {0};
        CHECK(lpm_volume_read(f1, &r) == LPM_OK, "%s", lpm_last_error());
        if (r.data) {
            CHECK(r.nx == W && r.ny == H && r.nz == D && r.pixdim[0] == 1 && r.pixdim[2] == 1,
                  "%s geometry", f1);
            CHECK(!memcmp(r.data, p1[k].data, sizeof(float) * (size_t)(D * H * W)),
                  "%s reads back as written", f1);
        }
        lpm_volume_free(&r);
    }
    snprintf(f1, sizeof f1, "%s/t1.nii.gz/sub", d1);
    CHECK(lpm_phantom_write(f1, D, H, W, 7) == LPM_ERR_INPUT && strstr(lpm_last_error(), f1),
          "a file in the way is reported: %s", lpm_last_error());

    /* a picture of the phantom, to look at (normalised per modality) */
    const float *vols[5];
    const char *labels[5];
    float *norm[5];
    for (int m = 0; m < 5; m++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < D * H * W; i++)
            lo = fminf(lo, p1[m].data[i]), hi = fmaxf(hi, p1[m].data[i]);
        norm[m] = lpm_malloc((size_t)(D * H * W), sizeof(float));
        for (int64_t i = 0; i < D * H * W; i++) norm[m][i] = (p1[m].data[i] - lo) / (hi - lo);
        vols[m] = norm[m], labels[m] = lpm_phantom_names[m];
    }
    snprintf(f1, sizeof f1, "%s/phantom.png", dir);
    CHECK(lpm_montage_write(f1, labels, vols, 5, D, H, W) == LPM_OK, "%s", lpm_last_error());
    for (int m = 0; m < 5; m++) free(norm[m]);
    for (int k = 0; k < LPM_PH_NVOLS; k++) {
        lpm_volume_free(&p1[k]);
        lpm_volume_free(&p2[k]);
        lpm_volume_free(&p3[k]);
    }
}

int main(void) {
    const char *dir = scratch_dir();
    test_identity_and_range();
    test_pixel_methods();
    test_dwt();
    test_laplacian();
    test_detail_kept();
    test_box_mean();
    test_unknown_method();
    test_montage(dir);
    test_phantom(dir);
    return test_summary();
}
