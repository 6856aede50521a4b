"""Atomic file output and the project's image-array format.

Every stage writes through these helpers: the data goes to a temporary name in the target's
folder and is renamed into place only once complete, so a killed job never leaves a file that
looks finished to Snakemake or to the next stage. The temporary files of a write that was
killed (SIGKILL leaves no chance to clean up) are removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pipeline.core.errors import REBUILD, UserError, reading


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(target: Path) -> None:
    """Delete what an earlier, killed write of `target` left: `.NAME.<random>.tmp*` beside it
    (mkstemp/mkdtemp names). Snakemake runs one job per output, so none is still being written."""
    pattern = re.compile(r"\." + re.escape(target.name) + r"\.[A-Za-z0-9_]{8}\.tmp")
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if pattern.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    `suffix` defaults to the target's own suffix, because some writers (np.savez, torch.save of
    some formats) insist on or append an extension.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp" + (target.suffix if suffix is None else suffix),
        dir=target.parent,
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, target)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise UserError(disk_full(target, _size(Path(tmp)))) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike):
    """Yield a temporary folder beside `target`; it replaces `target` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give the usual mode
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise UserError(disk_full(target, _size(tmp))) from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def disk_full(target: Path, written: int) -> str:
    """The line for a write that filled its disk: the file, what it had written, what is free."""
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    return (f"{target}: no space left on the device of {folder} (the write had reached "
            f"{written / 1e6:.1f} MB, {free / 1e6:.1f} MB free); free more than "
            f"{written / 1e6:.1f} MB there, or set output_dir to a disk with room, then run "
            "snakemake again (nothing finished is lost)")


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames: list[str]) -> None:
    """Rows of dicts as a CSV file with a header line, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


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
    from pipeline.core import records  # it builds on this module

    records.verify(path)  # an output of ours (a real split): checked against its record
    with reading(path, fix), np.load(path) as f:
        missing = {"image", "label"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)} (has {f.files})")
        return check_images(f["image"], f["label"], source=str(path))


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
