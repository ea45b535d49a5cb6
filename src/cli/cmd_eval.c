/* lpmnet eval: fuse every case of a dataset with several methods, score, and report. */
#include "cli.h"
#include "dist.h"
#include "report_html.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "eval";
enum { MAX_METHODS = 16 };
/* the columns of the reports: the twelve metrics, then the seam index along x, y, z */
enum { N_COLUMNS = LPM_METRIC_COUNT + 3 };
static const char *const SEAM_NAMES[3] = {"seam_x", "seam_y", "seam_z"};

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet eval --data SPEC --out DIR [options]\n\n"
            "Fuse every case with every method, score each result with the twelve metrics and\n"
            "the window-seam index along x, y, z (1.0 = no seam at planes 16, 32, ...) and write\n"
            "DIR/metrics.csv (one row per case and method), DIR/summary.md (mean and SD per\n"
            "method, the best marked) and DIR/montage_<case>.png (mid-slices of A, B and every\n"
            "result). A case is named after its subject folder or, in a CSV, after its A file\n"
            "(t1.nii.gz -> t1; when these repeat, folder and file: sub01_t1; else file and line:\n"
            "t1_line3), with characters other than letters, digits, - _ . made _.\n\n"
            "  --data SPEC        folder of subject folders (with --pair) or a CSV file a,b[,mask]\n"
            "  --pair A,B         modality keys for a folder dataset\n"
            "  --methods LIST     [lpmnet,average,max,pca,dwt,laplacian]; also: guided\n"
            "  -m, --model M      a bundled model (mri, ct-mr, pet-mr, pet-ct; see lpmnet models)\n"
            "                     or LPM-Net weights (.safetensors) [default: mri]\n"
            "  --exact            LPM-Net as the authors compute it and plain min-max inputs\n"
            "                     (default: as lpmnet fuse does, 4 passes, --clip 0.5,100)\n"
            "  --passes N         LPM-Net passes at shifted window grids: 1, 2, 4, 8, 16 [4]\n"
            "  --clip LOW,HIGH    clip every input to these percentiles before scaling\n"
            "  --ct-window W      CT window (bone, soft, lung, or WIDTH,LEVEL) for the CT input\n"
            "  --mask-key KEY     score inside this mask modality (folder datasets)\n"
            "  --split S          all (default), train or test (IndicesTrain/Test.txt)\n"
            "  --save-fused       also write DIR/<case>_<method>.nii.gz\n"
            "  --html [HDIR]      also write web pages (docs/viewer.md) into HDIR [DIR]:\n"
            "                     viewer_<case>.html (A, B and every result in linked 3-D views,\n"
            "                     with the case's metrics) and index.html (links, all metrics)\n"
            "  --out DIR          output folder (created)\n"
            "  --device D         cpu (default) or cuda (LPM-Net on an NVIDIA GPU, one pass)\n"
            "  --threads N        threads (default: all cores)\n\n"
            "A case that cannot be read or fused (a missing or corrupt file, grids that differ)\n"
            "does not stop the others: it is left out of metrics.csv and listed with the reason\n"
            "under 'Failed cases' in summary.md. Exit codes: 0 every case scored, 1 usage error,\n"
            "2 a data error (any case failed; the reports still cover the others), 3 internal error.\n");
}

typedef struct {
    const char *data, *pair, *methods, *model, *mask_key, *out, *split;
    const char *html; /* --html [HDIR]: the pages' folder (DIR when no HDIR) */
    int save_fused, cuda, want_html;
    long threads, passes;
    lpm_fuse_settings fuse; /* the preprocessing and LPM-Net's options; the method is set per run */
} eval_args;

typedef struct {
    int n_methods, n_cases;
    char method[MAX_METHODS][32];
    double *values;    /* [case][method][column]: the metrics, then the seam indices */
    double *seconds;   /* [case][method] */
    char **failed;     /* [case]: why the case failed, NULL when it was scored */
    int n_failed;
} results;

static const char *column_name(int k) {
    return k < LPM_METRIC_COUNT ? lpm_metric_name(k) : SEAM_NAMES[k - LPM_METRIC_COUNT];
}

/* The columns of case c, method j. */
static double *columns(const results *r, int c, int j) {
    return &r->values[((size_t)c * (size_t)r->n_methods + (size_t)j) * N_COLUMNS];
}

