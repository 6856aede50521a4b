"""The `auto` search's logic without Snakemake: candidates, the round schedule and its budget,
who survives a round, the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.search.candidates import candidates
from pipeline.search.schedule import BudgetError, Schedule, plan_schedule, survivor_counts
from pipeline.search.select import ranking, survivors, validation_split

GRID = {"generated": [False, True], "dup": [1, 3, 10], "augmentation": ["standard"],
        "crop_min_scale": [0.08, 0.2, 0.5], "jitter_strength": [0.5, 1.0]}


def test_dup_is_collapsed_without_generated_data():
    c = candidates(GRID)
    assert len(c) == 3 * 2 + 3 * 3 * 2  # real-only: crop × jitter; with generated: × dup too
    assert {s["dup"] for s in c.values() if not s["generated"]} == {1}
    assert c["gen-dup10-standard-crop0.2-jit0.5"] == {
        "generated": True, "dup": 10, "augmentation": "standard", "crop_min_scale": 0.2,
        "jitter_strength": 0.5}
    # adding a grid value keeps every other candidate's name
    more = candidates({**GRID, "dup": [1, 3, 10, 30]})
    assert set(c) < set(more)


def test_survivor_counts_keep_the_best_third_down_to_one():
    assert survivor_counts(24, 3) == [24, 8, 3, 1]
    assert survivor_counts(4, 2) == [4, 2, 1]
    assert survivor_counts(1, 3) == [1]


@pytest.mark.parametrize("n,eta,budget,full", [(24, 3, 2.5, 200), (24, 3, 2.5, 24000),
                                               (4, 2, 2.5, 12), (10, 3, 1.5, 1000)])
def test_schedule_fits_the_budget_and_ends_with_one_full_run(n, eta, budget, full):
    s = plan_schedule(n, eta, budget, full)
    assert s.steps[-1] == full and s.survivors[-1] == 1 and s.survivors[0] == n
    assert all(a < b for a, b in zip(s.steps, s.steps[1:])) and s.steps[0] >= 1
    assert s.cost_steps() <= budget * full
    # the first round is as long as the budget allows: one step more would not fit
    longer = plan_schedule(n, eta, budget + 1, full)
    assert longer.steps[0] > s.steps[0]


def test_cost_counts_resumed_steps_only():
    # 4 candidates to step 5, 2 resume to 8, the winner to 12: 20 + 6 + 4 steps
    assert Schedule([5, 8, 12], [4, 2, 1]).cost_steps() == 30
    assert Schedule([5, 8, 12], [4, 2, 1]).cost() == 2.5


def test_default_grid_schedule():
    s = plan_schedule(24, 3, 2.5, 200)
    assert s.steps == [5, 17, 58, 200] and s.cost_steps() == 481


def test_one_candidate_is_one_full_run():
    s = plan_schedule(1, 3, 2.5, 200)
    assert s.steps == [200] and s.cost() == 1.0


@pytest.mark.parametrize("n,budget,full,message", [
    (24, 1.2, 200, "auto.budget: 1.2 full runs cannot hold a search of 24 candidates"),
    (24, 2.5, 3, "pretrain.steps: 3 steps cannot hold 4 rounds")])
def test_a_budget_too_small_is_refused_naming_the_setting(n, budget, full, message):
    with pytest.raises(BudgetError, match=message):
        plan_schedule(n, 3, budget, full)


def test_survivors_best_first_ties_in_grid_order():
    order = ["a", "b", "c", "d"]
    scores = {"d": 50.0, "c": 70.0, "b": 50.0, "a": 10.0}
    assert ranking(scores, order) == ["c", "b", "d", "a"]
    assert survivors(scores, order, 2) == ["c", "b"]
    assert survivors({k: 1.0 for k in order}, order, 3) == ["a", "b", "c"]


def test_validation_split_is_seeded_stratified_and_disjoint():
    labels = np.arange(200) % 10
    bank, val = validation_split(labels, 0.1, seed=0)
    assert len(val) == 20 and len(bank) == 180 and not set(bank) & set(val)
    assert np.bincount(labels[val]).tolist() == [2] * 10
    again, val2 = validation_split(labels, 0.1, seed=0)
    assert (val2 == val).all() and not (validation_split(labels, 0.1, seed=1)[1] == val).all()
    with pytest.raises(ValueError, match="auto.val_fraction"):
        validation_split(labels, 1.0, 0)
