"""Figures for the report: image grids, training curves and sweep plots."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import numpy as np

from pipeline.core import io
from pipeline.study.design import AXIS_LABELS, format_value


def image_grid(images: np.ndarray, ncol: int = 16, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile uint8 N×H×W×3 images into one uint8 image, `ncol` per row, white padding."""
    n, h, w, c = images.shape
    nrow = -(-n // ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for k, img in enumerate(images):
        r, q = divmod(k, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = img
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters or CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    _pyplot().close(fig)


def save_curves_plot(path: str | Path, curves: dict[str, tuple[list, list]], ylabel: str,
                     title: str) -> None:
    """One line per name: (steps, values)."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    _save(fig, path)


def save_sweep_plot(path: str | Path, series: dict) -> None:
    """Top-1 against the swept setting, one line per method, error bars = std over seeds."""
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    for method, line in series["lines"].items():
        ax.errorbar(line["x"], line["mean"], yerr=line["std"] if series["seeds"] > 1 else None,
                    marker="o", capsize=3, label=method)
    if series["setting"] in ("dup", "num_generated"):  # counts: equal ratios, equal steps
        ax.set_xscale("log")
    xs = sorted({x for line in series["lines"].values() for x in line["x"]})
    ax.minorticks_off()
    ax.set_xticks(xs, [format_value(series["setting"], x) for x in xs])
    ax.set_xlabel(AXIS_LABELS.get(series["setting"], series["setting"]))
    ax.set_ylabel(f"top-1 % ({series['protocol']})")
    spread = f"mean ± std, {series['seeds']} seeds" if series["seeds"] > 1 else "one seed"
    ax.set_title(f"{series['strategy']}: accuracy vs {series['setting']} ({spread})", fontsize=10)
    ax.legend(fontsize="small")
    _save(fig, path)


def save_samples_figure(path: str | Path, real: np.ndarray, generated: np.ndarray,
                        n: int = 64) -> None:
    """Real images (top) and generated ones (bottom), titled."""
    fig, axes = _pyplot().subplots(2, 1, figsize=(8, 4.6))
    for ax, images, title in zip(axes, (real, generated), ("real (training split)", "generated")):
        ax.imshow(image_grid(images[:n], ncol=16), interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    _save(fig, path)


def save_search_plot(path: str | Path, found: list[dict]) -> None:
    """Per search (method, seed): every candidate's validation score at each round's step, a
    cross where it was cut, the rounds' steps dotted, the winner in bold."""
    plt = _pyplot()
    n = max(1, len(found))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, f in zip(axes[0], found):
        for step in f["round_steps"]:
            ax.axvline(step, color="0.8", ls=":", lw=1)
        for name, c in f["curves"].items():
            won = name == f["winner"]
            ax.plot(c["steps"], c["scores"], marker="o", ms=3, lw=2 if won else 0.8,
                    alpha=1 if won else 0.5, color="C3" if won else None,
                    label=f"winner: {name}" if won else None)
            if c["cut_in"] is not None:
                ax.plot(c["steps"][-1], c["scores"][-1], marker="x", color="k", ms=5)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(f["round_steps"], [str(s) for s in f["round_steps"]])
        ax.set_xlabel("pretraining step (log)")
        ax.set_ylabel("k-NN val top-1 %")
        ax.set_title(f"{f['method']}, seed {f['seed']}", fontsize=10)
        ax.legend(fontsize="x-small")
    _save(fig, path)


def save_selection_figure(path: str | Path, best: np.ndarray, worst: np.ndarray, score: str,
                          features: str, keeps: list[float] = ()) -> None:
    """The generated images with the highest quality score (kept first) beside those with the
    lowest (dropped first), each grid in rank order."""
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 3.4))
    space = " (pixel space)" if features == "pixels" else ""
    cut = f"; generated_keep {', '.join(f'{k:g}' for k in keeps)}" if keeps else ""
    for ax, images, title in zip(axes, (best, worst),
                                 (f"best by {score}: kept", f"worst by {score}: dropped")):
        ax.imshow(image_grid(images, ncol=8), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"generated images ranked by their {score} score{space}{cut}", fontsize=10)
    _save(fig, path)


