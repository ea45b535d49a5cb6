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

static void show(const lpm_model_family *m) {
    char weights[4200], card[4200];
    const int have_weights = lpm_model_path(m->name, ".safetensors", weights, sizeof weights) == LPM_OK;
    printf("%s%s\n  for:     %s\n  weights: %s\n", m->name, strcmp(m->name, "mri") ? "" : " (default)",
           m->pairs, have_weights ? weights : "not installed");
    if (lpm_model_path(m->name, ".md", card, sizeof card) == LPM_OK) print_card(card);
    printf("\n");
}

int cmd_models(int argc, char **argv) {
    if (argc > 1 || (argc == 1 && cli_is_help(argv[0]))) {
        usage(argc == 1 ? stdout : stderr);
        return argc == 1 ? 0 : LPM_ERR_USAGE;
    }
    if (argc == 1 && !lpm_model_known(argv[0]))
        return cli_error(CMD, LPM_ERR_USAGE, "unknown model '%s' (see lpmnet models)", argv[0]);
    for (const lpm_model_family *m = lpm_model_families(); m->name; m++)
        if (argc == 0 || !strcmp(argv[0], m->name)) show(m);
    return 0;
}
