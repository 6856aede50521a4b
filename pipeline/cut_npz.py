r"""python -m pipeline.cut_npz --source data/generated/cifar10-edm-1m.npz --shard-size 50000 \
    --num-images 50000 --resolution 32 --out results/cifar10-edm/samples/shard_00000.json

Stage: cut generated images brought as npz files into the sample shards (generator.source npz)."""

from __future__ import annotations

import argparse
import logging

from pipeline.core import cli, runtime
from pipeline.vocab import options
from pipeline.data.npz_source import cut_into_shards, npz_files, unlabelled

log = logging.getLogger("pipeline.cut_npz")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.CUT_NPZ)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args)
    try:
        n = cut_into_shards(npz_files(args.source), args.out, args.shard_size, args.num_images,
                            args.resolution, bgr=args.bgr)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    log.info("cut %d images of %s into %d shards", n, args.source, len(args.out))
    if not args.bgr and unlabelled(npz_files(args.source)):
        log.warning("%s: every label is -1, as the AdaInf authors' generated_data.py writes; "
                    "that script reads images with cv2.imread (BGR): if the report's samples "
                    "look colour-swapped, set generator.channel_order: bgr", args.source)


if __name__ == "__main__":
    runtime.run(main)
