#!/usr/bin/env python3
"""Scores candidate fusion targets (blends of the classical methods) on a family's validation
pairs by the paper's eight metrics: the study behind `lpmnet train --target` (models/README.md).

Usage: tools/target_study.py SPLITS_DIR FAMILY [MODEL]
  SPLITS_DIR: what tools/splits.sh wrote; FAMILY: mri, ct-mr, pet-mr or pet-ct; MODEL: the
  LPM-Net weights scored beside them (default: the family's bundled model).
Prints, per method and candidate, the medians over the pairs and on how many of the eight
metrics it beats each classical method (rSFe by |rSFe|). Beside the classical blends, two
families of outputs made from LPM-Net's fusion F: F moved a fraction w of the way to the
--target recipe T ("lpmnet_toward_target{w}"), and F sharpened by an unsharp mask of
strength k ("lpmnet_unsharp{k}"): how close to T, or how much sharper, F would have to be;
and F averaged with LPM-Net's fusion of the inputs swapped ("lpmnet_swap_averaged"), of the
inputs mirrored in x ("lpmnet_mirror_averaged"), or with both and their combination
("lpmnet_averaged4"): what averaging at fusion time would give. Needs numpy, nibabel and the
lpmnet Python package (python/, with liblpmnet built)."""
import csv
import statistics
import sys

import nibabel as nib
import numpy as np

import lpmnet

PAPER = ["ssim", "qabf", "mi", "scd", "vif", "ag", "sd", "rsfe"]
CLASSIC = ["average", "max", "pca", "dwt", "laplacian", "guided"]


def mean5(x, axis):
    """The 5-voxel mean along one axis, edges replicated."""
    n = x.shape[axis]
    pad = [(2, 2) if a == axis else (0, 0) for a in range(3)]
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis, dtype=np.float64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    return (np.take(c, np.arange(5, n + 5), axis=axis) - np.take(c, np.arange(n), axis=axis)) / 5


def triangle9(x):
    for _ in range(2):
        for axis in range(3):
            x = mean5(x, axis)
    return x


def box3(x):
    """The 3-voxel mean applied twice per axis (the unsharp masks' blur)."""
    for _ in range(2):
        for axis in range(3):
            n = x.shape[axis]
            pad = [(1, 1) if a == axis else (0, 0) for a in range(3)]
            p = np.pad(x, pad, mode="edge")
            x = sum(np.take(p, np.arange(j, n + j), axis=axis) for j in range(3)) / 3
    return x


def candidates(A, B, fused):
    """The targets of the study; "mix0.5_maxbase_lap" is what --target asks for."""
    lap, mx = fused["laplacian"], fused["max"]
    a, b = triangle9(A), triangle9(B)
    da, db = A - a, B - b
    detail = np.where(np.abs(da) >= np.abs(db), da, db)
    out = {}
    for g in (1.0, 1.2, 1.5):
        out[f"maxbase_d{g}"] = np.maximum(a, b) + g * detail
        out[f"avgbase_d{g}"] = (a + b) / 2 + g * detail
    for w in (0.5, 0.75):
        for g in (1.0, 1.2):
            out[f"mix{w}_maxbase_d{g}_lap"] = w * (np.maximum(a, b) + g * detail) + (1 - w) * lap
    for k in (0.25, 0.5, 1.0):
        out[f"max_unsharp{k}"] = mx + k * (mx - box3(mx))
        out[f"lap_unsharp{k}"] = lap + k * (lap - box3(lap))
    return {k: np.clip(v, 0, 1).astype(np.float32) for k, v in out.items()}


def main():
    splits, family = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else family
    rows = []
    for p in csv.DictReader(open(f"{splits}/{family}/val.csv")):
        a = np.squeeze(nib.load(p["a"]).get_fdata(dtype=np.float32))
        b = np.squeeze(nib.load(p["b"]).get_fdata(dtype=np.float32))
        A, B = lpmnet.prepare(a, b)  # each input scaled as fuse scales it
        fused = {m: lpmnet.fuse(a, b, method=m) for m in CLASSIC}
        fused["lpmnet"] = F = lpmnet.fuse(a, b, model=model)
        fused.update(candidates(A, B, fused))
        T = fused["mix0.5_maxbase_d1.0_lap"]
        for w in (0.25, 0.5, 0.75):
            fused[f"lpmnet_toward_target{w}"] = np.clip((1 - w) * F + w * T, 0, 1).astype(np.float32)
        for k in (0.25, 0.5, 1.0, 1.5):
            fused[f"lpmnet_unsharp{k}"] = np.clip(F + k * (F - box3(F)), 0, 1).astype(np.float32)
        swapped = lpmnet.fuse(b, a, model=model)
        mirrored = lpmnet.fuse(a[::-1].copy(), b[::-1].copy(), model=model)[::-1].copy()
        both = lpmnet.fuse(b[::-1].copy(), a[::-1].copy(), model=model)[::-1].copy()
        fused["lpmnet_swap_averaged"] = ((F + swapped) / 2).astype(np.float32)
        fused["lpmnet_mirror_averaged"] = ((F + mirrored) / 2).astype(np.float32)
        fused["lpmnet_averaged4"] = ((F + swapped + mirrored + both) / 4).astype(np.float32)
        for name, f in fused.items():
            r = lpmnet.metrics(f, A, B, normalize=False, seam=False)
            rows.append({"method": name, **{k: r[k] for k in PAPER}})
    methods = list(dict.fromkeys(r["method"] for r in rows))

    def median(m, k):
        v = [r[k] for r in rows if r["method"] == m]
        return statistics.median(abs(x) for x in v) if k == "rsfe" else statistics.median(v)

    med = {m: {k: median(m, k) for k in PAPER} for m in methods}

    def wins(x, y):
        return sum(med[x][k] < med[y][k] if k == "rsfe" else med[x][k] > med[y][k] for k in PAPER)

    print("| method | " + " | ".join(PAPER) + " | wins vs " + " / ".join(CLASSIC) + " | fewest |")
    print("|---" * (len(PAPER) + 3) + "|")
    for m in methods:
        w = [wins(m, c) for c in CLASSIC if c != m]
        print("| %s | %s | %s | %d |" % (m, " | ".join("%.3f" % med[m][k] for k in PAPER),
                                         " / ".join(str(wins(m, c)) for c in CLASSIC), min(w)))


if __name__ == "__main__":
    main()
