/* Colour fusion: the colour maps against hand-computed values, the YCbCr luminance swap
 * against its closed form (c + (L - Y)(1, 1, 1), clamped), RGB24 and described NIfTI output
 * checked byte by byte in the files (and by nibabel when there is one), and the RGB montage
 * column checked pixel by pixel in the PNG. */
#include "io/io.h"
#include "io/montage.h"
#include "prep/color.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[1024];

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* ------------------------------------------------------------ colour maps */

typedef struct {
    float t, r, g, b;
} map_point;

/* Worked by hand from the piecewise-linear definitions (breakpoints and midpoints). */
static const map_point HOT[] = {
    {0, 0, 0, 0},          {0.1875f, 0.5f, 0, 0}, {0.375f, 1, 0, 0},  {0.5625f, 1, 0.5f, 0},
    {0.75f, 1, 1, 0},      {0.875f, 1, 1, 0.5f},  {1, 1, 1, 1},
    {-0.5f, 0, 0, 0},      {1.5f, 1, 1, 1},
};
static const map_point JET[] = {
    {0, 0, 0, 0.5f},      {0.125f, 0, 0, 1},  {0.25f, 0, 0.5f, 1}, {0.375f, 0, 1, 1},
    {0.5f, 0.5f, 1, 0.5f}, {0.625f, 1, 1, 0}, {0.75f, 1, 0.5f, 0}, {0.875f, 1, 0, 0},
    {1, 0.5f, 0, 0},      {-1, 0, 0, 0.5f},   {2, 0.5f, 0, 0},
};
static const map_point GRAY[] = {{0, 0, 0, 0}, {0.3f, 0.3f, 0.3f, 0.3f}, {1, 1, 1, 1}, {7, 1, 1, 1}};

static const struct {
    const char *name;
    const map_point *points;
    size_t n;
} TABLES[] = {
    {"hot", HOT, sizeof HOT / sizeof HOT[0]},
    {"jet", JET, sizeof JET / sizeof JET[0]},
    {"gray", GRAY, sizeof GRAY / sizeof GRAY[0]},
};
enum { NTABLES = sizeof TABLES / sizeof TABLES[0] };

static void test_maps(void) {
    for (int m = 0; m < NTABLES; m++) {
        lpm_colormap_fn fn = lpm_colormap_find(TABLES[m].name);
        CHECK(fn != NULL && lpm_colormap_known(TABLES[m].name), "map %s not found", TABLES[m].name);
        if (!fn) continue;
        int bad = 0;
        for (size_t k = 0; k < TABLES[m].n; k++) {
            const map_point *p = &TABLES[m].points[k];
            float c[3];
            fn(p->t, c);
            if (fabsf(c[0] - p->r) > 1e-6f || fabsf(c[1] - p->g) > 1e-6f || fabsf(c[2] - p->b) > 1e-6f) {
                fprintf(stderr, "  %s(%g) = (%g, %g, %g), want (%g, %g, %g)\n", TABLES[m].name, p->t, c[0],
                        c[1], c[2], p->r, p->g, p->b);
                bad++;
            }
        }
        float nan_c[3];
        fn(NAN, nan_c);
        CHECK(bad == 0, "%s: %d values differ from the hand-computed ones", TABLES[m].name, bad);
        CHECK(nan_c[0] == TABLES[m].points[0].r && nan_c[1] == TABLES[m].points[0].g &&
                  nan_c[2] == TABLES[m].points[0].b,
              "%s(NaN) is not %s(0)", TABLES[m].name, TABLES[m].name);
        printf("  ok   %-40s %zu points and NaN\n", TABLES[m].name, TABLES[m].n);
    }
    CHECK(!lpm_colormap_known("Hot") && !lpm_colormap_known("viridis") && !lpm_colormap_known("") &&
              !lpm_colormap_known(NULL),
          "unknown names are taken for maps");
    CHECK(strcmp(lpm_colormap_names(), "hot, jet, gray") == 0, "names: %s", lpm_colormap_names());
}

