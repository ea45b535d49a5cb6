/* NIfTI volumes through nifti_clib (NIfTI-1 and -2, .nii, .nii.gz, .hdr/.img): any scalar
 * type in, float32 (or RGB24, for colour fusion) out, with the geometry of a reference header. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <nifti2_io.h>
#include <pthread.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <sys/stat.h>
#include <unistd.h>

/* nifti_clib reports its own errors on stderr at debug level 1; ours carry the file name.
 * Its debug level is a global: set it once, so reads on the loader thread and the main
 * thread do not race on it. */
static void set_quiet(void) { nifti_set_debug_level(0); }
static void quiet_nifti(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_quiet);
}

static void set_identity(lpm_volume *v) {
    memset(v->affine, 0, sizeof v->affine);
    for (int k = 0; k < 4; k++) v->affine[k][k] = 1.0;
    v->pixdim[0] = v->pixdim[1] = v->pixdim[2] = 1.0f;
}

lpm_status lpm_volume_alloc(lpm_volume *v, int64_t nx, int64_t ny, int64_t nz) {
    memset(v, 0, sizeof *v);
    if (nx <= 0 || ny <= 0 || nz <= 0)
        return lpm_fail(LPM_ERR_INTERNAL, "volume size %lldx%lldx%lld is not positive",
                        (long long)nx, (long long)ny, (long long)nz);
    int ok = 1;
    size_t n = lpm_mul_size(lpm_mul_size((size_t)nx, (size_t)ny, &ok), (size_t)nz, &ok);
    if (!ok || n > (size_t)INT64_MAX / sizeof(float))
        return lpm_fail(LPM_ERR_INTERNAL, "volume size %lldx%lldx%lld is too large",
                        (long long)nx, (long long)ny, (long long)nz);
    v->data = lpm_calloc(n, sizeof(float));
    if (!v->data) return LPM_ERR_INTERNAL;
    v->nx = nx;
    v->ny = ny;
    v->nz = nz;
    set_identity(v);
    return LPM_OK;
}

lpm_status lpm_volume_alloc_like(lpm_volume *v, const lpm_volume *ref) {
    lpm_status s = lpm_volume_alloc(v, ref->nx, ref->ny, ref->nz);
    if (s) return s;
    memcpy(v->affine, ref->affine, sizeof v->affine);
    memcpy(v->pixdim, ref->pixdim, sizeof v->pixdim);
    if (ref->header) {
        v->header = nifti_copy_nim_info(ref->header);
        if (!v->header) {
            lpm_volume_free(v);
            return lpm_fail(LPM_ERR_INTERNAL, "out of memory copying a NIfTI header");
        }
    }
    return LPM_OK;
}

