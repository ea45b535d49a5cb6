#!/usr/bin/env bash
# Time `lpmnet fuse` end to end (read, normalise, network, write) on phantom pairs and on
# the native BraTS pair; then the PyTorch reference's forward at a smaller size.
# Env: REPS (5), THREADS (2), BUILD, SHAPES (default "128,192,192 96,160,160"), NO_TORCH=1.
set -euo pipefail
source "$(dirname "$0")/common.sh"
build
BIN=$BUILD/lpmnet
echo "# lpmnet fuse, $THREADS threads"
for shape in ${SHAPES:-128,192,192 96,160,160}; do
    dir=$TMP/phantom_${shape//,/x}
    [ -f "$dir/t1.nii.gz" ] || "$BIN" phantom --out "$dir" --shape "$shape" >/dev/null
    time_cmd "fuse phantom $shape" "$BIN" fuse "$dir/t1.nii.gz" "$dir/t2.nii.gz" \
        -o "$TMP/fused.nii.gz" --threads "$THREADS"
done
BRATS=${LPM_REAL_DATA:-$ROOT/../shared/data/real}/brats_gli_00001_000
if [ -f "$BRATS/BraTS-GLI-00001-000-t1n.nii.gz" ]; then
    time_cmd "fuse BraTS t1n+t2w 240x240x155" "$BIN" fuse "$BRATS/BraTS-GLI-00001-000-t1n.nii.gz" \
        "$BRATS/BraTS-GLI-00001-000-t2w.nii.gz" -o "$TMP/fused.nii.gz" --threads "$THREADS"
else
    echo "BraTS pair not found at $BRATS: skipped"
fi
# PyTorch at 128x192x192 takes minutes per forward, so the reference runs at 64x96x96;
# compare with `bench_net --shape 64,96,96 --no-train` (same work, network only).
if [ -z "${NO_TORCH:-}" ]; then
    /usr/bin/python3 - "$ROOT" "$THREADS" <<'PY'
import sys, time, torch
sys.path.insert(0, sys.argv[1] + "/reference")
import lpmnet_ref as ref
torch.set_num_threads(int(sys.argv[2]))
net = ref.init_weights(ref.LPMNet(), 1).eval()
a = torch.rand(64, 96, 96); b = torch.rand(64, 96, 96)
with torch.no_grad():
    net(a, b)
    ts = []
    for _ in range(3):
        t = time.time(); net(a, b); ts.append(time.time() - t)
print("PyTorch forward 64x96x96 (no_grad, %s threads): median %.2f s" % (sys.argv[2], sorted(ts)[1]))
PY
fi
