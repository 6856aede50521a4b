"""How the workflow's jobs are started: the thread count of each rule and the launcher
(`torchrun` or nothing) of the stages that can run data-parallel. Torch-free."""

from __future__ import annotations

from pipeline.study.design import RANDOM_INIT


def threads_for(config: dict, rule: str) -> int:
    """A rule's `threads` setting, else `threads.default`, else 1."""
    return config["threads"].get(rule, config["threads"].get("default", 1))


def torchrun(processes: int) -> str:
    """The launcher of a stage run as `processes` processes (`--no-python`: torchrun starts the
    command as written), else nothing."""
    return "" if processes == 1 else \
        f"torchrun --standalone --nproc_per_node {processes} --no-python"


def pretrain_launcher(config: dict, strategy: str) -> str:
    """What the pretrain command (`python -m pipeline.pretrain ...`) runs under: pretrain.processes
    processes, but one for random_init, which trains nothing."""
    return torchrun(1 if strategy == RANDOM_INIT else config["pretrain"]["processes"])


def generator_launcher(config: dict) -> str:
    """What train_generator runs under: generator.train.processes processes."""
    return torchrun(config["generator"]["train"]["processes"])
