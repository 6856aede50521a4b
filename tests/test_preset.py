"""The cifar10 preset means what it says: every cell of configs/cifar10.yaml, read from the
pretraining commands Snakemake plans for it (after the same key-by-key merge over config.yaml),
has the authors' settings (tests/authors_cifar10.py, each row naming its source file), and
docs/cifar10.md shows that table."""

from __future__ import annotations

import copy
import re
import shlex

import numpy as np
import pytest
import yaml
from snakemake.utils import update_config

from authors_cifar10 import METHODS, STRATEGIES, expected, markdown
from support.snakemake import REPO, run_snakemake
from support.tiny import make_images
from pipeline.pretrain import effective_settings, parse_args

PRESET = REPO / "configs" / "cifar10.yaml"
# table rows that are not a command-line setting, and the test that pins them
PINNED_ELSEWHERE = {"loss_precision": "tests/test_losses.py",
                    "probe_init": "tests/test_online_probe.py (lr 0 stays at chance)",
                    "warmup_start_lr": "tests/test_training.py::test_warmup_cosine_values"}


@pytest.fixture(scope="module")
def commands(cifar10_dry_run) -> list[str]:
    """The pretraining commands of `snakemake -n -p --configfile configs/cifar10.yaml`."""
    return [line for line in cifar10_dry_run.stdout.splitlines() if "-m pipeline.pretrain " in line]


def _planned(commands) -> dict:
    cells = {}
    for line in commands:
        if "--strategy random_init" in line:
            continue
        words = shlex.split(line)
        world = int(words[words.index("--nproc_per_node") + 1]) if "torchrun" in words else 1
        argv = words[words.index("pipeline.pretrain") + 1:words.index(">")]
        args = parse_args(argv)
        cells[args.method, args.strategy] = effective_settings(args, world)
    return cells


@pytest.fixture(scope="module")
def planned(commands) -> dict:
    """{(method, strategy): effective settings} of the preset's planned pretraining commands."""
    return _planned(commands)


def _check_every_cell(planned):
    assert sorted(planned) == sorted((m, s) for m in METHODS for s in STRATEGIES)
    for (method, strategy), got in planned.items():
        want = {k: v for k, v in expected(method, strategy).items() if k not in PINNED_ELSEWHERE}
        mismatched = {k: (got.get(k, "missing"), v) for k, v in want.items()
                      if got.get(k, "missing") != pytest.approx(v)}
        assert not mismatched, (method, strategy, "setting: (preset, authors)", mismatched)
        # nothing the table leaves out (view settings aside, all listed)
        assert set(got) - set(want) <= {"augmentation", "probe_every"} | set(
            k for k in got if k.startswith("view")), (method, set(got) - set(want))


@pytest.mark.slow
def test_every_cell_has_the_authors_settings(planned):
    _check_every_cell(planned)


@pytest.mark.slow
def test_the_authors_data_preset_keeps_labels_and_the_two_device_barlow_loss(tmp_path):
    """`snakemake -n -p --configfile configs/cifar10.yaml configs/cifar10-authors-data.yaml`
    over a small stand-in for their EDM file: the file is cut (nothing sampled), every cell has
    the authors' settings, the generated cells' online probes keep the file's labels, and
    Barlow Twins computes the authors' per-device loss."""
    gen = tmp_path / "data" / "generated" / "cifar10-edm-1m.npz"
    gen.parent.mkdir(parents=True)
    np.savez(gen, image=make_images(60, size=32), label=np.repeat(np.arange(10), 6))
    standin = tmp_path / "standin.yaml"  # its count: fewer than num_images is refused
    standin.write_text('{"sampling": {"num_images": 60}}\n')
    r = run_snakemake("-n", "-p", "--configfile", str(PRESET),
                      str(REPO / "configs" / "cifar10-authors-data.yaml"), str(standin),
                      cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    commands = [line for line in r.stdout.splitlines() if "-m pipeline.pretrain " in line]
    assert "pipeline.cut_npz" in r.stdout and "pipeline.sample " not in r.stdout
    assert "--bgr" not in r.stdout  # the EDM file is RGB
    planned = _planned(commands)
    _check_every_cell(planned)
    for (method, strategy), got in planned.items():
        assert got.get("probe_generated_labels") == (None if strategy == "none" else "keep")
        assert (got.get("loss_groups") == 2) == (method == "barlow")
    trained = [c for c in commands if "--steps 0" not in c]
    assert sum("--keep-generated-labels" in c for c in trained) == 8  # vanilla, adainf × 4


def test_the_docs_show_the_table():
    readme = (REPO / "docs" / "cifar10.md").read_text()
    start, end = "<!-- authors-table:start -->\n", "<!-- authors-table:end -->"
    assert start in readme and end in readme
    shown = readme[readme.index(start) + len(start):readme.index(end)]
    assert shown == markdown(), "docs/cifar10.md table differs from tests/authors_cifar10.py"


def _leaves(d: dict, prefix=()) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, prefix + (k,)))
        else:
            out[".".join(prefix + (k,))] = v
    return out