void lpm_volume_free(lpm_volume *v) {
    if (!v) return;
    free(v->data);
    if (v->header) nifti_image_free(v->header);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------ read */

/* One voxel of a scalar NIfTI type as double (bytes already in this machine's order). */
static double voxel(const void *data, int dt, size_t i) {
    const unsigned char *p = data;
    switch (dt) {
#define AS(type) do { type x; memcpy(&x, p + i * sizeof x, sizeof x); return (double)x; } while (0)
    case NIFTI_TYPE_UINT8: AS(uint8_t);
    case NIFTI_TYPE_INT8: AS(int8_t);
    case NIFTI_TYPE_INT16: AS(int16_t);
    case NIFTI_TYPE_UINT16: AS(uint16_t);
    case NIFTI_TYPE_INT32: AS(int32_t);
    case NIFTI_TYPE_UINT32: AS(uint32_t);
    case NIFTI_TYPE_INT64: AS(int64_t);
    case NIFTI_TYPE_UINT64: AS(uint64_t);
    case NIFTI_TYPE_FLOAT32: AS(float);
    case NIFTI_TYPE_FLOAT64: AS(double);
    case NIFTI_TYPE_FLOAT128: AS(long double);
#undef AS
    }
    return 0.0;
}

static int is_scalar_type(int dt) {
    switch (dt) {
    case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: case NIFTI_TYPE_INT16: case NIFTI_TYPE_UINT16:
    case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32: case NIFTI_TYPE_INT64: case NIFTI_TYPE_UINT64:
    case NIFTI_TYPE_FLOAT32: case NIFTI_TYPE_FLOAT64:
        return 1;
    case NIFTI_TYPE_FLOAT128:
        /* numpy's float128 on x86-64 is the x87 long double padded to 16 bytes. */
        return sizeof(long double) == 16;
    }
    return 0;
}

/* ---- the raw header, checked before nifti_clib sees the file
 *
 * nifti_clib 3.0.1 trusts the header it reads: nifti_convert_n2hdr2nim loops to dim[0] over
 * the dim array of a stack copy of a NIfTI-2 header, so dim[0] outside 1..7 writes past it
 * (a crash, or a stack silently overwritten), and its NIfTI-1 path turns a float vox_offset
 * into an int unchecked. So the files nifti_clib would open are found here the way it finds
 * them, their header is read from the raw bytes and every field that sizes, places or loops
 * is checked; only then is nifti_image_read called. */

enum { NIFTI1_HEADER_SIZE = 348, NIFTI2_HEADER_SIZE = 540 };
/* Where a single-file .nii's data may start at the earliest: the header and its 4-byte
 * extender. */
enum { NIFTI1_MIN_VOX_OFFSET = 352, NIFTI2_MIN_VOX_OFFSET = 544 };
/* deflate can shrink data at most 1032:1 (a 258-byte match in 2 bits), so a gzip file of
 * S bytes holds at most 1032 S bytes: a small .gz that declares a huge volume is refused
 * before anything is allocated or decompressed. */
enum { DEFLATE_MAX_RATIO = 1032 };

typedef struct {
    char hdr[4096];        /* the file holding the header (the one named, or a .img's .hdr) */
    char img[4096];        /* the file holding the data: hdr itself, or the pair's .img */
    int version;           /* NIfTI-1 or -2 */
    int pair;              /* a .hdr/.img pair (magic "ni1"/"ni2"), else one file ("n+1"/"n+2") */
    int analyze;           /* an ANALYZE 7.5 pair: NIfTI-1's layout, no magic */
    int swapped;           /* stored in the other byte order than this machine's */
    int64_t dim[8];
    int datatype;
    int64_t vox_offset;
} nifti_layout;

/* ---- file names, resolved the way nifti_clib's nifti_findhdrname/nifti_findimgname do */

typedef enum { NAME_NII, NAME_HDR, NAME_IMG, NAME_OTHER } name_kind;

/* The kind of a NIfTI file name and the length of its extension (".nii", ".img.gz", ...);
 * nifti_clib takes extensions all in lower or all in upper case. */
static name_kind kind_of_name(const char *path, size_t *ext_len, int *upper) {
    static const char *lower[] = {".nii", ".hdr", ".img"}, *upper_ext[] = {".NII", ".HDR", ".IMG"};
    size_t n = strlen(path);
    for (int gz = 1; gz >= 0; gz--)
        for (int k = 0; k < 3; k++)
            for (int u = 0; u < 2; u++) {
                char ext[8];
                snprintf(ext, sizeof ext, "%s%s", (u ? upper_ext : lower)[k], gz ? (u ? ".GZ" : ".gz") : "");
                size_t m = strlen(ext);
                if (n > m && strcmp(path + n - m, ext) == 0) {
                    *ext_len = m;
                    *upper = u;
                    return (name_kind)k;
                }
            }
    return NAME_OTHER;
}

/* The first of stem + first, first.gz, second, second.gz that exists, in dst (as nifti_clib
 * searches); 0 when none does. stat, not open: opening a FIFO would block. */
static int find_companion(char *dst, size_t n, const char *stem, size_t stem_len, int upper,
                          name_kind first, name_kind second) {
    static const char *lower[] = {".nii", ".hdr", ".img"}, *upper_ext[] = {".NII", ".HDR", ".IMG"};
    const name_kind order[2] = {first, second};
    for (int k = 0; k < 2; k++)
        for (int gz = 0; gz < 2; gz++) {
            int len = snprintf(dst, n, "%.*s%s%s", (int)stem_len, stem, (upper ? upper_ext : lower)[order[k]],
                               gz ? (upper ? ".GZ" : ".gz") : "");
            struct stat st;
            if (len > 0 && (size_t)len < n && stat(dst, &st) == 0) return 1;
        }
    return 0;
}

/* lpm_check_input_file for the other file of a pair, its message naming the file given too. */
static lpm_status check_companion(const char *given, const char *role, const char *companion) {
    lpm_status s = lpm_check_input_file(companion);
    if (!s) return LPM_OK;
    char why[4200];
    snprintf(why, sizeof why, "%s", lpm_last_error());
    return lpm_fail(s, "%s: its %s file %s", given, role, why);
}

static lpm_status find_header_file(const char *path, nifti_layout *L) {
    size_t ext_len;
    int upper;
    name_kind kind = kind_of_name(path, &ext_len, &upper);
    if (kind == NAME_OTHER)
        return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file name (use .nii, .nii.gz or .hdr/.img)", path);
    if (strlen(path) >= sizeof L->hdr) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    if (kind != NAME_IMG) {
        snprintf(L->hdr, sizeof L->hdr, "%s", path);
        return LPM_OK;
    }
    if (!find_companion(L->hdr, sizeof L->hdr, path, strlen(path) - ext_len, upper, NAME_HDR, NAME_NII))
        return lpm_fail(LPM_ERR_INPUT, "%s: no header file (%.*s%s) found for this image file", path,
                        (int)(strlen(path) - ext_len), path, upper ? ".HDR" : ".hdr");
    return check_companion(path, "header", L->hdr);
}

/* nifti_clib takes the data from the header file's name (x.hdr -> x.img, x.hdr.gz ->
 * x.img.gz, a .nii holds both), whatever the magic says; the magic must agree with it. */
static lpm_status find_image_file(nifti_layout *L) {
    size_t ext_len;
    int upper;
    size_t n = strlen(L->hdr);
    L->pair = kind_of_name(L->hdr, &ext_len, &upper) == NAME_HDR;
    snprintf(L->img, sizeof L->img, "%s", L->hdr);
    if (!L->pair) return LPM_OK;
    memcpy(L->img + n - ext_len, upper ? ".IMG" : ".img", 4);
    struct stat st;
    if (stat(L->img, &st) != 0 && errno == ENOENT)
        return lpm_fail(LPM_ERR_INPUT, "%s: its image file %s is missing", L->hdr, L->img);
    return check_companion(L->hdr, "image", L->img);
}

/* ---- raw header fields, in the file's byte order */

static void get_bytes(void *dst, const unsigned char *src, size_t n, int swapped) {
    unsigned char *d = dst;
    for (size_t k = 0; k < n; k++) d[k] = src[swapped ? n - 1 - k : k];
}
static int16_t get_i16(const unsigned char *b, size_t at, int swapped) {
    int16_t x;
    get_bytes(&x, b + at, sizeof x, swapped);
    return x;
}
static int32_t get_i32(const unsigned char *b, size_t at, int swapped) {
    int32_t x;
    get_bytes(&x, b + at, sizeof x, swapped);
    return x;
}
static int64_t get_i64(const unsigned char *b, size_t at, int swapped) {
    int64_t x;
    get_bytes(&x, b + at, sizeof x, swapped);
    return x;
}
static float get_f32(const unsigned char *b, size_t at, int swapped) {
    float x;
    get_bytes(&x, b + at, sizeof x, swapped);
    return x;
}

static int32_t swap_i32(int32_t x) {
    int32_t y;
    get_bytes(&y, (const unsigned char *)&x, sizeof y, 1);
    return y;
}

/* The magic (up to its NUL) as printable text, for messages. */
static void magic_text(char *dst, const unsigned char *m) {
    int k = 0;
    for (; k < 4 && m[k]; k++) dst[k] = m[k] >= 0x20 && m[k] < 0x7f ? (char)m[k] : '?';
    dst[k] = '\0';
}

/* Header size, byte order and magic: which NIfTI this is. */
static lpm_status parse_version(const unsigned char *b, size_t got, nifti_layout *L) {
    const char *f = L->hdr;
    if (got < 4)
        return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file (%zu bytes; a NIfTI header has 348)", f, got);
    int32_t size;
    memcpy(&size, b, sizeof size);
    L->swapped = size != NIFTI1_HEADER_SIZE && size != NIFTI2_HEADER_SIZE;
    if (L->swapped) size = swap_i32(size);
    if (size != NIFTI1_HEADER_SIZE && size != NIFTI2_HEADER_SIZE)
        return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file (sizeof_hdr is %d, not 348 or 540)", f,
                        get_i32(b, 0, 0));
    L->version = size == NIFTI1_HEADER_SIZE ? 1 : 2;
    if (got < (size_t)size)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header cut short (%zu of %d bytes)", f, L->version,
                        got, (int)size);
    const unsigned char *m = b + (L->version == 1 ? 344 : 4);
    char want = (char)('0' + L->version);
    /* ANALYZE 7.5 (SPM's .hdr/.img, no magic) has NIfTI-1's layout: nifti_clib reads it. */
    L->analyze = L->version == 1 && L->pair && !m[0] && !m[1] && !m[2] && !m[3];
    if (L->analyze) return LPM_OK;
    if (m[0] != 'n' || (m[1] != '+' && m[1] != 'i') || m[2] != want || m[3] != '\0') {
        char text[5];
        magic_text(text, m);
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: magic is \"%s\", not \"n+%c\" or \"ni%c\"", f,
                        L->version, text, want, want);
    }
    if ((m[1] == 'i') != L->pair)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: magic \"n%c%c\" marks %s, but the file is %s", f,
                        L->version, m[1], want, L->pair ? "a single .nii file" : "a .hdr/.img pair",
                        L->pair ? "a .hdr header" : "not a .hdr");
    return LPM_OK;
}

