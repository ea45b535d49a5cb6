#!/usr/bin/env bash
# Hostile options and files for train and eval (issue "Hostile files and faults"): numeric
# options out of range, a non-finite weight after an update (the last good checkpoint and
# model file kept byte for byte), --resume without a checkpoint or with other data/options
# (--force), --init naming a file the run writes, the CSV mask column, one corrupt case in
# eval, resampling onto a grid that B does not overlap, and FIFOs given as data.
# Tiny 16^3 phantoms and a few steps each, so it also runs quickly under ASan.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-/usr/bin/python3}"
tmp="${LPM_TMP:-/tmp}/test_hostile_train.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
run() { timeout 120 "$bin" "$@"; }   # a hang (a FIFO read) fails the test instead of blocking it

# check CODE PATTERN DESC -- command...: exit code and a message matching PATTERN
check() {
  local code=$1 pattern=$2 desc=$3; shift 4
  "$@" >/dev/null 2>"$tmp/log"; local rc=$?
  if [ $rc -ne "$code" ]; then bad "$desc: exit $rc, want $code ($(cat "$tmp/log"))"; return 1; fi
  if ! grep -qiE -- "$pattern" "$tmp/log"; then bad "$desc: message '$(cat "$tmp/log")' lacks /$pattern/"; return 1; fi
  ok "$desc -> exit $code: $(grep -iE -- "$pattern" "$tmp/log" | head -1)"
}
rows() { tail -n +2 "$1" 2>/dev/null | wc -l; }
no_temp() { ! ls -a "$1" | grep -q tmp; }

cd "$tmp" || exit 1
for s in 1 2; do run phantom --out "p$s" --shape 16,16,16 --seed $s >/dev/null || { echo "phantom failed"; exit 1; }; done
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\np2/t1.nii.gz,p2/t2.nii.gz\n' > pairs.csv
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\np2/flair.nii.gz,p2/t2.nii.gz\n' > other.csv
base=(--data pairs.csv --crop 16,16,16 --seed 3 --threads 2 --quiet)

# Tools: rewrite one float of a safetensors file in place; drop metadata keys; list metadata.
cat > st.py <<'PY'
import json, struct, sys
cmd, path = sys.argv[1], sys.argv[2]
b = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
if cmd == "poke":  # poke FILE TENSOR INDEX VALUE
    off = 8 + n + h[sys.argv[3]]["data_offsets"][0] + 4 * int(sys.argv[4])
    b[off:off + 4] = struct.pack("<f", float(sys.argv[5]))
    open(path, "wb").write(bytes(b))
elif cmd == "meta":  # meta FILE: the metadata keys
    print(" ".join(sorted(h.get("__metadata__", {}))))
elif cmd == "strip":  # strip FILE KEY...: an older checkpoint without the run's record
    meta = h["__metadata__"]
    for k in sys.argv[3:]: meta.pop(k, None)
    head = json.dumps(h).encode()
    head += b" " * (-len(head) % 8)
    open(path, "wb").write(struct.pack("<Q", len(head)) + head + bytes(b[8 + n:]))
PY
cat > vol.py <<'PY'
import sys, numpy as np, nibabel as nib
cmd, ref = sys.argv[1], nib.load("p1/t1.nii.gz")
def save(name, data, affine=None):
    img = nib.Nifti1Image(data, None, ref.header.copy())
    img.set_data_dtype(data.dtype)
    if affine is not None: img.set_sform(affine, 2); img.set_qform(affine, 1)
    nib.save(img, name)
if cmd == "masks":
    save("ones.nii.gz", np.ones(ref.shape, np.uint8))
    half = np.ones(ref.shape, np.uint8); half[:, :, :8] = 0
    save("half.nii.gz", half)
    save("empty.nii.gz", np.zeros(ref.shape, np.uint8))
elif cmd == "far":  # B 1 m away from A in world x
    b = nib.load("p1/t2.nii.gz")
    aff = ref.affine.copy(); aff[0, 3] += 1000
    save("far.nii.gz", np.asarray(b.dataobj), aff)
elif cmd == "truncated":  # a valid header whose data stops early
    save("trunc.nii", np.asarray(ref.dataobj).astype(np.float32))
    data = open("trunc.nii", "rb").read()
    open("trunc.nii", "wb").write(data[:600])
PY

