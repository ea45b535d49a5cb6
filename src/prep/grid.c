/* Voxel grids: are two volumes on one grid, and resampling one onto another's grid. */
#include "core/core.h"

#include <math.h>

lpm_status lpm_check_same_grid(const lpm_volume *a, const lpm_volume *b,
                               const char *name_a, const char *name_b) {
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz)
        return lpm_fail(LPM_ERR_INPUT,
                        "%s (%lldx%lldx%lld) and %s (%lldx%lldx%lld) are not on one voxel grid; "
                        "co-register them first or resample %s onto %s", name_a, (long long)a->nx,
                        (long long)a->ny, (long long)a->nz, name_b, (long long)b->nx,
                        (long long)b->ny, (long long)b->nz, name_b, name_a);
    double worst = 0;
    int wr = 0, wc = 0;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            double d = fabs(a->affine[r][c] - b->affine[r][c]);
            if (isnan(d)) d = INFINITY;  /* a NaN entry is never the same grid */
            if (d > worst) {
                worst = d;
                wr = r;
                wc = c;
            }
        }
    if (!(worst <= 1e-3))
        return lpm_fail(LPM_ERR_INPUT,
                        "%s and %s have the same size but different voxel-to-world affines "
                        "(largest difference %g at [%d][%d]: %g vs %g); co-register them first or "
                        "resample %s onto %s", name_a, name_b, worst, wr, wc, a->affine[wr][wc],
                        b->affine[wr][wc], name_b, name_a);
    return LPM_OK;
}

/* Inverse of an affine 4x4 (last row 0 0 0 1); 0 when singular. */
static int invert_affine(const double m[4][4], double inv[4][4]) {
    double a = m[0][0], b = m[0][1], c = m[0][2];
    double d = m[1][0], e = m[1][1], f = m[1][2];
    double g = m[2][0], h = m[2][1], k = m[2][2];
    double det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g);
    if (!(fabs(det) > 1e-12) || !isfinite(det)) return 0;
    double r[3][3] = {
        {(e * k - f * h) / det, (c * h - b * k) / det, (b * f - c * e) / det},
        {(f * g - d * k) / det, (a * k - c * g) / det, (c * d - a * f) / det},
        {(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det},
    };
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) inv[i][j] = r[i][j];
        inv[i][3] = -(r[i][0] * m[0][3] + r[i][1] * m[1][3] + r[i][2] * m[2][3]);
        inv[3][i] = 0;
    }
    inv[3][3] = 1;
    return 1;
}

/* Coordinates within this of a voxel centre are taken as on it, so that equal grids copy exactly
 * despite rounding in the matrix products. */
#define SNAP 1e-6

static double snap(double x) {
    double r = nearbyint(x);
    return fabs(x - r) < SNAP ? r : x;
}

lpm_status lpm_resample_to(const lpm_volume *src, const lpm_volume *ref, lpm_volume *out) {
    double inv[4][4], m[4][4];
    if (!invert_affine(src->affine, inv))
        return lpm_fail(LPM_ERR_INPUT, "resample: the source volume's affine is singular");
    lpm_status s = lpm_volume_alloc_like(out, ref);
    if (s) return s;
    /* ref voxel -> world -> src voxel in one matrix */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double acc = 0;
            for (int k = 0; k < 4; k++) acc += inv[i][k] * ref->affine[k][j];
            m[i][j] = acc;
        }
    const int64_t sx = src->nx, sy = src->ny, sz = src->nz;
    const float *in = src->data;
    int64_t covered = 0;  /* ref voxels that see at least one src voxel */
    #pragma omp parallel for schedule(static) reduction(+ : covered)
    for (int64_t k = 0; k < ref->nz; k++)
        for (int64_t j = 0; j < ref->ny; j++)
            for (int64_t i = 0; i < ref->nx; i++) {
                double p[3];
                for (int r = 0; r < 3; r++)
                    p[r] = snap(m[r][0] * (double)i + m[r][1] * (double)j + m[r][2] * (double)k + m[r][3]);
                double fx = floor(p[0]), fy = floor(p[1]), fz = floor(p[2]);
                double acc = 0;
                int seen = 0;
                /* trilinear over the 8 neighbours; neighbours outside src count as 0 */
                if (fx >= -1 && fx < (double)sx && fy >= -1 && fy < (double)sy && fz >= -1 &&
                    fz < (double)sz) {
                    int64_t x0 = (int64_t)fx, y0 = (int64_t)fy, z0 = (int64_t)fz;
                    double tx = p[0] - fx, ty = p[1] - fy, tz = p[2] - fz;
                    for (int dz = 0; dz < 2; dz++) {
                        int64_t z = z0 + dz;
                        double wz = dz ? tz : 1 - tz;
                        if (z < 0 || z >= sz || wz == 0) continue;
                        for (int dy = 0; dy < 2; dy++) {
                            int64_t y = y0 + dy;
                            double wy = dy ? ty : 1 - ty;
                            if (y < 0 || y >= sy || wy == 0) continue;
                            for (int dx = 0; dx < 2; dx++) {
                                int64_t x = x0 + dx;
                                double wx = dx ? tx : 1 - tx;
                                if (x < 0 || x >= sx || wx == 0) continue;
                                acc += wz * wy * wx * in[x + sx * (y + sy * z)];
                                seen = 1;
                            }
                        }
                    }
                }
                out->data[i + ref->nx * (j + ref->ny * k)] = (float)acc;
                covered += seen;
            }
    /* Without any overlap the result is all zeros, which callers would only report later as
     * a "constant volume": say what is wrong instead. */
    if (!covered) {
        lpm_volume_free(out);
        return lpm_fail(LPM_ERR_INPUT, "resample: the volume to resample (B) does not overlap the reference (A) "
                        "in world space (check the affines)");
    }
    return LPM_OK;
}
