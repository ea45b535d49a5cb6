"""Fixtures for src/train/train.c (lpm_train_step): train.safetensors.

Ten training steps of LPM-Net exactly as the authors take them: both passes (fusion and
masked reconstruction), one total loss, one backward, torch.optim.Adam with weight decay.
Computed in float64 from float32-rounded weights and inputs, stored as float32.
tests/test_train.c reads it.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lpmnet_ref as ref  # noqa: E402
import st  # noqa: E402
from fixtures_losses import TERMS, lpm_loss  # noqa: E402

D, H, W = 16, 32, 32
STEPS = 10
LR = 1e-3
ALPHA, BETA, GAMMA, REC = 0.05, 1.0, 0.5, 0.2
EPOCHS = 5


def chunked_scan(xc, delta, A, B, Cm, D, chunk=32):
    """lpmnet_ref.selective_scan's recurrence, evaluated 32 tokens at a time: inside a chunk
    h_t = exp(c_t) (h_0 + sum_{s<=t} exp(-c_s) delta_s B_s xc_s) with c_t = sum_{r<=t} delta_r A.
    The same numbers to float64 rounding (|c_t| stays far below overflow on 32 tokens), but
    an order of magnitude faster under autograd than a Python loop over every token."""
    S, L, c = xc.shape
    h = torch.zeros(S, c, A.shape[1], dtype=xc.dtype)
    ys = []
    for t0 in range(0, L, chunk):
        dl, x = delta[:, t0:t0 + chunk], xc[:, t0:t0 + chunk]
        cs = torch.cumsum(dl.unsqueeze(-1) * A, 1)                       # (S, T, c, n)
        dBx = (dl * x).unsqueeze(-1) * B[:, t0:t0 + chunk].unsqueeze(2)  # (S, T, c, n)
        hs = torch.exp(cs) * (h.unsqueeze(1) + torch.cumsum(torch.exp(-cs) * dBx, 1))
        ys.append(torch.einsum("stcn,stn->stc", hs, Cm[:, t0:t0 + chunk]))
        h = hs[:, -1]
    return torch.cat(ys, 1) + xc * D


def smooth_volume(g):
    """Smooth random volume, min-max normalised so that min is exactly 0 and max exactly 1."""
    v = torch.rand((1, 1, D + 8, H + 8, W + 8), generator=g, dtype=torch.float64)
    for _ in range(3):
        v = F.avg_pool3d(v, 3, 1, 0)
    v = v[0, 0, 1:1 + D, 1:1 + H, 1:1 + W]
    v = (v - v.min()) / (v.max() - v.min())
    return v.float().double()


def write(outdir):
    """train.safetensors, D,H,W = 16,32,32:
    w0.<name>             the 92 tensors, lpmnet_ref.init_weights(seed 3), rounded to float32
    a, b                  (D,H,W) smooth volumes in [0,1] with min 0 and max 1
    hparams               lr alpha beta gamma (the same for every step)
    m1.k, m2.k            (D,H,W) reconstruction masks of step k = 0,1,2 (8^3 blocks, keep 0.8)
    lambda.k              (1) lambda_s = exp(0.002 (k - 5)) of step k
    loss.k.<term>         (1) every term of src/train/loss.h's lpm_loss_terms at step k
    g0.<name>             d total / d weights at step 0 (before weight decay)
    w<k+1>.<name>         the weights after step k (torch.optim.Adam, betas 0.9 0.999,
                          eps 1e-8, weight_decay 3e-4)
    """
    saved = ref.selective_scan
    ref.selective_scan = chunked_scan
    try:
        _write(outdir)
    finally:
        ref.selective_scan = saved


def _write(outdir):
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    g = torch.Generator().manual_seed(2024)
    model = ref.init_weights(ref.LPMNet(), 3).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float().double())
    out = {"w0." + k: v.detach().clone() for k, v in model.state_dict().items()}
    a, b = smooth_volume(g), smooth_volume(g)
    out["a"], out["b"] = a, b
    out["hparams"] = torch.tensor([LR, ALPHA, BETA, GAMMA], dtype=torch.float64)

    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=3e-4)
    for k in range(STEPS):
        m1, m2 = ref.make_masks(D, H, W, REC, generator=g, dtype=torch.float64)
        lam = math.exp(0.002 * (k - EPOCHS))
        opt.zero_grad()
        fused, base, detail, recon = model(a, b, m1, m2)
        t = lpm_loss(a, b, fused, detail, recon, ALPHA, BETA, GAMMA, lam, 0.0)
        t["total"].backward()
        if k == 0:
            for name, p in model.named_parameters():
                out["g0." + name] = p.grad.detach().clone()
        opt.step()
        out["m1.%d" % k], out["m2.%d" % k] = m1, m2
        out["lambda.%d" % k] = torch.tensor([lam], dtype=torch.float64)
        for term in TERMS:
            out["loss.%d.%s" % (k, term)] = t[term].detach().reshape(1)
        for name, v in model.state_dict().items():
            out["w%d.%s" % (k + 1, name)] = v.detach().clone()

    os.makedirs(outdir, exist_ok=True)
    st.save(os.path.join(outdir, "train.safetensors"),
            {k: v.detach().to(torch.float32) for k, v in out.items()})


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else ".")
