"""Values that pass the schema but would fail late (deleting finished work) are refused when the
config is read, in one line naming the key, the value and the fix (pipeline.dag.config_check);
and the output folder is locked against a second run from any checkout (pipeline.dag.run_lock)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from pipeline.core import io
from pipeline.core.errors import ConfigError
from pipeline.dag import config_check, run_lock
from pipeline.vocab.schema import SCHEMA_PATH
from support.snakemake import REPO, run_snakemake


def _set(config, dotted, value):
    c = copy.deepcopy(config)
    *path, last = dotted.split(".")
    node = c
    for key in path:
        node = node[key]
    node[last] = value
    return c


def _one_line(problems, start):
    assert len(problems) == 1 and problems[0].startswith(start), problems
    assert "\n" not in problems[0]
    return problems[0]


def test_the_digits_default_trains_on_its_1437_images(config):
    assert config_check.real_train_size(config["real"]) == 1437
    assert config_check.config_problems(config) == []


@pytest.mark.parametrize("key,value,start,fix", [
    ("pretrain.batch_size", 100_000, "pretrain.batch_size: 100000 images per step, but strategy "
     "'none' trains on 1437", "use at most 1437"),
    ("real.test_fraction", 0.95, "pretrain.batch_size: 128 images per step, but strategy 'none' "
     "trains on 89", "use at most 89"),
])
def test_a_batch_larger_than_its_data_is_refused(config, key, value, start, fix):
    bad = _set(config, key, value)
    line = _one_line(config_check.config_problems(bad), start)
    assert line.endswith(fix)
    # the fix the line names
    fixed = _set(bad, "pretrain.batch_size", int(line.rsplit(" ", 1)[1]))
    assert config_check.config_problems(fixed) == []


def test_linear_and_generator_batches_larger_than_the_split_are_fine(config):
    """A batch larger than the split: linear_eval takes the whole split, the generator draws
    with replacement; neither repeats work or allocates more than it would anyway."""
    c = _set(_set(config, "linear_eval.offline.batch_size", 5000), "generator.train.batch_size", 2000)
    assert config_check.config_problems(c) == []


def test_the_batch_check_reads_an_npz_files_header_and_counts_processes(config, tmp_path):
    io.save_images(tmp_path / "real.npz", np.zeros((100, 8, 8, 3), np.uint8), np.arange(100) % 10)
    c = _set(config, "real", {**config["real"], "source": "npz", "root": str(tmp_path / "real.npz")})
    assert config_check.real_train_size(c["real"]) == 80  # 20 of 100 held out
    c["pretrain"].update(batch_size=40, processes=3)
    _one_line(config_check.config_problems(c), "pretrain.batch_size: 40 × 3 processes images per "
              "step, but strategy 'none' trains on 80")
    c["pretrain"]["processes"] = 2
    assert config_check.config_problems(c) == []
    # a file not there yet: nothing to say when the config is read (the stage checks)
    assert config_check.real_train_size({**c["real"], "root": str(tmp_path / "later.npz")}) is None


@pytest.mark.parametrize("key,value", [("pretrain.lr", float("nan")),
                                       ("generator.train.lr", float("inf")),
                                       ("sampling.edm.s_max", float("inf"))])
def test_nan_and_infinity_are_refused_anywhere_naming_the_key(config, key, value):
    bad = _set(config, key, value)
    assert config_check.schema_errors(bad, config_check_schema()) == []  # the schema lets them in
    _one_line(config_check.nonfinite_problems(bad), f"{key}: {value} is not a finite number")
    with pytest.raises(ConfigError, match=f"{key}: {value} is not a finite number"):
        config_check.check_schema(bad, config_check_schema())
    sweeps = [{"strategy": "adainf", "setting": "dup", "values": [2, float("nan")]}]
    assert config_check.nonfinite_problems(_set(config, "experiments.sweeps", sweeps)) == [
        "experiments.sweeps[0].values[1]: nan is not a finite number; give a number"]


def config_check_schema():
    return SCHEMA_PATH


@pytest.mark.parametrize("args,start", [
    ({"simclr": {"proj_dim": 0}}, "pretrain.method_args.simclr.proj_dim: 0 must be a positive integer"),
    ({"byol": {"pred_hidden": -4}}, "pretrain.method_args.byol.pred_hidden: -4 must be a positive"),
    ({"mocov2plus": {"queue_size": 2.5}}, "pretrain.method_args.mocov2plus.queue_size: 2.5 must"),
    ({"simclr": {"temperature": 0}}, "pretrain.method_args.simclr.temperature: 0 must be above 0"),
    ({"byol": {"tau_base": 1.5}}, "pretrain.method_args.byol.tau_base: 1.5 must be in [0, 1]"),
    ({"barlow": {"lambd": "big"}}, "pretrain.method_args.barlow.lambd: 'big' must be a number"),
])
def test_head_sizes_below_1_and_impossible_loss_settings_are_refused(config, args, start):
    _one_line(config_check.config_problems(_set(config, "pretrain.method_args", args)), start)


@pytest.mark.parametrize("out,start", [
    ("", "output_dir: '' is empty; name a folder"),
    ("   ", "output_dir: '   ' is empty"),
    ("/", "output_dir: '/' is the file system's root"),
    ("//", "output_dir: '//' is the file system's root"),
    ("my results", "output_dir: 'my results' has [' '] (spaces or shell characters"),
    ("res$HOME", "output_dir: 'res$HOME' has ['$']"),
    ("config.yaml", "output_dir: 'config.yaml' is a file, not a folder"),
    ("config.yaml/results", "output_dir: 'config.yaml/results' is under the file config.yaml"),
])
def test_an_unusable_output_dir_is_refused(config, out, start, monkeypatch):
    monkeypatch.chdir(REPO)
    line = _one_line(config_check.config_problems(_set(config, "output_dir", out)), start)
    if " " in out.strip():
        assert line.endswith("rename it, e.g. output_dir: my_results")


def test_an_output_dir_this_user_cannot_write_is_refused(config, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: the permission bits as a user sees them
            monkeypatch.setattr(config_check.os, "access",
                                lambda p, mode: os.stat(p).st_mode & 0o200 != 0)
        _one_line(config_check.config_problems(_set(config, "output_dir", str(folder / "out"))),
                  f"output_dir: '{folder}/out': {folder} is not writable by this user")
    finally:
        folder.chmod(0o755)
    assert config_check.output_dir_problems(str(folder / "out")) == []


def test_a_generated_npz_with_fewer_images_than_configured_is_refused(config, tmp_path):
    path = tmp_path / "gen.npz"
    io.save_images(path, np.zeros((30, 8, 8, 3), np.uint8), np.zeros(30, np.int64))
    c = _set(config, "generator", {**config["generator"], "source": "npz", "path": str(path)})
    c["sampling"]["num_images"] = 40
    line = _one_line(config_check.config_problems(c), f"generator.path: '{path}' holds 30 images, "
                     "sampling.num_images is 40")
    assert line.endswith("download it again, or set sampling.num_images: 30")
    c["sampling"]["num_images"] = 30
    assert config_check.config_problems(c) == []
    path.write_bytes(path.read_bytes()[:200])  # a truncated download
    _one_line(config_check.config_problems(c), f"generator.path: {path}: damaged or truncated "
              "(BadZipFile: File is not a zip file); your input file: write or download it again")


def test_cuda_on_a_machine_without_it_is_refused_naming_the_key_and_the_fix(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = config_check.cuda_problem("cuda")
    assert line.startswith("device: 'cuda', but CUDA is not available on ")
    assert line.endswith("set device: auto (CUDA when present, else CPU) or cpu")
    assert config_check.cuda_problem("cpu") is None and config_check.cuda_problem("auto") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert config_check.cuda_problem("cuda:1") is None
    assert "has 2 CUDA device(s) (0..1)" in config_check.cuda_problem("cuda:2")


HOLDER = """
import sys, time
from pipeline.dag import run_lock
lock = run_lock.hold(sys.argv[1], "/some/other/checkout")
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_output_lock_names_its_holder_and_dies_with_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError) as e:
            run_lock.hold(tmp_path, REPO)
        line = str(e.value)
        assert "\n" not in line and f"is in use by the Snakemake run of pid {holder.pid} on " in line
        assert "(checkout /some/other/checkout" in line and "wait for it to finish" in line
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9: no cleanup runs
        holder.wait()
    lock = run_lock.hold(tmp_path, REPO)  # the kernel dropped the dead holder's lock
    assert f'"pid": {os.getpid()}' in (tmp_path / run_lock.LOCK_NAME).read_text()
    lock.close()


