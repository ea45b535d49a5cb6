/* lpmnet metrics A B F: score a fused volume F against its sources A and B. */
#include "cli.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "metrics";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet metrics A B F [--json] [--mask M] [--no-normalize | --clip LOW,HIGH |\n"
            "                            --ct-window W] [--only LIST] [--threads N]\n\n"
            "Scores the fused volume F against the sources A and B with the fusion metrics of\n"
            "LPM-Net (docs/lpmnet.md section 3): ssim qabf mi scd vif ag psnr en sd sf nabf rsfe.\n"
            "The paper reports ssim, qabf, mi, scd, vif, ag, sd, rsfe (rsfe: 0 is ideal; rank by |rsfe|).\n"
            "Then seam_x seam_y seam_z: F's window-seam index along W, H, D (how much more F changes\n"
            "across planes 16, 32, ... than across other planes; 1.0 = no seam, > 1 a seam).\n\n"
            "  --json          one JSON object with the lower-case names and \"seconds\"; an undefined\n"
            "                  metric is null and its reason is in \"undefined\": {\"name\": \"why\"}\n"
            "  --mask M        NIfTI mask on A's grid (nonzero = inside): volumes are cropped to its\n"
            "                  bounding box; voxel statistics (scd psnr sd en ag sf rsfe) and the\n"
            "                  seam indices use mask voxels only\n"
            "  --no-normalize  score the volumes as they are (default: min-max normalise each whole\n"
            "                  volume to [0, 1]; a constant volume is an error)\n"
            "  --clip LOW,HIGH, --ct-window W\n"
            "                  scale A and B as lpmnet fuse does with these options (fuse's default\n"
            "                  is --clip 0.5,100) and score F as it is, which must then lie in\n"
            "                  [0, 1] as fuse writes it: the numbers lpmnet eval reports\n"
            "  --only LIST     comma-separated metric names, \"seam\" for the three seam indices\n"
            "                  (default: all)\n"
            "  --threads N     worker threads, 0 = all cores [0]\n"
            "  -q, --quiet     no 'undefined' notes on stderr (the output still says it)\n"
            "  -v, --verbose   also the time to read and to score\n"
            "Each option's value may also be given as --opt=VALUE.\n\n"
            "A metric that is not a finite number for these volumes (psnr when F equals A or B;\n"
            "mi, ag, en, rsfe when a volume is constant, possible with --mask or --no-normalize; a\n"
            "seam index along an axis shorter than 18 voxels) is reported as undefined with its\n"
            "reason, in the output and on stderr, never as a number.\n\n"
            "exit codes: 0 ok, 1 usage error, 2 input/data error, 3 internal error\n");
}

static const char *const SEAM_NAMES[3] = {"seam_x", "seam_y", "seam_z"};

/* --only LIST: the "seam" entries select the seam indices (so does "all"), the rest go to
 * lpm_metrics_parse; which = 0 when only "seam" is listed. */
static lpm_status parse_only(const char *list, unsigned *which, int *seam) {
    char rest[256] = "";
    size_t used = 0;
    *seam = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || (p[len] == ',' && !p[len + 1]))
            return lpm_fail(LPM_ERR_USAGE, "bad metric list '%s'", list);
        int is_seam = len == 4, is_all = len == 3;
        for (size_t k = 0; k < len; k++) {
            int c = tolower((unsigned char)p[k]);
            is_seam &= c == "seam"[k];
            is_all &= k < 3 && c == "all"[k];
        }
        *seam |= is_seam || is_all;
        if (!is_seam) {
            if (used + len + 2 > sizeof rest) return lpm_fail(LPM_ERR_USAGE, "metric list too long");
            used += (size_t)snprintf(rest + used, sizeof rest - used, "%s%.*s", used ? "," : "", (int)len, p);
        }
        p += len + (p[len] == ',');
    }
    *which = 0;
    return rest[0] ? lpm_metrics_parse(rest, which) : LPM_OK;
}

/* Whether each of A, B, F is constant over the scored voxels (the mask's, or all). */
static void find_constant(int constant[3], const lpm_volume v[3], const uint8_t *mask) {
    int64_t n = lpm_volume_numel(&v[0]);
    for (int k = 0; k < 3; k++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            if (mask && !mask[i]) continue;
            if (v[k].data[i] < lo) lo = v[k].data[i];
            if (v[k].data[i] > hi) hi = v[k].data[i];
        }
        constant[k] = lo == hi;
    }
}

