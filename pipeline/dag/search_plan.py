"""The `auto` search's plan: its rounds' files and job options, computed from the config for
search.smk to wire.

Round r trains the candidates that survived round r-1 (all of them in round 0) up to
`schedule.steps[r]`, resuming round r-1's state; the checkpoint rule search_select scores them and
writes `round{r}.json`, whose survivors decide round r+1's jobs. The last survivor trains to
pretrain.steps as the `auto` cell. Torch-free: the Snakefile builds a `SearchPlan` on every parse.
"""

from __future__ import annotations

from pipeline.core import io
from pipeline.dag.job_params import opts, pretrain_args, search_select_args, stage_args
from pipeline.dag.paths import WorkflowPaths
from pipeline.search.candidates import OPTIONAL, SETTINGS, candidates
from pipeline.search.schedule import plan_schedule
from pipeline.study.design import Design
from pipeline.vocab.augmentation import view_params
from pipeline.vocab.options import PRETRAIN


def survivors_of(round_file: str) -> list[str]:
    """The candidates a finished round keeps (in the grid's order)."""
    return io.read_json(round_file)["survivors"]


class SearchPlan:
    """The search of one config, under its `output_dir`; BudgetError when it cannot fit."""

    def __init__(self, config: dict):
        self.config, a = config, config["auto"]
        self.paths = WorkflowPaths(config)
        self.candidates = candidates(a["candidates"])
        self.schedule = plan_schedule(len(self.candidates), a["eta"], a["budget"],
                                      config["pretrain"]["steps"])
        # a candidate's options are a strategy's: pretrain_args builds them from this design
        # (no protocols: the search trains no online probe, which would read the test split)
        self.design = Design(methods=[], strategies=[], seeds=[], protocols=[],
                             trained=self.candidates)

    @property
    def last(self) -> int:
        """The final round's number: the winner's continuation to the full step count."""
        return self.schedule.rounds - 1

    def state(self, method: str, seed, round: int, candidate: str) -> str:
        return self.paths.search_files(method, seed, round, candidate)["state"]

    def encoder(self, method: str, seed, round: int, candidate: str) -> str:
        return self.paths.search_files(method, seed, round, candidate)["encoder"]

    def round_file(self, method: str, seed, round: int) -> str:
        """The round's choice (rule search_select's output)."""
        return self.paths.search_choice(method, seed, round)

    def round_files(self, method: str, seed) -> list[str]:
        """Every choice of the search (none with a single candidate)."""
        return [self.round_file(method, seed, r) for r in range(self.last)]

    def train_inputs(self, method: str, seed, round: int, candidate: str) -> dict:
        """The packed data and, after round 0, the state the candidate resumes from."""
        inputs = {"real": self.paths.dataset("real")}
        if self.candidates[candidate]["generated"]:
            inputs["generated"] = self.paths.dataset("generated")
        if "generated_keep" in self.candidates[candidate]:  # the images' quality scores
            inputs["scores"] = self.paths.shard_quality_files()
        if round > 0:
            inputs["state"] = self.state(method, seed, round - 1, candidate)
        return inputs

    def train_args(self, method: str, seed, round: int, candidate: str) -> str:
        """Everything that determines a candidate's state at the round's step: its strategy's
        options (the full run's --steps, so its schedules) and where it stops and resumes from."""
        resume = self.state(method, seed, round - 1, candidate) if round > 0 else None
        stop = self.schedule.steps[round] if round < self.last else None
        return opts(pretrain_args(self.config, self.design, method, candidate, seed),
                    stage_args(PRETRAIN, self.config, only=("stop_at", "resume_from"),
                               stop_at=stop, resume_from=resume))

    def select_args(self, round: int) -> str:
        return search_select_args(self.config, round, self.schedule.steps[round],
                                  self.schedule.survivors[round + 1])

    def spec(self) -> dict:
        """What the report states about the search."""
        a = self.config["auto"]
        return {"candidates": self.candidates, "schedule": self.schedule.to_dict(),
                "eta": a["eta"], "budget": a["budget"], "val_fraction": a["val_fraction"],
                "knn_k": a["knn_k"]}


def search_problems(config: dict) -> list[str]:
    """What cannot work in the `auto` section, as `key: problem` lines."""
    a, problems = config["auto"], []
    missing = [k for k in SETTINGS if k not in a["candidates"] and k not in OPTIONAL]
    if missing:
        return [f"auto.candidates: no values for {', '.join(missing)}"]
    for crop in a["candidates"]["crop_min_scale"]:
        for jitter in a["candidates"]["jitter_strength"]:
            for augmentation in a["candidates"]["augmentation"]:
                try:
                    view_params(augmentation, crop_min_scale=crop, jitter_strength=jitter)
                except ValueError as e:  # a jitter strength that takes the hue past 0.5
                    problems.append(f"auto.candidates: {augmentation} with jitter_strength "
                                    f"{jitter:g}: {e}")
    try:
        SearchPlan(config)
    except ValueError as e:  # BudgetError: the message names the key
        problems.append(str(e))
    return problems
