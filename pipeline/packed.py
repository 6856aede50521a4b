"""Packed datasets that pretraining reads: memory-mappable .npy shards plus a manifest.

One folder holds one part, `real` or `generated`, so real-only runs never wait for sampling:
    manifest.json                 part, count, image shape, a sha256 per file
    00000.images.npy / 00000.labels.npy, 00001...   (generated images have label -1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipeline import io

FORMAT = "adainf-packed-v1"
PARTS = ("real", "generated")


class ChecksumError(ValueError):
    pass


def pack(out_dir: str | Path, part: str, files: list[str]) -> dict:
    """Pack npz image files into a dataset folder, one shard per file, atomically.

    Generated images get label -1 whatever their file says.
    """
    if part not in PARTS:
        raise ValueError(f"unknown dataset part {part!r}; valid: {', '.join(PARTS)}")
    shards, checksums, shape = [], {}, None
    with io.atomic_dir(out_dir) as tmp:
        for k, path in enumerate(tqdm(files, desc=f"pack {part}", mininterval=5)):
            images, labels = io.load_images(path)
            if shape is not None and images.shape[1:] != shape:
                raise ValueError(f"{path}: image shape {images.shape[1:]} differs from the "
                                 f"{shape} of earlier shards")
            shape = images.shape[1:]
            if part == "generated":
                labels = np.full(len(images), -1, np.int64)
            names = {"images": f"{k:05d}.images.npy", "labels": f"{k:05d}.labels.npy"}
            np.save(tmp / names["images"], images)
            np.save(tmp / names["labels"], labels)
            for name in names.values():
                checksums[name] = io.sha256_file(tmp / name)
            shards.append({**names, "count": len(images)})
        manifest = {
            "format": FORMAT, "part": part, "count": sum(s["count"] for s in shards),
            "image_shape": list(shape) if shape else None, "shards": shards, "sha256": checksums,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass
class PackedDataset:
    part: str
    images: list[np.ndarray]  # memory-mapped, one per shard
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return sum(len(x) for x in self.images)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All shards concatenated into memory."""
        return np.concatenate(self.images), np.concatenate(self.labels)


def open_packed(folder: str | Path, verify: bool = True) -> PackedDataset:
    """Memory-map a packed dataset; with `verify`, check every file's sha256 first."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{folder} is not a packed dataset (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if verify:
        for name, digest in manifest["sha256"].items():
            actual = io.sha256_file(folder / name)
            if actual != digest:
                raise ChecksumError(f"{folder / name}: sha256 {actual[:12]}... does not match the "
                                    f"manifest's {digest[:12]}...; re-run the pack stage")
    shards = manifest["shards"]
    return PackedDataset(
        manifest["part"],
        [np.load(folder / s["images"], mmap_mode="r") for s in shards],
        [np.load(folder / s["labels"], mmap_mode="r") for s in shards],
    )
