#!/usr/bin/env bash
# lpmnet phantom's functional modalities: the head's PET and SPECT and the thorax body (CT,
# PET, labels). Read back with nibabel and checked against the tissue contrasts the help
# promises, per label; same seed -> same bytes, another seed -> another phantom.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_phantom_modalities.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

"$py" -c "import nibabel, numpy, scipy" 2>/dev/null ||
  { echo "skip: $py lacks nibabel/numpy/scipy"; exit 77; }

shape=48,64,64
make() { # make BODY SEED DIR
  if "$bin" phantom --body "$1" --seed "$2" --shape $shape --out "$tmp/$3" >/dev/null; then
    ok "phantom --body $1 --seed $2"
  else
    bad "phantom --body $1 --seed $2 failed"
  fi
}
make head 3 h3; make head 3 h3b; make head 4 h4
for s in 1 2 3 4 5 6; do make thorax $s t$s; done
make thorax 3 t3b

# same seed -> identical bytes; another seed -> other bytes
same_and_other() { # same_and_other BODY FILE SAME OTHER: folders of the same and another seed
  if cmp -s "$tmp/$3/$2.nii.gz" "$tmp/${3}b/$2.nii.gz"; then ok "$1 $2: same seed, same bytes"
  else bad "$1 $2: same seed gave other bytes"; fi
  if cmp -s "$tmp/$3/$2.nii.gz" "$tmp/$4/$2.nii.gz"; then bad "$1 $2: another seed gave the same file"
  else ok "$1 $2: another seed, another file"; fi
}
for f in pet spect labels; do same_and_other head $f h3 h4; done
for f in ct pet labels; do same_and_other thorax $f t3 t4; done

