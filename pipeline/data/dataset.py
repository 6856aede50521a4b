"""Packed datasets that pretraining reads: memory-mappable .npy shards plus a manifest.

One folder holds one part, `real` or `generated`, so real-only runs never wait for sampling:
    manifest.json                 part, count, image shape, a sha256 and a size per file
    00000.images.npy / 00000.labels.npy, 00001...   (generated images read as label -1 unless
                                                      generator.labels is keep)

A sample shard is written once, already in this format: `shard_00000.images.npy`,
`shard_00000.labels.npy` and their manifest `shard_00000.json` (written last). Packing the
generated part then writes only a manifest whose file names point at the shards (relative
paths), so the generated set exists once on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipeline.core import io
from pipeline.core.errors import UserError
from pipeline.vocab.names import PARTS  # noqa: F401  (re-exported)

FORMAT = "adainf-packed-v1"
CHUNK = 1 << 22  # bytes read (and hashed) at a time


class ChecksumError(UserError, ValueError):
    """A damaged file of a packed dataset or sample shard."""


def _file_entry(path: Path) -> tuple[str, int]:
    return io.sha256_file(path), path.stat().st_size


def write_shard(manifest_path: str | Path, images: np.ndarray, labels: np.ndarray,
                part: str = "generated", made_by: dict | None = None) -> dict:
    """Write one shard in the packed format beside `manifest_path` (NAME.json): NAME.images.npy,
    NAME.labels.npy, then the manifest with their checksums, each file atomically; `made_by`
    (the job's settings and code, pipeline.core.records) goes in the manifest, its record."""
    images, labels = io.check_images(images, labels)
    manifest_path = Path(manifest_path)
    stem = manifest_path.name.removesuffix(".json")
    names = {"images": f"{stem}.images.npy", "labels": f"{stem}.labels.npy"}
    sha, size = {}, {}
    for key, array in (("images", images), ("labels", labels)):
        target = manifest_path.parent / names[key]
        with io.atomic_path(target) as tmp:
            np.save(tmp, array)
            sha[names[key]], size[names[key]] = _file_entry(tmp)
    manifest = {"format": FORMAT, "part": part, "count": len(images),
                "image_shape": list(images.shape[1:]), "shards": [{**names, "count": len(images)}],
                "sha256": sha, "bytes": size, **({"made_by": made_by} if made_by else {})}
    io.write_json(manifest_path, manifest)
    return manifest


def pack(out_dir: str | Path, part: str, files: list[str]) -> dict:
    """Pack image files into a dataset folder, atomically: shard manifests (.json, from
    write_shard) are referenced in place; npz files are copied, one shard per file.

    Labels are stored as the files give them; generated images read as label -1 unless asked
    (load_packed's keep_labels).
    """
    if part not in PARTS:
        raise ValueError(f"unknown dataset part {part!r}; valid: {', '.join(PARTS)}")
    out_dir = Path(out_dir)
    shards, checksums, sizes, shape = [], {}, {}, None

    def check_shape(path, image_shape):
        nonlocal shape
        if shape is not None and tuple(image_shape) != shape:
            raise ValueError(f"{path}: image shape {tuple(image_shape)} differs from the "
                             f"{shape} of earlier shards")
        shape = tuple(image_shape)

    with io.atomic_dir(out_dir) as tmp:
        for k, path in enumerate(tqdm(files, desc=f"pack {part}", mininterval=5)):
            if str(path).endswith(".json"):
                manifest, base = read_manifest(path)
                check_shape(path, manifest["image_shape"])
                check_sizes(manifest, base)  # a truncated shard is caught here, cheaply
                # names relative to the final folder, so the output folder can move as a whole
                rel = {n: os.path.relpath(base / n, out_dir) for n in manifest["sha256"]}
                for s in manifest["shards"]:
                    shards.append({**s, "images": rel[s["images"]], "labels": rel[s["labels"]]})
                checksums.update({rel[n]: d for n, d in manifest["sha256"].items()})
                sizes.update({rel[n]: b for n, b in manifest.get("bytes", {}).items()})
                continue
            images, labels = io.load_images(path)
            check_shape(path, images.shape[1:])
            names = {"images": f"{k:05d}.images.npy", "labels": f"{k:05d}.labels.npy"}
            np.save(tmp / names["images"], images)
            np.save(tmp / names["labels"], labels)
            for name in names.values():
                checksums[name], sizes[name] = _file_entry(tmp / name)
            shards.append({**names, "count": len(images)})
        manifest = {
            "format": FORMAT, "part": part, "count": sum(s["count"] for s in shards),
            "image_shape": list(shape) if shape else None, "shards": shards, "sha256": checksums,
            "bytes": sizes,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_content_record(path: str | Path, manifest: dict) -> None:
    """What a packed folder holds, by content only (part, count, each file's sha256): equal
    bytes for equal data, so Snakemake's checksum of this small file tells a repack that
    changed nothing from one that did."""
    io.write_json(path, {"part": manifest["part"], "count": manifest["count"],
                         "sha256": dict(sorted(manifest["sha256"].items()))})


def read_manifest(path: str | Path) -> tuple[dict, Path]:
    """A dataset folder's manifest.json, or a shard's manifest file; and the folder that the
    file names in it are relative to."""
    path = Path(path)
    manifest_path = path / "manifest.json" if path.is_dir() or not path.suffix else path
    if not manifest_path.exists():
        if manifest_path != path and path.is_dir() and (path.parent / f"{path.name}.json").exists():
            # a packed folder of ours (its record beside it) that lost its manifest
            raise ChecksumError(f"{path}: no manifest.json{_move_aside(path)}; the next run "
                                "repacks it")
        what = "not a packed dataset (no manifest.json)" if manifest_path != path else "missing"
        raise FileNotFoundError(f"{path}: {what}")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest, manifest_path.parent


def _move_aside(target: Path) -> str:
    aside = target.with_name(target.name + ".corrupt")
    try:
        if aside.is_dir():
            shutil.rmtree(aside)
        os.replace(target, aside)
    except OSError:  # another job moved it first
        return ""
    return f"; moved {os.path.normpath(target)} aside to {aside.name}"


def _corrupt(path: Path, base: Path, problem: str) -> ChecksumError:
    """Move the damaged output aside (to NAME.corrupt) so that Snakemake rebuilds it, and
    describe it in one line.

    Snakemake reruns a job for a missing output only when a job downstream has to run, so the
    packed dataset being read (a directory output of pack) goes aside too: then pack reruns and
    asks for the shard again. A damaged file of a sample shard (outside that folder) goes aside
    itself, which reruns its sample job.
    """
    dataset = (base / "manifest.json").exists()  # a packed dataset folder, not a shard manifest
    inside = os.path.normpath(path.parent) == os.path.normpath(base)
    moved = _move_aside(path) if not (inside and dataset) else ""
    if dataset:
        moved += _move_aside(base)
    return ChecksumError(f"{os.path.normpath(path)}: {problem}{moved}; the next run "
                         "regenerates it")


def check_sizes(manifest: dict, base: Path) -> None:
    """Every file exists with its recorded size: catches truncation without reading the data."""
    for name, size in manifest.get("bytes", {}).items():
        path = base / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing (listed in the manifest of {base})")
        actual = path.stat().st_size
        if actual != size:
            raise _corrupt(path, base, f"{actual} bytes, the manifest says {size} (truncated?)")


def _read_npy_into(path: Path, out: np.ndarray, digest: str | None, base: Path) -> None:
    """Read an .npy file into `out` (a contiguous array of its shape and dtype), hashing the
    bytes as they arrive: one pass over the file instead of one to verify and one to load."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        if tuple(shape) != out.shape or dtype != out.dtype or fortran:
            raise _corrupt(path, base, f"holds {dtype} {shape}, the manifest says "
                                       f"{out.dtype} {out.shape}")
        header_len = f.tell()
        f.seek(0)
        h.update(f.read(header_len))
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos = 0
        while pos < len(view):
            n = f.readinto(view[pos:pos + CHUNK])
            if not n:
                raise _corrupt(path, base, f"truncated: {header_len + pos} bytes")
            if digest is not None:
                h.update(view[pos:pos + n])
            pos += n
        if digest is not None:
            h.update(f.read())  # trailing bytes, if any, count against the checksum
    if digest is not None and h.hexdigest() != digest:
        raise _corrupt(path, base, f"sha256 {h.hexdigest()[:12]}... does not match the "
                                   f"manifest's {digest[:12]}...")


def load_packed(path: str | Path, verify: bool = True, workers: int | None = None,
                limit: int | None = None, rows: np.ndarray | None = None,
                keep_labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All of a packed dataset (folder or shard manifest) in memory: images and labels.

    With `verify`, each file's sha256 is computed while it is read; files are read by parallel
    threads (reading and hashing release the GIL). A damaged file raises ChecksumError naming
    it, and is moved aside so that the next run rebuilds it. With `limit`, only the first
    `limit` images (the shards holding them, verified whole) are read; with `rows` (sorted
    global indices), only those images (the shards holding them, verified whole, one at a time
    per thread). Generated images read as label -1 unless `keep_labels` (their file's labels:
    an npz set's classes, a class-conditional sampler's).
    """
    manifest, base = read_manifest(path)
    n, shape = manifest["count"], tuple(manifest["image_shape"] or (0, 0, 3))
    held = sum(s["count"] for s in manifest["shards"])
    if held != n:
        raise ValueError(f"{path}: shards hold {held} images, the manifest says {n}")
    if limit is not None and limit > n:
        raise ValueError(f"{path}: {limit} images asked for, the dataset holds {n}")
    if rows is not None:
        rows = np.asarray(rows, np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= n or (np.diff(rows) <= 0).any()):
            raise ValueError(f"{path}: rows must be sorted distinct indices in 0..{n - 1}")
        images, labels = _load_rows(manifest, base, rows, shape, verify, workers)
    else:
        images, labels = _load_first(manifest, base, limit, shape, verify, workers)
    if manifest["part"] == "generated" and not keep_labels:
        labels.fill(-1)
    return images, labels


def _reader(base: Path, manifest: dict, verify: bool):
    """read(name, out): one file of the manifest into `out`. A shard's name is relative to the
    dataset folder (`../../samples/..`, written by os.path.relpath), which a thread that finds
    damage moves aside while the others still open theirs: so `..` is taken out as relpath put
    it in, lexically, before the threads start."""
    files = {name: Path(os.path.normpath(base / name)) for name in manifest["sha256"]}

    def read(name: str, out: np.ndarray) -> None:
        _read_npy_into(files[name], out, manifest["sha256"][name] if verify else None, base)
    return read


def _load_first(manifest, base, limit, shape, verify, workers):
    shards, covered = [], 0
    for s in manifest["shards"]:
        if limit is not None and covered >= limit:
            break
        shards.append(s)
        covered += s["count"]
    images, labels = np.empty((covered, *shape), np.uint8), np.empty(covered, np.int64)
    read = _reader(base, manifest, verify)
    jobs, offset = [], 0
    for s in shards:
        part = slice(offset, offset + s["count"])
        jobs += [(s["images"], images[part]), (s["labels"], labels[part])]
        offset += s["count"]
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: read(*job), jobs))
    return images[:limit], labels[:limit]


