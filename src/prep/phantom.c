/* Synthetic multimodal brain phantom.
 *
 * Geometry: nested shells of a head ellipsoid (scalp, skull, CSF, cortex, white matter)
 * whose radii are perturbed by random sums of plane waves over the direction (low
 * frequencies for the skull, higher ones for the grey/white boundary, which gives gyri),
 * plus a midline fissure, two lateral ventricles, deep grey nuclei and a lesion with
 * oedema in one hemisphere. Coordinates are normalised to [-1, 1] per axis, so the head
 * fills any box; larger d is superior, larger h is anterior, larger w is the subject's left.
 *
 * Rendering: a mean intensity per tissue and contrast, a small Gaussian blur (partial
 * volume), then for MR a smooth multiplicative bias field and Rician noise, for CT
 * Gaussian noise. Noise comes from one RNG stream per (volume, slice), so the result does
 * not depend on the number of threads. */
#include "phantom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Loops over fewer voxels than this run on one thread: waking threads would cost more. */
enum { PAR_MIN = 1 << 16 };

const char *const lpm_phantom_names[LPM_PH_NVOLS] = {"t1", "t2", "flair", "pd", "ct", "labels"};

/* Rendering classes: the labels, with the skull label split into scalp and bone. */
enum { C_BG, C_SCALP, C_BONE, C_CSF, C_GM, C_WM, C_OEDEMA, C_LESION, NCLASS };
static const int class_label[NCLASS] = {LPM_PH_BACKGROUND, LPM_PH_SKULL, LPM_PH_SKULL,
                                        LPM_PH_CSF,        LPM_PH_GM,    LPM_PH_WM,
                                        LPM_PH_OEDEMA,     LPM_PH_LESION};

/* Mean intensity per class (MR x 1000, CT in HU):
 *              bg    scalp  bone   CSF    GM    WM    oedema lesion */
static const float mean_intensity[5][NCLASS] = {
    /* T1    */ {0, 0.80f, 0.08f, 0.18f, 0.50f, 0.72f, 0.40f, 0.28f},
    /* T2    */ {0, 0.45f, 0.06f, 1.00f, 0.58f, 0.42f, 0.82f, 0.70f},
    /* FLAIR */ {0, 0.55f, 0.05f, 0.10f, 0.55f, 0.40f, 0.90f, 0.78f},
    /* PD    */ {0, 0.60f, 0.08f, 0.88f, 0.78f, 0.65f, 0.85f, 0.80f},
    /* CT    */ {-1000, 40, 1200, 8, 38, 28, 18, 32},
};
static const float mr_scale = 1000.f, mr_noise = 0.025f, ct_noise = 12.f;

/* A smooth random function of direction: sum of a_i sin(k_i . u + phi_i). */
enum { MAXWAVES = 24 };
typedef struct {
    int n;
    float k[MAXWAVES][3], amp[MAXWAVES], phase[MAXWAVES];
    float bound; /* sum of |amp|: the function never leaves [-bound, bound] */
} waves;

static void waves_init(waves *f, lpm_rng *r, int n, double freq_lo, double freq_hi, double amp) {
    f->n = n;
    f->bound = 0;
    for (int i = 0; i < n; i++) {
        double v[3], len;
        do {
            for (int j = 0; j < 3; j++) v[j] = 2 * lpm_rng_uniform(r) - 1;
            len = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        } while (len < 0.1 || len > 1);
        double freq = freq_lo + (freq_hi - freq_lo) * lpm_rng_uniform(r);
        for (int j = 0; j < 3; j++) f->k[i][j] = (float)(v[j] / len * freq);
        /* amplitudes ~ amp / sqrt(n) keep the total deviation near amp whatever n is */
        f->amp[i] = (float)(amp * (0.5 + lpm_rng_uniform(r)) / sqrt((double)n));
        f->phase[i] = (float)(6.283185307179586 * lpm_rng_uniform(r));
        f->bound += f->amp[i];
    }
    f->bound *= 1.001f; /* margin for float rounding in waves_eval */
}

static float waves_eval(const waves *f, const float u[3]) {
    float s = 0;
    for (int i = 0; i < f->n; i++)
        s += f->amp[i] * sinf(f->k[i][0] * u[0] + f->k[i][1] * u[1] + f->k[i][2] * u[2] + f->phase[i]);
    return s;
}