# the command line: a bad body is a usage error; the help lists each body's files and units
msg=$("$bin" phantom --body leg --out "$tmp/x" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q -- "--body" <<<"$msg" && [ ! -e "$tmp/x" ]; then ok "--body leg -> exit 1: $msg"
else bad "--body leg: exit $rc, '$msg'"; fi
help=$("$bin" phantom --help)
for w in pet.nii.gz spect.nii.gz thorax HU counts "8 tumour"; do
  if grep -q -- "$w" <<<"$help"; then ok "help mentions '$w'"; else bad "help lacks '$w'"; fi
done

"$py" - "$tmp" "$shape" <<'PY' || fail=$((fail + 1))
import sys, numpy as np, nibabel as nib
from scipy import ndimage
tmp, shape = sys.argv[1], tuple(int(s) for s in sys.argv[2].split(","))
want = shape[::-1]  # nibabel: (x, y, z) = (W, H, D)
bad = 0
def check(cond, what):
    global bad
    print(("  ok   " if cond else "FAIL ") + what)
    bad += not cond
def load(path):
    img = nib.load(path)
    check(img.shape == want and np.allclose(img.header.get_zooms()[:3], 1),
          f"{path.split('/')[-2]}/{path.split('/')[-1]}: {img.shape}, {img.header.get_zooms()[:3]} mm")
    return np.asarray(img.dataobj, dtype=np.float64)
def mean(v, mask):
    return v[mask].mean() if mask.any() else np.nan
def roughness(v, inside):
    # mean |forward difference| over the three axes, relative to the mean inside the body
    d = np.mean([np.abs(np.diff(v, axis=a)).mean() for a in range(3)])
    return d / v[inside].mean()

# ---- head: labels 0 bg, 1 skull, 2 CSF, 3 GM, 4 WM, 5 oedema, 6 lesion
d = f"{tmp}/h3"
vol = {n: load(f"{d}/{n}.nii.gz") for n in ["t1", "t2", "flair", "pd", "ct", "pet", "spect", "labels"]}
lab = vol["labels"].astype(int)
check(set(np.unique(lab)) == set(range(7)), f"head labels {sorted(set(np.unique(lab)))}")
# tissue means over one-voxel-eroded labels: the tissue itself, not its partial-volume border
core = {l: ndimage.binary_erosion(lab == l) for l in range(7)}
pet, spect = vol["pet"], vol["spect"]
for n in ["pet", "spect"]:
    check(vol[n].min() >= 0 and np.isfinite(vol[n]).all(), f"{n} >= 0 and finite (min {vol[n].min():.3g})")
gm, wm, csf = mean(pet, core[3]), mean(pet, core[4]), mean(pet, core[2])
check(gm > 2.5 * wm, f"PET grey matter {gm:.0f} > 2.5 x white matter {wm:.0f}")
les = mean(pet, lab == 6)
check(les > gm, f"PET lesion {les:.0f} > grey matter {gm:.0f}")
check(csf < 0.5 * wm, f"PET CSF {csf:.0f} < half the white matter")
check(pet.max() < 40000 and pet.max() > 5000, f"PET in counts-like units (max {pet.max():.0f})")
sgm, swm, sles = mean(spect, core[3]), mean(spect, core[4]), mean(spect, lab == 6)
check(sgm > swm, f"SPECT grey matter {sgm:.0f} > white matter {swm:.0f}")
check(sles < 0.7 * swm, f"SPECT lesion cold: {sles:.0f} < 0.7 x white matter {swm:.0f}")
inside = lab > 0
rp, rs = roughness(pet, inside), roughness(spect, inside)
check(rs < rp, f"SPECT smoother than PET: relative mean |forward difference| {rs:.4f} < {rp:.4f}")
# Poisson-like noise: its spread is sqrt(value) times a constant, so none where no activity
# reaches (air far from the head), some in the white matter
far = ndimage.distance_transform_edt(lab == 0) > 12
hi = pet - ndimage.uniform_filter(pet, 3)
check(far.any() and hi[far].std() < 1 and hi[core[4]].std() > 50,
      f"PET noise ~ sqrt(value): local sd {hi[far].std():.2f} in far air, {hi[core[4]].std():.0f} in WM")

# ---- thorax: 0 air, 1 fat, 2 soft tissue, 3 lung, 4 vessels, 5 bone, 6 myocardium,
#      7 mediastinum/blood, 8 tumour
import os
check(not os.path.exists(f"{tmp}/t3/t1.nii.gz"), "thorax writes no t1")
ncomp = []
for s in range(1, 7):
    d = f"{tmp}/t{s}"
    ct, pet, lab = (load(f"{d}/{n}.nii.gz") for n in ["ct", "pet", "labels"])
    lab = lab.astype(int)
    present = sorted(set(np.unique(lab)))
    check(present == list(range(9)), f"seed {s}: thorax labels {present}")
    m = lambda v, l: mean(v, lab == l)
    check(m(ct, 3) < -700, f"seed {s}: CT lung {m(ct, 3):.0f} HU < -700")
    check(m(ct, 5) > 300, f"seed {s}: CT bone {m(ct, 5):.0f} HU > 300")
    check(m(ct, 0) < -950, f"seed {s}: CT air {m(ct, 0):.0f} HU")
    fat, soft = (mean(ct, ndimage.binary_erosion(lab == l)) for l in (1, 2))
    check(-150 < fat < -50 and 0 < soft < 80, f"seed {s}: CT fat {fat:.0f}, soft tissue {soft:.0f} HU")
    check(pet.min() >= 0, f"seed {s}: PET >= 0")
    check(m(pet, 8) > 3 * m(pet, 3), f"seed {s}: PET tumour {m(pet, 8):.0f} > 3 x lung {m(pet, 3):.0f}")
    check(m(pet, 6) > 2 * m(pet, 7) > 2 * m(pet, 3),
          f"seed {s}: PET myocardium {m(pet, 6):.0f} > 2 x mediastinum {m(pet, 7):.0f} > 4 x lung")
    n = ndimage.label(lab == 8)[1]
    ncomp.append(n)
    check(1 <= n <= 3, f"seed {s}: {n} nodules")
check(len(set(ncomp)) > 1, f"the number of nodules varies with the seed: {ncomp}")
sys.exit(1 if bad else 0)
PY
echo "$pass shell checks passed, $fail failed"
[ "$fail" -eq 0 ]
