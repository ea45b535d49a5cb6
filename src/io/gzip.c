/* Parallel gzip: the file is cut into one piece per thread, each piece is compressed as a
 * complete gzip member, and the members are written one after the other. A gzip file may
 * hold several members (RFC 1952, 2.2); zlib's gzread (nifti_clib, ITK, FSL), Python's
 * gzip (nibabel) and gunzip all read them as one stream. Compressing float volumes is
 * slow (about 16 MB/s at zlib's default level 6), so on two cores this halves the time of
 * writing a .nii.gz. The level is 1: on float volumes it compresses 1.4-1.7x faster than
 * level 6 for files at most 7% larger (a fused BraTS volume: 14.6 MB against 13.7 MB). */
#include "io.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { MIN_PIECE = 1 << 20 };

typedef struct {
    const unsigned char *in;
    size_t n_in;
    unsigned char *out;
    size_t n_out;
    int ok;
} piece;

static void compress_piece(piece *p, int level) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 15 + 16: a gzip header and trailer around the deflate stream */
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return;
    uLong bound = deflateBound(&zs, (uLong)p->n_in);
    p->out = malloc(bound);
    if (p->out) {
        zs.next_in = (Bytef *)p->in;
        zs.avail_in = (uInt)p->n_in;
        zs.next_out = p->out;
        zs.avail_out = (uInt)bound;
        p->ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
        p->n_out = bound - zs.avail_out;
    }
    deflateEnd(&zs);
}

lpm_status lpm_gzip_file(const char *src, const char *dst) {
    unsigned char *data = NULL;
    size_t n = 0;
    lpm_status s = lpm_read_file(src, &data, &n);
    if (s) return s;
    /* a deflate call takes at most 4 GB (uInt counts), hence the pieces' upper bound */
    const size_t max_piece = (size_t)1 << 30;
    int np = lpm_get_threads();
    if ((size_t)np > n / MIN_PIECE) np = n / MIN_PIECE > 0 ? (int)(n / MIN_PIECE) : 1;
    if (n / (size_t)np > max_piece) np = (int)(n / max_piece + 1);
    piece *pieces = calloc((size_t)np, sizeof *pieces);
    if (!pieces) {
        free(data);
        return lpm_fail(LPM_ERR_INTERNAL, "%s: out of memory", dst);
    }
    for (int i = 0; i < np; i++) {
        size_t a = n / (size_t)np * (size_t)i, b = i == np - 1 ? n : n / (size_t)np * (size_t)(i + 1);
        pieces[i] = (piece){.in = data + a, .n_in = b - a};
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < np; i++) compress_piece(&pieces[i], Z_BEST_SPEED);

    int ok = 1;
    for (int i = 0; i < np; i++) ok = ok && pieces[i].ok;
    FILE *fp = ok ? fopen(dst, "wb") : NULL;
    if (fp) {
        for (int i = 0; i < np; i++)
            ok = ok && fwrite(pieces[i].out, 1, pieces[i].n_out, fp) == pieces[i].n_out;
        ok = fclose(fp) == 0 && ok;
    } else if (ok) {
        ok = 0;
    }
    for (int i = 0; i < np; i++) free(pieces[i].out);
    free(pieces);
    free(data);
    if (!ok) return lpm_fail(LPM_ERR_INTERNAL, "%s: gzip compression or write failed (disk full?)", dst);
    return LPM_OK;
}
