#!/usr/bin/env bash
# Replays saved fuzz inputs against the current build and says, for each, whether it still
# fails and where: the sanitizer's (or libFuzzer's) first line and the first stack frame in
# lpmnet's own sources. For checking which findings a fix removed.
#   fuzz/replay.sh BUILD_DIR [FILE...]     (default: every file in BUILD_DIR/artifacts/)
# The harness is taken from the file name (artifacts/HARNESS-KIND-sha1). Exit status 1 when
# any input still fails.
set -uo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [FILE...]" >&2
    exit 1
fi
build=$1
shift
files=("$@")
[ ${#files[@]} -eq 0 ] && files=("$build"/artifacts/*-*)
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    h=$(basename "$f")
    h=${h%%-*}
    exe=$build/fuzz_$h
    if [ ! -x "$exe" ]; then
        echo "$f: no harness $exe" >&2
        failed=1
        continue
    fi
    out=$("$exe" -rss_limit_mb=2048 -timeout=10 -close_fd_mask=2 "$f" </dev/null 2>&1)
    if [ $? -eq 0 ]; then
        echo "$f: passes"
        continue
    fi
    failed=1
    what=$(grep -m1 -E 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' <<<"$out")
    where=$(grep -m1 -E '#[0-9]+ .* in [a-z_0-9]+ .*/src/' <<<"$out" | sed -E 's/.* in ([a-z_0-9]+) .*\/(src\/[^ ]+).*/\1 \2/')
    echo "$f: FAILS: ${what:-exit status non-zero} | ${where:-no frame in src/}"
done
exit $failed
