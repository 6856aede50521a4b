"""Every command a user is told to run is run here: each line of the fenced shell blocks of
README.md and docs/*.md, and each command the project prints as a fix (a failure's one line, the
failure table of the README). HOW says how each one runs: for real where that is cheap, with
`-n` and otherwise the same arguments where it needs a GPU, the network, SLURM or hours, or by
the named test or CI step that runs it as written. A command added to the docs without an entry
here fails `test_every_documented_command_has_an_entry`, and an entry the docs dropped too."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from support.snakemake import REPO, checkout_view, run_command

from pipeline.core import errors  # the damaged-output line's fix, as it prints it

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Dry:
    """A Snakemake command run with `-n` added, from the root of a fresh checkout (a view of
    this one with outputs of its own): it must plan and plan at least `rules`."""
    rules: tuple[str, ...] = ()
    printed: tuple[str, ...] = ()  # text its `-n -p` output must show (paths, options)
    not_printed: tuple[str, ...] = ()  # and must not
    fetch_retry: bool = False  # its fetch jobs' printed retry, run with -n, plans them too


@dataclass(frozen=True)
class Pip:
    """pip, run with `--dry-run --no-index`: every requirement is satisfiable from what is here."""


@dataclass(frozen=True)
class Slurm:
    """A SLURM query, run as written where a scheduler answers (.ci/slurm-setup's test cluster;
    skipped elsewhere, as tests/test_slurm.py is)."""


@dataclass(frozen=True)
class By:
    """Run as written by another test or by CI: `where` holds the command's words."""
    where: str
    words: tuple[str, ...] = field(default=())


GPU_SLURM_OR_HOURS = "needs a GPU, SLURM or hours: planned with -n"
FETCH = ("fetch_generator", "fetch_real", "fetch_inception")
CIFAR_JOBS = ("prepare_real", "sample", "fid_stats", "pretrain", "linear_eval", "report")
SHARD = "results/cifar10/samples/shard_00003.json"

