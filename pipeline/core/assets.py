"""The external assets, fetched once before any job needs them, then read only from disk.

Three things come from the network: a hub generator (diffusers' own download into the user's
Hugging Face cache, then copied, as hard links where possible, into a folder of the run), a real
data set (torchvision's CIFAR download, which checks every file's md5) and pytorch-fid's FID
Inception weights (torch.hub's download, which writes to a temporary name and checks the sha256
prefix in the file name before renaming). Each fetch writes a small JSON record of what it has
(commit, sizes, hashes), the file later jobs depend on. An asset already on disk and verified is
not fetched again; a partial download is never taken for a finished one: the three libraries
write to temporary names (`.incomplete`, the md5 check, `.partial`) and the copy here goes
through io.atomic_dir.

A fetch that fails (no network, an unknown model, a damaged file) raises FetchError: one line
naming the asset, what was tried, and the two ways out: the same fetch on a machine with
network, or the config key of a local copy.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pipeline.core import io
from pipeline.core.errors import UserError
from pipeline.core.runtime import first_line

# pytorch-fid's weights (pytorch_fid.inception.FID_WEIGHTS_URL), named with their sha256 prefix.
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
# torch.hub's own pattern for the hash prefix in a file name (torch.hub.HASH_REGEX)
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

# The config key that points the workflow at a local copy instead, per asset.
LOCAL_KEYS = {
    "generator": "generator.model to a local folder (saved with save_pretrained)",
    "real": "real.root to a folder holding the python-format batches and real.download to false",
    "inception": "fid.weights to a local pt_inception-2015-12-05-6726825d.pth",
    "dinov2": "fid.weights to a local copy of timm's DINOv2 model.safetensors",
}
# timm's hub repository of DINOv2 ViT-L/14 (pipeline.evaluation.dinov2.ARCH) and its file
DINOV2_REPO, DINOV2_FILE = "timm/vit_large_patch14_dinov2.lvd142m", "model.safetensors"


class FetchError(UserError):
    """An asset that could not be fetched or verified; the message says how to get it."""


def reason(e: BaseException) -> str:
    """The exception's type and first line (libraries' messages can span a page)."""
    return f"{type(e).__name__}: {first_line(e, 100)}"


def failure(asset: str, what: str, e: BaseException, retry: str) -> FetchError:
    return FetchError(f"cannot fetch {what} ({reason(e)}); run `{retry}` on a machine with "
                      f"network, or set {LOCAL_KEYS[asset]}")


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link to the cache's file where the file system allows it, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def file_entries(folder: Path) -> dict[str, dict]:
    """{relative path: {size, sha256}} of every file under `folder`."""
    return {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": io.sha256_file(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fetch_generator(model: str, out: str | os.PathLike, record: str | os.PathLike,
                    revision: str | None = None, retry: str = "python -m pipeline.fetch") -> dict:
    """A hub pipeline (e.g. google/ddpm-cifar10-32) at `revision` (None: main) into folder `out`.

    diffusers' DiffusionPipeline.download picks the files a pipeline needs and keeps them in the
    Hugging Face cache (it reuses what is cached, and works from the cache alone offline); the
    snapshot folder's name is the commit, recorded with every file's size and sha256.
    """
    from diffusers import DiffusionPipeline

    what = f"generator {model!r} (revision {revision or 'main'}) from the Hugging Face hub"
    try:
        snapshot = Path(DiffusionPipeline.download(model, revision=revision))
    except Exception as e:  # OSError, huggingface_hub's and requests'/httpx's errors, ValueError
        raise failure("generator", what, e, retry) from e
    with io.atomic_dir(out) as tmp:
        for f in sorted(snapshot.rglob("*")):
            if f.is_file():
                _link_or_copy(f.resolve(), tmp / f.relative_to(snapshot))
        files = file_entries(tmp)
    info = {"asset": "generator", "model": model, "revision": revision or "main",
            "commit": snapshot.name, "folder": str(out), "files": files}
    io.write_json(record, info)
    return info


def cifar_class(source: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    try:
        return {"cifar10": CIFAR10, "cifar100": CIFAR100}[source]
    except KeyError:
        raise UserError(f"real.source {source!r} has no download (cifar10 and cifar100 have)")


def fetch_real(source: str, root: str | os.PathLike, record: str | os.PathLike,
               retry: str = "python -m pipeline.fetch") -> dict:
    """CIFAR-10/100 into `root` with torchvision's download: it checks the md5 of every file
    already there and downloads (and checks) the archive only when one is missing or wrong."""
    cls = cifar_class(source)
    root = Path(root)
    what = f"{source} into {root} (torchvision's download of {cls.url})"
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad md5 a RuntimeError
        raise failure("real", what, e, retry) from e
    folder = root / cls.base_folder
    files = {name: {"size": (folder / name).stat().st_size, "md5": md5}
             for name, md5 in cls.train_list + cls.test_list + [[cls.meta["filename"],
                                                                   cls.meta["md5"]]]}
    info = {"asset": "real", "source": source, "root": str(root), "files": files}
    io.write_json(record, info)
    return info


def hash_prefix(url: str) -> str:
    match = HASH_REGEX.search(Path(url).name)
    if not match:
        raise ValueError(f"{url}: no hash prefix in the file name")
    return match.group(1)


def fetch_inception(dest: str | os.PathLike, record: str | os.PathLike,
                    url: str = FID_WEIGHTS_URL, retry: str = "python -m pipeline.fetch") -> dict:
    """pytorch-fid's Inception weights at `dest` (the torch.hub cache's path), verified by the
    sha256 prefix in their name as torch.hub's check_hash does; a file there that fails the check
    is moved aside to NAME.corrupt and downloaded again."""
    import torch

    dest, prefix = Path(dest), hash_prefix(url)
    if dest.exists():
        digest = io.sha256_file(dest)
        if not digest.startswith(prefix):
            os.replace(dest, f"{dest}.corrupt")
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:  # to a temporary name beside dest; renamed only once the hash checks out
            torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix, progress=False)
        except (OSError, RuntimeError) as e:  # URLError; "invalid hash value"
            raise failure("inception", f"FID Inception weights {url} into {dest}", e,
                          retry) from e
        digest = io.sha256_file(dest)
    info = {"asset": "inception", "path": str(dest), "size": dest.stat().st_size,
            "sha256": digest}
    io.write_json(record, info)
    return info


def fetch_dinov2(repo: str, dest: str | os.PathLike, record: str | os.PathLike,
                 retry: str = "python -m pipeline.fetch") -> dict:
    """timm's DINOv2 weights file from the hub (huggingface_hub's download into the user's cache,
    which checks the file against the hub's sha256 and writes to `.incomplete` first), linked
    or copied to `dest` atomically; the record holds the commit and the file's sha256."""
    from huggingface_hub import HfApi, hf_hub_download

    dest = Path(dest)
    try:
        commit = HfApi().model_info(repo).sha
        cached = Path(hf_hub_download(repo, DINOV2_FILE, revision=commit))
    except Exception as e:  # noqa: BLE001  (hub errors: offline, unknown repo, HTTP)
        raise failure("dinov2", f"DINOv2 weights {repo}/{DINOV2_FILE} into {dest}", e,
                      retry) from e
    with io.atomic_path(dest, suffix=dest.suffix) as tmp:
        Path(tmp).unlink()  # a hard link needs the name free
        _link_or_copy(cached, Path(tmp))
    info = {"asset": "dinov2", "repo": repo, "commit": commit, "path": str(dest),
            "size": dest.stat().st_size, "sha256": io.sha256_file(dest)}
    io.write_json(record, info)
    return info


def stale_file_record(record: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """Why the fetch record `record` (absent: nothing to say) no longer describes the single file
    it was written for, at `path` now: the file deleted (as fid_stats' error about a damaged one
    advises), truncated, or looked for elsewhere (another TORCH_HOME). None while it does."""
    if not os.path.exists(record):
        return None
    try:
        info = io.read_json(record)
        recorded, size = info["path"], info["size"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable ({reason(e)})"
    if Path(recorded) != Path(path):
        return f"names {recorded}, not {path}"
    if not os.path.isfile(path):
        return f"names {path}, which is missing"
    if os.path.getsize(path) != size:
        return f"names {path} of {size} bytes, which now has {os.path.getsize(path)}"
    return None


def drop_stale_file_record(record: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """Remove a stale record (stale_file_record), so that the fetch rule whose output it is runs
    again: it verifies or fetches the file and writes a true record. Returns the line saying so."""
    why = stale_file_record(record, path)
    if why is None:
        return None
    os.remove(record)
    return f"{record} {why}: removed, so that the fetch runs again"
