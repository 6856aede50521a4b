"""Tests of pipeline.pretraining.loop (every SSL method, with data inflation) and the pretrain stage."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from support.stage_args import PRETRAIN_ARGS
from pipeline.core import io
from pipeline import pretrain as pretrain_stage
from pipeline.pretraining import methods as ssl_methods, loop as training
from pipeline.pretraining.augment import view_params
from pipeline.pretraining.distributed import DistContext
from pipeline.data.inflation import InflatedIndex
from pipeline.pretraining.encoders import Encoder, load_encoder
from pipeline.data.dataset import pack
from pipeline.pretraining.loop import PretrainConfig, channel_stats, pretrain, warmup_cosine
from pipeline.vocab.augmentation import trained_preset

CPU = DistContext(0, 1, torch.device("cpu"))
TINY = dict(widths=[8, 16], blocks=[1, 1], batch_size=8, optimizer="adamw", method="simclr",
            precision="fp32", log_every=50,
            hparams={"proj_hidden": 16, "proj_dim": 8})


def tiny_config(**kw) -> PretrainConfig:
    return PretrainConfig(**{**TINY, "warmup_steps": 10, "dup": 1, "seed": 0, **kw})


TINY_ARGS = [*PRETRAIN_ARGS, "--widths", "8", "16", "--blocks", "1", "1", "--batch-size", "8",
             "--method-arg", "proj_hidden=16", "--method-arg", "proj_dim=8"]


def _images(n, seed, size=16):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- the schedule ----------------------------------------------------------------------------------

def test_warmup_cosine_values():
    total, warmup = 10, 4
    values = [warmup_cosine(s, total, warmup) for s in range(total + 1)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[7] == pytest.approx(0.5)  # half-way through the cosine part
    assert values[10] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    assert all(v > 0 for v in values[:total])  # every step actually trained uses some lr
    # no warm-up: the cosine starts at 1
    assert warmup_cosine(0, 10, 0) == pytest.approx(1.0)
    assert warmup_cosine(5, 10, 0) == pytest.approx(0.5)


# -- pretrain() -----------------------------------------------------------------------------------

def test_pretrain_few_steps_finite_history():
    cfg = tiny_config(steps=5, warmup_steps=2, lr=1e-3, dup=2, seed=0)
    encoder, history = pretrain(cfg, view_params("standard"), _images(20, 0), _images(10, 1), CPU)
    assert isinstance(encoder, Encoder) and not encoder.training
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(h["loss"]) and h["loss"] > 0 for h in history)
    # the lr recorded for a step is the one that step used: per 256, scaled to the batch of 8
    for i, h in enumerate(history):
        assert h["lr"] == pytest.approx(1e-3 * 8 / 256 * warmup_cosine(i, 5, 2))
    with torch.no_grad():
        out = encoder(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 16) and torch.isfinite(out).all()


def test_pretrain_changes_the_encoder():
    real = _images(16, 0)
    cfg0 = tiny_config(steps=0, seed=3)
    cfg2 = tiny_config(steps=2, warmup_steps=0, lr=1e-2, seed=3)
    e0, _ = pretrain(cfg0, view_params("standard"), real, None, CPU)
    e2, _ = pretrain(cfg2, view_params("standard"), real, None, CPU)
    w0, w2 = e0.backbone.conv1.weight, e2.backbone.conv1.weight
    assert not torch.allclose(w0, w2)


def test_steps_zero_returns_the_initial_encoder():
    real = _images(12, 2)
    cfg = tiny_config(steps=0, seed=7)
    encoder, history = pretrain(cfg, view_params("standard"), real, _images(4, 3), CPU)
    assert history == []
    assert not encoder.training
    torch.manual_seed(7)
    mean, std = channel_stats(real)
    fresh = Encoder([8, 16], [1, 1], mean, std)
    a, b = encoder.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # another seed gives another initialisation, so the comparison above means something
    torch.manual_seed(8)
    other = Encoder([8, 16], [1, 1], mean, std)
    assert not torch.equal(other.backbone.conv1.weight, a["backbone.conv1.weight"])


def test_channel_stats():
    images = np.zeros((2, 2, 2, 3), np.uint8)
    images[..., 0] = 255
    images[0, ..., 1] = 255
    mean, std = channel_stats(images)
    assert mean == pytest.approx([1.0, 0.5, 0.0])
    assert std == pytest.approx([1e-3, 0.5, 1e-3])


class _Record(nn.Module):
    """Identity augmentation that keeps what it was given."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x


