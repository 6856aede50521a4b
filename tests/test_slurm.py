"""The tiny end-to-end config through a real SLURM (profiles/slurm), as the README's cluster section.

Needs a scheduler: `.ci/slurm-setup` installs and starts a one-node SLURM (Debian's packages,
with slurmdbd accounting). Under CI (CI=true) the test runs that script and fails if SLURM
cannot be brought up; elsewhere it runs only where that test cluster is already up. Marked
`heavy`, so outside `pytest -n 3`: `CI=true pytest -m heavy tests/test_slurm.py` runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.dag.run_lock import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
TINY = "tests/configs/tiny.yaml"
# every rule, with one trained strategy: fewer jobs to wait for
CONFIG = ["--configfile", TINY, "tests/configs/tiny_slurm.yaml"]
# The README's commands, run from the repository root.
SLURM = ["--profile", "profiles/slurm", "--profile", "tests/profiles/slurm-cpu", *CONFIG]
LOCAL = ["--cores", "2", *CONFIG]
CLUSTER = "adainf"  # the ClusterName of .ci/slurm-setup's cluster
# The rules that ask for a GPU (workflow/rules: `resources: gpu=` above 0): profiles/slurm sends
# them to its GPU partition (tests/profiles/slurm-cpu: `gpu`), every other job to the CPU one.
GPU_RULES = {"train_generator", "sample", "fid_stats", "pretrain", "linear_eval", "search_train",
             "search_select", "auto_pretrain"}

# heavy: minutes of wall, mostly waiting on the scheduler's job starts and polls, which the
# suite's 5-minute budget cannot hold; CI runs it after the suite (`-m "compile or bench or heavy"`).
pytestmark = [pytest.mark.e2e, pytest.mark.heavy]


def sh(*cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def cluster_up() -> bool:
    try:
        conf = sh("scontrol", "show", "config", timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return conf.returncode == 0 and re.search(rf"ClusterName\s*=\s*{CLUSTER}\b", conf.stdout) is not None


@pytest.fixture(scope="module")
def slurm():
    if os.environ.get("CI", "").lower() == "true":
        r = subprocess.run(["bash", str(REPO / ".ci" / "slurm-setup")], capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, f"could not bring up SLURM:\n{r.stdout}\n{r.stderr}"
    if not cluster_up():
        pytest.skip("no test SLURM cluster here (run .ci/slurm-setup as root, or set CI=true)")


def snakemake(*args, directory, log=None, timeout=600):
    cmd = [sys.executable, "-m", "snakemake", *args, "--directory", str(directory)]
    if log is None:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    with open(log, "w") as f:
        return subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, text=True)


def job_counts(dry_run_output: str) -> Counter:
    """The 'Job stats' table of a dry run, as {rule: count}, without the target rule `all`."""
    lines = dry_run_output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats")) + 3
    counts = Counter()
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("all", None)
    return counts


def run_id(log: Path, proc: subprocess.Popen, timeout=120) -> str:
    """The SLURM run ID the plugin gives every job of one invocation as its job name."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"SLURM run ID: (\S+)", log.read_text())
        if m:
            return m.group(1)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError("no SLURM run ID in the log:\n" + log.read_text()[-3000:])


def jobs_of(run: str, *more: str) -> list[tuple[str, ...]]:
    """(job id, comment = rule_NAME[_wildcards_...], state, *more fields) of every job of a
    run, from sacct."""
    fields = ",".join(["JobID", "Comment", "State", *more])
    r = sh("sacct", "-X", "-n", "-P", "-S", "2000-01-01", "--name", run, "-o", fields)
    assert r.returncode == 0, r.stderr
    return [tuple(line.split("|")[:3 + len(more)]) for line in r.stdout.splitlines() if line]


def rule_of(comment: str) -> str:
    return re.match(r"rule_(.+?)(_wildcards_.*)?$", comment).group(1)


