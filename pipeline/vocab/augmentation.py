"""Augmentation presets: plain parameters, no torch, so the workflow can read them when it plans."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from pipeline.vocab.names import ASYMMETRIC_METHODS, ASYMMETRIC_PRESETS, SYMMETRIC_PRESETS


@dataclass(frozen=True)
class AugParams:
    crop_min_scale: float = 0.08
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    solarize_prob: float = 0.0


_ASYM_VIEW = AugParams(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, blur_prob=0.0)


def _both(params: AugParams) -> tuple[AugParams, AugParams]:
    return params, params


# Every preset's (view 1, view 2) parameters, by name: the symmetric presets
# (pipeline.vocab.names.SYMMETRIC_PRESETS, both views alike; `preset(name)` serves these), then
# the asymmetric ones of BYOL and Barlow Twins (ASYMMETRIC_PRESETS): only the solarization differs.
PRESET_VIEWS = {
    "standard": _both(AugParams()),
    "weak": _both(AugParams(crop_min_scale=0.2, jitter_prob=0.4, brightness=0.4, contrast=0.4,
                            saturation=0.4, hue=0.1)),
    # standard's crop with half its jitter strengths: solo-learn's cifar symmetric_weak.yaml, the
    # default of the authors' MoCo V2+ file (pipeline.dag.job_params.method_preset maps to it)
    "mild": _both(AugParams(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)),
    "asym_standard": (_ASYM_VIEW, replace(_ASYM_VIEW, solarize_prob=0.2)),
    "asym_weak": (replace(_ASYM_VIEW, crop_min_scale=0.2, jitter_prob=0.4),
                  replace(_ASYM_VIEW, crop_min_scale=0.2, jitter_prob=0.4, solarize_prob=0.2)),
}

_JITTER_FIELDS = ("brightness", "contrast", "saturation", "hue")


def _apply_overrides(params: AugParams, overrides: dict) -> AugParams:
    """Field overrides (None ignored; an unknown field raises TypeError), then `jitter_strength`,
    a multiplier of brightness/contrast/saturation/hue (the paper's Fig. 3 sweep)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    strength = overrides.pop("jitter_strength", None)
    params = replace(params, **overrides)
    if strength is not None:
        if strength < 0:
            raise ValueError(f"jitter_strength must be >= 0, got {strength}")
        params = replace(params, **{f: getattr(params, f) * strength for f in _JITTER_FIELDS})
    if not 0 <= params.hue <= 0.5:
        raise ValueError(f"hue strength must be in [0, 0.5] (as in torchvision), got {params.hue}")
    return params


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESET_VIEWS)}")


def preset(name: str, **overrides) -> AugParams:
    """The parameters of a symmetric preset (both views alike), with `overrides` applied."""
    if name in ASYMMETRIC_PRESETS:
        raise ValueError(f"augmentation preset {name!r} is asymmetric (its two views differ); "
                         "use view_params()")
    if name not in SYMMETRIC_PRESETS:
        raise _unknown(name)
    return _apply_overrides(PRESET_VIEWS[name][0], overrides)


def view_params(name: str, **overrides) -> tuple[AugParams, AugParams]:
    """The two views' parameters of any preset, with the same `overrides` applied to both."""
    if name not in PRESET_VIEWS:
        raise _unknown(name)
    return tuple(_apply_overrides(p, overrides) for p in PRESET_VIEWS[name])


def trained_preset(method: str, preset: str) -> str:
    """The preset `method` trains with where it is asked for the symmetric `preset` (a strategy's,
    or pretrain.method_augmentation's): `asym_PRESET` for BYOL and Barlow Twins (their two views
    differ), `preset` itself for the others. The workflow passes this name to the stage
    (pipeline.dag.job_params.method_preset), so a job's tracked --augmentation is the preset that
    runs; the stage accepts only the names this function gives for its method."""
    return f"asym_{preset}" if method in ASYMMETRIC_METHODS else preset


def as_dict(params: AugParams) -> dict:
    """The parameters as a plain dict (what a run's history.json records)."""
    return asdict(params)
