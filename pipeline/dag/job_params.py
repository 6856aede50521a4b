"""Command-line options of the workflow's jobs, split by whether they change what a job computes.

Snakemake reruns a job when a param changes, but only params that are plain values or functions
of the wildcards: a param computed from `input` or `output` is "derived" and left out of the
check (that is how `pretrain.lr` once changed nothing). So a rule passes

- the settings that determine its outputs as plain params or functions of the wildcards, built
  here from the config alone, and
- the settings that change how fast, not what (threads, the device, FID and sampling batch
  sizes, checkpoint intervals), through `untracked`, so changing them reruns nothing.

Torch-free: the Snakefile imports it on every parse.
"""

from __future__ import annotations

import json
import os
import shlex

from pipeline.dag.paths import WorkflowPaths
from pipeline.study.design import RANDOM_INIT, Design
from pipeline.vocab.augmentation import trained_preset
from pipeline.vocab.options import (
    CUT_NPZ, FID_STATS, LINEAR_EVAL, LOG_EVERY, PREPARE_REAL, PRETRAIN, SAMPLE, SEARCH_SELECT,
    QUALITY_BATCH, TRACKING, TRAIN_GENERATOR, config_value,
)


def opt(flag: str, value) -> str:
    """A command-line option, or nothing when the value is unset."""
    if value is None or value is False:
        return ""
    if value is True:
        return flag
    if isinstance(value, (list, tuple)):
        return f"{flag} " + " ".join(shlex.quote(str(v)) for v in value)
    return f"{flag} {shlex.quote(str(value))}"


def settings(section: dict, without: tuple[str, ...] = ()) -> dict:
    """A config section as a tracked param: keys sorted at every level, and `without` (keys that
    change no output) left out. Snakemake compares a param's repr, which follows key order, and
    a --configfile's merge puts the keys it restates first: unsorted, the same settings moved
    between files would rerun the job."""
    return {k: settings(v) if isinstance(v, dict) else v
            for k, v in sorted(section.items()) if k not in without}


