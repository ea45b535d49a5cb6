"""LPM-Net in plain PyTorch, written from docs/lpmnet.md section 1.

The module tree mirrors the authors' PMLNet so that state_dict() holds exactly their 92
tensor names, in the order of src/model/params.c. No mamba_ssm, no CUDA kernels: the
selective scan is a Python loop over the tokens, batched over windows. Works in float32
and float64 on the CPU. Volumes are (D, H, W) without batch or channel dimensions.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_C = 8      # Conv_in output channels
C = 24          # branch channels after the dense module (d_model = d_inner)
N_STATE = 8
D_CONV = 4
DT_RANK = 2     # ceil(24 / 16)
WIN = 16
SHIFTS = (0, 8)
NUM_PARAMS = 26051
NUM_TENSORS = 92

# Element budget for one chunk of (windows, tokens, channels, states) scan tensors.
_SCAN_ELEMS = 1 << 23


def selective_scan(xc, delta, A, B, Cm, D):
    """h_t = exp(delta_t A) h_{t-1} + delta_t B_t xc_t;  y_t = C_t . h_t + D xc_t.

    xc, delta (S, L, c); A (c, n); B, Cm (S, L, n); D (c). The state starts at 0 in every
    sequence. Returns y (S, L, c) (before the SiLU(z) gate). Under autograd the loop is
    out of place; under no_grad the states are accumulated in place."""
    S, L, c = xc.shape
    n = A.shape[1]
    step = max(1, _SCAN_ELEMS // (L * c * n))
    out = []
    for s0 in range(0, S, step):
        # time-major (L, s, ...) so that every step works on one contiguous slice
        dl, x, b, cm = (v[s0:s0 + step].transpose(0, 1).contiguous() for v in (delta, xc, B, Cm))
        dA = torch.exp(dl.unsqueeze(-1) * A)                   # (L, s, c, n)
        hs = (dl * x).unsqueeze(-1) * b.unsqueeze(2)           # delta B x, (L, s, c, n)
        if torch.is_grad_enabled():
            h = hs[0]                                          # h_0 = delta_0 B_0 x_0
            states = [h]
            for dA_t, dBx_t in zip(dA.unbind(0)[1:], hs.unbind(0)[1:]):
                h = dA_t * h + dBx_t
                states.append(h)
            hs = torch.stack(states)
        else:
            for t in range(1, L):
                hs[t].addcmul_(dA[t], hs[t - 1])
        y = (hs * cm.unsqueeze(2)).sum(-1) + x * D             # (L, s, c)
        out.append(y.transpose(0, 1))
    return torch.cat(out, 0)


class Mamba(nn.Module):
    """The Mamba block (mamba_ssm's Mamba, d_model 24, d_state 8, d_conv 4, expand 1)."""

    def __init__(self, d_model=C, d_state=N_STATE, d_conv=D_CONV, dt_rank=DT_RANK):
        super().__init__()
        self.d_inner, self.d_state, self.dt_rank = d_model, d_state, dt_rank
        # Parameters registered on the module itself come first in state_dict, as in mamba_ssm.
        self.A_log = nn.Parameter(torch.empty(d_model, d_state))
        self.D = nn.Parameter(torch.empty(d_model))
        self.in_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        self.conv1d = nn.Conv1d(d_model, d_model, d_conv, groups=d_model, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_model, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_model, bias=True)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.reset_mamba()

    @torch.no_grad()
    def reset_mamba(self, dt_min=0.001, dt_max=0.1, dt_floor=1e-4):
        """mamba_ssm's own scheme for dt_proj, A_log and D (the Linears keep PyTorch's)."""
        std = self.dt_rank ** -0.5
        self.dt_proj.weight.uniform_(-std, std)
        dt = torch.exp(torch.rand(self.d_inner, dtype=torch.float64)
                       * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_floor)
        # inverse of softplus: dt + log(1 - exp(-dt))
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, self.d_state + 1, dtype=torch.float64).repeat(self.d_inner, 1)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)

    def forward(self, u):
        """u (S, L, 24) -> (S, L, 24); S independent sequences."""
        L = u.shape[1]
        xz = self.in_proj(u)
        x, z = xz[..., :self.d_inner], xz[..., self.d_inner:]
        # causal depthwise conv, as conv1d(padding 3)[..., :L]:
        # xc[t, c] = b[c] + sum_k w[c, 0, k] x[t - 3 + k, c], x = 0 before the start
        k = self.conv1d.weight.shape[-1]
        xp = F.pad(x, (0, 0, k - 1, 0))
        xc = self.conv1d.bias + sum(xp[:, j:j + L] * self.conv1d.weight[:, 0, j] for j in range(k))
        xc = F.silu(xc)
        dbl = self.x_proj(xc)
        dt = dbl[..., :self.dt_rank]
        Bm = dbl[..., self.dt_rank:self.dt_rank + self.d_state]
        Cm = dbl[..., self.dt_rank + self.d_state:]
        # F.softplus: log1p(exp(v)) for v <= 20, v above (beta 1, threshold 20)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        y = selective_scan(xc, delta, A, Bm, Cm, self.D)
        y = y * F.silu(z)
        return self.out_proj(y)