/* An ellipsoid (centre, radii) with a perturbed surface. */
typedef struct {
    float c[3], r[3];
    waves f;
} blob;

/* Normalised radius of point x in blob b: < 1 inside. The direction u is also returned. */
static float blob_rho(const blob *b, const float x[3], float u[3]) {
    float p[3], rho = 0;
    for (int j = 0; j < 3; j++) {
        p[j] = (x[j] - b->c[j]) / b->r[j];
        rho += p[j] * p[j];
    }
    rho = sqrtf(rho);
    for (int j = 0; j < 3; j++) u[j] = rho > 1e-6f ? p[j] / rho : (j == 0);
    return rho;
}

/* rho >= s (1 + f(u)), evaluating f only when the bound cannot decide (most voxels). */
static int outside(float rho, float s, const waves *f, const float u[3]) {
    if (rho >= s * (1 + f->bound)) return 1;
    if (rho < s * (1 - f->bound)) return 0;
    return rho >= s * (1 + waves_eval(f, u));
}

static int blob_inside(const blob *b, const float x[3]) {
    float u[3];
    float rho = blob_rho(b, x, u);
    return !outside(rho, 1, &b->f, u);
}

/* Axes of x[]: 0 = w (left-right), 1 = h (posterior-anterior), 2 = d (inferior-superior). */
typedef struct {
    blob head;
    waves scalp, bone_out, bone_in, pial;  /* shell surfaces of the head */
    waves sulci;  /* its zero set on the sphere of directions traces the sulci */
    blob vent[2], nuclei[2], lesion, oedema;
    float fissure_centre, fissure_halfwidth;
} anatomy;

/* Shell radii as fractions of the head radius. */
static const float S_BONE_OUT = 0.95f, S_BONE_IN = 0.88f, S_PIAL = 0.84f;

static void anatomy_init(anatomy *a, lpm_rng *r) {
    memset(a, 0, sizeof *a);
    const float head_c[3] = {0, 0.02f, -0.02f}, head_r[3] = {0.80f, 0.93f, 0.90f};
    memcpy(a->head.c, head_c, sizeof head_c);
    memcpy(a->head.r, head_r, sizeof head_r);
    waves_init(&a->scalp, r, 6, 1.0, 2.5, 0.04);
    waves_init(&a->bone_out, r, 6, 1.0, 2.5, 0.02);
    waves_init(&a->bone_in, r, 6, 1.0, 2.5, 0.02);
    waves_init(&a->pial, r, 10, 3.0, 6.0, 0.02);
    waves_init(&a->sulci, r, 24, 12.0, 22.0, 1.0);
    for (int s = 0; s < 2; s++) {
        float side = s ? 1.f : -1.f;
        blob *v = &a->vent[s];
        v->c[0] = side * (0.10f + 0.02f * (float)lpm_rng_uniform(r));
        v->c[1] = -0.04f, v->c[2] = 0.06f;
        v->r[0] = 0.08f, v->r[1] = 0.36f, v->r[2] = 0.12f;
        waves_init(&v->f, r, 4, 1.5, 3.0, 0.12);
        blob *g = &a->nuclei[s];
        g->c[0] = side * 0.18f, g->c[1] = 0.02f, g->c[2] = -0.08f;
        g->r[0] = 0.09f, g->r[1] = 0.16f, g->r[2] = 0.11f;
        waves_init(&g->f, r, 4, 1.5, 3.0, 0.08);
    }
    /* The lesion sits in the white matter of a random hemisphere. */
    float side = lpm_rng_uniform(r) < 0.5 ? -1.f : 1.f;
    float lc[3] = {side * (0.34f + 0.08f * (float)lpm_rng_uniform(r)),
                   -0.25f + 0.5f * (float)lpm_rng_uniform(r),
                   0.05f + 0.2f * (float)lpm_rng_uniform(r)};
    float lr = 0.09f + 0.04f * (float)lpm_rng_uniform(r);
    memcpy(a->lesion.c, lc, sizeof lc);
    memcpy(a->oedema.c, lc, sizeof lc);
    for (int j = 0; j < 3; j++) {
        a->lesion.r[j] = lr * (0.85f + 0.3f * (float)lpm_rng_uniform(r));
        a->oedema.r[j] = 2.0f * lr * (0.85f + 0.3f * (float)lpm_rng_uniform(r));
    }
    waves_init(&a->lesion.f, r, 6, 2.0, 4.0, 0.12);
    waves_init(&a->oedema.f, r, 8, 2.0, 5.0, 0.2);
    a->fissure_centre = -0.035f, a->fissure_halfwidth = 0.014f;
}

