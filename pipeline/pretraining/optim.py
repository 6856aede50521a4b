"""Optimisers for pretraining: LARS as solo-learn's (the AdaInf authors' code base), SGD, AdamW,
and the linear learning-rate scaling rule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer

from pipeline.vocab.names import OPTIMIZERS


def scaled_lr(lr_per_256: float, global_batch: int) -> float:
    """The linear scaling rule of the paper's configs: lr = lr_per_256 · global_batch / 256."""
    return lr_per_256 * global_batch / 256


def warmup_cosine(step: int, total: int, warmup: int = 0) -> float:
    """The learning-rate factor at `step`: linear warm-up, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    step = min(step, total)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


class LARS(Optimizer):
    """SGD with momentum and LARS layer-wise learning-rate adaptation, as solo-learn's LARS
    (itself from Lightning Bolts) with the settings of the AdaInf configs as defaults:
    eta 0.02, clipped rate, biases and norm parameters excluded.

    For each parameter p with gradient g (weight decay wd, base rate lr):
      * adapted (p.ndim > 1, or every p when exclude_bias_n_norm is False), when ‖p‖ ≠ 0 and
        ‖g‖ ≠ 0:  trust = eta·‖p‖ / (‖g‖ + wd·‖p‖ + eps); with clip_lr, trust ← min(trust/lr, 1);
        d = trust · (g + wd·p);
      * otherwise (bias / norm parameters, zero weight or zero gradient): d = g, neither scaled nor
        decayed;
      * momentum buffer b ← d on the first step, then b ← momentum·b + d; p ← p − lr·b.
    With clip_lr the effective rate of an adapted parameter is therefore min(eta-trust, lr).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, clip_lr: bool = True, exclude_bias_n_norm: bool = True,
                 eps: float = 1e-8):
        if lr < 0:
            raise ValueError(f"invalid learning rate {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        clip_lr=clip_lr, exclude_bias_n_norm=exclude_bias_n_norm, eps=eps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if p.ndim > 1 or not group["exclude_bias_n_norm"]:
                    p_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(d_p)
                    if p_norm != 0 and g_norm != 0:
                        trust = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                        if group["clip_lr"]:
                            trust = torch.clamp(trust / lr, max=1.0)  # lr 0: inf → 1
                        d_p = d_p.add(p, alpha=wd).mul_(trust)
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = d_p.detach().clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(d_p)
                    d_p = buf
                p.add_(d_p, alpha=-lr)
        return loss


def _plain(params: Iterable) -> list:
    """Accepts parameters, (name, parameter) pairs (named_parameters()) or param-group dicts."""
    out = []
    for item in params:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append(item[1])
        else:
            out.append(item)
    return out




def make_optimizer(name: str, params: Iterable, lr: float, weight_decay: float) -> Optimizer:
    """'lars' (momentum 0.9, eta 0.02, clipped, bias/norm excluded), 'sgd' (momentum 0.9) or
    'adamw'. params: parameters, named parameters or param-group dicts. lr is the final rate
    (scale it with scaled_lr first)."""
    params = _plain(params)
    if name == "lars":
        return LARS(params, lr=lr, momentum=0.9, weight_decay=weight_decay, eta=0.02,
                    clip_lr=True, exclude_bias_n_norm=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
