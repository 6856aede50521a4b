"""The config schema's enums and the Python vocabulary (pipeline.vocab) name the same things: a
name added to one and not the other fails here, not in a user's run."""

from __future__ import annotations

import yaml

from support.snakemake import REPO
from pipeline.pretraining.methods import METHODS as METHOD_CLASSES
from pipeline.vocab import names
from pipeline.vocab.augmentation import ASYM_PRESETS, PRESETS

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def enum(*path: str) -> list:
    node = SCHEMA
    for key in path:
        node = node[key]
    return [v for v in node["enum"] if v is not None]


def test_the_schema_enums_are_the_vocabulary():
    p = ("properties",)
    assert enum(*p, "experiments", "properties", "methods", "items") == list(names.METHODS)
    assert enum(*p, "pretrain", "properties", "optimizer") == list(names.OPTIMIZERS)
    assert enum(*p, "pretrain", "properties", "precision") == list(names.PRECISIONS)
    assert enum(*p, "sampling", "properties", "sampler") == list(names.SAMPLERS)
    assert enum(*p, "sampling", "properties", "precision") == list(names.PRECISIONS)
    assert enum(*p, "fid", "properties", "features") == list(names.FID_FEATURES)
    assert enum(*p, "fid", "properties", "precision") == list(names.FID_PRECISIONS)
    assert enum(*p, "linear_eval", "properties", "protocols", "items") == list(names.PROTOCOLS)
    assert enum(*p, "real", "properties", "source") == list(names.REAL_SOURCES)
    assert enum(*p, "generator", "properties", "source") == list(names.GENERATOR_SOURCES)
    assert enum(*p, "quality", "properties", "score") == list(names.QUALITY_SCORES)
    strategy = SCHEMA["properties"]["strategies"]
    assert (strategy["additionalProperties"]["properties"]["augmentation"]["enum"]
            == list(names.AUGMENTATIONS))
    assert strategy["propertyNames"]["not"]["enum"] == [names.RANDOM_INIT, names.AUTO]
    assert (SCHEMA["properties"]["pretrain"]["properties"]["method_args"]["propertyNames"]["enum"]
            == list(names.METHODS))
    assert (SCHEMA["properties"]["pretrain"]["properties"]["method_augmentation"]
            ["additionalProperties"]["additionalProperties"]["enum"] == list(names.SYMMETRIC_PRESETS))
    assert (SCHEMA["properties"]["pretrain"]["properties"]["method_augmentation"]
            ["additionalProperties"]["propertyNames"]["enum"] == list(names.AUGMENTATIONS))
    auto = SCHEMA["properties"]["auto"]["properties"]["candidates"]["properties"]
    assert list(auto) == list(names.CANDIDATE_SETTINGS)
    assert auto["augmentation"]["items"]["enum"] == list(names.AUGMENTATIONS)
    sweep = SCHEMA["properties"]["experiments"]["properties"]["sweeps"]["items"]["properties"]
    assert sweep["setting"]["enum"] == list(names.SWEEPABLE)
    assert enum(*p, "logging", "properties", "wandb", "properties", "mode") == list(names.WANDB_MODES)


def test_the_code_serves_every_name():
    assert tuple(METHOD_CLASSES) == names.METHODS
    assert tuple(PRESETS) == names.SYMMETRIC_PRESETS
    assert tuple(ASYM_PRESETS) == names.ASYMMETRIC_PRESETS


def _undescribed(node: dict, path: str = "") -> list[str]:
    """The schema's keys without a `description`, as dotted paths (`*` for any strategy name)."""
    missing = []
    for key, sub in node.get("properties", {}).items():
        here = f"{path}.{key}".lstrip(".")
        if "description" not in sub:
            missing.append(here)
        missing += _undescribed(sub, here)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        missing += _undescribed(extra, f"{path}.*")
    return missing


def test_every_config_key_is_described_once_in_the_schema():
    assert _undescribed(SCHEMA) == []
    assert _undescribed({"properties": {"x": {"properties": {"y": {}}}}}) == ["x", "x.y"]
