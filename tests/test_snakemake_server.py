"""tests/snakemake_server.py runs a Snakemake command as `python -m snakemake` would: in the
caller's directory and environment, with its exit status and output; a command past its time
limit is killed and the server goes on."""

from __future__ import annotations

import subprocess

import pytest

from support.snakemake import SnakemakeServer

SNAKEFILE = """
rule all:
    output: "out.txt"
    shell: "echo $MARK > {output}; sleep $PAUSE"
"""


@pytest.fixture(scope="module")
def server():
    s = SnakemakeServer()
    yield s
    s.close()
    assert s.proc.returncode == 0


@pytest.mark.slow
def test_a_command_runs_in_the_callers_directory_and_environment(server, tmp_path, monkeypatch):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    monkeypatch.setenv("MARK", "from-the-test")
    monkeypatch.setenv("PAUSE", "0")
    r = server.run(["--cores", "1"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.txt").read_text() == "from-the-test\n"
    assert "1 of 1 steps (100%) done" in r.stderr

    again = server.run(["--cores", "1", "--no-such-option"], cwd=tmp_path, timeout=120)
    assert again.returncode == 2 and "unrecognized arguments: --no-such-option" in again.stderr


@pytest.mark.slow
def test_a_command_past_its_time_limit_is_killed_and_the_server_goes_on(server, tmp_path,
                                                                       monkeypatch):
    for name in ("killed", "next"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Snakefile").write_text(SNAKEFILE)
    monkeypatch.setenv("MARK", "x")
    monkeypatch.setenv("PAUSE", "60")
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(["--cores", "1"], cwd=tmp_path / "killed", timeout=3)
    monkeypatch.setenv("PAUSE", "0")
    r = server.run(["--cores", "1"], cwd=tmp_path / "next", timeout=120)
    assert r.returncode == 0, r.stderr
