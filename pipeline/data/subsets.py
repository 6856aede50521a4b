"""Subsets of the real training split: a class-stratified fraction (the study's real-data-size
axis, `real_fraction`) and a fixed number per class (the paper's data-scarce set, real.per_class).

Following the authors' setup: their data-scarce runs (paper Sec. 5.1) pretrain on a fixed
class-balanced tenth of CIFAR-10 (`cifar10-5k-train.npz`, 500 per class, README of
PKU-ML/adainf), and solo-learn's `data.fraction` (solo/data/classification_dataloader.py) draws a
class-stratified split with one fixed `random_state` whatever the run's seed. So a subset is a
property of the data, not of the cell: the workflow seeds it with `real.seed` (the real split's
seed), and every seed and strategy at one fraction trains on the same images (the spread over
seeds is training noise, not subset choice). Within a class the images are taken in one seeded
order, so a smaller fraction's subset is part of a larger one's.

(The generated images' subset, `num_generated`, is pipeline.data.dataset.generated_subset: a
seeded random draw over their global indices, not the first N.)
"""

from __future__ import annotations

import math

import numpy as np


def class_quota(count: int, fraction: float) -> int:
    """Images kept of a class of `count`: the rounded share, at least one (no class vanishes)."""
    return min(count, max(1, math.floor(fraction * count + 0.5)))


def real_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a class-stratified `fraction` of a labelled set (unlabelled rows,
    label -1, form one stratum of their own). 1.0 keeps every row."""
    if not 0 < fraction <= 1:
        raise ValueError(f"real fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    if fraction == 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):  # sorted, so each class draws the same order at any fraction
        rows = np.flatnonzero(labels == c)
        order = rng.permutation(rows)
        keep.append(order[:class_quota(len(rows), fraction)])
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def per_class_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted row indices of `per_class` images of every class (the paper's data-scarce set:
    500 of each CIFAR-10 class), each class's drawn in one seeded order as real_subset's."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise ValueError(f"real.per_class {per_class}: class {c} has only {len(rows)} "
                             "training images; lower it")
        keep.append(rng.permutation(rows)[:per_class])
    return np.sort(np.concatenate(keep))
