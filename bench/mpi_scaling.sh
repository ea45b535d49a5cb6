#!/usr/bin/env bash
# Data-parallel training over MPI on this machine: the same global batch on 1 and 2 ranks
# (the cores shared out: THREADS_TOTAL / ranks threads each), steps/s and samples/s from the
# run's train.csv (the first step left out: warm-up), and per step the time spent in the
# exchange of the gradients (train.csv's comm_seconds: the transfer) and in the status
# exchange before it (wait_seconds: mostly waiting for the slower rank's share).
# Env: BATCH (4), CROP (32,32,32), ITERS (12), THREADS_TOTAL (2), RANKS ("1 2"), BUILD.
set -euo pipefail
source "$(dirname "$0")/common.sh"
build
command -v mpirun >/dev/null || { echo "no mpirun: install openmpi-bin (docs/cluster.md)"; exit 1; }
BATCH=${BATCH:-4}
CROP=${CROP:-32,32,32}
ITERS=${ITERS:-12}
THREADS_TOTAL=${THREADS_TOTAL:-2}
RANKS=${RANKS:-1 2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
data="$TMP/mpi_scaling"
rm -rf "$data"; mkdir -p "$data"
for s in 1 2 3 4; do "$BUILD/lpmnet" phantom --out "$data/s$s" --shape 64,64,64 --seed "$s" >/dev/null; done
{ echo "a,b"; for s in 1 2 3 4; do echo "s$s/t1.nii.gz,s$s/t2.nii.gz"; done; } > "$data/pairs.csv"

echo "# data-parallel training: global batch $BATCH, crop $CROP, $ITERS steps, $THREADS_TOTAL threads in all"
echo "# $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) cores"
printf '%-6s %-8s %9s %10s %14s %13s %14s %8s\n' ranks threads steps/s samples/s "comm ms/step" "comm min ms" "wait ms/step" "comm %"
for p in $RANKS; do
    t=$(( THREADS_TOTAL / p )); (( t >= 1 )) || t=1
    out="$data/run$p"; rm -rf "$out"
    OMP_NUM_THREADS=$t mpirun -np "$p" --oversubscribe "$BUILD/lpmnet" train --data "$data/pairs.csv" \
        --crop "$CROP" --batch "$BATCH" --iters "$ITERS" --threads "$t" --ckpt-every 100000 --quiet --out "$out"
    awk -F, -v p="$p" -v t="$t" -v b="$BATCH" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NR > 2 { s += $col["seconds"]; c += $col["comm_seconds"]; w += $col["wait_seconds"]; n++
                 if (min == "" || $col["comm_seconds"] < min) min = $col["comm_seconds"] }
        END { printf "%-6d %-8d %9.3f %10.2f %14.3f %13.3f %14.1f %7.2f%%\n", p, t, n / s, n * b / s,
                     1000 * c / n, 1000 * min, 1000 * w / n, 100 * c / s }' "$out/train.csv"
done
echo "# one process logs comm 0: it exchanges nothing. The gradient is 26,051 floats (104 KB) per sample."
