#!/usr/bin/env bash
# Rebuilds docs/results.md: the bundled model beside every classical method on the held-out
# validation case (real data, scored inside its brain mask) and on the phantom, with montages.
# Usage: tools/results.sh [REAL_DIR]   (default ../shared/data/real; build/lpmnet must exist)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
real="${1:-$root/../shared/data/real}"
bin="$root/build/lpmnet"
model="$root/models/lpmnet-mri.safetensors"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
methods=lpmnet,average,max,pca,dwt,laplacian,guided
out="$root/docs/results"
mkdir -p "$out"

"$root/tools/mri_pairs.sh" "$real" "$work/csv" >/dev/null
"$bin" eval --data "$work/csv/val.csv" --methods "$methods" -m "$model" --out "$work/val" 2>/dev/null
"$bin" phantom --out "$work/phantom" --shape 96,128,128 --seed 7 >/dev/null
"$bin" eval --data "$work/phantom" --pair t1,t2 --methods "$methods" -m "$model" --out "$work/ph" 2>/dev/null
cp "$work/val/montage_row1.png" "$out/val_flair_t1c.png"
cp "$work/ph/montage_phantom.png" "$out/phantom_t1_t2.png" 2>/dev/null || cp "$work"/ph/montage_*.png "$out/phantom_t1_t2.png"
{
  echo "# Results of the bundled model"
  echo
  echo "Made by \`tools/results.sh\` with \`$(basename "$model")\` ($(date -u +%Y-%m-%d))."
  echo
  echo "## Held-out real case: BraTS 2013 patient 3 (DeepMedic set), FLAIR + T1c, inside the brain mask"
  echo
  tail -n +3 "$work/val/summary.md" | sed "s|$work/csv/||g; s|$root/||g"
  echo
  echo "![montage](results/val_flair_t1c.png)"
  echo
  echo "## Phantom T1 + T2 (96x128x128, seed 7; not seen in training)"
  echo
  tail -n +3 "$work/ph/summary.md" | sed "s|$work/||g; s|$root/||g"
  echo
  echo "![montage](results/phantom_t1_t2.png)"
  # the prose that reads these numbers is written by hand, next to the script's tables
  [ -f "$root/docs/results-reading.md" ] && { echo; cat "$root/docs/results-reading.md"; }
} > "$root/docs/results.md.new"
mv "$root/docs/results.md.new" "$root/docs/results.md"
echo "wrote docs/results.md and docs/results/*.png"
