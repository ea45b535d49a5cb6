#!/usr/bin/env bash
# lpmnet train as a user runs it: outputs, the log, validation and the best model, bad inputs
# refused before the first step, and resumability: a 20-step run interrupted (SIGINT, or
# SIGKILL after step 12) and resumed ends with the same weights, bit for bit, as an
# uninterrupted run.
set -u
bin="${LPM_BIN:?}"
tmp="${LPM_TMP:-/tmp}/test_train_cli.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

"$bin" phantom --out "$tmp/s1" --shape 32,40,36 --seed 1 >/dev/null || { echo "phantom failed"; exit 1; }
"$bin" phantom --out "$tmp/s2" --shape 32,40,36 --seed 2 >/dev/null
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\ns2/t2.nii.gz,s2/t1.nii.gz\ns1/flair.nii.gz,s1/t1.nii.gz\n' > "$tmp/pairs.csv"
args=(--data "$tmp/pairs.csv" --crop 16,16,16 --iters 20 --seed 3 --threads 2 --ckpt-every 1 --quiet)

if "$bin" train "${args[@]}" --out "$tmp/a" 2>"$tmp/log"; then ok "train 20 steps"; else bad "train: $(cat "$tmp/log")"; fi
for f in model.safetensors checkpoint.safetensors train.csv; do
  [ -s "$tmp/a/$f" ] && ok "wrote $f" || bad "missing $f"
done
rows=$(tail -n +2 "$tmp/a/train.csv" | wc -l)
[ "$rows" -eq 20 ] && ok "train.csv has 20 rows" || bad "train.csv has $rows rows"
head -1 "$tmp/a/train.csv" | grep -q "^step,epoch,lr,loss,mse_af" && ok "train.csv header" || bad "train.csv header"
awk -F, 'NR > 1 && ($4 != $4 + 0 || $4 == "nan" || $4 == "inf") { exit 1 }' "$tmp/a/train.csv" && ok "losses are numbers" || bad "non-numeric loss"
if "$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 6 --seed 3 --quiet --out "$tmp/v" \
     --val-every 3 --val "$tmp/pairs.csv" 2>"$tmp/log"; then ok "train with validation"; else bad "validation run: $(cat "$tmp/log")"; fi
[ "$(tail -n +2 "$tmp/v/val.csv" | wc -l)" -eq 2 ] && ok "val.csv has 2 rows" || bad "val.csv rows"
"$bin" info "$tmp/v/best.safetensors" 2>/dev/null | grep -q "LPM-Net weights: yes" && ok "best.safetensors kept" || bad "best.safetensors"
# the edge term: logged in train.csv, 0 in the authors' objective, positive with --edge
edge_col() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "edge_f") c = i } NR > 1 { print $c }' "$1"; }
edge_col "$tmp/a/train.csv" | awk '$1 != 0 { exit 1 }' && ok "edge_f is 0 without --edge" || bad "edge_f without --edge"
if "$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 3 --seed 3 --quiet --out "$tmp/e" --edge 5 \
     2>"$tmp/log"; then ok "train with --edge 5"; else bad "--edge run: $(cat "$tmp/log")"; fi
[ "$(edge_col "$tmp/e/train.csv" | awk '$1 > 0 && $1 < 1' | wc -l)" -eq 3 ] && ok "edge_f logged, positive" \
  || bad "edge_f with --edge: $(edge_col "$tmp/e/train.csv" | tr '\n' ' ')"
# the fusion-target term likewise: target_f 0 without --target, positive with it, and part of the record
target_col() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "target_f") c = i } NR > 1 { print $c }' "$1"; }
[ "$(target_col "$tmp/a/train.csv" | awk '$1 == 0' | wc -l)" -ge 3 ] && ok "target_f is 0 without --target" \
  || bad "target_f without --target: $(target_col "$tmp/a/train.csv" | tr '\n' ' ')"
if "$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 3 --seed 3 --quiet --out "$tmp/tg" --target 50 \
     2>"$tmp/log"; then ok "train with --target 50"; else bad "--target run: $(cat "$tmp/log")"; fi
[ "$(target_col "$tmp/tg/train.csv" | awk '$1 > 0 && $1 < 1' | wc -l)" -eq 3 ] && ok "target_f logged, positive" \
  || bad "target_f with --target: $(target_col "$tmp/tg/train.csv" | tr '\n' ' ')"