/* Column k of case c, method j. */
static double column_value(const results *r, int c, int j, int k) { return columns(r, c, j)[k]; }

/* Whether case c, method j counts in column k's mean: every scored case, but a seam index
 * only where it is defined (an axis shorter than 18 voxels has none). */
static int in_mean(const results *r, int c, int j, int k) {
    return !r->failed[c] && (k < LPM_METRIC_COUNT || !isnan(column_value(r, c, j, k)));
}

/* Higher is better except NABF (artefacts), rSFe (ranked by |rSFe|) and the seam indices
 * (closest to 1, no seam). */
static double score_for_ranking(int column, double v) {
    const char *name = column_name(column);
    if (!strcmp(name, "nabf")) return -v;
    if (!strcmp(name, "rsfe")) return -fabs(v);
    if (column >= LPM_METRIC_COUNT) return -fabs(v - 1);
    return v;
}

static lpm_status write_csv(const char *dir, const lpm_dataset *ds, const results *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st) return st;
    fprintf(f.fp, "case,method,seconds");
    for (int k = 0; k < N_COLUMNS; k++) fprintf(f.fp, ",%s", column_name(k));
    fputc('\n', f.fp);
    for (int c = 0; c < r->n_cases; c++)
        for (int j = 0; j < r->n_methods && !r->failed[c]; j++) {
            fprintf(f.fp, "%s,%s,%.3f", ds->cases[c].name, r->method[j], r->seconds[c * r->n_methods + j]);
            for (int k = 0; k < N_COLUMNS; k++) fprintf(f.fp, ",%.8g", column_value(r, c, j, k));
            fputc('\n', f.fp);
        }
    return lpm_atomic_commit(&f);
}

static lpm_status write_summary(const char *dir, const eval_args *o, const lpm_dataset *ds,
                                const results *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.md", dir);
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st) return st;
    int nm = r->n_methods, n_ok = r->n_cases - r->n_failed;
    double mean[MAX_METHODS][N_COLUMNS], sd[MAX_METHODS][N_COLUMNS], secs[MAX_METHODS];
    for (int j = 0; j < nm; j++) {
        secs[j] = 0;
        for (int c = 0; c < r->n_cases; c++)
            if (!r->failed[c]) secs[j] += r->seconds[c * nm + j] / n_ok;
        for (int k = 0; k < N_COLUMNS; k++) {
            double s = 0, s2 = 0;
            int n = 0;
            for (int c = 0; c < r->n_cases; c++)
                if (in_mean(r, c, j, k)) s += column_value(r, c, j, k), n++;
            mean[j][k] = n ? s / n : NAN;
            for (int c = 0; c < r->n_cases; c++) {
                if (!in_mean(r, c, j, k)) continue;
                double d = column_value(r, c, j, k) - mean[j][k];
                s2 += d * d;
            }
            sd[j][k] = n > 1 ? sqrt(s2 / (n - 1)) : NAN; /* printed only when n_ok > 1 */
        }
    }
    fprintf(f.fp, "# lpmnet eval\n\n%d case(s) scored", n_ok);
    if (r->n_failed) fprintf(f.fp, " (%d of %d failed: see Failed cases below)", r->n_failed, r->n_cases);
    fprintf(f.fp, " from `%s`%s%s%s, methods: %s%s%s.\n\n", o->data,
            o->pair ? ", pair " : "", o->pair ? o->pair : "", o->mask_key ? ", scored inside the mask" : "",
            o->methods, o->model ? ", weights " : "", o->model ? o->model : "");
    fprintf(f.fp, "Mean (SD over cases) per method; **bold** marks the best method per metric. Higher is\n"
                  "better except NABF (lower), rSFe (closest to 0; ranked by |rSFe|) and the window-seam\n"
                  "indices seam_x, seam_y, seam_z (closest to 1: 1 = no seam at planes 16, 32, ...;\n"
                  "averaged over the cases where they are defined, an axis of at least 18 voxels).\n\n");
    fprintf(f.fp, "| method | seconds |");
    for (int k = 0; k < N_COLUMNS; k++) fprintf(f.fp, " %s |", column_name(k));
    fprintf(f.fp, "\n|---|---:|");
    for (int k = 0; k < N_COLUMNS; k++) fprintf(f.fp, "---:|");
    fputc('\n', f.fp);
    for (int j = 0; j < nm; j++) {
        fprintf(f.fp, "| %s | %.2f |", r->method[j], secs[j]);
        for (int k = 0; k < N_COLUMNS; k++) {
            int best = 1;
            for (int i = 0; i < nm; i++)
                if (score_for_ranking(k, mean[i][k]) > score_for_ranking(k, mean[j][k])) best = 0;
            if (!isfinite(mean[j][k])) best = 0;
            if (n_ok > 1)
                fprintf(f.fp, best ? " **%.4f** (%.4f) |" : " %.4f (%.4f) |", mean[j][k], sd[j][k]);
            else
                fprintf(f.fp, best ? " **%.4f** |" : " %.4f |", mean[j][k]);
        }
        fputc('\n', f.fp);
    }
    fprintf(f.fp, "\nCases:");
    for (int c = 0, shown = 0; c < r->n_cases; c++)
        if (!r->failed[c]) fprintf(f.fp, "%s %s", shown++ ? "," : "", ds->cases[c].name);
    fprintf(f.fp, "%s\n", n_ok ? "." : " none.");
    if (r->n_failed) {
        fprintf(f.fp, "\n## Failed cases\n\n");
        for (int c = 0; c < r->n_cases; c++)
            if (r->failed[c]) fprintf(f.fp, "- %s: %s\n", ds->cases[c].name, r->failed[c]);
    }
    return lpm_atomic_commit(&f);
}