/* dim, datatype, bitpix and vox_offset: everything nifti_clib loops over, sizes or seeks by. */
static lpm_status parse_fields(const unsigned char *b, nifti_layout *L) {
    const char *f = L->hdr;
    const int v = L->version, sw = L->swapped;
    for (int k = 0; k < 8; k++) L->dim[k] = v == 1 ? get_i16(b, 40 + 2 * k, sw) : get_i64(b, 16 + 8 * k, sw);
    if (L->dim[0] < 1 || L->dim[0] > 7)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: dim[0] is %lld, must be 1..7", f, v,
                        (long long)L->dim[0]);
    for (int k = 1; k <= L->dim[0]; k++)
        if (L->dim[k] < 1)
            return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: dim[%d] is %lld, must be at least 1", f, v,
                            k, (long long)L->dim[k]);
    L->datatype = v == 1 ? get_i16(b, 70, sw) : get_i16(b, 12, sw);
    if (!nifti_is_valid_datatype(L->datatype))
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: datatype %d is not a NIfTI datatype", f, v,
                        L->datatype);
    if (!is_scalar_type(L->datatype))
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: NIfTI-%d header: datatype %s not supported (code %d); lpmnet needs scalar data",
                        f, v, nifti_datatype_string(L->datatype), L->datatype);
    int nbyper, swapsize;
    nifti_datatype_sizes(L->datatype, &nbyper, &swapsize);
    int bitpix = v == 1 ? get_i16(b, 72, sw) : get_i16(b, 14, sw);
    if (bitpix != 8 * nbyper)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: bitpix is %d, but datatype %s has %d bits", f,
                        v, bitpix, nifti_datatype_string(L->datatype), 8 * nbyper);
    const int64_t least = L->pair ? 0 : v == 1 ? NIFTI1_MIN_VOX_OFFSET : NIFTI2_MIN_VOX_OFFSET;
    if (v == 1) {
        /* a float, which nifti_clib converts to int: outside int's range that is undefined */
        double off = get_f32(b, 108, sw);
        if (!isfinite(off) || off != floor(off))
            return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-1 header: vox_offset %g is not a whole number of bytes",
                            f, off);
        if (off > INT32_MAX)
            return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-1 header: vox_offset %g is beyond 2^31-1", f, off);
        if (off < (double)least)
            return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-1 header: vox_offset is %g, must be at least %lld%s", f,
                            off, (long long)least, L->pair ? "" : " (the data would overlap the header)");
        L->vox_offset = (int64_t)off;
    } else {
        L->vox_offset = get_i64(b, 168, sw);
    }
    if (L->vox_offset < least)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: vox_offset is %lld, must be at least %lld%s", f, v,
                        (long long)L->vox_offset, (long long)least,
                        L->pair ? "" : " (the data would overlap the header)");
    /* nifti_clib reads the extensions between the header and vox_offset into memory */
    if (!L->pair && (uint64_t)L->vox_offset > lpm_max_memory())
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: vox_offset %lld leaves more room for extensions "
                        "than the memory limit", f, v, (long long)L->vox_offset);
    return LPM_OK;
}