"$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 3 --seed 3 --quiet --out "$tmp/tg" --resume 2>"$tmp/log"
[ $? -eq 1 ] && grep -q -- "--target" "$tmp/log" && ok "resume without the run's --target refused, naming it" \
  || bad "resume without --target: $(cat "$tmp/log")"
# the QABF term likewise
qabf_col() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "qabf_f") c = i } NR > 1 { print $c }' "$1"; }
[ "$(qabf_col "$tmp/a/train.csv" | awk '$1 == 0' | wc -l)" -ge 3 ] && ok "qabf_f is 0 without --qabf" \
  || bad "qabf_f without --qabf: $(qabf_col "$tmp/a/train.csv" | tr '\n' ' ')"
if "$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 3 --seed 3 --quiet --out "$tmp/q" --qabf 2 \
     2>"$tmp/log"; then ok "train with --qabf 2"; else bad "--qabf run: $(cat "$tmp/log")"; fi
[ "$(qabf_col "$tmp/q/train.csv" | awk '$1 > 0 && $1 <= 1' | wc -l)" -eq 3 ] && ok "qabf_f logged, in (0, 1]" \
  || bad "qabf_f with --qabf: $(qabf_col "$tmp/q/train.csv" | tr '\n' ' ')"
"$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 3 --seed 3 --quiet --out "$tmp/q" --resume 2>"$tmp/log"
[ $? -eq 1 ] && grep -q -- "--qabf" "$tmp/log" && ok "resume without the run's --qabf refused, naming it" \
  || bad "resume without --qabf: $(cat "$tmp/log")"
"$bin" info "$tmp/a/model.safetensors" | grep -q "LPM-Net weights: yes" && ok "model.safetensors loads as LPM-Net weights" || bad "model.safetensors"
"$bin" fuse "$tmp/s1/t1.nii.gz" "$tmp/s1/t2.nii.gz" -o "$tmp/f.nii.gz" -m "$tmp/a/model.safetensors" 2>/dev/null && ok "fuse with the trained model" || bad "fuse with the trained model"

# refuse to overwrite a run without --resume
"$bin" train "${args[@]}" --out "$tmp/a" 2>"$tmp/log"; rc=$?
[ $rc -eq 1 ] && grep -q "resume" "$tmp/log" && ok "an existing run is not overwritten without --resume" || bad "overwrite guard: rc $rc $(cat "$tmp/log")"

# interrupted with SIGINT after the fifth step, then resumed
"$bin" train "${args[@]}" --out "$tmp/b" 2>/dev/null & pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/b/train.csv" ] && [ "$(tail -n +2 "$tmp/b/train.csv" | wc -l)" -ge 5 ] && break
  sleep 0.1
done
kill -INT $pid 2>/dev/null; wait $pid
done_steps=$(tail -n +2 "$tmp/b/train.csv" | wc -l)
"$bin" train "${args[@]}" --out "$tmp/b" --resume 2>/dev/null && ok "resume after SIGINT at step $done_steps" || bad "resume after SIGINT"
cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" && ok "SIGINT + resume: identical weights" || bad "SIGINT + resume: weights differ"
cmp -s <(cut -d, -f1-13 "$tmp/a/train.csv") <(cut -d, -f1-13 "$tmp/b/train.csv") && ok "SIGINT + resume: identical log" || bad "SIGINT + resume: log differs"

# killed hard after step 12: the last checkpoint is intact and the run resumes
"$bin" train "${args[@]}" --out "$tmp/c" 2>/dev/null & pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/c/train.csv" ] && [ "$(tail -n +2 "$tmp/c/train.csv" | wc -l)" -ge 12 ] && break
  sleep 0.1
done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
# a kill during a checkpoint write may leave that write's temporary file (named with the
# writer's pid); the next write of the checkpoint (here: the resumed run's) removes it. One is
# planted with a pid that cannot be alive (above pid_max), so the check does not depend on
# where the kill landed.
: > "$tmp/c/checkpoint.safetensors.tmp.999999999.1a2b3c"
"$bin" train "${args[@]}" --out "$tmp/c" --resume 2>/dev/null && ok "resume after SIGKILL" || bad "resume after SIGKILL"
ls "$tmp/c" | grep -q "tmp" && bad "a temporary file survives SIGKILL + resume" || ok "no temporary file after SIGKILL + resume"
cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors" && ok "SIGKILL + resume: identical weights" || bad "SIGKILL + resume: weights differ"

