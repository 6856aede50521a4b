"""The suite's pytest fixtures and hooks; what they are built from lives in tests/support/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from pipeline.core.io import save_images
from support import scheduling
from support.config import load_config
from support.snakemake import REPO, TINY, TINY_STUDY, close_server, run_snakemake
from support.tiny import make_images, make_tiny_unet


@pytest.fixture
def config() -> dict:
    """config.yaml, validated: a fresh copy for each test, which may change it."""
    return load_config()


@pytest.fixture
def tiny_unet() -> UNet2DModel:
    return make_tiny_unet()


@pytest.fixture
def tiny_scheduler() -> DDPMScheduler:
    """A DDPM scheduler with few training timesteps, so that full ancestral sampling is cheap."""
    return DDPMScheduler(num_train_timesteps=20, beta_schedule="squaredcos_cap_v2")


@pytest.fixture
def tiny_npz(tmp_path):
    """An npz of 12 random 8×8 images with labels 0..9, in the project's format."""
    path = tmp_path / "tiny.npz"
    save_images(path, make_images(12), np.arange(12) % 10)
    return path


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The tiny config with two seeds, a crop sweep and two protocols, run end to end once.

    Its worker then runs every test that reads it, so this run is the suite's longest path: it
    runs 4 jobs at once (1 thread each) on the 2 cores, taking a larger share of them from the
    other workers' tests, which have time to spare."""
    cwd = tmp_path_factory.mktemp("tiny_study")
    r = run_snakemake("--cores", "4", "--configfile", str(TINY), str(TINY_STUDY), cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return cwd


@pytest.fixture(scope="session")
def cifar10_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """`snakemake -n -p --configfile configs/cifar10.yaml`, planned once for the whole session
    (its job counts and commands are checked in test_workflow.py and test_preset.py)."""
    cwd = tmp_path_factory.mktemp("cifar10_dry_run")
    r = run_snakemake("-n", "-p", "--configfile", str(REPO / "configs" / "cifar10.yaml"), cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture
def outcome(request):
    """For a test asserting a learning outcome (marked `kernels`): computes with
    KERNELS_THREADS intra-op threads (1 unless bench/kernels.py sets another) and returns
    `record(**values)`, which appends the measured values to KERNELS_OUTCOMES (a JSON-lines
    file, when bench/kernels.py sets it) so that the margins can be set from their spread over
    kernel selections and thread counts."""
    torch.set_num_threads(int(os.environ.get("KERNELS_THREADS", "1")))
    log = os.environ.get("KERNELS_OUTCOMES")

    def record(**values):
        if log:
            line = {"test": request.node.nodeid, "setting": os.environ.get("KERNELS_SETTING", ""),
                    **{k: float(v) for k, v in values.items()}}
            with open(log, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    return record


def pytest_configure(config):
    """An xdist worker computes with one intra-op thread: three workers (and their jobs) share
    2 cores, where more threads per process only spin waiting for each other. (Most tests set
    one thread anyway, for the rest of their process, as every stage's `--threads 1` does.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(items):
    """Tests that share an expensive fixture run on one worker (each worker would build its own
    copy), and units start in the order support/scheduling.py ranks them."""
    scheduling.group_and_order(items)


def pytest_sessionfinish(session):
    close_server()
