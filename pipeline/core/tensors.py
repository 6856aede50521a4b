"""uint8 image arrays (N×H×W×C, the io format) as the N×C×H×W tensors networks take, and the
top-k hits of a classifier's logits (the online and the offline probe count them alike)."""

from __future__ import annotations

import numpy as np
import torch


def to_nchw(images: np.ndarray, device=None, *, scale: float | None = None,
            shift: float = 0.0) -> torch.Tensor:
    """uint8 N×H×W×C `images` as an N×C×H×W tensor on `device`, moved while still uint8 (a
    quarter of float32's bytes). Without `scale` it stays uint8; with it, float32 x / scale − shift:
    scale 255 gives [0, 1], scale 127.5 and shift 1 diffusers' [-1, 1]."""
    x = torch.from_numpy(images)
    if device is not None:
        x = x.to(device)
    x = x.permute(0, 3, 1, 2)
    if scale is None:
        return x
    x = x.float().div(scale)
    return x.sub(shift) if shift else x


@torch.no_grad()
def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> torch.Tensor:
    """How many rows have their label among the k highest logits, for each k (a float tensor on
    the logits' device, no host sync). k is capped at the number of classes."""
    k_max = min(max(ks), logits.shape[1])
    hit = logits.topk(k_max, dim=1).indices == labels[:, None]
    return torch.stack([hit[:, :min(k, k_max)].any(1).sum() for k in ks]).float()
