"""Trust every cached result: the probes of a finished tiny run (the suite's tiny study, copied,
so no run of its own). Each output deleted is planned again by a plain run; a damaged or
truncated one is caught (one line, moved aside) and rebuilt identical; the user's inputs
replaced in place rerun what reads them; a killed rerun for a changed setting is carried out by
the next run; a results folder copied without .snakemake/ and run with another setting is
refused in one line; an identical repack reruns nothing. docs/results.md lists them."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from support.config import load_config
from support.snakemake import TINY, TINY_STUDY, run_snakemake
from support.tiny import make_images, make_tiny_unet
from pipeline.core import io, records
from pipeline.dag.paths import REPORT_FILES, WorkflowPaths
from pipeline.evaluation.frechet import load_stats
from pipeline.study.design import plan

pytestmark = pytest.mark.e2e
CONFIG = ("--configfile", str(TINY), str(TINY_STUDY))
SKIPPED = {"logs", "benchmarks", "tensorboard", "design", "inputs", ".records", ".run.lock"}
STUDY = load_config(TINY, TINY_STUDY)
PATHS = WorkflowPaths(STUDY, plan(STUDY))
SUMMARY = PATHS.report_file("summary").removeprefix("results/")  # under reports/NAME/


def snakemake(cwd, *args, config=CONFIG, ok=True):
    r = run_snakemake(*args, "--cores", "2", *config, cwd=cwd, timeout=600)
    if ok:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture
def run(tiny_study, tmp_path) -> Path:
    """A copy of the finished tiny study (its .snakemake/ too), for one test to damage."""
    shutil.copytree(tiny_study, tmp_path, symlinks=True, dirs_exist_ok=True)
    return tmp_path


def missing(stdout: str) -> str:
    """The dry run's reasons that name missing outputs, one string."""
    return "\n".join(line for line in stdout.splitlines() if "Missing output files" in line)


def test_rule_all_asks_for_every_file_a_job_made(tiny_study):
    """Every file of a finished run is a file rule all asks for (or in a folder it asks for):
    the intermediate files or the report's outputs; and each of those exists."""
    asked = set(PATHS.intermediate_files())
    assert all((tiny_study / f).exists() for f in asked), [f for f in asked
                                                           if not (tiny_study / f).exists()]
    report = {PATHS.report_file(n) for n in REPORT_FILES} | {f"results/{SUMMARY}.record.json"}
    made = [p.relative_to(tiny_study).as_posix() for p in (tiny_study / "results").rglob("*")
            if p.is_file() and p.name != ".snakemake_timestamp"
            and p.relative_to(tiny_study / "results").parts[0] not in SKIPPED]
    unasked = [f for f in made if f not in asked and f not in report
               and not f.startswith(f"{PATHS.reports()}/sweeps/")
               and not any(f.startswith(d + "/") for d in asked)]
    assert unasked == []
    assert len(made) > 100  # the check saw the run


# One output of each kind (each rule's each output); a plain dry run after deleting it plans
# its producer.
DELETED = ["real/train.npz", "real/test.npz.record.json", "generator",
           "generator.record.json", "samples/shard_00001.labels.npy", "fid/real.stats.npz",
           "fid/shard_00000.quality.npz.record.json", "dataset/real.json", "dataset/generated",
           "fid.json", "pretrain/simclr/none/seed1/history.json",
           "pretrain/simclr/random_init/seed0/encoder.pt",
           "pretrain/simclr/vanilla/seed0/encoder.pt.record.json",
           "pretrain/simclr/vanilla/seed0/online.json",
           "linear/simclr/adainf/seed0/offline.json", f"{SUMMARY}.record.json"]


def test_a_deleted_output_is_planned_again_by_a_plain_run(tiny_study, tmp_path):
    shutil.copytree(tiny_study / ".snakemake", tmp_path / ".snakemake", symlinks=True)
    shutil.copytree(tiny_study / "results", tmp_path / "results", symlinks=True)
    for name in DELETED:
        path = tmp_path / "results" / name
        aside = tmp_path / "aside"
        os.replace(path, aside)
        try:
            r = snakemake(tmp_path, "-n")
        finally:
            os.replace(aside, path)
        assert f"results/{name}" in missing(r.stdout), name


