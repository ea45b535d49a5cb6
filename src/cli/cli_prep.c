/* The preprocessing options shared by fuse, eval and train: --clip, --ct-window, --mask. */
#include "cli.h"

#include <string.h>

int cli_prep_option(const char *cmd, int argc, char **argv, int *i, lpm_fuse_settings *s) {
    const char *opt = argv[*i];
    int clip = !strcmp(opt, "--clip"), ct = !strcmp(opt, "--ct-window"), mask = !strcmp(opt, "--mask");
    if (!clip && !ct && !mask) return 0;
    const char *value = cli_value(cmd, argc, argv, i);
    if (!value) return CLI_PREP_BAD;
    lpm_status st = LPM_OK;
    if (clip) {
        st = lpm_clip_parse(value, &s->clip_lo, &s->clip_hi);
    } else if (ct) {
        double width, level; /* checked here, read again by the library from the string */
        st = lpm_ct_window_parse(value, &width, &level);
        if (!st) s->ct_window = value;
    } else if (!*value) {
        st = lpm_fail(LPM_ERR_USAGE, "needs a file name");
    } else {
        s->mask_path = value;
    }
    if (st) {
        cli_error(cmd, LPM_ERR_USAGE, "%s: %s", opt, lpm_last_error());
        return CLI_PREP_BAD;
    }
    return 1;
}

int cli_prep_finish(const char *cmd, const lpm_fuse_settings *s) {
    const int clip = s->clip_lo != 0 || s->clip_hi != 0;
    if (s->exact && (clip || s->ct_window || s->mask_path))
        return cli_error(cmd, LPM_ERR_USAGE, "--exact normalises each input min-max as the authors "
                         "do; leave out --clip, --ct-window and --mask");
    return 0;
}
