#!/usr/bin/env bash
# The command line as a user meets it: every bad input gives its clear message and exit code
# and leaves no output file; a good pair fuses onto A's grid with A's geometry.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
src="${LPM_SOURCE_DIR:?}"
tmp="${LPM_TMP:-/tmp}/test_cli.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0

ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# expect CODE PATTERN DESC -- command...: exit code, a message matching PATTERN, no output file
expect() {
  local code=$1 pattern=$2 desc=$3; shift 4
  rm -f "$tmp/out.nii.gz"
  local msg rc
  msg=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$desc: exit $rc, want $code ($msg)"; return; fi
  if ! grep -qiE -- "$pattern" <<<"$msg"; then bad "$desc: message '$msg' lacks /$pattern/"; return; fi
  if compgen -G "$tmp/out.nii.gz*" >/dev/null || compgen -G "$tmp/.out*" >/dev/null; then
    bad "$desc: left an output file"; return; fi
  ok "$desc -> exit $code: $msg"
}

# Inputs: made with nibabel, independently of lpmnet's writer.
"$py" - "$tmp" "$src" <<'PY' || { echo "cannot make test inputs"; exit 1; }
import sys, gzip, numpy as np, nibabel as nib
tmp, src = sys.argv[1], sys.argv[2]
sys.path.insert(0, src + "/reference")
rng = np.random.default_rng(0)
aff = np.array([[-1.2, 0, 0, 30], [0, 1.1, 0.05, -20], [0, 0, 2.0, 5], [0, 0, 0, 1]])
def save(name, data, affine=aff, dtype=None):
    img = nib.Nifti1Image(data, affine)
    if dtype is not None: img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, 1); img.set_sform(affine, 2)
    nib.save(img, f"{tmp}/{name}")
