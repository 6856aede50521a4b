"""Generated images brought as npz files (generator.source: npz), cut into the sample shards.

The AdaInf authors distribute their generated sets (EDM, STF: not diffusers models) as npz files
with `image` (uint8 N×H×W×3) and `label`. This module reads one such file or a folder of them
(sorted by name, read as one sequence) and writes the same shards the sample stage writes, through
the same writer (pipeline.data.dataset.write_shard), so FID, packing and pretraining run unchanged. The
labels are kept in the shards; pretraining reads them as -1 unless generator.labels is keep. A file
written in BGR (the authors' generated_data.py reads its PNGs with cv2.imread and saves the array
as it is) is swapped to RGB here, once, so FID, the report's pictures and training all see RGB.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.core import io
from pipeline.core.errors import REPLACE, reading
from pipeline.data.dataset import write_shard


def npz_files(path: str | Path) -> list[Path]:
    """The file itself, or the folder's *.npz files sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise ValueError(f"generator.path {path}: no .npz files in this folder")
        return files
    if not path.is_file():
        raise ValueError(f"generator.path {path}: no such file or folder")
    return [path]


def _member_shape(archive: zipfile.ZipFile, name: str, source: Path) -> tuple[int, ...]:
    if f"{name}.npy" not in archive.namelist():
        raise ValueError(f"{source}: no array {name!r} (has "
                         f"{[n.removesuffix('.npy') for n in archive.namelist()]})")
    with archive.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    if name == "image" and (dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3):
        raise ValueError(f"{source}: expected uint8 N×H×W×3 images, got {dtype} {shape}")
    return shape


def image_shape(files: list[Path]) -> tuple[int, int, int, int]:
    """(total count, H, W, 3) from the files' headers, without reading the pixels (so the
    workflow can plan the shards of a 3 GB file at once)."""
    total, hw = 0, None
    for path in files:
        with reading(path, REPLACE), zipfile.ZipFile(path) as archive:
            shape = _member_shape(archive, "image", path)
            labels = _member_shape(archive, "label", path)
        if labels != shape[:1]:
            raise ValueError(f"{path}: {shape[0]} images but labels of shape {labels}")
        if hw is not None and shape[1:] != hw:
            raise ValueError(f"{path}: images {shape[1:]}, the first file's {hw}")
        hw = shape[1:]
        total += shape[0]
    return (total, *hw)


def unlabelled(files: list[Path]) -> bool:
    """Every image labelled -1: a file from the authors' generated_data.py (whose cv2.imread
    makes it BGR), not one that kept its generator's classes."""
    for path in files:
        with reading(path, REPLACE), np.load(path) as f:
            if (f["label"] != -1).any():
                return False
    return True


def _chunks(files: list[Path], size: int, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The first `count` images of the files in order, `size` at a time (one file in memory at a
    time, plus the piece of a shard that spans two files)."""
    pending, have = [], 0
    for path in files:
        images, labels = io.load_images(path, REPLACE)
        start = 0
        while start < len(images) and count > 0:
            n = min(size - have, len(images) - start, count)
            pending.append((images[start:start + n], labels[start:start + n]))
            start, have, count = start + n, have + n, count - n
            if have == size or count == 0:
                yield (np.concatenate([x for x, _ in pending]),
                       np.concatenate([y for _, y in pending]))
                pending, have = [], 0
        if count == 0:
            return


def cut_into_shards(files: list[Path], outputs: list[str | Path], shard_size: int,
                    num_images: int, resolution: int | None = None, bgr: bool = False) -> int:
    """Write the first `num_images` images of `files` (in order) into `outputs`, shard k holding
    images [k·shard_size, (k+1)·shard_size), through the sample stage's writer; `bgr` files get
    their channels reversed to RGB. Returns the number written (at most all the files hold)."""
    total, height, width, _ = image_shape(files)
    if resolution is not None and (height, width) != (resolution, resolution):
        raise ValueError(f"{files[0]}: images are {height}×{width}, real.resolution is "
                         f"{resolution}")
    num_images = min(num_images, total)
    expected = -(-num_images // shard_size)
    if len(outputs) != expected:
        raise ValueError(f"{len(outputs)} shard files for {num_images} images in shards of "
                         f"{shard_size} (need {expected})")
    written = 0
    for out, (images, labels) in zip(outputs, _chunks(files, shard_size, num_images), strict=True):
        if bgr:
            images = np.ascontiguousarray(images[..., ::-1])
        write_shard(out, images, labels)
        written += len(images)
    return written
