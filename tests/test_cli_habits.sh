#!/usr/bin/env bash
# The command-line habits of FSL and ANTs users (docs/cli.md): --opt=value, an output named
# without an extension written as .nii.gz, -q/-v, progress lines when stderr is a log file,
# missing options and inputs named, --preview only under a .png name, the documented axis
# order of --shape, and preview columns labelled with the inputs' file names.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_cli_habits.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# expect CODE PATTERN DESC -- command...: exit code and a stderr line matching PATTERN
expect() {
  local code=$1 pattern=$2 desc=$3; shift 4
  local msg rc
  msg=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$desc: exit $rc, want $code ($msg)"; return; fi
  if ! grep -qE -- "$pattern" <<<"$msg"; then bad "$desc: message '$msg' lacks /$pattern/"; return; fi
  ok "$desc -> exit $code: $(head -1 <<<"$msg")"
}

# --opt=value: phantom's --out= and --shape= (D,H,W = 16,20,24 slices along z, rows along
# y, columns along x), so nibabel's (x, y, z) shape is (24, 20, 16)
if "$bin" phantom --out="$tmp/ph" --shape=16,20,24 --seed=2 >/dev/null 2>"$tmp/log"; then
  ok "phantom --out=DIR --shape=16,20,24 --seed=2"
else
  bad "phantom with --opt=value: $(cat "$tmp/log")"
fi
"$py" - "$tmp/ph/t1.nii.gz" <<'PY' && ok "--shape D,H,W = 16,20,24 is x,y,z = 24,20,16 (as the help says)" || bad "--shape axis order"
import sys, nibabel as nib
assert nib.load(sys.argv[1]).shape == (24, 20, 16), nib.load(sys.argv[1]).shape
PY
"$bin" phantom --help | grep -q "D slices" && "$bin" phantom --help | grep -q "x varies fastest" \
  && ok "phantom --help states the axis order of --shape" || bad "phantom --help: axis order"
expect 1 "expects D,H,W.*along z.*along y.*along x" "a bad --shape names the axes" -- "$bin" phantom -o "$tmp/x" --shape 16,20

A="$tmp/ph/t1.nii.gz"; B="$tmp/ph/t2.nii.gz"
# -o without an extension: .nii.gz, and the final name is printed; --out=VALUE and --method=NAME
mkdir -p "$tmp/out"
if "$bin" fuse "$A" "$B" --out="$tmp/out/noext" --method=average 2>"$tmp/log" && [ -s "$tmp/out/noext.nii.gz" ] \
   && [ ! -e "$tmp/out/noext" ]; then
  ok "fuse --out=out/noext --method=average writes out/noext.nii.gz"
else
  bad "fuse --out=noext: $(cat "$tmp/log"; ls "$tmp/out")"
fi
grep -q -- "-> $tmp/out/noext.nii.gz" "$tmp/log" && ok "the final name is printed: $(cat "$tmp/log")" || bad "final name: $(cat "$tmp/log")"
"$bin" fuse "$A" "$B" -o "$tmp/out/x.v1" --method max 2>/dev/null && [ -s "$tmp/out/x.v1.nii.gz" ] \
  && ok "-o x.v1 (a dot but no volume extension) -> x.v1.nii.gz" || bad "-o x.v1: $(ls "$tmp/out")"
"$bin" fuse "$A" "$B" -o "$tmp/out/y.nii" --method max 2>/dev/null && [ -s "$tmp/out/y.nii" ] && [ ! -e "$tmp/out/y.nii.nii.gz" ] \
  && ok "-o y.nii is kept as it is" || bad "-o y.nii: $(ls "$tmp/out")"
# metrics --only=LIST
"$bin" metrics "$A" "$B" "$tmp/out/noext.nii.gz" --only=ssim,mi --threads=0 >"$tmp/m" 2>"$tmp/log" \
  && [ "$(grep -cE '^(ssim|mi) ' "$tmp/m")" -eq 2 ] && ok "metrics --only=ssim,mi --threads=0" || bad "metrics --only=: $(cat "$tmp/m" "$tmp/log")"
# a '=' in a file name is not an option
cp "$A" "$tmp/a=1.nii.gz"
"$bin" fuse "$tmp/a=1.nii.gz" "$B" -o "$tmp/out/eq" --method max 2>"$tmp/log" && ok "a file named a=1.nii.gz is an input" \
  || bad "a=1.nii.gz: $(cat "$tmp/log")"

