"""Tests of pipeline.generation.samplers and the sample stage: per-image seeding, shard invariance, and
agreement with diffusers' own DDPMPipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import (DDPMPipeline, DDPMScheduler, DEISMultistepScheduler,
                       DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       HeunDiscreteScheduler, UNet2DModel, UniPCMultistepScheduler)
from diffusers.utils.torch_utils import randn_tensor

from support.snakemake import TINY, run_snakemake
from support.stage_args import SAMPLE_ARGS
from pipeline import sample
from pipeline.core.errors import UserError
from pipeline.generation.unet import load_generator, save_generator, to_uint8
from pipeline.generation.edm import EDMSettings
from pipeline.data.dataset import load_packed
from pipeline.generation.samplers import (Sampler, SamplerSettings, image_generators, image_seed,
                                         make_scheduler, sample_range)


def _sample(unet, config, start, count, *, seed=0, sampler="ddim", num_steps=4, batch_size=8,
            return_labels=False, **settings):
    images, y = sample_range(
        unet, config, start=start, count=count, seed=seed, batch_size=batch_size, device="cpu",
        settings=SamplerSettings(sampler=sampler, num_steps=num_steps,
                                 **{"eta": 0.0, "precision": "fp32", **settings}))
    return (images, y) if return_labels else images


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


NEW_SAMPLERS = ["dpmsolver++", "unipc", "deis", "euler_karras", "heun_karras"]


@pytest.mark.parametrize("sampler,extra", [
    ("ddim", {}), ("ddim", {"eta": 1.0}), ("ddpm", {}), ("edm", {}),
    *((name, {}) for name in NEW_SAMPLERS), ("dpmsolver++", {"timestep_spacing": "trailing"}),
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


# the diffusers scheduler each new sampler names, spelled here on its own (not read from the code)
DIFFUSERS = {
    "dpmsolver++": lambda c, **k: DPMSolverMultistepScheduler.from_config(
        c, algorithm_type="dpmsolver++", **k),
    "unipc": UniPCMultistepScheduler.from_config,
    "deis": DEISMultistepScheduler.from_config,
    "euler_karras": lambda c, **k: EulerDiscreteScheduler.from_config(c, use_karras_sigmas=True,
                                                                      **k),
    "heun_karras": lambda c, **k: HeunDiscreteScheduler.from_config(c, use_karras_sigmas=True,
                                                                    **k),
}


@torch.no_grad()
def _plain_loop(unet, config, sampler, n, seed, steps, **kwargs):
    """The diffusers scheduler driven by the loop of diffusers' docs, over the images' own
    generators (the only stochastic step among them, Euler's, draws from them)."""
    scheduler = DIFFUSERS[sampler](config, **kwargs)
    scheduler.set_timesteps(steps)
    gens = image_generators(seed, range(n))
    x = randn_tensor((n, 3, 8, 8), generator=gens) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = unet(scheduler.scale_model_input(x, t), t).sample
        extra = {"generator": gens} if sampler == "euler_karras" else {}
        x = scheduler.step(eps, t, x, **extra).prev_sample
    return to_uint8(x)


@pytest.mark.parametrize("sampler,spacing", [
    *((name, None) for name in NEW_SAMPLERS), ("dpmsolver++", "trailing"),
    ("heun_karras", "trailing")])
def test_new_sampler_equals_its_diffusers_scheduler_in_a_plain_loop(tiny_unet, tiny_scheduler,
                                                                    sampler, spacing):
    n, k, seed = 5, 6, 3
    # images 0..4 drawn in two batches: each image's noise is its own
    ours = _sample(tiny_unet, tiny_scheduler.config, 0, n, seed=seed, sampler=sampler,
                   num_steps=k, batch_size=3, timestep_spacing=spacing)
    extra = {"timestep_spacing": spacing} if spacing else {}
    theirs = _plain_loop(tiny_unet, tiny_scheduler.config, sampler, n, seed, k, **extra)
    np.testing.assert_array_equal(ours, theirs)
    assert len({im.tobytes() for im in ours}) == n


def test_dpmsolver_matches_diffusers_ddpm_pipeline(tiny_unet, tiny_scheduler):
    # no init_noise_sigma, no scale_model_input, a step that takes a generator: diffusers' own
    # pipeline with the scheduler swapped in is a second reference
    n, k, seed, sampler = 4, 5, 7, "dpmsolver++"
    ours = _sample(tiny_unet, tiny_scheduler.config, 0, n, seed=seed, sampler=sampler,
                   num_steps=k, batch_size=n)
    pipe = DDPMPipeline(unet=tiny_unet, scheduler=DIFFUSERS[sampler](tiny_scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=n, generator=image_generators(seed, range(n)),
               num_inference_steps=k, output_type="np").images
    np.testing.assert_array_equal(ours, (out * 255).round().astype(np.uint8))


@pytest.mark.parametrize("sampler,steps,evaluations", [
    ("dpmsolver++", None, 20), ("unipc", 10, 10), ("deis", 7, 7), ("euler_karras", None, 50),
    ("heun_karras", 10, 19), ("heun_karras", None, 35), ("edm", 10, 19)])
def test_evaluations_per_image(tiny_unet, sampler, steps, evaluations):
    settings = SamplerSettings(sampler, num_steps=steps, eta=0.0, precision="fp32")
    assert Sampler(tiny_unet, DDPMScheduler().config, settings, "cpu").evaluations_per_image \
        == evaluations


def test_timestep_spacing_reaches_the_scheduler():
    # a config that does not state a spacing (google/ddpm-cifar10-32's): each scheduler's own
    config = DDPMScheduler().config
    assert make_scheduler("ddim", config, 10).timesteps[:2].tolist() == [900, 800]  # leading
    assert make_scheduler("dpmsolver++", config, 10).timesteps[:2].tolist() == [999, 899]
    assert make_scheduler("dpmsolver++", config, 10, "leading").timesteps[:2].tolist() == [
        900, 810]
    assert make_scheduler("ddim", config, 10, "trailing").timesteps[:2].tolist() == [999, 899]
    # a config that states one: the generator's, unless sampling.timestep_spacing says another
    stated = DDPMScheduler(timestep_spacing="trailing").config
    assert make_scheduler("ddim", stated, 10).timesteps[:2].tolist() == [999, 899]
    assert make_scheduler("ddim", config, 10, "linspace").config.timestep_spacing == "linspace"
    with pytest.raises(ValueError, match="timestep_spacing is the discrete samplers'"):
        SamplerSettings("edm", eta=0.0, precision="fp32", timestep_spacing="trailing")


def _conditional_unet(classes=3, null=True):
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, num_class_embeds=classes + null,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval()
    if null:
        unet.register_to_config(null_class=classes)
    return unet


@pytest.mark.parametrize("sampler", ["dpmsolver++", "edm"])
def test_guidance_is_one_batched_forward_of_both_halves(tiny_scheduler, sampler):
    unet, calls = _conditional_unet(), []
    unet.register_forward_hook(lambda m, args, kw, out: calls.append(
        (len(args[0]), kw["class_labels"].tolist())), with_kwargs=True)
    images, labels = _sample(unet, tiny_scheduler.config, 0, 6, sampler=sampler, num_steps=2,
                             batch_size=6, return_labels=True, guidance=2.0)
    # balanced labels, never the null class; each evaluation: 12 images, 6 conditional + 6 null
    assert labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert {n for n, _ in calls} == {12} and calls[0][1] == [0, 1, 2, 0, 1, 2] + [3] * 6
    plain = _sample(unet, tiny_scheduler.config, 0, 6, sampler=sampler, num_steps=2,
                    batch_size=6, guidance=1.0)
    assert not np.array_equal(images, plain)
    # shard invariance holds with guidance
    part = _sample(unet, tiny_scheduler.config, 2, 3, sampler=sampler, num_steps=2,
                   batch_size=2, guidance=2.0)
    np.testing.assert_array_equal(part, images[2:5])


def test_guidance_combines_the_halves_as_classifier_free_guidance(tiny_scheduler):
    from pipeline.generation.samplers import guided_unet
    unet = _conditional_unet()
    x, t, y = torch.randn(4, 3, 8, 8), torch.tensor(5), torch.tensor([0, 1, 2, 0])
    cond = unet(x, t, class_labels=y).sample
    null = unet(x, t, class_labels=torch.full_like(y, 3)).sample
    out = guided_unet(unet, 3.0)(x, t, class_labels=y).sample
    torch.testing.assert_close(out, null + 3.0 * (cond - null), rtol=1e-5, atol=1e-6)
    assert guided_unet(unet, 1.0) is unet


def test_guidance_needs_a_null_class(tiny_unet, tiny_scheduler):
    for unet in (tiny_unet, _conditional_unet(null=False)):
        with pytest.raises(UserError, match="sampling.guidance 2.0 needs a class-conditional"):
            _sample(unet, tiny_scheduler.config, 0, 2, guidance=2.0)


def test_uniform_labels_are_per_image_draws(tiny_scheduler):
    unet = _conditional_unet(null=False)
    _, y = _sample(unet, tiny_scheduler.config, 0, 30, return_labels=True, labels="uniform")
    _, part = _sample(unet, tiny_scheduler.config, 11, 9, return_labels=True, labels="uniform")
    np.testing.assert_array_equal(part, y[11:20])
    assert set(y.tolist()) == {0, 1, 2} and y.tolist() != [i % 3 for i in range(30)]


@pytest.mark.heavy  # a minute and a half of the suite's 5: CI runs it after the suite
@pytest.mark.e2e
def test_tiny_run_with_dpmsolver_at_ten_steps(tmp_path):
    """The tiny config with sampling.sampler dpmsolver++ and 10 steps: generator training,
    sampling, FID, end to end (40 images: the two shards of 20 that the check needs, one sampling
    job and its statistics fewer than the tiny config's 48)."""
    extra = tmp_path / "dpm.yaml"
    extra.write_text("sampling: {sampler: dpmsolver++, steps: 10, num_images: 40}\n")
    r = run_snakemake("results/fid.json", "--cores", "1", "--configfile", str(TINY), str(extra),
                      cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert np.isfinite(json.loads((tmp_path / "results" / "fid.json").read_text())["fid"])
    images, labels = load_packed(tmp_path / "results" / "samples" / "shard_00001.json")
    assert images.shape == (20, 8, 8, 3) and (labels == -1).all()
    # the shard holds images 20..39 of DPM-Solver++ at 10 steps over the trained generator
    unet, config = load_generator(str(tmp_path / "results" / "generator"))
    np.testing.assert_array_equal(images[:4], _sample(unet, config, 20, 4, sampler="dpmsolver++",
                                                      num_steps=10, batch_size=4))
