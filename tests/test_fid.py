"""Tests of pipeline.evaluation.frechet and the fid stage.

The Inception tests use a RANDOM state dict of pytorch-fid's FID Inception, written where
torch.hub caches the real weights, so they run offline and check that the cache is what is read.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.hub
from pytorch_fid.fid_score import calculate_frechet_distance
from torchvision.transforms import ToTensor

from pipeline import fid, fid_stats
from pipeline.evaluation import frechet
from pipeline.core import io
from pipeline.core.errors import UserError
from pipeline.evaluation.frechet import FeatureStats, frechet_distance, image_stats
from pipeline.core.io import save_images
from pipeline.data.dataset import write_shard

from support.stage_args import FID_STATS_ARGS

from support.tiny import make_images

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def _stats(features: np.ndarray) -> FeatureStats:
    s = FeatureStats.empty(features.shape[1])
    s.add(features)
    return s


# -- FeatureStats ---------------------------------------------------------------------------------

def test_feature_stats_merge_equals_one_pass_and_numpy():
    f = np.random.default_rng(0).random((37, 6))
    whole = _stats(f)
    merged = _stats(f[:20]).merge(_stats(f[20:]))
    assert merged.count == whole.count == 37
    np.testing.assert_allclose(merged.total, whole.total, rtol=0, atol=1e-10)
    np.testing.assert_allclose(merged.outer, whole.outer, rtol=0, atol=1e-10)
    mu, cov = merged.mean_cov()
    np.testing.assert_allclose(mu, np.mean(f, axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=0, atol=1e-10)


def test_feature_stats_accumulates_batches():
    f = np.random.default_rng(1).random((10, 3)).astype(np.float32)
    s = FeatureStats.empty(3)
    for lo in range(0, 10, 3):
        s.add(f[lo:lo + 3])
    mu, cov = s.mean_cov()
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(f.astype(np.float64), rowvar=False), rtol=0, atol=1e-10)


def test_mean_cov_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 images.*have 1"):
        _stats(np.ones((1, 3))).mean_cov()


# -- Fréchet distance on pixels -------------------------------------------------------------------
# 4×4×3 images give 48-d features; 120 images keep the covariance full rank.

def test_pixel_fid_of_a_set_with_itself_is_zero():
    images = make_images(120, size=4, seed=0)
    s = image_stats(images, "pixels")
    assert s.count == 120 and s.total.shape == (48,)
    assert abs(frechet_distance(s, s)) < 1e-6


def test_pixel_fid_against_a_shifted_set_is_the_squared_mean_shift():
    images = make_images(120, size=4, seed=0, high=200)
    shifted = images + np.uint8(40)  # no overflow: same covariance, mean moved by 40/255 per pixel
    d = frechet_distance(image_stats(shifted, "pixels"), image_stats(images, "pixels"))
    assert d > 0
    assert d == pytest.approx(48 * (40 / 255) ** 2, rel=1e-4)
    other = make_images(120, size=4, seed=1)
    assert frechet_distance(image_stats(other, "pixels"), image_stats(images, "pixels")) > 0.01


def _pytorch_fid(*moments) -> float:
    """pytorch-fid's calculate_frechet_distance: the reference, run where its scipy allows."""
    try:
        return calculate_frechet_distance(*moments)
    except TypeError as e:  # scipy >= 1.18 has no sqrtm(disp=): the reason we have our own
        pytest.skip(f"pytorch-fid's reference cannot run on this scipy: {e}")


def _moments(x: np.ndarray):
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


def _inception_like(n: int, dims: int, seed: int, shift: float = 0.0, rank: int | None = None):
    """Non-negative features (pool3 is after a ReLU) whose covariance spectrum decays as 1/i
    (as Inception's does), optionally of a lower rank; the same basis for every seed."""
    k = rank or dims
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(dims, k)))[0]
    z = np.random.default_rng(seed).normal(size=(n, k)) / np.sqrt(np.arange(1, k + 1))
    return np.maximum(z @ basis.T + 0.3 + shift, 0.0)