static lpm_status read_raw_header(nifti_layout *L) {
    unsigned char b[NIFTI2_HEADER_SIZE];
    znzFile fp = znzopen(L->hdr, "rb", nifti_is_gzfile(L->hdr));
    if (znz_isnull(fp)) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", L->hdr, strerror(errno));
    size_t got = znzread(b, 1, sizeof b, fp);
    znzclose(fp);
    lpm_status s = parse_version(b, got, L);
    return s ? s : parse_fields(b, L);
}

static void dims_text(char *buf, size_t n, const int64_t *dim) {
    size_t len = 0;
    buf[0] = '\0';
    for (int64_t k = 1; k <= dim[0] && k <= 7 && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", k > 1 ? "x" : "", (long long)dim[k]);
}

/* bytes as "23.3 KB", "1.0 GB": sizes in messages. */
static void size_text(char *dst, size_t n, double bytes) {
    static const char *unit[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    for (; bytes >= 1000 && u < 6; u++) bytes /= 1000;
    snprintf(dst, n, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

/* The data the header declares must fit its file (or, compressed, what the file can hold)
 * and, when it is to be read, the memory limit; all products checked for overflow. */
static lpm_status check_data_size(const nifti_layout *L, int with_data) {
    char dims[160];
    dims_text(dims, sizeof dims, L->dim);
    int nbyper, swapsize, ok = 1;
    nifti_datatype_sizes(L->datatype, &nbyper, &swapsize);
    size_t nvox = 1;
    for (int k = 1; k <= L->dim[0]; k++) nvox = lpm_mul_size(nvox, (size_t)L->dim[k], &ok);
    size_t nbytes = lpm_mul_size(nvox, (size_t)nbyper, &ok);
    if (!ok || nbytes > (size_t)INT64_MAX - (size_t)L->vox_offset)
        return lpm_fail(LPM_ERR_INPUT, "%s: NIfTI-%d header: dim %s of %d-byte voxels is too large to address",
                        L->hdr, L->version, dims, nbyper);
    uint64_t need = (uint64_t)L->vox_offset + nbytes;
    struct stat st;
    if (stat(L->img, &st) != 0) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", L->img, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    if (nifti_is_gzfile(L->img)) {
        if (size < need / DEFLATE_MAX_RATIO)
            return lpm_fail(LPM_ERR_INPUT,
                            "%s: truncated or corrupt data (the header's dim %s needs %llu bytes; %llu gzip "
                            "bytes cannot hold that many)",
                            L->img, dims, (unsigned long long)need, (unsigned long long)size);
    } else if (size < need) {
        return lpm_fail(LPM_ERR_INPUT, "%s: truncated or corrupt data (%llu bytes, the header needs %llu)",
                        L->img, (unsigned long long)size, (unsigned long long)need);
    }
    /* Read, the volume is nvox float32 values (the stored values pass through a small buffer). */
    if (with_data && (nvox > (size_t)UINT64_MAX / sizeof(float) || nvox * sizeof(float) > lpm_max_memory())) {
        char need_text[32], limit_text[32];
        size_text(need_text, sizeof need_text, (double)nvox * sizeof(float));
        size_text(limit_text, sizeof limit_text, (double)lpm_max_memory());
        return lpm_fail(LPM_ERR_INPUT, "%s: dim %s needs %s as float32, more than the memory limit of %s",
                        L->hdr, dims, need_text, limit_text);
    }
    return LPM_OK;
}

/* Everything above, for the file the user named: its header file, its raw header, its data
 * file, and the sizes. */
static lpm_status check_nifti_file(const char *path, int with_data, nifti_layout *L) {
    memset(L, 0, sizeof *L);
    lpm_status s = lpm_check_input_file(path);
    if (!s) s = find_header_file(path, L);
    if (!s) s = find_image_file(L);
    if (!s) s = read_raw_header(L);
    if (!s) s = check_data_size(L, with_data);
    return s;
}

/* ---- nifti_clib's view, and the data */

static void dims_string(char *buf, size_t n, const nifti_image *nim) { dims_text(buf, n, nim->dim); }

/* Voxels are read and converted this many at a time: no second copy of the volume in its
 * stored type, and a compressed file that ends early has cost only the data it held. */
enum { LOAD_CHUNK = 1 << 16 };

/* nifti_clib's loader silently replaces NaN and Inf in float data with 0, which would hide
 * bad voxels; read the bytes ourselves (znzlib handles .gz) so they reach the checks.
 * 0 on success; a short read (truncated file, broken gzip) fails. */
static int load_data(const nifti_image *nim, float *out, size_t n) {
    int ok = 1;
    const size_t nbyper = (size_t)nim->nbyper;
    lpm_mul_size(n, nbyper, &ok);
    if (!ok || nbyper == 0) return -1;
    unsigned char *buf = malloc(LOAD_CHUNK * nbyper);
    if (!buf) return -1;
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) {
        free(buf);
        return -1;
    }
    const int swap = nim->swapsize > 1 && nim->byteorder != nifti_short_order();
    /* NIfTI rule: scl_slope 0 (or not finite) means the stored values are the values. */
    const int scaled = nim->scl_slope != 0.0 && isfinite(nim->scl_slope) && isfinite(nim->scl_inter);
    ok = znzseek(fp, (long)nim->iname_offset, SEEK_SET) >= 0;
    for (size_t done = 0; ok && done < n;) {
        size_t m = n - done < LOAD_CHUNK ? n - done : LOAD_CHUNK;
        ok = znzread(buf, 1, m * nbyper, fp) == m * nbyper;
        if (!ok) break;
        if (swap) nifti_swap_Nbytes((int64_t)m, nim->swapsize, buf);
        for (size_t i = 0; i < m; i++) {
            double x = voxel(buf, nim->datatype, i);
            out[done + i] = (float)(scaled ? x * nim->scl_slope + nim->scl_inter : x);
        }
        done += m;
    }
    znzclose(fp);
    free(buf);
    return ok ? 0 : -1;
}

static lpm_status read_volume(const char *path, lpm_volume *out, int with_data) {
    memset(out, 0, sizeof *out);
    nifti_layout layout;
    lpm_status s = check_nifti_file(path, with_data, &layout);
    if (s) return s;
    quiet_nifti();
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim)
        return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file (or its header is corrupt)", path);
    /* nifti_clib 3.0.1 calls a NIfTI-2 file NIfTI-1 on reading; the magic says which it is. */
    nim->nifti_type = layout.analyze ? NIFTI_FTYPE_ANALYZE
                    : layout.version == 2 ? (layout.pair ? NIFTI_FTYPE_NIFTI2_2 : NIFTI_FTYPE_NIFTI2_1)
                                          : (layout.pair ? NIFTI_FTYPE_NIFTI1_2 : NIFTI_FTYPE_NIFTI1_1);
    char dims[128];
    dims_string(dims, sizeof dims, nim);
    if (nim->dim[0] < 3) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: %lld-D data (%s); lpmnet needs a 3-D volume", path,
                     (long long)nim->dim[0], dims);
        goto fail;
    }
    for (int64_t k = 4; k <= nim->dim[0] && k <= 7; k++)
        if (nim->dim[k] != 1) {
            s = lpm_fail(LPM_ERR_INPUT, "%s: %lld-D data (%s); lpmnet needs a 3-D volume", path,
                         (long long)nim->dim[0], dims);
            goto fail;
        }
    /* nifti_clib replaces zero and non-finite spacings with 1; a finite one may still be
     * beyond float, which the volume keeps its spacing in. */
    const double spacing[3] = {fabs(nim->dx), fabs(nim->dy), fabs(nim->dz)};
    for (int k = 0; k < 3; k++)
        if (!(spacing[k] <= FLT_MAX)) {
            s = lpm_fail(LPM_ERR_INPUT, "%s: pixdim[%d] is %g, not a usable voxel size", path, k + 1, spacing[k]);
            goto fail;
        }
    /* The checks above make these hold; they guard against the files changing in between. */
    int ok = 1;
    size_t n = lpm_mul_size(lpm_mul_size((size_t)nim->nx, (size_t)nim->ny, &ok), (size_t)nim->nz, &ok);
    if (nim->nx < 1 || nim->ny < 1 || nim->nz < 1 || !ok || (int64_t)n != nim->nvox ||
        !is_scalar_type(nim->datatype) || !nim->iname || strcmp(nim->iname, layout.img) != 0 ||
        nim->iname_offset != layout.vox_offset) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: header changed while reading, or bad dimensions (%s)", path, dims);
        goto fail;
    }
    if (with_data) {
        out->data = lpm_malloc(n, sizeof(float));
        if (!out->data) {
            s = LPM_ERR_INTERNAL;
            goto fail;
        }
        if (load_data(nim, out->data, n) != 0) {
            s = lpm_fail(LPM_ERR_INPUT, "%s: truncated or corrupt data", path);
            goto fail;
        }
    }


    out->nx = nim->nx;
    out->ny = nim->ny;
    out->nz = nim->nz;
    out->pixdim[0] = (float)fabs(nim->dx);
    out->pixdim[1] = (float)fabs(nim->dy);
    out->pixdim[2] = (float)fabs(nim->dz);
    if (nim->sform_code > 0) {
        memcpy(out->affine, nim->sto_xyz.m, sizeof out->affine);
    } else if (nim->qform_code > 0) {
        memcpy(out->affine, nim->qto_xyz.m, sizeof out->affine);
    } else {
        memset(out->affine, 0, sizeof out->affine);
        out->affine[0][0] = nim->dx;
        out->affine[1][1] = nim->dy;
        out->affine[2][2] = nim->dz;
        out->affine[3][3] = 1.0;
    }
    out->header = nim;
    return LPM_OK;
