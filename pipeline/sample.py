r"""python -m pipeline.sample --model results/generator --out results/samples/shard_00000.json \
    --start 0 --count 1000 --seed 0 --sampler ddim --steps 10 --eta 0.0 --guidance 1.0 \
    --labels balanced --precision fp32 --sigma-min 0.002 --sigma-max 80.0 --rho 7.0 \
    --s-churn 0.0 --s-min 0.0 --s-max 1000000000.0 --s-noise 1.0 --batch-size 500 \
    --device auto --threads 1

Stage: generate images [start, start+count) of a generator into one shard file."""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import time
from pathlib import Path
from dataclasses import asdict

from pipeline.core import cli, io, records, runtime
from pipeline.vocab import options
from pipeline.core.errors import UserError
from pipeline.generation.unet import load_generator
from pipeline.generation.edm import EDMSettings
from pipeline.data.dataset import write_shard
from pipeline.core.tracking import add_tracking_args, tracker_from_args
from pipeline.generation.samplers import SamplerSettings, prepare_unet, sample_range

log = logging.getLogger("pipeline.sample")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.SAMPLE)
    return runtime.add_common_args(add_tracking_args(p))


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if not args.out.endswith(".json"):
        raise SystemExit(f"--out names the shard's manifest, NAME.json; got {args.out!r}")
    if args.start < 0 or args.count < 1:
        raise SystemExit(f"need start >= 0 and count >= 1, got start={args.start} count={args.count}")
    device = runtime.setup(args)
    generator = records.verify(args.model)  # trained here: its record; a user's folder: none
    try:
        unet, scheduler_config = load_generator(args.model, device)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        # diffusers' page-long OSError for a model not on disk, a damaged weights file
        raise UserError(f"cannot load the generator {args.model!r} ({type(e).__name__}: "
                        f"{runtime.first_line(e, 160)}); the workflow samples only a local "
                        "folder: rule fetch_generator fetches a hub model into one (delete a "
                        "damaged one to fetch it again), or set generator.model to a folder "
                        "saved with save_pretrained") from e
    size = unet.config.sample_size
    io.check_free_space(args.out, io.image_bytes(args.count, size))
    unet = prepare_unet(unet, device, channels_last=args.channels_last, compile=args.compile,
                        compile_cache=args.compile_cache)
    try:
        settings = SamplerSettings(
            sampler=args.sampler, num_steps=args.steps, eta=args.eta, precision=args.precision,
            timestep_spacing=args.timestep_spacing, guidance=args.guidance, labels=args.labels,
            edm=EDMSettings(args.steps or EDMSettings.num_steps, args.sigma_min, args.sigma_max,
                            args.rho, args.s_churn, args.s_min, args.s_max, args.s_noise),
        )
    except ValueError as e:  # settings that contradict each other (edm with a spacing)
        raise UserError(str(e)) from e
    tracker = tracker_from_args(args)
    tracker.hparams({"start": args.start, "count": args.count, "seed": args.seed,
                     "batch_size": args.batch_size, "model": args.model,
                     **asdict(settings)}, ["sample/images_per_s"])
    t0 = time.time()
    try:
        images, labels = sample_range(unet, scheduler_config, start=args.start, count=args.count,
                                      seed=args.seed, settings=settings,
                                      batch_size=args.batch_size, device=device, tracker=tracker)
    finally:
        tracker.close()
    seconds = time.time() - t0
    write_shard(args.out, images, labels, made_by={
        "settings": records.tracked_settings(options.SAMPLE, sys.argv[1:] if argv is None else argv),
        "generator": args.model, "generator_sha256": records.digest(generator),
        "generator_revision": fetched_revision(args.model), **records.provenance(device)})
    log.info("wrote %d images to %s in %.1fs (%.1f img/s)", len(images), args.out, seconds,
             len(images) / seconds)


def fetched_revision(model: str) -> str | None:
    """The hub commit rule fetch_generator pinned (its record FOLDER.json beside the folder)."""
    fetch_record = Path(f"{os.path.normpath(model)}.json")
    return io.read_json(fetch_record).get("commit") if fetch_record.is_file() else None


if __name__ == "__main__":
    runtime.run(main)
