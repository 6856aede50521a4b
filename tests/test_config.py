"""Tests of the Snakemake config schema (pipeline/vocab/config.schema.yaml)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from support.snakemake import run_snakemake
from pipeline.vocab.schema import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(SCHEMA_PATH)


def test_the_one_schema_is_package_data_that_the_snakefile_validates_with():
    """pipeline.vocab finds the schema through the package, not by a path into workflow/; the
    Snakefile validates with that same file, and the wheel ships it."""
    import tomllib

    import pipeline.vocab

    assert SCHEMA_PATH == Path(pipeline.vocab.__file__).parent / "config.schema.yaml"
    schemas = [p for d in ("pipeline", "workflow") for p in (ROOT / d).rglob("*schema*.y*ml")]
    assert schemas == [SCHEMA_PATH]
    assert "validate(config, SCHEMA_PATH)" in (ROOT / "workflow" / "Snakefile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-data"]["pipeline.vocab"] == ["config.schema.yaml"]


def test_repo_config_is_valid(config):
    validate(config, SCHEMA)
    assert config["device"] == "auto"


def test_a_config_file_leaving_out_nested_keys_gets_them_from_config_yaml(config):
    """The schema fills in nothing: config.yaml is read first and a --configfile is merged over
    it key by key (Snakemake's update_config), so what a file leaves out is config.yaml's."""
    from snakemake.utils import update_config

    merged = copy.deepcopy(config)
    update_config(merged, {"pretrain": {"steps": 5, "backbone": {"widths": [8]}},
                           "linear_eval": {"offline": {"epochs": 2}}})
    validate(merged, SCHEMA)
    assert merged["pretrain"]["steps"] == 5 and merged["pretrain"]["backbone"]["widths"] == [8]
    assert merged["pretrain"]["backbone"]["blocks"] == config["pretrain"]["backbone"]["blocks"]
    assert merged["pretrain"]["batch_size"] == config["pretrain"]["batch_size"]
    assert merged["linear_eval"]["offline"] == {**config["linear_eval"]["offline"], "epochs": 2}
    assert merged["sampling"]["edm"] == config["sampling"]["edm"]


def _mutate(config, path, value):
    c = copy.deepcopy(config)
    node = c
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return c


@pytest.mark.parametrize("path,value,named", [
    (("bogus_top_level",), 1, "bogus_top_level"),
    (("pretrain", "stepz"), 10, "stepz"),
    (("pretrain", "steps"), "ten", "'ten'"),
    (("fid", "num_generated"), "everything", "'everything'"),
    (("fid", "num_generated"), 1, "1 is less than the minimum of 2"),
    (("sampling", "num_images"), 0, "num_images"),
    (("strategies", "adainf", "dupp"), 3, "dupp"),
    (("strategies", "adainf", "augmentation"), "strong", "strong"),
    (("real", "test_fraction"), 1.0, "test_fraction"),
    (("pretrain", "backbone", "widths"), [8, 16, 32, 64, 128], "widths"),
    (("device", ), "gpu", "gpu"),
    (("linear_eval", "protocols"), ["online", "probe"], "probe"),
    (("experiments", "seeds"), [0, 0], "non-unique"),
    (("experiments", "sweeps"), [{"strategy": "adainf", "setting": "blur", "values": [1]}], "blur"),
    (("experiments", "sweeps"), [{"strategy": "adainf", "setting": "dup", "values": [0]}],
     "values"),
])
def test_bad_values_are_rejected_naming_them(config, path, value, named):
    bad = _mutate(config, path, value)
    with pytest.raises(Exception) as err:
        validate(bad, SCHEMA)
    assert named in str(err.value)


def test_wrong_type_message_names_key_and_value(config):
    with pytest.raises(Exception) as err:
        validate(_mutate(config, ("pretrain", "steps"), "ten"), SCHEMA)
    assert "steps" in str(err.value) and "integer" in str(err.value)


def test_out_of_range_message_names_value(config):
    with pytest.raises(Exception) as err:
        validate(_mutate(config, ("sampling", "num_images"), 0), SCHEMA)
    assert "0 is less than the minimum of 1" in str(err.value)


def test_missing_required_section(config):
    del config["pretrain"]["steps"]  # optional: fine
    validate(copy.deepcopy(config), SCHEMA)
    del config["experiments"]
    with pytest.raises(Exception, match="experiments"):
        validate(config, SCHEMA)


@pytest.mark.slow
def test_snakemake_dry_run_rejects_bad_config(config, tmp_path):
    bad = tmp_path / "BAD.yaml"
    bad.write_text(yaml.safe_dump(_mutate(config, ("pretrain", "stepz"), 10)))
    proc = run_snakemake("-n", "--configfile", str(bad), cwd=tmp_path, timeout=120)
    # Snakemake 9 prints its error report on stdout, not stderr: look at both
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    # one short line naming the key, not the whole schema and config
    assert "invalid config:\n  pretrain: Additional properties are not allowed ('stepz' was " \
           "unexpected)" in output
    assert "exclusiveMinimum" not in output and len(output) < 3000


@pytest.mark.slow
def test_snakemake_names_an_undefined_sweep_strategy(config, tmp_path):
    config["experiments"]["sweeps"] = [{"strategy": "adainff", "setting": "dup", "values": [2]}]
    bad = tmp_path / "BAD.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = run_snakemake("-n", "--configfile", str(bad), cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "strategy 'adainff', which is not defined" in proc.stdout + proc.stderr


def _problems(config, path, value):
    from pipeline.dag.config_check import config_problems

    c = _mutate(config, path, value)
    validate(c, SCHEMA)  # the defaults, as the Snakefile fills them before these checks
    return config_problems(c)


@pytest.mark.parametrize("path,value,named", [
    (("experiments", "sweeps"), [{"strategy": "adainf", "setting": "dup", "values": [2.5]}],
     "experiments.sweeps[0].values: dup must be a positive integer, got 2.5"),
    (("experiments", "sweeps"), [{"strategy": "adainf", "setting": "crop_min_scale",
                                  "values": [0.5, 1.5]}],
     "experiments.sweeps[0].values: crop_min_scale must be in (0, 1], got 1.5"),
    # the standard preset's hue 0.2 × 3 = 0.6 > 0.5
    (("experiments", "sweeps"), [{"strategy": "none", "setting": "jitter_strength",
                                  "values": [3]}], "experiments.sweeps[0].values: {'jitter"),
    (("strategies", "adainf", "jitter_strength"), 6, "strategies.adainf: {'jitter_strength': 6}"),
    (("pretrain", "method_args"), {"simclr": {"proj_dimm": 8}},
     "pretrain.method_args.simclr: unknown key(s) ['proj_dimm']; valid: ['proj_dim', "
     "'proj_hidden', 'temperature']"),
    (("pretrain", "method_args"), {"simclr": {"lr": 0.1}},  # pretrain.lr's job, else ignored
     "pretrain.method_args.simclr: unknown key(s) ['lr']"),
    (("generator",), {"source": "npz", "path": "/nowhere/gen.npz"},
     "generator.path: no such npz file or folder '/nowhere/gen.npz'"),
    (("generator",), {"source": "pretrained", "model": "./models/missing"},
     "generator.model: no such folder './models/missing'"),
    (("generator",), {"source": "pretrained", "model": "/nowhere/ddpm"}, "generator.model"),
    (("real",), {"source": "npz", "root": "data/missing.npz"},
     "real.root: no such file or folder 'data/missing.npz'"),
    (("real",), {"source": "imagefolder", "root": "data/missing"}, "real.root: no such file"),
    (("real",), {"source": "npz"}, "real.root: not set"),
    (("sampling", "shard_size"), 1, "sampling.shard_size: 6000 images in shards of 1 make 6000"),
    (("generator", "channel_order"), "bgr", "generator.channel_order: 'bgr' is for generator.source npz"),
    (("real",), {"source": "cifar10", "root": ".", "channel_order": "bgr"},
     "real.channel_order: 'bgr' is for real.source npz"),
    (("real",), {"source": "npz", "root": "config.yaml", "test": "data/missing-test.npz"},
     "real.test: no such npz file 'data/missing-test.npz'"),
    (("pretrain", "method_args"), {"barlow": {"loss_groups": 3}},
     "pretrain.method_args.barlow.loss_groups: 3 must be a positive integer dividing the global "
     "batch 128"),
    (("pretrain", "method_augmentation"), {"byol": {"standard": "mild"}},
     "pretrain.method_augmentation.byol.standard: preset 'mild' has no asymmetric variant"),
    # the cifar10 preset's 50000 over the digits default's 6000 images
    (("fid", "num_generated"), 50000,
     "fid.num_generated: 50000 × fid.seed_sets 1 exceeds sampling.num_images 6000; lower them, "
     "or set fid.num_generated: all"),
    (("fid", "seed_sets"), 3, "fid.seed_sets: 3 sets of all the generated images are one set; "
     "set fid.num_generated to a count (e.g. 2000)"),
    (("sampling", "guidance"), 2.0, "sampling.guidance: 2.0 needs a class-conditional"),
])
def test_config_problems_name_the_key(config, path, value, named, monkeypatch):
    monkeypatch.setattr("pipeline.dag.config_check.MAX_SHARDS", 1000)
    problems = _problems(config, path, value)
    assert len(problems) == 1 and problems[0].startswith(named), problems


def test_fid_seed_sets_must_fit_disjointly_in_the_generated_set(config):
    assert _problems(config, ("fid",), {**config["fid"], "num_generated": 2000,
                                        "seed_sets": 3}) == []
    assert _problems(config, ("fid",), {**config["fid"], "num_generated": 2001, "seed_sets": 3}
                     ) == ["fid.num_generated: 2001 × fid.seed_sets 3 exceeds sampling.num_images "
                           "6000; lower them, or set fid.num_generated: all"]


@pytest.mark.parametrize("path,value", [
    (("generator",), {"source": "pretrained", "model": "google/ddpm-cifar10-32"}),  # a hub id
    (("experiments", "sweeps"), [{"strategy": "adainf", "setting": "jitter_strength",
                                  "values": [0.5, 5]}]),  # weak: hue 0.1 × 5 = 0.5
    (("pretrain", "method_args"), {"byol": {"pred_hidden": 16, "tau_base": 0.9}}),
])
def test_valid_settings_pass_the_config_checks(config, path, value):
    assert _problems(config, path, value) == []


def test_edm_refuses_a_timestep_spacing(config):
    config["sampling"].update(sampler="edm", timestep_spacing="trailing")
    assert _problems(config, ("sampling", "steps"), 18) == [
        "sampling.timestep_spacing: 'trailing' is for the discrete samplers; edm's schedule is "
        "sampling.edm's (set it to null)"]
    config["sampling"]["sampler"] = "dpmsolver++"
    assert _problems(config, ("sampling", "steps"), 10) == []


def test_schema_errors_are_short_and_name_the_key(config):
    from pipeline.dag.config_check import schema_errors

    bad = _mutate(_mutate(config, ("pretrain", "steps"), "ten"), ("sampling", "num_images"), 0)
    assert schema_errors(bad, SCHEMA) == [
        "pretrain.steps: 'ten' is not of type 'integer'",
        "sampling.num_images: 0 is less than the minimum of 1",
    ]


@pytest.mark.parametrize("generator,line", [
    ({"source": "pretrained"}, "generator: 'model' is a required property"),
    ({"source": "pretrained", "model": None}, "generator.model: None is not of type 'string'"),
    ({"source": "npz"}, "generator: 'path' is a required property"),
    ({"source": "npz", "path": ""}, "generator.path: '' should be non-empty"),
])
def test_schema_requires_the_generators_model_or_path(config, generator, line):
    from pipeline.dag.config_check import schema_errors

    assert schema_errors(_mutate(config, ("generator",), generator), SCHEMA) == [line]
    assert schema_errors(_mutate(config, ("generator",), {**generator, "source": "train"}),
                         SCHEMA) == []
