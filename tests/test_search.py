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


# --- the search in the DAG (pipeline.dag.search_plan), without Snakemake -----------------------

@pytest.fixture
def auto_config(config):
    config["experiments"]["strategies"].append("auto")
    return config


def test_round_jobs_resume_the_previous_round_with_the_full_schedule(auto_config):
    from pipeline.dag.search_plan import SearchPlan

    plan = SearchPlan(auto_config)
    assert plan.schedule.steps == [4, 13, 45, 150] and plan.last == 3  # the default's 150
    name = "gen-dup3-standard-crop0.2-jit0.5"
    first, second = (plan.train_args("simclr", 0, r, name) for r in (0, 1))
    assert "--steps 150" in first and "--stop-at 4" in first and "--resume-from" not in first
    assert f"--resume-from results/search/simclr/seed0/round0/{name}/state.pt" in second
    assert "--stop-at 13" in second and "--dup 3" in second and "--crop-min-scale 0.2" in second
    final = plan.train_args("simclr", 0, plan.last, name)
    assert "--stop-at" not in final and "round2" in final
    assert "--online" not in first + final  # the search never trains the test-split probe
    assert plan.train_inputs("simclr", 0, 1, name) == {
        "real": "results/dataset/real", "generated": "results/dataset/generated",
        "state": f"results/search/simclr/seed0/round0/{name}/state.pt"}
    assert "generated" not in plan.train_inputs("simclr", 0, 0, "real-dup1-standard-crop0.2-jit1")
    assert plan.round_files("simclr", 1) == [f"results/search/simclr/seed1/round{r}.json"
                                             for r in range(3)]


@pytest.mark.parametrize("section,key,value", [("auto", "budget", 3.0), ("auto", "eta", 2),
                                               ("pretrain", "steps", 300),
                                               ("pretrain", "lr", 0.004)])
def test_search_settings_are_in_the_tracked_args(auto_config, section, key, value):
    import copy

    from pipeline.dag.search_plan import SearchPlan

    changed = copy.deepcopy(auto_config)
    changed[section][key] = value
    name = "gen-dup3-standard-crop0.2-jit0.5"
    assert SearchPlan(changed).train_args("simclr", 0, 0, name) != \
        SearchPlan(auto_config).train_args("simclr", 0, 0, name)


def test_select_args_carry_the_score_settings(auto_config):
    from pipeline.dag.search_plan import SearchPlan

    args = SearchPlan(auto_config).select_args(1)
    assert args == "--round 1 --step 13 --keep 3 --val-fraction 0.1 --val-seed 0 --k 20"


def test_a_search_that_cannot_fit_is_a_one_line_config_problem(auto_config):
    from pipeline.dag.config_check import config_problems

    assert config_problems(auto_config) == []
    auto_config["auto"]["budget"] = 1.2
    (problem,) = config_problems(auto_config)
    assert problem.startswith("auto.budget: 1.2 full runs cannot hold") and "\n" not in problem
    auto_config["auto"]["budget"] = 2.5
    auto_config["auto"]["candidates"]["jitter_strength"] = [3.0]
    assert "auto.candidates: standard with jitter_strength 3" in config_problems(auto_config)[0]
