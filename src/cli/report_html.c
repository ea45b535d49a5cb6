/* The report page of fuse --html and eval --html (report_html.h, docs/viewer.md). */
#include "report_html.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The vendored release (vendor/niivue/README.md says how to update it). */
#define NIIVUE_VERSION "0.69.0"
#define NIIVUE_FILE "niivue.umd.js"

const char *cli_niivue_script(void) {
    static char path[4200];
    return lpm_share_path("niivue/" NIIVUE_FILE, path, sizeof path) == LPM_OK ? path : NULL;
}

/* ------------------------------------------------------------ the volumes */

enum { NIFTI1_HEADER = 348, NIFTI1_DATA_OFFSET = 352 };

static void put_i16(unsigned char *h, int at, int v) {
    int16_t x = (int16_t)v;
    memcpy(h + at, &x, sizeof x);
}
static void put_i32(unsigned char *h, int at, int v) {
    int32_t x = v;
    memcpy(h + at, &x, sizeof x);
}
static void put_f32(unsigned char *h, int at, double v) {
    float x = (float)v;
    memcpy(h + at, &x, sizeof x);
}

/* A NIfTI-1 single file (.nii) in memory, native byte order (readers detect it from
 * sizeof_hdr): uint8 voxels with scl_slope/scl_inter mapping 0..255 onto the volume's
 * finite min..max, the grid's affine as the sform, cal_min/cal_max = that range so that
 * the viewer shows every volume over its whole range. */
static unsigned char *nifti_uint8(const lpm_volume *grid, const float *data, size_t *size) {
    const size_t numel = (size_t)lpm_volume_numel(grid);
    unsigned char *file = calloc(NIFTI1_DATA_OFFSET + numel, 1);
    if (!file) return NULL;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < numel; i++)
        if (isfinite(data[i])) {
            if (data[i] < lo) lo = data[i];
            if (data[i] > hi) hi = data[i];
        }
    if (!(lo <= hi)) lo = 0, hi = 0;          /* no finite voxel */
    const double range = hi > lo ? hi - lo : 1; /* a constant volume: every voxel 0 */
    unsigned char *voxels = file + NIFTI1_DATA_OFFSET;
    for (size_t i = 0; i < numel; i++) {
        double q = isfinite(data[i]) ? (data[i] - lo) / range * 255.0 : 0.0;
        voxels[i] = (unsigned char)(q < 0 ? 0 : q > 255 ? 255 : lrint(q));
    }

    unsigned char *h = file;
    put_i32(h, 0, NIFTI1_HEADER);
    h[38] = 'r';
    const int64_t dims[3] = {grid->nx, grid->ny, grid->nz};
    put_i16(h, 40, 3);
    for (int d = 0; d < 3; d++) put_i16(h, 42 + 2 * d, (int)dims[d]);
    for (int d = 3; d < 7; d++) put_i16(h, 42 + 2 * d, 1);
    put_i16(h, 70, 2);  /* datatype: NIFTI_TYPE_UINT8 */
    put_i16(h, 72, 8);  /* bitpix */
    put_f32(h, 76, 1);  /* pixdim[0] = qfac */
    for (int d = 0; d < 3; d++) put_f32(h, 80 + 4 * d, grid->pixdim[d] > 0 ? grid->pixdim[d] : 1);
    put_f32(h, 108, NIFTI1_DATA_OFFSET);
    put_f32(h, 112, range / 255.0);         /* scl_slope */
    put_f32(h, 116, lo);                    /* scl_inter */
    h[123] = 2;                             /* xyzt_units: millimetres */
    put_f32(h, 124, hi > lo ? hi : lo + 1); /* cal_max */
    put_f32(h, 128, lo);                    /* cal_min */
    snprintf((char *)h + 148, 80, "lpmnet %s report view", LPM_VERSION);
    put_i16(h, 254, 1); /* sform_code: scanner coordinates */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) put_f32(h, 280 + 16 * r + 4 * c, grid->affine[r][c]);
    memcpy(h + 344, "n+1", 4);
    /* bytes 348..351: no extensions (zero) */
    *size = NIFTI1_DATA_OFFSET + numel;
    return file;
}

/* src gzipped into a new buffer (NiiVue reads .nii.gz). Level 1: on 8-bit volumes it is as
 * small as level 6 and faster. */
static unsigned char *gzip_buffer(const unsigned char *src, size_t n, size_t *out_size) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (n > 0xFFFFFFFFu) return NULL; /* one deflate call takes at most 4 GB */
    /* windowBits 15 + 16: a gzip header and trailer */
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong bound = deflateBound(&zs, (uLong)n);
    unsigned char *out = malloc(bound);
    int ok = 0;
    if (out) {
        zs.next_in = (Bytef *)src;
        zs.avail_in = (uInt)n;
        zs.next_out = out;
        zs.avail_out = (uInt)bound;
        ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
        *out_size = bound - zs.avail_out;
    }
    deflateEnd(&zs);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* Base64 (RFC 4648) in lines of 76 characters; atob skips the line breaks. */
