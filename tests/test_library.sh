#!/bin/bash
# The library as a user meets it (docs/library.md): the build installed into a temporary prefix
# with `cmake --install`, the README's C example (examples/fuse_pair.c, identical to the README
# block) compiled with nothing but `pkg-config --cflags --libs lpmnet`, run, and its output
# compared byte for byte with `lpmnet fuse` of the same pair; the same program linked fully
# statically with `pkg-config --static`; the bundled model found beside the installed shared
# library; a CMake project built with find_package(lpmnet).
set -euo pipefail
: "${LPM_BIN:?}" "${LPM_SOURCE_DIR:?}" "${LPM_TMP:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }

build=$(cd "$(dirname "$LPM_BIN")" && pwd)
example=$LPM_SOURCE_DIR/examples/fuse_pair.c
work=$LPM_TMP/library
rm -rf "$work"
mkdir -p "$work"

# 1. The README's block under "## Library (C)" is examples/fuse_pair.c, line for line.
awk '/^## Library \(C\)/ {section = 1; next}
     section && /^## / {exit}
     section && /^```c$/ {block = 1; next}
     block && /^```$/ {exit}
     block {print}' "$LPM_SOURCE_DIR/README.md" >"$work/readme_block.c"
[ -s "$work/readme_block.c" ] || fail "README.md has no \`\`\`c block in its \"## Library (C)\" section"
diff -u "$example" "$work/readme_block.c" >&2 || fail "README.md's C example differs from examples/fuse_pair.c"
echo "ok: README's C example is examples/fuse_pair.c"

if [ "${LPM_SANITIZED:-0}" = 1 ]; then
    echo "skip: the install and compile part (a sanitizer-built library does not link into a plain program)"
    exit 77
fi
for tool in pkg-config cmake cc; do
    command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done

# 2. Install into a temporary prefix and find lpmnet.pc wherever CMake put the libdir.
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
pc=$(find "$prefix" -name lpmnet.pc -print -quit)
[ -n "$pc" ] || fail "no lpmnet.pc installed under $prefix"
libdir=$(cd "$(dirname "$pc")/.." && pwd)
for f in liblpmnet.a liblpmnet.so liblpmnet.so.0 liblpmnet.so.0.1.0 cmake/lpmnet/lpmnetConfig.cmake \
         cmake/lpmnet/lpmnetConfigVersion.cmake cmake/lpmnet/lpmnetTargets.cmake; do
    [ -e "$libdir/$f" ] || fail "$libdir/$f was not installed"
done
[ -f "$prefix/include/lpmnet.h" ] || fail "include/lpmnet.h was not installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
[ "$(pkg-config --modversion lpmnet)" = 0.1.0 ] || fail "pkg-config --modversion lpmnet: $(pkg-config --modversion lpmnet)"

# 3. A phantom pair, and the tool's fusion of it.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS
"$LPM_BIN" phantom --out "$work/ph" --shape 32,32,32 >/dev/null 2>&1 || fail "lpmnet phantom"
"$LPM_BIN" fuse "$work/ph/t1.nii.gz" "$work/ph/t2.nii.gz" -o "$work/tool.nii" 2>/dev/null || fail "lpmnet fuse"

# The voxels of a single-file .nii written by lpmnet: float32 after the 352-byte header
# (the headers differ in their description only).
same_voxels() {
    cmp -s <(tail -c +353 "$1") <(tail -c +353 "$2") && [ "$(stat -c %s "$1")" = $((352 + 4 * 32 * 32 * 32)) ]
}

