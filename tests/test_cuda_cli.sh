#!/usr/bin/env bash
# The command line with --device cuda, as a user runs it: fuse agrees with the CPU (the
# twelve metrics of both outputs to 1e-5), train writes a model, eval writes its report.
# Skips (77) where `lpmnet info --device` finds no usable GPU, as in CI.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
src="${LPM_SOURCE_DIR:?}"
tmp="${LPM_TMP:-/tmp}/test_cuda_cli.$$"
if ! why=$("$bin" info --device 2>&1); then echo "skip: $why"; exit 77; fi
echo "$why"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

model="$src/models/lpmnet-mri.safetensors"
"$bin" phantom --out "$tmp/ph" --shape 45,61,77 >/dev/null || { echo "phantom failed"; exit 1; }
for dev in cuda cpu; do
  if "$bin" fuse "$tmp/ph/t1.nii.gz" "$tmp/ph/t2.nii.gz" -o "$tmp/$dev.nii.gz" -m "$model" --exact \
       --device "$dev" --components "$tmp/c_$dev" 2>/dev/null; then ok "fuse --device $dev"
  else bad "fuse --device $dev exited $?"; fi
  "$bin" metrics "$tmp/ph/t1.nii.gz" "$tmp/ph/t2.nii.gz" "$tmp/$dev.nii.gz" --json |
    tr -d '{}"' | tr ',' '\n' | grep -v seconds >"$tmp/$dev.metrics"
done
# the same metrics, value by value, from both devices
if paste -d' ' "$tmp/cuda.metrics" "$tmp/cpu.metrics" | awk '
     { split($0, f, /[: ]+/); g = f[2] + 0; c = f[4] + 0; d = g - c; if (d < 0) d = -d
       s = c < 0 ? -c : c; if (d > 1e-5 * (s > 1 ? s : 1)) { print "  " f[1] ": cuda " g ", cpu " c; bad = 1 } }
     END { exit bad }' && [ -s "$tmp/cpu.metrics" ]; then ok "the fused volumes score the same on both devices"
else bad "the fused volumes score differently"; fi
for part in base detail; do
  [ -s "$tmp/c_cuda/$part.nii.gz" ] && ok "--components wrote $part" || bad "no $part component"
done

printf 'a,b\n%s,%s\n%s,%s\n' "$tmp/ph/t1.nii.gz" "$tmp/ph/t2.nii.gz" "$tmp/ph/flair.nii.gz" \
  "$tmp/ph/pd.nii.gz" >"$tmp/data.csv"
if "$bin" train --data "$tmp/data.csv" --out "$tmp/run" --iters 3 --shape 48,64,64 --device cuda \
     --quiet && [ -s "$tmp/run/model.safetensors" ] && [ "$(wc -l <"$tmp/run/train.csv")" -eq 4 ]
then ok "train --device cuda: 3 steps, a model and 3 log rows"
else bad "train --device cuda"; fi
if "$bin" eval --data "$tmp/data.csv" --out "$tmp/ev" --methods lpmnet,average -m "$model" \
     --device cuda >/dev/null 2>&1 && [ -s "$tmp/ev/summary.md" ]
then ok "eval --device cuda wrote its report"
else bad "eval --device cuda"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
