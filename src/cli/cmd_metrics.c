/* lpmnet metrics A B F: score a fused volume F against its sources A and B. */
#include "cli.h"
#include "core/core.h"
#include "metrics/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *CMD = "metrics";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet metrics A B F [--json] [--mask M] [--no-normalize] [--only LIST]\n"
            "                            [--threads N]\n\n"
            "Scores the fused volume F against the sources A and B with the fusion metrics of\n"
            "LPM-Net (docs/LPMNET.md section 3): ssim qabf mi scd vif ag psnr en sd sf nabf rsfe.\n"
            "The paper reports ssim, qabf, mi, scd, vif, ag, sd, rsfe (rsfe: 0 is ideal; rank by |rsfe|).\n\n"
            "  --json          one JSON object with the lower-case names (non-finite values, such as\n"
            "                  psnr when F equals A or B, are null) and \"seconds\"\n"
            "  --mask M        NIfTI mask on A's grid (nonzero = inside): volumes are cropped to its\n"
            "                  bounding box; voxel statistics (scd psnr sd en ag sf rsfe) use mask\n"
            "                  voxels only\n"
            "  --no-normalize  score the volumes as they are (default: min-max normalise each whole\n"
            "                  volume to [0, 1]; a constant volume is an error)\n"
            "  --only LIST     comma-separated metric names (default: all)\n"
            "  --threads N     worker threads (default: all cores)\n\n"
            "exit codes: 0 ok, 1 usage error, 2 input/data error, 3 internal error\n");
}

static void print_value(double v, int json) {
    if (json && !isfinite(v)) printf("null");
    else if (isinf(v)) printf("%sinf", v < 0 ? "-" : "");
    else printf("%.10g", v);
}

int cmd_metrics(int argc, char **argv) {
    const char *path[3] = {NULL, NULL, NULL}, *mask_path = NULL;
    int json = 0, normalize = 1, npos = 0;
    long threads = 0;
    unsigned which = LPM_M_ALL;
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
        } else if (strcmp(a, "--only") == 0) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            lpm_status st = lpm_metrics_parse(v, &which);
            if (st) return cli_fail(CMD, st);
        } else if (strcmp(a, "--threads") == 0) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_threads(CMD, v, &threads)) return LPM_ERR_USAGE;
        } else if (a[0] == '-' && a[1]) {
            usage(stderr);
            return cli_error(CMD, LPM_ERR_USAGE, "unknown option '%s'", a);
        } else if (npos < 3) {
            path[npos++] = a;
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "too many arguments ('%s'); expected A B F", a);
        }
    }
    if (npos < 3) {
        usage(stderr);
        return cli_error(CMD, LPM_ERR_USAGE, "expected three volumes A B F, got %d", npos);
    }
    lpm_set_threads((int)threads);
    double t0 = lpm_seconds();

    lpm_volume v[3] = {{0}}, m = {0};
    uint8_t *mask = NULL;
    lpm_metrics r;
    lpm_status st = LPM_OK;
    for (int k = 0; k < 3 && !st; k++) st = lpm_volume_read(path[k], &v[k]);
    for (int k = 1; k < 3 && !st; k++) st = lpm_check_same_grid(&v[0], &v[k], path[0], path[k]);
    if (!st && mask_path) {
        st = lpm_volume_read(mask_path, &m);
        if (!st) st = lpm_check_same_grid(&v[0], &m, path[0], mask_path);
        if (!st && !(mask = lpm_malloc((size_t)lpm_volume_numel(&m), 1))) st = LPM_ERR_INTERNAL;
        int64_t inside = 0;
        for (int64_t i = 0; !st && i < lpm_volume_numel(&m); i++) inside += mask[i] = m.data[i] != 0;
        if (!st && !inside) st = lpm_fail(LPM_ERR_INPUT, "%s: the mask is empty (no nonzero voxel)", mask_path);
    }
    for (int k = 0; k < 3 && !st && normalize; k++) st = lpm_normalize_minmax(&v[k], path[k]);
    if (!st)
        st = lpm_metrics_compute(&r, v[0].data, v[1].data, v[2].data, v[0].nz, v[0].ny, v[0].nx,
                                 mask, which);
    for (int k = 0; k < 3; k++) lpm_volume_free(&v[k]);
    lpm_volume_free(&m);
    free(mask);
    if (st) return cli_fail(CMD, st);
    double secs = lpm_seconds() - t0;

    if (json) {
        printf("{");
        for (int i = 0; i < LPM_NUM_METRICS; i++) {
            if (!(which & (1u << i))) continue;
            printf("\"%s\": ", lpm_metric_name(i));
            print_value(lpm_metric_value(&r, i), 1);
            printf(", ");
        }
        printf("\"seconds\": %.3f}\n", secs);
    } else {
        for (int i = 0; i < LPM_NUM_METRICS; i++) {
            if (!(which & (1u << i))) continue;
            printf("%-6s ", lpm_metric_name(i));
            print_value(lpm_metric_value(&r, i), 0);
            printf("\n");
        }
        printf("time   %.2f s\n", secs);
    }
    return 0;
}