def _exact_low_rank(a: np.ndarray, b: np.ndarray) -> float:
    """The distance of two sample sets with fewer samples than dims, exactly in float64: the
    eigenvalues of Σa Σb are the squared singular values of Xa Xbᵀ / sqrt((n-1)(m-1)) (X
    centred), so tr sqrt(Σa Σb) is that small matrix's nuclear norm."""
    xa, xb = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    nuclear = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / scale
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (xa ** 2).sum() / (len(a) - 1) + (xb ** 2).sum() / (len(b) - 1)
                 - 2 * nuclear)


def test_frechet_distance_equals_pytorch_fid():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(80, 10))
    b = rng.normal(loc=0.3, scale=1.5, size=(60, 10)) @ rng.normal(size=(10, 10))
    ref = _pytorch_fid(*_moments(a), *_moments(b))
    assert frechet_distance(_stats(a), _stats(b)) == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert ref > 1


# (n_a, n_b, shift): full rank and close, full rank and apart, fewer images than dims
PARITY_CASES = {"full-rank": (3000, 3000, 0.0), "full-rank-apart": (3000, 3000, 0.05),
                "rank-deficient": (150, 200, 0.02)}


@pytest.mark.parametrize("case", PARITY_CASES)
def test_frechet_from_moments_equals_pytorch_fid_on_inception_like_statistics(case):
    """1e-6 relative, at 256 dims here (the suite's budget); at 2048 in the bench-marked test."""
    n_a, n_b, shift = PARITY_CASES[case]
    a, b = _inception_like(n_a, 256, 1), _inception_like(n_b, 256, 2, shift)
    ours = frechet.frechet_from_moments(*_moments(a), *_moments(b))
    assert ours == pytest.approx(_pytorch_fid(*_moments(a), *_moments(b)), rel=1e-6)
    if n_a < 256:
        assert ours == pytest.approx(_exact_low_rank(a, b), rel=1e-6)


@pytest.mark.bench
@pytest.mark.parametrize("case", PARITY_CASES)
def test_frechet_from_moments_equals_pytorch_fid_at_2048_dims(case):
    """The published dims: minutes of scipy sqrtm on 2 cores, so CI's bench run has it."""
    n_a, n_b, shift = PARITY_CASES[case]
    n_a, n_b = (n_a * 4, n_b * 4) if n_a > 2048 else (n_a * 5, n_b * 5)  # rank-deficient stays
    a, b = _inception_like(n_a, 2048, 1), _inception_like(n_b, 2048, 2, shift)
    ours = frechet.frechet_from_moments(*_moments(a), *_moments(b))
    assert ours == pytest.approx(_pytorch_fid(*_moments(a), *_moments(b)), rel=1e-6)


def test_frechet_from_moments_is_stable_where_sqrtm_returns_an_imaginary_part():
    """Covariances from sums (as FeatureStats) of features far from 0 are slightly indefinite
    (cancellation): sqrtm(Σa Σb) then has an imaginary part past pytorch-fid's 1e-3 (it raises
    "Imaginary component"); ours stays real and near the exact value (the rounding of the
    covariances themselves is the residue: about 1e-4 relative)."""
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 64)) + 3e5, rng.normal(size=(20, 64)) * 1.1 + 3e5
    mu_a, cov_a = _stats(a).mean_cov()
    mu_b, cov_b = _stats(b).mean_cov()
    root = linalg.sqrtm(cov_a @ cov_b)
    assert np.abs(np.diagonal(root).imag).max() > 1e-3  # the trouble is real on this scipy
    ours = frechet.frechet_from_moments(mu_a, cov_a, mu_b, cov_b)
    assert np.isfinite(ours) and isinstance(ours, float)
    assert ours == pytest.approx(_exact_low_rank(a, b), rel=1e-3)


def test_unknown_features_are_rejected_by_name():
    with pytest.raises(ValueError, match="unknown FID features 'clip'"):
        image_stats(make_images(2, size=4), "clip")


