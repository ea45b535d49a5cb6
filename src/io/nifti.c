/* NIfTI volumes through nifti_clib (NIfTI-1 and -2, .nii, .nii.gz, .hdr/.img): any scalar
 * type in, float32 out, with the geometry of a reference header. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <nifti2_io.h>
#include <pthread.h>
#include <string.h>
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

/* One voxel of a scalar NIfTI type as double (nifti_clib has already swapped bytes). */
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

/* Existence and readability first, so the usual mistakes get plain messages. */
static lpm_status check_readable(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return lpm_fail(LPM_ERR_INPUT, "%s: no such file", path);
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    close(fd);
    return LPM_OK;
}

static void dims_string(char *buf, size_t n, const nifti_image *nim) {
    size_t len = 0;
    buf[0] = '\0';
    for (int64_t k = 1; k <= nim->dim[0] && k <= 7 && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", k > 1 ? "x" : "",
                                (long long)nim->dim[k]);
}

/* nifti_clib's loader silently replaces NaN and Inf in float data with 0, which would hide
 * bad voxels; read the bytes ourselves (znzlib handles .gz) so they reach the checks.
 * 0 on success; a short read (truncated file, broken gzip) fails. */
static int load_data(nifti_image *nim) {
    size_t nbytes = (size_t)nim->nvox * (size_t)nim->nbyper;
    nim->data = malloc(nbytes ? nbytes : 1);
    if (!nim->data) return -1;
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) return -1;
    int ok = znzseek(fp, (long)nim->iname_offset, SEEK_SET) >= 0 &&
             znzread(nim->data, 1, nbytes, fp) == nbytes;
    znzclose(fp);
    if (!ok) return -1;
    if (nim->swapsize > 1 && nim->byteorder != nifti_short_order())
        nifti_swap_Nbytes(nim->nvox, nim->swapsize, nim->data);
    return 0;
}

