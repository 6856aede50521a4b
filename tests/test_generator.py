"""Tests of pipeline.generation.unet and the train_generator stage, with tiny UNets on 8×8 images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from pipeline import train_generator
from pipeline.generation.training import train_unet
from pipeline.generation.unet import (
    build_unet, load_generator, save_generator, to_model_range, to_uint8,
)
from pipeline.core.io import load_images

from support.stage_args import RUNTIME_ARGS, TRAIN_GENERATOR_ARGS

from support.tiny import make_images


def _train(images, steps=4, seed=0, snr_gamma=None):
    return train_unet(
        images, channels=[8, 16], layers_per_block=1, attention=False, steps=steps, batch_size=4,
        lr=1e-3, ema_decay=0.9, num_train_timesteps=50, beta_schedule="linear", seed=seed,
        device=torch.device("cpu"), snr_gamma=snr_gamma,
    )


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def _public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def test_train_unet_returns_finite_losses_and_a_trained_eval_unet():
    images = make_images(10)
    unet, scheduler, losses = _train(images, steps=4)
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert all(loss > 0 for loss in losses)
    assert isinstance(unet, UNet2DModel) and not unet.training
    assert unet.config.sample_size == 8 and tuple(unet.config.block_out_channels) == (8, 16)
    assert scheduler.config.num_train_timesteps == 50
    assert scheduler.config.beta_schedule == "linear"
    torch.manual_seed(0)
    untrained = build_unet(8, [8, 16], 1, False)
    changed = [not torch.equal(p, q) for p, q in zip(unet.parameters(), untrained.parameters())]
    assert any(changed), "training (through the EMA copy) left every weight at its initial value"


def test_min_snr_weighting_scales_each_images_loss_by_min_snr_gamma_over_snr():
    """The first step's loss (same weights, batch, noise and timesteps in every run) weighted by
    hand from the plain per-image errors; a gamma above every SNR leaves the plain MSE."""
    images = make_images(10)
    scheduler = DDPMScheduler(num_train_timesteps=50, beta_schedule="linear")
    snr_all = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    plain = _train(images, steps=1)[2][0]
    assert _train(images, steps=1, snr_gamma=float(snr_all.max()) * 2)[2][0] == pytest.approx(plain)
    # replay step 1's draws (train_unet's order) to weight each image by hand
    torch.manual_seed(0)
    unet = build_unet(8, [8, 16], 1, False)
    gen = torch.Generator().manual_seed(0)
    x0 = to_model_range(images)[torch.randint(10, (4,), generator=gen)]
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(50, (4,), generator=gen)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        err = ((unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t).sample - noise) ** 2).mean((1, 2, 3))
    assert err.mean().item() == pytest.approx(plain, rel=1e-5)
    gamma = 50.0
    snr = snr_all[t]
    weighted = (err * snr.clamp(max=gamma) / snr).mean().item()
    assert snr.min() < gamma < snr.max(), "the draws should cover both sides of gamma"
    assert _train(images, steps=1, snr_gamma=gamma)[2][0] == pytest.approx(weighted, rel=1e-5)


def test_train_unet_is_reproducible_for_a_seed():
    images = make_images(10)
    _, _, a = _train(images, steps=3, seed=1)
    _, _, b = _train(images, steps=3, seed=1)
    _, _, c = _train(images, steps=3, seed=2)
    assert a == b
    assert a != c


def test_to_model_range_maps_uint8_to_minus_one_one():
    x = to_model_range(np.array([[[[0, 255, 128]]]], np.uint8))
    assert x.shape == (1, 3, 1, 1)
    torch.testing.assert_close(x.flatten(), torch.tensor([-1.0, 1.0, 128 / 127.5 - 1]))


def test_to_uint8_matches_ddpm_pipeline_rounding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=g) * 0.7
    # exact half-way points of the ×255 grid, and values outside [-1, 1]
    x[0, 0, 0, :] = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    x[0, 1, 0, :] = torch.tensor([k / 255 * 2 - 1 for k in (0.5, 1.5, 2.5, 126.5, 254.5)])
    # DDPMPipeline: (image / 2 + 0.5).clamp(0, 1) → .cpu().permute(0, 2, 3, 1).numpy(),
    # then numpy_to_pil: (images * 255).round().astype("uint8")
    ref = (x / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy()
    ref = (ref * 255).round().astype("uint8")
    got = to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == (4, 5, 5, 3)
    np.testing.assert_array_equal(got, ref)
    assert list(got[0, 0, :, 0]) == [0, 0, 128, 255, 255]


def test_save_then_load_generator_round_trips(tmp_path, tiny_unet):
    scheduler = DDPMScheduler(num_train_timesteps=77, beta_schedule="squaredcos_cap_v2")
    save_generator(tmp_path / "gen", tiny_unet, scheduler)
    assert (tmp_path / "gen" / "model_index.json").exists()
    unet, config = load_generator(str(tmp_path / "gen"))
    assert not unet.training
    _assert_same_weights(unet, tiny_unet)
    assert _public(config) == _public(scheduler.config)
    assert config.num_train_timesteps == 77


def test_load_generator_accepts_a_bare_unet_folder(tmp_path, tiny_unet):
    tiny_unet.save_pretrained(tmp_path / "bare")
    unet, config = load_generator(str(tmp_path / "bare"))
    _assert_same_weights(unet, tiny_unet)
    assert _public(config) == _public(DDPMScheduler().config)  # diffusers' DDPM defaults


def test_load_generator_uses_scheduler_config_beside_a_bare_unet(tmp_path, tiny_unet):
    tiny_unet.save_pretrained(tmp_path / "bare")
    scheduler = DDPMScheduler(num_train_timesteps=33, beta_schedule="squaredcos_cap_v2")
    scheduler.save_pretrained(tmp_path / "bare")  # writes bare/scheduler_config.json
    assert (tmp_path / "bare" / "scheduler_config.json").exists()
    unet, config = load_generator(str(tmp_path / "bare"))
    _assert_same_weights(unet, tiny_unet)
    assert _public(config) == _public(scheduler.config)


def test_load_generator_rejects_a_folder_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match=r"empty.*neither model_index\.json nor config\.json"):
        load_generator(str(tmp_path / "empty"))


def test_train_generator_cli_writes_a_ddpm_pipeline_folder(tmp_path, tiny_npz):
    out = tmp_path / "generator"
    train_generator.main([
        "--real", str(tiny_npz), "--out", str(out), *TRAIN_GENERATOR_ARGS, "--steps", "3", "--channels", "8", "16",
        "--batch-size", "4", "--num-train-timesteps", "40", "--beta-schedule", "squaredcos_cap_v2",
        "--lr", "2e-3", "--ema-decay", "0.99", "--seed", "5", "--layers-per-block", "1",
        "--log-every", "2", "--snr-gamma", "5", *RUNTIME_ARGS,
    ])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder
    pipe = DDPMPipeline.from_pretrained(str(out))
    assert pipe.unet.config.sample_size == 8
    assert tuple(pipe.unet.config.block_out_channels) == (8, 16)
    assert pipe.scheduler.config.num_train_timesteps == 40
    assert pipe.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    training = json.loads((out / "training.json").read_text())
    assert training["steps"] == 3 and len(training["losses"]) == 3
    assert np.isfinite(training["final_loss"])
    # the pipeline's own loader reads the folder too, and it holds what train_unet returns
    unet, config = load_generator(str(out))
    _assert_same_weights(unet, pipe.unet)
    trained, _, losses = train_unet(
        load_images(tiny_npz)[0], channels=[8, 16], layers_per_block=1, attention=False, steps=3,
        batch_size=4, lr=2e-3, ema_decay=0.99, num_train_timesteps=40,
        beta_schedule="squaredcos_cap_v2", seed=5, snr_gamma=5.0, device=torch.device("cpu"),
    )
    assert losses == training["losses"]
    _assert_same_weights(unet, trained)
