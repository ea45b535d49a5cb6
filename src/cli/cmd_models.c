/* lpmnet models: the bundled models, one per modality family, with their cards. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "models";

static void usage(FILE *out) {
    fprintf(out,
            "usage: lpmnet models [NAME]\n\n"
            "Lists the bundled LPM-Net models (fuse/eval -m NAME): the pairs each is for, its\n"
            "file, and its card (the data it was trained on, the recipe and its scores on the\n"
            "test subjects). NAME shows one model. Models not installed are listed as such.\n");
}

static int print_card(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    char line[1024];
    while (fgets(line, sizeof line, f)) printf("  %s", line);
    fclose(f);
    return 0;
}

static void show(const cli_model_family *m) {
    const char *weights = cli_bundled_model(m->name, ".safetensors");
    printf("%s%s\n  for:     %s\n  weights: %s\n", m->name, strcmp(m->name, "mri") ? "" : " (default)",
           m->pairs, weights ? weights : "not installed");
    const char *card = cli_bundled_model(m->name, ".md"); /* reuses the path buffer */
    if (card) print_card(card);
    printf("\n");
}

int cmd_models(int argc, char **argv) {
    if (argc > 1 || (argc == 1 && cli_is_help(argv[0]))) {
        usage(argc == 1 ? stdout : stderr);
        return argc == 1 ? 0 : LPM_ERR_USAGE;
    }
    if (argc == 1 && !cli_model_known(argv[0]))
        return cli_error(CMD, LPM_ERR_USAGE, "unknown model '%s' (see lpmnet models)", argv[0]);
    for (const cli_model_family *m = cli_model_families; m->name; m++)
        if (argc == 0 || !strcmp(argv[0], m->name)) show(m);
    return 0;
}