/* ------------------------------------------------------------ YCbCr fusion */

/* BT.601 luminance, from the standard's weights. */
static double luminance(double r, double g, double b) { return 0.299 * r + 0.587 * g + 0.114 * b; }

static int expected_byte(double x) {
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    return (int)lround(x * 255);
}

/* lpm_color_fuse of one voxel. */
static void fuse_one(const char *map, float luma, float func, uint8_t out[3]) {
    lpm_status st = lpm_color_fuse(out, &luma, &func, 1, map);
    CHECK(st == LPM_OK, "%s: %s", map, lpm_last_error());
}

static int same_rgb(const uint8_t got[3], int r, int g, int b, int tol) {
    return abs(got[0] - r) <= tol && abs(got[1] - g) <= tol && abs(got[2] - b) <= tol;
}

static void test_fuse_by_hand(void) {
    uint8_t c[3];
    /* hot(3/8) is pure red, Y = 0.299: L = 1 gives (1, 0.701, 0.701), L = 0 gives (0.701, 0, 0). */
    fuse_one("hot", 1, 0.375f, c);
    CHECK(same_rgb(c, 255, 179, 179, 0), "red at L=1: %d %d %d", c[0], c[1], c[2]);
    fuse_one("hot", 0, 0.375f, c);
    CHECK(same_rgb(c, 179, 0, 0, 0), "red at L=0: %d %d %d", c[0], c[1], c[2]);
    /* jet(1/2) = (0.5, 1, 0.5), Y = 0.7935: L = 0.5 gives (0.2065, 0.7065, 0.2065). */
    fuse_one("jet", 0.5f, 0.5f, c);
    CHECK(same_rgb(c, 53, 180, 53, 0), "jet(1/2) at L=0.5: %d %d %d", c[0], c[1], c[2]);
    /* Grey and the ends of hot have no chroma: the output is the fused grey itself. */
    for (int k = 0; k <= 10; k++) {
        float t = (float)k / 10;
        fuse_one("gray", 0, t, c);
        CHECK(same_rgb(c, 0, 0, 0, 0), "gray(%g) at L=0: %d %d %d", t, c[0], c[1], c[2]);
        fuse_one("gray", 1, t, c);
        CHECK(same_rgb(c, 255, 255, 255, 0), "gray(%g) at L=1: %d %d %d", t, c[0], c[1], c[2]);
        fuse_one("gray", 0.4f, t, c);
        CHECK(same_rgb(c, 102, 102, 102, 0), "gray(%g) at L=0.4: %d %d %d", t, c[0], c[1], c[2]);
    }
    fuse_one("hot", 0, 1, c);
    CHECK(same_rgb(c, 0, 0, 0, 0), "white at L=0: %d %d %d", c[0], c[1], c[2]);
    fuse_one("hot", 1, 0, c);
    CHECK(same_rgb(c, 255, 255, 255, 0), "black at L=1: %d %d %d", c[0], c[1], c[2]);
    /* NaN counts as 0: hot(NaN) = black, so the output is grey L; a NaN L is black. */
    fuse_one("hot", 0.6f, NAN, c);
    CHECK(same_rgb(c, 153, 153, 153, 0), "hot(NaN) at L=0.6: %d %d %d", c[0], c[1], c[2]);
    fuse_one("gray", NAN, 0.5f, c);
    CHECK(same_rgb(c, 0, 0, 0, 0), "L=NaN: %d %d %d", c[0], c[1], c[2]);
    printf("  ok   %-40s hand-worked voxels\n", "YCbCr luminance swap");
}

/* Over the hand tables: L = Y(c) gives c back (within one level), and any L gives the closed
 * form c + (L - Y)(1, 1, 1), clamped. Run as one call of n voxels. */
