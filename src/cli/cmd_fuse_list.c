/* lpmnet fuse --list PAIRS.csv --out DIR: fuse many pairs in one process, the model loaded
 * once; under mpirun the pairs are dealt out over the processes. */
#include "cli.h"
#include "dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *CMD = "fuse";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet fuse --list PAIRS.csv --out DIR [options]\n\n"
            "Fuse every pair of PAIRS.csv with one model load. The CSV has the header a,b with\n"
            "optional columns mask and out (a,b / a,b,out / a,b,mask / a,b,mask,out); paths are\n"
            "relative to the CSV's folder; blank lines and lines starting with # are skipped.\n"
            "Each result goes to the row's out, or else DIR/<stem of a>_<stem of b>.nii.gz\n"
            "(two rows that would write one file are refused before any work). A pair that\n"
            "fails is reported with its line and file and the others are still fused. Under\n"
            "mpirun (or srun) the pairs are shared out over the processes (docs/cluster.md).\n\n"
            "  --list FILE           the pairs (CSV)\n"
            "  --out DIR             output folder (created)\n"
            "  -m, --model NAME|FILE a bundled model (mri, ct-mr, pet-mr, pet-ct) or LPM-Net\n"
            "                        weights (.safetensors) [default: mri]\n"
            "  --passes N            LPM-Net passes at shifted window grids: 1, 2, 4, 8, 16 [4]\n"
            "  --exact               the authors' computation: one pass, plain min-max\n"
            "  --clip LOW,HIGH       clip each input to these percentiles before scaling\n"
            "                        [default: --clip 0.5,100]\n"
            "  --ct-window W         CT window (bone, soft, lung, or WIDTH,LEVEL) for the CT input\n"
            "  --method NAME         lpmnet (default), average, max, pca, dwt, laplacian, guided\n"
            "  --threads N           threads per process (default: all cores, shared by the\n"
            "                        processes of an MPI run on one machine)\n\n"
            "Exit codes: 0 every pair fused, 1 usage error, 2 a pair failed (the others were\n"
            "fused) or the list cannot be read, 3 internal error.\n");
}

typedef struct {
    const char *list, *out, *model, *method;
    lpm_fuse_settings fuse; /* the preprocessing options and --exact */
    long threads, passes;
} list_args;

static int parse(int argc, char **argv, list_args *o) {
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return -1;
        }
#define VALUE(dst) if (!((dst) = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE
        if (!strcmp(s, "--list")) { VALUE(o->list); }
        else if (!strcmp(s, "--out") || !strcmp(s, "-o")) { VALUE(o->out); }
        else if (!strcmp(s, "-m") || !strcmp(s, "--model")) { VALUE(o->model); }
        else if (!strcmp(s, "--method")) { VALUE(o->method); }
        else if (!strcmp(s, "--exact")) o->fuse.exact = 1;
        else if (!strcmp(s, "--passes")) {
            const char *v;
            VALUE(v);
            if (cli_parse_passes(CMD, v, &o->passes)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--threads")) {
            const char *v;
            VALUE(v);
            if (cli_parse_threads(CMD, v, &o->threads)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--mask")) {
            return cli_error(CMD, LPM_ERR_USAGE, "--mask with --list: give each pair's mask in the CSV's mask column");
        } else if (s[0] == '-' && s[1]) {
            int taken = cli_prep_option(CMD, argc, argv, &i, &o->fuse);
            if (taken == CLI_PREP_BAD) return LPM_ERR_USAGE;
            if (!taken)
                return cli_error(CMD, LPM_ERR_USAGE, "unknown option '%s' with --list (see lpmnet fuse --list --help)", s);
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "unexpected argument '%s': with --list the pairs come from the CSV", s);
        }
#undef VALUE
    }
    if (!o->list || !o->out) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (!o->method) o->method = "lpmnet";
    if (strcmp(o->method, "lpmnet") != 0 && !lpm_classical_known(o->method))
        return cli_error(CMD, LPM_ERR_USAGE, "unknown method '%s' (valid: lpmnet, %s)", o->method,
                         lpm_classical_names());
    if (o->fuse.exact && o->passes > 1) return cli_error(CMD, LPM_ERR_USAGE, "--exact runs one pass; leave out --passes");
    if (cli_prep_finish(CMD, &o->fuse)) return LPM_ERR_USAGE;
    o->fuse.method = o->method;
    o->fuse.passes = (int)o->passes;
    return 0;
}

