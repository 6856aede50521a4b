"""Tests of pipeline.dag.job_params: which settings a job's tracked params carry."""

from __future__ import annotations

import copy
import inspect
import shlex
from pathlib import Path

import pytest

from support.config import load_config
from pipeline.study.design import RANDOM_INIT, plan
from pipeline.dag.job_params import (
    fetch_generator_args, fetch_real_args, fid_stats_args, opts, pretrain_args,
    pretrain_untracked_args, report_args, sample_args, settings, untracked,
)

ROOT = Path(__file__).resolve().parents[1]


def _changed(config, section, key, value):
    c = copy.deepcopy(config)
    c[section][key] = value
    return c


def _pretrain(config, strategy="adainf"):
    return pretrain_args(config, plan(config), "simclr", strategy, 0)


@pytest.mark.parametrize("key,value", [("lr", 0.004), ("steps", 300), ("warmup_steps", 3),
                                       ("method_args", {"simclr": {"proj_dim": 32}})])
def test_pretrain_settings_are_in_the_tracked_args(config, key, value):
    before = _pretrain(config)
    assert _pretrain(_changed(config, "pretrain", key, value)) != before
    # the untrained baseline depends on none of them
    assert _pretrain(_changed(config, "pretrain", key, value), RANDOM_INIT) == \
        _pretrain(config, RANDOM_INIT)


def test_strategy_and_online_probe_settings_are_tracked(config):
    before = _pretrain(config)
    c = copy.deepcopy(config)
    c["strategies"]["adainf"]["dup"] = 3
    assert "--dup 3" in _pretrain(c) and _pretrain(c) != before
    c = _changed(config, "linear_eval", "online", {"every": 50, "lr": 0.1})
    assert "--online-lr 0.1" in _pretrain(c)


def test_speed_settings_are_untracked(config):
    c = _changed(_changed(config, "pretrain", "checkpoint_every", 7), "sampling", "batch_size", 3)
    c["fid"]["batch_size"] = 5
    assert _pretrain(c) == _pretrain(config)
    assert sample_args(c) == sample_args(config) and fid_stats_args(c) == fid_stats_args(config)
    channels_last = " --channels-last" if config["pretrain"]["channels_last"] else ""
    assert pretrain_untracked_args(c) == "--checkpoint-every 7" + channels_last
    # Snakemake leaves a param out of its rerun check when it is a function of `input`
    assert "input" in inspect.signature(untracked(1)).parameters


def test_settings_are_key_sorted_at_every_level_without_the_untracked_keys():
    a = settings({"b": 1, "a": {"y": 2, "x": 3}, "download": True}, without=("download",))
    b = settings({"a": {"x": 3, "y": 2}, "b": 1, "download": False}, without=("download",))
    assert repr(a) == repr(b) == "{'a': {'x': 3, 'y': 2}, 'b': 1}"  # what Snakemake compares


def test_generated_labels_subset_seed_and_method_augmentation_reach_only_their_jobs(config):
    """generator.labels keep: the flag on the cells with generated images and an online probe;
    num_generated: its subset's seed with it; method_augmentation: that method's preset."""
    assert "--keep-generated-labels" not in _pretrain(config)
    keep = copy.deepcopy(config)
    keep["generator"]["labels"] = "keep"
    assert "--keep-generated-labels" in _pretrain(keep)
    assert _pretrain(keep, "none") == _pretrain(config, "none")
    keep["linear_eval"]["protocols"] = ["offline"]  # real-only protocols: nothing to change
    offline = copy.deepcopy(config)
    offline["linear_eval"]["protocols"] = ["offline"]
    assert _pretrain(keep) == _pretrain(offline)
    sub = copy.deepcopy(config)
    sub["strategies"]["adainf"]["num_generated"] = 500
    assert "--num-generated 500 --generated-subset-seed 0" in _pretrain(sub)
    assert "--generated-subset-seed" not in _pretrain(config)
    moco = copy.deepcopy(config)
    moco["pretrain"]["method_augmentation"] = {"mocov2plus": {"standard": "mild"}}
    args = lambda c, m, v: pretrain_args(c, plan(c), m, v, 0)  # noqa: E731
    assert "--augmentation mild" in args(moco, "mocov2plus", "none")
    assert "--augmentation weak" in args(moco, "mocov2plus", "adainf")
    assert args(moco, "simclr", "none") == args(config, "simclr", "none")
    # BYOL and Barlow Twins: the asymmetric preset they train, by its own name
    assert "--augmentation asym_weak" in args(config, "byol", "adainf")
    assert "--augmentation asym_standard" in args(config, "barlow", "none")


def test_the_tracked_augmentation_is_the_one_the_stage_builds():
    """Every cell of configs/cifar10.yaml (merged over config.yaml as --configfile merges): the
    pretrain job's --augmentation (a tracked param) names the preset the stage builds its two
    views from, asymmetric (solarisation on view 2 only) for BYOL and Barlow Twins."""
    from pipeline.pretrain import parse_args, run_config
    from pipeline.vocab.augmentation import PRESET_VIEWS

    config = load_config(ROOT / "configs" / "cifar10.yaml")
    design = plan(config)
    cells = {(m, s) for m, s, _ in design.cells() if s != RANDOM_INIT}
    assert len(cells) == 12  # 4 methods × none, vanilla, adainf
    for method, strategy in sorted(cells):
        words = shlex.split(opts(pretrain_args(config, design, method, strategy, 0),
                                 pretrain_untracked_args(config)))
        tracked = words[words.index("--augmentation") + 1]
        args = parse_args([*words, "--real", "r", "--out", "o.pt", "--history", "h.csv",
                           "--method", method, "--strategy", strategy, "--seed", "0",
                           "--device", "cpu", "--threads", "1", "--log-every", "1"])
        _, built, aug_params = run_config(args)
        assert built == tracked, (method, strategy)
        assert aug_params == PRESET_VIEWS[tracked], (method, strategy)  # the preset's, unchanged
        asymmetric = method in ("byol", "barlow")
        assert (aug_params[0] != aug_params[1]) == asymmetric, (method, strategy)
    assert "--augmentation asym_weak" in pretrain_args(config, design, "byol", "adainf", 0)
    assert "--augmentation asym_weak" in pretrain_args(config, design, "barlow", "adainf", 0)
    assert "--augmentation mild" in pretrain_args(config, design, "mocov2plus", "none", 0)


def test_fetch_and_report_options_are_passed_only_when_set(config):
    config["generator"].update(model="org/my model", revision=None)
    assert fetch_generator_args(config) == "--model 'org/my model'"
    config["generator"]["revision"] = "abc123"
    assert fetch_generator_args(config) == "--model 'org/my model' --revision abc123"
    config["real"].update(source="cifar100", root="data/cifar")
    assert fetch_real_args(config) == "--source cifar100 --root data/cifar"
    assert report_args(search_rounds=[], generator_record=[]) == ""
    assert report_args("o.png", ["r0.json", "r1.json"], "s.png", ["g.json"]) == (
        "--online-curves o.png --search-rounds r0.json r1.json --search-plot s.png"
        " --generator-record g.json")