def opts(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def untracked(value):
    """A rule param that Snakemake leaves out of its rerun check (a function of `input` is a
    derived param), for settings that do not change a job's outputs."""
    return lambda wildcards, input: value


def method_preset(config: dict, method: str, augmentation: str) -> str:
    """The preset `method` trains with where a strategy asks for `augmentation`:
    pretrain.method_augmentation's replacement for this method, else the strategy's own, in the
    form the method trains it (asym_ for BYOL and Barlow Twins: vocab.augmentation.trained_preset).
    The stage runs this name as given, so the tracked --augmentation is the preset that runs."""
    asked = config["pretrain"]["method_augmentation"].get(method, {}).get(augmentation, augmentation)
    return trained_preset(method, asked)


def stage_args(declared, config: dict, *, tracked: bool = True, only=None, **given) -> str:
    """The options of pipeline.vocab.options' declarations `declared` (a stage's), in their
    order: the `tracked` ones (else the untracked: speed only), each with its value in `given`
    (by dest) or else, for a config key the workflow does not compute, the config's. `only`:
    just these dests."""
    unknown = set(given) - {o.dest for o in declared}
    if unknown:
        raise ValueError(f"not an option of this stage: {sorted(unknown)}")
    parts = []
    for o in declared:
        if o.tracked != tracked or (only is not None and o.dest not in only):
            continue
        if o.dest in given:
            value = given[o.dest]
        elif o.key is not None and not o.computed:
            value = config_value(config, o.key)
        else:
            continue
        if o.argparse.get("action") == "append":  # repeated: --method-arg a=1 --method-arg b=2
            parts += [opt(o.flag, v) for v in value]
        else:
            parts.append(opt(o.flag, value))
    return opts(*parts)


BACKBONE = ("widths", "blocks", "stem_padding")


def pretrain_args(config: dict, design: Design, method: str, strategy: str, seed) -> str:
    """The options of one pretrain job that determine its encoder, history and online result."""
    paths, s = WorkflowPaths(config, design), design.settings(strategy)
    if strategy == RANDOM_INIT:  # the initial weights: the backbone, the seed and the real data
        return stage_args(PRETRAIN, config, only=(*BACKBONE, "steps"), steps=0)
    online = {}
    if "online" in design.protocols:
        online = {"online_test": paths.real("test"),
                  "online_out": paths.result(method, strategy, seed, "online"),
                  **{f"online_{k}": v for k, v in config["linear_eval"]["online"].items()}}
    return stage_args(
        PRETRAIN, config,
        generated=paths.dataset("generated") if s["generated"] else None,
        dup=s["dup"], augmentation=method_preset(config, method, s["augmentation"]),
        crop_min_scale=s.get("crop_min_scale"), jitter_strength=s.get("jitter_strength"),
        # absent where they mean all images (design.without_all); the real subset is seeded by
        # the real split's seed, so every cell at one fraction sees the same images
        num_generated=s.get("num_generated"),
        generated_subset_seed=config["sampling"]["seed"] if "num_generated" in s else None,
        # the best fraction by quality score: an index into the shards, like --num-generated
        generated_keep=s.get("generated_keep"),
        generated_score=config["quality"]["score"] if "generated_keep" in s else None,
        generated_scores=paths.shard_quality_files() if "generated_keep" in s else None,
        real_fraction=s.get("real_fraction"),
        real_subset_seed=config["real"]["seed"] if "real_fraction" in s else None,
        method_arg=[f"{k}={json.dumps(v)}"
                    for k, v in config["pretrain"]["method_args"].get(method, {}).items()],
        **online,
        # only the online probe reads generated labels (offline and features: real only)
        keep_generated_labels=bool(online) and s["generated"]
        and config["generator"]["labels"] == "keep",
    )


def pretrain_untracked_args(config: dict) -> str:
    # resuming is exact, so where the checkpoints fall changes no result; compile and
    # channels_last change the speed (and float summation order), not the method
    return stage_args(PRETRAIN, config, tracked=False)


def tracking_args(config: dict, run: str, log_every: bool = False) -> str:
    """The live-curve options (config `logging`) of the job `run` (RULE/WILDCARDS): TensorBoard
    event files in OUTPUT_DIR/tensorboard/RUN, W&B files in OUTPUT_DIR/wandb when a project is
    set, and, for a loop counted in steps, --log-every. None of them changes a result."""
    lg, paths = config["logging"], WorkflowPaths(config)
    wandb = {"wandb_mode": lg["wandb"]["mode"], "wandb_dir": paths.out, "run_name": run}
    return opts(
        stage_args((LOG_EVERY,), config, tracked=False, log_every=lg["log_every"]) if log_every
        else "",
        stage_args(TRACKING, config, tracked=False,
                   tensorboard=paths.tensorboard(run) if lg["tensorboard"] else None,
                   **(wandb if lg["wandb"]["project"] else {})),
    )


def tracking(config: dict, run: str, log_every: bool = False):
    """tracking_args as an untracked rule param; `run` may name wildcards, e.g.
    "pretrain/{method}/{strategy}/seed{seed}"."""
    return lambda wildcards, input: tracking_args(config, run.format(**dict(wildcards.items())),
                                                  log_every)


def sample_args(config: dict) -> str:
    """Sampling options that determine the images (an image's noise depends only on its index,
    so the batch size, channels_last and compile change how fast, not what)."""
    return stage_args(SAMPLE, config)


def sample_untracked_args(config: dict) -> str:
    """Speed only; with sampling.compile, the run's shared compile cache (OUTPUT_DIR/cache/
    torch_compile): the shard jobs on one machine compile the UNet once."""
    cache = WorkflowPaths(config).compile_cache() if config["sampling"]["compile"] else None
    return stage_args(SAMPLE, config, tracked=False, compile_cache=cache)


def fid_stats_args(config: dict) -> str:
    f = config["fid"]
    dinov2 = {"dinov2_arch": f["dinov2_arch"]} if f["features"] == "dinov2" else {}
    return stage_args(FID_STATS, config, **dinov2)


def fid_stats_untracked_args(config: dict) -> str:
    return stage_args(FID_STATS, config, tracked=False)


def fid_untracked_args(config: dict) -> str:
    """pipeline.fid's speed-only option: the rows of its quality metrics' distance blocks."""
    return opt(QUALITY_BATCH.flag, config_value(config, QUALITY_BATCH.key))


def fetched_weights_arg(weights: str | None) -> str:
    """--weights of the Inception weights that rule fetch_inception verified (fid.weights null)."""
    return stage_args(FID_STATS, {}, only=("weights",), weights=weights)


def fid_quality_args(config: dict, start=None, total=None, real_quality=None) -> str:
    """The quality file's settings (config quality): the subset, its seed and the radii's k; for
    a shard its global start, the set's size, the real quality file it is scored against and
    the FID protocol's subsets (fid.num_generated, fid.seed_sets: the real job is whole, so
    changing them reruns only the shards' jobs)."""
    q, f = config["quality"], config["fid"]
    shard = {} if start is None or f["num_generated"] == "all" else {
        "num_generated": f["num_generated"], "seed_sets": f["seed_sets"]}
    return stage_args(FID_STATS, config,
                      only=("start", "total", "subset", "subset_seed", "k_precision",
                            "k_density", "real_quality", *shard),
                      start=start, total=total, subset=q["subset"], subset_seed=q["seed"],
                      k_precision=q["k_precision"], k_density=q["k_density"],
                      real_quality=real_quality, **shard)


def prepare_real_args(config: dict) -> str:
    """The real data's source and split (`download` is not passed: rule fetch_real fetches the
    data first, and fetching CIFAR or finding it on disk gives the same data)."""
    return stage_args(PREPARE_REAL, config, bgr=config["real"]["channel_order"] == "bgr")


def train_generator_args(config: dict) -> str:
    """Every setting of the generator trained here (generator.train)."""
    return stage_args(TRAIN_GENERATOR, config)


def train_generator_untracked_args(config: dict, checkpoint: str) -> str:
    """Its speed-only options and where it keeps its resumable state."""
    return stage_args(TRAIN_GENERATOR, config, tracked=False, checkpoint=checkpoint)


def linear_eval_args(config: dict, protocol: str) -> str:
    """An offline or features evaluation's settings (linear_eval.PROTOCOL)."""
    return stage_args(LINEAR_EVAL, config, **config["linear_eval"][protocol])


def cut_npz_args(config: dict, num_images: int) -> str:
    """generator.source npz: which images of the files become the shards."""
    return stage_args(CUT_NPZ, config, num_images=num_images,
                      bgr=config["generator"]["channel_order"] == "bgr")


def search_select_args(config: dict, round: int, step: int, keep: int) -> str:
    """A round's choice: which round, its step and survivors, and the score's settings (auto)."""
    return stage_args(SEARCH_SELECT, config, round=round, step=step, keep=keep)


def fetch_generator_args(config: dict) -> str:
    """The hub generator rule fetch_generator downloads: its id and revision (generator.model,
    generator.revision; none: the hub's main)."""
    g = config["generator"]
    return opts(opt("--model", g["model"]), opt("--revision", g["revision"]))


def fetch_real_args(config: dict) -> str:
    """The data set rule fetch_real downloads, and the folder it goes to (real.source, real.root)."""
    r = config["real"]
    return opts(opt("--source", r["source"]), opt("--root", r["root"]))


def fetch_retry(configfiles, config_args, snakefile, launch_dir, workdir) -> str:
    """The command a fetch failure prints as its fix: Snakemake's `fetch` target with this run's
    config files and --config values, to be run from where this run was started (`launch_dir`).
    The target comes first: --configfile takes every word after it (all the files, merged in
    order; a repeated --configfile keeps only its last), so a target after them is read as one
    more config file. A file under launch_dir is named relative to it, as a user would type it."""
    def here(path) -> str:
        path = os.path.abspath(path)
        rel = os.path.relpath(path, launch_dir)
        return path if rel.startswith(os.pardir) else rel

    words = ["snakemake", "--cores", "1", "fetch"]
    if os.path.abspath(snakefile) != os.path.join(os.path.abspath(launch_dir), "workflow", "Snakefile"):
        words += ["--snakefile", here(snakefile)]
    if os.path.abspath(workdir) != os.path.abspath(launch_dir):
        words += ["--directory", here(workdir)]
    if configfiles:
        words += ["--configfile", *(here(f) for f in configfiles)]
    if config_args:
        words += ["--config", *config_args]
    return shlex.join(words)


def report_args(online_curves: str | None = None, search_rounds=(), search_plot: str | None = None,
                generator_record=()) -> str:
    """pipeline.report's optional files, each passed only where the DAG has it: the online
    probe's figure, the `auto` search's choices and figure, the fetched generator's record."""
    return opts(opt("--online-curves", online_curves),
                opt("--search-rounds", list(search_rounds) or None),
                opt("--search-plot", search_plot),
                opt("--generator-record", list(generator_record) or None))