# command (shlex-joined words, comment dropped) -> how it runs
HOW = {
    # README: set up, run, test
    "pip install torch torchvision": Pip(),
    "pip install -e '.[test]'": Pip(),
    "snakemake --cores all": Dry(rules=("train_generator", "pretrain", "report"),
                                 printed=("results/reports/default/summary.json",)),
    "pytest -n 3": By(".ci/run", ("pytest", "-n", "3")),
    # watch a run: the paths the default's jobs write
    "tensorboard --logdir results/tensorboard": Dry(printed=("--tensorboard results/tensorboard/",)),
    "tail -f results/logs/pretrain/simclr/adainf/seed0.log":
        Dry(printed=("results/logs/pretrain/simclr/adainf/seed0.log",)),
    # the study
    # the same output_dir, its own report (config `name`): the default's is not overwritten
    "snakemake --cores all --configfile configs/study.yaml":
        Dry(rules=("search_train", "report"), printed=("results/reports/study/summary.json",),
            not_printed=("results/reports/default/",)),
    "snakemake --cores all --configfile configs/study.yaml --report report.html":
        By("tests/test_report_html.py", ("--report",)),  # reads a finished run
    # the CIFAR-10 preset and its authors'-data overlay
    "snakemake --configfile configs/cifar10.yaml --profile profiles/workstation -n":
        Dry(rules=CIFAR_JOBS),
    "snakemake --configfile configs/cifar10.yaml --profile profiles/workstation":
        Dry(rules=CIFAR_JOBS),
    "snakemake --configfile configs/cifar10.yaml configs/cifar10-authors-data.yaml "
    "--profile profiles/workstation": Dry(rules=("cut_npz", "pretrain", "report")),
    "python bench/rehearsal.py": By(".ci/run", ("bench/rehearsal.py",)),
    "python bench/rehearsal.py --authors-data --methods simclr":
        By(".ci/run", ("bench/rehearsal.py", "--authors-data", "--methods", "simclr")),
    "python bench/gpu.py --all": By("tests/test_bench_gpu.py", ("gpu.py", "--all")),  # smoke size
    # clusters
    "snakemake --profile profiles/slurm --configfile configs/cifar10.yaml -n": Dry(rules=CIFAR_JOBS),
    "snakemake --profile profiles/slurm --configfile configs/cifar10.yaml": Dry(rules=CIFAR_JOBS),
    "snakemake --cores 1 fetch --configfile configs/cifar10.yaml":
        Dry(rules=FETCH, fetch_retry=True),
    "snakemake --cores 1 fetch --configfile configs/cifar10.yaml configs/cifar10-authors-data.yaml":
        Dry(rules=("fetch_real", "fetch_inception"), printed=("results/cifar10-edm/assets/",),
            fetch_retry=True),
    f"snakemake --profile profiles/slurm {SHARD} --configfile configs/cifar10.yaml":
        Dry(rules=("sample",), printed=(SHARD,)),
    "squeue --me -o '%.8i %.9T %.10M %k'": Slurm(),
    "sacct -X -o JobID,Comment%45,State,Elapsed": Slurm(),
    "cat .snakemake/slurm_logs/rule_sample/00003/4711.log": By("tests/test_slurm.py", ("slurm_logs",)),
    ".ci/slurm-setup": By(".ci/run", (".ci/slurm-setup",)),
    "snakemake --profile profiles/slurm --profile tests/profiles/slurm-cpu --configfile "
    "tests/configs/tiny.yaml tests/configs/tiny_slurm.yaml --directory /tmp/adainf-slurm":
        By("tests/test_slurm.py", ("slurm-cpu",)),
    # what reruns
    "snakemake --cores all -R pretrain": Dry(rules=("pretrain", "linear_eval", "report")),
    "snakemake --cores 1 -f results/pretrain/simclr/adainf/seed0/encoder.pt":
        Dry(rules=("pretrain",)),  # run for real at tiny size: tests/test_rerun_one_job.py
    f"snakemake --cores 1 -f {SHARD} --configfile configs/cifar10.yaml":
        Dry(rules=("sample",), printed=(SHARD,)),
    # fixes the project prints
    "snakemake --cores 1 fetch --configfile FILE...":  # the failure table: the printed retry
        By("tests/test_docs_commands.py", ("fetch_retry=True",)),
    "pip install 'adainf-pipeline[wandb]'": Pip(),
    # a damaged output's line (pipeline/core/errors.py), run as printed there
    "rm FILE && snakemake --cores all FILE": By("tests/test_refusals.py", ("delete it and rebuild it",)),
}


# a damaged output's fix (pipeline/core/errors.py's REBUILD), as the line prints it
REBUILD = r"(rm \S+ && snakemake [^`(;\"]*)"


def _commands(text: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments dropped, words re-quoted."""
    text = re.sub(r"\\\n\s*", " ", text)
    return [shlex.join(words) for line in text.splitlines()
            if (words := shlex.split(line, comments=True))]


def documented() -> dict[str, str]:
    """{command: where} for every line of every fenced shell block of the docs."""
    found = {}
    for doc in DOCS:
        for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", doc.read_text(), re.S | re.M):
            if lang in SHELL_BLOCKS:
                for command in _commands(body):
                    found.setdefault(command, doc.name)
            else:  # diagrams: a command there would be missed
                assert not re.search(r"^\s*(snakemake|python|pip|pytest) ", body, re.M), doc
    return found


def printed_fixes() -> dict[str, str]:
    """{command: where} for the fixes the project prints: the README failure table's fix column
    and the commands in the stages' messages."""
    found = {}
    table = (REPO / "README.md").read_text().split("## When something fails")[1]
    for row in re.findall(r"^\|.*\|$", table, re.M):
        for command in re.findall(r"run \\`([^`\\]+)\\`", row) + re.findall(REBUILD, row):
            found[command.strip()] = "README.md (failure table)"
    for source in sorted((REPO / "pipeline").rglob("*.py")):
        text = source.read_text()
        for command in re.findall(r"\((pip install '[^']+')\)|: (pip install '[^']+')\"", text):
            found["".join(command)] = str(source.relative_to(REPO))
    for command in re.findall(REBUILD, errors.REBUILD.format(path="FILE")):
        found[command.strip()] = "pipeline/core/errors.py"
    return found


def test_every_documented_command_has_an_entry():
    commands = {**documented(), **printed_fixes()}
    missing = {c: where for c, where in commands.items() if c not in HOW}
    assert not missing, f"commands without an entry in HOW: {missing}"
    stale = set(HOW) - set(commands)
    assert not stale, f"entries in HOW no doc gives any more: {stale}"


@functools.cache
def view() -> Path:
    """One fresh checkout's view for every dry run, with a stand-in for the authors' npz file
    (configs/cifar10-authors-data.yaml checks that it exists) and the config stating its count,
    which the dry runs of that preset add, as tests/test_preset.py does: 60 images, not 1M."""
    import tempfile

    root = checkout_view(Path(tempfile.mkdtemp(prefix="docs-commands-")))
    gen = root / "data" / "generated" / "cifar10-edm-1m.npz"
    gen.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(gen, image=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
             label=np.repeat(np.arange(10), 6))
    (root / STAND_IN).write_text('{"sampling": {"num_images": 60}}\n')
    return root


def planned(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"^rule (\w+):", result.stdout, re.M))