fail:
    nifti_image_free(nim);
    free(out->data);
    memset(out, 0, sizeof *out);
    return s;
}

lpm_status lpm_volume_read(const char *path, lpm_volume *out) { return read_volume(path, out, 1); }

lpm_status lpm_volume_read_header(const char *path, lpm_volume *out) {
    return read_volume(path, out, 0);
}

/* ------------------------------------------------------------ names */

void lpm_volume_stem(const char *path, char *out, size_t n) {
    if (!n) return;
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    size_t len = strlen(name);
    static const char *const ext[] = {".nii.gz", ".hdr.gz", ".img.gz", ".nii", ".hdr", ".img", ".gz"};
    for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++) {
        size_t m = strlen(ext[k]);
        if (len > m && strcasecmp(name + len - m, ext[k]) == 0) {
            len -= m;
            break;
        }
    }
    snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), name);
}

/* ------------------------------------------------------------ write */

#include <sys/file.h> /* flock: the write half's only extra header */

typedef enum { EXT_NII, EXT_NII_GZ, EXT_HDR, EXT_HDR_GZ, EXT_IMG, EXT_IMG_GZ, EXT_NONE } ext_kind;
static const char *ext_names[] = {".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"};

static ext_kind find_ext(const char *path) {
    size_t n = strlen(path);
    /* longest first, so ".nii.gz" wins over ".gz" lookalikes */
    static const ext_kind order[] = {EXT_NII_GZ, EXT_HDR_GZ, EXT_IMG_GZ, EXT_NII, EXT_HDR, EXT_IMG};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        size_t m = strlen(ext_names[order[k]]);
        if (n > m && strcmp(path + n - m, ext_names[order[k]]) == 0) return order[k];
    }
    return EXT_NONE;
}

