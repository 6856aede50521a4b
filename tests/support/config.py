"""The workflow's config as the tests read it: config.yaml, with --configfile layers merged over
it key by key as Snakemake merges them, checked against the schema."""

from __future__ import annotations

from pathlib import Path

import yaml
from snakemake.utils import update_config, validate

from support.snakemake import REPO
from pipeline.vocab.schema import SCHEMA_PATH

SCHEMA = SCHEMA_PATH


def load_config(*configfiles: Path) -> dict:
    """A fresh dict of config.yaml merged with `configfiles` in order, validated (the schema
    fills in nothing: what the files leave out is config.yaml's)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(SCHEMA))
    return config