@pytest.mark.parametrize("with_generated", [True, False])
def test_generated_images_are_used(monkeypatch, with_generated):
    seen, indices = [], []

    class SpyIndex(InflatedIndex):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            indices.append(self)

    monkeypatch.setattr(training, "InflatedIndex", SpyIndex)
    monkeypatch.setattr(training, "build_augmentation", lambda params, size: _Record(seen))
    real = np.random.default_rng(0).integers(0, 200, (6, 16, 16, 3), dtype=np.uint8)
    generated = np.full((4, 16, 16, 3), 255, np.uint8)  # recognisable: all white
    cfg = tiny_config(steps=6, warmup_steps=0, dup=3)
    _, history = pretrain(cfg, view_params("weak"), real, generated if with_generated else None, CPU)
    assert len(history) == 6
    (index,) = indices
    assert index.dup == 3 and index.num_real == 6
    assert index.num_generated == (4 if with_generated else 0)
    assert index.size == 3 * 6 + (4 if with_generated else 0)
    batches = torch.cat(seen)  # 6 steps × 2 views × 8 images = 48 ≥ 2 epochs of 22 images
    white = (batches == 1.0).flatten(1).all(1)
    if with_generated:
        # 48 draws hold two whole 22-image epochs, each with every generated image once; both
        # views of a batch go through the augmentation
        assert white.sum().item() >= 2 * 2 * 4
        assert white.any() and not white.all()
    else:
        assert not white.any()


def test_nan_loss_raises_naming_the_step(monkeypatch):
    calls = []
    real_loss = ssl_methods.nt_xent

    def flaky(z1, z2, temperature):
        calls.append(1)
        loss = real_loss(z1, z2, temperature)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(ssl_methods, "nt_xent", flaky)
    cfg = tiny_config(steps=5, warmup_steps=0)
    with pytest.raises(FloatingPointError, match=r"nan at step 3\b"):
        pretrain(cfg, view_params("standard"), _images(10, 0), None, CPU)


def test_always_nan_raises_at_first_step(monkeypatch):
    monkeypatch.setattr(ssl_methods, "nt_xent", lambda z1, z2, t: (z1.sum() + z2.sum()) * float("nan"))
    cfg = tiny_config(steps=3, warmup_steps=0)
    with pytest.raises(FloatingPointError, match=r"step 1\b"):
        pretrain(cfg, view_params("standard"), _images(10, 0), None, CPU)


# -- the pretrain stage ---------------------------------------------------------------------------

@pytest.fixture
def packed(tmp_path):
    real_files = []
    for k, n in enumerate((10, 6)):
        path = tmp_path / f"real_{k}.npz"
        io.save_images(path, _images(n, k), np.arange(n) % 3)
        real_files.append(str(path))
    gen_file = tmp_path / "gen.npz"
    io.save_images(gen_file, _images(12, 9), np.zeros(12, np.int64))
    real_dir, gen_dir = tmp_path / "dataset" / "real", tmp_path / "dataset" / "generated"
    pack(real_dir, "real", real_files)
    pack(gen_dir, "generated", [str(gen_file)])
    return real_dir, gen_dir


def _read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_pretrain_cli_none(tmp_path, packed):
    real_dir, _ = packed
    out = tmp_path / "run" / "encoder.pt"
    hist = tmp_path / "run" / "history.csv"
    pretrain_stage.main([*TINY_ARGS, "--real", str(real_dir), "--out", str(out), "--history",
                         str(hist), "--strategy", "none", "--steps", "3", "--warmup-steps", "1"])
    rows = _read_history(hist)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"step", "loss", "lr"}
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    meta = json.loads(hist.with_suffix(".json").read_text())
    assert meta["strategy"] == "none" and meta["method"] == "simclr"
    assert meta["dup"] == 1 and meta["num_generated"] == 0 and meta["num_real"] == 16
    assert meta["augmentation"] == "standard"
    assert meta["augmentation_params"][0]["crop_min_scale"] == 0.08
    assert meta["config"]["steps"] == 3 and meta["config"]["widths"] == [8, 16]
    assert meta["final_loss"] == pytest.approx(float(rows[-1]["loss"]))
    encoder, ckpt_meta = load_encoder(out)
    assert ckpt_meta == meta
    assert encoder.feature_dim == 16
    with torch.no_grad():
        assert encoder(torch.rand(2, 3, 16, 16)).shape == (2, 16)


