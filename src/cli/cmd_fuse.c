/* lpmnet fuse A B -o OUT: LPM-Net (default) or a classical method. */
#include "classical/classical.h"
#include "cli.h"
#include "cuda/cuda.h"
#include "io/io.h"
#include "io/montage.h"
#include "prep/color.h"

#include <errno.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "fuse";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet fuse A B -o OUT [options]\n\n"
            "Fuse two co-registered 3-D volumes. Each input is scaled to [0,1] (the lowest 0.5%%\n"
            "of its voxels clipped, see --clip); the output is float32 in [0,1] on A's grid with\n"
            "A's geometry (qform/sform, pixdim). LPM-Net runs 4 passes at shifted window grids\n"
            "and averages them; the output is 0 where both scaled inputs are 0. --exact: the\n"
            "authors' computation (plain min-max, one pass), as their PyTorch code gives it.\n\n"
            "  -o, --out FILE        fused volume (.nii, .nii.gz, .hdr/.img; not one of the inputs)\n"
            "  -m, --model NAME|FILE a bundled model: mri (default), ct-mr, pet-mr, pet-ct (see\n"
            "                        'lpmnet models'), or LPM-Net weights (.safetensors)\n"
            "  --passes N            LPM-Net passes at shifted window grids: 1, 2, 4, 8, 16 [4]\n"
            "  --exact               the authors' computation: one pass, plain min-max\n"
            "                        normalisation, no background rule (what PyTorch gives)\n"
            CLI_PREP_HELP
            "  --method NAME         lpmnet (default), average, max, pca, dwt, laplacian, guided\n"
            "  --components DIR      also write DIR/base.nii.gz and DIR/detail.nii.gz (lpmnet)\n"
            "  --resample            resample B onto A's grid through the headers' world\n"
            "                        coordinates (trilinear) instead of requiring one grid\n"
            "  --color MAP           write OUT in colour (RGB24 NIfTI): the functional input\n"
            "                        through MAP (hot, jet, gray) with its luminance replaced by\n"
            "                        the fusion (YCbCr fusion, ITU-R BT.601); for PET and SPECT\n"
            "  --functional a|b      the functional input coloured by --color [b]\n"
            "  --preview FILE.png    picture of the orthogonal mid-slices of A, B and the result\n"
            "  --device D            cpu (default) or cuda (LPM-Net on an NVIDIA GPU, one pass)\n"
            "  --threads N           threads (default: all cores)\n"
            "  -h, --help            this help\n");
}

typedef struct {
    const char *a, *b, *out, *model, *method, *components, *preview, *color;
    lpm_prep prep;
    int resample, cuda, exact, functional_a;
    long threads, passes;
} fuse_args;

