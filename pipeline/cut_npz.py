"""Stage: cut generated images brought as npz files into the sample shards (generator.source npz)."""

from __future__ import annotations

import argparse
import logging

from pipeline.core import runtime
from pipeline.data.npz_source import cut_into_shards, npz_files

log = logging.getLogger("pipeline.cut_npz")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", required=True,
                   help="an .npz file (image uint8 N×H×W×3, label) or a folder of them")
    p.add_argument("--out", required=True, nargs="+", help="shard manifests (NAME.json), in order")
    p.add_argument("--shard-size", type=int, required=True, help="images per shard")
    p.add_argument("--num-images", type=int, required=True,
                   help="take the first this many images (at most all of them)")
    p.add_argument("--resolution", type=int, default=None, help="expected image side")
    args = p.parse_args(argv)
    runtime.setup(args)
    try:
        n = cut_into_shards(npz_files(args.source), args.out, args.shard_size, args.num_images,
                            args.resolution)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    log.info("cut %d images of %s into %d shards", n, args.source, len(args.out))


if __name__ == "__main__":
    main()
