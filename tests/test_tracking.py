"""Live curves (pipeline/core/tracking.py): the TensorBoard event files of tiny runs of every stage
that trains or samples, read back with TensorBoard's own EventAccumulator; W&B in offline mode;
the progress lines of a job's log; and that tracking changes no result."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from support.stage_args import LINEAR_ARGS, PRETRAIN_ARGS

from support.tiny import make_images
from pipeline import linear_eval, pretrain as pretrain_stage
from pipeline.core import io
from pipeline.core.tracking import Progress, Tracker, flat_hparams
from pipeline.data.dataset import pack
from pipeline.generation.samplers import SamplerSettings, sample_range
from pipeline.generation.training import train_unet
from pipeline.pretraining.encoders import Encoder, save_encoder

MEMORY = "peak_device_memory_gb" if torch.cuda.is_available() else "peak_host_memory_gb"


def steps_of(folder) -> dict[str, list[int]]:
    """{tag: steps} of every scalar in a run's folder of event files."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def hparams_of(folder) -> dict:
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in info.hparams.items()}


def metrics_of(folder) -> set[str]:
    """The metric tags a run's HPARAMS entry declares."""
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    return {m.name.tag for m in info.metric_infos}


def test_flat_hparams_takes_nested_settings_lists_and_none():
    assert flat_hparams({"a": {"b": 1, "c": [8, 16]}, "d": None, "e": "x", "f": True}) == {
        "a.b": 1, "a.c": "[8, 16]", "d": "None", "e": "x", "f": True}


def test_a_disabled_tracker_writes_nothing(tmp_path):
    tracker = Tracker(str(tmp_path / "tb"), enabled=False)  # a DDP rank but the main one
    tracker.hparams({"a": 1}, ["x"])
    tracker.scalar("x", 1.0, 1)
    tracker.close()
    assert not tracker.active and not (tmp_path / "tb").exists()


def test_a_resumed_run_replaces_its_killed_predecessors_points_from_its_start(tmp_path):
    first = Tracker(str(tmp_path))
    for step in (1, 2, 3, 4):  # killed after step 4, its last checkpoint at step 2
        first.scalar("loss", 1.0, step)
    first.close()
    resumed = Tracker(str(tmp_path))
    resumed.start(2)
    for step in (3, 4, 5):
        resumed.scalar("loss", 2.0, step)
    resumed.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [
        (1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0), (5, 2.0)]


def test_progress_logs_step_total_loss_rate_and_eta(caplog):
    progress = Progress("pretrain", 100, unit_per_step=64, logger=logging.getLogger("t"))
    with caplog.at_level(logging.INFO, logger="t"):
        progress.report(50, {"loss": 1.25})
    (line,) = caplog.messages
    assert line.startswith("pretrain 50/100  loss 1.2500  ") and " samples/s  " in line
    assert "peak" in line and " GB  ETA 0:00:" in line


@pytest.fixture
def packed(tmp_path):
    """Packed real images (three classes) and a labelled test split for the online probe."""
    io.save_images(tmp_path / "real.npz", make_images(16, 16), np.arange(16) % 3)
    pack(tmp_path / "real", "real", [str(tmp_path / "real.npz")])
    io.save_images(tmp_path / "test.npz", make_images(7, 16, seed=1), np.arange(7) % 3)
    return tmp_path / "real", tmp_path / "test.npz"


def _pretrain(tmp_path, packed, name, *extra):
    real, test = packed
    pretrain_stage.main([
        *PRETRAIN_ARGS, "--real", str(real), "--out", str(tmp_path / name / "encoder.pt"),
        "--history", str(tmp_path / name / "history.csv"), "--strategy", "none",
        "--method", "byol", "--augmentation", "asym_standard", "--widths", "8", "16", "--blocks", "1", "1", "--batch-size", "8",
        "--method-arg", "proj_hidden=16", "--method-arg", "proj_dim=8",
        "--method-arg", "pred_hidden=16", "--steps", "7", "--log-every", "3",
        "--online-test", str(test), "--online-every", "4",
        "--online-out", str(tmp_path / name / "online.json"), *extra])
    return torch.load(tmp_path / name / "encoder.pt", weights_only=False)


