"""Every job's command line in a dry run (`snakemake -n -p --forceall`) of the shipped configs,
as argument lists: a restructuring that must not change a job compares them before and after.

    python bench/dry_run_commands.py --save /tmp/before.json     # on the unchanged branch
    python bench/dry_run_commands.py --compare /tmp/before.json  # after: exit 1 on a difference

Commands are compared as shlex-split words (whitespace between options is not a difference),
sorted (the dry run's job order is not the execution order). configs/cifar10-authors-data.yaml
is planned over a small stand-in for its npz file, as tests/test_preset.py does.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {
    "default": [],
    "study": ["configs/study.yaml"],
    "cifar10": ["configs/cifar10.yaml"],
    "cifar10-authors-data": ["configs/cifar10.yaml", "configs/cifar10-authors-data.yaml"],
    "tiny_auto": ["tests/configs/tiny.yaml", "tests/configs/tiny_auto.yaml"],
}


def commands(configfiles: list[str]) -> list[list[str]]:
    """The dry run's shell commands, each as its words, sorted."""
    with tempfile.TemporaryDirectory() as cwd:
        gen = Path(cwd) / "data" / "generated" / "cifar10-edm-1m.npz"  # the authors-data file
        gen.parent.mkdir(parents=True)
        rng = np.random.default_rng(0)
        np.savez(gen, image=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
                 label=np.repeat(np.arange(10), 6))
        files = [a for f in configfiles for a in ("--configfile", str(REPO / f))]
        r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"),
                            "-n", "-p", "--forceall", "--cores", "1", *files],
                           cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"dry run of {configfiles or 'config.yaml'} failed:\n{r.stderr[-3000:]}")
    lines = [line.removeprefix("Shell command: ") for line in r.stdout.splitlines()
             if line.startswith("Shell command: ")]
    return sorted(shlex.split(line) for line in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help="write the commands of every config to this JSON file")
    g.add_argument("--compare", help="compare with the commands saved in this JSON file")
    args = p.parse_args()
    now = {name: commands(files) for name, files in CONFIGS.items()}
    if args.save:
        Path(args.save).write_text(json.dumps(now, indent=1))
        print(", ".join(f"{k}: {len(v)} commands" for k, v in now.items()))
        return
    before, differ = json.loads(Path(args.compare).read_text()), False
    for name, cmds in now.items():
        old = before[name]
        same = old == cmds
        differ |= not same
        print(f"{name}: {len(cmds)} commands, {'identical' if same else 'DIFFERENT'}")
        if not same:
            gone = [shlex.join(c) for c in old if c not in cmds]
            new = [shlex.join(c) for c in cmds if c not in old]
            for c in gone[:3]:
                print("  -", c)
            for c in new[:3]:
                print("  +", c)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
