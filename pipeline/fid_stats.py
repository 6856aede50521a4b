"""Stage: FID feature statistics (count, sum, sum of outer products) of one image file."""

from __future__ import annotations

import argparse
import logging
import pickle
import time

from pipeline.core import cli, runtime
from pipeline.vocab import options
from pipeline.core.errors import UserError
from pipeline.data.dataset import load_npz_or_shard
from pipeline.evaluation.frechet import image_stats, inception_model, save_stats

log = logging.getLogger("pipeline.fid_stats")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.FID_STATS)
    return runtime.add_common_args(p)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    device = runtime.setup(args, uses_torch=args.features == "inception")
    t0 = time.time()

    images, _ = load_npz_or_shard(args.images)
    meta = {"features": args.features}
    model = None
    if args.features == "inception":
        try:
            model, digest = inception_model(device, args.dims, args.weights)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
            # a truncated or damaged file: torch.load's zip or pickle errors
            raise UserError(f"FID Inception weights {args.weights or 'in the torch.hub cache'}: "
                            f"{type(e).__name__}: {runtime.first_line(e, 160)}; delete a damaged "
                            "file (rule fetch_inception fetches it again) or set fid.weights to "
                            "a good copy") from e
        meta.update(dims=args.dims, weights_sha256=digest, precision=args.precision)
    stats = image_stats(images, args.features, model=model, batch_size=args.batch_size,
                        device=device, precision=args.precision)
    meta.update(dims=len(stats.total), seconds=round(time.time() - t0, 2))
    save_stats(args.out, stats, **meta)
    log.info("%s statistics of %d images (%d-d) in %.1fs", args.features, stats.count,
             len(stats.total), meta["seconds"])


if __name__ == "__main__":
    runtime.run(main)
