"""Tests of the online linear probe (pipeline.pretraining.online_probe) inside pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.pretraining.augment import view_params
from pipeline.pretraining.distributed import DistContext
from pipeline.evaluation.linear import accuracy, extract_features
from pipeline.pretraining.online_probe import OnlineProbe
from pipeline.pretraining.encoders import Encoder
from pipeline.pretraining.optim import LARS, warmup_cosine
from pipeline.pretraining.methods import METHODS
from pipeline.pretraining.loop import PretrainConfig, pretrain

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
                lr=0.05, hparams={"proj_hidden": 16, "proj_dim": 8}, seed=3, log_every=5,
                method="simclr", warmup_steps=10, dup=1, precision="fp32")
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)  # the `kernels` test's `outcome` fixture sets its own count after


@pytest.mark.kernels
def test_probe_learns_separable_classes_and_reports_the_test_accuracy(outcome):
    (tr, ty), (te, tey) = toy(64, 0), toy(40, 1)
    probe = OnlineProbe(ty, te, tey, every=10, lr=4.0)
    encoder, _ = pretrain(cfg(), view_params("weak"), tr, None, CPU, probe=probe)
    assert [p["step"] for p in probe.curve] == [10, 20, 30]
    assert all(p["top5"] >= p["top1"] for p in probe.curve)
    outcome(first_top1=probe.curve[0]["top1"], last_top1=probe.curve[-1]["top1"])
    assert probe.curve[0]["top1"] < 90 <= probe.curve[-1]["top1"]
    # the last point is the probe on the final encoder in eval mode, on un-augmented images
    expect = accuracy(probe.linear, extract_features(encoder, te), torch.from_numpy(tey))
    assert [probe.curve[-1]["top1"], probe.curve[-1]["top5"]] == pytest.approx(expect)
    assert not encoder._forward_hooks  # the capture hook is gone
    # with lr 0 the probe stays at zero: chance level over the 8 classes (top-5 of 8 below 100)
    still = OnlineProbe(ty, te, tey, every=0, lr=0.0)
    pretrain(cfg(), view_params("weak"), tr, None, CPU, probe=still)
    outcome(still_top1=still.curve[-1]["top1"], still_top5=still.curve[-1]["top5"])
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


class _Probe:
    """A probe set up on its own, with a plain SGD over its param group (lr 25.6 × 256/256)."""

    def __init__(self, num_generated=0, dim=4, classes=3):
        self.probe = OnlineProbe(np.arange(6) % classes, toy(4, 0)[0], np.arange(4) % classes,
                                 lr=25.6)
        self.probe.setup(nn.Identity(), dim, num_generated, 256, 10, CPU)
        self.linear, self.labels = self.probe.linear, self.probe.labels
        self.opt = torch.optim.SGD([self.probe.param_group()], lr=1.0, momentum=0.9)

    def update(self, feats, labels):
        self.probe.accumulate(feats, labels)
        self.opt.step()


_probe = _Probe


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


@pytest.mark.parametrize("method,optimizer,lr", [("simclr", LARS, 0.05), ("byol", LARS, 0.05),
                                                 ("barlow", LARS, 0.05),
                                                 ("mocov2plus", torch.optim.SGD, 0.15)])
def test_probe_is_a_param_group_of_the_methods_optimiser(method, optimizer, lr):
    """solo-learn's learnable_params: the classifier in the method's optimiser, classifier_lr per
    256 (PKU-ML/adainf solo-learn/scripts/pretrain/cifar/*.yaml), no weight decay, one schedule."""
    from pipeline.pretraining.methods import build_method
    from pipeline.pretraining.loop import build_optimizer

    c = cfg(method=method, optimizer=None, lr=None, batch_size=128, steps=100, warmup_steps=10,
            hparams={})
    encoder = Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3)
    heads = {"proj_hidden": 16, "proj_dim": 8, **({"pred_hidden": 16} if method == "byol" else {})}
    m = build_method(method, encoder, **heads)
    probe = OnlineProbe(np.arange(6) % 3, toy(4, 0)[0], np.arange(4) % 3)
    world = 2  # global batch 256
    probe.setup(encoder, 16, 0, c.batch_size * world, c.steps, CPU,
                default_lr=METHODS[method].DEFAULTS["classifier_lr"])
    opt, sched = build_optimizer(c, m, world, probe)
    assert type(opt) is optimizer
    main, head = opt.param_groups
    assert head["params"] == list(probe.linear.parameters())
    assert head["weight_decay"] == 0.0 and main["weight_decay"] == METHODS[method].DEFAULTS[
        "weight_decay"]
    assert head["initial_lr"] == pytest.approx(lr)  # × 256/256
    for _ in range(37):
        opt.step()
        sched.step()
    factor = warmup_cosine(37, 100, 10)
    assert head["lr"] == pytest.approx(lr * factor)
    assert main["lr"] == pytest.approx(METHODS[method].DEFAULTS["lr"] * factor)


def test_kept_generated_labels_train_the_probe_and_minus_one_stays_ignored():
    """generator.labels keep: labelled generated rows join the probe's cross-entropy (the
    authors' online classifier); -1 rows, and every generated row with drop, do not."""
    (tr, ty), (te, tey) = toy(16, 0), toy(24, 1)
    gen, gy = toy(48, 2)
    gy = np.where(np.arange(48) % 4 == 0, -1, gy)  # a quarter unlabelled
    curves = {}
    for name, labels in (("drop", None), ("keep", gy)):
        probe = OnlineProbe(ty, te, tey, every=0, lr=4.0, generated_labels=labels)
        pretrain(cfg(steps=20), view_params("weak"), tr, gen, CPU, probe=probe)
        curves[name] = probe
    assert curves["keep"].labels[16:].tolist() == gy.tolist()
    assert (curves["drop"].labels[16:] == -1).all()
    assert curves["keep"].result("simclr", "vanilla", {"seconds": 0})["generated_labels"] == "keep"
    assert curves["keep"].labels_used() == {"generated_labels": "keep",
                                            "num_labelled_generated": 36}
    assert curves["drop"].labels_used()["generated_labels"] == "drop"
    # the same backbone either way (the probe gives it no gradient): only the probe differs
    w = [c.linear.weight.detach() for c in curves.values()]
    assert not torch.allclose(*w)
    with pytest.raises(ValueError, match="generated label 8 is not one of the real data's "
                                         r"classes 0\.\.7"):
        OnlineProbe(ty, te, tey, generated_labels=np.array([0, 8]))