/* Every pair's output path: the CSV's out, or DIR/<stem a>_<stem b>.nii.gz. */
static lpm_status output_paths(const list_args *o, const lpm_dataset *ds, char **paths) {
    for (int c = 0; c < ds->n; c++) {
        char sa[1024], sb[1024], buf[4200];
        if (ds->cases[c].out) {
            snprintf(buf, sizeof buf, "%s", ds->cases[c].out);
        } else {
            lpm_volume_stem(ds->cases[c].a, sa, sizeof sa);
            lpm_volume_stem(ds->cases[c].b, sb, sizeof sb);
            snprintf(buf, sizeof buf, "%s/%s_%s.nii.gz", o->out, sa, sb);
        }
        if (!(paths[c] = malloc(strlen(buf) + 1))) return lpm_fail(LPM_ERR_INTERNAL, "out of memory");
        strcpy(paths[c], buf);
    }
    return LPM_OK;
}

/* Two rows writing one file would silently keep only the later result. */
static int refuse_duplicate_outputs(const list_args *o, const lpm_dataset *ds, char *const *paths) {
    for (int c = 0; c < ds->n; c++)
        for (int d = 0; d < c; d++)
            if (!strcmp(paths[c], paths[d]))
                return cli_error(CMD, LPM_ERR_USAGE, "%s: lines %d and %d both write %s; give the rows an out column",
                                 o->list, ds->cases[d].line, ds->cases[c].line, paths[c]);
    return 0;
}

/* Fuse pair c into path. */
static lpm_status fuse_pair(const list_args *o, const lpm_weights *w, const char *model, const lpm_dataset *ds,
                            int c, const char *path) {
    const lpm_case *cs = &ds->cases[c];
    lpm_volume a = {0}, b = {0}, fused = {0};
    lpm_fuse_settings s = o->fuse;
    s.mask_path = cs->mask;
    s.threads = (int)o->threads;
    lpm_volume a01 = {0}, b01 = {0};
    lpm_status st = cli_read_pair(cs->a, &a, cs->b, &b);
    if (!st) st = lpm_prepare_pair(&a, cs->a, &b, cs->b, &s, &a01, &b01);
    if (!st) {
        st = lpm_fuse_prepared(w, &a01, &b01, &s, &fused, NULL, NULL);
        /* the inputs passed their checks, so a data error now is the weights' (a non-finite
         * output): name them */
        if (st == LPM_ERR_INPUT && model) st = lpm_prefix_error(st, "%s", model);
    }
    lpm_volume_free(&a01);
    lpm_volume_free(&b01);
    if (!st) {
        char descrip[80];
        snprintf(descrip, sizeof descrip, "lpmnet %s %s%s", LPM_VERSION, model ? "LPM-Net" : o->method,
                 s.exact ? " exact" : "");
        st = lpm_volume_write_described(path, &fused, &a, descrip);
    }
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_volume_free(&fused);
    return st;
}

/* Process c % P fuses pair c. */
static int owns_pair(int c) { return c % dist_size() == dist_rank(); }

