"""Batched two-view augmentation on the device, with per-sample random parameters and torchvision semantics.

Presets follow the AdaInf authors' CIFAR configs:

- symmetric (SimCLR, MoCo): `standard` is the usual SimCLR recipe, `weak` is AdaInf's weaker one
  (crop min scale 0.08 → 0.2, jitter probability 0.8 → 0.4, jitter strength halved);
- asymmetric (BYOL, Barlow Twins): `asym_standard` and `asym_weak`, jitter 0.4/0.4/0.2/0.1, no blur,
  and solarization on the second view only (p 0.2).

Every op draws its parameters per sample, on the batch's device, from the distributions of the
torchvision transform the SSL recipes were written with. The colour ops apply torchvision's tensor
formulas (checked to ~1e-5 against ``torchvision.transforms.functional`` in tests/test_augment.py).
The resize of RandomResizedCrop and the Gaussian blur follow what the authors' pipeline ran: PIL
images, i.e. Pillow's bicubic resample and Pillow's GaussianBlur (three extended box blurs per
axis), each pass rounded to uint8; they agree with PIL on uint8 images to within one grey level
(tests/test_augment.py). The ops are vectorised over the batch, have no host synchronisation and
no per-sample Python loop.

Where this still differs from the authors' PIL pipeline: the colour ops run in float (PIL's
ColorJitter rounds to uint8 after each adjustment and uses its own grey weights), and the image
stays float between ops; only the resize and blur passes are rounded to the 8-bit grid.

Why not the kornia ops this module used before (kornia 0.9.0, checked against torchvision 0.29):

- ``K.RandomResizedCrop``: its sampler (``ResizedCropGenerator``) draws the same distribution as
  torchvision's ``get_params`` (area fraction uniform in ``scale``, log-uniform aspect ratio, 10
  attempts), but the fallback crop is placed at a random position instead of centred, and its
  resize is not Pillow's bicubic. Here: the same sampler written on the device with the centred
  fallback, and Pillow's bicubic resample written as per-sample taps.
- ``K.ColorJitter``: per-sample factors and torchvision's formulas, but (a) the grayscale used by
  contrast and saturation has weights 0.299/0.587/0.114 where torchvision uses 0.2989/0.587/0.114, (b)
  its hue goes through kornia's own HSV conversion, and (c) the order of the four adjustments is drawn
  once per batch (torchvision draws one per call, i.e. per image) and each step is guarded by a
  host-synchronising ``.any()``. Here: per-sample factors *and* a per-sample random order.
- ``K.RandomGrayscale``: the 0.299 weight again; here torchvision's weights.
- ``K.RandomGaussianBlur`` is a true Gaussian kernel of a fixed size (a 3-tap kernel at 32 px
  spreads under 0.8 px whatever sigma); PIL's blur, which the authors used, spreads ~2 px at
  sigma 2. ``K.RandomSolarize(thresholds=0.0)`` and ``K.RandomHorizontalFlip`` match torchvision;
  they are rewritten here only so that every op shares one sampling/application interface, runs
  without host syncs and is exactly reproducible in tests.
"""

from __future__ import annotations

import abc
import math
import torch
import torch.nn as nn

# The presets live in a torch-free module (the Snakefile reads them); re-exported here.
from pipeline.vocab.augmentation import AugParams, as_dict, preset, view_params

__all__ = ["AugParams", "as_dict", "preset", "view_params", "build_augmentation"]


# ---------------------------------------------------------------------------------------------
# Functional ops: batched, per-sample parameters, torchvision's formulas. x is N×C×H×W float.

def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


def _select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(a.device).view(-1, *([1] * (a.ndim - 1))), a, b)