static void write_base64(FILE *fp, const unsigned char *s, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[80];
    int len = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        line[len++] = digits[v >> 18 & 63];
        line[len++] = digits[v >> 12 & 63];
        line[len++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
        line[len++] = i + 2 < n ? digits[v & 63] : '=';
        if (len == 76 || i + 3 >= n) {
            line[len++] = '\n';
            fwrite(line, 1, (size_t)len, fp);
            len = 0;
        }
    }
}

/* One volume as <script type="application/octet-stream" id="volumeK">: a data block the
 * browser does not run, read back by the page's script. */
static lpm_status write_volume(FILE *fp, int k, const lpm_volume *grid, const float *data) {
    size_t raw_size = 0, gz_size = 0;
    unsigned char *raw = nifti_uint8(grid, data, &raw_size);
    unsigned char *gz = raw ? gzip_buffer(raw, raw_size, &gz_size) : NULL;
    free(raw);
    if (!gz) return lpm_fail(LPM_ERR_INTERNAL, "out of memory compressing a volume for the report page");
    fprintf(fp, "<script type=\"application/octet-stream\" id=\"volume%d\">\n", k);
    write_base64(fp, gz, gz_size);
    fputs("</script>\n", fp);
    free(gz);
    return LPM_OK;
}

/* ------------------------------------------------------------ the page */

static void write_escaped(FILE *fp, const char *s) {
    for (; s && *s; s++) switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default: fputc(*s, fp);
        }
}

/* A relative address with every byte but letters, digits and "-._~/" percent-encoded, so
 * that a case named "a#1" or "50%" still links to its file. */
static void write_url(FILE *fp, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~/", c))
            fputc(c, fp);
        else
            fprintf(fp, "%%%02X", c);
    }
}

/* NiiVue's script inline. "</script" inside it would end the element early: written as
 * "<\/script", the same text inside a JavaScript string or regular expression. */
static lpm_status write_script_file(FILE *fp, const char *path) {
    unsigned char *js = NULL;
    size_t n = 0;
    lpm_status st = lpm_read_file(path, &js, &n);
    if (st) return st;
    fputs("<script>\n", fp);
    size_t from = 0;
    for (size_t i = 0; i + 8 <= n; i++)
        if (js[i] == '<' && js[i + 1] == '/' && strncasecmp((const char *)js + i + 2, "script", 6) == 0) {
            fwrite(js + from, 1, i + 1 - from, fp);
            fputc('\\', fp);
            from = i + 1;
        }
    fwrite(js + from, 1, n - from, fp);
    fputs("\n</script>\n", fp);
    free(js);
    return LPM_OK;
}

static void write_table(FILE *fp, const cli_html_table *t) {
    fputs("<h2>Metrics</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>", fp);
    write_escaped(fp, t->corner ? t->corner : "");
    fputs("</th>", fp);
    for (int c = 0; c < t->n_cols; c++) {
        fputs("<th>", fp);
        write_escaped(fp, t->col_names[c]);
        fputs("</th>", fp);
    }
    fputs("</tr></thead>\n<tbody>\n", fp);
    for (int r = 0; r < t->n_rows; r++) {
        fputs("<tr><th>", fp);
        write_escaped(fp, t->row_names[r]);
        fputs("</th>", fp);
        for (int c = 0; c < t->n_cols; c++) {
            double v = t->values[(size_t)r * (size_t)t->n_cols + (size_t)c];
            if (isnan(v))
                fputs("<td>n/a</td>", fp);
            else if (isinf(v))
                fputs(v > 0 ? "<td>inf</td>" : "<td>-inf</td>", fp);
            else
                fprintf(fp, "<td>%.4f</td>", v);
        }
        fputs("</tr>\n", fp);
    }
    fputs("</tbody>\n</table></div>\n", fp);
}

static const char PAGE_STYLE[] =
    "<style>\n"
    "body { font-family: system-ui, sans-serif; margin: 1em 1.5em; color: #222; background: #fafafa; }\n"
    "h1 { font-size: 1.3em; margin: 0 0 .3em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }\n"
    ".note { color: #555; margin: 0 0 .6em; }\n"
    ".bar { margin: .4em 0 .8em; } .bar button { margin-right: .3em; }\n"
    "#status { margin-left: 1em; color: #555; } #status.error { color: #b00; font-weight: bold; }\n"
    ".views { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }\n"
    ".view { margin: 0; background: #fff; border: 1px solid #ccc; border-radius: 4px; padding: 4px; }\n"
    ".view figcaption { font-weight: bold; margin: 0 0 4px; overflow-wrap: anywhere; }\n"
    ".canvas-box { height: 300px; background: #000; } .canvas-box canvas { width: 100%; height: 100%; display: block; }\n"
    ".where { font-size: .8em; color: #555; min-height: 1.2em; font-family: monospace; }\n"
    ".scroll { overflow-x: auto; }\n"
    "table { border-collapse: collapse; font-size: .9em; }\n"
    "th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }\n"
    "thead th { background: #eee; } tbody th { text-align: left; background: #f4f4f4; white-space: nowrap; }\n"
    ".foot { color: #777; font-size: .8em; margin-top: 1.5em; }\n"
    "</style>\n";

