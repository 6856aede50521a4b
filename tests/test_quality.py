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
    """prdc.compute_prdc(real_features, fake_features, k): real first, as its signature names."""
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


def _torch_fidelity_order(tf, torch) -> str:
    """Which argument order makes torch-fidelity's calculate_precision_recall_full give the
    standard numbers (Kynkäänniemi et al.: precision = generated inside real balls). Upstream's
    (toshas/torch-fidelity at 5b1e99c, "features_1 is REAL") needs (real, generated), while its
    CLI passes input1, the generated set, first, which swaps the two (toshas/torch-fidelity#58,
    fix unmerged in PR #66); a release carrying that fix ("features_1 is GENERATED", as 0.4.0
    installed here) needs (generated, real). Told apart by behaviour, not by version: copies of
    a few real samples are precise and recall little in the standard order."""
    real, _ = _sets(n_real=300, seed=4)
    collapsed = real[np.arange(250) % 5] + np.float32(1e-3)
    as_t = lambda x: torch.from_numpy(x).double()  # noqa: E731
    precision, recall = tf.calculate_precision_recall_full(as_t(collapsed), as_t(real), 3)
    return "generated, real" if precision > recall else "real, generated"


def test_parity_with_torch_fidelity():
    tf = pytest.importorskip("torch_fidelity.metric_prc")
    import torch

    real, fake = _sets(seed=3)
    ours = q.prdc(real, fake, 3, 5, batch=64)
    order = _torch_fidelity_order(tf, torch)
    first, second = (fake, real) if order == "generated, real" else (real, fake)
    precision, recall = tf.calculate_precision_recall_full(
        torch.from_numpy(first).double(), torch.from_numpy(second).double(), 3)
    assert ours["precision"] == pytest.approx(precision, abs=1e-6), order
    assert ours["recall"] == pytest.approx(recall, abs=1e-6), order
    assert ours["precision"] != pytest.approx(ours["recall"], abs=0.05)  # a swap would show


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
                             {"subset": 50, "subset_seed": 7, "k_precision": 3, "k_density": 5})
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


# --- the config: bad input stops at read time; what is tracked ----------------------------------

import copy  # noqa: E402
from pathlib import Path  # noqa: E402


from pipeline.dag.config_check import config_problems, schema_errors  # noqa: E402
from pipeline.dag.job_params import fid_quality_args, pretrain_args  # noqa: E402
from pipeline.study.design import plan  # noqa: E402
from pipeline.vocab.schema import SCHEMA_PATH  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = SCHEMA_PATH


def _with(config, change: dict) -> dict:
    from snakemake.utils import update_config

    c = copy.deepcopy(config)
    update_config(c, copy.deepcopy(change))
    return c


KEEP = {"strategies": {"adainf": {"generated_keep": 0.5}}}


@pytest.mark.parametrize("change,line", [
    ({"strategies": {"adainf": {"generated_keep": 1.5}}}, "strategies.adainf.generated_keep: 1.5"),
    ({"strategies": {"adainf": {"generated_keep": 0}}}, "strategies.adainf.generated_keep: 0"),
    ({"quality": {"score": "sharpness"}}, "quality.score: 'sharpness' is not one of"),
    ({"auto": {"candidates": {"generated_keep": [0.5, 2]}}}, "auto.candidates.generated_keep.1"),
])
def test_the_schema_names_a_bad_keep_or_score(config, change, line):
    errors = schema_errors(_with(config, change), SCHEMA)
    assert len(errors) == 1 and errors[0].startswith(line), errors


