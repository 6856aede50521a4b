"""A sampling job's torch.compile time with a cold compile cache against a warm one (the cache a
run's shard jobs share: sampling.compile puts it in OUTPUT_DIR/cache/torch_compile).

    python bench/compile_cache.py                      # CPU, the tiny UNet of the tests
    python bench/compile_cache.py --arch ddpm-cifar10-32 --device cuda --batch-size 1024

Each job is a fresh process (as each Snakemake job is): it compiles the UNet with its caches in
one folder and times the first batch (compile + sampling) and the second (sampling alone); the
compile time is their difference. The first job finds the folder empty (cold), the second finds
what the first left (warm), as the second shard job on the same machine does.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def job(cache: str, arch: str, device: str, batch: int, steps: int) -> dict:
    """One sampling job's compile: seconds of the first batch, of the second, the difference."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    from sample import ARCHS, DDPM_CIFAR10_32_SCHEDULER
    from pipeline.core.runtime import resolve_device
    from pipeline.generation.samplers import Sampler, SamplerSettings, prepare_unet

    dev = resolve_device(device)
    torch.manual_seed(0)
    unet = prepare_unet(UNet2DModel(**ARCHS[arch]), dev, compile=True, compile_cache=cache)
    sampler = Sampler(unet, DDPMScheduler(**DDPM_CIFAR10_32_SCHEDULER).config,
                      SamplerSettings("dpmsolver++", num_steps=steps, eta=0.0, precision="fp32"),
                      dev)
    times = []
    for lo in (0, batch):
        t0 = time.perf_counter()
        sampler.images(0, lo, lo + batch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"first_batch_s": times[0], "second_batch_s": times[1],
            "compile_s": times[0] - times[1]}


def run_job(cache: str, args) -> dict:
    cmd = [sys.executable, __file__, "--job", cache, "--arch", args.arch, "--device", args.device,
           "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="smoke", help="bench/sample.py's ARCHS (smoke: the tests')")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", help="JSON file of the figures")
    p.add_argument("--job", help=argparse.SUPPRESS)  # the child: compile with caches here
    args = p.parse_args(argv)
    if args.job:
        print(json.dumps(job(args.job, args.arch, args.device, args.batch_size, args.steps)))
        return {}
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = run_job(cache, args), run_job(cache, args)
    result = {"arch": args.arch, "device": args.device, "batch": args.batch_size,
              "machine": platform.processor() or platform.machine(), "cold": cold, "warm": warm,
              "warm_vs_cold_compile": warm["compile_s"] / cold["compile_s"]}
    print(f"compile, cold cache {cold['compile_s']:.1f} s; warm cache {warm['compile_s']:.1f} s "
          f"({result['warm_vs_cold_compile']:.2f}× the cold); sampling a batch "
          f"{cold['second_batch_s']:.2f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
