/* lpmnet train: train LPM-Net (fusion + reconstruction) on the user's pairs. */
#include "cli.h"
#include "dist.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
            "  --batch N            samples per step: their gradients' mean makes one Adam step\n"
            "                       [1]; under mpirun the batch is shared out over the processes\n"
            "                       (at least one sample each; docs/cluster.md)\n"
            "  --shape D,H,W        resize each volume to D slices (z), H rows (y), W columns (x,\n"
            "                       fastest); the authors' way, multiples of 16 [96,160,160]\n"
            "                       (each side at most 1024)\n"
            "  --crop D,H,W         random crops of D,H,W instead (as --shape; multiples of 16;\n"
            "                       fast on a CPU)\n"
            "  --no-flip            no random flips\n"
            "  --aug-gamma G        random contrast: raise each input of a sample to its own\n"
            "                       power between 1/G and G (log-uniform), G in [1, 4] [1: none]\n"
            "  --aug-noise S        random noise: add Gaussian noise to the nonzero voxels of\n"
            "                       each input of a sample, its standard deviation drawn in\n"
            "                       [0, S], S in [0, 0.2] [0: none]\n"
            "  --aug-rotate         turn each sample by 0-3 random quarter turns in the plane of\n"
            "                       its rows and columns (the sample's H and W must be equal)\n"
            "  --lr X               Adam learning rate in (0, 1] [1e-4], cosine-annealed per epoch\n"
            "  --alpha X --beta X --gamma X   loss weights, each in [0, 10000] [0.05, 1, 0.5]\n"
            "  --edge X             weight of lpmnet's edge-fidelity term, which asks the fused\n"
            "                       volume for the stronger source's edges, in [0, 10000] [0: the\n"
            "                       authors' objective; the bundled models used 300-1000]\n"
            "  --target X           weight of lpmnet's fusion-target term, which asks the fused\n"
            "                       volume for a classical target: the Laplacian-pyramid fusion\n"
            "                       averaged with the brighter source's low frequencies plus the\n"
            "                       stronger source's details, in [0, 10000] [0: the authors']\n"
            "  --qabf X             weight of lpmnet's edge-preservation term, 1 - QABF of the\n"
            "                       fused volume (the fusion metric, differentiated), in\n"
            "                       [0, 10000] [0: the authors']\n"
            "  --sf-match X         weight of lpmnet's spatial-frequency term, (SF(F)/SF_R - 1)^2,\n"
            "                       which asks the fused volume for the sources' reference\n"
            "                       spatial frequency (the fusion metric rSFe, squared), in\n"
            "                       [0, 10000] [0: the authors']\n"
            "  --rec X              reconstruction mask drop probability in [0, 1) [0.2]\n"
            "  --seed N             seed of weights, data order, augmentation, masks [1]\n"
            "  --init FILE          start from these weights instead of a fresh initialisation:\n"
            "                       a file (not one this run writes in --out) or a bundled\n"
            "                       model's name, as for fuse -m (mri, ct-mr, pet-mr, pet-ct)\n"
            "  --val-every N        validate every N steps on --val SPEC, or on the folder's\n"
            "                       IndicesTest.txt cases (all cases when there is none)\n"
            "  --val SPEC           validation data (same --pair)\n"
            "  --mask-key KEY       mask modality in folder datasets (optional; see below)\n"
            "  --ckpt-every N       checkpoint every N steps [25] (and at least every 5 minutes)\n"
            "  --resume             continue DIR/checkpoint.safetensors (it must exist; the data\n"
            "                       and the options that define the run must be those it records)\n"
            "  --force              with --resume: continue even when the data or options differ\n"
            "                       from the checkpoint's record (or it has none)\n"
            "  --device D           cpu (default) or cuda (an NVIDIA GPU)\n"
            "  --threads N          threads (default: all cores, shared by the processes of an\n"
            "                       MPI run on one machine)\n"
            "  --quiet              no progress line\n\n"
            "Under mpirun (or srun) every process computes its share of each batch; the\n"
            "gradients are summed in sample order, so any number of processes gives the weights\n"
            "of one process with the same --batch. Rank 0 writes the files.\n"
            "  --clip LOW,HIGH      clip each input to its LOW-th..HIGH-th intensity percentiles\n"
            "                       before scaling to [0,1] (as fuse; a model is best used with\n"
            "                       the scaling it was trained with) [none: plain min-max]\n"
            "  --ct-window W        map this Hounsfield window of the CT input of each case to\n"
            "                       [0,1]: bone, soft, lung or WIDTH,LEVEL (as fuse)\n"
            "A CSV mask column (or --mask-key) restricts training to the mask: A and B are each\n"
            "scaled inside it and set to 0 outside it.\n"
            "Exit codes: 0 done, 1 usage error, 2 data error, or a non-finite loss or a weight\n"
            "that is not finite or beyond +-10000 (the run stops at that step; the checkpoint\n"
            "and model file stay the last good ones), 3 internal error.\n");
}

