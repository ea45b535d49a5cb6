/* Synthetic multimodal phantoms: a brain-like head and a chest.
 *
 * Head geometry: nested shells of a head ellipsoid (scalp, skull, CSF, cortex, white matter)
 * whose radii are perturbed by random sums of plane waves over the direction (low
 * frequencies for the skull, higher ones for the grey/white boundary, which gives gyri),
 * plus a midline fissure, two lateral ventricles, deep grey nuclei and a lesion with a
 * necrotic core and oedema in one hemisphere.
 *
 * Thorax geometry: an elliptic body cylinder with a fat layer and a chest wall of muscle
 * and slanted ribs, a spine (vertebral bodies and discs, canal, arch), two lungs with
 * pulmonary vessels branching from the hila, trachea and main bronchi, a heart (myocardium
 * around the blood pool), the aorta, the mediastinum, and 1 to 3 tumour nodules in the lungs
 * whose number, places and sizes depend on the seed.
 *
 * Coordinates are normalised to [-1, 1] per axis, so the body fills any box; larger d is
 * superior, larger h is anterior, larger w is the subject's left.
 *
 * Rendering: a mean intensity per tissue and modality, varied by a few percent per seed
 * (so that seeds also differ in contrast), then
 *   MR: a small Gaussian blur (partial volume), a smooth multiplicative bias field, Rician noise;
 *   CT: the small blur and Gaussian noise;
 *   PET, SPECT: the scanner's Gaussian point spread function (scaled with the anatomy, see
 *   body_model.fov_mm), then noise of standard deviation proportional to the square root of
 *   the value (Poisson-like) and spatially correlated, as in reconstructed emission images;
 *   negative values are cut to 0.
 * Noise comes from one RNG stream per (volume, slice), so the result does not depend on the
 * number of threads. */
#include "phantom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Loops over fewer voxels than this run on one thread: waking threads would cost more. */
enum { PAR_MIN = 1 << 16 };

const char *const lpm_phantom_names[LPM_PH_NVOLS] = {"t1", "t2",  "flair", "pd",
                                                     "ct", "pet", "spect", "labels"};
const char *const lpm_phantom_thorax_names[LPM_TH_NVOLS] = {"ct", "pet", "labels"};

/* How a volume is made from the map of rendering classes. */
typedef enum { R_MR, R_CT, R_PET, R_SPECT } render_kind;

static const float mr_noise = 0.025f, ct_noise = 12.f;
/* Per-seed variation of the mean intensities: a factor in [1 - JITTER, 1 + JITTER]. */
static const float JITTER = 0.04f;

/* Emission imaging: the point spread function's FWHM (mm of the real field of view, see
 * body_model.fov_mm), and noise of standard deviation gain * sqrt(value) with a grain (the
 * sigma, in voxels, of its spatial correlation, as after reconstruction). SPECT has the
 * coarser resolution and the larger noise, with a coarser grain. */
typedef struct {
    double fwhm, grain;
    float gain;
} emission;
static const emission pet_model = {6.0, 0.8, 6.f}, spect_model = {12.0, 1.6, 9.f};

/* ------------------------------------------------------------------ head */

/* Rendering classes of the head: the labels, with the skull label split into scalp and bone
 * and the lesion into its rim and necrotic core. */
enum { C_BG, C_SCALP, C_BONE, C_CSF, C_GM, C_WM, C_OEDEMA, C_LESION, C_CORE, NCLASS };
static const int head_label[NCLASS] = {
    LPM_PH_BACKGROUND, LPM_PH_SKULL,  LPM_PH_SKULL,  LPM_PH_CSF,   LPM_PH_GM,
    LPM_PH_WM,         LPM_PH_OEDEMA, LPM_PH_LESION, LPM_PH_LESION};

static const render_kind head_kind[LPM_PH_NVOLS - 1] = {R_MR, R_MR,  R_MR,   R_MR,
                                                        R_CT, R_PET, R_SPECT};
