"""The config schema's enums and the Python vocabulary (pipeline.vocab) name the same things: a
name added to one and not the other fails here, not in a user's run."""

from __future__ import annotations

import yaml

from support.snakemake import REPO
from pipeline.pretraining.methods import METHODS as METHOD_CLASSES
from pipeline.vocab import names
from pipeline.vocab.augmentation import PRESET_VIEWS
from pipeline.vocab.schema import SCHEMA_PATH

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def enum(*path: str) -> list:
    node = SCHEMA
    for key in path:
        node = node[key]
    return [v for v in node["enum"] if v is not None]


def test_the_schemas_own_repeats_of_a_list_are_that_list():
    """pipeline.vocab.names reads each list from one enum of the schema; where the schema must
    repeat a list (JSON Schema has no enum by reference), the repeat is the list."""
    p = ("properties",)
    assert enum(*p, "sampling", "properties", "precision") == list(names.PRECISIONS)
    strategy = SCHEMA["properties"]["strategies"]
    assert strategy["propertyNames"]["not"]["enum"] == [names.RANDOM_INIT, names.AUTO]
    assert (SCHEMA["properties"]["pretrain"]["properties"]["method_args"]["propertyNames"]["enum"]
            == list(names.METHODS))
    assert (SCHEMA["properties"]["pretrain"]["properties"]["method_augmentation"]
            ["additionalProperties"]["propertyNames"]["enum"] == list(names.STRATEGY_PRESETS))
    auto = SCHEMA["properties"]["auto"]["properties"]["candidates"]["properties"]
    assert auto["augmentation"]["items"]["enum"] == list(names.STRATEGY_PRESETS)


def test_the_names_are_the_schemas_enums():
    """A few lists by hand (the schema is where a name is added; this pins the reading)."""
    assert names.METHODS == ("simclr", "mocov2plus", "byol", "barlow")
    assert names.PROTOCOLS == ("online", "offline", "features")
    assert names.SYMMETRIC_PRESETS == ("standard", "weak", "mild")
    assert "generated_keep" in names.SWEEPABLE and "generated" in names.CANDIDATE_SETTINGS
    assert names.OPTIMIZERS == ("lars", "sgd", "adamw")  # a nullable enum: null left out


def test_the_code_serves_every_name():
    assert tuple(METHOD_CLASSES) == names.METHODS
    assert tuple(PRESET_VIEWS) == names.SYMMETRIC_PRESETS + names.ASYMMETRIC_PRESETS
    assert all(PRESET_VIEWS[name][0] == PRESET_VIEWS[name][1] for name in names.SYMMETRIC_PRESETS)


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
