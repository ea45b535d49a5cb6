#!/usr/bin/env bash
# One training step (both passes, backward, Adam) at a 64^3 crop and at 96x160x160,
# through bench_net; then PyTorch's step and lpmnet's at 32^3 (the reference needs more
# than 24 GB at 64^3).
# Env: REPS (5), REPS_BIG (3, for 96x160x160), THREADS (2), BUILD, NO_TORCH=1, NO_BIG=1
# (skip 96x160x160).
set -euo pipefail
source "$(dirname "$0")/common.sh"
build
echo "# training step, $THREADS threads"
"$BUILD/bench/bench_net" --shape 64,64,64 --reps "$REPS" --threads "$THREADS" --no-forward
[ -n "${NO_BIG:-}" ] ||
    "$BUILD/bench/bench_net" --shape 96,160,160 --reps "${REPS_BIG:-3}" --threads "$THREADS" --no-forward
if [ -z "${NO_TORCH:-}" ]; then
    OMP_NUM_THREADS=$THREADS /usr/bin/python3 "$ROOT/bench/torch_step.py" "$ROOT" "$THREADS" 32
    "$BUILD/bench/bench_net" --shape 32,32,32 --reps "$REPS" --threads "$THREADS" --no-forward
fi
