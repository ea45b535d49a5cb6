/* The preprocessing options shared by fuse, eval and train: --clip, --ct-window, --mask. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cli_prep_option(const char *cmd, int argc, char **argv, int *i, lpm_prep *p) {
    const char *opt = argv[*i];
    int clip = !strcmp(opt, "--clip"), ct = !strcmp(opt, "--ct-window"), mask = !strcmp(opt, "--mask");
    if (!clip && !ct && !mask) return 0;
    const char *value = cli_value(cmd, argc, argv, i);
    if (!value) return CLI_PREP_BAD;
    lpm_status st = LPM_OK;
    if (clip) {
        st = lpm_prep_parse_clip(value, &p->clip_lo, &p->clip_hi);
        if (!st) p->clip = 1;
    } else if (ct) {
        st = lpm_prep_parse_ct_window(value, &p->ct_width, &p->ct_level);
        if (!st) p->ct_window = 1;
    } else if (!*value) {
        st = lpm_fail(LPM_ERR_USAGE, "needs a file name");
    } else {
        p->mask_path = value;
    }
    if (st) {
        cli_error(cmd, LPM_ERR_USAGE, "%s: %s", opt, lpm_last_error());
        return CLI_PREP_BAD;
    }
    return 1;
}

lpm_status cli_prep_inputs(const lpm_prep *p, lpm_volume *a, const char *name_a, lpm_volume *b,
                           const char *name_b, int ct_input) {
    uint8_t *mask = NULL;
    lpm_status st = p && p->mask_path ? lpm_mask_read(p->mask_path, a, name_a, &mask) : LPM_OK;
    if (!st) st = lpm_prep_pair(p, a, name_a, b, name_b, mask, ct_input);
    free(mask);
    /* a window need not reach both ends: stretched to [0, 1], so that LPM-Net (which
     * min-max normalises its inputs) and the classical methods see the same volumes */
    if (!st) st = lpm_normalize_minmax(a, name_a);
    if (!st) st = lpm_normalize_minmax(b, name_b);
    return st;
}

int cli_prep_finish(const char *cmd, lpm_prep *p, int exact) {
    if (exact && (p->clip || p->ct_window || p->mask_path))
        return cli_error(cmd, LPM_ERR_USAGE, "--exact normalises each input min-max as the authors "
                         "do; leave out --clip, --ct-window and --mask");
    if (!exact && !p->clip && !p->ct_window) {
        p->clip = 1;
        p->clip_lo = CLI_PREP_DEFAULT_CLIP_LO;
        p->clip_hi = 100.0;
    }
    return 0;
}