def test_pretraining_writes_each_scalar_at_its_steps_and_changes_no_result(tmp_path, packed,
                                                                             caplog):
    tb = tmp_path / "tensorboard" / "pretrain"
    with caplog.at_level(logging.INFO, logger="pipeline.pretraining.loop"):
        tracked = _pretrain(tmp_path, packed, "tracked", "--tensorboard", str(tb))
    untracked = _pretrain(tmp_path, packed, "untracked")
    for key, value in untracked["state_dict"].items():
        assert torch.equal(tracked["state_dict"][key], value), key
    every_3 = [3, 6, 7]  # --log-every 3, and the last step
    assert steps_of(tb) == {
        **{f"pretrain/{k}": every_3 for k in
           ("loss", "lr", "lr_probe", "tau", "samples_per_s", MEMORY)},
        "pretrain/online_top1": [4, 7], "pretrain/online_top5": [4, 7],  # --online-every 4
        "eval/online_top1": [7],  # the final top-1: HPARAMS' evaluation column
    }
    hp = hparams_of(tb)
    assert hp["method"] == "byol" and hp["steps"] == 7 and hp["widths"] == "[8, 16]"
    # what a sweep or the search varies is an hparam of its own
    assert (hp["dup"], hp["generated"], hp["augmentation"]) == (1, False, "asym_standard")
    assert hp["crop_min_scale"] == 0.08 and hp["generated_keep"] == 1.0
    assert metrics_of(tb) == {"pretrain/loss", "pretrain/online_top1", "eval/online_top1"}
    lines = [m for m in caplog.messages if m.startswith("pretrain ")]
    assert [line.split()[1] for line in lines] == ["3/7", "6/7", "7/7"]
    assert all(" loss " in line and " samples/s " in line and " ETA " in line for line in lines)
    # a forced rerun into the same folder replaces the earlier points (purge_step 0)
    _pretrain(tmp_path, packed, "tracked", "--tensorboard", str(tb))
    assert len(list(tb.glob("events.out.tfevents.*"))) == 2
    assert steps_of(tb)["pretrain/loss"] == every_3


def test_generator_training_writes_loss_and_lr_every_n_steps(tmp_path):
    tracker = Tracker(str(tmp_path / "tb"))
    train_unet(make_images(8), channels=[8, 16], layers_per_block=1, attention=False, steps=5,
               batch_size=4, lr=1e-3, ema_decay=0.9, num_train_timesteps=20,
               beta_schedule="squaredcos_cap_v2", seed=0, device=torch.device("cpu"),
               log_every=2, tracker=tracker)
    tracker.close()
    assert steps_of(tmp_path / "tb") == {f"generator/{k}": [2, 4, 5] for k in
                                         ("loss", "lr", "samples_per_s", MEMORY)}


def test_sampling_writes_images_per_s_per_batch(tmp_path, tiny_unet, tiny_scheduler):
    tracker = Tracker(str(tmp_path / "tb"))
    sample_range(tiny_unet, tiny_scheduler.config, start=3, count=5, seed=0,
                 settings=SamplerSettings(sampler="ddim", num_steps=2, eta=0.0,
                                                  precision="fp32"), batch_size=2,
                 device="cpu", tracker=tracker)
    tracker.close()
    # at the images done: batches of 2, 2 and 1
    assert steps_of(tmp_path / "tb") == {"sample/images_per_s": [2, 4, 5], f"sample/{MEMORY}": [2, 4, 5]}


def _linear_eval(tmp_path, *args: str) -> None:
    """The linear_eval stage on a tiny untrained encoder and 24/12 labelled images."""
    torch.manual_seed(0)
    save_encoder(tmp_path / "encoder.pt", Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3),
                 {"method": "simclr", "strategy": "none", "dup": 1})
    for name, n, seed in (("train", 24, 0), ("test", 12, 1)):
        io.save_images(tmp_path / f"{name}.npz", make_images(n, 16, seed), np.arange(n) % 2)
    linear_eval.main([*LINEAR_ARGS, "--encoder", str(tmp_path / "encoder.pt"),
                      "--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"),
                      "--out", str(tmp_path / "out.json"), "--batch-size", "8", *args])


