"""Stage options as the workflow passes them, built from config.yaml by pipeline.dag.job_params."""

from __future__ import annotations

import shlex

import yaml

from pipeline.dag import job_params
from support.snakemake import REPO

# The options the workflow passes to every job of a stage are required on its command line
# (config.yaml holds their defaults; tests/test_defaults.py checks both). These are config.yaml's,
# built as the workflow builds them (pipeline.dag.job_params) where it has a function for them.
# Tests calling a stage put these first and their own options after them (argparse keeps the
# last), so a test that needs another value states it.
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def _words(*options: str) -> list[str]:
    return shlex.split(job_params.opts(*options))


# The tests compute on the CPU, whatever config.yaml's device (auto).
RUNTIME_ARGS = ["--device", "cpu", "--threads", str(CONFIG["threads"]["default"])]
# sample_args holds sampling.edm's options too
SAMPLE_ARGS = [*_words(job_params.sample_args(CONFIG), job_params.sample_untracked_args(CONFIG)),
               *RUNTIME_ARGS]
# generator.train's (tests state their own sizes after these), no checkpoint
TRAIN_GENERATOR_ARGS = [*_words(job_params.train_generator_args(CONFIG),
                                job_params.stage_args(job_params.TRAIN_GENERATOR, CONFIG,
                                                      tracked=False)), *RUNTIME_ARGS]
FID_STATS_ARGS = [*_words(job_params.fid_stats_args(CONFIG),
                          job_params.fid_stats_untracked_args(CONFIG)), *RUNTIME_ARGS]
# The first method and seed of the study, strategy none's data and config.yaml's schedule and
# precision; not pretrain.optimizer, lr and weight_decay: the tests train with the method's own.
PRETRAIN_ARGS = [
    *_words(job_params.opt("--method", CONFIG["experiments"]["methods"][0]),
            job_params.opt("--seed", CONFIG["experiments"]["seeds"][0]),
            job_params.opt("--dup", CONFIG["strategies"]["none"]["dup"]),
            # the preset as that method trains it: a test of another method states its own
            job_params.opt("--augmentation", job_params.method_preset(
                CONFIG, CONFIG["experiments"]["methods"][0],
                CONFIG["strategies"]["none"]["augmentation"])),
            *(job_params.opt(f"--{k.replace('_', '-')}", CONFIG["pretrain"][k])
              for k in ("warmup_steps", "precision", "checkpoint_every")),
            job_params.opt("--log-every", CONFIG["logging"]["log_every"])),
    *RUNTIME_ARGS]
# The features protocol, which the tests run (config.yaml's protocols: online, offline).
LINEAR_ARGS = [
    "--protocol", "features",
    *_words(job_params.opt("--seed", CONFIG["experiments"]["seeds"][0]),
            *(job_params.opt(f"--{k.replace('_', '-')}", v)
              for k, v in CONFIG["linear_eval"]["features"].items())),
    *RUNTIME_ARGS]
