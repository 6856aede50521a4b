"""Training a DDPM generator (epsilon prediction) on real images, at any scale: the small UNets
of the embedded default up to Ho et al.'s CIFAR-10 UNet, bf16 autocast, several processes (DDP
under torchrun, the pretraining launcher), checkpoints a killed job resumes from bit for bit,
gradient clipping, warm-up, and class conditioning with a null class for guidance.

Every batch (images, noise, timesteps, dropped labels) is drawn for the global batch from one
CPU generator seeded by `seed`; a rank trains on its slice. So the draws do not depend on the
number of processes, and the generator's state in a checkpoint is all a resume needs of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from pipeline.core import io
from pipeline.core.runtime import autocast
from pipeline.core.tracking import Progress, Tracker
from pipeline.generation.unet import build_unet, to_model_range
from pipeline.pretraining.distributed import DistContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorConfig:
    """What determines the trained generator (generator.train; config.yaml holds every default:
    a default here means unset)."""

    channels: list[int]
    layers_per_block: int
    attention: bool
    steps: int
    batch_size: int  # the global batch, whatever the number of processes
    lr: float
    ema_decay: float
    num_train_timesteps: int
    beta_schedule: str
    seed: int
    snr_gamma: float | None = None
    architecture: str = "small"
    warmup_steps: int | None = None  # None: min(500, steps // 10)
    grad_clip: float | None = None  # max gradient norm; None: no clipping
    precision: str = "fp32"
    class_conditional: bool = False
    label_dropout: float = 0.0  # share of labels replaced by the null class

    @property
    def warmup(self) -> int:
        return min(500, self.steps // 10) if self.warmup_steps is None else self.warmup_steps


@dataclass(frozen=True)
class Speed:
    """Switches that change how fast, not what (left out of a checkpoint's run key)."""

    checkpoint_every: int = 0
    compile: bool = False
    channels_last: bool = False


def run_key(cfg: GeneratorConfig, world: int, images: np.ndarray, labels) -> str:
    """A hash of the settings, the process count and the data (shape and a strided sample), which
    a checkpoint records so that a resume under anything else is refused."""
    step = max(1, len(images) // 64)
    h = hashlib.sha256(json.dumps({"config": asdict(cfg), "world": world}, sort_keys=True,
                                  default=str).encode())
    h.update(str(images.shape).encode() + images[::step].tobytes())
    if labels is not None:
        h.update(np.asarray(labels)[::step].tobytes())
    return h.hexdigest()


@dataclass
class State:
    """What a checkpoint holds besides the step and the losses."""

    unet: UNet2DModel
    ema: EMAModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator

    def state_dict(self) -> dict:
        return {"unet": self.unet.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "generator": self.gen.get_state(), "rng_cpu": torch.get_rng_state()}

    def load_state_dict(self, d: dict) -> None:
        self.unet.load_state_dict(d["unet"])
        self.ema.load_state_dict(d["ema"])
        self.opt.load_state_dict(d["optimizer"])
        self.sched.load_state_dict(d["scheduler"])
        self.gen.set_state(d["generator"])
        torch.set_rng_state(d["rng_cpu"])


def save_checkpoint(path, step: int, losses: list[float], state: State, key: str) -> None:
    with io.atomic_path(path) as tmp:
        torch.save({"run_key": key, "step": step, "losses": losses, **state.state_dict()}, tmp)


def resume(path, key: str, state: State, device) -> tuple[int, list[float]]:
    """The step and losses to go on from: a checkpoint of this run's, else (none, or one of
    other settings or data, refused with a warning) a fresh start."""
    if path is None or not Path(path).exists():
        return 0, []
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    if checkpoint.get("run_key") != key:
        log.warning("%s belongs to other settings, data or process count: not resumed, "
                    "training from the start", path)
        return 0, []
    state.load_state_dict(checkpoint)
    log.info("resumed the generator from %s at step %d", path, checkpoint["step"])
    return checkpoint["step"], checkpoint["losses"]


def draw_batch(gen: torch.Generator, cfg: GeneratorConfig, n_images: int, shape, null: int | None):
    """The global batch's image rows, noise, timesteps and null-label mask (None: unconditional),
    in the order the single-process loop has always drawn them."""
    b = cfg.batch_size
    idx = torch.randint(n_images, (b,), generator=gen)
    noise = torch.randn((b, *shape), generator=gen)
    t = torch.randint(cfg.num_train_timesteps, (b,), generator=gen)
    drop = torch.rand(b, generator=gen) < cfg.label_dropout if null is not None else None
    return idx, noise, t, drop


def diffusion_loss(unet, scheduler, alphas, x0, noise, t, labels, cfg: GeneratorConfig):
    """Epsilon-prediction MSE at timesteps t; with snr_gamma, Min-SNR weighted (Hang et al.,
    ICCV 2023, as diffusers' --snr_gamma: the nearly noise-free timesteps stop dominating)."""
    a = alphas[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    with autocast(cfg.precision, x0.device):
        pred = unet(xt, t, class_labels=labels).sample
    pred = pred.float()
    if cfg.snr_gamma is None:
        return F.mse_loss(pred, noise)
    snr = compute_snr(scheduler, t)
    per_image = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
    return (per_image * snr.clamp(max=cfg.snr_gamma) / snr).mean()


def setup(images, labels, cfg: GeneratorConfig, device, speed: Speed):
    """The UNet (its null class: the number of real classes), scheduler, EMA, optimiser and
    learning-rate schedule, seeded by cfg.seed."""
    torch.manual_seed(cfg.seed)
    classes = int(np.max(labels)) + 1 if cfg.class_conditional else None
    unet = build_unet(images.shape[1], cfg.channels, cfg.layers_per_block, cfg.attention,
                      architecture=cfg.architecture, num_classes=classes).to(device)
    if speed.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    scheduler = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps,
                              beta_schedule=cfg.beta_schedule)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    return State(unet, ema, opt, sched, gen), scheduler, classes


def train_unet(images: np.ndarray, *, device: torch.device, labels: np.ndarray | None = None,
               ctx: DistContext | None = None, checkpoint: str | Path | None = None,
               speed: Speed = Speed(), callback=None, log_every: int = 0,
               tracker: Tracker | None = None, **settings
               ) -> tuple[UNet2DModel, DDPMScheduler, list[float]]:
    """Train a DDPM on uint8 images (`settings`: GeneratorConfig's fields); returns the EMA UNet,
    its scheduler and the loss of every step (the global batch's mean).

    With `checkpoint`, resumes from that file when it holds this run's state and writes it every
    speed.checkpoint_every steps; `callback(step)` runs after each step. Every `log_every` steps
    (0: never) a progress line is logged and the mean loss since the previous one, the learning
    rate, samples/s and the peak memory go to `tracker` (the main process's).
    """
    cfg = GeneratorConfig(**settings)
    ctx = ctx or DistContext(0, 1, device)
    if cfg.batch_size % ctx.world:
        raise ValueError(f"generator.train.batch_size {cfg.batch_size} must divide among "
                         f"{ctx.world} processes")
    if cfg.class_conditional and labels is None:
        raise ValueError("class_conditional training needs the real images' labels")
    state, scheduler, classes = setup(images, labels, cfg, device, speed)
    key = run_key(cfg, ctx.world, images, labels if cfg.class_conditional else None)
    start, losses = resume(checkpoint, key, state, device)
    model = state.unet
    if ctx.group:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None)
    if speed.compile:
        model = torch.compile(model)
    data = to_model_range(images).to(device)
    y = torch.from_numpy(np.asarray(labels)).long().to(device) if classes else None
    alphas = scheduler.alphas_cumprod.to(device)
    progress = Progress("generator", cfg.steps, unit_per_step=cfg.batch_size, start=start,
                        tracker=tracker, device=device, logger=log)
    part = slice(ctx.rank * cfg.batch_size // ctx.world, (ctx.rank + 1) * cfg.batch_size // ctx.world)
    for step in tqdm(range(start + 1, cfg.steps + 1), desc="train generator", mininterval=5,
                     disable=not ctx.is_main):
        idx, noise, t, drop = draw_batch(state.gen, cfg, len(data), data.shape[1:], classes)
        idx, noise, t = idx[part].to(device), noise[part].to(device), t[part].to(device)
        x0 = data[idx]
        if speed.channels_last:
            x0, noise = (v.contiguous(memory_format=torch.channels_last) for v in (x0, noise))
        cond = None if classes is None else torch.where(drop[part].to(device), classes, y[idx])
        loss = diffusion_loss(model, scheduler, alphas, x0, noise, t, cond, cfg)
        lr_used = step_optimiser(loss, state, cfg)
        losses.append(global_mean(loss, ctx))
        if not np.isfinite(losses[-1]):
            raise RuntimeError(f"generator loss is {losses[-1]} at step {step}")
        if log_every and ctx.is_main and (step % log_every == 0 or step == cfg.steps):
            window = losses[progress.step:]
            progress.report(step, {"loss": sum(window) / len(window), "lr": lr_used})
        if checkpoint and speed.checkpoint_every and step % speed.checkpoint_every == 0 \
                and step < cfg.steps and ctx.is_main:
            save_checkpoint(checkpoint, step, losses, state, key)
        if callback is not None:
            callback(step)
    state.ema.copy_to(state.unet.parameters())
    return state.unet.eval(), scheduler, losses


def step_optimiser(loss, state: State, cfg: GeneratorConfig) -> float:
    """One optimiser step (clipped when cfg.grad_clip), the schedule's and the EMA's; returns the
    learning rate the step used."""
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(state.unet.parameters(), cfg.grad_clip)
    lr_used = state.opt.param_groups[0]["lr"]
    state.opt.step()
    state.sched.step()
    state.ema.step(state.unet.parameters())
    return lr_used


def global_mean(loss: torch.Tensor, ctx: DistContext) -> float:
    """The loss over the global batch (equal slices: the mean of the ranks' means)."""
    if ctx.world == 1:
        return loss.item()
    v = loss.detach().clone()
    dist.all_reduce(v)
    return v.item() / ctx.world
