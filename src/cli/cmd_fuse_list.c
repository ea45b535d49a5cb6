/* lpmnet fuse --list PAIRS.csv --out DIR: fuse many pairs in one process. */
#include "cli.h"

int cmd_fuse_list(int argc, char **argv) {
    return cli_error("fuse", LPM_ERR_USAGE, "--list is not available yet");
}
