"""Generator training at scale: resume bit for bit, DDP under gloo, class conditioning with a
null class and guided sampling, Ho et al.'s architecture, the speed switches."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from support.killed import Killed
from support.stage_args import TRAIN_GENERATOR_ARGS
from support.tiny import make_images
from test_resume_ddp import REPO, free_port
from pipeline import train_generator
from pipeline.core import io
from pipeline.generation.samplers import SamplerSettings, sample_range
from pipeline.generation.training import Speed, train_unet
from pipeline.generation.unet import (DDPM_CIFAR10_32_UNET, build_unet, load_generator)

CPU = torch.device("cpu")
TINY = dict(channels=[8, 16], layers_per_block=1, attention=False, steps=6, batch_size=4,
            lr=2e-3, ema_decay=0.9, num_train_timesteps=50, beta_schedule="linear", seed=1,
            warmup_steps=2, grad_clip=1.0)


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _close_up_to_adam_rounding(a, b, bound):
    """Weights of two runs that differ only in rounding: AdamW's update m/sqrt(v) is about ±lr
    whatever a gradient's size, so a near-zero gradient whose rounding differs can move a weight
    up to lr a step either way; the rest agree closely."""
    diff = torch.cat([(p - q).abs().flatten() for p, q in zip(a.parameters(), b.parameters())])
    assert diff.max() <= 2 * bound, diff.max()
    assert (diff > 1e-5).float().mean() < 0.02, (diff > 1e-5).float().mean()


def _kill_after(step):
    def callback(s):
        if s == step:
            raise Killed
    return callback


@pytest.mark.parametrize("conditional", [False, True])
def test_killed_and_resumed_training_equals_an_uninterrupted_run(tmp_path, conditional):
    torch.set_num_threads(1)
    images, labels = make_images(12), np.arange(12) % 3
    kw = dict(TINY, class_conditional=conditional, label_dropout=0.3, labels=labels, device=CPU)
    straight, _, straight_losses = train_unet(images, **kw)
    ckpt = tmp_path / "generator.checkpoint.pt"
    with pytest.raises(Killed):
        train_unet(images, **kw, checkpoint=ckpt, speed=Speed(checkpoint_every=2),
                   callback=_kill_after(5))
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    resumed, _, losses = train_unet(images, **kw, checkpoint=ckpt,
                                    speed=Speed(checkpoint_every=2))
    assert losses == straight_losses  # steps 1-4 from the checkpoint, 5-6 trained again
    _same(resumed, straight)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, caplog):
    torch.set_num_threads(1)
    images = make_images(12)
    ckpt = tmp_path / "generator.checkpoint.pt"
    with pytest.raises(Killed):
        train_unet(images, **TINY, device=CPU, checkpoint=ckpt, speed=Speed(checkpoint_every=2),
                   callback=_kill_after(3))
    other = {**TINY, "lr": 1e-3}
    resumed, _, losses = train_unet(images, **other, device=CPU, checkpoint=ckpt)
    assert "not resumed" in caplog.text
    fresh, _, fresh_losses = train_unet(images, **other, device=CPU)
    assert losses == fresh_losses
    _same(resumed, fresh)


def test_speed_switches_change_no_result():
    torch.set_num_threads(1)
    images = make_images(12)
    plain, _, losses = train_unet(images, **TINY, device=CPU)
    fast, _, fast_losses = train_unet(images, **TINY, device=CPU,
                                      speed=Speed(channels_last=True))
    # channels_last sums in another order: the same training up to rounding
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-4)
    _close_up_to_adam_rounding(fast, plain, TINY["lr"] * TINY["steps"])


def test_bf16_trains_and_clipping_bounds_the_update():
    torch.set_num_threads(1)
    images = make_images(12)
    _, _, losses = train_unet(images, **{**TINY, "precision": "bf16"}, device=CPU)
    assert all(np.isfinite(losses))
    # a clip far below the gradients' norm: the first step moves the weights less
    one = {**TINY, "steps": 1, "warmup_steps": 0, "ema_decay": 0.0}
    free = train_unet(images, **{**one, "grad_clip": None}, device=CPU)[0]
    clipped = train_unet(images, **{**one, "grad_clip": 1e-6}, device=CPU)[0]
    torch.manual_seed(TINY["seed"])
    init = build_unet(8, [8, 16], 1, False)
    moved = [sum((p - q).abs().sum() for p, q in zip(m.parameters(), init.parameters()))
             for m in (free, clipped)]
    assert 0 < moved[1] <= moved[0]


def test_ho2020_architecture_is_google_ddpm_cifar10_32s():
    unet = build_unet(32, [1], architecture="ho2020", num_classes=10)
    config = dict(unet.config)
    for k, v in DDPM_CIFAR10_32_UNET.items():
        assert config[k] == (list(v) if isinstance(v, tuple) and isinstance(config[k], list)
                             else v), k
    assert config["num_class_embeds"] == 11 and config["null_class"] == 10
    # 35.7M parameters, as the hub model, plus 11 class embeddings of 512
    assert sum(p.numel() for p in unet.parameters()) == 35_746_307 + 11 * 512


@pytest.mark.slow
def test_two_processes_with_gloo_match_one_at_the_same_global_batch(tmp_path):
    """The stage under torchrun (2 ranks, each half of the global batch 8) against one process:
    the same draws; only the gradients' summation order differs (DDP's allreduce): the losses
    agree to 1e-4 relative, fewer than 2 % of the weights differ by over 1e-5, none by over two
    learning rates a step (AdamW's ±lr updates of near-zero gradients)."""
    real = tmp_path / "real.npz"
    io.save_images(real, make_images(16), np.arange(16) % 4)
    args = ["--real", str(real), *TRAIN_GENERATOR_ARGS, "--channels", "8", "16", "--steps", "6",
            "--batch-size", "8", "--layers-per-block", "1", "--class-conditional",
            "--num-train-timesteps", "50", "--log-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
         "-m", "pipeline.train_generator", *args, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    torch.set_num_threads(1)
    train_generator.main([*args, "--out", str(tmp_path / "one")])
    two, one = (load_generator(str(tmp_path / name))[0] for name in ("two", "one"))
    _close_up_to_adam_rounding(two, one, 4e-3 * 6)  # config.yaml's lr × steps
    np.testing.assert_allclose(io.read_json(tmp_path / "two" / "training.json")["losses"],
                               io.read_json(tmp_path / "one" / "training.json")["losses"],
                               rtol=1e-4)
    assert io.read_json(tmp_path / "two" / "training.json")["processes"] == 2


def test_class_conditional_default_sized_generator_on_the_digits(tmp_path, config):
    """The default's generator size, class-conditional, on the digits; sampling with guidance
    gives every class equally often, labels that depend only on the image's index."""
    from pipeline.data.sources import load_real

    torch.set_num_threads(1)
    images, labels = load_real("digits", None, resolution=8)[:2]
    t = config["generator"]["train"]
    unet, scheduler, losses = train_unet(
        images[:200], labels=labels[:200], device=CPU,
        **{k: t[k] for k in ("channels", "layers_per_block", "attention", "batch_size", "lr",
                             "ema_decay", "snr_gamma", "beta_schedule", "seed", "label_dropout")},
        steps=30, num_train_timesteps=1000, class_conditional=True)
    assert unet.config.num_class_embeds == 11 and unet.config.null_class == 10
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    settings = SamplerSettings("dpmsolver++", num_steps=5, eta=0.0, precision="fp32",
                               guidance=2.0)
    out, y = sample_range(unet, scheduler.config, start=0, count=40, seed=0, settings=settings,
                          batch_size=20, device="cpu")
    assert out.shape == (40, 8, 8, 3)
    assert np.bincount(y, minlength=10).tolist() == [4] * 10
