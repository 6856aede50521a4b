"""Tests of the online linear probe (pipeline.online_probe) inside pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.augment import view_params
from pipeline.distributed import DistContext
from pipeline.linear import accuracy, extract_features
from pipeline.online_probe import OnlineProbe
from pipeline.training import PretrainConfig, pretrain

CPU = DistContext(0, 1, torch.device("cpu"))


def toy(n, seed, size=8):
    """8 classes: the 3 bits of the class say which colour channels are bright."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 8
    bits = (y[:, None] >> np.arange(3)) & 1
    x = rng.integers(0, 60, (n, size, size, 3)) + 150 * bits[:, None, None, :]
    return x.astype(np.uint8), y


def cfg(**kw):
    base = dict(widths=[8, 16], blocks=[1, 1], steps=30, batch_size=16, optimizer="sgd",
                lr=0.05, hparams={"proj_hidden": 16, "proj_dim": 8}, seed=3, log_every=5)
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_probe_learns_separable_classes_and_reports_the_test_accuracy():
    (tr, ty), (te, tey) = toy(64, 0), toy(40, 1)
    probe = OnlineProbe(ty, te, tey, every=10, lr=4.0)
    encoder, _ = pretrain(cfg(), view_params("weak"), tr, None, CPU, probe=probe)
    assert [p["step"] for p in probe.curve] == [10, 20, 30]
    assert all(p["top5"] >= p["top1"] for p in probe.curve)
    assert probe.curve[0]["top1"] < 90 <= probe.curve[-1]["top1"]
    # the last point is the probe on the final encoder in eval mode, on un-augmented images
    expect = accuracy(probe.linear, extract_features(encoder, te), torch.from_numpy(tey))
    assert [probe.curve[-1]["top1"], probe.curve[-1]["top5"]] == pytest.approx(expect)
    assert not encoder._forward_hooks  # the capture hook is gone
    # with lr 0 the probe stays at zero: chance level over the 8 classes (top-5 of 8 below 100)
    still = OnlineProbe(ty, te, tey, every=0, lr=0.0)
    pretrain(cfg(), view_params("weak"), tr, None, CPU, probe=still)
    assert still.curve[-1]["top1"] <= 25 and still.curve[-1]["top5"] <= 75


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_probe_does_not_change_the_backbone_training(method):
    kw = dict(method=method, steps=6)
    if method == "byol":
        kw["hparams"] = {"proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16}
    (tr, ty), (te, tey) = toy(32, 0), toy(16, 1)
    gen = toy(8, 2)[0]
    enc_a, hist_a = pretrain(cfg(**kw), view_params("standard"), tr, gen, CPU)
    probe = OnlineProbe(ty, te, tey, every=2, lr=4.0)
    enc_b, hist_b = pretrain(cfg(**kw), view_params("standard"), tr, gen, CPU, probe=probe)
    assert len(probe.curve) == 3 and probe.linear.weight.abs().sum() > 0  # the probe did train
    assert [h["loss"] for h in hist_a] == [h["loss"] for h in hist_b]
    a, b = enc_a.state_dict(), enc_b.state_dict()  # includes the batch-norm running statistics
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _probe(num_generated=0, dim=4, classes=3):
    probe = OnlineProbe(np.arange(6) % classes, toy(4, 0)[0], np.arange(4) % classes, lr=25.6)
    probe.setup(nn.Identity(), dim, num_generated, 256, 10, CPU)
    return probe


def test_label_minus_one_is_ignored():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)]
    labels = torch.tensor([0, -1, 2, -1, 1])
    mixed, labelled = _probe(), _probe()
    mixed.update(feats, labels)
    keep = labels >= 0
    labelled.update([f[keep] for f in feats], labels[keep])
    assert mixed.linear.weight.abs().sum() > 0
    torch.testing.assert_close(mixed.linear.weight, labelled.linear.weight)
    torch.testing.assert_close(mixed.linear.bias, labelled.linear.bias)
    # a batch of generated images only: no update, however many steps
    generated = _probe()
    for _ in range(3):
        generated.update(feats, torch.full((5,), -1))
    assert generated.linear.weight.abs().sum() == 0 and generated.linear.bias.abs().sum() == 0


def test_generated_rows_get_label_minus_one_and_never_train_the_probe():
    probe = _probe(num_generated=3)
    assert probe.labels.tolist() == [0, 1, 2, 0, 1, 2, -1, -1, -1]
    (tr, _), (te, tey) = toy(16, 0), toy(8, 1)
    probe = OnlineProbe(np.full(16, -1), te, tey, every=2, lr=4.0)  # nothing labelled at all
    pretrain(cfg(steps=4), view_params("standard"), tr, toy(8, 2)[0], CPU, probe=probe)
    assert probe.linear.weight.abs().sum() == 0 and probe.linear.bias.abs().sum() == 0
    assert [p["step"] for p in probe.curve] == [2, 4]


@pytest.mark.parametrize("every,steps", [(0, [7]), (3, [3, 6, 7]), (7, [7])])
def test_evaluation_steps(every, steps):
    probe = OnlineProbe(np.zeros(2), toy(2, 0)[0], np.zeros(2), every=every)
    probe.steps = 7
    assert [s for s in range(1, 8) if probe.due(s)] == steps


def test_rejects_unlabelled_test_images():
    with pytest.raises(ValueError, match="-1"):
        OnlineProbe(np.zeros(2), toy(2, 0)[0], np.array([0, -1]))
