"""Collecting evaluation results into the summary the report shows: per-seed rows, mean ± std
per cell, and the tables (accuracy by method × strategy, one per protocol, and one per sweep)."""

from __future__ import annotations

import html

import numpy as np

from pipeline.study.design import Design, format_value

PROTOCOL_NAMES = {
    "online": "online linear probe, trained during pretraining (the paper's protocol)",
    "offline": "offline linear probe on the frozen encoder (SGD, crop + flip)",
    "features": "linear classifier on features computed once",
}


def collect_runs(results: list[dict]) -> list[dict]:
    """One row per evaluation (method, strategy, seed, protocol), in the order given."""
    rows = []
    for r in results:
        pre = r.get("pretrain", {})
        aug = (pre.get("augmentation_params") or [{}])[0]
        rows.append({
            "method": r["method"], "strategy": r["strategy"],
            "seed": pre.get("config", {}).get("seed"), "protocol": r["protocol"],
            "top1": r["top1"], "top5": r.get("top5"), "knn_top1": r.get("knn_top1"),
            "dup": pre.get("dup"), "num_real": pre.get("num_real"),
            "num_generated": pre.get("num_generated"), "augmentation": pre.get("augmentation"),
            "crop_min_scale": aug.get("crop_min_scale"), "steps": pre.get("config", {}).get("steps"),
            "real_fraction": pre.get("real_fraction"),
            # the online probe's result says which labels trained it; the others are real-only
            "generated_labels": r.get("generated_labels", "drop"),
            "num_labelled_generated": r.get("num_labelled_generated", 0),
        })
    return rows


