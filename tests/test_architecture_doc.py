"""docs/ARCHITECTURE.md is the project's map: every file and every `pipeline.x.y` name it gives
exists (a renamed module or function fails here, not in a reader's search)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
# a file of the repository: plain path characters only (`pipeline/STAGE.py`, a placeholder, and
# `pipeline/{core,...}/`, a set, are words, not paths)
FILE = re.compile(r"\b((?:pipeline|workflow|tests|bench|docs)/[a-z0-9_/]+\.(?:py|yaml|smk|md))\b")
NAME = re.compile(r"\bpipeline(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolves(dotted: str) -> bool:
    """The longest importable module of `dotted`, then its attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def missing(text: str) -> list[str]:
    files = {f for f in FILE.findall(text) if not (ROOT / f).exists()}
    names = {n for n in NAME.findall(text) if n != "pipeline.STAGE" and not resolves(n)}
    return sorted(files | names)


def test_every_file_and_module_the_architecture_names_exists():
    text = DOC.read_text()
    assert len(FILE.findall(text)) > 10 and len(NAME.findall(text)) > 10  # the patterns match
    assert missing(text) == []


def test_a_renamed_module_or_file_is_named():
    text = "`pipeline/dag/search.py`, `pipeline.dag.search.SearchPlan`, `pipeline.dag.paths.nothing`"
    assert missing(text) == ["pipeline.dag.paths.nothing", "pipeline.dag.search.SearchPlan",
                             "pipeline/dag/search.py"]
