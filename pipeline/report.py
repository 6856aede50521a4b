r"""python -m pipeline.report --results results/pretrain/simclr/none/seed0/online.json \
    results/pretrain/simclr/adainf/seed0/online.json --histories \
    results/pretrain/simclr/none/seed0/history.csv \
    results/pretrain/simclr/adainf/seed0/history.csv \
    --design results/design/4b65d2e4b7b20a2f.json --fid results/fid.json \
    --real results/real/train.npz --generated results/samples/shard_00000.json \
    --summary results/reports/default/summary.json --table results/reports/default/summary.md \
    --page results/reports/default/summary.html \
    --results-figure results/reports/default/results.png \
    --results-svg results/reports/default/results.svg \
    --samples results/reports/default/samples.png --losses results/reports/default/losses.png \
    --sweep-plots

Stage: the summary (JSON, Markdown, an HTML page) and the figures of a whole study.

Figures: the headline (top-1 per strategy and protocol, every seed a dot, the mean with its
95 % t-interval, and the paired difference to none), real vs generated samples, pretraining loss and online-probe accuracy curves (mean over
seeds, the table's strategies), accuracy against each swept setting, and the auto search's
candidates' scores against steps.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from pipeline.core import cli, io, records, runtime
from pipeline.data.dataset import load_npz_or_shard, recorded_sampling
from pipeline.study.curves import loss_curves, mean_curves, online_curves
from pipeline.study.design import Design
from pipeline.vocab import options
from pipeline.evaluation.quality import load_scores, ranking
from pipeline.study.figures import (save_curves_plot, save_results_figure, save_samples_figure,
                                    save_search_plot, save_selection_figure, save_sweep_plot)
from pipeline.search.summary import round_lines, search_table, searches
from pipeline.study.tables import (aggregate, collect_runs, findings, html_page, markdown,
                                   results_panels, selection_rows, sweep_series)

log = logging.getLogger("pipeline.report")


def build_parser() -> argparse.ArgumentParser:
    return cli.add_options(cli.parser(__doc__), options.REPORT)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args, uses_torch=False)

    spec = io.read_json(args.design)
    design, sampling = Design.from_dict(spec["design"]), spec["sampling"]
    if args.generator_record:  # the revision sampled from, pinned by the fetch
        commit = io.read_json(args.generator_record)["commit"]
        sampling = {**sampling, "generator": f"{sampling['generator']} at commit {commit}",
                    "generator_commit": commit}
    sampling = {**sampling, **recorded_sampling(args.shards)}  # as made, not as configured
    if len(args.sweep_plots) != len(design.sweeps):
        raise SystemExit(f"--sweep-plots has {len(args.sweep_plots)} files for "
                         f"{len(design.sweeps)} sweeps")
    for history in args.histories:  # read last (the loss figure): checked before any output
        records.verify(history)
    results = [io.read_output_json(f) for f in args.results]
    runs = collect_runs(results)
    cells = aggregate(runs)
    fid = io.read_output_json(args.fid)
    found, extra, notes = [], [], []
    if "search" in spec:
        found = searches([io.read_json(f) for f in args.search_rounds], spec["search"])
        extra, notes = [search_table(found, spec["search"])], round_lines(found)
    score = spec.get("quality", {}).get("score")
    selection, scores = [], None
    if args.scores and score:
        scores = load_scores(args.scores, score)
        selection = selection_rows(design, len(scores), score)
    io.write_json(args.summary, {"runs": runs, "cells": cells, "findings": findings(design, cells),
                                 "fid": fid, "sampling": sampling,
                                 "design": design.to_dict(), "searches": found,
                                 "search": spec.get("search"),
                                 **({"quality": fid["quality"]} if "quality" in fid else {}),
                                 **({"selection": selection} if scores is not None else {})})
    records.write(args.summary, {"--design": [args.design]}, shards=len(args.shards))
    table = markdown(design, cells, fid, sampling, extra, notes, selection)
    with io.atomic_path(args.table) as tmp:
        tmp.write_text(table)
    save_results_figure(args.results_figure, results_panels(design, cells), len(design.seeds),
                        svg=args.results_svg)
    figures = save_figures(args, design, cells, results, found, selection, scores, score, fid)
    with io.atomic_path(args.page) as tmp:  # last: it embeds the figures
        tmp.write_text(html_page(design, cells, fid, sampling, extra, selection, notes, figures))
    print(table)


def save_figures(args, design, cells, results, found, selection, scores, score, fid) -> list:
    """Every figure but the headline; [(caption, path)] of the headline and these, for the page."""
    figures = [("Top-1 per strategy and protocol: every seed a dot, the mean with its 95 % "
                "t-interval; below, each strategy minus none paired by seed (green: beyond the "
                "seeds' spread)", args.results_figure)]
    if args.selection:
        if scores is None:
            raise SystemExit("--selection needs --scores and a design file with quality.score")
        save_selection(args.selection, args.shards, scores, score, fid.get("quality", {}),
                       [r["generated_keep"] for r in selection])
    real, _ = io.load_images(args.real)
    generated, _ = load_npz_or_shard(args.generated)
    save_samples_figure(args.samples, real, generated)
    save_curves_plot(args.losses, mean_curves(loss_curves(args.histories), design.strategies),
                     "loss", "pretraining loss")
    figures.append(("Pretraining loss (mean over seeds)", args.losses))
    if args.online_curves:
        save_curves_plot(args.online_curves, mean_curves(online_curves(results), design.strategies),
                         "test top-1 %", "online linear probe")
        figures.append(("Online probe's test top-1 during pretraining (mean over seeds)",
                        args.online_curves))
    for path, series in zip(args.sweep_plots, sweep_series(design, cells)):
        save_sweep_plot(path, series)
        figures.append((f"Sweep: {series['strategy']}, {series['setting']}", path))
    if args.search_plot:
        save_search_plot(args.search_plot, found)
        figures.append(("The auto search's candidates' scores", args.search_plot))
    figures.append(("Real (top) and generated (bottom) images", args.samples))
    if args.selection:
        figures.append(("Generated images by quality score", args.selection))
    return figures


def save_selection(path: str, shards: list[str], scores, score: str, quality: dict,
                   keeps: list[float], n: int = 32) -> None:
    """The n best and n worst generated images by score, read from the shards holding them."""
    order = ranking(scores)
    n = min(n, len(order) // 2) or 1
    best, worst = order[:n], order[::-1][:n]  # worst first on the right
    wanted = np.unique(np.concatenate([best, worst]))
    images, offset = {}, 0
    for manifest in shards:
        count = io.read_json(manifest)["count"]
        inside = wanted[(wanted >= offset) & (wanted < offset + count)]
        if len(inside):
            x, _ = load_npz_or_shard(manifest)
            images.update({int(i): x[i - offset] for i in inside})
        offset += count
    missing = [int(i) for i in wanted if int(i) not in images]
    if missing:
        raise SystemExit(f"--shards hold {offset} images; scored image {missing[0]} is not among them")
    save_selection_figure(path, np.stack([images[int(i)] for i in best]),
                          np.stack([images[int(i)] for i in worst]), score,
                          quality.get("features", ""), keeps)


if __name__ == "__main__":
    runtime.run(main)
