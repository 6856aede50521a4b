"""Generated-set quality from the FID features: improved precision and recall (Kynkäänniemi et
al. 2019, k-NN radii), density and coverage (Naeem et al. 2020), and a per-image score for
choosing which generated images to inflate with.

Every quantity is computed in blocks of `batch` rows against the other side, so memory is
O(batch × max(N, M)) float64 plus the features themselves, never the N×M distance matrix that
prdc (three of them) and torch-fidelity's default build (≈10 GB each at 50k×50k in float32).
We batch ourselves because prdc holds all three matrices at once and torch-fidelity needs torch
and computes neither density, coverage nor per-image scores.

Subsets are chosen over GLOBAL image indices (`subset_indices`: a seeded key per index, the
`size` smallest keys kept), so a shard job keeps exactly the images of the global subset that it
holds, whatever the shard size. Features are stored as float32 (the Inception's output dtype) and
every distance is computed in float64 from those stored values.
"""

from __future__ import annotations

import json

import numpy as np

from pipeline.core import io, records
from pipeline.core.errors import reading
from pipeline.vocab.names import QUALITY_SCORES

# The realism score drops the real samples whose radius exceeds this percentile (Kynkäänniemi
# et al. 2019, Sec. 5: "we discard half of the hyperspheres with the largest radii"; their
# realism code's clamp_to_percentile=50), so that outliers' huge balls do not make any image real.
REALISM_CLAMP_PERCENTILE = 50
# kynkaat's realism code adds this to the distance (an image equal to a real one scores finitely)
EPS = 1e-18
DEFAULT_BATCH = 256


def subset_indices(total: int, size: int, seed: int) -> np.ndarray:
    """Sorted global indices of a random `size`-subset of `total` images (all when fewer): image
    i's key is the i-th draw of one seeded stream, the `size` smallest keys win (ties by index)."""
    if size >= total:
        return np.arange(total)
    keys = np.random.default_rng(seed).random(total)
    return np.sort(np.argsort(keys, kind="stable")[:size])


def shard_subset(start: int, count: int, total: int, size: int, seed: int) -> np.ndarray:
    """The global subset's indices that fall in images start..start+count-1 (sorted)."""
    chosen = subset_indices(total, size, seed)
    lo, hi = np.searchsorted(chosen, [start, start + count])
    return chosen[lo:hi]


def as_features(x) -> np.ndarray:
    """Features as stored (float32) and then computed with (float64)."""
    return np.asarray(x, np.float32).astype(np.float64)


def _distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray, rows: int | None = None
               ) -> np.ndarray:
    """Euclidean distances of the rows of a to the rows of b (float64, a block). With `rows`,
    a is zero-padded to that many rows first: BLAS picks its kernels by the matrix shape, and a
    short last block (a shard's tail) may round a product 1 ulp differently, so a per-image
    score would depend on the shard size."""
    n = len(a)
    if rows is not None and n < rows:
        a = np.concatenate([a, np.zeros((rows - n, a.shape[1]), a.dtype)])
    d = np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ b.T)
    d = d[:n]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return np.sqrt(d, out=d)


def _blocks(n: int, batch: int):
    for lo in range(0, n, batch):
        yield lo, min(n, lo + batch)


def knn_radii_many(x: np.ndarray, ks, batch: int = DEFAULT_BATCH) -> dict[int, np.ndarray]:
    """{k: distance of each row of x to its k-th nearest other row} for every k in ks, in one
    pass (prdc's radii: the (k+1)-th smallest distance, the row itself at 0 included)."""
    ks = sorted(set(ks))
    if len(x) <= ks[-1]:
        raise ValueError(f"k-NN radii with k={ks[-1]} need more than {ks[-1]} samples, "
                         f"have {len(x)}")
    x_sq = np.einsum("ij,ij->i", x, x)
    out = {k: np.empty(len(x)) for k in ks}
    for lo, hi in _blocks(len(x), batch):
        d = _distances(x[lo:hi], x, x_sq)
        d[np.arange(hi - lo), np.arange(lo, hi)] = 0.0  # a row's distance to itself, exactly
        d = np.partition(d, ks, axis=1)
        for k in ks:
            out[k][lo:hi] = d[:, k]
    return out


def knn_radii(x: np.ndarray, k: int, batch: int = DEFAULT_BATCH) -> np.ndarray:
    return knn_radii_many(x, [k], batch)[k]