static int parse(int argc, char **argv, fuse_args *o) {
    const char *pos[2];
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return -1;
        } else if (!strcmp(s, "-o") || !strcmp(s, "--out")) {
            if (!(o->out = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "-m") || !strcmp(s, "--model")) {
            if (!(o->model = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--method")) {
            if (!(o->method = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--components")) {
            if (!(o->components = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--preview")) {
            if (!(o->preview = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--device")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            if (cli_parse_device(CMD, v, &o->cuda)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--passes")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_passes(CMD, v, &o->passes)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--color")) {
            if (!(o->color = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
            if (!lpm_colormap_known(o->color))
                return cli_error(CMD, LPM_ERR_USAGE, "unknown colour map '%s' (valid: %s)", o->color,
                                 lpm_colormap_names());
        } else if (!strcmp(s, "--functional")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            if (strcmp(v, "a") && strcmp(v, "b"))
                return cli_error(CMD, LPM_ERR_USAGE, "--functional expects a or b, got '%s'", v);
            o->functional_a = !strcmp(v, "a");
        } else if (!strcmp(s, "--exact")) {
            o->exact = 1;
        } else if (!strcmp(s, "--resample")) {
            o->resample = 1;
        } else if (!strcmp(s, "--threads")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_threads(CMD, v, &o->threads)) return LPM_ERR_USAGE;
        } else if (s[0] == '-' && s[1]) {
            const int taken = cli_prep_option(CMD, argc, argv, &i, &o->prep);
            if (taken == CLI_PREP_BAD) return LPM_ERR_USAGE;
            if (!taken)
                return cli_error(CMD, LPM_ERR_USAGE, "unknown option '%s' (see lpmnet fuse --help)", s);
        } else if (npos < 2) {
            pos[npos++] = s;
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "unexpected argument '%s'", s);
        }
    }
    if (npos != 2 || !o->out) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    o->a = pos[0], o->b = pos[1];
    if (!o->method) o->method = "lpmnet";
    if (strcmp(o->method, "lpmnet") != 0 && !lpm_classical_known(o->method))
        return cli_error(CMD, LPM_ERR_USAGE, "unknown method '%s' (valid: lpmnet, %s)", o->method,
                         lpm_classical_names());
    if (o->cuda && strcmp(o->method, "lpmnet") != 0)
        return cli_error(CMD, LPM_ERR_USAGE, "--device cuda runs LPM-Net only (the classical methods are CPU code)");
    if (o->components && strcmp(o->method, "lpmnet") != 0)
        return cli_error(CMD, LPM_ERR_USAGE, "--components needs --method lpmnet");
    if (o->exact && o->passes > 1)
        return cli_error(CMD, LPM_ERR_USAGE, "--exact runs one pass; leave out --passes");
    if (cli_prep_finish(CMD, &o->prep, o->exact)) return LPM_ERR_USAGE;
    if (o->cuda && o->passes > 1)
        return cli_error(CMD, LPM_ERR_USAGE, "--device cuda runs one pass (--passes 1)");
    return 0;
}

/* Fail early (before minutes of work) when an output cannot be created. */
static lpm_status check_writable(const char *path) {
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st == LPM_OK) lpm_atomic_abort(&f);
    return st;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static lpm_status write_preview(const fuse_args *o, const lpm_volume *a, const lpm_volume *b,
                                const lpm_volume *f, const uint8_t *rgb) {
    const lpm_montage_column cols[4] = {{base_name(o->a), a->data, NULL},
                                        {base_name(o->b), b->data, NULL},
                                        {o->method, f->data, NULL},
                                        {o->color, NULL, rgb}};
    return lpm_montage_write_columns(o->preview, cols, rgb ? 4 : 3, a->nz, a->ny, a->nx);
}

/* The bundled model's family name, or NULL for a weights file given by path. */
static const char *family(const fuse_args *o) {
    if (!o->model) return getenv("LPM_MODEL") ? NULL : "mri";
    return cli_model_known(o->model) ? o->model : NULL;
}

/* A warning (the fusion still runs) when the inputs do not look like the family's pair:
 * Hounsfield values into a model trained without CT, or no CT into a CT model. */
static void warn_if_unlike_model(const fuse_args *o, const lpm_volume *a, const lpm_volume *b) {
    const char *name = family(o);
    if (!name) return;
    const int ct_a = lpm_looks_like_ct(a), ct_b = lpm_looks_like_ct(b);
    const int wants_ct = !strcmp(name, "ct-mr") || !strcmp(name, "pet-ct");
    if (!wants_ct && (ct_a || ct_b))
        fprintf(stderr, "lpmnet fuse: warning: %s holds Hounsfield-like values (CT), but the model "
                "'%s' was trained on %s pairs; -m ct-mr or -m pet-ct fits CT\n", ct_a ? o->a : o->b,
                name, !strcmp(name, "mri") ? "MR/MR" : "PET/MR");
    else if (wants_ct && !ct_a && !ct_b)
        fprintf(stderr, "lpmnet fuse: warning: neither %s nor %s holds Hounsfield-like values "
                "(minimum <= -500, maximum >= 300), but the model '%s' expects CT\n", o->a, o->b, name);
}

/* The header's description: who made the file and how (NIfTI keeps 79 characters). */
static void describe(char *buf, size_t n, const fuse_args *o, const char *model) {
    if (model)
        snprintf(buf, n, "lpmnet %s LPM-Net %s%s", LPM_VERSION, family(o) ? family(o) : base_name(model),
                 o->exact ? " exact" : "");
    else
        snprintf(buf, n, "lpmnet %s %s", LPM_VERSION, o->method);
    if (o->color) snprintf(buf + strlen(buf), n - strlen(buf), " color %s", o->color);
}

/* Every file this run will write, checked against every file it reads: exit 1 before any
 * work when one would replace an input. */
static int refuse_overwriting_inputs(const fuse_args *o, const char *model, const char *base_path,
                                     const char *detail_path) {
    const char *inputs[3] = {o->a, o->b, model};
    const char *outputs[4] = {o->out, o->preview, base_path, detail_path};
    for (int k = 0; k < 4; k++)
        if (cli_refuse_input_as_output(CMD, outputs[k], inputs, 3)) return LPM_ERR_USAGE;
    return 0;
}

/* A NaN or Inf voxel in a result is never written (a reader would take it for data). */
static lpm_status check_finite_result(const char *path, const lpm_volume *v, const char *what,
                                      int from_model) {
    int64_t n = lpm_volume_numel(v), bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(v->data[i]);
    if (!bad) return LPM_OK;
    /* the inputs were checked finite: a model's weights are then the likely cause */
    return lpm_fail(from_model ? LPM_ERR_INPUT : LPM_ERR_INTERNAL,
                    "%s: the %s volume has %lld non-finite voxels (NaN/Inf)%s; nothing written", path,
                    what, (long long)bad, from_model ? " (are the model's weights finite?)" : "");
}

static int run(const fuse_args *o) {
    lpm_volume a = {0}, b = {0}, b_on_a = {0}, fused = {0}, base = {0}, detail = {0};
    lpm_weights w = {0};
    uint8_t *rgb = NULL;
    char base_path[4096], detail_path[4096];
    cli_progress_state progress = {.label = "lpmnet fuse"};
    double t0 = lpm_seconds();
    lpm_status st = LPM_OK;
    const char *model = NULL;

    lpm_set_threads((int)o->threads);
    if (!strcmp(o->method, "lpmnet") && cli_resolve_model(CMD, o->model, &model)) return LPM_ERR_USAGE;
    if (o->components) {
        snprintf(base_path, sizeof base_path, "%s/base.nii.gz", o->components);
        snprintf(detail_path, sizeof detail_path, "%s/detail.nii.gz", o->components);
    }
    if (refuse_overwriting_inputs(o, model, o->components ? base_path : NULL,
                                  o->components ? detail_path : NULL))
        return LPM_ERR_USAGE;
    if (model && ((st = lpm_weights_alloc(&w)) || (st = lpm_weights_load(&w, model)))) goto done;
    if (o->components && mkdir(o->components, 0755) != 0 && errno != EEXIST) {
        st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the components folder (%s)", o->components,
                      strerror(errno));
        goto done;
    }
    if ((st = check_writable(o->out))) goto done;
    if (o->components && ((st = check_writable(base_path)) || (st = check_writable(detail_path))))
        goto done;
    if (o->preview && (st = check_writable(o->preview))) goto done;

    if ((st = cli_read_pair(o->a, &a, o->b, &b))) goto done;
    if (o->resample) {
        if ((st = lpm_resample_to(&b, &a, &b_on_a))) {
            char both[8300];
            snprintf(both, sizeof both, "%s onto %s", o->b, o->a);
            st = cli_prefix_error(st, both);
            goto done;
        }
        lpm_volume_free(&b);
        b = b_on_a;
        b_on_a = (lpm_volume){0};
    } else if ((st = lpm_check_same_grid(&a, &b, o->a, o->b))) {
        goto done;
    }

    if (model) warn_if_unlike_model(o, &a, &b);
    /* Scale here, where the file names are known, so a constant or non-finite input is
     * reported by name; lpm_fuse's own min-max then leaves the [0,1] data unchanged. */
    if ((st = cli_prep_inputs(&o->prep, &a, o->a, &b, o->b, -1))) goto done;
    if (model && o->cuda) {
        st = lpm_fuse_cuda(&w, &a, &b, &fused, o->components ? &base : NULL, o->components ? &detail : NULL);
    } else if (model) {
        lpm_fuse_options opt = o->exact ? LPM_FUSE_EXACT : LPM_FUSE_DEFAULT;
        if (o->passes) opt.passes = (int)o->passes;
        st = lpm_fuse(&w, &a, &b, &fused, o->components ? &base : NULL,
                      o->components ? &detail : NULL, &opt, (int)o->threads, cli_progress, &progress);
        cli_progress_end(&progress);
    } else {
        st = lpm_volume_alloc_like(&fused, &a);
        if (!st) st = lpm_classical_fuse(o->method, a.data, b.data, fused.data, a.nz, a.ny, a.nx);
    }
    if (st == LPM_ERR_INPUT && model) st = cli_prefix_error(st, model);  /* the weights' fault */
    if (st) goto done;
    if ((st = check_finite_result(o->out, &fused, "fused", model != NULL)) ||
        (o->components && ((st = check_finite_result(base_path, &base, "base", 1)) ||
                           (st = check_finite_result(detail_path, &detail, "detail", 1)))))
        goto done;

    /* side outputs first: a failure then leaves OUT as it was */
    if (o->components &&
        ((st = lpm_volume_write(base_path, &base, &a)) || (st = lpm_volume_write(detail_path, &detail, &a))))
        goto done;
    if (o->color) {
        if (!(rgb = lpm_malloc((size_t)lpm_volume_numel(&a), 3))) {
            st = LPM_ERR_INTERNAL;
            goto done;
        }
        const lpm_volume *func = o->functional_a ? &a : &b;
        if ((st = lpm_color_fuse(rgb, fused.data, func->data, lpm_volume_numel(&a), o->color))) goto done;
    }
    char descrip[80];
    describe(descrip, sizeof descrip, o, model);
    if (o->preview && (st = write_preview(o, &a, &b, &fused, rgb))) goto done;
    if ((st = o->color ? lpm_volume_write_rgb(o->out, rgb, &a, descrip)
                       : lpm_volume_write_described(o->out, &fused, &a, descrip)))
        goto done;
    if (model)
        fprintf(stderr, "lpmnet fuse: LPM-Net, model %s (%s), %s (%lldx%lldx%lld) -> %s in %.2f s\n",
                family(o) ? family(o) : "from a file", model, o->exact ? "exact" : "default",
                (long long)a.nx, (long long)a.ny, (long long)a.nz, o->out, lpm_seconds() - t0);
    else
        fprintf(stderr, "lpmnet fuse: %s (%lldx%lldx%lld) -> %s in %.2f s\n", o->method,
                (long long)a.nx, (long long)a.ny, (long long)a.nz, o->out, lpm_seconds() - t0);

done:
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_volume_free(&fused);
    lpm_volume_free(&base);
    lpm_volume_free(&detail);
    lpm_weights_free(&w);
    free(rgb);
    return st ? cli_fail(CMD, st) : 0;
}

int cmd_fuse(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--list")) return cmd_fuse_list(argc, argv);
    fuse_args o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    return run(&o);
}
