"""FID feature extraction speed: images/s of pytorch-fid's Inception in fp32, TF32 and bf16, and
the FID difference each precision causes against fp32 (same images, same run).

    python bench/fid.py                                   # CPU, random weights, a few images
    python bench/fid.py --images 50000 --batch-size 1000 --out bench/results/fid-h100.json  # GPU

Without the real weights in the torch.hub cache, a random-weight Inception of the same
architecture is timed (speed does not depend on the weights; the FID differences then do not
carry over to real features).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.evaluation.frechet import (FeatureStats,  # noqa: E402
                              fid_inception_architecture, frechet_distance, inception_features,
                              inception_model, weights_cache_path)
from pipeline.core.runtime import resolve_device, set_tf32  # noqa: E402


def random_inception(device, dims: int = 2048):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.pth"
        torch.manual_seed(0)
        net = fid_inception_architecture()
        for m in net.modules():  # He init keeps features input-dependent through ~100 layers
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        torch.save(net.state_dict(), path)
        model, _ = inception_model(device, dims, weights=path)
    return model, "random"


def fid_model(device, dims: int = 2048):
    """The real FID Inception (up to the block giving `dims` features) when its weights are
    cached, else the random-weight one."""
    if weights_cache_path().exists():
        return inception_model(device, dims)
    return random_inception(device, dims)


def two_sets(n: int, size: int = 32):
    """Random uint8 images and a perturbed copy: two sets a small FID apart."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    return a, b


def measure(model, a, b, batch_size, device, precisions) -> list[dict]:
    """images/s of the features of `a` and FID(a, b) per precision; Δ against the first (fp32)."""
    inception_features(model, a[:batch_size], batch_size, device)  # warm-up
    rows, reference = [], None
    for precision in precisions:
        if device.type != "cuda" and precision == "tf32":
            continue  # TF32 is a CUDA matmul mode
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fa = inception_features(model, a, batch_size, device, precision)  # ends on the host
        ips = len(a) / (time.perf_counter() - t0)
        fb = inception_features(model, b, batch_size, device, precision)
        sa, sb = FeatureStats.empty(fa.shape[1]), FeatureStats.empty(fb.shape[1])
        sa.add(fa)
        sb.add(fb)
        fid = frechet_distance(sa, sb)
        reference = fid if reference is None else reference
        rows.append({"precision": precision, "images_per_s": ips, "fid": fid,
                     "fid_delta_vs_fp32": fid - reference,
                     "minutes_per_million": 1e6 / ips / 60})
    set_tf32(device, False)  # leave TF32 off
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model, weights = fid_model(device)
    a, b = two_sets(args.images)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; weights: {weights}; {args.images} 32×32 images, batch {args.batch_size}")
    rows = measure(model, a, b, args.batch_size, device, args.precisions)
    for r in rows:
        print(f"{r['precision']:5s} {r['images_per_s']:9.1f} img/s  FID {r['fid']:.4f} "
              f"(Δ vs fp32 {r['fid_delta_vs_fp32']:+.5f})  1M images in "
              f"{r['minutes_per_million']:.1f} min")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "weights": weights,
                                              "images": args.images, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
