"""Tests of pipeline.pretraining.augment: the presets of the AdaInf paper and the batched on-device pipeline,
whose parameter distributions and formulas are checked against torchvision's."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter

from pipeline.pretraining import augment as A
from pipeline.pretraining.augment import (AugParams, build_augmentation, build_view_augmentations,
                              as_dict, preset, view_params)
from pipeline.vocab.augmentation import PRESET_VIEWS


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
    assert preset("standard", crop_min_scale=None) == PRESET_VIEWS["standard"][0]
    # overriding does not mutate the preset itself
    assert PRESET_VIEWS["weak"][0].crop_min_scale == 0.2
    assert as_dict(p)["crop_min_scale"] == 0.5


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


# --- presets per view ------------------------------------------------------------------------

ASYM = {"asym_standard": 0.08, "asym_weak": 0.2}


@pytest.mark.parametrize("name", ["standard", "weak"])
def test_symmetric_view_params_are_the_preset_twice(name):
    v1, v2 = view_params(name)
    assert v1 == v2 == preset(name) == PRESET_VIEWS[name][0]
    v1, v2 = view_params(name, crop_min_scale=0.3, jitter_strength=None)
    assert v1 == v2 == preset(name, crop_min_scale=0.3)


@pytest.mark.parametrize("name,crop", sorted(ASYM.items()))
def test_asymmetric_presets_follow_the_paper(name, crop):
    v1, v2 = view_params(name)
    for v in (v1, v2):
        assert v.crop_min_scale == crop
        assert v.jitter_prob == (0.8 if name == "asym_standard" else 0.4)
        assert (v.brightness, v.contrast, v.saturation, v.hue) == (0.4, 0.4, 0.2, 0.1)
        assert (v.grayscale_prob, v.blur_prob, v.flip_prob) == (0.2, 0.0, 0.5)
    assert (v1.solarize_prob, v2.solarize_prob) == (0.0, 0.2)
    # the two views differ in the solarization only
    d1, d2 = as_dict(v1), as_dict(v2)
    assert {k for k in d1 if d1[k] != d2[k]} == {"solarize_prob"}
    # overrides reach both views
    w1, w2 = view_params(name, crop_min_scale=0.5)
    assert w1.crop_min_scale == w2.crop_min_scale == 0.5
    assert (w1.solarize_prob, w2.solarize_prob) == (0.0, 0.2)


def test_preset_refuses_asymmetric_names():
    with pytest.raises(ValueError, match="view_params"):
        preset("asym_standard")


def test_view_params_unknown_preset_raises_naming_it():
    with pytest.raises(ValueError, match="asym_strong"):
        view_params("asym_strong")
    with pytest.raises(TypeError):
        view_params("weak", crop_scale=0.3)


def test_jitter_strength_scales_the_four_strengths():
    for name, s in [("standard", 0.5), ("weak", 2.0), ("standard", 0.1)]:
        base, scaled = preset(name), preset(name, jitter_strength=s)
        for f in ("brightness", "contrast", "saturation", "hue"):
            assert getattr(scaled, f) == pytest.approx(getattr(base, f) * s)
        rest = lambda p: {k: v for k, v in asdict(p).items()  # noqa: E731
                          if k not in ("brightness", "contrast", "saturation", "hue")}
        assert rest(scaled) == rest(base)
    v1, v2 = view_params("asym_weak", jitter_strength=2.0, crop_min_scale=0.1)
    for v in (v1, v2):
        assert (v.brightness, v.contrast, v.saturation, v.hue) == pytest.approx((0.8, 0.8, 0.4, 0.2))
        assert v.crop_min_scale == 0.1
    assert preset("weak", jitter_strength=None) == PRESET_VIEWS["weak"][0]
    with pytest.raises(ValueError, match="hue"):  # 0.2 x 3 is past torchvision's bound of 0.5
        preset("standard", jitter_strength=3.0)


# --- parameter distributions against torchvision ----------------------------------------------

def _ks(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (ties handled: CDFs compared at every point)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    pts = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, pts, "right") / len(a)
                        - np.searchsorted(b, pts, "right") / len(b)).max())


def _crop_stats(h, w, size=32):
    h, w = np.asarray(h, float), np.asarray(w, float)
    return h * w / size ** 2, np.log(w / h)


N_CROPS = 4000


@pytest.fixture(scope="module")
def torchvision_crops():
    torch.manual_seed(123)
    img = torch.zeros(3, 32, 32)
    out = {}
    for scale in (0.08, 0.2):
        params = [T.RandomResizedCrop.get_params(img, [scale, 1.0], [3 / 4, 4 / 3])
                  for _ in range(N_CROPS)]
        out[scale] = np.array(params)  # (i, j, h, w)
    return out


@pytest.mark.parametrize("scale", [0.08, 0.2])
def test_crop_sampler_matches_torchvision(torchvision_crops, scale):
    torch.manual_seed(7)
    p = A.sample_crop_params(N_CROPS, 32, 32, (scale, 1.0))
    h, w, top, left = (p[k].numpy() for k in ("height", "width", "top", "left"))
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    ref = torchvision_crops[scale]
    area, log_ar = _crop_stats(h, w)
    ref_area, ref_log_ar = _crop_stats(ref[:, 2], ref[:, 3])
    assert _ks(area, ref_area) < 0.05
    assert _ks(log_ar, ref_log_ar) < 0.05
    assert area.min() >= scale * 0.8 and area.max() <= 1.0
    assert abs(area.mean() - ref_area.mean()) < 0.02
    # offsets are uniform over the valid positions: relative position top / (32 - h)
    rel = top[h < 32] / (32 - h[h < 32])
    ref_rel = ref[:, 0][ref[:, 2] < 32] / (32 - ref[:, 2][ref[:, 2] < 32])
    assert _ks(rel, ref_rel) < 0.05


@pytest.mark.parametrize("height,width,scale", [(10, 40, (0.99, 1.0)), (40, 10, (0.99, 1.0)),
                                                 (32, 32, (2.0, 3.0))])
def test_crop_fallback_is_torchvision_centre_crop(height, width, scale):
    """When none of the 10 candidates fits, torchvision takes a centred crop of the ratio's bound."""
    img = torch.zeros(3, height, width)
    expected = T.RandomResizedCrop.get_params(img, list(scale), [3 / 4, 4 / 3])
    p = A.sample_crop_params(50, height, width, scale)
    for k, v in zip(("top", "left", "height", "width"), expected):
        assert (p[k] == v).all(), (k, p[k][:5], v)


