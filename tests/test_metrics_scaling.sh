#!/usr/bin/env bash
# metrics --clip / --ct-window: A and B scaled as fuse scales them and F scored as it is, so
# that `lpmnet metrics` gives the numbers `lpmnet eval` reports for the same fusion (eval
# computes them on its own path: lpm_prepare_pair, lpm_fuse_prepared, lpm_metrics_select on
# volumes it never writes). Classical methods on 32^3 phantoms: seconds, also under ASan.
set -u
bin="${LPM_BIN:?LPM_BIN is set by CTest}"
py="${LPM_PYTHON:-python3}"
tmp="${LPM_TMP:-/tmp}/test_metrics_scaling.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1" >&2; }
run() { timeout 120 "$bin" "$@"; }

cd "$tmp" || exit 1
run phantom --out p --shape 32,32,32 >/dev/null 2>&1 || { echo "phantom failed"; exit 1; }
metric_names="ssim qabf mi scd vif ag psnr en sd sf nabf rsfe"

# same_as_eval CSV_ROW_CASE METHOD JSON: every metric of eval's row equals metrics' JSON
same_as_eval() {
  "$py" - "$1" "$2" "$3" $metric_names <<'EOF'
import csv, json, sys
case, method, js, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
row = [r for r in csv.DictReader(open("ev/metrics.csv")) if r["case"] == case and r["method"] == method][0]
got = json.load(open(js))
bad = [n for n in names if abs(float(row[n]) - got[n]) > 1e-6 * max(1.0, abs(got[n]))]
print(" ".join("%s eval %s metrics %.8g" % (n, row[n], got[n]) for n in bad))
sys.exit(1 if bad else 0)
EOF
}

# 1. the default scaling of fuse and eval (--clip 0.5,100) on an MR pair
printf 'a,b\np/t1.nii.gz,p/t2.nii.gz\n' > mr.csv
if run eval --data mr.csv --methods laplacian --save-fused --out ev >/dev/null 2>"$tmp/log"; then
  run metrics p/t1.nii.gz p/t2.nii.gz ev/t1_laplacian.nii.gz --clip 0.5,100 --json > clip.json 2>"$tmp/log" \
    && why=$(same_as_eval t1 laplacian clip.json) && ok "--clip 0.5,100 gives eval's twelve metrics" \
    || bad "--clip 0.5,100 against eval: $why $(cat "$tmp/log")"
else bad "eval mr.csv: $(cat "$tmp/log")"; fi

# 2. a CT window: the CT input in Hounsfield units mapped as fuse maps it
printf 'a,b\np/ct.nii.gz,p/t1.nii.gz\n' > ct.csv
rm -rf ev
if run eval --data ct.csv --methods max --ct-window soft --save-fused --out ev >/dev/null 2>"$tmp/log"; then
  run metrics p/ct.nii.gz p/t1.nii.gz ev/ct_max.nii.gz --ct-window soft --json > ct.json 2>"$tmp/log" \
    && why=$(same_as_eval ct max ct.json) && ok "--ct-window soft gives eval's twelve metrics" \
    || bad "--ct-window soft against eval: $why $(cat "$tmp/log")"
  # the option is not a no-op: min-max scaling of the Hounsfield volume scores differently
  run metrics p/ct.nii.gz p/t1.nii.gz ev/ct_max.nii.gz --json > minmax.json 2>/dev/null
  if same_as_eval ct max minmax.json >/dev/null; then bad "min-max scoring equals the soft window's"
  else ok "min-max scoring differs from the soft window's"; fi
else bad "eval ct.csv: $(cat "$tmp/log")"; fi

# 3. F beyond [0, 1] cannot be scored as it is: an input error naming F
run metrics p/t1.nii.gz p/t2.nii.gz p/ct.nii.gz --clip 0.5,100 >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 2 ] && grep -q "p/ct.nii.gz: values from .*must lie in \[0, 1\]" "$tmp/log" \
  && ok "F outside [0, 1] refused, naming the file" || bad "F outside [0, 1]: exit $rc: $(cat "$tmp/log")"

# 4. --no-normalize with a scaling, and a bad clip, are usage errors
run metrics p/t1.nii.gz p/t2.nii.gz p/t1.nii.gz --clip 0.5,100 --no-normalize >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 1 ] && grep -q "give one of the two" "$tmp/log" && ok "--no-normalize with --clip refused" \
  || bad "--no-normalize with --clip: exit $rc: $(cat "$tmp/log")"
run metrics p/t1.nii.gz p/t2.nii.gz p/t1.nii.gz --clip 50,10 >/dev/null 2>"$tmp/log"; rc=$?
[ $rc -eq 1 ] && grep -q -- "--clip" "$tmp/log" && ok "--clip 50,10 refused" \
  || bad "--clip 50,10: exit $rc: $(cat "$tmp/log")"

cd / && rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
