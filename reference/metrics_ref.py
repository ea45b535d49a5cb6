"""The twelve fusion metrics of docs/lpmnet.md section 3 in plain NumPy (float64).

Written from the text of docs/lpmnet.md, independently of src/metrics/: straightforward and
vectorised (the MI Parzen histogram builds the full pixels x bins matrix), meant for small
volumes. Volumes are (D, H, W) arrays; "slice-wise" means over the D images of H x W.

Conventions shared with lpmnet (they are choices where docs/lpmnet.md is silent):
- all_metrics() scores A, B, F as given (callers normalise; the CLI below reads float32 and
  min-max normalises each whole volume to [0, 1] in float32 first, as `lpmnet metrics` does
  by default).
- mask: all volumes are first cropped to the mask's bounding box. SSIM, VIF (windowed) and
  QABF, NABF, MI (slice-wise) then run on the cropped volumes as if they were whole.
  SCD, PSNR, SD, EN (sums and means over voxels) use only mask voxels; norm255 in EN and AG
  takes min and max over mask voxels; a difference (SF, rSFe) or corner (AG) term counts only
  when every voxel it reads is in the mask.
- PSNR with MSE 0 is +inf; the CLI writes non-finite values as JSON null.
- Sobel responses are summed row by row (top row minus bottom row, right column minus left
  column), so that flat regions give exactly 0 and the "Sx == 1e-10 exactly" test of QABF is
  decided the same way in any implementation that sums in that order.
"""
import json
import math
import sys

import numpy as np
from scipy import ndimage, sparse

EPS = 1e-10
NAMES = ("ssim", "qabf", "mi", "scd", "vif", "ag", "psnr", "en", "sd", "sf", "nabf", "rsfe")


def minmax(v):
    """(v - min)/(max - min) in float32 arithmetic, as the authors' float32 tensors (and
    lpmnet) do it, so that both score the same float32 values."""
    v = np.asarray(v, dtype=np.float32)
    lo, hi = v.min(), v.max()
    if not hi > lo:
        raise ValueError("constant volume")
    return ((v - lo) / (hi - lo)).astype(np.float64)


def norm255(v, m=None):
    sel = v if m is None else v[m]
    lo, hi = sel.min(), sel.max()
    return 255.0 * (v - lo) / (hi - lo)


def gauss1d(n, sigma):
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


# ------------------------------------------------------------------------- SSIM
def ssim3d(x, y):
    g = gauss1d(11, 1.5)

    def filt(v):  # 11^3 Gaussian, zero padding 5, "same" size
        for ax in range(3):
            v = ndimage.correlate1d(v, g, axis=ax, mode="constant", cval=0.0)
        return v

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


# ----------------------------------------------------------------- QABF, NABF
def sobel(v):
    """Slice-wise Sobel (cross-correlation, zero padding 1) -> g, angle as in docs/lpmnet.md."""
    D, H, W = v.shape
    p = np.pad(v, ((0, 0), (1, 1), (1, 1)))

    def s(dh, dw):
        return p[:, 1 + dh:1 + dh + H, 1 + dw:1 + dw + W]

    sx = (s(-1, -1) + 2 * s(-1, 0) + s(-1, 1)) - (s(1, -1) + 2 * s(1, 0) + s(1, 1))
    sy = (s(-1, 1) + 2 * s(0, 1) + s(1, 1)) - (s(-1, -1) + 2 * s(0, -1) + s(1, -1))
    sx = sx + 1e-10
    g = np.sqrt(sx * sx + sy * sy) + 1e-30
    with np.errstate(divide="ignore", invalid="ignore"):
        ang = np.where(sx == 1e-10, np.pi / 2, np.arctan(sy / sx))
    return g, ang


def edge_q(gx, ax, gf, af, Tg, kg, Dg, Ta, ka, Da):
    G = np.where(gf > gx, gx / gf, np.where(gf < gx, gf / gx, gf))
    A = 1 - np.abs(ax - af) / (np.pi / 2)
    return Tg / (1 + np.exp(kg * (G - Dg))) * Ta / (1 + np.exp(ka * (A - Da)))


