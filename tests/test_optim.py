"""Tests of pipeline.pretraining.optim: LARS against its formula computed by hand, make_optimizer, scaled_lr."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from pipeline.pretraining.optim import LARS, make_optimizer, scaled_lr


def _norm(v):
    return math.sqrt(sum(c * c for c in v))


def _lars_step_by_hand(w, g, lr, wd, eta, clip, eps=1e-8):
    """One LARS step from a zero momentum buffer (the buffer becomes d) on a flat weight list."""
    trust = eta * _norm(w) / (_norm(g) + wd * _norm(w) + eps)
    if clip:
        trust = min(trust / lr, 1.0)
    d = [trust * (gi + wd * wi) for gi, wi in zip(g, w)]
    return [wi - lr * di for wi, di in zip(w, d)], d


def _param(values, shape):
    p = nn.Parameter(torch.tensor(values, dtype=torch.float64).view(shape))
    return p


W = [1.0, -2.0, 0.5, 3.0]
G = [0.1, 0.3, -0.2, 0.05]


@pytest.mark.parametrize("lr, clip", [(0.1, True), (0.001, True), (0.1, False)])
def test_one_step_matches_the_formula(lr, clip):
    wd, eta = 0.01, 0.02
    p = _param(W, (2, 2))
    p.grad = torch.tensor(G, dtype=torch.float64).view(2, 2)
    opt = LARS([p], lr=lr, momentum=0.9, weight_decay=wd, eta=eta, clip_lr=clip)
    opt.step()
    expected, _ = _lars_step_by_hand(W, G, lr, wd, eta, clip)
    assert p.detach().flatten().tolist() == pytest.approx(expected, abs=1e-12)


def test_clipping_caps_the_effective_rate_at_lr():
    # eta·‖w‖/(‖g‖ + wd‖w‖) = 0.02·3.775/(0.3775 + 0.0378) ≈ 0.182
    wd, eta = 0.01, 0.02
    trust = eta * _norm(W) / (_norm(G) + wd * _norm(W))
    assert 0.01 < trust < 1.0
    for lr in (0.01, 1.0):  # lr below the trust ratio: clipped to lr; above: the trust ratio
        p = _param(W, (2, 2))
        p.grad = torch.tensor(G, dtype=torch.float64).view(2, 2)
        LARS([p], lr=lr, weight_decay=wd, eta=eta, clip_lr=True).step()
        step = [w - q for w, q in zip(W, p.detach().flatten().tolist())]
        effective = min(trust, lr)
        assert step == pytest.approx([effective * (g + wd * w) for g, w in zip(G, W)],
                                     rel=1e-6)
    # without clipping the rate is lr·trust, so much smaller than lr for lr = 1
    p = _param(W, (2, 2))
    p.grad = torch.tensor(G, dtype=torch.float64).view(2, 2)
    LARS([p], lr=1.0, weight_decay=wd, eta=eta, clip_lr=False).step()
    step = [w - q for w, q in zip(W, p.detach().flatten().tolist())]
    assert step == pytest.approx([trust * (g + wd * w) for g, w in zip(G, W)], rel=1e-6)


def test_momentum_on_the_second_step():
    lr, wd, eta, mom = 0.1, 0.01, 0.02, 0.9
    p = _param(W, (2, 2))
    opt = LARS([p], lr=lr, momentum=mom, weight_decay=wd, eta=eta)
    p.grad = torch.tensor(G, dtype=torch.float64).view(2, 2)
    opt.step()
    w1, d1 = _lars_step_by_hand(W, G, lr, wd, eta, True)
    g2 = [0.2, -0.1, 0.4, 0.3]
    p.grad = torch.tensor(g2, dtype=torch.float64).view(2, 2)
    opt.step()
    _, d2 = _lars_step_by_hand(w1, g2, lr, wd, eta, True)
    buf = [mom * a + b for a, b in zip(d1, d2)]
    expected = [w - lr * b for w, b in zip(w1, buf)]
    assert p.detach().flatten().tolist() == pytest.approx(expected, abs=1e-12)


def test_bias_and_norm_parameters_are_neither_adapted_nor_decayed():
    lr, wd = 0.1, 0.5
    bias = _param([1.0, -2.0, 3.0], (3,))
    scalar = _param([2.0], ())
    for p in (bias, scalar):
        p.grad = torch.ones_like(p) * 0.25
    LARS([bias, scalar], lr=lr, weight_decay=wd, eta=0.02).step()
    # plain SGD step: p − lr·g (no trust ratio, no weight decay)
    assert bias.detach().tolist() == pytest.approx([1 - 0.025, -2 - 0.025, 3 - 0.025])
    assert scalar.item() == pytest.approx(2 - 0.025)


def test_bias_is_adapted_when_not_excluded():
    lr, wd, eta = 0.1, 0.5, 0.02
    w, g = [1.0, -2.0, 3.0], [0.25, 0.25, 0.25]
    bias = _param(w, (3,))
    bias.grad = torch.tensor(g, dtype=torch.float64)
    LARS([bias], lr=lr, weight_decay=wd, eta=eta, exclude_bias_n_norm=False).step()
    expected, _ = _lars_step_by_hand(w, g, lr, wd, eta, True)
    assert bias.detach().tolist() == pytest.approx(expected, abs=1e-12)


def test_in_a_module_only_weights_of_linear_and_conv_are_adapted():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net(torch.randn(8, 4)).pow(2).sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    lr, wd = 0.5, 0.1
    make_optimizer("lars", net.named_parameters(), lr, wd).step()
    for n, p in net.named_parameters():
        if p.ndim == 1:  # biases, BN weight and bias: plain SGD
            assert torch.allclose(p, before[n] - lr * grads[n])
        else:
            w, g = before[n], grads[n]
            trust = 0.02 * w.norm() / (g.norm() + wd * w.norm() + 1e-8)
            rate = min(trust.item(), lr)
            assert torch.allclose(p, w - rate * (g + wd * w), atol=1e-6)


def test_zero_gradient_and_missing_gradient():
    p = _param(W, (2, 2))
    p.grad = torch.zeros(2, 2, dtype=torch.float64)
    q = _param(W, (2, 2))  # no grad at all: skipped
    LARS([p, q], lr=0.1, weight_decay=0.1).step()
    # zero gradient: solo-learn skips adaptation and weight decay, so nothing moves
    assert p.detach().flatten().tolist() == W
    assert q.detach().flatten().tolist() == W


@pytest.mark.kernels
def test_lars_trains_a_small_regression(outcome):
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = x @ torch.randn(5, 1) + 0.1
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = make_optimizer("lars", net.parameters(), lr=0.5, weight_decay=1e-4)
    first = None
    for _ in range(100):
        loss = (net(x) - y).pow(2).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    outcome(ratio=loss.item() / first)
    assert loss.item() < 0.5 * first


def test_closure_and_state_dict_round_trip():
    p = _param(W, (2, 2))
    opt = LARS([p], lr=0.1, weight_decay=0.01)

    def closure():
        opt.zero_grad()
        loss = p.pow(2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(sum(w * w for w in W))
    opt2 = LARS([p], lr=0.1, weight_decay=0.01)
    opt2.load_state_dict(opt.state_dict())
    assert torch.equal(opt2.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])


def test_invalid_arguments():
    p = _param(W, (2, 2))
    for kwargs in ({"lr": -1.0}, {"lr": 0.1, "momentum": -0.1},
                   {"lr": 0.1, "weight_decay": -1.0}):
        with pytest.raises(ValueError):
            LARS([p], **kwargs)


def test_make_optimizer_kinds():
    net = nn.Linear(3, 2)
    lars = make_optimizer("lars", net.parameters(), 0.4, 1e-4)
    assert isinstance(lars, LARS)
    g = lars.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["eta"], g["clip_lr"],
            g["exclude_bias_n_norm"]) == (0.4, 0.9, 1e-4, 0.02, True, True)
    sgd = make_optimizer("sgd", net.named_parameters(), 0.3, 1e-4)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4
    assert len(sgd.param_groups[0]["params"]) == 2
    adamw = make_optimizer("adamw", net.parameters(), 1e-3, 0.05)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["lr"] == 1e-3


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="rmsprop"):
        make_optimizer("rmsprop", nn.Linear(2, 2).parameters(), 0.1, 0.0)


def test_scaled_lr():
    assert scaled_lr(0.2, 256) == pytest.approx(0.2)
    assert scaled_lr(0.2, 512) == pytest.approx(0.4)
    assert scaled_lr(0.15, 128) == pytest.approx(0.075)
