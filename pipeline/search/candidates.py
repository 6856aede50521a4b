"""The candidates of the `auto` search: every combination of the grid in `auto.candidates`.

Torch-free: the Snakefile names the search's jobs with them.
"""

from __future__ import annotations

import itertools

from pipeline.vocab.names import CANDIDATE_SETTINGS

# A candidate is a strategy (config.yaml's `strategies` entries have these settings).
SETTINGS = CANDIDATE_SETTINGS
# grid dimensions a config may leave out, and the values they then take
OPTIONAL = {"generated_keep": [1.0]}


def candidate_name(s: dict) -> str:
    """A name that only the candidate's own settings determine (a path component), so that
    adding a value to the grid renames no other candidate."""
    source = "gen" if s["generated"] else "real"
    keep = s.get("generated_keep", 1)
    return (f"{source}-dup{s['dup']}-{s['augmentation']}-crop{s['crop_min_scale']:g}"
            f"-jit{s['jitter_strength']:g}" + (f"-keep{keep:g}" if keep != 1 else ""))


def candidates(grid: dict) -> dict[str, dict]:
    """name -> strategy settings, in grid order (the order that breaks ties).

    Without generated data, `dup` is collapsed to 1: replicating the real set alone only
    reshuffles it (pipeline.data.inflation: each real image still comes dup times per dup
    epochs, the same distribution over a run), so those runs would differ by their shuffle only.
    Likewise `generated_keep` (the best fraction of the generated images by quality score) is
    1 without generated data, and a candidate keeping all of them has no generated_keep.
    """
    out: dict[str, dict] = {}
    for values in itertools.product(*(grid.get(k, OPTIONAL.get(k)) for k in SETTINGS)):
        s = dict(zip(SETTINGS, values))
        if not s["generated"]:
            s["dup"] = 1
        if not s["generated"] or s["generated_keep"] == 1:
            del s["generated_keep"]
        out.setdefault(candidate_name(s), s)
    return out
