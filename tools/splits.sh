#!/usr/bin/env bash
# Writes the train / validation / test lists of every modality family from the real volumes
# in ../shared/data/real (never copied into the repository), split by subject as
# docs/protocol.md states: OUT/<family>/{train,val,test}.csv (header a,b[,mask]).
# Families whose training set is synthetic (ct-mr, pet-mr, most of pet-ct) also get phantoms,
# written by `lpmnet phantom` into OUT/phantoms and listed in their train.csv.
# Usage: tools/splits.sh REAL_DIR OUT_DIR [LPMNET]   (LPMNET default: build/lpmnet)
set -euo pipefail
real="$(cd "$1" && pwd)"; out="$2"
bin="${3:-$(cd "$(dirname "$0")/.." && pwd)/build/lpmnet}"
mkdir -p "$out"/{mri,ct-mr,pet-mr,pet-ct}
pair() { echo "$real/$1,$real/$2${3:+,$real/$3}"; }
both() { pair "$1" "$2" "${3:-}"; pair "$2" "$1" "${3:-}"; }

# ---------------------------------------------------------------- MR/MR
{
  echo "a,b"
  g=brats_gli_00001_000/BraTS-GLI-00001-000
  both $g-t1n.nii.gz $g-t2w.nii.gz
  both $g-t1c.nii.gz $g-t2f.nii.gz
  both $g-t1n.nii.gz $g-t2f.nii.gz
  both $g-t1c.nii.gz $g-t2w.nii.gz
  t=tcga_du_7294_sri24/TCGA-DU-7294
  both ${t}_t1_bet.nii.gz ${t}_t2_bet.nii.gz
  both ${t}_t1c_bet.nii.gz ${t}_fla_bet.nii.gz
  both ${t}_t1_bet.nii.gz ${t}_fla_bet.nii.gz
  both ${t}_t1c_bet.nii.gz ${t}_t2_bet.nii.gz
  both sri24_atlas/spgr.nii.gz sri24_atlas/late.nii.gz
  both sri24_atlas/erly.nii.gz sri24_atlas/late.nii.gz
  both sri24_atlas/spgr.nii.gz sri24_atlas/erly.nii.gz
  i=icbm152_avg_t1t2pd_2mm
  both $i/avg152T1.nii $i/avg152T2.nii
  both $i/avg152T1.nii $i/avg152PD.nii
  both $i/avg152T2.nii $i/avg152PD.nii
  for p in brats_2013_pat0001_1 brats_2013_pat0002_1; do
    d=brats2015_deepmedic_3subj/$p
    both $d/Flair_subtrMeanDivStd.nii.gz $d/T1c_subtrMeanDivStd.nii.gz
  done
} > "$out/mri/train.csv"
ms() {
  local p=open_ms_mni_2subj/$1
  both $p/t1.nii.gz $p/t2.nii.gz
  both $p/t1post.nii.gz $p/flair.nii.gz
}
{
  echo "a,b"
  d=brats2015_deepmedic_3subj/brats_2013_pat0003_1
  both $d/Flair_subtrMeanDivStd.nii.gz $d/T1c_subtrMeanDivStd.nii.gz
  ms patient07
} > "$out/mri/val.csv"
{ echo "a,b"; ms patient19; } > "$out/mri/test.csv"

# ---------------------------------------------------------------- phantoms (synthetic)
ph() { # ph BODY SEED SHAPE: one phantom folder
  local dir="$out/phantoms/$1-$2"
  [ -s "$dir/labels.nii.gz" ] || "$bin" phantom --body "$1" --out "$dir" --shape "$3" --seed "$2" >/dev/null
  echo "$dir"
}
phantom_pairs() { # phantom_pairs BODY A B [A B ...]: both orders of each pair, seeds 1..4
  local body=$1; shift
  for seed in 1 2 3 4; do
    local dir; dir="$(ph "$body" "$seed" 80,112,112)"
    set -- "$@"
    local k=1
    while [ $k -lt $# ]; do
      local a=${!k}; local j=$((k + 1)); local b=${!j}
      echo "$dir/$a.nii.gz,$dir/$b.nii.gz"; echo "$dir/$b.nii.gz,$dir/$a.nii.gz"
      k=$((k + 2))
    done
  done
}

# ---------------------------------------------------------------- CT/MR
t=mni2mm_templates_mr_pet_spect_ct
{ echo "a,b"; phantom_pairs head ct t1 ct t2; } > "$out/ct-mr/train.csv"
{ echo "a,b,mask"; both mouse_mri_ct_atlas/ct.nii.gz mouse_mri_ct_atlas/mri_t2.nii.gz mouse_mri_ct_atlas/brain_mask.nii.gz; } > "$out/ct-mr/val.csv"
{ echo "a,b"; both $t/scct.nii $t/T1.nii; both $t/scct.nii $t/T2.nii; } > "$out/ct-mr/test.csv"

# ---------------------------------------------------------------- PET/MR, SPECT/MR
{ echo "a,b"; phantom_pairs head pet t1 spect t1 pet t2; } > "$out/pet-mr/train.csv"
{ echo "a,b"; both $t/SPECT_xflip_on_T1grid.nii $t/T1.nii; } > "$out/pet-mr/val.csv"
{ echo "a,b"; both $t/PET.nii $t/T1.nii; both $t/PET.nii $t/T2.nii; } > "$out/pet-mr/test.csv"

# ---------------------------------------------------------------- PET/CT, SPECT/CT
l=lu177_spect_ct_phantom
p=petct_lung_2subj
{ echo "a,b"; phantom_pairs thorax ct pet; both $l/attenuation.nii.gz $l/activity.nii.gz; } > "$out/pet-ct/train.csv"
{ echo "a,b"; both $p/A-IA000991/ct.nii.gz $p/A-IA000991/pet.nii.gz; } > "$out/pet-ct/val.csv"
{ echo "a,b"; both $p/A-IA001491/ct.nii.gz $p/A-IA001491/pet.nii.gz; } > "$out/pet-ct/test.csv"

for f in mri ct-mr pet-mr pet-ct; do
  printf '%-7s train %3d  val %2d  test %2d pairs\n' "$f" $(($(wc -l < "$out/$f/train.csv") - 1)) \
    $(($(wc -l < "$out/$f/val.csv") - 1)) $(($(wc -l < "$out/$f/test.csv") - 1))
done