/* Why metric i came out as NaN or Inf: the honest answer is that it is undefined here. */
static void undefined_reason(char *buf, size_t n, int i, double value, const int constant[3],
                             int masked) {
    static const char *const names[3] = {"A", "B", "F"};
    if (i == 6 /* psnr */ && isinf(value)) {
        snprintf(buf, n, "F equals A or B: MSE 0 makes PSNR infinite");
        return;
    }
    char which[32] = "";
    for (int k = 0; k < 3; k++)
        if (constant[k])
            snprintf(which + strlen(which), sizeof which - strlen(which), "%s%s",
                     which[0] ? (k == 2 || !constant[2] ? " and " : ", ") : "", names[k]);
    if (which[0])
        snprintf(buf, n, "%s %s constant%s: a 0/0 normalisation or ratio", which,
                 strchr(which, ' ') ? "are" : "is", masked ? " inside the mask" : "");
    else
        snprintf(buf, n, "not a finite number for these volumes");
}

/* --clip, --ct-window: A and B replaced by the copies fuse would scale to [0, 1] (without a
 * mask: metrics' --mask says where to score, as eval's does), F checked to lie in [0, 1]. */
static lpm_status scale_as_fuse(lpm_volume v[3], const char *const path[3], const lpm_fuse_settings *s) {
    lpm_status st = lpm_check_unit_range(&v[2], path[2]);
    if (st) return st;
    lpm_volume a01 = {0}, b01 = {0};
    st = lpm_prepare_pair(&v[0], path[0], &v[1], path[1], s, &a01, &b01);
    if (st) return st;
    lpm_volume_free(&v[0]);
    lpm_volume_free(&v[1]);
    v[0] = a01, v[1] = b01;
    return LPM_OK;
}

