"""profiles/slurm as an admin would review it, from its dry run on configs/cifar10.yaml (no
scheduler needed): every GPU rule on the GPU partition with its GPUs, every other job on the CPU
partition with none, and the threads the submission uses shown in the plan."""

import re
from pathlib import Path

import pytest
import yaml
from support.snakemake import REPO, run_snakemake
from test_slurm import GPU_RULES

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"


def rules_asking_for_gpus() -> set[str]:
    """The rules whose `resources: gpu=` is not 0, read from workflow/rules/*.smk."""
    found = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"^(?:rule|checkpoint|use rule \w+ as) (\w+)", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            gpu = re.search(r"^\s+gpu=(.+),$", body, re.M)
            if gpu and gpu.group(1).strip() != "0":
                found.add(name)
    return found


def test_the_profiles_gpu_partition_holds_exactly_the_gpu_rules():
    assert rules_asking_for_gpus() == GPU_RULES
    for profile in (PROFILE, REPO / "tests" / "profiles" / "slurm-cpu" / "config.yaml"):
        p = yaml.safe_load(profile.read_text())
        cpu = p["default-resources"]["slurm_partition"]
        on = {rule: r.get("slurm_partition", cpu) for rule, r in p["set-resources"].items()}
        assert {rule for rule, part in on.items() if part != cpu} == GPU_RULES, profile


@pytest.mark.slow
def test_the_dry_run_shows_what_is_submitted(tmp_path):
    r = run_snakemake("-n", "-p", "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                      str(REPO / "configs" / "cifar10.yaml"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    jobs = re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n)+?)(?:Shell command: (.*))?$",
                      r.stdout, re.M)
    seen = set()
    for rule, block, shell in jobs:
        if rule.startswith("fetch") or rule == "all":
            continue  # local rules: on the host running Snakemake
        resources = dict(kv.split("=", 1) for kv in
                         re.search(r"resources: (.*)", block).group(1).split(", "))
        gpus = int(resources.get("gpu", 0))
        assert resources["slurm_partition"] == ("gpu" if rule in GPU_RULES else "cpu"), rule
        assert (gpus > 0) == (rule in GPU_RULES), (rule, gpus)
        if "--threads" in shell:  # the config's threads (8), as submitted, not the local 1
            assert "--threads 8 " in shell, (rule, shell[-200:])
        seen.add(rule)
    assert {"prepare_real", "pack", "fid", "report", "init_encoder", "sample", "fid_stats",
            "pretrain", "linear_eval"} <= seen
