#!/usr/bin/env bash
# Before/after of two builds, interleaved: each measurement runs on the before build and
# then on the after build, ROUNDS times over, so a machine whose speed drifts over minutes
# (a shared host) moves both columns alike. Prints every round, then per item the median
# over the rounds of each build and their ratio.
# Usage: bench/compare.sh BEFORE_BUILD AFTER_BUILD   (CMake build folders, e.g. a worktree's
# build of the old commit and build-bench). Env: ROUNDS (3), REPS (3 runs per round and
# build, the median kept), THREADS (2), NO_BIG=1 (skip the 96x160x160 training step).
# About 25 minutes on 2 cores with the defaults.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_BUILD AFTER_BUILD" >&2; exit 2; }
REPS=${REPS:-3}
source "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-3}
BEFORE=$(cd "$1" && pwd) AFTER=$(cd "$2" && pwd)
for b in "$BEFORE" "$AFTER"; do BUILD=$b build; done

PHANTOM=$TMP/phantom_128x192x192
[ -f "$PHANTOM/t1.nii.gz" ] || "$AFTER/lpmnet" phantom --out "$PHANTOM" --shape 128,192,192 >/dev/null
BRATS=${LPM_REAL_DATA:-$ROOT/../shared/data/real}/brats_gli_00001_000/BraTS-GLI-00001-000

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# fuse BUILD A B: median wall seconds of REPS runs of `lpmnet fuse --exact` (one network pass;
# builds older than --exact cannot be timed here) after one warm-up
fuse() {
    local bin=$1/lpmnet; shift
    "$bin" fuse "$@" -o "$TMP/fused.nii.gz" --exact --threads "$THREADS" >/dev/null 2>&1
    for ((i = 0; i < REPS; i++)); do
        /usr/bin/time -f %e "$bin" fuse "$@" -o "$TMP/fused.nii.gz" --exact --threads "$THREADS" 2>&1 >/dev/null |
            tail -1
    done | median
}

# net BUILD ARGS...: bench_net's own median wall (it warms up and repeats REPS times): the
# first line's (a training step also prints its losses' share)
net() {
    local bin=$1/bench/bench_net; shift
    "$bin" --reps "$REPS" "$@" |
        awk '/wall/ && !done {for (i = 1; i <= NF; i++) if ($i == "wall") print $(i + 1); done = 1}'
}

ITEMS=("fuse phantom 128x192x192" "fuse BraTS 240x240x155" "forward 128x192x192, 1 thread"
       "forward 128x192x192, 2 threads" "training step 64^3")
[ -n "${NO_BIG:-}" ] || ITEMS+=("training step 96x160x160")
measure() {   # measure ITEM_INDEX BUILD
    case $1 in
        0) fuse "$2" "$PHANTOM/t1.nii.gz" "$PHANTOM/t2.nii.gz" ;;
        1) if [ -f "$BRATS-t1n.nii.gz" ]; then fuse "$2" "$BRATS-t1n.nii.gz" "$BRATS-t2w.nii.gz"
           else echo nan; fi ;;
        2) net "$2" --shape 128,192,192 --threads 1 --no-train ;;
        3) net "$2" --shape 128,192,192 --threads "$THREADS" --no-train ;;
        4) net "$2" --shape 64,64,64 --threads "$THREADS" --no-forward ;;
        5) REPS=1 net "$2" --shape 96,160,160 --threads "$THREADS" --no-forward ;;
    esac
}

declare -A T
echo "# before: $BEFORE"
echo "# after:  $AFTER"
echo "# $THREADS threads unless stated; seconds, median of $REPS per round and build"
for ((r = 1; r <= ROUNDS; r++)); do
    for k in "${!ITEMS[@]}"; do
        T[$k,b,$r]=$(measure "$k" "$BEFORE")
        T[$k,a,$r]=$(measure "$k" "$AFTER")
        printf 'round %d  %-34s before %7.3f  after %7.3f\n' "$r" "${ITEMS[$k]}" "${T[$k,b,$r]}" \
            "${T[$k,a,$r]}"
    done
done
echo
printf '| %s | before (s) | after (s) | before / after |\n|---|---|---|---|\n' "work"
for k in "${!ITEMS[@]}"; do
    b=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${T[$k,b,$r]}"; done | median)
    a=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${T[$k,a,$r]}"; done | median)
    printf '| %s | %.3f | %.3f | %.2fx |\n' "${ITEMS[$k]}" "$b" "$a" "$(echo "$b / $a" | bc -l)"
done
