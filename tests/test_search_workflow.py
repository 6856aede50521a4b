"""The `auto` search in the DAG on a tiny config: the checkpoint after each round decides the
next round's jobs, the search never reads the test split, the winner resumes to the full run."""

from __future__ import annotations

import json

import pytest

from support.snakemake import TINY, run_snakemake as snakemake
from pipeline.core import io, records
from test_workflow import job_counts

TINY_AUTO = TINY.parent / "tiny_auto.yaml"
SEARCH = "results/search/simclr/seed0"
AUTO_ENCODER = "results/pretrain/simclr/auto/seed0/encoder.pt"


def run(cwd, *args):
    r = snakemake("--cores", "2", *args, "--configfile", str(TINY), str(TINY_AUTO), cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.mark.e2e
@pytest.mark.heavy  # ~70 s under the suite's load: CI runs it after the suite
def test_search_rounds_checkpoints_and_test_split(tmp_path):
    # round 0: all 4 candidates to step 5, then the choice
    run(tmp_path, f"{SEARCH}/round0.json")
    round0 = json.loads((tmp_path / SEARCH / "round0.json").read_text())
    assert round0["step"] == 5 and len(round0["scores"]) == 4 and len(round0["survivors"]) == 2
    assert set(round0["survivors"]) | set(round0["cut"]) == set(round0["scores"])

    # a dry run now plans exactly the survivors' round 1, its choice and the winner's last round
    dry = run(tmp_path, "-n", AUTO_ENCODER)
    assert job_counts(dry.stdout) == {"search_train": 2, "search_select": 1, "auto_pretrain": 1,
                                      "total": 4}
    for name in round0["scores"]:
        assert (f"{SEARCH}/round1/{name}/state.pt" in dry.stdout) == (name in round0["survivors"])

    # the rest of the search with a test split that cannot be read: no search job reads it
    # (its record rewritten too, else a run's start moves it aside as damaged)
    test_split = tmp_path / "results/real/test.npz"
    test_split.write_bytes(b"not an npz")
    records.write(test_split)
    run(tmp_path, f"{SEARCH}/round1.json")
    round1 = json.loads((tmp_path / SEARCH / "round1.json").read_text())
    assert set(round1["scores"]) == set(round0["survivors"]) and round1["step"] == 8
    (winner,) = round1["survivors"]
    # after the last choice, a dry run plans only the winner's last round, from its state
    dry = run(tmp_path, "-n", AUTO_ENCODER)
    assert job_counts(dry.stdout) == {"auto_pretrain": 1, "total": 1}
    assert f"{SEARCH}/round1/{winner}/state.pt" in dry.stdout
    run(tmp_path, AUTO_ENCODER)
    # the winner resumed its round-1 state (not restarted) and ran to the full 12 steps
    log = (tmp_path / "results/logs/pretrain/simclr/auto/seed0.log").read_text()
    assert f"resumed from {SEARCH}/round1/{winner}/state.pt at step 8" in log
    history = io.read_json(tmp_path / "results/pretrain/simclr/auto/seed0/history.json")
    assert history["strategy"] == "auto" and history["config"]["steps"] == 12
    rows = (tmp_path / "results/pretrain/simclr/auto/seed0/history.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 13))
    assert test_split.read_bytes() == b"not an npz"

    again = run(tmp_path, "-n", AUTO_ENCODER)
    assert "Nothing to be done" in again.stdout + again.stderr

    # a repair of the real data whose content equals the recorded one (the packed folder moved
    # aside as damaged, repacked from the same split) reruns no search round and no auto cell
    encoder = tmp_path / AUTO_ENCODER
    made = encoder.stat().st_mtime_ns
    packed = tmp_path / "results/dataset/real"
    packed.rename(packed.parent / "real.corrupt")
    r = run(tmp_path, AUTO_ENCODER, "results/dataset/real")
    assert "checkpoint pack:" in r.stdout + r.stderr and packed.is_dir()
    for rule in ("auto_pretrain", "search_train"):  # also matches "localrule NAME:"
        assert f"rule {rule}:" not in r.stdout + r.stderr
    assert encoder.stat().st_mtime_ns == made
    # nor the next run: the auto cell depends on the content record, the folder is `ancient`
    again = run(tmp_path, "-n", AUTO_ENCODER)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
