# Shared helpers for the benchmark scripts (sourced).
# BUILD: the CMake build folder (default build-bench, configured Release on first use).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
REPS=${REPS:-5}
THREADS=${THREADS:-2}
TMP=${TMP_BENCH:-/tmp/lpmnet-bench}
mkdir -p "$TMP"

build() {
    [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j 2 --target lpmnet bench_net >/dev/null
}

# time_cmd LABEL CMD...: a warm-up, then REPS runs; prints the medians of wall and CPU
# (user + system) seconds, the largest peak RSS (GNU time -v) and the 1-minute load average
# at the end (the machine may be shared: CPU time is the steadier figure).
time_cmd() {
    local label=$1; shift
    "$@" >/dev/null 2>&1 || { echo "$label: command failed: $*"; return 1; }
    local walls=() cpus=() rss=0
    for ((i = 0; i < REPS; i++)); do
        /usr/bin/time -v "$@" >/dev/null 2>"$TMP/time.txt" || { echo "$label: failed"; return 1; }
        walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(j=1;j<=n;j++) s=s*60+a[j]; print s}' "$TMP/time.txt")")
        cpus+=("$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u + s}' "$TMP/time.txt")")
        local r; r=$(awk -F': ' '/Maximum resident/ {print $2}' "$TMP/time.txt")
        (( r > rss )) && rss=$r
    done
    printf '%-40s wall %7.2f s  cpu %7.2f s  peak RSS %6.0f MB  (median of %d, load %s)\n' "$label" \
        "$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')" \
        "$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')" \
        "$(echo "$rss / 1024" | bc -l)" "$REPS" "$(cut -d' ' -f1 /proc/loadavg)"
}
