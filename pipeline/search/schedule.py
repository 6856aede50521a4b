"""The successive-halving schedule of the `auto` search (Jamieson & Talwalkar 2016): how many
candidates train in each round and up to which step, within a budget of pretraining steps.

Every candidate trains with the full run's learning-rate schedule (warm-up and cosine over S
steps) and stops at the round's step; the best 1/eta resume from there in the next round. The
last round takes the one survivor to S, so its encoder is a plain full run of its settings.
Torch-free: the Snakefile plans the rounds with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class BudgetError(ValueError):
    """A budget too small for the search; the message names the setting."""


@dataclass(frozen=True)
class Schedule:
    steps: list[int]  # the step each round stops at (cumulative), increasing; the last is S
    survivors: list[int]  # candidates trained in each round; the last is 1

    @property
    def full_steps(self) -> int:
        return self.steps[-1]

    @property
    def rounds(self) -> int:
        return len(self.steps)

    def cost_steps(self) -> int:
        """Pretraining steps of the whole search: each round trains its candidates from the
        previous round's step (they resume) to its own."""
        before = [0] + self.steps[:-1]
        return sum(n * (s - b) for n, s, b in zip(self.survivors, self.steps, before))

    def cost(self) -> float:
        """The search's cost in units of one full pretraining run."""
        return self.cost_steps() / self.full_steps

    def to_dict(self) -> dict:
        return {"steps": self.steps, "survivors": self.survivors,
                "cost_steps": self.cost_steps(), "cost_full_runs": round(self.cost(), 4)}


def survivor_counts(num_candidates: int, eta: int) -> list[int]:
    """Candidates per round: all, then the best ceil(n / eta) of the round before, down to 1."""
    counts = [num_candidates]
    while counts[-1] > 1:
        counts.append(math.ceil(counts[-1] / eta))
    return counts


def _round_steps(first: int, full: int, rounds: int) -> list[int]:
    """Stops spaced geometrically from `first` to `full` (each round the same factor longer than
    the one before), rounded, increasing."""
    steps: list[int] = []
    last = rounds - 1
    for r in range(last):
        s = max(round(first * (full / first) ** (r / last)), steps[-1] + 1 if steps else 1)
        steps.append(min(s, full - (last - r)))
    return steps + [full]


def plan_schedule(num_candidates: int, eta: int, budget: float, full_steps: int) -> Schedule:
    """The schedule with the longest first round whose cost is at most `budget` full runs.

    The rounds stop at steps spaced geometrically from the first round's to S (as successive
    halving's eta-fold longer rounds do, with the factor the budget allows). BudgetError when
    even a first round of one step does not fit.
    """
    if num_candidates < 1:
        raise BudgetError("auto.candidates: no candidate")
    counts = survivor_counts(num_candidates, eta)
    if len(counts) > full_steps:
        raise BudgetError(f"pretrain.steps: {full_steps} steps cannot hold {len(counts)} rounds "
                          f"of the auto search ({num_candidates} candidates, eta {eta})")

    def schedule(first):
        return Schedule(_round_steps(first, full_steps, len(counts)), counts)

    if schedule(1).cost() > budget:
        raise BudgetError(f"auto.budget: {budget:g} full runs cannot hold a search of "
                          f"{num_candidates} candidates (eta {eta}): even with a first round of "
                          f"one step it costs {schedule(1).cost():.3f} full runs")
    lo, hi = 1, full_steps  # schedule(lo) fits; the cost grows with the first round
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if schedule(mid).cost() <= budget else (lo, mid)
    return schedule(lo)
