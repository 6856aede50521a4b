"""Tests of pipeline.pretraining.losses: NT-Xent, MoCo's InfoNCE, BYOL's and Barlow Twins' losses against
values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.pretraining.losses import barlow_twins_loss, byol_loss, moco_infonce, nt_xent

F64 = torch.float64


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
    from pipeline.pretraining.losses import barlow_twins_loss, byol_loss, moco_infonce

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


def _unit(v):
    norm = math.sqrt(sum(c * c for c in v))
    return [c / norm for c in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


# -- the other methods' losses ----------------------------------------------------------------------

def test_moco_infonce_matches_hand_computed_value():
    q = [[1.0, 2.0], [3.0, -1.0]]
    k = [[2.0, 1.0], [-1.0, 2.0]]
    queue = [[1.0, 0.0], [0.0, 3.0], [-1.0, -1.0]]
    t = 0.5
    total = 0.0
    for qi, ki in zip(q, k):
        qi, ki = _unit(qi), _unit(ki)
        logits = [_dot(qi, ki) / t] + [_dot(qi, _unit(n)) / t for n in queue]
        total += -logits[0] + math.log(sum(math.exp(s) for s in logits))  # positive at index 0
    expected = total / len(q)
    got = moco_infonce(torch.tensor(q, dtype=F64), torch.tensor(k, dtype=F64),
                       torch.tensor(queue, dtype=F64), t).item()
    assert got == pytest.approx(expected, abs=1e-10)
    # the positive is key i, not key j: swapping the keys changes the value
    swapped = moco_infonce(torch.tensor(q, dtype=F64), torch.tensor(k[::-1], dtype=F64),
                           torch.tensor(queue, dtype=F64), t).item()
    assert abs(swapped - got) > 1e-3


def test_moco_infonce_normalises_its_inputs_and_has_the_uniform_limit():
    g = torch.Generator().manual_seed(0)
    q, k, queue = (torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g),
                   torch.randn(10, 6, generator=g))
    a = moco_infonce(q, k, queue, 0.2).item()
    assert moco_infonce(3 * q, 0.5 * k, 7 * queue, 0.2).item() == pytest.approx(a, abs=1e-5)
    # very high temperature: 1 positive + 10 negatives equally likely
    assert moco_infonce(q, k, queue, 1e6).item() == pytest.approx(math.log(11), abs=1e-4)


def test_byol_loss_matches_hand_computed_value():
    p = [[1.0, 0.0], [1.0, 1.0], [3.0, 4.0], [1.0, 2.0]]
    z = [[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0], [2.0, -1.5]]
    cos = [_dot(_unit(a), _unit(b)) for a, b in zip(p, z)]  # 0, 1, -1, cos of the last pair
    expected = 2 - 2 * sum(cos) / len(cos)
    got = byol_loss(torch.tensor(p, dtype=F64), torch.tensor(z, dtype=F64)).item()
    assert got == pytest.approx(expected, abs=1e-12)
    # equals the mean squared distance of the normalised vectors
    msd = sum(sum((x - y) ** 2 for x, y in zip(_unit(a), _unit(b))) for a, b in zip(p, z)) / 4
    assert got == pytest.approx(msd, abs=1e-12)
    assert byol_loss(torch.tensor(p), 5 * torch.tensor(p)).item() == pytest.approx(0, abs=1e-6)


def test_barlow_twins_loss_matches_hand_computed_value():
    z1 = [[1.0, 2.0], [3.0, 0.0], [2.0, 5.0]]
    z2 = [[0.0, 1.0], [2.0, 2.0], [1.0, -1.0]]
    lambd, scale, eps = 0.5, 0.1, 1e-5
    n, d = 3, 2

    def standardise(z):  # per dimension over the batch, biased variance, as BatchNorm1d
        cols = []
        for j in range(d):
            col = [row[j] for row in z]
            mean = sum(col) / n
            var = sum((c - mean) ** 2 for c in col) / n
            cols.append([(c - mean) / math.sqrt(var + eps) for c in col])
        return [[cols[j][i] for j in range(d)] for i in range(n)]

    a, b = standardise(z1), standardise(z2)
    c = [[sum(a[s][i] * b[s][j] for s in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    expected = scale * (on + lambd * off)
    got = barlow_twins_loss(torch.tensor(z1, dtype=F64), torch.tensor(z2, dtype=F64), lambd,
                            scale).item()
    assert got == pytest.approx(expected, rel=1e-10)
    # and with numpy, through the BatchNorm formula
    a_np = (np.array(z1) - np.mean(z1, 0)) / np.sqrt(np.var(z1, 0) + eps)
    b_np = (np.array(z2) - np.mean(z2, 0)) / np.sqrt(np.var(z2, 0) + eps)
    c_np = a_np.T @ b_np / n
    off_np = (c_np ** 2).sum() - (np.diag(c_np) ** 2).sum()
    assert got == pytest.approx(scale * (((1 - np.diag(c_np)) ** 2).sum() + lambd * off_np),
                                rel=1e-10)


def test_barlow_twins_loss_matches_batchnorm_and_rewards_identical_views():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 5, generator=g), torch.randn(16, 5, generator=g)
    bn = torch.nn.BatchNorm1d(5, affine=False).train()
    c = bn(z1).T @ bn(z2) / 16
    ref = 0.1 * (((1 - c.diagonal()) ** 2).sum()
                 + 0.0051 * (c.pow(2).sum() - c.diagonal().pow(2).sum()))
    assert barlow_twins_loss(z1, z2, 0.0051, 0.1).item() == pytest.approx(ref.item(), rel=1e-5)
    assert barlow_twins_loss(z1, z1, 0.0051, 0.1) < barlow_twins_loss(z1, z2, 0.0051, 0.1)


def test_barlow_twins_groups_average_the_sub_batches_matrices_at_a_1_over_groups_gradient():
    """groups=k: each of k consecutive sub-batches standardised on its own, the matrices
    averaged (the loss's value), and the gradient 1/k of that loss's (the authors' DDP form)."""
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(12, 4, generator=g, dtype=F64, requires_grad=True)
    z2 = torch.randn(12, 4, generator=g, dtype=F64)
    lambd, scale, eps = 0.3, 0.1, 1e-5

    def standardise(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    c = sum(standardise(a).T @ standardise(b) / 4 for a, b in zip(z1.split(4), z2.split(4))) / 3
    ref = scale * (((1 - c.diagonal()) ** 2).sum() + lambd * (c.pow(2).sum() - c.diagonal().pow(2).sum()))
    (ref_grad,) = torch.autograd.grad(ref, z1)
    got = barlow_twins_loss(z1, z2, lambd, scale, groups=3)
    (grad,) = torch.autograd.grad(got, z1)
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(grad, ref_grad / 3, rtol=1e-10)
    # one group is the loss over the whole batch with its exact gradient
    assert barlow_twins_loss(z1, z2, lambd, scale, groups=1).item() != pytest.approx(got.item())
    with pytest.raises(ValueError, match="12 does not split into 5"):
        barlow_twins_loss(z1, z2, lambd, scale, groups=5)


@pytest.mark.slow
def test_barlow_twins_groups_2_is_the_authors_loss_on_two_ddp_processes():
    """The authors' barlow_loss_func as their file computes it, on 2 gloo processes × B under
    DDP, against barlow_twins_loss on 1 process × 2B with groups=2: equal loss and gradients
    (tests/barlow_parity_worker.py)."""
    import os
    import socket
    import subprocess
    import sys

    from support.snakemake import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
         "127.0.0.1", "--master_port", str(port), str(REPO / "tests" / "barlow_parity_worker.py"),
         str(REPO)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "PARITY-OK" in r.stdout
