/* libFuzzer harness for the training data spec parsers (src/train/data.c, lpm_dataset_open).
 * Each input is used twice: as the text of a CSV spec, and as the split file
 * (IndicesTrain.txt) of a folder dataset.
 *
 * The CSV is spec.csv in a scratch folder where the harness wrote a few small volumes once
 * at start (float32, written by lpm_volume_write):
 *   a.nii  6x5x4                 b.nii  the same grid, other values   m.nii  the same grid
 *   c.nii  another grid (3x3x3)  z.nii  a constant volume             g.nii.gz  a's grid, gzipped
 *   bad.nii  not a NIfTI file
 * so rows may name good pairs, mismatched grids, bad files or nothing. An opened dataset is
 * checked (lpm_dataset_check, with and without a crop), hashed (lpm_dataset_hash, as a
 * checkpoint records it), and its first cases are made into samples both ways (resize with
 * flips, random crop).
 *
 * The folder dataset is set/ with the subjects s1, s2 and 002 (each <name>_t1.nii and
 * <name>_t2.nii); the input becomes set/IndicesTrain.txt and the folder is opened with the
 * pair "t1,t2" and the split "train" (lines are subject names or 0-based indices). */
#include "fuzz_util.h"

#include "train/data.h"

#include <sys/stat.h>

enum { MAX_SAMPLED_CASES = 2 };

static void write_volume(const char *name, int64_t nx, int64_t ny, int64_t nz, float scale,
                         float offset) {
    char path[1024];
    fuzz_path(path, sizeof path, name);
    lpm_volume v;
    if (lpm_volume_alloc(&v, nx, ny, nz) != LPM_OK) abort();
    for (int64_t i = 0; i < lpm_volume_numel(&v); i++) v.data[i] = offset + scale * (float)(i % 7);
    if (lpm_volume_write(path, &v, &v) != LPM_OK) {
        fprintf(stderr, "fuzz_data: %s\n", lpm_last_error());
        abort();
    }
    lpm_volume_free(&v);
}

static void make_volumes(void) {
    write_volume("a.nii", 6, 5, 4, 1.0f, 0.0f);
    write_volume("b.nii", 6, 5, 4, 3.0f, 10.0f);
    write_volume("m.nii", 6, 5, 4, 1.0f, 0.0f);
    write_volume("c.nii", 3, 3, 3, 1.0f, 0.0f);
    write_volume("z.nii", 6, 5, 4, 0.0f, 5.0f);
    write_volume("g.nii.gz", 6, 5, 4, 2.0f, 1.0f);
    char bad[1024];
    fuzz_path(bad, sizeof bad, "bad.nii");
    fuzz_write(bad, "not a volume\n", 13);
    static const char *subjects[] = {"s1", "s2", "002"};
    char dir[1024], name[64];
    fuzz_path(dir, sizeof dir, "set");
    if (mkdir(dir, 0777) != 0) abort();
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "set/%s", subjects[i]);
        fuzz_path(dir, sizeof dir, name);
        if (mkdir(dir, 0777) != 0) abort();
        snprintf(name, sizeof name, "set/%s/%s_t1.nii", subjects[i], subjects[i]);
        write_volume(name, 3, 3, 3, 1.0f, 0.0f);
        snprintf(name, sizeof name, "set/%s/%s_t2.nii", subjects[i], subjects[i]);
        write_volume(name, 3, 3, 3, 2.0f, 1.0f);
    }
}

/* The split file of a folder dataset. */
static void open_split(const uint8_t *data, size_t size) {
    static char dir[1024], split[1024];
    if (!dir[0]) {
        fuzz_path(dir, sizeof dir, "set");
        fuzz_path(split, sizeof split, "set/IndicesTrain.txt");
    }
    fuzz_write(split, data, size);
    lpm_dataset ds;
    if (lpm_dataset_open(&ds, dir, "t1,t2", NULL, "train") != LPM_OK) return;
    if (ds.n < 1 || ds.n > 3) abort();  /* a split keeps some of the three subjects */
    uint64_t hash;
    (void)lpm_dataset_hash(&ds, dir, &hash);
    lpm_dataset_free(&ds);
}

static void sample_cases(const lpm_dataset *ds) {
    lpm_sample_spec resize = {.shape = {4, 4, 4}, .mode = 0, .aug = {.flip = 1}};
    lpm_sample_spec crop = {.crop = {2, 3, 4}, .mode = 1};
    lpm_rng rng;
    lpm_rng_seed(&rng, 1);
    for (int i = 0; i < ds->n && i < MAX_SAMPLED_CASES; i++) {
        lpm_sample s;
        if (lpm_make_sample(&s, ds, i, &resize, &rng) == LPM_OK) {
            volatile double sink = fuzz_touch(s.a, (size_t)(s.D * s.H * s.W));
            (void)sink;
            lpm_sample_free(&s);
        }
        if (lpm_make_sample(&s, ds, i, &crop, &rng) == LPM_OK) lpm_sample_free(&s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char spec[1024];
    if (!spec[0]) {
        make_volumes();
        fuzz_path(spec, sizeof spec, "spec.csv");
    }
    open_split(data, size);
    fuzz_write(spec, data, size);
    lpm_dataset ds;
    if (lpm_dataset_open(&ds, spec, NULL, NULL, NULL) != LPM_OK) return 0;
    if (ds.n < 1 || !ds.cases) abort();  /* open promised rows */
    for (int i = 0; i < ds.n; i++) {
        const lpm_case *c = &ds.cases[i];
        if (!c->name || !c->name[0] || !c->a || !c->b || c->line < 2) abort();
        for (const char *p = c->name; *p; p++)  /* a name must be usable in a file name */
            if (*p == '/' || (unsigned char)*p <= ' ') abort();
    }
    const int64_t crop[3] = {2, 3, 4};
    uint64_t hash;
    (void)lpm_dataset_hash(&ds, spec, &hash);
    if (lpm_dataset_check(&ds, NULL) == LPM_OK && lpm_dataset_check(&ds, crop) == LPM_OK)
        sample_cases(&ds);
    lpm_dataset_free(&ds);
    return 0;
}
