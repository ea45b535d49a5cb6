/* A self-contained web page for a fusion report (docs/viewer.md): the volumes side by side
 * in NiiVue views with one shared crosshair, and a table of metrics. The page carries
 * everything it needs (NiiVue's script and the volumes, base64 of a gzipped 8-bit NIfTI),
 * so it opens from disk in a browser with WebGL2 and can be mailed or archived as one file. */
#ifndef LPM_REPORT_HTML_H
#define LPM_REPORT_HTML_H

#include "lpmnet.h"

/* Browsers allow about 16 live WebGL contexts per page: volumes past this many are left
 * out of the views (the page names them). */
enum { CLI_HTML_MAX_VIEWS = 16 };

/* One view: a label over the canvas ("A: t1.nii.gz", "lpmnet") and its voxels on the
 * report's grid (nz*ny*nx floats, x fastest). */
typedef struct {
    const char *label;
    const float *data;
} cli_html_volume;

/* A table of numbers: one row per result (row_names, e.g. the methods), one column per
 * measure (col_names, e.g. "seconds", "ssim", ...); values row by row. NaN is shown as
 * "n/a". corner: the heading of the row-name column (e.g. "method"); may be NULL. */
typedef struct {
    int n_rows, n_cols;
    const char *const *row_names;
    const char *const *col_names;
    const double *values;
    const char *corner;
} cli_html_table;

/* The NiiVue script found at run time: lpm_share_path("niivue/niivue.umd.js"), i.e.
 * <prefix>/share/lpmnet/niivue/ when installed, else the source tree's vendor/niivue/; NULL
 * when it is nowhere (lpm_last_error() then lists the places). The path is in a static
 * buffer. */
const char *cli_niivue_script(void);

/* Writes the page to path (atomically; the parent folder is created when missing).
 * grid gives the size and geometry (affine, pixdim) shared by every volume; title heads
 * the page; note (may be NULL) is a line of plain text under it; table may be NULL.
 * Each volume is stored as uint8 with scl_slope/scl_inter spanning its own finite
 * minimum..maximum (non-finite voxels become the minimum), and displayed over that range.
 * The page sets document.title to "lpmnet: loaded N volumes" once every view has its
 * volume, or to "lpmnet: error: ..." (any script error) so that a headless browser can
 * check it; with "#selftest" after the page's address it also moves the first view's
 * crosshair, checks that the last view followed and adds ", crosshair shared". Errors: LPM_ERR_INPUT when the NiiVue script is missing, the grid has more than
 * 32767 voxels along an axis (NIfTI-1's limit) or a file cannot be written,
 * LPM_ERR_INTERNAL when out of memory. */
lpm_status cli_html_report(const char *path, const char *title, const char *note, const lpm_volume *grid,
                           const cli_html_volume *vols, int n, const cli_html_table *table);

/* A plain page (no viewer, no script) for a run of several cases: title, note (may be
 * NULL), a list of links to the cases' report pages (href relative to the page; label shown)
 * and a table (may be NULL). Written atomically to path; the parent folder is created. */
typedef struct {
    const char *href, *label;
} cli_html_link;
lpm_status cli_html_index(const char *path, const char *title, const char *note, const cli_html_link *links,
                          int n_links, const cli_html_table *table);

#endif
