#!/usr/bin/env bash
# lpmnet over MPI (docs/cluster.md), two ranks on this machine:
#   - mpirun -np 2 lpmnet train --batch 2 gives the weights of one process with --batch 2
#     (within 1e-5 relative per tensor; in practice identical), the same train.csv losses
#     and val.csv;
#   - that MPI run, with rank 1 killed (SIGKILL) after step 8 and resumed, ends with the same
#     weights (under sanitizers: 8 steps, the kill after step 4);
#   - a case that cannot be read stops both ranks with its message and exit 2 (no hang),
#     and the checkpoint written before stays valid;
#   - mpirun -np 2 lpmnet eval writes the metrics.csv and summary.md of one process (the
#     timing column aside);
#   - mpirun -np 2 lpmnet fuse --list writes the files of one process, a bad pair reported.
# Skips (77) without mpirun or in a build without MPI.
set -u
bin="${LPM_BIN:?}"
tmp="${LPM_TMP:-/tmp}/test_mpi.$$"
py="${LPM_PYTHON:-python3}"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: no mpirun"; exit 77; }
iters=20 kill_at=8
if [ "${LPM_SANITIZED:-0}" = 1 ]; then
  # Open MPI keeps allocations of its own (and of the components it loads) until exit, which
  # LeakSanitizer reports: tests/lsan_mpi.supp suppresses them by library. Their stacks are
  # only complete with the slow unwinder (Open MPI is built without frame pointers).
  supp="${LPM_SOURCE_DIR:-$(dirname "$0")/..}/tests/lsan_mpi.supp"
  export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export OMPI_MCA_mca_base_component_disable_dlclose=1  # keep the components' symbols for LSan
  iters=8 kill_at=4  # the same checks on a shorter run: sanitized steps are several times slower
fi
# CI runs as root; one thread per rank; no network probing on a single machine
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
mpi=(mpirun -np 2 --oversubscribe)
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }

"$bin" phantom --out "$tmp/s1" --shape 32,40,36 --seed 1 >/dev/null || { echo "phantom failed"; exit 1; }
"$bin" phantom --out "$tmp/s2" --shape 32,40,36 --seed 2 >/dev/null
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\ns2/t2.nii.gz,s2/t1.nii.gz\ns1/flair.nii.gz,s1/t1.nii.gz\n' > "$tmp/pairs.csv"

# a build without MPI refuses to run under mpirun: skip rather than fail
timeout 120 "${mpi[@]}" "$bin" train --data "$tmp/pairs.csv" --out "$tmp/probe" --crop 16,16,16 --iters 1 \
  --batch 2 --quiet >"$tmp/log" 2>&1
if grep -q "built without MPI" "$tmp/log"; then echo "skipped: lpmnet built without MPI"; rm -rf "$tmp"; exit 77; fi
if [ ! -s "$tmp/probe/model.safetensors" ]; then
  echo "mpirun cannot start two lpmnet ranks here:"; cat "$tmp/log"; rm -rf "$tmp"; exit 1
fi

# max relative difference over tensors (max |a-b| / max |a| per tensor) of two safetensors
rel_diff() {
  "$py" - "$1" "$2" <<'PY'
import json, struct, sys
from array import array
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    out = {}
    for k, v in h.items():
        a = array('f'); a.frombytes(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]); out[k] = a
    return out
x, y = load(sys.argv[1]), load(sys.argv[2])
worst = 0.0
for k in x:
    m = max(abs(v) for v in x[k]) or 1.0
    d = max(abs(p - q) for p, q in zip(x[k], y[k]))
    worst = max(worst, d / m)
print('%.3g' % worst)
PY
}
close_to() {  # close_to FILE1 FILE2 DESC: within 1e-5 relative
  local r; r=$(rel_diff "$1" "$2")
  if [ -z "$r" ]; then bad "$3: cannot compare"; return; fi
  if cmp -s "$1" "$2"; then ok "$3: identical files"
  elif awk -v r="$r" 'BEGIN { exit !(r <= 1e-5) }'; then ok "$3: relative difference $r"
  else bad "$3: relative difference $r > 1e-5"; fi
}

# ---- training: one process against two ranks, --batch 2, validation split over the ranks
args=(--data "$tmp/pairs.csv" --crop 16,16,16 --iters "$iters" --seed 3 --batch 2 --ckpt-every 1 --quiet
      --val-every $((iters / 2)) --val "$tmp/pairs.csv")
