/* The lpmnet command-line tool: one function per subcommand (cmd_<name>.c), each taking
 * the arguments after its name and returning the exit code (an lpm_status:
 * 0 ok, 1 usage, 2 input/data error, 3 internal). */
#ifndef LPM_CLI_H
#define LPM_CLI_H

#include "lpmnet.h"
#include <stdint.h>
#include <stdio.h>

int cmd_fuse(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_phantom(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* lpmnet fuse --list PAIRS.csv --out DIR: many pairs, the model loaded once (cmd_fuse_list.c). */
int cmd_fuse_list(int argc, char **argv);

/* Print "lpmnet CMD: message" to stderr and return code. */
int cli_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Report a failed library call: prints lpm_last_error() and returns its status. */
int cli_fail(const char *cmd, lpm_status st);
/* True when arg is "-h" or "--help". */
int cli_is_help(const char *arg);
/* Parse helpers: return 0 on success, print a usage error and return 1 otherwise. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
/* --threads: 0 (all cores, the default) or 1 to 8 threads per core this machine has. */
int cli_parse_threads(const char *cmd, const char *s, long *out);
/* A finite number (inf and nan are refused). */
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* "D,H,W" -> three positive integers: shape[0] = D, the number of slices along z (NIfTI's
 * third axis, k), shape[1] = H, rows along y (j), shape[2] = W, columns along x (i, the axis
 * that varies fastest in memory); NIfTI tools (fslinfo, nibabel's shape) list them as W,H,D. */
int cli_parse_shape(const char *cmd, const char *opt, const char *s, int64_t shape[3]);
/* "cpu" or "cuda" -> *cuda = 0/1; "cuda" without a usable GPU prints why and fails. */
/* --passes: 1, 2, 4, 8 or 16 (a divisor of the 16-voxel window). */
int cli_parse_passes(const char *cmd, const char *s, long *passes);
int cli_parse_device(const char *cmd, const char *s, int *cuda);
/* Value of an option that needs one: argv[*i + 1]; advances *i. NULL + message if missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* How much the tool says on stderr, set by main.c from -q/--quiet and -v/--verbose anywhere on
 * the line: CLI_QUIET: errors and warnings only (no progress, no summary line); CLI_NORMAL:
 * also progress and a summary line per command; CLI_VERBOSE: also each stage and its time. */
enum { CLI_QUIET = -1, CLI_NORMAL = 0, CLI_VERBOSE = 1 };
extern int cli_verbosity;
/* "lpmnet CMD: message" on stderr unless quiet (cli_info), or only when verbose (cli_detail). */
void cli_info(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_detail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A required option or input that is missing: prints "lpmnet CMD: missing WHAT" and the
 * command's one-line usage (e.g. "lpmnet fuse A B -o OUT [options]") with a pointer to
 * --help; returns LPM_ERR_USAGE. */
int cli_missing(const char *cmd, const char *what, const char *usage_line);
/* Whether path ends in .nii, .nii.gz, .hdr, .img, .hdr.gz or .img.gz (any case). */
int cli_has_volume_extension(const char *path);
/* An output volume's name as FSL tools make it: path as given when it has a volume extension,
 * else path + ".nii.gz" (out/sub01 -> out/sub01.nii.gz). Returns 0, or prints the problem and
 * returns LPM_ERR_USAGE (an empty name, or one too long for out). */
int cli_volume_output_name(const char *cmd, const char *opt, const char *path, char *out, size_t n);
/* The file name of path without its folder ("data/sub01/t1.nii.gz" -> "t1.nii.gz"). */
const char *cli_base_name(const char *path);
/* Whether path ends in .png (any case): a picture is only written under a PNG name. */
int cli_is_png_name(const char *path);

/* Progress of long work on stderr (nothing when quiet): on a terminal a bar redrawn in place
 * once the work has taken a second; otherwise (a log file, a pipe, a batch job) one line every
 * LPM_PROGRESS_INTERVAL seconds (default 5; tests set it small) with the percentage, the time
 * elapsed and an estimate of the time left, and a last line at 100 % when any was printed.
 * Pass &state (zero it, then set label) as the lpm_progress_fn context; call
 * cli_progress_end after the work. Called from one thread at a time. */
typedef struct {
    const char *label;
    double start;
    int shown;     /* a terminal bar is on the screen (ended by a newline in cli_progress_end) */
    double last;   /* when the last line or bar was printed */
    int lines;     /* lines printed when stderr is not a terminal */
    int finished;  /* the 100 % line was printed */
} cli_progress_state;
void cli_progress(void *ctx, int64_t done, int64_t total);
/* Seconds between progress lines when stderr is not a terminal: LPM_PROGRESS_INTERVAL or 5. */
double cli_progress_interval(void);
void cli_progress_end(cli_progress_state *s);

/* The bundled models: lpm_model_families, lpm_model_path and lpm_model_resolve (lpmnet.h). */
/* $LPM_MODEL, else the bundled mri model; NULL when neither exists. */
const char *cli_default_model(void);
/* -m/--model: a family name (mri, ct-mr, pet-mr, pet-ct) or a weights file; NULL = the
 * default. Sets *path, or prints the error (an unknown name lists the names) and returns
 * LPM_ERR_USAGE. */
int cli_resolve_model(const char *cmd, const char *name_or_file, const char **path);

/* Refuses to let an output replace an input. Each output (and, for a .hdr/.img pair, its
 * companion files, with and without .gz) is compared with every input (and its companions)
 * by device and inode after resolving, so "dir/./A", a symlink or a hard link to an input is
 * caught. An output that does not exist yet cannot be an input (its companion still might).
 * NULL entries are skipped. Prints "lpmnet CMD: output X is the input A (same file);
 * refusing to overwrite it" and returns 1 (LPM_ERR_USAGE) on a match, 0 otherwise. */
int cli_refuse_input_as_output(const char *cmd, const char *output, const char *const *inputs,
                               int n_inputs);

/* Reads two volumes at once, each on its own thread (decompressing a .nii.gz is serial):
 * the status of the first that failed, A's before B's, with its message. */
lpm_status cli_read_pair(const char *path_a, lpm_volume *a, const char *path_b, lpm_volume *b);

/* Intensity preprocessing options of fuse, eval and train (docs/preprocessing.md), read into
 * the library's lpm_fuse_settings. Start from lpm_fuse_settings s = {0} (the defaults) and, in
 * the option loop,
 *     int r = cli_prep_option(CMD, argc, argv, &i, &s);
 *     if (r == CLI_PREP_BAD) return LPM_ERR_USAGE;
 *     if (r) continue;
 * cli_prep_option returns 1 when argv[*i] was --clip LOW,HIGH (s->clip_lo, s->clip_hi),
 * --ct-window W (s->ct_window: bone, soft, lung or WIDTH,LEVEL with WIDTH > 0) or --mask FILE
 * (s->mask_path) and its value was good (*i then points at the value), 0 when argv[*i] is none
 * of them (nothing changed), CLI_PREP_BAD when the value is missing or bad (the message is
 * printed; s unchanged). CLI_PREP_HELP is the options' lines for a usage text. */
#define CLI_PREP_BAD (-1)
int cli_prep_option(const char *cmd, int argc, char **argv, int *i, lpm_fuse_settings *s);
#define CLI_PREP_HELP                                                                      \
    "  --clip LOW,HIGH       clip each input to its LOW-th..HIGH-th intensity percentiles\n" \
    "                        before scaling to [0,1] (e.g. 0.5,99.5; PET: 0,99.5)\n"         \
    "  --ct-window W         map this Hounsfield window of the CT input to [0,1]: bone\n"    \
    "                        (2000,500), soft (400,40), lung (1500,-600) or WIDTH,LEVEL\n"   \
    "  --mask FILE           normalise inside FILE's nonzero voxels (A's grid), 0 outside\n" \
    "                        [default: --clip 0.5,100]\n"
/* After the option loop: s->exact with --clip, --ct-window or --mask is a usage error (exact
 * is the authors' plain min-max). Returns 0, or prints the error and returns LPM_ERR_USAGE.
 * Neither --clip nor --ct-window: the library's default (the lowest 0.5 % of each input's
 * voxels clipped, then min-max; docs/preprocessing.md says how it was chosen). */
int cli_prep_finish(const char *cmd, const lpm_fuse_settings *s);

/* lpmnet fuse --xml: the Slicer Execution Model description of fuse (slicer.c), so that 3D
 * Slicer runs lpmnet fuse as a command-line module (docs/cli.md says how to install it). */
void cli_slicer_xml(FILE *out);

#endif