def test_fid_cli_with_pixel_features(tmp_path):
    real = make_images(60, size=4, seed=0, high=200)
    save_images(tmp_path / "real.npz", real, np.zeros(60))
    # the generated images as the sample stage writes them: shards in the packed format
    write_shard(tmp_path / "g0.json", real[:25] + np.uint8(20), np.full(25, -1))
    write_shard(tmp_path / "g1.json", real[25:] + np.uint8(20), np.full(35, -1))
    stats = []
    for name in ("real.npz", "g0.json", "g1.json"):
        stats.append(tmp_path / f"{name.split('.')[0]}.stats.npz")
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / name), "--out", str(stats[-1]),
                        "--features", "pixels", "--device", "cpu"])
    out = tmp_path / "fid.json"
    fid.main(["--real", str(stats[0]), "--generated", str(stats[1]), str(stats[2]),
              "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["features"] == "pixels"
    assert result["num_generated"] == 60 and result["num_real"] == 60
    assert result["fid"] == pytest.approx(48 * (20 / 255) ** 2, rel=1e-4)


# -- the FID protocol: fid.num_generated images in fid.seed_sets subsets -------------------------

def _protocol_fid(tmp_path, images, real_stats, shard_size, *protocol) -> dict:
    """fid.json of `images` cut into shards of `shard_size`, each fid_stats job given its global
    start (as the workflow does) and the protocol's options."""
    folder = tmp_path / f"shards{shard_size}"
    folder.mkdir()
    stats = []
    for start in range(0, len(images), shard_size):
        part = images[start:start + shard_size]
        write_shard(folder / f"s{start}.json", part, np.full(len(part), -1))
        stats.append(folder / f"s{start}.stats.npz")
        fid_stats.main([*FID_STATS_ARGS, "--images", str(folder / f"s{start}.json"), "--out",
                        str(stats[-1]), "--features", "pixels", "--start", str(start),
                        "--total", str(len(images)), *protocol])
    fid.main(["--real", str(real_stats), "--generated", *map(str, stats),
              "--out", str(folder / "fid.json")])
    return json.loads((folder / "fid.json").read_text())


@pytest.fixture
def real_pixel_stats(tmp_path):
    save_images(tmp_path / "real.npz", make_images(60, size=4, seed=0), np.zeros(60))
    fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / "real.npz"), "--out",
                    str(tmp_path / "real.stats.npz"), "--features", "pixels"])
    return tmp_path / "real.stats.npz"


def test_protocol_fid_does_not_depend_on_the_shard_size(tmp_path, real_pixel_stats):
    images = make_images(70, size=4, seed=3)
    protocol = ["--num-generated", "20", "--seed-sets", "3"]
    a, b = (_protocol_fid(tmp_path, images, real_pixel_stats, size, *protocol)
            for size in (25, 70))
    # the same images in every set; only the order of the float64 sums differs (20 images of
    # 48-d: rank-deficient covariances, whose tiny eigenvalues the square root amplifies)
    assert a["protocol"]["fids"] == pytest.approx(b["protocol"]["fids"], rel=1e-7)
    p = a["protocol"]
    assert (p["num_generated"], p["seed_sets"], p["of"]) == (20, 3, 70)
    assert a["fid"] == p["min"] == min(p["fids"]) and p["mean"] == pytest.approx(np.mean(p["fids"]))
    assert a["num_generated"] == 20 and a["whole_set"]["num_generated"] == 70
    assert len(set(p["fids"])) == 3  # three different (disjoint) sets
    # each set's figure is the Fréchet distance of exactly its images
    mu, sigma = frechet.load_stats(real_pixel_stats)[0].mean_cov()
    for fid_j, chosen in zip(p["fids"], frechet.fid_subsets(70, 20, 3)):
        ours = frechet.distance_to_reference(_stats(frechet.pixel_features(images[chosen])),
                                             mu, sigma)
        assert fid_j == pytest.approx(ours, rel=1e-7)


