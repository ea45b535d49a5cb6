#!/usr/bin/env bash
# Writes the CSV files that train and validate the bundled MRI model from the real volumes in
# ../shared/data/real (never copied into the repository): every listed contrast pair in both
# orders, with one DeepMedic patient (brats_2013_pat0003_1) held out for validation.
# Usage: tools/mri_pairs.sh REAL_DIR OUT_DIR   -> OUT_DIR/train.csv, OUT_DIR/val.csv
set -euo pipefail
real="$(cd "$1" && pwd)"; out="$2"
mkdir -p "$out"
both() { echo "$real/$1,$real/$2"; echo "$real/$2,$real/$1"; }
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
  both icbm152_avg_t1t2pd_2mm/avg152T1.nii icbm152_avg_t1t2pd_2mm/avg152T2.nii
  both icbm152_avg_t1t2pd_2mm/avg152T1.nii icbm152_avg_t1t2pd_2mm/avg152PD.nii
  both icbm152_avg_t1t2pd_2mm/avg152T2.nii icbm152_avg_t1t2pd_2mm/avg152PD.nii
  for p in brats_2013_pat0001_1 brats_2013_pat0002_1; do
    d=brats2015_deepmedic_3subj/$p
    both $d/Flair_subtrMeanDivStd.nii.gz $d/T1c_subtrMeanDivStd.nii.gz
  done
} > "$out/train.csv"
d=$real/brats2015_deepmedic_3subj/brats_2013_pat0003_1
printf 'a,b,mask\n%s,%s,%s\n' "$d/Flair_subtrMeanDivStd.nii.gz" "$d/T1c_subtrMeanDivStd.nii.gz" "$d/brainmask.nii.gz" > "$out/val.csv"
echo "$out/train.csv: $(($(wc -l < "$out/train.csv") - 1)) pairs; $out/val.csv: 1 held-out case"
