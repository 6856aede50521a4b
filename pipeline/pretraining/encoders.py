"""Encoders (ResNet backbones with the CIFAR stem) and their checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from pipeline.core import io, records
from pipeline.core.errors import reading


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, module for module (same names, so the same state
    dict; tests/test_models.py checks outputs against torchvision's). Written out because importing
    torchvision imports torch._dynamo, about 2 s of CPU in every pretrain and linear_eval job."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


# The authors' CIFAR stem (solo-learn's base.py, PKU-ML/adainf solo-learn/solo/methods/base.py):
# Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False), max-pool removed. Padding 2 (a
# quirk: a 32 px image becomes 34 px) is the default for every config; 1 is the usual CIFAR stem.
STEM_PADDING = 2


class CifarResNet(nn.Module):
    """torchvision's ResNet (its BasicBlock, layer names and initialisation) with the CIFAR stem:
    3×3 conv, stride 1, padding `stem_padding`, no max-pool; no classifier. torchvision fixes the widths at 64..512, so
    the stages are built here to allow any width and depth: widths [64, 128, 256, 512] with blocks
    [2, 2, 2, 2] is ResNet-18, parameter for parameter.
    """

    def __init__(self, widths: list[int], blocks: list[int], stem_padding: int = STEM_PADDING):
        super().__init__()
        if len(widths) != len(blocks) or not 1 <= len(widths) <= 4:
            raise ValueError(f"widths {widths} and blocks {blocks} must be of equal length, "
                             "1 to 4 stages")
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1,
                               padding=stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_c = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or in_c != width:
                down = nn.Sequential(nn.Conv2d(in_c, width, 1, stride, bias=False),
                                     nn.BatchNorm2d(width))
            layers = [BasicBlock(in_c, width, stride, down)]
            layers += [BasicBlock(width, width) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            in_c = width
        self.num_stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():  # as torchvision.models.ResNet
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)


def cifar_resnet(widths: list[int], blocks: list[int], stem_padding: int = STEM_PADDING) -> nn.Module:
    return CifarResNet(widths, blocks, stem_padding)


class Encoder(nn.Module):
    """Normalisation + backbone: maps float images in [0, 1] (N×3×H×W) to features."""

    def __init__(self, widths: list[int], blocks: list[int], mean: list[float], std: list[float],
                 stem_padding: int = STEM_PADDING):
        super().__init__()
        self.arch = {"widths": list(widths), "blocks": list(blocks), "mean": list(mean),
                     "std": list(std), "stem_padding": int(stem_padding)}
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.backbone = cifar_resnet(widths, blocks, stem_padding)
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """Linear-BN-ReLU-Linear: BYOL's projector and predictor in solo-learn (SimCLR's and
    MoCo V2+'s projectors have no batch-norm, Barlow Twins' has three layers: see
    pipeline.pretraining.methods)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, out_dim))


def save_encoder(path: str | Path, encoder: Encoder, meta: dict) -> None:
    with io.atomic_path(path) as tmp:
        torch.save({"arch": encoder.arch, "state_dict": encoder.state_dict(), "meta": meta}, tmp)


def load_encoder(path: str | Path, device="cpu") -> tuple[Encoder, dict]:
    records.verify(path)
    with reading(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    # encoders saved before the stem padding was an option were built with padding 1
    encoder = Encoder(**{"stem_padding": 1, **ckpt["arch"]})
    encoder.load_state_dict(ckpt["state_dict"])
    return encoder.to(device).eval(), ckpt["meta"]
