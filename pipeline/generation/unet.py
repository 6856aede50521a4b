"""Diffusion generators: train a small diffusers UNet on real data, or load a pretrained one.

A generator is stored the way diffusers stores a `DDPMPipeline` (model_index.json, unet/,
scheduler/), so one loader serves models trained here, local folders and hub ids such as
google/ddpm-cifar10-32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from pipeline.core.tensors import to_nchw
from pipeline.core.tracking import Progress, Tracker

log = logging.getLogger(__name__)


# google/ddpm-cifar10-32 (Ho et al. 2020's CIFAR-10 DDPM, 35.7M parameters), as facts: the values
# of the hub model's unet/config.json and scheduler_config.json (huggingface.co/google/
# ddpm-cifar10-32, diffusers format; UNet2DModel defaults left out). The one place for its
# architecture offline: bench/sample.py builds it, bench/rehearsal.py saves a random-weight copy.
DDPM_CIFAR10_32_UNET = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=32, norm_eps=1e-6, act_fn="silu", downsample_padding=0,
    flip_sin_to_cos=False, freq_shift=1, center_input_sample=False, mid_block_scale_factor=1,
    time_embedding_type="positional", attention_head_dim=None)
DDPM_CIFAR10_32_SCHEDULER = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                 beta_schedule="linear", clip_sample=True,
                                 variance_type="fixed_large")


def ddpm_cifar10_32(seed: int = 0) -> tuple[UNet2DModel, DDPMScheduler]:
    """google/ddpm-cifar10-32's UNet (random weights, seeded) and scheduler."""
    torch.manual_seed(seed)
    return UNet2DModel(**DDPM_CIFAR10_32_UNET).eval(), DDPMScheduler(**DDPM_CIFAR10_32_SCHEDULER)


def build_unet(resolution: int, channels: list[int], layers_per_block: int = 1,
               attention: bool = False) -> UNet2DModel:
    """A small UNet2DModel: one down/up block per entry of `channels`.

    With `attention`, the lowest-resolution block gets self-attention (as in Ho et al.).
    """
    down = ["DownBlock2D"] * len(channels)
    up = ["UpBlock2D"] * len(channels)
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=resolution, in_channels=3, out_channels=3,
        block_out_channels=tuple(channels), layers_per_block=layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up),
        norm_num_groups=min(8, channels[0]),
    )


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×3 → float N×3×H×W in [-1, 1], the range diffusers' DDPM models use."""
    return to_nchw(images, scale=127.5, shift=1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] N×3×H×W → uint8 N×H×W×3, rounding exactly as diffusers' DDPMPipeline does."""
    x = (x / 2 + 0.5).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)


def train_unet(images: np.ndarray, *, channels: list[int], layers_per_block: int,
               attention: bool, steps: int, batch_size: int, lr: float, ema_decay: float,
               num_train_timesteps: int, beta_schedule: str, seed: int, device: torch.device,
               snr_gamma: float | None = None, log_every: int = 0,
               tracker: Tracker | None = None) -> tuple[UNet2DModel, DDPMScheduler, list[float]]:
    """Train a DDPM (epsilon prediction) on uint8 images; returns the EMA UNet, its scheduler
    and the loss of every step.

    With `snr_gamma`, a timestep's loss is weighted by min(SNR, gamma) / SNR: Min-SNR weighting
    (Hang et al., ICCV 2023, as diffusers' training scripts' --snr_gamma), which stops the
    nearly noise-free timesteps from dominating and so converges in fewer steps.

    Every `log_every` steps (0: never) a progress line is logged and the mean loss since the
    previous one, the learning rate, samples/s and the peak memory go to `tracker`.
    """
    torch.manual_seed(seed)
    resolution = images.shape[1]
    unet = build_unet(resolution, channels, layers_per_block, attention).to(device)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule)
    ema = EMAModel(unet.parameters(), decay=ema_decay)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    lr_sched = get_cosine_schedule_with_warmup(opt, min(500, steps // 10), steps)
    data = to_model_range(images).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    alphas = scheduler.alphas_cumprod.to(device)
    losses = []
    progress = Progress("generator", steps, unit_per_step=batch_size, tracker=tracker,
                        device=device, logger=log)
    for _ in tqdm(range(steps), desc="train generator", mininterval=5):
        idx = torch.randint(len(data), (batch_size,), generator=gen)
        x0 = data[idx.to(device)]
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.randint(num_train_timesteps, (batch_size,), generator=gen).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, t).sample
        if snr_gamma is None:
            loss = F.mse_loss(pred, noise)
        else:
            snr = compute_snr(scheduler, t)
            per_image = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_image * snr.clamp(max=snr_gamma) / snr).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr_used = opt.param_groups[0]["lr"]
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())
        losses.append(loss.item())
        if not np.isfinite(losses[-1]):
            raise RuntimeError(f"generator loss is {losses[-1]} at step {len(losses)}")
        done = len(losses)
        if log_every and (done % log_every == 0 or done == steps):
            window = losses[progress.step:]
            progress.report(done, {"loss": sum(window) / len(window), "lr": lr_used})
    ema.copy_to(unet.parameters())
    return unet.eval(), scheduler, losses


def save_generator(folder: str | Path, unet: UNet2DModel, scheduler: DDPMScheduler) -> None:
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(folder))


def load_generator(source: str, device: torch.device | str = "cpu"):
    """Load (unet, scheduler config) from a hub id or a local folder.

    Accepts a pipeline folder (model_index.json with unet/ and scheduler/, the hub layout of
    google/ddpm-cifar10-32) or a bare UNet folder (config.json + weights), whose scheduler then
    comes from a scheduler_config.json beside it or diffusers' DDPM defaults.
    """
    path = Path(source).expanduser()
    if not path.exists() and source.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"generator folder {source!r} does not exist")
    if path.exists() and not (path / "model_index.json").exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"generator folder {source!r} has neither model_index.json nor config.json"
            )
        unet = UNet2DModel.from_pretrained(str(path))
        if (path / "scheduler_config.json").exists():
            scheduler_config = DDPMScheduler.from_pretrained(str(path)).config
        else:
            scheduler_config = DDPMScheduler().config
    else:
        pipe = DDPMPipeline.from_pretrained(source)
        unet, scheduler_config = pipe.unet, pipe.scheduler.config
    return unet.to(device).eval(), scheduler_config
