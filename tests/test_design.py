"""The study's design: cells, sweep strategies and evaluation files from the config."""

from __future__ import annotations

import pytest

from pipeline.dag.paths import WorkflowPaths
from pipeline.study.design import Design, plan

STRATEGIES = {"none": {"dup": 1, "generated": False, "augmentation": "standard"},
              "adainf": {"dup": 10, "generated": True, "augmentation": "weak"},
              "wide": {"dup": 1, "generated": True, "augmentation": "weak", "crop_min_scale": 0.5}}


def config(sweeps=(), seeds=(0,), protocols=("features",), strategies=("none", "adainf")):
    return {"strategies": STRATEGIES,
            "experiments": {"methods": ["simclr", "byol"], "strategies": list(strategies),
                            "seeds": list(seeds), "sweeps": list(sweeps)},
            "linear_eval": {"protocols": list(protocols)}}


def test_methods_strategies_seeds_and_random_init():
    d = plan(config(seeds=[0, 3]))
    assert d.strategies == ["none", "adainf", "random_init"]
    assert len(d.cells()) == 2 * 3 * 2
    assert ("byol", "random_init", 3) in d.cells()
    assert d.settings("random_init") == {"dup": 1, "generated": False, "augmentation": "standard"}


def test_a_sweep_value_equal_to_the_strategys_own_reuses_its_cell():
    sweeps = [{"strategy": "adainf", "setting": "crop_min_scale", "values": [0.08, 0.2, 0.5]},
              {"strategy": "adainf", "setting": "dup", "values": [1, 10]},
              {"strategy": "adainf", "setting": "jitter_strength", "values": [0.5, 1.0]},
              {"strategy": "wide", "setting": "crop_min_scale", "values": [0.2, 0.5]}]
    d = plan(config(sweeps))
    assert [s.strategies for s in d.sweeps] == [
        ["adainf+crop_min_scale=0.08", "adainf", "adainf+crop_min_scale=0.5"],  # weak preset: 0.2
        ["adainf+dup=1", "adainf"],
        ["adainf+jitter_strength=0.5", "adainf"],  # strength 1 = the preset's own
        ["wide+crop_min_scale=0.2", "wide"],  # wide sets its own 0.5
    ]
    assert d.settings("adainf+crop_min_scale=0.5") == {**STRATEGIES["adainf"], "crop_min_scale": 0.5}
    assert d.settings("adainf+dup=1")["dup"] == 1
    # wide is swept but not a table column: trained for the sweep only
    assert "wide" in d.trained and "wide" not in d.strategies
    assert len(d.trained) == 2 + 2 + 1 + 1 + 2


def test_adding_a_sweep_value_keeps_every_other_cell():
    before = plan(config([{"strategy": "adainf", "setting": "crop_min_scale", "values": [0.2, 0.5]}]))
    after = plan(config([{"strategy": "adainf", "setting": "crop_min_scale",
                          "values": [0.08, 0.2, 0.5]}], seeds=[0, 1]))
    assert set(before.cells()) < set(after.cells())
    assert set(after.cells()) - set(before.cells()) == (
        {(m, "adainf+crop_min_scale=0.08", s) for m in ("simclr", "byol") for s in (0, 1)}
        | {(m, v, 1) for m in ("simclr", "byol")
           for v in ("none", "adainf", "adainf+crop_min_scale=0.5", "random_init")})
    assert all(before.settings(v) == after.settings(v) for _, v, _ in before.cells())


def test_online_probe_is_not_evaluated_on_random_init():
    d = plan(config(protocols=["online", "features"]))
    evals = d.evaluations()
    assert ("simclr", "random_init", 0, "features") in evals
    assert ("simclr", "random_init", 0, "online") not in evals
    assert len(evals) == 2 * 3 * 2 - 2


def test_result_paths():
    assert WorkflowPaths({"output_dir": "out"}).result("simclr", "adainf", 1, "online") == \
        "out/pretrain/simclr/adainf/seed1/online.json"
    assert WorkflowPaths({"output_dir": "out"}).result("simclr", "adainf+dup=3", 0, "offline") == \
        "out/linear/simclr/adainf+dup=3/seed0/offline.json"


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="'strong'"):
        plan(config(strategies=["none", "strong"]))
    with pytest.raises(ValueError, match="'missing'"):
        plan(config([{"strategy": "missing", "setting": "dup", "values": [2]}]))


def test_round_trip_through_a_dict():
    d = plan(config([{"strategy": "adainf", "setting": "dup", "values": [1, 10]}], seeds=[0, 1],
                    protocols=["offline", "online"]))
    again = Design.from_dict(d.to_dict())
    assert again == d and again.protocols == ["offline", "online"]


def test_auto_is_a_cell_without_fixed_settings_or_online_probe():
    d = plan(config(protocols=("online", "offline"), strategies=("none", "auto")))
    assert d.auto and d.strategies == ["none", "auto", "random_init"]
    assert "auto" not in d.trained and ("simclr", "auto", 0) in d.cells()
    # the online probe reads the test split, which the search must not
    assert ("simclr", "auto", 0, "offline") in d.evaluations()
    assert ("simclr", "auto", 0, "online") not in d.evaluations()
    assert Design.from_dict(d.to_dict()) == d
    with pytest.raises(ValueError, match="'auto'"):  # it has no settings to sweep
        plan(config(strategies=("auto",),
                    sweeps=[{"strategy": "auto", "setting": "dup", "values": [1]}]))