"$bin" train "${args[@]}" --threads 1 --out "$tmp/one" 2>"$tmp/log" && ok "one process, --batch 2, $iters steps" \
  || bad "one process: $(cat "$tmp/log")"
timeout 300 "${mpi[@]}" "$bin" train "${args[@]}" --out "$tmp/two" >"$tmp/log" 2>&1 && ok "mpirun -np 2, --batch 2, $iters steps" \
  || bad "mpirun -np 2: $(cat "$tmp/log")"
close_to "$tmp/one/model.safetensors" "$tmp/two/model.safetensors" "2 ranks = 1 process: model.safetensors"
cmp -s <(cut -d, -f1-13 "$tmp/one/train.csv") <(cut -d, -f1-13 "$tmp/two/train.csv") && ok "same train.csv losses" \
  || bad "train.csv losses differ"
cmp -s "$tmp/one/val.csv" "$tmp/two/val.csv" && ok "same val.csv (validation split over the ranks)" || bad "val.csv differs"
awk -F, 'NR == 1 && $16 != "comm_seconds" { exit 1 } NR > 1 && !($16 > 0) { exit 1 }' "$tmp/two/train.csv" \
  && ok "train.csv logs the exchange time per step" || bad "comm_seconds column"
ls "$tmp/two" | grep -q tmp && bad "temporary files left" || ok "only rank 0 wrote, no temporary files"

# ---- SIGKILL of rank 1 after step $kill_at, then the MPI run resumed
"${mpi[@]}" "$bin" train "${args[@]}" --out "$tmp/kill" >/dev/null 2>&1 & mpirun_pid=$!
rank1=""
for _ in $(seq 1 1200); do
  if [ -z "$rank1" ]; then
    for p in $(pgrep -f -- "--out $tmp/kill" 2>/dev/null); do
      tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$p
    done
  fi
  [ -n "$rank1" ] && [ -f "$tmp/kill/train.csv" ] && [ "$(tail -n +2 "$tmp/kill/train.csv" | wc -l)" -ge "$kill_at" ] && break
  sleep 0.1
done
if [ -n "$rank1" ]; then
  kill -KILL "$rank1" 2>/dev/null
  timeout 60 tail --pid="$mpirun_pid" -f /dev/null; wait "$mpirun_pid"; rc=$?
  steps=$(tail -n +2 "$tmp/kill/train.csv" | wc -l)
  [ "$rc" -ne 0 ] && ok "rank 1 killed at step $steps: mpirun ends, exit $rc" || bad "mpirun exit $rc after a rank was killed"
  if timeout 300 "${mpi[@]}" "$bin" train "${args[@]}" --out "$tmp/kill" --resume >"$tmp/log" 2>&1; then ok "MPI run resumed"
  else bad "resume: $(cat "$tmp/log")"; fi
  close_to "$tmp/two/model.safetensors" "$tmp/kill/model.safetensors" "killed + resumed = uninterrupted"
  cmp -s <(cut -d, -f1-13 "$tmp/two/train.csv") <(cut -d, -f1-13 "$tmp/kill/train.csv") && ok "killed + resumed: same log" \
    || bad "killed + resumed: train.csv differs"
else
  kill "$mpirun_pid" 2>/dev/null; wait "$mpirun_pid" 2>/dev/null
  bad "did not find rank 1's process"
fi

# ---- a case that cannot be read (its data truncated; the header is fine) stops every rank
mkdir -p "$tmp/bad"; cp "$tmp/s2/t1.nii.gz" "$tmp/bad/t1.nii.gz"
head -c $(( $(stat -c %s "$tmp/s2/t2.nii.gz") / 2 )) "$tmp/s2/t2.nii.gz" > "$tmp/bad/t2.nii.gz"
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\nbad/t1.nii.gz,bad/t2.nii.gz\ns1/flair.nii.gz,s1/t1.nii.gz\n' > "$tmp/badpairs.csv"
timeout 120 "${mpi[@]}" "$bin" train --data "$tmp/badpairs.csv" --crop 16,16,16 --iters "$iters" --seed 3 --batch 2 \
  --ckpt-every 1 --quiet --out "$tmp/fault" >"$tmp/log" 2>&1; rc=$?
