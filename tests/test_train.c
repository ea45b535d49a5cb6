/* Training: ten lpm_train_step calls against PyTorch's (fixtures_train.py: both passes,
 * one backward, torch.optim.Adam, float64), the reconstruction masks, and the
 * resumability of the data loader. */
#include "test.h"
#include "io/io.h"
#include "train/train.h"

#include <stddef.h>
#include <sys/stat.h>

static const lpm_st_file *fx;
static int fixture_missing;

/* Fixture tensor by name with n elements, or NULL (and a failed check). */
static const float *get(const char *name, size_t n) {
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *p = lpm_st_find(fx, name, &ndim, shape);
    size_t numel = 1;
    for (int i = 0; p && i < ndim; i++) numel *= (size_t)shape[i];
    CHECK(p && numel == n, "fixture tensor %s: %s (%zu values, want %zu)", name,
          p ? "wrong size" : "missing", p ? numel : 0, n);
    return p && numel == n ? p : NULL;
}

static const struct {
    const char *name;
    size_t off;
} terms[] = {
    {"mse_af", offsetof(lpm_loss_terms, mse_af)},       {"mse_bf", offsetof(lpm_loss_terms, mse_bf)},
    {"ssim_af", offsetof(lpm_loss_terms, ssim_af)},     {"ssim_bf", offsetof(lpm_loss_terms, ssim_bf)},
    {"ssim_adet", offsetof(lpm_loss_terms, ssim_adet)}, {"ssim_bdet", offsetof(lpm_loss_terms, ssim_bdet)},
    {"sf_f", offsetof(lpm_loss_terms, sf_f)},           {"mse_rec", offsetof(lpm_loss_terms, mse_rec)},
    {"total", offsetof(lpm_loss_terms, total)},
};

/* Per tensor: max |got - want| / max |want| over the 92 tensors of flat (the weights'
 * layout) against "<prefix><name>"; prints the worst tensor and checks it against tol. */
static void compare_params(const char *what, const float *flat, const char *prefix, double tol) {
    const lpm_tensor_info *ti = lpm_tensor_table();
    double worst = -1, worst_abs = 0, max_abs = 0;
    const char *worst_name = "?";
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, ti[i].name);
        const float *want = get(name, ti[i].numel);
        if (!want) return;
        const float *got = flat + ti[i].offset;
        double d = 0, m = 0;
        for (size_t j = 0; j < ti[i].numel; j++) {
            double e = fabs((double)got[j] - (double)want[j]);
            if (!(e <= d)) d = e;  /* NaN counts as the worst */
            if (fabs(want[j]) > m) m = fabs(want[j]);
        }
        double rel = m > 0 ? d / m : d;
        if (d > max_abs || isnan(d)) max_abs = d;
        if (!(rel <= worst)) worst = rel, worst_abs = d, worst_name = ti[i].name;
    }
    printf("  %-26s worst %-38s rel %.3g (abs %.3g); max|diff| over all %.3g\n", what, worst_name,
           worst, worst_abs, max_abs);
    CHECK(worst <= tol, "%s: %s differs by %.3g of its max |value| (tolerance %g)", what, worst_name,
          worst, tol);
}

