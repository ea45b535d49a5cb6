#!/usr/bin/env bash
# How eval and fuse --list name a dataset's cases (include/lpmnet.h, lpm_dataset_open): a CSV
# case after its A file (stem; folder_stem when stems repeat; stem_lineN when both do), made
# safe for file names; a folder case after its subject folder; fuse --list reports a pair by
# its CSV line. Classical methods on 16^3 phantoms, so it runs in seconds (also under ASan).
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
tmp="${LPM_TMP:-/tmp}/test_eval_names.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
run() { timeout 120 "$bin" "$@"; }
cases() { tail -n +2 "$1" 2>/dev/null | cut -d, -f1 | uniq | tr '\n' ' '; }

cd "$tmp" || exit 1
for s in 1 2; do run phantom --out "p$s" --shape 16,16,16 --seed $s >/dev/null 2>&1 || { echo "phantom failed"; exit 1; }; done
mkdir -p "my scans" && cp p1/ct.nii.gz "my scans/sub 1.nii.gz"

# distinct stems: t1, flair, sub_1 (a space made '_')
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\np2/flair.nii.gz,p2/t2.nii.gz\nmy scans/sub 1.nii.gz,p1/pet.nii.gz\n' > stems.csv
if run eval --data stems.csv --methods average --save-fused --out ev1 >/dev/null 2>"$tmp/log"; then
  [ "$(cases ev1/metrics.csv)" = "t1 flair sub_1 " ] && ok "cases named by A's stem: $(cases ev1/metrics.csv)" \
    || bad "stem names: $(cases ev1/metrics.csv)"
  [ -s ev1/montage_t1.png ] && [ -s ev1/montage_sub_1.png ] && [ -s ev1/sub_1_average.nii.gz ] \
    && ok "montage_<case>.png and <case>_<method>.nii.gz use the names" || bad "files: $(ls ev1)"
else bad "eval stems.csv: $(cat "$tmp/log")"; fi

# the same stem in two folders: folder_stem
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\np2/t1.nii.gz,p2/t2.nii.gz\n' > folders.csv
run eval --data folders.csv --methods max --out ev2 >/dev/null 2>"$tmp/log" \
  && [ "$(cases ev2/metrics.csv)" = "p1_t1 p2_t1 " ] && ok "repeated stems: folder_stem ($(cases ev2/metrics.csv))" \
  || bad "folder_stem names: $(cases ev2/metrics.csv) $(cat "$tmp/log")"

# the same file twice: stem_line (the CSV's line, a comment line counted)
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\n# a comment\np1/t1.nii.gz,p1/flair.nii.gz\n' > lines.csv
run eval --data lines.csv --methods max --out ev3 >/dev/null 2>"$tmp/log" \
  && [ "$(cases ev3/metrics.csv)" = "t1_line2 t1_line4 " ] && ok "repeated files: stem_lineN ($(cases ev3/metrics.csv))" \
  || bad "line names: $(cases ev3/metrics.csv) $(cat "$tmp/log")"

# a folder dataset given as one subject folder: the folder's name, however it is spelled
run eval --data p2/. --pair t1,t2 --methods max --out ev4 >/dev/null 2>"$tmp/log" \
  && [ "$(cases ev4/metrics.csv)" = "p2 " ] && [ -s ev4/montage_p2.png ] && ok "a subject folder: its name (p2)" \
  || bad "folder name: $(cases ev4/metrics.csv) $(cat "$tmp/log")"

# fuse --list: a failing pair and refused duplicates are named by their CSV lines
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\n\n# broken next\nmissing.nii.gz,p1/t2.nii.gz\n' > list.csv
run fuse --list list.csv --out fl --method average >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 2 ] && grep -q "list.csv:5: pair 2/2 failed, going on without it: .*missing.nii.gz" "$tmp/log" \
  && grep -q "(list.csv line 2)" "$tmp/log" && [ -s fl/t1_t2.nii.gz ] \
  && ok "fuse --list: the bad pair named by line 5, the good one (line 2) fused" || bad "fuse --list: exit $rc: $(cat "$tmp/log")"
printf 'a,b\np1/t1.nii.gz,p1/t2.nii.gz\n#\np2/t1.nii.gz,p2/t2.nii.gz\n' > dup.csv
run fuse --list dup.csv --out fd --method average >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 1 ] && grep -q "lines 2 and 4 both write" "$tmp/log" && ok "fuse --list: duplicate outputs named by lines 2 and 4" \
  || bad "duplicates: exit $rc: $(cat "$tmp/log")"

cd / && rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
