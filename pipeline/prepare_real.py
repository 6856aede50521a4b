"""Stage: load a real dataset (digits, CIFAR, npz, image folder) and write train/test npz files."""

from __future__ import annotations

import argparse

import numpy as np

from pipeline.core import cli
from pipeline.core.io import save_images
from pipeline.data.sources import SOURCES, load_real
from pipeline.core.runtime import add_common_args, log, run, setup


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--source", required=True, help=f"one of {', '.join(SOURCES)}")
    p.add_argument("--root", default=None, help="data path (default: none, for digits)")
    p.add_argument("--resolution", type=int, required=True, help="output image side, pixels")
    p.add_argument("--test-fraction", type=float, required=True,
                   help="held-out share where the source has no test split")
    p.add_argument("--seed", type=int, required=True, help="seed of that split")
    p.add_argument("--download", action="store_true", help="fetch CIFAR if absent")
    p.add_argument("--test", default=None,
                   help="source npz: the test split's npz, --root then the train split's file "
                        "(default: none; --root's folder or file is split)")
    p.add_argument("--bgr", action="store_true",
                   help="source npz: the files are BGR (cv2.imread); swap them to RGB")
    p.add_argument("--train-out", required=True, help="training images (npz)")
    p.add_argument("--test-out", required=True, help="test images (npz)")
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
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"prepare_real: {e}") from None
    for name, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
        log.info("%s %s: %d images %s, %d classes", args.source, name, len(x), x.shape[1:],
                 len(np.unique(y)))
    save_images(args.train_out, tr_x, tr_y)
    save_images(args.test_out, te_x, te_y)


if __name__ == "__main__":
    run(main)