def _uniform_ks(u: np.ndarray, lo: float, hi: float) -> float:
    u = np.sort((u - lo) / (hi - lo))
    n = len(u)
    return float(max((np.arange(1, n + 1) / n - u).max(), (u - np.arange(n) / n).max()))


@pytest.mark.parametrize("strengths", [(0.8, 0.8, 0.8, 0.2), (0.4, 0.4, 0.2, 0.1), (1.5, 0.1, 0.0, 0.5)])
def test_jitter_factors_are_per_sample_and_uniform_like_torchvision(strengths):
    torch.manual_seed(3)
    n = 4000
    op = A.RandomColorJitter(*strengths, p=0.8)
    p = op.sample(torch.empty(n, 3, 2, 2))
    f = p["factors"].numpy()
    b, c, s, h = strengths
    # torchvision.transforms.ColorJitter's ranges
    tv = T.ColorJitter(b, c, s, h)
    ranges = [tv.brightness, tv.contrast, tv.saturation or (1.0, 1.0), tv.hue]
    for j, (lo, hi) in enumerate(ranges):
        col = f[:, j]
        assert col.min() >= lo - 1e-6 and col.max() <= hi + 1e-6
        if hi > lo:
            assert _uniform_ks(col, lo, hi) < 0.04
            assert len(np.unique(col)) > 0.99 * n  # drawn per sample
    # the order of the four adjustments is a random permutation drawn per sample
    order = p["order"].numpy()
    assert (np.sort(order, axis=1) == np.arange(4)).all()
    perms, counts = np.unique(order, axis=0, return_counts=True)
    assert len(perms) == 24
    assert abs(counts - n / 24).max() < 5 * math.sqrt(n / 24)


