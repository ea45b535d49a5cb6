/* Training with --batch and over several processes, against the library alone (no MPI):
 *   - lpm_train_run with batch 1 gives, bit for bit, the weights of a plain loop of
 *     lpm_train_step (the run before batches existed);
 *   - batch 2 gives the weights of a loop that takes, per step, the mean of the two
 *     samples' gradients (lpm_train_grad) and one Adam step;
 *   - two "processes" (threads, with an allgather over a barrier in place of MPI) running
 *     lpm_train_run with batch 2 give the one-process weights, bit for bit, and a failure
 *     in one of them stops both with its message. */
#include "test.h"
#include "io/io.h"
#include "train/train.h"

#include <pthread.h>
#include <sys/stat.h>

static char dir[4096], csv_path[4200];

/* Three small cases of different content and sizes, listed in dir/pairs.csv. */
static int make_data(void) {
    const char *tmp = test_env("LPM_TMP");
    snprintf(dir, sizeof dir, "%s/train_batch", tmp ? tmp : "/tmp");
    if (tmp) mkdir(tmp, 0755);
    mkdir(dir, 0755);
    snprintf(csv_path, sizeof csv_path, "%s/pairs.csv", dir);
    FILE *csv = fopen(csv_path, "w");
    CHECK(csv != NULL, "cannot write %s", csv_path);
    if (!csv) return 1;
    fprintf(csv, "a,b\n");
    lpm_rng r;
    lpm_rng_seed(&r, 5);
    for (int c = 0; c < 3; c++) {
        for (int m = 0; m < 2; m++) {
            lpm_volume v;
            if (lpm_volume_alloc(&v, 20 + 2 * c, 18, 17)) return 1;
            for (int64_t i = 0; i < lpm_volume_numel(&v); i++)
                v.data[i] = (float)(lpm_rng_uniform(&r) * (1 + c + m));
            char path[4400];
            snprintf(path, sizeof path, "%s/case%d_%c.nii", dir, c, "ab"[m]);
            lpm_status st = lpm_volume_write(path, &v, NULL);
            CHECK(st == LPM_OK, "lpm_volume_write %s: %s", path, lpm_last_error());
            lpm_volume_free(&v);
        }
        fprintf(csv, "case%d_a.nii,case%d_b.nii\n", c, c);
    }
    fclose(csv);
    return 0;
}

static lpm_train_config config(const char *out, int64_t batch) {
    lpm_train_config c = {.data = csv_path, .out = out, .iters = 3, .ckpt_every = 100, .ckpt_seconds = 1e9,
                          .lr = 1e-3, .alpha = 0.05, .beta = 1, .gamma = 0.5, .rec = 0.2, .seed = 7,
                          .quiet = 1, .batch = batch};
    c.sample.mode = 1, c.sample.aug.flip = 1;
    c.sample.crop[0] = c.sample.crop[1] = c.sample.crop[2] = 16;
    return c;
}

/* The weights a run wrote to out/model.safetensors (w allocated). */
static lpm_status run_weights_of(const char *out, lpm_weights *w) {
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    lpm_status st = lpm_weights_alloc(w);
    return st ? st : lpm_weights_load(w, path);
}

