"""Outputs made with other settings than the config plans, told from their own records.

Snakemake reruns a job whose tracked options changed from what `.snakemake/metadata` recorded
for its outputs. A results folder moved or copied without `.snakemake/` has no such memory: its
outputs would pass for this config's. Their records (pipeline.core.records: a sample shard's
manifest, NAME.record.json beside the other outputs) say which options made them; the workflow
compares those with the options it plans and refuses in one line, before any job, when they
differ and Snakemake has no metadata of its own for the output (with metadata, Snakemake's
params trigger reruns it). Refusing rather than deleting: a dry run must not remove results,
and the fix (`--forcerun RULE`, or removing the outputs) is one command the line names.
"""

from __future__ import annotations

import json
import os
import shlex
from base64 import urlsafe_b64encode
from pathlib import Path

from pipeline.core.records import read as read_record
from pipeline.core.records import split_options
from pipeline.dag import job_params as jp
from pipeline.dag.paths import WorkflowPaths
from pipeline.study.design import AUTO
from pipeline.vocab.options import STAGES


def planned(paths: WorkflowPaths) -> list[tuple[str, str, str]]:
    """(output, rule, its job's tracked options as planned) for the outputs whose records
    keep their settings."""
    c, d = paths.config, paths.design
    out = [(paths.real(s), "prepare_real", jp.prepare_real_args(c)) for s in ("train", "test")]
    if c["generator"]["source"] == "train":
        out.append((paths.generator(), "train_generator", jp.train_generator_args(c)))
    if c["generator"]["source"] != "npz":
        out += [(m, "sample", jp.sample_args(c)) for m in paths.shard_files()]
    for name in ["real"] + [Path(m).stem for m in paths.shard_files()]:
        out.append((paths.fid_stats(name), "fid_stats", jp.fid_stats_args(c) + " " +
                    jp.fid_quality_args(c, **paths.fid_quality_job(name))))
    out += [(paths.result(m, v, s, p), "linear_eval", jp.linear_eval_args(c, p))
            for m, v, s, p in d.evaluations() if p != "online"]
    for m, v, s in d.cells():
        if v != AUTO:  # the search's winner decides its options
            rule = "init_encoder" if jp.pretrain_args(c, d, m, v, s).count("--steps 0") else \
                "pretrain"
            out.append((paths.cell_files(m, v, s)["encoder"], rule,
                        jp.pretrain_args(c, d, m, v, s)))
    return out


def _stage(rule: str) -> str:
    return {"init_encoder": "pretrain"}.get(rule, rule)


def recorded_settings(output: str) -> dict | None:
    """The settings an output's record keeps (a shard: its manifest's), None without one."""
    if output.endswith(".json") and "/samples/" in output:
        try:
            made = json.loads(Path(output).read_text()).get("made_by")
        except (OSError, ValueError):
            return None
        return made and made.get("settings")
    record = read_record(output)
    return record.get("settings") if record else None


def differences(declared, recorded: dict, planned_opts: str) -> list[str]:
    """`--flag OLD -> NEW` for each setting that differs: every planned option, and every
    recorded one that is a config setting (not a path or a job's own range)."""
    plan = split_options(shlex.split(planned_opts))
    settings = {o.flag for o in declared if o.tracked and o.key and not o.computed}
    flags = list(plan) + [f for f in recorded if f in settings and f not in plan]
    return [f"{f} {' '.join(recorded.get(f, ['(unset)']))} -> {' '.join(plan.get(f, ['(unset)']))}"
            for f in flags if recorded.get(f) != plan.get(f)]


def has_snakemake_metadata(output: str, workdir: str = ".") -> bool:
    """Whether Snakemake's own record of the job that made `output` exists (its file in
    .snakemake/metadata, named by the path's urlsafe base64 as Snakemake's persistence does)."""
    name = urlsafe_b64encode(output.encode()).decode()
    parts = [name[i:i + 254] for i in range(0, len(name), 254)]  # a long one: @-prefixed folders
    parts = ["@" + p for p in parts[:-1]] + parts[-1:]
    return os.path.exists(os.path.join(workdir, ".snakemake", "metadata", *parts))


def forced_rules(argv: list[str]) -> set[str]:
    """The rules this run forces (--forcerun RULE..., or "*" for --forceall), read from its
    command line with Snakemake's own parser: the Snakefile is read before Snakemake hands the
    workflow its DAG settings. Empty when the command line is not Snakemake's (its API)."""
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(argv)
    except (SystemExit, Exception):  # argparse exits on what it cannot read
        return set()
    return set(args.forcerun or ()) | ({"*"} if args.forceall else set())


def stale_outputs_line(paths: WorkflowPaths, workdir: str = ".", forced=()) -> str | None:
    """The one line refusing a run over outputs made with other settings that Snakemake cannot
    tell (no metadata), or None; the rules in `forced` (the run's --forcerun, or every rule
    with --forceall: "*") rerun anyway."""
    stale = []
    for output, rule, opts in planned(paths):
        if rule in forced or "*" in forced:
            continue
        if not os.path.exists(output) or has_snakemake_metadata(output, workdir):
            continue
        recorded = recorded_settings(output)
        if recorded is None:
            continue
        diff = differences(STAGES[_stage(rule)], recorded, opts)
        if diff:
            stale.append((output, rule, diff))
    if not stale:
        return None
    output, rule, diff = stale[0]
    rules = sorted({r for _, r, _ in stale})
    more = f" (and {len(stale) - 1} more outputs)" if len(stale) > 1 else ""
    return (f"{output}{more} was made with other settings ({'; '.join(diff[:3])}) and "
            f".snakemake/ has no record of it (a results folder moved without it?): run "
            f"snakemake with --forcerun {' '.join(rules)} to remake them with this config, or "
            "delete them")
