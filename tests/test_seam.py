#!/usr/bin/env python3
"""The window-seam index of `lpmnet metrics` (seam_x, seam_y, seam_z) against an independent
NumPy implementation of its definition (docs/lpmnet.md section 3): smooth volumes (index near
1), a step added at the planes 16k along one axis (that axis's index clearly above 1), a
mask, and volumes too short for the index (undefined, with the reason).
Last line: "N passed, N failed"; exit 77 when LPM_BIN is not set or NumPy/nibabel is missing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

try:
    import nibabel as nib
    import numpy as np
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)

BIN = os.environ.get("LPM_BIN")
if not BIN or not os.access(BIN, os.X_OK):
    print("skip: LPM_BIN is not set (the lpmnet tool)")
    sys.exit(77)

AXES = ("seam_x", "seam_y", "seam_z")
results = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        results["passed"] += 1
        print("  ok   %s" % what)
    else:
        results["failed"] += 1
        print("FAIL: %s" % what, file=sys.stderr)


# ------------------------------------------------------------ the definition, in NumPy
def seam_reference(f, mask=None):
    """(index, reason) per axis x, y, z of a (D, H, W) volume; index None when undefined."""
    f = f.astype(np.float32).astype(np.float64)  # what lpmnet reads
    inside = np.ones(f.shape, bool) if mask is None else mask.astype(bool)
    lo, hi = f[inside].min(), f[inside].max()
    if lo == hi:
        return [(None, "constant")] * 3
    s = (f - lo) / (hi - lo)
    out = []
    for axis in (2, 1, 0):  # x = W (last), y = H, z = D (first)
        v = np.moveaxis(s, axis, 0)
        m = np.moveaxis(inside, axis, 0)
        n = v.shape[0]
        if n < 18:
            out.append((None, "shorter than 18"))
            continue
        keep = ((v[:-1] > 0.01) | (v[1:] > 0.01)) & m[:-1] & m[1:]
        diff = np.abs(v[1:] - v[:-1])
        d = np.full(n, np.nan)  # d[p], p = 1 .. n-1, from planes p-1 and p
        for p in range(1, n):
            if keep[p - 1].any():
                d[p] = diff[p - 1][keep[p - 1]].mean()
        at_seam, elsewhere = [], []
        for p in range(2, n - 1):
            den = (d[p - 1] + d[p + 1]) / 2
            if np.isnan(d[p]) or np.isnan(den) or not den > 0:
                continue
            (at_seam if p % 16 == 0 else elsewhere).append(d[p] / den)
        if not at_seam or not elsewhere or np.mean(elsewhere) == 0:
            out.append((None, "no defined ratio"))
        else:
            out.append((np.mean(at_seam) / np.mean(elsewhere), None))
    return out


# ------------------------------------------------------------------- volumes and runs
def smooth(shape, seed):
    """A smooth random-ish (D, H, W) volume in about [0.1, 0.9], with a little noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    f = np.full(shape, 0.5)
    for _ in range(4):
        k = rng.uniform(0.05, 0.25, 3)
        f += 0.08 * np.sin(k[0] * z + k[1] * y + k[2] * x + rng.uniform(0, 6.3))
    return f + 0.01 * rng.standard_normal(shape)


def write(path, vol, dtype=np.float32):
    # lpmnet's (D, H, W) with W fastest is NIfTI's (x, y, z) = the array transposed
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)).astype(dtype), np.eye(4)), path)


def run_metrics(tmp, f, mask=None, extra=()):
    """lpmnet metrics A B F --json --no-normalize --only seam (A, B: any volumes on F's grid)."""
    a, b, fp, mp = (os.path.join(tmp, n + ".nii.gz") for n in ("a", "b", "f", "mask"))
    write(a, smooth(f.shape, 1))
    write(b, smooth(f.shape, 2))
    write(fp, f)
    cmd = [BIN, "metrics", a, b, fp, "--json", "--threads", "2", "--no-normalize", "--only", "seam"]
    if mask is not None:
        write(mp, mask, np.uint8)
        cmd += ["--mask", mp]
    p = subprocess.run(cmd + list(extra), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr))
    return json.loads(p.stdout), p.stderr


