"""Tests of pipeline.pretraining.methods (the losses themselves are in test_losses.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.pretraining.losses import barlow_twins_loss, byol_loss, moco_infonce, nt_xent
from pipeline.pretraining.encoders import Encoder
from pipeline.pretraining.optim import make_optimizer
from pipeline.pretraining.methods import (METHODS, BYOL, BarlowTwins, MoCoV2Plus, SimCLR, build_method,
                                  cosine_tau)
from pipeline.vocab.names import ASYMMETRIC_METHODS

TINY = {
    "simclr": {"proj_hidden": 16, "proj_dim": 8},
    "mocov2plus": {"proj_hidden": 16, "proj_dim": 8, "queue_size": 32},
    "byol": {"proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16},
    "barlow": {"proj_hidden": 16, "proj_dim": 8},
}


def tiny_encoder() -> Encoder:
    return Encoder(widths=[8, 16], blocks=[1, 1], mean=[0.5] * 3, std=[0.25] * 3)


def tiny_method(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_method(name, tiny_encoder(), **{**TINY[name], **overrides})


def views(n: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.rand(n, 3, 8, 8, generator=g)


# ---------------------------------------------------------------------------------------- registry

def test_registry_and_defaults_follow_the_paper():
    assert METHODS == {"simclr": SimCLR, "mocov2plus": MoCoV2Plus, "byol": BYOL,
                       "barlow": BarlowTwins}
    assert SimCLR.DEFAULTS == {"optimizer": "lars", "lr": 0.2, "classifier_lr": 0.05, "weight_decay": 1e-4,
                               "proj_hidden": 2048, "proj_dim": 256, "temperature": 0.2}
    assert MoCoV2Plus.DEFAULTS == {"optimizer": "sgd", "lr": 0.15, "classifier_lr": 0.15,
                                   "weight_decay": 1e-4,
                                   "proj_hidden": 2048, "proj_dim": 256, "temperature": 0.2,
                                   "queue_size": 32768, "tau_base": 0.99, "tau_final": 0.999}
    assert BYOL.DEFAULTS == {"optimizer": "lars", "lr": 0.5, "classifier_lr": 0.05, "weight_decay": 1e-5,
                             "proj_hidden": 4096, "proj_dim": 256, "pred_hidden": 4096,
                             "tau_base": 0.99, "tau_final": 1.0}
    assert BarlowTwins.DEFAULTS == {"optimizer": "lars", "lr": 0.15, "classifier_lr": 0.05,
                                    "weight_decay": 1e-4,
                                    "proj_hidden": 2048, "proj_dim": 2048, "lambd": 0.0051,
                                    "scale": 0.1, "loss_groups": 1}
    # their two views differ (solarisation on view 2): pipeline.vocab.augmentation.trained_preset
    assert ASYMMETRIC_METHODS == ("byol", "barlow")


def _layers(module):
    """A head as [(layer type, in, out)] (widths for Linear / BatchNorm1d, None otherwise)."""
    out = []
    for m in module:
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("BatchNorm1d", m.num_features, m.num_features))
        else:
            out.append((type(m).__name__, None, None))
    return out


def _lin(i, o):
    return ("Linear", i, o)


def _bn(n):
    return ("BatchNorm1d", n, n)


RELU = ("ReLU", None, None)
# The heads at the paper's widths behind a ResNet-18 (512 features), as solo-learn builds them
# (PKU-ML/adainf solo-learn/solo/methods/{simclr,mocov2plus,byol,barlow_twins}.py and the widths
# of solo-learn/scripts/pretrain/cifar/*.yaml).
HEADS = {
    "simclr": {"projector": [_lin(512, 2048), RELU, _lin(2048, 256)]},
    "mocov2plus": {"projector": [_lin(512, 2048), RELU, _lin(2048, 256)],
                   "target_projector": [_lin(512, 2048), RELU, _lin(2048, 256)]},
    "byol": {"projector": [_lin(512, 4096), _bn(4096), RELU, _lin(4096, 256)],
             "predictor": [_lin(256, 4096), _bn(4096), RELU, _lin(4096, 256)],
             "target_projector": [_lin(512, 4096), _bn(4096), RELU, _lin(4096, 256)]},
    "barlow": {"projector": [_lin(512, 2048), _bn(2048), RELU, _lin(2048, 2048), _bn(2048), RELU,
                             _lin(2048, 2048)]},
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_are_the_authors_layer_for_layer(name):
    encoder = Encoder(widths=[8, 16, 32, 512], blocks=[1, 1, 1, 1], mean=[0.5] * 3, std=[0.25] * 3)
    method = build_method(name, encoder)
    heads = {n: _layers(m) for n, m in method.named_children() if isinstance(m, nn.Sequential)}
    assert heads == HEADS[name]
    if name in ("mocov2plus", "byol"):  # the momentum copies: same layers, no gradient
        assert isinstance(method.target_encoder, Encoder)
        assert not any(p.requires_grad for p in method.target_projector.parameters())
        assert not any(p.requires_grad for p in method.target_encoder.parameters())


def test_unknown_method_and_hyper_parameter_are_named():
    with pytest.raises(ValueError, match="swav"):
        build_method("swav", tiny_encoder())
    with pytest.raises(ValueError, match="queue_size"):
        build_method("simclr", tiny_encoder(), queue_size=32)


def test_hparams_override_defaults_and_shape_the_heads():
    m = tiny_method("barlow", lambd=0.01)
    assert m.hparams["lambd"] == 0.01 and m.hparams["scale"] == 0.1
    assert m.hparams["optimizer"] == "lars"
    linears = [layer for layer in m.projector if isinstance(layer, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(16, 16), (16, 16),
                                                                        (16, 8)]
    assert sum(isinstance(layer, torch.nn.BatchNorm1d) for layer in m.projector) == 2
    byol = tiny_method("byol")
    assert [type(layer).__name__ for layer in byol.predictor] == [
        "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert byol.predictor[0].in_features == 8 and byol.predictor[-1].out_features == 8
    assert build_method("simclr", tiny_encoder()).projector[-1].out_features == 256


# ---------------------------------------------------------------------------------------- methods

@pytest.mark.parametrize("name", list(METHODS))
def test_forward_is_finite_and_only_online_parameters_get_gradients(name):
    m = tiny_method(name).train()
    x1, x2 = views()
    loss = m(x1, x2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    online = {id(p) for p in m.online_parameters()}
    assert online == {id(p) for p in m.parameters() if p.requires_grad}
    assert {id(p) for p in m.encoder.parameters()} <= online
    for n, p in m.named_parameters():
        if id(p) in online:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert n.startswith("target_") and not p.requires_grad and p.grad is None, n
    assert any(p.grad.abs().sum() > 0 for p in m.online_parameters())
    assert [n for n, _ in m.named_online_parameters()] == [
        n for n, p in m.named_parameters() if p.requires_grad]


def test_online_and_target_networks_of_momentum_methods():
    for name in ("mocov2plus", "byol"):
        m = tiny_method(name)
        assert m.target_encoder is not m.encoder
        for po, pt in zip(m.encoder.parameters(), m.target_encoder.parameters(), strict=True):
            assert torch.equal(po, pt) and pt.data_ptr() != po.data_ptr()
        for po, pt in zip(m.projector.parameters(), m.target_projector.parameters(), strict=True):
            assert torch.equal(po, pt)
        m.eval()
        assert not m.target_encoder.training
        m.train()
        assert m.target_encoder.training  # as solo-learn: BN of the targets in training mode
    byol = tiny_method("byol")
    assert {id(p) for p in byol.predictor.parameters()} <= {id(p) for p in byol.online_parameters()}
    assert not hasattr(byol, "target_predictor")


def test_losses_are_wired_as_in_solo_learn():
    x1, x2 = views()
    m = tiny_method("simclr").train()
    with torch.no_grad():
        expected = nt_xent(m.projector(m.encoder(x1)), m.projector(m.encoder(x2)), 0.2)
        assert m(x1, x2).item() == pytest.approx(expected.item(), abs=1e-6)

    m = tiny_method("barlow").train()
    with torch.no_grad():
        expected = barlow_twins_loss(m.projector(m.encoder(x1)), m.projector(m.encoder(x2)),
                                     0.0051, 0.1)
        assert m(x1, x2).item() == pytest.approx(expected.item(), rel=1e-5)

    m = tiny_method("byol").train()
    with torch.no_grad():
        p1, p2 = (m.predictor(m.projector(m.encoder(x))) for x in (x1, x2))
        z1, z2 = (m.target_projector(m.target_encoder(x)) for x in (x1, x2))
        expected = byol_loss(p1, z2) + byol_loss(p2, z1)  # summed, as solo-learn
        assert m(x1, x2).item() == pytest.approx(expected.item(), abs=1e-6)

    m = tiny_method("mocov2plus").train()
    queue = m.queue.clone()
    with torch.no_grad():
        q1, q2 = (m.projector(m.encoder(x)) for x in (x1, x2))
        k1, k2 = (m.target_projector(m.target_encoder(x)) for x in (x1, x2))
        expected = (moco_infonce(q1, k2, queue[1], 0.2) + moco_infonce(q2, k1, queue[0], 0.2)) / 2
        assert m(x1, x2).item() == pytest.approx(expected.item(), abs=1e-6)
    # keys of view 1 went to queue 0 and of view 2 to queue 1, normalised, at the old pointer
    assert torch.allclose(m.queue[0, :8], torch.nn.functional.normalize(k1, dim=1), atol=1e-6)
    assert torch.allclose(m.queue[1, :8], torch.nn.functional.normalize(k2, dim=1), atol=1e-6)
    assert torch.equal(m.queue[:, 8:], queue[:, 8:])


def test_moco_queue_pointer_advances_and_wraps():
    m = tiny_method("mocov2plus").train()
    assert m.queue.shape == (2, 32, 8)
    assert torch.allclose(m.queue.norm(dim=-1), torch.ones(2, 32))
    x1, x2 = views(n=12)
    pointers = []
    for _ in range(3):
        before = m.queue.clone()
        with torch.no_grad():
            m(x1, x2)
        pointers.append(int(m.queue_ptr))
        changed = (m.queue != before).any(dim=-1).any(dim=0).nonzero().flatten().tolist()
    assert pointers == [12, 24, 4]
    assert changed == [0, 1, 2, 3] + list(range(24, 32))  # the third batch wrapped around
    assert torch.allclose(m.queue.norm(dim=-1), torch.ones(2, 32), atol=1e-6)
    # queue and pointer are buffers: saved with the state dict
    assert {"queue", "queue_ptr"} <= set(m.state_dict())
    # not updated in eval mode
    m.eval()
    before = m.queue.clone()
    with torch.no_grad():
        m(x1, x2)
    assert int(m.queue_ptr) == 4 and torch.equal(m.queue, before)


def test_moco_queue_keeps_the_newest_keys_of_a_batch_larger_than_the_queue():
    m = tiny_method("mocov2plus", queue_size=4)
    k1, k2 = torch.randn(6, 8), torch.randn(6, 8)
    m.enqueue(k1, k2)
    # as if written one by one from slot 0: slots 0, 1, 2, 3, 0, 1 → keys 4, 5, 2, 3
    assert int(m.queue_ptr) == 2
    rows = torch.nn.functional.normalize(k1[[4, 5, 2, 3]], dim=1)
    assert torch.allclose(m.queue[0], rows, atol=1e-6)
    assert torch.allclose(m.queue[1], torch.nn.functional.normalize(k2[[4, 5, 2, 3]], dim=1),
                          atol=1e-6)


def test_cosine_tau_schedule():
    assert cosine_tau(0, 100, 0.99, 0.999) == pytest.approx(0.99)
    assert cosine_tau(50, 100, 0.99, 0.999) == pytest.approx(0.9945)
    assert cosine_tau(100, 100, 0.99, 0.999) == pytest.approx(0.999)
    assert cosine_tau(100, 100, 0.99, 1.0) == pytest.approx(1.0)
    # the brief's formula for tau_final = 1: 1 − (1 − tau_base)(cos(π s/T) + 1)/2
    s, total = 30, 100
    assert cosine_tau(s, total, 0.99, 1.0) == pytest.approx(
        1 - 0.01 * (math.cos(math.pi * s / total) + 1) / 2)
    taus = [cosine_tau(s, 100, 0.99, 1.0) for s in range(101)]
    assert all(a <= b for a, b in zip(taus, taus[1:]))


@pytest.mark.parametrize("name, base, final", [("mocov2plus", 0.99, 0.999), ("byol", 0.99, 1.0)])
def test_momentum_update_moves_targets_by_tau(name, base, final):
    m = tiny_method(name)
    with torch.no_grad():
        for p in m.online_parameters():
            p.add_(torch.randn_like(p))
    pairs = [(m.encoder, m.target_encoder), (m.projector, m.target_projector)]

    def snapshot():
        return [([p.clone() for p in o.parameters()], [p.clone() for p in t.parameters()])
                for o, t in pairs]

    def check(before, tau):
        for (online, target), (_, t_net) in zip(before, pairs):
            for o, t, now in zip(online, target, t_net.parameters(), strict=True):
                assert torch.allclose(now, tau * t + (1 - tau) * o, atol=1e-6)

    before = snapshot()
    assert m.momentum_update(0, 10) == pytest.approx(base)
    check(before, base)
    moved = sum((t_now - t0).abs().sum().item() for (_, t_old), (_, t_net) in zip(before, pairs)
                for t0, t_now in zip(t_old, t_net.parameters()))
    assert moved > 0
    before = snapshot()
    assert m.momentum_update(10, 10) == pytest.approx(final)
    check(before, final)
    assert m.momentum_tau(10, 10) == pytest.approx(final)
    # online networks are untouched by the EMA; predictor has no target
    for (online, _), (o_net, _) in zip(before, pairs):
        for o, now in zip(online, o_net.parameters()):
            assert torch.equal(o, now)


@pytest.mark.parametrize("name", ["simclr", "barlow"])
def test_momentum_update_is_a_no_op_without_targets(name):
    m = tiny_method(name)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    assert m.momentum_update(0, 10) is None
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


@pytest.mark.kernels
@pytest.mark.parametrize("name", list(METHODS))
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name, outcome):
    m = tiny_method(name).train()
    h = m.hparams
    opt = make_optimizer(h["optimizer"], m.online_parameters(), h["lr"], h["weight_decay"])
    x1, x2 = views(n=16, seed=3)
    start = [p.detach().clone() for p in m.online_parameters()]
    # MoCo: the queue would fill with this very batch's keys (near-copies of the positives) and
    # raise the loss, so the negatives are held fixed here
    queue = m.queue.clone() if name == "mocov2plus" else None
    losses = []
    steps = 15
    for step in range(steps):
        if queue is not None:
            m.queue.copy_(queue)
        loss = m(x1, x2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.momentum_update(step, steps)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(a, b) for a, b in zip(start, m.online_parameters()))
    outcome(first=losses[0], last3=np.mean(losses[-3:]))
    assert np.mean(losses[-3:]) < losses[0], losses
