/* lpmnet phantom --out DIR: write the synthetic multimodal brain phantom. */
#include "cli.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>

#define CMD "phantom"

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet phantom --out DIR [--shape D,H,W] [--seed N]\n\n"
            "Write a synthetic brain-like phantom on one 1 mm grid: DIR/t1.nii.gz, t2.nii.gz,\n"
            "flair.nii.gz, pd.nii.gz, ct.nii.gz (MR in arbitrary units, CT in HU) and\n"
            "labels.nii.gz (0 background, 1 skull/scalp, 2 CSF, 3 grey matter, 4 white matter,\n"
            "5 oedema, 6 lesion). DIR is created if missing. The same seed gives the same files.\n\n"
            "options:\n"
            "  --out DIR         output folder (required)\n"
            "  --shape D,H,W     volume size, each >= 8 (default 64,96,96; W = x is fastest)\n"
            "  --seed N          random seed (default 1)\n"
            "  -h, --help        this help\n");
}

int cmd_phantom(int argc, char **argv) {
    const char *dir = NULL;
    int64_t shape[3] = {64, 96, 96};
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--out") || !strcmp(s, "-o")) {
            if (!(dir = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--shape")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_shape(CMD, "--shape", v, shape)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--seed")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_u64(CMD, "--seed", v, &seed)) return LPM_ERR_USAGE;
        } else {
            cli_error(CMD, LPM_ERR_USAGE, "unexpected argument '%s'", s);
            usage(stderr);
            return LPM_ERR_USAGE;
        }
    }
    if (!dir) {
        cli_error(CMD, LPM_ERR_USAGE, "--out DIR is required");
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (shape[0] < 8 || shape[1] < 8 || shape[2] < 8)
        return cli_error(CMD, LPM_ERR_USAGE, "--shape: each size must be >= 8, got %lld,%lld,%lld",
                         (long long)shape[0], (long long)shape[1], (long long)shape[2]);
    double t0 = lpm_seconds();
    lpm_status st = lpm_phantom_write(dir, shape[0], shape[1], shape[2], seed);
    if (st) return cli_fail(CMD, st);
    printf("wrote %s/{t1,t2,flair,pd,ct,labels}.nii.gz: %lldx%lldx%lld voxels (x,y,z), 1 mm, "
           "seed %llu, %.2f s\n",
           dir, (long long)shape[2], (long long)shape[1], (long long)shape[0],
           (unsigned long long)seed, lpm_seconds() - t0);
    return 0;
}
