r"""python -m pipeline.fid_stats --images results/real/train.npz --out results/fid/real.stats.npz \
    --quality-out results/fid/real.quality.npz --features pixels --dims 2048 --precision fp32 \
    --subset 10000 --subset-seed 0 --k-precision 3 --k-density 5 --batch-size 200 \
    --quality-batch 256 --device auto --threads 1

Stage: FID feature statistics (count, sum, sum of outer products) of one image file, and
from the same features what the quality metrics need (pipeline.evaluation.quality): the file's
share of a seeded subset over global image indices and, for the real set, its k-NN radii; for a
generated shard, every image's quality scores against the real subset (--real-quality)."""

from __future__ import annotations

import argparse
import logging
import pickle
import time

from pipeline.core import cli, records, runtime
from pipeline.vocab import options
from pipeline.core.errors import UserError
from pipeline.data.dataset import load_npz_or_shard
from pipeline.evaluation import quality
from pipeline.evaluation.frechet import (SUBSET_SEED, features_stats, image_features,
                                         inception_model, save_stats, shard_subset_stats,
                                         weights_cache_path)

log = logging.getLogger("pipeline.fid_stats")


# required with --quality-out
QUALITY_OPTIONS = (*(flag for flag, _ in options.QUALITY_SETTINGS), options.QUALITY_BATCH.flag)


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.FID_STATS)
    return runtime.add_common_args(p)


def main(argv=None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    missing = [o for o in QUALITY_OPTIONS if getattr(args, o[2:].replace("-", "_")) is None]
    if args.quality_out and missing:
        p.error(f"--quality-out needs {', '.join(missing)}")
    device = runtime.setup(args, uses_torch=args.features != "pixels")
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
            raise damaged_weights(args.weights or weights_cache_path(), e) from e
        meta.update(dims=args.dims, weights_sha256=digest, precision=args.precision)
    if args.features == "dinov2":
        model, digest = load_dinov2(args, device)
        meta.update(arch=args.dinov2_arch, weights_sha256=digest, precision=args.precision)
    features = image_features(images, args.features, model=model, batch_size=args.batch_size,
                              device=device, precision=args.precision)
    stats = features_stats(features)
    subsets, protocol = protocol_subsets(args, features)
    meta.update(dims=len(stats.total), seconds=round(time.time() - t0, 2))
    save_stats(args.out, stats, subsets, **meta, protocol=protocol)
    if args.quality_out:
        write_quality(args, features, meta)
    records.write_for([args.out] + ([args.quality_out] if args.quality_out else []),
                      options.FID_STATS, argv, device, images=args.images)
    log.info("%s statistics of %d images (%d-d) in %.1fs", args.features, stats.count,
             len(stats.total), meta["seconds"])


def load_dinov2(args, device):
    """The DINOv2 network of --dinov2-arch from the --weights file, and the file's sha256."""
    from safetensors import SafetensorError

    from pipeline.evaluation.dinov2 import dinov2_model

    if args.dinov2_arch is None:
        raise UserError("--features dinov2 needs --dinov2-arch (config fid.dinov2_arch)")
    if args.weights is None:
        raise UserError("--features dinov2 needs --weights (the workflow passes the file rule "
                        "fetch_dinov2 fetched; or set fid.weights)")
    try:
        return dinov2_model(device, args.weights, args.dinov2_arch)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError,
            SafetensorError) as e:
        raise damaged_weights(args.weights, e, "DINOv2", "fetch_dinov2") from e


def protocol_subsets(args, features) -> tuple[list, dict | None]:
    """This file's sums over each FID subset (fid.num_generated images, fid.seed_sets times)
    and the protocol they follow; none with --num-generated all or absent (the real set)."""
    if args.num_generated in (None, "all"):
        return [], None
    if args.seed_sets is None:
        raise UserError("--num-generated needs --seed-sets")
    total = len(features) if args.total is None else args.total
    subsets = shard_subset_stats(features, args.start or 0, total, args.num_generated,
                                 args.seed_sets)
    return subsets, {"num_generated": args.num_generated, "seed_sets": args.seed_sets,
                     "total": total, "subset_seed": SUBSET_SEED}


def damaged_weights(path, e: BaseException, network: str = "FID Inception",
                    rule: str = "fetch_inception") -> UserError:
    """The one line for a weights file torch cannot read. Deleting it is enough: on the next
    run the workflow sees the fetch record's file gone and the fetch rule fetches it again
    (pipeline.core.assets.drop_stale_file_record); with fid.weights set, that names another."""
    return UserError(f"{network} weights {path}: {type(e).__name__}: "
                     f"{runtime.first_line(e, 160)}; the file is damaged: delete it and run "
                     f"snakemake again (rule {rule} fetches it again), or set "
                     "fid.weights to a good copy")


def write_quality(args, features, meta: dict) -> None:
    """This file's share of the feature subset; the real set's radii or the shard's scores."""
    total = len(features) if args.total is None else args.total
    start = args.start or 0
    chosen = quality.shard_subset(start, len(features), total, args.subset, args.subset_seed)
    kept = quality.as_features(features[chosen - start])
    q = dict(features=meta["features"], dims=meta["dims"], subset=args.subset,
             subset_seed=args.subset_seed, total=total, k_precision=args.k_precision,
             k_density=args.k_density)
    if args.real_quality is None:
        if start != 0 or total != len(features):
            raise UserError("the real set's quality file needs all its images in one file")
        radii = quality.knn_radii_many(kept, [args.k_precision, args.k_density],
                                       args.quality_batch)
        quality.save_real_quality(args.quality_out, chosen, kept, radii[args.k_precision],
                                  radii[args.k_density], q)
        log.info("real quality subset: %d of %d images, radii k=%d and k=%d", len(chosen),
                 total, args.k_precision, args.k_density)
        return
    real = quality.load_quality(args.real_quality)
    want = {k: q[k] for k in ("features", "dims", "k_precision", "k_density")}
    if {k: real["meta"].get(k) for k in want} != want:
        raise UserError(f"{args.real_quality} was computed with other settings "
                        f"({real['meta']}) than this shard ({want})")
    scores = quality.image_scores(features, real["features"], real["radii_precision"],
                                  real["radii_density"], args.k_density, args.quality_batch)
    quality.save_shard_quality(args.quality_out, start, chosen, kept, scores, q)
    log.info("shard quality: %d subset images, %s scores of %d images", len(chosen),
             "/".join(scores), len(features))


if __name__ == "__main__":
    runtime.run(main)
