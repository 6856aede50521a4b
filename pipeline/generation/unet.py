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
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from pipeline.core.tensors import to_nchw

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
               attention: bool = False, *, architecture: str = "small",
               num_classes: int | None = None) -> UNet2DModel:
    """The UNet2DModel a generator trains: `small`, one down/up block per entry of `channels`
    (with `attention`, self-attention at the lowest resolution); `ho2020`, google/ddpm-cifar10-32's
    architecture (Ho et al. 2020's CIFAR-10 UNet) at `resolution`, channels and blocks its own.

    With `num_classes`, class-conditional: one embedding per class and one more, the null class
    of classifier-free guidance (index num_classes, recorded as the config's null_class).
    """
    conditional = {} if num_classes is None else {"num_class_embeds": num_classes + 1}
    if architecture == "ho2020":
        unet = UNet2DModel(**{**DDPM_CIFAR10_32_UNET, "sample_size": resolution}, **conditional)
    elif architecture == "small":
        down = ["DownBlock2D"] * len(channels)
        up = ["UpBlock2D"] * len(channels)
        if attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        unet = UNet2DModel(
            sample_size=resolution, in_channels=3, out_channels=3,
            block_out_channels=tuple(channels), layers_per_block=layers_per_block,
            down_block_types=tuple(down), up_block_types=tuple(up),
            norm_num_groups=min(8, channels[0]), **conditional)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; choose small or ho2020")
    if num_classes is not None:
        # kept in config.json (diffusers warns on loading a key it does not know, and keeps it)
        unet.register_to_config(null_class=num_classes)
    return unet


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×3 → float N×3×H×W in [-1, 1], the range diffusers' DDPM models use."""
    return to_nchw(images, scale=127.5, shift=1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] N×3×H×W → uint8 N×H×W×3, rounding exactly as diffusers' DDPMPipeline does."""
    x = (x / 2 + 0.5).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)


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
