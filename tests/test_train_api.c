/* The public lpm_train's options that `lpmnet train` needs, through include/lpmnet.h alone:
 *   - comm: two "processes" (threads, with an allgather over a barrier in place of MPI)
 *     running lpm_train with batch 2 write the weights of one process with batch 2, bit for
 *     bit (tests/test_train_batch.c checks the same against the internal run);
 *   - stop: a flag set during the run stops it after that step with the checkpoint saved
 *     (LPM_OK); resume then refuses other options unless force;
 *   - the checks: force without resume, an unknown device, CUDA where there is none, a bad
 *     comm (LPM_ERR_USAGE, nothing written). */
#include "test.h"
#include "lpmnet.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096], csv_path[4200];

/* Three small cases of different content and sizes, listed in dir/pairs.csv. */
static int make_data(void) {
    const char *tmp = test_env("LPM_TMP");
    snprintf(dir, sizeof dir, "%s/train_api", tmp ? tmp : "/tmp");
    if (tmp) mkdir(tmp, 0755);
    mkdir(dir, 0755);
    snprintf(csv_path, sizeof csv_path, "%s/pairs.csv", dir);
    FILE *csv = fopen(csv_path, "w");
    CHECK(csv != NULL, "cannot write %s", csv_path);
    if (!csv) return 1;
    fprintf(csv, "a,b\n");
    uint64_t x = 12345;
    for (int c = 0; c < 3; c++) {
        for (int m = 0; m < 2; m++) {
            lpm_volume v;
            if (lpm_volume_alloc(&v, 20 + 2 * c, 18, 17)) return 1;
            for (int64_t i = 0; i < lpm_volume_numel(&v); i++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                v.data[i] = (float)((x >> 40) % 1000) * (float)(1 + c + m);
            }
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

static lpm_train_options options(const char *out, int64_t batch) {
    lpm_train_options o;
    lpm_train_options_init(&o);
    o.data = csv_path, o.out = out, o.iters = 3, o.batch = batch, o.lr = 1e-3, o.seed = 7;
    o.crop[0] = o.crop[1] = o.crop[2] = 16;
    o.threads = 1;  /* the two-process run uses one thread each: the sums depend on it */
    o.quiet = 1;
    return o;
}

static int same_file(const char *a, const char *b) {
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !lpm_read_file(a, &x, &nx) && !lpm_read_file(b, &y, &ny) && nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
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
    lpm_train_options o;
    lpm_train_comm comm;
    lpm_status st;
    char error[1024];
} rank_run;

static void *run_rank(void *arg) {
    rank_run *r = arg;
    r->o.comm = &r->comm;
    r->st = lpm_train(&r->o);
    snprintf(r->error, sizeof r->error, "%s", r->st ? lpm_last_error() : "");
    return NULL;
}

/* progress: set the stop flag (ctx) after step 2 */
static void stop_after_two(void *ctx, int64_t done, int64_t total) {
    (void)total;
    if (done == 2) *(volatile sig_atomic_t *)ctx = 1;
}

/* The checkpoint's step (its "step" metadata), or -1. */
static long checkpoint_step(const char *out) {
    char path[4400];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", out);
    lpm_st_file *f = NULL;
    if (lpm_st_read(path, &f)) return -1;
    const char *s = lpm_st_meta(f, "step");
    long step = s ? atol(s) : -1;
    lpm_st_close(f);
    return step;
}

static void expect_usage(const lpm_train_options *o, const char *what, const char *words) {
    lpm_status st = lpm_train(o);
    CHECK(st == LPM_ERR_USAGE && strstr(lpm_last_error(), words), "%s: status %d, message '%s' (want '%s')", what,
          (int)st, lpm_last_error(), words);
    char path[4400];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", o->out);
    CHECK(access(path, F_OK) != 0, "%s: wrote %s", what, path);
    printf("  ok   %-40s %s\n", what, lpm_last_error());
}

int main(void) {
    if (make_data()) return test_summary();
    char one[4400], two[4400], stopped[4400], bad[4400], cmd[18000];
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(two, sizeof two, "%s/two", dir);
    snprintf(stopped, sizeof stopped, "%s/stopped", dir);
    snprintf(bad, sizeof bad, "%s/bad", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' '%s'", one, two, stopped, bad);
    if (system(cmd) != 0) return 1;

    /* comm: one process against two */
    lpm_train_options o = options(one, 2);
    lpm_status st = lpm_train(&o);
    CHECK(st == LPM_OK, "lpm_train batch 2: %s", lpm_last_error());
    rank_run ranks[2];
    pthread_barrier_init(&world.barrier, NULL, 2);
    pthread_t th[2];
    for (int q = 0; q < 2; q++) {
        ranks[q].o = options(two, 2);
        ranks[q].comm = (lpm_train_comm){.rank = q, .size = 2, .ctx = &world, .allgather = q ? gather1 : gather0};
        pthread_create(&th[q], NULL, run_rank, &ranks[q]);
    }
    for (int q = 0; q < 2; q++) pthread_join(th[q], NULL);
    pthread_barrier_destroy(&world.barrier);
    for (int q = 0; q < 2; q++) CHECK(ranks[q].st == LPM_OK, "rank %d: %s", q, ranks[q].error);
    const char *files[] = {"model.safetensors", "checkpoint.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[4500], b[4500];
        snprintf(a, sizeof a, "%s/%s", one, files[i]);
        snprintf(b, sizeof b, "%s/%s", two, files[i]);
        int same = same_file(a, b);
        printf("  %-45s %s\n", files[i], same ? "identical (1 and 2 processes)" : "DIFFER");
        CHECK(same, "%s: two processes wrote other bytes than one", files[i]);
    }

    /* stop: after step 2 of 3, checkpoint saved, LPM_OK */
    volatile sig_atomic_t stop = 0;
    o = options(stopped, 1);
    o.stop = &stop, o.progress = stop_after_two, o.ctx = (void *)&stop;
    st = lpm_train(&o);
    CHECK(st == LPM_OK && stop == 1, "stopped run: status %d (%s), flag %d", (int)st, lpm_last_error(), (int)stop);
    long step = checkpoint_step(stopped);
    CHECK(step == 2, "stopped run: the checkpoint is at step %ld, want 2", step);
    printf("  ok   %-40s checkpoint at step %ld\n", "stop flag", step);

    /* resume with another iters: refused, then taken with force */
    o = options(stopped, 1);
    o.resume = 1, o.iters = 4;
    st = lpm_train(&o);
    CHECK(st == LPM_ERR_USAGE && strstr(lpm_last_error(), "--iters"), "resume with other iters: %d (%s)", (int)st,
          lpm_last_error());
    o.force = 1;
    st = lpm_train(&o);
    step = checkpoint_step(stopped);
    CHECK(st == LPM_OK && step == 4, "resume --force: %d (%s), step %ld", (int)st, lpm_last_error(), step);
    printf("  ok   %-40s refused without force, step %ld with it\n", "resume with other options", step);

    /* the checks */
    o = options(bad, 1);
    o.force = 1;
    expect_usage(&o, "force without resume", "force applies only with resume");
    o = options(bad, 1);
    o.device = 2;
    expect_usage(&o, "device 2", "device 2");
    o = options(bad, 1);
    o.device = 1;
    if (!lpm_cuda_available(NULL, 0)) expect_usage(&o, "device 1 without CUDA", "device cuda");
    else SKIP("device 1 without CUDA: this machine has CUDA");
    lpm_train_comm comm = {.rank = 2, .size = 2, .allgather = gather0};
    o = options(bad, 2);
    o.comm = &comm;
    expect_usage(&o, "comm rank 2 of 2", "rank 2 of 2");
    return test_summary();
}
