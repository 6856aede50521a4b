"""Config checks that run when the Snakefile reads the config, before any DAG or job exists.

`schema_errors` gives short messages (`pretrain.steps: 'ten' is not of type 'integer'`) instead
of Snakemake's dump of the whole schema and config; `check_config` catches what the schema
cannot: per-method `method_args` keys, augmentation overrides that the presets refuse, missing
local paths, an unworkable shard count.
Torch-free: the Snakefile calls these on every parse.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import socket
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from pipeline.core.errors import ConfigError, UserError
from pipeline.core import io
from pipeline.dag.inputs import looks_local
from pipeline.dag.paths import SHARD_DIGITS, WorkflowPaths, num_shards
from pipeline.dag.search_plan import search_problems
from pipeline.vocab.augmentation import PRESET_VIEWS, trained_preset, view_params
from pipeline.data.npz_source import image_shape, npz_files
from pipeline.vocab.methods import METHOD_DEFAULTS, head_keys

# Shard files are numbered with SHARD_DIGITS digits (the sample rule's wildcard), hence the ceiling.
MAX_SHARDS = 10 ** SHARD_DIGITS
# scikit-learn's digits: the default real data set
DIGITS_IMAGES = 1797


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
    lines = nonfinite_problems(config) or schema_errors(config, schema_path)
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


def fid_protocol_problems(config: dict) -> list[str]:
    """fid.num_generated × fid.seed_sets disjoint subsets must fit in the generated set."""
    f, total = config["fid"], config["sampling"]["num_images"]
    n, k = f["num_generated"], f["seed_sets"]
    if n == "all":
        return [] if k == 1 else [f"fid.seed_sets: {k} sets of all the generated images are one "
                                  "set; set fid.num_generated to a count (e.g. "
                                  f"{total // k}) or fid.seed_sets to 1"]
    if n * k > total:
        return [f"fid.num_generated: {n} × fid.seed_sets {k} exceeds sampling.num_images "
                f"{total}; lower them, or set fid.num_generated: all"]
    return []


def config_problems(config: dict) -> list[str]:
    """What the schema cannot check, as `key: problem` lines (empty when the config is fine).

    Expects a config that passed the schema, merged over config.yaml (so every key is there).
    """
    problems = method_settings_problems(config) + augmentation_problems(config)
    problems += data_size_problems(config) + method_arg_problems(config)
    problems += output_dir_problems(config["output_dir"]) + batch_problems(config)
    problems += generated_npz_problems(config) + fid_protocol_problems(config)
    problems += generator_problems(config["generator"]) + real_problems(config["real"])
    problems += logging_problems(config)
    if "auto" in config["experiments"]["strategies"]:
        problems += search_problems(config)
    return problems + sampling_problems(config) + shard_count_problems(config["sampling"])


def method_settings_problems(config: dict) -> list[str]:
    """pretrain.method_args keys each method knows, Barlow Twins' loss groups, and
    pretrain.method_augmentation presets the method can train."""
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
            if trained_preset(method, preset) not in PRESET_VIEWS:
                problems.append(f"pretrain.method_augmentation.{method}.{given}: preset "
                                f"{preset!r} has no asymmetric variant for {method}")
    return problems


def augmentation_problems(config: dict) -> list[str]:
    """The strategies' and the sweeps' augmentation overrides, tried on their presets."""
    problems, strategies = [], config["strategies"]
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
    return problems


def generator_problems(g: dict) -> list[str]:
    """The generator's local model folder or npz files exist; channel_order is npz's."""
    problems = []
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
    return problems


def real_problems(r: dict) -> list[str]:
    """The real data's paths exist; real.test and channel_order are npz's."""
    problems = []
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
    return problems


def logging_problems(config: dict) -> list[str]:
    """W&B asked for and installed."""
    project = config.get("logging", {}).get("wandb", {}).get("project")
    if project and importlib.util.find_spec("wandb") is None:
        return [f"logging.wandb.project: {project!r}, but wandb is not installed "
                "(pip install 'adainf-pipeline[wandb]')"]
    return []


def shard_count_problems(s: dict) -> list[str]:
    """No more shards than their file names can number (MAX_SHARDS)."""
    n = num_shards(s)
    if n > MAX_SHARDS:
        return [f"sampling.shard_size: {s['num_images']} images in shards of "
                f"{s['shard_size']} make {n} shards; at most {MAX_SHARDS} are supported "
                "(raise shard_size)"]
    return []


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


# -- values that pass the schema and fail late -------------------------------------------------

def nonfinite_problems(node, path=()) -> list[str]:
    """NaN and infinity anywhere in the config (YAML's .nan and .inf): every comparison with NaN
    is false, so the schema's ranges let it through and a job fails, or trains nothing, late."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in nonfinite_problems(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in nonfinite_problems(v, (*path, f"[{i}]"))]
    if isinstance(node, float) and not math.isfinite(node):
        key = ".".join(path).replace(".[", "[")
        return [f"{key}: {node} is not a finite number; give a number"]
    return []


# Shell characters beside whitespace: the rules paste output_dir's paths into their commands.
SHELL_SAFE = re.compile(r"^[\w@%+=:,./~-]+$")


def output_dir_problems(out) -> list[str]:
    """An output_dir every job can write into: not empty, not the file system's root, not a
    file, writable, and free of spaces and shell characters (the rules' commands carry its
    paths unquoted, so `my results` would split into two arguments)."""
    key = "output_dir"
    if not isinstance(out, str) or not out.strip():
        return [f"{key}: {out!r} is empty; name a folder, e.g. output_dir: results"]
    if not SHELL_SAFE.match(out):
        bad = sorted({c for c in out if not SHELL_SAFE.match(c)})
        fixed = "".join(c if SHELL_SAFE.match(c) else "_" for c in out)
        return [f"{key}: {out!r} has {bad} (spaces or shell characters, which the jobs' shell "
                f"commands would split or expand); rename it, e.g. output_dir: {fixed}"]
    path = Path(out).expanduser()
    if path.resolve() == Path(path.resolve().anchor):
        return [f"{key}: {out!r} is the file system's root; name a folder, e.g. output_dir: "
                "results"]
    if path.exists() and not path.is_dir():
        return [f"{key}: {out!r} is a file, not a folder; name another output_dir or move the file"]
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"{key}: {out!r} is under the file {existing}; name a folder elsewhere"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}: {out!r}: {existing} is not writable by this user; name a folder you can "
                "write, or change its permissions"]
    return []


