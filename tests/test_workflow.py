"""The Snakemake workflow: dry runs of the presets and profiles, and one real end-to-end run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import io

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(*args, cwd, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_cifar10_preset_builds_the_full_dag(tmp_path):
    r = snakemake("-n", "--configfile", str(REPO / "configs" / "cifar10.yaml"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    # 1M images in shards of 50k; a pretrained generator, so no train_generator job;
    # 4 methods × (none/vanilla/adainf + random_init) encoders, each linearly evaluated
    assert counts["sample"] == 20
    assert "train_generator" not in counts
    assert counts["pretrain"] == 16 and counts["linear_eval"] == 16
    # Inception statistics per shard plus the real reference, merged by one fid job
    assert counts["fid_stats"] == 21 and counts["fid"] == 1
    assert "--model google/ddpm-cifar10-32" in snakemake(
        "-n", "-p", "--configfile", str(REPO / "configs" / "cifar10.yaml"), cwd=tmp_path).stdout


@pytest.mark.parametrize("profile", ["workstation", "slurm"])
def test_profiles_dry_run(tmp_path, profile):
    r = snakemake("-n", "--profile", str(REPO / "profiles" / profile), "--configfile",
                  str(REPO / "configs" / "cifar10.yaml"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout)["sample"] == 20


@pytest.mark.e2e
def test_tiny_config_end_to_end(tmp_path):
    r = snakemake("--cores", "2", "--configfile", str(TINY), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    runs = {(x["method"], x["strategy"]): x for x in summary["runs"]}
    assert set(runs) == {("simclr", s) for s in ("none", "vanilla", "adainf", "random_init")}
    assert all(0 <= x["linear_top1"] <= 100 for x in runs.values())
    assert runs["simclr", "adainf"]["dup"] == 10 and runs["simclr", "adainf"]["num_generated"] == 48
    assert runs["simclr", "none"]["num_generated"] == 0
    assert summary["fid"]["features"] == "pixels" and summary["fid"]["num_generated"] == 48

    shards = sorted((tmp_path / "results" / "samples").glob("shard_*.npz"))
    assert [len(io.load_images(s)[0]) for s in shards] == [20, 20, 8]
    assert (tmp_path / "results" / "samples.png").stat().st_size > 0
    assert (tmp_path / "logs" / "pretrain" / "simclr_adainf.log").exists()

    again = snakemake("--cores", "2", "--configfile", str(TINY), "-n", cwd=tmp_path)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_killed_stage_leaves_no_finished_output(tmp_path):
    """SIGKILL in the middle of training: the generator folder must not exist afterwards."""
    images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    io.save_images(tmp_path / "real.npz", images, np.zeros(32, np.int64))
    out = tmp_path / "generator"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train_generator", "--real", str(tmp_path / "real.npz"),
         "--out", str(out), "--steps", "100000", "--channels", "8", "16", "--batch-size", "4",
         "--device", "cpu", "--threads", "1"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    # wait until the training loop is running (its progress bar appears), then kill
    deadline = time.time() + 120
    seen = ""
    while "train generator" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    assert "train generator" in seen
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("real.npz",)]
    assert all(name.startswith(".generator.") and name.endswith(".tmp") for name in leftovers)


def test_run_stops_before_any_job_when_samples_cannot_fit_on_disk(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(TINY.read_text().replace("num_images: 48", "num_images: 100000000000")
                    .replace("shard_size: 20", "shard_size: 1000000000"))
    r = snakemake("--cores", "1", "--configfile", str(huge), cwd=tmp_path)
    assert r.returncode != 0
    assert "not enough disk space" in r.stdout + r.stderr
    assert not (tmp_path / "results" / "real").exists()  # no job ran
