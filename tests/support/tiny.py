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


def write_zero_npz(path, count: int, size: int = 32) -> None:
    """An npz in the authors' format (`image` uint8 N×size×size×3, `label`) holding `count`
    black images of class 0, streamed through zlib so that 1M images take ~13 MB and seconds: a
    stand-in whose headers state the real file's count (what a plan reads), so a documented
    command runs exactly as written."""
    import zipfile

    arrays = {"image": ((count, size, size, 3), np.uint8), "label": ((count,), np.int64)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, (shape, dtype) in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                    "fortran_order": False, "shape": shape})
                left, chunk = count * int(np.prod(shape[1:])) * np.dtype(dtype).itemsize, 1 << 24
                while left > 0:
                    f.write(bytes(min(left, chunk)))
                    left -= chunk
