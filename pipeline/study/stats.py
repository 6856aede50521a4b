"""The seeds' spread in numbers and in words: a mean's t-interval over seeds, and a strategy's
difference to another paired by seed (the same seed: the same initialisation, data order and
views, so the pairing removes what the seeds share), with a paired t-test.

scipy's t distribution and ttest_rel do the statistics; this module only decides what a reader is
told: with one seed no spread is measured, with identical values there is nothing to test.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95  # the intervals' confidence level


def t_interval(values: list[float], level: float = LEVEL) -> tuple[float, float] | None:
    """(low, high) of the mean's t-interval over the values, or None with fewer than two."""
    from scipy import stats

    x = np.asarray(values, float)
    if len(x) < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def paired(values: dict, baseline: dict, level: float = LEVEL) -> dict | None:
    """`values` − `baseline` over the seeds both have ({seed: top-1} each): the per-seed
    differences, their mean, t-interval and the paired t-test's p, and the verdict in words.
    None when no seed is shared."""
    from scipy import stats

    seeds = [s for s in values if s in baseline]
    if not seeds:
        return None
    diffs = [float(values[s] - baseline[s]) for s in seeds]
    out = {"seeds": seeds, "diffs": diffs, "n": len(diffs), "mean": float(np.mean(diffs)),
           "interval": t_interval(diffs, level), "p": None}
    if len(diffs) > 1 and np.ptp(diffs) > 0:
        out["p"] = float(stats.ttest_rel([values[s] for s in seeds],
                                         [baseline[s] for s in seeds]).pvalue)
    out["beyond"] = out["interval"] is not None and np.ptp(diffs) > 0 and (
        out["interval"][0] > 0 or out["interval"][1] < 0)
    out["verdict"] = verdict(out)
    return out


def verdict(d: dict) -> str:
    """Whether a paired difference is beyond the seeds' spread, in words with its figures."""
    if d["n"] == 1:
        return "one seed: no spread measured"
    if np.ptp(d["diffs"]) == 0:
        return (f"n={d['n']}, the same difference in every seed: no spread to test against")
    low, high = d["interval"]
    figures = (f"{int(LEVEL * 100)} % CI {low:+.2f} to {high:+.2f}, paired t-test p={d['p']:.2g}, "
               f"n={d['n']}")
    where = "beyond" if d["beyond"] else "within"
    return f"{where} the seeds' spread ({figures})"
