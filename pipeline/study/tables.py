"""Collecting evaluation results into the summary the report shows: per-seed rows, mean ± std
per cell, and the tables (accuracy by method × strategy, one per protocol, and one per sweep),
each method's row followed by its difference to `none` paired by seed and whether that is
beyond the seeds' spread (pipeline.study.stats), and the findings in sentences."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from pipeline.study.design import RANDOM_INIT, Design, format_value
from pipeline.study.stats import paired, t_interval

BASELINE = "none"  # the strategy every difference is taken to

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
        cell["top1_by_seed"] = [[r["seed"], r["top1"]] for r in rs]
        cells.append(cell)
    return cells


def by_cell(cells: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(c["method"], c["strategy"], c["protocol"]): c for c in cells}


def format_cell(cell: dict | None, key: str = "top1") -> str:
    if cell is None or f"{key}_mean" not in cell:
        return "–"
    if cell["n"] > 1 and cell[key + "_std"] == 0:  # a std of 0.00 would read as a measured spread
        return f"{cell[key + '_mean']:.2f} (n={cell['n']}, identical)"
    if cell["n"] > 1:
        return f"{cell[key + '_mean']:.2f} ± {cell[key + '_std']:.2f}"
    return f"{cell[key + '_mean']:.2f}"


def seed_values(cell: dict | None) -> dict:
    """{seed: top-1} of a cell."""
    return {seed: v for seed, v in cell.get("top1_by_seed", [])} if cell else {}


def difference(index: dict, method: str, strategy: str, protocol: str) -> dict | None:
    """`strategy` − none for one method and protocol, paired by seed (stats.paired)."""
    base = index.get((method, BASELINE, protocol))
    cell = index.get((method, strategy, protocol))
    if strategy == BASELINE or base is None or cell is None:
        return None
    return paired(seed_values(cell), seed_values(base))


def format_difference(d: dict | None, strategy: str) -> str:
    """A table entry: the mean paired difference and, in short, whether it is beyond the spread."""
    if strategy == BASELINE:
        return "baseline"
    if d is None:
        return "–"
    if d["n"] == 1:
        return f"{d['mean']:+.2f} (one seed: no spread)"
    if d["p"] is None:
        return f"{d['mean']:+.2f} (n={d['n']}, identical in every seed)"
    where = "beyond" if d["beyond"] else "within"
    return f"{d['mean']:+.2f} ({where} spread, p={d['p']:.2g})"


def _rows(design: Design, index: dict, strategies: list[str], protocol: str) -> list[list[str]]:
    """Per method, its cells, then (where `none` is in the study) its paired differences."""
    rows = []
    for m in design.methods:
        rows.append([m, *(format_cell(index.get((m, s, protocol))) for s in strategies)])
        diffs = [format_difference(difference(index, m, s, protocol), s) for s in strategies]
        if any(d not in ("baseline", "–") for d in diffs):
            rows.append([f"{m} − {BASELINE}", *diffs])
    return rows


def tables(design: Design, cells: list[dict]) -> list[dict]:
    """The report's tables as {title, note, header, rows} of strings."""
    index = by_cell(cells)
    seeds = len(design.seeds)
    spread = (f"mean ± std over {seeds} seeds; the − {BASELINE} rows: the mean difference "
              f"paired by seed, beyond or within the seeds' spread by a paired t-test's 95 % "
              f"interval" if seeds > 1 else "one seed: no spread measured")
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
            "rows": _rows(design, index, design.strategies, protocol),
        })
    headline = design.protocols[0]
    for sw in design.sweeps:
        out.append({
            "title": f"Sweep: {sw.strategy} with {sw.setting} varied ({headline} top-1 %)",
            "note": f"every other setting as in {sw.strategy}; {spread}.",
            "header": ["method", *(f"{sw.setting}={format_value(sw.setting, v)}"
                                   for v in sw.values)],
            "rows": _rows(design, index, sw.strategies, headline),
        })
    return out


