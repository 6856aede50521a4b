"""The four self-supervised methods of the AdaInf paper: SimCLR, MoCo V2+, BYOL, Barlow Twins.

Each method is an nn.Module around an online `encoder` (pipeline.pretraining.encoders.Encoder) with its heads
(and, for MoCo and BYOL, momentum "target" copies), following solo-learn (the authors' code base):

    method = build_method("byol", encoder, proj_hidden=16)   # hparams override DEFAULTS
    opt = make_optimizer(method.hparams["optimizer"], method.online_parameters(),
                         scaled_lr(method.hparams["lr"], global_batch),
                         method.hparams["weight_decay"])
    for step in range(total_steps):
        loss = method(view1, view2)          # both augmented views, float N×3×H×W in [0, 1]
        opt.zero_grad(); loss.backward(); opt.step()
        method.momentum_update(step, total_steps)   # 0-based: tau(step); no-op if no target

Which augmentation preset a method trains with (BYOL's and Barlow Twins' asymmetric ones,
solarisation on view 2 only) is the vocabulary's: pipeline.vocab.augmentation.trained_preset.

Targets are deep copies of the online networks with requires_grad False, run under no_grad; like
solo-learn they stay in the module tree and so follow its train()/eval() mode (batch-norm uses
batch statistics in training and keeps its own running statistics). The EMA updates parameters
only, not batch-norm buffers, as solo-learn's MomentumUpdater.
"""

from __future__ import annotations

import abc
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.pretraining.distributed import gather
from pipeline.pretraining.losses import barlow_twins_loss, byol_loss, moco_infonce, nt_xent
from pipeline.vocab.methods import METHOD_DEFAULTS
from pipeline.pretraining.encoders import Encoder, projection_head


