"""Stage: SimCLR pretraining of an encoder for one inflation strategy."""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

from pipeline import io, runtime
from pipeline.augment import PRESETS, describe, preset
from pipeline.models import save_encoder
from pipeline.packed import open_packed
from pipeline.training import PretrainConfig, pretrain

log = logging.getLogger("pipeline.pretrain")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--real", required=True, help="packed real dataset folder (from pack)")
    p.add_argument("--generated", default=None, help="packed generated dataset folder, to inflate with")
    p.add_argument("--out", required=True, help="encoder checkpoint (.pt)")
    p.add_argument("--history", required=True, help="loss curve (.csv); a .json summary goes beside it")
    p.add_argument("--strategy", required=True, help="name recorded with the run")
    p.add_argument("--method", default="simclr", choices=["simclr"])
    p.add_argument("--dup", type=int, default=1, help="times the real set is replicated")
    p.add_argument("--augmentation", default="standard", choices=sorted(PRESETS))
    p.add_argument("--crop-min-scale", type=float, default=None, help="override the preset's")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--blocks", type=int, nargs="+", default=[2, 2, 2, 2])
    p.add_argument("--steps", type=int, default=1000, help="0 saves the encoder at initialisation")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--proj-hidden", type=int, default=2048)
    p.add_argument("--proj-dim", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-verify", action="store_true", help="skip the dataset checksums")
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    device = runtime.setup(args)

    real, _ = open_packed(args.real, verify=not args.no_verify).load()
    generated = None
    if args.generated:
        generated, _ = open_packed(args.generated, verify=not args.no_verify).load()
    cfg = PretrainConfig(
        widths=args.widths, blocks=args.blocks, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, optimizer=args.optimizer,
        warmup_steps=args.warmup_steps, temperature=args.temperature,
        proj_hidden=args.proj_hidden, proj_dim=args.proj_dim, dup=args.dup, seed=args.seed,
    )
    aug = preset(args.augmentation, crop_min_scale=args.crop_min_scale)
    num_gen = 0 if generated is None else len(generated)
    log.info("%s/%s: %d real ×%d + %d generated, %s augmentation, %d steps on %s", args.method,
             args.strategy, len(real), args.dup, num_gen, args.augmentation, args.steps, device)

    t0 = time.time()
    encoder, history = pretrain(cfg, aug, real, generated, device)
    meta = {
        "method": args.method, "strategy": args.strategy, "dup": args.dup,
        "num_real": len(real), "num_generated": num_gen, "augmentation": args.augmentation,
        "augmentation_params": describe(aug), "config": vars(cfg),
        "seconds": round(time.time() - t0, 1),
        "final_loss": history[-1]["loss"] if history else None,
    }
    with io.atomic_path(args.history) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "loss", "lr"])
            writer.writeheader()
            writer.writerows(history)
    io.write_json(Path(args.history).with_suffix(".json"), meta)
    save_encoder(args.out, encoder, meta)
    log.info("saved encoder to %s (%.1fs, final loss %s)", args.out, meta["seconds"],
             meta["final_loss"])


if __name__ == "__main__":
    main()