def same_generator(a: Path, b: Path) -> None:
    for f in ("unet/diffusion_pytorch_model.safetensors", "unet/config.json",
              "scheduler/scheduler_config.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_deleted_outputs_are_rebuilt_identical(run, tmp_path_factory):
    """The producers of a deleted generator, real statistics file and encoder rebuild them
    equal to the uninterrupted run's (the timings they also record aside)."""
    keep = tmp_path_factory.mktemp("original")
    names = ["generator", "fid/real.stats.npz", "pretrain/simclr/random_init/seed0/encoder.pt"]
    for name in names:
        os.replace(run / "results" / name, keep / Path(name).name)
    snakemake(run, *(f"results/{n}" for n in names))
    same_generator(run / "results" / "generator", keep / "generator")
    (new, _), (old, _) = load_stats(run / "results/fid/real.stats.npz"), load_stats(
        keep / "real.stats.npz")
    assert np.array_equal(new.outer, old.outer) and np.array_equal(new.total, old.total)
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in
            (run / "results" / names[2], keep / "encoder.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def flip(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGED = {"pretrain/simclr/random_init/seed0/encoder.pt": "init_encoder",
           "fid/real.stats.npz": "fid_stats", "real/train.npz": "prepare_real",
           "generator/unet/diffusion_pytorch_model.safetensors": "train_generator",
           "fid/shard_00001.quality.npz": "fid_stats", SUMMARY: "report"}


@pytest.mark.parametrize("damage", [flip, truncate])
def test_a_damaged_output_is_moved_aside_in_one_line_and_planned_again(run, damage):
    for name, rule in DAMAGED.items():
        path = run / "results" / name
        original = path.read_bytes()
        damage(path)
        r = snakemake(run, "-n")
        output = name.split("/unet/")[0]  # a file of the generator: the folder
        (line,) = [x for x in r.stderr.splitlines() if "does not match its record" in x]
        assert line.startswith(f"results/{output} ") and "moved aside" in line
        assert f"results/{output}" in missing(r.stdout) and f"rule {rule}:" in r.stdout + r.stderr
        os.replace(run / "results" / f"{output}.corrupt", run / "results" / output)
        path.write_bytes(original)  # undone, for the next probe


def test_a_damaged_summary_is_rebuilt_identical(run):
    summary = run / "results" / SUMMARY
    original = json.loads(summary.read_text())
    flip(summary, 10)
    r = snakemake(run)
    assert "rule report:" in r.stdout + r.stderr and "rule linear_eval" not in r.stdout + r.stderr
    assert json.loads(summary.read_text()) == original
    assert "Nothing to be done" in snakemake(run, "-n").stdout


def change_a_value(path: Path) -> None:
    """One digit of a value changed: the file valid still, the same size, another number."""
    text = path.read_text()
    at = re.search(r"(?<=[\s,])\d", text).start()
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:])


def test_a_changed_accuracy_or_fid_is_rebuilt_and_reported_as_before(run):
    """The online probe's result (the default's headline accuracy) and fid.json with a digit
    changed are each one line at the next run's start and rebuilt by it, as is a cell's
    history.json record deleted; the report's numbers are the uninterrupted run's."""
    summary, results = run / "results" / SUMMARY, run / "results"
    original = json.loads(summary.read_text())
    changed = ["pretrain/simclr/none/seed0/online.json", "fid.json"]
    for name in changed:
        change_a_value(results / name)
    deleted = results / "pretrain/simclr/random_init/seed1/history.json.record.json"
    deleted.unlink()
    r = snakemake(run)
    lines = [x for x in r.stderr.splitlines() if "does not match its record" in x]
    assert sorted(x.split(" ")[0] for x in lines) == sorted(f"results/{n}" for n in changed)
    assert all(f"rule {rule}:" in r.stdout + r.stderr for rule in ("pretrain", "fid",
                                                                 "init_encoder", "report"))
    rebuilt = json.loads(summary.read_text())
    assert rebuilt["runs"] == original["runs"] and rebuilt["cells"] == original["cells"]
    assert {k: v for k, v in rebuilt["fid"].items() if k != "seconds"} == \
        {k: v for k, v in original["fid"].items() if k != "seconds"}
    assert deleted.exists() and all(records.verify(results / n) for n in changed)
    assert "Nothing to be done" in snakemake(run, "-n").stdout


