r"""python -m pipeline.prepare_real --source digits --resolution 8 --test-fraction 0.2 --seed 0 \
    --train-out results/real/train.npz --test-out results/real/test.npz --device auto \
    --threads 1

Stage: load a real dataset (digits, CIFAR, npz, image folder) and write train/test npz files."""

from __future__ import annotations

import argparse

import numpy as np

from pipeline.core import cli, records
from pipeline.vocab import options
from pipeline.core.io import save_images
from pipeline.data.sources import load_real
from pipeline.data.subsets import per_class_subset
from pipeline.core.runtime import add_common_args, log, run, setup


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.PREPARE_REAL)
    return add_common_args(p)


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup(args, uses_torch=False)  # torch only for a resize (data.sources imports it then)
    try:
        tr_x, tr_y, te_x, te_y = load_real(
            args.source, args.root, args.resolution, args.test_fraction, args.seed, args.download,
            test=args.test, bgr=args.bgr)
        if args.per_class is not None:  # the data-scarce setting: the rest is never seen
            keep = per_class_subset(tr_y, args.per_class, args.seed)
            tr_x, tr_y = tr_x[keep], tr_y[keep]
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"prepare_real: {e}") from None
    for name, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
        log.info("%s %s: %d images %s, %d classes", args.source, name, len(x), x.shape[1:],
                 len(np.unique(y)))
    save_images(args.train_out, tr_x, tr_y)
    save_images(args.test_out, te_x, te_y)
    records.write_for([args.train_out, args.test_out], options.PREPARE_REAL, argv,
                      source=args.source, root=args.root)


if __name__ == "__main__":
    run(main)