STAND_IN = "standin.yaml"  # the stand-in npz's count (fewer images than num_images is refused)


def dry_run(argv: list[str]) -> subprocess.CompletedProcess:
    argv = [*argv, *([] if "-n" in argv else ["-n"]), "-p"]
    if "configs/cifar10-authors-data.yaml" in argv and STAND_IN not in argv:  # one more file
        argv.insert(argv.index("configs/cifar10-authors-data.yaml") + 1, STAND_IN)
    return _dry_run(tuple(argv))


# one plan per distinct command: a documented command and its documented `-n` twin, or the two
# commands that read the default's files, share it
@functools.cache
def _dry_run(argv: tuple[str, ...]) -> subprocess.CompletedProcess:
    r = run_command(list(argv), cwd=view(), timeout=300)
    assert r.returncode == 0, f"{shlex.join(argv)}:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
    return r


def check_dry(command: str, how: Dry) -> None:
    argv = shlex.split(command)
    if argv[0] != "snakemake":  # a command that reads what the default's jobs write
        argv = ["snakemake", "--cores", "all"]
    r = dry_run(argv)
    assert set(how.rules) <= planned(r), (command, set(how.rules) - planned(r))
    for text in how.printed:
        assert text in r.stdout, (command, text)
    for text in how.not_printed:
        assert text not in r.stdout, (command, text)
    if how.fetch_retry:
        retries = set(re.findall(r"pipeline\.fetch --retry ('[^']+'|\S+)", r.stdout))
        assert len(retries) == 1, retries  # every fetch job prints the same fix
        (retry,) = retries
        again = dry_run(shlex.split(shlex.split(retry)[0]))
        assert planned(again) == planned(r), (retry, planned(again), planned(r))


def check_pip(command: str) -> None:
    argv = [sys.executable, "-m", *shlex.split(command), "--dry-run", "--no-index",
            "--no-build-isolation"]
    r = subprocess.run(argv, cwd=view(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{command}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
    assert "does not provide the extra" not in r.stdout + r.stderr, r.stderr


def check_slurm(command: str) -> None:
    try:
        up = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        up = False
    if not up:
        pytest.skip("no SLURM scheduler answers here (.ci/slurm-setup starts one)")
    r = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{command}:\n{r.stdout[-1000:]}{r.stderr[-1000:]}"


def check_by(command: str, how: By) -> None:
    text = (REPO / how.where).read_text()
    for word in how.words:
        assert word in text, f"{command}: {how.where} does not run it ({word!r} not in it)"


@pytest.mark.slow
@pytest.mark.xdist_group("docs_commands")  # one worker: one checkout view, shared plans
@pytest.mark.parametrize("command", sorted(HOW))
def test_documented_command_runs(command):
    how = HOW[command]
    if isinstance(how, Dry):
        check_dry(command, how)
    elif isinstance(how, Pip):
        check_pip(command)
    elif isinstance(how, Slurm):
        check_slurm(command)
    else:
        check_by(command, how)
