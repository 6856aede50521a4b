"""Stage: cut generated images brought as npz files into the sample shards (generator.source npz)."""

from __future__ import annotations

import argparse
import logging

from pipeline.core import cli, runtime
from pipeline.data.npz_source import cut_into_shards, npz_files, unlabelled

log = logging.getLogger("pipeline.cut_npz")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--source", required=True,
                   help="an .npz file (image uint8 N×H×W×3, label) or a folder of them")
    p.add_argument("--out", required=True, nargs="+", help="shard manifests (NAME.json), in order")
    p.add_argument("--shard-size", type=int, required=True, help="images per shard")
    p.add_argument("--num-images", type=int, required=True,
                   help="take the first this many images (at most all of them)")
    p.add_argument("--resolution", type=int, required=True,
                   help="expected image side, pixels (the real images')")
    p.add_argument("--bgr", action="store_true",
                   help="the files are BGR (written from cv2.imread): swap them to RGB")
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
    main()
