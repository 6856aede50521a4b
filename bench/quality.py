"""Peak memory of the generated-set quality metrics (pipeline.evaluation.quality.prdc, batched)
against the N×M distance matrices of prdc.compute_prdc, in the same run.

    python bench/quality.py                 # 50k real × 50k generated, 64-d features
    python bench/quality.py --n 50000 --dims 2048 --check 4000

The batched computation runs at the full size (--n per side) and its peak is measured with
tracemalloc (numpy reports its buffers to it). prdc at that size needs three N×N float32
matrices (≈ 10 GB each at 50k), more than this machine has, so its peak there is computed from
its formula; the formula is checked against prdc's measured peak at --check per side, in the
same run. Memory of the batched computation does not depend on the feature dimension beyond
the features themselves (N×d float64 per side), so --dims 64 keeps the run to minutes on 2 CPU
cores; --dims 2048 measures the Inception size (slower: tens of minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import time
import tracemalloc

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.evaluation import quality  # noqa: E402


def peak_of(fn, *args, **kwargs):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, peak, seconds


def prdc_formula(n_real: int, n_fake: int, itemsize: int = 4) -> int:
    """prdc.compute_prdc's largest simultaneous allocation: the real-fake distance matrix kept
    while a boolean N×M comparison is built, after the two self-distance matrices were each
    built (and one np.argpartition of int64 indices over it taken)."""
    biggest_self = max(n_real, n_fake) ** 2 * (itemsize + 8)  # distances + argpartition indices
    cross = n_real * n_fake * (itemsize + 1)  # distances + one boolean comparison
    return max(biggest_self, cross)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="features per side (default 50000)")
    p.add_argument("--dims", type=int, default=64, help="feature dimension (default 64)")
    p.add_argument("--batch", type=int, default=quality.DEFAULT_BATCH,
                   help="rows per distance block (default %(default)s)")
    p.add_argument("--check", type=int, default=3000,
                   help="per side, where prdc itself is measured to check the formula (default 3000)")
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    real = rng.normal(size=(args.n, args.dims)).astype(np.float32)
    fake = (rng.normal(size=(args.n, args.dims)) * 1.1).astype(np.float32)
    metrics, batched_peak, seconds = peak_of(quality.prdc, real, fake, 3, 5, batch=args.batch)
    features = 2 * args.n * args.dims * 8  # both sides as float64
    print(f"batched ({args.n} × {args.n}, {args.dims}-d, blocks of {args.batch} rows): peak "
          f"{batched_peak / 2**20:,.0f} MiB (features as float64: {features / 2**20:,.0f} MiB), "
          f"{seconds:.0f} s; {json.dumps({k: round(v, 4) for k, v in metrics.items()})}")

    import prdc

    small_r, small_f = real[:args.check], fake[:args.check]
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sizes
        ref, prdc_peak, prdc_seconds = peak_of(prdc.compute_prdc, small_r, small_f, 5)
    ours_small, ours_small_peak, _ = peak_of(quality.prdc, small_r, small_f, 5, 5,
                                             batch=args.batch)
    formula_small = prdc_formula(args.check, args.check)
    same = all(abs(float(ref[k]) - ours_small[k]) < 1e-6 for k in ref)
    print(f"prdc at {args.check} × {args.check}: measured peak {prdc_peak / 2**20:,.1f} MiB, "
          f"formula {formula_small / 2**20:,.1f} MiB ({prdc_seconds:.1f} s); batched there "
          f"{ours_small_peak / 2**20:,.1f} MiB; the same metrics: {same}")
    full = prdc_formula(args.n, args.n)
    print(f"prdc at {args.n} × {args.n} (formula): {full / 2**30:,.1f} GiB of distance matrices "
          f"at once; ratio prdc / batched = {full / batched_peak:,.0f}×")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"n": args.n, "dims": args.dims, "batch": args.batch,
                       "batched_peak_bytes": batched_peak, "batched_seconds": round(seconds, 1),
                       "prdc_formula_bytes": full, "check": args.check,
                       "prdc_measured_bytes_at_check": prdc_peak,
                       "prdc_formula_bytes_at_check": formula_small,
                       "batched_bytes_at_check": ours_small_peak, "metrics": metrics,
                       "same_metrics_at_check": same, "machine": platform.processor()
                       or platform.machine()}, f, indent=1)


if __name__ == "__main__":
    main()
