"""The conda environment of the workflow's jobs (envs/pipeline.yaml) installs what pyproject.toml
asks for, pins included: one list of requirements, written twice."""

from __future__ import annotations

import tomllib

import yaml

from support.snakemake import REPO


def test_the_job_environment_has_pyproject_s_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "pipeline.yaml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    assert pip == project["dependencies"]
