/* lpmnet fuse A B -o OUT: LPM-Net (default) or a classical method, on the public API:
 * lpm_prepare_pair scales the inputs, lpm_fuse_prepared fuses them. */
#include "cli.h"
#include "report_html.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "fuse";

#define USAGE_LINE "lpmnet fuse A B -o OUT [options]"

static void usage(FILE *out) {
    fprintf(out,
            "usage: " USAGE_LINE "\n\n"
            "Fuse two co-registered 3-D volumes. Each input is scaled to [0,1] (the lowest 0.5%%\n"
            "of its voxels clipped, see --clip); the output is float32 in [0,1] on A's grid with\n"
            "A's geometry (qform/sform, pixdim). LPM-Net runs 4 passes at shifted window grids\n"
            "and averages them; the output is 0 where both scaled inputs are 0. --exact: the\n"
            "authors' computation (plain min-max, one pass), as their PyTorch code gives it.\n"
            "Co-register A and B first (FSL FLIRT, ANTs): --resample only uses the headers.\n"
            "Every option's value may also be given as --opt=VALUE.\n\n"
            "  -o, --out FILE        fused volume (.nii, .nii.gz, .hdr/.img; not one of the inputs);\n"
            "                        a name without one of these extensions gets .nii.gz\n"
            "  -m, --model NAME|FILE a bundled model: mri (default), ct-mr, pet-mr, pet-ct (see\n"
            "                        'lpmnet models'), or LPM-Net weights (.safetensors)\n"
            "  --passes N            LPM-Net passes at shifted window grids: 1, 2, 4, 8, 16, or\n"
            "                        auto (4; 1 with --exact or --device cuda) [auto]\n"
            "  --exact               the authors' computation: one pass, plain min-max\n"
            "                        normalisation, no background rule (what PyTorch gives)\n"
            CLI_PREP_HELP
            "  --method NAME         lpmnet (default), average, max, pca, dwt, laplacian, guided\n"
            "  --components DIR      also write DIR/base.nii.gz and DIR/detail.nii.gz (lpmnet)\n"
            "  --resample            resample B onto A's grid through the headers' world\n"
            "                        coordinates (trilinear) instead of requiring one grid\n"
            "  --color MAP           write OUT in colour (RGB24 NIfTI): the functional input\n"
            "                        through MAP (hot, jet, gray) with its luminance replaced by\n"
            "                        the fusion (YCbCr fusion, ITU-R BT.601); for PET and SPECT;\n"
            "                        none: a grey output (the default)\n"
            "  --functional a|b      the functional input coloured by --color [b]\n"
            "  --preview FILE.png    PNG picture of the orthogonal mid-slices of A, B and the\n"
            "                        result (the name must end in .png)\n"
            "  --html DIR            also write DIR/index.html: A, B and the result side by side\n"
            "                        in 3-D views with one crosshair, and the result's metrics\n"
            "                        (a page for a web browser; see docs/viewer.md)\n"
            "  --device D            cpu (default) or cuda (LPM-Net on an NVIDIA GPU, one pass)\n"
            "  --threads N           threads, 0 = all cores [0]\n"
            "  -q, --quiet           errors and warnings only (no progress, no summary line)\n"
            "  -v, --verbose         also each stage (read, scale, fuse, write) and its time\n"
            "  --max-memory SIZE     refuse inputs that declare more than SIZE bytes (e.g. 4G)\n"
            "  --list PAIRS.csv      fuse many pairs with one model load (-o is then a folder)\n"
            "  --xml                 print the 3D Slicer command-line module description\n"
            "  -h, --help            this help\n\n"
            "Progress goes to stderr: a bar on a terminal, else a line every 5 s\n"
            "(LPM_PROGRESS_INTERVAL=SECONDS). Exit codes: 0 ok, 1 usage error, 2 input/data\n"
            "error, 3 internal error.\n");
}

typedef struct {
    const char *a, *b, *out, *model, *method, *components, *preview, *color;
    const char *html; /* --html DIR */
    lpm_fuse_settings settings; /* --clip, --ct-window, --mask; the rest set in run() */
    int resample, cuda, exact, functional_a;
    long threads, passes; /* passes 0: auto */
    char out_name[4200];  /* OUT with .nii.gz added when it had no volume extension */
} fuse_args;

