#!/usr/bin/env bash
# lpmnet train as a user runs it: outputs, the log, and resumability. A run interrupted
# (SIGINT, or SIGKILL between checkpoints) and resumed must end with the same weights, bit for
# bit, as an uninterrupted run.
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
args=(--data "$tmp/pairs.csv" --crop 16,16,16 --iters 6 --seed 3 --threads 2 --ckpt-every 1 --quiet)

if "$bin" train "${args[@]}" --out "$tmp/a" --val-every 3 --val "$tmp/pairs.csv" 2>"$tmp/log"; then ok "train 6 steps"; else bad "train: $(cat "$tmp/log")"; fi
for f in model.safetensors checkpoint.safetensors train.csv val.csv; do
  [ -s "$tmp/a/$f" ] && ok "wrote $f" || bad "missing $f"
done
rows=$(tail -n +2 "$tmp/a/train.csv" | wc -l)
[ "$rows" -eq 6 ] && ok "train.csv has 6 rows" || bad "train.csv has $rows rows"
head -1 "$tmp/a/train.csv" | grep -q "^step,epoch,lr,loss,mse_af" && ok "train.csv header" || bad "train.csv header"
awk -F, 'NR > 1 && ($4 != $4 + 0 || $4 == "nan" || $4 == "inf") { exit 1 }' "$tmp/a/train.csv" && ok "losses are numbers" || bad "non-numeric loss"
[ "$(tail -n +2 "$tmp/a/val.csv" | wc -l)" -eq 2 ] && ok "val.csv has 2 rows" || bad "val.csv rows"
"$bin" info "$tmp/a/model.safetensors" | grep -q "LPM-Net weights: yes" && ok "model.safetensors loads as LPM-Net weights" || bad "model.safetensors"
"$bin" fuse "$tmp/s1/t1.nii.gz" "$tmp/s1/t2.nii.gz" -o "$tmp/f.nii.gz" -m "$tmp/a/model.safetensors" 2>/dev/null && ok "fuse with the trained model" || bad "fuse with the trained model"

# refuse to overwrite a run without --resume
"$bin" train "${args[@]}" --out "$tmp/a" 2>"$tmp/log"; rc=$?
[ $rc -eq 1 ] && grep -q "resume" "$tmp/log" && ok "an existing run is not overwritten without --resume" || bad "overwrite guard: rc $rc $(cat "$tmp/log")"

# interrupted with SIGINT after the second step, then resumed
"$bin" train "${args[@]}" --out "$tmp/b" 2>/dev/null & pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/b/train.csv" ] && [ "$(tail -n +2 "$tmp/b/train.csv" | wc -l)" -ge 2 ] && break
  sleep 0.1
done
kill -INT $pid 2>/dev/null; wait $pid
done_steps=$(tail -n +2 "$tmp/b/train.csv" | wc -l)
"$bin" train "${args[@]}" --out "$tmp/b" --resume 2>/dev/null && ok "resume after SIGINT at step $done_steps" || bad "resume after SIGINT"
cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" && ok "SIGINT + resume: identical weights" || bad "SIGINT + resume: weights differ"
cmp -s <(cut -d, -f1-13 "$tmp/a/train.csv") <(cut -d, -f1-13 "$tmp/b/train.csv") && ok "SIGINT + resume: identical log" || bad "SIGINT + resume: log differs"

# killed hard after the third step: the last checkpoint is intact and the run resumes
"$bin" train "${args[@]}" --out "$tmp/c" 2>/dev/null & pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/c/train.csv" ] && [ "$(tail -n +2 "$tmp/c/train.csv" | wc -l)" -ge 3 ] && break
  sleep 0.1
done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
ls "$tmp/c" | grep -q "tmp" && bad "SIGKILL left a temporary file" || ok "SIGKILL left no temporary file"
"$bin" train "${args[@]}" --out "$tmp/c" --resume 2>/dev/null && ok "resume after SIGKILL" || bad "resume after SIGKILL"
cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors" && ok "SIGKILL + resume: identical weights" || bad "SIGKILL + resume: weights differ"

# usage errors
"$bin" train --data "$tmp/pairs.csv" --out "$tmp/d" --crop 20,16,16 2>/dev/null; [ $? -eq 1 ] && ok "crop not a multiple of 16 is a usage error" || bad "crop check"
"$bin" train --data "$tmp/nope" --out "$tmp/d" --crop 16,16,16 2>"$tmp/log"; [ $? -eq 2 ] && grep -q nope "$tmp/log" && ok "missing data names the path" || bad "missing data"

rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