echo "-- option ranges (exit 1 before anything is written)"
refuse_opt() {  # refuse_opt PATTERN DESC -- train options...
  local pattern=$1 desc=$2; shift 3
  rm -rf d
  check 1 "$pattern" "$desc" -- run train "${base[@]}" --out d --iters 2 "$@" && [ -e d ] && bad "$desc: created the output folder"
}
refuse_opt "--lr 1e\+30: must be in \(0, 1\]" "--lr 1e30" -- --lr 1e30
refuse_opt "--lr.*must be in \(0, 1\]" "--lr 0" -- --lr 0
refuse_opt "--lr.*finite" "--lr inf (parser)" -- --lr inf
refuse_opt "--gamma -1e\+308: must be in \[0, 10000\]" "--gamma -1e308" -- --gamma -1e308
refuse_opt "--alpha.*\[0, 10000\]" "--alpha 1e5" -- --alpha 1e5
refuse_opt "--beta.*\[0, 10000\]" "--beta -1" -- --beta -1
refuse_opt "--edge.*\[0, 10000\]" "--edge 1e9" -- --edge 1e9
refuse_opt "--rec.*\[0, 1\)" "--rec 1" -- --rec 1
refuse_opt "--crop.*at most 1024" "--crop 2048,16,16" -- --crop 2048,16,16
refuse_opt "--force applies only with --resume" "--force without --resume" -- --force

echo "-- --resume without a checkpoint"
rm -rf nock
check 2 "nock/checkpoint.safetensors: no such file" "--resume, no output folder" -- run train "${base[@]}" --out nock --iters 2 --resume
[ -e nock ] && bad "--resume without a checkpoint created the output folder" || ok "nothing created"
mkdir nock; echo keep > nock/train.csv
check 2 "nock/checkpoint.safetensors: no such file" "--resume, folder without checkpoint" -- run train "${base[@]}" --out nock --iters 2 --resume
[ "$(cat nock/train.csv)" = keep ] && [ "$(ls nock)" = train.csv ] && ok "the folder is left as it was" || bad "--resume wrote into $(ls nock)"
mkfifo fifo.ckpt; mkdir fifo_run; ln -s ../fifo.ckpt fifo_run/checkpoint.safetensors
check 2 "FIFO" "--resume with a FIFO as the checkpoint" -- run train "${base[@]}" --out fifo_run --iters 2 --resume

echo "-- a run and its record"
if run train "${base[@]}" --out run --iters 2 --ckpt-every 1 2>"$tmp/log"; then ok "2-step run"; else bad "2-step run: $(cat "$tmp/log")"; fi
cp run/checkpoint.safetensors ckpt0; cp run/model.safetensors model0; cp run/train.csv csv0
meta=$("$py" st.py meta run/checkpoint.safetensors)
for k in data_hash cases pair mask_key sample flip seed iters lr alpha beta gamma edge rec step; do
  [[ " $meta " == *" $k "* ]] || bad "checkpoint metadata lacks $k ($meta)"
done
ok "checkpoint records the data and options ($meta)"
unchanged() {  # unchanged DESC: run/ still holds the files of the 2-step run
  cmp -s run/checkpoint.safetensors ckpt0 && cmp -s run/model.safetensors model0 && cmp -s run/train.csv csv0 \
    && no_temp run && ok "$1: checkpoint, model and log unchanged" || bad "$1: run/ changed"
}
check 1 "--lr \(checkpoint 0.0001, this run 0.001\).*--force" "--resume with another --lr" -- \
  run train "${base[@]}" --out run --iters 2 --resume --lr 0.001
unchanged "--lr mismatch"
check 1 "--iters \(checkpoint 2, this run 3\)" "--resume with another --iters" -- run train "${base[@]}" --out run --iters 3 --resume
unchanged "--iters mismatch"
check 1 "--data \(the case list" "--resume with other data (same number of cases)" -- \
  run train "${base[@]}" --data other.csv --out run --iters 2 --resume
unchanged "data mismatch"
check 1 "--crop/--shape \(checkpoint crop 16,16,16, this run shape 16,16,16\)" "--resume with --shape for --crop" -- \
  run train "${base[@]}" --shape 16,16,16 --out run --iters 2 --resume
unchanged "sample mismatch"
cp -r run forced
check 0 "--force.*--iters \(checkpoint 2, this run 3\)" "--resume --force with another --iters" -- \
  run train "${base[@]}" --out forced --iters 3 --resume --force
[ "$(rows forced/train.csv)" -eq 3 ] && ok "--force continued to step 3" || bad "--force: $(rows forced/train.csv) rows"
cp -r run old; "$py" st.py strip old/checkpoint.safetensors data_hash cases pair mask_key sample flip seed iters lr alpha beta gamma edge rec
cp old/checkpoint.safetensors old0
check 1 "does not record the data and options.*--force" "--resume of a checkpoint without a record" -- \
  run train "${base[@]}" --out old --iters 3 --resume
cmp -s old/checkpoint.safetensors old0 && ok "old checkpoint unchanged" || bad "old checkpoint changed"
check 0 "does not record.*resuming anyway" "--resume --force of a checkpoint without a record" -- \
  run train "${base[@]}" --out old --iters 3 --resume --force