/* --html: HDIR/viewer_<case>.html, the montage's volumes (labels[0..1] name A and B) in
 * linked views and the case's rows of metrics.csv. */
static lpm_status write_case_page(const eval_args *o, const lpm_dataset *ds, int c, const results *r,
                                  const char *const *labels, const float *const *vols,
                                  const lpm_volume *grid) {
    const int nm = r->n_methods, n_cols = 1 + N_COLUMNS;
    cli_html_volume views[MAX_METHODS + 2];
    char label_a[300], label_b[300], path[4200], title[400];
    snprintf(label_a, sizeof label_a, "%s: %s", labels[0], cli_base_name(ds->cases[c].a));
    snprintf(label_b, sizeof label_b, "%s: %s", labels[1], cli_base_name(ds->cases[c].b));
    views[0] = (cli_html_volume){label_a, vols[0]};
    views[1] = (cli_html_volume){label_b, vols[1]};
    for (int j = 0; j < nm; j++) views[j + 2] = (cli_html_volume){labels[j + 2], vols[j + 2]};
    const char *rows[MAX_METHODS], *cols[1 + N_COLUMNS] = {"seconds"};
    double values[MAX_METHODS * (1 + N_COLUMNS)];
    for (int k = 0; k < N_COLUMNS; k++) cols[1 + k] = column_name(k);
    for (int j = 0; j < nm; j++) {
        rows[j] = r->method[j];
        values[j * n_cols] = r->seconds[c * nm + j];
        for (int k = 0; k < N_COLUMNS; k++) values[j * n_cols + 1 + k] = column_value(r, c, j, k);
    }
    const cli_html_table table = {nm, n_cols, rows, cols, values, "method"};
    snprintf(path, sizeof path, "%s/viewer_%s.html", o->html, ds->cases[c].name);
    snprintf(title, sizeof title, "lpmnet eval: %s", ds->cases[c].name);
    return cli_html_report(path, title, "A and B as scaled for the methods; the metrics score each result "
                           "against them (metrics.csv).", grid, views, nm + 2, &table);
}

