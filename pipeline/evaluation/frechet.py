"""Fréchet distance between image sets: Inception-V3 features (pytorch-fid) or raw pixels.

Feature statistics are accumulated as float64 sums (count, sum, sum of outer products) so that
batches, and later shards, merge exactly.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from pipeline.core import io, records, runtime
from pipeline.core.errors import REBUILD, REPLACE, UserError, reading
from pipeline.vocab.names import FID_FEATURES, FID_PRECISIONS

if TYPE_CHECKING:
    import torch

# torch and pytorch-fid are imported where they are used: statistics of pixel features never
# need torch (about 2 s of CPU per job), nor most jobs pytorch-fid, which imports torchvision
# and so torch._dynamo (about 2 s more).
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/"
                   "fid_weights/pt_inception-2015-12-05-6726825d.pth")

# fp32 here means TF32 off; tf32 is fp32 with TF32 CUDA matmuls and convolutions.
FEATURES, PRECISIONS = FID_FEATURES, FID_PRECISIONS


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


def weights_cache_path() -> Path:
    """Where torch.hub (and so pytorch-fid) keeps the FID Inception weights: under TORCH_HOME."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(FID_WEIGHTS_URL).name


@contextlib.contextmanager
def _hub_dir_holding(weights: Path):
    """A temporary torch.hub folder whose cache holds `weights` under pytorch-fid's file name, so
    pytorch-fid's own loader (load_state_dict_from_url) reads that file."""
    import torch

    # restore torch.hub's own setting (None: follow TORCH_HOME), not the folder it resolved to
    old = torch.hub._hub_dir
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        (Path(tmp) / "checkpoints" / Path(FID_WEIGHTS_URL).name).symlink_to(weights.resolve())
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub._hub_dir = old


def inception_model(device, dims: int = 2048, weights: str | Path | None = None):
    """pytorch-fid's FID Inception-V3 up to the block that gives `dims` features, and the sha256
    of its weights.

    Weights come from `weights` when given, else the torch.hub cache (TORCH_HOME), else
    pytorch-fid's download.
    """
    from pytorch_fid.inception import InceptionV3

    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"Inception features of {dims} dims do not exist; choose one of "
                         f"{sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}")
    blocks = [InceptionV3.BLOCK_INDEX_BY_DIM[dims]]
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"FID Inception weights {str(weights)!r} not found")
        with _hub_dir_holding(weights):
            model = InceptionV3(blocks)
    else:
        weights = weights_cache_path()
        try:
            model = InceptionV3(blocks)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            # not found (and not fetchable): FileNotFoundError, so the stage says where it goes
            raise FileNotFoundError(
                f"FID Inception weights are not in {weights} and could not be downloaded "
                f"({type(e).__name__}); download {FID_WEIGHTS_URL} there, or set fid.weights"
            ) from e
    return model.to(device).eval(), io.sha256_file(weights)


def fid_inception_architecture() -> torch.nn.Module:
    """pytorch-fid's FID Inception-V3 structure with random weights (as fid_inception_v3 builds
    it, without the download): for offline tests and speed benchmarks."""
    from pytorch_fid import inception as pf

    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    return net


