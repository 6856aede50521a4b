"""CPU work of a finished workflow run: the sum of Snakemake's `benchmark:` cpu_time (and wall
seconds) over every file under benchmarks/, per rule and in total.

    python bench/workflow_cpu.py                        # ./benchmarks of the run in this folder
    python bench/workflow_cpu.py RUN/benchmarks --baseline BASE/benchmarks   # with ratios
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to: its first path part (benchmarks/RULE[...].tsv)."""
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmarks", nargs="?", default="benchmarks",
                   help="a run's benchmarks/ folder (default: ./benchmarks)")
    p.add_argument("--baseline", help="another run's benchmarks/ folder, to print ratios against")
    args = p.parse_args(argv)
    run = read_benchmarks(args.benchmarks)
    print(format_table(run, read_benchmarks(args.baseline) if args.baseline else None))


if __name__ == "__main__":
    main()
