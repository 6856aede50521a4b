"""The `auto` search's score: weighted k-NN top-1 on frozen features of a validation split carved
from the real training data (solo-learn's monitor, solo/utils/knn.py: k 20, cosine similarity,
votes exp(sim / 0.07)). Cheap (one forward pass, no training) and it tracks linear accuracy."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from pipeline.evaluation.linear import extract_features, knn_top1


def knn_validation_score(encoder: nn.Module, images: np.ndarray, labels: np.ndarray,
                         bank: np.ndarray, val: np.ndarray, k: int, device="cpu") -> float:
    """k-NN top-1 (%) of the validation images `val` against the bank `bank` (indices into the
    real training images and labels)."""
    features = extract_features(encoder, images, device=device)
    y = torch.from_numpy(np.asarray(labels))
    return knn_top1(features[bank], y[bank], features[val], y[val], k=k)
