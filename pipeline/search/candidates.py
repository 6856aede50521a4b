"""The candidates of the `auto` search: every combination of the grid in `auto.candidates`.

Torch-free: the Snakefile names the search's jobs with them.
"""

from __future__ import annotations

import itertools

from pipeline.vocab.names import CANDIDATE_SETTINGS

# A candidate is a strategy (config.yaml's `strategies` entries have these settings).
SETTINGS = CANDIDATE_SETTINGS


def candidate_name(s: dict) -> str:
    """A name that only the candidate's own settings determine (a path component), so that
    adding a value to the grid renames no other candidate."""
    source = "gen" if s["generated"] else "real"
    return (f"{source}-dup{s['dup']}-{s['augmentation']}-crop{s['crop_min_scale']:g}"
            f"-jit{s['jitter_strength']:g}")


def candidates(grid: dict) -> dict[str, dict]:
    """name -> strategy settings, in grid order (the order that breaks ties).

    Without generated data, `dup` is collapsed to 1: replicating the real set alone only
    reshuffles it (pipeline.data.inflation: each real image still comes dup times per dup
    epochs, the same distribution over a run), so those runs would differ by their shuffle only.
    """
    out: dict[str, dict] = {}
    for values in itertools.product(*(grid[k] for k in SETTINGS)):
        s = dict(zip(SETTINGS, values))
        if not s["generated"]:
            s["dup"] = 1
        out.setdefault(candidate_name(s), s)
    return out
