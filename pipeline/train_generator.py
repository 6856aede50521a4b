"""Stage: train a small diffusers DDPM on the real training split and save it as a pipeline."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import io, runtime
from pipeline.generation.unet import save_generator, train_unet

log = logging.getLogger("pipeline.train_generator")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--real", required=True, help="real training images (npz from prepare_real)")
    p.add_argument("--out", required=True, help="output folder (diffusers DDPMPipeline layout)")
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--num-train-timesteps", type=int, default=1000)
    p.add_argument("--beta-schedule", default="squaredcos_cap_v2",
                   choices=["linear", "scaled_linear", "squaredcos_cap_v2"])
    p.add_argument("--seed", type=int, default=0)
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    device = runtime.setup(args)

    images, _ = io.load_images(args.real)
    log.info("training a DDPM on %d real images %s on %s", len(images), images.shape[1:], device)
    start = time.time()
    unet, scheduler, losses = train_unet(
        images, channels=args.channels, layers_per_block=args.layers_per_block,
        attention=args.attention, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        ema_decay=args.ema_decay, num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule, seed=args.seed, device=device,
    )
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
