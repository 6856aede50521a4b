r"""python -m pipeline.linear_eval --protocol features \
    --encoder results/pretrain/simclr/none/seed0/encoder.pt --train results/real/train.npz \
    --test results/real/test.npz --out results/linear/simclr/none/seed0/features.json \
    --seed 0 --epochs 100 --batch-size 256 --lr 0.01 --weight-decay 0.0001 --device auto \
    --threads 1

Stage: linear evaluation of a frozen encoder on the real train/test split.

Protocols (see pipeline.evaluation.linear): `features` (features computed once, AdamW on standardised
features, plus weighted k-NN) and `offline` (solo-learn's: SGD on features of freshly augmented
images each epoch). The `online` protocol runs inside pretraining (pretrain --online-test).
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from pipeline.core import cli, io, records, runtime
from pipeline.vocab import options
from pipeline.core.tracking import Progress, add_tracking_args, tracker_from_args
from pipeline.evaluation.linear import (accuracy, extract_features, knn_top1, top1, train_linear,
                             train_linear_offline)
from pipeline.pretraining.encoders import load_encoder
from pipeline.pretraining.loop import cell_hparams

log = logging.getLogger("pipeline.linear_eval")

HPARAMS = [o.dest for o in options.LINEAR_EVAL if o.computed]  # linear_eval.PROTOCOL's


def build_parser() -> argparse.ArgumentParser:
    """Each protocol's settings default to config.yaml's linear_eval.PROTOCOL (the workflow
    passes them), hence required here."""
    p = cli.add_options(cli.parser(__doc__), options.LINEAR_EVAL)
    return runtime.add_common_args(add_tracking_args(p))


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    hp = {k: getattr(args, k) for k in HPARAMS}
    device = runtime.setup(args)
    t0 = time.time()

    encoder, meta = load_encoder(args.encoder, device)
    train_images, train_labels = io.load_images(args.train)
    test_images, test_labels = io.load_images(args.test)
    if (train_labels < 0).any() or (test_labels < 0).any():
        raise SystemExit("linear evaluation takes labelled real images only; found label -1")
    train_y, test_y = torch.from_numpy(train_labels), torch.from_numpy(test_labels)
    train_x = extract_features(encoder, train_images, device=device)
    test_x = extract_features(encoder, test_images, device=device)
    tracker = tracker_from_args(args)
    # the encoder's cell settings (what a sweep or the search varies) beside the protocol's, and
    # this protocol's final top-1 as a metric of its own: HPARAMS shows each evaluation's column
    tracker.hparams({**cell_hparams(meta), "protocol": args.protocol,
                     "linear": {"seed": args.seed, **hp}},
                    ["linear/test_top1", f"eval/{args.protocol}_top1"])
    progress = Progress("linear", args.epochs, unit_per_step=len(train_labels), tracker=tracker,
                        device=device, logger=log)

    def epoch_end(epoch, clf, stats):  # the test split's features are computed already
        test_top1, test_top5 = accuracy(clf, test_x, test_y, device)
        progress.report(epoch, {**stats, "test_top1": test_top1, "test_top5": test_top5})

    try:
        if args.protocol == "features":
            clf = train_linear(train_x, train_y, seed=args.seed, device=device,
                               epoch_end=epoch_end, **hp)
            extra = {"train_top1": top1(clf, train_x, train_y, device),
                     "knn_top1": knn_top1(train_x, train_y, test_x, test_y)}
        else:
            clf = train_linear_offline(encoder, train_images, train_labels, seed=args.seed,
                                       device=device, epoch_end=epoch_end, **hp)
            extra = {"train_top1": top1(clf, train_x, train_y, device)}
        test_top1, test_top5 = accuracy(clf, test_x, test_y, device)
        tracker.scalar(f"eval/{args.protocol}_top1", test_top1, hp["epochs"])
    finally:
        tracker.close()
    result = {
        "method": meta["method"], "strategy": meta["strategy"], "protocol": args.protocol,
        "top1": test_top1, "top5": test_top5, "num_train": len(train_labels),
        "num_test": len(test_labels), "pretrain": meta, "seconds": round(time.time() - t0, 1),
        **extra, "epochs": hp["epochs"],
    }
    io.write_json(args.out, result)
    records.write_for(args.out, options.LINEAR_EVAL, argv, device)
    log.info("%s/%s: %s linear top-1 %.2f %%, top-5 %.2f %%", result["method"],
             result["strategy"], args.protocol, test_top1, test_top5)


if __name__ == "__main__":
    runtime.run(main)
