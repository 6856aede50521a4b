"""Stage: FID from per-shard feature statistics, merged exactly, against the real reference."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import cli, io, runtime
from pipeline.evaluation.frechet import distance_to_reference, load_reference, merge_stats_files

log = logging.getLogger("pipeline.fid")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--generated", required=True, nargs="+", help="statistics files of the shards")
    p.add_argument("--real", required=True, help="real statistics: ours, or an npz of mu/sigma")
    p.add_argument("--out", required=True, help="JSON result")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args, uses_torch=False)
    t0 = time.time()

    gen, meta, seconds = merge_stats_files(args.generated)
    mu_r, sigma_r, num_real, real_meta = load_reference(args.real)
    fid = distance_to_reference(gen, mu_r, sigma_r)
    result = {
        "fid": fid, "features": meta["features"], "dims": len(gen.total),
        "num_generated": gen.count, "num_real": num_real,
        "weights_sha256": meta.get("weights_sha256"), "precision": meta.get("precision"),
        "real_reference": args.real,
        "seconds": round(seconds + real_meta.get("seconds", 0.0) + time.time() - t0, 2),
    }
    io.write_json(args.out, result)
    log.info("FID (%s features) = %.4f over %d generated / %s real images", result["features"],
             fid, gen.count, num_real)


if __name__ == "__main__":
    runtime.run(main)
