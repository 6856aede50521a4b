"""Tests of the shared helpers in pipeline.core: precision by name and the uint8 image tensors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.core.runtime import PRECISIONS, autocast, precision_dtype
from pipeline.core.tensors import to_nchw

from support.snakemake import REPO


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                             ("fp16", torch.float16)])
def test_autocast_runs_a_linear_layer_in_the_precision_s_dtype(precision, dtype):
    layer = torch.nn.Linear(4, 3)
    with autocast(precision, "cpu"):
        assert layer(torch.randn(2, 4)).dtype == dtype
    assert layer(torch.randn(2, 4)).dtype == torch.float32  # and only inside the context
    assert precision_dtype(precision) == (None if precision == "fp32" else dtype)
    assert set(PRECISIONS) == {"fp32", "bf16", "fp16"}  # every name has its case above


def _stage(*args, cwd) -> str:
    """Run `python -X importtime -m pipeline.STAGE ...`; return its import log (stderr)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", *args], cwd=cwd, text=True,
                       capture_output=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stderr


@pytest.mark.slow
def test_the_numpy_only_stages_never_import_torch(tmp_path):
    """Preparing the digits, packing, and pixel FID statistics run without torch, whose import
    alone is about 2 s of CPU per job."""
    logs = [
        _stage("pipeline.prepare_real", "--source", "digits", "--resolution", "8",
               "--test-fraction", "0.2", "--seed", "0", "--train-out", "train.npz",
               "--test-out", "test.npz", "--device", "auto", "--threads", "1", cwd=tmp_path),
        _stage("pipeline.pack", "--part", "real", "--inputs", "train.npz", "--out", "real",
               "--record", "real.json",
               cwd=tmp_path),
        _stage("pipeline.fid_stats", "--images", "train.npz", "--out", "real.stats.npz",
               "--features", "pixels", "--dims", "2048", "--precision", "fp32",
               "--batch-size", "200", "--device", "auto", "--threads", "1", cwd=tmp_path),
    ]
    for log in logs:
        imported = {line.rsplit("|", 1)[-1].strip() for line in log.splitlines()
                    if line.startswith("import time:")}
        assert "numpy" in imported and "torch" not in imported
    assert (tmp_path / "real" / "manifest.json").exists()
    assert (tmp_path / "real.stats.npz").exists()


def test_to_nchw_keeps_uint8_or_scales_to_float():
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    x = to_nchw(images)
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 3, 5)
    assert torch.equal(x[1, 2], torch.from_numpy(images[1, :, :, 2]))
    unit = to_nchw(images, "cpu", scale=255)
    assert unit.dtype == torch.float32 and float(unit.max()) <= 1.0
    torch.testing.assert_close(unit, x.float() / 255, rtol=0, atol=0)
    model = to_nchw(images, scale=127.5, shift=1.0)
    torch.testing.assert_close(model, x.float() / 127.5 - 1, rtol=0, atol=0)
    assert float(model.min()) >= -1.0


def _run_stage(main, monkeypatch, capsys) -> tuple[str, str]:
    """runtime.run(main) as a stage runs it: (the exit message, what went to stderr)."""
    from pipeline.core import runtime

    monkeypatch.setattr(sys, "argv", ["/x/pipeline/stage.py"])
    with pytest.raises(SystemExit) as e:
        runtime.run(main)
    return str(e.value.code), capsys.readouterr().err


def test_a_library_error_is_one_line_with_its_traceback_above_it(monkeypatch, capsys):
    """diffusers' page-long OSError: the console (the log's last line) gets one short line; the
    traceback stays above it, in the job's log."""
    def main():
        raise OSError("Cannot load model org/name: not cached\n" + "more detail\n" * 20
                      + "Please check out the root cause in the stacktrace above.")

    line, err = _run_stage(main, monkeypatch, capsys)
    assert line == "stage: OSError: Cannot load model org/name: not cached"
    assert "Traceback" in err and "root cause" in err


def test_a_user_error_is_its_line_with_the_cause_s_traceback(monkeypatch, capsys):
    from pipeline.core.errors import UserError

    def main():
        try:
            raise EOFError("Ran out of input")
        except EOFError as e:
            raise UserError("weights w.pth: damaged; delete it") from e

    line, err = _run_stage(main, monkeypatch, capsys)
    assert line == "stage: weights w.pth: damaged; delete it"
    assert "EOFError: Ran out of input" in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from pipeline.core import runtime

    with pytest.raises(KeyError):
        runtime.run(lambda: {}["x"])


def test_a_generator_folder_that_does_not_load_is_one_line_naming_it(tmp_path, monkeypatch,
                                                                     capsys):
    from support.stage_args import SAMPLE_ARGS
    from pipeline import sample

    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "config.json").write_text("{}")  # no weights beside it
    line, err = _run_stage(lambda: sample.main(
        ["--model", str(tmp_path / "gen"), "--out", str(tmp_path / "s.json"), "--start", "0",
         "--count", "2", *SAMPLE_ARGS]), monkeypatch, capsys)
    assert line.startswith(f"stage: cannot load the generator '{tmp_path / 'gen'}' (")
    assert "set generator.model to a folder saved with save_pretrained" in line
    assert "\n" not in line and "Traceback" in err
    assert not (tmp_path / "s.json").exists()
