"""Tests of pipeline.linear and the linear_eval stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline import io, linear_eval
from pipeline.linear import extract_features, top1, train_linear
from pipeline.models import Encoder, save_encoder


def _blobs(n_per_class, seed, dim=10, num_classes=3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(num_classes, dim)
    for c in range(num_classes):
        centres[c, c] = 6.0
    x = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g) for c in range(num_classes)])
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    # offset and scale the features: the classifier standardises them itself
    return 100 + 50 * x, y


def test_train_linear_separates_blobs():
    x, y = _blobs(100, 0)
    tx, ty = _blobs(50, 1)
    clf = train_linear(x, y, epochs=20, batch_size=100, lr=1e-2, seed=0)
    assert not clf.training
    assert clf(tx).shape == (150, 3)
    assert top1(clf, tx, ty) >= 95.0
    assert top1(clf, x, y) >= 95.0


def test_top1_counts_correct_predictions():
    model = torch.nn.Identity()
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert top1(model, logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(75.0)


def test_untrained_is_not_accurate():
    # the ≥ 95 % above comes from training: zero epochs leaves a random classifier
    x, y = _blobs(100, 0)
    clf = train_linear(x, y, epochs=0, seed=0)
    assert top1(clf, x, y) < 80.0


def test_extract_features_batches_consistently():
    torch.manual_seed(0)
    enc = Encoder([8], [1], [0.5] * 3, [0.25] * 3).eval()
    images = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    a = extract_features(enc, images, batch_size=3)
    b = extract_features(enc, images, batch_size=7)
    assert a.shape == (7, 8)
    assert torch.allclose(a, b, atol=1e-5)


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


def test_linear_eval_cli(tmp_path, checkpoint):
    _write_real(tmp_path / "train.npz", 40, 0)
    _write_real(tmp_path / "test.npz", 20, 1)
    out = tmp_path / "linear" / "adainf.json"
    linear_eval.main(["--encoder", str(checkpoint), "--train", str(tmp_path / "train.npz"),
                      "--test", str(tmp_path / "test.npz"), "--out", str(out), "--epochs", "5",
                      "--batch-size", "16", "--device", "cpu"])
    result = json.loads(out.read_text())
    assert result["method"] == "simclr"
    assert result["strategy"] == "adainf"
    assert result["protocol"] == "features"
    assert 0.0 <= result["linear_top1"] <= 100.0
    assert result["num_train"] == 40 and result["num_test"] == 20 and result["epochs"] == 5
    assert result["pretrain"]["dup"] == 10


@pytest.mark.parametrize("which", ["train", "test"])
def test_linear_eval_rejects_unlabelled(tmp_path, checkpoint, which):
    labels = np.arange(10) % 2
    labels[3] = -1
    _write_real(tmp_path / "train.npz", 10, 0, labels if which == "train" else None)
    _write_real(tmp_path / "test.npz", 10, 1, labels if which == "test" else None)
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit, match="-1"):
        linear_eval.main(["--encoder", str(checkpoint), "--train", str(tmp_path / "train.npz"),
                          "--test", str(tmp_path / "test.npz"), "--out", str(out),
                          "--epochs", "1", "--device", "cpu"])
    assert not out.exists()


def test_knn_top1_on_separable_clusters_and_a_hand_example():
    from pipeline.linear import knn_top1

    g = torch.Generator().manual_seed(0)
    centres = torch.eye(4) * 5
    train_y = torch.arange(4).repeat(50)
    test_y = torch.arange(4).repeat(10)
    train_x = centres[train_y] + torch.randn(200, 4, generator=g)
    test_x = centres[test_y] + torch.randn(40, 4, generator=g)
    assert knn_top1(train_x, train_y, test_x, test_y, k=5) >= 95
    # by hand: two neighbours of class 1 outvote one nearer neighbour of class 0 at high T,
    # the nearer one wins at low T
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.1]])
    assert knn_top1(train, labels, query, torch.tensor([1]), k=3, temperature=10.0) == 100.0
    assert knn_top1(train, labels, query, torch.tensor([0]), k=3, temperature=0.01) == 100.0