@pytest.mark.slow
def test_snakemake_n_refuses_an_output_dir_with_a_space_in_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"output_dir": "my results"}))
    r = run_snakemake("-n", "--configfile", str(REPO / "tests/configs/tiny.yaml"),
                      str(tmp_path / "c.yaml"), cwd=tmp_path, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert ("invalid config:\n  output_dir: 'my results' has [' '] (spaces or shell characters, "
            "which the jobs' shell commands would split or expand); rename it, e.g. output_dir: "
            "my_results") in out
    assert not (tmp_path / "my results").exists()
    # the fix the line names
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"output_dir": "my_results"}))
    r = run_snakemake("-n", "--configfile", str(REPO / "tests/configs/tiny.yaml"),
                      str(tmp_path / "c.yaml"), cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]


ENCODER = "pretrain/simclr/none/seed0/encoder.pt"  # under output_dir: real data, packing, pretraining


def _start(cwd, out, *extra):
    """A Snakemake run of the tiny config's `none` encoder into `out`, in its own session."""
    from support.snakemake import SNAKEFILE, TINY

    (cwd / "out.yaml").write_text(yaml.safe_dump({"output_dir": str(out)}))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), f"{out}/{ENCODER}", "--cores",
           "1", "--configfile", str(TINY), str(cwd / "out.yaml"), *extra]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _wait_for(predicate, proc, what):
    deadline = time.time() + 300
    while not predicate():
        assert proc.poll() is None, f"ended before {what}: " + proc.stdout.read()[-2000:]
        assert time.time() < deadline, what
        time.sleep(0.05)


