"""The worker of tests/test_losses.py's Barlow Twins parity test, started twice by torchrun
(gloo, CPU): `python -m torch.distributed.run --nproc_per_node 2 tests/barlow_parity_worker.py
REPO`. Each rank runs the authors' loss as their file computes it (PKU-ML/adainf
solo-learn/solo/losses/barlow.py L42-60) on its B rows, under DDP; rank 0 then runs
pipeline.pretraining.losses.barlow_twins_loss on one process over all 2B rows with groups=2, and prints
PARITY-OK when the losses and the weights' gradients agree (and differ from groups=1's).
"""
import sys
import warnings

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, sys.argv[1])
from pipeline.pretraining.losses import barlow_twins_loss

LAMBD, SCALE = 0.0051, 0.1


def authors_barlow(z1, z2, lamb, scale_loss):
    """Their barlow_loss_func, step by step: a fresh BatchNorm1d(affine=False) (training mode,
    this device's rows only), the correlation over this device's N, summed over the devices by
    an in-place all_reduce (no autograd), divided by the world size."""
    n, d = z1.size()
    bn = torch.nn.BatchNorm1d(d, affine=False)
    z1, z2 = bn(z1), bn(z2)
    corr = torch.einsum("bi, bj -> ij", z1, z2) / n
    dist.all_reduce(corr)
    corr /= dist.get_world_size()
    diag = torch.eye(d)
    cdif = (corr - diag).pow(2)
    cdif[~diag.bool()] *= lamb
    return scale_loss * cdif.sum()


# torch 2's c10d::allreduce_ has no autograd kernel: its fallback passes the gradient through
# unchanged and warns; the authors' all_reduce (torch 1's) was not recorded at all: the same
warnings.filterwarnings("ignore", message="c10d::allreduce_")
torch.manual_seed(0)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
B, IN, D = 8, 6, 5
x1, x2 = torch.randn(world * B, IN), torch.randn(world * B, IN)
model = torch.nn.Linear(IN, D)  # the same weights on every rank (same seed)
reference = torch.nn.Linear(IN, D)
reference.load_state_dict(model.state_dict())

ddp = DistributedDataParallel(model)
mine = slice(rank * B, (rank + 1) * B)
z = ddp(torch.cat([x1[mine], x2[mine]]))  # one forward per step, as DDP expects
loss = authors_barlow(z[:B], z[B:], LAMBD, SCALE)
loss.backward()  # DDP averages the ranks' gradients
theirs = [loss.detach()] + [p.grad for p in model.parameters()]
got = [None] * world
dist.all_gather_object(got, [t.tolist() for t in theirs])

if rank == 0:
    assert got[0][0] == got[1][0], "the ranks' losses differ"
    results = {}
    for groups in (2, 1):
        for p in reference.parameters():
            p.grad = None
        z = reference(torch.cat([x1, x2]))  # rank-major rows: group g = rank g's
        ours = barlow_twins_loss(z[:world * B], z[world * B:], LAMBD, SCALE, groups=groups)
        ours.backward()
        results[groups] = [ours.detach()] + [p.grad.clone() for p in reference.parameters()]
    for a, b in zip(theirs, results[2]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a, b)
    # the exact form (one standardisation over 2B, the exact gradient) is another computation
    assert not torch.allclose(theirs[1], results[1][1], rtol=1e-3), "groups=1 matched too"
    print("PARITY-OK", float(theirs[0]), float(results[1][0]))
dist.destroy_process_group()