static lpm_status read_volume(const char *path, lpm_volume *out, int with_data) {
    memset(out, 0, sizeof *out);
    lpm_status s = check_readable(path);
    if (s) return s;
    quiet_nifti();
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim)
        return lpm_fail(LPM_ERR_INPUT, "%s: not a NIfTI file (or its header is corrupt)", path);
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
    if (nim->nx < 1 || nim->ny < 1 || nim->nz < 1) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: bad dimensions (%s)", path, dims);
        goto fail;
    }
    if (!is_scalar_type(nim->datatype)) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: datatype %s not supported; lpmnet needs scalar data",
                     path, nifti_datatype_string(nim->datatype));
        goto fail;
    }
    if (nim->iname && strcmp(nim->iname, path) != 0 && access(nim->iname, R_OK) != 0) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: image file %s: %s", path, nim->iname, strerror(errno));
        goto fail;
    }
    int ok = 1;
    size_t n = lpm_mul_size(lpm_mul_size((size_t)nim->nx, (size_t)nim->ny, &ok), (size_t)nim->nz, &ok);
    if (!ok || (int64_t)n != nim->nvox) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: bad dimensions (%s)", path, dims);
        goto fail;
    }
    /* An uncompressed file too short for its header's dims is caught before allocating. */
    struct stat st;
    uint64_t need = (uint64_t)(nim->iname_offset > 0 ? nim->iname_offset : 0) +
                    (uint64_t)n * (uint64_t)nim->nbyper;
    if (nim->iname && !nifti_is_gzfile(nim->iname) && stat(nim->iname, &st) == 0 &&
        (uint64_t)st.st_size < need) {
        s = lpm_fail(LPM_ERR_INPUT, "%s: truncated or corrupt data (%lld bytes, the header needs %llu)",
                     path, (long long)st.st_size, (unsigned long long)need);
        goto fail;
    }
    if (with_data) {
        if (load_data(nim) != 0) {
            s = lpm_fail(LPM_ERR_INPUT, "%s: truncated or corrupt data", path);
            goto fail;
        }
        out->data = lpm_malloc(n, sizeof(float));
        if (!out->data) {
            s = LPM_ERR_INTERNAL;
            goto fail;
        }
        /* NIfTI rule: scl_slope 0 (or not finite) means the stored values are the values. */
        int scaled = nim->scl_slope != 0.0 && isfinite(nim->scl_slope) && isfinite(nim->scl_inter);
        for (size_t i = 0; i < n; i++) {
            double x = voxel(nim->data, nim->datatype, i);
            out->data[i] = (float)(scaled ? x * nim->scl_slope + nim->scl_inter : x);
        }
        nifti_image_unload(nim);
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

/* ------------------------------------------------------------ write */

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

lpm_status lpm_volume_write(const char *path, const lpm_volume *v, const lpm_volume *ref) {
    if (!v->data || v->nx <= 0 || v->ny <= 0 || v->nz <= 0)
        return lpm_fail(LPM_ERR_INTERNAL, "%s: nothing to write (empty volume)", path);
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
    const ext_kind raw_hdr_ext = gz ? plain_ext(hdr_ext) : hdr_ext;
    const ext_kind raw_img_ext = gz ? plain_ext(img_ext) : img_ext;
    lpm_status s = swap_ext(final_hdr, sizeof final_hdr, path, e, hdr_ext);
    if (!s) s = swap_ext(final_img, sizeof final_img, path, e, img_ext);
    if (!s) s = lpm_temp_name_like(tmp_hdr, sizeof tmp_hdr, final_hdr, ext_names[hdr_ext]);
    if (!s) s = swap_ext(tmp_img, sizeof tmp_img, tmp_hdr, hdr_ext, img_ext);
    if (!s) s = swap_ext(raw_hdr, sizeof raw_hdr, tmp_hdr, hdr_ext, raw_hdr_ext);
    if (!s) s = swap_ext(raw_img, sizeof raw_img, tmp_hdr, hdr_ext, raw_img_ext);
    if (s) return s;

    /* Reserve the temporary names first: this is where a missing or read-only folder shows. */
    if ((s = reserve(tmp_hdr, path))) return s;
    if (pair && (s = reserve(tmp_img, path))) {
        unlink(tmp_hdr);
        return s;
    }

    quiet_nifti();
    int big = v->nx > 32767 || v->ny > 32767 || v->nz > 32767;
    int64_t dims[8] = {3, v->nx, v->ny, v->nz, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, NIFTI_TYPE_FLOAT32, 0);
    if (!nim) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: cannot make a NIfTI header", path);
        goto cleanup;
    }
    set_geometry(nim, ref);
    nim->scl_slope = 1.0;
    nim->scl_inter = 0.0;
    size_t n = (size_t)lpm_volume_numel(v);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = v->data[i];
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    nim->cal_min = lo <= hi ? lo : 0.0;
    nim->cal_max = lo <= hi ? hi : 0.0;
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
    nim->data = (void *)v->data;
    znzFile fp = nifti_image_write_hdr_img2(nim, 3, "wb", NULL, NULL);
    nim->data = NULL;
    /* znzclose also sets fp to NULL */
    int close_ok = fp != NULL && znzclose(fp) == 0;
    uint64_t nbytes = (uint64_t)n * sizeof(float);
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
    if ((pair && rename(tmp_img, final_img) != 0) || rename(tmp_hdr, final_hdr) != 0) {
        s = lpm_fail(LPM_ERR_INTERNAL, "%s: cannot rename the temporary file: %s", path,
                     strerror(errno));
        goto cleanup;
    }
    nifti_image_free(nim);
    return LPM_OK;
cleanup:
    if (nim) nifti_image_free(nim);
    unlink(tmp_hdr);
    if (pair) unlink(tmp_img);
    if (gz) {
        unlink(raw_hdr);
        if (pair) unlink(raw_img);
    }
    return s;
}