# -q: nothing on stderr on success (errors still); -v: the stages with their times
msg=$("$bin" fuse "$A" "$B" -o "$tmp/out/q" --method average -q 2>&1)
[ -z "$msg" ] && [ -s "$tmp/out/q.nii.gz" ] && ok "fuse -q prints nothing" || bad "fuse -q printed: $msg"
msg=$("$bin" phantom --quiet -o "$tmp/ph2" --shape 8,8,8 2>&1)
[ -z "$msg" ] && ok "phantom --quiet prints nothing" || bad "phantom --quiet printed: $msg"
expect 2 "missing.nii.gz" "-q still prints errors" -- "$bin" fuse -q "$tmp/missing.nii.gz" "$B" -o "$tmp/out/e"
"$bin" fuse "$A" "$B" -o "$tmp/out/v" --method average -v 2>"$tmp/log"
grep -qE "read .* in [0-9.]+ s" "$tmp/log" && grep -qE "scaled both inputs .* in [0-9.]+ s" "$tmp/log" \
  && grep -qE "average on [0-9]+ thread" "$tmp/log" && ok "fuse -v reports the stages and times" \
  || bad "fuse -v: $(cat "$tmp/log")"

# -q and -v are taken by every command, anywhere on the line
"$bin" models -q >/dev/null 2>&1 && "$bin" info -v "$A" >/dev/null 2>&1 && "$bin" info "$A" --quiet >/dev/null 2>&1 \
  && ok "models -q, info -v FILE, info FILE --quiet" || bad "-q/-v on models and info"

# Progress: stderr is a file here, so lines (not a bar) every LPM_PROGRESS_INTERVAL seconds
# (0.1 here; 5 by default): percent, elapsed, time left, then 100 %.
# (a smaller pair under the sanitizers, which run ~20 times slower)
shape=48,64,64 passes=4; [ "${LPM_SANITIZED:-0}" = 1 ] && shape=16,32,32 passes=1
"$bin" phantom -q -o "$tmp/p64" --shape "$shape"
LPM_PROGRESS_INTERVAL=0.1 "$bin" fuse "$tmp/p64/t1.nii.gz" "$tmp/p64/t2.nii.gz" -o "$tmp/out/prog" --threads 1 --passes "$passes" 2>"$tmp/log"
t='([0-9]+ (h|min) )?[0-9.]+ (s|min)'   # 12.3 s, 2 min 05 s, 1 h 02 min
n=$(grep -cE "^lpmnet fuse: [0-9]+% done, $t elapsed, about $t left$" "$tmp/log")
if [ "$n" -ge 2 ] && grep -qE "^lpmnet fuse: 100% done in $t$" "$tmp/log" && ! grep -q $'\r' "$tmp/log"; then
  ok "progress in a log: $n lines, then 100%"
else
  bad "progress lines ($n): $(cat "$tmp/log")"
fi
LPM_PROGRESS_INTERVAL=0.1 "$bin" fuse "$tmp/p64/t1.nii.gz" "$tmp/p64/t2.nii.gz" -o "$tmp/out/prog" --threads 1 --passes "$passes" -q 2>"$tmp/log"
[ ! -s "$tmp/log" ] && ok "no progress with -q" || bad "-q progress: $(cat "$tmp/log")"

# Missing required options and inputs name themselves
expect 1 "missing -o/--out OUTPUT \(where to write the fused volume\)" "fuse without -o" -- "$bin" fuse "$A" "$B"
expect 1 "missing input B" "fuse with one input" -- "$bin" fuse "$A" -o "$tmp/out/z"
expect 1 "missing the inputs A and B" "fuse with no input" -- "$bin" fuse -o "$tmp/out/z"
expect 1 "missing F \(the fused volume" "metrics with two volumes" -- "$bin" metrics "$A" "$B"
expect 1 "missing -o/--out DIR" "phantom without -o" -- "$bin" phantom --shape 8,8,8
expect 1 "--out needs a value" "--out without a value" -- "$bin" fuse "$A" "$B" --out

# --preview must be a .png name: nothing is written otherwise
expect 1 "--preview .*p.jpg.*\.png" "--preview p.jpg" -- "$bin" fuse "$A" "$B" -o "$tmp/out/pv" --method max --preview "$tmp/out/p.jpg"
[ ! -e "$tmp/out/p.jpg" ] && [ ! -e "$tmp/out/pv.nii.gz" ] && ok "--preview p.jpg wrote nothing" || bad "--preview p.jpg wrote: $(ls "$tmp/out")"

# The preview's columns carry the inputs' names without their folder and extension: with a
# 16x20x24 volume (shown 5x larger, 120 pixels) and a 33-character name the column is
# 12*33 - 2 = 394 pixels wide, so the picture is 42 + 3*(394 + 4) = 1236 pixels wide.
long=a_long_name_of_the_first_volume_x   # 33 characters
cp "$A" "$tmp/$long.nii.gz"
if "$bin" fuse "$tmp/$long.nii.gz" "$B" -o "$tmp/out/lab" --method max --preview "$tmp/out/lab.png" 2>"$tmp/log"; then
  w=$("$py" -c 'import struct,sys; print(struct.unpack(">I", open(sys.argv[1],"rb").read()[16:20])[0])' "$tmp/out/lab.png")
  [ "$w" -eq 1236 ] && ok "preview labels are file names without .nii.gz (width $w)" || bad "preview width $w, want 1236"
else
  bad "fuse --preview: $(cat "$tmp/log")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