def autocast_for(precision: str, device):
    """The Inception's context at one of FID's PRECISIONS: TF32 switched on for tf32 and off
    otherwise (CUDA), then the runtime's autocast (bf16; none for fp32 and tf32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    runtime.set_tf32(device, precision == "tf32")
    return runtime.autocast("fp32" if precision == "tf32" else precision, device)


def inception_features(model, images: np.ndarray, batch_size: int, device,
                       precision: str = "fp32") -> np.ndarray:
    """pool3 (or lower-block) features of uint8 N×H×W×3 images, preprocessed as pytorch-fid does
    (uint8 → [0, 1]; the model itself resizes to 299 bilinearly and normalises)."""
    import torch

    from pipeline.core.tensors import to_nchw

    out = []
    for lo in tqdm(range(0, len(images), batch_size), desc="inception", mininterval=5):
        x = to_nchw(images[lo:lo + batch_size], device, scale=255)
        with torch.no_grad(), autocast_for(precision, device):
            f = model(x)[0]
        if f.shape[2:] != (1, 1):  # blocks below pool3 are spatially averaged, as pytorch-fid does
            f = torch.nn.functional.adaptive_avg_pool2d(f, (1, 1))
        out.append(f.flatten(1).double().cpu().numpy())
    return np.concatenate(out)


def image_features(images: np.ndarray, features: str, *, model=None, batch_size: int = 200,
                   device="cpu", precision: str = "fp32") -> np.ndarray:
    """The FID features of images (N×d float64): what the statistics and the quality metrics
    (pipeline.evaluation.quality) are computed from, once."""
    if features == "pixels":
        return pixel_features(images)
    if features == "inception":
        return inception_features(model, images, batch_size, device, precision)
    if features == "dinov2":
        from pipeline.evaluation.dinov2 import dinov2_features

        return dinov2_features(model, images, batch_size, device,
                               lambda: autocast_for(precision, device))
    raise ValueError(f"unknown FID features {features!r}; choose one of {', '.join(FEATURES)}")


def features_stats(f: np.ndarray) -> FeatureStats:
    stats = FeatureStats.empty(f.shape[1])
    stats.add(f)
    return stats


def image_stats(images: np.ndarray, features: str, *, model=None, batch_size: int = 200,
                device="cpu", precision: str = "fp32") -> FeatureStats:
    return features_stats(image_features(images, features, model=model, batch_size=batch_size,
                                         device=device, precision=precision))


# The generated subsets of the FID protocol are one fixed draw (a figure is reproducible and
# comparable across runs); fid.num_generated and fid.seed_sets say how large and how many.
SUBSET_SEED = 0


def fid_subsets(total: int, size: int, sets: int, seed: int = SUBSET_SEED) -> list[np.ndarray]:
    """`sets` disjoint subsets of `size` of the global indices 0..total-1, each sorted: image
    i's key is the i-th draw of one seeded stream and set j holds the images whose keys rank
    j*size..(j+1)*size-1 (set 0 is pipeline.evaluation.quality.subset_indices' choice), so a
    set depends on the whole set's size alone, never on how it is sharded. Disjoint, as EDM's
    three seed sets of 50k are three separate draws."""
    if size * sets > total:
        raise UserError(f"fid.num_generated {size} × fid.seed_sets {sets} exceeds the {total} "
                        "generated images; lower them or generate more (sampling.num_images)")
    order = np.argsort(np.random.default_rng(seed).random(total), kind="stable")
    return [np.sort(order[j * size:(j + 1) * size]) for j in range(sets)]


def shard_subset_stats(features: np.ndarray, start: int, total: int, size: int,
                       sets: int) -> list[FeatureStats]:
    """The sums over each FID subset's images that lie in this file (global images
    start..start+len-1): shards' sums add up to each subset's statistics."""
    out = []
    for chosen in fid_subsets(total, size, sets):
        lo, hi = np.searchsorted(chosen, [start, start + len(features)])
        stats = FeatureStats.empty(features.shape[1])
        stats.add(features[chosen[lo:hi] - start])
        out.append(stats)
    return out


def save_stats(path, stats: FeatureStats, subsets: list[FeatureStats] = (), **meta) -> None:
    """Sufficient statistics (float64) plus what produced them (features, dims, weights hash);
    with `subsets`, each FID subset's sums over this file's share of it (meta says which)."""
    d = len(stats.total)
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, count=stats.count, total=stats.total, outer=stats.outer,
                 subset_count=np.array([s.count for s in subsets], dtype=np.int64),
                 subset_total=np.array([s.total for s in subsets]).reshape(-1, d),
                 subset_outer=np.array([s.outer for s in subsets]).reshape(-1, d, d),
                 meta=json.dumps(meta))


def load_stats(path) -> tuple[FeatureStats, dict]:
    records.verify(path)
    with reading(path), np.load(path) as f:
        return (FeatureStats(int(f["count"]), f["total"], f["outer"]),
                json.loads(str(f["meta"])))


def load_subset_stats(path) -> list[FeatureStats]:
    """The file's sums over each FID subset (none: a file of the whole set only)."""
    with np.load(path) as f:
        if "subset_count" not in f.files:
            return []
        return [FeatureStats(int(c), t, o) for c, t, o in
                zip(f["subset_count"], f["subset_total"], f["subset_outer"])]


