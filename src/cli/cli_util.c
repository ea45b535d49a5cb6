#include "cli.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_verbosity = CLI_NORMAL;

static void vmessage(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "lpmnet %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_info(const char *cmd, const char *fmt, ...) {
    if (cli_verbosity < CLI_NORMAL) return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, fmt, ap);
    va_end(ap);
}

void cli_detail(const char *cmd, const char *fmt, ...) {
    if (cli_verbosity < CLI_VERBOSE) return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, fmt, ap);
    va_end(ap);
}

int cli_missing(const char *cmd, const char *what, const char *usage_line) {
    fprintf(stderr, "lpmnet %s: missing %s\nusage: %s   (lpmnet %s --help for all options)\n", cmd,
            what, usage_line, cmd);
    return LPM_ERR_USAGE;
}

static int ends_with_nocase(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}

int cli_has_volume_extension(const char *path) {
    static const char *const ext[] = {".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"};
    for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++)
        if (ends_with_nocase(path, ext[k])) return 1;
    return 0;
}

int cli_volume_output_name(const char *cmd, const char *opt, const char *path, char *out, size_t n) {
    if (!path[0]) return cli_error(cmd, LPM_ERR_USAGE, "%s needs a file name, got ''", opt);
    int given = cli_has_volume_extension(path);
    /* a folder cannot take an extension: "out/" stays a folder name and fails at the write */
    size_t len = strlen(path);
    const int folder = path[len - 1] == '/';
    if ((size_t)snprintf(out, n, "%s%s", path, given || folder ? "" : ".nii.gz") >= n)
        return cli_error(cmd, LPM_ERR_USAGE, "%s: the name '%s' is too long", opt, path);
    return 0;
}

int cli_is_png_name(const char *path) { return ends_with_nocase(path, ".png"); }

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lpmnet %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_fail(const char *cmd, lpm_status st) {
    return cli_error(cmd, st, "%s", lpm_last_error()[0] ? lpm_last_error() : "failed");
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return cli_error(cmd, LPM_ERR_USAGE, "%s expects an integer in [%ld, %ld], got '%s'", opt,
                         min, max, s);
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return cli_error(cmd, LPM_ERR_USAGE, "%s expects a finite number, got '%s'", opt, s);
    *out = v;
    return 0;
}

