"""Linear evaluation of a frozen encoder on real labelled images.

Two offline protocols (the online one, during pretraining, is pipeline.pretraining.online_probe):

- `features`: features computed once (no augmentation), an AdamW linear classifier on the
  standardised features, plus weighted k-NN;
- `offline`: solo-learn's linear evaluation: the frozen encoder (eval mode, no grad) runs on
  freshly augmented training images at every epoch (random-resized-crop 0.08-1 and horizontal
  flip, on the device) and a plain linear layer on its features is trained with SGD.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from pipeline.core.tensors import to_nchw, topk_correct
from pipeline.pretraining.augment import Augmentation, RandomHorizontalFlip, RandomResizedCrop
from pipeline.pretraining.optim import warmup_cosine


@torch.no_grad()
def extract_features(encoder: nn.Module, images: np.ndarray, batch_size: int = 512,
                     device="cpu") -> torch.Tensor:
    encoder.eval()
    out = []
    for lo in range(0, len(images), batch_size):
        x = to_nchw(images[lo:lo + batch_size], device, scale=255)
        out.append(encoder(x).float().cpu())
    return torch.cat(out)


# epoch_end(epoch, classifier, {"loss", "train_top1", "lr"}): the epoch's mean loss and top-1
# (%) on its training batches and the learning rate it started with (for a live view).
EpochEnd = Callable[[int, nn.Module, dict], None]


class EpochStats:
    """An epoch's summed loss and correct predictions, kept on the device (one host sync at
    the epoch's end)."""

    def __init__(self, device, lr: float):
        self.loss, self.correct = torch.zeros((), device=device), torch.zeros((), device=device)
        self.count, self.lr = 0, lr

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.detach() * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.count += len(y)

    def summary(self) -> dict:
        return {"loss": self.loss.item() / self.count,
                "train_top1": 100.0 * self.correct.item() / self.count, "lr": self.lr}


def train_linear(train_x: torch.Tensor, train_y: torch.Tensor, *, epochs: int,
                 batch_size: int, lr: float, weight_decay: float, seed: int, device="cpu",
                 epoch_end: EpochEnd | None = None) -> nn.Module:
    """A linear classifier on standardised features (mean/std of the training features)."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    num_classes = int(train_y.max()) + 1
    model = nn.Sequential(Standardize(mean, std), nn.Linear(train_x.shape[1], num_classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    x, y = train_x.to(device), train_y.to(device)
    for epoch in tqdm(range(epochs), desc="linear", mininterval=5):
        stats = EpochStats(device, opt.param_groups[0]["lr"]) if epoch_end else None
        for idx in torch.randperm(len(x), device=device).split(batch_size):
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if stats is not None:
                stats.add(loss, logits, y[idx])
        sched.step()
        if epoch_end is not None:
            epoch_end(epoch + 1, model, stats.summary())
    return model.eval()


class Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu",
             ks=(1, 5)) -> list[float]:
    """Top-k accuracies in % of `model` on features x."""
    return (100.0 * topk_correct(model(x.to(device)), y.to(device), ks) / len(y)).tolist()


def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu") -> float:
    return accuracy(model, x, y, device, ks=(1,))[0]


def offline_augmentation(size: int) -> Augmentation:
    """solo-learn's linear-evaluation training transform for CIFAR: random-resized-crop (scale
    0.08-1) and horizontal flip, no colour jitter."""
    return Augmentation(RandomResizedCrop(size, scale=(0.08, 1.0)), RandomHorizontalFlip(p=0.5))


def train_linear_offline(encoder: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                         epochs: int, batch_size: int, lr: float, weight_decay: float,
                         seed: int, device="cpu",
                         epoch_end: EpochEnd | None = None) -> nn.Module:
    """A linear layer on the frozen `encoder`'s features of augmented uint8 N×H×W×3 `images`:
    SGD (momentum 0.9, no Nesterov), lr as given (not scaled by the batch), cosine decay per
    step. The encoder stays in eval mode and gets no gradient. `epoch_end`: see EpochEnd."""
    torch.manual_seed(seed)
    encoder.eval()
    clf = nn.Linear(encoder.feature_dim, int(labels.max()) + 1).to(device)
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    total = epochs * math.ceil(len(images) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, total))
    data = to_nchw(images, device)  # uint8, moved once
    y = torch.from_numpy(labels).to(device)
    augment = offline_augmentation(images.shape[1]).to(device)
    for epoch in tqdm(range(epochs), desc="linear (offline)", mininterval=5):
        stats = EpochStats(device, opt.param_groups[0]["lr"]) if epoch_end else None
        for idx in torch.randperm(len(data), device=device).split(batch_size):
            with torch.no_grad():
                feats = encoder(augment(data[idx].float().div_(255)))
            logits = clf(feats)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if stats is not None:
                stats.add(loss, logits, y[idx])
        if epoch_end is not None:
            epoch_end(epoch + 1, clf, stats.summary())
    return clf.eval()


@torch.no_grad()
def knn_top1(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
             test_y: torch.Tensor, k: int = 20, temperature: float = 0.07,
             chunk: int = 1024) -> float:
    """Weighted k-NN accuracy on cosine similarity (the InstDisc / solo-learn monitor): each of
    the k nearest training features votes for its class with weight exp(similarity / T)."""
    train = torch.nn.functional.normalize(train_x.float(), dim=1)
    test = torch.nn.functional.normalize(test_x.float(), dim=1)
    num_classes = int(train_y.max()) + 1
    k = min(k, len(train))
    correct = 0
    for lo in range(0, len(test), chunk):
        sim, idx = (test[lo:lo + chunk] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes).scatter_add_(
            1, train_y[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_y[lo:lo + chunk]).sum().item()
    return 100.0 * correct / len(test)
