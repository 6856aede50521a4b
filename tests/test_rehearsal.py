"""bench/rehearsal.py's inputs are in the formats the real loaders read: torchvision's CIFAR10
(through the run's md5 relaxation), diffusers' pipeline folder with google/ddpm-cifar10-32's
exact configs, pytorch-fid's Inception from TORCH_HOME's cache, the authors' npz. The whole
rehearsal is a bench/ command (minutes of CPU): `.ci/run` runs it after the suite; its plan is
checked here through `bench/gpu.py --all --smoke` (tests/test_bench_gpu.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from support.snakemake import REPO

SPEC = importlib.util.spec_from_file_location("rehearsal", REPO / "bench" / "rehearsal.py")
rehearsal = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(rehearsal)


def test_torchvision_reads_the_cifar10_pickles_in_the_runs_environment(tmp_path):
    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (13, 4))
    rehearsal.write_cifar10_pickles(tmp_path, train, np.arange(13) % 10, test, [3, 1, 4, 1])
    read = ("from torchvision.datasets import CIFAR10; import numpy as np, sys; "
            "tr, te = (CIFAR10(sys.argv[1], train=t) for t in (True, False)); "
            "np.savez(sys.argv[2], tr=tr.data, try_=tr.targets, te=te.data, tey=te.targets, "
            "classes=tr.classes)")
    env = {**os.environ, **rehearsal.run_environment(tmp_path)}
    out = tmp_path / "read.npz"
    r = subprocess.run([sys.executable, "-c", read, str(tmp_path), str(out)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = np.load(out)
    np.testing.assert_array_equal(got["tr"], train)  # HWC, channels in order, all five batches
    np.testing.assert_array_equal(got["try_"], np.arange(13) % 10)
    np.testing.assert_array_equal(got["te"], test)
    assert list(got["tey"]) == [3, 1, 4, 1] and got["classes"][0] == "airplane"
    # without the relaxation (in this process) torchvision refuses the synthetic files
    from torchvision.datasets import CIFAR10

    with pytest.raises(RuntimeError, match="corrupted"):
        CIFAR10(str(tmp_path), train=True)


def test_generator_folder_has_the_hub_models_configs(tmp_path):
    from pipeline.generation.unet import load_generator

    rehearsal.save_ddpm_cifar10_like(tmp_path / "gen")
    unet, scheduler = load_generator(str(tmp_path / "gen"))
    # google/ddpm-cifar10-32's unet/config.json and scheduler_config.json, restated
    assert {k: unet.config[k] for k in ("sample_size", "block_out_channels", "layers_per_block",
                                        "down_block_types", "up_block_types", "norm_eps",
                                        "downsample_padding", "flip_sin_to_cos", "freq_shift",
                                        "attention_head_dim")} == {
        "sample_size": 32, "block_out_channels": [128, 256, 256, 256], "layers_per_block": 2,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        "norm_eps": 1e-6, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
        "attention_head_dim": None}
    assert (scheduler["beta_schedule"], scheduler["beta_end"], scheduler["variance_type"],
            scheduler["clip_sample"]) == ("linear", 0.02, "fixed_large", True)
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6, 1) == 35.7


def test_random_inception_loads_from_torch_home_at_2048_dims(tmp_path, monkeypatch):
    from pipeline.evaluation.frechet import inception_features, inception_model
    from pipeline.core.io import sha256_file

    path = rehearsal.write_random_inception(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, sha = inception_model("cpu", 2048)  # fid.weights null: the torch.hub cache
    assert sha == sha256_file(path)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        features = inception_features(model, images, 2, "cpu")
    assert features.shape == (2, 2048)
    # of order one (not the ~1e-7 of uncalibrated random weights) and not all alike
    assert 0.01 < np.abs(features).mean() < 1000 and np.abs(features[0] - features[1]).max() > 1e-3
    # the preset's fetch step keeps them in the run's environment (its sha256 check relaxed to
    # "exists", as torchvision's md5 check is); outside it, they fail the check and go aside
    fetch = [sys.executable, "-m", "pipeline.fetch", "inception", "--out", str(path)]
    env = {**os.environ, **rehearsal.run_environment(tmp_path)}
    r = subprocess.run([*fetch, "--record", str(tmp_path / "r.json")], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and path.is_file(), r.stderr[-2000:]
    r = subprocess.run([*fetch, "--record", str(tmp_path / "r2.json"), "--url", "file:///none-"
                        + path.name], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and not path.exists() and path.with_name(path.name + ".corrupt").exists()


def test_authors_npz_format(tmp_path):
    from pipeline.data.npz_source import image_shape, npz_files

    path = rehearsal.write_authors_npz(tmp_path / "edm.npz", 25)
    with np.load(path) as f:
        assert sorted(f.files) == ["image", "label"]
        assert f["image"].dtype == np.uint8 and f["image"].shape == (25, 32, 32, 3)
        assert f["label"].dtype == np.int64
        assert list(f["label"]) == sorted(np.arange(25) % 10)  # class ids, sorted by class
    assert image_shape(npz_files(path)) == (25, 32, 32, 3)


def test_plan_check_names_what_is_wrong():
    stdout = ("Building DAG of jobs...\nJob stats:\njob             count\n------------  -------\n"
              "fid                 1\nfid_stats           3\ninit_encoder        4\n"
              "linear_eval        32\npretrain           12\nreport              1\n"
              "sample              2\ntotal              55\n\nReasons:\n")
    jobs = rehearsal.planned_jobs(stdout)
    assert jobs["linear_eval"] == 32 and sum(jobs.values()) == 55 and "total" not in jobs
    rehearsal.check_plan(jobs)
    with pytest.raises(AssertionError, match="pretrain"):
        rehearsal.check_plan({**jobs, "pretrain": 3})


def test_plan_check_of_the_authors_data_preset_wants_the_cut_and_no_sampling():
    jobs = {"cut_npz": 1, "fid_stats": 3, "pack": 2, "fid": 1, "init_encoder": 1, "pretrain": 3,
            "linear_eval": 8, "report": 1}
    rehearsal.check_plan(jobs, methods=1, authors_data=True)
    with pytest.raises(AssertionError, match="sample"):  # a sampling job: the file was not used
        rehearsal.check_plan({**jobs, "sample": 2}, methods=1, authors_data=True)
    with pytest.raises(AssertionError, match="cut_npz"):
        rehearsal.check_plan({**jobs, "cut_npz": 0}, methods=1, authors_data=True)


def _summary(cells):
    """summary.json as pipeline/report.py writes it, reduced to its cells' keys checked here."""
    return {"cells": [{"method": m, "strategy": s, "protocol": p, "n": 1, "top1_mean": top1}
                      for (m, s, p), top1 in cells.items()]}


