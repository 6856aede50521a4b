"""Every job's command line in a dry run (`snakemake -n -p --forceall`) of the shipped configs,
as argument lists: a restructuring that must not change a job compares them before and after.

    python bench/dry_run_commands.py --save /tmp/before.json     # on the unchanged branch
    python bench/dry_run_commands.py --compare /tmp/before.json  # after: exit 1 on a difference

Commands are compared as shlex-split words (whitespace between options is not a difference),
sorted (the dry run's job order is not the execution order), and each stage's arguments as the
namespace that tree's parser makes of them (`--save` parses with the tree it runs in), so a
changed parser that reads the same words differently is a difference too.
configs/cifar10-authors-data.yaml is planned over a small stand-in for its npz file, as
tests/test_preset.py does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this tree's stages, whatever is installed
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
        if any("authors-data" in f for f in configfiles):  # the stand-in's count, not 1M
            (Path(cwd) / "standin.yaml").write_text(  # FID over all 60 (50000 cannot fit)
                '{"sampling": {"num_images": 60}, "fid": {"num_generated": "all"}}\n')
            files.append(str(Path(cwd) / "standin.yaml"))  # after the last --configfile's file
        r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"),
                            "-n", "-p", "--forceall", "--cores", "1", *files],
                           cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"dry run of {configfiles or 'config.yaml'} failed:\n{r.stderr[-3000:]}")
    # the checkout's own path (in a fetch job's retry hint) is no difference between two trees
    lines = [line.removeprefix("Shell command: ").replace(str(REPO), "REPO")
             for line in r.stdout.splitlines() if line.startswith("Shell command: ")]
    return sorted(shlex.split(line) for line in lines)


def parsed(words: list[str]) -> dict[str, dict | str]:
    """{stage and arguments: the namespace its parser makes of them} of one command (a
    gpu_slots wrapper's stage included); jobs after a checkpoint (<TBD> inputs) are left out."""
    if "<TBD>" in words:
        return {}
    words = words[:words.index(">")] if ">" in words else words
    starts = [i for i, w in enumerate(words) if w == "-m"]
    out = {}
    for i, j in zip(starts, starts[1:] + [len(words)]):
        stage = words[i + 1].removeprefix("pipeline.")
        if stage == "core.gpu_slots":  # its words run to the next -m: the wrapped command
            continue
        module = importlib.import_module(f"pipeline.{stage}")
        parse = getattr(module, "parse_args", None) or module.build_parser().parse_args
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                ns = {k: repr(v) for k, v in sorted(vars(parse(words[i + 2:j])).items())}
        except SystemExit:  # e.g. search_select's --candidates, known only once inputs exist
            ns = "unparsable"
        out[shlex.join([stage, *words[i + 2:j]])] = ns
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help="write the commands of every config to this JSON file")
    g.add_argument("--compare", help="compare with the commands saved in this JSON file")
    args = p.parse_args()
    now = {name: commands(files) for name, files in CONFIGS.items()}
    if args.save:
        parses = {k: v for cmds in now.values() for c in cmds for k, v in parsed(c).items()}
        Path(args.save).write_text(json.dumps({"commands": now, "parsed": parses}, indent=1))
        print(", ".join(f"{k}: {len(v)} commands" for k, v in now.items()),
              f"({len(parses)} stage invocations parsed)")
        return
    saved, differ = json.loads(Path(args.compare).read_text()), False
    before = saved["commands"]
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
    # the saved commands as this tree's parsers read them
    parses = {k: v for cmds in before.values() for c in cmds for k, v in parsed(c).items()}
    changed = [k for k, v in saved["parsed"].items() if parses.get(k) != v]
    print(f"{len(parses)} stage invocations parsed,",
          f"{len(changed)} differently" if changed else "every one as before")
    for k in changed[:3]:
        print("  ", k[:200])
    sys.exit(1 if differ or changed else 0)


if __name__ == "__main__":
    main()
