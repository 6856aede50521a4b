"""The project's image-array format, checksums and disk-space checks, and (re-exported from
pipeline.core.atomic) the atomic writers every stage writes through."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline.core.atomic import (  # noqa: F401 (re-exported: stages write through io)
    atomic_dir, atomic_path, disk_full, read_json, remove_stale_temporaries, write_csv, write_json,
)
from pipeline.core import records
from pipeline.core.errors import REBUILD, reading


def save_images(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Save uint8 N×H×W×3 RGB images and int64 labels as an (uncompressed) npz.

    The keys `image` and `label` are those of the official AdaInf generated-data files.
    """
    images, labels = check_images(images, labels)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, image=images, label=labels)


def load_images(path: str | os.PathLike, fix: str = REBUILD) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of an npz file, verified (a sample shard's manifest, .json, is read by
    pipeline.data.dataset, which builds on this module: load_npz_or_shard); a damaged file is
    one line naming it and `fix` (pipeline.core.errors)."""
    if str(path).endswith(".json"):
        raise ValueError(f"{path}: a sample shard's manifest, not an npz file "
                         "(pipeline.data.dataset.load_npz_or_shard reads both)")

    records.verify(path)  # an output of ours (a real split): checked against its record
    with reading(path, fix), np.load(path) as f:
        missing = {"image", "label"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)} (has {f.files})")
        return check_images(f["image"], f["label"], source=str(path))


def read_output_json(path: str | os.PathLike):
    """A JSON output of ours (an accuracy, fid.json), checked against its record first: a
    damaged one is one line naming it, moved aside for the next run to rebuild (a user's own
    file, without a record, is read as it is)."""
    records.verify(path)
    return read_json(path)


def check_images(images: np.ndarray, labels: np.ndarray, source: str = "images"):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{source}: expected uint8 N×H×W×3 RGB images, got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),):
        raise ValueError(f"{source}: {len(images)} images but labels of shape {labels.shape}")
    return images, labels.astype(np.int64, copy=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def image_bytes(count: int, resolution: int) -> int:
    """Disk bytes of `count` uint8 RGB images with their int64 labels (a sample shard)."""
    return count * (resolution * resolution * 3 + 8)


def free_space_problem(target: str | os.PathLike, nbytes: int, margin: float = 1.1) -> str | None:
    """Why `nbytes` (times `margin`) will not fit beside `target`, or None when they do. The
    folder need not exist yet: its nearest existing parent's file system is asked."""
    folder = Path(target).parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < nbytes * margin:
        return (f"not enough disk space in {folder}: {nbytes / 1e9:.2f} GB needed, "
                f"{free / 1e9:.2f} GB free")
    return None


def check_free_space(target: str | os.PathLike, nbytes: int, margin: float = 1.1) -> None:
    """Stop before starting work whose output cannot fit on the target's file system."""
    problem = free_space_problem(target, nbytes, margin)
    if problem:
        raise SystemExit(problem)