@pytest.mark.parametrize("change,line", [
    ({"strategies": {"adainf": {"generated_keep": 0.5, "num_generated": 100}}},
     "strategies.adainf: generated_keep and num_generated together: choose one"),
    ({"strategies": {"none": {"generated_keep": 0.5}}},
     "strategies.none.generated_keep: 0.5 needs generated images"),
    ({"experiments": {"sweeps": [{"strategy": "adainf", "setting": "generated_keep",
                                  "values": [0.5, 1.5]}]}},
     "experiments.sweeps[0].values: generated_keep must be in (0, 1], got 1.5"),
    ({"strategies": {"adainf": {"num_generated": 100}},
      "experiments": {"sweeps": [{"strategy": "adainf", "setting": "generated_keep",
                                  "values": [0.5]}]}},
     "experiments.sweeps[0]: strategy 'adainf' sets num_generated; generated_keep and"),
    ({**KEEP, "experiments": {"sweeps": [{"strategy": "adainf", "setting": "num_generated",
                                          "values": [100]}]}},
     "experiments.sweeps[0]: strategy 'adainf' sets generated_keep"),
    ({"quality": {"subset": 5}}, "quality.subset: 5 images cannot have 5 nearest neighbours"),
    ({"quality": {"k_precision": 7000}},
     "quality.k_precision: 7000 nearest neighbours need more generated images than "
     "sampling.num_images 6000"),
])
def test_inconsistent_selection_or_quality_settings_name_the_key(config, change, line):
    problems = config_problems(_with(config, change))
    assert len(problems) == 1 and problems[0].startswith(line), problems


def _pretrain(config, strategy="adainf"):
    return pretrain_args(config, plan(config), "simclr", strategy, 0)


def test_generated_keep_is_tracked_and_one_means_all(config):
    kept = _with(config, KEEP)
    args = _pretrain(kept)
    assert "--generated-keep 0.5 --generated-score realism --generated-scores " \
           "results/fid/shard_00000.quality.npz results/fid/shard_00001.quality.npz" in args
    assert "--num-generated" not in args
    # keeping all of them is the plain cell: the same options, so the same encoder
    assert _pretrain(_with(config, {"strategies": {"adainf": {"generated_keep": 1.0}}})) == \
        _pretrain(config)
    # the score it ranks by reruns the cells that select, and only them
    density = _with(kept, {"quality": {"score": "density"}})
    assert _pretrain(density) != args and _pretrain(density, "vanilla") == _pretrain(kept, "vanilla")
    # quality settings change the metrics' files, not the command of a cell keeping everything
    assert _pretrain(_with(config, {"quality": {"subset": 50, "k_precision": 4}})) == \
        _pretrain(config)
    assert fid_quality_args(_with(config, {"quality": {"batch_size": 7}})) == \
        fid_quality_args(config)  # speed only


def test_generated_keep_is_sweepable_and_an_auto_dimension(config):
    c = _with(config, {"experiments": {"sweeps": [
        {"strategy": "adainf", "setting": "generated_keep", "values": [1.0, 0.5, 0.25]}]}})
    d = plan(c)
    assert d.sweeps[0].strategies == ["adainf", "adainf+generated_keep=0.5",
                                    "adainf+generated_keep=0.25"]
    assert d.trained["adainf+generated_keep=0.25"]["generated_keep"] == 0.25
    from pipeline.dag.search_plan import SearchPlan
    from pipeline.search.candidates import candidates

    grid = {**config["auto"]["candidates"], "generated_keep": [1.0, 0.5]}
    names = candidates(grid)
    assert "gen-dup3-standard-crop0.5-jit0.5-keep0.5" in names
    assert "gen-dup3-standard-crop0.5-jit0.5" in names  # keep 1: the name as before
    assert not any(n.startswith("real-") and "keep" in n for n in names)  # no generated: all
    plan_ = SearchPlan(_with(config, {"auto": {"candidates": {"generated_keep": [1.0, 0.5]}}}))
    inputs = plan_.train_inputs("simclr", 0, 0, "gen-dup3-standard-crop0.5-jit0.5-keep0.5")
    assert inputs["scores"] == [f"results/fid/shard_{i:05d}.quality.npz" for i in range(6)]
    assert "--generated-keep 0.5" in plan_.train_args("simclr", 0, 0,
                                                      "gen-dup3-standard-crop0.5-jit0.5-keep0.5")


# --- the stages: fid_stats keeps, fid measures, pretrain selects, report draws ------------------