static void test_fuse_tables(void) {
    static const float lumas[] = {0, 0.1f, 0.25f, 0.5f, 0.75f, 0.9f, 1, -0.2f, 1.3f};
    enum { NL = sizeof lumas / sizeof lumas[0] };
    for (int m = 0; m < NTABLES; m++) {
        size_t n = TABLES[m].n * (NL + 1);
        float *luma = malloc(n * sizeof *luma), *func = malloc(n * sizeof *func);
        uint8_t *rgb = malloc(3 * n);
        for (size_t k = 0, i = 0; k < TABLES[m].n; k++) {
            const map_point *p = &TABLES[m].points[k];
            luma[i] = (float)luminance(p->r, p->g, p->b), func[i++] = p->t;
            for (int l = 0; l < NL; l++) luma[i] = lumas[l], func[i++] = p->t;
        }
        CHECK(lpm_color_fuse(rgb, luma, func, (int64_t)n, TABLES[m].name) == LPM_OK, "%s", lpm_last_error());
        int round_trip_bad = 0, closed_form_bad = 0;
        for (size_t k = 0, i = 0; k < TABLES[m].n; k++) {
            const map_point *p = &TABLES[m].points[k];
            const double want[3] = {p->r, p->g, p->b};
            double y = luminance(p->r, p->g, p->b);
            for (int ch = 0; ch < 3; ch++)
                if (abs(rgb[3 * i + ch] - expected_byte(want[ch])) > 1) round_trip_bad++;
            i++;
            for (int l = 0; l < NL; l++, i++) {
                double L = lumas[l] < 0 ? 0 : lumas[l] > 1 ? 1 : lumas[l];
                for (int ch = 0; ch < 3; ch++) {
                    int e = expected_byte(want[ch] + L - y);
                    if (abs(rgb[3 * i + ch] - e) > 1) {
                        if (!closed_form_bad)
                            fprintf(stderr, "  %s(%g) L=%g channel %d: %d, want %d\n", TABLES[m].name, p->t,
                                    lumas[l], ch, rgb[3 * i + ch], e);
                        closed_form_bad++;
                    }
                }
            }
        }
        CHECK(round_trip_bad == 0, "%s: %d channels off by more than 1/255 after L = Y", TABLES[m].name,
              round_trip_bad);
        CHECK(closed_form_bad == 0, "%s: %d channels differ from c + (L - Y)", TABLES[m].name, closed_form_bad);
        printf("  ok   %-40s %zu voxels: round trip and closed form\n", TABLES[m].name, n);
        free(luma), free(func), free(rgb);
    }
}

static void test_fuse_errors(void) {
    uint8_t c[3];
    float x = 0.5f;
    CHECK(lpm_color_fuse(c, &x, &x, 1, "viridis") == LPM_ERR_USAGE &&
              strstr(lpm_last_error(), "viridis") && strstr(lpm_last_error(), "hot, jet, gray"),
          "unknown map: %s", lpm_last_error());
    CHECK(lpm_color_fuse(c, &x, &x, 1, NULL) == LPM_ERR_USAGE, "NULL map accepted");
    CHECK(lpm_color_fuse(NULL, &x, &x, 1, "hot") == LPM_ERR_INTERNAL, "NULL output accepted");
    CHECK(lpm_color_fuse(c, &x, &x, -1, "hot") == LPM_ERR_INTERNAL, "negative count accepted");
    CHECK(lpm_color_fuse(NULL, NULL, NULL, 0, "hot") == LPM_OK, "nothing to do: %s", lpm_last_error());
}

/* ------------------------------------------------------------ NIfTI output */

enum { NX = 5, NY = 4, NZ = 3, NV = NX * NY * NZ };

/* A reference grid with a rotation, anisotropic voxels and an offset, made in memory. */
static void make_reference(lpm_volume *v) {
    CHECK(lpm_volume_alloc(v, NX, NY, NZ) == LPM_OK, "%s", lpm_last_error());
    const double c = cos(0.5), s = sin(0.5), d[3] = {1.5, 2.0, 2.5}, t[3] = {-10, 20, 5};
    const double rot[3][3] = {{c, -s, 0}, {s, c, 0}, {0, 0, 1}};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) v->affine[i][j] = rot[i][j] * d[j];
        v->affine[i][3] = t[i];
    }
    for (int k = 0; k < NV; k++) v->data[k] = (float)k / NV;
}

