r"""python -m pipeline.pretrain --real results/dataset/real \
    --out results/pretrain/simclr/none/seed0/encoder.pt \
    --history results/pretrain/simclr/none/seed0/history.csv --method simclr --strategy none \
    --seed 0 --dup 1 --augmentation standard --widths 32 64 128 --blocks 1 1 1 --steps 150 \
    --batch-size 128 --optimizer adamw --lr 0.002 --weight-decay 0.0001 --warmup-steps 10 \
    --precision fp32 --online-test results/real/test.npz \
    --online-out results/pretrain/simclr/none/seed0/online.json --online-every 50 \
    --online-lr 0.02 --checkpoint-every 0 --log-every 50 --device auto --threads 1

Stage: self-supervised pretraining of an encoder for one method and inflation strategy.

Runs as one process, or data-parallel under `torchrun --nproc_per_node N -m pipeline.pretrain`.
With --online-test and --online-out, an online linear probe (pipeline.pretraining.online_probe) trains on the
detached features of the real images' views and is evaluated on that test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from pipeline.core import cli, io, records, runtime
from pipeline.core.tracking import add_tracking_args, tracker_from_args
from pipeline.vocab import options
from pipeline.pretraining.augment import as_dict, view_params
from pipeline.pretraining.distributed import init_distributed
from pipeline.pretraining.memory import MemoryPlanError
from pipeline.vocab.augmentation import PRESET_VIEWS, trained_preset
from pipeline.vocab.methods import head_keys
from pipeline.vocab.names import SYMMETRIC_PRESETS
from pipeline.pretraining.encoders import STEM_PADDING, save_encoder
from pipeline.pretraining.online_probe import OnlineProbe
from pipeline.pretraining.optim import scaled_lr
from pipeline.data.dataset import generated_subset, load_packed, read_manifest
from pipeline.evaluation.quality import keep_best, load_scores
from pipeline.data.subsets import real_subset
from pipeline.pretraining.methods import METHODS
from pipeline.pretraining.loop import (PretrainConfig, cell_hparams, pretrain, resolved_config,
                                      resolved_optim)

log = logging.getLogger("pipeline.pretrain")


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# Passed by the workflow to every job that trains, but not to random_init's (--steps 0), whose
# untrained encoder they cannot change: required unless --steps 0.
TRAINING_OPTIONS = ("dup", "augmentation", "batch_size", "warmup_steps", "precision")
# What an untrained encoder's record (history.json) states for the training settings it was not
# given: the values random_init's record has always held; none of them changes its weights.
UNTRAINED = {"dup": 1, "batch_size": 256, "warmup_steps": 10, "precision": "fp32"}


def build_parser() -> argparse.ArgumentParser:
    """pipeline.vocab.options.PRETRAIN's options: those the workflow passes are required
    (config.yaml holds their defaults); None means unset: the method's own (optimizer, lr,
    weight decay), the authors' stem padding, no inflation with generated images, no online
    probe, no checkpoint."""
    return runtime.add_common_args(add_tracking_args(cli.add_options(cli.parser(__doc__),
                                                                     options.PRETRAIN)))


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, every usage check done: the parser's own kind (usage line, status 2)
    for what a caller of the stage gets wrong, a one-line refusal for options that conflict."""
    p = build_parser()
    args = p.parse_args(argv)
    problem = usage_problem(args)
    if problem:
        p.error(problem)
    refusal = option_conflict(args)
    if refusal:
        raise SystemExit(refusal)
    method_hparams(args)  # bad --method-arg: stop before any work
    return args


def usage_problem(args: argparse.Namespace) -> str | None:
    """The first missing or out-of-range option of the training and data-size settings."""
    missing = [k for k in TRAINING_OPTIONS if getattr(args, k) is None]
    if args.steps != 0 and missing:
        return ("the following arguments are required unless --steps 0: "
                + ", ".join("--" + k.replace("_", "-") for k in missing))
    if args.augmentation is not None:  # the workflow passes the preset that runs, resolved
        trains = sorted({trained_preset(args.method, name) for name in SYMMETRIC_PRESETS}
                        & set(PRESET_VIEWS))
        if args.augmentation not in trains:
            return f"--augmentation {args.augmentation}: {args.method} trains one of " \
                   f"{', '.join(trains)}"
    if args.real_fraction is not None and args.real_fraction < 1 and args.real_subset_seed is None:
        return "--real-fraction below 1 needs --real-subset-seed"
    if args.log_every < 1:
        return f"--log-every must be >= 1, got {args.log_every}"
    return generated_problem(args)