/* --html: HDIR/index.html, a link to every scored case's page and every row of metrics.csv. */
static lpm_status write_index_page(const eval_args *o, const lpm_dataset *ds, const results *r) {
    const int nm = r->n_methods, n_cols = 1 + N_COLUMNS, n_ok = r->n_cases - r->n_failed;
    cli_html_link *links = calloc((size_t)n_ok + 1, sizeof *links);
    char (*hrefs)[300] = calloc((size_t)n_ok + 1, sizeof *hrefs);
    char (*row_names)[300] = calloc((size_t)n_ok * (size_t)nm + 1, sizeof *row_names);
    const char **rows = calloc((size_t)n_ok * (size_t)nm + 1, sizeof *rows);
    double *values = calloc((size_t)n_ok * (size_t)nm * (size_t)n_cols + 1, sizeof *values);
    const char *cols[1 + N_COLUMNS] = {"seconds"};
    lpm_status st = LPM_OK;
    if (!links || !hrefs || !row_names || !rows || !values) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    for (int k = 0; k < N_COLUMNS; k++) cols[1 + k] = column_name(k);
    int n_links = 0, n_rows = 0;
    for (int c = 0; c < r->n_cases && !st; c++) {
        if (r->failed[c]) continue;
        snprintf(hrefs[n_links], sizeof hrefs[0], "viewer_%s.html", ds->cases[c].name);
        links[n_links] = (cli_html_link){hrefs[n_links], ds->cases[c].name};
        n_links++;
        for (int j = 0; j < nm; j++, n_rows++) {
            snprintf(row_names[n_rows], sizeof row_names[0], "%s / %s", ds->cases[c].name, r->method[j]);
            rows[n_rows] = row_names[n_rows];
            values[n_rows * n_cols] = r->seconds[c * nm + j];
            for (int k = 0; k < N_COLUMNS; k++) values[n_rows * n_cols + 1 + k] = column_value(r, c, j, k);
        }
    }
    const cli_html_table table = {n_rows, n_cols, rows, cols, values, "case / method"};
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", o->html);
    if (!st) st = cli_html_index(path, "lpmnet eval", "Each case's page shows A, B and every result in linked "
                                 "views; means per method are in summary.md.", links, n_links, &table);
    free(links), free(hrefs), free(row_names), free(rows), free(values);
    if (!st) fprintf(stderr, "lpmnet eval: wrote %s and a viewer_<case>.html per case\n", path);
    return st;
}

/* Fuses case c with every method on the same prepared inputs and scores each result. */
static lpm_status eval_case(const eval_args *o, const lpm_weights *w, const lpm_dataset *ds, int c,
                            results *r) {
    const lpm_case *cs = &ds->cases[c];
    lpm_volume a = {0}, b = {0}, fused[MAX_METHODS] = {{0}};
    uint8_t *mask = NULL;
    {   /* the inputs as read are freed once scaled */
        lpm_volume a_read = {0}, b_read = {0};
        lpm_status st = cli_read_pair(cs->a, &a_read, cs->b, &b_read);
        if (!st) st = lpm_prepare_pair(&a_read, cs->a, &b_read, cs->b, &o->fuse, &a, &b);
        lpm_volume_free(&a_read);
        lpm_volume_free(&b_read);
        if (st) return st;
    }
    /* the case's mask says where to score, not how to scale */
    lpm_status st = cs->mask ? lpm_mask_read(cs->mask, &a, cs->a, &mask) : LPM_OK;
    for (int j = 0; j < r->n_methods && !st; j++) {
        const char *method = r->method[j];
        const int lpmnet = !strcmp(method, "lpmnet");
        lpm_fuse_settings s = o->fuse;
        s.method = method;
        s.device = lpmnet ? o->cuda : 0;
        /* several processes: one whole line per result, so that their lines do not interleave */
        int whole_lines = dist_size() > 1;
        if (!whole_lines) fprintf(stderr, "lpmnet eval: case %d/%d %s: %s ...", c + 1, r->n_cases, cs->name, method);
        double t0 = lpm_seconds();
        st = lpm_fuse_prepared(w, &a, &b, &s, &fused[j], NULL, NULL);
        if (st == LPM_ERR_INPUT && lpmnet) st = lpm_prefix_error(st, "%s", o->model);
        double secs = lpm_seconds() - t0;
        r->seconds[c * r->n_methods + j] = secs;
        double *v = columns(r, c, j);
        if (!st) st = lpm_metrics_select(v, &a, &b, &fused[j], mask, 0, LPM_METRICS_ALL);
        if (!st) st = lpm_seam_volume(v + LPM_METRIC_COUNT, &fused[j], mask, 0);
        if (!st && o->save_fused) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s_%s.nii.gz", o->out, cs->name, method);
            st = lpm_volume_write(path, &fused[j], &a);
        }
        if (whole_lines && !st)
            fprintf(stderr, "lpmnet eval: case %d/%d %s: %s (rank %d) %.2f s, ssim %.4f\n", c + 1, r->n_cases,
                    cs->name, method, dist_rank(), secs, v[0]);
        else if (!whole_lines && !st)
            fprintf(stderr, " %.2f s, ssim %.4f\n", secs, v[0]);
        else if (!whole_lines)
            fputc('\n', stderr);
    }
    if (!st) {
        /* Columns named by the inputs' files (a folder dataset: its modality keys), then the
         * methods; the viewer page keeps A and B as keys beside the file names. */
        const char *labels[MAX_METHODS + 2];
        const float *vols[MAX_METHODS + 2];
        lpm_montage_column cols[MAX_METHODS + 2];
        char name_a[128], name_b[128], title[300];
        lpm_volume_stem(cs->a, name_a, sizeof name_a);
        lpm_volume_stem(cs->b, name_b, sizeof name_b);
        const char *comma = o->pair ? strchr(o->pair, ',') : NULL;
        if (comma) {
            snprintf(name_a, sizeof name_a, "%.*s", (int)(comma - o->pair), o->pair);
            snprintf(name_b, sizeof name_b, "%s", comma + 1);
        }
        labels[0] = comma ? name_a : "A", vols[0] = a.data;
        labels[1] = comma ? name_b : "B", vols[1] = b.data;
        cols[0] = (lpm_montage_column){name_a, a.data, NULL};
        cols[1] = (lpm_montage_column){name_b, b.data, NULL};
        for (int j = 0; j < r->n_methods; j++) {
            labels[j + 2] = r->method[j], vols[j + 2] = fused[j].data;
            cols[j + 2] = (lpm_montage_column){r->method[j], fused[j].data, NULL};
        }
        snprintf(title, sizeof title, "case %s", cs->name);
        char path[4200];
        snprintf(path, sizeof path, "%s/montage_%s.png", o->out, cs->name);
        st = lpm_montage_write_titled(path, title, cols, r->n_methods + 2, a.nz, a.ny, a.nx);
        if (!st && o->html) st = write_case_page(o, ds, c, r, labels, vols, &a);
    }
    for (int j = 0; j < r->n_methods; j++) lpm_volume_free(&fused[j]);
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    free(mask);
    return st;
}