def _load_rows(manifest, base, rows, shape, verify, workers):
    images, labels = np.empty((len(rows), *shape), np.uint8), np.empty(len(rows), np.int64)
    read_file = _reader(base, manifest, verify)
    jobs, offset = [], 0
    for s in manifest["shards"]:
        lo, hi = np.searchsorted(rows, [offset, offset + s["count"]])
        if hi > lo:
            jobs.append((s, offset, slice(lo, hi)))
        offset += s["count"]

    def read(job):
        s, start, out = job
        whole_x = np.empty((s["count"], *shape), np.uint8)
        whole_y = np.empty(s["count"], np.int64)
        read_file(s["images"], whole_x)
        read_file(s["labels"], whole_y)
        images[out], labels[out] = whole_x[rows[out] - start], whole_y[rows[out] - start]

    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(read, jobs))
    return images, labels


def generated_subset(total: int, count: int, seed: int) -> np.ndarray:
    """`count` of `total` generated images, sorted global indices, drawn at random: image i gets
    the key u_i (the i-th draw of one seeded stream, so a function of i and the seed only, not
    of the shards) and the `count` smallest keys are taken. A smaller count's images are part of
    a larger one's, and a file sorted by class gives a class-balanced subset in expectation
    (the first N of the authors' EDM 1M file would be its first classes only)."""
    if not 0 < count <= total:
        raise ValueError(f"num_generated {count}: the generated set holds {total} images")
    keys = np.random.default_rng(seed).random(total)
    return np.sort(np.argsort(keys, kind="stable")[:count])