def test_summary_check_wants_every_planned_cell_with_a_numeric_top1():
    methods = ["simclr", "mocov2plus", "byol", "barlow"]
    # written out here, not taken from rehearsal.planned_cells: the test states the preset's plan
    complete = {(m, s, p): 10.0 + i for i, (m, s, p) in enumerate(
        (m, s, p) for m in methods for s in ["none", "vanilla", "adainf", "random_init"]
        for p in ["online", "offline", "features"] if (s, p) != ("random_init", "online"))}
    assert len(complete) == 4 * (3 * 3 + 2)
    rehearsal.check_summary(_summary(complete))
    missing = {k: v for k, v in complete.items() if k != ("byol", "adainf", "offline")}
    with pytest.raises(AssertionError, match="byol/adainf/offline"):
        rehearsal.check_summary(_summary(missing))
    with pytest.raises(AssertionError, match="barlow/random_init/features"):
        rehearsal.check_summary(_summary({**complete, ("barlow", "random_init", "features"): None}))
    with pytest.raises(AssertionError, match="simclr/none/online"):  # a report without online
        rehearsal.check_summary(_summary({k: v for k, v in complete.items() if k[2] != "online"}))
    one = {k: v for k, v in complete.items() if k[0] == "simclr"}  # --methods simclr
    rehearsal.check_summary(_summary(one), methods=["simclr"])


def test_the_benchmarks_time_the_hub_models_architecture():
    """bench/sample.py (and so bench/gpu.py) builds google/ddpm-cifar10-32 from the same facts:
    it once left five settings at UNet2DModel's defaults (norm_eps, downsample_padding,
    flip_sin_to_cos, freq_shift, attention_head_dim 8: 32 attention heads instead of one)."""
    spec = importlib.util.spec_from_file_location("bench_sample", REPO / "bench" / "sample.py")
    bench_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_sample)
    from pipeline.generation.unet import DDPM_CIFAR10_32_UNET

    assert bench_sample.ARCHS["ddpm-cifar10-32"] is DDPM_CIFAR10_32_UNET
