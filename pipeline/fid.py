"""Stage: Fréchet distance between generated shards and the real training images."""

from __future__ import annotations

import argparse
import logging
import time

from pipeline import io, runtime
from pipeline.frechet import FEATURES, FeatureStats, frechet_distance, image_stats, inception_model

log = logging.getLogger("pipeline.fid")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--real", required=True, help="real training images (npz)")
    p.add_argument("--generated", required=True, nargs="+", help="generated shard files (npz)")
    p.add_argument("--out", required=True, help="JSON result")
    p.add_argument("--features", default="inception", choices=FEATURES)
    p.add_argument("--batch-size", type=int, default=200)
    runtime.add_common_args(p)
    args = p.parse_args(argv)
    device = runtime.setup(args)
    t0 = time.time()

    model = inception_model(device) if args.features == "inception" else None

    def stats_of(path: str) -> FeatureStats:
        images, _ = io.load_images(path)
        return image_stats(images, args.features, model=model, batch_size=args.batch_size,
                           device=device)

    real = stats_of(args.real)
    gen = stats_of(args.generated[0])
    for path in args.generated[1:]:
        gen = gen.merge(stats_of(path))
    fid = frechet_distance(gen, real)
    io.write_json(args.out, {
        "fid": fid, "features": args.features, "num_generated": gen.count,
        "num_real": real.count, "seconds": round(time.time() - t0, 2),
    })
    log.info("FID (%s features) = %.4f over %d generated / %d real images", args.features, fid,
             gen.count, real.count)


if __name__ == "__main__":
    main()
