"""The workflow's files and per-job choices, computed from the config for the rules to wire.

Everything the `.smk` files used to compute themselves lives here, so that it is tested without
running Snakemake: the sample shards and their ranges, which generator sampling reads, the inputs
of a pretrain job and how it is launched, what rule `all` asks for, the disk check, and the
report's design file. Torch-free: the Snakefile builds a `WorkflowPaths` on every parse.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from pipeline.core import io
from pipeline.core.records import SUFFIX as RECORD_SUFFIX
from pipeline.core.errors import ConfigError
from pipeline.data.npz_source import image_shape, npz_files
from pipeline.study.design import RANDOM_INIT, Design

# --- file names: every path of the DAG is spelled here, and only here ------------------------


def real_split(out: str, split: str) -> str:
    """The real data's `train` or `test` split, as prepare_real writes it."""
    return f"{out}/real/{split}.npz"


def dataset_dir(out: str, part: str) -> str:
    """A packed dataset folder (`real` or `generated`)."""
    return f"{out}/dataset/{part}"


def cell_dir(out: str, method: str, strategy, seed) -> str:
    """Where a cell's encoder, history and online-probe result are (wildcard patterns welcome)."""
    return f"{out}/pretrain/{method}/{strategy}/seed{seed}"


def result_path(out: str, method: str, strategy: str, seed, protocol: str) -> str:
    """Where an evaluation's JSON lands: the online probe's beside its encoder."""
    if protocol == "online":
        return f"{cell_dir(out, method, strategy, seed)}/online.json"
    return f"{out}/linear/{method}/{strategy}/seed{seed}/{protocol}.json"


# a shard's number in its file names (shard_NNNNN): the sample rule's wildcard; it bounds the
# shards a run may have (pipeline.dag.config_check.MAX_SHARDS)
SHARD_DIGITS = 5


def shard_name(shard: int) -> str:
    return f"shard_{shard:0{SHARD_DIGITS}d}"


def shard_manifest(out: str, shard) -> str:
    """A sample shard's manifest (its images and labels are beside it, see shard_data)."""
    return f"{out}/samples/{shard_name(shard)}.json" if isinstance(shard, int) else \
        f"{out}/samples/shard_{shard}.json"


def fid_file(out: str, name: str, kind: str) -> str:
    """A fid_stats job's output: `kind` `stats` (the Inception mean and covariance) or `quality`
    (the feature subset and its radii or scores) of `name`, `real` or `shard_NNNNN`."""
    return f"{out}/fid/{name}.{kind}.npz"


def shard_quality(out: str, shard: int) -> str:
    """A shard's quality file (its share of the feature subset and every image's scores)."""
    return fid_file(out, shard_name(shard), "quality")


def real_quality(out: str) -> str:
    """The real set's quality file (its feature subset and k-NN radii)."""
    return fid_file(out, "real", "quality")


def search_round(out: str, method: str, seed, round) -> str:
    """The `auto` search's round `round` of one method and seed: a folder per candidate, and
    beside it ROUND.json, the choice (wildcard patterns welcome)."""
    return f"{out}/search/{method}/seed{seed}/round{round}"


def search_choice(out: str, method: str, seed, round) -> str:
    """A search round's choice (rule search_select's output): the scores and the survivors."""
    return f"{search_round(out, method, seed, round)}.json"


def search_files(out: str, method: str, seed, round, candidate: str) -> dict[str, str]:
    """A candidate's files after a search round: the state the next round resumes from, and
    the encoder and history a pretrain job writes."""
    folder = f"{search_round(out, method, seed, round)}/{candidate}"
    return {"state": f"{folder}/state.pt", **cell_files(folder)}


def cell_files(folder: str) -> dict[str, str]:
    """What a pretrain job writes in its folder (a cell's or a search candidate's): the
    encoder, the loss curve and its summary, and the record of each."""
    return {"encoder": f"{folder}/encoder.pt", "encoder_record": record(f"{folder}/encoder.pt"),
            "history": f"{folder}/history.csv", "meta": f"{folder}/history.json",
            "history_record": record(f"{folder}/history.csv"),
            "meta_record": record(f"{folder}/history.json")}


def record(path: str) -> str:
    """The record beside an output (pipeline.core.records: its sha256, size and provenance), a
    declared output of the job too, so that rule all asks for it."""
    return f"{path}{RECORD_SUFFIX}"


def generated_count(config: dict) -> int:
    """Images in the generated set: sampling.num_images, or with generator.source npz the
    files' own count if smaller (read from their headers)."""
    g, wanted = config["generator"], config["sampling"]["num_images"]
    if g["source"] == "npz":
        return min(wanted, image_shape(npz_files(g["path"]))[0])
    return wanted


