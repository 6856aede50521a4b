"""The data-scarce preset (configs/cifar10-scarce.yaml over configs/cifar10.yaml): 500 real images
a class, a generator trained here at Ho et al.'s architecture, 500k generated images; its DAG as
Snakemake plans it, the real subset, and the rehearsal's plan check."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import yaml

from support.snakemake import REPO, run_snakemake
from pipeline import prepare_real
from pipeline.core import io
from pipeline.data.subsets import per_class_subset

SCARCE = REPO / "configs" / "cifar10-scarce.yaml"
SPEC = importlib.util.spec_from_file_location("rehearsal", REPO / "bench" / "rehearsal.py")
rehearsal = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(rehearsal)


def test_per_class_subset_is_balanced_seeded_and_nested_by_seed():
    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(0).permutation(300)]
    rows = per_class_subset(labels, 5, seed=3)
    assert np.all(np.diff(rows) > 0) and np.bincount(labels[rows]).tolist() == [5] * 10
    np.testing.assert_array_equal(per_class_subset(labels, 5, seed=3), rows)
    assert not np.array_equal(per_class_subset(labels, 5, seed=4), rows)
    with pytest.raises(ValueError, match="real.per_class 31: class 0 has only 30"):
        per_class_subset(labels, 31, seed=0)


def test_prepare_real_keeps_per_class_training_images_and_the_whole_test_split(tmp_path):
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    prepare_real.main(["--source", "digits", "--resolution", "8", "--test-fraction", "0.2",
                       "--seed", "0", "--per-class", "20", "--train-out", str(train),
                       "--test-out", str(test), "--device", "cpu", "--threads", "1"])
    _, y = io.load_images(train)
    _, ty = io.load_images(test)
    assert np.bincount(y).tolist() == [20] * 10 and len(ty) == 360


@pytest.fixture(scope="module")
def scarce_dry_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("scarce_dry_run")
    # README's command, as written there
    r = run_snakemake("-n", "-p", "--configfile", str(REPO / "configs" / "cifar10.yaml"),
                      str(SCARCE), "--profile", str(REPO / "profiles" / "workstation"), cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.slow
def test_the_scarce_presets_plan_and_commands(scarce_dry_run):
    """README's command, planned: the generator trained here on 500 images a class at Ho et al.'s
    architecture, 500k images in 10 shards, the four methods × three strategies."""
    jobs = rehearsal.planned_jobs(scarce_dry_run)
    assert jobs["train_generator"] == 1 and "fetch_generator" not in jobs
    assert jobs["sample"] == 10 and jobs["pretrain"] == 12 and jobs["init_encoder"] == 4
    lines = scarce_dry_run.splitlines()
    (prepare,) = [ln for ln in lines if "-m pipeline.prepare_real " in ln]
    assert "--per-class 500" in prepare
    (train,) = [shlex.split(ln) for ln in lines if "-m pipeline.train_generator " in ln]
    for flag, value in (("--architecture", "ho2020"), ("--lr", "0.0002"), ("--batch-size", "128"),
                        ("--grad-clip", "1.0"), ("--warmup-steps", "5000"),
                        ("--precision", "bf16"), ("--checkpoint-every", "5000")):
        assert train[train.index(flag) + 1] == value, flag
    samples = [ln for ln in lines if "-m pipeline.sample " in ln]
    assert all("--sampler dpmsolver++ --steps 20" in ln for ln in samples)
    assert sorted(int(re.search(r"--start (\d+)", ln).group(1)) for ln in samples) == \
        list(range(0, 500_000, 50_000))


def test_the_scarce_preset_states_its_evidence():
    text = SCARCE.read_text()
    config = yaml.safe_load(text)
    assert config["real"]["per_class"] == 500 and config["sampling"]["num_images"] == 500_000
    assert "rests on no measurement for this network" in text


def test_rehearsal_plan_of_the_scarce_preset_wants_the_generator_trained():
    jobs = {"prepare_real": 1, "train_generator": 1, "sample": 2, "fid_stats": 3, "pack": 2,
            "fid": 1, "init_encoder": 1, "pretrain": 3, "linear_eval": 8, "report": 1}
    rehearsal.check_plan(jobs, methods=1, scarce=True)
    with pytest.raises(AssertionError, match="train_generator"):
        rehearsal.check_plan({**jobs, "train_generator": 0}, methods=1, scarce=True)
    with pytest.raises(AssertionError, match="fetch_generator"):
        rehearsal.check_plan({**jobs, "fetch_generator": 1}, methods=1, scarce=True)


@pytest.mark.slow
@pytest.mark.bench  # bench/rehearsal.py's plan (~20 s), before CI runs the script for real
def test_scarce_rehearsal_dry_run(tmp_path):
    """`python bench/rehearsal.py --scarce --methods simclr --dry-run`: the inputs made, the DAG
    planned and checked (the real run is .ci/run's)."""
    out = tmp_path / "figures.json"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "rehearsal.py"), "--scarce",
                        "--methods", "simclr", "--dry-run", "--work", str(tmp_path),
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads(out.read_text())["planned_jobs"]["train_generator"] == 1
    assert not (tmp_path / "generator").exists()  # the scarce preset trains its own