/* Larger samples would not fit any machine's memory (a 1024^3 step needs hundreds of GB). */
enum { MAX_SIDE = 1024 };
/* A step keeps every sample's gradient (104 KB) until the batch is summed. */
enum { MAX_BATCH = 4096 };

/* value must lie in [lo, hi] (lo excluded when lo_open): a learning rate of 1e30 or a weight
 * of -1e308 trains straight into infinities. */
static int check_range(const char *opt, double value, double lo, int lo_open, double hi) {
    if ((lo_open ? value > lo : value >= lo) && value <= hi) return 0;
    cli_error(CMD, LPM_ERR_USAGE, "%s %g: must be in %c%g, %g]", opt, value, lo_open ? '(' : '[', lo, hi);
    return 1;
}

static int check_ranges(const lpm_train_options *c) {
    if (check_range("--lr", c->lr, 0, 1, 1)) return 1;
    const char *names[] = {"--alpha", "--beta", "--gamma", "--edge", "--target", "--qabf", "--sf-match"};
    const double values[] = {c->alpha, c->beta, c->gamma, c->edge, c->target, c->qabf, c->sf_match};
    for (int i = 0; i < 7; i++)
        if (check_range(names[i], values[i], 0, 0, LPM_TRAIN_WEIGHT_MAX)) return 1;
    if (!(c->rec >= 0 && c->rec < 1))
        return cli_error(CMD, LPM_ERR_USAGE, "--rec %g: must be in [0, 1)", c->rec);
    if (check_range("--aug-gamma", c->aug_gamma, 1, 0, LPM_TRAIN_AUG_GAMMA_MAX)) return 1;
    return check_range("--aug-noise", c->aug_noise, 0, 0, LPM_TRAIN_AUG_NOISE_MAX);
}

/* --init must not be a file the run overwrites: a rerun would read its own output, and a
 * failed run would destroy the weights it started from. cli_refuse_input_as_output compares
 * by device and inode, so links and other spellings of the path are caught. */
static int check_init_not_output(const lpm_train_options *c) {
    const char *written[] = {"model.safetensors", "checkpoint.safetensors", "best.safetensors"};
    for (int i = 0; c->init && i < (c->val_every > 0 ? 3 : 2); i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", c->out, written[i]);
        if (cli_refuse_input_as_output(CMD, path, &c->init, 1)) return 1;
    }
    return 0;
}

/* Ctrl-C or a TERM signal: the run stops after the step under way and saves its checkpoint. */
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

/* The progress line, from the run's per-step hook (rank 0): on a terminal redrawn in place
 * every half second, in a log one line every cli_progress_interval() seconds. */
typedef struct {
    int64_t batch, first_step, last_step, iters;
    double start, last;
    lpm_step_losses losses;
    int shown;
} train_progress;

static void progress_line(train_progress *p, int last) {
    const int tty = isatty(STDERR_FILENO);
    const double now = lpm_seconds(), rate = (double)(p->last_step - p->first_step) / (now - p->start);
    const double eta = rate > 0 ? (double)(p->iters - p->last_step) / rate : 0;
    fprintf(stderr, "%slpmnet train: step %" PRId64 "/%" PRId64 "  loss %.5f  ssim %.4f  %.3f steps/s",
            tty ? "\r" : "", p->last_step, p->iters, p->losses.total, (p->losses.ssim_af + p->losses.ssim_bf) / 2,
            rate);
    if (p->batch > 1) fprintf(stderr, " (%.2f samples/s)", rate * (double)p->batch);
    fprintf(stderr, "  ETA %.0f s%s", eta, tty && !last ? "   " : "\n");
    fflush(stderr);
    p->last = now, p->shown = 1;
}

static int on_step(void *ctx, const lpm_train_report *r) {
    train_progress *p = ctx;
    const double now = lpm_seconds();
    if (!p->start) p->start = p->last = now - r->seconds, p->first_step = r->step - 1;
    p->last_step = r->step, p->iters = r->iters, p->losses = r->losses;
    if (now - p->last >= (isatty(STDERR_FILENO) ? 0.5 : cli_progress_interval())) progress_line(p, 0);
    return 0;
}