static ext_kind plain_ext(ext_kind e) {
    return e == EXT_NII_GZ ? EXT_NII : e == EXT_HDR_GZ ? EXT_HDR : e == EXT_IMG_GZ ? EXT_IMG : e;
}

/* path with its extension (of kind e) replaced by ext_names[to]. */
static lpm_status swap_ext(char *dst, size_t n, const char *path, ext_kind e, ext_kind to) {
    size_t stem = strlen(path) - strlen(ext_names[e]);
    int len = snprintf(dst, n, "%.*s%s", (int)stem, path, ext_names[to]);
    if (len < 0 || (size_t)len >= n) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    return LPM_OK;
}

/* Create the temporary file ourselves: nifti_clib's own open failure says nothing useful. */
static lpm_status reserve(const char *tmp, const char *path) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        int err = errno;
        char dir[4096];
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
        struct stat st;
        if (slash && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
            return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: %s is not a folder", path, dir);
        if (err == ENOENT)
            return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: folder %s does not exist", path, dir);
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: %s", path, strerror(err));
    }
    close(fd);
    return LPM_OK;
}

/* The uncompressed file nifti_clib wrote has the full size: checks nothing was cut short. */
static int file_holds(const char *file, uint64_t bytes) {
    struct stat st;
    return stat(file, &st) == 0 && (uint64_t)st.st_size == bytes;
}

/* The two renames of a .hdr/.img pair happen under an exclusive flock on the output's
 * folder, so two lpmnet writers of one pair cannot interleave them (img of one, hdr of the
 * other). The lock is on the folder itself: it leaves no file behind, and the kernel drops
 * it when the process dies. Returns the locked fd, or -1 (then the renames go unlocked:
 * a folder that cannot be opened or locked still gets its file). */
