import json
import math
import os
import shlex
import shutil
import sys

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(REPO))
from pipeline.design import RANDOM_INIT, plan, result_path
from pipeline.npz_source import image_shape, npz_files

OUT = config["output_dir"].rstrip("/")
DEVICE = config["device"]
CONDA_ENV = "../../envs/pipeline.yaml"
# Jobs import the package from this checkout whatever their working directory (--directory).
# (Double braces: Snakemake formats the shell command.)
PYTHONPATH = "PYTHONPATH=" + shlex.quote(str(REPO)) + ":${{PYTHONPATH:-}} "
STAGE = PYTHONPATH + "python -m pipeline."

DESIGN = plan(config)  # every (method, strategy variant, seed) encoder and its evaluations
if config["generator"]["source"] == "pretrained" and not config["generator"]["model"]:
    raise ValueError("generator.source is 'pretrained' but generator.model is not set")
if config["generator"]["source"] == "npz" and not config["generator"].get("path"):
    raise ValueError("generator.source is 'npz' but generator.path is not set")


def check_disk_space():
    """Before a run: the missing shards, and their packed copy, must fit in output_dir."""
    missing = [f for f in shard_files() if not os.path.exists(f)]
    if not missing:
        return
    res = config["real"]["resolution"]
    need = 2 * len(missing) * config["sampling"]["shard_size"] * res * res * 3
    os.makedirs(OUT, exist_ok=True)
    free = shutil.disk_usage(OUT).free
    if free < 1.1 * need:
        raise WorkflowError(f"not enough disk space in {OUT}: {len(missing)} shards and their "
                            f"packed copy need {need / 1e9:.1f} GB, {free / 1e9:.1f} GB free")


def threads_for(rule_name):
    return config["threads"].get(rule_name, config["threads"].get("default", 1))


def common_args(rule_name):
    return f"--device {DEVICE} --threads {threads_for(rule_name)}"


def num_generated():
    """Images in the generated set: sampling.num_images, or with generator.source npz the
    files' own count if smaller (read from their headers; see rules/npz_source.smk)."""
    if config["generator"]["source"] == "npz":
        total = image_shape(npz_files(config["generator"]["path"]))[0]
        return min(config["sampling"]["num_images"], total)
    return config["sampling"]["num_images"]


def num_shards():
    return math.ceil(num_generated() / config["sampling"]["shard_size"])


def shard_files():
    return [f"{OUT}/samples/shard_{i:05d}.npz" for i in range(num_shards())]


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


def evaluation_files():
    return [result_path(OUT, m, v, s, p) for m, v, s, p in DESIGN.evaluations()]


def history_files():
    return [f"{OUT}/pretrain/{m}/{v}/seed{s}/history.csv"
            for m, v, s in DESIGN.cells() if v != RANDOM_INIT]


def opt(flag, value):
    """A command-line option, or nothing when the value is unset."""
    if value is None or value is False:
        return ""
    if value is True:
        return flag
    if isinstance(value, (list, tuple)):
        return f"{flag} " + " ".join(shlex.quote(str(v)) for v in value)
    return f"{flag} {shlex.quote(str(value))}"


# GPU jobs run under pipeline/gpu_slots.py: on a workstation each takes {resources.gpu} devices
# of its own (CUDA_VISIBLE_DEVICES); under SLURM, which assigns them, it changes nothing.
# Use as  GPU_STAGE + "sample ..."  or  PYTHONPATH + GPU_SLOTS + "{params.launcher} ...".
GPU_SLOTS = "python -m pipeline.gpu_slots --gpus {resources.gpu} -- "
GPU_STAGE = PYTHONPATH + GPU_SLOTS + "python -m pipeline."
