/* The lpmnet command-line tool: one function per subcommand (cmd_<name>.c), each taking
 * the arguments after its name and returning the exit code (an lpm_status:
 * 0 ok, 1 usage, 2 input/data error, 3 internal). */
#ifndef LPM_CLI_H
#define LPM_CLI_H

#include "lpmnet.h"
#include <stdint.h>

int cmd_fuse(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_phantom(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Print "lpmnet CMD: message" to stderr and return code. */
int cli_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Report a failed library call: prints lpm_last_error() and returns its status. */
int cli_fail(const char *cmd, lpm_status st);
/* Put "prefix: " before the recorded error of status st (e.g. the model file in front of
 * a library message that cannot know it); returns st. */
lpm_status cli_prefix_error(lpm_status st, const char *prefix);
/* True when arg is "-h" or "--help". */
int cli_is_help(const char *arg);
/* Parse helpers: return 0 on success, print a usage error and return 1 otherwise. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
/* --threads: 1 to 8 threads per core this machine has. */
int cli_parse_threads(const char *cmd, const char *s, long *out);
/* A finite number (inf and nan are refused). */
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* "D,H,W" -> three positive integers. */
int cli_parse_shape(const char *cmd, const char *opt, const char *s, int64_t shape[3]);
/* "cpu" or "cuda" -> *cuda = 0/1; "cuda" without a usable GPU prints why and fails. */
int cli_parse_device(const char *cmd, const char *s, int *cuda);
/* Value of an option that needs one: argv[*i + 1]; advances *i. NULL + message if missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Progress line on stderr when it is a terminal and the work is longer than a second:
 * pass &state as the lpm_progress_fn context. */
typedef struct {
    const char *label;
    double start;
    int shown;
} cli_progress_state;
void cli_progress(void *ctx, int64_t done, int64_t total);
void cli_progress_end(cli_progress_state *s);

/* The bundled default model: $LPM_MODEL, else <bindir>/../share/lpmnet/lpmnet-mri.safetensors,
 * else <source tree>/models/lpmnet-mri.safetensors. NULL when none exists. */
const char *cli_default_model(void);

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

#endif
