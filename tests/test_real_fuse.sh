#!/usr/bin/env bash
# A real pair at its native size: BraTS T1 (t1n) and T2 (t2w), 240x240x155 int16, fused with
# LPM-Net weights; the output must open in an independent reader (nibabel) with T1's geometry.
set -u
[ -n "${LPM_REAL_DATA:-}" ] || { echo "skip: ../shared/data/real is absent"; exit 77; }
[ -z "${LPM_SANITIZED:-}" ] || { echo "skip: whole-volume fusion is run by the Release build only"; exit 77; }
bin="${LPM_BIN:?}"; py="${LPM_PYTHON:-/usr/bin/python3}"; src="${LPM_SOURCE_DIR:?}"
case_dir="$LPM_REAL_DATA/brats_gli_00001_000"
tmp="${LPM_TMP:-/tmp}/test_real_fuse.$$"; mkdir -p "$tmp"
"$py" -c "
import sys; sys.path.insert(0, '$src/reference')
import lpmnet_ref, st
m = lpmnet_ref.init_weights(lpmnet_ref.LPMNet(), 2)
st.save('$tmp/w.safetensors', {k: v.float() for k, v in m.state_dict().items()})
" || exit 1
a="$case_dir/BraTS-GLI-00001-000-t1n.nii.gz"; b="$case_dir/BraTS-GLI-00001-000-t2w.nii.gz"
if ! "$bin" fuse "$a" "$b" -o "$tmp/fused.nii.gz" -m "$tmp/w.safetensors"; then
  echo "FAIL: lpmnet fuse on the BraTS pair"; echo "0 passed, 1 failed"; exit 1
fi
"$py" - "$a" "$tmp/fused.nii.gz" <<'PY'
import sys, numpy as np, nibabel as nib
a, f = nib.load(sys.argv[1]), nib.load(sys.argv[2])
fails = 0
def check(ok, what):
    global fails
    print(("  ok   " if ok else "FAIL ") + what); fails += not ok
check(f.shape == a.shape == (240, 240, 155), "shape %s" % (f.shape,))
check(np.allclose(f.affine, a.affine, atol=1e-4), "affine equals T1's")
check(int(f.header["sform_code"]) == int(a.header["sform_code"]) and
      int(f.header["qform_code"]) == int(a.header["qform_code"]), "qform/sform codes kept")
check(np.allclose(f.header.get_zooms(), a.header.get_zooms()), "voxel size kept")
x = f.get_fdata(dtype=np.float32)
check(f.get_data_dtype() == np.float32 and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1,
      "float32 in [0,1]")
print("%d passed, %d failed" % (5 - fails, fails))
sys.exit(1 if fails else 0)
PY
rc=$?
rm -rf "$tmp"
exit $rc