@pytest.mark.e2e
def test_a_second_run_from_another_checkout_on_the_same_output_dir_is_refused(tmp_path):
    """Snakemake's lock is per working directory; the output folder's lock holds across them:
    the second run stops before any job, naming the first's pid and checkout, and the first
    finishes untouched."""
    out = tmp_path / "shared"
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir(), second_dir.mkdir()
    first = _start(first_dir, out)
    lock = out / run_lock.LOCK_NAME
    _wait_for(lambda: lock.exists() and f'"pid": {first.pid}' in lock.read_text(), first, "locked")
    (second_dir / "out.yaml").write_text(yaml.safe_dump({"output_dir": str(out)}))
    second = run_snakemake(f"{out}/{ENCODER}", "--cores", "1", "--configfile",
                           str(REPO / "tests/configs/tiny.yaml"), str(second_dir / "out.yaml"),
                           cwd=second_dir, timeout=300)
    assert first.wait(timeout=600) == 0, first.stdout.read()[-2000:]
    said = second.stdout + second.stderr
    assert second.returncode != 0
    assert f"output_dir '{out}' is in use by the Snakemake run of pid {first.pid} on " in said
    assert f"(checkout {REPO}," in said and "wait for it to finish" in said
    assert "rule prepare_real:" not in said and "rule pretrain:" not in said  # it ran no job
    assert (out / ENCODER).exists()
    # the fix the line names: once the first has finished, the second runs (nothing to do)
    again = run_snakemake(f"{out}/{ENCODER}", "--cores", "1", "--configfile",
                          str(REPO / "tests/configs/tiny.yaml"), str(second_dir / "out.yaml"),
                          cwd=second_dir, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:]


