"""Tests of pipeline.ssl.losses.nt_xent against a value computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.ssl.losses import nt_xent


def _nt_xent_by_hand(z1, z2, temperature):
    """NT-Xent with plain Python: anchors are the 2N views, the positive of view i is its other
    view, the denominator sums over the 2N-1 views other than the anchor itself."""
    views = [list(v) for v in z1] + [list(v) for v in z2]
    n = len(z1)
    unit = []
    for v in views:
        norm = math.sqrt(sum(c * c for c in v))
        unit.append([c / norm for c in v])
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = {k: sum(a * b for a, b in zip(unit[i], unit[k])) / temperature
                for k in range(2 * n) if k != i}
        total += -sims[pos] + math.log(sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.5, 0.2, 1.0])
def test_matches_hand_computed_value(temperature):
    z1 = [[1.0, 2.0], [3.0, -1.0]]
    z2 = [[2.0, 1.0], [-1.0, 2.0]]
    expected = _nt_xent_by_hand(z1, z2, temperature)
    got = nt_xent(torch.tensor(z1, dtype=torch.float64), torch.tensor(z2, dtype=torch.float64),
                  temperature).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_hand_formula_is_not_symmetric_in_the_pairing():
    # Guard that the example above actually discriminates: pairing view 0 with view 1 of the other
    # pair must change the value.
    z1 = [[1.0, 2.0], [3.0, -1.0]]
    z2 = [[2.0, 1.0], [-1.0, 2.0]]
    swapped = [z2[1], z2[0]]
    assert abs(_nt_xent_by_hand(z1, z2, 0.5) - _nt_xent_by_hand(z1, swapped, 0.5)) > 1e-3
    got = nt_xent(torch.tensor(z1), torch.tensor(swapped), 0.5).item()
    assert got == pytest.approx(_nt_xent_by_hand(z1, swapped, 0.5), abs=1e-5)


def test_identical_views_beat_swapped_views():
    z = torch.eye(2)
    aligned = nt_xent(z, z.clone(), 0.5)
    swapped = nt_xent(z, z.flip(0), 0.5)  # each positive is orthogonal, a negative is identical
    assert aligned < swapped
    # by hand: positive sim 1, negatives 0, 0 → -1/T + log(e^{1/T} + 2)
    assert aligned.item() == pytest.approx(-2 + math.log(math.exp(2) + 2), abs=1e-6)


def test_invariant_to_the_scale_of_the_embeddings():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(nt_xent(7 * z1, 0.1 * z2, 0.3).item(),
                                                       abs=1e-5)


def test_temperature_scaling():
    z = torch.eye(2)
    temps = [2.0, 1.0, 0.5, 0.1]
    aligned = [nt_xent(z, z.clone(), t).item() for t in temps]
    swapped = [nt_xent(z, z.flip(0), t).item() for t in temps]
    # sharper (lower) temperature: a perfect alignment costs less, a wrong one costs more
    assert all(a > b for a, b in zip(aligned, aligned[1:]))
    assert all(a < b for a, b in zip(swapped, swapped[1:]))
    assert aligned[-1] < 1e-3
    # very high temperature: all 2N-1 candidates equally likely → log(2N-1)
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    assert nt_xent(z1, z2, 1e6).item() == pytest.approx(math.log(5), abs=1e-4)


def test_gradients_flow_and_are_finite():
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    nt_xent(z1, z2, 0.2).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0


def test_every_loss_is_computed_in_fp32_under_bf16_autocast():
    """The heads' outputs are cast up and the loss runs without autocast: the same value as in
    plain fp32 (under bf16 autocast the logits' matmul would otherwise be bf16)."""
    from pipeline.ssl.losses import barlow_twins_loss, byol_loss, moco_infonce

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    queue = torch.randn(256, 32, generator=g)
    calls = {
        "nt_xent": lambda a, b: nt_xent(a, b, 0.2),
        "moco": lambda a, b: moco_infonce(a, b, queue, 0.2),
        "byol": byol_loss,
        "barlow": lambda a, b: barlow_twins_loss(a, b, 0.0051, 0.1),
    }
    for name, loss in calls.items():
        expected = loss(z1, z2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = loss(z1, z2)
            from_bf16 = loss(z1.bfloat16(), z2.bfloat16())  # heads' outputs in bf16
        assert got.dtype == torch.float32 and from_bf16.dtype == torch.float32, name
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=name)
        expected16 = loss(z1.bfloat16().float(), z2.bfloat16().float())
        torch.testing.assert_close(from_bf16, expected16, rtol=1e-6, atol=1e-6, msg=name)
