#!/usr/bin/env bash
# make test-arm64: test_ops and test_model cross-built for aarch64 and run under qemu-user.
# The aarch64 build has the neon and ref kernel sets (src/model/kernels.h); it holds only
# what those two tests need: src/core, the model (the kernel sources compiled once per set,
# as cmake/kernels.cmake does), the safetensors reader, and io/nifti.c's volume functions
# (no aarch64 nifti_clib, libpng or zlib is installed: nifti.c is built with
# -ffunction-sections and linked with --gc-sections, and tests/arm64_nifti_stub.c stands in
# for the two nifti_clib calls still referenced, which these tests never reach).
# Skips (exit 0, saying why) where the cross compiler, its libraries, qemu or the fixtures
# are missing (scripts/install-deps.sh installs gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, libgomp1-arm64-cross and qemu-user).
# Env: ARM64_BUILD (build-arm64), ARM64_CC (aarch64-linux-gnu-gcc), QEMU_ARM64
# (qemu-aarch64), ARM64_SYSROOT (/usr/aarch64-linux-gnu), LPM_FIXTURES (build/fixtures), JOBS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${ARM64_BUILD:-build-arm64}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
CC=${ARM64_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_ARM64:-qemu-aarch64}
SYSROOT=${ARM64_SYSROOT:-/usr/aarch64-linux-gnu}
FIXTURES=${LPM_FIXTURES:-$ROOT/build/fixtures}
JOBS=${JOBS:-$(nproc)}

skip() { echo "test-arm64: skipped: $*"; exit 0; }
command -v "$CC" >/dev/null || skip "no $CC (apt install gcc-aarch64-linux-gnu libc6-dev-arm64-cross libgomp1-arm64-cross)"
command -v "$QEMU" >/dev/null || skip "no $QEMU (apt install qemu-user)"
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || skip "no aarch64 C library in $SYSROOT (apt install libc6-dev-arm64-cross)"
[ -e "$SYSROOT/lib/libgomp.so.1" ] || skip "no aarch64 libgomp in $SYSROOT (apt install libgomp1-arm64-cross)"
[ -e /usr/include/nifti/nifti2_io.h ] || skip "no nifti_clib headers (apt install libnifti2-dev)"
[ -f "$FIXTURES/layers.safetensors" ] || skip "no fixtures in $FIXTURES (make test-release writes them)"

mkdir -p "$OUT/obj" "$OUT/include"
# nifti_clib's headers (and zlib's, which they include) alone, after the cross compiler's
# own system headers: the host's other headers must not be seen
for h in /usr/include/nifti/*.h /usr/include/zlib.h /usr/include/zconf.h; do
    ln -sf "$h" "$OUT/include/"
done

S=$ROOT/src
# the flags of the CMake Release build (CMakeLists.txt), plus dead-code removal
CFLAGS=(-std=c11 -O3 -DNDEBUG -fopenmp -Wall -Wextra -Wno-unused-parameter -fno-fast-math
        -ffp-contract=fast -D_POSIX_C_SOURCE=200809L -ffunction-sections -fdata-sections
        -I"$ROOT/include" -I"$S" -I"$ROOT/tests" -idirafter "$OUT/include")
KERNELS=(conv dense layernorm mamba window cfc network)

# one line per object: output, then the compiler arguments
jobs_list() {
    for f in core/core.c io/safetensors.c io/atomic.c io/nifti.c prep/grid.c prep/normalize.c \
             model/params.c model/fuse.c model/isa.c model/dispatch.c model/ref_layers.c \
             model/ref_mamba.c; do
        echo "gen_$(basename "$f" .c).o $S/$f"
    done
    echo "stub.o $ROOT/tests/arm64_nifti_stub.c"
    for k in "${KERNELS[@]}"; do
        echo "neon_$k.o -DLPM_NO_CLONES -DLPM_KERNEL_SUFFIX=neon $S/model/$k.c"
    done
    for k in network ref_kernels; do
        echo "ref_$k.o -DLPM_NO_CLONES -DLPM_KERNEL_SUFFIX=ref $S/model/$k.c"
    done
}
echo "test-arm64: building test_ops and test_model with $CC in $OUT"
export CC OUT
export CFLAGS_STR="${CFLAGS[*]}"
jobs_list | xargs -P "$JOBS" -L 1 sh -c 'o=$0; $CC $CFLAGS_STR -c "$@" -o "$OUT/obj/$o"'
# (the tests themselves without the vectoriser: Debian's aarch64 GCC 12 stops with an
# internal compiler error in vect_transform_reduction on test_model.c's check_grads at -O3)
for t in test_ops test_model; do
    "$CC" "${CFLAGS[@]}" -fno-tree-vectorize "$ROOT/tests/$t.c" "$OUT"/obj/*.o -o "$OUT/$t" -lm \
        -Wl,--gc-sections
done

# qemu is ~10-50x slower than the machine: the model test leaves out its large fixtures
export LPM_FIXTURES=$FIXTURES OMP_NUM_THREADS=2 LPM_TEST_SMALL=1
status=0
for t in test_ops test_model; do
    echo "test-arm64: $QEMU -L $SYSROOT $t"
    if "$QEMU" -L "$SYSROOT" "$OUT/$t" >"$OUT/$t.log" 2>&1; then
        grep -v '^ok \|^  ok ' "$OUT/$t.log" || true
    else
        cat "$OUT/$t.log"
        echo "test-arm64: $t FAILED (log: $OUT/$t.log)"
        status=1
    fi
done
exit $status
