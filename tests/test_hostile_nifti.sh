#!/usr/bin/env bash
# Hostile NIfTI files: headers that crashed nifti_clib (NIfTI-2 dim[0] outside 1..7), sizes that
# overflow, data shorter than declared, a small .nii.gz declaring a huge volume, a FIFO, a folder,
# a pair without its .img. info, fuse and metrics must each exit 2 with a message naming the file
# and the field, without a signal, a hang or an output file, and leave the inputs unchanged; good
# files in every layout still read, and info names their format.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_hostile_nifti.$$"
rm -rf "$tmp"; mkdir -p "$tmp/in" "$tmp/out"
in="$tmp/in"; out="$tmp/out"
pass=0; fail=0
trap 'rm -rf "$tmp"' EXIT

ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

"$py" - "$in" <<'PY' || { echo "cannot make test inputs"; exit 1; }
import gzip, os, struct, sys
import numpy as np, nibabel as nib
d = sys.argv[1]
vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)     # values 0..119

def put(name, data):
    if name.endswith(".gz"):
        with gzip.open(os.path.join(d, name), "wb") as f: f.write(data)
    else:
        open(os.path.join(d, name), "wb").write(data)

def n1(dim, dt=16, bitpix=32, vox=352.0, magic=b"n+1\0", e="<", data=None):
    """A NIfTI-1 header (dim: all 8 values), its extender and data (float32 vol by default)."""
    h = bytearray(348)
    struct.pack_into(e + "i", h, 0, 348)
    struct.pack_into(e + "8h", h, 40, *dim)
    struct.pack_into(e + "hh", h, 70, dt, bitpix)
    struct.pack_into(e + "8f", h, 76, *([1.0] * 8))
    struct.pack_into(e + "ff", h, 108, vox, 1.0)
    h[344:348] = magic
    return bytes(h) + bytes(4) + (vol.astype(e + "f4").tobytes() if data is None else data)