/* Mean intensity per class (MR x 1000, CT in HU, PET and SPECT in counts). FDG-PET: grey
 * matter ~3.9x white matter, the lesion rim hot (2x grey matter), its necrotic core cold.
 * Perfusion SPECT: grey matter 2x white matter, the lesion cold (hypoperfused).
 *              bg     scalp  bone   CSF    GM     WM     oedema lesion core */
static const float head_mean[LPM_PH_NVOLS - 1][NCLASS] = {
    /* T1    */ {0, 0.80f, 0.08f, 0.18f, 0.50f, 0.72f, 0.40f, 0.28f, 0.22f},
    /* T2    */ {0, 0.45f, 0.06f, 1.00f, 0.58f, 0.42f, 0.82f, 0.70f, 0.88f},
    /* FLAIR */ {0, 0.55f, 0.05f, 0.10f, 0.55f, 0.40f, 0.90f, 0.78f, 0.70f},
    /* PD    */ {0, 0.60f, 0.08f, 0.88f, 0.78f, 0.65f, 0.85f, 0.80f, 0.86f},
    /* CT    */ {-1000, 40, 1200, 8, 38, 28, 18, 32, 20},
    /* PET   */ {0, 900, 500, 250, 11000, 2800, 1500, 22000, 4000},
    /* SPECT */ {0, 500, 300, 150, 6000, 3000, 1600, 1500, 600},
};

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
/* The necrotic core: this fraction of the lesion's radius. */
static const float S_CORE = 0.45f;

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

/* Rendering class of the point x in the head. */
static int classify_head(const void *anatomy_, const float x[3]) {
    const anatomy *a = anatomy_;
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
    float ul[3];
    float rho_lesion = blob_rho(&a->lesion, x, ul);
    if (!outside(rho_lesion, 1, &a->lesion.f, ul))
        return outside(rho_lesion, S_CORE, &a->lesion.f, ul) ? C_LESION : C_CORE;
    if (blob_inside(&a->oedema, x)) return C_OEDEMA;
    if (blob_inside(&a->nuclei[0], x) || blob_inside(&a->nuclei[1], x)) return C_GM;
    /* Cortex: t = 0 on a sulcus, 1 on a gyral crown. Sulci are thin CSF clefts; the white
     * matter reaches up into each gyrus, leaving a ribbon of grey matter. */
    float t = fminf(fabsf(waves_eval(&a->sulci, u)) / 0.6f, 1.f);
    if (t < 0.1f && rho > 0.76f * S_PIAL) return C_CSF;
    return rho < S_PIAL * (0.70f + 0.22f * t) ? C_WM : C_GM;
}

/* ---------------------------------------------------------------- thorax */

/* Rendering classes of the thorax. */
enum {
    T_BG, T_FAT, T_MUSCLE, T_DISC, T_CANAL, T_LUNG, T_AIRWAY, T_VESSEL,
    T_VERTEBRA, T_RIB, T_MYOCARDIUM, T_BLOOD, T_MEDIASTINUM, T_TUMOUR, TNCLASS
};
static const int thorax_label[TNCLASS] = {
    LPM_TH_BACKGROUND, LPM_TH_FAT,    LPM_TH_SOFT,       LPM_TH_SOFT,        LPM_TH_SOFT,
    LPM_TH_LUNG,       LPM_TH_LUNG,   LPM_TH_VESSEL,     LPM_TH_BONE,        LPM_TH_BONE,
    LPM_TH_MYOCARDIUM, LPM_TH_MEDIASTINUM, LPM_TH_MEDIASTINUM, LPM_TH_TUMOUR};

static const render_kind thorax_kind[LPM_TH_NVOLS - 1] = {R_CT, R_PET};
/* CT in HU; FDG-PET in counts: myocardium high, blood pool and mediastinum moderate, lungs
 * very low, muscle low, vertebral marrow low-moderate, the tumour ~8x the mediastinum.
 * Columns: bg, fat, muscle, disc, canal, lung, airway, vessel, vertebra, rib, myocardium,
 * blood, mediastinum, tumour. */
