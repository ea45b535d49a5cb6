/* lpmnet: fuse co-registered 3-D medical volumes with LPM-Net. */
#include "cli.h"
#include "core/core.h"
#include "io/io.h"

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
            "  --max-memory SIZE  largest volume or weights file a header may declare, in bytes\n"
            "                     with an optional K, M, G or T suffix (powers of 1024), e.g. 4G;\n"
            "                     larger files are refused before anything is allocated\n"
            "                     [default: the machine's available memory]\n"
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

int main(int argc, char **argv) {
    lpm_cleanup_on_signals();
    if (take_max_memory(&argc, argv)) return LPM_ERR_USAGE;
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
