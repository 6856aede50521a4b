"""A repair reruns what its content changes: a damaged packed folder, moved aside and repacked
with the same content, reruns nothing downstream; repacked with other content, it reruns the
encoders made from it (rule pack is a checkpoint; consumers depend on dataset/PART.json)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from support.snakemake import TINY, run_snakemake as snakemake
from pipeline.core import io, records
from pipeline.data.dataset import ChecksumError, load_packed

ENCODER = "results/pretrain/simclr/none/seed0/encoder.pt"
PACKED = "results/dataset/real"  # as rule all asks for it: a missing folder is rebuilt


def run(cwd, *args):
    r = snakemake(*args, "--cores", "1", "--configfile", str(TINY), cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


@pytest.mark.e2e
def test_a_repair_that_changes_nothing_reruns_nothing_and_one_that_does_reruns_its_consumers(
        tmp_path):
    run(tmp_path, ENCODER)
    encoder = tmp_path / ENCODER
    made = encoder.stat().st_mtime_ns
    folder = tmp_path / "results" / "dataset" / "real"

    # one flipped byte, caught when a job reads the folder: one line, the folder moved aside
    shard = folder / "00000.images.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        load_packed(folder)
    assert "\n" not in str(e.value) and "moved" in str(e.value)
    assert not folder.exists() and (folder.parent / "real.corrupt").is_dir()

    # a dry run cannot know the repack's content: it lists the encoder, pending on the repack
    dry = run(tmp_path, ENCODER, PACKED, "-n", "-p")
    assert "checkpoint pack:" in dry.stdout and "DAG of jobs will be updated" in dry.stdout
    r = run(tmp_path, ENCODER, PACKED)
    assert "rule pack:" in r.stdout + r.stderr or "checkpoint pack:" in r.stdout + r.stderr
    assert "rule pretrain:" not in r.stdout + r.stderr
    assert folder.is_dir() and encoder.stat().st_mtime_ns == made
    load_packed(folder)  # repacked, intact
    assert "Nothing to be done" in run(tmp_path, ENCODER, PACKED, "-n").stdout

    # the same repair with other content (the real split rewritten with its record, as its
    # producer writes them, behind Snakemake's back, its time kept): the repack differs from
    # what the encoder was made from, which reruns
    train = tmp_path / "results" / "real" / "train.npz"
    stat = train.stat()
    images, labels = io.load_images(train)
    io.save_images(train, np.ascontiguousarray(images[::-1]), labels[::-1].copy())
    records.write(train)
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(folder, folder.parent / "real.moved")
    r = run(tmp_path, ENCODER, PACKED)
    assert "rule pretrain:" in r.stdout + r.stderr
    assert encoder.stat().st_mtime_ns != made


@pytest.mark.e2e
def test_two_runs_of_the_same_config_at_once_the_second_is_refused(tmp_path):
    """The output folder's lock (pipeline/dag/run_lock.py, taken when jobs start): a second run
    of the same config while the first is running stops at once, naming the first, and the first
    finishes untouched. (Across checkouts: tests/test_refusals.py.)"""
    import subprocess
    import sys
    import time

    from support.snakemake import SNAKEFILE

    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), ENCODER, "--cores", "1",
           "--configfile", str(TINY)]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    lock = tmp_path / "results" / ".run.lock"
    deadline = time.time() + 120
    while not (lock.exists() and f'"pid": {first.pid}' in lock.read_text()) and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.2)
    second = snakemake(ENCODER, "--cores", "1", "--configfile", str(TINY), cwd=tmp_path,
                       timeout=120)
    assert first.wait(timeout=600) == 0, first.stdout.read()[-2000:]
    assert second.returncode != 0
    assert f"output_dir 'results' is in use by the Snakemake run of pid {first.pid}" in \
        second.stdout + second.stderr
    assert "rule pretrain" not in second.stdout + second.stderr  # it ran no job
    assert (tmp_path / ENCODER).exists()