static const float thorax_mean[LPM_TH_NVOLS - 1][TNCLASS] = {
    /* CT  */ {-1000, -100, 40, 80, 15, -850, -1000, 0, 700, 1000, 40, 40, 30, 30},
    /* PET */ {0, 250, 900, 600, 500, 200, 0, 1800, 2200, 800, 14000, 2000, 1800, 14000},
};

/* A capsule: the points within r of the segment a-b. */
typedef struct {
    float a[3], ab[3], inv_len2, r2;
} tube;

static void tube_init(tube *t, const float a[3], const float b[3], float r) {
    float len2 = 0;
    for (int j = 0; j < 3; j++) {
        t->a[j] = a[j];
        t->ab[j] = b[j] - a[j];
        len2 += t->ab[j] * t->ab[j];
    }
    t->inv_len2 = len2 > 0 ? 1 / len2 : 0;
    t->r2 = r * r;
}

static int tube_inside(const tube *t, const float x[3]) {
    float ax[3], s = 0;
    for (int j = 0; j < 3; j++) {
        ax[j] = x[j] - t->a[j];
        s += ax[j] * t->ab[j];
    }
    s = fminf(fmaxf(s * t->inv_len2, 0.f), 1.f);
    float d2 = 0;
    for (int j = 0; j < 3; j++) {
        float e = ax[j] - s * t->ab[j];
        d2 += e * e;
    }
    return d2 < t->r2;
}

static int any_tube_inside(const tube *t, int n, const float x[3]) {
    for (int i = 0; i < n; i++)
        if (tube_inside(&t[i], x)) return 1;
    return 0;
}

enum { MAXNODULES = 3, TRUNKS = 5, NVESSELS = 2 * 2 * TRUNKS, NAIRWAYS = 3, NAORTA = 3 };
typedef struct {
    float body_r[2];    /* radii of the body's cross-section (w, h) */
    waves outline, fat; /* skin and fat/muscle surfaces, over (direction, height) */
    blob lung[2], heart, nodule[MAXNODULES];
    int nnodules;
    tube vessel[NVESSELS], airway[NAIRWAYS], aorta[NAORTA];
    float rib_phase, disc_phase;
} thorax;

/* Fractions of the body radius: the inner surfaces of the fat and of the chest wall, and
 * the outer surface of the ribs. */
static const float S_FAT = 0.91f, S_CAVITY = 0.80f, S_RIBS = 0.86f;
/* Ribs (and vertebrae) per unit of normalised height; the ribs fall this much per unit
 * forward, and a rib is this fraction of a period thick. */
static const float RIBS_PER_UNIT = 3.5f, RIB_SLOPE = 0.35f, RIB_FILL = 0.3f;
static const float VERTEBRAE_PER_UNIT = 3.0f, DISC_FILL = 0.16f;
/* The myocardium is the heart's outer shell beyond this fraction of its radius. */
static const float S_MYOCARDIUM = 0.62f;

/* A point drawn uniformly inside blob b's ellipsoid scaled by s. */
static void point_in(const blob *b, float s, lpm_rng *r, float p[3]) {
    float q[3], n2;
    do {
        n2 = 0;
        for (int j = 0; j < 3; j++) {
            q[j] = (float)(2 * lpm_rng_uniform(r) - 1);
            n2 += q[j] * q[j];
        }
    } while (n2 > 1);
    for (int j = 0; j < 3; j++) p[j] = b->c[j] + s * b->r[j] * q[j];
}

