"""Tests of pipeline.dag's plan of the files and per-job choices the rules wire, without Snakemake:
paths (the files), inputs (from outside output_dir), launch, report_plan and the disk check."""

from __future__ import annotations

import copy
import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from support.config import load_config
from support.snakemake import TINY
from pipeline.core import io
from pipeline.dag.config_check import ConfigError, check_disk_space
from pipeline.dag.launch import pretrain_launcher, threads_for
from pipeline.dag.paths import WorkflowPaths
from pipeline.dag.report_plan import design_file, sampler_description
from pipeline.study.design import RANDOM_INIT, Design, plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path):
    """Here the tiny test config (48 images in shards of 20) merged over config.yaml as Snakemake
    merges a --configfile, writing under tmp_path."""
    c = load_config(TINY)
    c["output_dir"] = f"{tmp_path}/results/"
    return c


def _paths(config):
    return WorkflowPaths(config, plan(config))


def test_threads_fall_back_to_the_default_then_one(config):
    assert threads_for(config, "train_generator") == 1
    config["threads"] = {"default": 3, "sample": 2}
    assert threads_for(config, "sample") == 2 and threads_for(config, "fid") == 3
    config["threads"] = {}
    assert threads_for(config, "fid") == 1


def test_pretrain_launcher_uses_torchrun_only_for_several_processes(config):
    assert pretrain_launcher(config, "adainf") == ""
    config["pretrain"]["processes"] = 4
    assert pretrain_launcher(config, "adainf") == "torchrun --standalone --nproc_per_node 4 --no-python"
    assert pretrain_launcher(config, RANDOM_INIT) == ""


def test_shards_cover_the_images_once(config):
    p = _paths(config)
    assert p.out == f"{config['output_dir'].rstrip('/')}"
    assert p.num_generated() == 48 and p.num_shards() == 3
    assert p.shard_files() == [f"{p.out}/samples/shard_{i:05d}.json" for i in range(3)]
    assert [p.shard_range(f"{i:05d}") for i in range(3)] == [
        {"start": 0, "count": 20}, {"start": 20, "count": 20}, {"start": 40, "count": 8}]
    assert p.shard_data("o/samples/shard_00002.json") == [
        "o/samples/shard_00002.images.npy", "o/samples/shard_00002.labels.npy"]
    assert p.all_shard_data() == [f for m in p.shard_files() for f in p.shard_data(m)]
    assert p.shard_fid_stats()[-1] == f"{p.out}/fid/shard_00002.stats.npz"


def test_npz_source_generates_at_most_its_files_images(config, tmp_path):
    io.save_images(tmp_path / "gen.npz", np.zeros((30, 8, 8, 3), np.uint8), np.zeros(30, np.int64))
    config["generator"] = {**config["generator"], "source": "npz", "path": str(tmp_path / "gen.npz")}
    p = _paths(config)
    assert p.num_generated() == 30 and p.num_shards() == 2
    assert p.shard_range(1) == {"start": 20, "count": 10}
    assert p.generator_inputs() == []
    config["sampling"]["num_images"] = 25
    assert _paths(config).num_generated() == 25


def test_generator_is_the_trained_folder_or_the_given_model(config):
    p = _paths(config)
    assert p.generator_model() == f"{p.out}/generator" and p.generator_inputs() == [p.generator_model()]
    config["generator"] = {**config["generator"], "source": "pretrained", "model": "google/ddpm-cifar10-32"}
    p = _paths(config)
    # a hub model is sampled from the folder rule fetch_generator fills
    fetched = f"{p.out}/assets/generator"
    assert p.generator_model() == fetched
    assert p.generator_inputs() == [fetched, f"{p.out}/assets/generator.json"]
    assert sampler_description(config)["generator"] == "pretrained google/ddpm-cifar10-32"
    (tmp := Path(p.out) / "mine").mkdir(parents=True)
    config["generator"]["model"] = str(tmp)  # a local folder: no fetch, its content record
    p = _paths(config)
    assert p.generator_model() == str(tmp) and p.inputs.fetched() == {}
    assert p.generator_inputs() == [str(tmp), f"{p.out}/inputs/generator.json"]
    assert p.inputs.sources()["generator"] == str(tmp)