def test_protocol_fid_of_all_images_is_the_whole_set_figure(tmp_path, real_pixel_stats):
    images = make_images(50, size=4, seed=4)
    counted = _protocol_fid(tmp_path, images, real_pixel_stats, 20, "--num-generated", "50",
                            "--seed-sets", "1")
    whole = _protocol_fid(tmp_path, images, real_pixel_stats, 30)  # fid.num_generated: all
    assert counted["fid"] == pytest.approx(counted["whole_set"]["fid"], rel=1e-9)
    assert whole["fid"] == whole["whole_set"]["fid"] == pytest.approx(counted["fid"], rel=1e-9)
    assert whole["protocol"]["subset_seed"] is None and counted["protocol"]["subset_seed"] == 0


def test_fid_subsets_are_disjoint_seeded_and_the_quality_subsets_first():
    from pipeline.evaluation import quality

    sets = frechet.fid_subsets(1000, 100, 3)
    assert all(len(s) == 100 and np.all(np.diff(s) > 0) for s in sets)
    assert len(np.unique(np.concatenate(sets))) == 300
    np.testing.assert_array_equal(sets[0], quality.subset_indices(1000, 100, frechet.SUBSET_SEED))
    with pytest.raises(UserError, match="fid.num_generated 400 × fid.seed_sets 3 exceeds the 1000"):
        frechet.fid_subsets(1000, 400, 3)


def test_a_missing_shard_is_named_by_the_protocol_check(tmp_path, real_pixel_stats):
    images = make_images(40, size=4, seed=5)
    _protocol_fid(tmp_path, images, real_pixel_stats, 20, "--num-generated", "30",
                  "--seed-sets", "1")
    with pytest.raises(UserError, match=r"\[\d+\] images of the FID subsets, not 30"):
        fid.main(["--real", str(real_pixel_stats), "--generated",
                  str(tmp_path / "shards20" / "s0.stats.npz"), "--out", str(tmp_path / "x.json")])


def test_merged_shard_statistics_equal_one_pass(tmp_path):
    images = make_images(30, size=4, seed=5)
    save_images(tmp_path / "all.npz", images, np.zeros(30))
    for name, part in (("a", images[:13]), ("b", images[13:])):
        save_images(tmp_path / f"{name}.npz", part, np.zeros(len(part)))
    for name in ("all", "a", "b"):
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / f"{name}.npz"), "--out",
                        str(tmp_path / f"{name}.stats.npz"), "--features", "pixels"])
    whole, _ = frechet.load_stats(tmp_path / "all.stats.npz")
    merged = frechet.load_stats(tmp_path / "a.stats.npz")[0].merge(
        frechet.load_stats(tmp_path / "b.stats.npz")[0])
    assert merged.count == whole.count == 30
    for x, y in zip(merged.mean_cov(), whole.mean_cov()):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_mu_sigma_reference_gives_the_same_fid(tmp_path):
    real, gen = make_images(40, size=4, seed=1), make_images(40, size=4, seed=2, high=200)
    save_images(tmp_path / "real.npz", real, np.zeros(40))
    save_images(tmp_path / "gen.npz", gen, np.zeros(40))
    for name in ("real", "gen"):
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / f"{name}.npz"), "--out",
                        str(tmp_path / f"{name}.stats.npz"), "--features", "pixels"])
    mu, sigma = frechet.load_stats(tmp_path / "real.stats.npz")[0].mean_cov()
    np.savez(tmp_path / "ref.npz", mu=mu, sigma=sigma)  # pytorch-fid's save_fid_stats format
    results = []
    for ref in ("real.stats.npz", "ref.npz"):
        fid.main(["--real", str(tmp_path / ref), "--generated", str(tmp_path / "gen.stats.npz"),
                  "--out", str(tmp_path / "fid.json")])
        results.append(json.loads((tmp_path / "fid.json").read_text()))
    assert results[0]["fid"] == pytest.approx(results[1]["fid"], rel=1e-9)
    assert results[0]["num_real"] == 40 and results[1]["num_real"] is None


# -- Inception (random weights from a fake torch.hub cache) ---------------------------------------

def _random_fid_inception_state_dict() -> dict:
    """The state dict of pytorch_fid.inception.fid_inception_v3's structure, randomly initialised
    (built as fid_inception_v3 builds it, minus the download)."""
    torch.manual_seed(0)
    net = frechet.fid_inception_architecture()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):  # He init keeps the signal alive through ~100 layers,
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # so features differ
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, so loading shows
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


