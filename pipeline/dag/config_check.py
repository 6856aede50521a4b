"""Config checks that run when the Snakefile reads the config, before any DAG or job exists.

`schema_errors` gives short messages (`pretrain.steps: 'ten' is not of type 'integer'`) instead
of Snakemake's dump of the whole schema and config; `check_config` catches what the schema
cannot: per-method `method_args` keys, augmentation overrides that the presets refuse, missing
local paths, an unworkable shard count.
Torch-free: the Snakefile calls these on every parse.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import jsonschema
import yaml

from pipeline.core.errors import ConfigError
from pipeline.dag.paths import looks_local, num_shards
from pipeline.dag.search import search_problems
from pipeline.vocab.augmentation import VIEW_PRESETS, trained_preset, view_params
from pipeline.vocab.methods import head_keys

# Shard files are numbered with five digits (the sample rule's wildcard), hence the ceiling.
MAX_SHARDS = 100_000
SHARD_DIGITS = 5


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def schema_errors(config: dict, schema_path: str | os.PathLike, limit: int = 3) -> list[str]:
    """One short line per violation of the schema (at most `limit`), each naming its key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = []
    for e in errors[:limit]:
        message = e.message if len(e.message) <= 160 else e.message[:157] + "..."
        lines.append(f"{_key(e.absolute_path)}: {message}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return lines


def check_schema(config: dict, schema_path: str | os.PathLike) -> None:
    lines = schema_errors(config, schema_path)
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def data_size_problems(config: dict) -> list[str]:
    """num_generated and real_fraction, on strategies and in sweeps: a subset of what exists."""
    problems, total = [], config["sampling"]["num_images"]
    strategies = config["strategies"]
    given = [(f"strategies.{name}", name, s.get("num_generated"), s.get("real_fraction"))
             for name, s in strategies.items()]
    for i, sw in enumerate(config["experiments"].get("sweeps", [])):
        if sw["setting"] in ("num_generated", "real_fraction") and sw["strategy"] in strategies:
            given += [(f"experiments.sweeps[{i}].values", sw["strategy"],
                       v if sw["setting"] == "num_generated" else None,
                       v if sw["setting"] == "real_fraction" else None) for v in sw["values"]]
    for key, name, n, f in given:
        if n is not None:
            if n != int(n) or n < 1:
                problems.append(f"{key}: num_generated must be a positive integer, got {n}")
            elif n > total:
                problems.append(f"{key}: num_generated {n:g} exceeds sampling.num_images {total}")
            elif not strategies[name]["generated"]:
                problems.append(f"{key}: num_generated {n:g} needs generated images, but "
                                f"strategy {name!r} has generated: false")
        if f is not None and not 0 < f <= 1:
            problems.append(f"{key}: real_fraction must be in (0, 1], got {f}")
    return problems + selection_problems(config)


def selection_problems(config: dict) -> list[str]:
    """generated_keep (strategies, sweeps, auto.candidates) and the quality settings it ranks by."""
    problems, strategies, q = [], config["strategies"], config["quality"]
    both = ("generated_keep and num_generated together: choose one (generated_keep keeps the "
            "best fraction of all generated images by quality.score)")
    for name, s in strategies.items():
        keep = s.get("generated_keep")
        if keep is None:
            continue
        if s.get("num_generated") is not None:
            problems.append(f"strategies.{name}: {both}")
        if not s["generated"]:
            problems.append(f"strategies.{name}.generated_keep: {keep:g} needs generated "
                            "images, but the strategy has generated: false")
    for i, sw in enumerate(config["experiments"].get("sweeps", [])):
        base = strategies.get(sw["strategy"])
        if base is None:
            continue
        key = f"experiments.sweeps[{i}]"
        if sw["setting"] == "generated_keep":
            bad = [v for v in sw["values"] if not 0 < v <= 1]
            if bad:
                problems.append(f"{key}.values: generated_keep must be in (0, 1], got {bad[0]:g}")
            if base.get("num_generated") is not None:
                problems.append(f"{key}: strategy {sw['strategy']!r} sets num_generated; {both}")
            if not base["generated"]:
                problems.append(f"{key}: generated_keep needs generated images, but strategy "
                                f"{sw['strategy']!r} has generated: false")
        if sw["setting"] == "num_generated" and base.get("generated_keep") is not None:
            problems.append(f"{key}: strategy {sw['strategy']!r} sets generated_keep; {both}")
    k = max(q["k_precision"], q["k_density"])
    if q["subset"] <= k:
        problems.append(f"quality.subset: {q['subset']} images cannot have {k} nearest "
                        f"neighbours (k_precision {q['k_precision']}, k_density "
                        f"{q['k_density']}); use more than {k}")
    if config["sampling"]["num_images"] <= q["k_precision"]:
        problems.append(f"quality.k_precision: {q['k_precision']} nearest neighbours need more "
                        f"generated images than sampling.num_images "
                        f"{config['sampling']['num_images']}")
    return problems


def config_problems(config: dict) -> list[str]:
    """What the schema cannot check, as `key: problem` lines (empty when the config is fine).

    Expects a config that passed the schema, merged over config.yaml (so every key is there).
    """
    problems = []
    for method, args in config["pretrain"].get("method_args", {}).items():
        unknown = sorted(set(args) - set(head_keys(method)))
        if unknown:
            problems.append(f"pretrain.method_args.{method}: unknown key(s) {unknown}; valid: "
                            f"{head_keys(method)}")
    groups = config["pretrain"].get("method_args", {}).get("barlow", {}).get("loss_groups")
    if groups is not None:
        batch = config["pretrain"]["batch_size"] * config["pretrain"]["processes"]
        if not isinstance(groups, int) or groups < 1 or batch % groups:
            problems.append(f"pretrain.method_args.barlow.loss_groups: {groups!r} must be a "
                            f"positive integer dividing the global batch {batch}")
    for method, mapping in config["pretrain"].get("method_augmentation", {}).items():
        for given, preset in mapping.items():
            # BYOL and Barlow Twins train a preset's asymmetric variant
            if trained_preset(method, preset) not in VIEW_PRESETS:
                problems.append(f"pretrain.method_augmentation.{method}.{given}: preset "
                                f"{preset!r} has no asymmetric variant for {method}")
    strategies = config["strategies"]
    overrides = [(f"strategies.{name}", s["augmentation"], {k: s[k] for k in
                  ("crop_min_scale", "jitter_strength") if s.get(k) is not None})
                 for name, s in strategies.items()]
    for i, sw in enumerate(config["experiments"].get("sweeps", [])):
        base = strategies.get(sw["strategy"])
        if base is None:
            continue  # design.plan names an undefined strategy
        for value in sw["values"]:
            key = f"experiments.sweeps[{i}].values"
            if sw["setting"] == "dup" and (value != int(value) or value < 1):
                problems.append(f"{key}: dup must be a positive integer, got {value}")
            elif sw["setting"] == "crop_min_scale" and not 0 < value <= 1:
                problems.append(f"{key}: crop_min_scale must be in (0, 1], got {value}")
            elif sw["setting"] in ("crop_min_scale", "jitter_strength"):
                overrides.append((key, base["augmentation"], {sw["setting"]: value}))
    for key, augmentation, kw in overrides:
        try:
            view_params(augmentation, **kw)
        except ValueError as e:  # e.g. a jitter_strength that takes the hue past 0.5
            problems.append(f"{key}: {kw}: {e}")
    problems += data_size_problems(config)

    g = config["generator"]
    # the schema requires a model for source pretrained and a path for source npz
    if g["source"] == "pretrained":
        if looks_local(g["model"]) and not Path(g["model"]).expanduser().exists():
            problems.append(f"generator.model: no such folder {g['model']!r} (not a hub id "
                            "either, which looks like org/name)")
    if g["source"] == "npz":
        if not Path(g["path"]).expanduser().exists():
            problems.append(f"generator.path: no such npz file or folder {g['path']!r}")
    if g["source"] != "npz" and g.get("channel_order", "rgb") != "rgb":
        problems.append(f"generator.channel_order: {g['channel_order']!r} is for generator.source "
                        f"npz, not {g['source']!r}")
    r = config["real"]
    if r["source"] != "npz":
        for key, unset in (("test", None), ("channel_order", "rgb")):
            if r.get(key, unset) != unset:
                problems.append(f"real.{key}: {r[key]!r} is for real.source npz, not "
                                f"{r['source']!r}")
    elif r.get("test") is not None:
        if not Path(r["test"]).expanduser().is_file():
            problems.append(f"real.test: no such npz file {r['test']!r}")
        if r.get("root") and not Path(r["root"]).expanduser().is_file():
            problems.append(f"real.root: {r['root']!r} must be the train split's npz file "
                            "when real.test is given")
    if r["source"] != "digits":
        if not r.get("root"):
            problems.append(f"real.root: not set, but real.source {r['source']!r} needs a data path")
        elif not Path(r["root"]).expanduser().exists() and not (
                r["source"].startswith("cifar") and r.get("download")):
            problems.append(f"real.root: no such file or folder {r['root']!r} "
                            f"(real.source is {r['source']!r})")

    project = config.get("logging", {}).get("wandb", {}).get("project")
    if project and importlib.util.find_spec("wandb") is None:
        problems.append(f"logging.wandb.project: {project!r}, but wandb is not installed "
                        "(pip install 'adainf-pipeline[wandb]')")

    if "auto" in config["experiments"]["strategies"]:
        problems += search_problems(config)

    problems += sampling_problems(config)
    n = num_shards(config["sampling"])
    if n > MAX_SHARDS:
        s = config["sampling"]
        problems.append(f"sampling.shard_size: {s['num_images']} images in shards of "
                        f"{s['shard_size']} make {n} shards; at most {MAX_SHARDS} are supported "
                        "(raise shard_size)")
    return problems


def sampling_problems(config: dict) -> list[str]:
    """Sampling settings that contradict each other or the generator trained here."""
    s, g = config["sampling"], config["generator"]
    problems = []
    if s["sampler"] == "edm" and s.get("timestep_spacing") is not None:
        problems.append(f"sampling.timestep_spacing: {s['timestep_spacing']!r} is for the "
                        "discrete samplers; edm's schedule is sampling.edm's (set it to null)")
    conditional = g.get("train", {}).get("class_conditional", False)
    if s.get("guidance", 1) != 1 and g["source"] == "train" and not conditional:
        problems.append(f"sampling.guidance: {s['guidance']} needs a class-conditional "
                        "generator; set generator.train.class_conditional to true, or "
                        "sampling.guidance to 1")
    return problems


def check_config(config: dict) -> None:
    problems = config_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