/* Loads every view, links their crosshairs (NiiVue's broadcastTo: the view with the focus
 * moves the others) and reports the outcome in document.title for a headless browser.
 * With #selftest after the address it also moves the first view's crosshair and checks
 * that the last view followed. */
static const char PAGE_SCRIPT[] =
    "<script>\n"
    "(function () {\n"
    "  'use strict';\n"
    "  const status = document.getElementById('status');\n"
    "  let failed = false;\n"
    "  function fail(why) {\n"
    "    if (failed) return;\n"
    "    failed = true;\n"
    "    document.title = 'lpmnet: error: ' + why;\n"
    "    status.textContent = 'Error: ' + why;\n"
    "    status.className = 'error';\n"
    "  }\n"
    "  window.addEventListener('error', e => fail(e.message || String(e)));\n"
    "  window.addEventListener('unhandledrejection', e => fail(e.reason && e.reason.message ? e.reason.message : String(e.reason)));\n"
    "  if (typeof niivue === 'undefined') { fail('the NiiVue script did not load'); return; }\n"
    "  function bytesOf(id) {\n"
    "    const text = atob(document.getElementById(id).textContent.replace(/\\s/g, ''));\n"
    "    const bytes = new Uint8Array(text.length);\n"
    "    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);\n"
    "    return bytes.buffer;\n"
    "  }\n"
    "  async function load(canvas, k) {\n"
    "    canvas.addEventListener('webglcontextlost', () => fail('WebGL context lost (view ' + k + ')'));\n"
    "    const nv = new niivue.Niivue({ backColor: [0, 0, 0, 1], isColorbar: false, loadingText: '',\n"
    "      multiplanarShowRender: niivue.SHOW_RENDER.NEVER, logLevel: 'warn' });\n"
    "    await nv.attachToCanvas(canvas);\n"
    "    const image = await niivue.NVImage.loadFromUrl({ url: bytesOf('volume' + k),\n"
    "      name: 'volume' + k + '.nii.gz', colormap: 'gray' });\n"
    "    nv.addVolume(image);\n"
    "    nv.setSliceType(niivue.SLICE_TYPE.MULTIPLANAR);\n"
    "    const where = document.getElementById('where' + k);\n"
    "    nv.onLocationChange = data => { where.textContent = data.string; };\n"
    "    nv.createOnLocationChange();\n"
    "    return nv;\n"
    "  }\n"
    "  function selfTest(views) {\n"
    "    const first = views[0], last = views[views.length - 1];\n"
    "    first.canvas.focus();\n"
    "    first.scene.crosshairPos = [0.3, 0.6, 0.4];\n"
    "    first.drawScene();\n"
    "    first.sync();\n"
    "    const a = first.frac2mm(first.scene.crosshairPos), b = last.frac2mm(last.scene.crosshairPos);\n"
    "    const apart = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);\n"
    "    if (!(apart < 1e-3)) fail('the crosshair is not shared (' + apart + ' mm apart)');\n"
    "    return ', crosshair shared';\n"
    "  }\n"
    "  const canvases = Array.from(document.querySelectorAll('canvas'));\n"
    "  Promise.all(canvases.map(load)).then(views => {\n"
    "    for (const nv of views) nv.broadcastTo(views.filter(other => other !== nv), { '2d': true, '3d': true });\n"
    "    for (const button of document.querySelectorAll('button[data-slice]'))\n"
    "      button.addEventListener('click', () => {\n"
    "        for (const nv of views) nv.setSliceType(Number(button.dataset.slice));\n"
    "      });\n"
    "    const checked = location.hash === '#selftest' ? selfTest(views) : '';\n"
    "    if (failed) return;\n"
    "    document.title = 'lpmnet: loaded ' + views.length + ' volumes' + checked;\n"
    "    status.textContent = views.length + ' volumes loaded: click or drag in any view to move the shared crosshair.';\n"
    "  }).catch(e => fail(e && e.message ? e.message : String(e)));\n"
    "})();\n"
    "</script>\n";

static lpm_status make_parent_folder(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return LPM_OK;
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot create the folder (%s)", dir, strerror(errno));
    return LPM_OK;
}