def load_reference(path) -> tuple[np.ndarray, np.ndarray, int | None, dict]:
    """(mu, sigma, count, meta) from our statistics file or a pytorch-fid/EDM style npz of
    mu/sigma (whose image count is unknown)."""
    records.verify(path)
    fix = f"{REBUILD}; or, if it is your fid.reference, {REPLACE}"
    with reading(path, fix), np.load(path) as f:
        if {"mu", "sigma"} <= set(f.files):
            return f["mu"].astype(np.float64), f["sigma"].astype(np.float64), None, {}
        if {"count", "total", "outer"} <= set(f.files):
            stats, meta = load_stats(path)
            return *stats.mean_cov(), stats.count, meta
        raise ValueError(f"{path}: neither mu/sigma nor count/total/outer arrays (has {f.files})")


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    return distance_to_reference(a, *b.mean_cov())


# What shards must share for their statistics to merge into one set's.
_SHARD_KEYS = ("features", "dims", "weights_sha256", "protocol")


def merge_stats_files(paths: list) -> tuple[FeatureStats, dict, float, list[FeatureStats]]:
    """The statistics of several shards' files merged exactly, the first file's meta, the
    seconds the shards took in all and the FID subsets' merged statistics (empty: none). A file
    of other features, dims, weights or protocol is a UserError."""
    stats, meta = load_stats(paths[0])
    subsets = load_subset_stats(paths[0])
    seconds = meta.get("seconds", 0.0)
    for path in paths[1:]:
        more, more_meta = load_stats(path)
        if {k: more_meta.get(k) for k in _SHARD_KEYS} != {k: meta.get(k) for k in _SHARD_KEYS}:
            raise UserError(f"{path} was computed with other features or protocol than "
                            f"{paths[0]}: {more_meta} vs {meta}")
        stats = stats.merge(more)
        subsets = [a.merge(b) for a, b in zip(subsets, load_subset_stats(path))]
        seconds += more_meta.get("seconds", 0.0)
    protocol = meta.get("protocol")
    if protocol and any(s.count != protocol["num_generated"] for s in subsets):
        raise UserError(f"the shards hold {[s.count for s in subsets]} images of the FID "
                        f"subsets, not {protocol['num_generated']} each: a shard is missing "
                        f"from {len(paths)} files")
    return stats, meta, seconds, subsets


def distance_to_reference(stats: FeatureStats, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FID between `stats` and a reference's mean and covariance, which must have its dims."""
    if len(mu) != len(stats.total):
        raise UserError(f"real statistics are {len(mu)}-d, generated {len(stats.total)}-d")
    return frechet_from_moments(*stats.mean_cov(), mu, sigma)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance, its (rounding-)negative eigenvalues at 0."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_from_moments(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                         sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + tr(Σ1) + tr(Σ2) - 2 tr sqrt(Σ1 Σ2), in float64.

    Our own rather than pytorch-fid's calculate_frechet_distance: its scipy sqrtm broke across
    releases (spurious imaginary parts in 1.11.2-1.12, disp= removed in 1.18), while
    tr sqrt(Σ1 Σ2) = Σ sqrt(eig(sqrt(Σ1) Σ2 sqrt(Σ1))) needs only symmetric eigh: that matrix
    is symmetric PSD, so its eigenvalues are real (rounding negatives clipped to 0)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"moments of different dims: {mu1.shape} vs {mu2.shape}, "
                         f"{sigma1.shape} vs {sigma2.shape}")
    root = _psd_sqrt(sigma1)
    inner = root @ sigma2 @ root
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)  # symmetric up to rounding
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * np.sqrt(np.clip(eig, 0.0, None)).sum())
