"""Collecting run results into the summary that the report shows."""

from __future__ import annotations


def collect_runs(results: list[dict]) -> list[dict]:
    """One row per (method, strategy), in the order given."""
    keep = ("method", "strategy", "linear_top1", "protocol")
    rows = []
    for r in results:
        row = {k: r[k] for k in keep}
        row["knn_top1"] = r.get("knn_top1")
        pre = r.get("pretrain", {})
        row.update({
            "dup": pre.get("dup"), "num_real": pre.get("num_real"),
            "num_generated": pre.get("num_generated"), "augmentation": pre.get("augmentation"),
            "steps": pre.get("config", {}).get("steps"),
        })
        rows.append(row)
    return rows


def markdown_table(runs: list[dict], fid: dict) -> str:
    strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    acc = {(r["method"], r["strategy"]): r["linear_top1"] for r in runs}
    lines = [
        "# Linear evaluation (top-1 %, real test split)",
        "",
        "| method | " + " | ".join(strategies) + " |",
        "|---" * (len(strategies) + 1) + "|",
    ]
    for m in methods:
        cells = [f"{acc[m, s]:.2f}" if (m, s) in acc else "–" for s in strategies]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    protocols = sorted({r["protocol"] for r in runs})
    lines += [
        "",
        f"Protocol: {', '.join(protocols)}. `random_init` is the same encoder before pretraining.",
        "",
        f"Generator FID ({fid['features']} features, {fid['num_generated']} generated vs "
        f"{fid['num_real']} real): {fid['fid']:.3f}"
        + ("  (pixel-space Fréchet distance: not comparable with published FIDs)"
           if fid["features"] == "pixels" else ""),
        "",
    ]
    return "\n".join(lines)
