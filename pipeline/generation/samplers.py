"""Sampling images from a diffusion generator, shard by shard.

Image i's initial and per-step noise comes from its own torch.Generator seeded by (seed, i), and
its class label (for class-conditional UNets) is i mod the classes (balanced) or drawn from a
stream seeded by (seed, i, 1), so an image is the same whichever shard, batch or job produced it.
The generators are CPU generators: the noise is then also the same on every device.

Every sampler but edm is a diffusers scheduler built with `from_config` over the generator's own
scheduler config and driven by one loop (`sample_batch`), so each equals that scheduler in a
plain diffusers loop; edm is Algorithm 2 of Karras et al. (pipeline.generation.edm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import inspect
import os
from pathlib import Path

from diffusers import (DDIMScheduler, DDPMScheduler, DEISMultistepScheduler,
                       DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       HeunDiscreteScheduler, UniPCMultistepScheduler)
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

import logging

from pipeline.core.errors import UserError
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
    num_steps: int | None = None  # ddpm: all training steps; the others: DEFAULT_STEPS
    eta: float = field(kw_only=True)  # DDIM
    edm: EDMSettings = field(default_factory=EDMSettings)  # EDM's published values
    precision: str = field(kw_only=True)
    timestep_spacing: str | None = None  # the discrete samplers'; None: the generator's config's
    guidance: float = 1.0  # classifier-free guidance scale (1: none)
    labels: str = "balanced"  # a class-conditional generator's: balanced or uniform

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.sampler == "edm" and self.timestep_spacing is not None:
            raise ValueError("sampling.timestep_spacing is the discrete samplers' (edm has its "
                             "own schedule, sampling.edm); set it to null for edm")
        if self.labels not in LABELS:
            raise ValueError(f"unknown labels {self.labels!r}; choose one of {', '.join(LABELS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")


def image_seed(seed: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, index), well mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def image_generators(seed: int, indices, device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(image_seed(seed, int(i))) for i in indices]


LABELS = ("balanced", "uniform")

# the diffusers scheduler of each discrete sampler, and what it is built with beside the
# generator's scheduler config (DPM-Solver++: Lu et al. 2022; UniPC: Zhao et al. 2023; DEIS:
# Zhang & Chen 2023; Euler and Heun on the Karras et al. 2022 sigmas)
SCHEDULERS = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpmsolver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "unipc": (UniPCMultistepScheduler, {}),
    "deis": (DEISMultistepScheduler, {}),
    "euler_karras": (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
    "heun_karras": (HeunDiscreteScheduler, {"use_karras_sigmas": True}),
}
# steps when sampling.steps is null (ddpm: all training timesteps); heun_karras and edm take
# two evaluations a step but the last
DEFAULT_STEPS = {"ddim": 50, "dpmsolver++": 20, "unipc": 20, "deis": 20, "euler_karras": 50,
                 "heun_karras": 18, "edm": 18}


def image_labels(seed: int, indices, num_classes: int, labels: str = "uniform") -> np.ndarray:
    """Class labels: balanced, image i's is i mod num_classes (every class equally often in any
    run of indices); uniform, drawn from image i's own stream (seed, i, 1)."""
    if labels == "balanced":
        return np.array([int(i) % num_classes for i in indices], dtype=np.int64)
    return np.array([np.random.default_rng([seed, int(i), 1]).integers(num_classes)
                     for i in indices], dtype=np.int64)


def num_classes(unet) -> int | None:
    """Classes of a class-conditional UNet2DModel (None for unconditional ones); a generator
    trained for guidance has one more embedding, its null class (config key null_class)."""
    embeds = unet.config.get("num_class_embeds")
    return embeds - 1 if embeds and unet.config.get("null_class") is not None else embeds


def make_scheduler(sampler: str, scheduler_config, num_steps: int | None,
                   timestep_spacing: str | None = None):
    """The diffusers scheduler of a discrete sampler, its timesteps set (a multistep or Heun
    scheduler keeps state between steps: one per batch)."""
    if sampler not in SCHEDULERS:
        raise ValueError(f"no diffusers scheduler for sampler {sampler!r}")
    cls, kwargs = SCHEDULERS[sampler]
    if timestep_spacing is not None:
        kwargs = {**kwargs, "timestep_spacing": timestep_spacing}
    scheduler = cls.from_config(scheduler_config, **kwargs)
    scheduler.set_timesteps(num_steps or DEFAULT_STEPS.get(sampler,
                                                           scheduler.config.num_train_timesteps))
    return scheduler


