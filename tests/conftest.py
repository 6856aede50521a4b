"""Shared tiny fixtures: a tiny diffusers UNet, its scheduler config, small uint8 image files."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from diffusers import DDPMScheduler, UNet2DModel

from pipeline.core.io import save_images
from pipeline.dag import job_params
from pipeline.pretraining.loop import pretrain


def make_tiny_unet(seed: int = 0) -> UNet2DModel:
    """An 8×8 RGB UNet with two levels (8, 16 channels): a few thousand parameters."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()


def make_images(n: int, size: int = 8, seed: int = 0, high: int = 256) -> np.ndarray:
    """n random uint8 size×size×3 images with values in [0, high)."""
    return np.random.default_rng(seed).integers(0, high, (n, size, size, 3), dtype=np.uint8)


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


class Killed(Exception):
    """What a job killed mid-run looks like to the test."""


def pretrain_killed_after(step: int, *args, **kwargs) -> None:
    """pretrain(*args, **kwargs), killed as soon as `step` has finished (and been checkpointed
    when the config checkpoints at that step)."""
    def kill(s):
        if s == step:
            raise Killed

    with pytest.raises(Killed):
        pretrain(*args, callback=kill, **kwargs)


REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TINY_STUDY = REPO / "tests" / "configs" / "tiny_study.yaml"


class SnakemakeServer:
    """tests/snakemake_server.py, started once per test process: it runs each Snakemake command
    in a child forked after Snakemake's imports (~1.3 s of CPU less per command)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "snakemake_server.py"),
                                      str(REPO)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0)  # unbuffered: select() sees every answer

    def run(self, argv: list[str], cwd, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": dict(os.environ),
                       "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            pid = int(self._answer(60))
            try:
                code = int(self._answer(timeout))
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)  # Snakemake and its jobs
                self._answer(60)
                raise subprocess.TimeoutExpired(["snakemake", *argv], timeout) from None
            return subprocess.CompletedProcess(["snakemake", *argv], code, out.read_text(),
                                               err.read_text())

    def _answer(self, timeout: float) -> bytes:
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired("snakemake_server", timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/snakemake_server.py ended (exit {self.proc.wait()})")
        return line

    def close(self):
        self.proc.stdin.close()  # the server's loop ends
        self.proc.wait(timeout=60)


_server: SnakemakeServer | None = None


def pytest_sessionfinish(session):
    if _server is not None:
        _server.close()


def run_snakemake(*args, cwd, timeout=900) -> subprocess.CompletedProcess:
    """`python -m snakemake -s workflow/Snakefile ARGS` in `cwd`: its exit status and output."""
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = SnakemakeServer()
    return _server.run(["-s", str(SNAKEFILE), *args], cwd, timeout)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The tiny config with two seeds, a crop sweep and two protocols, run end to end once."""
    cwd = tmp_path_factory.mktemp("tiny_study")
    r = run_snakemake("--cores", "2", "--configfile", str(TINY), str(TINY_STUDY), cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return cwd


# The options the workflow passes to every job of a stage are required on its command line
# (config.yaml holds their defaults; tests/test_defaults.py checks both). These are config.yaml's,
# built as the workflow builds them (pipeline.dag.job_params) where it has a function for them.
# Tests calling a stage put these first and their own options after them (argparse keeps the
# last), so a test that needs another value states it.
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def _words(*options: str) -> list[str]:
    return shlex.split(job_params.opts(*options))


# The tests compute on the CPU, whatever config.yaml's device (auto).
RUNTIME_ARGS = ["--device", "cpu", "--threads", str(CONFIG["threads"]["default"])]
# sample_args holds sampling.edm's options too
SAMPLE_ARGS = [*_words(job_params.sample_args(CONFIG), job_params.sample_untracked_args(CONFIG)),
               *RUNTIME_ARGS]
FID_STATS_ARGS = [*_words(job_params.fid_stats_args(CONFIG),
                          job_params.fid_stats_untracked_args(CONFIG)), *RUNTIME_ARGS]
# The first method and seed of the study, strategy none's data and config.yaml's schedule and
# precision; not pretrain.optimizer, lr and weight_decay: the tests train with the method's own.
PRETRAIN_ARGS = [
    *_words(job_params.opt("--method", CONFIG["experiments"]["methods"][0]),
            job_params.opt("--seed", CONFIG["experiments"]["seeds"][0]),
            *(job_params.opt(f"--{k}", CONFIG["strategies"]["none"][k])
              for k in ("dup", "augmentation")),
            *(job_params.opt(f"--{k.replace('_', '-')}", CONFIG["pretrain"][k])
              for k in ("warmup_steps", "precision", "checkpoint_every")),
            job_params.opt("--log-every", CONFIG["logging"]["log_every"])),
    *RUNTIME_ARGS]
# The features protocol, which the tests run (config.yaml's protocols: online, offline).
LINEAR_ARGS = [
    "--protocol", "features",
    *_words(job_params.opt("--seed", CONFIG["experiments"]["seeds"][0]),
            *(job_params.opt(f"--{k.replace('_', '-')}", v)
              for k, v in CONFIG["linear_eval"]["features"].items())),
    *RUNTIME_ARGS]


@pytest.fixture(scope="session")
def cifar10_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """`snakemake -n -p --configfile configs/cifar10.yaml`, planned once for the whole session
    (its job counts and commands are checked in test_workflow.py and test_preset.py)."""
    cwd = tmp_path_factory.mktemp("cifar10_dry_run")
    r = run_snakemake("-n", "-p", "--configfile", str(REPO / "configs" / "cifar10.yaml"), cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


# --- the suite in parallel: `pytest -n 3` with `--dist loadgroup` (pyproject.toml) -------------

def pytest_configure(config):
    """An xdist worker computes with one intra-op thread: three workers (and their jobs) share
    2 cores, where more threads per process only spin waiting for each other. (Most tests set
    one thread anyway, for the rest of their process, as every stage's `--threads 1` does.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def _shared_fixtures(item) -> list[str]:
    """The fixtures of this suite that outlive a test (module or session scope) and that the
    item uses."""
    return [name for name, defs in item._fixtureinfo.name2fixturedefs.items()
            if defs[-1].scope != "function" and defs[-1].baseid.startswith("tests")]


def _rank(item) -> int:
    """Where a test's work unit starts: the SLURM run first (it waits for minutes on the
    scheduler, mostly idle), then the tiny study every dependent test waits for, then the
    subprocess-heavy tests, then the rest to fill the gaps."""
    if item.path.name == "test_slurm.py":
        return 0
    group = item.get_closest_marker("xdist_group")
    if group and group.args == ("slurm",):
        return 1
    if "tiny_study" in _shared_fixtures(item):
        return 2
    return 3 if any(item.get_closest_marker(m) for m in ("e2e", "slow", "compile")) else 4


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(items):
    """Tests that share an expensive fixture run on one worker (each worker would build its own
    copy), and units start in _rank's order (pyproject.toml turns off xdist's reordering)."""
    root: dict[str, str] = {}

    def find(name: str) -> str:
        while root.setdefault(name, name) != name:
            name = root[name]
        return name

    for item in items:  # tests linked through any shared fixture form one group
        names = _shared_fixtures(item)
        for name in names[1:]:
            root[find(name)] = find(names[0])
    for item in items:
        names = _shared_fixtures(item)
        if names and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(find(names[0])))
    items.sort(key=_rank)
