"""Runs the suite's Snakemake commands in processes forked from one that has imported Snakemake.

`python tests/snakemake_server.py REPO` reads one request per line on stdin, a JSON object with
`argv` (Snakemake's arguments), `cwd`, `env` and the `stdout` and `stderr` files to write. Each
runs `snakemake.cli.main(argv)` in a forked child, as `python -m snakemake ARGV` would run in
`cwd` with `env`; this process answers with the child's pid, then its exit status, a line each.

Why: a fresh `python -m snakemake` spends ~1.5 s of CPU importing Snakemake, its plugins and the
workflow's own modules before it reads the Snakefile (a dry run of the finished tiny study: 1.9 s
fresh, ~0.5 s forked from here), and the suite runs 33 Snakemake commands through
tests/support/snakemake.py's run_snakemake. The standard library's forkserver would do, but on Python
3.11 it imports its preloaded modules before setting sys.path, so tests/ cannot be preloaded.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

import snakemake.cli
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
from snakemake_interface_report_plugins.registry import ReportPluginRegistry
from snakemake_interface_scheduler_plugins.registry import SchedulerPluginRegistry
from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

# What every run imports after its start: smart_open (Snakemake's source cache opens the Snakefile
# with it) and the Snakefile's own modules, from REPO (the Snakefile puts it first on sys.path).
sys.path.insert(0, sys.argv[1])
for module in ("smart_open", "pipeline.dag.config_check", "pipeline.dag.job_params",
               "pipeline.dag.paths", "pipeline.dag.search_plan", "pipeline.dag.inputs",
               "pipeline.dag.launch", "pipeline.dag.report_plan", "pipeline.data.npz_source",
               "pipeline.study.design"):
    importlib.import_module(module)

# Each registry collects its installed plugins once, when first built (they are singletons).
for registry in (ExecutorPluginRegistry, LoggerPluginRegistry, ReportPluginRegistry,
                 SchedulerPluginRegistry, StoragePluginRegistry):
    registry()


def run(request: dict) -> None:
    """In the forked child: Snakemake's command line, then exit with its status."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, with its jobs: a timeout kills them all
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = ["snakemake", *request["argv"]]
        snakemake.cli.main(request["argv"])
        code = 0
    except SystemExit as e:  # how the command line ends, with its status
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except BaseException:  # as the interpreter would show it
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run(request)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main()