def test_the_stages_measure_score_and_select_without_a_second_pass(tmp_path, config):
    from support.stage_args import FID_STATS_ARGS, PRETRAIN_ARGS
    from support.tiny import make_images
    from pipeline import fid, fid_stats, pretrain
    from pipeline.core import io
    from pipeline.data.dataset import pack, write_shard
    from pipeline.evaluation.frechet import pixel_features

    real, gen = make_images(60, seed=1), make_images(40, seed=2)
    io.save_images(tmp_path / "real.npz", real, np.arange(60) % 3)
    quality_args = ["--subset", "30", "--subset-seed", "0", "--k-precision", "3",
                    "--k-density", "5"]
    fid_stats.main([*FID_STATS_ARGS, *quality_args, "--images", str(tmp_path / "real.npz"),
                    "--out", str(tmp_path / "real.stats.npz"),
                    "--quality-out", str(tmp_path / "real.quality.npz")])
    shards, stats, scored = [], [], []
    for i, (lo, hi) in enumerate([(0, 25), (25, 40)]):
        shards.append(tmp_path / f"shard_{i:05d}.json")
        write_shard(shards[-1], gen[lo:hi], np.full(hi - lo, -1))
        stats.append(tmp_path / f"shard_{i:05d}.stats.npz")
        scored.append(tmp_path / f"shard_{i:05d}.quality.npz")
        fid_stats.main([*FID_STATS_ARGS, *quality_args, "--images", str(shards[-1]),
                        "--out", str(stats[-1]), "--quality-out", str(scored[-1]),
                        "--start", str(lo), "--total", "40",
                        "--real-quality", str(tmp_path / "real.quality.npz")])
    fid.main(["--generated", *map(str, stats), "--real", str(tmp_path / "real.stats.npz"),
              "--out", str(tmp_path / "fid.json"), "--real-quality",
              str(tmp_path / "real.quality.npz"), "--generated-quality", *map(str, scored),
              "--quality-batch", "7"])
    result = io.read_json(tmp_path / "fid.json")["quality"]
    r_idx, g_idx = q.subset_indices(60, 30, 0), q.subset_indices(40, 30, 0)
    expected = q.prdc(pixel_features(real)[r_idx], pixel_features(gen)[g_idx], 3, 5)
    assert {k: result[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert result["num_real"] == 30 and result["num_generated"] == 30
    assert result["features"] == "pixels"

    pack(tmp_path / "real", "real", [str(tmp_path / "real.npz")])
    pack(tmp_path / "generated", "generated", [str(s) for s in shards])
    run = ["--real", str(tmp_path / "real"), "--generated", str(tmp_path / "generated"),
           *PRETRAIN_ARGS, "--strategy", "keep", "--steps", "1", "--widths", "8",
           "--blocks", "1", "--batch-size", "8", "--method-arg", "proj_hidden=16",
           "--method-arg", "proj_dim=8", "--generated-score", "realism",
           "--generated-scores", *map(str, scored)]
    pretrain.main([*run, "--generated-keep", "0.25", "--out", str(tmp_path / "e.pt"),
                   "--history", str(tmp_path / "h.csv")])
    meta = io.read_json(tmp_path / "h.json")
    assert meta["num_generated"] == 10 and meta["generated_keep"] == 0.25
    with pytest.raises(SystemExit):  # one or the other
        pretrain.parse_args([*run, "--generated-keep", "0.5", "--num-generated", "5",
                             "--generated-subset-seed", "0", "--out", "o", "--history", "h"])


    # the report: the best and worst images side by side, the four metrics labelled pixel-space
    from pipeline.report import save_selection
    from pipeline.study.tables import quality_line, selection_line, selection_rows

    save_selection(str(tmp_path / "selection.png"), [str(s) for s in shards],
                   q.load_scores(scored, "realism"), "realism", result, [0.25])
    assert (tmp_path / "selection.png").stat().st_size > 1000
    line = quality_line({"quality": result})
    assert line.startswith("Generated-set quality (pixel-space, 30 generated vs 30 real")
    assert f"precision {result['precision']:.3f}" in line
    rows = selection_rows(plan(_with(config, KEEP)), 2000, "realism")
    assert rows == [{"strategy": "adainf", "generated_keep": 0.5, "score": "realism",
                     "kept": 1000, "dropped": 1000}]
    assert "adainf keeps 0.5 (1000 kept, 1000 dropped" in selection_line(rows)
