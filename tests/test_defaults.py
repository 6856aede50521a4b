"""Each default lives in one place: config.yaml for every setting of the workflow.

The schema holds types and ranges only (no `default:`); config.yaml lists every key the schema
knows and validates, as do the presets merged over it; and every option a stage gets from the
workflow is required on its command line, or has an unset default (None, off, empty) that means
"not given" rather than a value of its own. Every option of every stage has help text.
"""

from __future__ import annotations

import copy
import importlib
import re
import shlex

import jsonschema
import pytest
import yaml
from snakemake.utils import update_config

from support.snakemake import REPO, TINY, TINY_STUDY, run_snakemake
from pipeline.core.cli import HelpFormatter
from pipeline.vocab.schema import SCHEMA_PATH

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
STAGES = ["prepare_real", "train_generator", "sample", "cut_npz", "fid_stats", "fid", "pack",
          "pretrain", "linear_eval", "report", "search_select", "core.gpu_slots", "fetch"]
# fetch runs only where an asset is not local (tests/test_fetch.py plans and runs it)
NOT_IN_TINY = {"cut_npz", "fetch"}
TINY_AUTO = REPO / "tests" / "configs" / "tiny_auto.yaml"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _property_paths(schema: dict, prefix=()) -> set[tuple]:
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        paths.add(prefix + (key,))
        paths |= _property_paths(sub, prefix + (key,))
    return paths


def _has(config: dict, path: tuple) -> bool:
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return False
        config = config[key]
    return True


def test_the_schema_holds_no_defaults():
    assert not [node for node in _walk(SCHEMA) if "default" in node]


def test_config_yaml_lists_every_key_of_the_schema():
    missing = sorted(".".join(p) for p in _property_paths(SCHEMA) if not _has(DEFAULT, p))
    assert not missing, f"config.yaml lacks {missing}"
    jsonschema.validate(DEFAULT, SCHEMA)


@pytest.mark.parametrize("layers", [["configs/cifar10.yaml"], ["configs/study.yaml"],
                                    ["tests/configs/tiny.yaml"],
                                    ["tests/configs/tiny.yaml", "tests/configs/tiny_study.yaml"],
                                    ["tests/configs/tiny.yaml", "tests/configs/tiny_auto.yaml"]])
def test_presets_merged_over_config_yaml_are_complete_and_valid(layers):
    merged = copy.deepcopy(DEFAULT)
    for layer in layers:  # what `--configfile A B` does
        update_config(merged, yaml.safe_load((REPO / layer).read_text()))
    jsonschema.validate(merged, SCHEMA)
    assert all(_has(merged, p) for p in _property_paths(SCHEMA))


def _parser(stage: str):
    return importlib.import_module(f"pipeline.{stage}").build_parser()


def _options(parser) -> dict:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.fixture(scope="module")
def planned_commands(tmp_path_factory) -> dict[str, list[list[str]]]:
    """{stage: argument lists} of the jobs `snakemake -n -p` plans for the tiny study with the
    auto search (every stage but cut_npz, whose options are all required anyway)."""
    r = run_snakemake("-n", "-p", "--configfile", str(TINY), str(TINY_STUDY), str(TINY_AUTO),
                      cwd=tmp_path_factory.mktemp("dry"))
    assert r.returncode == 0, r.stdout + r.stderr
    commands: dict[str, list[list[str]]] = {}
    pending = False  # a job after an unfinished checkpoint: its inputs (<TBD>) are not known yet
    for line in r.stdout.splitlines():
        if line.strip().startswith("input:"):
            pending = "<TBD>" in line
        if "-m pipeline." not in line or pending:
            continue
        words = shlex.split(line[line.index("python -m pipeline."):])
        words = words[:words.index(">")]
        starts = [i for i, w in enumerate(words) if w == "-m"]
        for i, j in zip(starts, starts[1:] + [len(words)]):  # gpu_slots, then the stage
            stage = words[i + 1].removeprefix("pipeline.")
            end = words.index("--", i) if stage == "core.gpu_slots" else j
            commands.setdefault(stage, []).append(words[i + 2:end])
    return commands