/* What a run with this batch should compute, step by step, written out by hand. */
static lpm_status reference_weights(const lpm_train_config *c, lpm_weights *w_out) {
    lpm_dataset ds;
    lpm_status st = lpm_dataset_open(&ds, c->data, NULL, NULL, NULL);
    if (st) return st;
    lpm_trainer t;
    lpm_loader L = {0};
    float *sum = calloc(LPM_NUM_PARAMS, sizeof(float));
    int64_t B = c->batch > 1 ? c->batch : 1, n_epochs = c->iters * B / ds.n + 1;
    if (!sum) st = LPM_ERR_INTERNAL;
    if (!st) st = lpm_trainer_init(&t, 16, 16, 16);
    if (!st) st = lpm_weights_init(&t.w, c->seed);
    if (!st) st = lpm_loader_start(&L, &ds, &c->sample, c->seed, 0);
    for (int64_t step = 0; step < c->iters && !st; step++) {
        int64_t k0 = step * B;
        double lr = lpm_cosine_lr(c->lr, k0 / ds.n, n_epochs);
        lpm_loss_weights lw = {.alpha = c->alpha, .beta = c->beta, .gamma = c->gamma,
                               .lambda_s = lpm_lambda_s((k0 % ds.n) / B, n_epochs), .edge = c->edge};
        for (int64_t j = 0; j < B && !st; j++) {
            lpm_sample s;
            if ((st = lpm_loader_next(&L, &s))) break;
            lpm_rng mask_rng;
            lpm_rng_seed(&mask_rng, c->seed * 0x2545F4914F6CDD1DULL + (uint64_t)(k0 + j));
            lpm_loss_terms terms;
            if (B == 1) {  /* the loop of lpmnet before --batch */
                st = lpm_train_step(&t, s.a, s.b, NULL, NULL, &mask_rng, c->rec, &lw, lr, &terms);
            } else {
                st = lpm_train_grad(&t, s.a, s.b, NULL, NULL, &mask_rng, c->rec, &lw, &terms);
                for (size_t i = 0; i < LPM_NUM_PARAMS; i++) sum[i] = j ? sum[i] + t.grad.data[i] : t.grad.data[i];
            }
            lpm_sample_free(&s);
        }
        if (!st && B > 1) {
            for (size_t i = 0; i < LPM_NUM_PARAMS; i++) sum[i] /= (float)B;  /* the mean */
            lpm_adam_step(&t.adam, t.w.data, sum, lr);
        }
    }
    lpm_loader_stop(&L);
    if (!st) st = lpm_weights_alloc(w_out);
    if (!st) memcpy(w_out->data, t.w.data, sizeof(float) * LPM_NUM_PARAMS);
    lpm_trainer_free(&t);
    lpm_dataset_free(&ds);
    free(sum);
    return st;
}

static void compare(const char *what, const lpm_weights *got, const lpm_weights *want) {
    double worst = 0;
    for (size_t i = 0; i < LPM_NUM_PARAMS; i++) {
        double d = fabs((double)got->data[i] - (double)want->data[i]);
        if (!(d <= worst)) worst = d;
    }
    int same = !memcmp(got->data, want->data, sizeof(float) * LPM_NUM_PARAMS);
    printf("  %-60s %s (max |diff| %.3g)\n", what, same ? "identical" : "DIFFER", worst);
    CHECK(same, "%s: the weights differ by up to %.3g", what, worst);
}

/* ---- two processes as threads: allgather over a barrier */
typedef struct {
    pthread_barrier_t barrier;
    const void *blocks[2];
} fake_world;

static lpm_status fake_allgather(void *ctx, const void *mine, void *all, const size_t *counts, int rank) {
    fake_world *fw = ctx;
    fw->blocks[rank] = mine;
    pthread_barrier_wait(&fw->barrier);
    memcpy(all, fw->blocks[0], counts[0]);
    memcpy((char *)all + counts[0], fw->blocks[1], counts[1]);
    pthread_barrier_wait(&fw->barrier);  /* nobody reuses its block before all have copied it */
    return LPM_OK;
}

static fake_world world;
static lpm_status gather0(void *ctx, const void *m, void *a, const size_t *c) { return fake_allgather(ctx, m, a, c, 0); }
static lpm_status gather1(void *ctx, const void *m, void *a, const size_t *c) { return fake_allgather(ctx, m, a, c, 1); }

typedef struct {
    lpm_train_config cfg;
    lpm_train_comm comm;
    lpm_status st;
    char error[1024];
} rank_run;

static void *run_rank(void *arg) {
    rank_run *r = arg;
    /* the thread count of the one-process runs: the gradients' sums depend on it */
    lpm_set_threads(1);
    r->cfg.comm = &r->comm;
    r->st = lpm_train_run(&r->cfg);
    snprintf(r->error, sizeof r->error, "%s", r->st ? lpm_last_error() : "");
    return NULL;
}

/* Both ranks run cfg (rank 1 with data1 instead of cfg.data when given). */
static void run_two(const lpm_train_config *cfg, const char *data1, rank_run ranks[2]) {
    pthread_barrier_init(&world.barrier, NULL, 2);
    pthread_t th[2];
    for (int q = 0; q < 2; q++) {
        ranks[q].cfg = *cfg;
        if (q == 1 && data1) ranks[q].cfg.data = data1;
        ranks[q].comm = (lpm_train_comm){.rank = q, .size = 2, .ctx = &world, .allgather = q ? gather1 : gather0};
        pthread_create(&th[q], NULL, run_rank, &ranks[q]);
    }
    for (int q = 0; q < 2; q++) pthread_join(th[q], NULL);
    pthread_barrier_destroy(&world.barrier);
}

