# What more than one rule file uses, defined here only (so the include order in the Snakefile
# does not matter): the config's plan (the study's cells, the files, the external assets), the
# command pieces every stage's shell ends with, the pretrain command, the packed-data inputs, and
# the search's plan. Rules only wire: every option a job gets is built in
# pipeline/dag/job_params.py, every path in pipeline/dag/paths.py.
import os
import shlex

from pipeline.core.assets import drop_stale_file_record
from pipeline.core.records import sweep
from pipeline.dag.job_params import (
    cut_npz_args, fetch_generator_args, fetch_real_args, fetch_retry, fetched_weights_arg,
    fid_quality_args, fid_stats_args, fid_stats_untracked_args, fid_untracked_args, linear_eval_args,
    prepare_real_args, pretrain_args, pretrain_untracked_args, report_args,
    sample_args, sample_untracked_args, tracking, train_generator_args,
    train_generator_untracked_args, untracked,
)
from pipeline.dag.config_check import check_disk_space
from pipeline.dag.launch import generator_launcher, pretrain_launcher, threads_for
from pipeline.dag.paths import WorkflowPaths
from pipeline.dag.provenance import forced_rules, stale_outputs_line
from pipeline.dag.report_plan import design_file
from pipeline.dag.search_plan import SearchPlan, survivors_of
from pipeline.data.npz_source import npz_files
from pipeline.study.design import AUTO, RANDOM_INIT, plan

OUT = config["output_dir"].rstrip("/")
# Each run keeps its logs and benchmark files under its own output_dir, so two configs (the
# default, a preset) never overwrite each other's. The one place of that prefix.
LOGS = f"{OUT}/logs/"
BENCHMARKS = f"{OUT}/benchmarks/"
DEVICE = config["device"]
CONDA_ENV = "../../envs/pipeline.yaml"

DESIGN = plan(config)  # every (method, strategy, seed) cell and its evaluations
PATHS = WorkflowPaths(config, DESIGN)  # the DAG's files
SEARCH = SearchPlan(config) if DESIGN.auto else None  # the `auto` strategy's search
ONLINE = PATHS.online  # the online probe trains inside pretraining
# What the fetch_* rules fetch ({asset: {out, record}}); the consumers wait for the records.
INPUTS = PATHS.inputs  # from outside output_dir: fetched assets, the user's own files
ASSETS = INPUTS.fetched()
try:
    check_disk_space(PATHS)  # when the config is read, so `-n` reports it too
except ConfigError as e:
    raise WorkflowError(str(e)) from None
# Records (pipeline/core/records.py), in the main process only (a cluster job parses this file
# again): the user's inputs by content, and every finished output checked against its own
# record (hashed again only when its size or time changed), a damaged one moved aside so that
# this run rebuilds it. Not while another run writes there (its lock: pipeline/dag/run_lock.py),
# where an output may be renamed into place a moment before its record.
if workflow.is_main_process and not run_lock.in_use(OUT):
    INPUTS.write_records()
    for line in sweep(PATHS.recorded_outputs(), f"{OUT}/.records/outputs.json"):
        print(line, file=sys.stderr)
    stale = stale_outputs_line(PATHS, forced=forced_rules(sys.argv[1:]))  # other settings'
    if stale:
        raise WorkflowError(stale)

# Every job imports the package from this checkout, whatever its working directory (--directory).
# The prefix keeps Snakemake's own strict-mode default (set -euo pipefail) for bash.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(REPO))}:${{{{PYTHONPATH:-}}}}; ")

# Neither the device nor the thread count changes what a job computes: they stay out of both
# the rule's code (`{threads}` is filled in per job) and its tracked params.
RUNTIME = " --device {params.device} --threads {threads}"
# The log gets everything; on failure its last line (a stage's one-line error) reaches the console.
LOG = " > {log} 2>&1 || {{ rc=$?; tail -n 1 {log} >&2; exit $rc; }}"
# GPU jobs start their stage under pipeline/core/gpu_slots.py: on a workstation each takes
# {resources.gpu} devices of its own (CUDA_VISIBLE_DEVICES); under SLURM, which assigns them, it
# changes nothing.
GPU_SLOTS = "python -m pipeline.core.gpu_slots --gpus {resources.gpu} -- "



def job_shell(command: str, gpu: bool = False, runtime: bool = False) -> str:
    """A rule's shell: its stage's command under gpu_slots (a GPU rule), then the runtime options
    (device, threads) where the stage takes them, then the log redirection. (A function, not `+`
    between the pieces: `snakemake --lint` takes a name plus a string for a path composition.)"""
    return "".join([GPU_SLOTS if gpu else "", command, RUNTIME if runtime else "", LOG])


# Pretraining's command: rule pretrain's, and search.smk's search_train and auto_pretrain's.
PRETRAIN_SHELL = job_shell(
    "{params.launcher} python -m pipeline.pretrain --real {input.real} --out {output.encoder}"
    " --history {output.history} --method {wildcards.method} --strategy {wildcards.strategy}"
    " --seed {wildcards.seed} {params.opts} --checkpoint {params.checkpoint} {params.speed}"
    " {params.track}",
    gpu=True, runtime=True,
)


# The packed datasets' consumers (pretrain.smk, search.smk) wire their inputs through these two.
# The packed dataset folders, by path: {folder: part}.
PACKED = {PATHS.dataset(part): part for part in ("real", "generated")}


def packed(inputs: dict) -> dict:
    """A consumer's inputs with each packed folder as `ancient` plus its content record."""
    out = {}
    for key, path in inputs.items():
        if isinstance(path, str) and path in PACKED:
            out[key], out[f"{key}_record"] = ancient(path), f"{path}.json"
        else:
            out[key] = path
    return out


def after_repack(inputs: dict) -> list:
    """No files; an input function of its own so that the others keep their names. A packed
    folder missing beside its record (or the reverse) is being repaired: the consumer waits for
    the repack (checkpoints.pack.get raises until it is done), then Snakemake compares the new
    record's checksum with the one the consumer was made from. (A dry run cannot know and lists
    the consumers; in a fresh run neither file exists and the whole DAG is planned at once.)"""
    for path in inputs.values():
        if not isinstance(path, str):  # a list of files (the quality scores)
            continue
        if path in PACKED and os.path.exists(path) != os.path.exists(f"{path}.json"):
            checkpoints.pack.get(part=PACKED[path])
    return []


# search.smk's input functions (here: `snakemake --lint` wants no function beside rules).
def survivors(wc, round):
    """The candidates trained in `round`: all in round 0, else those the previous choice kept
    (a checkpoint: until it is made, Snakemake plans nothing after it)."""
    if round == 0:
        return list(SEARCH.candidates)
    choice = checkpoints.search_select.get(method=wc.method, seed=wc.seed, round=round - 1)
    return survivors_of(choice.output[0])


def winner(wc):
    (name,) = survivors(wc, SEARCH.last)
    return name


def winner_inputs(wc) -> dict:
    """The winner's last round's: the packed data and its state at the last choice."""
    return SEARCH.train_inputs(wc.method, wc.seed, SEARCH.last, winner(wc))


def files_but_real(inputs: dict) -> list:
    """Every file of `inputs` but the real data's (auto_pretrain names those `real`), flat."""
    return [f for name, files in inputs.items() if name not in ("real", "real_record")
            for f in (files if isinstance(files, list) else [files])]