/* One case's files, from the headers (lpm_dataset_check on that case alone). */
static lpm_status check_case(const lpm_dataset *ds, int c) {
    const lpm_dataset one = {1, &ds->cases[c]};
    return lpm_dataset_check(&one, NULL);
}

/* Under mpirun the cases are dealt out round-robin: process c % P scores case c. */
static int owns_case(int c) { return c % dist_size() == dist_rank(); }

/* One case's results as the processes exchange them: whether it failed (and why), then its
 * seconds, metrics and seam indices per method. */
typedef struct {
    int32_t failed;
    char why[1020];
    double seconds[MAX_METHODS];
    double values[MAX_METHODS][N_COLUMNS];
} case_record;

/* Every process's cases to every process, so that rank 0 writes the reports of all of them,
 * as one process would have. Collective. */
static lpm_status gather_results(const lpm_dataset *ds, results *r) {
    int P = dist_size(), nm = r->n_methods;
    if (P <= 1) return LPM_OK;
    size_t *counts = calloc((size_t)P, sizeof *counts);
    case_record *mine = calloc((size_t)ds->n / (size_t)P + 1, sizeof *mine);
    case_record *all = calloc((size_t)ds->n + (size_t)P, sizeof *all);
    lpm_status st = LPM_OK;
    if (!counts || !mine || !all) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    for (int c = 0, k = 0; !st && c < ds->n; c++) {
        counts[c % P] += sizeof(case_record);
        if (!owns_case(c)) continue;
        case_record *rec = &mine[k++];
        rec->failed = r->failed[c] != NULL;
        if (r->failed[c]) snprintf(rec->why, sizeof rec->why, "%s", r->failed[c]);
        for (int j = 0; j < nm; j++) {
            rec->seconds[j] = r->seconds[c * nm + j];
            memcpy(rec->values[j], columns(r, c, j), sizeof rec->values[j]);
        }
    }
    if (!st) st = dist_allgather(NULL, mine, all, counts);
    /* rank q's block holds cases q, q + P, ... in order */
    for (int c = 0; !st && c < ds->n; c++) {
        size_t at = 0;
        for (int q = 0; q < c % P; q++) at += counts[q] / sizeof(case_record);
        const case_record *rec = &all[at + (size_t)(c / P)];
        if (owns_case(c)) continue;
        if (rec->failed) {
            if (!(r->failed[c] = malloc(strlen(rec->why) + 1))) {
                st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
                break;
            }
            strcpy(r->failed[c], rec->why);
            r->n_failed++;
        }
        for (int j = 0; j < nm; j++) {
            r->seconds[c * nm + j] = rec->seconds[j];
            memcpy(columns(r, c, j), rec->values[j], sizeof rec->values[j]);
        }
    }
    free(counts), free(mine), free(all);
    return st;
}