static int parse(int argc, char **argv, fuse_args *o) {
    const char *pos[2];
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return -1;
        } else if (!strcmp(s, "--xml")) {
            cli_slicer_xml(stdout);
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
        } else if (!strcmp(s, "--html")) {
            if (!(o->html = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--device")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            if (cli_parse_device(CMD, v, &o->cuda)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--passes")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            if (!strcmp(v, "auto")) o->passes = 0;
            else if (cli_parse_passes(CMD, v, &o->passes)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--color")) {
            if (!(o->color = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
            if (!strcmp(o->color, "none")) o->color = NULL; /* Slicer always passes a value */
            else if (!lpm_colormap_known(o->color))
                return cli_error(CMD, LPM_ERR_USAGE, "unknown colour map '%s' (valid: %s, none)",
                                 o->color, lpm_colormap_names());
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
            const int taken = cli_prep_option(CMD, argc, argv, &i, &o->settings);
            if (taken == CLI_PREP_BAD) return LPM_ERR_USAGE;
            if (!taken)
                return cli_error(CMD, LPM_ERR_USAGE, "unknown option '%s' (see lpmnet fuse --help)", s);
        } else if (npos < 2) {
            pos[npos++] = s;
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "unexpected argument '%s'", s);
        }
    }
    if (argc == 0) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (npos == 0)
        return cli_missing(CMD, "the inputs A and B (two co-registered volumes: .nii, .nii.gz, "
                           ".hdr/.img)", USAGE_LINE);
    if (npos == 1)
        return cli_missing(CMD, "input B (the second volume, on A's grid, or on any grid with "
                           "--resample)", USAGE_LINE);
    if (!o->out) return cli_missing(CMD, "-o/--out OUTPUT (where to write the fused volume)", USAGE_LINE);
    if (cli_volume_output_name(CMD, "-o/--out", o->out, o->out_name, sizeof o->out_name))
        return LPM_ERR_USAGE;
    o->out = o->out_name;
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
        return cli_error(CMD, LPM_ERR_USAGE, "--exact runs one pass; leave out --passes (or --passes auto)");
    o->settings.exact = o->exact;
    if (cli_prep_finish(CMD, &o->settings)) return LPM_ERR_USAGE;
    if (o->cuda && o->passes > 1)
        return cli_error(CMD, LPM_ERR_USAGE, "--device cuda runs one pass (--passes 1 or auto)");
    return 0;
}

/* Fail early (before minutes of work) when an output cannot be created. */
static lpm_status check_writable(const char *path) {
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st == LPM_OK) lpm_atomic_abort(&f);
    return st;
}

/* Columns labelled with the inputs' file names (without the folder and extension). */
static lpm_status write_preview(const fuse_args *o, const lpm_volume *a, const lpm_volume *b,
                                const lpm_volume *f, const uint8_t *rgb) {
    char name_a[256], name_b[256];
    lpm_volume_stem(o->a, name_a, sizeof name_a);
    lpm_volume_stem(o->b, name_b, sizeof name_b);
    const lpm_montage_column cols[4] = {{name_a, a->data, NULL},
                                        {name_b, b->data, NULL},
                                        {o->method, f->data, NULL},
                                        {o->color, NULL, rgb}};
    return lpm_montage_write_titled(o->preview, NULL, cols, rgb ? 4 : 3, a->nz, a->ny, a->nx);
}