static void thorax_init(thorax *t, lpm_rng *r) {
    memset(t, 0, sizeof *t);
    t->body_r[0] = 0.92f * (float)(0.96 + 0.06 * lpm_rng_uniform(r));
    t->body_r[1] = 0.70f * (float)(0.94 + 0.08 * lpm_rng_uniform(r));
    waves_init(&t->outline, r, 6, 1.0, 3.0, 0.03);
    waves_init(&t->fat, r, 6, 1.0, 3.0, 0.02);
    for (int s = 0; s < 2; s++) {
        float side = s ? 1.f : -1.f;
        blob *l = &t->lung[s];
        l->c[0] = side * 0.42f, l->c[1] = -0.02f, l->c[2] = 0.20f;
        l->r[0] = 0.33f, l->r[1] = 0.52f, l->r[2] = 1.0f;
        waves_init(&l->f, r, 6, 1.0, 3.0, 0.04);
    }
    blob *h = &t->heart;
    h->c[0] = 0.10f, h->c[1] = 0.16f, h->c[2] = -0.38f;
    h->r[0] = 0.30f, h->r[1] = 0.30f, h->r[2] = 0.36f;
    waves_init(&h->f, r, 6, 1.5, 3.0, 0.06);
    /* pulmonary vessels: trunks from each hilum to the lung, each with one branch */
    int v = 0;
    for (int s = 0; s < 2; s++) {
        const float hilum[3] = {s ? 0.17f : -0.17f, 0.0f, 0.0f};
        for (int k = 0; k < TRUNKS; k++) {
            float end[3], mid[3], twig[3];
            point_in(&t->lung[s], 0.8f, r, end);
            float rad = (float)(0.018 + 0.012 * lpm_rng_uniform(r));
            tube_init(&t->vessel[v++], hilum, end, rad);
            float at = (float)(0.4 + 0.3 * lpm_rng_uniform(r));
            for (int j = 0; j < 3; j++) mid[j] = hilum[j] + at * (end[j] - hilum[j]);
            point_in(&t->lung[s], 0.8f, r, twig);
            tube_init(&t->vessel[v++], mid, twig, 0.7f * rad);
        }
    }
    const float carina[3] = {0, 0.02f, 0.2f}, top[3] = {0, 0.02f, 1.2f};
    const float bronchus[2][3] = {{-0.2f, 0, 0.02f}, {0.2f, 0, 0.02f}};
    tube_init(&t->airway[0], carina, top, 0.055f);
    for (int s = 0; s < 2; s++) tube_init(&t->airway[1 + s], carina, bronchus[s], 0.035f);
    const float root[3] = {0.02f, 0.10f, -0.2f}, arch_a[3] = {0.02f, 0.10f, 0.55f},
                arch_b[3] = {0.14f, -0.22f, 0.55f}, descending[3] = {0.14f, -0.22f, -1.2f};
    tube_init(&t->aorta[0], root, arch_a, 0.07f);
    tube_init(&t->aorta[1], arch_a, arch_b, 0.065f);
    tube_init(&t->aorta[2], arch_b, descending, 0.065f);
    t->rib_phase = (float)lpm_rng_uniform(r);
    t->disc_phase = (float)lpm_rng_uniform(r);
    /* 1 to 3 nodules, each in a random lung, well inside it and away from the heart */
    t->nnodules = 1 + (int)(MAXNODULES * lpm_rng_uniform(r));
    for (int k = 0; k < t->nnodules; k++) {
        blob *n = &t->nodule[k];
        const blob *l = &t->lung[lpm_rng_uniform(r) < 0.5];
        float u[3];
        do point_in(l, 0.7f, r, n->c);
        while (blob_rho(h, n->c, u) < 1.3f || fabsf(n->c[2]) > 0.75f ||
               hypotf(n->c[0] / t->body_r[0], n->c[1] / t->body_r[1]) > 0.7f);
        float rad = (float)(0.05 + 0.05 * lpm_rng_uniform(r));
        for (int j = 0; j < 3; j++) n->r[j] = rad * (float)(0.85 + 0.3 * lpm_rng_uniform(r));
        waves_init(&n->f, r, 6, 2.0, 4.0, 0.15);
    }
}

