"""layers.safetensors: one fixture per layer kind (see reference/FIXTURES.md).

Everything is computed in float64 from values that are exactly representable in float32,
and stored as float32. Gradients are autograd's of sum(output * grad_out)."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import lpmnet_ref as ref
import st

MAMBA_PARAMS = ("A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                "dt_proj.weight", "dt_proj.bias", "out_proj.weight")


def f32(t):
    """Round to float32, then hold in float64 (exact), so stored inputs are the inputs used."""
    return t.detach().to(torch.float32).to(torch.float64)


def randn(*shape, scale=1.0, shift=0.0):
    return f32(torch.randn(*shape, dtype=torch.float64) * scale + shift)


def prepare(module):
    """Module to float64 with every parameter rounded through float32."""
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32(p))
    return module


def grads(outputs, grad_outs, inputs):
    """autograd of sum_i sum(outputs[i] * grad_outs[i]) w.r.t. inputs (zeros where unused)."""
    loss = sum((o * g).sum() for o, g in zip(outputs, grad_outs))
    gs = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, gs)]


def perturb_mamba(m):
    """Fresh Mamba weights, with A_log and D moved off their constant initial values."""
    with torch.no_grad():
        m.A_log.add_(0.3 * torch.randn(m.A_log.shape, dtype=m.A_log.dtype))
        m.D.add_(0.5 * torch.randn(m.D.shape, dtype=m.D.dtype))
        m.conv1d.bias.add_(0.1 * torch.randn(m.conv1d.bias.shape, dtype=m.D.dtype))


def conv_in(out):
    torch.manual_seed(11)
    D, H, W = 4, 5, 6
    conv = prepare(nn.Conv3d(2, 8, 3, padding=1))
    a = f32(torch.rand(D, H, W, dtype=torch.float64))
    b = f32(torch.rand(D, H, W, dtype=torch.float64))
    y = conv(torch.stack([a, b])[None])[0]
    g = randn(*y.shape)
    gw, gb = grads([y], [g], [conv.weight, conv.bias])
    out.update({"conv_in.a": a, "conv_in.b": b, "conv_in.weight": conv.weight,
                "conv_in.bias": conv.bias, "conv_in.out": y, "conv_in.grad_out": g,
                "conv_in.grad_weight": gw, "conv_in.grad_bias": gb})


def dense(out):
    torch.manual_seed(12)
    R, Q = 16, 32
    mod = prepare(ref.Dense())
    x = randn(8, R, Q, scale=0.5, shift=0.1).requires_grad_()
    y = mod(x[None])[0]
    g = randn(*y.shape)
    params = [mod.layers[0].conv.weight, mod.layers[0].conv.bias,
              mod.layers[1].conv.weight, mod.layers[1].conv.bias]
    gx, gw0, gb0, gw1, gb1 = grads([y], [g], [x] + params)
    out.update({"dense.in": x, "dense.w0": params[0], "dense.b0": params[1],
                "dense.w1": params[2], "dense.b1": params[3], "dense.out": y,
                "dense.grad_out": g, "dense.grad_in": gx, "dense.grad_w0": gw0,
                "dense.grad_b0": gb0, "dense.grad_w1": gw1, "dense.grad_b1": gb1})


def layernorm(out):
    torch.manual_seed(13)
    ln = prepare(nn.LayerNorm(24, eps=1e-5))
    with torch.no_grad():
        ln.weight.copy_(randn(24, scale=0.2, shift=1.0))
        ln.bias.copy_(randn(24, scale=0.2))
    # rows with different means and spreads
    x = f32(torch.randn(50, 24, dtype=torch.float64) * torch.rand(50, 1, dtype=torch.float64) * 3
            + torch.randn(50, 1, dtype=torch.float64)).requires_grad_()
    y = ln(x)
    g = randn(*y.shape)
    gx, gw, gb = grads([y], [g], [x, ln.weight, ln.bias])
    out.update({"ln.in": x, "ln.weight": ln.weight, "ln.bias": ln.bias, "ln.out": y,
                "ln.grad_out": g, "ln.grad_in": gx, "ln.grad_weight": gw, "ln.grad_bias": gb})


def mamba(out):
    torch.manual_seed(14)
    m = ref.Mamba()
    perturb_mamba(m)
    m = prepare(m)
    u = randn(256, 24).requires_grad_()
    y = m(u[None])[0]
    g = randn(*y.shape)
    named = dict(m.named_parameters())
    gs = grads([y], [g], [u] + [named[k] for k in MAMBA_PARAMS])
    out.update({"mamba.u": u, "mamba.out": y, "mamba.grad_out": g, "mamba.grad_u": gs[0]})
    for k, gk in zip(MAMBA_PARAMS, gs[1:]):
        out["mamba." + k] = named[k]
        out["mamba.grad_" + k] = gk


def swin(out, shift):
    torch.manual_seed(15 + shift)
    R, Q = 32, 48
    layer = ref.SwinMambaLayer(shift)
    perturb_mamba(layer.mamba)
    with torch.no_grad():
        layer.norm.weight.add_(0.2 * torch.randn(24))
        layer.norm.bias.add_(0.2 * torch.randn(24))
    layer = prepare(layer)
    # a dense module's output: LeakyReLU features, mostly positive
    x = f32(F.leaky_relu(torch.randn(24, R, Q, dtype=torch.float64) * 0.6 + 0.2, 0.01)).requires_grad_()
    y = layer(x[None])[0]
    g = randn(*y.shape)
    names = ["norm.weight", "norm.bias"] + ["mamba." + k for k in MAMBA_PARAMS]
    named = dict(layer.named_parameters())
    gs = grads([y], [g], [x] + [named[k] for k in names])
    p = "swin%d." % shift
    out.update({p + "in": x, p + "out": y, p + "grad_out": g, p + "grad_in": gs[0]})
    for k, gk in zip(names, gs[1:]):
        out[p + k] = named[k]
        out[p + "grad_" + k] = gk


def cfc(out, nout, prefix):
    torch.manual_seed(20 + nout)
    n = 100
    head = prepare(ref.CfC(nout))
    f = randn(24, n, scale=0.5, shift=0.2).requires_grad_()
    res = [v[0, :, :, 0, 0] for v in head(f[None, :, :, None, None])]
    if nout == 2:
        res = res[:1]
    gouts = [randn(*res[0].shape) for _ in res]
    names = ["ff1.weight", "ff2.weight", "time_a.weight", "time_b.weight", "fc.weight", "fc.bias"]
    named = dict(head.named_parameters())
    gs = grads(res, gouts, [f] + [named[k] for k in names])
    out.update({prefix + "f": f, prefix + "grad_f": gs[0]})
    for k, gk in zip(names, gs[1:]):
        out[prefix + k] = named[k]
        out[prefix + "grad_" + k] = gk
    for key, v, g in zip(("out", "base", "detail"), res, gouts):
        out[prefix + key] = v
        out[prefix + "grad_" + key] = g


def max3(out):
    torch.manual_seed(23)
    n = 64
    p1, p2, p3 = (randn(24, n) for _ in range(3))
    # exact ties in every pattern, as the winner and as a loser
    col = torch.arange(n) % 8
    p2[:, col == 0] = p1[:, col == 0]
    p3[:, col == 0] = p1[:, col == 0] - 1
    p3[:, col == 1] = p1[:, col == 1]
    p2[:, col == 1] = p1[:, col == 1] - 1
    p3[:, col == 2] = p2[:, col == 2]
    p1[:, col == 2] = p2[:, col == 2] - 1
    p2[:, col == 3] = p1[:, col == 3]
    p3[:, col == 3] = p1[:, col == 3]
    p2[:, col == 4] = p1[:, col == 4]
    p3[:, col == 4] = p1[:, col == 4] + 1
    ps = [f32(p).requires_grad_() for p in (p1, p2, p3)]
    y = torch.maximum(torch.maximum(ps[0], ps[1]), ps[2])
    g = randn(*y.shape)
    gs = grads([y], [g], ps)
    out.update({"max3.p1": ps[0], "max3.p2": ps[1], "max3.p3": ps[2], "max3.out": y,
                "max3.grad_out": g, "max3.grad_p1": gs[0], "max3.grad_p2": gs[1],
                "max3.grad_p3": gs[2]})


def write(outdir):
    out = {}
    conv_in(out)
    dense(out)
    layernorm(out)
    mamba(out)
    swin(out, 0)
    swin(out, 8)
    cfc(out, 1, "cfc.")
    cfc(out, 2, "cfcm.")
    max3(out)
    path = os.path.join(outdir, "layers.safetensors")
    st.save(path, {k: v.detach().to(torch.float32) for k, v in out.items()},
            {"generator": "reference/fixtures_layers.py", "torch": torch.__version__,
             "compute_dtype": "float64"})
    return [path]
