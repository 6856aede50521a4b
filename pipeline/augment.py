"""Batched augmentation with per-sample random parameters (kornia), for two-view SSL.

Presets follow the AdaInf paper's CIFAR configs: `standard` is the usual SimCLR recipe, `weak`
is AdaInf's weaker one (crop min scale 0.08 → 0.2, jitter probability 0.8 → 0.4, jitter strength
halved).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import kornia.augmentation as K
import torch.nn as nn


@dataclass(frozen=True)
class AugParams:
    crop_min_scale: float = 0.08
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    solarize_prob: float = 0.0


PRESETS = {
    "standard": AugParams(),
    "weak": AugParams(crop_min_scale=0.2, jitter_prob=0.4, brightness=0.4, contrast=0.4,
                      saturation=0.4, hue=0.1),
}


def preset(name: str, **overrides) -> AugParams:
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def build_augmentation(params: AugParams, size: int) -> nn.Module:
    """A module mapping a float batch in [0, 1] (N×3×H×W) to one augmented view of it."""
    p = params
    # At CIFAR size a kernel of ~10 % of the image side, odd, as SimCLR prescribes.
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    ops = [
        K.RandomResizedCrop((size, size), scale=(p.crop_min_scale, 1.0)),
        K.RandomHorizontalFlip(p=p.flip_prob),
        K.ColorJitter(p.brightness, p.contrast, p.saturation, p.hue, p=p.jitter_prob),
        K.RandomGrayscale(p=p.grayscale_prob),
        K.RandomGaussianBlur((kernel, kernel), sigma=(0.1, 2.0), p=p.blur_prob),
        K.RandomSolarize(thresholds=0.0, additions=0.0, p=p.solarize_prob),
    ]
    # kornia samples parameters even for p=0; skip those ops entirely.
    keep = [op for op in ops if getattr(op, "p", 1.0) > 0]
    return nn.Sequential(*keep)


def describe(params: AugParams) -> dict:
    return asdict(params)
