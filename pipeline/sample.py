"""Stage: generate images [start, start+count) of a generator into one shard file."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import io, runtime
from pipeline.generation.unet import load_generator
from pipeline.generation.edm import EDMSettings
from pipeline.data.dataset import write_shard
from pipeline.core.runtime import PRECISIONS
from pipeline.generation.samplers import SAMPLERS, SamplerSettings, prepare_unet, sample_range

log = logging.getLogger("pipeline.sample")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="generator: hub id or local folder")
    p.add_argument("--out", required=True, help="shard manifest (NAME.json); the images go to "
                   "NAME.images.npy and NAME.labels.npy beside it (pipeline.data.dataset's format)")
    p.add_argument("--start", type=int, required=True, help="global index of the first image")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default="ddim", choices=SAMPLERS)
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: ddpm all training steps, ddim 50, edm 18)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    e = p.add_argument_group("edm (Karras et al. 2022, Algorithm 2)")
    d = EDMSettings()
    for name in ("sigma_min", "sigma_max", "rho", "s_churn", "s_min", "s_max", "s_noise"):
        e.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS),
                   help="autocast precision of the UNet")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    p.add_argument("--batch-size", type=int, default=256)
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    if not args.out.endswith(".json"):
        raise SystemExit(f"--out names the shard's manifest, NAME.json; got {args.out!r}")
    if args.start < 0 or args.count < 1:
        raise SystemExit(f"need start >= 0 and count >= 1, got start={args.start} count={args.count}")
    device = runtime.setup(args)

    unet, scheduler_config = load_generator(args.model, device)
    size = unet.config.sample_size
    io.check_free_space(args.out, args.count * size * size * 3)
    unet = prepare_unet(unet, device, channels_last=args.channels_last, compile=args.compile)
    settings = SamplerSettings(
        sampler=args.sampler, num_steps=args.steps, eta=args.eta, precision=args.precision,
        edm=EDMSettings(args.steps or 18, args.sigma_min, args.sigma_max, args.rho,
                        args.s_churn, args.s_min, args.s_max, args.s_noise),
    )
    t0 = time.time()
    images, labels = sample_range(unet, scheduler_config, start=args.start, count=args.count,
                                  seed=args.seed, settings=settings,
                                  batch_size=args.batch_size, device=device)
    seconds = time.time() - t0
    write_shard(args.out, images, labels)
    log.info("wrote %d images to %s in %.1fs (%.1f img/s)", len(images), args.out, seconds,
             len(images) / seconds)


if __name__ == "__main__":
    runtime.run(main)
