/* PNG output through libpng, written to a temporary file and renamed. */
#include "io.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <strings.h>

/* libpng reports errors through a callback that must not return: keep the message, jump. */
typedef struct {
    char msg[256];
} png_err;

static void on_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

lpm_status lpm_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height) {
    /* PNG bytes under another name (pic.jpg) would mislead every viewer that trusts the name */
    size_t len = strlen(path);
    if (len < 4 || strcasecmp(path + len - 4, ".png") != 0)
        return lpm_fail(LPM_ERR_USAGE, "%s: a PNG picture's name must end in .png", path);
    if (!rgb || width <= 0 || height <= 0 || width > 1000000 || height > 1000000)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: bad image size %dx%d", path, width, height);
    lpm_atomic_file f;
    lpm_status st = lpm_atomic_open(&f, path);
    if (st) return st;
    png_err err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        lpm_atomic_abort(&f);
        return lpm_fail(LPM_ERR_INTERNAL, "%s: out of memory in libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        lpm_atomic_abort(&f);
        return lpm_fail(LPM_ERR_INTERNAL, "%s: PNG write failed: %s", path, err.msg);
    }
    png_init_io(png, f.fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return lpm_atomic_commit(&f);
}
