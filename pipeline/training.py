"""Contrastive pretraining with data inflation (SimCLR)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from pipeline.augment import AugParams, build_augmentation
from pipeline.inflation import InflatedIndex
from pipeline.losses import nt_xent
from pipeline.models import Encoder, projection_head

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    widths: list[int]
    blocks: list[int]
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    warmup_steps: int = 10
    temperature: float = 0.2
    proj_hidden: int = 2048
    proj_dim: int = 256
    dup: int = 1
    seed: int = 0


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    x = images.reshape(-1, 3).astype(np.float64) / 255
    return x.mean(0).tolist(), np.maximum(x.std(0), 1e-3).tolist()


def make_optimizer(name: str, params, lr: float, weight_decay: float):
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or sgd")


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def pretrain(cfg: PretrainConfig, aug: AugParams, real: np.ndarray, generated: np.ndarray | None,
             device: torch.device) -> tuple[Encoder, list[dict]]:
    """Train an encoder with SimCLR on real images (×dup) plus generated ones.

    Returns the encoder and the history (one dict per step: step, loss, lr).
    """
    torch.manual_seed(cfg.seed)
    mean, std = channel_stats(real)
    encoder = Encoder(cfg.widths, cfg.blocks, mean, std).to(device)
    if cfg.steps == 0:
        return encoder.eval(), []
    projector = projection_head(encoder.feature_dim, cfg.proj_hidden, cfg.proj_dim).to(device)
    params = list(encoder.parameters()) + list(projector.parameters())
    opt = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, cfg.steps, cfg.warmup_steps))

    parts = [real] + ([generated] if generated is not None and len(generated) else [])
    data = torch.from_numpy(np.concatenate(parts)).to(device).permute(0, 3, 1, 2)  # uint8 NCHW
    index = InflatedIndex(len(real), len(data) - len(real), cfg.dup, cfg.seed)
    augment = build_augmentation(aug, real.shape[1]).to(device)

    history = []
    encoder.train(), projector.train()
    for step in tqdm(range(cfg.steps), desc="pretrain", mininterval=5):
        x = data[index.next_batch(cfg.batch_size).to(device)].float().div_(255)
        z1, z2 = projector(encoder(augment(x))), projector(encoder(augment(x)))
        loss = nt_xent(z1, z2, cfg.temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step + 1}")
        lr = opt.param_groups[0]["lr"]  # the rate this step uses, before the scheduler moves it
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append({"step": step + 1, "loss": loss.item(), "lr": lr})
    return encoder.eval(), history
