"""What a config's workflow reads from outside its `output_dir`: the external assets the fetch_*
rules fetch (a hub generator, CIFAR, the FID network's weights) and the user's own local inputs,
recorded by content so that the jobs reading them rerun when they change. Torch-free: the
Snakefile plans them on every parse.
"""

from __future__ import annotations

import os
from pathlib import Path

# pytorch-fid's weights file (pipeline.core.assets.FID_WEIGHTS_URL's name; torch-free here).
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


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


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (the Snakefile is torch-free): $TORCH_HOME/hub,
    TORCH_HOME defaulting to $XDG_CACHE_HOME/torch, that to ~/.cache/torch."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


class Inputs:
    """The inputs of one config's workflow from outside its `output_dir`."""

    def __init__(self, config: dict):
        self.config = config
        self.out = config["output_dir"].rstrip("/")

    def fetched(self) -> dict[str, dict]:
        """What rule fetch_ASSET fetches, for the assets that are not local already: {asset:
        {"out": where it goes, "record": its JSON record}}. A hub generator (not a folder), CIFAR
        with real.download, the FID network's weights when fid.weights is null."""
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

    def feature_weights(self) -> dict:
        """The fetched weights of fid.features' network ({} when local or pixels)."""
        found = self.fetched()
        return found.get("inception") or found.get("dinov2") or {}

    def fetch_records(self) -> list[str]:
        """The records of every fetched asset (the fetch rules' outputs)."""
        return [a["record"] for a in self.fetched().values()]

    def weights(self) -> str | None:
        """The weights fid_stats reads: fid.weights, else the file rule fetch_inception (or
        fetch_dinov2) made."""
        fetched = self.feature_weights()
        return fetched["out"] if fetched else self.config["fid"].get("weights")

    def real(self) -> list[str]:
        """prepare_real's: the fetch record when the data are downloaded (its files local), else
        the content records of the user's real data (records)."""
        fetched = self.fetched().get("real")
        if fetched:
            return [fetched["record"]]
        return [r for key, r in self.records().items() if key.startswith("real")]

    # --- the user's own inputs, by content ----------------------------------------------------
    def records(self) -> dict[str, str]:
        """{name: content record} of the local inputs whose content decides reruns: the real
        data (real.root, real.test) unless downloaded, a local generator folder, the generated
        npz files; each record is rewritten (records.input_record) only when the content
        changes, so that the jobs reading it rerun then."""
        c, out, fetched = self.config, {}, self.fetched()
        r, g = c["real"], c["generator"]
        if r["source"] != "digits" and "real" not in fetched:
            if r.get("root"):
                out["real"] = f"{self.out}/inputs/real.json"
            if r.get("test"):
                out["real_test"] = f"{self.out}/inputs/real_test.json"
        if g["source"] == "pretrained" and "generator" not in fetched:
            out["generator"] = f"{self.out}/inputs/generator.json"
        if g["source"] == "npz":
            out["generated_npz"] = f"{self.out}/inputs/generated_npz.json"
        return out

    def sources(self) -> dict[str, str]:
        """The path each input record describes."""
        c = self.config
        return {"real": c["real"]["root"], "real_test": c["real"].get("test"),
                "generator": c["generator"]["model"], "generated_npz": c["generator"]["path"]}

    def write_records(self) -> None:
        """Bring each input record up to date with its input's content (when the workflow is
        read, in the main process; a missing input is left to the config check and the job)."""
        from pipeline.core.records import input_record

        sources = self.sources()
        for name, record in self.records().items():
            if os.path.exists(os.path.expanduser(sources[name])):
                input_record(sources[name], record, f"{self.out}/.records/inputs.json")
