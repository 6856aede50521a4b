"""Tests of pipeline.evaluation.linear and the linear_eval stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support.stage_args import LINEAR_ARGS
from pipeline.core import io
from pipeline import linear_eval
from pipeline.pretraining.augment import RandomHorizontalFlip, RandomResizedCrop
from pipeline.evaluation.linear import (accuracy, extract_features, offline_augmentation, top1, topk_correct,
                             train_linear, train_linear_offline)
from pipeline.pretraining.encoders import Encoder, save_encoder

KEYS = {"method", "strategy", "protocol", "top1", "top5", "num_train", "num_test", "pretrain",
        "seconds"}


def _blobs(n_per_class, seed, dim=10, num_classes=3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(num_classes, dim)
    for c in range(num_classes):
        centres[c, c] = 6.0
    x = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g) for c in range(num_classes)])
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    # offset and scale the features: the classifier standardises them itself
    return 100 + 50 * x, y


@pytest.mark.kernels
def test_train_linear_separates_blobs(outcome):
    x, y = _blobs(100, 0)
    tx, ty = _blobs(50, 1)
    clf = train_linear(x, y, epochs=20, batch_size=100, lr=1e-2, weight_decay=1e-4, seed=0)
    assert not clf.training
    assert clf(tx).shape == (150, 3)
    outcome(test_top1=top1(clf, tx, ty), train_top1=top1(clf, x, y))
    assert top1(clf, tx, ty) >= 95.0
    assert top1(clf, x, y) >= 95.0


def test_top1_counts_correct_predictions():
    model = torch.nn.Identity()
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert top1(model, logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(75.0)


def test_topk_correct_by_hand():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                           [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
                           [0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([6, 4, 1])  # top-1 hit; 5th highest; neither (label 1 ties for 2nd..7th)
    assert topk_correct(logits, labels, (1, 5)).tolist() == [1.0, 2.0]
    assert topk_correct(logits, torch.tensor([6, 0, 2]), (1, 5)).tolist() == [3.0, 3.0]
    # k is capped at the number of classes: top-5 of 3 classes is every row
    assert topk_correct(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), (1, 5))[1] == 4
    assert accuracy(torch.nn.Identity(), logits, labels) == pytest.approx([100 / 3, 200 / 3])


@pytest.mark.kernels
def test_untrained_is_not_accurate(outcome):
    # the ≥ 95 % above comes from training: zero epochs leaves a random classifier
    x, y = _blobs(100, 0)
    clf = train_linear(x, y, epochs=0, batch_size=256, lr=1e-2, weight_decay=1e-4, seed=0)
    outcome(top1=top1(clf, x, y))
    assert top1(clf, x, y) < 80.0


def test_extract_features_batches_consistently():
    torch.manual_seed(0)
    enc = Encoder([8], [1], [0.5] * 3, [0.25] * 3).eval()
    images = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    a = extract_features(enc, images, batch_size=3)
    b = extract_features(enc, images, batch_size=7)
    assert a.shape == (7, 8)
    assert torch.allclose(a, b, atol=1e-5)


def _colours(n, seed, size=8):
    """8 classes: the 3 bits of the class say which colour channels are bright."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 8
    bits = (y[:, None] >> np.arange(3)) & 1
    x = rng.integers(0, 60, (n, size, size, 3)) + 150 * bits[:, None, None, :]
    return x.astype(np.uint8), y


def test_offline_augmentation_is_crop_and_flip_only():
    aug = offline_augmentation(16)
    assert [type(op) for op in aug] == [RandomResizedCrop, RandomHorizontalFlip]
    assert aug[0].scale == (0.08, 1.0) and aug[0].size == (16, 16) and aug[1].p == 0.5


@pytest.mark.kernels
def test_train_linear_offline_separates_colours_with_a_frozen_encoder(monkeypatch, outcome):
    from pipeline.evaluation import linear

    torch.manual_seed(0)
    enc = Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3)
    enc.train()  # train_linear_offline must switch it to eval mode itself
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    (tr, ty), (te, tey) = _colours(64, 0), _colours(40, 1)
    calls = []
    real_aug = linear.offline_augmentation

    def spy(size):
        aug = real_aug(size)
        aug.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
        return aug

    monkeypatch.setattr(linear, "offline_augmentation", spy)
    clf = train_linear_offline(enc, tr, ty, epochs=10, batch_size=16, lr=0.5, weight_decay=0.0,
                               seed=0)
    assert calls == [16] * 4 * 10  # every batch of every epoch is augmented afresh
    test_x = extract_features(enc, te)
    top1_, top5_ = accuracy(clf, test_x, torch.from_numpy(tey))
    outcome(top1=top1_, top5=top5_)
    assert top1_ >= 90 and top5_ >= top1_
    for k, v in enc.state_dict().items():  # frozen, batch-norm statistics included
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in enc.parameters())
    # the accuracy comes from training: no epoch leaves it at chance
    untrained = train_linear_offline(enc, tr, ty, epochs=0, batch_size=256, lr=0.1,
                                     weight_decay=0.0, seed=0)
    chance = accuracy(untrained, test_x, torch.from_numpy(tey))[0]
    outcome(untrained_top1=chance)
    assert chance < 50