# bad inputs: each a clear error before the first step (no train.csv row, no checkpoint)
refuse() {  # refuse CODE PATTERN DESC -- train args...
  local code=$1 pattern=$2 desc=$3; shift 4
  rm -rf "$tmp/d"
  "$bin" train "$@" --iters 2 --quiet 2>"$tmp/log"; local rc=$?
  if [ $rc -ne "$code" ]; then bad "$desc: exit $rc, want $code ($(cat "$tmp/log"))"
  elif ! grep -qiE -- "$pattern" "$tmp/log"; then bad "$desc: message '$(cat "$tmp/log")' lacks /$pattern/"
  elif [ -s "$tmp/d/checkpoint.safetensors" ] || [ "$(tail -n +2 "$tmp/d/train.csv" 2>/dev/null | wc -l)" -gt 0 ]; then bad "$desc: trained anyway"
  else ok "$desc -> exit $code: $(head -1 "$tmp/log")"; fi
}
mkdir -p "$tmp/grid"
"$bin" phantom --out "$tmp/grid" --shape 32,40,37 --seed 4 >/dev/null
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\ns1/t1.nii.gz,grid/t2.nii.gz\n' > "$tmp/badgrid.csv"
printf 'a,b\ns1/t1.nii.gz,s1/missing.nii.gz\n' > "$tmp/missing.csv"
refuse 1 "edge" "a negative --edge" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --edge -1
refuse 1 "target" "--target beyond 10000" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --target 1e5
refuse 1 "multiple of 16" "crop not a multiple of 16" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 20,16,16
refuse 2 "nope" "missing data folder" -- --data "$tmp/nope" --out "$tmp/d" --crop 16,16,16
refuse 2 "dwi" "folder without the requested modalities" -- --data "$tmp/s1" --pair t1,dwi --out "$tmp/d" --crop 16,16,16
refuse 2 "grid/t2.nii.gz" "a pair on different grids" -- --data "$tmp/badgrid.csv" --out "$tmp/d" --crop 16,16,16
refuse 2 "missing.nii.gz" "a CSV naming a missing file" -- --data "$tmp/missing.csv" --out "$tmp/d" --crop 16,16,16
refuse 2 "smaller than the crop" "crop larger than the volume" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 48,48,48
refuse 2 "not-a-dir" "output folder under a file" -- --data "$tmp/pairs.csv" --out "$tmp/pairs.csv/not-a-dir" --crop 16,16,16
refuse 1 "aug-gamma 5: must be in" "--aug-gamma beyond 4" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --aug-gamma 5
refuse 1 "sf-match -1: must be in" "a negative --sf-match" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --sf-match -1
refuse 1 "aug-noise 0.5: must be in" "--aug-noise beyond 0.2" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --aug-noise 0.5
refuse 1 "as many rows as columns" "--aug-rotate with a crop of H != W" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,32 --aug-rotate
refuse 1 "percentile range" "--clip with one number" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --clip 5
refuse 1 "masks from the data" "--mask (masks come from the data)" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --mask x.nii
refuse 2 "looks like CT" "--ct-window without a CT input" -- --data "$tmp/pairs.csv" --out "$tmp/d" --crop 16,16,16 --ct-window bone

# the random contrast curve changes the samples and is part of the run's record
"$bin" train "${args[@]}" --iters 3 --out "$tmp/ag" --aug-gamma 2 2>"$tmp/log" || bad "--aug-gamma run: $(cat "$tmp/log")"
"$bin" train "${args[@]}" --iters 3 --out "$tmp/ag1" --aug-gamma 1 2>"$tmp/log" || bad "--aug-gamma 1 run: $(cat "$tmp/log")"
cmp -s "$tmp/ag/model.safetensors" "$tmp/ag1/model.safetensors" && bad "--aug-gamma 2 trained the same weights as none" \
  || ok "--aug-gamma 2 changes the training"
"$bin" train "${args[@]}" --iters 3 --out "$tmp/ag" --resume 2>"$tmp/log"
[ $? -eq 1 ] && grep -q -- "--aug-gamma (checkpoint 2, this run 1)" "$tmp/log" \
  && ok "resume without the run's --aug-gamma refused, naming it" || bad "resume without --aug-gamma: $(cat "$tmp/log")"