int cmd_fuse_list(int argc, char **argv) {
    list_args o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;

    lpm_dataset ds = {0};
    lpm_weights w = {0};
    char **paths = NULL;
    const char *model = NULL;
    int n_failed = 0, n_done = 0;
    lpm_status st = dist_start();
    if (st) return dist_end(cli_fail(CMD, st));
    if (!o.threads && dist_size() > 1) o.threads = dist_default_threads();
    lpm_set_threads((int)o.threads);
    if (!strcmp(o.method, "lpmnet") && cli_resolve_model(CMD, o.model, &model)) return dist_end(LPM_ERR_USAGE);
    size_t len = strlen(o.list);
    if (len < 4 || strcasecmp(o.list + len - 4, ".csv") != 0)
        return dist_end(cli_error(CMD, LPM_ERR_USAGE, "--list %s: expected a .csv file (header a,b)", o.list));

    st = lpm_dataset_open(&ds, o.list, NULL, NULL, NULL);
    if (!st && !(paths = calloc((size_t)ds.n, sizeof *paths))) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    if (!st) st = output_paths(&o, &ds, paths);
    if (!st && refuse_duplicate_outputs(&o, &ds, paths)) {
        rc = LPM_ERR_USAGE;
        goto done;
    }
    for (int c = 0; !st && c < ds.n; c++) {
        const char *inputs[4] = {ds.cases[c].a, ds.cases[c].b, model, ds.cases[c].mask};
        if (cli_refuse_input_as_output(CMD, paths[c], inputs, 4)) {
            rc = LPM_ERR_USAGE;
            goto done;
        }
    }
    if (!st && model) {
        st = lpm_weights_alloc(&w);
        if (!st) st = lpm_weights_load(&w, model);
    }
    if (!st && mkdir(o.out, 0755) != 0 && errno != EEXIST)
        st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the output folder (%s)", o.out, strerror(errno));
    if ((st = dist_agree(st))) goto done;

    double t_all = lpm_seconds();
    for (int c = 0; c < ds.n && !st; c++) {
        if (!owns_pair(c)) continue;
        double t0 = lpm_seconds();
        lpm_status pst = fuse_pair(&o, &w, model, &ds, c, paths[c]);
        if (pst == LPM_OK) {
            n_done++;
            fprintf(stderr, "lpmnet fuse: pair %d/%d (%s line %d) -> %s in %.2f s\n", c + 1, ds.n, o.list,
                    ds.cases[c].line, paths[c], lpm_seconds() - t0);
        } else if (pst == LPM_ERR_INPUT) {  /* this pair's data: report it, fuse the others */
            n_failed++;
            fprintf(stderr, "lpmnet fuse: %s:%d: pair %d/%d failed, going on without it: %s\n", o.list,
                    ds.cases[c].line, c + 1, ds.n, lpm_last_error());
        } else {
            st = pst;  /* out of memory or an internal error: stop */
        }
    }
    /* every process's outcome: a stop anywhere stops all; the failures are counted over all */
    st = dist_agree(st);
    if (!st && dist_size() > 1) {
        int32_t mine[2] = {n_done, n_failed}, *all = calloc((size_t)dist_size() * 2, sizeof *all);
        size_t *counts = calloc((size_t)dist_size(), sizeof *counts);
        if (!all || !counts) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
        for (int q = 0; !st && q < dist_size(); q++) counts[q] = sizeof mine;
        if (!st) st = dist_allgather(NULL, mine, all, counts);
        n_done = n_failed = 0;
        for (int q = 0; !st && q < dist_size(); q++) n_done += all[2 * q], n_failed += all[2 * q + 1];
        free(all);
        free(counts);
    }
    if (!st && dist_rank() == 0)
        fprintf(stderr, "lpmnet fuse: %d of %d pair(s) fused into %s in %.1f s%s\n", n_done, ds.n, o.out,
                lpm_seconds() - t_all, dist_size() > 1 ? " (pairs shared over the processes)" : "");
    if (!st && n_failed)
        st = lpm_fail(LPM_ERR_INPUT, "%d of %d pair(s) failed (see the lines above)", n_failed, ds.n);

done:
    for (int c = 0; paths && c < ds.n; c++) free(paths[c]);
    free(paths);
    lpm_dataset_free(&ds);
    lpm_weights_free(&w);
    if (rc) return dist_end(rc);
    /* every process ends with the same status; rank 0 prints it */
    return dist_end(st ? (dist_rank() == 0 ? cli_fail(CMD, st) : (int)st) : 0);
}