static void test_train_steps(void) {
    const char *dir = test_env("LPM_FIXTURES");
    char path[4096];
    snprintf(path, sizeof path, "%s/train.safetensors", dir ? dir : ".");
    lpm_st_file *f = NULL;
    if (!dir || lpm_st_read(path, &f) != LPM_OK) {
        SKIP("train steps: %s not readable (set LPM_FIXTURES; reference/make_fixtures.py writes it)",
             path);
        fixture_missing = 1;
        return;
    }
    fx = f;
    const int64_t D = 16, H = 32, W = 32, n = D * H * W;
    const float *a = get("a", n), *b = get("b", n), *hp = get("hparams", 4);
    lpm_trainer t;
    lpm_status st = lpm_trainer_init(&t, D, H, W);
    CHECK(st == LPM_OK, "lpm_trainer_init: %s", lpm_last_error());
    if (st || !a || !b || !hp) goto done;

    const lpm_tensor_info *ti = lpm_tensor_table();
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        char name[256];
        snprintf(name, sizeof name, "w0.%s", ti[i].name);
        const float *w0 = get(name, ti[i].numel);
        float *dst = lpm_weights_tensor(&t.w, ti[i].name);
        CHECK(dst != NULL, "lpm_weights_tensor(%s)", ti[i].name);
        if (!w0 || !dst) goto freet;
        memcpy(dst, w0, ti[i].numel * sizeof(float));
    }

    int steps_done = 0;
    for (int k = 0; k < 10; k++) {
        char name[256];
        snprintf(name, sizeof name, "m1.%d", k);
        const float *m1 = get(name, n);
        snprintf(name, sizeof name, "m2.%d", k);
        const float *m2 = get(name, n);
        snprintf(name, sizeof name, "lambda.%d", k);
        const float *lam = get(name, 1);
        if (!m1 || !m2 || !lam) break;
        lpm_loss_weights lw = {.alpha = hp[1], .beta = hp[2], .gamma = hp[3], .lambda_s = lam[0]};
        lpm_loss_terms got;
        memset(&got, 0, sizeof got);
        double t0 = lpm_seconds();
        st = lpm_train_step(&t, a, b, m1, m2, NULL, 0.2, &lw, hp[0], &got);
        CHECK(st == LPM_OK, "lpm_train_step %d: %s", k, lpm_last_error());
        if (st) break;
        printf("step %d (%.2f s)\n", k, lpm_seconds() - t0);

        for (size_t j = 0; j < sizeof terms / sizeof terms[0]; j++) {
            snprintf(name, sizeof name, "loss.%d.%s", k, terms[j].name);
            const float *want = get(name, 1);
            double g = *(const double *)((const char *)&got + terms[j].off);
            if (!want) continue;
            double rel = fabs(g - want[0]) / fabs(want[0]);
            printf("  %-10s %.9g  torch %.9g  rel %.2g\n", terms[j].name, g, (double)want[0], rel);
            CHECK(rel <= 1e-4, "step %d %s: %.9g, PyTorch %.9g (rel %.3g)", k, terms[j].name, g,
                  (double)want[0], rel);
        }
        /* t.grad still holds the step's gradient (Adam adds the weight decay on the side) */
        if (k == 0) compare_params("gradients of step 0", t.grad.data, "g0.", 1e-3);
        snprintf(name, sizeof name, "weights after step %d", k);
        char prefix[16];
        snprintf(prefix, sizeof prefix, "w%d.", k + 1);
        /* Looser than the losses: the max of three branches and LeakyReLU are not smooth,
         * so a 1-ulp difference can route one element's gradient elsewhere, and Adam turns
         * even a tiny gradient change into a step of up to lr (1e-4) on that weight. The
         * sanitizer build (other rounding) does that from step 6 on and reaches 2e-4 of a
         * tensor's max |value| by step 9. Gradient errors are caught above: every step's
         * loss terms within 1e-4 and step 0's gradients within 1e-3. */
        compare_params(name, t.w.data, prefix, 1e-3);
        steps_done++;
    }
    CHECK(steps_done == 10, "ten training steps compared, got %d", steps_done);
freet:
    lpm_trainer_free(&t);
done:
    lpm_st_close(f);
    fx = NULL;
}

static void test_recon_masks(void) {
    const int64_t D = 64, H = 64, W = 64, n = D * H * W;
    float *m[4];
    for (int i = 0; i < 4; i++) m[i] = malloc(sizeof(float) * (size_t)n);
    lpm_rng r;
    lpm_rng_seed(&r, 42);
    lpm_recon_masks(m[0], m[1], D, H, W, 0.2, &r);
    lpm_rng_seed(&r, 42);
    lpm_recon_masks(m[2], m[3], D, H, W, 0.2, &r);
    CHECK(!memcmp(m[0], m[2], sizeof(float) * (size_t)n) && !memcmp(m[1], m[3], sizeof(float) * (size_t)n),
          "same seed, same masks");
    CHECK(memcmp(m[0], m[1], sizeof(float) * (size_t)n) != 0, "m1 and m2 are drawn independently");

    int64_t bad_value = 0, bad_block = 0, kept = 0, blocks = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < n; i++) {
            float v = m[k][i];
            bad_value += v != 0.0f && v != 1.0f;
            int64_t d = i / (H * W), h = i / W % H, w = i % W;
            /* every voxel equals its block's first voxel */
            bad_block += v != m[k][((d & ~7) * H + (h & ~7)) * W + (w & ~7)];
            if (d % 8 == 0 && h % 8 == 0 && w % 8 == 0) blocks++, kept += v == 1.0f;
        }
    double frac = (double)kept / (double)blocks;
    printf("  masks: %lld blocks, keep fraction %.4f\n", (long long)blocks, frac);
    CHECK(bad_value == 0, "%lld mask values outside {0,1}", (long long)bad_value);
    CHECK(bad_block == 0, "%lld voxels differ from their 8x8x8 block", (long long)bad_block);
    /* 1024 blocks: standard deviation of the fraction 0.0125 */
    CHECK(fabs(frac - 0.8) < 0.05, "keep fraction %.4f, want ~0.8", frac);

    lpm_rng_seed(&r, 43);
    lpm_recon_masks(m[2], m[3], D, H, W, 0.2, &r);
    CHECK(memcmp(m[0], m[2], sizeof(float) * (size_t)n) != 0, "another seed, other masks");
    for (int i = 0; i < 4; i++) free(m[i]);
}