@pytest.fixture(scope="module")
def _inception_cache(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = _random_fid_inception_state_dict()
    torch.save(state, checkpoints / FID_WEIGHTS_NAME)
    return home, state


@pytest.fixture
def offline_inception(_inception_cache, monkeypatch):
    """TORCH_HOME pointing at the fake cache, and any download attempt an error."""
    home, state = _inception_cache
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return state


def test_inception_model_loads_weights_from_torch_home_cache(offline_inception):
    model, digest = frechet.inception_model("cpu")
    assert digest == io.sha256_file(frechet.weights_cache_path())
    assert not model.training
    conv = model.blocks[0][0].conv.weight
    torch.testing.assert_close(conv, offline_inception["Conv2d_1a_3x3.conv.weight"], rtol=0, atol=0)
    last = model.blocks[3][2].branch_pool.bn.running_mean
    torch.testing.assert_close(last, offline_inception["Mixed_7c.branch_pool.bn.running_mean"],
                               rtol=0, atol=0)
    images = make_images(3, size=16, seed=3)
    f = frechet.inception_features(model, images, batch_size=2, device="cpu")
    assert f.shape == (3, 2048) and f.dtype == np.float64
    assert np.isfinite(f).all()
    assert not np.allclose(f[0], f[1])
    # preprocessing as pytorch-fid's get_activations: torchvision ToTensor (uint8 HWC → [0, 1] CHW)
    batch = torch.stack([ToTensor()(im) for im in images])
    with torch.no_grad():
        ref = model(batch)[0].squeeze(3).squeeze(2).numpy()
    np.testing.assert_allclose(f, ref, rtol=1e-5, atol=1e-6)
    # batching does not change the features
    np.testing.assert_allclose(frechet.inception_features(model, images[2:], 2, "cpu"), f[2:],
                               rtol=1e-5, atol=1e-6)


def test_fid_stats_cli_with_inception_features(tmp_path, offline_inception):
    # 2048-d statistics of two shards (the distance itself is checked at 64 dims below: a
    # 2048×2048 matrix square root takes tens of seconds on a small CPU)
    generated = make_images(2, size=16, seed=1)
    for k in range(2):
        save_images(tmp_path / f"g{k}.npz", generated[k:k + 1], np.full(1, -1))
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / f"g{k}.npz"), "--out",
                        str(tmp_path / f"g{k}.stats.npz"), "--features", "inception",
                        "--batch-size", "2", "--device", "cpu"])
    (a, meta), (b, _) = (frechet.load_stats(tmp_path / f"g{k}.stats.npz") for k in range(2))
    gen = a.merge(b)
    assert gen.total.shape == (2048,) and gen.outer.shape == (2048, 2048) and gen.count == 2
    assert meta["features"] == "inception" and meta["dims"] == 2048
    assert meta["weights_sha256"] == io.sha256_file(frechet.weights_cache_path())
    model, _ = frechet.inception_model("cpu")
    feats = frechet.inception_features(model, generated, 2, "cpu")
    np.testing.assert_allclose(gen.total, feats.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gen.outer, feats.T @ feats, rtol=1e-5, atol=1e-6)


def test_fid_equals_pytorch_fid_on_png_files(tmp_path, offline_inception):
    """Our stages against pytorch-fid's own calculate_fid_given_paths on the same images."""
    from PIL import Image
    from pytorch_fid.fid_score import calculate_fid_given_paths

    real = make_images(72, size=16, seed=7)  # more images than dims: full-rank covariances
    gen = np.clip(make_images(72, size=16, seed=8).astype(int) * 3 // 4 + 40, 0, 255).astype(np.uint8)
    for name, images in (("real", real), ("gen", gen)):
        (tmp_path / name).mkdir()
        for k, im in enumerate(images):
            Image.fromarray(im).save(tmp_path / name / f"{k:03d}.png")
        save_images(tmp_path / f"{name}.npz", images, np.zeros(len(images)))
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / f"{name}.npz"), "--out",
                        str(tmp_path / f"{name}.stats.npz"), "--features", "inception",
                        "--dims", "64", "--batch-size", "50", "--device", "cpu"])
    fid.main(["--real", str(tmp_path / "real.stats.npz"), "--generated",
              str(tmp_path / "gen.stats.npz"), "--out", str(tmp_path / "fid.json")])
    ours = json.loads((tmp_path / "fid.json").read_text())["fid"]
    theirs = calculate_fid_given_paths([str(tmp_path / "gen"), str(tmp_path / "real")],
                                       batch_size=50, device="cpu", dims=64, num_workers=0)
    assert theirs > 0.01
    assert abs(ours - theirs) <= 1e-3


