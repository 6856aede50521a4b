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
import shlex

from pipeline.dag.paths import dataset_dir, real_split, result_path, shard_quality_files
from pipeline.study.design import RANDOM_INIT, Design


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
    pretrain.method_augmentation's replacement for this method, else the strategy's own."""
    return config["pretrain"]["method_augmentation"].get(method, {}).get(augmentation, augmentation)


def pretrain_args(config: dict, design: Design, method: str, variant: str, seed) -> str:
    """The options of one pretrain job that determine its encoder, history and online result."""
    out = config["output_dir"].rstrip("/")
    s, p = design.settings(variant), config["pretrain"]
    b = p["backbone"]
    backbone = opts(opt("--widths", b["widths"]), opt("--blocks", b["blocks"]),
                    opt("--stem-padding", b.get("stem_padding")))
    if variant == RANDOM_INIT:  # the initial weights: the backbone, the seed and the real data
        return opts(backbone, opt("--steps", 0))
    online = {}
    if "online" in design.protocols:
        online = {"test": real_split(out, "test"),
                  "out": result_path(out, method, variant, seed, "online"),
                  **config["linear_eval"]["online"]}
    return opts(
        opt("--generated", dataset_dir(out, "generated") if s["generated"] else None),
        opt("--dup", s["dup"]),
        opt("--augmentation", method_preset(config, method, s["augmentation"])),
        opt("--crop-min-scale", s.get("crop_min_scale")),
        opt("--jitter-strength", s.get("jitter_strength")),
        # absent where they mean all images (design.without_all); the real subset is seeded by
        # the real split's seed, so every cell at one fraction sees the same images
        opt("--num-generated", s.get("num_generated")),
        opt("--generated-subset-seed",
            config["sampling"]["seed"] if "num_generated" in s else None),
        # the best fraction by quality score: an index into the shards, like --num-generated
        opt("--generated-keep", s.get("generated_keep")),
        opt("--generated-score", config["quality"]["score"] if "generated_keep" in s else None),
        opt("--generated-scores", shard_quality_files(config) if "generated_keep" in s else None),
        opt("--real-fraction", s.get("real_fraction")),
        opt("--real-subset-seed", config["real"]["seed"] if "real_fraction" in s else None),
        backbone,
        opt("--steps", p["steps"]),
        *(opt(f"--{k.replace('_', '-')}", p[k]) for k in
          ("batch_size", "optimizer", "lr", "weight_decay", "warmup_steps", "precision")),
        *(opt("--method-arg", f"{k}={json.dumps(v)}")
          for k, v in p["method_args"].get(method, {}).items()),
        *(opt(f"--online-{k}", v) for k, v in online.items()),
        # only the online probe reads generated labels (offline and features: real only)
        opt("--keep-generated-labels", bool(online) and s["generated"]
            and config["generator"]["labels"] == "keep"),
    )


def pretrain_untracked_args(config: dict) -> str:
    # resuming is exact, so where the checkpoints fall changes no result; compile and
    # channels_last change the speed (and float summation order), not the method
    p = config["pretrain"]
    return opts(opt("--checkpoint-every", p["checkpoint_every"]), opt("--compile", p["compile"]),
                opt("--channels-last", p["channels_last"]))


def tracking_args(config: dict, run: str, log_every: bool = False) -> str:
    """The live-curve options (config `logging`) of the job `run` (RULE/WILDCARDS): TensorBoard
    event files in OUTPUT_DIR/tensorboard/RUN, W&B files in OUTPUT_DIR/wandb when a project is
    set, and, for a loop counted in steps, --log-every. None of them changes a result."""
    lg, out = config["logging"], config["output_dir"].rstrip("/")
    wandb = lg["wandb"]
    project = wandb["project"]
    return opts(
        opt("--log-every", lg["log_every"] if log_every else None),
        opt("--tensorboard", f"{out}/tensorboard/{run}" if lg["tensorboard"] else None),
        opt("--wandb-project", project),
        *((opt("--wandb-mode", wandb["mode"]), opt("--wandb-dir", out), opt("--run-name", run))
          if project else ()),
    )


def tracking(config: dict, run: str, log_every: bool = False):
    """tracking_args as an untracked rule param; `run` may name wildcards, e.g.
    "pretrain/{method}/{variant}/seed{seed}"."""
    return lambda wildcards, input: tracking_args(config, run.format(**dict(wildcards.items())),
                                                  log_every)


SAMPLE_UNTRACKED = ("batch_size", "channels_last", "compile")


def sample_args(config: dict) -> str:
    """Sampling options that determine the images (an image's noise depends only on its index,
    so the batch size, channels_last and compile change how fast, not what)."""
    s = config["sampling"]
    return opts(
        opt("--seed", s["seed"]), opt("--sampler", s["sampler"]), opt("--steps", s["steps"]),
        opt("--eta", s["eta"]), opt("--precision", s["precision"]),
        *(opt(f"--{k.replace('_', '-')}", v) for k, v in s["edm"].items()),
    )


def sample_untracked_args(config: dict) -> str:
    s = config["sampling"]
    return opts(*(opt(f"--{k.replace('_', '-')}", s[k]) for k in SAMPLE_UNTRACKED))


def fid_stats_args(config: dict) -> str:
    f = config["fid"]
    return opts(opt("--features", f["features"]), opt("--dims", f["dims"]),
                opt("--weights", f["weights"]), opt("--precision", f["precision"]))


def fid_stats_untracked_args(config: dict) -> str:
    return opts(opt("--batch-size", config["fid"]["batch_size"]),
                opt("--quality-batch", config["quality"]["batch_size"]))


def fid_quality_args(config: dict, start=None, total=None, real_quality=None) -> str:
    """The quality file's settings (config quality): the subset, its seed and the radii's k; for
    a shard its global start, the set's size and the real quality file it is scored against."""
    q = config["quality"]
    return opts(opt("--subset", q["subset"]), opt("--subset-seed", q["seed"]),
                opt("--k-precision", q["k_precision"]), opt("--k-density", q["k_density"]),
                opt("--start", start), opt("--total", total), opt("--real-quality", real_quality))


