/* lpmnet: fuse co-registered 3-D medical volumes with LPM-Net. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"fuse", cmd_fuse, "fuse two co-registered volumes (LPM-Net or a classical method)"},
    {"train", cmd_train, "train LPM-Net on your own co-registered pairs (resumable)"},
    {"eval", cmd_eval, "fuse a dataset with several methods, score and report"},
    {"metrics", cmd_metrics, "score a fused volume with the twelve fusion metrics"},
    {"phantom", cmd_phantom, "write a synthetic multimodal brain phantom"},
    {"models", cmd_models, "list the bundled models: pairs, data, recipe, test scores"},
    {"info", cmd_info, "describe a NIfTI volume or a weights file"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
    fprintf(out,
            "lpmnet %s - LPM-Net 3-D medical image fusion\n\n"
            "usage: lpmnet <command> [options]   (lpmnet <command> --help for details)\n\n"
            "commands:\n",
            LPM_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\noptions for every command (anywhere on the line):\n"
            "  -q, --quiet        errors and warnings only: no progress, no summary lines\n"
            "  -v, --verbose      also each stage and its time\n"
            "  --max-memory SIZE  largest volume or weights file a header may declare, in bytes\n"
            "                     with an optional K, M, G or T suffix (powers of 1024), e.g. 4G;\n"
            "                     larger files are refused before anything is allocated\n"
            "                     [default: the machine's available memory]\n"
            "Every option with a value takes it as --opt VALUE or --opt=VALUE. An output volume\n"
            "named without an extension (-o out/fused) is written as .nii.gz (out/fused.nii.gz).\n"
            "Progress goes to stderr: a bar on a terminal, else a line every 5 s\n"
            "(LPM_PROGRESS_INTERVAL=SECONDS changes it). docs/cli.md has the conventions.\n"
            "\nexit codes: 0 ok, 1 usage error, 2 input/data error, 3 internal error\n"
            "Interrupted (SIGINT, SIGTERM, SIGHUP, SIGQUIT), lpmnet removes its temporary files\n"
            "and dies of the signal; a killed run's leftovers go with the next write of that file.\n"
            "example: lpmnet fuse t1.nii.gz t2.nii.gz -o fused.nii.gz -m model.safetensors\n");
}

/* "4096", "512K", "4G", "1T" (also "4GB", "4GiB"; case-insensitive) -> bytes; 0 if bad. */
static uint64_t parse_size(const char *s) {
    if (!isdigit((unsigned char)s[0])) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0) return 0;
    int shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    }
    if (shift) {
        end++;
        if (toupper((unsigned char)end[0]) == 'I' && toupper((unsigned char)end[1]) == 'B') end += 2;
        else if (toupper((unsigned char)end[0]) == 'B') end++;
    } else if (toupper((unsigned char)end[0]) == 'B') {
        end++;
    }
    if (*end || v > (UINT64_MAX >> shift)) return 0;
    return (uint64_t)v << shift;
}

/* Takes every "--max-memory SIZE" / "--max-memory=SIZE" out of argv (any command reads
 * files, so it is global) and sets the budget. 0 ok, 1 (after a message) on a bad value. */
static int take_max_memory(int *argc, char **argv) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *value = NULL;
        int used = 1;
        if (strcmp(argv[i], "--max-memory") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "lpmnet: --max-memory needs a value (bytes, or with K/M/G/T: 4G)\n");
                return LPM_ERR_USAGE;
            }
            value = argv[i + 1];
            used = 2;
        } else if (strncmp(argv[i], "--max-memory=", 13) == 0) {
            value = argv[i] + 13;
        }
        if (!value) {
            argv[out++] = argv[i];
            continue;
        }
        uint64_t bytes = parse_size(value);
        if (!bytes) {
            fprintf(stderr,
                    "lpmnet: --max-memory expects a positive size in bytes with an optional K, M, G "
                    "or T suffix (e.g. 4G), got '%s'\n", value);
            return LPM_ERR_USAGE;
        }
        lpm_set_max_memory(bytes);
        i += used - 1;
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

/* "--name=value" -> "--name" "value" (the habit of FSL and ANTs users), for every command
 * before dispatch. Only a long option whose name is letters, digits and dashes is split, so a
 * file name that holds '=' is left alone. Returns a new NULL-terminated argv (free it), or
 * NULL when out of memory. */
static char **split_equals(int *argc, char **argv) {
    char **out = malloc(((size_t)*argc * 2 + 1) * sizeof *out);
    if (!out) return NULL;
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        char *s = argv[i], *eq = strchr(s, '=');
        size_t name = eq ? (size_t)(eq - s) : 0;
        int split = i > 0 && eq && s[0] == '-' && s[1] == '-' && name > 2;
        for (size_t k = 2; split && k < name; k++)
            split = isalnum((unsigned char)s[k]) || s[k] == '-';
        if (split) {
            *eq = '\0'; /* argv's strings are ours to change */
            out[n++] = s;
            out[n++] = eq + 1;
        } else {
            out[n++] = s;
        }
    }
    out[n] = NULL;
    *argc = n;
    return out;
}

/* Takes -q/--quiet and -v/--verbose out of argv (anywhere: every command has them) and sets
 * cli_verbosity; the last one given wins. */
static void take_verbosity(int *argc, char **argv, int *quiet_given) {
    int out = 1;
    *quiet_given = 0;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            cli_verbosity = CLI_QUIET;
            *quiet_given = 1;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            cli_verbosity = CLI_VERBOSE;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
}

/* Called as lpmnet-fuse (a link to lpmnet, the name 3D Slicer runs as a command-line module):
 * the same as lpmnet fuse. */
static int called_as_fuse(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    return !strcmp(slash ? slash + 1 : argv0, "lpmnet-fuse");
}

static int run(int argc, char **argv) {
    if (take_max_memory(&argc, argv)) return LPM_ERR_USAGE;
    int quiet_given;
    take_verbosity(&argc, argv, &quiet_given);
    /* train reads its own --quiet (cmd_train.c): handed on until it reads cli_verbosity */
    static char quiet[] = "--quiet";
    if (quiet_given && cli_verbosity == CLI_QUIET && argc >= 2 && !strcmp(argv[1], "train")) {
        argv[argc++] = quiet;
        argv[argc] = NULL;
    }
    if (argc < 2) {
        usage(stderr);
        return LPM_ERR_USAGE;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("lpmnet %s\n", LPM_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "lpmnet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return LPM_ERR_USAGE;
}

int main(int argc, char **argv) {
    lpm_cleanup_on_signals();
    /* room for one more argument: lpmnet-fuse puts "fuse" in front, train may get --quiet */
    char **args = split_equals(&argc, argv);
    char **line = args ? malloc(((size_t)argc + 3) * sizeof *line) : NULL;
    if (!line) {
        free(args);
        fprintf(stderr, "lpmnet: out of memory\n");
        return LPM_ERR_INTERNAL;
    }
    static char fuse[] = "fuse";
    int n = 0;
    line[n++] = args[0];
    if (called_as_fuse(args[0])) line[n++] = fuse;
    for (int i = 1; i < argc; i++) line[n++] = args[i];
    line[n] = NULL;
    int rc = run(n, line);
    free(line);
    free(args);
    return rc;
}