static int lock_folder(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r;
    while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
    if (r != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void unlock_folder(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

/* Copy the geometry of ref (a nifti header, or else its affine) into nim. */
static void set_geometry(nifti_image *nim, const lpm_volume *ref) {
    const nifti_image *h = ref ? ref->header : NULL;
    if (h) {
        nim->qform_code = h->qform_code;
        nim->sform_code = h->sform_code;
        nim->quatern_b = h->quatern_b;
        nim->quatern_c = h->quatern_c;
        nim->quatern_d = h->quatern_d;
        nim->qoffset_x = h->qoffset_x;
        nim->qoffset_y = h->qoffset_y;
        nim->qoffset_z = h->qoffset_z;
        nim->qfac = h->qfac;
        nim->qto_xyz = h->qto_xyz;
        nim->qto_ijk = h->qto_ijk;
        nim->sto_xyz = h->sto_xyz;
        nim->sto_ijk = h->sto_ijk;
        nim->dx = nim->pixdim[1] = h->dx;
        nim->dy = nim->pixdim[2] = h->dy;
        nim->dz = nim->pixdim[3] = h->dz;
        nim->xyz_units = h->xyz_units;
        nim->time_units = h->time_units;
        nim->freq_dim = h->freq_dim;
        nim->phase_dim = h->phase_dim;
        nim->slice_dim = h->slice_dim;
        memcpy(nim->descrip, h->descrip, sizeof nim->descrip);
        nim->descrip[sizeof nim->descrip - 1] = '\0';
        return;
    }
    nim->dx = nim->pixdim[1] = ref ? ref->pixdim[0] : 1.0;
    nim->dy = nim->pixdim[2] = ref ? ref->pixdim[1] : 1.0;
    nim->dz = nim->pixdim[3] = ref ? ref->pixdim[2] : 1.0;
    nim->xyz_units = NIFTI_UNITS_MM;
    snprintf(nim->descrip, sizeof nim->descrip, "lpmnet %s", LPM_VERSION);
    if (!ref) {
        nim->qform_code = nim->sform_code = 0;
        return;
    }
    /* A volume without a header (made in memory) still has an affine: store it as both. */
    nifti_dmat44 m;
    memcpy(m.m, ref->affine, sizeof m.m);
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_dmat44_inverse(m);
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    double dx, dy, dz;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                            &nim->qoffset_y, &nim->qoffset_z, &dx, &dy, &dz, &nim->qfac);
    nim->dx = nim->pixdim[1] = dx;
    nim->dy = nim->pixdim[2] = dy;
    nim->dz = nim->pixdim[3] = dz;
    nim->qto_xyz = nifti_quatern_to_dmat44(nim->quatern_b, nim->quatern_c, nim->quatern_d,
                                           nim->qoffset_x, nim->qoffset_y, nim->qoffset_z,
                                           dx, dy, dz, nim->qfac);
    nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
}

/* Take the given temporary names (NULL: none) off the signal-cleanup registry. */
static void forget_temps(const char *a, const char *b, const char *c, const char *d) {
    const char *names[4] = {a, b, c, d};
    for (int k = 0; k < 4; k++)
        if (names[k]) lpm_temp_forget(names[k]);
}

/* What one write stores: the voxels and the header fields that depend on their type. */
typedef struct {
    const void *data;
    int datatype;           /* NIFTI_TYPE_FLOAT32 or NIFTI_TYPE_RGB24 */
    int64_t nx, ny, nz;
    double scl_slope;       /* 1 for float data; 0 (no scaling) for RGB */
    double cal_min, cal_max;
    const char *descrip;    /* NULL: ref's header's, else "lpmnet VERSION" */
} nifti_payload;

/* Write p with ref's geometry through temporary files and renames (.nii, .nii.gz, .hdr/.img). */
static lpm_status write_nifti(const char *path, const nifti_payload *p, const lpm_volume *ref) {
    ext_kind e = find_ext(path);
    if (e == EXT_NONE)
        return lpm_fail(LPM_ERR_INPUT, "%s: unknown extension; use .nii, .nii.gz or .hdr/.img", path);
    int pair = e != EXT_NII && e != EXT_NII_GZ;
    int gz = e == EXT_NII_GZ || e == EXT_HDR_GZ || e == EXT_IMG_GZ;
    ext_kind hdr_ext = pair ? (gz ? EXT_HDR_GZ : EXT_HDR) : e;
    ext_kind img_ext = pair ? (gz ? EXT_IMG_GZ : EXT_IMG) : e;

    /* nifti_clib writes uncompressed files (raw_*); with gz they are then compressed in
     * parallel (gzip.c) into tmp_*, and the tmp_* names are renamed to the final ones. */
    char final_hdr[4096], final_img[4096], tmp_hdr[4096], tmp_img[4096];
    char raw_hdr[4096], raw_img[4096];
    tmp_hdr[0] = '\0';
    const ext_kind raw_hdr_ext = gz ? plain_ext(hdr_ext) : hdr_ext;
    const ext_kind raw_img_ext = gz ? plain_ext(img_ext) : img_ext;
    lpm_status s = swap_ext(final_hdr, sizeof final_hdr, path, e, hdr_ext);
    if (!s) s = swap_ext(final_img, sizeof final_img, path, e, img_ext);
    if (!s) s = lpm_temp_name_like(tmp_hdr, sizeof tmp_hdr, final_hdr, ext_names[hdr_ext]);
    if (!s) s = swap_ext(tmp_img, sizeof tmp_img, tmp_hdr, hdr_ext, img_ext);
    if (!s) s = swap_ext(raw_hdr, sizeof raw_hdr, tmp_hdr, hdr_ext, raw_hdr_ext);
    if (!s) s = swap_ext(raw_img, sizeof raw_img, tmp_hdr, hdr_ext, raw_img_ext);
    if (s) {
        if (tmp_hdr[0]) lpm_temp_forget(tmp_hdr);
        return s;
    }
    /* tmp_hdr is registered by lpm_temp_name_like; the other names a signal must remove: */
    if (pair) lpm_temp_register(tmp_img);
    if (gz) {
        lpm_temp_register(raw_hdr);
        if (pair) lpm_temp_register(raw_img);
    }

    /* Reserve the temporary names first: this is where a missing or read-only folder shows. */
    nifti_image *nim = NULL;
    if ((s = reserve(tmp_hdr, path)) || (pair && (s = reserve(tmp_img, path)))) goto cleanup;

    quiet_nifti();
    int big = p->nx > 32767 || p->ny > 32767 || p->nz > 32767;
    int64_t dims[8] = {3, p->nx, p->ny, p->nz, 1, 1, 1, 1};
    nim = nifti_make_new_nim(dims, p->datatype, 0);
    if (!nim) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: cannot make a NIfTI header", path);
        goto cleanup;
    }
    set_geometry(nim, ref);
    if (p->descrip) snprintf(nim->descrip, sizeof nim->descrip, "%s", p->descrip);
    nim->scl_slope = p->scl_slope;
    nim->scl_inter = 0.0;
    nim->cal_min = p->cal_min;
    nim->cal_max = p->cal_max;
    nim->nifti_type = big ? (pair ? NIFTI_FTYPE_NIFTI2_2 : NIFTI_FTYPE_NIFTI2_1)
                          : (pair ? NIFTI_FTYPE_NIFTI1_2 : NIFTI_FTYPE_NIFTI1_1);
    free(nim->fname);
    free(nim->iname);
    nim->fname = nifti_strdup(raw_hdr);
    nim->iname = nifti_strdup(pair ? raw_img : raw_hdr);
    if (!nim->fname || !nim->iname) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: out of memory", path);
        goto cleanup;
    }
    /* nifti_clib only reads the data; the cast drops const for its struct field alone. */
    nim->data = (void *)p->data;
    znzFile fp = nifti_image_write_hdr_img2(nim, 3, "wb", NULL, NULL);
    nim->data = NULL;
    /* znzclose also sets fp to NULL */
    int close_ok = fp != NULL && znzclose(fp) == 0;
    uint64_t nbytes = (uint64_t)nim->nvox * (uint64_t)nim->nbyper;
    int written = close_ok &&
                  (pair ? file_holds(raw_img, nbytes)
                        : file_holds(raw_hdr, (uint64_t)nim->iname_offset + nbytes));
    if (!written) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: write failed (disk full or I/O error?)", path);
        goto cleanup;
    }
    if (gz) {
        s = lpm_gzip_file(raw_hdr, tmp_hdr);
        if (!s && pair) s = lpm_gzip_file(raw_img, tmp_img);
        unlink(raw_hdr);
        if (pair) unlink(raw_img);
        if (s) goto cleanup;
    }
    /* The header names the data, so it moves last. */
    int lock = pair ? lock_folder(final_hdr) : -1;
    if ((pair && rename(tmp_img, final_img) != 0) || rename(tmp_hdr, final_hdr) != 0) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: cannot rename the temporary file: %s", path,
                     strerror(errno));
        unlock_folder(lock);
        goto cleanup;
    }
    unlock_folder(lock);
    nifti_image_free(nim);
    forget_temps(tmp_hdr, pair ? tmp_img : NULL, gz ? raw_hdr : NULL, gz && pair ? raw_img : NULL);
    return LPM_OK;
