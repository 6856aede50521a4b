r"""python -m pipeline.fid --real results/fid/real.stats.npz \
    --generated results/fid/shard_00000.stats.npz results/fid/shard_00001.stats.npz \
    --out results/fid.json --real-quality results/fid/real.quality.npz --generated-quality \
    results/fid/shard_00000.quality.npz results/fid/shard_00001.quality.npz \
    --quality-batch 256

Stage: FID from per-shard feature statistics, merged exactly, against the real reference: by
the configured protocol (fid.num_generated images in fid.seed_sets disjoint seeded subsets: each
set's figure, their min, the reported one as EDM's, and mean) and over the whole generated set;
beside it precision, recall, density and coverage from the feature subsets the statistics jobs
kept (pipeline.evaluation.quality), in blocks: no N×N matrix in memory."""

from __future__ import annotations

import argparse
import logging
import time

import resource

from pipeline.core import cli, io, records, runtime
from pipeline.evaluation import quality
from pipeline.vocab import options
from pipeline.evaluation.frechet import distance_to_reference, load_reference, merge_stats_files

log = logging.getLogger("pipeline.fid")


def build_parser() -> argparse.ArgumentParser:
    return cli.add_options(cli.parser(__doc__), options.FID)


def quality_metrics(real_path: str, shard_paths: list, batch: int) -> dict:
    """The four metrics of the generated subset against the real one, and what they were
    computed on."""
    real = quality.load_quality(real_path)
    fake, _, meta = quality.merge_shard_quality(shard_paths)
    k_p, k_d = meta["k_precision"], meta["k_density"]
    radii = {k_p: real["radii_precision"], k_d: real["radii_density"]}
    out = quality.prdc(real["features"], fake, k_p, k_d, real_radii=radii, batch=batch)
    return {**out, "k_precision": k_p, "k_density": k_d, "features": meta["features"],
            "num_real": len(real["features"]), "num_generated": len(fake),
            "subset": meta["subset"], "subset_seed": meta["subset_seed"]}


def fid_protocol(protocol: dict | None, count: int, whole: float, fids: list[float]) -> dict:
    """What the reported figure follows: fid.num_generated of the `count` generated images in
    fid.seed_sets subsets (each figure, min and mean), or the whole set (protocol None)."""
    if protocol is None:
        protocol, fids = {"num_generated": count, "seed_sets": 1, "subset_seed": None}, [whole]
    n, k = protocol["num_generated"], protocol["seed_sets"]
    mean = sum(fids) / len(fids)
    text = (f"the whole set of {count}" if protocol["subset_seed"] is None else
            f"{n} of {count} generated" + (f", min of {k} seed sets (mean {mean:.4f})"
                                           if k > 1 else ""))
    return {"num_generated": n, "seed_sets": k, "of": count,
            "subset_seed": protocol["subset_seed"], "fids": fids, "min": min(fids),
            "mean": mean, "text": text}


def main(argv=None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if args.real_quality and (args.quality_batch is None or not args.generated_quality):
        p.error("--real-quality needs --generated-quality and --quality-batch")
    runtime.setup(args, uses_torch=False)
    t0 = time.time()

    gen, meta, seconds, subsets = merge_stats_files(args.generated)
    mu_r, sigma_r, num_real, real_meta = load_reference(args.real)
    whole = distance_to_reference(gen, mu_r, sigma_r)
    protocol = fid_protocol(meta.get("protocol"), gen.count, whole,
                            [distance_to_reference(s, mu_r, sigma_r) for s in subsets])
    fid = protocol["min"]
    result = {
        "fid": fid, "features": meta["features"], "dims": len(gen.total),
        "num_generated": protocol["num_generated"], "num_real": num_real,
        "protocol": protocol, "whole_set": {"fid": whole, "num_generated": gen.count},
        "weights_sha256": meta.get("weights_sha256"), "precision": meta.get("precision"),
        "real_reference": args.real,
        "seconds": round(seconds + real_meta.get("seconds", 0.0) + time.time() - t0, 2),
    }
    if args.real_quality:
        result["quality"] = quality_metrics(args.real_quality, args.generated_quality,
                                            args.quality_batch)
        result["seconds"] = round(seconds + real_meta.get("seconds", 0.0) + time.time() - t0, 2)
        log.info("precision %.4f recall %.4f density %.4f coverage %.4f (%s features, %d vs %d; "
                 "peak RSS %.0f MB)",
                 *(result["quality"][k] for k in ("precision", "recall", "density", "coverage")),
                 result["quality"]["features"], result["quality"]["num_generated"],
                 result["quality"]["num_real"],
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    io.write_json(args.out, result)
    records.write_for(args.out, options.FID, argv)
    log.info("FID (%s features) = %.4f: %s; whole set of %d: %.4f (%s real images)",
             result["features"], fid, protocol["text"], gen.count, whole, num_real)


if __name__ == "__main__":
    runtime.run(main)
