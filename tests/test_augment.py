"""Tests of pipeline.augment: the presets of the AdaInf paper and the batched kornia pipeline."""

from __future__ import annotations

import pytest
import torch

from pipeline.augment import PRESETS, AugParams, build_augmentation, describe, preset


def test_standard_preset():
    p = preset("standard")
    assert p.crop_min_scale == 0.08
    assert p.jitter_prob == 0.8
    assert (p.brightness, p.contrast, p.saturation, p.hue) == (0.8, 0.8, 0.8, 0.2)
    assert p.grayscale_prob == 0.2


def test_weak_preset():
    p = preset("weak")
    assert p.crop_min_scale == 0.2
    assert p.jitter_prob == 0.4
    assert (p.brightness, p.contrast, p.saturation, p.hue) == (0.4, 0.4, 0.4, 0.1)
    # what the weak preset does not weaken stays as in the standard one
    s = preset("standard")
    assert (p.flip_prob, p.grayscale_prob, p.blur_prob, p.solarize_prob) == \
        (s.flip_prob, s.grayscale_prob, s.blur_prob, s.solarize_prob)


def test_overrides_apply_and_none_is_ignored():
    p = preset("weak", crop_min_scale=0.5, jitter_prob=None)
    assert p.crop_min_scale == 0.5
    assert p.jitter_prob == 0.4
    assert preset("standard", crop_min_scale=None) == PRESETS["standard"]
    # overriding does not mutate the preset itself
    assert PRESETS["weak"].crop_min_scale == 0.2
    assert describe(p)["crop_min_scale"] == 0.5


def test_unknown_override_raises():
    with pytest.raises(TypeError):
        preset("standard", crop_scale=0.3)


def test_unknown_preset_raises_naming_it():
    with pytest.raises(ValueError, match="strongest"):
        preset("strongest")


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g)


@pytest.mark.parametrize("name", ["standard", "weak"])
def test_build_augmentation_shape_range_and_randomness(name):
    torch.manual_seed(0)
    aug = build_augmentation(preset(name), 16)
    x = _batch(32)
    a, b = aug(x), aug(x)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert b.min() >= 0 and b.max() <= 1
    assert not torch.allclose(a, b)  # two views of the same batch differ
    assert not torch.allclose(a, x)


def test_identical_images_get_different_crops():
    torch.manual_seed(0)
    # everything but the crop switched off: p=0 ops are dropped
    params = AugParams(flip_prob=0, jitter_prob=0, grayscale_prob=0, blur_prob=0,
                       solarize_prob=0)
    aug = build_augmentation(params, 16)
    assert len(aug) == 1
    ramp = torch.linspace(0, 1, 16)
    image = torch.stack([ramp.view(1, 16).expand(16, 16), ramp.view(16, 1).expand(16, 16),
                         (ramp.view(1, 16) * ramp.view(16, 1))])
    x = image.expand(4, 3, 16, 16).contiguous()
    out = aug(x)
    assert out.shape == x.shape
    for i in range(1, 4):
        assert not torch.allclose(out[0], out[i], atol=1e-4)


def test_full_pipeline_per_sample():
    torch.manual_seed(1)
    aug = build_augmentation(preset("standard"), 16)
    x = _batch(1).expand(8, 3, 16, 16).contiguous()
    out = aug(x)
    diffs = [(out[0] - out[i]).abs().max().item() for i in range(1, 8)]
    assert min(diffs) > 1e-4
