"""The learning-outcome tests (pytest marker `kernels`) under every CPU kernel selection and
thread count this machine can run, each setting in its own pytest process; then the spread of
the values they recorded (the `outcome` fixture in tests/conftest.py) beside each other.

    python bench/kernels.py                      # every setting; exit 1 if any failed
    python bench/kernels.py --json bench/results/kernels-cpu.json
    python bench/kernels.py -k search_score      # a subset of the marked tests

Why: a margin tuned on one CPU's kernels (an AMD EPYC's AVX-512 GEMM) failed on an Intel Xeon's
(issue 30). ATen dispatches its vectorised kernels by ATEN_CPU_CAPABILITY, oneDNN its
convolutions by ONEDNN_MAX_CPU_ISA, MKL its GEMM by MKL_ENABLE_INSTRUCTIONS; each choice and the
thread count (the reductions' split) moves the float rounding, and training amplifies it.
Running every choice on one machine covers the other vendors' default choices.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def settings(capability: str) -> dict[str, dict[str, str]]:
    """{name: environment} for this CPU: avx512 only where torch found AVX-512 (capability)."""
    s = {"threads1": {"KERNELS_THREADS": "1"},
         "threads2": {"KERNELS_THREADS": "2"},
         "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
         "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
         "aten-avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
         "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
         "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
         "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
         "all-avx2-threads2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                               "MKL_ENABLE_INSTRUCTIONS": "AVX2", "KERNELS_THREADS": "2"}}
    if capability != "AVX512":
        del s["aten-avx512"]
    return s


def run_setting(name: str, env: dict[str, str], log: Path, select: list[str]) -> dict:
    """One pytest process of the marked tests under `env`; its return code, wall and CPU time."""
    # passive OpenMP waits: numerically the same, but two spinning threads on a loaded 2-core
    # machine burn minutes of CPU waiting for each other
    full = {**os.environ, "KERNELS_SETTING": name, "KERNELS_OUTCOMES": str(log),
            "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE", **env}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                        "-m", "kernels", *select], cwd=REPO, env=full, capture_output=True,
                       text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
    if r.returncode:
        print(r.stdout[-4000:], r.stderr[-2000:], sep="\n")
    return {"setting": name, "env": env, "rc": r.returncode, "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(cpu, 1), "pytest": tail}


def spread(lines: list[dict]) -> dict[str, dict[str, dict]]:
    """{test: {value: {"min", "max", "by_setting"}}} over the recorded outcome lines."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for line in lines:
        for key, v in line.items():
            if key in ("test", "setting"):
                continue
            slot = out[line["test"]].setdefault(key, {"by_setting": {}})
            slot["by_setting"][line["setting"]] = v
    for values in out.values():
        for slot in values.values():
            slot["min"], slot["max"] = min(slot["by_setting"].values()), max(slot["by_setting"].values())
    return dict(out)


def format_spread(table: dict) -> str:
    rows = [f"{'test / value':<88}{'min':>10}{'max':>10}"]
    for test, values in sorted(table.items()):
        rows.append(test)
        rows += [f"    {k:<84}{s['min']:>10.4g}{s['max']:>10.4g}" for k, s in values.items()]
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the runs and the spread here")
    ap.add_argument("--only", nargs="+", help="these settings only (names as printed)")
    ap.add_argument("-k", help="pytest's -k over the marked tests")
    args = ap.parse_args(argv)
    import torch  # only for the capability: the tests run in their own processes
    todo = settings(torch.backends.cpu.get_cpu_capability())
    if args.only:
        todo = {k: v for k, v in todo.items() if k in args.only}
    select = ["-k", args.k] if args.k else []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "outcomes.jsonl"
        log.touch()
        runs = []
        for name, env in todo.items():
            runs.append(run_setting(name, env, log, select))
            print(f"{name:<20} rc {runs[-1]['rc']}  cpu {runs[-1]['cpu_s']:>6} s  {runs[-1]['pytest']}",
                  flush=True)
        table = spread([json.loads(x) for x in log.read_text().splitlines()])
    print(format_spread(table))
    print(f"total cpu {sum(r['cpu_s'] for r in runs):.0f} s over {len(runs)} settings")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "spread": table}, indent=1) + "\n")
    return int(any(r["rc"] for r in runs))


if __name__ == "__main__":
    sys.exit(main())