static void make_rgb(uint8_t *rgb) {
    for (int k = 0; k < NV; k++) {
        rgb[3 * k] = (uint8_t)(k * 7 % 256);
        rgb[3 * k + 1] = (uint8_t)(255 - k);
        rgb[3 * k + 2] = (uint8_t)(k * 31 % 256);
    }
}

/* The whole file (gunzipped when it is gzip; zlib reads plain files through too). */
static unsigned char *slurp(const char *path, size_t *size) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    int got;
    while (buf && (got = gzread(gz, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    gzclose(gz);
    *size = n;
    return buf;
}

static int16_t i16_at(const unsigned char *h, size_t at) {
    int16_t x;
    memcpy(&x, h + at, sizeof x);
    return x;
}
static float f32_at(const unsigned char *h, size_t at) {
    float x;
    memcpy(&x, h + at, sizeof x);
    return x;
}

/* NIfTI-1 fields of an RGB24 file written on make_reference's grid. */
static void check_rgb_header(const char *name, const unsigned char *h, int pair, const lpm_volume *ref) {
    int32_t size;
    memcpy(&size, h, sizeof size);
    CHECK(size == 348, "%s: sizeof_hdr %d", name, size);
    CHECK(i16_at(h, 40) == 3 && i16_at(h, 42) == NX && i16_at(h, 44) == NY && i16_at(h, 46) == NZ,
          "%s: dim %d %d %d %d", name, i16_at(h, 40), i16_at(h, 42), i16_at(h, 44), i16_at(h, 46));
    CHECK(i16_at(h, 68) == 0, "%s: intent_code %d", name, i16_at(h, 68));
    CHECK(i16_at(h, 70) == 128 && i16_at(h, 72) == 24, "%s: datatype %d bitpix %d", name, i16_at(h, 70),
          i16_at(h, 72));
    CHECK(f32_at(h, 108) == (pair ? 0.0f : 352.0f), "%s: vox_offset %g", name, f32_at(h, 108));
    CHECK(f32_at(h, 112) == 0.0f && f32_at(h, 116) == 0.0f, "%s: scl_slope %g scl_inter %g", name,
          f32_at(h, 112), f32_at(h, 116));
    CHECK(f32_at(h, 124) == 255.0f && f32_at(h, 128) == 0.0f, "%s: cal_max %g cal_min %g", name,
          f32_at(h, 124), f32_at(h, 128));
    CHECK(memcmp(h + 344, pair ? "ni1" : "n+1", 4) == 0, "%s: magic %.3s", name, (const char *)h + 344);
    CHECK(i16_at(h, 254) > 0, "%s: sform_code %d", name, i16_at(h, 254));
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            if (fabs(f32_at(h, 280 + 16 * i + 4 * j) - ref->affine[i][j]) > 1e-5) bad++;
    CHECK(bad == 0, "%s: %d srow entries differ from the reference affine", name, bad);
}

static int no_leftovers(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n == 0;
}

static void test_rgb_files(void) {
    lpm_volume ref;
    make_reference(&ref);
    uint8_t rgb[3 * NV];
    make_rgb(rgb);
    char nii[1200], niigz[1200], hdr[1200], img[1200];
    path_in(nii, sizeof nii, "rgb.nii");
    path_in(niigz, sizeof niigz, "rgb.nii.gz");
    path_in(hdr, sizeof hdr, "rgb.hdr");
    path_in(img, sizeof img, "rgb.img");
    CHECK(lpm_volume_write_rgb(nii, rgb, &ref, "colour test") == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_write_rgb(niigz, rgb, &ref, "colour test") == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_write_rgb(hdr, rgb, &ref, "colour test") == LPM_OK, "%s", lpm_last_error());

    size_t n_nii = 0, n_gz = 0, n_hdr = 0, n_img = 0;
    unsigned char *a = slurp(nii, &n_nii), *b = slurp(niigz, &n_gz);
    unsigned char *h = slurp(hdr, &n_hdr), *im = slurp(img, &n_img);
    CHECK(a && n_nii == 352 + 3 * NV, "%s: %zu bytes, want %d", nii, n_nii, 352 + 3 * NV);
    if (a && n_nii == 352 + 3 * NV) {
        check_rgb_header("rgb.nii", a, 0, &ref);
        CHECK(memcmp(a + 352, rgb, 3 * NV) == 0, "rgb.nii: voxel bytes differ");
        CHECK(strcmp((const char *)a + 148, "colour test") == 0, "rgb.nii: descrip '%.80s'", a + 148);
    }
    CHECK(b && n_gz == n_nii && memcmp(a, b, n_nii) == 0, "rgb.nii.gz does not gunzip to rgb.nii");
    CHECK(h && n_hdr >= 348, "%s: %zu bytes", hdr, n_hdr);
    if (h && n_hdr >= 348) check_rgb_header("rgb.hdr", h, 1, &ref);
    CHECK(im && n_img == 3 * NV && memcmp(im, rgb, 3 * NV) == 0, "rgb.img: %zu bytes, not the voxels", n_img);
    printf("  ok   %-40s header fields and voxels in .nii, .nii.gz, .hdr/.img\n", "RGB24 NIfTI");

    /* Same geometry as the float writer: pixdim, units, qform and sform bytes agree, with a
     * header-less reference and with one read from a file. */
    char flt[1200], rgb2[1200];
    path_in(flt, sizeof flt, "float.nii");
    path_in(rgb2, sizeof rgb2, "rgb2.nii");
    CHECK(lpm_volume_write(flt, &ref, &ref) == LPM_OK, "%s", lpm_last_error());
    lpm_volume back;
    CHECK(lpm_volume_read(flt, &back) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_write_rgb(rgb2, rgb, &back, NULL) == LPM_OK, "%s", lpm_last_error());
    size_t n_f = 0, n_2 = 0;
    unsigned char *f = slurp(flt, &n_f), *r2 = slurp(rgb2, &n_2);
    if (a && f && r2 && n_f >= 348 && n_2 >= 348 && n_nii >= 348) {
        for (int k = 0; k < 2; k++) {
            const unsigned char *x = k ? r2 : a;
            CHECK(memcmp(x + 76, f + 76, 32) == 0 && x[123] == f[123] && memcmp(x + 252, f + 252, 76) == 0,
                  "%s: geometry bytes differ from the float writer's", k ? "rgb2.nii" : "rgb.nii");
        }
        CHECK(strcmp((const char *)r2 + 148, (const char *)f + 148) == 0,
              "descrip NULL does not keep the reference's: '%.80s' vs '%.80s'", r2 + 148, f + 148);
    }
    printf("  ok   %-40s pixdim, units, qform, sform as lpm_volume_write\n", "RGB24 geometry");

    lpm_volume v;
    CHECK(lpm_volume_read(nii, &v) == LPM_ERR_INPUT && strstr(lpm_last_error(), "RGB24"),
          "the reader takes RGB: %s", lpm_last_error());
    char bad[1200];
    path_in(bad, sizeof bad, "rgb.png");
    CHECK(lpm_volume_write_rgb(bad, rgb, &ref, NULL) == LPM_ERR_INPUT && strstr(lpm_last_error(), "extension"),
          "bad extension: %s", lpm_last_error());
    path_in(bad, sizeof bad, "missing/rgb.nii");
    CHECK(lpm_volume_write_rgb(bad, rgb, &ref, NULL) == LPM_ERR_INPUT && strstr(lpm_last_error(), "does not exist"),
          "missing folder: %s", lpm_last_error());
    CHECK(lpm_volume_write_rgb(nii, NULL, &ref, NULL) == LPM_ERR_INTERNAL, "NULL data accepted");
    CHECK(lpm_volume_write_rgb(nii, rgb, NULL, NULL) == LPM_ERR_INTERNAL, "NULL reference accepted");
    CHECK(no_leftovers(), "temporary files left in %s", tmpdir);

    free(a), free(b), free(h), free(im), free(f), free(r2);
    lpm_volume_free(&back);
    lpm_volume_free(&ref);
}

/* nibabel, an independent reader: datatype, shape, affine and one voxel's triplet. */
static void test_rgb_nibabel(const char *python) {
    char nii[1200], script[1200], cmd[3000];
    path_in(nii, sizeof nii, "rgb.nii");
    path_in(script, sizeof script, "check.py");
    lpm_volume ref;
    make_reference(&ref);
    FILE *fp = fopen(script, "w");
    if (!fp) return;
    fprintf(fp,
            "import sys, numpy as np, nibabel as nib\n"
            "img = nib.load(sys.argv[1])\n"
            "a = np.asanyarray(img.dataobj)\n"
            "print(img.header.get_data_dtype().names, img.header['datatype'], a.shape)\n"
            "want = np.array([[%.17g,%.17g,%.17g,%.17g],[%.17g,%.17g,%.17g,%.17g],[%.17g,%.17g,%.17g,%.17g],[0,0,0,1]])\n"
            "print('affine', np.allclose(img.affine, want, atol=1e-5))\n"
            "v = a[1, 2, 0]\n"
            "print('voxel', int(v['R']), int(v['G']), int(v['B']))\n",
            ref.affine[0][0], ref.affine[0][1], ref.affine[0][2], ref.affine[0][3], ref.affine[1][0],
            ref.affine[1][1], ref.affine[1][2], ref.affine[1][3], ref.affine[2][0], ref.affine[2][1],
            ref.affine[2][2], ref.affine[2][3]);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' 2>&1", python, script, nii);
    FILE *p = popen(cmd, "r");
    char out[2048] = "";
    size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[got] = '\0';
    int rc = p ? pclose(p) : -1;
    /* voxel (x=1, y=2, z=0) is k = 1 + 5*2 = 11 */
    const int k = 1 + NX * 2;
    char want[256];
    snprintf(want, sizeof want, "('R', 'G', 'B') 128 (%d, %d, %d)\naffine True\nvoxel %d %d %d\n", NX, NY, NZ,
             k * 7 % 256, 255 - k, k * 31 % 256);
    CHECK(rc == 0 && strcmp(out, want) == 0, "nibabel says:\n%s\nwant:\n%s", out, want);
    printf("  ok   %-40s datatype, shape, affine, a voxel\n", "RGB24 read by nibabel");
    remove(script);
    lpm_volume_free(&ref);
}

static void test_descrip(void) {
    lpm_volume ref;
    make_reference(&ref);
    char path[1200];
    path_in(path, sizeof path, "described.nii");
    const char *text = "lpmnet " LPM_VERSION " model=lpmnet-mri.safetensors method=lpmnet";
    CHECK(lpm_volume_write_described(path, &ref, &ref, text) == LPM_OK, "%s", lpm_last_error());
    size_t n = 0;
    unsigned char *h = slurp(path, &n);
    CHECK(h && n >= 352 && strcmp((const char *)h + 148, text) == 0, "descrip '%.80s'", h ? (char *)h + 148 : "");
    CHECK(h && n >= 352 && i16_at(h, 70) == 16 && f32_at(h, 112) == 1.0f, "not float32 with slope 1");
    free(h);

    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    CHECK(lpm_volume_write_described(path, &ref, &ref, longer) == LPM_OK, "%s", lpm_last_error());
    h = slurp(path, &n);
    CHECK(h && n >= 352 && strnlen((const char *)h + 148, 80) == 79 && h[148 + 79] == '\0' && h[148] == 'x',
          "a long descrip is not cut to 79 characters");
    free(h);

    CHECK(lpm_volume_write(path, &ref, NULL) == LPM_OK, "%s", lpm_last_error());
    h = slurp(path, &n);
    CHECK(h && n >= 352 && strcmp((const char *)h + 148, "lpmnet " LPM_VERSION) == 0, "default descrip '%.80s'",
          h ? (char *)h + 148 : "");
    free(h);
    printf("  ok   %-40s given, cut at 79, default\n", "descrip");
    lpm_volume_free(&ref);
}

/* ------------------------------------------------------------ montage */

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

/* A grey and an RGB column of a 4x4x4 volume: enlarged by u = 128/4 = 32, so the axial view
 * of column i starts at x = 42 + i*(128 + 4), y = 22 and voxel (D/2, r, c) fills the block
 * at (32c, 32r) (montage.h's layout). */
static void test_montage(void) {
    enum { S = 4, N = S * S * S, U = 32, COL = S * U };
    float grey[N];
    uint8_t rgb[3 * N];
    for (int k = 0; k < N; k++) {
        grey[k] = (float)k / (N - 1);
        rgb[3 * k] = (uint8_t)(4 * k);
        rgb[3 * k + 1] = (uint8_t)(255 - 3 * k);
        rgb[3 * k + 2] = (uint8_t)(k % 5 * 50);
    }
    const lpm_montage_column cols[2] = {{"grey", grey, NULL}, {"hot", NULL, rgb}};
    char path[1200];
    path_in(path, sizeof path, "montage.png");
    CHECK(lpm_montage_write_columns(path, cols, 2, S, S, S) == LPM_OK, "%s", lpm_last_error());
    int w = 0, h = 0;
    uint8_t *img = read_png(path, &w, &h);
    CHECK(img && w == 42 + 2 * (COL + 4) && h == 22 + COL + 4 + 2 * (COL + 4), "PNG %dx%d", w, h);
    if (img && w == 42 + 2 * (COL + 4)) {
        int bad = 0;
        for (int r = 0; r < S; r++)
            for (int c = 0; c < S; c++) {
                int k = ((S / 2) * S + r) * S + c;
                int y = 22 + r * U + U / 2;
                const uint8_t *g = img + 3 * ((size_t)y * w + 42 + c * U + U / 2);
                const uint8_t *p = img + 3 * ((size_t)y * w + 42 + COL + 4 + c * U + U / 2);
                int gv = (int)lround(grey[k] * 255);
                if (g[0] != gv || g[1] != gv || g[2] != gv) bad++;
                if (memcmp(p, rgb + 3 * k, 3) != 0) bad++;
            }
        CHECK(bad == 0, "%d axial pixels differ from the voxels", bad);
    }
    free(img);
    const lpm_montage_column none[1] = {{"x", NULL, NULL}};
    CHECK(lpm_montage_write_columns(path, none, 1, S, S, S) == LPM_ERR_INTERNAL, "a column without data");
    const lpm_montage_column both[1] = {{"x", grey, rgb}};
    CHECK(lpm_montage_write_columns(path, both, 1, S, S, S) == LPM_ERR_INTERNAL, "a column with both");
    printf("  ok   %-40s grey and RGB columns in the PNG\n", "montage");
}

int main(void) {
    const char *base = test_env("LPM_TMP") ? test_env("LPM_TMP") : "/tmp";
    mkdir(base, 0777);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_color.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot make a scratch folder under %s: %s\n", base, strerror(errno));
        return 1;
    }
    test_maps();
    test_fuse_by_hand();
    test_fuse_tables();
    test_fuse_errors();
    test_rgb_files();
    const char *python = test_env("LPM_PYTHON") ? test_env("LPM_PYTHON") : "/usr/bin/python3";
    char probe[1400];
    snprintf(probe, sizeof probe, "'%s' -c 'import numpy, nibabel' >/dev/null 2>&1", python);
    if (system(probe) == 0)
        test_rgb_nibabel(python);
    else
        SKIP("RGB24 read by nibabel: %s lacks numpy/nibabel", python);
    test_descrip();
    test_montage();

    DIR *d = opendir(tmpdir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char p[1400];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return test_summary();
}
