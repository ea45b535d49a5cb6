"""Fixtures for the fusion metrics: metrics.safetensors.

Phantom-like triples (smooth ellipsoids of different contrast in A and B, noise inside the
"head", an exactly zero background) and their metric values from metrics_ref.all_metrics.
For each case `<case>`: `<case>.a`, `<case>.b`, `<case>.f` (D,H,W) float32 in [0, 1] with
min exactly 0 and max exactly 1 (so min-max normalisation leaves them unchanged),
`<case>.mask` (D,H,W) 0/1 (all ones when unmasked) and `<case>.<metric>` (1) for the twelve
lower-case metric names. Cases: p1 20x23x19, p2 16x32x24, p3 52x56x60 (large enough for all
four VIF scales), m1 24x28x26 with an ellipsoid mask.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_ref  # noqa: E402
import st  # noqa: E402

CASES = (("p1", (20, 23, 19), False), ("p2", (16, 32, 24), False),
         ("p3", (52, 56, 60), False), ("m1", (24, 28, 26), True))


def _to01(v):
    v = v.astype(np.float32)
    lo, hi = v.min(), v.max()
    out = ((v - lo) / (hi - lo)).astype(np.float32)
    out[v == lo], out[v == hi] = 0, 1
    return out


def phantom(shape, rng):
    D, H, W = shape
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    head = (z / 0.9) ** 2 + (y / 0.85) ** 2 + (x / 0.8) ** 2 < 1
    A = np.zeros(shape)
    B = np.zeros(shape)
    A[head], B[head] = 0.3, 0.6
    for _ in range(5):
        c = rng.uniform(-0.5, 0.5, 3)
        r = rng.uniform(0.15, 0.4, 3)
        blob = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2
        s = np.exp(-2 * blob) * head
        A += rng.uniform(0.2, 0.6) * s
        B -= rng.uniform(0.1, 0.4) * s
    A += head * 0.05 * rng.standard_normal(shape)
    B += head * 0.05 * rng.standard_normal(shape)
    F = 0.5 * np.maximum(A, B) + 0.3 * A + 0.2 * B + head * 0.02 * rng.standard_normal(shape)
    A, B, F = (np.where(head, v, 0.0) for v in (A, B, F))
    return _to01(A), _to01(B), _to01(F), head


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20250611)
    tensors = {}
    for name, shape, masked in CASES:
        A, B, F, head = phantom(shape, rng)
        mask = None
        if masked:
            D, H, W = shape
            mask = np.zeros(shape, bool)
            mask[3:D - 4, 2:H - 5, 4:W - 3] = True
            mask &= head
        r = metrics_ref.all_metrics(A, B, F, mask=mask)
        m = np.ones(shape, np.float32) if mask is None else mask.astype(np.float32)
        for k, v in (("a", A), ("b", B), ("f", F), ("mask", m)):
            tensors[name + "." + k] = torch.from_numpy(np.ascontiguousarray(v))
        for k, v in r.items():
            tensors[name + "." + k] = torch.tensor([v], dtype=torch.float32)
    st.save(os.path.join(outdir, "metrics.safetensors"), tensors,
            {"source": "reference/fixtures_metrics.py"})


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else ".")
