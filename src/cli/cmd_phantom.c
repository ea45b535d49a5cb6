/* lpmnet phantom --out DIR: write a synthetic multimodal head or thorax phantom. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#define CMD "phantom"

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet phantom -o DIR [--body head|thorax] [--shape D,H,W] [--seed N]\n\n"
            "Write a synthetic phantom on one 1 mm grid into DIR (created if missing). The same\n"
            "seed gives the same files; another seed moves the anatomy (the head's lesion, the\n"
            "thorax's nodules) and changes each tissue's intensity by up to 4%%.\n"
            "The body fills the box whatever its size, so PET and SPECT resolutions are given\n"
            "for a real field of view that the box's in-plane size (H+W)/2 stands for: 200 mm\n"
            "for the head, 400 mm for the thorax (a 6 mm FWHM is 2.9 voxels at 96 voxels for\n"
            "the head). Noise in PET and SPECT has a standard deviation ~ sqrt(value).\n\n"
            "--body head (default): a brain-like head with a lesion in one hemisphere\n"
            "  t1, t2, flair, pd.nii.gz  MR, arbitrary units (~0..1000), bias field, Rician noise\n"
            "  ct.nii.gz                 CT in HU (air -1000, brain ~30, bone ~1200)\n"
            "  pet.nii.gz                FDG-PET in counts (>= 0, up to ~20000): grey matter 3.9x\n"
            "                            white matter, lesion rim hot (2x grey matter) with a\n"
            "                            cold necrotic core, CSF near 0; 6 mm FWHM, Poisson-like\n"
            "                            noise\n"
            "  spect.nii.gz              perfusion SPECT in counts (>= 0): grey matter 2x white\n"
            "                            matter, lesion cold; 12 mm FWHM, more noise\n"
            "  labels.nii.gz             0 background, 1 skull/scalp, 2 CSF, 3 grey matter,\n"
            "                            4 white matter, 5 oedema, 6 lesion\n"
            "--body thorax: a chest with 1 to 3 lung nodules (number and places set by the seed)\n"
            "  ct.nii.gz                 CT in HU (air -1000, fat -100, soft tissue 40, lung -850,\n"
            "                            vessels 0, vertebrae 700, ribs 1000, nodules 30)\n"
            "  pet.nii.gz                FDG-PET in counts (>= 0): myocardium and nodules high,\n"
            "                            mediastinum moderate, lungs very low; 6 mm FWHM,\n"
            "                            Poisson-like noise\n"
            "  labels.nii.gz             0 background (air), 1 subcutaneous fat, 2 muscle and soft\n"
            "                            tissue, 3 lung and airways, 4 pulmonary vessels, 5 bone,\n"
            "                            6 myocardium, 7 mediastinum and blood pool, 8 tumour\n\n"
            "options (each value also as --opt=VALUE):\n"
            "  -o, --out DIR     output folder (required)\n"
            "  --body B          head or thorax (default head)\n"
            "  --shape D,H,W     volume size in voxels, each >= 8 (default 64,96,96): D slices\n"
            "                    along z, H rows along y, W columns along x (x varies fastest;\n"
            "                    fslinfo and nibabel list the same volume as W x H x D, so\n"
            "                    --shape 64,96,112 gives a 112 x 96 x 64 volume)\n"
            "  --seed N          random seed (default 1)\n"
            "  -q, --quiet       no summary line\n"
            "  -h, --help        this help\n");
}

int cmd_phantom(int argc, char **argv) {
    const char *dir = NULL;
    int64_t shape[3] = {64, 96, 96};
    uint64_t seed = 1;
    lpm_phantom_body body = LPM_PHANTOM_HEAD;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--out") || !strcmp(s, "-o")) {
            if (!(dir = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--body")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v) return LPM_ERR_USAGE;
            if (!strcmp(v, "head"))
                body = LPM_PHANTOM_HEAD;
            else if (!strcmp(v, "thorax"))
                body = LPM_PHANTOM_THORAX;
            else
                return cli_error(CMD, LPM_ERR_USAGE, "--body: '%s' is not head or thorax", v);
        } else if (!strcmp(s, "--shape")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_shape(CMD, "--shape", v, shape)) return LPM_ERR_USAGE;
        } else if (!strcmp(s, "--seed")) {
            const char *v = cli_value(CMD, argc, argv, &i);
            if (!v || cli_parse_u64(CMD, "--seed", v, &seed)) return LPM_ERR_USAGE;
        } else {
            return cli_error(CMD, LPM_ERR_USAGE, "unexpected argument '%s' (see lpmnet phantom --help)",
                             s);
        }
    }
    if (argc == 0) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (!dir)
        return cli_missing(CMD, "-o/--out DIR (the folder to write the phantom's volumes into)",
                           "lpmnet phantom -o DIR [--body head|thorax] [--shape D,H,W] [--seed N]");
    if (shape[0] < 8 || shape[1] < 8 || shape[2] < 8)
        return cli_error(CMD, LPM_ERR_USAGE, "--shape: each size must be >= 8, got %lld,%lld,%lld",
                         (long long)shape[0], (long long)shape[1], (long long)shape[2]);
    double t0 = lpm_seconds();
    lpm_status st = lpm_phantom_write_body(dir, body, shape[0], shape[1], shape[2], seed);
    if (st) return cli_fail(CMD, st);
    if (cli_verbosity >= CLI_NORMAL)
        printf("wrote %s/{%s}.nii.gz: %lldx%lldx%lld voxels (x,y,z), 1 mm, seed %llu, %.2f s\n", dir,
           body == LPM_PHANTOM_THORAX ? "ct,pet,labels" : "t1,t2,flair,pd,ct,pet,spect,labels",
           (long long)shape[2], (long long)shape[1], (long long)shape[0],
           (unsigned long long)seed, lpm_seconds() - t0);
    return 0;
}