/* Rendering class of the point x. */
static int classify(const anatomy *a, const float x[3]) {
    float u[3];
    float rho = blob_rho(&a->head, x, u);
    if (outside(rho, 1, &a->scalp, u)) return C_BG;
    if (outside(rho, S_BONE_OUT, &a->bone_out, u)) return C_SCALP;
    if (outside(rho, S_BONE_IN, &a->bone_in, u)) return C_BONE;
    if (outside(rho, S_PIAL, &a->pial, u)) return C_CSF;
    /* the interhemispheric fissure above the ventricles, slightly off the midline and wavy
     * (so the mid-sagittal slice shows a hemisphere, as in a real head) */
    float mid = a->fissure_centre + 0.015f * sinf(4 * x[1] + 1);
    if (fabsf(x[0] - mid) < a->fissure_halfwidth && x[2] > 0.25f) return C_CSF;
    if (blob_inside(&a->vent[0], x) || blob_inside(&a->vent[1], x)) return C_CSF;
    if (blob_inside(&a->lesion, x)) return C_LESION;
    if (blob_inside(&a->oedema, x)) return C_OEDEMA;
    if (blob_inside(&a->nuclei[0], x) || blob_inside(&a->nuclei[1], x)) return C_GM;
    /* Cortex: t = 0 on a sulcus, 1 on a gyral crown. Sulci are thin CSF clefts; the white
     * matter reaches up into each gyrus, leaving a ribbon of grey matter. */
    float t = fminf(fabsf(waves_eval(&a->sulci, u)) / 0.6f, 1.f);
    if (t < 0.1f && rho > 0.76f * S_PIAL) return C_CSF;
    return rho < S_PIAL * (0.70f + 0.22f * t) ? C_WM : C_GM;
}

/* In-place separable Gaussian blur (sigma in voxels, radius 2) with mirror borders. */
static lpm_status blur3(float *x, int64_t D, int64_t H, int64_t W, double sigma) {
    float g[5];
    double sum = 0;
    for (int k = -2; k <= 2; k++) sum += g[k + 2] = (float)exp(-0.5 * k * k / (sigma * sigma));
    for (int k = 0; k < 5; k++) g[k] = (float)(g[k] / sum);
    int64_t n = D * H * W;
    float *t = lpm_malloc((size_t)n, sizeof(float));
    if (!t) return LPM_ERR_INTERNAL;
    /* axis (A, len, B): W, H, D in turn, ping-ponging between x and t */
    const int64_t shape[3][3] = {{D * H, W, 1}, {D, H, W}, {1, D, H * W}};
    for (int ax = 0; ax < 3; ax++) {
        const float *in = ax == 1 ? t : x;
        float *out = ax == 1 ? x : t;
        int64_t A = shape[ax][0], len = shape[ax][1], B = shape[ax][2];
#pragma omp parallel for collapse(2) schedule(static) if (A * len * B >= PAR_MIN)
        for (int64_t p = 0; p < A; p++)
            for (int64_t i = 0; i < len; i++) {
                float *o = out + (p * len + i) * B;
                for (int64_t b = 0; b < B; b++) o[b] = 0;
                for (int k = -2; k <= 2; k++) {
                    int64_t j = i + k;
                    j = j < 0 ? -j : j >= len ? 2 * (len - 1) - j : j;
                    const float *s = in + (p * len + j) * B;
                    for (int64_t b = 0; b < B; b++) o[b] += g[k + 2] * s[b];
                }
            }
    }
    memcpy(x, t, sizeof(float) * (size_t)n);
    free(t);
    return LPM_OK;
}

/* Two independent standard normals from one Box-Muller step. */
static void normal_pair(lpm_rng *r, float z[2]) {
    double u1 = lpm_rng_uniform(r), u2 = lpm_rng_uniform(r);
    double m = sqrt(-2.0 * log(u1 > 1e-300 ? u1 : 1e-300)), t = 6.283185307179586 * u2;
    z[0] = (float)(m * cos(t));
    z[1] = (float)(m * sin(t));
}

static uint64_t stream_seed(uint64_t seed, int vol, int64_t d) {
    return seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)((int64_t)vol * 1000003 + d + 1));
}

