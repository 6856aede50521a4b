"""pipeline.core.gpu_slots on CPU with a fake GPU count: concurrent jobs never share a device."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# prints the devices it was given, then holds them until its stdin closes
HOLD = "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()"


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    return {**e, "PYTHONPATH": str(REPO), **extra}


def launcher(lock_dir, gpus, count, *extra):
    return [sys.executable, "-m", "pipeline.core.gpu_slots", "--gpus", str(gpus), "--count", str(count),
            "--lock-dir", str(lock_dir), *extra, "--"]


def hold(lock_dir, gpus, count, **kw):
    """Start a job that holds its devices; returns (process, the devices it got)."""
    p = subprocess.Popen(launcher(lock_dir, gpus, count, *kw.get("extra", ())) +
                         [sys.executable, "-c", HOLD], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    return p, p.stdout.readline().strip()


def run(lock_dir, gpus, count, code="import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']))",
        extra=(), **env_extra):
    return subprocess.run(launcher(lock_dir, gpus, count, *extra) + [sys.executable, "-c", code],
                          capture_output=True, text=True, env=env(**env_extra), timeout=60)


def release(p):
    p.stdin.close()
    p.wait(timeout=30)


def test_concurrent_jobs_get_different_devices_and_a_third_fails_clearly(tmp_path):
    a, dev_a = hold(tmp_path, 1, 2)
    b, dev_b = hold(tmp_path, 1, 2)
    try:
        assert {dev_a, dev_b} == {"0", "1"}
        third = run(tmp_path, 1, 2, extra=("--timeout", "0.5"))
        assert third.returncode != 0
        assert "no 1 free GPU(s) of 2" in third.stderr
    finally:
        release(a)
        release(b)


def test_a_waiting_job_gets_the_device_of_a_killed_one(tmp_path):
    a, dev_a = hold(tmp_path, 1, 1)
    assert dev_a == "0"
    waiting = subprocess.Popen(launcher(tmp_path, 1, 1) + [sys.executable, "-c", HOLD],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env())
    assert "waiting for 1 free GPU(s) of 1" in waiting.stderr.readline()
    a.send_signal(signal.SIGKILL)  # the kernel drops its locks
    a.wait()
    assert waiting.stdout.readline().strip() == "0"
    release(waiting)


def test_multi_gpu_job_takes_all_its_devices_or_none(tmp_path):
    a, dev_a = hold(tmp_path, 1, 3)
    try:
        assert dev_a == "0"
        assert run(tmp_path, 2, 3).stdout.strip() == "'1,2'"
        # while 0 is held, 3 devices cannot be had, and nothing stays locked by the attempt
        assert run(tmp_path, 3, 3, extra=("--timeout", "0.3")).returncode != 0
        assert run(tmp_path, 2, 3).stdout.strip() == "'1,2'"
    finally:
        release(a)


def test_no_gpu_chosen_devices_and_impossible_requests(tmp_path):
    assert run(tmp_path, 0, 2).stdout.strip() == "''"  # a CPU job sees no GPU
    # devices already chosen (by the user, or by SLURM) are left alone
    assert run(tmp_path, 1, 2, CUDA_VISIBLE_DEVICES="7").stdout.strip() == "'7'"
    unset = "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'))"
    assert run(tmp_path, 1, 2, code=unset, SLURM_JOB_ID="1").stdout.strip() == "None"
    assert run(tmp_path, 1, 0, code=unset).stdout.strip() == "None"  # no GPU here: runs on CPU
    too_many = run(tmp_path, 2, 1)
    assert too_many.returncode != 0 and "asks for 2 GPU(s), this machine has 1" in too_many.stderr
    # the count may come from the environment (no torch needed)
    r = subprocess.run([sys.executable, "-m", "pipeline.core.gpu_slots", "--gpus", "1", "--lock-dir",
                        str(tmp_path), "--", sys.executable, "-c",
                        "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                       capture_output=True, text=True, env=env(ADAINF_GPU_COUNT="1"), timeout=60)
    assert r.stdout.strip() == "0"