def real_train_size(real: dict) -> int | None:
    """Images in the real training split where the config tells without reading pixels: the
    digits (1,797 images, split by real.test_fraction as scikit-learn's train_test_split does),
    CIFAR (50,000), an npz file's header; None for an image folder or a file not there yet (the
    stage checks at its start)."""
    source, root = real["source"], real.get("root")
    if source in ("cifar10", "cifar100"):
        return 50_000
    if source == "digits":
        n = DIGITS_IMAGES
    elif source == "npz" and root:
        path = Path(root).expanduser()
        path = path / "train.npz" if path.is_dir() else path
        try:
            with zipfile.ZipFile(path) as archive, archive.open("label.npy") as f:
                read = (np.lib.format.read_array_header_1_0
                        if np.lib.format.read_magic(f) == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                n = read(f)[0][0]
        except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile):
            return None  # unreadable: prepare_real names the file and the problem
        if real.get("test") or Path(root).expanduser().is_dir():
            return int(n)
    else:
        return None
    return n - math.ceil(real["test_fraction"] * n)


def check_config(config: dict) -> None:
    problems = config_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _generated_images(config: dict) -> int:
    g = config["generator"]
    if g["source"] == "npz":
        try:
            return min(config["sampling"]["num_images"], image_shape(npz_files(g["path"]))[0])
        except (OSError, ValueError, zipfile.BadZipFile, UserError):
            return 0  # generated_npz_problems names the file
    return config["sampling"]["num_images"]


def pretrain_set_size(config: dict, strategy: str, real_n: int) -> int:
    """Images one pretraining cell of `strategy` draws its batches from: its real subset times
    dup (virtual copies) plus its generated images."""
    s = config["strategies"][strategy]
    real = max(1, round((s.get("real_fraction") or 1) * real_n)) * s["dup"]
    if not s["generated"]:
        return real
    total = _generated_images(config)
    if s.get("num_generated") is not None:
        return real + min(s["num_generated"], total)
    return real + math.floor((s.get("generated_keep") or 1) * total)