lpm_status lpm_phantom_make(lpm_volume vols[LPM_PH_NVOLS], int64_t D, int64_t H, int64_t W,
                            uint64_t seed) {
    memset(vols, 0, sizeof(lpm_volume) * LPM_PH_NVOLS);
    if (D < 8 || H < 8 || W < 8)
        return lpm_fail(LPM_ERR_USAGE, "phantom: shape %lld,%lld,%lld: each size must be >= 8",
                        (long long)D, (long long)H, (long long)W);
    lpm_status st = LPM_OK;
    for (int v = 0; v < LPM_PH_NVOLS && !st; v++) st = lpm_volume_alloc(&vols[v], W, H, D);
    uint8_t *cls = st ? NULL : lpm_malloc((size_t)(D * H * W), 1);
    if (!cls) goto fail;

    lpm_rng rng;
    lpm_rng_seed(&rng, seed);
    anatomy a;
    anatomy_init(&a, &rng);
    waves bias[4];
    for (int m = 0; m < 4; m++) waves_init(&bias[m], &rng, 4, 0.8, 1.8, 0.15);

    float *labels = vols[LPM_PH_LABELS].data;
#pragma omp parallel for collapse(2) schedule(dynamic, 16) if (D * H * W >= PAR_MIN / 16)
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                float x[3] = {(float)((w + 0.5) / W * 2 - 1), (float)((h + 0.5) / H * 2 - 1),
                              (float)((d + 0.5) / D * 2 - 1)};
                int64_t i = (d * H + h) * W + w;
                int c = classify(&a, x);
                cls[i] = (uint8_t)c;
                labels[i] = (float)class_label[c];
            }

    int64_t n = D * H * W;
    for (int m = 0; m < 5 && !st; m++) {
        float *y = vols[m].data;
        int is_ct = m == LPM_PH_CT;
        float scale = is_ct ? 1.f : mr_scale;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = scale * mean_intensity[m][cls[i]];
        st = blur3(y, D, H, W, 0.6);
        if (st) break;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t d = 0; d < D; d++) {
            lpm_rng r;
            lpm_rng_seed(&r, stream_seed(seed, m, d));
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    int64_t i = (d * H + h) * W + w;
                    float z[2];
                    normal_pair(&r, z);
                    if (is_ct) {
                        y[i] += ct_noise * z[0];
                        continue;
                    }
                    float x[3] = {(float)((w + 0.5) / W * 2 - 1), (float)((h + 0.5) / H * 2 - 1),
                                  (float)((d + 0.5) / D * 2 - 1)};
                    /* the bias field is a smooth function of position: evaluate the waves at x */
                    float s = y[i] * expf(waves_eval(&bias[m], x));
                    float sd = mr_noise * mr_scale;
                    float re = s + sd * z[0], im = sd * z[1];
                    /* Rician: magnitude of a complex signal with Gaussian noise in both parts */
                    y[i] = sqrtf(re * re + im * im);
                }
        }
    }
    free(cls);
    if (!st) return LPM_OK;
fail:
    if (!st) st = LPM_ERR_INTERNAL;
    for (int v = 0; v < LPM_PH_NVOLS; v++) lpm_volume_free(&vols[v]);
    return st;
}

/* mkdir -p: create dir and any missing parents. */
static lpm_status make_dirs(const char *dir) {
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) return lpm_fail(LPM_ERR_USAGE, "phantom: bad folder '%s'", dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char keep = path[i];
        path[i] = '\0';
        struct stat sb;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return lpm_fail(LPM_ERR_INPUT, "%s: cannot create folder %s: %s", dir, path,
                            strerror(errno));
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return lpm_fail(LPM_ERR_INPUT, "%s: cannot create folder: %s is not a folder", dir,
                            path);
        path[i] = keep;
    }
    return LPM_OK;
}

lpm_status lpm_phantom_write(const char *dir, int64_t D, int64_t H, int64_t W, uint64_t seed) {
    lpm_volume vols[LPM_PH_NVOLS];
    lpm_status st = make_dirs(dir);
    if (st) return st;
    st = lpm_phantom_make(vols, D, H, W, seed);
    if (st) return st;
    for (int v = 0; v < LPM_PH_NVOLS && !st; v++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.nii.gz", dir, lpm_phantom_names[v]);
        st = lpm_volume_write(path, &vols[v], NULL);
    }
    for (int v = 0; v < LPM_PH_NVOLS; v++) lpm_volume_free(&vols[v]);
    return st;
}
