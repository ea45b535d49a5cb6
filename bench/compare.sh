#!/usr/bin/env bash
# Before/after in one run: fuse.sh, train.sh and the 128x192x192 forward on 1 and 2 threads
# for two builds, then PyTorch and the per-layer profile with the second.
# Usage: bench/compare.sh BEFORE_BUILD AFTER_BUILD   (CMake build folders, e.g. a worktree's
# build of the old commit and build-bench). Env: see common.sh (REPS, THREADS, ...).
# About 25 minutes on 2 cores.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_BUILD AFTER_BUILD" >&2; exit 2; }
cd "$(dirname "$0")"
for build in "$1" "$2"; do
    [ "$build" = "$1" ] && tag=before torch=1 || tag=after torch=
    echo "=== $tag ($build)"
    BUILD=$build NO_TORCH=$torch ./fuse.sh
    BUILD=$build NO_TORCH=$torch ./train.sh
    for t in 1 2; do
        "$build/bench/bench_net" --shape 128,192,192 --reps 3 --threads $t --no-train
    done
done
"$2/bench/bench_net" --shape 64,96,96 --reps "${REPS:-5}" --threads "${THREADS:-2}" --no-train
"$2/bench/bench_net" --shape 64,96,96 --profile
