"""Sampling images from a diffusion generator, shard by shard.

Image i's initial and per-step noise comes from its own torch.Generator seeded by (seed, i), so an
image is the same whichever shard, batch or job produced it.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from pipeline.diffusion import to_uint8

SAMPLERS = ("ddpm", "ddim")


def image_seed(seed: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, index), well mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def image_generators(seed: int, indices, device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(image_seed(seed, int(i))) for i in indices]


def make_scheduler(sampler: str, scheduler_config, num_steps: int | None):
    """A diffusers scheduler for `sampler`, with its timesteps set.

    ddpm: ancestral sampling, by default over all the model's training timesteps;
    ddim: `num_steps` DDIM steps (eta is given to step()).
    """
    if sampler == "ddpm":
        scheduler = DDPMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(num_steps or scheduler.config.num_train_timesteps)
    elif sampler == "ddim":
        scheduler = DDIMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(num_steps or 50)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return scheduler


@torch.no_grad()
def sample_batch(unet, scheduler, generators: list[torch.Generator], *, eta: float = 0.0,
                 device="cpu") -> torch.Tensor:
    """Run the reverse process for one batch (one generator per image); returns x0 in [-1, 1]."""
    size = unet.config.sample_size
    shape = (len(generators), unet.config.in_channels, size, size)
    x = randn_tensor(shape, generator=generators, device=torch.device(device), dtype=unet.dtype)
    extra = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    for t in scheduler.timesteps:
        eps = unet(x, t).sample
        x = scheduler.step(eps, t, x, generator=generators, **extra).prev_sample
    return x


def sample_range(unet, scheduler_config, *, start: int, count: int, seed: int, sampler: str,
                 num_steps: int | None, eta: float, batch_size: int, device) -> np.ndarray:
    """Generate images [start, start+count) as uint8 N×H×W×3."""
    scheduler = make_scheduler(sampler, scheduler_config, num_steps)
    out = []
    with tqdm(total=count, desc=f"sample [{start}, {start + count})", unit="img") as bar:
        for lo in range(start, start + count, batch_size):
            hi = min(lo + batch_size, start + count)
            gens = image_generators(seed, range(lo, hi))
            out.append(to_uint8(sample_batch(unet, scheduler, gens, eta=eta, device=device)))
            bar.update(hi - lo)
    size = unet.config.sample_size
    return np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8)