def test_pretrain_cli_adainf(tmp_path, packed):
    real_dir, gen_dir = packed
    out = tmp_path / "run" / "encoder.pt"
    hist = tmp_path / "run" / "history.csv"
    pretrain_stage.main([*TINY_ARGS, "--real", str(real_dir), "--generated", str(gen_dir),
                         "--out", str(out), "--history", str(hist), "--strategy", "adainf",
                         "--dup", "10", "--augmentation", "weak", "--steps", "2"])
    assert len(_read_history(hist)) == 2
    meta = json.loads(hist.with_suffix(".json").read_text())
    assert meta["strategy"] == "adainf"
    assert meta["dup"] == 10 and meta["config"]["dup"] == 10
    assert meta["num_generated"] == 12 and meta["num_real"] == 16
    assert meta["augmentation"] == "weak"
    assert meta["augmentation_params"][0]["crop_min_scale"] == 0.2
    assert meta["augmentation_params"][0]["jitter_prob"] == 0.4
    assert out.exists()
    assert load_encoder(out)[1]["strategy"] == "adainf"


def test_pretrain_cli_steps_zero_and_crop_override(tmp_path, packed):
    real_dir, _ = packed
    hist = tmp_path / "r" / "history.csv"
    pretrain_stage.main(["--real", str(real_dir), "--out", str(tmp_path / "r" / "encoder.pt"),
                         "--history", str(hist), "--strategy", "random_init", "--steps", "0",
                         "--crop-min-scale", "0.5", *TINY_ARGS])
    assert _read_history(hist) == []
    meta = json.loads(hist.with_suffix(".json").read_text())
    assert meta["final_loss"] is None
    assert meta["augmentation_params"][0]["crop_min_scale"] == 0.5


TINY_HEADS = {"simclr": [], "mocov2plus": ["queue_size=32"], "byol": ["pred_hidden=16"],
              "barlow": []}
STRATEGIES = {"none": [], "vanilla": ["generated"], "adainf": ["generated", "--dup", "10"]}
AUGMENTATION = {"none": "standard", "vanilla": "standard", "adainf": "weak"}  # config.yaml's


# One CLI run per method, each strategy with a symmetric and an asymmetric-augmentation method
# (none, vanilla and adainf themselves are checked above and in test_inflation.py).
@pytest.mark.parametrize("method,strategy", [("barlow", "adainf"), ("byol", "vanilla"),
                                             ("mocov2plus", "none"), ("simclr", "vanilla")])
def test_every_method_trains_through_the_cli(tmp_path, packed, method, strategy):
    real_dir, gen_dir = packed
    extra = [str(gen_dir) if a == "generated" else a for a in STRATEGIES[strategy]]
    if "generated" in STRATEGIES[strategy]:
        extra = ["--generated"] + extra
    hist = tmp_path / "run" / "history.csv"
    pretrain_stage.main([*TINY_ARGS, "--real", str(real_dir),  # TINY_ARGS first: the last wins
                         "--out", str(tmp_path / "run" / "encoder.pt"),
                         "--history", str(hist), "--strategy", strategy, "--method", method,
                         "--steps", "2", "--optimizer", "lars",
                         *[x for a in TINY_HEADS[method] for x in ("--method-arg", a)], *extra,
                         # the preset as the workflow passes it (job_params.method_preset)
                         "--augmentation", trained_preset(method, AUGMENTATION[strategy])])
    meta = json.loads(hist.with_suffix(".json").read_text())
    assert meta["method"] == method and len(_read_history(hist)) == 2
    assert all(math.isfinite(float(r["loss"])) for r in _read_history(hist))
    asym = method in ("byol", "barlow")
    assert meta["augmentation"].startswith("asym_") == asym
    assert [v["solarize_prob"] for v in meta["augmentation_params"]] == ([0.0, 0.2] if asym else [0.0, 0.0])
    assert meta["num_generated"] == (0 if strategy == "none" else 12)


@pytest.mark.parametrize("method,augmentation", [("byol", "weak"), ("barlow", "standard"),
                                                  ("simclr", "asym_weak")])
def test_the_stage_refuses_a_preset_its_method_does_not_train(method, augmentation, capsys):
    """The stage runs the --augmentation it is given (the tracked name is the one that runs), so
    a symmetric preset for BYOL or Barlow Twins, or an asymmetric one for the others, stops it."""
    argv = [*TINY_ARGS, "--real", "r", "--out", "o.pt", "--history", "h.csv",
            "--strategy", "none", "--method", method, "--steps", "2"]
    assert pretrain_stage.parse_args([*argv, "--augmentation", trained_preset(method, "weak")])
    with pytest.raises(SystemExit):
        pretrain_stage.parse_args([*argv, "--augmentation", augmentation])
    assert f"--augmentation {augmentation}: {method} trains one of" in capsys.readouterr().err


