"""Pretraining reliability: checkpoint/resume, NaN stop, and DDP under gloo with 2 processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from support.killed import pretrain_killed_after

from support.stage_args import PRETRAIN_ARGS
from pipeline.pretraining.augment import view_params
from pipeline.pretraining.distributed import DistContext
from pipeline.pretraining.online_probe import OnlineProbe
from pipeline.pretraining.loop import PretrainConfig, pretrain

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(**kw):
    base = dict(widths=[8, 16], blocks=[1, 1], method="simclr", steps=6, batch_size=8,
                optimizer="sgd", lr=0.05, hparams={"proj_hidden": 16, "proj_dim": 8},
                dup=2, seed=3, log_every=2, warmup_steps=10, precision="fp32")
    return PretrainConfig(**{**base, **kw})


def data(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


CPU = DistContext(0, 1, torch.device("cpu"))


def new_probe():
    """An online probe on labels 0..3 of data(); evaluated at steps 3 and 6."""
    return OnlineProbe(np.arange(24) % 4, data(12, 5), np.arange(12) % 4, every=3, lr=2.0)


@pytest.mark.parametrize("method,with_probe", [("simclr", False), ("simclr", True),
                                               ("byol", True), ("mocov2plus", False)])
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, method, with_probe):
    torch.set_num_threads(1)
    kw = dict(method=method, checkpoint_every=2)
    if method != "simclr":
        kw["hparams"] = {"proj_hidden": 16, "proj_dim": 8, **({"queue_size": 16} if method == "mocov2plus" else {"pred_hidden": 16})}
    aug_params = view_params("standard")
    probes = [new_probe() if with_probe else None for _ in range(3)]
    straight_enc, straight = pretrain(tiny_cfg(**kw), aug_params, data(), data(10, 1), CPU,
                                      probe=probes[0])

    ckpt = tmp_path / "ckpt.pt"

    pretrain_killed_after(4, tiny_cfg(**kw), aug_params, data(), data(10, 1), CPU, checkpoint=ckpt,
                          probe=probes[1])
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    enc, resumed = pretrain(tiny_cfg(**kw), aug_params, data(), data(10, 1), CPU, checkpoint=ckpt,
                            probe=probes[2])
    assert [h["step"] for h in resumed] == list(range(1, 7))  # same count, no gap
    np.testing.assert_allclose([h["loss"] for h in resumed], [h["loss"] for h in straight],
                               rtol=1e-5)
    for a, b in zip(enc.state_dict().values(), straight_enc.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if with_probe:
        straight_probe, resumed_probe = probes[0], probes[2]
        assert [p["step"] for p in resumed_probe.curve] == [3, 6]  # step 3 came from before
        for a, b in zip(resumed_probe.curve, straight_probe.curve):
            assert a["step"] == b["step"]
            assert a["top1"] == pytest.approx(b["top1"]) and a["top5"] == pytest.approx(b["top5"])
        assert straight_probe.linear.weight.abs().sum() > 0
        for a, b in zip(resumed_probe.linear.parameters(), straight_probe.linear.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # (its momentum and schedule are the method optimiser's, checkpointed with it)


def _killed_at_2(ckpt, **kw):
    pretrain_killed_after(2, tiny_cfg(checkpoint_every=2, **kw), view_params("standard"), data(),
                          None, CPU, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == 2


@pytest.mark.parametrize("change", ["probe", "lr", "data"])
def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, caplog, change):
    """Resuming a checkpoint written under other settings (or data) starts fresh, with a log
    line, and gives the encoder of an uninterrupted run with the new settings."""
    torch.set_num_threads(1)
    ckpt = tmp_path / "ckpt.pt"
    _killed_at_2(ckpt)
    kw = {"lr": 0.01} if change == "lr" else {}
    real = data(seed=9) if change == "data" else data()
    make_probe = new_probe if change == "probe" else lambda: None
    with caplog.at_level("WARNING", logger="pipeline.pretraining.loop"):
        enc, history = pretrain(tiny_cfg(**kw), view_params("standard"), real, None, CPU,
                                checkpoint=ckpt, probe=make_probe())
    assert "starting fresh" in caplog.text
    straight, expected = pretrain(tiny_cfg(**kw), view_params("standard"), real, None, CPU,
                                  probe=make_probe())
    np.testing.assert_allclose([h["loss"] for h in history], [h["loss"] for h in expected],
                               rtol=1e-5)
    for a, b in zip(enc.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_checkpoint_interval_is_not_part_of_the_run(tmp_path, caplog):
    ckpt = tmp_path / "ckpt.pt"
    _killed_at_2(ckpt)
    with caplog.at_level("INFO", logger="pipeline.pretraining.loop"):
        _, history = pretrain(tiny_cfg(checkpoint_every=3), view_params("standard"), data(),
                              None, CPU, checkpoint=ckpt)
    assert "resumed from" in caplog.text and len(history) == 6


def test_a_finished_run_leaves_no_checkpoint_so_a_forced_rerun_trains(tmp_path):
    """`snakemake -R pretrain` after a finished run must train again, not resume at the end."""
    from pipeline import pretrain as stage
    from pipeline.data.dataset import pack
    from pipeline.core.io import save_images

    save_images(tmp_path / "real.npz", data(), np.arange(24) % 4)
    pack(tmp_path / "real", "real", [str(tmp_path / "real.npz")])
    ckpt = tmp_path / "run" / "checkpoint.pt"
    argv = [*PRETRAIN_ARGS, "--real", str(tmp_path / "real"), "--out", str(tmp_path / "run" / "encoder.pt"),
            "--history", str(tmp_path / "run" / "history.csv"), "--strategy", "none",
            "--widths", "8", "16", "--blocks", "1", "1", "--steps", "3", "--batch-size", "8",
            "--method-arg", "proj_hidden=16", "--method-arg", "proj_dim=8",
            "--checkpoint", str(ckpt), "--checkpoint-every", "2", "--device", "cpu"]
    stage.main(argv)
    assert not ckpt.exists()
    first = (tmp_path / "run" / "history.csv").read_text()
    stage.main(argv)  # the forced rerun
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == first.count("\n") == 4


def test_momentum_follows_the_authors_schedule(monkeypatch):
    """The k-th EMA update uses tau(k-1) (solo-learn's MomentumUpdater): tau_base first."""
    from pipeline.pretraining.methods import BYOL

    taus = []
    update = BYOL.momentum_update
    monkeypatch.setattr(BYOL, "momentum_update",
                        lambda self, step, total: taus.append(update(self, step, total)))
    cfg = tiny_cfg(method="byol", steps=3, hparams={"proj_hidden": 16, "proj_dim": 8,
                                                    "pred_hidden": 16})
    pretrain(cfg, view_params("asym_standard"), data(), None, CPU)
    assert taus[0] == pytest.approx(0.99) and len(taus) == 3
    assert taus[-1] < 1.0  # tau_final (1.0) would be the step after the last


def test_nan_loss_stops_with_the_step(monkeypatch):
    from pipeline.pretraining import methods as ssl_methods

    calls = {"n": 0}
    original = ssl_methods.SimCLR.forward

    def poisoned(self, x1, x2):
        calls["n"] += 1
        loss = original(self, x1, x2)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(ssl_methods.SimCLR, "forward", poisoned)
    with pytest.raises(FloatingPointError, match="at step 3"):
        pretrain(tiny_cfg(), view_params("standard"), data(), None, CPU)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_with_gloo():
    script = REPO / "tests" / "ddp_worker.py"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script), str(REPO)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "DDP-OK" in r.stdout


