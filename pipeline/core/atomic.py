"""Atomic file output: every stage writes through these helpers.

The data goes to a temporary name in the target's folder and is renamed into place only once
complete, so a killed job never leaves a file that looks finished to Snakemake or to the next
stage. The temporary files of a write that was killed (SIGKILL leaves no chance to clean up) are
removed by the next write of the same target. (Apart from pipeline.core.io so that
pipeline.core.records, which io's readers call, can write without importing io.)
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from pipeline.core.errors import UserError


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