# noise, quarter turns and the SF-match term likewise: other weights, part of the record
for aug in "--aug-noise 0.05" "--aug-rotate" "--sf-match 200"; do
  name=${aug%% *}
  "$bin" train "${args[@]}" --iters 3 --out "$tmp/aug" $aug 2>"$tmp/log" || bad "$aug run: $(cat "$tmp/log")"
  cmp -s "$tmp/aug/model.safetensors" "$tmp/ag1/model.safetensors" && bad "$aug trained the same weights as none" \
    || ok "$aug changes the training"
  "$bin" train "${args[@]}" --iters 3 --out "$tmp/aug" --resume 2>"$tmp/log"
  [ $? -eq 1 ] && grep -q -- "$name (checkpoint" "$tmp/log" \
    && ok "resume without the run's $name refused, naming it" || bad "resume without $name: $(cat "$tmp/log")"
  rm -rf "$tmp/aug"
done

# the scaling of the inputs, as fuse's: --clip changes the run and is part of its record
"$bin" train "${args[@]}" --iters 3 --out "$tmp/cl" --clip 0,99 2>"$tmp/log" || bad "--clip run: $(cat "$tmp/log")"
"$bin" train "${args[@]}" --iters 3 --out "$tmp/mm" 2>"$tmp/log" || bad "min-max run: $(cat "$tmp/log")"
cmp -s "$tmp/cl/model.safetensors" "$tmp/mm/model.safetensors" && bad "--clip 0,99 trained the same weights as min-max" \
  || ok "--clip 0,99 changes the training"
cmp -s "$tmp/ag1/model.safetensors" "$tmp/mm/model.safetensors" && ok "--aug-gamma 1 trains what a run without it does" \
  || bad "--aug-gamma 1 changed the training"
"$bin" train "${args[@]}" --iters 3 --out "$tmp/cl" --resume 2>"$tmp/log"
[ $? -eq 1 ] && grep -q "clip 0,99, this run min-max" "$tmp/log" && ok "resume without the run's --clip refused, naming it" \
  || bad "resume without --clip: $(cat "$tmp/log")"
"$bin" train "${args[@]}" --iters 3 --out "$tmp/cl" --resume --clip 0,99 2>"$tmp/log" \
  && ok "resume with the same --clip" || bad "resume with --clip: $(cat "$tmp/log")"
printf 'a,b\ns1/ct.nii.gz,s1/t1.nii.gz\ns2/t2.nii.gz,s2/ct.nii.gz\n' > "$tmp/ct.csv"
"$bin" train --data "$tmp/ct.csv" --crop 16,16,16 --iters 2 --quiet --threads 2 --out "$tmp/ctw" --ct-window bone 2>"$tmp/log" \
  && ok "--ct-window bone on CT/MR pairs" || bad "--ct-window bone: $(cat "$tmp/log")"

# the last of --crop and --shape decides: recorded as the checkpoint's sample
"$bin" train --data "$tmp/pairs.csv" --iters 1 --crop 16,16,16 --shape 16,32,32 --quiet --out "$tmp/sh" 2>"$tmp/log" &&
  "$bin" train --data "$tmp/pairs.csv" --iters 1 --shape 16,32,32 --crop 16,16,16 --quiet --out "$tmp/cr" 2>>"$tmp/log" \
  || bad "--crop/--shape runs: $(cat "$tmp/log")"
sample_of() { "$py" - "$1" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    print(json.loads(f.read(n))["__metadata__"]["sample"])
PY
}
py="${LPM_PYTHON:-/usr/bin/python3}"
[ "$(sample_of "$tmp/sh/checkpoint.safetensors")" = "shape 16,32,32" ] && [ "$(sample_of "$tmp/cr/checkpoint.safetensors")" = "crop 16,16,16" ] \
  && ok "--crop then --shape resizes, --shape then --crop crops" \
  || bad "sample records: $(sample_of "$tmp/sh/checkpoint.safetensors") / $(sample_of "$tmp/cr/checkpoint.safetensors")"
# --init takes a bundled model's name as fuse -m does
if "$bin" models >/dev/null 2>&1 && "$bin" info --model >/dev/null 2>&1; then
  "$bin" train --data "$tmp/pairs.csv" --iters 1 --crop 16,16,16 --quiet --init mri --out "$tmp/im" 2>"$tmp/log" \
    && ok "--init mri (the bundled model)" || bad "--init mri: $(cat "$tmp/log")"
fi

rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
