"""FID against network evaluations for every sampler, in one run: the evidence a sampler and its
step count rest on, for one trained generator.

    python bench/sampler_fid.py --generator results/generator --real results/real/train.npz \
        --out bench/results/sampler-fid-cpu.json --plot bench/results/sampler-fid-cpu.png
    python bench/sampler_fid.py --generator MY_FOLDER --real REAL.npz --features inception \
        --images 10000 --device cuda --out fid-vs-evals.json                # a GPU, real FID
    python bench/sampler_fid.py --smoke                 # a random tiny UNet: the code runs

Each point: --images images (seed 0, the sampling stage's per-image noise) from one sampler at
about that many network evaluations per image (heun_karras and edm: 2·steps − 1, so an odd
count), their images/s, and their FID (the project's pipeline.evaluation.frechet, with
config.yaml's fid.features unless --features says otherwise: `pixels` is the offline stand-in,
not comparable with published FIDs) against the real images' statistics.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.core import io  # noqa: E402
from pipeline.core.runtime import resolve_device  # noqa: E402
from pipeline.evaluation.frechet import (frechet_distance, image_stats,  # noqa: E402
                                         inception_model)
from pipeline.generation.samplers import (SCHEDULERS, Sampler, SamplerSettings,  # noqa: E402
                                          prepare_unet, sample_range)
from pipeline.generation.unet import load_generator  # noqa: E402

SAMPLERS = tuple(SCHEDULERS) + ("edm",)
TWO_PER_STEP = ("heun_karras", "edm")  # Heun: two evaluations a step but the last


def steps_for(sampler: str, evaluations: int) -> int:
    """The step count whose evaluations per image come nearest `evaluations` (not above it)."""
    return max(1, (evaluations + 1) // 2) if sampler in TWO_PER_STEP else evaluations


def measure(unet, config, sampler, evaluations, images, batch_size, device, real_stats,
            features, model) -> dict:
    """One point: images/s and FID of one sampler at about `evaluations` evaluations."""
    settings = SamplerSettings(sampler, num_steps=steps_for(sampler, evaluations), eta=0.0,
                               precision="fp32")
    nfe = Sampler(unet, config, settings, device).evaluations_per_image
    t0 = time.perf_counter()
    out, _ = sample_range(unet, config, start=0, count=images, seed=0, settings=settings,
                          batch_size=batch_size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    stats = image_stats(out, features, model=model, device=device)
    return {"sampler": sampler, "steps": settings.num_steps, "evaluations": nfe,
            "images_per_s": images / seconds, "fid": frechet_distance(stats, real_stats)}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["evaluations"], r["fid"]) for r in rows if r["sampler"] == sampler)
        ax.plot(*zip(*pts), marker="o", label=sampler)
    ax.set(xscale="log", xlabel="network evaluations per image", ylabel="FID", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


def smoke_inputs(tmp: Path) -> tuple[str, str]:
    """A random-weight tiny generator and random real images, for --smoke."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.tiny import make_images, make_tiny_unet
    from diffusers import DDPMScheduler
    from pipeline.generation.unet import save_generator

    save_generator(tmp / "generator", make_tiny_unet(),
                   DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2"))
    io.save_images(tmp / "real.npz", make_images(64), np.zeros(64, np.int64))
    return str(tmp / "generator"), str(tmp / "real.npz")


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                       text=True)
    return r.stdout.strip() or "unknown"


def parse_args(argv=None) -> argparse.Namespace:
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", help="generator folder (or hub id)")
    p.add_argument("--real", help="real images (npz): the FID reference")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--evaluations", nargs="+", type=int, default=[5, 10, 20, 35, 100])
    p.add_argument("--images", type=int, default=2000, help="images per point")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--features", choices=["pixels", "inception"],
                   default=defaults["fid"]["features"])
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="JSON file of every point")
    p.add_argument("--plot", help="FID against evaluations, one line per sampler (png)")
    p.add_argument("--smoke", action="store_true", help="a random tiny UNet, few images")
    args = p.parse_args(argv)
    if not args.smoke and not (args.generator and args.real):
        p.error("--generator and --real are required (or --smoke)")
    return args


def main(argv=None) -> list[dict]:
    import tempfile

    args = parse_args(argv)
    device = resolve_device(args.device)
    # a context, not set_grad_enabled(False): tests call main() in their own process
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.generator, args.real = smoke_inputs(Path(tmp))
            args.images, args.evaluations = 16, args.evaluations[:2]
        unet, config = load_generator(args.generator, device)
        unet = prepare_unet(unet, device)
        model = inception_model(device)[0] if args.features == "inception" else None
        real_stats = image_stats(io.load_images(args.real)[0], args.features, model=model,
                                 device=device)
        rows = []
        for sampler in args.samplers:
            for evaluations in args.evaluations:
                row = measure(unet, config, sampler, evaluations, args.images, args.batch_size,
                              device, real_stats, args.features, model)
                rows.append(row)
                print(f"{sampler:13s} {row['evaluations']:4d} evals  FID {row['fid']:9.3f}  "
                      f"{row['images_per_s']:9.1f} img/s", flush=True)
    meta = {"generator": args.generator, "features": args.features, "images": args.images,
            "device": str(device), "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "commit": commit(),
            "command": "python bench/sampler_fid.py " + " ".join(argv or sys.argv[1:])}
    if args.out:
        io.write_json(args.out, {"meta": meta, "rows": rows})
    if args.plot:
        plot(rows, Path(args.plot), f"{Path(args.generator).name}: {args.features} FID, "
                                    f"{args.images} images")
    return rows


if __name__ == "__main__":
    main()
