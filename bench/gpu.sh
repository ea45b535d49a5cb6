#!/usr/bin/env bash
# GPU benchmark of lpmnet's CUDA backend, and the PyTorch reference on the same GPU.
#   bench/gpu.sh [build-dir]      (default: build-gpu; configured and built if needed)
# Reports inference volumes/s and latency at 128x192x192 and 96x160x160 (batch 1), peak
# device memory, and training steps/s at 96x160x160. Exits 77 when there is no GPU.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-gpu}
py=${LPM_PYTHON:-/usr/bin/python3}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "bench/gpu.sh: no NVIDIA GPU here (nvidia-smi finds none); nothing to measure"
    exit 77
fi
nvidia-smi -L

if [ ! -x "$build/bench_gpu" ]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target bench_gpu -j "$(nproc)" >/dev/null
fi

rc=0
for shape in 128,192,192 96,160,160; do
    "$build/bench_gpu" --shape "$shape" --reps 5 || rc=$?
done
"$build/bench_gpu" --shape 96,160,160 --reps 3 --train || rc=$?
[ "$rc" = 77 ] && { echo "bench/gpu.sh: the CUDA backend sees no usable device"; exit 77; }

# The PyTorch reference (reference/lpmnet_ref.py, a Python loop over tokens for the scan)
# moved to the GPU: forward only, same shapes, float32.
PYTHONPATH="$src/reference" "$py" - <<'PY' || echo "PyTorch reference: failed (see above)"
import time
try:
    import torch
    import lpmnet_ref as ref
except Exception as e:
    print("PyTorch reference: skipped (%s)" % e); raise SystemExit(0)
if not torch.cuda.is_available():
    print("PyTorch reference: skipped (torch %s sees no CUDA device)" % torch.__version__); raise SystemExit(0)
dev = torch.device("cuda")
model = ref.init_weights(ref.LPMNet(), 1).to(dev).eval()
for D, H, W in ((128, 192, 192), (96, 160, 160)):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(D, H, W, generator=g).to(dev)
    b = torch.rand(D, H, W, generator=g).to(dev)
    times = []
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        for r in range(3):
            torch.cuda.synchronize(); t0 = time.time()
            model.fuse(a, b, keep={})   # keep={}: the unchunked path, all tensors on the GPU
            torch.cuda.synchronize(); times.append(time.time() - t0)
    t = sorted(times)[1]
    print("PyTorch reference %dx%dx%d: %.1f ms (%.3f volumes/s), peak allocated %.2f GiB"
          % (D, H, W, 1e3 * t, 1 / t, torch.cuda.max_memory_allocated() / 2**30))
PY
exit $rc
