"""Stage: generate images [start, start+count) of a generator into one shard file."""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from pipeline import io, runtime
from pipeline.diffusion import load_generator
from pipeline.sampling import SAMPLERS, sample_range

log = logging.getLogger("pipeline.sample")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="generator: hub id or local folder")
    p.add_argument("--out", required=True, help="shard file (.npz with image, label)")
    p.add_argument("--start", type=int, required=True, help="global index of the first image")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default="ddim", choices=SAMPLERS)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (ddpm: all by default)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--batch-size", type=int, default=256)
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    if args.start < 0 or args.count < 1:
        raise SystemExit(f"need start >= 0 and count >= 1, got start={args.start} count={args.count}")
    device = runtime.setup(args)

    unet, scheduler_config = load_generator(args.model, device)
    t0 = time.time()
    images = sample_range(
        unet, scheduler_config, start=args.start, count=args.count, seed=args.seed,
        sampler=args.sampler, num_steps=args.steps, eta=args.eta, batch_size=args.batch_size,
        device=device,
    )
    seconds = time.time() - t0
    io.save_images(args.out, images, np.full(len(images), -1, np.int64))
    log.info("wrote %d images to %s in %.1fs (%.1f img/s)", len(images), args.out, seconds,
             len(images) / seconds)


if __name__ == "__main__":
    main()