def qabf_nabf(A, B, F):
    gA, aA = sobel(A)
    gB, aB = sobel(B)
    gF, aF = sobel(F)
    c = (0.9994, -15, 0.5, 0.9879, -22, 0.8)
    qa, qb = edge_q(gA, aA, gF, aF, *c), edge_q(gB, aB, gF, aF, *c)
    qabf = np.mean((qa * gA + qb * gB).sum(axis=(1, 2)) / (gA + gB).sum(axis=(1, 2)))
    c = (0.9999, -19, 0.5, 0.9995, -22, 0.5)
    qa, qb = edge_q(gA, aA, gF, aF, *c), edge_q(gB, aB, gF, aF, *c)
    wA = np.where(gA >= 2, gA ** 1.5, 0.001)
    wB = np.where(gB >= 2, gB ** 1.5, 0.001)
    n = ((gF > gA) & (gF > gB)).astype(np.float64)
    num = (n * ((1 - qa) * wA + (1 - qb) * wB)).sum(axis=(1, 2))
    nabf = np.mean(num / (wA + wB).sum(axis=(1, 2)))
    return float(qabf), float(nabf)


# --------------------------------------------------------------------------- MI
BINS = np.linspace(0, 255, 128)


def parzen(v):
    return np.exp(-0.5 * ((v[:, None] - BINS[None, :]) / 0.1) ** 2)


def entropy(p):
    # p + 1e-10 rounded to float32, as in the authors' float32 code: a one-bin (empty) slice
    # has entropy 0 and NMI 1 instead of float64's near-0/near-0 blow-up.
    return -(p * np.log((p + EPS).astype(np.float32).astype(np.float64))).sum()


def nmi_slices(X, Y):
    out = []
    for d in range(X.shape[0]):
        kx, ky = parzen(X[d].ravel()), parzen(Y[d].ravel())
        px, py = kx.mean(axis=0), ky.mean(axis=0)
        px, py = px / (px.sum() + EPS), py / (py.sum() + EPS)
        # K_X^T K_Y; most weights are exactly 0, so a sparse product gives the same sums fast
        j = (sparse.csr_matrix(kx).T @ sparse.csr_matrix(ky)).toarray()
        pxy = j / (j.sum() + EPS)
        hx, hy, hxy = entropy(px), entropy(py), entropy(pxy)
        out.append((2 * (hx + hy - hxy) + EPS) / (hx + hy + EPS))
    return np.mean(out)


def mi(A, B, F):
    a, b, f = norm255(A), norm255(B), norm255(F)
    return float((nmi_slices(a, f) + nmi_slices(b, f)) / 2)


# -------------------------------------------------------------------------- VIF
def valid(v, g):
    """Separable "valid" correlation with the 1-D kernel g on every axis (empty if too small)."""
    n = len(g)
    for ax in range(3):
        m = v.shape[ax] - n + 1
        if m <= 0:
            return np.zeros((0, 0, 0))
        v = np.moveaxis(v, ax, 0)
        v = sum(g[k] * v[k:k + m] for k in range(n))
        v = np.moveaxis(v, 0, ax)
    return v


def vif1(X, F):
    num = den = 0.0
    for scale in range(1, 5):
        N = 2 ** (5 - scale) + 1
        g = gauss1d(N, N / 5.0)
        if scale > 1:
            X = valid(X, g)[::2, ::2, ::2]
            F = valid(F, g)[::2, ::2, ::2]
        if X.size == 0:
            break
        m1, m2 = valid(X, g), valid(F, g)
        if m1.size == 0:
            continue
        s1 = np.maximum(valid(X * X, g) - m1 * m1, 0)
        s2 = np.maximum(valid(F * F, g) - m2 * m2, 0)
        s12 = valid(X * F, g) - m1 * m2
        gg = s12 / (s1 + EPS)
        sv = s2 - gg * s12
        k = s1 < EPS
        gg[k], sv[k], s1[k] = 0, s2[k], 0
        k = s2 < EPS
        gg[k], sv[k] = 0, 0
        k = gg < 0
        sv[k], gg[k] = s2[k], 0
        sv = np.maximum(sv, EPS)
        num += np.log10(1 + gg * gg * s1 / (sv + 2)).sum()
        den += np.log10(1 + s1 / 2).sum()
    return (num + EPS) / (den + EPS)


# ----------------------------------------------- voxel statistics (mask aware)
def corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return ((a * b).sum() + EPS) / (math.sqrt((a * a).sum() * (b * b).sum()) + EPS)


