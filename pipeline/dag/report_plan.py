"""The report's plan: how it states the sampler, and its design file, the one file written while
the workflow is read (the report's input that changes when the study's cells, the sampler or the
search change). Torch-free."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.core import io
from pipeline.dag.paths import WorkflowPaths


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


def design_file(paths: WorkflowPaths, search_spec: dict | None = None) -> str:
    """The report's design (the study's cells and the sampler), written now if missing.

    Its name carries a digest of its content, so a changed design is a new input of the
    report (Snakemake reruns it) while a dry run of another config rewrites nothing that a
    finished run depends on. Written atomically: parallel parses (cluster jobs) agree.
    """
    config = paths.config
    spec = {"design": paths.design.to_dict(), "sampling": sampler_description(config)}
    if "quality" in config:  # what the selection figure ranks by
        spec["quality"] = {k: v for k, v in config["quality"].items() if k != "batch_size"}
    if search_spec is not None:  # the auto search's (pipeline.dag.search_plan.SearchPlan.spec)
        spec["search"] = search_spec
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(f"{paths.design_folder()}/{digest}.json")
    if not path.exists():
        io.write_json(path, spec)
    return str(path)