cleanup:
    if (nim) nifti_image_free(nim);
    unlink(tmp_hdr);
    if (pair) unlink(tmp_img);
    if (gz) {
        unlink(raw_hdr);
        if (pair) unlink(raw_img);
    }
    forget_temps(tmp_hdr, pair ? tmp_img : NULL, gz ? raw_hdr : NULL, gz && pair ? raw_img : NULL);
    return s;
}

lpm_status lpm_volume_write_described(const char *path, const lpm_volume *v, const lpm_volume *ref,
                                      const char *descrip) {
    if (!v->data || v->nx <= 0 || v->ny <= 0 || v->nz <= 0)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: nothing to write (empty volume)", path);
    /* A NaN or Inf voxel is refused before any file is created: readers would take it
     * for data, and cal_min/cal_max would be meaningless. */
    size_t n = (size_t)lpm_volume_numel(v), bad = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = v->data[i];
        if (!isfinite(x)) {
            bad++;
            continue;
        }
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    if (bad)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: the volume has %zu non-finite voxels (NaN/Inf); nothing written",
                        path, bad);
    const nifti_payload p = {v->data, NIFTI_TYPE_FLOAT32, v->nx, v->ny, v->nz, 1.0, lo, hi, descrip};
    return write_nifti(path, &p, ref);
}

lpm_status lpm_volume_write(const char *path, const lpm_volume *v, const lpm_volume *ref) {
    return lpm_volume_write_described(path, v, ref, NULL);
}

lpm_status lpm_volume_write_rgb(const char *path, const uint8_t *rgb, const lpm_volume *ref,
                                const char *descrip) {
    if (!rgb || !ref || ref->nx <= 0 || ref->ny <= 0 || ref->nz <= 0)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: nothing to write (no RGB data or no reference grid)", path);
    /* RGB24 takes no scaling (scl_slope 0); the display range is that of the bytes. */
    const nifti_payload p = {rgb, NIFTI_TYPE_RGB24, ref->nx, ref->ny, ref->nz, 0.0, 0.0, 255.0, descrip};
    return write_nifti(path, &p, ref);
}
