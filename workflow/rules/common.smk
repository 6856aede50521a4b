import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(REPO))
from pipeline.dag.config_check import ConfigError, check_disk, num_shards as count_shards
from pipeline.study.design import RANDOM_INIT, plan, result_path
from pipeline.dag.job_params import (
    fid_stats_args, fid_stats_untracked_args, opt, pretrain_args, pretrain_untracked_args,
    sample_args, sample_untracked_args, untracked,
)
from pipeline.data.npz_source import image_shape, npz_files

OUT = config["output_dir"].rstrip("/")
DEVICE = config["device"]
CONDA_ENV = "../../envs/pipeline.yaml"
# Jobs import the package from this checkout whatever their working directory (--directory).
# (Double braces: Snakemake formats the shell command.)
PYTHONPATH = "PYTHONPATH=" + shlex.quote(str(REPO)) + ":${{PYTHONPATH:-}} "
STAGE = PYTHONPATH + "python -m pipeline."

DESIGN = plan(config)  # every (method, strategy variant, seed) encoder and its evaluations


def check_disk_space():
    """When the config is read (so `-n` reports it too): room for the missing sample shards."""
    missing = sum(not os.path.exists(f) for f in shard_files())
    try:
        check_disk(config, missing, OUT)
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


def threads_for(rule_name):
    return config["threads"].get(rule_name, config["threads"].get("default", 1))


# Neither the device nor the thread count changes what a job computes: they stay out of both
# the rule's code (`{threads}` is filled in per job) and its tracked params.
RUNTIME = " --device {params.device} --threads {threads}"
# The log gets everything; on failure its last line (a stage's one-line error) reaches the console.
LOG = " > {log} 2>&1 || {{ rc=$?; tail -n 1 {log} >&2; exit $rc; }}"


def num_generated():
    """Images in the generated set: sampling.num_images, or with generator.source npz the
    files' own count if smaller (read from their headers; see rules/npz_source.smk)."""
    if config["generator"]["source"] == "npz":
        total = image_shape(npz_files(config["generator"]["path"]))[0]
        return min(config["sampling"]["num_images"], total)
    return config["sampling"]["num_images"]


def num_shards():
    return count_shards(config["sampling"], num_generated())


def shard_files():
    """Each sample shard's manifest (written last, beside its .images.npy and .labels.npy)."""
    return [f"{OUT}/samples/shard_{i:05d}.json" for i in range(num_shards())]


def shard_data(manifest):
    """The files a shard's manifest lists. Consumers ask for them too: Snakemake reruns a job
    for a missing output only when some job asks for that output."""
    stem = manifest.removesuffix(".json")
    return [f"{stem}.images.npy", f"{stem}.labels.npy"]


def shard_range(wildcards):
    size, total = config["sampling"]["shard_size"], num_generated()
    start = int(wildcards.shard) * size
    return {"start": start, "count": min(size, total - start)}


def generator_model():
    """The generator for sampling: trained here (a workflow output) or a hub id / folder."""
    g = config["generator"]
    return f"{OUT}/generator" if g["source"] == "train" else g["model"]


def generator_input(wildcards):
    return [f"{OUT}/generator"] if config["generator"]["source"] == "train" else []


def intermediate_files():
    """Every job's outputs that the report does not name. Rule `all` asks for them because
    Snakemake rebuilds a missing file only when some job asks for it or a job after it runs:
    with them, a plain rerun rebuilds any output that went missing (or was moved aside as
    damaged) after a finished run, and what depends on it."""
    files = [f"{OUT}/dataset/real", f"{OUT}/real/test.npz", f"{OUT}/fid.json"]
    if DESIGN.variants and any(DESIGN.settings(v)["generated"] for v in DESIGN.variants):
        files.append(f"{OUT}/dataset/generated")
    for manifest in shard_files():
        files += [manifest, *shard_data(manifest),
                  f"{OUT}/fid/{Path(manifest).stem}.stats.npz"]
    files += [f"{OUT}/pretrain/{m}/{v}/seed{s}/encoder.pt" for m, v, s in DESIGN.cells()]
    return files


def evaluation_files():
    return [result_path(OUT, m, v, s, p) for m, v, s, p in DESIGN.evaluations()]


def history_files():
    return [f"{OUT}/pretrain/{m}/{v}/seed{s}/history.csv"
            for m, v, s in DESIGN.cells() if v != RANDOM_INIT]


# GPU jobs run under pipeline/gpu_slots.py: on a workstation each takes {resources.gpu} devices
# of its own (CUDA_VISIBLE_DEVICES); under SLURM, which assigns them, it changes nothing.
# Use as  GPU_STAGE + "sample ..."  or  PYTHONPATH + GPU_SLOTS + "{params.launcher} ...".
GPU_SLOTS = "python -m pipeline.core.gpu_slots --gpus {resources.gpu} -- "
GPU_STAGE = PYTHONPATH + GPU_SLOTS + "python -m pipeline."
