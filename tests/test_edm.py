"""Tests of the EDM Heun sampler and the VP denoiser it drives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from support.stage_args import SAMPLE_ARGS
from pipeline import sample
from pipeline.generation.unet import save_generator
from pipeline.generation.edm import EDMSettings, VPDenoiser, edm_sample, karras_sigmas
from pipeline.data.dataset import load_packed
from pipeline.generation.samplers import Sampler, SamplerSettings, image_generators, sample_range

DDPM_CIFAR10 = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02).config


class FakeUNet:
    """Stands in for a UNet whose prediction is computed from a known clean image and noise."""

    dtype = torch.float32

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t, class_labels=None):
        self.calls += 1
        return SimpleNamespace(sample=self.fn(x, t))


def test_karras_schedule_is_edm_default_clamped_to_the_model():
    d = VPDenoiser(FakeUNet(None), DDPM_CIFAR10)
    # google/ddpm-cifar10-32's betas: sigma_t spans about 0.0100 ... 157.4
    assert d.sigma_min == pytest.approx(0.0100, abs=1e-4)
    assert d.sigma_max == pytest.approx(157.4, abs=0.1)
    sigmas = karras_sigmas(EDMSettings(), d)
    assert len(sigmas) == 19 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(80.0)  # sigma_max 80 lies inside the model's range
    assert sigmas[-2] == pytest.approx(d.sigma_min)  # sigma_min 0.002 is clamped up to it
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    # rho = 7 spacing: the 7th roots are evenly spaced
    roots = np.array(sigmas[:-1]) ** (1 / 7)
    np.testing.assert_allclose(np.diff(roots), np.diff(roots)[0], rtol=1e-9)


def test_timestep_of_a_model_sigma_is_that_timestep():
    d = VPDenoiser(FakeUNet(None), DDPM_CIFAR10)
    abar = DDPMScheduler.from_config(DDPM_CIFAR10).alphas_cumprod.double()
    for t in (0, 1, 17, 500, 999):
        sigma = float(((1 - abar[t]) / abar[t]).sqrt())
        assert d.timestep(sigma) == pytest.approx(t, abs=1e-6)
    assert 17 < d.timestep(0.5 * (float(((1 - abar[17]) / abar[17]).sqrt()) +
                                  float(((1 - abar[18]) / abar[18]).sqrt()))) < 18


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_denoiser_recovers_the_clean_image_from_an_exact_prediction(prediction_type):
    torch.manual_seed(0)
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 2 - 1
    n = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    sigma = 3.7
    abar = 1 / (sigma**2 + 1)

    def exact(x_in, t):
        if prediction_type == "epsilon":
            return n.float()
        if prediction_type == "v_prediction":
            return (abar**0.5 * n - (1 - abar) ** 0.5 * x0).float()
        return x0.float()

    config = {**DDPM_CIFAR10, "prediction_type": prediction_type}
    d = VPDenoiser(FakeUNet(exact), config)
    torch.testing.assert_close(d(x0 + sigma * n, sigma), x0, atol=1e-6, rtol=0)


def test_heun_uses_35_evaluations_for_18_steps():
    unet = FakeUNet(lambda x, t: torch.zeros_like(x))
    d = VPDenoiser(unet, DDPM_CIFAR10)
    edm_sample(d, image_generators(0, range(2)), (2, 3, 4, 4), EDMSettings(), "cpu")
    assert unet.calls == 35


def test_heun_on_a_point_mass_lands_on_the_point():
    """A data distribution that is a single image c has the exact denoiser D(x, s) = c."""
    c = torch.full((1, 3, 4, 4), 0.25, dtype=torch.float64)
    d = VPDenoiser(FakeUNet(None), DDPM_CIFAR10)
    d.__class__ = type("PointMass", (VPDenoiser,), {"__call__": lambda self, x, s, y=None: c.expand_as(x)})
    out = edm_sample(d, image_generators(0, range(3)), (3, 3, 4, 4), EDMSettings(num_steps=6), "cpu")
    torch.testing.assert_close(out, c.expand(3, -1, -1, -1), atol=1e-9, rtol=0)


def test_edm_cli_and_bf16_precision(tmp_path, tiny_unet, tiny_scheduler):
    save_generator(tmp_path / "gen", tiny_unet, tiny_scheduler)
    out = tmp_path / "shard.json"
    sample.main(["--model", str(tmp_path / "gen"), "--out", str(out), "--start", "0",
                 *SAMPLE_ARGS, "--count", "4", "--sampler", "edm", "--steps", "3", "--precision", "bf16",
                 "--batch-size", "4", "--device", "cpu"])
    images, labels = load_packed(out)
    assert images.shape == (4, 8, 8, 3) and (labels == -1).all()
    fp32, _ = sample_range(tiny_unet, tiny_scheduler.config, start=0, count=4, seed=0,
                           batch_size=4, device="cpu",
                           settings=SamplerSettings("edm", num_steps=3))
    # bf16 changes the arithmetic, not the images' content
    assert np.abs(images.astype(int) - fp32.astype(int)).mean() < 8


def test_class_conditional_generator_samples_uniform_labels_per_image(tiny_scheduler):
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, num_class_embeds=3,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval()
    settings = SamplerSettings("ddim", num_steps=2)
    images, labels = sample_range(unet, tiny_scheduler.config, start=0, count=30, seed=1,
                                  settings=settings, batch_size=16, device="cpu")
    assert set(labels.tolist()) == {0, 1, 2}
    part, part_labels = sample_range(unet, tiny_scheduler.config, start=11, count=9, seed=1,
                                     settings=settings, batch_size=4, device="cpu")
    np.testing.assert_array_equal(part_labels, labels[11:20])
    np.testing.assert_array_equal(part, images[11:20])
    assert Sampler(unet, tiny_scheduler.config, settings, "cpu").num_classes == 3


def test_unknown_precision_is_rejected_by_name():
    with pytest.raises(ValueError, match="precision 'fp8'"):
        SamplerSettings("edm", precision="fp8")