def compare(what, f, mask=None):
    """C against NumPy on every axis; returns the three indices (None when undefined)."""
    got, _ = run_metrics(TMP, f, mask)
    want = seam_reference(f, mask)
    for name, (w, reason) in zip(AXES, want):
        g = got.get(name, "absent")
        if w is None:
            check(g is None and reason in got.get("undefined", {}).get(name, ""),
                  "%s %s: undefined (%s): got %r, %r" % (what, name, reason, g, got.get("undefined")))
        else:
            ok = isinstance(g, float) and abs(g - w) <= 1e-6 * abs(w)
            check(ok, "%s %s: C %r, NumPy %.10g" % (what, name, g, w))
    return [w for w, _ in want]


# ------------------------------------------------------------------------------ tests
def test_smooth():
    idx = compare("smooth 40x48x56", smooth((40, 48, 56), 3))
    check(all(0.9 <= v <= 1.1 for v in idx), "smooth: every index within 0.9..1.1: %s" % idx)


def test_step():
    shape = (40, 48, 56)
    for axis, name in ((2, "x"), (1, "y"), (0, "z")):
        f = smooth(shape, 4)
        plane = np.arange(shape[axis]).reshape([-1 if k == axis else 1 for k in range(3)])
        f = f + 0.05 * (plane // 16)  # a jump of 0.05 between planes 16k-1 and 16k
        idx = compare("step along %s" % name, f)
        k = "xyz".index(name)
        others = [v for i, v in enumerate(idx) if i != k]
        check(idx[k] > 1.5 and all(0.9 <= v <= 1.1 for v in others),
              "step along %s: seam_%s %.4g > 1.5, the others %s near 1" % (name, name, idx[k], others))


def test_mask():
    shape = (36, 44, 50)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    inside = ((z - 17.5) / 17) ** 2 + ((y - 21.5) / 20) ** 2 + ((x - 24.5) / 23) ** 2 <= 1
    # inside: a volume with dark (near-0) parts, where the 0.01 floor matters; outside: 0
    # and a bright blob that the scaling over mask voxels leaves out
    f = np.where(inside, np.clip(smooth(shape, 5) - 0.4, 0, None), 0.0)
    f[:3, :3, :3] = 20.0
    idx = compare("masked", f, inside.astype(np.uint8))
    check(all(v is not None for v in idx), "masked: every index defined")
    # a mask that cuts the volume to fewer than 18 planes along y: still scored on the
    # whole grid (the planes are counted on the grid, not the mask's box)
    band = np.zeros(shape, np.uint8)
    band[:, 10:20, :] = 1
    compare("mask 10 planes thick along y", smooth(shape, 6), band)


def test_tiny():
    compare("tiny 10x12x14", smooth((10, 12, 14), 7))
    got, err = run_metrics(TMP, smooth((10, 12, 14), 7))
    check(all("shorter than 18" in got.get("undefined", {}).get(n, "") for n in AXES)
          and "seam_z is undefined: axis shorter than 18 voxels" in err,
          "tiny: each reason says the axis is shorter than 18 voxels, on stderr too")
    compare("12x40x40 (z short)", smooth((12, 40, 40), 8))


def test_constant():
    got, _ = run_metrics(TMP, np.full((20, 20, 20), 0.5))
    check(all(got[n] is None and "constant" in got["undefined"][n] for n in AXES),
          "constant F: undefined, reason says constant: %s" % got.get("undefined"))


def test_text_output():
    """The plain output: twelve metrics, then seam_x seam_y seam_z, then time."""
    a, b, fp = (os.path.join(TMP, n + ".nii.gz") for n in ("a", "b", "f"))
    for path, seed in ((a, 10), (b, 11), (fp, 12)):
        write(path, smooth((24, 24, 24), seed))
    p = subprocess.run([BIN, "metrics", a, b, fp, "--threads", "2"], capture_output=True, text=True)
    names = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
    want = ["ssim", "qabf", "mi", "scd", "vif", "ag", "psnr", "en", "sd", "sf", "nabf", "rsfe",
            "seam_x", "seam_y", "seam_z", "time"]
    check(p.returncode == 0 and names == want, "text output rows: %s" % names)
    p = subprocess.run([BIN, "metrics", a, b, fp, "--only", "ssim,psnr"], capture_output=True, text=True)
    check(p.returncode == 0 and "seam" not in p.stdout, "--only ssim,psnr leaves the seam out")
    p = subprocess.run([BIN, "metrics", a, b, fp, "--only", "seam,foo"], capture_output=True, text=True)
    check(p.returncode == 1 and "foo" in p.stderr, "--only seam,foo: usage error naming foo")


def test_eval():
    """lpmnet eval: metrics.csv ends with seam_x,seam_y,seam_z, each the index of the saved
    fused volume; summary.md averages them over the cases where they are defined."""
    ev = os.path.join(TMP, "eval")
    os.makedirs(ev)
    rows = ["a,b"]
    for case, shape in (("long", (40, 48, 56)), ("thin", (12, 40, 40))):
        pair = []
        for k in (0, 1):
            path = os.path.join(ev, "%s_%d.nii.gz" % (case, k))
            write(path, smooth(shape, 20 + k) + 0.05 * k * (np.arange(shape[2]) // 16))
            pair.append(path)
        rows.append(",".join(pair))
    with open(os.path.join(ev, "pairs.csv"), "w") as fp:
        fp.write("\n".join(rows) + "\n")
    out = os.path.join(ev, "out")
    p = subprocess.run([BIN, "eval", "--data", os.path.join(ev, "pairs.csv"), "--out", out, "--methods",
                        "average", "--save-fused", "--threads", "2"], capture_output=True, text=True)
    check(p.returncode == 0, "eval exits 0" if p.returncode == 0 else "eval: exit %d %s" % (p.returncode, p.stderr))
    with open(os.path.join(out, "metrics.csv")) as fp:
        table = [line.rstrip("\n").split(",") for line in fp]
    header = table[0]
    check(header[-3:] == list(AXES) and header[-4] == "rsfe", "metrics.csv header ends rsfe,%s" % ",".join(header[-3:]))
    want = {}
    for row in table[1:]:
        fused = nib.load(os.path.join(out, "%s_average.nii.gz" % row[0])).get_fdata().transpose(2, 1, 0)
        want[row[0]] = seam_reference(fused)
        for name, got, (w, _) in zip(AXES, row[-3:], want[row[0]]):
            ok = got == "nan" if w is None else abs(float(got) - w) <= 1e-6 * abs(w)
            check(ok, "eval %s %s: csv %s, NumPy %s" % (row[0], name, got, w))
    with open(os.path.join(out, "summary.md")) as fp:
        summary = fp.read()
    line = [ln for ln in summary.splitlines() if ln.startswith("| average |")][0]
    cells = [c.strip().strip("*").split()[0].strip("*") for c in line.strip("|").split("|")]
    # the cases are named by their A files: long_0 and thin_0 (no seam_z): the mean is long_0's alone
    check(sorted(want) == ["long_0", "thin_0"], "eval names the cases by their A files: %s" % sorted(want))
    seam_z = want["long_0"][2][0]
    check(abs(float(cells[-1]) - seam_z) <= 6e-5, "summary.md seam_z %s = the defined case's %.4f" % (cells[-1], seam_z))
    seam_x = (want["long_0"][0][0] + want["thin_0"][0][0]) / 2
    check(abs(float(cells[-3]) - seam_x) <= 6e-5, "summary.md seam_x %s = mean %.4f" % (cells[-3], seam_x))


def main():
    global TMP
    base = os.environ.get("LPM_TMP") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    TMP = tempfile.mkdtemp(prefix="test_seam.", dir=base)
    try:
        for t in (test_smooth, test_step, test_mask, test_tiny, test_constant, test_text_output,
                  test_eval):
            try:
                t()
            except Exception:
                traceback.print_exc()
                check(False, "exception in %s" % t.__name__)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