def save_results_figure(path: str | Path, panels: list[dict], seeds: int,
                        svg: str | Path | None = None) -> None:
    """The headline: per protocol (a column), top-1 of each strategy with every seed a dot and
    the mean with its 95 % t-interval (top row), and each strategy's difference to none paired by
    seed, the interval green where it excludes 0 (bottom row). `panels`: results_panels'."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(panels), figsize=(max(6.4, 4.4 * len(panels)), 7.4),
                             squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for col, panel in enumerate(panels):
        _accuracy_panel(axes[0, col], panel)
        _difference_panel(axes[1, col], panel)
    axes[0, 0].set_ylabel("test top-1 %")
    axes[1, 0].set_ylabel("difference to none, points")
    how = (f"{seeds} seeds: a dot per seed; bar: the mean and its 95 % t-interval;\n"
           "below: paired by seed, green where the interval excludes 0" if seeds > 1
           else "one seed: no spread measured")
    fig.suptitle(f"Linear top-1 by strategy\n{how}", fontsize=10)
    fig.tight_layout()
    if svg is not None:  # a copy the Snakemake report's landing page inlines (workflow.rst)
        buf = StringIO()
        # no date and fixed element ids: the same results give the same file on every machine
        with plt.rc_context({"svg.hashsalt": "adainf"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        # sized to the page's column (a size in points would overflow it)
        text = re.sub(r'<svg (.*?)width="[^"]*" height="[^"]*"', r'<svg \1width="100%"',
                      buf.getvalue(), count=1, flags=re.S)
        with io.atomic_path(svg) as tmp:
            tmp.write_text(text)
    _save(fig, path)


def _spread_bar(ax, x: float, mean: float, interval, color) -> None:
    if interval is not None:
        ax.errorbar(x, mean, yerr=[[mean - interval[0]], [interval[1] - mean]], fmt="none",
                    ecolor=color, elinewidth=2, capsize=6, zorder=3)
    ax.plot([x - 0.22, x + 0.22], [mean, mean], color=color, lw=2.5, zorder=4)


def _accuracy_panel(ax, panel: dict) -> None:
    names = panel["strategies"]
    for k, (method, line) in enumerate(panel["methods"].items()):
        shift = (k - (len(panel["methods"]) - 1) / 2) * 0.3
        for i, s in enumerate(names):
            entry = line.get(s)
            if entry is None:
                continue
            x = i + shift
            vals = entry["values"]
            ax.scatter(x + np.linspace(-0.08, 0.08, len(vals)) if len(vals) > 1 else [x], vals,
                       s=22, color=f"C{k}", alpha=0.75, zorder=5,
                       label=method if i == 0 else None)
            _spread_bar(ax, x, entry["mean"], entry["interval"], "k")
            ax.annotate(f"{entry['mean']:.1f}", (x + 0.25, entry["mean"]), fontsize=8,
                        va="center")
    # the untrained encoder's top-1 in words: as a line it would squeeze the strategies together
    floors = [f"{m} {line['random_init']:.1f}" if len(panel["methods"]) > 1
              else f"{line['random_init']:.1f}"
              for m, line in panel["methods"].items() if "random_init" in line]
    floor = f"\nrandom_init (untrained): {', '.join(floors)}" if floors else ""
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.6, len(names) - 0.1)
    ax.set_title(panel["title"] + floor, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(panel["methods"]) > 1:
        ax.legend(fontsize="x-small")


def _difference_panel(ax, panel: dict) -> None:
    names = [s for s in panel["strategies"] if s != "none"]
    ax.axhline(0, color="0.3", lw=1)
    for k, (method, line) in enumerate(panel["methods"].items()):
        shift = (k - (len(panel["methods"]) - 1) / 2) * 0.3
        for i, s in enumerate(names):
            d = line.get(s, {}).get("difference")
            if d is None:
                continue
            x = i + shift
            ax.scatter(x + np.linspace(-0.08, 0.08, d["n"]) if d["n"] > 1 else [x], d["diffs"],
                       s=18, color=f"C{k}", alpha=0.75, zorder=5)
            color = "tab:green" if d["beyond"] else "0.45"
            _spread_bar(ax, x, d["mean"], d["interval"], color)
            word = (f"{'beyond' if d['beyond'] else 'within'} spread\np={d['p']:.2g}"
                    if d["p"] is not None
                    else "1 seed" if d["n"] == 1 else "no spread")
            ax.annotate(f"{d['mean']:+.1f}\n{word}", (x + 0.25, d["mean"]), fontsize=7,
                        va="center", color=color)
    ax.set_xticks(range(len(names)), [f"{s}\n− none" for s in names])
    ax.set_xlim(-0.6, len(names) - 0.1)
    ax.grid(axis="y", alpha=0.3)
