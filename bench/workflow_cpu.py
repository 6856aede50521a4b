"""CPU work of a workflow run: per rule, the sum of Snakemake's `benchmark:` cpu_time (and wall
seconds) over every file under OUTPUT_DIR/benchmarks/; in total, the exact CPU of the whole run when it was
started through this script (`--run`).

    python bench/workflow_cpu.py --run snakemake --cores 2   # run it, then the table below
    python bench/workflow_cpu.py                        # results/benchmarks (the default's run)
    python bench/workflow_cpu.py results/cifar10/benchmarks --baseline BASE/benchmarks  # ratios

Why both: Snakemake samples a job's CPU (every 0.5 s for its first ~15 s, then every 30 s) and
keeps the last sample, so a job's last seconds are not counted (a 41 s job can show 15 s). The
per-rule figures are therefore lower bounds. `--run` reads the operating system's account of
every process the command started and waited for (Snakemake itself and all its jobs), which
misses nothing, and stores it in that run's benchmarks/run.json, where `--baseline` finds it too.
Each run keeps its benchmark files under its own output_dir (the workflow's `benchmark:` paths).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import time
from collections import defaultdict
from pathlib import Path


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to: its first path part (OUT/benchmarks/RULE[...].tsv)."""
    return path.relative_to(root).parts[0].removesuffix(".tsv")


def read_benchmarks(root: str | Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "cpu_time", "s"}} summed over the benchmark files under `root`."""
    root = Path(root)
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise SystemExit(f"no benchmark files under {root}")
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "cpu_time": 0.0, "s": 0.0})
    for f in files:
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        t = totals[rule_of(f, root)]
        for row in rows:  # one row per repeat of the job
            t["jobs"] += 1
            t["cpu_time"] += float(row["cpu_time"])
            t["s"] += float(row["s"])
    return dict(totals)


def total(rules: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rules.values()) for k in ("jobs", "cpu_time", "s")}


def format_table(run: dict, baseline: dict | None = None) -> str:
    head = f"{'rule':<18}{'jobs':>5}{'cpu_time s':>12}{'job wall s':>12}"
    if baseline:
        head += f"{'base cpu s':>12}{'ratio':>8}"
    lines = [head]
    names = sorted(set(run) | set(baseline or {}), key=lambda n: -(run.get(n) or {"cpu_time": 0})["cpu_time"])
    rows = [(n, run.get(n), (baseline or {}).get(n)) for n in names]
    rows.append(("TOTAL", total(run), total(baseline) if baseline else None))
    for name, r, b in rows:
        r = r or {"jobs": 0, "cpu_time": 0.0, "s": 0.0}
        line = f"{name:<18}{int(r['jobs']):>5}{r['cpu_time']:>12.1f}{r['s']:>12.1f}"
        if baseline:
            bc = b["cpu_time"] if b else 0.0
            line += f"{bc:>12.1f}" + (f"{r['cpu_time'] / bc:>8.2f}" if bc else f"{'-':>8}")
        lines.append(line)
    return "\n".join(lines)


RUN_FILE = "run.json"
# The embedded default's output_dir is results/; a preset's benchmarks are under its own.
DEFAULT_BENCHMARKS = "results/benchmarks"


def run_and_measure(command: list[str], benchmarks: str | Path) -> dict:
    """Run `command` to its end and return its exact CPU seconds (user + system of it and every
    descendant it waited for) and wall seconds; also written to `benchmarks`/run.json."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    returncode = subprocess.run(command).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if returncode:
        raise SystemExit(f"{' '.join(command)!r} failed with exit status {returncode}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    record = {"command": command, "cpu_s": round(user + system, 1), "user_s": round(user, 1),
              "system_s": round(system, 1), "wall_s": round(wall, 1)}
    Path(benchmarks).mkdir(parents=True, exist_ok=True)
    tmp = Path(benchmarks) / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, Path(benchmarks) / RUN_FILE)
    return record


def read_run(benchmarks: str | Path) -> dict | None:
    """The exact figures `--run` stored beside a run's benchmark files, if it was measured so."""
    path = Path(benchmarks) / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def format_run(run: dict | None, baseline: dict | None = None) -> str:
    """The exact whole-run line(s), with the ratio when both runs were measured with --run."""
    if run is None:
        return "whole run: not measured (start the run through --run for the exact CPU)"
    line = f"whole run, exact: {run['cpu_s']:.1f} s CPU, {run['wall_s']:.1f} s wall"
    if baseline is None:
        return line
    return (line + f"\nbaseline, exact:  {baseline['cpu_s']:.1f} s CPU, {baseline['wall_s']:.1f} s wall"
            f"\nratio: {run['cpu_s'] / baseline['cpu_s']:.3f} CPU, {run['wall_s'] / baseline['wall_s']:.3f} wall")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmarks", nargs="?", default=DEFAULT_BENCHMARKS,
                   help="a run's OUTPUT_DIR/benchmarks/ folder (default: the embedded default's, "
                        f"{DEFAULT_BENCHMARKS})")
    p.add_argument("--baseline", help="another run's benchmarks/ folder, to print ratios against")
    p.add_argument("--run", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="run COMMAND (e.g. snakemake --cores 2) in this folder first, measuring "
                        "its exact CPU; every argument after --run belongs to COMMAND")
    args = p.parse_args(argv)
    if args.run is not None:
        if not args.run:
            raise SystemExit("--run needs a command, e.g. --run snakemake --cores 2")
        run_and_measure(args.run, args.benchmarks)
    if args.run is None or any(Path(args.benchmarks).rglob("*.tsv")):
        baseline = read_benchmarks(args.baseline) if args.baseline else None
        print("per rule, from Snakemake's sampled benchmark files (lower bounds):")
        print(format_table(read_benchmarks(args.benchmarks), baseline))
    print(format_run(read_run(args.benchmarks), read_run(args.baseline) if args.baseline else None))


if __name__ == "__main__":
    main()
