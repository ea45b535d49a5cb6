/* lpmnet info FILE | --model | --device: describe a NIfTI volume or a weights file, name the
 * bundled model, or say which GPU --device cuda would use. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *CMD = "info";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet info FILE          NIfTI header summary (the data is not read), or a\n"
            "                                 weights file's tensors\n"
            "       lpmnet info --stats FILE  the header summary and the volume's min, max, mean\n"
            "       lpmnet info --model       which bundled model fuse uses without -m\n"
            "       lpmnet info --device      the GPU --device cuda would use, or why there is none\n"
            "       lpmnet info --cpu         the CPU, the kernel sets it offers and the one chosen\n"
            "                                 (LPM_ISA=ref|portable|avx2|avx512|neon forces one)\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int info_weights(const char *path) {
    lpm_st_file *f = NULL;
    lpm_status st = lpm_st_read(path, &f);
    if (st) return cli_fail(CMD, st);
    size_t total = 0;
    printf("%s: safetensors, %d tensors\n", path, lpm_st_count(f));
    for (int i = 0; i < lpm_st_count(f); i++) {
        int ndim;
        int64_t shape[LPM_ST_MAXDIM];
        const char *name = lpm_st_name(f, i);
        lpm_st_find(f, name, &ndim, shape);
        size_t n = 1;
        printf("  %-44s %-4s (", name, lpm_st_dtype(f, i));
        for (int k = 0; k < ndim; k++) {
            printf("%s%lld", k ? "," : "", (long long)shape[k]);
            n *= (size_t)shape[k];
        }
        printf(")\n");
        total += n;
    }
    lpm_st_close(f);
    printf("parameters: %zu\n", total);
    lpm_weights w = {0};
    st = lpm_weights_alloc(&w);
    if (!st) st = lpm_weights_load(&w, path);
    lpm_weights_free(&w);
    if (st) printf("LPM-Net weights: no (%s)\n", lpm_last_error());
    else printf("LPM-Net weights: yes (all %d tensors, %d parameters)\n", LPM_NUM_TENSORS, LPM_NUM_PARAMS);
    return 0;
}

/* The header alone unless stats asks for the intensities: a small .nii.gz can declare a
 * volume of gigabytes, and describing it should not read it. */
static int info_volume(const char *path, int stats) {
    lpm_volume v = {0};
    lpm_status st = stats ? lpm_volume_read(path, &v) : lpm_volume_read_header(path, &v);
    if (st) return cli_fail(CMD, st);
    lpm_volume_file_info h;
    const int described = lpm_volume_file_info_get(&v, &h) == LPM_OK;
    int64_t n = lpm_volume_numel(&v);
    printf("%s\n", path);
    if (described) {
        printf("  format      %s\n", h.format);
        printf("  datatype    %s, scl_slope %g, scl_inter %g\n", h.datatype, h.scl_slope, h.scl_inter);
        printf("  data        %lld voxels x %d bytes at offset %lld of %s\n", (long long)n, h.bytes_per_voxel,
               (long long)h.data_offset, h.data_file);
        printf("  qform_code  %d (%s), sform_code %d (%s)\n", h.qform_code, h.qform_name, h.sform_code,
               h.sform_name);
        if (h.description[0]) printf("  description %s\n", h.description);
    }
    printf("  dims        %lld x %lld x %lld (x, y, z) = D,H,W %lld,%lld,%lld\n", (long long)v.nx,
           (long long)v.ny, (long long)v.nz, (long long)v.nz, (long long)v.ny, (long long)v.nx);
    printf("  voxel size  %g x %g x %g mm\n", v.pixdim[0], v.pixdim[1], v.pixdim[2]);
    printf("  affine      [%9.3f %9.3f %9.3f %9.3f]\n", v.affine[0][0], v.affine[0][1], v.affine[0][2], v.affine[0][3]);
    for (int r = 1; r < 3; r++)
        printf("              [%9.3f %9.3f %9.3f %9.3f]\n", v.affine[r][0], v.affine[r][1], v.affine[r][2], v.affine[r][3]);
    if (v.data) {
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double x = v.data[i];
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
            sum += x;
        }
        printf("  intensity   min %g, max %g, mean %g (after scaling)\n", lo, hi, sum / (double)n);
    } else {
        printf("  intensity   not read (lpmnet info --stats FILE reads the data)\n");
    }
    lpm_volume_free(&v);
    return 0;
}

int cmd_info(int argc, char **argv) {
    int stats = argc == 2 && !strcmp(argv[0], "--stats");
    if (stats) argv++, argc--;
    if (argc != 1) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (cli_is_help(argv[0])) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[0], "--model")) {
        const char *m = cli_default_model();
        if (!m) return cli_error(CMD, LPM_ERR_INPUT, "no bundled model found (set LPM_MODEL or pass -m to fuse)");
        printf("%s\n", m);
        return 0;
    }
    if (!strcmp(argv[0], "--cpu")) {
        lpm_cpu_info cpu;
        lpm_status st = lpm_cpu_info_get(&cpu);
        printf("cpu      %s (%d threads by default)\noffers   %s\n", cpu.cpu, lpm_get_threads(), cpu.offered);
        if (st) return cli_error(CMD, LPM_ERR_USAGE, "%s", lpm_last_error());
        printf("kernels  %s\nchosen   by %s\n", cpu.kernels, cpu.reason);
        return 0;
    }
    if (!strcmp(argv[0], "--device")) {
        char what[400];
        if (!lpm_cuda_available(what, sizeof what))
            return cli_error(CMD, LPM_ERR_INPUT, "--device cuda is not usable here: %s", what);
        printf("cuda: %s\n", what);
        return 0;
    }
    return ends_with(argv[0], ".safetensors") ? info_weights(argv[0]) : info_volume(argv[0], stats);
}
