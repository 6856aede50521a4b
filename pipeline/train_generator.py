"""Stage: train a small diffusers DDPM on the real training split and save it as a pipeline."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import cli, io, records, runtime
from pipeline.vocab import options
from pipeline.core.tracking import add_tracking_args, tracker_from_args
from pipeline.generation.unet import save_generator, train_unet

log = logging.getLogger("pipeline.train_generator")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.TRAIN_GENERATOR)
    return runtime.add_common_args(add_tracking_args(p))


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    device = runtime.setup(args)

    images, _ = io.load_images(args.real)
    log.info("training a DDPM on %d real images %s on %s", len(images), images.shape[1:], device)
    start = time.time()
    settings = dict(
        channels=args.channels, layers_per_block=args.layers_per_block,
        attention=args.attention, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        ema_decay=args.ema_decay, num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule, seed=args.seed, snr_gamma=args.snr_gamma,
    )
    tracker = tracker_from_args(args)
    tracker.hparams({**settings, "num_images": len(images)}, ["generator/loss"])
    try:
        unet, scheduler, losses = train_unet(images, **settings, device=device,
                                             log_every=args.log_every, tracker=tracker)
    finally:
        tracker.close()
    with io.atomic_dir(args.out) as tmp:
        save_generator(tmp, unet, scheduler)
        tail = losses[-100:]
        io.write_json(tmp / "training.json", {
            "steps": args.steps, "final_loss": sum(tail) / len(tail),
            "seconds": round(time.time() - start, 1), "losses": losses,
        })
    records.write_for(args.out, options.TRAIN_GENERATOR, argv, device)
    log.info("saved generator to %s (final loss %.4f)", args.out, sum(tail) / len(tail))


if __name__ == "__main__":
    runtime.run(main)