/* The spine's class at x, or -1 outside it: vertebral body (or disc), canal, arch. */
static int spine_class(const thorax *t, const float x[3]) {
    float bx = x[0] / 0.12f, by = (x[1] + 0.30f) / 0.10f;
    if (bx * bx + by * by < 1) {
        float f = x[2] * VERTEBRAE_PER_UNIT + t->disc_phase;
        return f - floorf(f) < DISC_FILL ? T_DISC : T_VERTEBRA;
    }
    float cx = x[0] / 0.045f, cy = (x[1] + 0.47f) / 0.045f;
    if (cx * cx + cy * cy < 1) return T_CANAL;
    float ax = x[0] / 0.08f, ay = (x[1] + 0.47f) / 0.075f;
    if (ax * ax + ay * ay < 1) return T_VERTEBRA;
    if (fabsf(x[0]) < 0.025f && x[1] > -0.64f && x[1] < -0.47f) return T_VERTEBRA; /* spinous */
    return -1;
}

/* Rendering class of the point x in the thorax. */
static int classify_thorax(const void *thorax_, const float x[3]) {
    const thorax *t = thorax_;
    float px = x[0] / t->body_r[0], py = x[1] / t->body_r[1];
    float rho = sqrtf(px * px + py * py);
    /* the body is a cylinder: its surfaces vary with the direction in the slice and height */
    float u[3] = {rho > 1e-6f ? px / rho : 1, rho > 1e-6f ? py / rho : 0, x[2]};
    if (outside(rho, 1, &t->outline, u)) return T_BG;
    if (outside(rho, S_FAT, &t->fat, u)) return T_FAT;
    int spine = spine_class(t, x);
    if (spine >= 0) return spine;
    if (rho >= S_CAVITY) {
        if (rho < S_RIBS) {
            if (x[1] > 0 && fabsf(x[0]) < 0.07f) return T_RIB; /* the sternum */
            float f = (x[2] + RIB_SLOPE * (x[1] + 1)) * RIBS_PER_UNIT + t->rib_phase;
            if (f - floorf(f) < RIB_FILL) return T_RIB;
        }
        return T_MUSCLE;
    }
    if (any_tube_inside(t->airway, NAIRWAYS, x)) return T_AIRWAY;
    if (any_tube_inside(t->aorta, NAORTA, x)) return T_BLOOD;
    float uh[3];
    float rho_heart = blob_rho(&t->heart, x, uh);
    if (!outside(rho_heart, 1, &t->heart.f, uh))
        return rho_heart < S_MYOCARDIUM ? T_BLOOD : T_MYOCARDIUM;
    if (blob_inside(&t->lung[0], x) || blob_inside(&t->lung[1], x)) {
        for (int k = 0; k < t->nnodules; k++)
            if (blob_inside(&t->nodule[k], x)) return T_TUMOUR;
        return any_tube_inside(t->vessel, NVESSELS, x) ? T_VESSEL : T_LUNG;
    }
    return fabsf(x[0] - 0.03f) < 0.2f && x[1] > -0.40f ? T_MEDIASTINUM : T_MUSCLE;
}

/* -------------------------------------------------------------- rendering */

enum { MAX_RADIUS = 48 };
static const double FWHM_PER_SIGMA = 2.3548200450309493; /* 2 sqrt(2 ln 2) */

/* A normalised Gaussian kernel g[0..2r] of radius r = ceil(3 sigma) (at least 1); returns r. */
static int gauss_kernel(double sigma, float g[2 * MAX_RADIUS + 1]) {
    int r = (int)ceil(3 * sigma);
    r = r < 1 ? 1 : r > MAX_RADIUS ? MAX_RADIUS : r;
    double sum = 0;
    for (int k = -r; k <= r; k++) sum += g[k + r] = (float)exp(-0.5 * k * k / (sigma * sigma));
    for (int k = 0; k <= 2 * r; k++) g[k] = (float)(g[k] / sum);
    return r;
}

/* Index j reflected into [0, len) about the end samples, for any j (a kernel may be longer
 * than the axis). */