def diffs(V, m):
    """Forward differences along D, H, W and, with a mask, which of them lie inside it."""
    d = [np.diff(V, axis=ax) for ax in range(3)]
    if m is None:
        return d, [np.ones(x.shape, bool) for x in d]
    k = [m[1:] & m[:-1], m[:, 1:] & m[:, :-1], m[:, :, 1:] & m[:, :, :-1]]
    return d, k


def sf_terms(d, k):
    return [float((x[s] ** 2).mean()) if s.any() else 0.0 for x, s in zip(d, k)]


def ag(F, m):
    V = norm255(F, m)
    c = V[:-1, :-1, :-1]
    dD, dH, dW = V[1:, :-1, :-1] - c, V[:-1, 1:, :-1] - c, V[:-1, :-1, 1:] - c
    t = np.sqrt((dD ** 2 + dH ** 2 + dW ** 2) / 3)
    if m is not None:
        k = m[:-1, :-1, :-1] & m[1:, :-1, :-1] & m[:-1, 1:, :-1] & m[:-1, :-1, 1:]
        t = t[k]
    return float(t.mean())


def en(F, m):
    V = norm255(F, m)
    if m is not None:
        V = V[m]
    h, _ = np.histogram(V, bins=255, range=(0, 255))
    p = h / h.sum()
    return float(-(p * np.log2(p + 1e-7)).sum())


def psnr1(X, F):
    mse = ((X - F) ** 2).mean()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# -------------------------------------------------------------------------- all
def bbox(m):
    idx = np.nonzero(m)
    if len(idx[0]) == 0:
        raise ValueError("empty mask")
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)


def all_metrics(A, B, F, mask=None):
    A, B, F = (np.asarray(v, dtype=np.float64) for v in (A, B, F))
    m = None
    if mask is not None:
        m = np.asarray(mask) != 0
        bb = bbox(m)
        A, B, F, m = A[bb], B[bb], F[bb], m[bb]
    sel = (lambda v: v.ravel()) if m is None else (lambda v: v[m])
    a, b, f = sel(A), sel(B), sel(F)
    r = {}
    r["ssim"] = (ssim3d(A, F) + ssim3d(B, F)) / 2
    r["qabf"], r["nabf"] = qabf_nabf(A, B, F)
    r["mi"] = mi(A, B, F)
    r["scd"] = float((corr(f - b, a) + corr(f - a, b)) / 2)
    r["vif"] = float((vif1(A, F) + vif1(B, F)) / 2)
    r["ag"] = ag(F, m)
    r["psnr"] = (psnr1(a, f) + psnr1(b, f)) / 2
    r["en"] = en(F, m)
    r["sd"] = float(np.sqrt(((f - f.mean()) ** 2).mean()))
    dF, k = diffs(F, m)
    r["sf"] = math.sqrt(sum(sf_terms(dF, k)))
    dA, _ = diffs(A, m)
    dB, _ = diffs(B, m)
    dr = [np.maximum(np.abs(x), np.abs(y)) for x, y in zip(dA, dB)]
    sfr = math.sqrt(sum(sf_terms(dr, k)))
    r["rsfe"] = (r["sf"] - sfr) / sfr
    return {n: float(r[n]) for n in NAMES}


def main(argv):
    import argparse
    import nibabel as nib
    ap = argparse.ArgumentParser(description="Fusion metrics of docs/lpmnet.md section 3 (NumPy reference)")
    ap.add_argument("A")
    ap.add_argument("B")
    ap.add_argument("F")
    ap.add_argument("--mask")
    ap.add_argument("--no-normalize", action="store_true")
    args = ap.parse_args(argv)

    def load(p):  # NIfTI (x, y, z) -> (D, H, W) = (z, y, x)
        v = np.asarray(nib.load(p).get_fdata(dtype=np.float32))
        if v.ndim == 4 and v.shape[3] == 1:
            v = v[..., 0]
        return v.transpose(2, 1, 0)

    vols = [load(p) for p in (args.A, args.B, args.F)]
    if not args.no_normalize:
        vols = [minmax(v) for v in vols]
    mask = load(args.mask) != 0 if args.mask else None
    r = all_metrics(*vols, mask=mask)
    print(json.dumps({k: (v if math.isfinite(v) else None) for k, v in r.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