def prepare_real_args(config: dict) -> str:
    """The real data's source and split (`download` is untracked: fetching CIFAR or finding it on
    disk gives the same data)."""
    r = config["real"]
    return opts(opt("--source", r["source"]), opt("--root", r["root"]), opt("--test", r["test"]),
                opt("--bgr", r["channel_order"] == "bgr"),
                opt("--resolution", r["resolution"]), opt("--test-fraction", r["test_fraction"]),
                opt("--seed", r["seed"]))


def train_generator_args(config: dict) -> str:
    """Every setting of the generator trained here (generator.train)."""
    t = config["generator"]["train"]
    return opts(*(opt(f"--{k.replace('_', '-')}", t[k]) for k in
                  ("channels", "layers_per_block", "attention", "steps", "batch_size", "lr",
                   "ema_decay", "snr_gamma", "beta_schedule", "seed")))


def linear_eval_args(config: dict, protocol: str) -> str:
    """An offline or features evaluation's settings (linear_eval.PROTOCOL)."""
    l = config["linear_eval"][protocol]
    return opts(opt("--epochs", l["epochs"]), opt("--batch-size", l["batch_size"]),
                opt("--lr", l["lr"]), opt("--weight-decay", l["weight_decay"]))


def cut_npz_args(config: dict, num_images: int) -> str:
    """generator.source npz: which images of the files become the shards."""
    return opts(opt("--source", config["generator"]["path"]),
                opt("--shard-size", config["sampling"]["shard_size"]),
                opt("--num-images", num_images),
                opt("--bgr", config["generator"]["channel_order"] == "bgr"),
                opt("--resolution", config["real"]["resolution"]))