def batch_problems(config: dict) -> list[str]:
    """A pretraining batch larger than the data it is drawn from: it repeats images (false
    negatives for the contrastive losses) and allocates all its views at once (100,000 of them
    fail after a minute). Linear evaluation and generator training need no check: a batch
    larger than the split is the whole split (linear_eval) or draws with replacement (the
    generator), which works."""
    real_n = real_train_size(config["real"])
    if real_n is None:
        return []
    where = f"the real training split ({real_n} images of {config['real']['source']})"
    problems = []
    p = config["pretrain"]
    per_step = p["batch_size"] * p["processes"]
    for name in config["experiments"]["strategies"]:
        if name not in config["strategies"]:
            continue  # random_init, auto (its search checks at each job's start), an unknown name
        size = pretrain_set_size(config, name, real_n)
        if per_step > size:
            procs = f" × {p['processes']} processes" if p["processes"] > 1 else ""
            problems.append(f"pretrain.batch_size: {p['batch_size']}{procs} images per step, but "
                            f"strategy {name!r} trains on {size} (from {where}); use at most "
                            f"{size // p['processes']}")
            break
    return problems


def method_arg_problems(config: dict) -> list[str]:
    """Head sizes and loss settings in pretrain.method_args: widths and the queue at least 1
    (proj_dim: 0 trains nothing and still reports numbers), a temperature above 0, the
    momentum's tau in [0, 1], the rest numbers at least 0."""
    problems = []
    for method, args in config["pretrain"].get("method_args", {}).items():
        for key, value in args.items():
            default = METHOD_DEFAULTS[method].get(key)
            where = f"pretrain.method_args.{method}.{key}: {value!r}"
            if default is None or key == "loss_groups":
                continue  # unknown keys and loss_groups: config_problems
            if isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    problems.append(f"{where} must be a positive integer (the paper's: {default})")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{where} must be a number (the paper's: {default})")
            elif key.startswith("tau") and not 0 <= value <= 1:
                problems.append(f"{where} must be in [0, 1] (the paper's: {default})")
            elif key == "temperature" and not value > 0:
                problems.append(f"{where} must be above 0 (the paper's: {default})")
            elif value < 0:
                problems.append(f"{where} must be at least 0 (the paper's: {default})")
    return problems


def generated_npz_problems(config: dict) -> list[str]:
    """generator.source npz: the files must hold sampling.num_images images (fewer: a truncated
    download, cut into fewer shards without a word) and be readable npz archives."""
    g, wanted = config["generator"], config["sampling"]["num_images"]
    if g["source"] != "npz" or not Path(g["path"]).expanduser().exists():
        return []  # a missing path: config_problems
    try:
        total = image_shape(npz_files(g["path"]))[0]
    except UserError as e:  # a damaged file, named with the fix
        return [f"generator.path: {e}"]
    except (OSError, ValueError) as e:
        return [f"generator.path: {g['path']!r}: {e}"]
    if total < wanted:
        return [f"generator.path: {g['path']!r} holds {total} images, sampling.num_images is "
                f"{wanted}; a truncated download? download it again, or set sampling.num_images: "
                f"{total}"]
    return []


def check_disk_space(paths: WorkflowPaths, margin: float = 1.1) -> None:
    """Room for the sample shards not yet written (packing only references them); a
    ConfigError when the config is read, so `-n` reports it too."""
    missing = sum(not Path(f).exists() for f in paths.shard_files())
    if not missing:
        return
    config = paths.config
    need = missing * io.image_bytes(config["sampling"]["shard_size"], config["real"]["resolution"])
    problem = io.free_space_problem(paths.samples(), need, margin)
    if problem:
        raise ConfigError(f"{config['output_dir']}: {missing} sample shards: {problem}")


def cuda_problem(device: str) -> str | None:
    """`device: cuda[:N]` where this machine has no CUDA (or no device N). Imports torch: the
    Snakefile asks only when jobs are about to run here (a SLURM login node, which plans and
    submits, needs no GPU; each job's stage checks again where it runs)."""
    if not device.startswith("cuda"):
        return None
    import torch

    fix = "set device: auto (CUDA when present, else CPU) or cpu"
    if not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a CPU-only build"
        return (f"device: {device!r}, but CUDA is not available on {socket.gethostname()} "
                f"(torch {torch.__version__}{build}); {fix}")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return (f"device: {device!r}, but this machine has {torch.cuda.device_count()} CUDA "
                f"device(s) (0..{torch.cuda.device_count() - 1}); {fix}, or cuda:0")
    return None
