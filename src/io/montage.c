/* Montage of orthogonal mid-slices with labels in a small built-in bitmap font. */
#include "montage.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { PAD = 4, TEXT_SCALE = 2, ADVANCE = 6 * TEXT_SCALE, TEXT_H = 7 * TEXT_SCALE,
       TOP = TEXT_H + 2 * PAD, LEFT = 3 * ADVANCE - TEXT_SCALE + 2 * PAD, MAX_LABEL = 40,
       MAX_TITLE = 100 };

static const uint8_t BACKGROUND[3] = {22, 26, 34}, INK[3] = {255, 214, 110};

/* 5x7 glyphs: seven rows, bit 4 is the leftmost pixel. Lower case has its own glyphs (file
 * names keep their case), without descenders. */
static const struct {
    char c;
    uint8_t rows[7];
} FONT[] = {
    {' ', {0, 0, 0, 0, 0, 0, 0}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'a', {0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E}},
    {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}},
    {'g', {0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
    {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'j', {0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'m', {0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11}},
    {'n', {0, 0, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}},
    {'q', {0, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}},
    {'r', {0, 0, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0, 0, 0x0F, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D}},
    {'v', {0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A}},
    {'x', {0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
    {'z', {0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
    {'_', {0, 0, 0, 0, 0, 0, 0x1F}},
    {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {',', {0, 0, 0, 0, 0x0C, 0x04, 0x08}},
    {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},
    {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}},
    {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'+', {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}},
    {'=', {0, 0, 0x1F, 0, 0x1F, 0, 0}},
    {'*', {0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'\'', {0x04, 0x04, 0x08, 0, 0, 0, 0}},
    {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'!', {0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04}},
};
enum { NGLYPHS = sizeof FONT / sizeof FONT[0] };

static const uint8_t *glyph(char c) {
    for (int i = 0; i < NGLYPHS; i++)
        if (FONT[i].c == c) return FONT[i].rows;
    return FONT[NGLYPHS - 1].rows; /* '?' */
}

typedef struct {
    uint8_t *rgb;
    int width, height;
} image;

static void draw_text(image *im, int x0, int y0, const char *s, size_t len) {
    for (size_t k = 0; k < len; k++) {
        const uint8_t *g = glyph(s[k]);
        for (int r = 0; r < 7 * TEXT_SCALE; r++)
            for (int c = 0; c < 5 * TEXT_SCALE; c++) {
                if (!(g[r / TEXT_SCALE] >> (4 - c / TEXT_SCALE) & 1)) continue;
                int x = x0 + (int)k * ADVANCE + c, y = y0 + r;
                if (x < 0 || y < 0 || x >= im->width || y >= im->height) continue;
                memcpy(im->rgb + 3 * ((size_t)y * (size_t)im->width + (size_t)x), INK, 3);
            }
    }
}

static int text_width(size_t len) { return len ? (int)len * ADVANCE - TEXT_SCALE : 0; }

/* Displayed size of a source size n: downsampled by f or enlarged by u (one is 1). */
static int64_t shown(int64_t n, int64_t f, int64_t u) { return f > 1 ? (n + f - 1) / f : n * u; }

enum { AXIAL, CORONAL, SAGITTAL };

/* Voxel index of sample (r, c) of a view in display orientation. */
static int64_t view_index(int view, int64_t r, int64_t c, int64_t D, int64_t H, int64_t W) {
    int64_t d, h, w;
    if (view == AXIAL) {
        d = D / 2, h = r, w = c;
    } else if (view == CORONAL) {
        d = D - 1 - r, h = H / 2, w = c;
    } else {
        d = D - 1 - r, h = c, w = W / 2;
    }
    return (d * H + h) * W + w;
}

static uint8_t grey(double v) {
    if (!(v > 0)) return 0; /* also NaN */
    return v >= 1 ? 255 : (uint8_t)lround(v * 255);
}

/* A voxel of a column as R, G, B in [0, 1] (a grey value thrice). */
static void column_voxel(const lpm_montage_column *col, int64_t i, double out[3]) {
    if (col->grey) {
        out[0] = out[1] = out[2] = col->grey[i];
        return;
    }
    for (int k = 0; k < 3; k++) out[k] = col->rgb[3 * i + k] / 255.0;
}

/* Draw one view with its top-left corner at (x0, y0). */
static void draw_view(image *im, int x0, int y0, const lpm_montage_column *col, int view,
                      int64_t D, int64_t H, int64_t W, int64_t f, int64_t u) {
    int64_t rows = view == AXIAL ? H : D, cols = view == SAGITTAL ? H : W;
    int64_t sr = shown(rows, f, u), sc = shown(cols, f, u);
    for (int64_t r = 0; r < sr; r++)
        for (int64_t c = 0; c < sc; c++) {
            double s[3] = {0, 0, 0}, x[3];
            if (f > 1) {
                int64_t r1 = (r + 1) * f < rows ? (r + 1) * f : rows;
                int64_t c1 = (c + 1) * f < cols ? (c + 1) * f : cols;
                int64_t cnt = 0;
                for (int64_t i = r * f; i < r1; i++)
                    for (int64_t j = c * f; j < c1; j++, cnt++) {
                        column_voxel(col, view_index(view, i, j, D, H, W), x);
                        for (int k = 0; k < 3; k++) s[k] += x[k];
                    }
                for (int k = 0; k < 3; k++) s[k] /= (double)cnt;
            } else {
                column_voxel(col, view_index(view, r / u, c / u, D, H, W), s);
            }
            uint8_t *p = im->rgb + 3 * ((size_t)(y0 + r) * (size_t)im->width + (size_t)(x0 + c));
            for (int k = 0; k < 3; k++) p[k] = grey(s[k]);
        }
}

static lpm_status write_montage(const char *png_path, const char *title,
                                const lpm_montage_column *cols, int n, int64_t D, int64_t H,
                                int64_t W) {
    if (n < 1 || n > LPM_MONTAGE_MAX_COLUMNS || D < 1 || H < 1 || W < 1)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: montage of %d volumes of %lldx%lldx%lld", png_path,
                        n, (long long)D, (long long)H, (long long)W);
    for (int i = 0; i < n; i++)
        if (!cols[i].grey == !cols[i].rgb)
            return lpm_fail(LPM_ERR_INTERNAL, "%s: montage column %d needs one of grey or RGB data",
                            png_path, i);
    int64_t m = D > H ? D : H;
    m = m > W ? m : W;
    int64_t f = m > 256 ? (m + 255) / 256 : 1, u = m < 128 ? 128 / m : 1;
    int64_t sD = shown(D, f, u), sH = shown(H, f, u), sW = shown(W, f, u);
    int64_t col = sW > sH ? sW : sH;
    for (int i = 0; i < n; i++) {
        size_t len = cols[i].label ? strlen(cols[i].label) : 0;
        int tw = text_width(len < MAX_LABEL ? len : MAX_LABEL);
        if (tw > col) col = tw;
    }
    /* a title line sits above the column labels and pushes everything below it down */
    size_t title_len = title ? strlen(title) : 0;
    title_len = title_len < MAX_TITLE ? title_len : MAX_TITLE;
    const int64_t top = TOP + (title_len ? TEXT_H + PAD : 0);
    int64_t width = LEFT + n * (col + PAD), height = top + sH + PAD + 2 * (sD + PAD);
    if (title_len && width < 2 * PAD + text_width(title_len)) width = 2 * PAD + text_width(title_len);
    image im = {lpm_malloc((size_t)(width * height), 3), (int)width, (int)height};
    if (!im.rgb) return LPM_ERR_INTERNAL;
    for (int64_t i = 0; i < width * height; i++) memcpy(im.rgb + 3 * i, BACKGROUND, 3);

    const int views[3] = {AXIAL, CORONAL, SAGITTAL};
    const char *const names[3] = {"AX", "COR", "SAG"};
    int64_t row_y[3] = {top, top + sH + PAD, top + sH + PAD + sD + PAD};
    if (title_len) draw_text(&im, PAD, PAD, title, title_len);
    int64_t row_h[3] = {sH, sD, sD};
    for (int r = 0; r < 3; r++)
        draw_text(&im, PAD, (int)(row_y[r] + (row_h[r] - TEXT_H) / 2), names[r], strlen(names[r]));
    for (int i = 0; i < n; i++) {
        int64_t x = LEFT + i * (col + PAD);
        if (cols[i].label) {
            size_t len = strlen(cols[i].label);
            len = len < MAX_LABEL ? len : MAX_LABEL;
            draw_text(&im, (int)(x + (col - text_width(len)) / 2), (int)(top - TEXT_H - PAD),
                      cols[i].label, len);
        }
        for (int r = 0; r < 3; r++) {
            int64_t vw = shown(views[r] == SAGITTAL ? H : W, f, u);
            draw_view(&im, (int)(x + (col - vw) / 2), (int)row_y[r], &cols[i], views[r], D, H, W, f,
                      u);
        }
    }
    lpm_status st = lpm_png_write_rgb(png_path, im.rgb, im.width, im.height);
    free(im.rgb);
    return st;
}

lpm_status lpm_montage_write_columns(const char *png_path, const lpm_montage_column *cols, int n,
                                     int64_t D, int64_t H, int64_t W) {
    return write_montage(png_path, NULL, cols, n, D, H, W);
}

lpm_status lpm_montage_write_titled(const char *png_path, const char *title,
                                    const lpm_montage_column *cols, int n, int64_t D, int64_t H,
                                    int64_t W) {
    return write_montage(png_path, title, cols, n, D, H, W);
}

lpm_status lpm_montage_write(const char *png_path, const char *const *labels,
                             const float *const *vols, int n, int64_t D, int64_t H, int64_t W) {
    lpm_montage_column cols[LPM_MONTAGE_MAX_COLUMNS];
    if (n < 1 || n > LPM_MONTAGE_MAX_COLUMNS)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: montage of %d volumes", png_path, n);
    for (int i = 0; i < n; i++)
        cols[i] = (lpm_montage_column){labels ? labels[i] : NULL, vols[i], NULL};
    return lpm_montage_write_columns(png_path, cols, n, D, H, W);
}
