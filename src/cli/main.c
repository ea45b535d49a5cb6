/* lpmnet: fuse co-registered 3-D medical volumes with LPM-Net. */
#include "cli.h"

#include <stdio.h>
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
            "\nexit codes: 0 ok, 1 usage error, 2 input/data error, 3 internal error\n"
            "example: lpmnet fuse t1.nii.gz t2.nii.gz -o fused.nii.gz -m model.safetensors\n");
}

int main(int argc, char **argv) {
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
