#!/usr/bin/env bash
# Time `lpmnet fuse --exact` end to end (read, normalise, one network pass, write; the default
# fuse runs 4 passes, 4x the network time) on phantom pairs and on
# the native BraTS pair; then the PyTorch reference's forward at a smaller size.
# Env: REPS (5), THREADS (2), BUILD, SHAPES (default "128,192,192 96,160,160"), NO_TORCH=1,
# TORCH_SHAPE (64,96,96: the reference is a Python loop over tokens, minutes per forward at
# 128x192x192), MODEL (weights file; needed where the build has no bundled model).
set -euo pipefail
source "$(dirname "$0")/common.sh"
build
BIN=$BUILD/lpmnet
MODEL_ARG=()
[ -n "${MODEL:-}" ] && MODEL_ARG=(-m "$MODEL")
echo "# lpmnet fuse, $THREADS threads"
for shape in ${SHAPES:-128,192,192 96,160,160}; do
    dir=$TMP/phantom_${shape//,/x}
    [ -f "$dir/t1.nii.gz" ] || "$BIN" phantom --out "$dir" --shape "$shape" >/dev/null
    time_cmd "fuse phantom $shape" "$BIN" fuse "$dir/t1.nii.gz" "$dir/t2.nii.gz" \
        -o "$TMP/fused.nii.gz" --exact --threads "$THREADS" "${MODEL_ARG[@]}"
done
BRATS=${LPM_REAL_DATA:-$ROOT/../shared/data/real}/brats_gli_00001_000
if [ -f "$BRATS/BraTS-GLI-00001-000-t1n.nii.gz" ]; then
    time_cmd "fuse BraTS t1n+t2w 240x240x155" "$BIN" fuse "$BRATS/BraTS-GLI-00001-000-t1n.nii.gz" \
        "$BRATS/BraTS-GLI-00001-000-t2w.nii.gz" -o "$TMP/fused.nii.gz" --threads "$THREADS" "${MODEL_ARG[@]}"
else
    echo "BraTS pair not found at $BRATS: skipped"
fi
# The reference at TORCH_SHAPE; compare with `bench_net --shape $TORCH_SHAPE --no-train`
# (same work, network only).
if [ -z "${NO_TORCH:-}" ]; then
    OMP_NUM_THREADS=$THREADS /usr/bin/python3 - "$ROOT" "$THREADS" "${TORCH_SHAPE:-64,96,96}" <<'PY'
import sys, time, torch
sys.path.insert(0, sys.argv[1] + "/reference")
import lpmnet_ref as ref
torch.set_num_threads(int(sys.argv[2]))
net = ref.init_weights(ref.LPMNet(), 1).eval()
D, H, W = (int(v) for v in sys.argv[3].split(","))
a = torch.rand(D, H, W); b = torch.rand(D, H, W)
with torch.no_grad():
    net(a, b)
    ts, cs = [], []
    for _ in range(3):
        t, c = time.time(), time.process_time(); net(a, b)
        ts.append(time.time() - t); cs.append(time.process_time() - c)
print("PyTorch forward %dx%dx%d (no_grad, %s threads): median wall %.2f s, cpu %.2f s"
      % (D, H, W, sys.argv[2], sorted(ts)[1], sorted(cs)[1]))
PY
fi
