#!/usr/bin/env python3
"""Checks of the PyTorch reference (reference/lpmnet_ref.py), its safetensors helper and
tools/pth2safetensors.py. Every layer is compared with a second, independent
implementation written from docs/lpmnet.md. Last line: "N passed, N failed"."""
import math
import os
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "reference"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lpmnet_ref as ref  # noqa: E402
import st  # noqa: E402

torch.set_num_threads(2)
torch.set_default_dtype(torch.float64)
results = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print("FAIL: %s" % what, file=sys.stderr)


def check_close(what, got, want, tol):
    err = (got - want).abs().max().item()
    ok = err <= tol * (1 + want.abs().max().item())
    check(ok, "%s: max|diff| %.3g > tol %.3g" % (what, err, tol))
    if ok:
        print("  ok   %-44s max|diff| %.3g" % (what, err))


def perturbed_model(seed):
    """float64 model with fresh weights, Mamba constants moved off their initial values."""
    m = ref.init_weights(ref.LPMNet(), seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, ref.Mamba):
                mod.A_log.add_(0.3 * torch.randn(mod.A_log.shape, generator=g))
                mod.D.add_(0.5 * torch.randn(mod.D.shape, generator=g))
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.add_(0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.add_(0.2 * torch.randn(mod.bias.shape, generator=g))
    return m


# ----------------------------------------------------------------- names and shapes
def expected_table():
    """The 92 (name, shape) pairs written out from docs/lpmnet.md section 1."""
    t = [("Conv_in.weight", (8, 2, 3, 3, 3)), ("Conv_in.bias", (8,))]
    for k in (1, 2, 3):
        for i in (0, 1):
            t += [("Conv_P%d.layers.%d.conv.weight" % (k, i), (8, 8 * (i + 1), 3, 3)),
                  ("Conv_P%d.layers.%d.conv.bias" % (k, i), (8,))]
    mamba = [("norm.weight", (24,)), ("norm.bias", (24,)), ("mamba.A_log", (24, 8)),
             ("mamba.D", (24,)), ("mamba.in_proj.weight", (48, 24)),
             ("mamba.conv1d.weight", (24, 1, 4)), ("mamba.conv1d.bias", (24,)),
             ("mamba.x_proj.weight", (18, 24)), ("mamba.dt_proj.weight", (24, 2)),
             ("mamba.dt_proj.bias", (24,)), ("mamba.out_proj.weight", (24, 24))]
    for k in (1, 2, 3):
        for i in (0, 1):
            t += [("Mamba_P%d.layers.%d.%s" % (k, i, n), s) for n, s in mamba]
    for head, nout in (("cfc", 1), ("cfc_mask", 2)):
        t += [("%s.%s.weight" % (head, n), (24, 24, 1, 1, 1)) for n in ("ff1", "ff2", "time_a", "time_b")]
        t += [("%s.fc.weight" % head, (nout, 24, 1, 1, 1)), ("%s.fc.bias" % head, (nout,))]
    return t


def test_names():
    m = ref.LPMNet()
    sd = m.state_dict()
    check(len(sd) == 92, "92 tensors, got %d" % len(sd))
    n = sum(p.numel() for p in m.parameters())
    check(n == 26051, "26,051 parameters, got %d" % n)
    got = [(k, tuple(v.shape)) for k, v in sd.items()]
    want = expected_table()
    check(got == want, "state_dict names/shapes/order differ from docs/lpmnet.md: %s"
          % [x for x in zip(got, want) if x[0] != x[1]][:3])


def test_init():
    m = ref.init_weights(ref.LPMNet().float(), 3)
    m2 = ref.init_weights(ref.LPMNet().float(), 3)
    check(all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values())),
          "init_weights is deterministic")
    mb = m.Mamba_P2.layers[1].mamba
    check(torch.allclose(mb.A_log, torch.log(torch.arange(1, 9.0)).float().expand(24, 8)),
          "A_log[c, n] = log(n + 1)")
    check(torch.all(mb.D == 1), "D = 1")
    check(mb.dt_proj.weight.abs().max() <= 2 ** -0.5, "dt_proj.weight within +-dt_rank^-0.5")
    dt = F.softplus(mb.dt_proj.bias.double())
    check(dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001, "softplus(dt_proj.bias) in [1e-3, 0.1]")
    check(mb.dt_proj.bias.std() > 0, "dt_proj.bias is random")
    w = m.Conv_P1.layers[1].conv.weight
    check(w.abs().max() <= 1 / math.sqrt(16 * 9) + 1e-7, "Conv2d default init bound")
    check(torch.all(m.Mamba_P1.layers[0].norm.weight == 1), "LayerNorm weight 1")


