"""The config schema (config.schema.yaml beside this module, package data), read once: every
key's type, range, description and closed list of names. Snakemake's `validate` takes the schema
as a file (workflow/Snakefile passes SCHEMA_PATH), so the file is the one declaration; Python
reads its names (pipeline.vocab.names) and option help (pipeline.vocab.options) from it rather
than keeping copies."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml

# found through the package, wherever it is installed or run from (a path, for Snakemake)
SCHEMA_PATH = Path(str(resources.files("pipeline.vocab") / "config.schema.yaml"))


@cache
def schema() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: ten times faster
    return yaml.load(SCHEMA_PATH.read_text(), Loader=loader)


def schema_entry(key: str) -> dict:
    """The schema's entry of a dotted key (`*`: any name of a mapping, `[]`: an array's items),
    its $ref resolved."""
    node = schema()
    for part in key.split("."):
        if part == "*":
            node = node["additionalProperties"]
        elif part == "[]":
            node = node["items"]
        else:
            node = node["properties"][part]
    ref = node.get("$ref")
    if ref:
        node = {**schema()["$defs"][ref.removeprefix("#/$defs/")], **node}
    return node


def names(key: str) -> tuple[str, ...]:
    """The closed list of names a key takes (its enum, null left out), in the schema's order."""
    return tuple(v for v in schema_entry(key)["enum"] if v is not None)
