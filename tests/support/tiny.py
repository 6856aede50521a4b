"""Tiny models and images: a diffusers UNet of a few thousand parameters, random uint8 images."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import UNet2DModel


def make_tiny_unet(seed: int = 0) -> UNet2DModel:
    """An 8×8 RGB UNet with two levels (8, 16 channels): a few thousand parameters."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()


def make_images(n: int, size: int = 8, seed: int = 0, high: int = 256) -> np.ndarray:
    """n random uint8 size×size×3 images with values in [0, high)."""
    return np.random.default_rng(seed).integers(0, high, (n, size, size, 3), dtype=np.uint8)
