"""The data-size axes (issue 15 item 5): num_generated (a seeded random subset of N generated
images, pipeline.data.dataset.generated_subset) and
real_fraction (a stratified fraction of the real split for pretraining), from the subset
functions through the design, the config checks, the tracked params and the pretrain stage to a
dry run over the finished tiny study."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from snakemake.utils import validate

from support.snakemake import TINY, TINY_STUDY, run_snakemake

from support.tiny import make_images
from pipeline import pretrain as pretrain_stage
from pipeline.core import io
from pipeline.dag.config_check import config_problems
from pipeline.dag.job_params import pretrain_args
from pipeline.data.dataset import load_packed, pack, write_shard
from pipeline.data.subsets import real_subset
from pipeline.study.design import plan
from pipeline.study.tables import tables
from test_training import TINY_ARGS
from test_workflow import job_counts
from pipeline.vocab.schema import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(SCHEMA_PATH)


# -- the subsets ---------------------------------------------------------------------------------

LABELS = np.repeat(np.arange(4), [40, 20, 10, 5])  # an unbalanced labelled set, sorted by class


def test_real_subset_is_stratified_and_sorted():
    rows = real_subset(LABELS, 0.2, seed=0)
    assert np.all(np.diff(rows) > 0)
    assert Counter(LABELS[rows].tolist()) == {0: 8, 1: 4, 2: 2, 3: 1}


def test_real_subset_is_deterministic_nested_and_seeded():
    a, b = real_subset(LABELS, 0.3, seed=1), real_subset(LABELS, 0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert set(real_subset(LABELS, 0.1, seed=1)) <= set(a) <= set(real_subset(LABELS, 0.6, seed=1))
    assert not np.array_equal(a, real_subset(LABELS, 0.3, seed=2))


def test_real_subset_keeps_every_class_and_all_at_one():
    assert set(LABELS[real_subset(LABELS, 0.01, seed=0)]) == {0, 1, 2, 3}  # one each at least
    np.testing.assert_array_equal(real_subset(LABELS, 1.0, seed=0), np.arange(len(LABELS)))
    with pytest.raises(ValueError, match="got 1.5"):
        real_subset(LABELS, 1.5, seed=0)


def test_load_packed_limit_is_the_first_images_by_global_index(tmp_path):
    """Three sample shards of 4 (global indices 0-3, 4-7, 8-11): the first 6 images read only
    the first two shards (the third may be missing) and equal a full read's first 6."""
    folder = tmp_path / "samples"
    shards = [folder / f"shard_{k:05d}.json" for k in range(3)]
    for k, manifest in enumerate(shards):
        write_shard(manifest, make_images(4, seed=k), np.full(4, -1))
    out = tmp_path / "generated"
    pack(out, "generated", [str(p) for p in shards])
    full, _ = load_packed(out)
    (folder / "shard_00002.images.npy").unlink()
    first, labels = load_packed(out, limit=6)
    np.testing.assert_array_equal(first, full[:6])
    assert labels.shape == (6,) and (labels == -1).all()
    with pytest.raises(ValueError, match="13 images asked for, the dataset holds 12"):
        load_packed(out, limit=13)


# -- the design, the config checks and the tracked params ------------------------------------------

def _with(config, sweeps=(), **strategy_settings):
    c = copy.deepcopy(config)
    for name, settings in strategy_settings.items():
        c["strategies"][name].update(settings)
    c["experiments"]["sweeps"] = list(sweeps)
    return c


def test_sweeps_of_the_data_sizes_expand_and_reuse_the_strategys_own_cell(config):
    total = config["sampling"]["num_images"]
    d = plan(_with(config, [
        {"strategy": "adainf", "setting": "num_generated", "values": [100, 1000, total]},
        {"strategy": "none", "setting": "real_fraction", "values": [0.25, 1.0]}]))
    assert [s.strategies for s in d.sweeps] == [
        ["adainf+num_generated=100", "adainf+num_generated=1000", "adainf"],  # null = all
        ["none+real_fraction=0.25", "none"]]
    assert d.settings("adainf+num_generated=100")["num_generated"] == 100
    # a count written as a float (YAML 1.0e+3) is passed as an integer
    d_float = plan(_with(config, [{"strategy": "adainf", "setting": "num_generated",
                                   "values": [1.0e+3]}]))
    assert repr(d_float.settings("adainf+num_generated=1000")["num_generated"]) == "1000"
    assert d.settings("none+real_fraction=0.25") == {**config["strategies"]["none"],
                                                     "real_fraction": 0.25}
    # a strategy that names its own subset: that value is its cell
    d = plan(_with(config, [{"strategy": "adainf", "setting": "num_generated",
                             "values": [500, 1000]}], adainf={"num_generated": 500}))
    assert d.sweeps[0].strategies == ["adainf", "adainf+num_generated=1000"]
    header = tables(d, [])[-1]["header"]
    assert header == ["method", "num_generated=500", "num_generated=1000"]