static int64_t mirror(int64_t j, int64_t len) {
    if (len == 1) return 0;
    int64_t period = 2 * (len - 1);
    j %= period;
    if (j < 0) j += period;
    return j < len ? j : period - j;
}

/* In-place separable Gaussian blur (sigma in voxels) with mirror borders. */
static lpm_status blur3(float *x, int64_t D, int64_t H, int64_t W, double sigma) {
    float g[2 * MAX_RADIUS + 1];
    int r = gauss_kernel(sigma, g);
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
                for (int k = -r; k <= r; k++) {
                    int64_t j = i + k;
                    if (j < 0 || j >= len) j = mirror(j, len);
                    const float *s = in + (p * len + j) * B;
                    for (int64_t b = 0; b < B; b++) o[b] += g[k + r] * s[b];
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

/* Normalised coordinates of voxel (d, h, w): x[0] from w, x[1] from h, x[2] from d. */
static void voxel_position(int64_t d, int64_t h, int64_t w, int64_t D, int64_t H, int64_t W,
                           float x[3]) {
    x[0] = (float)((w + 0.5) / W * 2 - 1);
    x[1] = (float)((h + 0.5) / H * 2 - 1);
    x[2] = (float)((d + 0.5) / D * 2 - 1);
}

/* MR (bias is its bias field) or CT: the small blur, then the noise. */
static lpm_status finish_mr_ct(float *y, const waves *bias, int64_t D, int64_t H, int64_t W,
                               uint64_t seed, int stream, float scale) {
    lpm_status st = blur3(y, D, H, W, 0.6);
    if (st) return st;
#pragma omp parallel for schedule(static) if (D * H * W >= PAR_MIN)
    for (int64_t d = 0; d < D; d++) {
        lpm_rng r;
        lpm_rng_seed(&r, stream_seed(seed, stream, d));
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t i = (d * H + h) * W + w;
                float z[2];
                normal_pair(&r, z);
                if (!bias) {
                    y[i] += ct_noise * z[0];
                    continue;
                }
                float x[3];
                voxel_position(d, h, w, D, H, W, x);
                /* the bias field is a smooth function of position: evaluate the waves at x */
                float s = y[i] * expf(waves_eval(bias, x));
                float sd = mr_noise * scale;
                float re = s + sd * z[0], im = sd * z[1];
                /* Rician: magnitude of a complex signal with Gaussian noise in both parts */
                y[i] = sqrtf(re * re + im * im);
            }
    }
    return LPM_OK;
}

/* PET or SPECT: the point spread function, then Poisson-like noise of standard deviation
 * gain * sqrt(value), correlated over the model's grain. */
static lpm_status finish_emission(float *y, const emission *e, double voxels_per_mm, int64_t D,
                                  int64_t H, int64_t W, uint64_t seed, int stream) {
    lpm_status st = blur3(y, D, H, W, e->fwhm / FWHM_PER_SIGMA * voxels_per_mm);
    if (st) return st;
    int64_t n = D * H * W, plane = H * W;
    float *noise = lpm_malloc((size_t)n, sizeof(float));
    if (!noise) return LPM_ERR_INTERNAL;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t d = 0; d < D; d++) {
        lpm_rng r;
        lpm_rng_seed(&r, stream_seed(seed, stream, d));
        float *z = noise + d * plane;
        for (int64_t i = 0; i < plane; i += 2) {
            float pair[2];
            normal_pair(&r, pair);
            z[i] = pair[0];
            if (i + 1 < plane) z[i + 1] = pair[1];
        }
    }
    st = blur3(noise, D, H, W, e->grain);
    if (!st) {
        /* white noise of unit variance blurred by g has the standard deviation
         * sqrt(sum g^2) per axis: divide it out so the noise keeps the stated size */
        float g[2 * MAX_RADIUS + 1];
        int r = gauss_kernel(e->grain, g);
        double g2 = 0;
        for (int k = 0; k <= 2 * r; k++) g2 += (double)g[k] * g[k];
        float gain = (float)(e->gain / pow(g2, 1.5));
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float v = fmaxf(y[i], 0.f);
            y[i] = fmaxf(v + gain * sqrtf(v) * noise[i], 0.f);
        }
    }
    free(noise);
    return st;
}

