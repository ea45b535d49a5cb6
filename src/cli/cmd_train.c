/* lpmnet train: train LPM-Net (fusion + reconstruction) on the user's pairs. */
#include "cli.h"
#include "train/train.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "train";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet train --data SPEC --out DIR [options]\n\n"
            "Train LPM-Net with the authors' objective (fusion + reconstruction branches).\n"
            "SPEC is a folder of subject folders (files named with the modality key as a word,\n"
            "e.g. sub01/sub01_t1.nii.gz; IndicesTrain.txt/IndicesTest.txt honoured) or a CSV\n"
            "file with the header a,b or a,b,mask.\n\n"
            "  --data SPEC          training data\n"
            "  --pair A,B           modality keys for a folder dataset (e.g. t1n,t2w)\n"
            "  --out DIR            writes DIR/model.safetensors, DIR/checkpoint.safetensors,\n"
            "                       DIR/train.csv (with validation also DIR/val.csv and\n"
            "                       DIR/best.safetensors, the best validation SSIM so far)\n"
            "  --iters N            training steps [3000]\n"
            "  --shape D,H,W        resize each volume to D,H,W (authors; multiples of 16) [96,160,160]\n"
            "  --crop D,H,W         random crops instead (multiples of 16; fast on a CPU)\n"
            "  --no-flip            no random flips\n"
            "  --lr X               Adam learning rate [1e-4], cosine-annealed per epoch\n"
            "  --alpha X --beta X --gamma X   loss weights [0.05, 1, 0.5]\n"
            "  --edge X             weight of lpmnet's edge-fidelity term, which asks the fused\n"
            "                       volume for the stronger source's edges [0: the authors'\n"
            "                       objective; the bundled model used 300]\n"
            "  --rec X              reconstruction mask drop probability [0.2]\n"
            "  --seed N             seed of weights, data order, flips, crops, masks [1]\n"
            "  --init FILE          start from these weights instead of a fresh initialisation\n"
            "  --val-every N        validate every N steps on --val SPEC, or on the folder's\n"
            "                       IndicesTest.txt cases (all cases when there is none)\n"
            "  --val SPEC           validation data (same --pair)\n"
            "  --mask-key KEY       mask modality in folder datasets (optional)\n"
            "  --ckpt-every N       checkpoint every N steps [25] (and at least every 5 minutes)\n"
            "  --resume             continue DIR/checkpoint.safetensors\n"
            "  --device D           cpu (default) or cuda (an NVIDIA GPU)\n"
            "  --threads N          threads (default: all cores)\n"
            "  --quiet              no progress line\n");
}

int cmd_train(int argc, char **argv) {
    lpm_train_config c = {.iters = 3000, .ckpt_every = 25, .ckpt_seconds = 300, .lr = 1e-4,
                          .alpha = 0.05, .beta = 1, .gamma = 0.5, .rec = 0.2, .seed = 1};
    c.sample.mode = 0, c.sample.flip = 1;
    c.sample.shape[0] = 96, c.sample.shape[1] = 160, c.sample.shape[2] = 160;
    long n;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *v = NULL;
        if (cli_is_help(s)) {
            usage(stdout);
            return 0;
        }
#define VALUE() if (!(v = cli_value(CMD, argc, argv, &i))) return LPM_ERR_USAGE
        if (!strcmp(s, "--data")) { VALUE(); c.data = v; }
        else if (!strcmp(s, "--pair")) { VALUE(); c.pair = v; }
        else if (!strcmp(s, "--out")) { VALUE(); c.out = v; }
        else if (!strcmp(s, "--init")) { VALUE(); c.init = v; }
        else if (!strcmp(s, "--val")) { VALUE(); c.val = v; }
        else if (!strcmp(s, "--mask-key")) { VALUE(); c.mask_key = v; }
        else if (!strcmp(s, "--iters")) { VALUE(); if (cli_parse_int(CMD, s, v, 1, 100000000, &n)) return 1; c.iters = n; }
        else if (!strcmp(s, "--val-every")) { VALUE(); if (cli_parse_int(CMD, s, v, 1, 100000000, &n)) return 1; c.val_every = n; }
        else if (!strcmp(s, "--ckpt-every")) { VALUE(); if (cli_parse_int(CMD, s, v, 1, 100000000, &n)) return 1; c.ckpt_every = n; }
        else if (!strcmp(s, "--threads")) { VALUE(); if (cli_parse_threads(CMD, v, &n)) return 1; c.threads = (int)n; }
        else if (!strcmp(s, "--shape")) { VALUE(); if (cli_parse_shape(CMD, s, v, c.sample.shape)) return 1; c.sample.mode = 0; }
        else if (!strcmp(s, "--crop")) { VALUE(); if (cli_parse_shape(CMD, s, v, c.sample.crop)) return 1; c.sample.mode = 1; }
        else if (!strcmp(s, "--lr")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.lr)) return 1; }
        else if (!strcmp(s, "--alpha")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.alpha)) return 1; }
        else if (!strcmp(s, "--beta")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.beta)) return 1; }
        else if (!strcmp(s, "--gamma")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.gamma)) return 1; }
        else if (!strcmp(s, "--edge")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.edge)) return 1; }
        else if (!strcmp(s, "--rec")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.rec)) return 1; }
        else if (!strcmp(s, "--seed")) { VALUE(); if (cli_parse_u64(CMD, s, v, &c.seed)) return 1; }
        else if (!strcmp(s, "--device")) { VALUE(); if (cli_parse_device(CMD, v, &c.cuda)) return 1; }
        else if (!strcmp(s, "--no-flip")) c.sample.flip = 0;
        else if (!strcmp(s, "--resume")) c.resume = 1;
        else if (!strcmp(s, "--quiet")) c.quiet = 1;
        else return cli_error(CMD, LPM_ERR_USAGE, "unknown argument '%s' (see lpmnet train --help)", s);
#undef VALUE
    }
    if (!c.data || !c.out) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    const int64_t *size = c.sample.mode == 1 ? c.sample.crop : c.sample.shape;
    for (int k = 0; k < 3; k++)
        if (size[k] % 16)
            return cli_error(CMD, LPM_ERR_USAGE, "%s %lld,%lld,%lld: each side must be a multiple of 16",
                             c.sample.mode == 1 ? "--crop" : "--shape", (long long)size[0],
                             (long long)size[1], (long long)size[2]);
    if (c.rec < 0 || c.rec >= 1) return cli_error(CMD, LPM_ERR_USAGE, "--rec must be in [0, 1)");
    if (c.edge < 0) return cli_error(CMD, LPM_ERR_USAGE, "--edge must be 0 or positive");
    if (c.lr <= 0) return cli_error(CMD, LPM_ERR_USAGE, "--lr must be positive");
    c.threads = lpm_set_threads(c.threads);
    lpm_status st = lpm_train_run(&c);
    return st ? cli_fail(CMD, st) : 0;
}