def test_data_sizes_are_tracked_and_all_means_unchanged(config):
    def args(c, strategy="adainf"):
        return pretrain_args(c, plan(c), "simclr", strategy, 0)

    before = args(config)
    some = args(_with(config, adainf={"num_generated": 100}))
    assert "--num-generated 100" in some and some != before
    part = args(_with(config, adainf={"real_fraction": 0.5}))
    assert f"--real-fraction 0.5 --real-subset-seed {config['real']['seed']}" in part
    # spelling out `all` keeps the encoder: num_images generated images, fraction 1
    total = config["sampling"]["num_images"]
    assert args(_with(config, adainf={"num_generated": total, "real_fraction": 1.0})) == before
    assert args(_with(config, adainf={"num_generated": None, "real_fraction": None})) == before
    # the sweep's strategy carries its value; the base strategy's args are untouched
    c = _with(config, [{"strategy": "none", "setting": "real_fraction", "values": [0.5]}])
    assert "--real-fraction 0.5" in args(c, "none+real_fraction=0.5")
    assert args(c, "none") == args(config, "none")


def _problems(config, **kw):
    c = _with(config, **kw)
    validate(c, SCHEMA)
    return config_problems(c)


@pytest.mark.parametrize("kw,line", [
    (dict(adainf={"num_generated": 7000}),
     "strategies.adainf: num_generated 7000 exceeds sampling.num_images 6000"),
    (dict(none={"num_generated": 10}), "strategies.none: num_generated 10 needs generated "
     "images, but strategy 'none' has generated: false"),
    (dict(sweeps=[{"strategy": "vanilla", "setting": "num_generated", "values": [10, 6001]}]),
     "experiments.sweeps[0].values: num_generated 6001 exceeds sampling.num_images 6000"),
    (dict(sweeps=[{"strategy": "vanilla", "setting": "num_generated", "values": [10.5]}]),
     "experiments.sweeps[0].values: num_generated must be a positive integer, got 10.5"),
    (dict(sweeps=[{"strategy": "none", "setting": "num_generated", "values": [10]}]),
     "experiments.sweeps[0].values: num_generated 10 needs generated images, but strategy "
     "'none' has generated: false"),
    (dict(sweeps=[{"strategy": "none", "setting": "real_fraction", "values": [0.5, 2]}]),
     "experiments.sweeps[0].values: real_fraction must be in (0, 1], got 2"),
])
def test_config_checks_name_the_bad_data_size(config, kw, line):
    assert _problems(config, **kw) == [line]


@pytest.mark.parametrize("settings,named", [({"real_fraction": 0}, "real_fraction"),
                                            ({"real_fraction": 1.5}, "real_fraction"),
                                            ({"num_generated": 0}, "num_generated")])
def test_schema_bounds_the_data_sizes(config, settings, named):
    with pytest.raises(Exception) as err:
        validate(_with(config, adainf=settings), SCHEMA)
    assert named in str(err.value)


@pytest.mark.parametrize("value,ok", [("0.5", True), ("1", True), ("0", False), ("1.5", False)])
def test_stage_parser_takes_the_schemas_real_fraction_bounds(value, ok, capsys):
    """Run by hand, pipeline.pretrain refuses what the schema refuses: its parser's type is the
    declared option's, bounded by the schema entry (no check of its own)."""
    args = [*TINY_ARGS, "--real", "r", "--out", "o.pt", "--history", "h.csv", "--steps", "1",
            "--strategy", "s", "--real-fraction", value, "--real-subset-seed", "0"]
    if ok:
        assert pretrain_stage.parse_args(args).real_fraction == float(value)
        return
    with pytest.raises(SystemExit):
        pretrain_stage.parse_args(args)
    assert f"argument --real-fraction: must be in (0, 1], got {value}" in capsys.readouterr().err