def test_stopped_and_resumed_from_another_file_equals_an_uninterrupted_run(tmp_path):
    """The auto search's rounds: stop at a step with the full run's schedules, then the next
    round resumes (not restarts) from that file into its own checkpoint and ends as a plain run."""
    torch.set_num_threads(1)
    aug_params = view_params("standard")
    straight_enc, straight = pretrain(tiny_cfg(), aug_params, data(), None, CPU)
    round0, round1 = tmp_path / "round0.pt", tmp_path / "round1.pt"
    _, first = pretrain(tiny_cfg(), aug_params, data(), None, CPU, checkpoint=round0, stop_at=2)
    assert [h["step"] for h in first] == [1, 2] and torch.load(round0, weights_only=False)["step"] == 2
    _, second = pretrain(tiny_cfg(), aug_params, data(), None, CPU, checkpoint=round1,
                         resume_from=round0, stop_at=4)
    assert torch.load(round1, weights_only=False)["step"] == 4
    assert torch.load(round0, weights_only=False)["step"] == 2  # the earlier round's, untouched
    enc, last = pretrain(tiny_cfg(), aug_params, data(), None, CPU,
                         checkpoint=tmp_path / "final.pt", resume_from=round1)
    assert [h["step"] for h in last] == list(range(1, 7))
    assert [h["lr"] for h in last] == [h["lr"] for h in straight]  # one schedule over 6 steps
    np.testing.assert_allclose([h["loss"] for h in last], [h["loss"] for h in straight], rtol=1e-5)
    for a, b in zip(enc.state_dict().values(), straight_enc.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="stop at step 3: the run is at step 4"):
        pretrain(tiny_cfg(), aug_params, data(), None, CPU, checkpoint=round1, stop_at=3)