int cmd_metrics(int argc, char **argv) {
    const char *path[3] = {NULL, NULL, NULL}, *mask_path = NULL;
    int json = 0, normalize = 1, npos = 0;
    lpm_fuse_settings scaling = {0}; /* --clip, --ct-window: A and B scaled as fuse does */
    int as_fuse = 0;
    long threads = 0;
    unsigned which = LPM_METRICS_ALL;
    int seam = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--no-normalize") == 0) {
            normalize = 0;
        } else if (strcmp(a, "--mask") == 0) {
            if (!(mask_path = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (strcmp(a, "--clip") == 0 || strcmp(a, "--ct-window") == 0) {
            if (cli_prep_option(CMD, argc, argv, &i, &scaling) == CLI_PREP_BAD) return LPM_ERR_USAGE;
            as_fuse = 1;
        } else if (strcmp(a, "--only") == 0) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            lpm_status st = parse_only(v, &which, &seam);
            if (st) return cli_fail(CMD, st);
        } else if (strcmp(a, "--threads") == 0) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_threads(CMD, v, &threads)) return LPM_ERR_USAGE;
        } else if (a[0] == '-' && a[1]) {
            return cli_error(CMD, LPM_ERR_USAGE, "unknown option '%s' (see lpmnet metrics --help)", a);
        } else if (npos < 3) {
            path[npos++] = a;
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "too many arguments ('%s'); expected A B F", a);
        }
    }
    static const char *const missing[3] = {
        "the volumes A B F (the two sources and the fused volume)",
        "B and F (the second source and the fused volume)", "F (the fused volume to score)"};
    if (argc == 0) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (npos < 3) return cli_missing(CMD, missing[npos], "lpmnet metrics A B F [options]");
    if (as_fuse && !normalize)
        return cli_error(CMD, LPM_ERR_USAGE, "--no-normalize scores A and B as they are; --clip and "
                         "--ct-window scale them as fuse does: give one of the two");
    lpm_set_threads((int)threads);
    double t0 = lpm_seconds();

    lpm_volume v[3] = {{0}};
    uint8_t *mask = NULL;
    double values[LPM_METRIC_COUNT];
    double seam_index[3] = {NAN, NAN, NAN};
    const char *seam_why[3] = {NULL, NULL, NULL};
    lpm_status st = LPM_OK;
    for (int k = 0; k < 3 && !st; k++) st = lpm_volume_read(path[k], &v[k]);
    for (int k = 1; k < 3 && !st; k++) st = lpm_check_same_grid(&v[0], &v[k], path[0], path[k]);
    if (!st) cli_detail(CMD, "read A, B and F in %.2f s", lpm_seconds() - t0);
    double t_score = lpm_seconds();
    if (!st && mask_path) st = lpm_mask_read(mask_path, &v[0], path[0], &mask);
    if (!st && as_fuse) st = scale_as_fuse(v, path, &scaling);
    /* normalised here, in place (no copies), so that a message names the file */
    for (int k = 0; k < 3 && !st && normalize && !as_fuse; k++) st = lpm_normalize_minmax(&v[k], path[k]);
    if (!st && which) st = lpm_metrics_select(values, &v[0], &v[1], &v[2], mask, 0, which);
    if (!st && seam) st = lpm_seam_volume_why(seam_index, seam_why, &v[2], mask, 0);
    /* a metric that is not finite is undefined for these volumes: say so and why */
    char why[LPM_METRIC_COUNT][160];
    int n_undefined = 0, constant[3] = {0, 0, 0};
    if (!st) find_constant(constant, v, mask);
    for (int i = 0; i < LPM_METRIC_COUNT && !st; i++) {
        why[i][0] = '\0';
        if (!(which & (1u << i)) || isfinite(values[i])) continue;
        undefined_reason(why[i], sizeof why[i], i, values[i], constant, mask != NULL);
        if (cli_verbosity >= CLI_NORMAL)
            fprintf(stderr, "lpmnet metrics: %s is undefined: %s\n", lpm_metric_name(i), why[i]);
        n_undefined++;
    }
    for (int k = 0; k < 3 && !st && seam; k++)
        if (seam_why[k]) {
            if (cli_verbosity >= CLI_NORMAL)
                fprintf(stderr, "lpmnet metrics: %s is undefined: %s\n", SEAM_NAMES[k], seam_why[k]);
            n_undefined++;
        }
    for (int k = 0; k < 3; k++) lpm_volume_free(&v[k]);
    free(mask);
    if (st) return cli_fail(CMD, st);
    double secs = lpm_seconds() - t0;
    cli_detail(CMD, "scored in %.2f s on %d thread(s)", lpm_seconds() - t_score, lpm_get_threads());

    if (json) {
        printf("{");
        for (int i = 0; i < LPM_METRIC_COUNT; i++) {
            if (!(which & (1u << i))) continue;
            if (why[i][0]) printf("\"%s\": null, ", lpm_metric_name(i));
            else printf("\"%s\": %.10g, ", lpm_metric_name(i), values[i]);
        }
        for (int k = 0; k < 3 && seam; k++) {
            if (seam_why[k]) printf("\"%s\": null, ", SEAM_NAMES[k]);
            else printf("\"%s\": %.10g, ", SEAM_NAMES[k], seam_index[k]);
        }
        if (n_undefined) {
            /* the reasons hold no quote or backslash: plain JSON strings */
            printf("\"undefined\": {");
            int k = 0;
            for (int i = 0; i < LPM_METRIC_COUNT; i++)
                if ((which & (1u << i)) && why[i][0])
                    printf("%s\"%s\": \"%s\"", k++ ? ", " : "", lpm_metric_name(i), why[i]);
            for (int i = 0; i < 3 && seam; i++)
                if (seam_why[i]) printf("%s\"%s\": \"%s\"", k++ ? ", " : "", SEAM_NAMES[i], seam_why[i]);
            printf("}, ");
        }
        printf("\"seconds\": %.3f}\n", secs);
    } else {
        for (int i = 0; i < LPM_METRIC_COUNT; i++) {
            if (!(which & (1u << i))) continue;
            if (why[i][0]) printf("%-6s undefined (%s)\n", lpm_metric_name(i), why[i]);
            else printf("%-6s %.10g\n", lpm_metric_name(i), values[i]);
        }
        for (int k = 0; k < 3 && seam; k++) {
            if (seam_why[k]) printf("%-6s undefined (%s)\n", SEAM_NAMES[k], seam_why[k]);
            else printf("%-6s %.10g\n", SEAM_NAMES[k], seam_index[k]);
        }
        printf("time   %.2f s\n", secs);
    }
    return 0;
}