/* on_step: record the calls, ask to stop after step 2 */
static int64_t hook_calls, hook_last_step;
static int stop_after_two(void *ctx, int64_t step, int64_t iters, int64_t epoch, double lr, double seconds,
                          const lpm_loss_terms *terms) {
    hook_calls++;
    hook_last_step = step;
    return step == 2 && isfinite(terms->total) && lr > 0 && seconds >= 0 && iters == 3 && epoch >= 0;
}

int main(void) {
    lpm_set_threads(1);
    if (make_data()) return test_summary();
    char out1[4400], out2[4400], out3[4400], out4[4400];
    snprintf(out1, sizeof out1, "%s/b1", dir);
    snprintf(out2, sizeof out2, "%s/b2", dir);
    snprintf(out3, sizeof out3, "%s/b2_two", dir);
    snprintf(out4, sizeof out4, "%s/fail", dir);
    char cmd[18000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s'", out1, out2, out3, out4);
    if (system(cmd) != 0) return 1;

    for (int64_t batch = 1; batch <= 2; batch++) {
        lpm_train_config c = config(batch == 1 ? out1 : out2, batch);
        lpm_status st = lpm_train_run(&c);
        CHECK(st == LPM_OK, "lpm_train_run --batch %lld: %s", (long long)batch, lpm_last_error());
        lpm_weights got = {0}, want = {0};
        if (!st) st = run_weights_of(c.out, &got);
        if (!st) st = reference_weights(&c, &want);
        CHECK(st == LPM_OK, "weights: %s", lpm_last_error());
        if (!st)
            compare(batch == 1 ? "--batch 1 = the loop of lpm_train_step" :
                    "--batch 2 = Adam on the mean of two lpm_train_grad", &got, &want);
        lpm_weights_free(&got), lpm_weights_free(&want);
    }

    /* on_step stops the run after step 2 (checkpoint saved); resumed, it ends as the
     * uninterrupted --batch 1 run */
    {
        char out5[4400];
        snprintf(out5, sizeof out5, "%s/hook", dir);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out5);
        if (system(cmd) != 0) return 1;
        lpm_train_config h = config(out5, 1);
        h.on_step = stop_after_two;
        lpm_status st = lpm_train_run(&h);
        CHECK(st == LPM_OK && hook_calls == 2 && hook_last_step == 2, "on_step stop: status %d, %lld calls",
              st, (long long)hook_calls);
        h.on_step = NULL;
        h.resume = 1;
        if (!st) st = lpm_train_run(&h);
        CHECK(st == LPM_OK, "resume after on_step's stop: %s", lpm_last_error());
        lpm_weights got = {0}, want = {0};
        if (!st) st = run_weights_of(out5, &got);
        if (!st) st = run_weights_of(out1, &want);
        if (!st) compare("on_step stop at 2 + resume = uninterrupted", &got, &want);
        lpm_weights_free(&got), lpm_weights_free(&want);
    }

    /* two processes, batch 2: one sample each per step */
    lpm_train_config c = config(out3, 2);
    rank_run ranks[2];
    run_two(&c, NULL, ranks);
    CHECK(ranks[0].st == LPM_OK && ranks[1].st == LPM_OK, "two processes: %s / %s", ranks[0].error, ranks[1].error);
    lpm_weights one = {0}, two = {0};
    lpm_status st = run_weights_of(out2, &one);
    if (!st) st = run_weights_of(out3, &two);
    CHECK(st == LPM_OK, "weights: %s", lpm_last_error());
    if (!st) compare("two processes, --batch 2 = one process, --batch 2", &two, &one);
    lpm_weights_free(&one), lpm_weights_free(&two);

    /* a failure on rank 1 alone (its data list is missing) stops both, with its message */
    char missing[4400];
    snprintf(missing, sizeof missing, "%s/missing.csv", dir);
    c = config(out4, 2);
    run_two(&c, missing, ranks);
    printf("  rank 1 fails: rank 0 says '%s'\n", ranks[0].error);
    CHECK(ranks[0].st == LPM_ERR_INPUT && ranks[1].st == LPM_ERR_INPUT, "both stop with the data error (%d, %d)",
          ranks[0].st, ranks[1].st);
    CHECK(strstr(ranks[0].error, "rank 1 of 2") && strstr(ranks[0].error, "missing.csv"),
          "rank 0 reports rank 1's message: '%s'", ranks[0].error);
    return test_summary();
}