# -- the online probe through the stage ------------------------------------------------------------

def _online_args(tmp_path, real_dir, *extra, steps="3"):
    out_dir = tmp_path / "run"
    return ["--real", str(real_dir), "--out", str(out_dir / "encoder.pt"),
            "--history", str(out_dir / "history.csv"), "--strategy", "vanilla",
            "--steps", steps, *TINY_ARGS, *extra]


def test_pretrain_cli_online_probe(tmp_path, packed):
    real_dir, gen_dir = packed
    test = tmp_path / "test.npz"
    io.save_images(test, _images(7, 20), np.arange(7) % 3)
    out = tmp_path / "online" / "simclr_vanilla.json"
    pretrain_stage.main(_online_args(tmp_path, real_dir, "--generated", str(gen_dir),
                                     "--online-test", str(test), "--online-every", "2",
                                     "--online-out", str(out)))
    result = json.loads(out.read_text())
    assert set(result) == {"method", "strategy", "protocol", "top1", "top5", "num_train",
                           "num_test", "pretrain", "seconds", "curve", "every", "lr",
                           "generated_labels", "num_labelled_generated"}
    assert result["generated_labels"] == "drop" and result["num_labelled_generated"] == 0
    assert result["protocol"] == "online" and result["every"] == 2
    assert result["lr"] == 0.05  # SimCLR's classifier_lr (the authors' simclr.yaml)
    assert result["method"] == "simclr" and result["strategy"] == "vanilla"
    assert result["num_train"] == 16 and result["num_test"] == 7
    assert [p["step"] for p in result["curve"]] == [2, 3]
    assert result["top1"] == result["curve"][-1]["top1"]
    assert 0 <= result["top1"] <= result["top5"] <= 100
    meta = json.loads((tmp_path / "run" / "history.json").read_text())
    assert result["pretrain"] == meta and result["seconds"] == meta["seconds"]


def test_pretrain_cli_keeps_generated_labels_for_the_online_probe_on_a_random_subset(tmp_path,
                                                                                   packed, capsys):
    """--keep-generated-labels: the generated set's own labels (class 0 here) train the probe,
    and its result says so; --num-generated takes the seeded subset."""
    real_dir, gen_dir = packed
    test = tmp_path / "test.npz"
    io.save_images(test, _images(7, 20), np.arange(7) % 3)
    out = tmp_path / "online.json"
    pretrain_stage.main(_online_args(tmp_path, real_dir, "--generated", str(gen_dir),
                                     "--num-generated", "5", "--generated-subset-seed", "3",
                                     "--keep-generated-labels", "--online-test", str(test),
                                     "--online-every", "0", "--online-out", str(out)))
    result = json.loads(out.read_text())
    assert result["generated_labels"] == "keep" and result["num_labelled_generated"] == 5
    assert result["pretrain"]["num_generated"] == 5
    with pytest.raises(SystemExit):
        pretrain_stage.main(_online_args(tmp_path, real_dir, "--generated", str(gen_dir),
                                         "--num-generated", "5"))
    assert "--num-generated needs --generated-subset-seed" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="needs the online probe"):
        pretrain_stage.main(_online_args(tmp_path, real_dir, "--generated", str(gen_dir),
                                         "--keep-generated-labels"))


def test_pretrain_cli_online_errors(tmp_path, packed):
    real_dir, _ = packed
    test = tmp_path / "test.npz"
    io.save_images(test, _images(4, 20), np.arange(4) % 3)
    out = tmp_path / "online.json"
    online = ["--online-test", str(test), "--online-every", "0", "--online-out", str(out)]
    with pytest.raises(SystemExit, match="--steps 0"):
        pretrain_stage.main(_online_args(tmp_path, real_dir, *online, steps="0"))
    with pytest.raises(SystemExit, match="go together"):
        pretrain_stage.main(_online_args(tmp_path, real_dir, "--online-test", str(test)))
    io.save_images(test, _images(4, 20), np.array([0, 1, -1, 2]))
    with pytest.raises(SystemExit, match="-1"):
        pretrain_stage.main(_online_args(tmp_path, real_dir, *online))
    io.save_images(test, _images(4, 20, size=8), np.arange(4) % 3)
    with pytest.raises(SystemExit, match="images"):
        pretrain_stage.main(_online_args(tmp_path, real_dir, *online))
    assert not out.exists() and not (tmp_path / "run" / "encoder.pt").exists()