int cli_parse_threads(const char *cmd, const char *s, long *out) {
    long cap = 8L * omp_get_num_procs();
    return cli_parse_int(cmd, "--threads", s, 0, cap < 8 ? 8 : cap, out);
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return cli_error(cmd, LPM_ERR_USAGE, "%s expects a non-negative integer, got '%s'", opt, s);
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_shape(const char *cmd, const char *opt, const char *s, int64_t shape[3]) {
    long long d, h, w;
    char extra;
    if (sscanf(s, "%lld,%lld,%lld%c", &d, &h, &w, &extra) != 3 || d < 1 || h < 1 || w < 1 ||
        d > 100000 || h > 100000 || w > 100000)
        return cli_error(cmd, LPM_ERR_USAGE,
                         "%s expects D,H,W: three positive integers, the slices along z, the rows "
                         "along y and the columns along x (x varies fastest), got '%s'", opt, s);
    shape[0] = d, shape[1] = h, shape[2] = w;
    return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_error(cmd, LPM_ERR_USAGE, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

double cli_progress_interval(void) {
    const char *env = getenv("LPM_PROGRESS_INTERVAL");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (!*end && v >= 0 && v <= 86400) return v;
    }
    return 5.0;
}

/* "12.3 s" below a minute, "4 min 05 s" above. */
static void format_duration(char *buf, size_t n, double s) {
    if (s < 60) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600) snprintf(buf, n, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%d h %02d min", (int)(s / 3600), (int)s / 60 % 60);
}

void cli_progress(void *ctx, int64_t done, int64_t total) {
    cli_progress_state *s = ctx;
    if (cli_verbosity < CLI_NORMAL || s->finished) return;
    const double now = lpm_seconds();
    if (s->start == 0) s->start = s->last = now;
    const int finished = done >= total;
    const double elapsed = now - s->start, fraction = total > 0 ? (double)done / (double)total : 1;
    char spent[32], left[32];
    format_duration(spent, sizeof spent, elapsed);
    format_duration(left, sizeof left, done > 0 ? elapsed * (double)(total - done) / (double)done : 0);
    const int percent = (int)(100 * fraction);
    if (isatty(STDERR_FILENO)) {
        /* short work shows nothing; the bar is redrawn at most ten times a second */
        if ((elapsed < 1.0 && !s->shown) || (!finished && now - s->last < 0.1)) return;
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        const int full = (int)(WIDTH * fraction);
        for (int k = 0; k < WIDTH; k++) bar[k] = k < full ? '#' : '-';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r%s [%s] %3d%%  %s elapsed, %s left   ", s->label, bar, percent, spent,
                finished ? "0.0 s" : left);
        s->shown = 1;
    } else {
        /* a log: one line every few seconds, and the last at 100 % when any came before */
        if (finished ? s->lines == 0 : now - s->last < cli_progress_interval()) return;
        if (finished)
            fprintf(stderr, "%s: 100%% done in %s\n", s->label, spent);
        else
            fprintf(stderr, "%s: %d%% done, %s elapsed, about %s left\n", s->label, percent, spent, left);
        s->lines++;
    }
    fflush(stderr);
    s->last = now;
    s->finished = finished;
}

void cli_progress_end(cli_progress_state *s) {
    if (s->shown) fputc('\n', stderr);
    s->shown = 0;
}


const char *cli_default_model(void) {
    static char path[4200];
    const char *env = getenv("LPM_MODEL");
    if (env && *env) return env;
    return lpm_model_path("mri", ".safetensors", path, sizeof path) == LPM_OK ? path : NULL;
}

int cli_resolve_model(const char *cmd, const char *name_or_file, const char **path) {
    static char resolved[4200];
    if (!name_or_file) {
        if (!(*path = cli_default_model()))
            return cli_error(cmd, LPM_ERR_USAGE, "no weights given and no bundled model found: "
                             "pass -m FILE or set LPM_MODEL");
        return 0;
    }
    lpm_status st = lpm_model_resolve(name_or_file, resolved, sizeof resolved);
    if (st) return cli_fail(cmd, st);
    *path = resolved;
    return 0;
}

int cli_parse_passes(const char *cmd, const char *s, long *passes) {
    if (cli_parse_int(cmd, "--passes", s, 1, 16, passes)) return LPM_ERR_USAGE;
    if (16 % *passes)
        return cli_error(cmd, LPM_ERR_USAGE, "--passes must be 1, 2, 4, 8 or 16, got %ld", *passes);
    return 0;
}

int cli_parse_device(const char *cmd, const char *s, int *cuda) {
    if (!strcmp(s, "cpu")) {
        *cuda = 0;
        return 0;
    }
    if (strcmp(s, "cuda") != 0)
        return cli_error(cmd, LPM_ERR_USAGE, "--device expects cpu or cuda, got '%s'", s);
    char why[512];
    if (!lpm_cuda_available(why, sizeof why))
        return cli_error(cmd, LPM_ERR_USAGE, "--device cuda: %s", why);
    *cuda = 1;
    return 0;
}

lpm_status cli_read_pair(const char *path_a, lpm_volume *a, const char *path_b, lpm_volume *b) {
    const char *paths[2] = {path_a, path_b};
    lpm_volume *vols[2] = {a, b};
    lpm_status st[2] = {LPM_OK, LPM_OK};
    /* an error message lives on the thread that recorded it: carried back here */
    char msg[2][2048] = {"", ""};
#pragma omp parallel for num_threads(lpm_get_threads() > 1 ? 2 : 1) schedule(static, 1)
    for (int i = 0; i < 2; i++) {
        st[i] = lpm_volume_read(paths[i], vols[i]);
        if (st[i]) snprintf(msg[i], sizeof msg[i], "%s", lpm_last_error());
    }
    for (int i = 0; i < 2; i++)
        if (st[i]) return lpm_fail(st[i], "%s", msg[i]);
    return LPM_OK;
}

/* ------------------------------------------------------------ outputs vs inputs */

enum { MAX_COMPANIONS = 5 };

/* path itself, then for an Analyze/NIfTI pair name (.hdr, .img, with or without .gz; all in
 * lower or all in upper case, as the reader takes them) every file of the pair: a reader
 * given one of them may open any, a writer writes two. */
static int companions(const char *path, char out[MAX_COMPANIONS][4096]) {
    static const char *const pair_ext[2][4] = {{".hdr", ".img", ".hdr.gz", ".img.gz"},
                                               {".HDR", ".IMG", ".HDR.GZ", ".IMG.GZ"}};
    int n = 0, upper = 0;
    snprintf(out[n++], sizeof out[0], "%s", path);
    size_t len = strlen(path), stem = 0;
    for (int u = 0; u < 2 && !stem; u++)
        for (int k = 0; k < 4 && !stem; k++) {
            size_t m = strlen(pair_ext[u][k]);
            if (len > m && strcmp(path + len - m, pair_ext[u][k]) == 0) stem = len - m, upper = u;
        }
    if (!stem || len >= sizeof out[0] - 8) return n;
    for (int k = 0; k < 4; k++) {
        snprintf(out[n], sizeof out[0], "%.*s%s", (int)stem, path, pair_ext[upper][k]);
        if (strcmp(out[n], path) != 0) n++;
    }
    return n;
}

int cli_refuse_input_as_output(const char *cmd, const char *output, const char *const *inputs,
                               int n_inputs) {
    if (!output) return 0;
    char outs[MAX_COMPANIONS][4096], ins[MAX_COMPANIONS][4096];
    int n_out = companions(output, outs);
    for (int o = 0; o < n_out; o++) {
        struct stat so;
        if (stat(outs[o], &so) != 0) continue; /* not there yet: cannot be an input */
        for (int i = 0; i < n_inputs; i++) {
            if (!inputs[i]) continue;
            int n_in = companions(inputs[i], ins);
            for (int k = 0; k < n_in; k++) {
                struct stat si;
                if (stat(ins[k], &si) != 0 || si.st_dev != so.st_dev || si.st_ino != so.st_ino)
                    continue;
                if (o == 0 && k == 0)
                    return cli_error(cmd, LPM_ERR_USAGE,
                                     "output %s is the input %s (same file); refusing to overwrite it",
                                     output, inputs[i]);
                return cli_error(cmd, LPM_ERR_USAGE,
                                 "output %s is the input %s (same file: the output's %s is the input's "
                                 "%s); refusing to overwrite it",
                                 output, inputs[i], outs[o], ins[k]);
            }
        }
    }
    return 0;
}

const char *cli_base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