# ----------------------------------------------------------------- naive Mamba
def naive_mamba(u, p):
    """The Mamba block of docs/lpmnet.md, one scalar at a time in Python floats.
    u: list of L lists of 24 floats; p: dict of nested lists."""
    L, dm = len(u), 24
    silu = lambda v: v / (1 + math.exp(-v))  # noqa: E731
    softplus = lambda v: v if v > 20 else math.log1p(math.exp(v))  # noqa: E731
    xs, zs = [], []
    for t in range(L):
        xz = [sum(p["in_proj.weight"][r][j] * u[t][j] for j in range(dm)) for r in range(2 * dm)]
        xs.append(xz[:dm])
        zs.append(xz[dm:])
    xc = [[0.0] * dm for _ in range(L)]
    for c in range(dm):
        for t in range(L):
            v = p["conv1d.bias"][c]
            for k in range(4):
                if t - 3 + k >= 0:
                    v += p["conv1d.weight"][c][0][k] * xs[t - 3 + k][c]
            xc[t][c] = silu(v)
    out = []
    h = [[0.0] * 8 for _ in range(dm)]
    for t in range(L):
        dbl = [sum(p["x_proj.weight"][r][j] * xc[t][j] for j in range(dm)) for r in range(18)]
        dt, Bt, Ct = dbl[:2], dbl[2:10], dbl[10:18]
        y = [0.0] * dm
        for c in range(dm):
            delta = softplus(sum(p["dt_proj.weight"][c][r] * dt[r] for r in range(2)) + p["dt_proj.bias"][c])
            for n in range(8):
                A = -math.exp(p["A_log"][c][n])
                h[c][n] = math.exp(delta * A) * h[c][n] + delta * Bt[n] * xc[t][c]
            y[c] = sum(Ct[n] * h[c][n] for n in range(8)) + p["D"][c] * xc[t][c]
            y[c] *= silu(zs[t][c])
        out.append([sum(p["out_proj.weight"][r][c] * y[c] for c in range(dm)) for r in range(dm)])
    return out


def test_mamba_naive():
    m = perturbed_model(4).Mamba_P1.layers[0].mamba
    with torch.no_grad():
        m.dt_proj.bias[:3] = torch.tensor([25.0, 19.0, -3.0])  # both softplus branches
    p = {k: v.tolist() for k, v in m.named_parameters()}
    g = torch.Generator().manual_seed(4)
    S, L = 3, 11
    u = torch.randn(S, L, 24, generator=g)
    want = torch.tensor([naive_mamba(u[s].tolist(), p) for s in range(S)])
    got = m(u)
    check_close("Mamba (autograd scan) vs naive", got, want, 1e-12)
    with torch.no_grad():
        got = m(u)
    check_close("Mamba (in-place no_grad scan) vs naive", got, want, 1e-12)
    # windows of a batch must not share state: each sequence alone gives the same
    check_close("Mamba state reset per sequence", m(u[1:2])[0], want[1], 1e-12)
    # chunked scan gives the same as one chunk
    old = ref._SCAN_ELEMS
    ref._SCAN_ELEMS = L * 24 * 8
    try:
        check_close("Mamba scan in chunks of one sequence", m(u), want, 1e-12)
    finally:
        ref._SCAN_ELEMS = old