int cmd_train(int argc, char **argv) {
    lpm_train_options c;
    lpm_train_options_init(&c);  /* the defaults of --help */
    int crop = 0;                /* --crop given after any --shape: random crops */
    long n;
    int taken;
    lpm_fuse_settings scaling = {0};  /* --clip, --ct-window (as fuse parses them) */
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
        else if (!strcmp(s, "--batch")) { VALUE(); if (cli_parse_int(CMD, s, v, 1, MAX_BATCH, &n)) return 1; c.batch = n; }
        else if (!strcmp(s, "--ckpt-every")) { VALUE(); if (cli_parse_int(CMD, s, v, 1, 100000000, &n)) return 1; c.ckpt_every = n; }
        else if (!strcmp(s, "--threads")) { VALUE(); if (cli_parse_threads(CMD, v, &n)) return 1; c.threads = (int)n; }
        else if (!strcmp(s, "--shape")) { VALUE(); if (cli_parse_shape(CMD, s, v, c.shape)) return 1; crop = 0; }
        else if (!strcmp(s, "--crop")) { VALUE(); if (cli_parse_shape(CMD, s, v, c.crop)) return 1; crop = 1; }
        else if (!strcmp(s, "--lr")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.lr)) return 1; }
        else if (!strcmp(s, "--alpha")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.alpha)) return 1; }
        else if (!strcmp(s, "--beta")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.beta)) return 1; }
        else if (!strcmp(s, "--gamma")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.gamma)) return 1; }
        else if (!strcmp(s, "--edge")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.edge)) return 1; }
        else if (!strcmp(s, "--target")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.target)) return 1; }
        else if (!strcmp(s, "--qabf")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.qabf)) return 1; }
        else if (!strcmp(s, "--sf-match")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.sf_match)) return 1; }
        else if (!strcmp(s, "--rec")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.rec)) return 1; }
        else if (!strcmp(s, "--seed")) { VALUE(); if (cli_parse_u64(CMD, s, v, &c.seed)) return 1; }
        else if (!strcmp(s, "--device")) { VALUE(); if (cli_parse_device(CMD, v, &c.device)) return 1; }
        else if (!strcmp(s, "--no-flip")) c.flip = 0;
        else if (!strcmp(s, "--aug-gamma")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.aug_gamma)) return 1; }
        else if (!strcmp(s, "--aug-noise")) { VALUE(); if (cli_parse_double(CMD, s, v, &c.aug_noise)) return 1; }
        else if (!strcmp(s, "--aug-rotate")) c.aug_rotate = 1;
        else if (!strcmp(s, "--resume")) c.resume = 1;
        else if (!strcmp(s, "--force")) c.force = 1;
        else if (!strcmp(s, "--quiet")) c.quiet = 1;
        else if (!strcmp(s, "--mask"))
            return cli_error(CMD, LPM_ERR_USAGE, "--mask: training takes its masks from the data (a CSV's "
                             "mask column, or --mask-key in a folder dataset)");
        else if ((taken = cli_prep_option(CMD, argc, argv, &i, &scaling)) == CLI_PREP_BAD) return 1;
        else if (!taken) return cli_error(CMD, LPM_ERR_USAGE, "unknown argument '%s' (see lpmnet train --help)", s);
#undef VALUE
    }
    if (!c.data || !c.out) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    c.clip_lo = scaling.clip_lo, c.clip_hi = scaling.clip_hi, c.ct_window = scaling.ct_window;
    /* lpm_train crops when all of crop are set: a --shape after --crop resizes */
    if (!crop) c.crop[0] = c.crop[1] = c.crop[2] = 0;
    const int64_t *size = crop ? c.crop : c.shape;
    for (int k = 0; k < 3; k++)
        if (size[k] % 16)
            return cli_error(CMD, LPM_ERR_USAGE, "%s %lld,%lld,%lld: each side must be a multiple of 16",
                             crop ? "--crop" : "--shape", (long long)size[0], (long long)size[1],
                             (long long)size[2]);
    for (int k = 0; k < 3; k++)
        if (size[k] > MAX_SIDE)
            return cli_error(CMD, LPM_ERR_USAGE, "%s %lld,%lld,%lld: each side must be at most %d",
                             crop ? "--crop" : "--shape", (long long)size[0], (long long)size[1],
                             (long long)size[2], MAX_SIDE);
    if (c.aug_rotate && size[1] != size[2])
        return cli_error(CMD, LPM_ERR_USAGE, "--aug-rotate: quarter turns need as many rows as columns "
                         "(%s %lld,%lld,%lld)", crop ? "--crop" : "--shape", (long long)size[0],
                         (long long)size[1], (long long)size[2]);
    if (check_ranges(&c)) return LPM_ERR_USAGE;
    if (c.force && !c.resume) return cli_error(CMD, LPM_ERR_USAGE, "--force applies only with --resume");
    if (check_init_not_output(&c)) return LPM_ERR_USAGE;
    lpm_status st = dist_start();
    if (st) return dist_end(cli_fail(CMD, st));
    if (!c.threads && dist_size() > 1) c.threads = dist_default_threads();
    c.comm = dist_train_comm();
    if (cli_verbosity == CLI_QUIET) c.quiet = 1;
    if (dist_rank() != 0) c.quiet = 1;  /* rank 0 speaks for the run */
    train_progress progress = {.batch = c.batch};
    if (!c.quiet) c.on_step = on_step, c.ctx = &progress;
    stop_requested = 0;
    c.stop = &stop_requested;
    void (*old_int)(int) = signal(SIGINT, on_signal);
    void (*old_term)(int) = signal(SIGTERM, on_signal);
    st = lpm_train(&c);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (progress.start) progress_line(&progress, 1);
    if (stop_requested && !st && !c.quiet)
        fprintf(stderr, "lpmnet train: stopped at step %" PRId64 "; checkpoint saved, continue with --resume\n",
                progress.last_step);
    /* every process ends with the same status; rank 0 prints it */
    return dist_end(st ? (dist_rank() == 0 ? cli_fail(CMD, st) : (int)st) : 0);
}
