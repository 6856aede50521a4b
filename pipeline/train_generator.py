"""Stage: train a small diffusers DDPM on the real training split and save it as a pipeline."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import cli, io, runtime
from pipeline.core.tracking import add_tracking_args, tracker_from_args
from pipeline.generation.unet import save_generator, train_unet

log = logging.getLogger("pipeline.train_generator")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--real", required=True, help="real training images (npz from prepare_real)")
    p.add_argument("--out", required=True, help="output folder (diffusers DDPMPipeline layout)")
    p.add_argument("--channels", type=int, nargs="+", required=True,
                   help="UNet channels per resolution level")
    p.add_argument("--layers-per-block", type=int, required=True, help="ResNet layers per level")
    p.add_argument("--attention", action="store_true",
                   help="self-attention at the lowest resolution")
    p.add_argument("--steps", type=int, required=True, help="training steps")
    p.add_argument("--batch-size", type=int, required=True, help="images per step")
    p.add_argument("--lr", type=float, required=True, help="AdamW learning rate")
    p.add_argument("--ema-decay", type=float, required=True,
                   help="decay of the weights' moving average (the saved model)")
    # not a config key: the workflow's generators all use diffusers' 1000
    p.add_argument("--num-train-timesteps", type=int, default=1000,
                   help="diffusion timesteps of the noise schedule")
    p.add_argument("--beta-schedule", required=True,
                   choices=["linear", "scaled_linear", "squaredcos_cap_v2"],
                   help="noise schedule (diffusers' beta_schedule)")
    p.add_argument("--snr-gamma", type=float, default=None,
                   help="Min-SNR loss weighting min(SNR, gamma)/SNR (Hang et al. 2023); "
                        "unset: the plain epsilon MSE")
    p.add_argument("--seed", type=int, required=True, help="seed of weights, noise and batches")
    p.add_argument("--log-every", type=int, required=True,
                   help="steps between a progress line in the log and a point of the live curves")
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
    log.info("saved generator to %s (final loss %.4f)", args.out, sum(tail) / len(tail))


if __name__ == "__main__":
    runtime.run(main)