@pytest.mark.parametrize("protocol", ["offline", "features"])
def test_linear_evaluation_writes_loss_and_accuracy_per_epoch(tmp_path, protocol):
    tb = tmp_path / "tb"
    _linear_eval(tmp_path, "--protocol", protocol, "--epochs", "3", "--tensorboard", str(tb))
    assert steps_of(tb) == {**{f"linear/{k}": [1, 2, 3] for k in
                               ("loss", "lr", "train_top1", "test_top1", "test_top5",
                                "samples_per_s", MEMORY)}, f"eval/{protocol}_top1": [3]}
    assert hparams_of(tb)["protocol"] == protocol
    # the encoder's cell settings beside the protocol's, and this evaluation's top-1 a metric
    hp = hparams_of(tb)
    assert (hp["method"], hp["strategy"], hp["dup"]) == ("simclr", "none", 1)
    assert hp["linear.epochs"] == 3 and hp["linear.seed"] == 0
    assert metrics_of(tb) == {"linear/test_top1", f"eval/{protocol}_top1"}
    result = io.read_json(tmp_path / "out.json")
    events = EventAccumulator(str(tb))
    events.Reload()
    assert [e.value for e in events.Scalars(f"eval/{protocol}_top1")] == \
        pytest.approx([result["top1"]])


def test_wandb_offline_run_writes_its_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional extra: pip install '.[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")  # besides mode="offline": never the network
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    tracker = Tracker(wandb={"project": "adainf-test", "mode": "offline",
                             "dir": str(tmp_path / "out")}, name="pretrain/simclr/none/seed0")
    tracker.hparams({"method": "simclr", "widths": [8, 16]}, ["pretrain/loss"])
    for step in (1, 2, 3):
        tracker.scalars({"pretrain/loss": 1.0 / step}, step)
    tracker.close()
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    (log,) = run.glob("run-*.wandb")  # what `wandb sync` uploads: protobuf records
    data = log.read_bytes()
    # the history records hold each key and its JSON value as plain bytes
    assert b"pretrain/loss" in data and repr(1 / 3).encode() in data and b"simclr" in data


def test_a_stage_sends_its_curves_to_wandb_from_its_options(tmp_path, monkeypatch):
    """The path a job takes: --wandb-* options (from config logging.wandb) to the stage's run."""
    pytest.importorskip("wandb", reason="W&B is an optional extra: pip install '.[wandb]'")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    _linear_eval(tmp_path, "--protocol", "offline", "--epochs", "2", "--wandb-project",
                 "adainf-test", "--wandb-mode", "offline", "--wandb-dir", str(tmp_path / "wb"))
    (run,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    data = next(run.glob("run-*.wandb")).read_bytes()
    assert b"linear/test_top1" in data and b"offline" in data


@pytest.mark.e2e
def test_the_tiny_study_writes_one_run_per_job_under_output_dir_tensorboard(tiny_study):
    root = tiny_study / "results" / "tensorboard"
    runs = {p.parent.relative_to(root).as_posix() for p in root.rglob("events.out.tfevents.*")}
    cells = [f"{v}/seed{s}" for v in ("none", "vanilla", "adainf", "adainf+crop_min_scale=0.5")
             for s in (0, 1)]
    assert runs == {"train_generator", "sample/shard_00000", "sample/shard_00001",
                    *(f"pretrain/simclr/{c}" for c in cells),
                    *(f"linear_eval/simclr/{c}/offline" for c in cells),
                    *(f"linear_eval/simclr/random_init/seed{s}/offline" for s in (0, 1))}
    # pretraining: 3 steps, checkpoints every 2 (a flush), online probe every 2
    assert steps_of(root / "pretrain/simclr/adainf/seed1") == {
        **{f"pretrain/{k}": [2, 3] for k in ("loss", "lr", "lr_probe", "samples_per_s", MEMORY)},
        "pretrain/online_top1": [2, 3], "pretrain/online_top5": [2, 3], "eval/online_top1": [3]}
    assert steps_of(root / "sample/shard_00001")["sample/images_per_s"] == [16]  # one batch
    assert steps_of(root / "train_generator")["generator/loss"] == [10]  # 10 steps, every 50
    # each run's settings, so runs compare in one TensorBoard: the shard's own range, the
    # generator's steps and data
    shard = hparams_of(root / "sample/shard_00001")
    assert (shard["start"], shard["count"], shard["sampler"]) == (32, 16, "ddim")
    generator = hparams_of(root / "train_generator")
    assert generator["steps"] == 10 and generator["num_images"] > 0
    log = (tiny_study / "results" / "logs" / "pretrain" / "simclr" / "none" / "seed0.log").read_text()
    assert "pretrain 3/3  loss " in log  # the progress line a SLURM job's log shows