def test_assets_are_fetched_only_where_not_local(config, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", "/th")
    config["real"] = {**config["real"], "source": "cifar10", "root": "data/c", "download": True}
    config["fid"] = {**config["fid"], "features": "inception", "weights": None}
    p = _paths(config)
    assert set(p.inputs.fetched()) == {"real", "inception"}
    assert p.inputs.real() == [f"{p.out}/assets/real.json"]
    assert p.inputs.weights() == "/th/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth"
    assert p.fid_stats_inputs("real")["weights"] == f"{p.out}/assets/inception.json"
    config["real"]["download"] = False
    config["fid"]["weights"] = "my.pth"
    p = _paths(config)
    assert p.inputs.fetched() == {} and p.inputs.weights() == "my.pth"
    # the local data by content (pipeline.core.records.input_record)
    assert p.inputs.real() == [f"{p.out}/inputs/real.json"]
    assert p.inputs.sources()["real"] == "data/c"


def test_fid_inputs(config):
    p = _paths(config)
    assert p.fid_stats_inputs("real") == {"images": f"{p.out}/real/train.npz"}
    assert p.fid_stats_inputs("shard_00001") == {
        "images": f"{p.out}/samples/shard_00001.json",
        "data": p.shard_data(f"{p.out}/samples/shard_00001.json"),
        "real_quality": f"{p.out}/fid/real.quality.npz"}  # the shard's scores are against it
    assert p.fid_quality_job("real") == {}
    assert p.fid_quality_job("shard_00001") == {
        "start": p.shard_range("00001")["start"], "total": p.num_generated(),
        "real_quality": f"{p.out}/fid/real.quality.npz"}
    assert p.real_fid_reference() == f"{p.out}/fid/real.stats.npz"
    config["fid"]["reference"] = "/refs/cifar10.npz"
    assert _paths(config).real_fid_reference() == "/refs/cifar10.npz"


def test_pretrain_inputs_follow_the_variant_and_the_online_probe(config):
    p = _paths(config)
    real, generated = f"{p.out}/dataset/real", f"{p.out}/dataset/generated"
    assert p.pretrain_inputs("none") == {"real": real}
    assert p.pretrain_inputs("adainf") == {"real": real, "generated": generated}
    config["linear_eval"]["protocols"] = ["online", "features"]
    p = _paths(config)
    assert p.online
    assert p.pretrain_inputs("vanilla") == {"real": real, "generated": generated,
                                            "test": f"{p.out}/real/test.npz"}
    assert p.pretrain_inputs(RANDOM_INIT) == {"real": real}  # nothing to probe


def test_files_that_rules_all_and_the_report_ask_for(config):
    config["experiments"]["seeds"] = [0]  # one seed: the lists below name each file
    p = _paths(config)
    cells = [("simclr", v, 0) for v in ("none", "vanilla", "adainf", RANDOM_INIT)]
    assert p.evaluation_files() == [f"{p.out}/linear/simclr/{v}/seed0/features.json"
                                    for _, v, _ in cells]
    assert p.history_files() == [f"{p.out}/pretrain/simclr/{v}/seed0/history.csv"
                                 for v in ("none", "vanilla", "adainf")]
    files = p.intermediate_files()
    assert f"{p.out}/dataset/generated" in files and f"{p.out}/fid.json" in files
    for m in p.shard_files():
        assert {m, *p.shard_data(m)} <= set(files)
    assert f"{p.out}/fid/shard_00002.stats.npz" in files
    assert f"{p.out}/pretrain/simclr/{RANDOM_INIT}/seed0/encoder.pt" in files
    config["experiments"]["strategies"] = ["none"]  # no strategy reads generated images
    assert f"{p.out}/dataset/generated" not in _paths(config).intermediate_files()


def test_rule_patterns_name_the_files_the_plan_names(config):
    """The output patterns the rules take from here, filled in, are the files the consumers ask
    for (the cells' and the FID files: rule all and the report; the search's: SearchPlan)."""
    p = _paths(config)
    wc = {"method": "simclr", "seed": 0, "round": 1, "strategy": "cand"}
    files = {k: v.format(**wc) for k, v in p.search_files().items()}
    assert files == {"state": f"{p.out}/search/simclr/seed0/round1/cand/state.pt",
                     "encoder": f"{p.out}/search/simclr/seed0/round1/cand/encoder.pt",
                     "encoder_record":
                         f"{p.out}/search/simclr/seed0/round1/cand/encoder.pt.record.json",
                     "history": f"{p.out}/search/simclr/seed0/round1/cand/history.csv",
                     "meta": f"{p.out}/search/simclr/seed0/round1/cand/history.json",
                     "history_record":
                         f"{p.out}/search/simclr/seed0/round1/cand/history.csv.record.json",
                     "meta_record":
                         f"{p.out}/search/simclr/seed0/round1/cand/history.json.record.json"}
    assert p.search_choice().format(**wc) == f"{p.out}/search/simclr/seed0/round1.json"
    cell = {k: v.format(method="simclr", strategy="none", seed=0)
            for k, v in p.cell_files().items()}
    assert cell["history"] in p.history_files() and cell["encoder"] in p.intermediate_files()
    # every output with a record beside it is checked when a run starts (the sweep)
    assert {cell["encoder"], cell["history"], cell["history"].replace(".csv", ".json"),
            p.fid_result()} <= set(p.recorded_outputs())
    config["linear_eval"]["protocols"] = ["online", "features"]
    online = _paths(config).result("simclr", "none", 0, "online")
    assert online in _paths(config).recorded_outputs()  # the default's headline accuracy
    assert p.fid_stats("shard_00002") in p.shard_fid_stats()
    assert p.fid_quality("real") == p.real_quality()
    assert p.fid_result() in p.intermediate_files()
    assert p.generator_model() == p.generator() == f"{p.out}/generator"
    assert p.report_file("summary") == f"{p.out}/reports/default/summary.json"
    config["experiments"]["sweeps"] = [{"strategy": "adainf", "setting": "dup",
                                        "values": [1, 2]}]
    assert _paths(config).sweep_plots() == [f"{p.out}/reports/default/sweeps/adainf_dup.png"]
    # a second config sharing the output_dir reports into its own folder
    study = _paths({**config, "name": "study"})
    assert study.report_file("summary") == f"{p.out}/reports/study/summary.json"
    assert study.fid_result() == p.fid_result()  # and shares the jobs


def test_disk_check_counts_only_missing_shards(config, monkeypatch):
    usage = namedtuple("usage", "total used free")
    # 3 shards of 20 8×8 images: 20 × (192 + 8) bytes each, 12 kB in all; 10 kB free
    monkeypatch.setattr("shutil.disk_usage", lambda folder: usage(0, 0, 10_000))
    p = _paths(config)
    with pytest.raises(ConfigError, match="3 sample shards: not enough disk space"):
        check_disk_space(p)
    for manifest in p.shard_files()[:2]:  # two written: one missing shard fits
        Path(manifest).parent.mkdir(parents=True, exist_ok=True)
        Path(manifest).write_text("{}")
    check_disk_space(p)
    assert not Path(p.out, "design").exists()  # a check writes nothing


def test_design_file_is_named_by_its_content(config):
    p = _paths(config)
    path = design_file(p)
    spec = json.loads(Path(path).read_text())
    assert Design.from_dict(spec["design"]) == p.design
    assert spec["sampling"] == sampler_description(config)
    mtime = Path(path).stat().st_mtime_ns
    assert design_file(_paths(copy.deepcopy(config))) == path  # same design: same file,
    assert Path(path).stat().st_mtime_ns == mtime  # left as it is
    config["sampling"]["steps"] = 5  # the report states the sampler: a new file
    config2 = copy.deepcopy(config)
    config2["experiments"]["seeds"] = [0, 1]  # a new cell: a new file
    names = {path, design_file(_paths(config)), design_file(_paths(config2))}
    assert len(names) == 3 and all(Path(n).exists() for n in names)
