"""Sampling images from a diffusion generator, shard by shard.

Image i's initial and per-step noise comes from its own torch.Generator seeded by (seed, i), and
its class label (for class-conditional UNets) from a stream seeded by (seed, i, 1), so an image
is the same whichever shard, batch or job produced it. The generators are CPU generators: the
noise is then also the same on every device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

import logging

from pipeline.core.runtime import PRECISIONS, autocast
from pipeline.core.tracking import Progress, Tracker
from pipeline.generation.unet import to_uint8
from pipeline.generation.edm import EDMSettings, VPDenoiser, edm_sample
from pipeline.vocab.names import SAMPLERS


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerSettings:
    """How images are sampled; the stage fills it from its command line (config.yaml's
    sampling holds every default). A default here means unset: the sampler's own."""

    sampler: str
    num_steps: int | None = None  # ddpm: all training steps; ddim: 50; edm: 18
    eta: float = field(kw_only=True)  # DDIM
    edm: EDMSettings = field(default_factory=EDMSettings)  # EDM's published values
    precision: str = field(kw_only=True)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")


def image_seed(seed: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, index), well mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def image_generators(seed: int, indices, device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(image_seed(seed, int(i))) for i in indices]


def image_labels(seed: int, indices, num_classes: int) -> np.ndarray:
    """Uniform class labels, image i's from its own stream (seed, i, 1)."""
    return np.array([np.random.default_rng([seed, int(i), 1]).integers(num_classes)
                     for i in indices], dtype=np.int64)


def num_classes(unet) -> int | None:
    """Classes of a class-conditional UNet2DModel (None for unconditional ones)."""
    return unet.config.get("num_class_embeds")


def make_scheduler(sampler: str, scheduler_config, num_steps: int | None):
    """A diffusers scheduler for ddpm (ancestral; all training steps by default) or ddim."""
    if sampler == "ddpm":
        scheduler = DDPMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(num_steps or scheduler.config.num_train_timesteps)
    elif sampler == "ddim":
        scheduler = DDIMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(num_steps or 50)
    else:
        raise ValueError(f"no diffusers scheduler for sampler {sampler!r}")
    return scheduler


@torch.no_grad()
def sample_batch(unet, scheduler, generators: list[torch.Generator], *, eta: float = 0.0,
                 device="cpu", class_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse process of a DDPM/DDIM scheduler for one batch; returns x0 in [-1, 1].

    The same calls as diffusers' DDPMPipeline, so its output is reproduced exactly.
    """
    size = unet.config.sample_size
    shape = (len(generators), unet.config.in_channels, size, size)
    x = randn_tensor(shape, generator=generators, device=torch.device(device), dtype=unet.dtype)
    extra = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    for t in scheduler.timesteps:
        eps = unet(x, t, class_labels=class_labels).sample.to(x.dtype)
        x = scheduler.step(eps, t, x, generator=generators, **extra).prev_sample
    return x


class Sampler:
    """Draws images [lo, hi) of a generator with one of the samplers."""

    def __init__(self, unet, scheduler_config, settings: SamplerSettings, device):
        self.unet, self.settings, self.device = unet, settings, torch.device(device)
        self.num_classes = num_classes(unet)
        if settings.sampler == "edm":
            edm = settings.edm
            if settings.num_steps:
                edm = EDMSettings(**{**edm.__dict__, "num_steps": settings.num_steps})
            self.edm, self.denoiser = edm, VPDenoiser(unet, scheduler_config)
        else:
            self.scheduler = make_scheduler(settings.sampler, scheduler_config, settings.num_steps)

    @property
    def evaluations_per_image(self) -> int:
        if self.settings.sampler == "edm":
            return 2 * self.edm.num_steps - 1
        return len(self.scheduler.timesteps)

    @torch.no_grad()
    def images(self, seed: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N×H×W×3 images and their labels (-1 for unconditional generators)."""
        gens = image_generators(seed, range(lo, hi))
        labels = (image_labels(seed, range(lo, hi), self.num_classes) if self.num_classes
                  else np.full(hi - lo, -1, np.int64))
        cond = torch.from_numpy(labels).to(self.device) if self.num_classes else None
        with autocast(self.settings.precision, self.device):
            if self.settings.sampler == "edm":
                size, ch = self.unet.config.sample_size, self.unet.config.in_channels
                x = edm_sample(self.denoiser, gens, (hi - lo, ch, size, size), self.edm,
                               self.device, class_labels=cond)
            else:
                x = sample_batch(self.unet, self.scheduler, gens, eta=self.settings.eta,
                                 device=self.device, class_labels=cond)
        return to_uint8(x), labels


def sample_range(unet, scheduler_config, *, start: int, count: int, seed: int,
                 settings: SamplerSettings, batch_size: int, device,
                 tracker: Tracker | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Generate images [start, start+count): uint8 N×H×W×3 and int64 labels. After each
    batch a progress line is logged and its images/s (and the peak memory) go to `tracker`, at
    the count of images done."""
    sampler = Sampler(unet, scheduler_config, settings, device)
    images, labels = [], []
    progress = Progress("sample", count, unit_per_step=1, unit="images", tracker=tracker,
                        device=device, logger=log)
    with tqdm(total=count, desc=f"sample [{start}, {start + count})", unit="img") as bar:
        for lo in range(start, start + count, batch_size):
            hi = min(lo + batch_size, start + count)
            x, y = sampler.images(seed, lo, hi)
            images.append(x)
            labels.append(y)
            bar.update(hi - lo)
            progress.report(hi - start)
    return np.concatenate(images), np.concatenate(labels)


def prepare_unet(unet, device, *, channels_last: bool = False, compile: bool = False):
    """Move a UNet to its device; optionally channels_last memory and torch.compile."""
    unet = unet.to(device).eval().requires_grad_(False)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    if compile:
        # static shapes: the fastest kernels, and at most two batch sizes (full and last)
        unet = torch.compile(unet, dynamic=False)
    return unet