def findings(design: Design, cells: list[dict]) -> list[str]:
    """The summary's sentences: per protocol and method, each strategy against none, whether
    beyond the seeds' spread, and the order of the means; where nothing is beyond it, that the
    protocol does not separate the strategies here."""
    index = by_cell(cells)
    lines = []
    for protocol in design.protocols:
        for m in design.methods:
            names = [s for s in design.strategies if (m, s, protocol) in index
                     and s != RANDOM_INIT]  # the untrained encoder: a floor, not a contender
            diffs = {s: difference(index, m, s, protocol) for s in names}
            diffs = {s: d for s, d in diffs.items() if d is not None}
            if not diffs:
                continue
            n = index[m, BASELINE, protocol]["n"]
            said = "; ".join(f"{s} − {BASELINE} {d['mean']:+.2f} points, {d['verdict']}"
                             for s, d in diffs.items())
            order = " > ".join(f"{s} {index[m, s, protocol]['top1_mean']:.2f}" for s in sorted(
                names, key=lambda s: -index[m, s, protocol]["top1_mean"]))
            line = f"- {protocol}, {m} ({n} seed{'s' * (n > 1)}): {said}. Means: {order}."
            if n > 1 and not any(d["beyond"] for d in diffs.values()):
                line += (f" No strategy differs from {BASELINE} beyond the seeds' spread: with "
                         f"these seeds the {protocol} protocol does not separate the strategies "
                         f"on this data.")
            elif n == 1:
                line += (" One seed measures no spread: a difference between single runs may be "
                         "the seed's or the CPU kernels' (docs/results.md), not the strategy's.")
            lines.append(line)
    return lines


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
    """The generator and its FID, with the protocol the figure follows (pipeline.fid)."""
    text = (f"Generator ({sampling['generator']}): {sampling['sampler']} sampler, "
            f"{sampling['steps']} steps, "
            + (f"guidance {sampling['guidance']}, " if "guidance" in sampling else "")
            + f"{sampling['precision']}, {sampling['num_images']} images. "
            f"{'FD-DINOv2' if fid['features'] == 'dinov2' else 'FID'} ({fid['features']} "
            f"features, {fid['num_generated']} generated vs "
            f"{fid['num_real']} real): {fid['fid']:.3f}")
    p, whole = fid.get("protocol"), fid.get("whole_set")
    if p and p["seed_sets"] > 1:
        text += f" (min of {p['seed_sets']} disjoint seed sets; mean {p['mean']:.3f})"
    if whole and whole["num_generated"] != fid["num_generated"]:
        text += f"; whole set of {whole['num_generated']}: {whole['fid']:.3f}"
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
    """The findings, the tables, then `extra` ones (the auto search's) and `notes` lines under
    them."""
    lines = ["# adainf-pipeline results", ""]
    found = findings(design, cells)
    if found:
        lines += ["## Finding", "", *found, ""]
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


def embedded_image(path: str | Path, alt: str) -> str:
    """An <img> holding the PNG itself (a data URI): the page stays one self-contained file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>"


def html_page(design: Design, cells: list[dict], fid: dict, sampling: dict,
              extra: list[dict] = (), selection: list[dict] = (), notes: list[str] = (),
              figures: list[tuple[str, str]] = ()) -> str:
    """A self-contained page (shown in Snakemake's report): the headline figure and the
    findings, the tables, `notes` (the search's rounds), the generator's FID, then the other
    `figures` ((alt text, PNG path); the first is the headline), every line summary.md has."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>adainf-pipeline results"
             "</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #999;padding:.25em .6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}.note{color:#555}"
             "img{max-width:100%;display:block;margin:.5em 0}</style></head><body>",
             "<h1>adainf-pipeline results</h1>"]
    figures = list(figures)
    if figures:
        parts.append(f"<figure id='headline'>{embedded_image(figures[0][1], figures[0][0])}"
                     f"<figcaption class='note'>{html.escape(figures[0][0])}</figcaption></figure>")
    found = findings(design, cells)
    if found:
        parts.append("<h2>Finding</h2><ul id='finding'>" + "".join(
            f"<li>{html.escape(x.removeprefix('- '))}</li>" for x in found) + "</ul>")
    for i, t in enumerate([*tables(design, cells), *extra]):
        table_id = "accuracy" if i == 0 else f"table-{i}"
        parts.append(f"<h2>{html.escape(t['title'])}</h2><table id='{table_id}'><thead><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
                     + "</tr></thead><tbody>")
        for row in t["rows"]:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append(f"</tbody></table><p class='note'>{html.escape(t['note'])}</p>")
    if notes:
        parts.append("<ul id='rounds'>" + "".join(
            f"<li>{html.escape(x.removeprefix('- '))}</li>" for x in notes) + "</ul>")
    parts.append(f"<h2>Generator</h2><p id='fid'>{html.escape(fid_line(fid, sampling))}</p>")
    if quality_line(fid):
        parts.append(f"<p id='quality'>{html.escape(quality_line(fid))}</p>")
    if selection:
        parts.append(f"<p id='selection'>{html.escape(selection_line(selection))}</p>")
    if len(figures) > 1:
        parts.append("<h2>Figures</h2>")
        parts += [f"<figure>{embedded_image(path, alt)}<figcaption class='note'>"
                  f"{html.escape(alt)}</figcaption></figure>" for alt, path in figures[1:]]
    parts.append("</body></html>")
    return "\n".join(parts)


def results_panels(design: Design, cells: list[dict]) -> list[dict]:
    """The headline figure's data (figures.save_results_figure): per protocol, per method, each
    strategy's per-seed top-1s, mean, t-interval and paired difference to none; random_init's
    mean as the floor."""
    index = by_cell(cells)
    panels = []
    for protocol in design.protocols:
        names = [s for s in design.strategies if s != RANDOM_INIT
                 and any((m, s, protocol) in index for m in design.methods)]
        methods = {}
        for m in design.methods:
            line = {}
            for s in names:
                cell = index.get((m, s, protocol))
                if cell is not None:
                    values = list(seed_values(cell).values())
                    line[s] = {"values": values, "mean": cell["top1_mean"],
                               "interval": t_interval(values),
                               "difference": difference(index, m, s, protocol)}
            if (m, RANDOM_INIT, protocol) in index:
                line[RANDOM_INIT] = index[m, RANDOM_INIT, protocol]["top1_mean"]
            methods[m] = line
        panels.append({"protocol": protocol, "title": f"{protocol} protocol", "strategies": names,
                       "methods": methods})
    return panels


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