@pytest.mark.slow
def test_the_dry_run_covers_every_stage(planned_commands):
    assert set(planned_commands) == set(STAGES) - NOT_IN_TINY


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(set(STAGES) - NOT_IN_TINY))
def test_options_the_workflow_passes_have_no_default_of_their_own(planned_commands, stage):
    parser, commands = _parser(stage), planned_commands[stage]
    options = _options(parser)
    passed = {w for argv in commands for w in argv if w in options}
    with_default = {o for o in passed if not options[o].required
                    and not (options[o].default in (None, []) or options[o].default is False)}
    assert not with_default, f"{stage}: {sorted(with_default)} have a default besides config.yaml's"
    for argv in commands:  # and the workflow's commands parse
        parser.parse_args(argv + (["--", "true"] if stage == "core.gpu_slots" else []))


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_has_help_and_the_project_s_formatter(stage):
    parser = _parser(stage)
    for action in parser._actions:
        assert action.help and action.help.strip(), f"{stage}: {action.dest} has no help"
    assert parser.formatter_class is HelpFormatter  # which appends each default to its help


def test_the_help_formatter_appends_a_default_once_and_none_to_required_options():
    import argparse

    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--batch", type=int, default=256, help="images per step")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--root", default=None, help="data path (default: none, for digits)")
    text = " ".join(p.format_help().split())
    assert "images per step (default: 256)" in text
    assert "output file" in text and "output file (default" not in text
    assert text.count("default") == 2  # --root's own words, not followed by "(default: None)"


def test_documented_defaults_are_the_code_s():
    """What the help (and the schema's descriptions) say an unset option means is what the code
    does: sample's --steps per sampler, pretrain's --stem-padding."""
    from pipeline.generation.samplers import SamplerSettings, make_scheduler
    from pipeline.pretraining.encoders import STEM_PADDING

    config_text = SCHEMA_PATH.read_text()
    steps_help = _options(_parser("sample"))["--steps"].help
    said = re.search(r"null: ddpm all training steps, ddim (\d+), dpmsolver\+\+/unipc/deis (\d+), "
                     r"euler_karras (\d+), heun_karras and edm (\d+)", steps_help)
    ddim, multistep, euler, heun = map(int, said.groups())
    from diffusers import DDPMScheduler

    config = DDPMScheduler(num_train_timesteps=200).config
    assert len(make_scheduler("ddpm", config, None).timesteps) == 200
    assert len(make_scheduler("ddim", config, None).timesteps) == ddim
    for sampler in ("dpmsolver++", "unipc", "deis"):
        assert len(make_scheduler(sampler, config, None).timesteps) == multistep
    assert len(make_scheduler("euler_karras", config, None).timesteps) == euler
    assert len(make_scheduler("heun_karras", config, None).timesteps) == 2 * heun - 1
    assert SamplerSettings(sampler="edm", eta=0.0, precision="fp32").edm.num_steps == heun

    padding_help = _options(_parser("pretrain"))["--stem-padding"].help
    documented = int(re.search(r"the authors' (\d+)", padding_help).group(1))
    assert documented == STEM_PADDING
    assert f"null: the authors' {documented} (pipeline.pretraining.encoders.STEM_PADDING)" in config_text


def test_pretrain_training_options_are_required_unless_steps_0():
    from pipeline.pretrain import parse_args, run_config

    base = ["--real", "r", "--out", "o", "--history", "h", "--strategy", "random_init",
            "--method", "simclr", "--seed", "0", "--widths", "8", "--blocks", "1",
            "--checkpoint-every", "0", "--log-every", "50", "--device", "cpu", "--threads", "1"]
    cfg, augmentation, aug_params = run_config(parse_args(base + ["--steps", "0"]))  # random_init's
    assert cfg.steps == 0 and augmentation is None and aug_params == ()
    with pytest.raises(SystemExit):
        parse_args(base + ["--steps", "3"])
