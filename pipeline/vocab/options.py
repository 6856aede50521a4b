"""Every stage option the workflow passes, declared once (torch-free: the Snakefile reads it).

An `Option` names its flag and, for a setting of the config, its key (`pretrain.steps`;
`strategies.*.dup` for a strategy's). From one declaration:

- the stage's parser (pipeline.core.cli.add_options): the type, choices and help come from the
  key's entry in pipeline/vocab/config.schema.yaml, so `--help` shows the schema's
  description; the option is required unless the key may be null (default None) or is a switch;
  with `in_range=True` its type also refuses a value outside the entry's bounds;
- the rule's options (pipeline.dag.job_params.stage_args): the value is the config's
  (config.yaml holds the only default), tracked unless `tracked=False` (speed only);
- the check that every key exists in the schema and in config.yaml (tests/test_options.py).

An option that is no config key (a path, a wildcard, a job's own range) gives its own help and
argparse settings; so does an option whose value the workflow computes (`computed=True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pipeline.vocab.names import (ASYMMETRIC_PRESETS, METHODS, PARTS, PROTOCOLS,
                                  SYMMETRIC_PRESETS)
from pipeline.vocab.schema import schema_entry  # noqa: F401  (re-exported: cli, tests)


@dataclass(frozen=True)
class Option:
    flag: str
    key: str | None = None  # the config key it takes its type, help and value from
    help: str | None = None  # an option's own help; with a key, words after its description
    tracked: bool = True  # False: changes only the speed (a rule's untracked param)
    computed: bool = False  # the workflow computes the value (job_params gives it), not config[key]
    argparse: dict = field(default_factory=dict)  # settings of its own, over the schema's
    in_range: bool = False  # the parser checks the schema's minimum/maximum (a stage run by hand)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def option(flag: str, key: str | None = None, help: str | None = None, *, tracked: bool = True,
           computed: bool = False, in_range: bool = False, **argparse) -> Option:
    return Option(flag, key, help, tracked, computed, argparse, in_range)


def config_value(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


# The live curves' options of every stage that trains or samples (pipeline.core.tracking), none
# of which changes a result; --log-every for the loops counted in steps.
LOG_EVERY = option("--log-every", "logging.log_every", tracked=False, computed=True)
TRACKING = (
    option("--tensorboard", help="write TensorBoard event files to DIR (logging.tensorboard: "
           "OUTPUT_DIR/tensorboard/RULE/WILDCARDS; default: none)", tracked=False,
           computed=True, metavar="DIR"),
    option("--wandb-project", "logging.wandb.project", tracked=False),
    option("--wandb-mode", "logging.wandb.mode", "required with --wandb-project", tracked=False,
           computed=True, required=False, default=None),
    option("--wandb-dir", help="folder for W&B's files, under it wandb/ (the workflow: "
           "OUTPUT_DIR; default: W&B's own, $WANDB_DIR or the working directory)",
           tracked=False, computed=True),
    option("--run-name", help="the run's name in W&B; its first part is the run's group "
           "(default: W&B's own)", tracked=False, computed=True),
)

# pipeline.pretrain, in the order the workflow passes them
PRETRAIN = (
    option("--real", help="packed real dataset folder (from pack)", required=True),
    option("--out", help="encoder checkpoint (.pt)", required=True),
    option("--history", help="loss curve (.csv); a .json summary goes beside it", required=True),
    option("--method", help="the SSL method", required=True, choices=sorted(METHODS)),
    option("--strategy", help="name recorded with the run", required=True),
    option("--seed", help="seed of the initial weights, batches and augmentations",
           required=True, type=int),
    option("--generated", help="packed generated dataset folder, to inflate with (default: none)",
           computed=True),
    option("--dup", "strategies.*.dup", "required unless --steps 0", computed=True,
           required=False),
    option("--augmentation", "strategies.*.augmentation", "here by that preset's own name "
           "(asym_*: pipeline.vocab.augmentation.trained_preset), mild from "
           "pretrain.method_augmentation; required unless --steps 0",
           computed=True, required=False,
           choices=sorted((*SYMMETRIC_PRESETS, *ASYMMETRIC_PRESETS))),
    option("--crop-min-scale", "strategies.*.crop_min_scale", "default: the preset's",
           computed=True, required=False, default=None),
    option("--jitter-strength", "strategies.*.jitter_strength", "default: the preset's",
           computed=True, required=False, default=None),
    option("--num-generated", "strategies.*.num_generated", "here seeded by "
           "--generated-subset-seed (pipeline.data.dataset.generated_subset)", computed=True),
    option("--generated-subset-seed", help="seed of the --num-generated subset (the workflow "
           "passes sampling.seed); required with --num-generated", computed=True, type=int),
    option("--generated-keep", "strategies.*.generated_keep", "ranked by --generated-score; "
           "an index into the shards, no copy; not with --num-generated", computed=True),
    option("--generated-score", "quality.score", "required with --generated-keep",
           computed=True, required=False, default=None),
    option("--generated-scores", help="the shards' quality files (fid_stats --quality-out); "
           "required with --generated-keep", computed=True, nargs="+"),
    option("--real-fraction", "strategies.*.real_fraction", "the online probe sees only these",
           computed=True, in_range=True),
    option("--real-subset-seed", help="seed of the real subset (the workflow passes real.seed); "
           "required with --real-fraction below 1", computed=True, type=int),
    option("--widths", "pretrain.backbone.widths"),
    option("--blocks", "pretrain.backbone.blocks"),
    option("--stem-padding", "pretrain.backbone.stem_padding"),
    option("--steps", "pretrain.steps", "0 saves the encoder at initialisation"),
    option("--batch-size", "pretrain.batch_size", "required unless --steps 0", required=False),
    option("--optimizer", "pretrain.optimizer"),
    option("--lr", "pretrain.lr"),
    option("--weight-decay", "pretrain.weight_decay"),
    option("--warmup-steps", "pretrain.warmup_steps", "required unless --steps 0",
           required=False),
    option("--precision", "pretrain.precision", "required unless --steps 0", required=False),
    option("--method-arg", help="a head/loss setting of the method, e.g. proj_dim=256 "
           "(pretrain.method_args; repeatable; default: the method's, pipeline.vocab.methods)",
           computed=True, action="append", default=[], metavar="KEY=VALUE"),
    option("--online-test", help="real test split (npz): train and evaluate the online linear "
           "probe (default: no probe)", computed=True),
    option("--online-out", help="online-probe result (JSON; default: none, with no "
           "--online-test)", computed=True),
    option("--online-every", "linear_eval.online.every", "required with --online-test",
           computed=True, required=False, default=None),
    option("--online-lr", "linear_eval.online.lr", computed=True),
    option("--keep-generated-labels", help="the online probe also trains on the generated "
           "images' labels (generator.labels keep: an npz set's, a class-conditional sampler's), "
           "as the authors' did; default: generated images are unlabelled (-1)", computed=True,
           action="store_true"),
    option("--stop-at", help="stop after this step, keeping --checkpoint; the schedules still "
           "span --steps (default: none, train all --steps)", computed=True, type=int),
    option("--resume-from", help="a checkpoint to start from (read only) while --checkpoint "
           "does not exist yet, e.g. the previous round's of the auto search (default: none)",
           computed=True),
    option("--checkpoint", help="resume from / save to this file (removed once the outputs are "
           "written; one of other settings is ignored; default: none, no resuming)"),
    option("--memory-budget", help="device memory the run may plan for (default: the CUDA "
           "device's free memory; none on CPU); a larger plan stops before training starts",
           type=float, metavar="GB"),
    option("--no-verify", help="skip the dataset checksums", action="store_true"),
    # speed only
    option("--checkpoint-every", "pretrain.checkpoint_every", tracked=False),
    option("--compile", "pretrain.compile", tracked=False),
    option("--channels-last", "pretrain.channels_last", tracked=False),
    replace(LOG_EVERY, help="also the loss's copies to the host"),
)

SAMPLE = (
    option("--model", help="generator: hub id or local folder", required=True),
    option("--out", help="shard manifest (NAME.json); the images go to NAME.images.npy and "
           "NAME.labels.npy beside it (pipeline.data.dataset's format)", required=True),
    option("--start", help="global index of the first image", required=True, type=int),
    option("--count", help="images in the shard", required=True, type=int),
    option("--seed", "sampling.seed", "an image's noise depends only on it and the image's index"),
    option("--sampler", "sampling.sampler"),
    option("--steps", "sampling.steps"),
    option("--eta", "sampling.eta", "0: deterministic"),
    option("--timestep-spacing", "sampling.timestep_spacing"),
    option("--guidance", "sampling.guidance"),
    option("--labels", "sampling.labels"),
    option("--precision", "sampling.precision"),
    *(option(f"--{k.replace('_', '-')}", f"sampling.edm.{k}")
      for k in ("sigma_min", "sigma_max", "rho", "s_churn", "s_min", "s_max", "s_noise")),
    # speed only: an image's noise depends only on its index
    option("--batch-size", "sampling.batch_size", tracked=False),
    option("--channels-last", "sampling.channels_last", tracked=False),
    option("--compile", "sampling.compile", tracked=False),
    option("--compile-cache", help="folder of torch.compile's caches (Inductor's and Triton's), "
           "shared by the jobs of a run: one compile per machine, not per job; a "
           "TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR in the environment wins (default: "
           "torch's own, under /tmp)", computed=True, tracked=False, metavar="DIR"),
)

# fid_stats' settings of the quality file (with --quality-batch: required with --quality-out)
QUALITY_SETTINGS = (("--subset", "quality.subset"), ("--subset-seed", "quality.seed"),
                    ("--k-precision", "quality.k_precision"), ("--k-density", "quality.k_density"))
# one declaration for both stages that compute distances in blocks
QUALITY_BATCH = option("--quality-batch", "quality.batch_size", "required with the quality "
                       "files (fid_stats: --quality-out, fid: --real-quality)", tracked=False,
                       required=False, default=None)

def count_or_all(text: str):
    """fid.num_generated on a command line: `all`, or a count of at least 2 images."""
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 2:
        raise ValueError(f"not a count of at least 2 images, nor all: {text!r}")
    return int(text)


FID_STATS = (
    option("--images", help="image file: npz, or a sample shard's manifest (.json)",
           required=True),
    option("--out", help="statistics file (.npz)", required=True),
    option("--features", "fid.features"),
    option("--dims", "fid.dims"),
    # the workflow passes the weights that rule fetch_inception verified where fid.weights is null
    option("--weights", "fid.weights"),
    option("--precision", "fid.precision"),
    # passed with --features dinov2 only (other features' jobs keep their commands)
    option("--dinov2-arch", "fid.dinov2_arch", "required with --features dinov2", computed=True,
           required=False, default=None),
    # what the quality metrics need, from the same features (pipeline.evaluation.quality)
    option("--quality-out", help="quality file (.npz): this file's images of the feature "
           "subset, and the real radii or the shard's scores (default: none written; then "
           "--subset, --subset-seed, --k-precision, --k-density and --quality-batch are "
           "required)", computed=True),
    option("--start", help="global index of the file's first image (a shard's; default: 0)",
           computed=True, type=int),
    option("--total", help="images in the whole set the subset is drawn from (default: this "
           "file's)", computed=True, type=int),
    *(option(flag, key, "required with --quality-out", computed=True, required=False,
             default=None)
      for flag, key in QUALITY_SETTINGS),
    # the FID protocol's subsets, passed to the shards' jobs only (the real set is whole)
    option("--num-generated", "fid.num_generated", "a shard's job sums its share of each "
           "subset (default: all, no subsets)", computed=True, required=False, default=None,
           type=count_or_all),
    option("--seed-sets", "fid.seed_sets", "with --num-generated", computed=True,
           required=False, default=None),
    option("--real-quality", help="the real set's quality file: score every image of this shard "
           "against it (default: none, this is the real set: compute its radii)", computed=True),
    option("--batch-size", "fid.batch_size", tracked=False),
    QUALITY_BATCH,
)

PREPARE_REAL = (
    option("--source", "real.source", choices=None),  # load_real names an unknown source
    option("--root", "real.root"),
    option("--test", "real.test"),
    option("--bgr", help="source npz: the files are BGR (real.channel_order bgr, cv2.imread); "
           "swap them to RGB", computed=True, action="store_true"),
    option("--resolution", "real.resolution"),
    option("--test-fraction", "real.test_fraction"),
    option("--seed", "real.seed"),
    option("--per-class", "real.per_class"),
    # not passed by the workflow: rule fetch_real fetches the data first
    option("--download", help="fetch CIFAR if absent", action="store_true"),
    option("--train-out", help="training images (npz)", required=True),
    option("--test-out", help="test images (npz)", required=True),
)

TRAIN_GENERATOR = (
    option("--real", help="real training images (npz from prepare_real)", required=True),
    option("--out", help="output folder (diffusers DDPMPipeline layout)", required=True),
    *(option(f"--{k.replace('_', '-')}", f"generator.train.{k}") for k in
      ("channels", "layers_per_block", "attention", "steps", "batch_size", "lr", "ema_decay",
       "snr_gamma", "beta_schedule", "seed", "architecture", "warmup_steps", "grad_clip",
       "precision", "class_conditional", "label_dropout")),
    # not a config key: the workflow's generators all use diffusers' 1000
    option("--num-train-timesteps", help="diffusion timesteps of the noise schedule",
           type=int, default=1000),
    option("--checkpoint", help="resumable state: resumed from when it holds this run's, "
           "written every --checkpoint-every steps, removed when the generator is saved "
           "(default: none)", computed=True, tracked=False),
    # speed only (processes: the launcher's, torchrun's --nproc_per_node)
    *(option(f"--{k.replace('_', '-')}", f"generator.train.{k}", tracked=False)
      for k in ("checkpoint_every", "compile", "channels_last")),
    LOG_EVERY,
)

# the same option of several stages, declared once
REAL_TRAIN = option("--train", help="real training images (npz)", required=True)
JSON_OUT = option("--out", help="JSON result", required=True)

LINEAR_EVAL = (
    option("--encoder", help="encoder checkpoint (from pretrain)", required=True),
    REAL_TRAIN,
    option("--test", help="real test images (npz)", required=True),
    JSON_OUT,
    option("--protocol", help="see above", required=True,
           choices=tuple(p for p in PROTOCOLS if p != "online")),  # online: inside pretrain
    # linear_eval.PROTOCOL's (the schema describes each protocol's)
    option("--epochs", help="passes over the training images (linear_eval.PROTOCOL.epochs)",
           computed=True, required=True, type=int),
    option("--batch-size", help="images per step", computed=True, required=True, type=int),
    option("--lr", help="learning rate (features: AdamW, offline: SGD)", computed=True,
           required=True, type=float),
    option("--weight-decay", help="weight decay", computed=True, required=True, type=float),
    option("--seed", help="seed of the classifier and batches", required=True, type=int),
)

CUT_NPZ = (
    option("--source", "generator.path", required=True),
    option("--out", help="shard manifests (NAME.json), in order", required=True, nargs="+"),
    option("--shard-size", "sampling.shard_size"),
    option("--num-images", help="take the first this many images (at most all of them)",
           computed=True, required=True, type=int),
    option("--bgr", help="the files are BGR (generator.channel_order bgr, written from "
           "cv2.imread): swap them to RGB", computed=True, action="store_true"),
    option("--resolution", "real.resolution", "the images' expected side"),
)

SEARCH_SELECT = (
    option("--encoders", help="each candidate's encoder at this round's step", required=True,
           nargs="+"),
    option("--candidates", help="the candidates' names, in the order of --encoders (ties go "
           "to the first)", required=True, nargs="+"),
    REAL_TRAIN,
    option("--round", help="this round's number (from 0)", computed=True, required=True, type=int),
    option("--step", help="the step the encoders stopped at", computed=True, required=True,
           type=int),
    option("--keep", help="how many candidates survive", computed=True, required=True, type=int),
    option("--val-fraction", "auto.val_fraction"),
    option("--val-seed", "auto.val_seed"),
    option("--k", "auto.knn_k"),
    option("--out", help="the round's JSON", required=True),
)

FID = (
    option("--generated", help="statistics files of the shards", required=True, nargs="+"),
    option("--real", help="real statistics: ours, or an npz of mu/sigma", required=True),
    JSON_OUT,
    option("--real-quality", help="the real set's quality file (fid_stats --quality-out; "
           "default: no precision/recall/density/coverage)", computed=True),
    option("--generated-quality", help="the shards' quality files (with --real-quality)",
           computed=True, nargs="*", default=[]),
    QUALITY_BATCH,
)

PACK = (
    option("--part", help="which dataset the images form", required=True, choices=PARTS),
    option("--inputs", help="npz image files (copied, one shard each) or sample shard manifests "
           "(.json, referenced in place)", required=True, nargs="+"),
    option("--out", help="dataset folder", required=True),
    option("--record", help="the content record written beside the folder (PART.json: part, "
           "count, every file's sha256): what the workflow's consumers depend on",
           required=True),
)

REPORT = (
    option("--results", help="evaluation JSON files (linear_eval's, and pretrain's online.json)",
           required=True, nargs="+"),
    option("--histories", help="pretraining loss curves: METHOD/STRATEGY/seedN/history.csv",
           required=True, nargs="*"),
    option("--design", help="JSON file: {design: pipeline.study.design.Design as a dict, "
           "sampling: {...}}", required=True),
    option("--fid", help="FID result (JSON, from fid)", required=True),
    option("--real", help="real training images (npz)", required=True),
    option("--generated", help="a generated shard (its .json manifest)", required=True),
    option("--generator-record", help="a fetched hub generator's record (JSON, from fetch): its "
           "commit is reported (default: none, a generator trained here or a local folder)"),
    option("--summary", help="summary JSON", required=True),
    option("--table", help="summary Markdown", required=True),
    option("--page", help="summary HTML page", required=True),
    option("--results-figure", help="PNG: the headline figure (top-1 per strategy × protocol, "
           "seeds, intervals, differences to none)", required=True),
    option("--results-svg", help="the headline figure as SVG, which the Snakemake report's "
           "landing page inlines (its embedded-image directive leaves a file path)",
           required=True),
    option("--samples", help="PNG: real (top) vs generated (bottom)", required=True),
    option("--losses", help="PNG of the loss curves", required=True),
    option("--online-curves", help="PNG of the online probe's accuracy (default: none drawn)"),
    option("--sweep-plots", help="one PNG per sweep, in order (none without sweeps)",
           required=True, nargs="*"),
    option("--scores", help="the shards' quality files (fid_stats --quality-out): the selection "
           "figure and table (default: none)", nargs="*", default=[]),
    option("--shards", help="every generated shard's manifest, in order (with --scores)",
           nargs="*", default=[]),
    option("--selection", help="PNG: the best and worst generated images by quality.score "
           "(with --scores; default: none drawn)"),
    option("--search-rounds", help="the auto search's rounds (search_select's JSON; default: "
           "none)", nargs="*", default=[]),
    option("--search-plot", help="PNG of the auto search's scores against steps (default: none "
           "drawn)"),
)

# pipeline.fetch: --retry, then each asset's subcommand (pipeline.fetch sets the defaults of
# --url and --repo from pipeline.core.assets, a layer above this one)
FETCH = (
    option("--retry", help="the command the one-line error tells the user to run where there "
           "is network (default: this command line)"),
)
FETCH_ASSETS = {
    "generator": (
        option("--model", help="hub id, e.g. google/ddpm-cifar10-32", required=True),
        option("--revision", help="branch, tag or commit (default: main)"),
        option("--out", help="folder the pipeline's files are written to", required=True),
        option("--record", help="JSON record: commit, files, sizes, sha256", required=True),
    ),
    "real": (
        option("--source", help="data set", required=True, choices=("cifar10", "cifar100")),
        option("--root", help="data folder (real.root)", required=True),
        option("--record", help="JSON record: files, sizes, md5", required=True),
    ),
    "inception": (
        option("--out", help="the weights file (the torch.hub cache's path)", required=True),
        option("--url", help="where they come from"),
        option("--record", help="JSON record: path, size, sha256", required=True),
    ),
    "dinov2": (
        option("--repo", help="timm's hub repository"),
        option("--out", help="the weights file (safetensors)", required=True),
        option("--record", help="JSON record: repo, commit, path, size, sha256", required=True),
    ),
}

# pipeline.core.gpu_slots (it sets --lock-dir's default from the environment when it builds
# its parser)
GPU_SLOTS = (
    option("--gpus", help="devices the command needs", required=True, type=int),
    option("--count", help="GPUs on this machine (default: $ADAINF_GPU_COUNT, else torch's "
           "count)", type=int),
    option("--lock-dir", help="one lock file per device, shared by the jobs of this machine; "
           "$ADAINF_GPU_LOCK_DIR where set"),
    option("--timeout", help="seconds to wait for free devices before failing (default: wait)",
           type=float),
    option("cmd", help="-- then the command and its arguments", nargs="..."),  # REMAINDER
)

# --device and --threads of every stage that runs torch (pipeline.core.runtime.add_common_args):
# the workflow always passes them (config device, threads), so they are required, as every
# option the workflow passes is (its default is config.yaml's)
COMMON = (
    option("--device", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...",
           required=True),
    option("--threads", help="CPU threads for torch", required=True, type=int),
)

# every stage's declarations, by stage module (tests/test_options.py checks them all)
STAGES = {"pretrain": PRETRAIN, "sample": SAMPLE, "fid_stats": FID_STATS,
          "prepare_real": PREPARE_REAL, "train_generator": TRAIN_GENERATOR,
          "linear_eval": LINEAR_EVAL, "cut_npz": CUT_NPZ, "search_select": SEARCH_SELECT,
          "fid": FID, "pack": PACK, "report": REPORT, "fetch": FETCH, "core.gpu_slots": GPU_SLOTS}