def test_weights_from_an_explicit_path(tmp_path, offline_inception, monkeypatch):
    path = tmp_path / "my-weights.pth"
    torch.save(offline_inception, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    model, digest = frechet.inception_model("cpu", weights=path)
    assert digest == io.sha256_file(path)
    torch.testing.assert_close(model.blocks[0][0].conv.weight,
                               offline_inception["Conv2d_1a_3x3.conv.weight"], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        frechet.inception_model("cpu", weights=tmp_path / "missing.pth")


def test_no_weights_offline_says_where_to_put_them(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    save_images(tmp_path / "x.npz", make_images(2, size=8), np.zeros(2))
    with pytest.raises(UserError) as e:  # runtime.run prints it as one line (tests/test_runtime.py)
        fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.stats.npz"),
                        "--features", "inception", "--device", "cpu"])
    message = str(e.value)
    assert str(tmp_path / "home" / "hub" / "checkpoints" / FID_WEIGHTS_NAME) in message
    assert "fid.weights" in message and "\n" not in message
    assert not (tmp_path / "x.stats.npz").exists()


def test_shards_of_other_features_do_not_merge(tmp_path):
    from pipeline.core.errors import UserError

    a = image_stats(make_images(4, size=8, seed=1), "pixels")
    frechet.save_stats(tmp_path / "a.npz", a, features="pixels", dims=192, seconds=1.0)
    frechet.save_stats(tmp_path / "b.npz", a, features="pixels", dims=192, seconds=2.0)
    frechet.save_stats(tmp_path / "c.npz", a, features="inception", dims=192)
    merged, meta, seconds, subsets = frechet.merge_stats_files([tmp_path / "a.npz",
                                                                tmp_path / "b.npz"])
    assert subsets == []
    assert merged.count == 8 and seconds == 3.0 and meta["features"] == "pixels"
    with pytest.raises(UserError, match="c.npz was computed with other features"):
        frechet.merge_stats_files([tmp_path / "a.npz", tmp_path / "c.npz"])
    mu, sigma = a.mean_cov()
    with pytest.raises(UserError, match="real statistics are 3-d, generated 192-d"):
        frechet.distance_to_reference(merged, mu[:3], sigma[:3, :3])


def test_weights_url_is_pytorch_fids():
    """frechet keeps pytorch-fid's weights URL so as not to import pytorch-fid in every job."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    assert frechet.FID_WEIGHTS_URL == FID_WEIGHTS_URL


# -- FD-DINOv2 ------------------------------------------------------------------------------------

# The smallest DINOv2 timm registers (ViT-S/14, LVD-142M's recipe): the real network is ViT-L/14
# (fid.dinov2_arch's default), whose random copy would cost minutes per test on a small CPU. The
# loading path is the real one: timm's pretrained loader reading a safetensors file saved from the
# network at its native 518 px, as timm's hub file is, resized to 224 px on load.
SMALL_DINOV2 = "vit_small_patch14_dinov2.lvd142m"


@pytest.fixture(scope="module")
def dinov2_weights(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model(SMALL_DINOV2, pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("dinov2") / "model.safetensors"
    save_file(net.state_dict(), str(path))
    return path, net


def test_dinov2_statistics_are_the_cls_token_of_dgm_evals_preprocessing(tmp_path, dinov2_weights):
    """fid_stats --features dinov2 on two images: 384-d (ViT-S) sums of the CLS token of timm's
    network with the file's weights, after dgm-eval's PIL bicubic resize to 224 and ImageNet
    normalisation (the reference computed here with torchvision's transforms, as dgm-eval)."""
    import timm
    from PIL import Image
    from timm.models.vision_transformer import checkpoint_filter_fn
    from torchvision import transforms as T

    path, net = dinov2_weights
    images = make_images(2, size=8, seed=2)
    save_images(tmp_path / "g.npz", images, np.full(2, -1))
    fid_stats.main([*FID_STATS_ARGS, "--images", str(tmp_path / "g.npz"), "--out",
                    str(tmp_path / "g.stats.npz"), "--features", "dinov2", "--dinov2-arch",
                    SMALL_DINOV2, "--weights", str(path), "--batch-size", "2"])
    stats, meta = frechet.load_stats(tmp_path / "g.stats.npz")
    assert stats.count == 2 and meta["dims"] == 384 and meta["features"] == "dinov2"
    assert meta["arch"] == SMALL_DINOV2 and meta["weights_sha256"] == io.sha256_file(path)
    dgm_eval = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                          T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([dgm_eval(Image.fromarray(im)) for im in images])
    # the saved network at 224 px: its 518 px position embedding resized as timm's loader does
    # for a hub download (timm's own checkpoint filter)
    at_224 = timm.create_model(SMALL_DINOV2, pretrained=False, num_classes=0, img_size=224)
    at_224.load_state_dict(checkpoint_filter_fn(net.state_dict(), at_224))
    with torch.no_grad():
        ref = at_224.eval()(x).double().numpy()
    np.testing.assert_allclose(stats.total, ref.sum(0), rtol=1e-4, atol=1e-4)
    assert not np.allclose(ref[0], ref[1])


def test_dinov2_without_weights_or_with_a_damaged_file_fails_in_one_line(tmp_path):
    save_images(tmp_path / "g.npz", make_images(2, size=8), np.zeros(2))
    base = [*FID_STATS_ARGS, "--images", str(tmp_path / "g.npz"), "--out",
            str(tmp_path / "g.stats.npz"), "--features", "dinov2", "--dinov2-arch", SMALL_DINOV2]
    with pytest.raises(UserError, match="needs --weights"):
        fid_stats.main(base)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError) as e:
        fid_stats.main([*base, "--weights", str(tmp_path / "bad.safetensors")])
    assert str(e.value).startswith(f"DINOv2 weights {tmp_path / 'bad.safetensors'}: ")
    assert "rule fetch_dinov2 fetches it again" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "g.stats.npz").exists()