def sample_crop_params(n: int, height: int, width: int, scale: tuple[float, float],
                       ratio: tuple[float, float] = (3 / 4, 4 / 3), device=None) -> dict:
    """`torchvision.transforms.RandomResizedCrop.get_params` for n samples at once.

    Area fraction uniform in `scale`, aspect ratio (w/h) log-uniform in `ratio`, rounded to whole
    pixels; the first of 10 candidates that fits is taken, else torchvision's centred fallback.
    Returns long tensors top, left, height, width of shape (n,).
    """
    area = height * width
    frac = torch.empty(n, 10, device=device).uniform_(scale[0], scale[1])
    log_r = torch.empty(n, 10, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    target, aspect = frac * area, torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))  # round half to even, like Python's round
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = (fits.cumsum(1) == 0).sum(1, keepdim=True).clamp(max=9)  # index of the first fit
    found = fits.any(1)
    w = w.gather(1, first).squeeze(1).long()
    h = h.gather(1, first).squeeze(1).long()
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    h = torch.where(found, h, torch.full_like(h, fh))
    w = torch.where(found, w, torch.full_like(w, fw))
    # uniform integer offsets in [0, H - h], as torch.randint(0, H - h + 1)
    top = (torch.rand(n, device=device) * (height - h + 1)).floor().long().clamp(max=height - h)
    left = (torch.rand(n, device=device) * (width - w + 1)).floor().long().clamp(max=width - w)
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return {"top": top, "left": left, "height": h, "width": w}


def _bicubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Pillow's bicubic filter (a = -0.5; PyTorch's bicubic uses a = -0.75)."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _pil_taps(start: torch.Tensor, length: torch.Tensor, out: int, max_length: int):
    """Source indices and fixed-point weights of Pillow's bicubic resample (ImagingResample on
    8-bit images) from the segment [start, start + length) to `out` pixels, per sample.

    As Pillow: centre (i + 0.5)·scale, support 2·max(scale, 1), taps truncated at the segment's
    ends and renormalised (no edge replication), coefficients computed in double and rounded to
    22-bit integers. Returns (index: long, weight: integer-valued float64), each n×out×taps;
    unused taps weigh 0."""
    dev = start.device
    scale = length.to(torch.float64) / out
    filterscale = scale.clamp(min=1.0)
    support = 2.0 * filterscale
    taps = int(math.ceil(2.0 * max(max_length / out, 1.0))) * 2 + 1
    centre = (torch.arange(out, device=dev, dtype=torch.float64) + 0.5) * scale[:, None]
    xmin = torch.floor(centre - support[:, None] + 0.5).clamp(min=0)  # C's (int) of a value >= 0
    xmax = torch.minimum(torch.trunc(centre + support[:, None] + 0.5), length[:, None].double())
    j = xmin[..., None] + torch.arange(taps, device=dev, dtype=torch.float64)
    w = _bicubic((j - centre[..., None] + 0.5) / filterscale[:, None, None])
    w = torch.where(j < xmax[..., None], w, torch.zeros_like(w))
    w = w / w.sum(-1, keepdim=True) * (1 << _PIL_BITS)
    w = torch.where(w < 0, torch.ceil(w - 0.5), torch.floor(w + 0.5))  # (int)(w ± 0.5)
    idx = torch.minimum(start[:, None, None] + j.long(), (start + length - 1)[:, None, None])
    return idx, w


_PIL_BITS = 22  # Pillow's PRECISION_BITS for 8-bit images


# Pillow's integer arithmetic is done here in float64, exact for these integers (< 2^53) and
# faster than int64 on CPUs and GPUs.
def _to_levels(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] to integer grey levels (as float64), rounded as an 8-bit image stores them."""
    return torch.floor(x.double() * 255 + 0.5).clamp_(0, 255)


def _shift_down(acc: torch.Tensor, bits: int) -> torch.Tensor:
    """acc >> bits for integer-valued float64, then clipped to uint8 as Pillow's clip8."""
    return torch.floor(acc / (1 << bits)).clamp_(0, 255)