class SwinMambaLayer(nn.Module):
    """Cyclic shift, 16x16 windows of row-major tokens, LayerNorm, Mamba, windows back,
    shift undone. Quirk kept from the authors: no residual connection."""

    def __init__(self, shift, dim=C):
        super().__init__()
        self.shift = shift
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.mamba = Mamba(dim)

    def forward(self, x):
        """x (N, 24, R, Q) -> (N, 24, R, Q)."""
        Nimg, c, R, Q = x.shape
        s = self.shift
        x = x.permute(0, 2, 3, 1)                            # (N, R, Q, c)
        if s > 0:
            # x'(r, q) = x((r + s) mod R, (q + s) mod Q)
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        w = x.reshape(Nimg, R // WIN, WIN, Q // WIN, WIN, c).permute(0, 1, 3, 2, 4, 5)
        w = w.reshape(-1, WIN * WIN, c)                      # token t = 16 i + j
        w = self.mamba(self.norm(w))
        x = w.reshape(Nimg, R // WIN, Q // WIN, WIN, WIN, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(Nimg, R, Q, c)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x.permute(0, 3, 1, 2)


class SwinMamba(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([SwinMambaLayer(s) for s in SHIFTS])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class DenseLayer(nn.Module):
    def __init__(self, cin, cout=BASE_C):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=True)

    def forward(self, x):
        return F.leaky_relu(self.conv(x), 0.01)


class Dense(nn.Module):
    """Two Conv2d 3x3 + LeakyReLU layers; new features first: [y1, y0, in]."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(BASE_C * (i + 1)) for i in range(2)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([layer(x), x], 1)
        return x


class CfC(nn.Module):
    """Closed-form continuous-time head as per-voxel 1x1x1 convolutions."""

    def __init__(self, nout, dim=C):
        super().__init__()
        self.ff1 = nn.Conv3d(dim, dim, 1, bias=False)
        self.ff2 = nn.Conv3d(dim, dim, 1, bias=False)
        self.time_a = nn.Conv3d(dim, dim, 1, bias=False)
        self.time_b = nn.Conv3d(dim, dim, 1, bias=False)
        self.fc = nn.Conv3d(dim, nout, 1, bias=True)

    def forward(self, f):
        """f (B, 24, D, H, W) -> (out, base, detail), each (B, nout, D, H, W) after tanh/2 + 0.5."""
        a1, a2 = self.ff1(f), self.ff2(f)
        g = torch.sigmoid(self.time_a(f) + self.time_b(f))
        m = a1 * (1 - g) + g * a2
        return tuple(torch.tanh(self.fc(v)) / 2 + 0.5 for v in (m, a1, a2))


# Branch k sees X (8, D, H, W) as images (N, 8, rows, cols): the permutation of X's axes
# that puts the image index first, and its inverse.
_TO_IMAGES = {1: (1, 0, 2, 3), 2: (2, 0, 1, 3), 3: (3, 0, 1, 2)}
_FROM_IMAGES = {1: (1, 0, 2, 3), 2: (1, 2, 0, 3), 3: (1, 2, 3, 0)}


class LPMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv_in = nn.Conv3d(2, BASE_C, 3, padding=1, bias=True)
        self.Conv_P1, self.Conv_P2, self.Conv_P3 = Dense(), Dense(), Dense()
        self.Mamba_P1, self.Mamba_P2, self.Mamba_P3 = SwinMamba(), SwinMamba(), SwinMamba()
        self.cfc = CfC(1)
        self.cfc_mask = CfC(2)

    def conv_in(self, a, b):
        """a, b (D, H, W) -> X (8, D, H, W); input channels [A, B]."""
        return self.Conv_in(torch.stack([a, b])[None])[0]

    def branch(self, k, X, keep=None):
        """Branch k on X (8, D, H, W) -> (24, D, H, W). keep: dict that receives the dense
        output as 'P<k>.dense' (for fixtures)."""
        imgs = X.permute(*_TO_IMAGES[k])
        dense = getattr(self, "Conv_P%d" % k)(imgs)
        out = getattr(self, "Mamba_P%d" % k)(dense)
        if keep is not None:
            keep["P%d.dense" % k] = dense.permute(*_FROM_IMAGES[k])
        return out.permute(*_FROM_IMAGES[k])

    def features(self, a, b, keep=None):
        """Conv_in, three branches, max fusion -> M (24, D, H, W)."""
        D, H, W = a.shape
        if D % WIN or H % WIN or W % WIN:
            raise ValueError("lpmnet_ref: D, H, W must be multiples of 16, got %r" % ((D, H, W),))
        X = self.conv_in(a, b)
        if keep is not None:
            keep["X"] = X
        if not torch.is_grad_enabled() and keep is None:
            return self._features_chunked(X)
        P = [self.branch(k, X, keep) for k in (1, 2, 3)]
        M = torch.maximum(torch.maximum(P[0], P[1]), P[2])
        if keep is not None:
            for k in (1, 2, 3):
                keep["P%d.out" % k] = P[k - 1]
            keep["M"] = M
        return M

    @torch.no_grad()
    def _features_chunked(self, X, voxels_per_chunk=1 << 18):
        """The same max fusion, a few branch images at a time (max is exact, so a running
        maximum from -inf gives the same values)."""
        M = torch.full((C,) + tuple(X.shape[1:]), -math.inf, dtype=X.dtype)
        for k in (1, 2, 3):
            imgs = X.permute(*_TO_IMAGES[k])
            Mk = M.permute(*_TO_IMAGES[k])
            n = max(1, voxels_per_chunk // (imgs.shape[2] * imgs.shape[3]))
            for i0 in range(0, imgs.shape[0], n):
                part = getattr(self, "Conv_P%d" % k)(imgs[i0:i0 + n].contiguous())
                part = getattr(self, "Mamba_P%d" % k)(part)
                dst = Mk[i0:i0 + n]
                dst.copy_(torch.maximum(dst, part))
        return M

    def forward(self, a, b, mask1=None, mask2=None):
        """Fusion: (fused, base, detail), each (D, H, W). With masks (D, H, W) also the
        reconstruction pass: recon (2, D, H, W) as a fourth result."""
        f = self.features(a, b)
        fused, base, detail = (v[0, 0] for v in self.cfc(f[None]))
        if mask1 is None:
            return fused, base, detail
        return fused, base, detail, self.reconstruct(a, b, mask1, mask2)

    def fuse(self, a, b, keep=None):
        f = self.features(a, b, keep)
        return tuple(v[0, 0] for v in self.cfc(f[None]))

    def reconstruct(self, a, b, mask1, mask2):
        """The masked pass through the same trunk and the cfc_mask head -> (2, D, H, W)."""
        f = self.features(a * mask1, b * mask2)
        return self.cfc_mask(f[None])[0][0]


def make_masks(D, H, W, rec=0.2, generator=None, dtype=torch.float32):
    """Masks for A then B: on the (D/8, H/8, W/8) grid keep a block where uniform > rec,
    blocks in C order, each block 8x8x8 voxels."""
    out = []
    for _ in range(2):
        g = (torch.rand(D // 8, H // 8, W // 8, generator=generator, dtype=torch.float64) > rec).to(dtype)
        out.append(g.repeat_interleave(8, 0).repeat_interleave(8, 1).repeat_interleave(8, 2))
    return out[0], out[1]


@torch.no_grad()
def init_weights(model, seed):
    """PyTorch's default initialisation of every layer, then mamba_ssm's scheme, seeded."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.LayerNorm)):
            m.reset_parameters()
    # after the Linears, so dt_proj keeps mamba_ssm's values
    for m in model.modules():
        if isinstance(m, Mamba):
            m.reset_mamba()
    return model


def param_table():
    """[(name, shape)] of the 92 tensors in state_dict order."""
    return [(k, tuple(v.shape)) for k, v in LPMNet().state_dict().items()]