def running_job(run: str, prefix: str, proc, log, exclude=(), timeout=300) -> tuple[str, str]:
    """Wait until a job of the run whose comment starts with prefix is RUNNING: (id, comment)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = sh("squeue", "-h", "--name", run, "-t", "RUNNING", "-o", "%i|%k")
        for line in r.stdout.split():
            job, comment = line.split("|", 1)
            if comment.startswith(prefix) and job not in exclude:
                return job, comment
        assert proc.poll() is None, "the run ended first:\n" + log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no {prefix} job running after {timeout} s")


# --- outputs: equal up to timings ----------------------------------------------------------

def untimed(x):
    """JSON-like data without wall-clock entries ("seconds", "*_seconds") and without a shard
    manifest's `made_by` (the record of the machine and code that made it, and a digest of a
    generator whose files hold its training time)."""
    if isinstance(x, dict):
        return {k: untimed(v) for k, v in x.items()
                if k not in ("seconds", "made_by") and not str(k).endswith("_seconds")}
    if isinstance(x, (list, tuple)):
        return [untimed(v) for v in x]
    return x


def same_array(a, b) -> bool:
    if a.dtype.kind == "U" and a.ndim == 0:  # JSON metadata stored in an npz
        try:
            return untimed(json.loads(str(a))) == untimed(json.loads(str(b)))
        except ValueError:
            pass
    return a.dtype == b.dtype and np.array_equal(a, b)


def same_torch(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return False
        a, b = untimed(a), untimed(b)
        return a.keys() == b.keys() and all(same_torch(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_torch, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and same_array(a, b)
    return a == b


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".npz":
        with np.load(a) as x, np.load(b) as y:
            return set(x.files) == set(y.files) and all(same_array(x[k], y[k]) for k in x.files)
    if a.suffix == ".npy":
        return same_array(np.load(a), np.load(b))
    if a.suffix == ".json":
        return untimed(json.loads(a.read_text())) == untimed(json.loads(b.read_text()))
    if a.suffix == ".pt":
        import torch

        return same_torch(torch.load(a, weights_only=False), torch.load(b, weights_only=False))
    return a.read_bytes() == b.read_bytes()


# a run's own records, not its results: logs, timings, live curves (event files named by time),
# the output_dir's lock file (which process holds it), the outputs' checksum records
# (NAME.record.json: sha256 of files that hold their timings, the machine that made them) and
# the cache of their checks (.records/: file times)
RUN_RECORDS = {"logs", "benchmarks", "tensorboard", "wandb", ".records"}


def output_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.name not in (".snakemake_timestamp", LOCK_NAME)
            and not p.name.endswith(".record.json")
            and p.relative_to(root).parts[0] not in RUN_RECORDS}


def assert_same_outputs(a: Path, b: Path):
    files = output_files(a)
    assert files and files == output_files(b)
    assert [f for f in sorted(files) if not same_file(a / f, b / f)] == []


# --- the test --------------------------------------------------------------------------------

def test_tiny_config_through_slurm_with_a_cancelled_shard(slurm, tmp_path):
    out = yaml.safe_load((REPO / TINY).read_text())["output_dir"]
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    # the local reference runs meanwhile: SLURM's job start-up and polling leave cores idle
    local = snakemake(*LOCAL, directory=local_dir, log=tmp_path / "local.log")
    procs, runs = [local], []
    try:
        dry = snakemake(*SLURM, "-n", directory=slurm_dir)
        assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
        expected = job_counts(dry.stdout)
        assert expected["sample"] >= 2
        gpu_rules = {rule for rule, gpus in re.findall(
            r"^rule (\w+):\n(?:    .*\n)*?    resources: .*\bgpu=(\d+)", dry.stdout, re.M)
            if int(gpus)}
        assert not gpu_rules, f"set gpu: 0 for {gpu_rules} in tests/profiles/slurm-cpu"

        # 1. Submit; cancel a running sampling job (scancel), then its retry: the profile
        # retries once, then the failure is reported and the jobs that do not need it finish.
        log1 = tmp_path / "slurm1.log"
        first = snakemake(*SLURM, directory=slurm_dir, log=log1)
        procs.append(first)
        run1 = run_id(log1, first)
        runs.append(run1)
        job, shard = running_job(run1, "rule_sample_", first, log1)
        assert sh("scancel", job).returncode == 0
        retry, _ = running_job(run1, shard, first, log1, exclude=(job,))
        assert sh("scancel", retry).returncode == 0
        assert first.wait(timeout=600) != 0
        text1 = log1.read_text()
        assert "Error in rule sample" in text1 and "CANCELLED" in text1, text1[-3000:]
        jobs1 = jobs_of(run1)
        assert [(j, s.split()[0]) for j, c, s in jobs1 if c == shard] == [(job, "CANCELLED"),
                                                                           (retry, "CANCELLED")]
        # SLURM's output of a failed job is kept where docs/cluster.md says
        number = shard.removeprefix("rule_sample_wildcards_")
        assert (slurm_dir / ".snakemake" / "slurm_logs" / "rule_sample" / number
                / f"{retry}.log").is_file()

        # 2. A second invocation (the same command) submits only what is missing: the
        # cancelled shard and what depends on it.
        done1 = Counter(rule_of(c) for _, c, s in jobs1 if s == "COMPLETED")
        missing = expected - done1
        assert missing["sample"] == 1 and missing["pretrain"] and not missing["train_generator"]
        log2 = tmp_path / "slurm2.log"
        second = snakemake(*SLURM, directory=slurm_dir, log=log2)
        procs.append(second)
        run2 = run_id(log2, second)
        runs.append(run2)
        assert second.wait(timeout=600) == 0, log2.read_text()[-3000:]
        jobs2 = jobs_of(run2)
        assert all(s == "COMPLETED" for _, _, s in jobs2), jobs2
        # so every job of the workflow ran through the scheduler, once to completion
        assert done1 + Counter(rule_of(c) for _, c, _ in jobs2) == expected
        assert [c for _, c, _ in jobs2 if c.startswith("rule_sample_")] == [shard]
        # every job on the partition the profile names: the GPU rules' own, the rest the CPU one
        partitions = {}
        for run in runs:
            for _, comment, _, partition in jobs_of(run, "Partition"):
                partitions.setdefault(rule_of(comment), set()).add(partition)
        gpu = {rule for rule in partitions if rule in GPU_RULES}
        assert {r: p for r, p in partitions.items() if r not in gpu} == \
            {r: {"main"} for r in partitions if r not in gpu}
        assert {r: partitions[r] for r in gpu} == {r: {"gpu"} for r in gpu}
        assert {"prepare_real", "pack", "fid", "report", "init_encoder"} <= set(partitions)
        assert {"sample", "pretrain", "linear_eval"} <= gpu

        assert local.wait(timeout=600) == 0, (tmp_path / "local.log").read_text()[-3000:]
    finally:  # nothing of a failed test keeps running
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for run in runs:
            sh("scancel", "--name", run)
    assert_same_outputs(local_dir / out, slurm_dir / out)
