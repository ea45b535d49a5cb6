"""model_small.safetensors, model_64x96x96.safetensors, model_bundled_32x64x64.safetensors
(when models/lpmnet-mri.safetensors exists) and, with LPM_LARGE_FIXTURES=1,
model_160x240x240.safetensors (see reference/FIXTURES.md)."""
import copy
import os

import torch
import torch.nn.functional as F

import lpmnet_ref as ref
import st


def phantom_pair(D, H, W, seed):
    """Two co-registered synthetic volumes in [0, 1] (min exactly 0, max exactly 1), float32:
    the same blobs with different contrasts, smooth noise, zero outside a head-like ellipsoid."""
    g = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1, 1, n, dtype=torch.float64) for n in (D, H, W)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    head = (z / 0.95) ** 2 + (y / 0.9) ** 2 + (x / 0.85) ** 2 <= 1
    vols = []
    blobs = [(torch.rand(3, generator=g, dtype=torch.float64) * 1.2 - 0.6,
              torch.rand(3, generator=g, dtype=torch.float64) * 0.35 + 0.1) for _ in range(8)]
    for _ in range(2):
        v = torch.zeros(D, H, W, dtype=torch.float64)
        for c, r in blobs:
            amp = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 - 0.7
            v += amp * torch.exp(-(((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2
                                   + ((x - c[2]) / r[2]) ** 2))
        noise = torch.rand(1, 1, D, H, W, generator=g, dtype=torch.float64)
        v += 0.4 * F.avg_pool3d(noise, 3, 1, 1, count_include_pad=False)[0, 0]
        v = torch.where(head, v - v[head].min() + 0.05, torch.zeros_like(v))
        vols.append((v / v.max()).to(torch.float32))
    for v in vols:
        assert v.min() == 0 and v.max() == 1
    return vols


def weights(seed=1):
    """The reference model (float32) with PyTorch's default init plus mamba_ssm's, seeded."""
    return ref.init_weights(ref.LPMNet(), seed)


def meta(dtype):
    return {"generator": "reference/fixtures_model.py", "torch": torch.__version__,
            "compute_dtype": dtype, "init": "lpmnet_ref.init_weights(seed=1)"}


def model_small(outdir):
    D, H, W = 16, 32, 48
    m32 = weights()
    out = {"w." + k: v.clone() for k, v in m32.state_dict().items()}
    m = copy.deepcopy(m32).double()
    params = dict(m.named_parameters())
    names = list(params)
    a32, b32 = phantom_pair(D, H, W, seed=5)
    a, b = a32.double(), b32.double()
    out.update({"a": a32, "b": b32})

    keep = {}
    fused, base, detail = m.fuse(a, b, keep)
    for k in ["X"] + ["P%d.%s" % (i, s) for i in (1, 2, 3) for s in ("dense", "out")] + ["M"]:
        out[k] = keep[k]
    out.update({"fused": fused, "base": base, "detail": detail})
    torch.manual_seed(6)
    gout = [torch.randn(D, H, W, dtype=torch.float32).double() for _ in range(3)]
    loss = (fused * gout[0]).sum() + (base * gout[1]).sum() + (detail * gout[2]).sum()
    gs = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
    out.update({"grad_fused": gout[0], "grad_base": gout[1], "grad_detail": gout[2]})
    for k, gk in zip(names, gs):
        out["grad." + k] = torch.zeros_like(params[k]) if gk is None else gk

    gen = torch.Generator().manual_seed(7)
    m1, m2 = ref.make_masks(D, H, W, 0.2, gen, dtype=torch.float64)
    assert 0 < m1.mean() < 1 and 0 < m2.mean() < 1
    recon = m.reconstruct(a, b, m1, m2)
    grecon = torch.randn(2, D, H, W, dtype=torch.float32).double()
    gs = torch.autograd.grad((recon * grecon).sum(), [params[k] for k in names], allow_unused=True)
    out.update({"mask1": m1, "mask2": m2, "recon": recon, "grad_recon": grecon})
    for k, gk in zip(names, gs):
        out["grad_rec." + k] = torch.zeros_like(params[k]) if gk is None else gk

    path = os.path.join(outdir, "model_small.safetensors")
    st.save(path, {k: v.detach().to(torch.float32) for k, v in out.items()}, meta("float64"))
    return path


BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models",
                       "lpmnet-mri.safetensors")


@torch.no_grad()
def model_big(outdir, D, H, W, dtype, weights_file=None, name="model"):
    """Forward only, chunked over branch images (no autograd). weights_file: a trained
    model instead of the fresh initialisation, whose output is nearly flat."""
    m32 = weights()
    if weights_file:
        m32.load_state_dict({k: v.float() for k, v in st.load(weights_file)[0].items()})
    out = {"w." + k: v.clone() for k, v in m32.state_dict().items()}
    m = m32.to(dtype)
    a, b = phantom_pair(D, H, W, seed=8)
    fused, base, detail = m(a.to(dtype), b.to(dtype))
    out.update({"a": a, "b": b, "fused": fused, "base": base, "detail": detail})
    path = os.path.join(outdir, "%s_%dx%dx%d.safetensors" % (name, D, H, W))
    st.save(path, {k: v.to(torch.float32) for k, v in out.items()},
            meta(str(dtype).replace("torch.", "")))
    return path


def write(outdir):
    paths = [model_small(outdir)]
    # float32: float64 takes minutes on two cores at this size (see reference/README.md)
    paths.append(model_big(outdir, 64, 96, 96, torch.float32))
    if os.path.exists(BUNDLED):  # the bundled trained model, in float64
        paths.append(model_big(outdir, 32, 64, 64, torch.float64, BUNDLED, "model_bundled"))
    if os.environ.get("LPM_LARGE_FIXTURES") == "1":
        paths.append(model_big(outdir, 160, 240, 240, torch.float32))
    return paths
