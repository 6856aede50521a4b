"""Stage: linear evaluation of a frozen encoder on the real train/test split."""

from __future__ import annotations

import argparse
import logging
import time

import torch

from pipeline import io, runtime
from pipeline.linear import extract_features, knn_top1, top1, train_linear
from pipeline.models import load_encoder

log = logging.getLogger("pipeline.linear_eval")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--encoder", required=True, help="encoder checkpoint (from pretrain)")
    p.add_argument("--train", required=True, help="real training images (npz)")
    p.add_argument("--test", required=True, help="real test images (npz)")
    p.add_argument("--out", required=True, help="JSON result")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    device = runtime.setup(args)
    t0 = time.time()

    encoder, meta = load_encoder(args.encoder, device)
    train_images, train_labels = io.load_images(args.train)
    test_images, test_labels = io.load_images(args.test)
    if (train_labels < 0).any() or (test_labels < 0).any():
        raise SystemExit("linear evaluation takes labelled real images only; found label -1")
    train_x = extract_features(encoder, train_images, device=device)
    test_x = extract_features(encoder, test_images, device=device)
    clf = train_linear(train_x, torch.from_numpy(train_labels), epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       seed=args.seed, device=device)
    result = {
        "method": meta["method"], "strategy": meta["strategy"],
        "linear_top1": top1(clf, test_x, torch.from_numpy(test_labels), device),
        "train_top1": top1(clf, train_x, torch.from_numpy(train_labels), device),
        "knn_top1": knn_top1(train_x, torch.from_numpy(train_labels), test_x,
                             torch.from_numpy(test_labels)),
        "protocol": "features", "num_train": len(train_labels), "num_test": len(test_labels),
        "epochs": args.epochs, "pretrain": meta, "seconds": round(time.time() - t0, 1),
    }
    io.write_json(args.out, result)
    log.info("%s/%s: linear top-1 %.2f %%", result["method"], result["strategy"],
             result["linear_top1"])


if __name__ == "__main__":
    main()
