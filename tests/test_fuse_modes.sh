#!/usr/bin/env bash
# lpmnet fuse's modes as a user meets them: --exact against the PyTorch reference, the
# default (clip, 4 passes, background rule), named models, colour output, the NIfTI
# description, the warning for CT into an MR model, and the preprocessing options' errors.
set -u
bin="${LPM_BIN:?}"; py="${LPM_PYTHON:-/usr/bin/python3}"; src="${LPM_SOURCE_DIR:?}"
tmp="${LPM_TMP:-/tmp}/test_fuse_modes.$$"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { echo "  ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# a 16x32x32 pair (sizes multiples of 16, values spanning [0, 1] exactly: --exact then
# feeds the network exactly what the reference gets), a corner where both are 0, random
# weights, and the reference's fused volume
"$py" - "$tmp" "$src/reference" <<'PY' || { echo "setup failed"; exit 1; }
import sys, numpy as np, nibabel as nib, torch
tmp = sys.argv[1]; sys.path.insert(0, sys.argv[2])
import lpmnet_ref, st
rng = np.random.default_rng(5)
z, y, x = np.meshgrid(np.arange(16), np.arange(32), np.arange(32), indexing="ij")
a = 0.5 + 0.4 * np.sin(x / 4.0) * np.cos(y / 5.0) + 0.1 * rng.random((16, 32, 32))
b = 0.5 + 0.4 * np.cos(z / 3.0 + x / 7.0) + 0.1 * rng.random((16, 32, 32))
for v in (a, b):
    v -= v.min(); v /= v.max()
    v[:4, :6, :6] = 0.0
aff = np.diag([1.0, 1.0, 1.0, 1.0])
for name, v in (("a", a), ("b", b)):   # nibabel's axes are (x, y, z): transpose
    nib.save(nib.Nifti1Image(v.transpose(2, 1, 0).astype(np.float32), aff), f"{tmp}/{name}.nii.gz")
# the same anatomy as CT: Hounsfield-like values
nib.save(nib.Nifti1Image((a.transpose(2, 1, 0) * 2000 - 1000).astype(np.float32), aff), f"{tmp}/ct.nii.gz")
m = lpmnet_ref.init_weights(lpmnet_ref.LPMNet(), 4)
st.save(f"{tmp}/w.safetensors", {k: v.float() for k, v in m.state_dict().items()})
with torch.no_grad():
    fused, _, _ = m(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
np.save(f"{tmp}/ref.npy", fused.numpy())
PY
A="$tmp/a.nii.gz"; B="$tmp/b.nii.gz"; W="$tmp/w.safetensors"

if "$bin" fuse "$A" "$B" -o "$tmp/exact.nii.gz" -m "$W" --exact 2>"$tmp/log"; then ok "fuse --exact"; else bad "fuse --exact: $(cat "$tmp/log")"; fi
if "$bin" fuse "$A" "$B" -o "$tmp/default.nii.gz" -m "$W" --components "$tmp/parts" 2>"$tmp/log"; then
  ok "fuse (default)"
else
  bad "fuse (default): $(cat "$tmp/log")"
fi
grep -q "model from a file ($W), default" "$tmp/log" && ok "fuse names the model it used" || bad "model line: $(cat "$tmp/log")"
"$py" - "$tmp" <<'PY' && ok "--exact equals PyTorch; the default is 0 where both inputs are, not elsewhere" || bad "exact/default values"
import sys, numpy as np, nibabel as nib
tmp = sys.argv[1]
ref = np.load(f"{tmp}/ref.npy")
ex = nib.load(f"{tmp}/exact.nii.gz").get_fdata().transpose(2, 1, 0)
de = nib.load(f"{tmp}/default.nii.gz").get_fdata().transpose(2, 1, 0)
assert np.abs(ex - ref).max() < 2e-5, np.abs(ex - ref).max()
assert (de[:4, :6, :6] == 0).all(), de[:4, :6, :6].max()
assert ex[:4, :6, :6].min() > 0           # the authors' head never gives exactly 0
assert np.abs(de - ex).max() > 1e-4       # 4 passes differ from one
assert (de[4:] > 0).all()
hdr = nib.load(f"{tmp}/default.nii.gz").header
d = hdr["descrip"].tobytes().decode()
assert d.startswith("lpmnet ") and "w.safetensors" in d, d
assert "exact" in nib.load(f"{tmp}/exact.nii.gz").header["descrip"].tobytes().decode()
PY

# eval fuses as fuse does, in both modes
printf 'a,b\n%s,%s\n' "$A" "$B" > "$tmp/one.csv"
for mode in exact default; do
  flag=(); [ $mode = exact ] && flag=(--exact)
  if "$bin" eval --data "$tmp/one.csv" --methods lpmnet -m "$W" "${flag[@]}" --save-fused --out "$tmp/ev_$mode" >/dev/null 2>"$tmp/log"; then
    # the one case's fused volume, whatever eval names the case
    "$py" -c "
import glob, sys, numpy as np, nibabel as nib
saved = glob.glob('$tmp/ev_$mode/*_lpmnet.nii.gz'); assert len(saved) == 1, saved
a = nib.load(saved[0]).get_fdata(); b = nib.load('$tmp/$mode.nii.gz').get_fdata()
sys.exit(0 if np.array_equal(a, b) else 1)" && ok "eval ${flag[*]:-(default)} fuses exactly as fuse does" || bad "eval $mode differs from fuse $mode"
  else
    bad "eval $mode: $(cat "$tmp/log")"
  fi
done
"$bin" eval --data "$tmp/one.csv" --methods lpmnet -m "$W" --passes 3 --out "$tmp/ev3" >/dev/null 2>&1
[ $? -eq 1 ] && ok "eval --passes 3: exit 1" || bad "eval --passes 3 accepted"

# named models
if "$bin" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m frobnicate 2>"$tmp/log"; then bad "an unknown model name was accepted"
else
  rc=$?; [ $rc -eq 1 ] && grep -q "mri, ct-mr, pet-mr, pet-ct" "$tmp/log" && ok "unknown model name: exit 1, the names listed" \
    || bad "unknown model name: exit $rc, $(cat "$tmp/log")"
fi
"$bin" models >"$tmp/models" 2>&1 && [ "$(grep -cE '^(mri|ct-mr|pet-mr|pet-ct)' "$tmp/models")" -eq 4 ] \
  && ok "lpmnet models lists the four families" || bad "lpmnet models: $(cat "$tmp/models")"
"$bin" models nope >/dev/null 2>&1; [ $? -eq 1 ] && ok "lpmnet models NAME: unknown name exit 1" || bad "models nope"

# colour
if "$bin" fuse "$A" "$B" -o "$tmp/rgb.nii.gz" -m "$W" --color hot --functional b --preview "$tmp/rgb.png" 2>"$tmp/log"; then
  "$py" - "$tmp" <<'PY' && ok "--color hot: RGB24 NIfTI, grey where B is 0, luminance from the fusion" || bad "--color output"
import sys, numpy as np, nibabel as nib
tmp = sys.argv[1]
img = nib.load(f"{tmp}/rgb.nii.gz")
assert int(img.header["datatype"]) == 128, img.header["datatype"]
rgb = np.asarray(img.dataobj)
assert rgb.shape == (32, 32, 16), rgb.shape
r = rgb["R"].astype(float); g = rgb["G"].astype(float); b = rgb["B"].astype(float)
y = (0.299 * r + 0.587 * g + 0.114 * b) / 255
f = nib.load(f"{tmp}/default.nii.gz").get_fdata()
inside = (np.minimum(np.minimum(r, g), b) > 2) & (np.maximum(np.maximum(r, g), b) < 253)  # no channel clipped
assert inside.sum() > 100, inside.sum()
assert np.abs(y - f)[inside].max() < 0.01, np.abs(y - f)[inside].max()
assert (r >= b).all()                        # hot: red before blue
PY
  [ -s "$tmp/rgb.png" ] && ok "colour preview written" || bad "colour preview missing"
else
  bad "--color hot: $(cat "$tmp/log")"
fi
"$bin" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --color viridis 2>"$tmp/log"; [ $? -eq 1 ] && grep -q "hot, jet, gray" "$tmp/log" \
  && ok "unknown colour map: exit 1, names listed" || bad "unknown colour map: $(cat "$tmp/log")"

# modality warning: CT values into the (default family) MRI model; a weights file is not judged
LPM_MODEL="" "$bin" fuse "$tmp/ct.nii.gz" "$B" -o "$tmp/x.nii.gz" -m mri >/dev/null 2>"$tmp/log" || true
if grep -q "model 'mri' (default)" "$tmp/log" || grep -q "not installed" "$tmp/log"; then
  echo "  skip CT warning: no bundled mri model here"
else
  grep -q "warning: .*ct.nii.gz holds Hounsfield-like values" "$tmp/log" && ok "CT into the mri model: warning" \
    || bad "CT warning: $(cat "$tmp/log")"
fi
"$bin" fuse "$tmp/ct.nii.gz" "$B" -o "$tmp/x.nii.gz" -m "$W" 2>"$tmp/log" && ! grep -q warning "$tmp/log" \
  && ok "no warning for a weights file" || bad "weights-file warning: $(cat "$tmp/log")"

# preprocessing options
expect1() { local what=$1; shift; "$bin" "$@" >/dev/null 2>"$tmp/log"; local rc=$?
  [ $rc -eq 1 ] && ok "$what: exit 1" || bad "$what: exit $rc $(cat "$tmp/log")"; }
expect1 "--exact with --clip" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --exact --clip 1,99
expect1 "--clip 99,1" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --clip 99,1
expect1 "--passes 3" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --passes 3
expect1 "--exact --passes 4" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --exact --passes 4
"$bin" fuse "$A" "$B" -o "$tmp/x.nii.gz" -m "$W" --ct-window soft >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 2 ] && grep -q "a.nii.gz" "$tmp/log" && ok "--ct-window on two MR volumes: exit 2 naming them" \
  || bad "--ct-window on MR: exit $rc $(cat "$tmp/log")"
if "$bin" fuse "$tmp/ct.nii.gz" "$B" -o "$tmp/w.nii.gz" -m "$W" --ct-window 400,40 --passes 1 2>"$tmp/log"; then
  ok "--ct-window 400,40 on a CT input"
else
  bad "--ct-window on CT: $(cat "$tmp/log")"
fi
"$bin" fuse "$A" "$B" -o "$tmp/m.nii.gz" -m "$W" --mask "$tmp/parts/base.nii.gz" >/dev/null 2>&1 \
  && ok "--mask FILE" || bad "--mask FILE"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