def shard_quality_files(config: dict) -> list[str]:
    """Every shard's quality file, in shard order."""
    out = config["output_dir"].rstrip("/")
    return [shard_quality(out, i)
            for i in range(num_shards(config["sampling"], generated_count(config)))]


def looks_local(model: str) -> bool:
    """A generator reference that is a path rather than a hub id (`org/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if os.path.isabs(model) or model.startswith(("~", ".")) or os.path.exists(model):
        return True
    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return False


def num_shards(sampling: dict, num_images: int | None = None) -> int:
    """Shards of `num_images` generated images (default: sampling.num_images)."""
    total = sampling["num_images"] if num_images is None else num_images
    return math.ceil(total / sampling["shard_size"])


def threads_for(config: dict, rule: str) -> int:
    """A rule's `threads` setting, else `threads.default`, else 1."""
    return config["threads"].get(rule, config["threads"].get("default", 1))


def pretrain_launcher(config: dict, strategy: str) -> str:
    """What the pretrain command (`python -m pipeline.pretrain ...`) runs under: `torchrun` for
    several processes (`--no-python`: it starts the command as written), else nothing;
    random_init trains nothing, so one process."""
    n = config["pretrain"]["processes"]
    if n == 1 or strategy == RANDOM_INIT:
        return ""
    return f"torchrun --standalone --nproc_per_node {n} --no-python"


def compile_cache_dir(config: dict) -> str:
    """torch.compile's caches shared by a run's sampling jobs (no output of any rule: a cache)."""
    return f"{config['output_dir'].rstrip('/')}/cache/torch_compile"


def generator_launcher(config: dict) -> str:
    """What train_generator runs under: torchrun for several processes (as pretrain_launcher)."""
    n = config["generator"]["train"]["processes"]
    return "" if n == 1 else f"torchrun --standalone --nproc_per_node {n} --no-python"


# pytorch-fid's weights file (pipeline.core.assets.FID_WEIGHTS_URL's name; torch-free here).
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (the Snakefile is torch-free): $TORCH_HOME/hub,
    TORCH_HOME defaulting to $XDG_CACHE_HOME/torch, that to ~/.cache/torch."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def sampler_description(config: dict) -> dict:
    """How the generated images were made, as the report states it."""
    g, s = config["generator"], config["sampling"]
    source = {"train": "trained here on the real training split",
              "pretrained": f"pretrained {g['model']}",
              "npz": f"brought as npz files ({g.get('path')})"}[g["source"]]
    out = {"generator": source, "sampler": s["sampler"], "steps": s["steps"],
           "precision": s["precision"], "num_images": s["num_images"], "seed": s["seed"]}
    if s.get("guidance", 1) != 1:  # only then: an unguided run's report file stays as it was
        out["guidance"] = s["guidance"]
    return out


# rule report's outputs by name (online: with the online probe; search: with the `auto` search)
REPORT_FILES = {"summary": "summary.json", "table": "summary.md", "page": "summary.html",
                "results": "results.png", "results_svg": "results.svg",
                "samples": "samples.png", "losses": "losses.png", "selection": "selection.png",
                "online": "online.png", "search": "search.png"}


