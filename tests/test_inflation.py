"""Tests of pipeline.data.inflation.InflatedIndex."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from pipeline.data.inflation import InflatedIndex


@pytest.mark.parametrize("num_real,num_gen,dup", [(7, 5, 3), (10, 0, 2), (4, 9, 1), (0, 6, 4)])
def test_one_epoch_counts(num_real, num_gen, dup):
    idx = InflatedIndex(num_real, num_gen, dup, seed=0)
    assert idx.size == dup * num_real + num_gen
    rows = torch.cat([idx.next_batch(3) for _ in range(idx.size // 3)] +
                     ([idx.next_batch(idx.size % 3)] if idx.size % 3 else []))
    assert len(rows) == idx.size
    counts = Counter(rows.tolist())
    assert set(counts) == set(range(num_real + num_gen))
    for r in range(num_real):
        assert counts[r] == dup
    for g in range(num_real, num_real + num_gen):
        assert counts[g] == 1


def test_consecutive_epochs_are_different_permutations():
    idx = InflatedIndex(6, 4, 2, seed=0)
    e1, e2 = idx.next_batch(idx.size), idx.next_batch(idx.size)
    assert sorted(e1.tolist()) == sorted(e2.tolist())
    assert not torch.equal(e1, e2)


def test_batches_crossing_epochs_keep_epoch_counts():
    idx = InflatedIndex(5, 3, 2, seed=3)  # size 13
    rows = torch.cat([idx.next_batch(4) for _ in range(13)])  # exactly 4 epochs
    counts = Counter(rows.tolist())
    assert all(counts[r] == 4 * 2 for r in range(5))
    assert all(counts[g] == 4 for g in range(5, 8))


def test_same_seed_same_sequence_other_seed_differs():
    a, b, c = (InflatedIndex(8, 5, 3, seed=s) for s in (1, 1, 2))
    seq = lambda i: torch.cat([i.next_batch(7) for _ in range(10)])
    sa, sb, sc = seq(a), seq(b), seq(c)
    assert torch.equal(sa, sb)
    assert not torch.equal(sa, sc)


def test_independent_of_global_rng():
    a = InflatedIndex(8, 5, 3, seed=1)
    torch.manual_seed(123)
    x = a.next_batch(20)
    b = InflatedIndex(8, 5, 3, seed=1)
    torch.manual_seed(456)
    assert torch.equal(x, b.next_batch(20))


@pytest.mark.parametrize("dup", [0, -1])
def test_dup_below_one_raises(dup):
    with pytest.raises(ValueError, match="dup"):
        InflatedIndex(5, 5, dup, seed=0)


def test_empty_raises():
    with pytest.raises(ValueError):
        InflatedIndex(0, 0, 1, seed=0)


def test_real_generated_frequency_ratio():
    num_real, num_gen, dup = 20, 50, 10
    idx = InflatedIndex(num_real, num_gen, dup, seed=0)
    rows = torch.cat([idx.next_batch(64) for _ in range(50)])  # 3200 draws, ~12.8 epochs
    real = (rows < num_real).sum().item()
    gen = (rows >= num_real).sum().item()
    assert real + gen == len(rows)
    # exact over whole epochs, within one epoch's worth overall
    assert real / gen == pytest.approx(dup * num_real / num_gen, rel=0.05)
    whole = rows[: (len(rows) // idx.size) * idx.size]
    r, g = (whole < num_real).sum().item(), (whole >= num_real).sum().item()
    assert r * num_gen == g * dup * num_real