@torch.no_grad()
def sample_batch(unet, scheduler, generators: list[torch.Generator], *, eta: float = 0.0,
                 device="cpu", class_labels: torch.Tensor | None = None) -> torch.Tensor:
    """A discrete scheduler's reverse process for one batch; returns x0 in [-1, 1].

    The calls of diffusers' pipelines (DDPMPipeline's for ddpm/ddim, whose output is reproduced
    exactly; StableDiffusionPipeline's init_noise_sigma and scale_model_input for Euler/Heun).
    Stochastic steps (ddpm, ddim with eta > 0) draw from the images' own generators.
    """
    size = unet.config.sample_size
    shape = (len(generators), unet.config.in_channels, size, size)
    x = randn_tensor(shape, generator=generators, device=torch.device(device), dtype=unet.dtype)
    if scheduler.init_noise_sigma != 1:  # DDPMPipeline's sampling has no such factor
        x = x * scheduler.init_noise_sigma
    step_args = inspect.signature(scheduler.step).parameters
    extra = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    if "generator" in step_args:
        extra["generator"] = generators
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        eps = unet(x_in, t, class_labels=class_labels).sample.to(x.dtype)
        x = scheduler.step(eps, t, x, **extra).prev_sample
    return x


class Guided(torch.nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022) around a class-conditional UNet: one forward
    over the conditional and null halves, eps = eps_null + scale·(eps_cond − eps_null)."""

    def __init__(self, unet, scale: float, null_class: int):
        super().__init__()
        self.unet, self.scale, self.null_class = unet, scale, null_class

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self):
        return self.unet.dtype

    def forward(self, x, t, class_labels):
        null = torch.full_like(class_labels, self.null_class)
        t = t.repeat(2) if torch.is_tensor(t) and t.ndim == 1 else t
        out = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([class_labels, null])).sample
        cond, uncond = out.chunk(2)
        return _Output(uncond + self.scale * (cond - uncond))


@dataclass
class _Output:
    sample: torch.Tensor  # UNet2DModel's output's field, which the samplers read


def guided_unet(unet, scale: float):
    """The UNet the samplers call: itself, or with classifier-free guidance (scale != 1)."""
    if scale == 1:
        return unet
    null = unet.config.get("null_class")
    if null is None:
        raise UserError(f"sampling.guidance {scale} needs a class-conditional generator "
                         "trained with a null class (generator.train.class_conditional true); "
                         "set sampling.guidance to 1 for this one")
    return Guided(unet, scale, null)


class Sampler:
    """Draws images [lo, hi) of a generator with one of the samplers."""

    def __init__(self, unet, scheduler_config, settings: SamplerSettings, device):
        self.settings, self.device = settings, torch.device(device)
        self.unet = guided_unet(unet, settings.guidance)
        self.num_classes, self.scheduler_config = num_classes(unet), scheduler_config
        if settings.sampler == "edm":
            edm = settings.edm
            if settings.num_steps:
                edm = EDMSettings(**{**edm.__dict__, "num_steps": settings.num_steps})
            self.edm, self.denoiser = edm, VPDenoiser(self.unet, scheduler_config)
        else:
            self.scheduler = self.new_scheduler()

    def new_scheduler(self):
        s = self.settings
        return make_scheduler(s.sampler, self.scheduler_config, s.num_steps, s.timestep_spacing)

    @property
    def evaluations_per_image(self) -> int:
        if self.settings.sampler == "edm":
            return 2 * self.edm.num_steps - 1
        return len(self.scheduler.timesteps)

    @torch.no_grad()
    def images(self, seed: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N×H×W×3 images and their labels (-1 for unconditional generators)."""
        gens = image_generators(seed, range(lo, hi))
        labels = (image_labels(seed, range(lo, hi), self.num_classes, self.settings.labels)
                  if self.num_classes else np.full(hi - lo, -1, np.int64))
        cond = torch.from_numpy(labels).to(self.device) if self.num_classes else None
        with autocast(self.settings.precision, self.device):
            if self.settings.sampler == "edm":
                size, ch = self.unet.config.sample_size, self.unet.config.in_channels
                x = edm_sample(self.denoiser, gens, (hi - lo, ch, size, size), self.edm,
                               self.device, class_labels=cond)
            else:
                x = sample_batch(self.unet, self.new_scheduler(), gens, eta=self.settings.eta,
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


def use_compile_cache(folder) -> dict[str, str]:
    """Point Inductor's and Triton's caches at `folder` (inductor/, triton/) unless the
    environment already names them; returns the two settings in force. Read when a compile
    starts, so jobs that share the folder (a run's shards on one machine) compile once."""
    for var, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
        os.environ.setdefault(var, str(Path(folder) / sub))
    return {v: os.environ[v] for v in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}


def prepare_unet(unet, device, *, channels_last: bool = False, compile: bool = False,
                 compile_cache=None):
    """Move a UNet to its device; optionally channels_last memory and torch.compile (its caches
    in `compile_cache`, see use_compile_cache)."""
    unet = unet.to(device).eval().requires_grad_(False)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    if compile and compile_cache is not None:
        log.info("torch.compile caches: %s", use_compile_cache(compile_cache))
    if compile:
        # static shapes: the fastest kernels, and at most two batch sizes (full and last)
        unet = torch.compile(unet, dynamic=False)
    return unet
