"""pipeline.vocab.options: each stage option declared once, and the three things built from it
(the stage's parser, the rule's options, the config keys) agree."""

from __future__ import annotations

import argparse
import importlib
import shlex
from dataclasses import MISSING
from pathlib import Path

import pytest
import yaml

from pipeline.dag.job_params import stage_args
from pipeline.vocab import options
from pipeline.vocab.options import (COMMON, FETCH_ASSETS, STAGES, TRACKING, config_value, option,
                                    schema_entry)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
# every list of declarations: the stages', fetch's assets', and the groups stages share
LISTS = {**STAGES, **{f"fetch {a}": d for a, d in FETCH_ASSETS.items()}, "tracking": TRACKING,
         "common": COMMON}
DECLARED = [(stage, o) for stage, declared in LISTS.items() for o in declared]


@pytest.mark.parametrize("stage,o", DECLARED, ids=[f"{s}{o.flag}" for s, o in DECLARED])
def test_every_declared_key_is_in_the_schema_and_config_yaml(stage, o):
    if o.key is None:
        assert o.help, f"{stage} {o.flag}: an option that is no config key needs its own help"
        return
    assert schema_entry(o.key)["description"]
    if "*" not in o.key:  # not a strategy's (`strategies.*.dup`): config.yaml holds its value
        config_value(DEFAULT, o.key)


def parser_options(parser: argparse.ArgumentParser) -> dict:
    """{flag, or a positional's name: its action}, subcommands and -h left out."""
    return {s: a for a in parser._actions
            if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))
            for s in a.option_strings or [a.dest]}


def assert_built_from(parser: argparse.ArgumentParser, declared, where: str) -> None:
    actions = parser_options(parser)
    for o in declared:
        assert o.flag in actions, f"{where}: {o.flag} declared, not in the parser"
        if o.key is not None:
            assert actions[o.flag].help.startswith(schema_entry(o.key)["description"])
        else:
            assert actions[o.flag].help == o.help, f"{where} {o.flag}: help not the declared"
    shared = {o.flag for o in (*TRACKING, *COMMON)}
    assert set(actions) - shared == {o.flag for o in declared}, where


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_stage_s_parser_is_its_declaration(stage):
    """Every declared option, with the schema's description (or its own help) as its help, and
    nothing else besides the shared groups (live curves, --device, --threads): every stage's
    --help is built from pipeline.vocab.options."""
    parser = importlib.import_module(f"pipeline.{stage}").build_parser()
    assert_built_from(parser, STAGES[stage], stage)
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if stage == "fetch":
        (sub,) = subcommands
        assert set(sub.choices) == set(FETCH_ASSETS)
        for asset, subparser in sub.choices.items():
            assert_built_from(subparser, FETCH_ASSETS[asset], f"fetch {asset}")
    else:
        assert not subcommands


def test_no_stage_declares_an_option_by_hand():
    """argparse's add_argument is called in one place, pipeline.core.cli.add_options, which
    reads pipeline.vocab.options' declarations."""
    by_hand = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "pipeline").rglob("*.py"))
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if "add_argument(" in line and path.name != "cli.py"]
    assert not by_hand, by_hand


def test_no_option_is_declared_twice():
    """Within a list a flag once; a config key under one flag everywhere; an option that two
    lists share (the same flag, help and settings) is one declaration they both name."""
    for where, declared in LISTS.items():
        flags = [o.flag for o in declared]
        assert len(flags) == len(set(flags)), f"{where}: {flags}"
    flag_of = {}
    for where, o in DECLARED:
        if o.key is not None:
            assert flag_of.setdefault(o.key, o.flag) == o.flag, f"{where}: {o.key} as {o.flag}"
    for i, (where, o) in enumerate(DECLARED):
        for other, p in DECLARED[i + 1:]:
            assert o is p or o != p, f"{o.flag} declared twice, in {where} and {other}"
    assert options.QUALITY_BATCH in STAGES["fid"] and options.QUALITY_BATCH in STAGES["fid_stats"]


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


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_stage_s_docstring_opens_with_a_command_its_parser_takes(stage):
    """The example at the top of each stage's docstring (and so of its --help) runs that stage
    and parses: it cannot rot as options change."""
    module = importlib.import_module(f"pipeline.{stage}")
    command = module.__doc__.split("\n\n")[0].replace("\\\n", " ")
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", module.__name__], command
    parse = getattr(module, "parse_args", None) or module.build_parser().parse_args
    parse(words[3:])
