#!/usr/bin/env bash
# One-process before/after of the Swin-Mamba layer (window.c, mamba.c, core/vmath.h) against an
# older commit: both versions run alternately on the same 192x192 image of distinct windows,
# forward then backward (bench/ab_swin.c). For kernel changes of a few per cent, which the
# host's drift hides when two builds are timed apart (bench/compare.sh times whole commands).
# Usage: bench/ab.sh COMMIT [ab_swin options: --shape R,Q --rounds N]. Env: BUILD, MODEL.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 COMMIT [--shape R,Q] [--rounds N]" >&2; exit 2; }
source "$(dirname "$0")/common.sh"
commit=$(git -C "$ROOT" rev-parse --short "$1"); shift
old=$TMP/ab-old-$commit
if [ ! -d "$old/src" ]; then
    mkdir -p "$old"
    git -C "$ROOT" archive "$commit" src | tar -x -C "$old"
fi
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake -S "$ROOT" -B "$BUILD" -DLPM_AB_OLD="$old" >/dev/null
cmake --build "$BUILD" -j 2 --target ab_swin >/dev/null
MODEL=${MODEL:-$ROOT/models/lpmnet-mri.safetensors}
echo "# before: $commit, after: the working tree ($BUILD)"
"$BUILD/bench/ab_swin" "$MODEL" "$@"
"$BUILD/bench/ab_swin" "$MODEL" --backward "$@"
