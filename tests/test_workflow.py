"""The Snakemake workflow: dry runs of the presets and profiles, and one real end-to-end run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from support.snakemake import REPO, TINY, TINY_STUDY, run_snakemake as snakemake
from pipeline.core import io
from pipeline.data.dataset import load_packed


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_cifar10_preset_builds_the_full_dag(cifar10_dry_run):
    counts = job_counts(cifar10_dry_run.stdout)
    # 1M images in shards of 50k; a pretrained generator, so no train_generator job;
    # 4 methods × none/vanilla/adainf encoders plus 4 random_init ones, each evaluated offline
    # and on features (the online probe is part of pretraining)
    assert counts["sample"] == 20
    assert "train_generator" not in counts
    assert counts["pretrain"] == 12 and counts["init_encoder"] == 4
    assert counts["linear_eval"] == 32
    # Inception statistics per shard plus the real reference, merged by one fid job
    assert counts["fid_stats"] == 21 and counts["fid"] == 1
    commands = cifar10_dry_run.stdout
    # sampled from the folder rule fetch_generator fills (tests/test_fetch.py), not the hub
    assert "fetch --retry" in commands and "generator --model google/ddpm-cifar10-32" in commands
    # the paper's online probe trains inside every pretraining job, not on random_init
    assert commands.count("--online-out") == 12
    # every 200 steps as the authors' val_check_interval, at each method's own classifier_lr
    assert "--online-every 200" in commands and "--online-lr" not in commands
    assert "--protocol offline" in commands and "--protocol features" in commands
    assert "--seed 5" in commands


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["workstation", "slurm"])
def test_profiles_dry_run(tmp_path, profile):
    r = snakemake("-n", "--profile", str(REPO / "profiles" / profile), "--configfile",
                  str(REPO / "configs" / "cifar10.yaml"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout)["sample"] == 20


@pytest.mark.e2e
def test_tiny_study_end_to_end(tiny_study):
    results = tiny_study / "results"
    report = results / "reports" / "default"  # the config's name: config.yaml's
    summary = json.loads((report / "summary.json").read_text())
    runs = {(x["method"], x["strategy"], x["seed"], x["protocol"]): x for x in summary["runs"]}
    strategies = ("none", "vanilla", "adainf", "adainf+crop_min_scale=0.5")
    # the online probe has nothing to train on random_init
    assert set(runs) == (
        {("simclr", v, s, p) for v in strategies for s in (0, 1) for p in ("online", "offline")}
        | {("simclr", "random_init", s, "offline") for s in (0, 1)})
    assert all(0 <= x["top1"] <= x["top5"] <= 100 for x in runs.values())
    adainf = runs["simclr", "adainf", 1, "online"]
    assert adainf["dup"] == 10 and adainf["num_generated"] == 48 and adainf["crop_min_scale"] == 0.2
    assert runs["simclr", "adainf+crop_min_scale=0.5", 0, "offline"]["crop_min_scale"] == 0.5
    assert runs["simclr", "none", 0, "online"]["num_generated"] == 0
    # different seeds train different encoders
    assert (results / "pretrain/simclr/none/seed0/encoder.pt").read_bytes() != \
        (results / "pretrain/simclr/none/seed1/encoder.pt").read_bytes()
    online = json.loads((results / "pretrain/simclr/vanilla/seed0/online.json").read_text())
    assert [c["step"] for c in online["curve"]] == [2, 3]
    cells = {(c["strategy"], c["protocol"]): c for c in summary["cells"]}
    assert cells["adainf", "online"]["n"] == 2 and cells["adainf", "online"]["seeds"] == [0, 1]
    fid = summary["fid"]  # tiny_study.yaml's protocol: 3 disjoint seed sets of 16 of the 48
    assert fid["features"] == "pixels" and fid["num_generated"] == 16
    assert fid["protocol"]["seed_sets"] == 3 and len(fid["protocol"]["fids"]) == 3
    assert fid["fid"] == min(fid["protocol"]["fids"]) and fid["whole_set"]["num_generated"] == 48
    assert "min of 3 disjoint seed sets" in (report / "summary.md").read_text()

    shards = sorted((results / "samples").glob("shard_*.json"))
    assert [len(load_packed(s)[0]) for s in shards] == [32, 16]
    for name in ("results.png", "samples.png", "losses.png", "online.png",
                 "sweeps/adainf_crop_min_scale.png"):
        assert (report / name).stat().st_size > 0
    table = (report / "summary.md").read_text()
    assert "online protocol" in table and "offline protocol" in table and " ± " in table
    assert "## Finding" in table and summary["findings"][0].startswith("- online, simclr (2 seeds)")
    # the generated set's four quality numbers beside FID, in the JSON and the table
    quality = summary["quality"]
    assert quality["features"] == "pixels" and quality["num_generated"] == 48
    assert all(0 <= quality[k] <= 1 for k in ("precision", "recall", "coverage"))
    assert f"precision {quality['precision']:.3f}" in table
    assert summary["selection"] == []  # every strategy keeps all its generated images
    assert (report / "selection.png").stat().st_size > 0
    assert (tiny_study / "results" / "logs" / "pretrain" / "simclr" / "adainf" / "seed1.log").exists()

    again = snakemake("--cores", "2", "--configfile", str(TINY), str(TINY_STUDY), "-n",
                      cwd=tiny_study)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.e2e
def test_adding_a_cell_trains_only_that_cell(tiny_study, tmp_path):
    more = tmp_path / "more.yaml"
    more.write_text(TINY_STUDY.read_text().replace("values: [0.2, 0.5]", "values: [0.2, 0.5, 0.8]"))
    r = snakemake("-n", "--cores", "2", "--configfile", str(TINY), str(more), cwd=tiny_study)
    assert r.returncode == 0, r.stdout + r.stderr
    # one new sweep value × two seeds: two encoders, their offline evaluations, the report
    assert job_counts(r.stdout) == {"pretrain": 2, "linear_eval": 2, "report": 1, "all": 1,
                                    "total": 6}
    assert "adainf+crop_min_scale=0.8" in r.stdout


# Settings changed over the finished tiny study, and the jobs each must rerun (a dry run's counts).
# Study: 4 trained strategies (none, vanilla, adainf, adainf+crop_min_scale=0.5) × 2 seeds, plus
# random_init × 2; protocols online (inside pretraining) and offline; 2 sample shards.
RERUNS = {
    "pretrain": ("pretrain: {lr: 0.004}",
                 {"pretrain": 8, "linear_eval": 8}),
    "strategy": ("strategies: {adainf: {dup: 3, generated: true, augmentation: weak}}",
                 {"pretrain": 4, "linear_eval": 4}),  # adainf and its sweep strategy
    "sampling": ("sampling: {steps: 4}",
                 {"sample": 2, "fid_stats": 2, "fid": 1, "pack": 1, "pretrain": 6,
                  "linear_eval": 6}),
    "linear_eval": ("linear_eval: {offline: {epochs: 2}}", {"linear_eval": 10}),
    "online_probe": ("linear_eval: {online: {lr: 0.1}}", {"pretrain": 8, "linear_eval": 8}),
    # the online probe of the cells with generated images (vanilla, adainf, its sweep strategy)
    "generated_labels": ("generator: {labels: keep}", {"pretrain": 6, "linear_eval": 6}),
    # the cells whose strategy asks for the standard preset (none, vanilla)
    "method_augmentation": ("pretrain: {method_augmentation: {simclr: {standard: mild}}}",
                            {"pretrain": 4, "linear_eval": 4}),
    # selection by quality score: adainf and its sweep strategy train again on the kept images;
    # nothing is sampled or scored again (the scores are the FID statistics jobs' files)
    "generated_keep": ("strategies: {adainf: {dup: 10, generated: true, augmentation: weak, "
                       "generated_keep: 0.5}}", {"pretrain": 4, "linear_eval": 4}),
    # the quality subset: the FID statistics jobs (real + 2 shards) and the metrics; no cell
    # selects, so no encoder changes
    "quality": ("quality: {subset: 30, k_density: 4}", {"fid_stats": 3, "fid": 1}),
    # none of these changes a result
    "speed_only": ("fid: {batch_size: 7}\nthreads: {default: 2, sample: 2}\ndevice: cpu\n"
                   "pretrain: {checkpoint_every: 1}\nsampling: {batch_size: 5}\n"
                   "quality: {batch_size: 3}", {}),
    # live curves change no result: TensorBoard off, another interval, W&B on
    "logging": ("logging: {tensorboard: false, log_every: 7, wandb: {project: study, "
                "mode: offline}}", {}),
    # the study's own settings restated (the merge puts them first) and `download` (same data)
    "same_settings_reordered": ("generator: {train: {batch_size: 16, steps: 10, channels: [8, 16]}}"
                                "\nlinear_eval: {offline: {batch_size: 64, epochs: 1}}"
                                "\nreal: {resolution: 8, download: true}", {}),
}


@pytest.mark.e2e
@pytest.mark.parametrize("stage", RERUNS)
def test_a_changed_setting_reruns_exactly_its_dependents(tiny_study, tmp_path, stage):
    change, expected = RERUNS[stage]
    (tmp_path / "change.yaml").write_text(change + "\n")
    r = snakemake("-n", "--configfile", str(TINY), str(TINY_STUDY), str(tmp_path / "change.yaml"),
                  cwd=tiny_study)
    assert r.returncode == 0, r.stdout + r.stderr
    if not expected:
        assert "Nothing to be done" in r.stdout + r.stderr, r.stdout
        return
    counts = job_counts(r.stdout)
    total = sum(expected.values()) + 2
    assert counts == {**expected, "report": 1, "all": 1, "total": total}


@pytest.mark.e2e
def test_a_damaged_shard_is_regenerated_by_the_next_run(tiny_study):
    """Pretraining finds a damaged shard: it is named and moved aside with the dataset that
    references it, and the next run regenerates that shard, repacks and retrains, nothing else
    upstream."""
    from pipeline.data.dataset import ChecksumError, load_packed

    results = tiny_study / "results"
    victim = results / "samples" / "shard_00001.images.npy"
    original, stat = victim.read_bytes(), victim.stat()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(ChecksumError, match="shard_00001.images.npy"):
            load_packed(results / "dataset" / "generated")
        r = snakemake("-n", "--configfile", str(TINY), str(TINY_STUDY), cwd=tiny_study)
    finally:  # put the finished study back for the other tests
        victim.write_bytes(original)
        os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as old as it was
        (results / "dataset" / "generated.corrupt").rename(results / "dataset" / "generated")
        victim.with_name(victim.name + ".corrupt").unlink()
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert counts["sample"] == 1 and counts["pack"] == 1 and counts["fid_stats"] == 1
    assert counts["pretrain"] == 6  # the encoders that use generated images
    assert "train_generator" not in counts and "prepare_real" not in counts


@pytest.mark.e2e
def test_a_shard_without_its_manifest_is_sampled_again_alone(tmp_path):
    """A sample shard whose manifest (shard_NNNNN.json, written last beside its .npy files) is
    gone: the next run plans that shard's sample job and the repack, nothing else upstream, and
    leaves the other shards as they were; the same images, so the same content record."""
    extra = tmp_path / "two_shards.yaml"  # shards 0 and 1 of 20: one sampling job fewer than 48's
    extra.write_text("sampling: {num_images: 40}\n")
    args = ("--cores", "1", "--configfile", str(TINY), str(extra))
    r = snakemake("results/dataset/generated", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    samples = tmp_path / "results" / "samples"
    # the shards' files too, as rule all asks for them (Snakemake rebuilds a missing file only
    # when some job asks for it, not for a finished consumer's input)
    target = ("results/dataset/generated", *sorted(str(p.relative_to(tmp_path))
                                                   for p in samples.iterdir()), *args)
    record = (tmp_path / "results" / "dataset" / "generated.json").read_text()
    kept = {p.name: p.stat().st_mtime_ns for p in samples.iterdir() if "00001" not in p.name}
    (samples / "shard_00001.json").unlink()

    dry = snakemake(*target, "-n", cwd=tmp_path)
    assert job_counts(dry.stdout) == {"sample": 1, "pack": 1, "total": 2}, dry.stdout[-2000:]
    (sampled,) = [line for line in dry.stdout.splitlines()
                  if line.strip().startswith("output:") and "/samples/shard_" in line]
    assert "results/samples/shard_00001.json" in sampled
    r = snakemake(*target, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (samples / "shard_00001.json").is_file()
    assert {n: (samples / n).stat().st_mtime_ns for n in kept} == kept
    assert (tmp_path / "results" / "dataset" / "generated.json").read_text() == record


@pytest.mark.slow
def test_killed_stage_leaves_no_finished_output(tmp_path):
    """SIGKILL in the middle of training: the generator folder must not exist afterwards."""
    images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    io.save_images(tmp_path / "real.npz", images, np.zeros(32, np.int64))
    out = tmp_path / "generator"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train_generator", "--real", str(tmp_path / "real.npz"),
         "--out", str(out), "--steps", "100000", "--channels", "8", "16", "--batch-size", "4",
         "--layers-per-block", "1", "--lr", "0.002", "--ema-decay", "0.995",
         "--beta-schedule", "squaredcos_cap_v2", "--seed", "0", "--log-every", "50",
         "--architecture", "small", "--precision", "fp32", "--label-dropout", "0.1",
         "--checkpoint-every", "0", "--device", "cpu", "--threads", "1"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    # wait until the training loop is running (its progress bar appears), then kill
    deadline = time.time() + 120
    seen = ""
    while "train generator" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    assert "train generator" in seen
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("real.npz",)]
    assert all(name.startswith(".generator.") and name.endswith(".tmp") for name in leftovers)


@pytest.mark.parametrize("num_images,shard_size,message", [
    (100000000000, 1000000000, "not enough disk space"),
    # a DAG of 5e9 jobs would exhaust memory: refused when the config is read
    (100000000000, 20, "sampling.shard_size: 100000000000 images in shards of 20"),
])
@pytest.mark.slow
def test_dry_run_refuses_what_cannot_fit_before_the_dag(tmp_path, num_images, shard_size, message):
    huge = tmp_path / "huge.yaml"
    huge.write_text(TINY.read_text().replace("num_images: 48", f"num_images: {num_images}")
                    .replace("shard_size: 20", f"shard_size: {shard_size}"))
    r = snakemake("-n", "--configfile", str(huge), cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert message in r.stdout + r.stderr
    assert "Building DAG" not in r.stdout + r.stderr
    assert not (tmp_path / "results" / "real").exists()  # no job ran


@pytest.mark.e2e
def test_a_stage_failing_on_bad_input_shows_one_line_on_the_console(tmp_path):
    # 48 images: the tiny config's batch of 16 fits the training split (checked when read)
    images = np.random.default_rng(0).integers(0, 256, (48, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", image=images, label=np.array([0, 1, -1] * 16))
    config = tmp_path / "bad.yaml"
    config.write_text(f"real: {{source: npz, root: {tmp_path / 'real.npz'}, resolution: 8}}\n")
    r = snakemake("--cores", "1", "--configfile", str(TINY), str(config), "--until",
                  "prepare_real", cwd=tmp_path, timeout=300)
    assert r.returncode != 0
    line = f"prepare_real: npz {tmp_path / 'real.npz'}: label -1 in the real data"
    assert line in r.stdout + r.stderr
    assert "Traceback" not in (tmp_path / "results" / "logs" / "prepare_real.log").read_text()


@pytest.mark.e2e
def test_two_runs_with_different_output_dirs_keep_their_own_logs(tmp_path):
    """The preset after the default (or two presets): each run's logs and benchmark files live
    under its own output_dir, so the second run overwrites none of the first's."""
    for out in ("run_a", "run_b"):
        r = snakemake(f"{out}/real/train.npz", "--cores", "1", "--configfile", str(TINY),
                      "--config", f"output_dir={out}", cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for out in ("run_a", "run_b"):
        log = (tmp_path / out / "logs" / "prepare_real.log").read_text()
        assert "digits train" in log
        assert (tmp_path / out / "benchmarks" / "prepare_real.tsv").exists()
    assert not (tmp_path / "logs").exists() and not (tmp_path / "benchmarks").exists()
