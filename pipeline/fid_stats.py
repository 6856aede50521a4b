"""Stage: FID feature statistics (count, sum, sum of outer products) of one image file."""

from __future__ import annotations

import argparse
import logging
import pickle
import time

from pipeline.core import cli, runtime
from pipeline.core.errors import UserError
from pipeline.data.dataset import load_npz_or_shard
from pipeline.evaluation.frechet import FEATURES, PRECISIONS, image_stats, inception_model, save_stats

log = logging.getLogger("pipeline.fid_stats")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--images", required=True, help="image file: npz, or a sample shard's manifest (.json)")
    p.add_argument("--out", required=True, help="statistics file (.npz)")
    p.add_argument("--features", required=True, choices=FEATURES,
                   help="inception (pytorch-fid's Inception-V3) or pixels (an offline stand-in)")
    p.add_argument("--dims", type=int, required=True,
                   help="Inception features: 64, 192, 768, 2048 (only 2048 is comparable)")
    p.add_argument("--weights", default=None, help="FID Inception weights file (default: the "
                   "torch.hub cache under TORCH_HOME, else pytorch-fid's download)")
    p.add_argument("--precision", required=True, choices=PRECISIONS,
                   help="precision of the Inception network")
    p.add_argument("--batch-size", type=int, required=True, help="images per forward pass")
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