def resized_crop(x: torch.Tensor, top, left, height, width, size: tuple[int, int]) -> torch.Tensor:
    """Per-sample crop (top, left, height, width: (N,) tensors) resized to `size` as the authors'
    RandomResizedCrop on PIL images does it: torchvision crops, then Pillow's bicubic resample
    (a = -0.5, antialiased support when shrinking, taps truncated at the crop's edges),
    horizontally then vertically, in Pillow's fixed-point integer arithmetic, each pass rounded to
    uint8. The input is read on the 8-bit grid (as the uint8 images it comes from); the output
    equals PIL's (tests/test_augment.py allow one grey level)."""
    n, c, in_h, in_w = x.shape
    out_h, out_w = size
    xi, xw = _pil_taps(left.to(x.device), width.to(x.device), out_w, in_w)
    yi, yw = _pil_taps(top.to(x.device), height.to(x.device), out_h, in_h)
    v = _to_levels(x)
    half = 1 << (_PIL_BITS - 1)
    cols = half
    for t in range(xi.shape[-1]):  # horizontal pass: N×C×H×out_w
        idx = xi[:, None, None, :, t].expand(n, c, in_h, out_w)
        cols = cols + v.gather(3, idx) * xw[:, None, None, :, t]
    cols = _shift_down(cols, _PIL_BITS)
    out = half
    for t in range(yi.shape[-1]):  # vertical pass: N×C×out_h×out_w
        idx = yi[:, None, :, None, t].expand(n, c, out_h, out_w)
        out = out + cols.gather(2, idx) * yw[:, None, :, None, t]
    return (_shift_down(out, _PIL_BITS) / 255).to(x.dtype)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """torchvision's luma (0.2989, 0.587, 0.114), one channel."""
    r, g, b = x.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    ratio = _per_sample(ratio, a)
    return (ratio * a + (1.0 - ratio) * b).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, rgb_to_grayscale(x), factor)