# Keys of the embedded default (config.yaml) the preset does not restate, so inherits through
# Snakemake's key-by-key merge of --configfile. None of them changes the preset's results: the
# split and generator-training keys are unused with CIFAR-10's own test split and a pretrained
# generator, eta only applies to DDIM, EDM's s_min/s_max/s_noise only act with s_churn > 0 (the
# preset's is 0) and are EDM's own, stem_padding null is the authors' 2, experiments.sweeps is
# empty, threads and pretrain's compile / channels_last only set speed, generator.channel_order,
# real.test and real.channel_order are for npz sources only, the `auto` search's grid, budget
# and score settings only act when `auto` is among the strategies (not the preset's), and
# `logging` only writes the live curves.
# A new key in config.yaml that the preset would inherit fails here until it is judged.
INHERITED = {"real.test_fraction", "real.seed", "generator.path", "generator.revision", "generator.train.channels",
             "generator.train.layers_per_block", "generator.train.attention",
             "generator.train.steps", "generator.train.batch_size", "generator.train.lr",
             "generator.train.ema_decay", "generator.train.snr_gamma",
             "generator.train.beta_schedule",
             "generator.train.seed", "generator.channel_order", "real.test",
             "real.channel_order", "sampling.eta", "sampling.edm.s_min", "sampling.edm.s_max",
             "sampling.edm.s_noise", "pretrain.backbone.stem_padding", "pretrain.compile",
             "pretrain.channels_last", "threads.train_generator", "experiments.sweeps",
             "auto.candidates.generated", "auto.candidates.dup", "auto.candidates.augmentation",
             "auto.candidates.crop_min_scale", "auto.candidates.jitter_strength", "auto.eta",
             "auto.budget", "auto.val_fraction", "auto.val_seed", "auto.knn_k",
             "logging.tensorboard", "logging.log_every", "logging.wandb.project",
             "logging.wandb.mode", "auto.candidates.generated_keep",
             # the metrics' own defaults (10k subsets, k = 3 and 5 as their papers), not toy sizes
             "quality.subset", "quality.seed", "quality.k_precision", "quality.k_density",
             "quality.score", "quality.batch_size"}


def test_the_preset_inherits_nothing_toy_from_the_embedded_default():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    preset = yaml.safe_load(PRESET.read_text())
    merged = copy.deepcopy(default)
    update_config(merged, preset)  # what `--configfile configs/cifar10.yaml` does
    inherited = {k for k, v in _leaves(merged).items()
                 if k not in _leaves(preset) and _leaves(default).get(k) == v}
    assert inherited == INHERITED
    # the one head/loss setting the preset gives: the authors' two-device Barlow Twins loss
    assert merged["pretrain"]["method_args"] == {"barlow": {"loss_groups": 2}}


@pytest.mark.slow
def test_dry_run_commands_have_the_papers_heads_and_batch(planned, commands):
    """Today's leak, seen in the shell commands: the digits default's proj_hidden=256."""
    pretrain = commands
    assert len(pretrain) == 16
    assert all(("--method-arg loss_groups=2" in line) == ("--method barlow" in line)
               and line.count("--method-arg") <= 1 for line in pretrain if "--steps 0" not in line)
    trained = [line for line in pretrain if "--strategy random_init" not in line]
    assert len(trained) == 12  # random_init's command holds only what its weights depend on
    assert all(re.search(r"--batch-size 512\b", line) for line in trained)
    assert planned["simclr", "none"]["proj_hidden"] == 2048


@pytest.mark.slow
def test_two_processes_of_256_are_the_same_run(planned, commands):
    """processes: 2 with batch_size: 256 (the authors' two GPUs) resolves to the same settings."""
    line = next(c for c in commands if "--method mocov2plus" in c and "--strategy adainf" in c)
    words = shlex.split(line.replace("--batch-size 512", "--batch-size 256"))
    args = parse_args(words[words.index("pipeline.pretrain") + 1:words.index(">")])
    assert effective_settings(args, 2) == planned["mocov2plus", "adainf"]
