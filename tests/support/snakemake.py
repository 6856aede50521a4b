"""The repository's paths and the tests' Snakemake runner: each command runs in a child of
tests/snakemake_server.py, forked after Snakemake's imports."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TINY_STUDY = REPO / "tests" / "configs" / "tiny_study.yaml"


class SnakemakeServer:
    """tests/snakemake_server.py, started once per test process: it runs each Snakemake command
    in a child forked after Snakemake's imports (~1.3 s of CPU less per command)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "snakemake_server.py"),
                                      str(REPO)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0)  # unbuffered: select() sees every answer

    def run(self, argv: list[str], cwd, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": dict(os.environ),
                       "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            pid = int(self._answer(60))
            try:
                code = int(self._answer(timeout))
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)  # Snakemake and its jobs
                self._answer(60)
                raise subprocess.TimeoutExpired(["snakemake", *argv], timeout) from None
            return subprocess.CompletedProcess(["snakemake", *argv], code, out.read_text(),
                                               err.read_text())

    def _answer(self, timeout: float) -> bytes:
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired("snakemake_server", timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/snakemake_server.py ended (exit {self.proc.wait()})")
        return line

    def close(self):
        self.proc.stdin.close()  # the server's loop ends
        self.proc.wait(timeout=60)


_server: SnakemakeServer | None = None



def run_snakemake(*args, cwd, timeout=900) -> subprocess.CompletedProcess:
    """`python -m snakemake -s workflow/Snakefile ARGS` in `cwd`: its exit status and output."""
    return run_command(["snakemake", "-s", str(SNAKEFILE), *args], cwd=cwd, timeout=timeout)


def run_command(argv: list[str], cwd, timeout=900) -> subprocess.CompletedProcess:
    """A Snakemake command line exactly as a user types it (`snakemake ARGS`: nothing added) in
    `cwd`, e.g. one the docs or an error message give."""
    global _server
    assert argv[0] == "snakemake", argv
    if _server is None or _server.proc.poll() is not None:
        _server = SnakemakeServer()
    return _server.run(list(argv[1:]), cwd, timeout)


def close_server() -> None:
    """Ends this process's server, if it started one (at the end of the session)."""
    if _server is not None:
        _server.close()


def checkout_view(folder: Path) -> Path:
    """`folder` as a fresh clone of this repository seen from its root: a link to each tracked
    top-level entry, outputs of its own (results/, .snakemake/). Commands the docs give, run
    from the repository root, run here as written without touching the checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in ("workflow", "pipeline", "configs", "profiles", "config.yaml", "envs", "tests",
                  "bench", "pyproject.toml", "README.md", "docs"):
        link = folder / entry
        if not link.exists():
            link.symlink_to(REPO / entry)
    return folder
