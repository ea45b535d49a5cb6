#!/usr/bin/env bash
# Everything a session with a GPU should run, in one go, with a log in $OUT (or /tmp/gpu-check):
# the GPU-vs-CPU op tests, the command line with --device cuda, the benchmark, and a
# per-kernel time profile (ncu, when installed) of one 64x96x96 forward and a 32x64x64 step.
#   make cuda && tools/gpu_check.sh [build-dir]            (default build-cuda)
# A build made elsewhere runs when its folder is copied along; where the GPU machine lacks
# libnifti, copy the build machine's libnifti2.so.2, libznz.so.3 and libz.so.1 into
# BUILD/libs (they go on LD_LIBRARY_PATH).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build-cuda}" && pwd)
out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
export OMP_NUM_THREADS=$(nproc) LD_LIBRARY_PATH=$build/libs:${LD_LIBRARY_PATH:-}
t0=$(date +%s)
since() { echo "($(( $(date +%s) - t0 )) s)"; }
"$build/lpmnet" info --device || exit 77
echo "== test_cuda"
timeout 300 "$build/test_cuda" | grep -v '^  Mamba\|^  Conv\|^  cfc\.'; echo "test_cuda rc=${PIPESTATUS[0]} $(since)"
echo "== test_cuda_cli"
LPM_BIN=$build/lpmnet LPM_SOURCE_DIR=$root timeout 300 bash "$root/tests/test_cuda_cli.sh"; echo "test_cuda_cli rc=$? $(since)"
echo "== bench"
timeout 300 "$root/bench/gpu.sh" "$build"; echo "bench rc=$? $(since)"
if command -v ncu >/dev/null; then
  echo "== profile (per-kernel times: $out/ncu_forward.csv, $out/ncu_train.csv)"
  timeout 120 ncu --metrics gpu__time_duration.sum --csv -c 120 "$build/bench_gpu" --shape 64,96,96 --reps 1 >"$out/ncu_forward.csv" 2>/dev/null
  timeout 120 ncu --metrics gpu__time_duration.sum --csv -c 700 "$build/bench_gpu" --shape 32,64,64 --reps 1 --train >"$out/ncu_train.csv" 2>/dev/null
  echo "profile $(since)"
fi