/* A data error in one case is recorded with its message and the others go on; anything
 * else (out of memory, an unwritable output folder) stops the run. */
static lpm_status note_failure(results *r, const lpm_dataset *ds, int c, lpm_status st) {
    if (st != LPM_ERR_INPUT) return st;
    const char *why = lpm_last_error();
    size_t n = strlen(why) + 1;
    if (!(r->failed[c] = malloc(n))) return lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    memcpy(r->failed[c], why, n);
    r->n_failed++;
    fprintf(stderr, "lpmnet eval: case %s failed, going on without it: %s\n", ds->cases[c].name, why);
    return LPM_OK;
}

static int parse_methods(const char *list, results *r) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (strcmp(tok, "lpmnet") != 0 && !lpm_classical_known(tok))
            return cli_error(CMD, LPM_ERR_USAGE, "unknown method '%s' (valid: lpmnet, %s)", tok,
                             lpm_classical_names());
        if (r->n_methods == MAX_METHODS) return cli_error(CMD, LPM_ERR_USAGE, "too many methods");
        snprintf(r->method[r->n_methods++], sizeof r->method[0], "%s", tok);
    }
    if (!r->n_methods) return cli_error(CMD, LPM_ERR_USAGE, "--methods is empty");
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_args o = {.methods = "lpmnet,average,max,pca,dwt,laplacian"};
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *v = NULL;
        int taken;
        if (cli_is_help(s)) {
            usage(stdout);
            return 0;
        }
#define VALUE() if (!(v = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE
        if (!strcmp(s, "--data")) { VALUE(); o.data = v; }
        else if (!strcmp(s, "--pair")) { VALUE(); o.pair = v; }
        else if (!strcmp(s, "--methods")) { VALUE(); o.methods = v; }
        else if (!strcmp(s, "-m") || !strcmp(s, "--model")) { VALUE(); o.model = v; }
        else if (!strcmp(s, "--mask-key")) { VALUE(); o.mask_key = v; }
        else if (!strcmp(s, "--split")) { VALUE(); o.split = v; }
        else if (!strcmp(s, "--out")) { VALUE(); o.out = v; }
        else if (!strcmp(s, "--save-fused")) o.save_fused = 1;
        else if (!strcmp(s, "--html")) {
            /* an optional folder: eval takes no other bare argument */
            o.want_html = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') o.html = argv[++i];
        }
        else if (!strcmp(s, "--exact")) o.fuse.exact = 1;
        else if (!strcmp(s, "--passes")) { VALUE(); if (cli_parse_passes(CMD, v, &o.passes)) return 1; }
        else if (!strcmp(s, "--mask"))
            return cli_error(CMD, LPM_ERR_USAGE, "--mask: give each case's mask in the CSV's mask column (or --mask-key)");
        else if ((taken = cli_prep_option(CMD, argc, argv, &i, &o.fuse)) != 0) { if (taken == CLI_PREP_BAD) return 1; }
        else if (!strcmp(s, "--device")) { VALUE(); if (cli_parse_device(CMD, v, &o.cuda)) return 1; }
        else if (!strcmp(s, "--threads")) { VALUE(); if (cli_parse_threads(CMD, v, &o.threads)) return 1; }
        else return cli_error(CMD, LPM_ERR_USAGE, "unknown argument '%s' (see lpmnet eval --help)", s);
