"""bench/workflow_cpu.py: the CPU work of a run, summed from Snakemake's benchmark files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "workflow_cpu", Path(__file__).resolve().parents[1] / "bench" / "workflow_cpu.py")
workflow_cpu = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(workflow_cpu)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path: Path, s: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{s}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_sums_cpu_time_per_rule_and_in_total(tmp_path):
    _bench(tmp_path / "prepare_real.tsv", 4.5, 3.5)
    _bench(tmp_path / "sample" / "shard_00000.tsv", 10.0, 9.0)
    _bench(tmp_path / "sample" / "shard_00001.tsv", 12.0, 11.0)
    _bench(tmp_path / "pretrain" / "simclr" / "none" / "seed0.tsv", 30.0, 29.5)
    rules = workflow_cpu.read_benchmarks(tmp_path)
    assert rules["sample"] == {"jobs": 2, "cpu_time": 20.0, "s": 22.0}
    assert rules["pretrain"]["cpu_time"] == 29.5
    assert workflow_cpu.total(rules) == {"jobs": 4, "cpu_time": 53.0, "s": 56.5}
    table = workflow_cpu.format_table(rules, {"sample": {"jobs": 2, "cpu_time": 80.0, "s": 90.0}})
    assert "0.25" in table.splitlines()[1 + sorted(rules, key=lambda n: -rules[n]["cpu_time"])
                                         .index("sample")]
    assert table.splitlines()[-1].split()[:3] == ["TOTAL", "4", "53.0"]


def test_no_benchmarks_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no benchmark files"):
        workflow_cpu.read_benchmarks(tmp_path)


def test_run_counts_the_cpu_of_grandchildren_exactly(tmp_path):
    """--run's figure includes processes started by the command's children (as Snakemake's jobs
    are), which Snakemake's sampled benchmark files can miss."""
    burn = f'{sys.executable} -c "import time; t = time.process_time(); ' \
           'exec(\'while time.process_time() - t < 0.4: pass\')"'
    record = workflow_cpu.run_and_measure(["bash", "-c", f"{burn} && {burn}"], tmp_path)
    assert 0.8 <= record["cpu_s"] < 3.0
    assert record["wall_s"] >= 0.8
    assert workflow_cpu.read_run(tmp_path) == record
    base = dict(record, cpu_s=record["cpu_s"] * 4, wall_s=record["wall_s"] * 2)
    assert "ratio: 0.250 CPU, 0.500 wall" in workflow_cpu.format_run(record, base)


def test_run_refuses_a_failing_command_and_stores_nothing(tmp_path):
    with pytest.raises(SystemExit, match="failed with exit status 3"):
        workflow_cpu.run_and_measure(["bash", "-c", "exit 3"], tmp_path)
    assert workflow_cpu.read_run(tmp_path) is None
    assert "not measured" in workflow_cpu.format_run(None)


def test_reads_the_default_runs_benchmarks_under_its_output_dir(tmp_path, monkeypatch, capsys):
    """The workflow writes benchmark files under OUTPUT_DIR/benchmarks/; with no folder given the
    script reads the embedded default's (results/benchmarks), not a shared ./benchmarks."""
    _bench(tmp_path / "results" / "benchmarks" / "fid.tsv", 2.0, 1.5)
    _bench(tmp_path / "benchmarks" / "report.tsv", 2.0, 1.5)  # not the default's: ignored
    monkeypatch.chdir(tmp_path)
    workflow_cpu.main([])
    table = capsys.readouterr().out
    assert "fid" in table and "report" not in table
