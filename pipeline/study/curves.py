"""The report's training curves: pretraining losses and online-probe accuracies of every run,
grouped by (method, strategy) and averaged over seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


Curve = tuple[list, list]  # (steps, values)


def read_losses(path: str) -> Curve:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def loss_curves(histories: list[str]) -> dict[tuple[str, str], list[Curve]]:
    """The loss curves of pretrain's METHOD/STRATEGY/seedN/history.csv files, by cell."""
    curves: dict = {}
    for h in histories:
        cell = Path(h).parent
        curves.setdefault((cell.parent.parent.name, cell.parent.name), []).append(read_losses(h))
    return curves


def online_curves(results: list[dict]) -> dict[tuple[str, str], list[Curve]]:
    """The top-1 curves of the online probe's results, by cell (other results are skipped)."""
    curves: dict = {}
    for r in results:
        if r["protocol"] == "online":
            curve = ([c["step"] for c in r["curve"]], [c["top1"] for c in r["curve"]])
            curves.setdefault((r["method"], r["strategy"]), []).append(curve)
    return curves


def mean_curves(curves: dict[tuple[str, str], list[Curve]],
                keep: list[str]) -> dict[str, tuple[list, np.ndarray]]:
    """Average each (method, strategy)'s curves over seeds, for the strategies in `keep`."""
    out = {}
    for (method, strategy), runs in curves.items():
        if strategy in keep:
            n = min(len(steps) for steps, _ in runs)
            label = f"{method}/{strategy}" + (f" (mean of {len(runs)})" if len(runs) > 1 else "")
            out[label] = (runs[0][0][:n], np.mean([values[:n] for _, values in runs], axis=0))
    return out
