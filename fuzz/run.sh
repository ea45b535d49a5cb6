#!/usr/bin/env bash
# Runs each libFuzzer harness of a fuzz build (CMake -DLPM_FUZZ=ON), one after the other, for
# SECONDS each, and prints libFuzzer's final statistics and a summary line per harness.
#   fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]        (HARNESS: nifti safetensors data)
# Inputs that grow coverage are kept in BUILD_DIR/corpus/HARNESS (so later runs start where
# this one stopped); a crash, leak, sanitizer report, timeout or out-of-memory input is
# written to BUILD_DIR/artifacts/HARNESS-{crash,leak,timeout,oom}-<sha1> and its log to
# BUILD_DIR/logs/HARNESS.log. Exit status 1 when any harness failed, after running them all.
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [HARNESS...]" >&2
    exit 1
fi
build=$1 seconds=$2
shift 2
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(nifti safetensors data)
src=$(cd "$(dirname "$0")" && pwd)
cd "$build" || exit 1
mkdir -p artifacts logs

# UBSan stops at the first report and prints its stack (the library is built with
# -fno-sanitize-recover=undefined); LeakSanitizer is on by default under libFuzzer.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# A process that dies of a finding, or that -fork stops, skips its exit handlers: remove the
# scratch folders (lpmfuzz.<pid>.*) and LLVM OpenMP's registration files
# (/dev/shm/__KMP_REGISTERED_LIB_<pid>_<uid>) that dead processes left during this run.
stamp=$(mktemp)
clean_stale() {
    local f pid
    while IFS= read -r f; do
        pid=$(basename "$f" | sed -E 's/^lpmfuzz\.([0-9]+)\..*/\1/; s/^__KMP_REGISTERED_LIB_([0-9]+)_.*/\1/')
        [[ $pid =~ ^[0-9]+$ ]] && [ ! -d "/proc/$pid" ] && rm -rf "$f"
    done < <(find "${TMPDIR:-/dev/shm}" /dev/shm /tmp -maxdepth 1 -newer "$stamp" \
                  \( -name 'lpmfuzz.*' -o -name '__KMP_REGISTERED_LIB_*' \) 2>/dev/null | sort -u)
}

failed=0
summary=()
for h in "${harnesses[@]}"; do
    exe=./fuzz_$h
    if [ ! -x "$exe" ]; then
        echo "fuzz: $build/fuzz_$h is not built" >&2
        failed=1
        continue
    fi
    mkdir -p "corpus/$h" "seeds/$h"
    log=logs/$h.log
    echo "== fuzz_$h for ${seconds}s (log $build/$log)"
    # -close_fd_mask=2: nifti_clib prints every header it rejects on stderr; libFuzzer's own
    # reports (and the sanitizers') still come through. stdin is /dev/null so that no input
    # naming /dev/stdin can block a run.
    "$exe" "corpus/$h" "seeds/$h" -dict="$src/$h.dict" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -close_fd_mask=2 \
        -artifact_prefix="artifacts/$h-" </dev/null >"$log" 2>&1
    rc=$?
    clean_stale
    grep -E '^stat::|SUMMARY|ERROR: libFuzzer|runtime error|Test unit written' "$log"
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc; reproducer in $build/artifacts/, stack in $build/$log)"
        failed=1
    fi
    summary+=("fuzz_$h: ${execs:-?} executions, ${rate:-?}/s, ${cov:-no coverage line}: $result")
done
rm -f "$stamp"
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $failed