/* The bundled model's family name, or NULL for a weights file given by path. */
static const char *family(const fuse_args *o) {
    if (!o->model) return getenv("LPM_MODEL") ? NULL : "mri";
    return lpm_model_known(o->model) ? o->model : NULL;
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
        snprintf(buf, n, "lpmnet %s LPM-Net %s%s", LPM_VERSION, family(o) ? family(o) : cli_base_name(model),
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

/* --html DIR: DIR/index.html with A and B (as scaled for the fusion) and the result in linked
 * views, and the result's twelve metrics and seam indices against the scaled inputs (a few
 * seconds on a brain volume; the numbers lpmnet eval gives for the same pair). */
static lpm_status write_html(const fuse_args *o, const char *path, const lpm_volume *a, const lpm_volume *b,
                             const lpm_volume *f, const char *model) {
    enum { N_COLS = LPM_METRIC_COUNT + 3 };
    const char *method = model ? "lpmnet" : o->method;
    char label_a[300], label_b[300], label_f[300], title[700];
    snprintf(label_a, sizeof label_a, "A: %s", cli_base_name(o->a));
    snprintf(label_b, sizeof label_b, "B: %s", cli_base_name(o->b));
    snprintf(label_f, sizeof label_f, "%s: %s", method, cli_base_name(o->out));
    snprintf(title, sizeof title, "lpmnet fuse: %s + %s", cli_base_name(o->a), cli_base_name(o->b));
    const cli_html_volume vols[3] = {{label_a, a->data}, {label_b, b->data}, {label_f, f->data}};
    const char *cols[N_COLS] = {[LPM_METRIC_COUNT] = "seam_x", "seam_y", "seam_z"};
    double values[N_COLS];
    /* normalize 0: a and b are the scaled inputs and f is in [0, 1] already */
    lpm_status st = lpm_metrics_volumes(values, a, b, f, NULL, 0);
    if (!st) st = lpm_seam_volume(&values[LPM_METRIC_COUNT], f, NULL, 0);
    if (st) return st;
    for (int k = 0; k < LPM_METRIC_COUNT; k++) cols[k] = lpm_metric_name(k);
    const cli_html_table table = {1, N_COLS, &method, cols, values, "method"};
    return cli_html_report(path, title,
                           "A and B as scaled for the fusion; the metrics score the result against them, as "
                           "lpmnet eval does.", a, vols, 3, &table);
}

static int run(const fuse_args *o) {
    lpm_volume a = {0}, b = {0}, a01 = {0}, b01 = {0}, fused = {0}, base = {0}, detail = {0};
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
    /* after the check above, which names the more serious mistake of a preview over an input */
    if (o->preview && !cli_is_png_name(o->preview))
        return cli_error(CMD, LPM_ERR_USAGE, "--preview %s: the picture is a PNG; give a name "
                         "ending in .png", o->preview);
    if (model && ((st = lpm_weights_alloc(&w)) || (st = lpm_weights_load(&w, model)))) goto done;
    if (model) cli_detail(CMD, "model %s loaded (%.2f s)", model, lpm_seconds() - t0);
    if (o->components && mkdir(o->components, 0755) != 0 && errno != EEXIST) {
        st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the components folder (%s)", o->components,
                      strerror(errno));
        goto done;
    }
    if ((st = check_writable(o->out))) goto done;
    if (o->components && ((st = check_writable(base_path)) || (st = check_writable(detail_path))))
        goto done;
    if (o->preview && (st = check_writable(o->preview))) goto done;
    char html_path[4200];
    if (o->html) {
        snprintf(html_path, sizeof html_path, "%s/index.html", o->html);
        if (!cli_niivue_script()) {
            st = lpm_fail(LPM_ERR_INPUT, "--html: the viewer script is not installed: %s", lpm_last_error());
            goto done;
        }
        if (mkdir(o->html, 0755) != 0 && errno != EEXIST) {
            st = lpm_fail(LPM_ERR_INPUT, "%s: cannot create the --html folder (%s)", o->html, strerror(errno));
            goto done;
        }
        if ((st = check_writable(html_path))) goto done;
    }

    double t = lpm_seconds();
    if ((st = cli_read_pair(o->a, &a, o->b, &b))) goto done;
    cli_detail(CMD, "read %s (%lldx%lldx%lld) and %s (%lldx%lldx%lld) in %.2f s", o->a, (long long)a.nx,
               (long long)a.ny, (long long)a.nz, o->b, (long long)b.nx, (long long)b.ny,
               (long long)b.nz, lpm_seconds() - t);
    t = lpm_seconds();
    lpm_fuse_settings s = o->settings; /* --clip, --ct-window, --mask */
    s.method = o->method;
    s.exact = o->exact;
    s.passes = (int)o->passes;
    s.resample = o->resample;
    s.threads = (int)o->threads;
    s.device = o->cuda;
    s.progress = cli_progress;
    s.progress_ctx = &progress;
    /* scaled with the file names at hand, so that a grid mismatch, a constant or non-finite
     * input or a bad mask is reported by name */
    if ((st = lpm_prepare_pair(&a, o->a, &b, o->b, &s, &a01, &b01))) goto done;
    if (o->resample)
        cli_detail(CMD, "resampled %s onto %s's grid and scaled both inputs to [0,1] in %.2f s", o->b, o->a,
                   lpm_seconds() - t);
    else
        cli_detail(CMD, "scaled both inputs to [0,1] in %.2f s", lpm_seconds() - t);
    if (model) warn_if_unlike_model(o, &a, &b);
    /* from here on the scaled copies (with A's geometry) are all that is needed */
    lpm_volume_free(&a);
    lpm_volume_free(&b);

    t = lpm_seconds();
    st = lpm_fuse_prepared(model ? &w : NULL, &a01, &b01, &s, &fused, o->components ? &base : NULL,
                           o->components ? &detail : NULL);
    cli_progress_end(&progress);
    /* a non-finite result (refused by the library, so nothing is written) or a network that
     * overflows: the weights' fault */
    if (st == LPM_ERR_INPUT && model) st = lpm_prefix_error(st, "%s", model);
    if (st) goto done;
    if (model)
        cli_detail(CMD, "LPM-Net%s, %d pass(es), on %s in %.2f s", o->exact ? " exact" : "",
                   o->cuda || o->exact ? 1 : o->passes ? (int)o->passes : LPM_FUSE_DEFAULT.passes,
                   o->cuda ? "the GPU" : "the CPU", lpm_seconds() - t);
    else
        cli_detail(CMD, "%s on %d thread(s) in %.2f s", o->method, lpm_get_threads(), lpm_seconds() - t);
    t = lpm_seconds();

    /* side outputs first: a failure then leaves OUT as it was */
    if (o->components &&
        ((st = lpm_volume_write(base_path, &base, &a01)) || (st = lpm_volume_write(detail_path, &detail, &a01))))
        goto done;
    if (o->color) {
        const int64_t n = lpm_volume_numel(&a01);
        if (!(rgb = malloc((size_t)n * 3))) {
            st = lpm_fail(LPM_ERR_INTERNAL, "out of memory for the colour volume (%lld voxels)", (long long)n);
            goto done;
        }
        const lpm_volume *func = o->functional_a ? &a01 : &b01;
        if ((st = lpm_color_fuse(rgb, fused.data, func->data, n, o->color))) goto done;
    }
    char descrip[80];
    describe(descrip, sizeof descrip, o, model);
    if (o->preview && (st = write_preview(o, &a01, &b01, &fused, rgb))) goto done;
    if (o->html && (st = write_html(o, html_path, &a01, &b01, &fused, model))) goto done;
    if ((st = o->color ? lpm_volume_write_rgb(o->out, rgb, &a01, descrip)
                       : lpm_volume_write_described(o->out, &fused, &a01, descrip)))
        goto done;
    cli_detail(CMD, "wrote the outputs in %.2f s", lpm_seconds() - t);
    if (model)
        cli_info(CMD, "LPM-Net, model %s (%s), %s (%lldx%lldx%lld) -> %s in %.2f s",
                 family(o) ? family(o) : "from a file", model, o->exact ? "exact" : "default",
                 (long long)a01.nx, (long long)a01.ny, (long long)a01.nz, o->out, lpm_seconds() - t0);
    else
        cli_info(CMD, "%s (%lldx%lldx%lld) -> %s in %.2f s", o->method, (long long)a01.nx,
                 (long long)a01.ny, (long long)a01.nz, o->out, lpm_seconds() - t0);

done:
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_volume_free(&a01);
    lpm_volume_free(&b01);
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
