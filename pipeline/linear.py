"""Linear evaluation of a frozen encoder on real labelled images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def extract_features(encoder: nn.Module, images: np.ndarray, batch_size: int = 512,
                     device="cpu") -> torch.Tensor:
    encoder.eval()
    out = []
    for lo in range(0, len(images), batch_size):
        x = torch.from_numpy(images[lo:lo + batch_size]).to(device).permute(0, 3, 1, 2)
        out.append(encoder(x.float() / 255).float().cpu())
    return torch.cat(out)


def train_linear(train_x: torch.Tensor, train_y: torch.Tensor, *, epochs: int = 100,
                 batch_size: int = 256, lr: float = 1e-2, weight_decay: float = 1e-4,
                 seed: int = 0, device="cpu") -> nn.Module:
    """A linear classifier on standardised features (mean/std of the training features)."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    num_classes = int(train_y.max()) + 1
    model = nn.Sequential(Standardize(mean, std), nn.Linear(train_x.shape[1], num_classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    x, y = train_x.to(device), train_y.to(device)
    for _ in tqdm(range(epochs), desc="linear", mininterval=5):
        for idx in torch.randperm(len(x), device=device).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


class Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


@torch.no_grad()
def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu") -> float:
    pred = model(x.to(device)).argmax(1).cpu()
    return 100.0 * (pred == y).float().mean().item()


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