/* The page up to the end of the heading and note. */
static void write_head(FILE *fp, const char *title, const char *note, const char *window_title) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", fp);
    write_escaped(fp, window_title);
    fputs("</title>\n", fp);
    fputs(PAGE_STYLE, fp);
    fputs("</head>\n<body>\n<h1>", fp);
    write_escaped(fp, title);
    fputs("</h1>\n", fp);
    if (note) {
        fputs("<p class=\"note\">", fp);
        write_escaped(fp, note);
        fputs("</p>\n", fp);
    }
}

static lpm_status open_page(lpm_atomic_file *f, const char *path) {
    lpm_status st = make_parent_folder(path);
    return st ? st : lpm_atomic_open(f, path);
}

lpm_status cli_html_report(const char *path, const char *title, const char *note, const lpm_volume *grid,
                           const cli_html_volume *vols, int n, const cli_html_table *table) {
    const char *script = cli_niivue_script();
    if (!script)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot write the report page: NiiVue (" NIIVUE_FILE
                        ") is not installed (looked in <bindir>/../share/lpmnet/niivue/ and the source tree's "
                        "vendor/niivue/)", path);
    if (grid->nx > 32767 || grid->ny > 32767 || grid->nz > 32767)
        return lpm_fail(LPM_ERR_INPUT, "%s: a grid of %lld x %lld x %lld voxels is too large for the report page "
                        "(at most 32767 along each axis)", path, (long long)grid->nx, (long long)grid->ny,
                        (long long)grid->nz);
    lpm_atomic_file f;
    lpm_status st = open_page(&f, path);
    if (st) return st;
    FILE *fp = f.fp;
    const int shown = n < CLI_HTML_MAX_VIEWS ? n : CLI_HTML_MAX_VIEWS;

    write_head(fp, title, note, "lpmnet: loading");
    if (shown < n) {
        fputs("<p class=\"note\">Not shown (a browser keeps at most 16 views per page):", fp);
        for (int k = shown; k < n; k++) {
            fputs(k > shown ? ", " : " ", fp);
            write_escaped(fp, vols[k].label);
        }
        fputs(".</p>\n", fp);
    }
    fputs("<div class=\"bar\">View: <button data-slice=\"3\">multiplanar</button><button data-slice=\"0\">axial"
          "</button><button data-slice=\"1\">coronal</button><button data-slice=\"2\">sagittal</button>"
          "<span id=\"status\">loading ...</span></div>\n<div class=\"views\">\n", fp);
    for (int k = 0; k < shown; k++) {
        fputs("<figure class=\"view\"><figcaption>", fp);
        write_escaped(fp, vols[k].label);
        fprintf(fp, "</figcaption><div class=\"canvas-box\"><canvas id=\"view%d\"></canvas></div>"
                    "<div class=\"where\" id=\"where%d\"></div></figure>\n", k, k);
    }
    fputs("</div>\n", fp);
    if (table && table->n_rows > 0) write_table(fp, table);
    fprintf(fp, "<p class=\"foot\">Written by lpmnet %s. Grid %lld x %lld x %lld voxels; each view shows its "
                "volume in 256 grey levels over its own range. Viewer: NiiVue %s (BSD-2-Clause, "
                "https://github.com/niivue/niivue).</p>\n",
            LPM_VERSION, (long long)grid->nx, (long long)grid->ny, (long long)grid->nz, NIIVUE_VERSION);

    for (int k = 0; k < shown && !st; k++) st = write_volume(fp, k, grid, vols[k].data);
    if (!st) st = write_script_file(fp, script);
    if (st) {
        lpm_atomic_abort(&f);
        return st;
    }
    fputs(PAGE_SCRIPT, fp);
    fputs("</body>\n</html>\n", fp);
    return lpm_atomic_commit(&f);
}

lpm_status cli_html_index(const char *path, const char *title, const char *note, const cli_html_link *links,
                          int n_links, const cli_html_table *table) {
    lpm_atomic_file f;
    lpm_status st = open_page(&f, path);
    if (st) return st;
    FILE *fp = f.fp;
    write_head(fp, title, note, title);
    if (n_links > 0) {
        fputs("<h2>Cases</h2>\n<ul>\n", fp);
        for (int k = 0; k < n_links; k++) {
            fputs("<li><a href=\"", fp);
            write_url(fp, links[k].href);
            fputs("\">", fp);
            write_escaped(fp, links[k].label);
            fputs("</a></li>\n", fp);
        }
        fputs("</ul>\n", fp);
    }
    if (table && table->n_rows > 0) write_table(fp, table);
    fprintf(fp, "<p class=\"foot\">Written by lpmnet %s.</p>\n</body>\n</html>\n", LPM_VERSION);
    return lpm_atomic_commit(&f);
}
