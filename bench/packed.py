"""The generated set on disk: packing it and loading it verified for pretraining, against the
previous approach measured in the same run on the same shards.

- pack: the generated part's manifest referencing the sample shards in place (now), against
  copying every shard into the dataset with a new checksum (before: npz shards read, .npy written,
  hashed).
- load+verify: one pass that hashes each file while reading it into the final array, files in
  parallel threads (`load_packed`), against hashing every file sequentially, then memory-mapping
  and concatenating (before: `open_packed(verify=True).load()` with a sequential sha256).

Files are in the page cache (they were just written, as after sampling). Figures scale linearly
with the image count: the output extrapolates to 1M CIFAR-size images.

    python bench/packed.py                      # 200k 32×32 images in shards of 50k
    python bench/packed.py --images 1000000 --out bench/results/packed-cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import io  # noqa: E402
from pipeline.data.dataset import PackedDataset, load_packed, pack, read_manifest, write_shard  # noqa: E402


def sequential_load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Before: verify every file (sequential sha256), then memory-map and concatenate."""
    manifest, base = read_manifest(folder)
    for name, digest in manifest["sha256"].items():
        assert io.sha256_file(base / name) == digest, name
    shards = manifest["shards"]
    ds = PackedDataset(manifest["part"], [np.load(base / s["images"], mmap_mode="r") for s in shards],
                       [np.load(base / s["labels"], mmap_mode="r") for s in shards])
    return ds.load()


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=200_000, help="generated images in all")
    p.add_argument("--shard-size", type=int, default=50_000)
    p.add_argument("--size", type=int, default=32, help="image side (CIFAR: 32)")
    p.add_argument("--workers", type=int, default=None, help="load threads (default: up to 8)")
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--out", default=None, help="JSON results (a .txt goes beside it)")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        shards, npz = [], []
        for k, lo in enumerate(range(0, args.images, args.shard_size)):
            n = min(args.shard_size, args.images - lo)
            images = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
            labels = np.full(n, -1, np.int64)
            shards.append(str(tmp / "samples" / f"shard_{k:05d}.json"))
            write_shard(shards[-1], images, labels)
            npz.append(str(tmp / "old" / f"shard_{k:05d}.npz"))  # the previous shard format
            io.save_images(npz[-1], images, labels)
            del images

        t_ref, _ = timed(pack, tmp / "dataset" / "generated", "generated", shards)
        t_copy, _ = timed(pack, tmp / "old" / "dataset", "generated", npz)
        t_old, (old_images, _) = timed(sequential_load, tmp / "old" / "dataset")
        del old_images
        t_new, (new_images, new_labels) = timed(load_packed, tmp / "dataset" / "generated",
                                                workers=args.workers)
        assert len(new_images) == args.images and (new_labels == -1).all()
        copy_bytes = sum(f.stat().st_size for f in (tmp / "old" / "dataset").iterdir())
        ref_bytes = sum(f.stat().st_size for f in (tmp / "dataset" / "generated").iterdir())

    scale = 1e6 / args.images
    result = {
        "images": args.images, "shard_size": args.shard_size, "size": args.size,
        "cpus": os.cpu_count(), "workers": args.workers,
        "pack_reference_s": t_ref, "pack_copy_s": t_copy, "pack_speedup": t_copy / t_ref,
        "pack_reference_bytes": ref_bytes, "pack_copy_bytes": copy_bytes,
        "load_verify_sequential_s": t_old, "load_verify_onepass_s": t_new,
        "load_verify_speedup": t_old / t_new,
        "per_million": {"pack_reference_s": t_ref * scale, "pack_copy_s": t_copy * scale,
                        "load_verify_sequential_s": t_old * scale,
                        "load_verify_onepass_s": t_new * scale},
    }
    lines = [
        f"{args.images} {args.size}×{args.size} images in shards of {args.shard_size}, "
        f"{os.cpu_count()} CPUs",
        f"pack generated: manifest only {t_ref:.3f} s ({ref_bytes / 1e3:.0f} kB written) vs copy "
        f"{t_copy:.2f} s ({copy_bytes / 1e9:.2f} GB): {t_copy / t_ref:.0f}× faster",
        f"load+verify: one pass, parallel {t_new:.2f} s vs sequential hash then load {t_old:.2f} s:"
        f" {t_old / t_new:.2f}×",
        f"per 1M images: pack {t_ref * scale:.2f} s (target ≤ 3 s), load+verify "
        f"{t_new * scale:.2f} s (target ≤ 5 s; before {t_old * scale:.2f} s)",
    ]
    print("\n".join(lines))
    if args.out:
        io.write_json(args.out, result)
        Path(args.out).with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
