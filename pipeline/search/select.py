"""Who survives a round of the `auto` search, and the validation split that scores them.

Torch-free: the split is indices, the ranking plain numbers.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(bank, validation) indices of the real training split: a seeded, stratified share
    `fraction` of it for validation (the test split is never part of the search)."""
    if not 0 < fraction < 1:
        raise ValueError(f"auto.val_fraction must be in (0, 1), got {fraction!r}")
    index = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None  # a class of one cannot split
    bank, val = train_test_split(index, test_size=fraction, random_state=seed, shuffle=True,
                                 stratify=stratify)
    return np.sort(bank), np.sort(val)


def ranking(scores: dict[str, float], order: list[str]) -> list[str]:
    """Best score first; equal scores in `order` (the grid's), so a rerun picks the same."""
    position = {name: i for i, name in enumerate(order)}
    return sorted(scores, key=lambda name: (-scores[name], position[name]))


def survivors(scores: dict[str, float], order: list[str], keep: int) -> list[str]:
    """The `keep` best candidates, in ranking order."""
    return ranking(scores, order)[:keep]
