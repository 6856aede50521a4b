r"""python -m pipeline.train_generator --real results/real/train.npz --out results/generator \
    --channels 32 64 --layers-per-block 1 --steps 550 --batch-size 64 --lr 0.004 \
    --ema-decay 0.995 --snr-gamma 5.0 --beta-schedule squaredcos_cap_v2 --seed 0 \
    --architecture small --precision fp32 --label-dropout 0.1 --checkpoint-every 0 \
    --log-every 50 --device auto --threads 1

Stage: train a DDPM on the real training split and save it as a diffusers pipeline folder.

Under torchrun (generator.train.processes > 1) every process trains its slice of the global batch
and the first one saves; with --checkpoint a rerun of a killed job goes on where it stopped."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipeline.core import cli, io, records, runtime
from pipeline.core.errors import UserError
from pipeline.vocab import options
from pipeline.core.tracking import add_tracking_args, tracker_from_args
from pipeline.generation.training import GeneratorConfig, Speed, train_unet
from pipeline.generation.unet import save_generator
from pipeline.pretraining.distributed import init_distributed

log = logging.getLogger("pipeline.train_generator")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.TRAIN_GENERATOR)
    return runtime.add_common_args(add_tracking_args(p))


def settings_of(args) -> dict:
    """GeneratorConfig's fields from the command line."""
    return {k: getattr(args, k) for k in GeneratorConfig.__dataclass_fields__}


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    ctx = init_distributed(runtime.setup(args))
    images, labels = io.load_images(args.real)
    if args.class_conditional and (labels is None or (labels < 0).any()):
        raise UserError(f"generator.train.class_conditional needs class labels, but {args.real} "
                        "has none (or some are -1); set it to false")
    log.info("training a DDPM on %d real images %s on %s (%d process(es))", len(images),
             images.shape[1:], ctx.device, ctx.world)
    start = time.time()
    settings = settings_of(args)
    tracker = tracker_from_args(args, enabled=ctx.is_main)
    tracker.hparams({**settings, "num_images": len(images)}, ["generator/loss"])
    speed = Speed(args.checkpoint_every, args.compile, args.channels_last)
    try:
        unet, scheduler, losses = train_unet(
            images, labels=labels, **settings, device=ctx.device, ctx=ctx,
            checkpoint=args.checkpoint, speed=speed, log_every=args.log_every, tracker=tracker)
    except ValueError as e:  # a batch the processes cannot share, labels missing
        raise UserError(str(e)) from e
    finally:
        tracker.close()
    if not ctx.is_main:
        return
    tail = losses[-100:]
    with io.atomic_dir(args.out) as tmp:
        save_generator(tmp, unet, scheduler)
        io.write_json(tmp / "training.json", {
            "steps": args.steps, "final_loss": sum(tail) / len(tail), "processes": ctx.world,
            "seconds": round(time.time() - start, 1), "losses": losses,
        })
    if args.checkpoint:  # complete: a forced rerun must train, not resume at the last step
        Path(args.checkpoint).unlink(missing_ok=True)
    records.write_for(args.out, options.TRAIN_GENERATOR, argv, ctx.device)
    log.info("saved generator to %s (final loss %.4f)", args.out, sum(tail) / len(tail))


if __name__ == "__main__":
    runtime.run(main)