/* What a body is made of. Its volumes are the rendered ones (kind, mean per class) and then
 * the labels. */
typedef struct {
    int nvols, nclass;
    const render_kind *kind;  /* [nvols - 1] */
    const float *mean;        /* [nvols - 1][nclass] */
    const int *label;         /* [nclass] */
    int (*classify)(const void *anatomy, const float x[3]);
    int stream;               /* first noise stream of the body's volumes */
    /* The real field of view (mm) that the box's mean in-plane size (H + W) / 2 stands for.
     * The anatomy fills the box whatever its size, so the emission point spread function is
     * scaled with it: a 6 mm PET then looks, against the anatomy, as it does on a real head
     * or chest. (At the default 96 voxels a fixed 6 mm would be 8% of the head's width,
     * twice its share on a real head, and wash out the cortex.) */
    double fov_mm;
} body_model;

static const body_model head_model = {
    .nvols = LPM_PH_NVOLS, .nclass = NCLASS, .kind = head_kind, .mean = &head_mean[0][0],
    .label = head_label, .classify = classify_head, .stream = 0, .fov_mm = 200};
static const body_model thorax_model = {
    .nvols = LPM_TH_NVOLS, .nclass = TNCLASS, .kind = thorax_kind, .mean = &thorax_mean[0][0],
    .label = thorax_label, .classify = classify_thorax, .stream = 16, .fov_mm = 400};

static void free_vols(lpm_volume *vols, int n) {
    for (int v = 0; v < n; v++) lpm_volume_free(&vols[v]);
}

static lpm_status alloc_vols(lpm_volume *vols, int n, int64_t D, int64_t H, int64_t W) {
    memset(vols, 0, sizeof(lpm_volume) * (size_t)n);
    if (D < 8 || H < 8 || W < 8)
        return lpm_fail(LPM_ERR_USAGE, "phantom: shape %lld,%lld,%lld: each size must be >= 8",
                        (long long)D, (long long)H, (long long)W);
    for (int v = 0; v < n; v++)
        if (lpm_volume_alloc(&vols[v], W, H, D)) {
            free_vols(vols, n);
            return LPM_ERR_INTERNAL;
        }
    return LPM_OK;
}

/* Each class's mean intensities times a factor in [1 - JITTER, 1 + JITTER] drawn for the
 * seed; air in CT stays at -1000 HU, the physical definition of the scale. */
static void jitter_means(const body_model *b, uint64_t seed, float *mean) {
    lpm_rng r;
    lpm_rng_seed(&r, seed ^ 0x6a09e667f3bcc909ULL);
    for (int m = 0; m < b->nvols - 1; m++)
        for (int c = 0; c < b->nclass; c++) {
            float f = 1 + JITTER * (float)(2 * lpm_rng_uniform(&r) - 1);
            float v = b->mean[m * b->nclass + c];
            mean[m * b->nclass + c] = b->kind[m] == R_CT && v <= -1000 ? v : v * f;
        }
}

/* Fill the allocated vols of body b from its anatomy (bias: the MR bias fields, one per MR
 * volume in order). */