def test_valid_data_sizes_pass_the_checks(config):
    assert _problems(config, adainf={"num_generated": 2000, "real_fraction": 0.1}, sweeps=[
        {"strategy": "vanilla", "setting": "num_generated", "values": [1, 2000]},
        {"strategy": "none", "setting": "real_fraction", "values": [0.01, 1]}]) == []


# -- the pretrain stage ----------------------------------------------------------------------------

def test_pretrain_stage_trains_on_the_subsets(tmp_path):
    real_dir, gen_dir = tmp_path / "real", tmp_path / "generated"
    io.save_images(tmp_path / "real.npz", make_images(16, size=16), np.arange(16) % 3)
    pack(real_dir, "real", [str(tmp_path / "real.npz")])  # labels 0, 1, 2: 6, 5 and 5 images
    shards = [tmp_path / "samples" / f"shard_{k:05d}.json" for k in range(2)]
    for k, manifest in enumerate(shards):
        write_shard(manifest, make_images(6, size=16, seed=k + 1), np.full(6, -1))
    pack(gen_dir, "generated", [str(m) for m in shards])
    hist = tmp_path / "run" / "history.csv"
    pretrain_stage.main([*TINY_ARGS, "--real", str(real_dir), "--generated", str(gen_dir),
                         "--out", str(tmp_path / "run" / "encoder.pt"), "--history", str(hist),
                         "--strategy", "adainf+num_generated=5", "--steps", "1",
                         "--num-generated", "5", "--generated-subset-seed", "0",
                         "--real-fraction", "0.5",
                         "--real-subset-seed", "0"])
    meta = json.loads(hist.with_suffix(".json").read_text())
    assert meta["num_generated"] == 5 and meta["real_fraction"] == 0.5
    assert meta["num_real"] == 9  # round half of 6, 5, 5 per class: 3 + 3 + 3
    with pytest.raises(SystemExit, match="--num-generated 13: .* holds 12 generated images"):
        pretrain_stage.main([*TINY_ARGS, "--real", str(real_dir), "--generated", str(gen_dir),
                             "--out", str(tmp_path / "r2" / "encoder.pt"), "--history",
                             str(tmp_path / "r2" / "history.csv"), "--strategy", "x",
                             "--steps", "1", "--num-generated", "13",
                             "--generated-subset-seed", "0"])


# -- the workflow: a dry run over the finished tiny study (48 generated images) --------------------

# The study: none, vanilla, adainf, adainf+crop_min_scale=0.5, 2 seeds, online + offline protocols.
DATA_SIZE_RERUNS = {
    # adainf and its crop strategy take a subset: their 4 encoders and offline evaluations
    "num_generated": ("strategies: {adainf: {num_generated: 20}}",
                      {"pretrain": 4, "linear_eval": 4}),
    # the strategy spelling out all its images is the same run: nothing reruns
    "num_generated_all": ("strategies: {adainf: {num_generated: 48, real_fraction: 1.0}}", {}),
    "real_fraction": ("strategies: {none: {real_fraction: 0.5}}",
                      {"pretrain": 2, "linear_eval": 2}),
    # new sweeps: only their new values train (24 and 0.5; 48 and 1.0 are the strategies' own)
    "sweeps": ("experiments: {sweeps: [{strategy: adainf, setting: crop_min_scale, "
               "values: [0.2, 0.5]}, {strategy: vanilla, setting: num_generated, "
               "values: [24, 48]}, {strategy: none, setting: real_fraction, values: [0.5, 1.0]}]}",
               {"pretrain": 4, "linear_eval": 4}),
}


@pytest.mark.e2e
@pytest.mark.parametrize("change", DATA_SIZE_RERUNS)
def test_a_data_size_change_reruns_exactly_what_it_changes(tiny_study, tmp_path, change):
    text, expected = DATA_SIZE_RERUNS[change]
    (tmp_path / "change.yaml").write_text(text + "\n")
    r = run_snakemake("-n", "--configfile", str(TINY), str(TINY_STUDY),
                      str(tmp_path / "change.yaml"), cwd=tiny_study)
    assert r.returncode == 0, r.stdout + r.stderr
    if not expected:
        assert "Nothing to be done" in r.stdout + r.stderr, r.stdout
        return
    total = sum(expected.values()) + 2
    assert job_counts(r.stdout) == {**expected, "report": 1, "all": 1, "total": total}
