"""Tests of pipeline.pretraining.encoders: CIFAR ResNets, the Encoder and its checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from pipeline.pretraining.encoders import Encoder, cifar_resnet, load_encoder, projection_head, save_encoder


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet18_matches_torchvision_with_cifar_stem():
    net = cifar_resnet([64, 128, 256, 512], [2, 2, 2, 2])
    tv = torchvision.models.resnet18()
    # torchvision's ResNet-18 without the classifier, its 7×7 stem replaced by a 3×3 one
    expected = _count(tv) - _count(tv.fc) - tv.conv1.weight.numel() + 64 * 3 * 3 * 3
    assert _count(net) == expected
    assert tuple(net.conv1.weight.shape) == (64, 3, 3, 3)
    assert net.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    # the same parameters under the same names as torchvision's, the classifier aside
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    tv_shapes = {k: v.shape for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    tv_shapes["conv1.weight"] = torch.Size([64, 3, 3, 3])
    assert shapes == tv_shapes

    spatial = {}

    def hook(module, inputs, output):
        spatial["layer4"] = tuple(output.shape[-2:])  # returns None: output unchanged

    net.layer4.register_forward_hook(hook)
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 512)
    # the authors' stem: stride 1, padding 2 (solo-learn base.py), no max-pool:
    # 32 → 34 → 17 → 9 → 5 (padding 1 would give 4×4, a max-pool 2×2)
    assert net.conv1.padding == (2, 2)
    assert tuple(spatial["layer4"]) == (5, 5)
    assert cifar_resnet([8], [1], stem_padding=1).conv1.padding == (1, 1)


@pytest.mark.parametrize("train", [False, True])
def test_resnet18_computes_what_torchvision_computes(train):
    """Our BasicBlock is torchvision's written out: with one state dict, the same features (in
    train mode too, where batch-norm uses the batch's statistics and updates its buffers)."""
    torch.manual_seed(0)
    net = cifar_resnet([64, 128, 256, 512], [2, 2, 2, 2])
    tv = torchvision.models.resnet18()
    tv.conv1 = nn.Conv2d(3, 64, 3, 1, padding=2, bias=False)
    tv.maxpool, tv.fc = nn.Identity(), nn.Identity()
    tv.load_state_dict(net.state_dict())
    net.train(train), tv.train(train)
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(net(x), tv(x), rtol=0, atol=0)
    torch.testing.assert_close(net.layer2[0].bn1.running_mean, tv.layer2[0].bn1.running_mean)


def test_encoder_checkpoint_keeps_its_stem_padding(tmp_path):
    enc = Encoder([8], [1], [0.5] * 3, [0.25] * 3, stem_padding=1)
    assert enc.arch["stem_padding"] == 1
    save_encoder(tmp_path / "e.pt", enc, {})
    assert load_encoder(tmp_path / "e.pt")[0].backbone.conv1.padding == (1, 1)
    assert Encoder([8], [1], [0.5] * 3, [0.25] * 3).backbone.conv1.padding == (2, 2)


@pytest.mark.parametrize("widths,blocks", [([8, 16], [1, 1]), ([8], [2]), ([4, 8, 12, 16], [1, 1, 1, 1])])
def test_small_variant_outputs_last_width(widths, blocks):
    net = cifar_resnet(widths, blocks).eval()
    with torch.no_grad():
        out = net(torch.rand(3, 3, 16, 16))
    assert out.shape == (3, widths[-1])
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert _count(net) < _count(cifar_resnet([64, 128, 256, 512], [2, 2, 2, 2])) / 10


@pytest.mark.parametrize("widths,blocks", [([8, 16], [1]), ([8], [1, 1]), ([], []),
                                           ([8, 8, 8, 8, 8], [1, 1, 1, 1, 1])])
def test_bad_widths_blocks_raise(widths, blocks):
    with pytest.raises(ValueError, match="widths"):
        cifar_resnet(widths, blocks)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = Encoder([8, 16], [1, 1], [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    enc.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their defaults
        for _ in range(3):
            enc(torch.rand(8, 3, 16, 16))
    enc.eval()
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        expected = enc(x)
    path = tmp_path / "sub" / "encoder.pt"
    save_encoder(path, enc, {"method": "simclr", "strategy": "adainf", "dup": 10})
    loaded, meta = load_encoder(path)
    assert meta == {"method": "simclr", "strategy": "adainf", "dup": 10}
    assert not loaded.training
    assert loaded.arch == enc.arch
    assert loaded.feature_dim == 16
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    # a fresh encoder (different weights) does not give the same outputs
    with torch.no_grad():
        assert not torch.allclose(Encoder(**enc.arch).eval()(x), expected)
    assert not list(tmp_path.glob("sub/*.tmp*"))


def test_encoder_normalises_with_mean_std():
    mean, std = [0.1, 0.5, 0.9], [0.5, 0.25, 2.0]
    enc = Encoder([8], [1], mean, std)
    enc.backbone = nn.Identity()
    x = torch.rand(2, 3, 4, 4)
    out = enc(x)
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, x)
    assert enc.feature_dim == 8


def test_projection_head_shape():
    head = projection_head(16, 32, 8)
    assert head(torch.randn(4, 16)).shape == (4, 8)
