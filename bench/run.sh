#!/usr/bin/env bash
# All benchmarks: network forward and training step (bench_net, 1 and 2 threads, with the
# per-layer profile), end-to-end fuse, training steps. Env: see common.sh.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
build
echo "# bench_net forward at 64x96x96, 1 and 2 threads"
for t in 1 2; do "$BUILD/bench/bench_net" --shape 64,96,96 --reps "$REPS" --threads $t --no-train; done
"$BUILD/bench/bench_net" --shape 64,96,96 --profile
./fuse.sh
./train.sh
