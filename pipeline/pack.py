"""Stage: pack image files into a checksummed, memory-mappable dataset folder."""

from __future__ import annotations

import argparse
import logging

from pipeline.core import cli, runtime
from pipeline.data.dataset import PARTS, pack, write_content_record

log = logging.getLogger("pipeline.pack")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--part", required=True, choices=PARTS, help="which dataset the images form")
    p.add_argument("--inputs", required=True, nargs="+", help="npz image files (copied, one shard each) or sample shard manifests (.json, referenced in place)")
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--record", required=True,
                   help="the content record written beside the folder (PART.json: part, count, "
                        "every file's sha256): what the workflow's consumers depend on")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args, uses_torch=False)
    manifest = pack(args.out, args.part, args.inputs)
    write_content_record(args.record, manifest)
    log.info("packed %d %s images in %d shards into %s", manifest["count"], args.part,
             len(manifest["shards"]), args.out)


if __name__ == "__main__":
    runtime.run(main)