@pytest.mark.e2e
@pytest.mark.heavy  # three runs one after another (~50 s alone): CI runs it after the suite
def test_after_kill_9_of_snakemake_the_same_command_finishes_the_run_identically(tmp_path):
    """kill -9 of Snakemake and its job mid-job: the plain command again (README) finishes the
    run, no --unlock or --rerun-incomplete, with the encoder of an uninterrupted run."""
    import torch

    plain, killed = tmp_path / "plain", tmp_path / "killed"
    plain.mkdir(), killed.mkdir()
    r = _start(plain, plain / "results")
    assert r.wait(timeout=600) == 0, r.stdout.read()[-2000:]

    run = _start(killed, killed / "results")
    log = killed / "results" / "logs" / "pretrain" / "simclr" / "none" / "seed0.log"
    _wait_for(lambda: log.exists() and "step" in log.read_text(), run, "pretraining started")
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its running job, no cleanup
    run.wait()
    assert not (killed / "results" / ENCODER).exists()

    again = _start(killed, killed / "results")
    said = again.communicate(timeout=600)[0]
    assert again.returncode == 0, said[-3000:]
    assert "rule pretrain:" in said and "rule prepare_real:" not in said  # only what was left
    a = torch.load(plain / "results" / ENCODER, map_location="cpu", weights_only=True)
    b = torch.load(killed / "results" / ENCODER, map_location="cpu", weights_only=True)
    a, b = a["state_dict"], b["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.e2e
def test_a_damaged_real_split_is_rebuilt_by_a_plain_run_and_without_its_record_named_in_one_line(
        tmp_path, monkeypatch):
    """A flipped byte in real/train.npz: its record (NAME.record.json) catches it when a run
    starts, and that run rebuilds it. Without a record (a file made by hand, or by an older
    version), a stage reading it stops with the line naming the file and the command; that
    command, run as printed (plus the config), rebuilds it."""
    import re
    import shlex

    from pipeline.core.errors import UserError
    from pipeline.core.records import record_path

    tiny = ("--configfile", str(REPO / "tests/configs/tiny.yaml"))
    split, packed = "results/real/train.npz", "results/dataset/real"
    assert run_snakemake(split, "--cores", "1", *tiny, cwd=tmp_path, timeout=300).returncode == 0

    def flip():
        data = bytearray((tmp_path / split).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / split).write_bytes(bytes(data))

    flip()
    r = run_snakemake(packed, "--cores", "1", *tiny, cwd=tmp_path, timeout=300)
    said = r.stdout + r.stderr
    assert r.returncode == 0 and "does not match its record" in said, said[-2000:]
    assert "rule prepare_real:" in said
    io.load_images(tmp_path / split)

    flip()
    record_path(tmp_path / split).unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        io.load_images(split)
    line = str(e.value)
    assert line.startswith(f"{split}: damaged or truncated (BadZipFile: Bad CRC-32"), line
    fix = re.search(r"delete it and rebuild it: (rm \S+) && (snakemake .*?) \(with your "
                    r"--configfile\)", line)
    subprocess.run(shlex.split(fix[1]), cwd=tmp_path, check=True)
    command = shlex.split(fix[2])
    assert command[:3] == ["snakemake", "--cores", "all"]
    r = run_snakemake(*command[1:], *tiny, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "rule prepare_real:" in r.stdout + r.stderr, r.stdout[-2000:]
    io.load_images(tmp_path / split)
    r = run_snakemake(packed, "--cores", "1", *tiny, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]


@pytest.mark.slow
def test_device_cuda_without_cuda_plans_but_runs_no_job_here(tmp_path):
    """`-n` plans (a SLURM login node has no GPU and submits to nodes that do); a run whose
    jobs would run here stops before the first one with the line naming the key and the fix."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"device": "cuda"}))
    args = ("results/real/train.npz", "--cores", "1", "--configfile",
            str(REPO / "tests/configs/tiny.yaml"), str(tmp_path / "c.yaml"))
    assert run_snakemake("-n", *args, cwd=tmp_path, timeout=120).returncode == 0
    r = run_snakemake(*args, cwd=tmp_path, timeout=120)
    said = r.stdout + r.stderr
    assert r.returncode != 0 and "device: 'cuda', but CUDA is not available on " in said
    assert "set device: auto (CUDA when present, else CPU) or cpu" in said
    assert not (tmp_path / "results" / "real").exists()  # no job ran
    # the fix the line names
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"device": "auto"}))
    assert run_snakemake(*args, cwd=tmp_path, timeout=300).returncode == 0
