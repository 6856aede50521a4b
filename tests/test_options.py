"""pipeline.vocab.options: each stage option declared once, and the three things built from it
(the stage's parser, the rule's options, the config keys) agree."""

from __future__ import annotations

import importlib
from dataclasses import MISSING
from pathlib import Path

import pytest
import yaml

from pipeline.dag.job_params import stage_args
from pipeline.vocab.options import STAGES, TRACKING, config_value, option, schema_entry

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
DECLARED = [(stage, o) for stage, declared in {**STAGES, "tracking": TRACKING}.items()
            for o in declared]


@pytest.mark.parametrize("stage,o", DECLARED, ids=[f"{s}{o.flag}" for s, o in DECLARED])
def test_every_declared_key_is_in_the_schema_and_config_yaml(stage, o):
    if o.key is None:
        assert o.help, f"{stage} {o.flag}: an option that is no config key needs its own help"
        return
    assert schema_entry(o.key)["description"]
    if "*" not in o.key:  # not a strategy's (`strategies.*.dup`): config.yaml holds its value
        config_value(DEFAULT, o.key)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_stage_s_parser_is_its_declaration(stage):
    """Every declared option, with the schema's description as its help, and nothing else
    besides the shared groups (live curves, --device, --threads)."""
    parser = importlib.import_module(f"pipeline.{stage}").build_parser()
    actions = {s: a for a in parser._actions for s in a.option_strings}
    for o in STAGES[stage]:
        assert o.flag in actions, f"{stage}: {o.flag} declared, not in the parser"
        if o.key is not None:
            assert actions[o.flag].help.startswith(schema_entry(o.key)["description"])
    shared = {"-h", "--help", "--device", "--threads", *(o.flag for o in TRACKING)}
    assert set(actions) - shared == {o.flag for o in STAGES[stage]}


def test_pretrain_steps_is_declared_once():
    """The issue's example: the flag and key in one declaration; the parser's type and help
    from the schema; the rule's value from the config; no default of its own anywhere."""
    from pipeline.pretrain import build_parser
    from pipeline.pretraining.loop import PretrainConfig

    (steps,) = [o for o in STAGES["pretrain"] if o.flag == "--steps"]
    assert steps.key == "pretrain.steps" and steps.tracked
    action = {a.dest: a for a in build_parser()._actions}["steps"]
    assert action.type is int and action.required
    assert action.help.startswith(schema_entry("pretrain.steps")["description"])
    config = {**DEFAULT, "pretrain": {**DEFAULT["pretrain"], "steps": 321}}
    assert "--steps 321" in stage_args(STAGES["pretrain"], config)
    assert PretrainConfig.__dataclass_fields__["steps"].default is MISSING  # required


def test_stage_args_reads_the_config_gives_computed_values_and_refuses_unknown_names():
    declared = (option("--steps", "pretrain.steps"), option("--batch-size", "pretrain.batch_size"),
                option("--dup", "strategies.*.dup", computed=True),
                option("--compile", "pretrain.compile", tracked=False),
                option("--method-arg", help="h", computed=True, action="append"))
    config = {"pretrain": {"steps": 5, "batch_size": 8, "compile": True}}
    assert stage_args(declared, config) == "--steps 5 --batch-size 8"
    assert stage_args(declared, config, dup=3, method_arg=["a=1", "b=2"]) == \
        "--steps 5 --batch-size 8 --dup 3 --method-arg a=1 --method-arg b=2"
    assert stage_args(declared, config, only=("steps",), steps=0) == "--steps 0"
    assert stage_args(declared, config, tracked=False) == "--compile"
    with pytest.raises(ValueError, match="stepz"):
        stage_args(declared, config, stepz=1)
