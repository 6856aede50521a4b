"""The suite on xdist workers (`pytest -n 3`, `--dist loadgroup`): tests sharing an expensive
fixture go to one worker, and work units start in the order that finishes soonest."""

from __future__ import annotations

import pytest


def _shared_fixtures(item) -> list[str]:
    """The fixtures of this suite that outlive a test (module or session scope) and that the
    item uses."""
    return [name for name, defs in item._fixtureinfo.name2fixturedefs.items()
            if defs[-1].scope != "function" and defs[-1].baseid.startswith("tests")]


# The files of the longest subprocess tests, longest first (cold, `pytest -n 3 --durations`,
# the longest test of each file; the longer runs are marked heavy, outside the suite): among the
# subprocess-heavy tests these start first, so that none of them is left to run alone at the end
# while the other workers are done.
LONGEST = ("test_workflow.py", "test_sampling.py", "test_refusals.py", "test_repair.py",
           "test_generator_training.py", "test_resume_ddp.py", "test_npz_source.py",
           "test_reliability.py", "test_losses.py", "test_fetch.py")


def _order(item) -> tuple[int, int]:
    rank = _rank(item)
    name = item.path.name
    return rank, LONGEST.index(name) if rank == 3 and name in LONGEST else len(LONGEST)


def _rank(item) -> int:
    """Where a test's work unit starts: the SLURM run first (in CI's `-m heavy` step: it waits
    for minutes on the scheduler, mostly idle), then the tiny study every dependent test waits
    for, then the subprocess-heavy tests, then the rest to fill the gaps."""
    if item.path.name == "test_slurm.py":
        return 0
    if "tiny_study" in _shared_fixtures(item):
        return 2
    return 3 if any(item.get_closest_marker(m) for m in ("e2e", "slow", "compile")) else 4


def group_and_order(items) -> None:
    """Tests that share an expensive fixture run on one worker (each worker would build its own
    copy), and units start in _order's order (pyproject.toml turns off xdist's reordering)."""
    root: dict[str, str] = {}

    def find(name: str) -> str:
        while root.setdefault(name, name) != name:
            name = root[name]
        return name

    for item in items:  # tests linked through any shared fixture form one group
        names = _shared_fixtures(item)
        for name in names[1:]:
            root[find(name)] = find(names[0])
    for item in items:
        names = _shared_fixtures(item)
        if names and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(find(names[0])))
    items.sort(key=_order)