def load_npz_or_shard(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of an npz file or of a sample shard's manifest (.json), verified."""
    return load_packed(path) if str(path).endswith(".json") else io.load_images(path)


@dataclass
class PackedDataset:
    part: str
    images: list[np.ndarray]  # memory-mapped, one per shard
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return sum(len(x) for x in self.images)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All shards concatenated into memory (generated images with label -1)."""
        labels = np.concatenate(self.labels)
        if self.part == "generated":
            labels = np.full(len(labels), -1, np.int64)
        return np.concatenate(self.images), labels


def open_packed(folder: str | Path, verify: bool = True) -> PackedDataset:
    """Memory-map a packed dataset (folder or shard manifest); with `verify`, check every
    file's sha256 first (in parallel). A damaged file is moved aside (see load_packed)."""
    manifest, base = read_manifest(folder)
    if verify:
        check_sizes(manifest, base)

        def check(item):
            name, digest = item
            actual = io.sha256_file(base / name)
            if actual != digest:
                raise _corrupt(base / name, base, f"sha256 {actual[:12]}... does not match the "
                                                  f"manifest's {digest[:12]}...")

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(check, manifest["sha256"].items()))
    shards = manifest["shards"]
    return PackedDataset(
        manifest["part"],
        [np.load(base / s["images"], mmap_mode="r") for s in shards],
        [np.load(base / s["labels"], mmap_mode="r") for s in shards],
    )


# What the report states about the sampler, read from the shards' records (their manifests'
# made_by), by the sample stage's flag.
SAMPLING_FLAGS = {"--sampler": "sampler", "--steps": "steps", "--precision": "precision",
                  "--seed": "seed"}


def recorded_sampling(manifests: list[str]) -> dict:
    """{sampler, steps, precision, seed} as the shards' records say they were made (a value the
    shards disagree on: every one, joined by ' / '); empty when none carries a record (npz
    shards cut from the authors' files, shards made before records)."""
    seen: dict[str, list] = {}
    for path in manifests:
        settings = read_manifest(path)[0].get("made_by", {}).get("settings", {})
        for flag, key in SAMPLING_FLAGS.items():
            if flag in settings:
                value = " ".join(settings[flag])
                value = int(value) if value.isdigit() else value
                if value not in seen.setdefault(key, []):
                    seen[key].append(value)
    return {k: v[0] if len(v) == 1 else " / ".join(map(str, v)) for k, v in seen.items()}
