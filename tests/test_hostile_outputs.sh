#!/usr/bin/env bash
# Outputs under hostile conditions: an output that names an input (directly, through "./",
# a symlink, a hard link or the other file of a .hdr/.img pair) is refused and the input is
# left byte for byte; a signal during a write leaves no temporary file and either no output
# or a complete one; a killed writer's leftovers go with the next write of that output; two
# writers of one .hdr/.img pair never leave a mixed pair; a non-finite result is never
# written; --max-memory is parsed wherever it appears.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
src="${LPM_SOURCE_DIR:?}"
tmp="${LPM_TMP:-/tmp}/test_hostile_outputs.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
T="timeout 60"

ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

# Inputs: made with nibabel, independently of lpmnet's writer.
"$py" - "$tmp" "$src" <<'PY' || { echo "cannot make test inputs"; exit 1; }
import sys, json, struct, numpy as np, nibabel as nib
tmp, src = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
def save(name, data, cls=nib.Nifti1Image):
    nib.save(cls(data.astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0])), f"{tmp}/{name}")
def blob(shape, k):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    return 100 + 50 * k * np.exp(-(x**2 + y**2 + z**2) * (2 + k)) + rng.standard_normal(shape)
small = (20, 18, 17)
save("a.nii.gz", blob(small, 1)); save("b.nii", blob(small, 2))
save("pa.hdr", blob(small, 3), nib.AnalyzeImage)                 # an input .hdr/.img pair
inf = blob(small, 2); inf[3, 4, 5] = np.inf; save("inf.nii", inf)
# two pairs of different shapes, for two writers racing on one output pair
# (nearly equal sizes, so the writers reach their renames at nearly the same time)
save("r1a.nii", blob((40, 36, 30), 1)); save("r1b.nii", blob((40, 36, 30), 2))
save("r2a.nii", blob((36, 40, 31), 1)); save("r2b.nii", blob((36, 40, 31), 2))
# a larger pair whose write (gzip of 16 MB of smooth data) lasts long enough to be interrupted
big = (160, 160, 160)
g = blob(big, 1)
save("ga.nii", g); save("gb.nii", g[::-1])
# the bundled weights with every value NaN, or every value 9999 (finite, but the network's
# activations overflow to Inf and NaN)
raw = open(f"{src}/models/lpmnet-mri.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
for fill, out in ((np.nan, "nan_w"), (9999, "huge_w")):
    data = bytearray(raw)
    for name, t in hdr.items():
        if name == "__metadata__": continue
        lo, hi = t["data_offsets"]
        data[8 + n + lo:8 + n + hi] = np.full((hi - lo) // 4, fill, np.float32).tobytes()
    open(f"{tmp}/{out}.safetensors", "wb").write(bytes(data))
PY

A="$tmp/a.nii.gz"; B="$tmp/b.nii"; W="$src/models/lpmnet-mri.safetensors"
mkdir -p "$tmp/keep" "$tmp/listout"
for f in a.nii.gz b.nii pa.hdr pa.img; do cp "$tmp/$f" "$tmp/keep/$f"; done
ln -s a.nii.gz "$tmp/link_a.nii.gz"
ln "$tmp/b.nii" "$tmp/hard_b.nii"
mkdir -p "$tmp/comp"; cp "$A" "$tmp/comp/base.nii.gz"; cp "$A" "$tmp/keep/base.nii.gz"

listing() { (cd "$tmp" && ls -A . comp listout) | sort; }

# refused CODE PATTERN DESC -- command...: exit code, message, inputs unchanged, no new file
refused() {
  local code=$1 pattern=$2 desc=$3; shift 4
  local before msg rc
  before=$(listing)
  msg=$($T "$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$desc: exit $rc, want $code ($msg)"; return; fi
  if ! grep -qiE -- "$pattern" <<<"$msg"; then bad "$desc: message '$msg' lacks /$pattern/"; return; fi
  for f in a.nii.gz b.nii pa.hdr pa.img; do
    cmp -s "$tmp/$f" "$tmp/keep/$f" || { bad "$desc: input $f changed"; return; }
  done
  cmp -s "$tmp/comp/base.nii.gz" "$tmp/keep/base.nii.gz" || { bad "$desc: comp/base.nii.gz changed"; return; }
  if [ "$(listing)" != "$before" ]; then
    bad "$desc: files appeared or vanished: $(diff <(echo "$before") <(listing) | tr '\n' ' ')"; return; fi
  ok "$desc -> exit $code: $msg"
}

same='is the input .*same file.*refusing to overwrite'
avg=(--method average)
refused 1 "$same" "fuse -o A" -- "$bin" fuse "$A" "$B" -o "$A" "${avg[@]}"
refused 1 "$same" "fuse -o B" -- "$bin" fuse "$A" "$B" -o "$B" "${avg[@]}"
refused 1 "$same" "fuse -o dir/./A" -- "$bin" fuse "$A" "$B" -o "$tmp/./comp/../a.nii.gz" "${avg[@]}"
refused 1 "$same" "fuse -o a symlink to A" -- "$bin" fuse "$A" "$B" -o "$tmp/link_a.nii.gz" "${avg[@]}"
refused 1 "$same" "fuse A named through a symlink, -o A" -- "$bin" fuse "$tmp/link_a.nii.gz" "$B" -o "$A" "${avg[@]}"
refused 1 "$same" "fuse -o a hard link to B" -- "$bin" fuse "$A" "$B" -o "$tmp/hard_b.nii" "${avg[@]}"
refused 1 "$same" "fuse -o A (.nii.gz, LPM-Net)" -- "$bin" fuse "$A" "$B" -o "$A" -m "$W"
refused 1 "$same" "fuse input pa.hdr, -o pa.img" -- "$bin" fuse "$tmp/pa.hdr" "$B" -o "$tmp/pa.img" "${avg[@]}"
refused 1 "$same" "fuse input pa.img, -o pa.hdr" -- "$bin" fuse "$tmp/pa.img" "$B" -o "$tmp/pa.hdr" "${avg[@]}"
refused 1 "$same" "fuse input pa.hdr, -o pa.hdr" -- "$bin" fuse "$A" "$tmp/pa.hdr" -o "$tmp/pa.hdr" "${avg[@]}"
refused 1 "$same" "fuse --preview A" -- "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" --preview "$A" "${avg[@]}"
refused 1 "$same" "fuse --preview the model" -- "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" --preview "$W" -m "$W"
refused 1 "$same" "fuse --components onto an input" -- "$bin" fuse "$tmp/comp/base.nii.gz" "$B" -o "$tmp/out.nii.gz" -m "$W" --components "$tmp/comp"

# a different file of the same name pattern is fine: an output beside the inputs
if $T "$bin" fuse "$A" "$B" -o "$tmp/pb.hdr" "${avg[@]}" 2>"$tmp/log" && [ -s "$tmp/pb.img" ]; then
  ok "fuse -o a new pair beside an input pair"
else bad "fuse -o a new pair: $(cat "$tmp/log")"; fi
rm -f "$tmp"/pb.*

# ---- non-finite results are never written
refused 2 "inf.nii.*infinite" "fuse an input with an Inf voxel" -- "$bin" fuse "$A" "$tmp/inf.nii" -o "$tmp/out.nii.gz" "${avg[@]}"
# (the writer's own refusal, below these checks, is tested in test_output_guards.c)
refused 2 "nan_w.safetensors.*non-finite" "fuse with NaN weights" -- \
  "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" -m "$tmp/nan_w.safetensors"
refused 2 "huge_w.safetensors: .*non-finite" "fuse with weights whose result overflows to NaN" -- \
  "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" -m "$tmp/huge_w.safetensors"
refused 2 "huge_w.safetensors: .*non-finite" "the same with --components" -- \
  "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" -m "$tmp/huge_w.safetensors" --components "$tmp/comp"
printf 'a,b\n%s,%s\n' "$A" "$B" >"$tmp/list.csv"
refused 2 "huge_w.safetensors: .*non-finite" "the same with fuse --list" -- \
  "$bin" fuse --list "$tmp/list.csv" --out "$tmp/listout" -m "$tmp/huge_w.safetensors"

# ---- metrics: a metric that is not finite is reported as undefined with its reason, never
# as a number, and the JSON stays valid (F = A: PSNR's MSE is 0)
msg=$($T "$bin" metrics "$A" "$B" "$A" --only psnr,ssim 2>"$tmp/log"); rc=$?
if [ "$rc" -eq 0 ] && grep -qE "^psnr +undefined \(F equals A or B" <<<"$msg" && ! grep -qiE "^psnr +-?(inf|nan)" <<<"$msg" &&
   grep -q "psnr is undefined" "$tmp/log"; then ok "metrics F=A: psnr undefined (F equals A or B), said on stderr too"
else bad "metrics F=A: exit $rc, '$msg' $(cat "$tmp/log")"; fi
if $T "$bin" metrics "$A" "$B" "$A" --json 2>/dev/null | "$py" -c '
import json, sys; d = json.load(sys.stdin)
assert d["psnr"] is None and "MSE 0" in d["undefined"]["psnr"], d
assert all(isinstance(d[k], float) for k in ("ssim", "qabf", "mi", "sd")), d'; then
  ok "metrics --json F=A: valid JSON, psnr null with its reason under \"undefined\""
else bad "metrics --json F=A"; fi

# ---- --max-memory: anywhere on the line, K/M/G/T suffixes, bad values refused
if $T "$bin" fuse "$A" "$B" -o "$tmp/mm.nii" --max-memory 4G "${avg[@]}" 2>"$tmp/log" && [ -s "$tmp/mm.nii" ]; then
  ok "fuse ... --max-memory 4G"; else bad "fuse ... --max-memory 4G: $(cat "$tmp/log")"; fi
if $T "$bin" --max-memory=512M fuse "$A" "$B" -o "$tmp/mm.nii" "${avg[@]}" 2>"$tmp/log"; then
  ok "--max-memory=512M before the command"; else bad "--max-memory=512M: $(cat "$tmp/log")"; fi
rm -f "$tmp/mm.nii"
refused 2 "a.nii.gz" "--max-memory 1K refuses a 23 KB volume" -- "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" --max-memory 1K "${avg[@]}"
for v in 4X -1 0 "" 1.5G 99999999999999T; do
  refused 1 "max-memory.*(size|value)" "--max-memory '$v'" -- "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" --max-memory "$v" "${avg[@]}"
done
refused 1 "max-memory.*needs a value" "--max-memory without a value" -- "$bin" fuse "$A" "$B" -o "$tmp/out.nii.gz" "${avg[@]}" --max-memory
"$bin" --help | grep -q -- "--max-memory SIZE" && ok "--help documents --max-memory" || bad "--help lacks --max-memory"

# ---- signals during a write: no temporary file; the output absent or complete
leftovers() { compgen -G "$tmp/sig/*tmp*" >/dev/null || compgen -G "$tmp/sig/.*tmp*" >/dev/null; }
complete_output() {   # s.hdr.gz + s.img.gz whole, or neither
  local h="$tmp/sig/s.hdr.gz" i="$tmp/sig/s.img.gz"
  [ ! -e "$h" ] && [ ! -e "$i" ] && return 0
  [ -e "$h" ] && [ -e "$i" ] && [ "$(gzip -dc "$i" | wc -c)" -eq $((160 * 160 * 160 * 4)) ] && gzip -t "$h"
}
# start a write, wait for its temporary files to appear, then send the signal after a delay
write_and_signal() {   # SIG DELAY -> prints the exit code
  rm -rf "$tmp/sig"; mkdir -p "$tmp/sig"
  # job control: a background job's SIGINT is not ignored
  set -m
  $T "$bin" fuse "$tmp/ga.nii" "$tmp/gb.nii" -o "$tmp/sig/s.hdr.gz" "${avg[@]}" --threads 1 2>/dev/null &
  local pid=$! k
  set +m
  for k in $(seq 600); do compgen -G "$tmp/sig/.s.hdr.gz.tmp.*" >/dev/null && break; sleep 0.01; done
  sleep "$2"
  pkill -"$1" -P "$pid" 2>/dev/null || kill -"$1" "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
for sig in INT TERM; do
  hit=0; good=1
  for d in 0 0.03 0.1 0.3 1.0; do
    write_and_signal "$sig" "$d"; rc=$?; echo "  ($sig after ${d}s: exit $rc)"
    [ "$rc" -ne 0 ] && hit=$((hit + 1))
    if [ "$rc" -ne 0 ] && [ "$rc" -ne $((128 + $(kill -l "$sig"))) ]; then bad "SIG$sig after ${d}s: exit $rc"; good=0; fi
    if leftovers; then bad "SIG$sig after ${d}s: left $(ls -A "$tmp/sig" | tr '\n' ' ')"; good=0; fi
    if ! complete_output; then bad "SIG$sig after ${d}s: incomplete output $(ls -lA "$tmp/sig" | tr '\n' ' ')"; good=0; fi
  done
  if [ "$hit" -eq 0 ]; then bad "SIG$sig: no run was interrupted (the write is too fast for the test)"
  elif [ "$good" -eq 1 ]; then ok "SIG$sig during a .hdr.gz write ($hit of 5 interrupted): no temporary file, output absent or complete"; fi
done

# SIGKILL cannot be caught: its leftovers go with the next write of the same output
write_and_signal KILL 0.05
if leftovers; then
  left=$(ls -A "$tmp/sig" | grep -c tmp)
  if $T "$bin" fuse "$A" "$B" -o "$tmp/sig/s.hdr.gz" "${avg[@]}" 2>"$tmp/log" && ! leftovers; then
    ok "SIGKILL left $left temporary files; the next write of s.hdr.gz removed them"
  else bad "after SIGKILL: $(cat "$tmp/log"); left $(ls -A "$tmp/sig" | tr '\n' ' ')"; fi
else
  ok "SIGKILL (nothing left to clean)"
fi

# stale temporary files of a dead pid are removed; a live pid's, or another output's, are kept
rm -rf "$tmp/stale"; mkdir -p "$tmp/stale"
true & dead=$!; wait $dead
stale=(".o.hdr.tmp.$dead.3.hdr" ".o.hdr.tmp.$dead.3.img.gz" "o.nii.gz.tmp.$dead.a1b2c3")
kept=(".o.hdr.tmp.$$.3.img" "o.nii.gz.tmp.$$.a1b2c3" ".other.hdr.tmp.$dead.1.hdr" ".o.hdr.tmp.$dead.x" "o.nii.gz.tmp.${dead}x")
for f in "${stale[@]}" "${kept[@]}"; do echo stale >"$tmp/stale/$f"; done
$T "$bin" fuse "$A" "$B" -o "$tmp/stale/o.hdr" "${avg[@]}" 2>/dev/null
$T "$bin" fuse "$A" "$B" -o "$tmp/stale/o.nii.gz" "${avg[@]}" 2>/dev/null
gone=1; for f in "${stale[@]}"; do [ -e "$tmp/stale/$f" ] && gone=0; done
kept_all=1; for f in "${kept[@]}"; do [ -e "$tmp/stale/$f" ] || kept_all=0; done
[ "$gone" -eq 1 ] && ok "a dead pid's temporary files of the output are removed" || bad "stale files left: $(ls -A "$tmp/stale" | tr '\n' ' ')"
[ "$kept_all" -eq 1 ] && ok "a live pid's, another output's and non-matching files are kept" || bad "removed too much: $(ls -A "$tmp/stale" | tr '\n' ' ')"

# ---- four writers (two shapes) of one .hdr.gz/.img.gz pair: the header's dims always match
# the image's size (without the lock, about 1 in 20 races left a mixed pair)
# (fewer under the sanitizers, where each run is several times slower)
races=25; [ -n "${LPM_SANITIZED:-}" ] && races=8
mixed=0
for k in $(seq "$races"); do
  rm -f "$tmp/race".*
  pids=()
  for j in 1 2 1 2; do
    $T "$bin" fuse "$tmp/r${j}a.nii" "$tmp/r${j}b.nii" -o "$tmp/race.hdr.gz" "${avg[@]}" --threads 1 2>/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  read -r _ d1 d2 d3 < <(gzip -dc "$tmp/race.hdr.gz" | od -An -t d2 -j 40 -N 8)
  [ "$(gzip -dc "$tmp/race.img.gz" | wc -c)" -eq $((${d1:-0} * ${d2:-0} * ${d3:-0} * 4)) ] || mixed=$((mixed + 1))
done
[ "$mixed" -eq 0 ] && ok "$races races of four writers on one .hdr.gz/.img.gz pair: every pair consistent" \
                   || bad "four writers on one pair: $mixed of $races pairs mixed"
compgen -G "$tmp/.race*" >/dev/null && bad "races left temporary files: $(ls -A "$tmp" | grep race)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && rm -rf "$tmp"
[ "$fail" -eq 0 ]
