"""bench/gpu.py --all --smoke (the lent-GPU command at smoke size) runs every section to completion
on CPU at tiny size; the preset's rehearsal is planned there (snakemake -n, its jobs checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.bench
@pytest.mark.e2e
def test_gpu_bench_smoke_writes_figures_and_targets(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--all", "--smoke", "--device",
                        "cpu", "--out-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "gpu-cpu-smoke.json").read_text())
    assert (tmp_path / "gpu-cpu-smoke.txt").read_text().startswith("device: cpu")
    assert result["sampling"]["evaluations"] == 35 and result["sampling"]["images_per_s"] > 0
    assert [row["precision"] for row in result["fid"]["rows"]] == ["fp32", "bf16"]  # no TF32 on CPU
    assert result["fid"]["dims"] == 64 and result["fid"]["images"] == 2
    assert set(result["pretrain"]["samples_per_s"]) == {"ours", "dataloader", "model_step_only"}
    assert result["memory"]["data_bytes"] == (48 + 64) * 32 * 32 * 3
    ddp = result["ddp"]
    assert ddp["process_group"] and ddp["backend"] == "gloo" and ddp["checkpoint_step"] == 2
    assert ddp["resumed_steps_contiguous"]
    assert "pretraining ≥ 3× DataLoader" in result["targets"]
    jobs = result["rehearsal"]["planned_jobs"]  # bench/rehearsal.py's check_plan passed
    assert jobs["pretrain"] == 12 and jobs["linear_eval"] == 32 and jobs["sample"] == 2
    assert result["errors"] == {} and list(result["seconds_per_section"])[-1] == "rehearsal"
