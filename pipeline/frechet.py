"""Fréchet distance between image sets: Inception-V3 features (pytorch-fid) or raw pixels.

Feature statistics are accumulated as float64 sums (count, sum, sum of outer products) so that
batches, and later shards, merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from tqdm.auto import tqdm

FEATURES = ("inception", "pixels")


@dataclass
class FeatureStats:
    count: int
    total: np.ndarray  # sum of features, float64 (d,)
    outer: np.ndarray  # sum of outer products, float64 (d, d)

    @classmethod
    def empty(cls, dim: int) -> "FeatureStats":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        self.count += len(f)
        self.total += f.sum(0)
        self.outer += f.T @ f

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        return FeatureStats(self.count + other.count, self.total + other.total,
                            self.outer + other.outer)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (as np.cov, which pytorch-fid uses)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 images for a covariance, have {self.count}")
        mu = self.total / self.count
        cov = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, cov


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Raw pixels in [0, 1] as features: the offline stand-in when no Inception weights exist."""
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def inception_model(device):
    """pytorch-fid's FID Inception-V3 up to the 2048-d pool3 features.

    Its weights are fetched with torch.hub's loader, so they come from the TORCH_HOME cache when
    present and are downloaded otherwise.
    """
    from pytorch_fid.inception import InceptionV3

    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()


@torch.no_grad()
def inception_features(model, images: np.ndarray, batch_size: int, device) -> np.ndarray:
    """pool3 features of uint8 N×H×W×3 images, preprocessed as pytorch-fid does (uint8 → [0, 1];
    the model itself resizes to 299 and normalises)."""
    out = []
    for lo in tqdm(range(0, len(images), batch_size), desc="inception", mininterval=5):
        x = torch.from_numpy(images[lo:lo + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        out.append(model(x)[0].squeeze(-1).squeeze(-1).double().cpu().numpy())
    return np.concatenate(out)


def image_stats(images: np.ndarray, features: str, *, model=None, batch_size: int = 200,
                device="cpu") -> FeatureStats:
    if features == "pixels":
        f = pixel_features(images)
    elif features == "inception":
        f = inception_features(model, images, batch_size, device)
    else:
        raise ValueError(f"unknown FID features {features!r}; choose one of {', '.join(FEATURES)}")
    stats = FeatureStats.empty(f.shape[1])
    stats.add(f)
    return stats


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    mu1, s1 = a.mean_cov()
    mu2, s2 = b.mean_cov()
    return float(calculate_frechet_distance(mu1, s1, mu2, s2))
