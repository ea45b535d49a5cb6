#!/usr/bin/env bash
# Each kernel set this machine offers (src/model/kernels.h), one after the other through
# LPM_ISA: bench_net's forward (GFLOP/s by its FLOP model, and that as a fraction of the
# FMA peak of THREADS cores, bench/fma_peak: the machine's best, and the set's own vector
# width's), and `lpmnet fuse --exact` (one network pass, read and write included) on a
# phantom pair. Ends with a table, one row per set.
# Env: BUILD (build-bench), THREADS (2), REPS (3), SHAPE (64,96,96), FUSE_SHAPE
# (128,192,192; empty: no fuse timing), PATHS (default: every set offered except ref; the
# reference layers take ~50x as long: PATHS=ref SHAPE=16,32,32 FUSE_SHAPE= for a look).
set -euo pipefail
REPS=${REPS:-3}
source "$(dirname "$0")/common.sh"
build
cmake --build "$BUILD" -j 2 --target fma_peak >/dev/null 2>&1 || true
BIN=$BUILD/lpmnet
SHAPE=${SHAPE:-64,96,96}
FUSE_SHAPE=${FUSE_SHAPE-128,192,192}

"$BIN" info --cpu
echo "lscpu: $(lscpu | awk -F': *' '/^Model name/ {print $2; exit}'), load $(cut -d' ' -f1 /proc/loadavg)"
OFFERED=$("$BIN" info --cpu | awk '/^offers/ {$1 = ""; print}')
PATHS=${PATHS:-$(echo "$OFFERED" | tr ' ' '\n' | grep -v '^ref$' | grep . | tr '\n' ' ')}

# FMA peak of one core per vector width (GFLOP/s), where fma_peak runs here
declare -A PEAK=()
if [ -x "$BUILD/bench/fma_peak" ]; then
    PEAKS=$("$BUILD/bench/fma_peak")
    echo "$PEAKS"
    PEAK[avx512]=$(echo "$PEAKS" | awk '/^AVX-512 FMA/ {print $3}')
    PEAK[avx2]=$(echo "$PEAKS" | awk '/^AVX2 FMA/ {print $3}')
    PEAK[portable]=$(echo "$PEAKS" | awk '/^SSE2 mul\+add/ {print $3}')
fi
BEST=${PEAK[avx512]:-${PEAK[avx2]:-${PEAK[portable]:-}}}

if [ -n "$FUSE_SHAPE" ]; then
    PH=$TMP/phantom_${FUSE_SHAPE//,/x}
    [ -f "$PH/t1.nii.gz" ] || "$BIN" phantom --out "$PH" --shape "$FUSE_SHAPE" >/dev/null
fi

# fraction NUM PEAK_PER_CORE: NUM / (PEAK x THREADS) as a percentage, "-" without a peak
fraction() { [ -n "${2:-}" ] && awk -v g="$1" -v p="$2" -v t="$THREADS" 'BEGIN {printf "%.1f%%", 100 * g / (p * t)}' || echo -; }

ROWS=()
for isa in $PATHS; do
    echo "== LPM_ISA=$isa"
    export LPM_ISA=$isa
    out=$("$BUILD/bench/bench_net" --shape "$SHAPE" --reps "$REPS" --threads "$THREADS" --no-train)
    echo "$out"
    wall=$(echo "$out" | awk '/^forward:/ {print $3}')
    gflops=$(echo "$out" | awk '/^forward:/ {for (i = 1; i <= NF; i++) if ($i == "GFLOP/s") print $(i - 1)}')
    fuse=-
    if [ -n "$FUSE_SHAPE" ]; then
        line=$(time_cmd "fuse --exact phantom $FUSE_SHAPE" "$BIN" fuse "$PH/t1.nii.gz" \
            "$PH/t2.nii.gz" -o "$TMP/fused.nii.gz" --exact --threads "$THREADS")
        echo "$line"
        fuse=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "wall") print $(i + 1)}')
    fi
    ROWS+=("$(printf '%-9s %9s %9s %12s %12s %12s' "$isa" "$wall" "$gflops" \
        "$(fraction "$gflops" "$BEST")" "$(fraction "$gflops" "${PEAK[$isa]:-}")" "$fuse")")
done
unset LPM_ISA
echo
echo "# $THREADS threads, bench_net --shape $SHAPE --no-train (median of $REPS), fuse --exact $FUSE_SHAPE"
printf '%-9s %9s %9s %12s %12s %12s\n' set "fwd s" GFLOP/s "of best FMA" "of own peak" "fuse wall s"
printf '%s\n' "${ROWS[@]}"
