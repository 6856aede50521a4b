"""Self-supervised losses: SimCLR's NT-Xent, MoCo's InfoNCE with a queue, BYOL's normalised MSE
and Barlow Twins' redundancy reduction.

Written here rather than taken from lightly: lightly's install pulls in pytorch-lightning and
hydra for what is a few lines of tensor code. The formulas follow solo-learn (the code base of the
AdaInf authors). The losses themselves never communicate: under DDP the methods
(pipeline.pretraining.methods) give SimCLR's and Barlow Twins' losses the global batch, all-gathered
with gradients by pipeline.pretraining.distributed.gather, and enqueue MoCo's gathered keys; BYOL's loss
stays per rank. Every loss runs in float32 (`fp32`), also under autocast.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def fp32(loss):
    """Run a loss in float32 whatever the autocast context: floating-point tensor arguments are
    cast up and autocast is off inside. Under bf16 autocast the logits and the Barlow
    cross-correlation would otherwise be bf16 (8 bits of mantissa, coarser than the authors' fp16
    mixed precision); in fp32 they are finer than both, a deliberate difference. Float64 stays."""

    @functools.wraps(loss)
    def wrapper(*args, **kwargs):
        up = [a.to(torch.promote_types(a.dtype, torch.float32))  # float64 stays float64
              if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
        device = next((a.device.type for a in up if torch.is_tensor(a)), "cpu")
        with torch.autocast(device, enabled=False):
            return loss(*up, **kwargs)

    return wrapper



@fp32
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: each view's positive is its other view; the 2N-2 others are negatives."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


@fp32
def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: query i's positive is key i, its negatives are the K queued keys.

    q, k: N×D; queue: K×D (one key per row). All three are L2-normalised here. The logits are
    [q_i·k_i, q_i·queue_1, ..., q_i·queue_K] / temperature and the loss is the cross-entropy with
    the positive at index 0, averaged over the N queries (solo-learn's moco_loss_func). Keys get
    gradient if they carry it: the caller passes momentum-encoder keys computed without grad.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    queue = F.normalize(queue, dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    targets = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets)


@fp32
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's loss: 2 − 2·cos(p_i, z_i), averaged over the batch (= mean squared distance of the
    L2-normalised vectors). z is the target projection: the caller detaches it / computes it
    without grad."""
    return 2 - 2 * F.cosine_similarity(p, z, dim=-1).mean()


@fp32
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, scale: float,
                      eps: float = 1e-5, groups: int = 1) -> torch.Tensor:
    """Barlow Twins' loss as solo-learn's barlow_loss_func (with scale_loss).

    Each view is standardised per dimension over the batch, exactly as
    BatchNorm1d(affine=False) in training mode does: (z − mean) / sqrt(biased var + eps). The
    cross-correlation is c = z1ᵀz2 / N (D×D); the loss is
    scale · (Σ_i (1 − c_ii)² + λ · Σ_{i≠j} c_ij²).

    `groups` > 1 is the authors' computation on that many devices (PKU-ML/adainf
    solo-learn/solo/losses/barlow.py L45-54): the batch is cut into `groups` equal consecutive
    sub-batches (a device's share each), each standardised over itself, and c is the mean of
    their matrices. Their average is a `dist.all_reduce` that autograd does not see, so each
    device differentiates only its own matrix's 1/groups share, and DDP then averages the
    devices' gradients: the gradient they train with is 1/groups of this loss's. So is this one
    (its value is the loss's). groups = 1: one standardisation over the whole batch and the
    loss's exact gradient.
    """
    n, d = z1.shape
    if groups < 1 or n % groups:
        raise ValueError(f"Barlow Twins: a batch of {n} does not split into {groups} equal "
                         "sub-batches")

    def standardise(z):  # over each sub-batch: groups × n/groups × d
        z = z.reshape(groups, n // groups, d)
        mean = z.mean(dim=1, keepdim=True)
        var = z.var(dim=1, unbiased=False, keepdim=True)
        return ((z - mean) / torch.sqrt(var + eps)).reshape(n, d)

    # Σ over sub-batches of their z1ᵀz2 / (n/groups), / groups: the mean of their matrices
    c = standardise(z1).T @ standardise(z2) / n
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    loss = scale * (on_diag + lambd * off_diag)
    if groups == 1:
        return loss
    return loss.detach() + (loss - loss.detach()) / groups  # value: loss; gradient: its 1/groups
