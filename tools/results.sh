#!/usr/bin/env bash
# Rebuilds docs/results.md and docs/results/*.png: each family's bundled model beside every
# classical method on that family's test subjects (docs/protocol.md), the window-seam index
# of the default fuse against --exact, and colour previews of the PET pairs.
# Usage: tools/results.sh [REAL_DIR]   (default ../shared/data/real; build/lpmnet must exist)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
real="$(cd "${1:-$root/../shared/data/real}" && pwd)"  # absolute: the lists hold absolute paths
bin="$root/build/lpmnet"
py=/usr/bin/python3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
methods=lpmnet,average,max,pca,dwt,laplacian,guided
families="mri ct-mr pet-mr pet-ct"
out="$root/docs/results"
mkdir -p "$out"
rm -f "$out"/*.png

"$root/tools/splits.sh" "$real" "$work/splits" "$bin" >/dev/null
for f in $families; do
  "$bin" eval --data "$work/splits/$f/test.csv" --methods "$methods" -m "$f" --out "$work/$f" 2>/dev/null
  "$bin" eval --data "$work/splits/$f/test.csv" --methods lpmnet --exact -m "$f" --out "$work/$f-exact" 2>/dev/null
  first=$(awk -F, 'NR == 2 { print $1; exit }' "$work/$f/metrics.csv")  # the first test pair's case name
  cp "$work/$f/montage_$first.png" "$out/test_$f.png"
done
t="$real/mni2mm_templates_mr_pet_spect_ct"
p="$real/petct_lung_2subj/A-IA001491"
"$bin" fuse "$t/PET.nii" "$t/T1.nii" -m pet-mr --color hot --functional a -o "$work/pet_t1.nii.gz" \
  --preview "$out/color_pet_t1.png" 2>/dev/null
"$bin" fuse "$p/ct.nii.gz" "$p/pet.nii.gz" -m pet-ct --color hot --functional b -o "$work/petct.nii.gz" \
  --preview "$out/color_petct.png" 2>/dev/null

rel() { sed "s|$work/splits/||g; s|$real/||g; s|$root/||g"; }
seam() { # the LPM-Net row's worst seam per axis in an eval folder
  "$py" "$root/tools/wins.py" "$1/metrics.csv" | awk -F'|' '$2 ~ /lpmnet/ { gsub(/ /, "", $(NF-1)); print $(NF-1) }'
}
{
  echo "# Results on the test subjects"
  echo
  echo "Made by \`tools/results.sh\` on $(date -u +%Y-%m-%d) with lpmnet $("$bin" --version | awk '{print $2}'),"
  echo "2 threads on \`$(lscpu | sed -n 's/^Model name: *//p' | head -1)\`. The split, the rule and what"
  echo "counts as a win are in \`docs/protocol.md\`; how each model was made is in \`models/README.md\`."
  echo
  echo "## Summary"
  echo
  echo "On how many of the paper's eight metrics each family's model beats each classical method"
  echo "(medians over the test pairs), and the largest seam index of its fusions per axis (x / y / z;"
  echo "1.0 = no seam; the bar is 1.15):"
  echo
  echo "| family | test pairs | average | max | pca | dwt | laplacian | guided | seam, default | seam, --exact |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for f in $families; do
    n=$(($(wc -l < "$work/splits/$f/test.csv") - 1))
    wins=$("$py" "$root/tools/wins.py" "$work/$f/metrics.csv" | awk -F'|' 'NR > 3 { gsub(/ of 8| /, "", $(NF-2)); printf "%s | ", $(NF-2) }')
    echo "| $f | $n | $wins$(seam "$work/$f") | $(seam "$work/$f-exact") |"
  done
  for f in $families; do
    echo
    echo "## $f"
    echo
    echo "Test pairs (\`$f/test.csv\` of \`tools/splits.sh\`):"
    echo
    tail -n +2 "$work/splits/$f/test.csv" | rel | sed 's/^/- /; s/,/ + /'
    echo
    echo "Medians over the pairs:"
    echo
    "$py" "$root/tools/wins.py" "$work/$f/metrics.csv"
    echo
    echo "Means (SD over the pairs) of all twelve metrics and the seam index, from \`lpmnet eval\`:"
    echo
    tail -n +3 "$work/$f/summary.md" | rel | sed '/^Cases:/d'
    echo
    echo "![$f, first test pair](results/test_$f.png)"
  done
  echo
  echo "## Colour fusion"
  echo
  echo "PET over T1 (MNI templates, \`fuse -m pet-mr --color hot --functional a\`) and a lung PET/CT"
  echo "(test patient, \`fuse -m pet-ct --color hot --functional b\`): the colour is the PET through"
  echo "the hot map, the luminance is LPM-Net's fusion (YCbCr, ITU-R BT.601)."
  echo
  echo "![PET/T1 in colour](results/color_pet_t1.png)"
  echo
  echo "![PET/CT in colour](results/color_petct.png)"
  # the prose that reads these numbers is written by hand, next to the script's tables
  [ -f "$root/docs/results-reading.md" ] && { echo; cat "$root/docs/results-reading.md"; }
} > "$root/docs/results.md.new"
mv "$root/docs/results.md.new" "$root/docs/results.md"
echo "wrote docs/results.md and docs/results/*.png"