def _binomial_ok(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("name", ["standard", "weak", "asym_standard", "asym_weak"])
def test_application_probabilities_over_a_batch(name):
    torch.manual_seed(11)
    n = 2000
    x = torch.empty(n, 3, 8, 8)
    for view, (params, aug) in enumerate(zip(view_params(name), build_view_augmentations(name, 8))):
        ops = {type(op).__name__: op for op in aug}
        expected = {"RandomHorizontalFlip": params.flip_prob, "RandomColorJitter": params.jitter_prob,
                    "RandomGrayscale": params.grayscale_prob, "RandomGaussianBlur": params.blur_prob,
                    "RandomSolarize": params.solarize_prob}
        for op_name, prob in expected.items():
            if prob == 0:
                assert op_name not in ops  # never applied: left out
                continue
            k = int(ops[op_name].sample(x)["apply"].sum())
            assert _binomial_ok(k, n, prob), (name, view, op_name, k / n, prob)
        if name.startswith("asym"):
            assert ("RandomSolarize" in ops) == (view == 1)


@pytest.mark.parametrize("field,prob", [("jitter_prob", 0.4), ("grayscale_prob", 0.2),
                                        ("solarize_prob", 0.2), ("flip_prob", 0.5)])
def test_end_to_end_fraction_of_changed_images(field, prob):
    """With only one op switched on (and a full-image crop), the share of images it changes is p."""
    torch.manual_seed(5)
    n = 2000
    off = dict(flip_prob=0, jitter_prob=0, grayscale_prob=0, blur_prob=0, solarize_prob=0)
    aug = build_augmentation(AugParams(crop_min_scale=1.0, **{**off, field: prob}), 6)
    # 8-bit images, as the pipeline gets (the crop's resize rounds to the 8-bit grid)
    x = torch.randint(0, 256, (n, 3, 6, 6)) / 255
    if field == "solarize_prob":
        x = torch.randint(64, 192, (n, 3, 6, 6)) / 255  # half of the pixels at or above 0.5
    changed = ((aug(x) - x).abs().flatten(1).max(1).values > 1e-6).sum().item()
    assert _binomial_ok(changed, n, prob), (field, changed / n)


# --- fixed parameters: outputs equal torchvision's functional ops -----------------------------

def _images(n=12, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[0] = 0.5  # gray: hue undefined
    x[1, 0], x[1, 1], x[1, 2] = 1.0, 0.0, 0.3  # saturated
    x[2] = torch.rand(1, size, size, generator=g).expand(3, size, size)  # gray with structure
    return x


def _factors(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 4, generator=g)
    return torch.stack([0.2 + 1.6 * u[:, 0], 0.2 + 1.6 * u[:, 1], 1.6 * u[:, 2], u[:, 3] - 0.5], 1)


@pytest.mark.parametrize("j,ours,theirs", [(0, A.adjust_brightness, TF.adjust_brightness),
                                           (1, A.adjust_contrast, TF.adjust_contrast),
                                           (2, A.adjust_saturation, TF.adjust_saturation),
                                           (3, A.adjust_hue, TF.adjust_hue)])
def test_colour_adjustments_equal_torchvision(j, ours, theirs):
    x, f = _images(), _factors(12)
    out = ours(x, f[:, j])
    for i in range(len(x)):
        torch.testing.assert_close(out[i], theirs(x[i], f[i, j].item()), atol=1e-5, rtol=0)


def test_colour_jitter_with_per_sample_order_equals_torchvision():
    x, f = _images(24), _factors(24, seed=2)
    order = torch.stack([torch.randperm(4, generator=torch.Generator().manual_seed(i)) for i in range(24)])
    out = A.color_jitter(x, f, order)
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(len(x)):
        ref = x[i]
        for k in order[i].tolist():
            ref = fns[k](ref, f[i, k].item())
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    # a disabled adjustment is skipped, as torchvision skips a strength of 0
    out = A.color_jitter(x, f, order, enabled=(True, True, False, True))
    ref = x[5]
    for k in order[5].tolist():
        ref = ref if k == 2 else fns[k](ref, f[5, k].item())
    torch.testing.assert_close(out[5], ref, atol=1e-5, rtol=0)


def test_grayscale_solarize_flip_equal_torchvision():
    x = _images()
    torch.testing.assert_close(A.rgb_to_grayscale(x).expand_as(x),
                               TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6, rtol=0)
    x = torch.cat([x, torch.full((1, 3, 8, 8), 0.5)])  # exactly at the threshold
    torch.testing.assert_close(A.solarize(x), TF.solarize(x, 0.5), atol=0, rtol=0)
    T.RandomSolarize(threshold=0.5, p=1.0)(x)  # the torchvision transform accepts it on floats
    on = torch.ones(len(x), dtype=torch.bool)
    torch.testing.assert_close(A.RandomSolarize(p=1).apply(x, {"apply": on}), TF.solarize(x, 0.5))
    torch.testing.assert_close(A.RandomHorizontalFlip(p=1).apply(x, {"apply": on}), TF.hflip(x))


def _uint8_batch(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _to_pil(img_u8):
    return Image.fromarray(img_u8.permute(1, 2, 0).numpy())


def _levels(x):
    return torch.round(x * 255).to(torch.int16)


def test_gaussian_blur_equals_pil_within_one_grey_level():
    """The authors blur PIL images with ImageFilter.GaussianBlur(radius=sigma), sigma ~ U(0.1, 2)."""
    u8 = _uint8_batch(24, 32, seed=1)
    sigma = torch.cat([torch.tensor([0.1, 1.0, 2.0]), torch.empty(21).uniform_(0.1, 2.0)])
    ours = _levels(A.gaussian_blur(u8.float() / 255, sigma, max_sigma=2.0))
    exact = 0
    for i in range(len(u8)):
        ref = _to_pil(u8[i]).filter(ImageFilter.GaussianBlur(radius=sigma[i].item()))
        ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).to(torch.int16)
        assert (ours[i] - ref).abs().max() <= 1, sigma[i]
        exact += int(torch.equal(ours[i], ref))
    assert exact >= 20  # bit-exact but for the odd float32 rounding tie
    # at sigma 2 the blur reaches 2+ px: an impulse spreads over more than 3 taps per axis
    impulse = torch.zeros(1, 3, 32, 32)
    impulse[..., 16, 16] = 1.0
    spread = A.gaussian_blur(impulse, torch.tensor([2.0]))[0, 0, 16]
    assert (spread > 0).sum() >= 7


def test_resized_crop_equals_pil_bicubic_within_one_grey_level():
    """torchvision's RandomResizedCrop on PIL images (the authors'): crop, then Pillow's bicubic."""
    torch.manual_seed(4)
    u8 = _uint8_batch(48, 32, seed=2)
    x = u8.float() / 255
    p = A.sample_crop_params(48, 32, 32, (0.08, 1.0))
    p["height"][0], p["width"][0], p["top"][0], p["left"][0] = 32, 32, 0, 0  # whole image
    p["height"][1], p["width"][1], p["top"][1], p["left"][1] = 1, 5, 3, 7  # degenerate
    for size, batch in [((32, 32), x), ((24, 24), x[:8])]:  # upscaling; and shrinking crops
        q = {k: v[:len(batch)] for k, v in p.items()}
        out = _levels(A.resized_crop(batch, q["top"], q["left"], q["height"], q["width"], size))
        if size == (32, 32):
            assert torch.equal(out[0], u8[0].to(torch.int16))
        for i in range(len(batch)):
            t, l, h, w = (p[k][i].item() for k in ("top", "left", "height", "width"))
            ref = TF.resized_crop(_to_pil(u8[i]), t, l, h, w, list(size),
                                  TF.InterpolationMode.BICUBIC)
            ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).to(torch.int16)
            assert (out[i] - ref).abs().max() <= 1, (i, size)
    # not bilinear (today's resize before the authors' bicubic): it is off by several levels
    t, l, h, w = (p[k][2].item() for k in ("top", "left", "height", "width"))
    bilinear = _levels(TF.resized_crop(x[2], t, l, h, w, [32, 32], antialias=True))
    assert (_levels(A.resized_crop(x, p["top"], p["left"], p["height"], p["width"], (32, 32)))[2]
            - bilinear).abs().max() > 1


# --- the whole pipeline -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["standard", "weak", "asym_standard", "asym_weak"])
def test_both_views_run_on_cpu_and_keep_shape_and_range(name):
    torch.manual_seed(2)
    x = torch.rand(64, 3, 32, 32)
    for aug in build_view_augmentations(name, 32):
        out = aug(x)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        assert not torch.allclose(out, x)
    # a different output size
    out = build_augmentation(preset("weak"), 24)(x)
    assert out.shape == (64, 3, 24, 24)


def test_augmentation_ignores_autocast():
    """A view runs with autocast off: in float32 and bit for bit as without autocast, also an op
    that autocast would run in bf16 (a matmul; none of today's ops is one on the CPU)."""
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    aug = build_augmentation(preset("standard"), 16)
    torch.manual_seed(1)
    plain = aug(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(1)
        out = aug(x)
        matmul = A.Augmentation(torch.nn.Linear(16, 16))(x)
    assert out.dtype == torch.float32 and torch.equal(out, plain)
    assert matmul.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_pipeline_on_cuda_matches_cpu_application():
    torch.manual_seed(0)
    x = torch.rand(256, 3, 32, 32, device="cuda")
    for aug in build_view_augmentations("asym_standard", 32):
        out = aug(x)
        assert out.device == x.device and out.shape == x.shape
        assert 0 <= out.min().item() and out.max().item() <= 1
        for op in aug:  # parameters drawn on the device, applied alike on the CPU
            p = op.sample(x)
            assert all(v.device == x.device for v in p.values())
            cpu = op.apply(x.cpu(), {k: v.cpu() for k, v in p.items()})
            torch.testing.assert_close(op.apply(x, p).cpu(), cpu, atol=1e-5, rtol=0)


def test_asymmetric_methods_train_with_the_asymmetric_preset():
    from pipeline.vocab.augmentation import trained_preset

    assert trained_preset("simclr", "weak") == "weak"
    assert trained_preset("mocov2plus", "mild") == "mild"
    assert trained_preset("byol", "weak") == "asym_weak"
    assert trained_preset("barlow", "standard") == "asym_standard"