def generated_problem(args: argparse.Namespace) -> str | None:
    """The first conflict between the options choosing the generated images."""
    if args.num_generated is not None and (args.num_generated < 1 or args.generated is None):
        return f"--num-generated {args.num_generated}: needs --generated and a value >= 1"
    if args.num_generated is not None and args.generated_subset_seed is None:
        return "--num-generated needs --generated-subset-seed"
    if args.generated_keep is not None:
        if args.num_generated is not None:
            return "--generated-keep and --num-generated together: choose one"
        if not 0 < args.generated_keep <= 1 or args.generated is None:
            return f"--generated-keep {args.generated_keep}: needs --generated and a value " \
                   "in (0, 1]"
        if args.generated_score is None or not args.generated_scores:
            return "--generated-keep needs --generated-score and --generated-scores"
    return None


def option_conflict(args: argparse.Namespace) -> str | None:
    """The first conflict between the online probe's and the checkpoint's options."""
    if (args.online_test is None) != (args.online_out is None):
        return "--online-test and --online-out go together"
    if args.online_out is not None and args.steps == 0:
        return "--online-out needs --steps > 0: with --steps 0 there is no online probe to train"
    if (args.online_test is None) != (args.online_every is None):
        return "--online-test and --online-every go together"
    if args.stop_at is not None and not (0 < args.stop_at <= args.steps and args.checkpoint):
        return f"--stop-at {args.stop_at} needs a --checkpoint and must be in " \
               f"1..--steps ({args.steps})"
    if args.online_every is not None and args.online_every < 0:
        return f"--online-every must be >= 0, got {args.online_every}"
    if args.keep_generated_labels and not args.online_test:
        return "--keep-generated-labels needs the online probe (--online-test)"
    return None


def method_hparams(args: argparse.Namespace) -> dict:
    """The --method-arg settings, checked against the method's known ones."""
    hparams = {}
    for item in args.method_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--method-arg takes KEY=VALUE, got {item!r}")
        hparams[key] = parse_value(value)
    unknown = set(hparams) - set(head_keys(args.method))
    if unknown:
        raise SystemExit(f"unknown {args.method} setting(s) {sorted(unknown)}; valid: "
                         f"{head_keys(args.method)}")
    return hparams


def run_config(args: argparse.Namespace) -> tuple[PretrainConfig, str, tuple]:
    """What a command line trains: the config, the augmentation preset's name and both views'
    parameters."""
    given = dict(
        widths=args.widths, blocks=args.blocks, stem_padding=args.stem_padding,
        method=args.method, steps=args.steps,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        hparams=method_hparams(args), dup=args.dup, seed=args.seed,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        precision=args.precision, compile=args.compile, channels_last=args.channels_last,
    )
    # unset: PretrainConfig's None (the method's, the authors'), or with --steps 0 a training
    # option that the untrained encoder does not depend on
    given = {k: v for k, v in given.items() if v is not None}
    cfg = PretrainConfig(**({**UNTRAINED, **given} if args.steps == 0 else given))
    if args.augmentation is None:  # --steps 0: no views
        return cfg, None, ()
    aug_params = view_params(args.augmentation, crop_min_scale=args.crop_min_scale,
                             jitter_strength=args.jitter_strength)
    return cfg, args.augmentation, aug_params


