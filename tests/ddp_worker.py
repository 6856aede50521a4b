"""The worker of tests/test_resume_ddp.py's DDP test, started twice by torchrun (gloo, CPU):
`python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py REPO`. Rank 0 prints
DDP-OK when both ranks agree on the weights and saw disjoint images.
"""
import sys

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[1])
from pipeline.pretraining.augment import view_params
from pipeline.pretraining.distributed import init_distributed
from pipeline.pretraining.loop import PretrainConfig, pretrain
import pipeline.pretraining.loop as training
torch.set_num_threads(1)
ctx = init_distributed(torch.device("cpu"))
from pipeline.pretraining.distributed import gather
z = torch.full((2, 3), float(ctx.rank), requires_grad=True)
g = gather(z)
assert g.shape == (4, 3) and (g[:2] == 0).all() and (g[2:] == 1).all(), g
g.sum().backward()  # every rank's identical loss sends its gradient back to each part
assert (z.grad == 2).all(), z.grad
seen = []
orig = training.InflatedIndex.next_batch
def spy(self, n):
    rows = orig(self, n)
    seen.append(rows[ctx.rank * 4:(ctx.rank + 1) * 4].tolist())
    return rows
training.InflatedIndex.next_batch = spy
real = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
cfg = PretrainConfig(widths=[8, 16], blocks=[1, 1], steps=3, batch_size=4, optimizer="sgd",
                     lr=0.1, hparams={"proj_hidden": 16, "proj_dim": 8}, seed=1, log_every=1,
                     method="simclr", warmup_steps=10, dup=1, precision="fp32")
enc, hist = pretrain(cfg, view_params("standard"), real, None, ctx)
flat = torch.cat([p.detach().flatten() for p in enc.parameters()])
# the methods that gather across ranks (keys, correlation) also train in lockstep
for method, extra in (("barlow", {}), ("mocov2plus", {"queue_size": 16})):
    cfg.method, cfg.hparams = method, {"proj_hidden": 16, "proj_dim": 8, **extra}
    e, h = pretrain(cfg, view_params("standard"), real, None, ctx)
    flat = torch.cat([flat] + [p.detach().flatten() for p in e.parameters()])
    assert all(np.isfinite([x["loss"] for x in h]))
# the online probe: gradients averaged across ranks, test set split between them and reduced
from pipeline.pretraining.online_probe import OnlineProbe
from pipeline.evaluation.linear import accuracy, extract_features
cfg.method, cfg.hparams, cfg.steps = "simclr", {"proj_hidden": 16, "proj_dim": 8}, 4
test = np.random.default_rng(1).integers(0, 256, (11, 8, 8, 3), dtype=np.uint8)
probe = OnlineProbe(np.arange(16) % 4, test, np.arange(11) % 4, every=2, lr=2.0)
e, _ = pretrain(cfg, view_params("standard"), real, None, ctx, probe=probe)
assert [p["step"] for p in probe.curve] == [2, 4]
pw = torch.cat([p.detach().flatten() for p in probe.linear.parameters()])
assert pw.abs().sum() > 0
full = accuracy(probe.linear, extract_features(e, test), torch.from_numpy(np.arange(11) % 4))
assert np.allclose(full, [probe.curve[-1]["top1"], probe.curve[-1]["top5"]]), (full, probe.curve)
flat = torch.cat([flat, pw])
out = [None, None]
dist.all_gather_object(out, (flat.tolist(), seen, [h["loss"] for h in hist]))
if ctx.rank == 0:
    (w0, s0, l0), (w1, s1, l1) = out
    assert np.allclose(w0, w1), "ranks disagree on the weights"
    # each step's global batch is split between the ranks: disjoint images
    assert all(not set(a) & set(b) for a, b in zip(s0, s1)), "ranks saw the same images"
    assert len(l0) == 3 and all(np.isfinite(l0))
    print("DDP-OK", len(w0))
dist.destroy_process_group()