def prdc(real: np.ndarray, fake: np.ndarray, k_precision: int = 3, k_density: int = 5,
         real_radii: dict | None = None, batch: int = DEFAULT_BATCH) -> dict:
    """Precision, recall (k_precision-NN balls), density, coverage (k_density-NN balls) of the
    generated features `fake` against `real`, in blocks. `real_radii` ({k: radii}) reuses the
    real side's radii (computed once, in the real statistics job). Balls are closed (<=, as
    Kynkäänniemi et al.'s and torch-fidelity's code; prdc's < differs only on exact ties)."""
    real, fake = as_features(real), as_features(fake)
    radii = dict(real_radii or {})
    missing = [k for k in (k_precision, k_density) if k not in radii]
    if missing:
        radii.update(knn_radii_many(real, missing, batch))
    r_p, r_d = radii[k_precision], radii[k_density]
    fake_r = knn_radii(fake, k_precision, batch)
    real_sq, fake_sq = np.einsum("ij,ij->i", real, real), np.einsum("ij,ij->i", fake, fake)
    precise = inside = 0
    nearest = np.full(len(real), np.inf)  # each real sample's distance to its nearest fake one
    for lo, hi in _blocks(len(fake), batch):
        d = _distances(fake[lo:hi], real, real_sq)
        precise += int((d <= r_p[None, :]).any(1).sum())
        inside += int((d <= r_d[None, :]).sum())
        np.minimum(nearest, d.min(0), out=nearest)
    recalled = 0
    for lo, hi in _blocks(len(real), batch):
        d = _distances(real[lo:hi], fake, fake_sq)
        recalled += int((d <= fake_r[None, :]).any(1).sum())
    return {"precision": precise / len(fake), "recall": recalled / len(real),
            "density": inside / (k_density * len(fake)),
            "coverage": float((nearest <= r_d).mean())}


def image_scores(fake: np.ndarray, real: np.ndarray, radii_precision: np.ndarray,
                 radii_density: np.ndarray, k_density: int,
                 batch: int = DEFAULT_BATCH) -> dict[str, np.ndarray]:
    """Every score of QUALITY_SCORES for each generated image (higher: more real-like):
    realism (Kynkäänniemi et al. 2019: max over real samples of r_k / ||g - r||, the radii above
    the median set to 0) and density (Naeem et al. 2020, per image: the real k_density-NN balls
    holding it, over k_density)."""
    fake, real = as_features(fake), as_features(real)
    clamp = np.where(radii_precision > np.percentile(radii_precision, REALISM_CLAMP_PERCENTILE),
                     0.0, radii_precision)
    real_sq = np.einsum("ij,ij->i", real, real)
    realism, density = np.empty(len(fake)), np.empty(len(fake))
    for lo, hi in _blocks(len(fake), batch):
        d = _distances(fake[lo:hi], real, real_sq, rows=batch)
        density[lo:hi] = (d <= radii_density[None, :]).sum(1) / k_density
        realism[lo:hi] = (clamp[None, :] / (d + EPS)).max(1)
    scores = {"realism": realism, "density": density}
    assert tuple(scores) == QUALITY_SCORES
    return scores


def keep_count(total: int, fraction: float) -> int:
    """Images kept of `total` at `fraction` in (0, 1]: the rounded share, at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"generated_keep must be in (0, 1], got {fraction}")
    return min(total, max(1, int(np.floor(fraction * total + 0.5))))


def ranking(scores: np.ndarray) -> np.ndarray:
    """Global indices best first: by score descending, ties by global index ascending."""
    scores = np.asarray(scores, np.float64)
    return np.lexsort((np.arange(len(scores)), -scores))


def keep_best(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted global indices of the best `fraction` of the images by score."""
    return np.sort(ranking(scores)[:keep_count(len(scores), fraction)])


# --- files: what the FID statistics jobs keep for the metrics ----------------------------------


def save_real_quality(path, indices, features, radii_precision, radii_density,
                      meta: dict) -> None:
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, indices=np.asarray(indices, np.int64),
                 features=np.asarray(features, np.float32), radii_precision=radii_precision,
                 radii_density=radii_density, meta=json.dumps(meta))


def save_shard_quality(path, start: int, indices, features, scores: dict, meta: dict) -> None:
    with io.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, start=start, indices=np.asarray(indices, np.int64),
                 features=np.asarray(features, np.float32),
                 **{f"score_{k}": v for k, v in scores.items()}, meta=json.dumps(meta))


def load_quality(path) -> dict:
    records.verify(path)
    with reading(path), np.load(path) as f:
        out = {k: f[k] for k in f.files if k != "meta"}
        out["meta"] = json.loads(str(f["meta"]))
    return out


def merge_shard_quality(paths: list) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """The generated subset's features (by global index), every image's scores (index i at i)
    and the first file's meta, from the shard files; a gap or overlap is a ValueError."""
    parts = sorted((load_quality(p) for p in paths), key=lambda q: int(q["start"]))
    expected, features, scores = 0, [], {}
    for q in parts:
        if int(q["start"]) != expected:
            raise ValueError(f"shard quality files: images from {expected} missing "
                             f"(next file starts at {int(q['start'])})")
        n = len(q[f"score_{QUALITY_SCORES[0]}"])
        expected += n
        features.append(q["features"])
        for name in QUALITY_SCORES:
            scores.setdefault(name, []).append(q[f"score_{name}"])
    return (np.concatenate(features), {k: np.concatenate(v) for k, v in scores.items()},
            parts[0]["meta"])


def load_scores(paths: list, name: str) -> np.ndarray:
    if name not in QUALITY_SCORES:
        raise ValueError(f"unknown quality score {name!r}; choose one of {', '.join(QUALITY_SCORES)}")
    return merge_shard_quality(paths)[1][name]