def linear_relu_linear(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """Linear-ReLU-Linear, no batch-norm (SimCLR's and MoCo V2+'s projector in solo-learn)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def mlp3(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """Linear-BN-ReLU-Linear-BN-ReLU-Linear (Barlow Twins' projector)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, out_dim))


def momentum_copy(net: nn.Module) -> nn.Module:
    """A target network: a deep copy of `net` whose parameters get no gradient."""
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_tau(step: int, total_steps: int, tau_base: float, tau_final: float) -> float:
    """solo-learn's momentum schedule: tau_final − (tau_final − tau_base)·(cos(π·step/total)+1)/2,
    tau_base at step 0 and tau_final at step total_steps (clamped beyond)."""
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return tau_final - (tau_final - tau_base) * (math.cos(math.pi * frac) + 1) / 2


class SSLMethod(nn.Module, abc.ABC):
    """Common part: hyper-parameters (DEFAULTS overridden by keyword arguments) and the online
    encoder. Subclasses define DEFAULTS, _online_modules and forward."""

    DEFAULTS: dict = {}
    name: str = ""

    def __init__(self, encoder: Encoder, **hparams):
        super().__init__()
        unknown = sorted(set(hparams) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"unknown hyper-parameter(s) {unknown} for {self.name}; "
                             f"known: {sorted(self.DEFAULTS)}")
        self.hparams = {**self.DEFAULTS, **hparams}
        self.encoder = encoder

    @abc.abstractmethod
    def _online_modules(self) -> list[nn.Module]:
        """The modules the optimiser trains."""

    def online_parameters(self) -> list[nn.Parameter]:
        """What the optimiser trains: the online encoder and heads (targets excluded)."""
        return [p for m in self._online_modules() for p in m.parameters()]

    def named_online_parameters(self) -> list[tuple[str, nn.Parameter]]:
        online = {id(p) for p in self.online_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) in online]

    @torch.no_grad()
    def momentum_update(self, step: int, total_steps: int) -> float | None:
        """No-op for methods without target networks; returns None."""
        return None


class _MomentumMethod(SSLMethod):
    """A method with target networks updated by EMA (MoCo, BYOL). Subclasses fill
    self.momentum_pairs with (online, target) modules."""

    momentum_pairs: list[tuple[nn.Module, nn.Module]]

    def momentum_tau(self, step: int, total_steps: int) -> float:
        return cosine_tau(step, total_steps, self.hparams["tau_base"], self.hparams["tau_final"])

    @torch.no_grad()
    def momentum_update(self, step: int, total_steps: int) -> float:
        """target ← tau·target + (1 − tau)·online with tau = momentum_tau(step, total_steps).

        `step` counts the optimiser steps done before this one: pipeline.pretraining.loop calls it with 0
        after the first step (tau_base) and total_steps − 1 after the last, as solo-learn's
        MomentumUpdater does (its k-th update uses the tau of step k − 1; the authors' fork
        updates in on_train_batch_end with the step count before incrementing it). Returns the
        tau used."""
        tau = self.momentum_tau(step, total_steps)
        for online, target in self.momentum_pairs:
            for po, pt in zip(online.parameters(), target.parameters(), strict=True):
                pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
        return tau


class SimCLR(SSLMethod):
    name = "simclr"
    DEFAULTS = METHOD_DEFAULTS[name]

    def __init__(self, encoder: Encoder, **hparams):
        super().__init__(encoder, **hparams)
        h = self.hparams
        self.projector = linear_relu_linear(encoder.feature_dim, h["proj_hidden"], h["proj_dim"])

    def _online_modules(self):
        return [self.encoder, self.projector]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        z1 = self.projector(self.encoder(x1))
        z2 = self.projector(self.encoder(x2))
        return nt_xent(gather(z1), gather(z2), self.hparams["temperature"])


class MoCoV2Plus(_MomentumMethod):
    """MoCo V2+ as solo-learn's mocov2plus: symmetric loss with two queues, one per view —
    loss = (InfoNCE(q1, k2, queue[1]) + InfoNCE(q2, k1, queue[0])) / 2, then k1 is enqueued into
    queue[0] and k2 into queue[1] (both normalised, no grad) at the same pointer.

    The projector is Linear-ReLU-Linear, without batch-norm, as solo-learn's mocov2plus.
    The queue is only updated in training mode.
    """

    name = "mocov2plus"
    DEFAULTS = METHOD_DEFAULTS[name]

    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, encoder: Encoder, **hparams):
        super().__init__(encoder, **hparams)
        h = self.hparams
        self.projector = linear_relu_linear(encoder.feature_dim, h["proj_hidden"], h["proj_dim"])
        self.target_encoder = momentum_copy(self.encoder)
        self.target_projector = momentum_copy(self.projector)
        self.momentum_pairs = [(self.encoder, self.target_encoder),
                               (self.projector, self.target_projector)]
        # queue[v] holds past keys of view v, one per row: 2 × queue_size × proj_dim
        self.register_buffer(
            "queue", F.normalize(torch.randn(2, h["queue_size"], h["proj_dim"]), dim=-1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _online_modules(self):
        return [self.encoder, self.projector]

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.target_projector(self.target_encoder(x)).float(), dim=-1)

    @torch.no_grad()
    def enqueue(self, k1: torch.Tensor, k2: torch.Tensor) -> None:
        """FIFO: writes the keys (rows) at the pointer, wrapping around the end of the queue."""
        size, n = self.queue.shape[1], len(k1)
        keep = min(n, size)  # a batch larger than the queue: its earlier keys are overwritten
        # the pointer stays a device tensor: no host sync in the training step
        idx = (self.queue_ptr + torch.arange(n - keep, n, device=self.queue.device)) % size
        keys = torch.stack([k1, k2]).detach()[:, n - keep:]
        self.queue[:, idx] = F.normalize(keys, dim=-1).to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        q1 = self.projector(self.encoder(x1))
        q2 = self.projector(self.encoder(x2))
        k1, k2 = self._keys(x1), self._keys(x2)
        queue = self.queue.clone()  # enqueue() writes in place; autograd keeps this copy
        t = self.hparams["temperature"]
        loss = (moco_infonce(q1, k2, queue[1], t) + moco_infonce(q2, k1, queue[0], t)) / 2
        if self.training:  # every rank enqueues the keys of the global batch
            self.enqueue(gather(k1), gather(k2))
        return loss


class BYOL(_MomentumMethod):
    """BYOL as solo-learn's: loss = byol(p1, z2_target) + byol(p2, z1_target) (a sum, not a
    mean, as solo-learn), predictor only on the online branch."""

    name = "byol"
    DEFAULTS = METHOD_DEFAULTS[name]

    def __init__(self, encoder: Encoder, **hparams):
        super().__init__(encoder, **hparams)
        h = self.hparams
        self.projector = projection_head(encoder.feature_dim, h["proj_hidden"], h["proj_dim"])
        self.predictor = projection_head(h["proj_dim"], h["pred_hidden"], h["proj_dim"])
        self.target_encoder = momentum_copy(self.encoder)
        self.target_projector = momentum_copy(self.projector)
        self.momentum_pairs = [(self.encoder, self.target_encoder),
                               (self.projector, self.target_projector)]

    def _online_modules(self):
        return [self.encoder, self.projector, self.predictor]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        p1 = self.predictor(self.projector(self.encoder(x1)))
        p2 = self.predictor(self.projector(self.encoder(x2)))
        with torch.no_grad():
            z1t = self.target_projector(self.target_encoder(x1))
            z2t = self.target_projector(self.target_encoder(x2))
        return byol_loss(p1, z2t.detach()) + byol_loss(p2, z1t.detach())


class BarlowTwins(SSLMethod):
    name = "barlow"
    DEFAULTS = METHOD_DEFAULTS[name]

    def __init__(self, encoder: Encoder, **hparams):
        super().__init__(encoder, **hparams)
        h = self.hparams
        self.projector = mlp3(encoder.feature_dim, h["proj_hidden"], h["proj_dim"])

    def _online_modules(self):
        return [self.encoder, self.projector]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        z1 = self.projector(self.encoder(x1))
        z2 = self.projector(self.encoder(x2))
        # the global batch, rank-major: with loss_groups = processes each group is one rank's
        h = self.hparams
        return barlow_twins_loss(gather(z1), gather(z2), h["lambd"], h["scale"],
                                 groups=h["loss_groups"])


METHODS: dict[str, type[SSLMethod]] = {"simclr": SimCLR, "mocov2plus": MoCoV2Plus, "byol": BYOL,
                                       "barlow": BarlowTwins}


def build_method(name: str, encoder: Encoder, **hparams) -> SSLMethod:
    """The method `name` around `encoder`; hparams override the method's DEFAULTS (unknown keys
    raise ValueError)."""
    if name not in METHODS:
        raise ValueError(f"unknown SSL method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name](encoder, **hparams)
