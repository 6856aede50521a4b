r"""python -m pipeline.pack --part real --inputs results/real/train.npz \
    --out results/dataset/real --record results/dataset/real.json

Stage: pack image files into a checksummed, memory-mappable dataset folder."""

from __future__ import annotations

import argparse
import logging

from pipeline.core import cli, runtime
from pipeline.data.dataset import pack, write_content_record
from pipeline.vocab import options

log = logging.getLogger("pipeline.pack")


def build_parser() -> argparse.ArgumentParser:
    return cli.add_options(cli.parser(__doc__), options.PACK)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args, uses_torch=False)
    manifest = pack(args.out, args.part, args.inputs)
    write_content_record(args.record, manifest)
    log.info("packed %d %s images in %d shards into %s", manifest["count"], args.part,
             len(manifest["shards"]), args.out)


if __name__ == "__main__":
    runtime.run(main)
