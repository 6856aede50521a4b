"""Every stage option the workflow passes, declared once (torch-free: the Snakefile reads it).

An `Option` names its flag and, for a setting of the config, its key (`pretrain.steps`;
`strategies.*.dup` for a strategy's). From one declaration:

- the stage's parser (pipeline.core.cli.add_options): the type, choices and help come from the
  key's entry in workflow/schemas/config.schema.yaml, so `--help` shows the schema's
  description; the option is required unless the key may be null (default None) or is a switch;
- the rule's options (pipeline.dag.job_params.stage_args): the value is the config's
  (config.yaml holds the only default), tracked unless `tracked=False` (speed only);
- the check that every key exists in the schema and in config.yaml (tests/test_options.py).

An option that is no config key (a path, a wildcard, a job's own range) gives its own help and
argparse settings; so does an option whose value the workflow computes (`computed=True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from pipeline.vocab.names import METHODS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@dataclass(frozen=True)
class Option:
    flag: str
    key: str | None = None  # the config key it takes its type, help and value from
    help: str | None = None  # an option's own help; with a key, words after its description
    tracked: bool = True  # False: changes only the speed (a rule's untracked param)
    computed: bool = False  # the workflow computes the value (job_params gives it), not config[key]
    argparse: dict = field(default_factory=dict)  # settings of its own, over the schema's

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def option(flag: str, key: str | None = None, help: str | None = None, *, tracked: bool = True,
           computed: bool = False, **argparse) -> Option:
    return Option(flag, key, help, tracked, computed, argparse)


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema_entry(key: str) -> dict:
    """The schema's entry of a dotted key (`*`: any name of a mapping), its $ref resolved."""
    node = schema()
    for part in key.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    ref = node.get("$ref")
    if ref:
        node = {**schema()["$defs"][ref.removeprefix("#/$defs/")], **node}
    return node


def config_value(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


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
    option("--augmentation", "strategies.*.augmentation", "mild: from "
           "pretrain.method_augmentation; required unless --steps 0",
           computed=True, required=False, choices=("mild", "standard", "weak")),
    option("--crop-min-scale", "strategies.*.crop_min_scale", "default: the preset's",
           computed=True, required=False, default=None),
    option("--jitter-strength", "strategies.*.jitter_strength", "default: the preset's",
           computed=True, required=False, default=None),
    option("--num-generated", "strategies.*.num_generated", "here seeded by "
           "--generated-subset-seed (pipeline.data.dataset.generated_subset)", computed=True),
    option("--generated-subset-seed", help="seed of the --num-generated subset (the workflow "
           "passes sampling.seed); required with --num-generated", computed=True, type=int),
    option("--real-fraction", "strategies.*.real_fraction", "the online probe sees only these",
           computed=True),
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
    option("--log-every", "logging.log_every", "and the loss's copies to the host",
           tracked=False, computed=True),
)

# every stage's declarations, by stage module (tests/test_options.py checks them all)
STAGES = {"pretrain": PRETRAIN}