class WorkflowPaths:
    """The files of one config's DAG under its `output_dir`."""

    def __init__(self, config: dict, design: Design):
        self.config, self.design = config, design
        self.out = config["output_dir"].rstrip("/")
        self.online = "online" in design.protocols

    def real(self, split: str) -> str:
        return real_split(self.out, split)

    def dataset(self, part: str) -> str:
        return dataset_dir(self.out, part)

    def result(self, method: str, strategy: str, seed, protocol: str) -> str:
        return result_path(self.out, method, strategy, seed, protocol)

    def cell(self) -> str:
        """A cell's folder as a rule's wildcard pattern."""
        return cell_dir(self.out, "{method}", "{strategy}", "{seed}")

    def cell_files(self) -> dict[str, str]:
        """A pretrain job's outputs in its cell's folder, as wildcard patterns."""
        return cell_files(self.cell())

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

    # --- sampling -------------------------------------------------------------------------
    def num_generated(self) -> int:
        """Images in the generated set: sampling.num_images, or with generator.source npz the
        files' own count if smaller (read from their headers)."""
        return generated_count(self.config)

    def num_shards(self) -> int:
        return num_shards(self.config["sampling"], self.num_generated())

    def shard_files(self) -> list[str]:
        """Each sample shard's manifest (written last, beside its .images.npy and .labels.npy)."""
        return [shard_manifest(self.out, i) for i in range(self.num_shards())]

    def shard_pattern(self) -> str:
        """A shard's manifest as the sample rule's output pattern ({shard}: five digits)."""
        return shard_manifest(self.out, "{shard}")

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
        g = self.config["generator"]
        if g["source"] == "train":
            return self.generator()
        return self.assets()["generator"]["out"] if "generator" in self.assets() else g["model"]

    def generator_inputs(self) -> list[str]:
        if self.config["generator"]["source"] == "train":
            return [self.generator()]
        fetched = self.assets().get("generator")
        local = self.input_records().get("generator")
        return [fetched["out"], fetched["record"]] if fetched else \
            [self.config["generator"]["model"], local] if local else []

    # --- external assets (rules fetch_*, local rules) -------------------------------------
    def assets(self) -> dict[str, dict]:
        """What rule fetch_ASSET fetches, for the assets that are not local already: {asset:
        {"out": where it goes, "record": its JSON record}}. A hub generator (not a folder), CIFAR
        with real.download, the FID Inception weights when fid.weights is null."""
        c, found = self.config, {}
        g, r, f = c["generator"], c["real"], c["fid"]
        if g["source"] == "pretrained" and not looks_local(g["model"]):
            found["generator"] = {"out": f"{self.out}/assets/generator",
                                  "record": f"{self.out}/assets/generator.json"}
        if r["source"] in ("cifar10", "cifar100") and r.get("download"):
            found["real"] = {"out": r["root"], "record": f"{self.out}/assets/real.json"}
        if f["features"] == "inception" and not f.get("weights"):
            found["inception"] = {"out": str(torch_hub_dir() / "checkpoints" / FID_WEIGHTS_NAME),
                                  "record": f"{self.out}/assets/inception.json"}
        if f["features"] == "dinov2" and not f.get("weights"):
            # timm's hub file of the network, kept beside the Inception weights' cache
            found["dinov2"] = {"out": str(torch_hub_dir() / "checkpoints" /
                                          f"{f['dinov2_arch']}.safetensors"),
                               "repo": f"timm/{f['dinov2_arch']}",
                               "record": f"{self.out}/assets/dinov2.json"}
        return found

    def feature_weights_asset(self) -> dict:
        """The fetched weights of fid.features' network ({} when local or pixels)."""
        found = self.assets()
        return found.get("inception") or found.get("dinov2") or {}

    def asset_records(self) -> list[str]:
        return [a["record"] for a in self.assets().values()]

    def real_inputs(self) -> list[str]:
        """prepare_real's: the fetch record when the data are downloaded (its files local), else
        the content records of the user's real data (input_records)."""
        fetched = self.assets().get("real")
        if fetched:
            return [fetched["record"]]
        return [r for key, r in self.input_records().items() if key.startswith("real")]

    # --- the user's own inputs, by content ----------------------------------------------------
    def input_records(self) -> dict[str, str]:
        """{name: content record} of the local inputs whose content decides reruns: the real
        data (real.root, real.test) unless downloaded, a local generator folder, the generated
        npz files; each record is rewritten (records.input_record) only when the content
        changes, so that the jobs reading it rerun then."""
        c, out = self.config, {}
        r, g = c["real"], c["generator"]
        if r["source"] != "digits" and "real" not in self.assets():
            if r.get("root"):
                out["real"] = f"{self.out}/inputs/real.json"
            if r.get("test"):
                out["real_test"] = f"{self.out}/inputs/real_test.json"
        if g["source"] == "pretrained" and "generator" not in self.assets():
            out["generator"] = f"{self.out}/inputs/generator.json"
        if g["source"] == "npz":
            out["generated_npz"] = f"{self.out}/inputs/generated_npz.json"
        return out

    def input_sources(self) -> dict[str, str]:
        """The path each input record describes."""
        c = self.config
        return {"real": c["real"]["root"], "real_test": c["real"].get("test"),
                "generator": c["generator"]["model"], "generated_npz": c["generator"]["path"]}

    def write_input_records(self) -> None:
        """Bring each input record up to date with its input's content (when the workflow is
        read, in the main process; a missing input is left to the config check and the job)."""
        from pipeline.core.records import input_record

        sources = self.input_sources()
        for name, record in self.input_records().items():
            if os.path.exists(os.path.expanduser(sources[name])):
                input_record(sources[name], record, f"{self.out}/.records/inputs.json")

    def recorded_outputs(self) -> list[str]:
        """The outputs that carry a record (pipeline.core.records), which the workflow checks
        when it is read (records.sweep)."""
        files = self.intermediate_files() + [record(self.report_file("summary"))]
        return [f[:-len(RECORD_SUFFIX)] for f in files if f.endswith(RECORD_SUFFIX)]

    def inception_weights(self) -> str | None:
        """The weights fid_stats reads: fid.weights, else the file rule fetch_inception (or
        fetch_dinov2) made."""
        fetched = self.feature_weights_asset()
        return fetched["out"] if fetched else self.config["fid"].get("weights")

    def check_disk_space(self, margin: float = 1.1) -> None:
        """Room for the sample shards not yet written (packing only references them); a
        ConfigError when the config is read, so `-n` reports it too."""
        missing = sum(not Path(f).exists() for f in self.shard_files())
        if not missing:
            return
        res = self.config["real"]["resolution"]
        need = missing * io.image_bytes(self.config["sampling"]["shard_size"], res)
        problem = io.free_space_problem(f"{self.out}/samples", need, margin)
        if problem:
            raise ConfigError(f"{self.config['output_dir']}: {missing} sample shards: {problem}")

    # --- FID ------------------------------------------------------------------------------
    def fid_stats_inputs(self, name: str) -> dict:
        """The images of a `fid_stats` job: the real train split or one shard (with its data)."""
        fetched = self.feature_weights_asset()
        weights = {"weights": fetched["record"]} if fetched else {}
        if name == "real":
            return {"images": self.real("train"), **weights}
        manifest = shard_manifest(self.out, name.removeprefix("shard_"))
        return {"images": manifest, "data": self.shard_data(manifest),
                "real_quality": real_quality(self.out), **weights}

    def fid_quality_job(self, name: str) -> dict:
        """What a `fid_stats` job's quality options need: nothing for the real set (its own
        file), a shard's global start, the set's size and the real quality file it scores
        against."""
        if name == "real":
            return {}
        return {"start": self.shard_range(name.removeprefix("shard_"))["start"],
                "total": self.num_generated(), "real_quality": real_quality(self.out)}

    def fid_stats(self, name: str) -> str:
        """The Inception statistics of `name` (`real`, `shard_NNNNN` or a wildcard pattern)."""
        return fid_file(self.out, name, "stats")

    def fid_quality(self, name: str) -> str:
        """The quality file of `name` (`real`, `shard_NNNNN` or a wildcard pattern)."""
        return fid_file(self.out, name, "quality")

    def fid_result(self) -> str:
        """pipeline.fid's result: FID and the quality metrics of the generated set."""
        return f"{self.out}/fid.json"

    def real_quality(self) -> str:
        return real_quality(self.out)

    def shard_quality_files(self) -> list[str]:
        return [shard_quality(self.out, i) for i in range(self.num_shards())]

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
        return [result_path(self.out, m, v, s, p) for m, v, s, p in self.design.evaluations()]

    def history_files(self) -> list[str]:
        return [cell_files(cell_dir(self.out, m, v, s))["history"]
                for m, v, s in self.design.cells() if v != RANDOM_INIT]

    def intermediate_files(self) -> list[str]:
        """Every file a job makes (the report's outputs aside). Rule `all` asks for each because
        Snakemake rebuilds a missing file only when some job asks for it or a job after it runs
        (a job whose outputs exist does not pull in its missing inputs): with them, a plain
        rerun rebuilds any output that went missing (deleted, moved aside as damaged, or removed
        by Snakemake when a job rerunning for a changed setting was killed), and what depends
        on it. tests/test_reliability.py checks this list against a finished run's files."""
        out, d = self.out, self.design
        files = [self.real("train"), self.real("test"), self.fid_result(),
                 self.fid_stats("real"), self.real_quality(), *self.asset_records()]
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
            files += cell_files(cell_dir(out, m, v, s)).values()
        files += self.evaluation_files()
        files += [record(f) for f in self.evaluation_files()]
        return files

    # --- the `auto` search (pipeline.dag.search.SearchPlan: its files by method, seed, round) --
    def search_files(self, method: str = "{method}", seed="{seed}", round="{round}",
                     candidate: str = "{strategy}") -> dict[str, str]:
        """A candidate's files in a round (by default: rule search_train's pattern, whose
        `strategy` wildcard is the candidate, recorded as the run's strategy)."""
        return search_files(self.out, method, seed, round, candidate)

    def search_choice(self, method: str = "{method}", seed="{seed}", round="{round}") -> str:
        """A round's choice (by default: rule search_select's pattern)."""
        return search_choice(self.out, method, seed, round)

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

    def design_file(self, search_spec: dict | None = None) -> str:
        """The report's design (the study's cells and the sampler), written now if missing.

        Its name carries a digest of its content, so a changed design is a new input of the
        report (Snakemake reruns it) while a dry run of another config rewrites nothing that a
        finished run depends on. Written atomically: parallel parses (cluster jobs) agree.
        """
        spec = {"design": self.design.to_dict(), "sampling": sampler_description(self.config)}
        if "quality" in self.config:  # what the selection figure ranks by
            spec["quality"] = {k: v for k, v in self.config["quality"].items() if k != "batch_size"}
        if search_spec is not None:  # the auto search's (pipeline.dag.search.SearchPlan.spec)
            spec["search"] = search_spec
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(f"{self.out}/design/{digest}.json")
        if not path.exists():
            io.write_json(path, spec)
        return str(path)