static lpm_status render_body(lpm_volume *vols, const body_model *b, const void *anatomy,
                              const waves *bias, int64_t D, int64_t H, int64_t W, uint64_t seed) {
    int64_t n = D * H * W;
    uint8_t *cls = lpm_malloc((size_t)n, 1);
    float *mean = lpm_malloc((size_t)((b->nvols - 1) * b->nclass), sizeof(float));
    if (!cls || !mean) {
        free(cls);
        free(mean);
        return LPM_ERR_INTERNAL;
    }
    float *labels = vols[b->nvols - 1].data;
#pragma omp parallel for collapse(2) schedule(dynamic, 16) if (n >= PAR_MIN / 16)
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                float x[3];
                voxel_position(d, h, w, D, H, W, x);
                int64_t i = (d * H + h) * W + w;
                int c = b->classify(anatomy, x);
                cls[i] = (uint8_t)c;
                labels[i] = (float)b->label[c];
            }
    jitter_means(b, seed, mean);
    lpm_status st = LPM_OK;
    for (int m = 0, mr = 0; m < b->nvols - 1 && !st; m++) {
        float *y = vols[m].data;
        const float *mu = mean + m * b->nclass;
        render_kind kind = b->kind[m];
        float scale = kind == R_MR ? 1000.f : 1.f; /* MR means are given x 1000 */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = scale * mu[cls[i]];
        int stream = b->stream + m;
        if (kind == R_PET || kind == R_SPECT)
            st = finish_emission(y, kind == R_PET ? &pet_model : &spect_model,
                                 0.5 * (double)(H + W) / b->fov_mm, D, H, W, seed, stream);
        else
            st = finish_mr_ct(y, kind == R_MR ? &bias[mr++] : NULL, D, H, W, seed, stream, scale);
    }
    free(cls);
    free(mean);
    return st;
}

lpm_status lpm_phantom_make(lpm_volume vols[LPM_PH_NVOLS], int64_t D, int64_t H, int64_t W,
                            uint64_t seed) {
    lpm_status st = alloc_vols(vols, LPM_PH_NVOLS, D, H, W);
    if (st) return st;
    lpm_rng rng;
    lpm_rng_seed(&rng, seed);
    anatomy a;
    anatomy_init(&a, &rng);
    waves bias[4];
    for (int m = 0; m < 4; m++) waves_init(&bias[m], &rng, 4, 0.8, 1.8, 0.15);
    st = render_body(vols, &head_model, &a, bias, D, H, W, seed);
    if (st) free_vols(vols, LPM_PH_NVOLS);
    return st;
}

lpm_status lpm_phantom_thorax_make(lpm_volume vols[LPM_TH_NVOLS], int64_t D, int64_t H,
                                   int64_t W, uint64_t seed) {
    lpm_status st = alloc_vols(vols, LPM_TH_NVOLS, D, H, W);
    if (st) return st;
    lpm_rng rng;
    lpm_rng_seed(&rng, seed);
    thorax t;
    thorax_init(&t, &rng);
    st = render_body(vols, &thorax_model, &t, NULL, D, H, W, seed);
    if (st) free_vols(vols, LPM_TH_NVOLS);
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

lpm_status lpm_phantom_write_body(const char *dir, lpm_phantom_body body, int64_t D, int64_t H,
                                  int64_t W, uint64_t seed) {
    int thorax = body == LPM_PHANTOM_THORAX;
    int nvols = thorax ? LPM_TH_NVOLS : LPM_PH_NVOLS;
    const char *const *names = thorax ? lpm_phantom_thorax_names : lpm_phantom_names;
    _Static_assert((int)LPM_PH_NVOLS >= (int)LPM_TH_NVOLS, "vols[] holds either body");
    lpm_volume vols[LPM_PH_NVOLS];
    lpm_status st = make_dirs(dir);
    if (st) return st;
    st = thorax ? lpm_phantom_thorax_make(vols, D, H, W, seed)
                : lpm_phantom_make(vols, D, H, W, seed);
    if (st) return st;
    for (int v = 0; v < nvols && !st; v++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.nii.gz", dir, names[v]);
        st = lpm_volume_write(path, &vols[v], NULL);
    }
    free_vols(vols, nvols);
    return st;
}

lpm_status lpm_phantom_write(const char *dir, int64_t D, int64_t H, int64_t W, uint64_t seed) {
    return lpm_phantom_write_body(dir, LPM_PHANTOM_HEAD, D, H, W, seed);
}