echo "-- non-finite weights: stop with exit 2, keep the last good files"
# A checkpoint whose Adam state drives one weight to infinity in the next update while that
# step's loss is still finite: only the check of the weights after the update sees it.
cp -r run nf; "$py" st.py poke nf/checkpoint.safetensors adam.m 5 1e38; "$py" st.py poke nf/checkpoint.safetensors adam.v 5 0
cp nf/checkpoint.safetensors nf_ckpt0
check 2 "step 3: after the Adam update, weight Conv_in.weight\[5\] is not finite.*keeps step 2" \
  "an update that makes a weight infinite" -- run train "${base[@]}" --out nf --iters 4 --resume --force
cmp -s nf/checkpoint.safetensors nf_ckpt0 && cmp -s nf/model.safetensors model0 && no_temp nf \
  && ok "last good checkpoint and model file kept byte for byte" || bad "non-finite stop changed the checkpoint or model"
[ "$(rows nf/train.csv)" -eq 2 ] && ok "no log row for the bad step" || bad "log has $(rows nf/train.csv) rows"
# the same for a weight that grows beyond what a usable model holds (lpm_weights_load's bound)
cp -r run big; "$py" st.py poke big/checkpoint.safetensors weights 0 9999
"$py" st.py poke big/checkpoint.safetensors adam.m 0 -1e30; "$py" st.py poke big/checkpoint.safetensors adam.v 0 0
cp big/checkpoint.safetensors big_ckpt0
check 2 "step 3: after the Adam update, weight Conv_in.weight\[0\] is .*beyond the 10000.*keeps step 2" \
  "an update that makes a weight huge" -- run train "${base[@]}" --out big --iters 4 --resume --force
cmp -s big/checkpoint.safetensors big_ckpt0 && cmp -s big/model.safetensors model0 && ok "huge weight: files kept" \
  || bad "huge weight: files changed"
cp -r run nan; "$py" st.py poke nan/checkpoint.safetensors weights 7 nan; cp nan/checkpoint.safetensors nan_ckpt0
check 2 "checkpoint.safetensors: weight Conv_in.weight\[7\] is not finite \(nan\)" "a checkpoint holding a NaN weight" -- \
  run train "${base[@]}" --out nan --iters 4 --resume --force
cmp -s nan/checkpoint.safetensors nan_ckpt0 && cmp -s nan/model.safetensors model0 && ok "NaN checkpoint: files unchanged" \
  || bad "NaN checkpoint: files changed"
cp model0 nan_init.safetensors; "$py" st.py poke nan_init.safetensors Conv_in.weight 0 nan
rm -rf ni
check 2 "nan_init.safetensors.*not finite|nan_init.safetensors.*nan" "--init holding a NaN weight" -- \
  run train "${base[@]}" --out ni --iters 2 --init nan_init.safetensors
[ -e ni/checkpoint.safetensors ] || [ -e ni/model.safetensors ] && bad "--init NaN wrote weights" || ok "--init NaN: no weights written"

echo "-- --init naming a file the run writes"
mkdir io; cp model0 io/model.safetensors; sum0=$(cksum < io/model.safetensors)
check 1 "output io/model.safetensors is the input io/model.safetensors \(same file\)" "--init DIR/model.safetensors --out DIR" -- \
  run train "${base[@]}" --out io --iters 1 --init io/model.safetensors
ln io/model.safetensors hardlink.safetensors; ln -s io/model.safetensors symlink.safetensors
check 1 "is the input .*same file" "--init a hard link to DIR/model.safetensors" -- \
  run train "${base[@]}" --out io --iters 1 --init hardlink.safetensors
check 1 "is the input .*same file" "--init a symlink to DIR/model.safetensors" -- \
  run train "${base[@]}" --out ./io/ --iters 1 --init symlink.safetensors
check 1 "is the input .*same file" "--init DIR/checkpoint.safetensors" -- \
  run train "${base[@]}" --out run --iters 1 --init run/checkpoint.safetensors
[ "$(cksum < io/model.safetensors)" = "$sum0" ] && [ "$(ls io)" = model.safetensors ] && ok "init file unchanged, nothing written" \
  || bad "--init file changed or files written: $(ls io)"
unchanged "--init run/checkpoint.safetensors"

