"""Tests of pipeline.generation.samplers and the sample stage: per-image seeding, shard invariance, and
agreement with diffusers' own DDPMPipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from support.stage_args import SAMPLE_ARGS
from pipeline import sample
from pipeline.generation.unet import save_generator
from pipeline.generation.edm import EDMSettings
from pipeline.data.dataset import load_packed
from pipeline.generation.samplers import (SamplerSettings, image_generators, image_seed, make_scheduler,
                               sample_range)


def _sample(unet, config, start, count, *, seed=0, sampler="ddim", num_steps=4, batch_size=8,
            labels=False, **settings):
    images, y = sample_range(
        unet, config, start=start, count=count, seed=seed, batch_size=batch_size, device="cpu",
        settings=SamplerSettings(sampler=sampler, num_steps=num_steps, **settings))
    return (images, y) if labels else images


def test_image_seed_depends_only_on_seed_and_index():
    # pinned: another mixing would change every generated image
    assert image_seed(0, 5) == 0xA9601648099DAE35
    np.random.seed(1), torch.manual_seed(1)  # the global generators' state plays no part
    first = [image_seed(3, i) for i in range(4)]
    np.random.seed(2), torch.manual_seed(2), np.random.random(), torch.rand(1)
    assert [image_seed(3, i) for i in range(4)] == first
    seeds = {image_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150
    assert image_seed(1, 2) != image_seed(2, 1)
    assert all(0 <= s < 2**64 for s in seeds)
    a = [g.initial_seed() for g in image_generators(3, range(10, 14))]
    b = [g.initial_seed() for g in image_generators(3, [12, 13, 10, 11])]
    assert a == [image_seed(3, i) for i in range(10, 14)]
    assert b == [a[2], a[3], a[0], a[1]]
    # image 6's noise, drawn in a shard [0, 8) or a shard [5, 12): the same
    noise = [torch.randn(3, generator=image_generators(3, range(lo, hi))[6 - lo])
             for lo, hi in [(0, 8), (5, 12)]]
    assert torch.equal(*noise)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "edm"])
def test_sample_range_gives_uint8_rgb_images(tiny_unet, tiny_scheduler, sampler):
    images = _sample(tiny_unet, tiny_scheduler.config, 3, 5, sampler=sampler, num_steps=3,
                     batch_size=2)
    assert images.dtype == np.uint8 and images.shape == (5, 8, 8, 3)
    assert len({im.tobytes() for im in images}) == 5  # every image has its own noise


def test_default_step_counts(tiny_scheduler):
    # ddpm: all the model's training timesteps; ddim: 50 steps
    assert len(make_scheduler("ddpm", tiny_scheduler.config, None).timesteps) == 20
    assert len(make_scheduler("ddpm", tiny_scheduler.config, 5).timesteps) == 5
    assert len(make_scheduler("ddim", DDPMScheduler().config, None).timesteps) == 50
    assert len(make_scheduler("ddim", tiny_scheduler.config, 7).timesteps) == 7


@pytest.mark.parametrize("sampler,extra", [
    ("ddim", {}), ("ddim", {"eta": 1.0}), ("ddpm", {}), ("edm", {}),
    ("edm", {"edm": EDMSettings(num_steps=4, s_churn=10.0)}),  # fresh noise at every step
])
def test_sharding_does_not_change_images(tiny_unet, tiny_scheduler, sampler, extra):
    config = tiny_scheduler.config
    whole = _sample(tiny_unet, config, 0, 20, sampler=sampler, batch_size=8, **extra)
    parts = [_sample(tiny_unet, config, lo, hi - lo, sampler=sampler, batch_size=8, **extra)
             for lo, hi in [(0, 7), (7, 13), (13, 20)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_a_different_seed_gives_different_images(tiny_unet, tiny_scheduler):
    a = _sample(tiny_unet, tiny_scheduler.config, 0, 4, seed=0)
    b = _sample(tiny_unet, tiny_scheduler.config, 0, 4, seed=1)
    np.testing.assert_array_equal(_sample(tiny_unet, tiny_scheduler.config, 0, 4, seed=0), a)
    for x, y in zip(a, b):
        assert not np.array_equal(x, y)


def test_ddpm_sampler_matches_diffusers_ddpm_pipeline(tiny_unet, tiny_scheduler):
    n, k, seed = 5, 6, 11
    ours = _sample(tiny_unet, tiny_scheduler.config, 0, n, seed=seed, sampler="ddpm",
                   num_steps=k, batch_size=n)
    pipe = DDPMPipeline(unet=tiny_unet, scheduler=tiny_scheduler)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=n, generator=image_generators(seed, range(n)),
               num_inference_steps=k, output_type="np").images
    theirs = (out * 255).round().astype(np.uint8)  # DDPMPipeline.numpy_to_pil
    assert theirs.shape == ours.shape == (n, 8, 8, 3)
    np.testing.assert_array_equal(ours, theirs)


def test_unknown_sampler_is_rejected_by_name(tiny_unet, tiny_scheduler):
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        _sample(tiny_unet, tiny_scheduler.config, 0, 2, sampler="euler")


def test_sample_cli_writes_unlabelled_shard(tmp_path, tiny_unet, tiny_scheduler):
    save_generator(tmp_path / "gen", tiny_unet, tiny_scheduler)
    out = tmp_path / "shard.json"  # with shard.images.npy and shard.labels.npy (packed format)
    sample.main(["--model", str(tmp_path / "gen"), "--out", str(out), "--start", "4",
                 *SAMPLE_ARGS, "--count", "3", "--seed", "2", "--sampler", "ddim", "--steps", "3",
                 "--batch-size", "2", "--device", "cpu"])
    images, labels = load_packed(out)
    assert images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(labels, [-1, -1, -1])
    expected = _sample(tiny_unet, tiny_scheduler.config, 4, 3, seed=2, num_steps=3, batch_size=2)
    np.testing.assert_array_equal(images, expected)
    assert sorted(p.name for p in tmp_path.glob("shard*")) == [
        "shard.images.npy", "shard.json", "shard.labels.npy"]


@pytest.mark.parametrize("bad", [["--count", "0"], ["--count", "2", "--start", "-1"]])
def test_sample_cli_rejects_empty_or_negative_range(tmp_path, bad):
    argv = ["--model", str(tmp_path / "unused"), "--out", str(tmp_path / "x.json"), "--start", "0",
            *SAMPLE_ARGS]
    with pytest.raises(SystemExit, match="count >= 1"):
        sample.main(argv + bad)
    assert not (tmp_path / "x.json").exists()