def test_scan_float32():
    m = perturbed_model(5).Mamba_P3.layers[1].mamba
    u = torch.randn(4, 256, 24, generator=torch.Generator().manual_seed(5))
    want = m(u)
    got = m.float()(u.float()).double()
    check_close("Mamba float32 vs float64 (L = 256)", got, want, 1e-4)


# ----------------------------------------------------------------- Swin layer
def test_swin_index():
    """Token t = 16 i + j of window (wr, wq) is pixel ((16 wr + i + s) mod R, (16 wq + j + s) mod Q)."""
    m = perturbed_model(6)
    g = torch.Generator().manual_seed(6)
    R, Q = 32, 48
    x = torch.randn(2, 24, R, Q, generator=g)
    for i, s in enumerate((0, 8)):
        layer = m.Mamba_P2.layers[i]
        check(layer.shift == s, "layer %d has shift %d" % (i, s))
        seqs, where = [], []
        for n in range(2):
            for wr in range(R // 16):
                for wq in range(Q // 16):
                    pix = [((16 * wr + t // 16 + s) % R, (16 * wq + t % 16 + s) % Q) for t in range(256)]
                    rows = torch.tensor([p[0] for p in pix])
                    cols = torch.tensor([p[1] for p in pix])
                    seqs.append(x[n][:, rows, cols].T)
                    where.append((n, rows, cols))
        y = layer.mamba(layer.norm(torch.stack(seqs)))
        want = torch.zeros_like(x)
        for k, (n, rows, cols) in enumerate(where):
            want[n][:, rows, cols] = y[k].T
        check_close("Swin-Mamba shift %d vs explicit token map" % s, layer(x), want, 1e-13)


# ----------------------------------------------------------------- dense, CfC, branches
def test_dense():
    m = perturbed_model(7)
    d = m.Conv_P3
    x = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(7))
    lr = lambda v: torch.where(v > 0, v, 0.01 * v)  # noqa: E731
    y0 = lr(F.conv2d(x, d.layers[0].conv.weight, d.layers[0].conv.bias, padding=1))
    y1 = lr(F.conv2d(torch.cat([y0, x], 1), d.layers[1].conv.weight, d.layers[1].conv.bias, padding=1))
    check_close("dense = [y1, y0, in]", d(x), torch.cat([y1, y0, x], 1), 1e-14)


def test_cfc():
    m = perturbed_model(8)
    g = torch.Generator().manual_seed(8)
    f = torch.randn(1, 24, 3, 4, 5, generator=g)
    for head, nout in ((m.cfc, 1), (m.cfc_mask, 2)):
        fv = f[0].reshape(24, -1)
        W = {k: getattr(head, k).weight.reshape(getattr(head, k).weight.shape[0], 24)
             for k in ("ff1", "ff2", "time_a", "time_b", "fc")}
        a1, a2 = W["ff1"] @ fv, W["ff2"] @ fv
        gt = torch.sigmoid(W["time_a"] @ fv + W["time_b"] @ fv)
        mm = a1 * (1 - gt) + gt * a2
        outs = [torch.tanh(W["fc"] @ v + head.fc.bias[:, None]) / 2 + 0.5 for v in (mm, a1, a2)]
        got = head(f)
        for name, gv, wv in zip(("out", "base", "detail"), got, outs):
            check_close("CfC nout %d %s" % (nout, name), gv[0].reshape(nout, -1), wv, 1e-14)


def test_branches_and_fusion():
    """Each branch image by explicit slicing, max fusion, head, and chunked no_grad forward."""
    m = perturbed_model(9)
    g = torch.Generator().manual_seed(9)
    D, H, W = 16, 16, 32
    a, b = torch.rand(D, H, W, generator=g), torch.rand(D, H, W, generator=g)
    X = F.conv3d(torch.stack([a, b])[None], m.Conv_in.weight, m.Conv_in.bias, padding=1)[0]
    P = []
    for k, dims in ((1, (1, 2)), (2, (0, 2)), (3, (0, 1))):
        out = torch.zeros(24, D, H, W)
        dense, mamba = getattr(m, "Conv_P%d" % k), getattr(m, "Mamba_P%d" % k)
        for i in range(X.shape[k]):
            idx = [slice(None)] * 4
            idx[k] = i
            img = X[tuple(idx)]                      # (8, rows, cols) with rows/cols = dims
            out[tuple(idx)] = mamba(dense(img[None]))[0]
        P.append(out)
    M = torch.max(torch.stack(P), 0).values
    keep = {}
    fused, base, detail = m.fuse(a, b, keep)
    check_close("Conv_in", keep["X"], X, 1e-14)
    for k in (1, 2, 3):
        check_close("branch P%d by explicit slicing" % k, keep["P%d.out" % k], P[k - 1], 1e-13)
    check_close("max fusion", keep["M"], M, 1e-13)
    want = [v[0, 0] for v in m.cfc(M[None])]
    check_close("fused from M", fused, want[0], 1e-14)
    with torch.no_grad():
        got = m(a, b)
        # chunks of 3 images of 16x16 (P1, P2) or 1 of 16x32 (P3), with remainders
        Mc = m._features_chunked(X, voxels_per_chunk=3 * 16 * 16 + 5)
    for name, gv, wv in zip(("fused", "base", "detail"), got, (fused, base, detail)):
        check_close("chunked no_grad forward %s" % name, gv, wv, 1e-14)
    check_close("max fusion over small chunks", Mc, M, 1e-13)


def test_masks_and_recon():
    m = perturbed_model(10)
    g = torch.Generator().manual_seed(10)
    D, H, W = 16, 16, 16
    m1, m2 = ref.make_masks(D, H, W, 0.2, g, dtype=torch.float64)
    ok = True
    for mk in (m1, m2):
        blocks = mk.reshape(2, 8, 2, 8, 2, 8).permute(0, 2, 4, 1, 3, 5).reshape(8, 512)
        ok &= bool(torch.all(blocks.min(1).values == blocks.max(1).values))
        ok &= set(mk.unique().tolist()) <= {0.0, 1.0}
    check(ok, "masks are 0/1 and constant on 8x8x8 blocks")
    check(not torch.equal(m1, m2), "the two masks differ")
    a, b = torch.rand(D, H, W, generator=g), torch.rand(D, H, W, generator=g)
    fused, base, detail, rec = m(a, b, m1, m2)
    want = [v[0] for v in m.cfc_mask(m.features(a * m1, b * m2)[None])][0]
    check(rec.shape == (2, D, H, W), "recon shape (2, D, H, W)")
    check_close("reconstruction pass", rec, want, 1e-14)


# ----------------------------------------------------------------- safetensors
def test_st(tmp):
    g = torch.Generator().manual_seed(11)
    ts = {"a": torch.randn(3, 4, generator=g).float(), "b.c": torch.randn(5, generator=g),
          "i": torch.arange(7, dtype=torch.int64), "u": torch.tensor([1, 2, 255], dtype=torch.uint8),
          "s": torch.tensor(2.5, dtype=torch.float32), "e": torch.zeros(0, 3, dtype=torch.float32),
          "h": torch.randn(2, 2, generator=g).half()}
    path = os.path.join(tmp, "x.safetensors")
    st.save(path, ts, {"k": "v", "n": 3})
    got, meta = st.load(path)
    check(list(got) == list(ts), "st: names and order kept")
    check(all(got[k].dtype == v.dtype and got[k].shape == v.shape and torch.equal(got[k], v)
              for k, v in ts.items()), "st: values, dtypes and shapes round-trip")
    check(meta == {"k": "v", "n": "3"}, "st: metadata round-trips as strings")
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    check((8 + n) % 8 == 0 and raw[8:9] == b"{", "st: header JSON 8-byte aligned")
    import json
    hdr = json.loads(raw[8:8 + n])
    off = hdr["a"]["data_offsets"]
    a = torch.frombuffer(bytearray(raw[8 + n + off[0]:8 + n + off[1]]), dtype=torch.float32)
    check(hdr["a"]["dtype"] == "F32" and torch.equal(a.reshape(3, 4), ts["a"]), "st: raw F32 layout")
    bad = raw[:8 + n] + raw[8 + n:-4]
    try:
        st.from_bytes(bad)
        check(False, "st: truncated file rejected")
    except ValueError:
        check(True, "")
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "st: no temporary file left")


# ----------------------------------------------------------------- converter
def run_conv(*args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pth2safetensors.py")] + list(args),
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def test_converter(tmp):
    m = ref.init_weights(ref.LPMNet().float(), 12)
    sd = m.state_dict()
    out = os.path.join(tmp, "w.safetensors")
    rc, msg = run_conv("--help")
    check(rc == 0 and "usage" in msg, "converter --help")
    cases = {"plain": sd, "module": {"module." + k: v for k, v in sd.items()},
             "wrapped": {"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
             "state_dict": {"state_dict": dict(sd), "optimizer": {}},
             "float64": {k: v.double() for k, v in sd.items()}}
    for name, obj in cases.items():
        pth = os.path.join(tmp, name + ".pth")
        torch.save(obj, pth)
        if os.path.exists(out):
            os.unlink(out)
        rc, msg = run_conv(pth, out)
        check(rc == 0, "converter accepts %s: %s" % (name, msg))
        if rc == 0:
            got, _ = st.load(out)
            check(list(got) == list(sd) and all(got[k].dtype == torch.float32 and torch.equal(got[k], sd[k])
                                                 for k in sd), "converter round-trips %s" % name)
    bad = dict(sd)
    del bad["Mamba_P2.layers.1.mamba.D"]
    bad["Conv_P1.layers.0.conv.weight"] = torch.zeros(8, 9, 3, 3)
    bad["extra.weight"] = torch.zeros(1)
    pth = os.path.join(tmp, "bad.pth")
    torch.save(bad, pth)
    os.unlink(out)
    rc, msg = run_conv(pth, out)
    check(rc == 1, "converter rejects a bad checkpoint (rc %d)" % rc)
    for needle in ("Mamba_P2.layers.1.mamba.D", "Conv_P1.layers.0.conv.weight", "extra.weight"):
        check(needle in msg, "converter names %s" % needle)
    check(not os.path.exists(out), "converter writes nothing on error")


def test_bench_reference():
    """bench/torch_step.py, the benchmarks' PyTorch training step, still runs against the
    reference (it broke silently once when the loss gained a term): one step at 16^3."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "torch_step.py"), ROOT, "1",
                        "16"], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    ok = r.returncode == 0 and "PyTorch training step 16^3" in r.stdout
    check(ok, "bench/torch_step.py at 16^3: rc %d, %s" % (r.returncode, (r.stdout + r.stderr)[-400:]))
    if ok:
        print("  ok   bench/torch_step.py at 16^3")


def main():
    tests = [test_names, test_init, test_mamba_naive, test_scan_float32, test_swin_index,
             test_dense, test_cfc, test_branches_and_fusion, test_masks_and_recon,
             test_bench_reference]
    with tempfile.TemporaryDirectory(prefix="lpm_ref_") as tmp:
        for t in tests + [lambda: test_st(tmp), lambda: test_converter(tmp)]:
            try:
                t()
            except Exception:
                traceback.print_exc()
                check(False, "exception in %s" % getattr(t, "__name__", "test"))
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
