"""Generated-set quality (pipeline.evaluation.quality): parity with prdc and torch-fidelity, the
mode-collapse case, the realism score against its definition, and selection by score that does
not depend on the shard size."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation import quality as q


def _sets(n_real=300, n_fake=250, d=16, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, d)) * 1.2 + 0.3).astype(np.float32)
    return real, fake


@pytest.mark.parametrize("seed,batch", [(0, 37), (1, 256), (2, 1)])
def test_parity_with_prdc(seed, batch):
    prdc = pytest.importorskip("prdc")
    real, fake = _sets(seed=seed)
    ours = q.prdc(real, fake, k_precision=3, k_density=5, batch=batch)
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    at3, at5 = prdc.compute_prdc(r64, f64, 3), prdc.compute_prdc(r64, f64, 5)
    for key, ref in (("precision", at3), ("recall", at3), ("density", at5), ("coverage", at5)):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-6), key
    # the real radii passed in (the real statistics job's) give the same numbers
    radii = {k: q.knn_radii(q.as_features(real), k) for k in (3, 5)}
    assert q.prdc(real, fake, 3, 5, real_radii=radii, batch=batch) == ours


def test_parity_with_torch_fidelity():
    tf = pytest.importorskip("torch_fidelity.metric_prc")
    import torch

    real, fake = _sets(seed=3)
    ours = q.prdc(real, fake, 3, 5, batch=64)
    precision, recall = tf.calculate_precision_recall_full(
        torch.from_numpy(fake).double(), torch.from_numpy(real).double(), 3)
    assert ours["precision"] == pytest.approx(precision, abs=1e-6)
    assert ours["recall"] == pytest.approx(recall, abs=1e-6)


def test_mode_collapse_is_precise_but_recalls_and_covers_nothing():
    real, _ = _sets(n_real=1000)
    fake = np.repeat(real[:3], 100, axis=0)  # a few real images, repeated
    m = q.prdc(real, fake, 3, 5, batch=50)
    assert m["precision"] == 1.0
    # recall: only the 3 copied images lie in the (zero-radius) generated balls; coverage: only
    # the real images whose 5-NN ball holds one of the 3
    assert m["recall"] == 3 / 1000 and m["coverage"] < 0.05
    spread = q.prdc(real, _sets(n_real=1000, seed=5)[0], 3, 5)  # another draw of the same law
    assert spread["recall"] > 0.5 and spread["coverage"] > 0.5


def test_realism_score_is_its_definition():
    real, fake = _sets(n_real=120, n_fake=90, seed=4)
    r, f = real.astype(np.float64), fake.astype(np.float64)
    radii3, radii5 = q.knn_radii(r, 3), q.knn_radii(r, 5)
    scores = q.image_scores(fake, real, radii3, radii5, 5, batch=7)
    d = np.linalg.norm(f[:, None] - r[None], axis=2)  # the N×M matrix, for the reference only
    half = np.where(radii3 > np.median(radii3), 0.0, radii3)
    np.testing.assert_allclose(scores["realism"], (half[None] / (d + q.EPS)).max(1), rtol=1e-9)
    np.testing.assert_allclose(scores["density"], (d <= radii5[None]).sum(1) / 5)
    # prdc's own radii: the k-th neighbour other than the point itself
    self_d = np.sort(np.linalg.norm(r[:, None] - r[None], axis=2), axis=1)
    np.testing.assert_allclose(radii3, self_d[:, 3], rtol=1e-9, atol=1e-12)


def test_keep_best_ranks_by_score_then_index():
    scores = np.array([0.5, 2.0, 0.5, 3.0, 0.5, 1.0])
    assert q.ranking(scores).tolist() == [3, 1, 5, 0, 2, 4]
    assert q.keep_best(scores, 0.5).tolist() == [1, 3, 5]
    assert q.keep_best(scores, 0.6).tolist() == [0, 1, 3, 5]  # 3.6 -> 4: ties by index
    assert q.keep_best(scores, 1.0).tolist() == list(range(6))
    assert q.keep_count(10, 0.01) == 1
    with pytest.raises(ValueError, match="generated_keep"):
        q.keep_best(scores, 1.5)


def _run_shards(tmp_path, images, real_q, shard_size, tag):
    """What the fid_stats jobs of one shard size write, merged as pretrain and fid read it."""
    paths = []
    for start in range(0, len(images), shard_size):
        chunk = images[start:start + shard_size]
        chosen = q.shard_subset(start, len(chunk), len(images), 50, 7)
        scores = q.image_scores(chunk, real_q["features"], real_q["radii_precision"],
                                real_q["radii_density"], 5, batch=16)
        path = tmp_path / f"{tag}_{start:05d}.quality.npz"
        q.save_shard_quality(path, start, chosen, chunk[chosen - start], scores,
                             subset=50, subset_seed=7, k_precision=3, k_density=5)
        paths.append(path)
    return paths


def test_selection_and_subset_do_not_depend_on_the_shard_size(tmp_path):
    real, fake = _sets(n_real=200, n_fake=230, seed=6)
    chosen = q.subset_indices(len(real), 80, 1)
    rf = q.as_features(real[chosen])
    real_q = {"features": rf, "radii_precision": q.knn_radii(rf, 3),
              "radii_density": q.knn_radii(rf, 5)}
    merged = {}
    for size in (230, 100, 37):
        paths = _run_shards(tmp_path, fake, real_q, size, f"s{size}")
        features, scores, _ = q.merge_shard_quality(paths[::-1])  # any order of files
        merged[size] = (features, scores, q.keep_best(q.load_scores(paths, "realism"), 0.25))
    for size in (100, 37):
        np.testing.assert_array_equal(merged[size][0], merged[230][0])
        for name in q.QUALITY_SCORES:
            np.testing.assert_array_equal(merged[size][1][name], merged[230][1][name])
        np.testing.assert_array_equal(merged[size][2], merged[230][2])
    assert len(merged[230][0]) == 50 and len(merged[230][2]) == round(0.25 * 230)
    np.testing.assert_array_equal(q.shard_subset(0, 230, 230, 50, 7), q.subset_indices(230, 50, 7))
    with pytest.raises(ValueError, match="missing"):
        q.merge_shard_quality(_run_shards(tmp_path, fake, real_q, 100, "gap")[1:])
    with pytest.raises(ValueError, match="unknown quality score"):
        q.load_scores(paths, "sharpness")