def n2(dim, dt=16, bitpix=32, vox=544, magic=b"n+2\0\r\n\x1a\n", e="<", data=None, dx=1.0):
    """A NIfTI-2 header (dim: all 8 values), its extender and data (float32 vol by default)."""
    h = bytearray(540)
    struct.pack_into(e + "i", h, 0, 540)
    h[4:12] = magic
    struct.pack_into(e + "hh", h, 12, dt, bitpix)
    struct.pack_into(e + "8q", h, 16, *dim)
    struct.pack_into(e + "8d", h, 104, 1.0, dx, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(e + "qd", h, 168, vox, 1.0)
    return bytes(h) + bytes(4) + (vol.astype(e + "f4").tobytes() if data is None else data)

ok3 = [3, 4, 5, 6, 1, 1, 1, 1]
# the good partner volume, and good files in every layout (written by nibabel)
rng = np.random.default_rng(0)
nib.save(nib.Nifti1Image(rng.random((4, 5, 6)).astype(np.float32), np.eye(4)), f"{d}/partner.nii.gz")
nib.save(nib.Nifti1Image(vol, np.eye(4)), f"{d}/good1.nii")
nib.save(nib.Nifti1Image(vol, np.eye(4)), f"{d}/good1.nii.gz")
nib.save(nib.Nifti2Image(vol, np.eye(4)), f"{d}/good2.nii")
nib.save(nib.Nifti2Image(vol, np.eye(4)), f"{d}/good2.nii.gz")
nib.save(nib.Nifti1Pair(vol, np.eye(4)), f"{d}/pair1.hdr")
nib.save(nib.Nifti2Pair(vol, np.eye(4)), f"{d}/pair2.hdr")
nib.save(nib.AnalyzeImage(vol, np.eye(4)), f"{d}/analyze.hdr")   # SPM's format: no magic
nib.Nifti1Image(vol.astype(">f4"), np.eye(4), header=nib.Nifti1Header(endianness=">")).to_filename(f"{d}/be1.nii")
nib.Nifti2Image(vol.astype(">i2"), np.eye(4), header=nib.Nifti2Header(endianness=">")).to_filename(f"{d}/be2.nii.gz")
put("raw2.nii", n2(ok3))              # this test's own writer, to show the hostile files differ only where meant
# a valid .nii.gz declaring 640^3 uint8 (262 MB) in 255 kB: info reads its header only
with gzip.open(f"{d}/zeros640.nii.gz", "wb", compresslevel=1) as f:
    f.write(n1([3, 640, 640, 640, 1, 1, 1, 1], dt=2, bitpix=8, data=b""))
    block = bytes(640 * 640 * 64)
    for _ in range(10): f.write(block)

# hostile files
for v in (-5, 0, 8, 11, 300):
    for ext in ("nii", "nii.gz"):
        put(f"n2_dim0_{v}.{ext}", n2([v, 4, 5, 6, 1, 1, 1, 1]))
put("n1_dim0_9.nii", n1([9, 4, 5, 6, 1, 1, 1, 1]))
put("n1_dim2_0.nii", n1([3, 4, 0, 6, 1, 1, 1, 1]))
put("n2_dim3_neg.nii.gz", n2([3, 4, 5, -6, 1, 1, 1, 1]))
huge = [3, 2**62 + 4, 1, 1, 1, 1, 1, 1]
put("n2_huge_le.nii", n2(huge, data=bytes(16)))
put("n2_huge_be.nii", n2(huge, e=">", data=bytes(16)))
put("n2_petabyte.nii", n2([3, 2**20, 2**20, 2**10, 1, 1, 1, 1], data=bytes(4096)))
put("n1_640_little.nii.gz", n1([3, 640, 640, 640, 1, 1, 1, 1], data=bytes(4096)))
put("short.nii", n1(ok3)[:352 + 200])
put("short_be.nii", n1(ok3, e=">")[:352 + 200])
put("n1_vox0.nii", n1(ok3, vox=0.0))
put("n1_vox_frac.nii", n1(ok3, vox=352.5))
put("n1_vox_nan.nii", n1(ok3, vox=float("nan")))
put("n1_vox_minus.nii", n1(ok3, vox=-1e30))
put("n1_vox_big.hdr", n1(ok3, vox=3e9, magic=b"ni1\0", data=b""))
put("n1_vox_big.img", vol.tobytes())
put("n2_vox100.nii", n2(ok3, vox=100))
put("n2_vox_neg.nii.gz", n2(ok3, vox=-(2**40)))
put("n2_rgb.nii", n2(ok3, dt=128, bitpix=24, data=bytes(360)))
put("n1_dt999.nii", n1(ok3, dt=999))
put("n1_bitpix.nii", n1(ok3, bitpix=16))
put("n1_magic.nii", n1(ok3, magic=b"abc\0"))
put("n1_pair_magic.nii", n1(ok3, magic=b"ni1\0"))
put("n2_pixdim.nii", n2(ok3, dx=1e300))
put("header_only.nii", n2(ok3, data=b"")[:300])
nib.save(nib.Nifti1Pair(vol, np.eye(4)), f"{d}/lonely.hdr")
os.remove(f"{d}/lonely.img")
nib.save(nib.Nifti1Pair(vol, np.eye(4)), f"{d}/fifo_img.hdr")
os.remove(f"{d}/fifo_img.img")
os.mkfifo(f"{d}/fifo_img.img")
os.mkfifo(f"{d}/fifo.nii")
os.mkdir(f"{d}/folder.nii")
PY

P="$in/partner.nii.gz"
sums() { (cd "$in" && find . -type f -print0 | sort -z | xargs -0 md5sum); }
before=$(sums)

# run CMD...: one lpmnet command with a time limit (a FIFO must not hang it); sets rc and msg.
run() {
  msg=$(timeout -k 2 10 "$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && msg="timed out (hung?) $msg"
}

# hostile FILE PATTERN: info, fuse (FILE as A, and as B) and metrics on FILE each exit 2 (not a
# signal), name FILE and match PATTERN (the field), and leave no output file.
hostile() {
  local file="$in/$1" pattern=$2 what
  for what in info fuse_a fuse_b metrics; do
    case $what in
      info)    run "$bin" info "$file" ;;
      fuse_a)  run "$bin" fuse "$file" "$P" -o "$out/f.nii.gz" --method average ;;
      fuse_b)  run "$bin" fuse "$P" "$file" -o "$out/f.nii.gz" --method average ;;
      metrics) run "$bin" metrics "$file" "$P" "$P" ;;
    esac
    local desc="$1 ($what)" left
    left=$(ls -A "$out")
    if [ -n "$left" ]; then bad "$desc: exit $rc and left $left"; rm -rf "${out:?}"/* "$out"/.[!.]*; continue; fi
    if [ "$rc" -ne 2 ]; then
      [ "$rc" -ge 128 ] && bad "$desc: killed by signal $((rc - 128)) ($msg)" || bad "$desc: exit $rc, want 2 ($msg)"
      continue
    fi
    if ! grep -qF -- "$1" <<<"$msg" || ! grep -qiE -- "$pattern" <<<"$msg"; then
      bad "$desc: message '$msg' lacks the file name or /$pattern/"; continue; fi
    [ "$what" = info ] && ok "$1 -> exit 2: $msg"
  done
}

for v in -5 0 8 11 300; do
  hostile "n2_dim0_$v.nii" "NIfTI-2 header: dim\[0\] is $v, must be 1\.\.7"
  hostile "n2_dim0_$v.nii.gz" "NIfTI-2 header: dim\[0\] is $v, must be 1\.\.7"
done
hostile n1_dim0_9.nii "NIfTI-1 header: dim\[0\] is 9"
hostile n1_dim2_0.nii "dim\[2\] is 0, must be at least 1"
hostile n2_dim3_neg.nii.gz "dim\[3\] is -6, must be at least 1"
hostile n2_huge_le.nii "dim 4611686018427387908x1x1 .*too large"
hostile n2_huge_be.nii "dim 4611686018427387908x1x1 .*too large"
hostile n2_petabyte.nii "truncated.*4640 bytes, the header needs 4503599627371040"
hostile n1_640_little.nii.gz "truncated.*dim 640x640x640"
hostile short.nii "truncated.*552 bytes, the header needs 832"
hostile short_be.nii "truncated.*552 bytes, the header needs 832"
hostile n1_vox0.nii "vox_offset is 0, must be at least 352"
hostile n1_vox_frac.nii "vox_offset 352.5 is not a whole number"
hostile n1_vox_nan.nii "vox_offset nan"
hostile n1_vox_minus.nii "vox_offset is -1e\+30, must be at least 352"
hostile n1_vox_big.hdr "vox_offset 3e\+09 is beyond 2\^31-1"
hostile n2_vox100.nii "vox_offset is 100, must be at least 544"
hostile n2_vox_neg.nii.gz "vox_offset is -1099511627776"
hostile n2_rgb.nii "datatype RGB24 not supported"
hostile n1_dt999.nii "datatype 999 is not a NIfTI datatype"
hostile n1_bitpix.nii "bitpix is 16, but datatype FLOAT32 has 32"
hostile n1_magic.nii "magic is \"abc\""
hostile n1_pair_magic.nii "magic \"ni1\" marks a \.hdr/\.img pair"
hostile n2_pixdim.nii "pixdim\[1\] is 1e\+300"
hostile header_only.nii "NIfTI-2 header cut short \(300 of 540"
hostile lonely.hdr "lonely\.img is missing"
hostile lonely.img "no header file|lonely\.img"
hostile fifo.nii "FIFO"
hostile fifo_img.hdr "fifo_img\.img: is a FIFO"
hostile folder.nii "folder"

# A small .nii.gz declaring a 262 MB volume: info reads the header only (the old info read
# and converted the whole volume, about 1.3 GB); --stats reads it within the memory limit.
rss_limit=100000   # kB
[ -n "${LPM_SANITIZED:-}" ] && rss_limit=400000   # ASan's shadow memory and quarantine
if /usr/bin/time -f %M -o "$tmp/rss" timeout 20 "$bin" info "$in/zeros640.nii.gz" >"$tmp/info" 2>&1; then
  rss=$(tail -1 "$tmp/rss")
  if [ "$rss" -lt "$rss_limit" ] && grep -q "640 x 640 x 640" "$tmp/info"; then
    ok "info on a 640^3 .nii.gz reads the header only (max RSS $rss kB)"
  else bad "info on a 640^3 .nii.gz: max RSS $rss kB (limit $rss_limit): $(cat "$tmp/info")"; fi
else bad "info on a 640^3 .nii.gz failed: $(cat "$tmp/info")"; fi

# Good files: every layout and byte order reads, info names the format, the values arrive.
good() {
  local file=$1 format=$2
  if ! timeout 20 "$bin" info --stats "$in/$file" >"$tmp/info" 2>&1; then bad "$file: info failed: $(cat "$tmp/info")"; return; fi
  if ! grep -qE "format +$format" "$tmp/info"; then bad "$file: format line is '$(grep format "$tmp/info")', want /$format/"; return; fi
  if ! grep -q "min 0, max 119, mean 59.5" "$tmp/info"; then bad "$file: values: $(grep intensity "$tmp/info")"; return; fi
  ok "$file: $(grep -o 'format.*' "$tmp/info" | sed 's/format *//')"
}
good good1.nii "NIfTI-1 single file \(\.nii\), uncompressed, little-endian"
good good1.nii.gz "NIfTI-1 single file \(\.nii\), gzip-compressed, little-endian"
good good2.nii "NIfTI-2 single file \(\.nii\), uncompressed, little-endian"
good good2.nii.gz "NIfTI-2 single file \(\.nii\), gzip-compressed, little-endian"
good raw2.nii "NIfTI-2 single file \(\.nii\), uncompressed, little-endian"
good pair1.hdr "NIfTI-1 pair \(\.hdr/\.img\), uncompressed, little-endian"
good pair1.img "NIfTI-1 pair \(\.hdr/\.img\), uncompressed, little-endian"
good pair2.hdr "NIfTI-2 pair \(\.hdr/\.img\), uncompressed, little-endian"
good analyze.hdr "ANALYZE 7\.5 pair \(\.hdr/\.img\), uncompressed, little-endian"
good be1.nii "NIfTI-1 single file \(\.nii\), uncompressed, big-endian"
good be2.nii.gz "NIfTI-2 single file \(\.nii\), gzip-compressed, big-endian"
for f in good2.nii pair2.hdr be1.nii; do
  if timeout 20 "$bin" fuse "$in/$f" "$P" -o "$out/f.nii.gz" --method average >/dev/null 2>"$tmp/log" && [ -s "$out/f.nii.gz" ]; then
    ok "fuse $f with a NIfTI-1 partner"
  else bad "fuse $f: $(cat "$tmp/log")"; fi
  rm -f "$out/f.nii.gz"
done

[ "$(sums)" = "$before" ] && ok "inputs unchanged" || bad "an input file changed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