echo "-- the CSV mask column"
"$py" vol.py masks
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\n' > nomask.csv
printf 'a,b,mask\np1/t1.nii.gz,p1/t2.nii.gz,ones.nii.gz\n' > ones.csv
printf 'a,b,mask\np1/t1.nii.gz,p1/t2.nii.gz,half.nii.gz\n' > half.csv
printf 'a,b,mask\np1/t1.nii.gz,p1/t2.nii.gz,empty.nii.gz\n' > empty.csv
for c in nomask ones half; do
  run train --data $c.csv --crop 16,16,16 --seed 3 --threads 2 --quiet --iters 1 --out m_$c 2>"$tmp/log" || bad "mask run $c: $(cat "$tmp/log")"
done
loss() { sed -n 2p "$1/train.csv" | cut -d, -f4-13; }
[ -n "$(loss m_nomask)" ] && [ "$(loss m_ones)" = "$(loss m_nomask)" ] && ok "a mask of ones trains as no mask" \
  || bad "mask of ones: $(loss m_ones) vs $(loss m_nomask)"
[ -n "$(loss m_half)" ] && [ "$(loss m_half)" != "$(loss m_nomask)" ] && ok "a mask zero in half the volume changes the loss ($(loss m_half | cut -d, -f1) vs $(loss m_nomask | cut -d, -f1))" \
  || bad "half mask did not change the loss: $(loss m_half)"
rm -rf m_empty
check 2 "empty.nii.gz: the mask is empty" "an empty mask" -- run train --data empty.csv --crop 16,16,16 --quiet --iters 1 --out m_empty
[ -e m_empty/checkpoint.safetensors ] && bad "empty mask: trained anyway" || ok "empty mask: no checkpoint"

echo "-- FIFOs given as data"
mkfifo fifo.csv fifo.nii.gz
rm -rf d
check 2 "fifo.csv: is a FIFO" "train --data FIFO.csv" -- run train "${base[@]}" --data fifo.csv --out d --iters 1
printf 'a,b\np1/t1.nii.gz,fifo.nii.gz\n' > fifo_in.csv
check 2 "fifo.nii.gz: is a FIFO" "a CSV naming a FIFO" -- run train "${base[@]}" --data fifo_in.csv --out d --iters 1
check 2 "fifo.nii.gz: is a FIFO" "train --init FIFO" -- run train "${base[@]}" --init fifo.nii.gz --out d --iters 1
check 2 "fifo.csv: is a FIFO" "eval --data FIFO.csv" -- run eval --data fifo.csv --out e_fifo --methods average
check 2 "fifo.nii.gz: is a FIFO" "eval -m FIFO" -- run eval --data pairs.csv --out e_fifo -m fifo.nii.gz
[ -e d/checkpoint.safetensors ] && bad "FIFO: trained anyway" || ok "FIFO: nothing trained"

echo "-- eval with corrupt cases"
head -c 400 /dev/urandom > garbage.nii.gz
"$py" vol.py truncated
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\ngarbage.nii.gz,p1/t2.nii.gz\np2/t1.nii.gz,p2/t2.nii.gz\np1/t1.nii.gz,trunc.nii\n' > ev.csv
check 2 "2 of 4 case\(s\) failed" "eval with a garbage and a truncated case" -- run eval --data ev.csv --out ev --methods average,max
# the A files' names repeat (t1 in p1 twice), so the cases are named by file and line
[ "$(rows ev/metrics.csv)" -eq 4 ] && [ "$(cut -d, -f1 ev/metrics.csv | sort -u | tr '\n' ' ')" = "case t1_line2 t1_line4 " ] \
  && ok "metrics.csv has the two good cases x two methods" || bad "metrics.csv: $(cat ev/metrics.csv 2>&1)"
grep -q "## Failed cases" ev/summary.md && grep -q "garbage_line3: .*garbage.nii.gz" ev/summary.md && grep -q "t1_line5: .*trunc.nii" ev/summary.md \
  && ok "summary.md lists both failures with the reason" || bad "summary.md: $(cat ev/summary.md 2>&1)"
[ -s ev/montage_t1_line2.png ] && [ -s ev/montage_t1_line4.png ] && [ ! -e ev/montage_garbage_line3.png ] && ok "montages of the good cases only" \
  || bad "montages: $(ls ev)"
check 0 "wrote" "eval with good cases only" -- run eval --data pairs.csv --out ev_ok --methods average
run eval --help | grep -q "2 a data error (any case failed" && ok "eval --help states exit 2 for a failed case" || bad "eval --help"

echo "-- fuse --resample without overlap"
"$py" vol.py far
check 2 "does not overlap .* in world space \(check the affines\)" "B 1 m away from A" -- \
  run fuse p1/t1.nii.gz far.nii.gz -o fused.nii.gz --method average --resample
ls -a | grep -q "fused" && bad "left a fused file" || ok "no output file"
check 0 "" "overlapping --resample still fuses" -- run fuse p1/t1.nii.gz p1/t2.nii.gz -o fused.nii.gz --method average --resample

cd / && rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