# 4. Shared: only what pkg-config says.
cd "$work"
cc -Wall -Werror -o fuse_pair "$example" $(pkg-config --cflags --libs lpmnet) || fail "compiling with pkg-config --cflags --libs lpmnet"
loads=$(LD_LIBRARY_PATH=$libdir ldd ./fuse_pair)  # (grep -q on a pipe would cut ldd short)
grep -q "liblpmnet.so.0 => $libdir/liblpmnet.so.0" <<<"$loads" || fail "fuse_pair does not load $libdir/liblpmnet.so.0"
LD_LIBRARY_PATH=$libdir ./fuse_pair ph/t1.nii.gz ph/t2.nii.gz shared.nii >shared.txt || fail "fuse_pair (shared)"
grep -q '^shared.nii: ssim 0\.[0-9]*, qabf 0\.[0-9]*$' shared.txt || fail "fuse_pair printed: $(cat shared.txt)"
same_voxels shared.nii tool.nii || fail "fuse_pair (shared) differs from lpmnet fuse"
echo "ok: shared library, pkg-config: $(pkg-config --libs lpmnet)"

# 5. Static: the whole program, with the archive's private dependencies.
cc -static -o fuse_pair_static "$example" $(pkg-config --static --cflags --libs lpmnet) 2>static.log ||
    { cat static.log >&2; fail "compiling with pkg-config --static --cflags --libs lpmnet"; }
if ldd ./fuse_pair_static >/dev/null 2>&1; then fail "fuse_pair_static is not statically linked"; fi
./fuse_pair_static ph/t1.nii.gz ph/t2.nii.gz static.nii >/dev/null || fail "fuse_pair (static)"
same_voxels static.nii tool.nii || fail "fuse_pair (static) differs from lpmnet fuse"
echo "ok: static library, pkg-config --static: $(pkg-config --static --libs lpmnet)"

# 6. The bundled model is found beside the installed library (dladdr), not in the source tree.
cat >where.c <<'EOF'
#include <lpmnet.h>
#include <stdio.h>
int main(void) {
    char path[4096];
    if (lpm_model_path("pet-ct", ".md", path, sizeof path)) return fprintf(stderr, "%s\n", lpm_last_error()), 1;
    if (lpm_model_path("t1", ".safetensors", path, sizeof path) != LPM_ERR_USAGE) return 1;
    printf("%s\n", path);
    return 0;
}
EOF
if [ -f "$LPM_SOURCE_DIR/models/lpmnet-pet-ct.md" ]; then
    cc -o where where.c $(pkg-config --cflags --libs lpmnet) || fail "compiling where.c"
    found=$(LD_LIBRARY_PATH=$libdir ./where) || fail "lpm_model_path"
    [ "$(realpath "$found")" = "$(realpath "$prefix/share/lpmnet/lpmnet-pet-ct.md")" ] ||
        fail "lpm_model_path found $found, not the installed $prefix/share/lpmnet/lpmnet-pet-ct.md"
    echo "ok: lpm_model_path -> $found"
fi

# 7. CMake: find_package(lpmnet) gives lpmnet::lpmnet (shared) and lpmnet::lpmnet_static.
mkdir -p cmake-user
cp "$example" cmake-user/
cat >cmake-user/CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(use_lpmnet C)
find_package(lpmnet 0.1 REQUIRED)
add_executable(fuse_pair fuse_pair.c)
target_link_libraries(fuse_pair PRIVATE lpmnet::lpmnet)
add_executable(fuse_pair_static fuse_pair.c)
target_link_libraries(fuse_pair_static PRIVATE lpmnet::lpmnet_static)
EOF
cmake -S cmake-user -B cmake-user/build -DCMAKE_PREFIX_PATH="$prefix" >cmake-user.log 2>&1 &&
    cmake --build cmake-user/build >>cmake-user.log 2>&1 || { cat cmake-user.log >&2; fail "the find_package(lpmnet) project"; }
cmake-user/build/fuse_pair ph/t1.nii.gz ph/t2.nii.gz cmake_shared.nii >/dev/null || fail "fuse_pair (CMake, shared)"
cmake-user/build/fuse_pair_static ph/t1.nii.gz ph/t2.nii.gz cmake_static.nii >/dev/null || fail "fuse_pair (CMake, static)"
same_voxels cmake_shared.nii tool.nii && same_voxels cmake_static.nii tool.nii || fail "the CMake-built fuse_pair differs from lpmnet fuse"
echo "ok: find_package(lpmnet): lpmnet::lpmnet and lpmnet::lpmnet_static"
echo "PASS"
