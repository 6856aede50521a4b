import math
import shlex

OUT = config["output_dir"].rstrip("/")
DEVICE = config["device"]
CONDA_ENV = "../../envs/pipeline.yaml"
# Jobs import the package from this checkout whatever their working directory (--directory).
# (Double braces: Snakemake formats the shell command.)
STAGE = "PYTHONPATH=" + shlex.quote(str(REPO)) + ":${{PYTHONPATH:-}} python -m pipeline."

for _name in config["experiments"]["strategies"]:
    if _name not in config["strategies"]:
        raise ValueError(
            f"experiments.strategies names {_name!r}, which is not defined under strategies "
            f"(defined: {', '.join(config['strategies'])})"
        )
if config["generator"]["source"] == "pretrained" and not config["generator"]["model"]:
    raise ValueError("generator.source is 'pretrained' but generator.model is not set")


def threads_for(rule_name):
    return config["threads"].get(rule_name, config["threads"].get("default", 1))


def common_args(rule_name):
    return f"--device {DEVICE} --threads {threads_for(rule_name)}"


def num_shards():
    return math.ceil(config["sampling"]["num_images"] / config["sampling"]["shard_size"])


def shard_files():
    return [f"{OUT}/samples/shard_{i:05d}.npz" for i in range(num_shards())]


def shard_range(wildcards):
    size, total = config["sampling"]["shard_size"], config["sampling"]["num_images"]
    start = int(wildcards.shard) * size
    return {"start": start, "count": min(size, total - start)}


def generator_model():
    """The generator for sampling: trained here (a workflow output) or a hub id / folder."""
    g = config["generator"]
    return f"{OUT}/generator" if g["source"] == "train" else g["model"]


def generator_input(wildcards):
    return [f"{OUT}/generator"] if config["generator"]["source"] == "train" else []


def strategy(name):
    """Settings of a strategy; `random_init` is the untrained encoder, evaluated as a baseline."""
    if name == "random_init":
        return {"dup": 1, "generated": False, "augmentation": "standard"}
    return config["strategies"][name]


def runs():
    """(method, strategy) of every encoder the report evaluates."""
    e = config["experiments"]
    return [(m, s) for m in e["methods"] for s in list(e["strategies"]) + ["random_init"]]


def opt(flag, value):
    """A command-line option, or nothing when the value is unset."""
    if value is None or value is False:
        return ""
    if value is True:
        return flag
    if isinstance(value, (list, tuple)):
        return f"{flag} " + " ".join(shlex.quote(str(v)) for v in value)
    return f"{flag} {shlex.quote(str(value))}"