@pytest.mark.e2e
@pytest.mark.heavy  # ~80 s of CPU (a ViT at 224 px on 2 cores): CI runs it after the suite
def test_dinov2_features_through_the_workflow_on_the_tiny_config(tmp_path, dinov2_weights):
    """fid.features dinov2 end to end in Snakemake on the tiny config (30 real images: 3 a class):
    every fid_stats job and rule fid in DINOv2's feature space, read from a weights file in timm's
    hub format (random ViT-S/14, as above), FD-DINOv2 and the quality metrics in fid.json."""
    import yaml

    from support.snakemake import REPO, run_snakemake

    path, _ = dinov2_weights
    (tmp_path / "dinov2.yaml").write_text(yaml.safe_dump({
        "real": {"per_class": 3},
        "fid": {"features": "dinov2", "dinov2_arch": SMALL_DINOV2, "weights": str(path)}}))
    r = run_snakemake("results/fid.json", "--cores", "2", "--configfile",
                      str(REPO / "tests" / "configs" / "tiny.yaml"), "dinov2.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "rule fetch_dinov2:" not in r.stdout + r.stderr  # fid.weights: the local file
    result = json.loads((tmp_path / "results" / "fid.json").read_text())
    assert result["features"] == "dinov2" and result["fid"] > 0
    assert set(result["quality"]) >= {"precision", "recall", "density", "coverage"}
    stats, meta = frechet.load_stats(tmp_path / "results" / "fid" / "real.stats.npz")
    assert (stats.count, meta["dims"], meta["arch"]) == (30, 384, SMALL_DINOV2)
