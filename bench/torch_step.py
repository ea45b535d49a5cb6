"""One PyTorch training step of the reference (reference/lpmnet_ref.py) at an N^3 crop:
fusion + reconstruction passes, the loss of fixtures_losses.lpm_loss, backward, Adam.
Median of 3 after a warm-up. Usage: torch_step.py REPO_ROOT THREADS [N (default 32)]
(Autograd keeps every token step of the reference's Python-loop scan: at 64^3 it needs
more than the 24 GB of the build machine, so the default is 32^3.)"""
import math
import sys
import time

import torch

sys.path.insert(0, sys.argv[1] + "/reference")
import lpmnet_ref as ref  # noqa: E402
from fixtures_losses import lpm_loss  # noqa: E402

torch.set_num_threads(int(sys.argv[2]))
n = int(sys.argv[3]) if len(sys.argv) > 3 else 32
model = ref.init_weights(ref.LPMNet(), 1)
opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=3e-4)
a, b = torch.rand(n, n, n), torch.rand(n, n, n)
times = []
for k in range(4):
    m1, m2 = ref.make_masks(n, n, n, 0.2)
    t0, c0 = time.time(), time.process_time()
    opt.zero_grad()
    fused, base, detail, recon = model(a, b, m1, m2)
    t = lpm_loss(a, b, fused, detail, recon, 0.05, 1.0, 0.5, math.exp(-0.002 * 100), 0.0)
    t["total"].backward()
    opt.step()
    if k > 0:
        times.append((time.time() - t0, time.process_time() - c0))
wall, cpu = sorted(t[0] for t in times)[1], sorted(t[1] for t in times)[1]
print("PyTorch training step %d^3 (%s threads): median wall %.2f s, cpu %.2f s" % (n, sys.argv[2], wall, cpu))
