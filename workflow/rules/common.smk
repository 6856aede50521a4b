import os
import shlex

from pipeline.dag.job_params import (
    fid_stats_args, fid_stats_untracked_args, opt, opts, pretrain_args, pretrain_untracked_args,
    sample_args, sample_untracked_args, settings, untracked,
)
from pipeline.dag.paths import WorkflowPaths, pretrain_launcher, threads_for
from pipeline.data.npz_source import npz_files
from pipeline.study.design import AUTO, RANDOM_INIT, plan

OUT = config["output_dir"].rstrip("/")
# Each run keeps its logs and benchmark files under its own output_dir, so two configs (the
# default, a preset) never overwrite each other's. The one place of that prefix.
LOGS = f"{OUT}/logs/"
BENCHMARKS = f"{OUT}/benchmarks/"
DEVICE = config["device"]
CONDA_ENV = "../../envs/pipeline.yaml"
# Jobs import the package from this checkout whatever their working directory (--directory).
# (Double braces: Snakemake formats the shell command.)
PYTHONPATH = "PYTHONPATH=" + shlex.quote(str(REPO)) + ":${{PYTHONPATH:-}} "
STAGE = PYTHONPATH + "python -m pipeline."

DESIGN = plan(config)  # every (method, strategy variant, seed) encoder and its evaluations
PATHS = WorkflowPaths(config, DESIGN)  # the DAG's files; see pipeline/dag/paths.py
try:
    PATHS.check_disk_space()  # when the config is read, so `-n` reports it too
except ConfigError as e:
    raise WorkflowError(str(e)) from None


# Neither the device nor the thread count changes what a job computes: they stay out of both
# the rule's code (`{threads}` is filled in per job) and its tracked params.
RUNTIME = " --device {params.device} --threads {threads}"
# The log gets everything; on failure its last line (a stage's one-line error) reaches the console.
LOG = " > {log} 2>&1 || {{ rc=$?; tail -n 1 {log} >&2; exit $rc; }}"


# GPU jobs run under pipeline/gpu_slots.py: on a workstation each takes {resources.gpu} devices
# of its own (CUDA_VISIBLE_DEVICES); under SLURM, which assigns them, it changes nothing.
# Use as  GPU_STAGE + "sample ..."  or  PYTHONPATH + GPU_SLOTS + "{params.launcher} ...".
GPU_SLOTS = "python -m pipeline.core.gpu_slots --gpus {resources.gpu} -- "
GPU_STAGE = PYTHONPATH + GPU_SLOTS + "python -m pipeline."
