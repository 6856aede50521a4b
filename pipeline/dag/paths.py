"""Every file of the workflow's DAG, spelled here and only here: `WorkflowPaths`, the files of one
config under its `output_dir`, is the one way to a path (the rules through `PATHS`, the job
options and the search's plan through their own). Also what decides how many of them there are:
the sample shards and their ranges, what rule `all` asks for. Torch-free: the Snakefile builds a
`WorkflowPaths` on every parse.
"""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.core.records import SUFFIX as RECORD_SUFFIX
from pipeline.dag.inputs import Inputs
from pipeline.data.npz_source import image_shape, npz_files
from pipeline.study.design import RANDOM_INIT, Design

# a shard's number in its file names (shard_NNNNN): the sample rule's wildcard; it bounds the
# shards a run may have (pipeline.dag.config_check.MAX_SHARDS)
SHARD_DIGITS = 5

# rule report's outputs by name (online: with the online probe; search: with the `auto` search)
REPORT_FILES = {"summary": "summary.json", "table": "summary.md", "page": "summary.html",
                "results": "results.png", "results_svg": "results.svg",
                "samples": "samples.png", "losses": "losses.png", "selection": "selection.png",
                "online": "online.png", "search": "search.png"}


def shard_name(shard: int) -> str:
    return f"shard_{shard:0{SHARD_DIGITS}d}"


def num_shards(sampling: dict, num_images: int | None = None) -> int:
    """Shards of `num_images` generated images (default: sampling.num_images)."""
    total = sampling["num_images"] if num_images is None else num_images
    return math.ceil(total / sampling["shard_size"])


def generated_count(config: dict) -> int:
    """Images in the generated set: sampling.num_images, or with generator.source npz the
    files' own count if smaller (read from their headers)."""
    g, wanted = config["generator"], config["sampling"]["num_images"]
    if g["source"] == "npz":
        return min(wanted, image_shape(npz_files(g["path"]))[0])
    return wanted