def test_a_packed_folder_without_its_manifest_is_repacked(run):
    from pipeline.data.dataset import ChecksumError, load_packed

    folder = run / "results" / "dataset" / "real"
    (folder / "manifest.json").unlink()
    with pytest.raises(ChecksumError, match="no manifest.json; moved"):
        load_packed(folder)
    assert not folder.exists()
    assert "results/dataset/real" in missing(snakemake(run, "-n").stdout)


def test_an_identical_repack_reruns_nothing(run):
    snakemake(run, "--force", "results/dataset/real.json", "results/dataset/generated.json")
    assert "Nothing to be done" in snakemake(run, "-n").stdout


def test_a_killed_rerun_for_a_changed_setting_is_carried_out_by_the_next_run(run):
    """generator.train.steps changed, train_generator killed: Snakemake removes a failed job's
    outputs (the old generator and its record); the next plain run rebuilds the generator
    with the new setting and everything made from it, instead of 'Nothing to be done'."""
    (run / "steps.yaml").write_text("generator: {train: {steps: 12}}\n")
    config = (*CONFIG, str(run / "steps.yaml"))
    shutil.rmtree(run / "results" / "generator")
    (run / "results" / "generator.record.json").unlink()
    r = snakemake(run, "-n", config=config)
    assert "rule train_generator:" in r.stdout and "Nothing to be done" not in r.stdout
    for rule in ("sample", "fid", "report"):
        assert f"rule {rule}:" in r.stdout


def test_results_copied_without_snakemake_metadata_are_refused_with_another_setting(
        tiny_study, tmp_path):
    shutil.copytree(tiny_study / "results", tmp_path / "results", symlinks=True)
    (tmp_path / "steps.yaml").write_text("sampling: {steps: 4}\n")
    config = (*CONFIG, str(tmp_path / "steps.yaml"))
    r = snakemake(tmp_path, "-n", config=config, ok=False)
    assert r.returncode != 0 and "rule sample:" not in r.stdout
    (line,) = [x for x in (r.stdout + r.stderr).splitlines() if "was made with other" in x]
    assert "results/samples/shard_00000.json" in line and "--steps 3 -> 4" in line
    assert "--forcerun sample" in line
    # the fix the line names plans the samples again; the same settings pass as they are
    assert "rule sample:" in snakemake(tmp_path, "-n", "--forcerun", "sample", config=config).stdout
    assert "rule sample:" not in snakemake(tmp_path, "-n").stdout


def test_a_real_npz_replaced_in_place_reruns_what_reads_it(tmp_path):
    data = tmp_path / "real.npz"
    labels = np.arange(40) % 4
    io.save_images(data, make_images(40), labels)
    (tmp_path / "real.yaml").write_text(f"real: {{source: npz, root: {data}}}\n")
    config = (*CONFIG[:2], str(tmp_path / "real.yaml"))
    snakemake(tmp_path, "results/real/train.npz", config=config)
    stat = data.stat()
    io.save_images(data, make_images(40, seed=1), labels)  # same size, other images
    assert data.stat().st_size == stat.st_size
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))  # even with an older time
    r = snakemake(tmp_path, "-n", "results/real/train.npz", config=config)
    assert "rule prepare_real:" in r.stdout
    snakemake(tmp_path, "results/real/train.npz", config=config)
    os.utime(data)  # touched, content unchanged: nothing to redo
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "results/real/train.npz",
                                             config=config).stdout


def test_a_local_generator_folder_replaced_in_place_reruns_sampling(tmp_path):
    from diffusers import DDPMScheduler

    folder = tmp_path / "gen"
    make_tiny_unet(0).save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=20).save_pretrained(folder)
    (tmp_path / "gen.yaml").write_text(f"generator: {{source: pretrained, model: {folder}}}\n")
    config = (*CONFIG[:2], str(tmp_path / "gen.yaml"))
    target = "results/samples/shard_00000.json"
    snakemake(tmp_path, target, config=config)
    assert "Nothing to be done" in snakemake(tmp_path, "-n", target, config=config).stdout
    weights = folder / "diffusion_pytorch_model.safetensors"
    stat = weights.stat()
    make_tiny_unet(1).save_pretrained(folder)  # other weights, same file names and sizes
    assert weights.stat().st_size == stat.st_size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))  # even an older time
    assert "rule sample:" in snakemake(tmp_path, "-n", target, config=config).stdout
