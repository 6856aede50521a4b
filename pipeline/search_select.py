r"""python -m pipeline.search_select --encoders results/search/simclr/seed0/round1/c0/encoder.pt \
    results/search/simclr/seed0/round1/c1/encoder.pt --candidates c0 c1 \
    --train results/real/train.npz --round 1 --step 8 --keep 1 --val-fraction 0.2 \
    --val-seed 0 --k 20 --out results/search/simclr/seed0/round1.json --device auto \
    --threads 1

Stage: one round of the `auto` search's choice: score each candidate's encoder (k-NN top-1 on
a validation split of the real training data, pipeline.search.score) and keep the best.

Reads the real training split only: the test split is for the final evaluation of the `auto`
cell, as of every other cell. Writes the round (scores, ranking, survivors) as JSON.
"""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.core import cli, io, runtime
from pipeline.vocab import options
from pipeline.search.score import knn_validation_score
from pipeline.search.select import ranking, validation_split
from pipeline.pretraining.encoders import load_encoder

log = logging.getLogger("pipeline.search_select")


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.SEARCH_SELECT)
    return runtime.add_common_args(p)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if len(args.encoders) != len(args.candidates):
        raise SystemExit(f"{len(args.encoders)} --encoders for {len(args.candidates)} --candidates")
    if not 1 <= args.keep <= len(args.candidates):
        raise SystemExit(f"--keep {args.keep}: must be in 1..{len(args.candidates)}")
    device = runtime.setup(args)
    t0 = time.time()
    images, labels = io.load_images(args.train)
    if (labels < 0).any():
        raise SystemExit(f"{args.train}: the search scores on labelled images; found label -1")
    try:
        bank, val = validation_split(labels, args.val_fraction, args.val_seed)
    except ValueError as e:
        raise SystemExit(str(e))
    scores, meta = {}, {}
    for name, path in zip(args.candidates, args.encoders):
        encoder, meta = load_encoder(path, device)
        scores[name] = knn_validation_score(encoder, images, labels, bank, val, args.k, device)
        log.info("round %d, step %d: %s k-NN top-1 %.2f %%", args.round, args.step, name,
                 scores[name])
    ranked = ranking(scores, args.candidates)
    kept = set(ranked[:args.keep])
    result = {"method": meta.get("method"), "seed": meta.get("config", {}).get("seed"),
              "round": args.round, "step": args.step, "scores": scores, "ranking": ranked,
              # in the given (grid) order, so that the next round breaks ties the same way
              "survivors": [c for c in args.candidates if c in kept],
              "cut": [c for c in ranked if c not in kept],
              "score": f"k-NN top-1 (k {args.k}) on {len(val)} validation images",
              "num_bank": len(bank), "num_val": len(val),
              "seconds": round(time.time() - t0, 1)}
    io.write_json(args.out, result)
    log.info("round %d: %s survive", args.round, ", ".join(result["survivors"]))


if __name__ == "__main__":
    runtime.run(main)