def effective_settings(args: argparse.Namespace, world: int) -> dict:
    """Every setting a command line trains with, defaults resolved, as one flat dict (what the
    README's table of the cifar10 preset lists; tests/test_preset.py compares the two)."""
    cfg, augmentation, aug_params = run_config(args)
    optim = resolved_optim(cfg, world)
    global_batch = cfg.batch_size * world
    probe_lr = args.online_lr if args.online_lr is not None else optim["classifier_lr_per_256"]
    out = {
        "method": cfg.method, "steps": cfg.steps, "global_batch": global_batch,
        "optimizer": optim["optimizer"], "lr_per_256": optim["lr_per_256"], "lr": optim["lr"],
        "weight_decay": optim["weight_decay"], "warmup_steps": cfg.warmup_steps,
        "schedule": "warmup_cosine", "precision": cfg.precision, "dup": cfg.dup,
        "generated": args.generated is not None,
        "stem_padding": STEM_PADDING if cfg.stem_padding is None else cfg.stem_padding,
        **{k: v for k, v in {**METHODS[cfg.method].DEFAULTS, **cfg.hparams}.items()
           if k not in ("optimizer", "lr", "weight_decay", "classifier_lr")},
        "probe_optimizer": optim["optimizer"], "probe_lr_per_256": probe_lr,
        "probe_lr": scaled_lr(probe_lr, global_batch), "probe_weight_decay": 0.0,
        "probe_every": args.online_every if args.online_out else None,
        "augmentation": augmentation, "crop_interpolation": "bicubic (Pillow)",
        "blur": "PIL GaussianBlur", "blur_sigma": (0.1, 2.0),
    }
    if args.generated is not None and args.online_out:  # which labels the probe trains on
        out["probe_generated_labels"] = "keep" if args.keep_generated_labels else "drop"
    for i, params in enumerate(aug_params, 1):
        out.update({f"view{i}.{k}": v for k, v in as_dict(params).items()})
    return out


def run_record(args, cfg, augmentation, aug_params, num_real: int, num_gen: int,
               world: int) -> dict:
    """What the run trains with, as its history.json and the encoder's meta record it."""
    return {
        "method": args.method, "strategy": args.strategy, "dup": cfg.dup,
        "num_real": num_real, "num_generated": num_gen, "real_fraction": args.real_fraction,
        **({"generated_keep": args.generated_keep, "generated_score": args.generated_score}
           if args.generated_keep is not None else {}),
        "augmentation": augmentation,
        "augmentation_params": [as_dict(p) for p in aug_params],
        "config": resolved_config(cfg, world), "processes": world,
    }


def load_real(args: argparse.Namespace):
    """The real images and labels pretraining sees: --real-fraction's subset of them. (The online
    probe inside it sees the subset too; linear_eval, a stage of its own, trains on the whole
    real split, as the authors' main_linear.py does.)"""
    real, real_labels = load_packed(args.real, verify=not args.no_verify)
    if args.real_fraction is not None and args.real_fraction < 1:
        rows = real_subset(real_labels, args.real_fraction, args.real_subset_seed)
        real, real_labels = real[rows], real_labels[rows]
    return real, real_labels


def load_probe_test(args: argparse.Namespace, real, real_labels):
    """The online probe's test split, checked against the real training images."""
    test_images, test_labels = io.load_images(args.online_test)
    if (real_labels < 0).any() or (test_labels < 0).any():
        raise SystemExit("the online probe takes labelled real images only; found label -1")
    if test_images.shape[1:] != real.shape[1:]:
        raise SystemExit(f"{args.online_test}: images {test_images.shape[1:]}, the real "
                         f"training images {real.shape[1:]}")
    return test_images, test_labels


def load_generated(args: argparse.Namespace):
    """The generated images (and labels, kept for the probe or None) this run inflates with:
    all, a seeded subset (--num-generated) or the best-scored (--generated-keep)."""
    held = read_manifest(args.generated)[0]["count"]
    if args.num_generated is not None and args.num_generated > held:
        raise SystemExit(f"--num-generated {args.num_generated}: {args.generated} holds "
                         f"{held} generated images")
    rows = (None if args.num_generated is None
            else generated_subset(held, args.num_generated, args.generated_subset_seed))
    if args.generated_keep is not None:  # an index into the shards, no copy
        scores = load_scores(args.generated_scores, args.generated_score)
        if len(scores) != held:
            raise SystemExit(f"--generated-scores: {len(scores)} images scored, "
                             f"{args.generated} holds {held}")
        rows = keep_best(scores, args.generated_keep)
    return load_packed(args.generated, verify=not args.no_verify, rows=rows,
                       keep_labels=args.keep_generated_labels)


def load_data(args: argparse.Namespace):
    """The real images, the generated ones (or None) and the online probe (or None)."""
    real, real_labels = load_real(args)
    if args.online_test:
        test_images, test_labels = load_probe_test(args, real, real_labels)
    generated = generated_labels = None
    if args.generated:
        generated, generated_labels = load_generated(args)
    probe = None
    if args.online_test:
        keep = generated_labels if args.keep_generated_labels else None
        try:
            probe = OnlineProbe(real_labels, test_images, test_labels, every=args.online_every,
                                lr=args.online_lr, generated_labels=keep)
        except ValueError as e:
            raise SystemExit(f"{args.generated}: {e}")
    return real, generated, probe


