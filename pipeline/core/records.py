"""Records: what an output is (sha256 and size of each of its files) and what made it (the
job's tracked settings, the code, torch and diffusers versions, the device), written atomically
beside it as NAME.record.json, and checked by every reader before use.

The sample shards' manifests (pipeline.data.dataset) already work this way; this module extends
the pattern to the single files and folders the other stages write (real splits, the generator,
FID statistics and fid.json, encoders and their loss curves, checkpoints, the accuracies, the
summary). A file that does not match its record is
moved aside (NAME.corrupt, as damaged shards are) with one line naming it, so that the next plain
run, which asks for every output (rule all), rebuilds it. Torch-free: the Snakefile uses it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.core import atomic
from pipeline.core.errors import UserError

SUFFIX = ".record.json"
REPO = Path(__file__).resolve().parents[2]
SKIP = (".snakemake_timestamp",)  # Snakemake's marker in a directory output: not content


class RecordError(UserError, ValueError):
    """An output that does not match its record (damaged, truncated, or written by hand)."""


def record_path(path: str | os.PathLike) -> Path:
    """Where the record of `path` (a file or a folder) lives: beside it, NAME.record.json."""
    return Path(f"{os.path.normpath(path)}{SUFFIX}")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in SKIP
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def content(path: str | os.PathLike) -> dict[str, dict]:
    """{name: {sha256, bytes}} of a file (its own name) or of every file in a folder (relative
    names; hidden files and Snakemake's timestamp aside)."""
    path = Path(path)
    return {(p.name if p == path else p.relative_to(path).as_posix()):
            {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in _files(path)}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The checkout's git commit (with `+dirty` for uncommitted changes), else the package's
    version: what a result's code was."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "pipeline", "workflow"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "adainf-pipeline " + _version("adainf-pipeline")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(device=None) -> dict:
    """The code and libraries that made an output, and where it ran."""
    return {"code": code_version(), "python": sys.version.split()[0],
            "torch": _version("torch"), "diffusers": _version("diffusers"),
            "device": None if device is None else str(device)}


def tracked_settings(declared, argv: list[str]) -> dict[str, list[str]]:
    """The job's settings, as its command gave them: {flag: [values]} for each tracked option of
    the stage's declarations (pipeline.vocab.options) in `argv`. Strings, as the workflow wrote
    them, so the Snakefile compares them with the options it plans (job_params) as they are."""
    tracked = {o.flag for o in declared if o.tracked}
    return {flag: values for flag, values in split_options(argv).items() if flag in tracked}


def split_options(argv: list[str]) -> dict[str, list[str]]:
    """`--flag v1 v2 --switch` as {"--flag": ["v1", "v2"], "--switch": []}."""
    out, flag = {}, None
    for token in argv:
        if token.startswith("--"):
            flag, _, value = token.partition("=")
            out[flag] = [value] if value else []
        elif flag is not None:
            out[flag].append(token)
    return out


def write(path: str | os.PathLike, settings: dict | None = None, device=None, **made_by) -> dict:
    """Write the record of `path` (finished, in place) atomically beside it; returns it."""
    record = {"files": content(path), "settings": settings or {},
              "made_by": {**made_by, **provenance(device)}}
    atomic.write_json(record_path(path), record)
    return record


def read(path: str | os.PathLike) -> dict | None:
    """The record of `path`, or None when it has none (a user's own file)."""
    try:
        return atomic.read_json(record_path(path))
    except FileNotFoundError:
        return None
    except ValueError:  # a damaged record: as good as none, and the file cannot be trusted
        return {"files": {}}


def problem(path: str | os.PathLike, record: dict, hash_limit: float = float("inf")) -> str | None:
    """Why `path` does not match `record`, or None. Sizes always; sha256 of files up to
    `hash_limit` bytes."""
    path = Path(path)
    if not path.exists():
        return "missing"
    actual = {(p.name if p == path else p.relative_to(path).as_posix()): p for p in _files(path)}
    if set(actual) != set(record["files"]):
        missing = sorted(set(record["files"]) - set(actual)) or sorted(set(actual))
        return f"files differ from its record ({', '.join(missing[:3])})"
    for name, p in actual.items():
        want, size = record["files"][name], p.stat().st_size
        if size != want["bytes"]:
            return f"{name}: {size} bytes, its record says {want['bytes']} (truncated?)"
        if size <= hash_limit and _sha256(p) != want["sha256"]:
            return f"{name}: sha256 differs from its record's {want['sha256'][:12]}..."
    return None


def move_aside(path: str | os.PathLike) -> str:
    """Move a damaged output to NAME.corrupt (replacing an older one); returns that name, or
    '' when another job moved it first."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    try:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside)
        os.replace(path, aside)
    except OSError:
        return ""
    return aside.name


def verify(path: str | os.PathLike) -> dict | None:
    """Check `path` against its record before use (a file without a record, a user's own, is
    used as it is). A mismatch moves it aside and raises RecordError, one line naming it: the
    stage ends non-zero and the next run rebuilds it. Returns the record."""
    record = read(path)
    if record is None:
        return None
    why = problem(path, record)
    if why:
        aside = move_aside(path)
        moved = f"; moved aside to {aside}" if aside else ""
        raise RecordError(f"{os.path.normpath(path)} does not match its record ({why}){moved}; "
                          "the next run rebuilds it")
    return record


def write_for(paths, declared, argv: list[str] | None, device=None, **made_by) -> None:
    """A stage's records of its finished outputs: the settings from its command line (`argv`,
    None: sys.argv's) and the declarations of its options."""
    settings = tracked_settings(declared, sys.argv[1:] if argv is None else argv)
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        write(path, settings, device, **made_by)


def digest(record: dict | None) -> str | None:
    """One sha256 for a record's content (a folder's files): what a consumer records of it."""
    if record is None:
        return None
    return hashlib.sha256(json.dumps(record["files"], sort_keys=True).encode()).hexdigest()


def _signature(path: Path) -> list:
    """What tells a file or folder changed without reading it: each file's size and time."""
    return [[p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in _files(path)]


def _load_cache(cache_file) -> dict:
    try:
        return atomic.read_json(cache_file)
    except (OSError, ValueError):
        return {}


def sweep(paths, cache_file) -> list[str]:
    """Check the outputs among `paths` that have a record (a finished run's, when the workflow
    is read): each one whose files' sizes and times changed since it last passed (the cache) is
    hashed again; a mismatch is moved aside, so that this run rebuilds it. Returns one line per
    file moved. The cache keeps a second run from hashing a GB of encoders again."""
    cache, passed, lines = _load_cache(cache_file), {}, []
    for path in map(str, paths):
        if not os.path.exists(path) or not record_path(path).exists():
            continue
        signature = _signature(Path(path)) + _signature(record_path(path))
        why = None if cache.get(path) == signature else problem(path, read(path))
        if why is None:
            passed[path] = signature
            continue
        aside = move_aside(path)
        lines.append(f"{os.path.normpath(path)} does not match its record ({why}): moved aside "
                     f"to {aside}, so that this run rebuilds it")
    if passed != cache:
        atomic.write_json(cache_file, passed)
    return lines


def input_record(path: str | os.PathLike, record_file: str | os.PathLike, cache_file) -> None:
    """The content of a user's input (a real-data file or folder, a generator folder) as a small
    record the jobs reading it depend on: rewritten only when the content changed, so that
    Snakemake reruns them then and only then (a file replaced in place, even with an older
    time). Files whose size and time are those of the last look are not hashed again: a 3 GB
    file costs a stat per dry run."""
    path, cache = Path(path).expanduser(), _load_cache(cache_file)
    files, fresh = {}, {}
    for p in _files(path):
        key, stat = str(p.resolve()), p.stat()
        hit = cache.get(key)
        sha = hit[2] if hit and hit[:2] == [stat.st_size, stat.st_mtime_ns] else _sha256(p)
        fresh[key] = [stat.st_size, stat.st_mtime_ns, sha]
        files[p.name if p == path else p.relative_to(path).as_posix()] = {
            "sha256": sha, "bytes": stat.st_size}
    record = {"path": str(path), "files": files}
    try:
        same = atomic.read_json(record_file) == record
    except (OSError, ValueError):
        same = False
    if not same:
        atomic.write_json(record_file, record)
    if {**cache, **fresh} != cache:
        atomic.write_json(cache_file, {**cache, **fresh})