shape = (20, 18, 17)                      # x, y, z: not multiples of 16
x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
t1 = 300 + 200 * np.exp(-(x**2 + y**2 + z**2) * 3) + 5 * rng.standard_normal(shape)
t2 = 100 + 400 * (x**2 + y**2 < 0.3) + 5 * rng.standard_normal(shape)
save("a.nii.gz", t1.astype(np.int16), dtype=np.int16)
save("b.nii", t2.astype(np.float32))
save("b_other_grid.nii.gz", t2.astype(np.float32), affine=aff @ np.diag([1, 1, 1.5, 1]))
save("b_other_dims.nii.gz", t2[:-1].astype(np.float32))
save("const.nii.gz", np.full(shape, 7, np.float32))
save("empty_mask.nii.gz", np.zeros(shape, np.uint8), dtype=np.uint8)
nan = t2.astype(np.float32).copy(); nan[3, 4, 5] = np.nan
save("nan.nii.gz", nan)
save("flat2d.nii.gz", t1[:, :, 0].astype(np.float32))
save("five_d.nii.gz", np.zeros(shape + (2, 3), np.float32))
rgb = np.zeros(shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
nib.save(nib.Nifti1Image(rgb, aff), f"{tmp}/rgb.nii.gz")
raw = open(f"{tmp}/a.nii.gz", "rb").read()
open(f"{tmp}/truncated.nii.gz", "wb").write(raw[: len(raw) // 2])
open(f"{tmp}/text.nii", "w").write("this is not a NIfTI file\n" * 40)
# weights: the reference model's initialisation, written with the reference's safetensors writer
import torch, lpmnet_ref, st
m = lpmnet_ref.init_weights(lpmnet_ref.LPMNet(), 1)
sd = {k: v.float() for k, v in m.state_dict().items()}
st.save(f"{tmp}/w.safetensors", sd)
bad = dict(sd); bad["Conv_in.weight"] = bad["Conv_in.weight"][:, :, 0]
st.save(f"{tmp}/w_shape.safetensors", bad)
miss = dict(sd); del miss["cfc.fc.bias"]
st.save(f"{tmp}/w_missing.safetensors", miss)
PY

w="$tmp/w.safetensors"
o="$tmp/out.nii.gz"
A="$tmp/a.nii.gz"; B="$tmp/b.nii"

expect 1 "usage" "no arguments" -- "$bin" fuse
expect 1 "unknown option" "unknown option" -- "$bin" fuse "$A" "$B" -o "$o" -m "$w" --frobnicate
expect 1 "unknown command" "unknown command" -- "$bin" frobnicate
expect 1 "unknown method" "unknown method" -- "$bin" fuse "$A" "$B" -o "$o" --method median
expect 2 "missing.nii.gz.*(no such|not found|exist)" "missing file" -- "$bin" fuse "$tmp/missing.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "truncated.nii.gz" "truncated .nii.gz" -- "$bin" fuse "$tmp/truncated.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "text.nii.*nifti" "not NIfTI" -- "$bin" fuse "$tmp/text.nii" "$B" -o "$o" -m "$w"
expect 2 "flat2d.nii.gz.*(2-d|3-d)" "2-D data" -- "$bin" fuse "$tmp/flat2d.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "five_d.nii.gz" "5-D data" -- "$bin" fuse "$tmp/five_d.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "rgb.nii.gz.*(rgb|scalar|datatype)" "RGB datatype" -- "$bin" fuse "$tmp/rgb.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "b_other_grid.nii.gz" "different affine" -- "$bin" fuse "$A" "$tmp/b_other_grid.nii.gz" -o "$o" -m "$w"
expect 2 "b_other_dims.nii.gz" "different dims" -- "$bin" fuse "$A" "$tmp/b_other_dims.nii.gz" -o "$o" -m "$w"
expect 2 "const.nii.gz.*constant" "constant volume" -- "$bin" fuse "$tmp/const.nii.gz" "$B" -o "$o" -m "$w"
expect 2 "nan.nii.gz.*(nan|finite)" "NaN voxel" -- "$bin" fuse "$A" "$tmp/nan.nii.gz" -o "$o" -m "$w"
expect 2 "Conv_in.weight" "weights with a wrong shape" -- "$bin" fuse "$A" "$B" -o "$o" -m "$tmp/w_shape.safetensors"
expect 2 "cfc.fc.bias" "weights missing a tensor" -- "$bin" fuse "$A" "$B" -o "$o" -m "$tmp/w_missing.safetensors"
expect 2 "no/such/dir" "unwritable output folder" -- "$bin" fuse "$A" "$B" -o "$tmp/no/such/dir/out.nii.gz" -m "$w"
expect 2 "not-a-dir" "output folder is a file" -- "$bin" fuse "$A" "$B" -o "$tmp/a.nii.gz/not-a-dir/out.nii.gz" -m "$w"

# metrics: F, or the mask, on another grid; an empty mask; NaN in F
expect 2 "b_other_grid.nii.gz" "metrics: F on another grid" -- "$bin" metrics "$A" "$B" "$tmp/b_other_grid.nii.gz"
expect 2 "b_other_dims.nii.gz" "metrics: mask on another grid" -- "$bin" metrics "$A" "$B" "$B" --mask "$tmp/b_other_dims.nii.gz"
expect 2 "empty_mask.nii.gz.*empty" "metrics: empty mask" -- "$bin" metrics "$A" "$B" "$B" --mask "$tmp/empty_mask.nii.gz"
expect 2 "nan.nii.gz.*(nan|finite)" "metrics: NaN in F" -- "$bin" metrics "$A" "$B" "$tmp/nan.nii.gz"
expect 2 "nan.nii.gz.*(nan|finite)" "metrics --clip: NaN in F" -- "$bin" metrics "$A" "$B" "$tmp/nan.nii.gz" --clip 0.5,100
expect 1 "unknown" "metrics: unknown --only entry" -- "$bin" metrics "$A" "$B" "$B" --only ssim,frob

# A good fusion: exit 0, output on A's grid with A's geometry, float32 in [0,1].
if "$bin" fuse "$A" "$B" -o "$o" -m "$w" --components "$tmp/parts" --preview "$tmp/p.png" --threads 2 2>"$tmp/log"; then
  ok "fuse a 20x18x17 pair"
  if "$py" - "$A" "$o" "$tmp/parts" <<'PY'; then ok "output has A's grid, geometry, float32 in [0,1]; components written"; else bad "output geometry/values"; fi
import sys, numpy as np, nibabel as nib
a, f = nib.load(sys.argv[1]), nib.load(sys.argv[2])
assert f.shape == a.shape, (f.shape, a.shape)
assert f.get_data_dtype() == np.float32
assert np.allclose(f.affine, a.affine, atol=1e-4), (f.affine, a.affine)
assert np.allclose(f.header.get_qform(), a.header.get_qform(), atol=1e-4)
assert np.allclose(f.header.get_sform(), a.header.get_sform(), atol=1e-4)
assert int(f.header["qform_code"]) == 1 and int(f.header["sform_code"]) == 2
assert f.header.get_xyzt_units() == a.header.get_xyzt_units()
x = f.get_fdata()
assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
for p in ("base", "detail"):
    c = nib.load(f"{sys.argv[3]}/{p}.nii.gz"); assert c.shape == a.shape
PY
  [ -s "$tmp/p.png" ] && ok "preview PNG written" || bad "preview PNG missing"
else
  bad "fuse a 20x18x17 pair: $(cat "$tmp/log")"
fi
if "$bin" fuse "$A" "$tmp/b_other_grid.nii.gz" -o "$o" -m "$w" --resample 2>"$tmp/log"; then
  ok "--resample fuses a pair on different grids"
else
  bad "--resample: $(cat "$tmp/log")"
fi
for m in average max pca dwt laplacian guided; do
  if "$bin" fuse "$A" "$B" -o "$tmp/c_$m.nii.gz" --method "$m" 2>"$tmp/log"; then ok "fuse --method $m"; else bad "fuse --method $m: $(cat "$tmp/log")"; fi
done

"$bin" --help | grep -q "usage" && ok "--help" || bad "--help"
"$bin" --version | grep -qE "lpmnet [0-9]" && ok "--version" || bad "--version"
for c in fuse train metrics phantom info; do
  "$bin" $c --help >/dev/null && ok "$c --help" || bad "$c --help"
done
"$bin" info "$A" | grep -q "20 x 18 x 17" && ok "info on a volume" || bad "info on a volume"
"$bin" info "$w" | grep -q "LPM-Net weights: yes" && ok "info on weights" || bad "info on weights"
"$bin" info "$tmp/w_missing.safetensors" | grep -q "LPM-Net weights: no" && ok "info on incomplete weights" || bad "info on incomplete weights"
# info --cpu names the path the kernels take (this test runs in the builds with clones, where the CPU decides)
want=portable
if grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then want=avx512
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then want=avx2; fi
case "$("$bin" info --cpu)" in
  *"kernels  $want"*) ok "info --cpu: $("$bin" info --cpu | tail -1)" ;;
  *) bad "info --cpu: $("$bin" info --cpu)" ;;
esac

rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