def check_batch(args: argparse.Namespace, cfg: PretrainConfig, world: int, num_real: int,
                num_gen: int) -> None:
    """The global batch fits the images trained on (the config check's, for any source)."""
    size = num_real * cfg.dup + num_gen
    if cfg.batch_size * world > size and cfg.steps > 0:
        raise SystemExit(f"pretrain.batch_size: {cfg.batch_size} × {world} process(es) per "
                         f"step, but {args.strategy} trains on {size} images ({num_real} real "
                         f"×{cfg.dup} + {num_gen} generated); use at most {size // world}")


def train(args, cfg, aug_params, real, generated, probe, ctx, record: dict):
    """pretrain() with the run's live curves (main process, a run that trains): the encoder and
    the loss curve."""
    budget = None if args.memory_budget is None else int(args.memory_budget * 1e9)
    tracker = tracker_from_args(args, enabled=ctx.is_main and cfg.steps > 0)
    tracker.hparams({**resolved_config(cfg, ctx.world), **cell_hparams(record)},
                    ["pretrain/loss"] + (["pretrain/online_top1", "eval/online_top1"]
                                         if probe is not None else []))
    try:
        encoder, history = pretrain(cfg, aug_params, real, generated, ctx,
                                    checkpoint=args.checkpoint, probe=probe, memory_budget=budget,
                                    resume_from=args.resume_from, stop_at=args.stop_at,
                                    tracker=tracker)
        if probe is not None and probe.curve and args.stop_at in (None, args.steps):
            # the final top-1 in the evaluations' HPARAMS column, as linear_eval writes its own
            tracker.scalar("eval/online_top1", probe.curve[-1]["top1"], cfg.steps)
    except MemoryPlanError as e:
        raise SystemExit(f"pretrain: {e}")
    finally:
        tracker.close()
    return encoder, history


def write_outputs(args, argv, encoder, history: list[dict], meta: dict, probe, device) -> None:
    """The loss curve and its summary, the encoder, its record and the online probe's result;
    then the checkpoint of a complete run goes."""
    io.write_csv(args.history, history, ["step", "loss", "lr"])
    io.write_json(Path(args.history).with_suffix(".json"), meta)
    save_encoder(args.out, encoder, meta)
    records.write_for([args.out, args.history, Path(args.history).with_suffix(".json")],
                      options.PRETRAIN, argv, device)
    log.info("saved encoder to %s (%.1fs, final loss %s)", args.out, meta["seconds"],
             meta["final_loss"])
    if probe is not None:
        result = probe.result(args.method, args.strategy, meta)
        io.write_json(args.online_out, result)
        records.write_for(args.online_out, options.PRETRAIN, argv, device)
        log.info("online probe: top-1 %.2f %%, top-5 %.2f %%", result["top1"], result["top5"])
    if args.checkpoint and (args.stop_at is None or args.stop_at == args.steps):
        # The run is complete and its outputs record it: without this, a forced rerun
        # (`snakemake -R pretrain`) would resume at the last step and train nothing.
        Path(args.checkpoint).unlink(missing_ok=True)
        records.record_path(args.checkpoint).unlink(missing_ok=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    ctx = init_distributed(runtime.setup(args))
    real, generated, probe = load_data(args)
    cfg, augmentation, aug_params = run_config(args)
    num_gen = 0 if generated is None else len(generated)
    check_batch(args, cfg, ctx.world, len(real), num_gen)
    log.info("%s/%s: %d real ×%d + %d generated, %s augmentation, %d steps on %s ×%d",
             args.method, args.strategy, len(real), cfg.dup, num_gen, augmentation,
             args.steps, ctx.device, ctx.world)
    t0 = time.time()
    record = run_record(args, cfg, augmentation, aug_params, len(real), num_gen, ctx.world)
    encoder, history = train(args, cfg, aug_params, real, generated, probe, ctx, record)
    if not ctx.is_main:
        return
    meta = {**record, "seconds": round(time.time() - t0, 1),
            "final_loss": history[-1]["loss"] if history else None}
    write_outputs(args, argv, encoder, history, meta, probe, ctx.device)


if __name__ == "__main__":
    runtime.run(main)