def _write_real(path, n, seed, labels=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    if labels is None:
        labels = np.arange(n) % 2
        images[labels == 1] //= 4  # a dark class and a bright one
    io.save_images(path, images, labels)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    enc = Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3)
    path = tmp_path / "encoder.pt"
    save_encoder(path, enc, {"method": "simclr", "strategy": "adainf", "dup": 10})
    return path


@pytest.mark.parametrize("protocol", ["features", "offline"])
def test_linear_eval_cli(tmp_path, checkpoint, protocol):
    _write_real(tmp_path / "train.npz", 40, 0)
    _write_real(tmp_path / "test.npz", 20, 1)
    out = tmp_path / "linear" / "adainf.json"
    linear_eval.main([*LINEAR_ARGS, "--encoder", str(checkpoint), "--train", str(tmp_path / "train.npz"),
                      "--test", str(tmp_path / "test.npz"), "--out", str(out), "--epochs", "5",
                      "--batch-size", "16", "--device", "cpu", "--protocol", protocol])
    result = json.loads(out.read_text())
    extra = {"features": {"train_top1", "knn_top1", "epochs"}, "offline": {"train_top1", "epochs"}}
    assert set(result) == KEYS | extra[protocol]
    assert result["method"] == "simclr"
    assert result["strategy"] == "adainf"
    assert result["protocol"] == protocol
    assert 0.0 <= result["top1"] <= result["top5"] <= 100.0
    assert result["top5"] == 100.0  # two classes
    assert result["num_train"] == 40 and result["num_test"] == 20 and result["epochs"] == 5
    assert result["pretrain"]["dup"] == 10


def test_linear_eval_passes_its_settings_to_each_protocol(tmp_path, checkpoint, monkeypatch):
    from pipeline import linear_eval as stage

    seen = {}
    monkeypatch.setattr(stage, "train_linear", lambda x, y, **kw: seen.update(features=kw) or
                        torch.nn.Linear(x.shape[1], 2))
    monkeypatch.setattr(stage, "train_linear_offline", lambda e, x, y, **kw: seen.update(offline=kw)
                        or torch.nn.Linear(e.feature_dim, 2))
    _write_real(tmp_path / "train.npz", 8, 0)
    _write_real(tmp_path / "test.npz", 8, 1)
    for protocol in ("features", "offline"):
        stage.main([*LINEAR_ARGS, "--encoder", str(checkpoint), "--train", str(tmp_path / "train.npz"),
                    "--test", str(tmp_path / "test.npz"), "--out", str(tmp_path / "o.json"),
                    "--protocol", protocol, "--epochs", "7", "--batch-size", "32", "--lr", "0.5",
                    "--weight-decay", "0.001", "--seed", "3"])
    for protocol in ("features", "offline"):
        assert {k: v for k, v in seen[protocol].items() if k not in ("device", "epoch_end")} == {
            "epochs": 7, "batch_size": 32, "lr": 0.5, "weight_decay": 0.001, "seed": 3}


@pytest.mark.parametrize("protocol", ["features", "offline"])
@pytest.mark.parametrize("which", ["train", "test"])
def test_linear_eval_rejects_unlabelled(tmp_path, checkpoint, which, protocol):
    labels = np.arange(10) % 2
    labels[3] = -1
    _write_real(tmp_path / "train.npz", 10, 0, labels if which == "train" else None)
    _write_real(tmp_path / "test.npz", 10, 1, labels if which == "test" else None)
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit, match="-1"):
        linear_eval.main([*LINEAR_ARGS, "--encoder", str(checkpoint),
                          "--train", str(tmp_path / "train.npz"),
                          "--test", str(tmp_path / "test.npz"), "--out", str(out),
                          "--epochs", "1", "--device", "cpu", "--protocol", protocol])
    assert not out.exists()


@pytest.mark.kernels
def test_knn_top1_on_separable_clusters_and_a_hand_example(outcome):
    from pipeline.evaluation.linear import knn_top1

    g = torch.Generator().manual_seed(0)
    centres = torch.eye(4) * 5
    train_y = torch.arange(4).repeat(50)
    test_y = torch.arange(4).repeat(10)
    train_x = centres[train_y] + torch.randn(200, 4, generator=g)
    test_x = centres[test_y] + torch.randn(40, 4, generator=g)
    knn = knn_top1(train_x, train_y, test_x, test_y, k=5)
    outcome(knn_top1=knn)
    assert knn >= 95
    # by hand: two neighbours of class 1 outvote one nearer neighbour of class 0 at high T,
    # the nearer one wins at low T
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.1]])
    assert knn_top1(train, labels, query, torch.tensor([1]), k=3, temperature=10.0) == 100.0
    assert knn_top1(train, labels, query, torch.tensor([0]), k=3, temperature=0.01) == 100.0