static int same_sample(const lpm_sample *x, const lpm_sample *y) {
    size_t n = (size_t)(x->D * x->H * x->W);
    return x->D == y->D && x->H == y->H && x->W == y->W && x->case_index == y->case_index &&
           !memcmp(x->a, y->a, n * sizeof(float)) && !memcmp(x->b, y->b, n * sizeof(float));
}

/* Samples first_k .. first_k + n - 1 of the stream (seed). */
static lpm_status take(const lpm_dataset *ds, const lpm_sample_spec *spec, uint64_t seed,
                       int64_t first_k, int n, lpm_sample *out) {
    lpm_loader L;
    lpm_status st = lpm_loader_start(&L, ds, spec, seed, first_k);
    for (int k = 0; k < n && !st; k++) st = lpm_loader_next(&L, &out[k]);
    lpm_loader_stop(&L);
    return st;
}

static void test_loader_resume(void) {
    const char *tmp = test_env("LPM_TMP");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/train_loader", tmp ? tmp : "/tmp");
    if (tmp) mkdir(tmp, 0755);
    mkdir(dir, 0755);

    /* three small cases of different content and widths */
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    FILE *csv = NULL;
    snprintf(path, sizeof path, "%s/pairs.csv", dir);
    csv = fopen(path, "w");
    CHECK(csv != NULL, "cannot write %s", path);
    if (!csv) return;
    fprintf(csv, "a,b\n");
    for (int c = 0; c < 3; c++) {
        for (int m = 0; m < 2; m++) {
            lpm_volume v;
            lpm_status st = lpm_volume_alloc(&v, 24 + 4 * c, 20, 18);
            CHECK(st == LPM_OK, "lpm_volume_alloc: %s", lpm_last_error());
            if (st) break;
            for (int64_t i = 0; i < lpm_volume_numel(&v); i++)
                v.data[i] = (float)(lpm_rng_uniform(&r) * (1 + c + m));
            snprintf(path, sizeof path, "%s/case%d_%c.nii", dir, c, "ab"[m]);
            st = lpm_volume_write(path, &v, NULL);
            CHECK(st == LPM_OK, "lpm_volume_write %s: %s", path, lpm_last_error());
            lpm_volume_free(&v);
        }
        fprintf(csv, "case%d_a.nii,case%d_b.nii\n", c, c);
    }
    fclose(csv);

    lpm_dataset ds;
    snprintf(path, sizeof path, "%s/pairs.csv", dir);
    lpm_status st = lpm_dataset_open(&ds, path, NULL, NULL, NULL);
    CHECK(st == LPM_OK && ds.n == 3, "dataset %s: %s", path, lpm_last_error());
    if (st) return;

    lpm_sample_spec spec = {.crop = {16, 16, 16}, .mode = 1, .aug = {.flip = 1}};
    enum { K = 5 };
    lpm_sample s1[K], s2[K], s3, s4;
    memset(s1, 0, sizeof s1), memset(s2, 0, sizeof s2), memset(&s3, 0, sizeof s3), memset(&s4, 0, sizeof s4);
    st = take(&ds, &spec, 11, 0, K, s1);
    if (!st) st = take(&ds, &spec, 11, 0, K, s2);
    if (!st) st = take(&ds, &spec, 11, 2, 1, &s3);
    if (!st) st = take(&ds, &spec, 12, 0, 1, &s4);
    CHECK(st == LPM_OK, "loader: %s", lpm_last_error());

    if (!st) {
        int same = 1, distinct = 0;
        for (int k = 0; k < K; k++) {
            CHECK(s1[k].D == 16 && s1[k].H == 16 && s1[k].W == 16, "crop 16^3, got %lldx%lldx%lld",
                  (long long)s1[k].D, (long long)s1[k].H, (long long)s1[k].W);
            same &= same_sample(&s1[k], &s2[k]);
            if (k) distinct += !same_sample(&s1[k], &s1[k - 1]);
        }
        CHECK(same, "two loaders from one seed give the same samples");
        CHECK(distinct == K - 1, "consecutive samples differ (%d of %d)", distinct, K - 1);
        CHECK(same_sample(&s3, &s1[2]), "a loader started at k=2 gives the 3rd sample");
        CHECK(!same_sample(&s4, &s1[0]), "another seed gives another first sample");
        printf("  loader: cases of samples 0..%d:", K - 1);
        for (int k = 0; k < K; k++) printf(" %d", s1[k].case_index);
        printf("\n");
    }
    for (int k = 0; k < K; k++) lpm_sample_free(&s1[k]), lpm_sample_free(&s2[k]);
    lpm_sample_free(&s3), lpm_sample_free(&s4);
    lpm_dataset_free(&ds);
}

int main(void) {
    test_recon_masks();
    test_loader_resume();
    test_train_steps();
    int rc = test_summary();
    /* without PyTorch's fixture the main comparison did not run: report a skip */
    return rc == 0 && fixture_missing ? 77 : rc;
}