#undef VALUE
    }
    if (!o.data || !o.out) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (o.split && strcmp(o.split, "all") && strcmp(o.split, "train") && strcmp(o.split, "test"))
        return cli_error(CMD, LPM_ERR_USAGE, "--split must be all, train or test");
    if (cli_prep_finish(CMD, &o.fuse)) return LPM_ERR_USAGE;
    if (o.fuse.exact && o.passes > 1) return cli_error(CMD, LPM_ERR_USAGE, "--exact runs one pass; leave out --passes");
    if (o.cuda && o.passes > 1) return cli_error(CMD, LPM_ERR_USAGE, "--device cuda runs one pass; leave out --passes");
    if (o.want_html && !o.html) o.html = o.out;
    if (o.html && !cli_niivue_script())
        return cli_error(CMD, LPM_ERR_INPUT, "--html: the viewer script is not installed: %s", lpm_last_error());
    results r = {0};
    if (parse_methods(o.methods, &r)) return LPM_ERR_USAGE;
    lpm_status st = dist_start();
    if (st) return dist_end(cli_fail(CMD, st));
    if (!o.threads && dist_size() > 1) o.threads = dist_default_threads();
    lpm_set_threads((int)o.threads);
    o.fuse.threads = (int)o.threads;
    o.fuse.passes = (int)o.passes;

    lpm_weights w = {0};
    lpm_dataset ds = {0};
    if (strstr(o.methods, "lpmnet")) {
        if (cli_resolve_model(CMD, o.model, &o.model)) return dist_end(LPM_ERR_USAGE);
        st = lpm_weights_alloc(&w);
        if (!st) st = lpm_weights_load(&w, o.model);
    }
    if (!st && mkdir(o.out, 0755) != 0 && errno != EEXIST)
        st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the output folder (%s)", o.out, strerror(errno));
    if (!st && o.html && mkdir(o.html, 0755) != 0 && errno != EEXIST)
        st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the --html folder (%s)", o.html, strerror(errno));
    if (!st) st = lpm_dataset_open(&ds, o.data, o.pair, o.mask_key, o.split && strcmp(o.split, "all") ? o.split : NULL);
    if (!st) {
        r.n_cases = ds.n;
        r.values = calloc((size_t)ds.n * (size_t)r.n_methods * N_COLUMNS, sizeof *r.values);
        r.seconds = calloc((size_t)ds.n * (size_t)r.n_methods, sizeof *r.seconds);
        r.failed = calloc((size_t)ds.n, sizeof *r.failed);
        if (!r.values || !r.seconds || !r.failed) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    }
    /* Every case's headers first, so that a bad file is reported before hours of work. Under
     * mpirun each process checks and scores its own cases; then rank 0 writes the reports. */
    for (int c = 0; c < ds.n && !st; c++)
        if (owns_case(c)) st = note_failure(&r, &ds, c, check_case(&ds, c));
    for (int c = 0; c < ds.n && !st; c++)
        if (owns_case(c) && !r.failed[c]) st = note_failure(&r, &ds, c, eval_case(&o, &w, &ds, c, &r));
    st = dist_agree(st);  /* a process that stopped (out of memory, unwritable folder) stops all */
    int scored = !st;
    if (!st) st = gather_results(&ds, &r);
    if (!st && dist_rank() == 0) st = write_csv(o.out, &ds, &r);
    if (!st && dist_rank() == 0) st = write_summary(o.out, &o, &ds, &r);
    if (!st && dist_rank() == 0 && o.html) st = write_index_page(&o, &ds, &r);
    if (!st && dist_rank() == 0)
        fprintf(stderr, "lpmnet eval: wrote %s/metrics.csv, %s/summary.md and %d montage(s)%s\n", o.out, o.out,
                ds.n - r.n_failed, dist_size() > 1 ? " (cases shared over the processes)" : "");
    if (scored) st = dist_agree(st);  /* rank 0's writes */
    if (!st && r.n_failed)
        st = lpm_fail(LPM_ERR_INPUT, "%d of %d case(s) failed (listed in %s/summary.md)", r.n_failed, ds.n, o.out);
    for (int c = 0; r.failed && c < ds.n; c++) free(r.failed[c]);
    free(r.failed);
    free(r.values);
    free(r.seconds);
    lpm_dataset_free(&ds);
    lpm_weights_free(&w);
    /* every process ends with the same status; rank 0 prints it */
    return dist_end(st ? (dist_rank() == 0 ? cli_fail(CMD, st) : (int)st) : 0);
}