class WorkflowPaths:
    """The files of one config's DAG under its `output_dir` (`design`: the study's cells, for
    the files that depend on them)."""

    def __init__(self, config: dict, design: Design | None = None):
        self.config, self.design = config, design
        self.out = config["output_dir"].rstrip("/")
        self.online = design is not None and "online" in design.protocols
        self.inputs = Inputs(config)  # what comes from outside output_dir

    @staticmethod
    def record(path: str) -> str:
        """The record beside an output (pipeline.core.records: its sha256, size and provenance),
        a declared output of the job too, so that rule all asks for it."""
        return f"{path}{RECORD_SUFFIX}"

    def real(self, split: str) -> str:
        """The real data's `train` or `test` split, as prepare_real writes it."""
        return f"{self.out}/real/{split}.npz"

    def dataset(self, part: str) -> str:
        """A packed dataset folder (`real` or `generated`)."""
        return f"{self.out}/dataset/{part}"

    def cell(self, method: str = "{method}", strategy: str = "{strategy}", seed="{seed}") -> str:
        """Where a cell's encoder, history and online-probe result are (by default: the rules'
        wildcard pattern)."""
        return f"{self.out}/pretrain/{method}/{strategy}/seed{seed}"

    def result(self, method: str, strategy: str, seed, protocol: str) -> str:
        """Where an evaluation's JSON lands: the online probe's beside its encoder."""
        if protocol == "online":
            return f"{self.cell(method, strategy, seed)}/online.json"
        return f"{self.out}/linear/{method}/{strategy}/seed{seed}/{protocol}.json"

    def cell_files(self, method: str = "{method}", strategy: str = "{strategy}",
                   seed="{seed}") -> dict[str, str]:
        """A pretrain job's outputs in its cell's folder (by default: wildcard patterns)."""
        return self.trained_files(self.cell(method, strategy, seed))

    @classmethod
    def trained_files(cls, folder: str) -> dict[str, str]:
        """What a pretrain job writes in its folder (a cell's or a search candidate's): the
        encoder, the loss curve and its summary, and the record of each."""
        encoder, history, meta = (f"{folder}/{name}" for name in
                                  ("encoder.pt", "history.csv", "history.json"))
        return {"encoder": encoder, "encoder_record": cls.record(encoder),
                "history": history, "meta": meta, "history_record": cls.record(history),
                "meta_record": cls.record(meta)}

    def cell_checkpoint(self) -> str:
        """Where a pretrain job keeps its resumable state (no output: removed when it ends)."""
        return f"{self.cell()}/checkpoint.pt"

    def generator(self) -> str:
        """The generator trained here (generator.source train): a diffusers folder."""
        return f"{self.out}/generator"

    def generator_checkpoint(self) -> str:
        """Where train_generator keeps its resumable state (beside its output folder, which
        Snakemake empties before a rerun; removed when the generator is saved)."""
        return f"{self.out}/generator.checkpoint.pt"

    def tensorboard(self, run: str) -> str:
        """The live curves of the job `run` (RULE/WILDCARDS): TensorBoard's event files."""
        return f"{self.out}/tensorboard/{run}"

    def compile_cache(self) -> str:
        """torch.compile's caches shared by a run's sampling jobs (no rule's output: a cache)."""
        return f"{self.out}/cache/torch_compile"

    # --- sampling -------------------------------------------------------------------------
    def num_generated(self) -> int:
        """Images in the generated set (generated_count)."""
        return generated_count(self.config)

    def num_shards(self) -> int:
        return num_shards(self.config["sampling"], self.num_generated())

    def samples(self) -> str:
        """The sample shards' folder."""
        return f"{self.out}/samples"

    def shard_manifest(self, shard) -> str:
        """A sample shard's manifest by number, or by its wildcard's value (its images and labels
        are beside it, see shard_data)."""
        name = shard_name(shard) if isinstance(shard, int) else f"shard_{shard}"
        return f"{self.samples()}/{name}.json"

    def shard_files(self) -> list[str]:
        """Each sample shard's manifest (written last, beside its .images.npy and .labels.npy)."""
        return [self.shard_manifest(i) for i in range(self.num_shards())]

    def shard_pattern(self) -> str:
        """A shard's manifest as the sample rule's output pattern ({shard}: five digits)."""
        return self.shard_manifest("{shard}")

    @staticmethod
    def shard_data(manifest: str) -> list[str]:
        """The files a shard's manifest lists. Consumers ask for them too: Snakemake reruns a
        job for a missing output only when some job asks for that output."""
        stem = manifest.removesuffix(".json")
        return [f"{stem}.images.npy", f"{stem}.labels.npy"]

    def all_shard_data(self) -> list[str]:
        return [f for m in self.shard_files() for f in self.shard_data(m)]

    def shard_range(self, shard: str | int) -> dict:
        """The global image indices of shard number `shard`: {start, count}."""
        size, total = self.config["sampling"]["shard_size"], self.num_generated()
        start = int(shard) * size
        return {"start": start, "count": min(size, total - start)}

    def generator_model(self) -> str:
        """The generator for sampling, always a local folder: trained here, fetched from the hub
        by rule fetch_generator, or the config's own folder."""
        g, fetched = self.config["generator"], self.inputs.fetched()
        if g["source"] == "train":
            return self.generator()
        return fetched["generator"]["out"] if "generator" in fetched else g["model"]

    def generator_inputs(self) -> list[str]:
        if self.config["generator"]["source"] == "train":
            return [self.generator()]
        fetched = self.inputs.fetched().get("generator")
        local = self.inputs.records().get("generator")
        return [fetched["out"], fetched["record"]] if fetched else \
            [self.config["generator"]["model"], local] if local else []

    # --- FID ------------------------------------------------------------------------------
    def fid_stats_inputs(self, name: str) -> dict:
        """The images of a `fid_stats` job: the real train split or one shard (with its data)."""
        fetched = self.inputs.feature_weights()
        weights = {"weights": fetched["record"]} if fetched else {}
        if name == "real":
            return {"images": self.real("train"), **weights}
        manifest = self.shard_manifest(name.removeprefix("shard_"))
        return {"images": manifest, "data": self.shard_data(manifest),
                "real_quality": self.real_quality(), **weights}

    def fid_quality_job(self, name: str) -> dict:
        """What a `fid_stats` job's quality options need: nothing for the real set (its own
        file), a shard's global start, the set's size and the real quality file it scores
        against."""
        if name == "real":
            return {}
        return {"start": self.shard_range(name.removeprefix("shard_"))["start"],
                "total": self.num_generated(), "real_quality": self.real_quality()}

    def fid_stats(self, name: str) -> str:
        """The Inception statistics (mean and covariance) of `name` (`real`, `shard_NNNNN` or a
        wildcard pattern): a fid_stats job's output."""
        return f"{self.out}/fid/{name}.stats.npz"

    def fid_quality(self, name: str) -> str:
        """The quality file of `name` (`real`, `shard_NNNNN` or a wildcard pattern): the feature
        subset and its radii (the real set's) or scores (a shard's), a fid_stats job's output."""
        return f"{self.out}/fid/{name}.quality.npz"

    def fid_result(self) -> str:
        """pipeline.fid's result: FID and the quality metrics of the generated set."""
        return f"{self.out}/fid.json"

    def real_quality(self) -> str:
        return self.fid_quality("real")

    def shard_quality_files(self) -> list[str]:
        """Every shard's quality file, in shard order."""
        return [self.fid_quality(shard_name(i)) for i in range(self.num_shards())]

    def real_fid_reference(self) -> str:
        """The real statistics: a given mu/sigma (or stats) npz, else computed from the train split."""
        return self.config["fid"]["reference"] or self.fid_stats("real")

    def shard_fid_stats(self) -> list[str]:
        return [self.fid_stats(shard_name(i)) for i in range(self.num_shards())]

    # --- pretraining and evaluation -------------------------------------------------------
    def pretrain_inputs(self, strategy: str) -> dict:
        inputs = {"real": self.dataset("real")}
        if self.design.settings(strategy)["generated"]:
            inputs["generated"] = self.dataset("generated")
        if "generated_keep" in self.design.settings(strategy):  # the images' quality scores
            inputs["scores"] = self.shard_quality_files()
        if self.online and strategy != RANDOM_INIT:
            inputs["test"] = self.real("test")
        return inputs

    def evaluation_files(self) -> list[str]:
        return [self.result(m, v, s, p) for m, v, s, p in self.design.evaluations()]

    def history_files(self) -> list[str]:
        return [self.cell_files(m, v, s)["history"]
                for m, v, s in self.design.cells() if v != RANDOM_INIT]

    def intermediate_files(self) -> list[str]:
        """Every file a job makes (the report's outputs aside). Rule `all` asks for each because
        Snakemake rebuilds a missing file only when some job asks for it or a job after it runs
        (a job whose outputs exist does not pull in its missing inputs): with them, a plain
        rerun rebuilds any output that went missing (deleted, moved aside as damaged, or removed
        by Snakemake when a job rerunning for a changed setting was killed), and what depends
        on it. tests/test_reliability.py checks this list against a finished run's files."""
        d, record = self.design, self.record
        files = [self.real("train"), self.real("test"), self.fid_result(),
                 self.fid_stats("real"), self.real_quality(), *self.inputs.fetch_records()]
        files += [record(f) for f in files[:5]]
        if self.config["generator"]["source"] == "train":
            files += [self.generator(), record(self.generator())]
        parts = ["real"] + (["generated"] if any(d.settings(v)["generated"] for v in d.trained)
                            else [])
        files += [f for p in parts for f in (self.dataset(p), f"{self.dataset(p)}.json")]
        for manifest in self.shard_files():
            name = Path(manifest).stem
            files += [manifest, *self.shard_data(manifest), self.fid_stats(name),
                      self.fid_quality(name), record(self.fid_stats(name)),
                      record(self.fid_quality(name))]
        for m, v, s in d.cells():
            files += self.cell_files(m, v, s).values()
        files += self.evaluation_files()
        files += [record(f) for f in self.evaluation_files()]
        return files

    def recorded_outputs(self) -> list[str]:
        """The outputs that carry a record (pipeline.core.records), which the workflow checks
        when it is read (records.sweep)."""
        files = self.intermediate_files() + [self.record(self.report_file("summary"))]
        return [f[:-len(RECORD_SUFFIX)] for f in files if f.endswith(RECORD_SUFFIX)]

    # --- the `auto` search (pipeline.dag.search_plan.SearchPlan: by method, seed, round) ---
    def search_round(self, method: str, seed, round) -> str:
        """The `auto` search's round `round` of one method and seed: a folder per candidate, and
        beside it ROUND.json, the choice (wildcard patterns welcome)."""
        return f"{self.out}/search/{method}/seed{seed}/round{round}"

    def search_files(self, method: str = "{method}", seed="{seed}", round="{round}",
                     candidate: str = "{strategy}") -> dict[str, str]:
        """A candidate's files after a search round: the state the next round resumes from, and
        the encoder and history a pretrain job writes (by default: rule search_train's pattern,
        whose `strategy` wildcard is the candidate, recorded as the run's strategy)."""
        folder = f"{self.search_round(method, seed, round)}/{candidate}"
        return {"state": f"{folder}/state.pt", **self.trained_files(folder)}

    def search_choice(self, method: str = "{method}", seed="{seed}", round="{round}") -> str:
        """A round's choice (rule search_select's output; by default its pattern): the scores and
        the survivors."""
        return f"{self.search_round(method, seed, round)}.json"

    # --- report ---------------------------------------------------------------------------
    def reports(self) -> str:
        """The report's folder: the config's own (config `name`), so that two configs sharing an
        output_dir (the default and configs/study.yaml) share their jobs but not their summaries."""
        return f"{self.out}/reports/{self.config['name']}"

    def report_file(self, name: str) -> str:
        """One of the report's files (rule report's output of that name)."""
        return f"{self.reports()}/{REPORT_FILES[name]}"

    def sweep_plots(self) -> list[str]:
        """The report's figure of each sweep."""
        return [f"{self.reports()}/sweeps/{sw.strategy}_{sw.setting}.png"
                for sw in self.design.sweeps]

    def design_folder(self) -> str:
        """Where the report's design files are (pipeline.dag.report_plan.design_file)."""
        return f"{self.out}/design"