def aggregate(runs: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds of each (method, strategy, protocol)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["strategy"], r["protocol"]), []).append(r)
    cells = []
    for (method, strategy, protocol), rs in groups.items():
        cell = {"method": method, "strategy": strategy, "protocol": protocol, "n": len(rs),
                "seeds": [r["seed"] for r in rs],
                "generated_labels": "keep" if any(r.get("generated_labels") == "keep"
                                                  for r in rs) else "drop",
                "num_labelled_generated": max(r.get("num_labelled_generated", 0) for r in rs)}
        for key in ("top1", "top5", "knn_top1"):
            values = [r[key] for r in rs if r.get(key) is not None]
            if values:
                cell[f"{key}_mean"] = float(np.mean(values))
                cell[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        cells.append(cell)
    return cells


def by_cell(cells: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(c["method"], c["strategy"], c["protocol"]): c for c in cells}


def format_cell(cell: dict | None, key: str = "top1") -> str:
    if cell is None or f"{key}_mean" not in cell:
        return "–"
    if cell["n"] > 1:
        return f"{cell[key + '_mean']:.2f} ± {cell[key + '_std']:.2f}"
    return f"{cell[key + '_mean']:.2f}"


def tables(design: Design, cells: list[dict]) -> list[dict]:
    """The report's tables as {title, note, header, rows} of strings."""
    index = by_cell(cells)
    seeds = len(design.seeds)
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    out = []
    for protocol in design.protocols:
        labels = _labels_note(protocol, [c for c in cells if c["protocol"] == protocol])
        no_probe = (" auto trains no online probe (it would read the test split while the "
                    "search chooses)." if protocol == "online" and design.auto else "")
        out.append({
            "title": f"Linear top-1 (%), {protocol} protocol",
            "note": f"{PROTOCOL_NAMES[protocol]}; {labels}; real test split, {spread}. "
                    "random_init is the same encoder before pretraining." + no_probe,
            "header": ["method", *design.strategies],
            "rows": [[m, *(format_cell(index.get((m, s, protocol))) for s in design.strategies)]
                     for m in design.methods],
        })
    headline = design.protocols[0]
    for sw in design.sweeps:
        out.append({
            "title": f"Sweep: {sw.strategy} with {sw.setting} varied ({headline} top-1 %)",
            "note": f"every other setting as in {sw.strategy}; {spread}.",
            "header": ["method", *(f"{sw.setting}={format_value(sw.setting, v)}"
                                   for v in sw.values)],
            "rows": [[m, *(format_cell(index.get((m, v, headline))) for v in sw.strategies)]
                     for m in design.methods],
        })
    return out


def _labels_note(protocol: str, cells: list[dict]) -> str:
    """Which labelled images trained the classifier of a protocol's table."""
    if protocol != "online" or not any(c.get("generated_labels") == "keep" for c in cells):
        return "trained on the real labelled images only"
    n = max(c.get("num_labelled_generated", 0) for c in cells)
    if n == 0:
        # keep asked for, but no generated image had a label to keep: an unconditional
        # generator's shards carry -1, which the probe ignores, so only real labels trained it
        return ("trained on the real labelled images only (generator.labels: keep, but no "
                "generated image carried a class label: an unconditional generator's are -1)")
    return (f"trained on the real labels and the generated images' own (generator.labels: keep, "
            f"as the authors' runs; up to {n} labelled generated images a cell)")


def fid_line(fid: dict, sampling: dict) -> str:
    text = (f"Generator ({sampling['generator']}): {sampling['sampler']} sampler, "
            f"{sampling['steps']} steps, "
            + (f"guidance {sampling['guidance']}, " if "guidance" in sampling else "")
            + f"{sampling['precision']}, {sampling['num_images']} images. "
            f"FID ({fid['features']} features, {fid['num_generated']} generated vs "
            f"{fid['num_real']} real): {fid['fid']:.3f}")
    if fid["features"] == "pixels":
        text += " (pixel-space Fréchet distance: not comparable with published FIDs)"
    return text


def quality_line(fid: dict) -> str:
    """The four generated-set metrics beside FID, labelled with their feature space."""
    q = fid.get("quality")
    if not q:
        return ""
    space = "pixel-space" if q["features"] == "pixels" else f"{q['features']}-feature"
    return (f"Generated-set quality ({space}, {q['num_generated']} generated vs {q['num_real']} "
            f"real, seeded subsets): precision {q['precision']:.3f}, recall {q['recall']:.3f} "
            f"(k={q['k_precision']}, Kynkäänniemi et al. 2019), density {q['density']:.3f}, "
            f"coverage {q['coverage']:.3f} (k={q['k_density']}, Naeem et al. 2020)")


def selection_rows(design: Design, total: int, score: str) -> list[dict]:
    """Each trained strategy (a sweep's included) that keeps part of the generated images by score."""
    from pipeline.evaluation.quality import keep_count

    return [{"strategy": name, "generated_keep": s["generated_keep"], "score": score,
             "kept": keep_count(total, s["generated_keep"]),
             "dropped": total - keep_count(total, s["generated_keep"])}
            for name, s in design.trained.items() if "generated_keep" in s]


def selection_line(rows: list[dict]) -> str:
    if not rows:
        return ""
    return "Selection by quality score: " + "; ".join(
        f"{r['strategy']} keeps {r['generated_keep']:g} ({r['kept']} kept, {r['dropped']} "
        f"dropped, best {r['score']} first)" for r in rows)


def markdown(design: Design, cells: list[dict], fid: dict, sampling: dict,
             extra: list[dict] = (), notes: list[str] = (), selection: list[dict] = ()) -> str:
    """The tables, then `extra` ones (the auto search's) and `notes` lines under them."""
    lines = ["# adainf-pipeline results", ""]
    for t in [*tables(design, cells), *extra]:
        lines += [f"## {t['title']}", "", "| " + " | ".join(t["header"]) + " |",
                  "|---" * len(t["header"]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in t["rows"]]
        lines += ["", t["note"], ""]
    if notes:
        lines += [*notes, ""]
    lines += ["## Generator", "", fid_line(fid, sampling), ""]
    lines += [x for line in (quality_line(fid), selection_line(selection)) if line
              for x in (line, "")]
    return "\n".join(lines)


def html_page(design: Design, cells: list[dict], fid: dict, sampling: dict,
              extra: list[dict] = (), selection: list[dict] = ()) -> str:
    """A self-contained page: the tables and the generator's FID (shown in Snakemake's report)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>adainf-pipeline results"
             "</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #999;padding:.25em .6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}.note{color:#555}</style></head><body>",
             "<h1>adainf-pipeline results</h1>"]
    for i, t in enumerate([*tables(design, cells), *extra]):
        table_id = "accuracy" if i == 0 else f"table-{i}"
        parts.append(f"<h2>{html.escape(t['title'])}</h2><table id='{table_id}'><thead><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
                     + "</tr></thead><tbody>")
        for row in t["rows"]:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append(f"</tbody></table><p class='note'>{html.escape(t['note'])}</p>")
    parts.append(f"<h2>Generator</h2><p id='fid'>{html.escape(fid_line(fid, sampling))}</p>")
    if quality_line(fid):
        parts.append(f"<p id='quality'>{html.escape(quality_line(fid))}</p>")
    if selection:
        parts.append(f"<p id='selection'>{html.escape(selection_line(selection))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def sweep_series(design: Design, cells: list[dict]) -> list[dict]:
    """Per sweep, per method: x values with mean and std of the headline protocol's top-1."""
    index = by_cell(cells)
    headline = design.protocols[0]
    out = []
    for sw in design.sweeps:
        lines = {}
        for m in design.methods:
            pts = [(x, index[m, v, headline]) for x, v in zip(sw.values, sw.strategies)
                   if (m, v, headline) in index]
            lines[m] = {"x": [x for x, _ in pts], "mean": [c["top1_mean"] for _, c in pts],
                        "std": [c["top1_std"] for _, c in pts]}
        out.append({"strategy": sw.strategy, "setting": sw.setting, "protocol": headline,
                    "seeds": len(design.seeds), "lines": lines})
    return out
