"""Fixtures for src/train (loss.c, adam.c): losses.safetensors.

Everything is computed in float64 with PyTorch (conv3d for the SSIM windows, autograd for
the gradients, torch.optim.Adam and CosineAnnealingLR for the optimiser) and stored as
float32. Names are listed in write()'s docstring; tests/test_losses.c reads them.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

C1 = 0.01 ** 2
C2 = 0.03 ** 2


def gauss_window(size=11, sigma=1.5, dtype=torch.float64):
    k = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-k * k / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]


def ssim3d(x, y):
    """Mean 3D SSIM of two (D, H, W) volumes, docs/lpmnet.md section 2."""
    win = gauss_window(dtype=x.dtype)

    def filt(v):
        return F.conv3d(v[None, None], win, padding=5)[0, 0]

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    s = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))
    return s.mean()


def sf(f):
    dd = f[1:, :, :] - f[:-1, :, :]
    dh = f[:, 1:, :] - f[:, :-1, :]
    dw = f[:, :, 1:] - f[:, :, :-1]
    return torch.sqrt((dd * dd).mean() + (dh * dh).mean() + (dw * dw).mean())


def edge(A, B, f):
    """lpmnet's edge-fidelity term: per axis the mean squared difference between f's forward
    difference and the stronger source's (A's where |dA| >= |dB|), summed over the axes."""
    e = 0
    for ax in range(3):
        da, db, df = (torch.diff(v, dim=ax) for v in (A, B, f))
        t = torch.where(da.abs() >= db.abs(), da, db)
        e = e + ((df - t) ** 2).mean()
    return e


def triangle9(x):
    """The 9-voxel triangle filter of lpmnet's fusion target: a 5-voxel mean applied twice
    along each axis, edges replicated."""
    k = torch.ones(5, dtype=x.dtype) / 5
    for _ in range(2):
        for ax in range(3):
            shape = [1, 1, 1]
            shape[ax] = 5
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - ax)] = pad[2 * (2 - ax) + 1] = 2
            x = F.conv3d(F.pad(x[None, None], pad, mode="replicate"), k.reshape([1, 1] + shape))[0, 0]
    return x


def target_detail_part(A, B):
    """S of lpmnet's fusion target: the brighter blurred source plus the stronger detail
    (A's where |A - a| >= |B - b|)."""
    a, b = triangle9(A), triangle9(B)
    da, db = A - a, B - b
    return torch.maximum(a, b) + torch.where(da.abs() >= db.abs(), da, db)


def mse(x, y):
    return ((x - y) ** 2).mean()


def lpm_loss(A, B, Fu, Det, R, alpha, beta, gamma, lam, edge_w):
    """Every term of docs/lpmnet.md section 2 and lpmnet's edge term, then the total written
    exactly as there."""
    t = {
        "mse_af": mse(A, Fu), "mse_bf": mse(B, Fu),
        "ssim_af": ssim3d(A, Fu), "ssim_bf": ssim3d(B, Fu),
        "ssim_adet": ssim3d(A, Det), "ssim_bdet": ssim3d(B, Det),
        "sf_f": sf(Fu), "edge_f": edge(A, B, Fu), "mse_rec": mse(R, torch.stack([A, B])),
    }
    t["total"] = (alpha * (t["mse_af"] + t["mse_bf"]) / 2
                  + beta * (1 - (t["ssim_af"] + t["ssim_bf"]) / 2)
                  + (1 - (t["ssim_adet"] + t["ssim_bdet"]) / 2)
                  - gamma * lam * t["sf_f"]
                  + edge_w * t["edge_f"]
                  + t["mse_rec"])
    return t


TERMS = ["mse_af", "mse_bf", "ssim_af", "ssim_bf", "ssim_adet", "ssim_bdet", "sf_f", "edge_f", "mse_rec",
         "total"]


def volume_pair(g, shape):
    """x in [0, 1] with planted exact 0s and 1s and a constant block; y a noisy copy."""
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x[torch.rand(shape, generator=g, dtype=torch.float64) < 0.05] = 0.0
    x[torch.rand(shape, generator=g, dtype=torch.float64) < 0.05] = 1.0
    x[: shape[0] // 3, : shape[1] // 3, : shape[2] // 3] = 0.0
    x = torch.nn.functional.avg_pool3d(x[None, None], 3, 1, 1)[0, 0] * 0.5 + x * 0.5
    y = (x + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    y[-2:, :, :] = 1e-4
    # round to float32 first so that C and PyTorch see identical inputs
    return x.float().double(), y.float().double()


def write(outdir):
    """losses.safetensors:
    ssim.{small,big}.{x,y,value,grad}  small (12,14,17), big (16,16,32); grad = d mean SSIM / dy
    sf.{small,big}.{f,value,grad}      SF of f and dSF/df
    edge.{small,big}.{a,b,f,value,grad}  edge term of f against sources a, b and dE/df
    mse.{x,y,value,grad}               (12,14,17), grad = d MSE / dy
    target.{a,b,s}                     (12,14,17): s = the S part of the fusion target of a, b
    loss.{A,B,F,Det,R}                 (16,16,32), R (2,16,16,32); loss.weights = alpha beta gamma lambda edge
    loss.step                          (s, E) giving lambda = exp(0.002 (s - E))
    loss.terms                         the 10 TERMS in order; loss.{dF,dDet,dR} = d total / d ...
    adam.p0 (n), adam.grads (5,n), adam.params (5,n) after each step, adam.lr (5) used at each step,
    adam.hparams = beta1 beta2 eps weight_decay; adam.lr follows CosineAnnealingLR(T_max 5)
    cosine.lr (2E+1)                   CosineAnnealingLR(T_max E = 7) lr at e = 0..2E; cosine.meta = base_lr, E
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    out = {}

    for name, shape in (("small", (12, 14, 17)), ("big", (16, 16, 32))):
        x, y = volume_pair(g, shape)
        y.requires_grad_(True)
        v = ssim3d(x, y)
        v.backward()
        out["ssim.%s.x" % name] = x
        out["ssim.%s.y" % name] = y.detach()
        out["ssim.%s.value" % name] = v.detach().reshape(1)
        out["ssim.%s.grad" % name] = y.grad

        f = torch.rand(shape, generator=g, dtype=torch.float64).float().double().requires_grad_(True)
        v = sf(f)
        v.backward()
        out["sf.%s.f" % name] = f.detach()
        out["sf.%s.value" % name] = v.detach().reshape(1)
        out["sf.%s.grad" % name] = f.grad

        a, b = volume_pair(g, shape)
        f, _ = volume_pair(g, shape)
        f.requires_grad_(True)
        v = edge(a, b, f)
        v.backward()
        out.update({"edge.%s.a" % name: a, "edge.%s.b" % name: b, "edge.%s.f" % name: f.detach(),
                    "edge.%s.value" % name: v.detach().reshape(1), "edge.%s.grad" % name: f.grad})

    x, y = volume_pair(g, (12, 14, 17))
    y.requires_grad_(True)
    v = mse(x, y)
    v.backward()
    out.update({"mse.x": x, "mse.y": y.detach(), "mse.value": v.detach().reshape(1), "mse.grad": y.grad})

    shape = (16, 16, 32)
    A, Fu = volume_pair(g, shape)
    B, Det = volume_pair(g, shape)
    R = torch.rand((2,) + shape, generator=g, dtype=torch.float64).float().double()
    Fu.requires_grad_(True)
    Det.requires_grad_(True)
    R.requires_grad_(True)
    s, E = 3, 7
    alpha, beta, gamma, edge_w = 0.05, 1.0, 0.5, 20.0
    lam = math.exp(0.002 * (s - E))
    t = lpm_loss(A, B, Fu, Det, R, alpha, beta, gamma, lam, edge_w)
    t["total"].backward()
    out.update({
        "loss.A": A, "loss.B": B, "loss.F": Fu.detach(), "loss.Det": Det.detach(), "loss.R": R.detach(),
        "loss.weights": torch.tensor([alpha, beta, gamma, lam, edge_w], dtype=torch.float64),
        "loss.step": torch.tensor([s, E], dtype=torch.float64),
        "loss.terms": torch.stack([t[k].detach() for k in TERMS]),
        "loss.dF": Fu.grad, "loss.dDet": Det.grad, "loss.dR": R.grad,
    })

    # Adam: PyTorch's own optimiser on float64, lr changing per step as CosineAnnealingLR gives it
    n, steps = 1000, 5
    base_lr, betas, eps, wd = 1e-2, (0.9, 0.999), 1e-8, 3e-4
    p = torch.randn(n, generator=g, dtype=torch.float64).float().double()
    p[:10] = 0.0
    p0 = p.clone()
    p.requires_grad_(True)
    opt = torch.optim.Adam([p], lr=base_lr, betas=betas, eps=eps, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    grads = torch.randn(steps, n, generator=g, dtype=torch.float64).float().double()
    grads[:, 10:20] *= 1e-6  # tiny gradients: eps and weight decay matter there
    params, lrs = [], []
    for k in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = grads[k].clone()
        opt.step()
        sched.step()
        params.append(p.detach().clone())
    out.update({
        "adam.p0": p0, "adam.grads": grads, "adam.params": torch.stack(params),
        "adam.lr": torch.tensor(lrs, dtype=torch.float64),
        "adam.hparams": torch.tensor([betas[0], betas[1], eps, wd], dtype=torch.float64),
    })

    # CosineAnnealingLR stepped once per epoch (its recursive form), base lr 1e-4, E = 7
    E = 7
    q = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([q], lr=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=E)
    lrs = []
    for _ in range(2 * E + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out["cosine.lr"] = torch.tensor(lrs, dtype=torch.float64)
    out["cosine.meta"] = torch.tensor([1e-4, E], dtype=torch.float64)

    a, b = volume_pair(g, (12, 14, 17))
    out.update({"target.a": a, "target.b": b, "target.s": target_detail_part(a, b)})

    os.makedirs(outdir, exist_ok=True)
    st.save(os.path.join(outdir, "losses.safetensors"),
            {k: v.detach().to(torch.float32) for k, v in out.items()})


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else ".")