def _rgb2hsv(img: torch.Tensor) -> torch.Tensor:
    # torchvision's (after Pillow's) conversion
    r, g, b = img.unbind(dim=-3)
    maxc = img.max(dim=-3).values
    minc = img.min(dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv2rgb(img: torch.Tensor) -> torch.Tensor:
    # torchvision's conversion, with a gather in place of its mask einsum (no autocast, exact)
    h, s, v = img.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = torch.stack([torch.stack(c, dim=-3) for c in
                         ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))], dim=-4)
    idx = i.unsqueeze(-3).unsqueeze(-3).expand(*i.shape[:-2], 3, 1, *i.shape[-2:])
    return table.gather(-3, idx).squeeze(-3)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_hue with a per-sample factor in [-0.5, 0.5] (a fraction of a turn)."""
    h, s, v = _rgb2hsv(x).unbind(dim=-3)
    h = (h + _per_sample(factor, h)) % 1.0
    return _hsv2rgb(torch.stack((h, s, v), dim=-3))


_COLOUR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor,
                 enabled: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> torch.Tensor:
    """torchvision's ColorJitter with per-sample factors (N×4: brightness, contrast, saturation, hue)
    and a per-sample order (N×4, a permutation of 0..3 per row). Disabled adjustments are skipped
    (torchvision skips those of strength 0). Every enabled op runs on the whole batch at each of the
    four positions and each sample keeps the result its own order asks for there."""
    out = x
    for k in range(4):
        new = out
        for j, fn in enumerate(_COLOUR_OPS):
            if enabled[j]:
                new = _select(order[:, k] == j, fn(out, factors[:, j]), new)
        out = new
    return out


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    return torch.where(x >= threshold, 1.0 - x, x)


def pil_box_radius(sigma: torch.Tensor, passes: int = 3) -> torch.Tensor:
    """The extended-box radius Pillow's GaussianBlur(radius=sigma) uses for each of its `passes`
    box blurs (Gwosdek et al. 2011, Pillow's _gaussian_blur_radius), in float32 as Pillow."""
    s2 = sigma.float() ** 2 / passes
    length = torch.sqrt(12 * s2 + 1)
    l = torch.floor((length - 1) / 2)
    return l + (2 * l + 1) * (l * (l + 1) - 3 * s2) / (6 * (s2 - (l + 1) ** 2))


def _box_blur_pass(v: torch.Tensor, radius: torch.Tensor, dim: int, reach: int) -> torch.Tensor:
    """One pass of Pillow's extended box blur (ImagingHorizontalBoxBlur) along `dim` on integer
    grey levels v (float64), per-sample float radius r: weight ww = 2^24/(2r+1) (float32 division,
    as Pillow) on the 2⌊r⌋+1 centre taps, the remainder fw split over the next two; edges
    replicated; (Σ + 2^23) >> 24, i.e. rounded to uint8 as Pillow stores each pass."""
    r = radius.float()
    whole = torch.floor(r)
    ww = torch.floor(torch.tensor(2.0 ** 24, device=r.device) / (2 * r + 1)).double()
    whole = whole.double()
    fw = torch.floor((2 ** 24 - (2 * whole + 1) * ww) / 2)
    pad = [0, 0, reach, reach] if dim == -2 else [reach, reach, 0, 0]
    vp = nn.functional.pad(v, pad, mode="replicate")
    size = v.shape[dim]
    out = 1 << 23
    for i in range(-reach, reach + 1):
        w = torch.where(whole >= abs(i), ww, torch.where(whole + 1 == abs(i), fw, 0.0))
        out = out + w.view(-1, 1, 1, 1) * vp.narrow(dim, reach + i, size)
    return _shift_down(out, 24)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """PIL's ImageFilter.GaussianBlur(radius=sigma) with a per-sample sigma: three extended box
    blurs horizontally, then three vertically, in Pillow's integer arithmetic, each rounded to
    uint8, edges replicated (Pillow's ImagingGaussianBlur). The input is read on the 8-bit grid
    (PIL blurs uint8 images); the output equals PIL's (tests allow one grey level). `max_sigma`
    bounds the taps (default: the batch's largest sigma, which costs a host sync)."""
    sigma = sigma.to(x.device)
    top = float(sigma.max()) if max_sigma is None else max_sigma
    reach = int(pil_box_radius(torch.tensor(top)).floor()) + 1
    radius = pil_box_radius(sigma)
    v = _to_levels(x)
    for dim in (-1, -2):
        for _ in range(3):
            v = _box_blur_pass(v, radius, dim, reach)
    return (v / 255).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Random ops: `sample(x)` draws one set of parameters per sample (on x's device) and `apply(x, p)`
# applies them, so that tests can look at the parameters and replay them.

class RandomOp(nn.Module, abc.ABC):
    @abc.abstractmethod
    def sample(self, x: torch.Tensor) -> dict:
        """One set of random parameters per sample."""

    @abc.abstractmethod
    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """The op with the given parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x))


def _coin(n: int, p: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) < p


class RandomResizedCrop(RandomOp):
    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        super().__init__()
        self.size, self.scale, self.ratio = (size, size), tuple(scale), tuple(ratio)

    def sample(self, x):
        return sample_crop_params(x.shape[0], x.shape[-2], x.shape[-1], self.scale, self.ratio,
                                  device=x.device)

    def apply(self, x, p):
        return resized_crop(x, p["top"], p["left"], p["height"], p["width"], self.size)

    def extra_repr(self):
        return f"size={self.size}, scale={self.scale}, ratio={tuple(round(r, 4) for r in self.ratio)}"


class _CoinOp(RandomOp):
    """An op applied to each sample with probability p."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def sample(self, x):
        return {"apply": _coin(x.shape[0], self.p, x.device)}

    def extra_repr(self):
        return f"p={self.p}"


class RandomHorizontalFlip(_CoinOp):
    def apply(self, x, p):
        return _select(p["apply"], x.flip(-1), x)


class RandomColorJitter(RandomOp):
    """RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p), per sample: factors
    uniform in [max(0, 1 - s), 1 + s] (hue in [-h, h]) and a random order of the four adjustments,
    all drawn independently for every sample, as torchvision does for every image it is called on."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float,
                 p: float = 1.0):
        super().__init__()
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.strengths = (float(brightness), float(contrast), float(saturation), float(hue))
        self.p = p

    def sample(self, x):
        n, dev = x.shape[0], x.device
        b, c, s, h = self.strengths
        lo = (max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h)
        hi = (1 + b, 1 + c, 1 + s, h)
        u = torch.rand(n, 4, device=dev)  # (python bounds: no host-to-device copy, no sync)
        factors = torch.stack([lo[j] + (hi[j] - lo[j]) * u[:, j] for j in range(4)], dim=1)
        order = torch.rand(n, 4, device=dev).argsort(dim=1)  # a uniform random permutation per row
        return {"apply": _coin(n, self.p, dev), "factors": factors, "order": order}

    def apply(self, x, p):
        enabled = tuple(s > 0 for s in self.strengths)
        return _select(p["apply"], color_jitter(x, p["factors"], p["order"], enabled), x)

    def extra_repr(self):
        return "brightness={}, contrast={}, saturation={}, hue={}, ".format(*self.strengths) + f"p={self.p}"


class RandomGrayscale(_CoinOp):
    def apply(self, x, p):
        return _select(p["apply"], rgb_to_grayscale(x).expand_as(x), x)


class RandomSolarize(_CoinOp):
    """torchvision RandomSolarize(threshold=0.5, p) on float images."""

    def apply(self, x, p):
        return _select(p["apply"], solarize(x, 0.5), x)


class RandomGaussianBlur(RandomOp):
    """RandomApply([PIL GaussianBlur(radius=sigma)], p) with sigma uniform in `sigma` per sample,
    as the authors' solo-learn pipeline on PIL images."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5):
        super().__init__()
        self.sigma, self.p = tuple(sigma), p

    def sample(self, x):
        n, dev = x.shape[0], x.device
        sigma = torch.empty(n, device=dev).uniform_(*self.sigma)
        return {"apply": _coin(n, self.p, dev), "sigma": sigma}

    def apply(self, x, p):
        return _select(p["apply"], gaussian_blur(x, p["sigma"], max_sigma=self.sigma[1]), x)

    def extra_repr(self):
        return f"sigma={self.sigma}, p={self.p}"


class Augmentation(nn.Sequential):
    """One view: the random ops in sequence. Runs in the input's precision even under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            for op in self:
                x = op(x)
        return x


def build_augmentation(params: AugParams, size: int) -> Augmentation:
    """A module mapping a float batch in [0, 1] (N×3×H×W) to one augmented view of it (N×3×size×size)."""
    p = params
    ops = [
        RandomResizedCrop(size, scale=(p.crop_min_scale, 1.0)),
        RandomHorizontalFlip(p=p.flip_prob),
        RandomColorJitter(p.brightness, p.contrast, p.saturation, p.hue, p=p.jitter_prob),
        RandomGrayscale(p=p.grayscale_prob),
        RandomGaussianBlur(sigma=(0.1, 2.0), p=p.blur_prob),
        RandomSolarize(p=p.solarize_prob),
    ]
    # ops that never apply are left out (the crop always applies)
    return Augmentation(*[op for op in ops if getattr(op, "p", 1.0) > 0])


def build_view_augmentations(name_or_params, size: int,
                             **overrides) -> tuple[Augmentation, Augmentation]:
    """The two views' modules, from a preset name (with overrides) or a pair of AugParams."""
    aug_params = (view_params(name_or_params, **overrides) if isinstance(name_or_params, str)
                  else name_or_params)
    return tuple(build_augmentation(v, size) for v in aug_params)
