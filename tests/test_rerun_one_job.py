"""README's "rerun one job": `snakemake --cores 1 -f TARGET --configfile FILE` runs the job
making TARGET again, alone, and records it as any run does, so the next run has nothing to do."""

import pytest
from support.snakemake import TINY, run_snakemake

TARGET = "results/real/train.npz"  # rule prepare_real: the cheapest job of the tiny config
AFTER = "results/fid/real.stats.npz"  # a job after it


@pytest.mark.e2e
def test_a_forced_job_runs_alone_and_leaves_nothing_to_do(tmp_path):
    config = ("--configfile", str(TINY))
    first = run_snakemake("--cores", "1", AFTER, *config, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    made = (tmp_path / TARGET).stat().st_mtime_ns

    again = run_snakemake("--cores", "1", "-f", TARGET, *config, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rule prepare_real:" in again.stdout + again.stderr
    assert "rule fid_stats:" not in again.stdout + again.stderr  # that job alone
    assert (tmp_path / TARGET).stat().st_mtime_ns > made

    # the same content: nothing left for it nor for the job after it
    left = run_snakemake("--cores", "1", "-n", AFTER, *config, cwd=tmp_path)
    assert left.returncode == 0 and "Nothing to be done" in left.stdout + left.stderr, left.stdout