if [ $rc -eq 124 ]; then bad "a failing rank left the others hanging"
elif [ $rc -ne 0 ] && grep -qE "lpmnet train: rank [01] of 2: .*bad/t2.nii.gz" "$tmp/log"; then
  ok "a bad case stops both ranks: $(grep -m1 'lpmnet train' "$tmp/log")"
else bad "bad case: exit $rc: $(cat "$tmp/log")"; fi
[ "$(grep -c "^lpmnet train: rank" "$tmp/log")" -eq 1 ] && ok "the message is printed once (rank 0)" || bad "message count"
if [ -s "$tmp/fault/checkpoint.safetensors" ]; then
  "$bin" info "$tmp/fault/model.safetensors" 2>/dev/null | grep -q "LPM-Net weights: yes" && ok "the last checkpoint's model is valid" \
    || bad "model.safetensors after the fault"
fi
timeout 60 "${mpi[@]}" "$bin" train --data "$tmp/pairs.csv" --crop 16,16,16 --iters 2 --quiet --out "$tmp/b1" >"$tmp/log" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "at least one sample per step" "$tmp/log" && ok "--batch 1 on 2 ranks refused" || bad "--batch 1 on 2 ranks: exit $rc"

# ---- eval: the cases shared over two ranks, one report
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\ns2/t2.nii.gz,s2/t1.nii.gz\nbad/t1.nii.gz,bad/t2.nii.gz\ns1/flair.nii.gz,s1/t1.nii.gz\n' > "$tmp/eval.csv"
eargs=(--data "$tmp/eval.csv" --methods lpmnet,average,max --passes 1)
"$bin" eval "${eargs[@]}" --threads 1 --out "$tmp/e1" 2>"$tmp/log"; rc1=$?
timeout 300 "${mpi[@]}" "$bin" eval "${eargs[@]}" --out "$tmp/e2" >"$tmp/log2" 2>&1; rc2=$?
[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && ok "eval: the bad case fails both runs alike (exit 2)" || bad "eval exit codes $rc1, $rc2: $(tail -3 "$tmp/log2")"
cmp -s <(cut -d, -f1,2,4- "$tmp/e1/metrics.csv") <(cut -d, -f1,2,4- "$tmp/e2/metrics.csv") \
  && ok "mpirun -np 2 eval: metrics.csv identical but for the seconds column ($(tail -n +2 "$tmp/e2/metrics.csv" | wc -l) rows)" \
  || bad "eval metrics.csv differs"
strip_seconds() { sed -E 's/^\| ([a-z]+) \| [0-9.]+ \|/| \1 | S |/' "$1"; }
cmp -s <(strip_seconds "$tmp/e1/summary.md") <(strip_seconds "$tmp/e2/summary.md") && ok "summary.md identical but for seconds" \
  || bad "summary.md differs"
[ "$(ls "$tmp/e2"/montage_*.png | wc -l)" -eq 3 ] && ok "montages of every scored case" || bad "montages"

# ---- fuse --list: the pairs shared over two ranks
printf 'a,b\ns1/t1.nii.gz,s1/t2.nii.gz\ns2/t2.nii.gz,s2/t1.nii.gz\n# broken\nbad/t2.nii.gz,s2/flair.nii.gz\ns1/flair.nii.gz,s2/t1.nii.gz\n' > "$tmp/list.csv"
"$bin" fuse --list "$tmp/list.csv" --out "$tmp/f1" --passes 1 --threads 1 2>"$tmp/log"; rc1=$?
timeout 300 "${mpi[@]}" "$bin" fuse --list "$tmp/list.csv" --out "$tmp/f2" --passes 1 >"$tmp/log2" 2>&1; rc2=$?
[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && ok "fuse --list: a bad pair makes exit 2" || bad "fuse --list exit codes $rc1, $rc2"
grep -q "list.csv:5: pair 3/4 failed, going on without it: .*bad/t2.nii.gz" "$tmp/log2" && ok "the bad pair is named by its line" || bad "bad pair message: $(cat "$tmp/log2")"
same=0
for f in t1_t2 t2_t1 flair_t1; do cmp -s "$tmp/f1/$f.nii.gz" "$tmp/f2/$f.nii.gz" && same=$((same + 1)); done
[ $same -eq 3 ] && ok "fuse --list on 2 ranks: the 3 good pairs' files identical to one process" || bad "fuse --list outputs ($same of 3 identical)"

rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
