"""bench/gpu.py --all --smoke (the lent-GPU command at smoke size) runs every section to completion
on CPU at tiny size; the preset's rehearsal is planned there (snakemake -n, its jobs checked).
Its pieces, in the default suite: the peak table, the verdicts against issue 21's goals, and
--profile's helpers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "gpu.py")
gpu = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gpu)


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H200 NVL", 835.0), ("NVIDIA H200", 989.4),  # an NVL card is not scored against 989
    ("NVIDIA H100 NVL", 835.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("cpu", None)])
def test_bf16_peak_takes_the_most_specific_name(name, peak):
    assert gpu.bf16_peak(name) == peak


def _figures(fraction, vs_pipeline, sample_min, fid_min, samples_per_s, vs_loader):
    return {"sampling": {"fraction_of_peak": fraction, "vs_ddpmpipeline": vs_pipeline,
                         "minutes_per_million": sample_min},
            "fid": {"rows": [{"precision": "fp32", "minutes_per_million": fid_min,
                              "fid_delta_vs_fp32": 0.0}]},
            "pretrain": {"samples_per_s": {"ours": samples_per_s}, "ours_vs_dataloader": vs_loader}}


def test_verdicts_hold_issue_21s_goals():
    """Sampling ≥ 40 % of bf16 peak and ≥ 50× DDPMPipeline per image, 1M images ≤ 25 min, FID
    statistics of 1M ≤ 2 min, SimCLR ResNet-18 ≥ 25k samples/s and ≥ 3× the DataLoader: each
    figure just inside its goal is met, just outside it is not."""
    inside = gpu.verdicts(_figures(0.41, 51.0, 24.0, 1.9, 26_000.0, 3.1))
    outside = gpu.verdicts(_figures(0.39, 49.0, 26.0, 2.1, 24_000.0, 2.9))
    assert len(inside) == len(outside) == 6
    assert all(v["met"] for v in inside.values()), inside
    assert not any(v["met"] for v in outside.values()), outside
    assert {v["section"] for v in inside.values()} == {"sampling", "fid", "pretrain"}
    assert "sampling ≥ 50× DDPMPipeline per image" in inside
    assert gpu.missed(outside, "fid") == ["FID stats 1M ≤ 2 min (fp32)"]


def test_profile_of_a_missed_section_names_where_the_time_goes(tmp_path, monkeypatch):
    """--profile: a section that missed its target runs again under torch.profiler; its top ops
    (here the one matrix product the section does) land in a file and in the figures."""
    def section(s, device):
        with gpu.part("matmul: ours"):
            a = torch.randn(256, 256)
            for _ in range(20):
                a = a @ a / 256
        return {}

    monkeypatch.setitem(gpu.SECTIONS, "matmul", section)
    result = {"errors": {}, "targets": {"matmul ≥ 2": {"value": 1.0, "target": 2.0, "met": False,
                                                      "section": "matmul"}}}
    gpu.profile_missed(result, "matmul", {}, torch.device("cpu"), tmp_path / "profile.txt")
    assert result["errors"] == {}
    top = result["profiles"]["matmul"]
    assert top["file"] == "profile.txt" and top["ops"][0]["op"] in ("aten::mm", "aten::matmul")
    assert top["ops"][0]["calls"] >= 20 and 0 < top["ops"][0]["share"] <= 1
    text = (tmp_path / "profile.txt").read_text()
    assert text.startswith("bench: matmul: ours: ") and "aten::mm" in text
    assert any(line.startswith("profile   matmul: aten::") for line in gpu.report_lines(
        {"device": "cpu", "torch": "", "size": "smoke", "seconds": 1.0, **result}))


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
    per_sampler = result["sampling"]["per_sampler"]
    assert set(per_sampler) == {"ddpm", "ddim", "edm", "dpmsolver++", "unipc", "deis",
                                "euler_karras", "heun_karras"}
    assert per_sampler["dpmsolver++"]["evaluations"] == 20
    assert per_sampler["heun_karras"]["evaluations"] == 19
    assert all(row["images_per_s"] > 0 for row in per_sampler.values())
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
