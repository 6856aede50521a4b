"""Stage: summary JSON, Markdown table, sample grid and loss curves of all runs."""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path


from pipeline import io, runtime
from pipeline.figures import save_loss_plot, save_samples_figure
from pipeline.summary import collect_runs, markdown_table

log = logging.getLogger("pipeline.report")


def read_losses(path: str) -> list[float]:
    with open(path) as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--linear", nargs="+", required=True, help="linear_eval JSON files")
    p.add_argument("--histories", nargs="*", default=[], help="pretrain loss curves (.csv)")
    p.add_argument("--fid", required=True)
    p.add_argument("--real", required=True, help="real training images (npz)")
    p.add_argument("--generated", required=True, help="a generated shard (npz)")
    p.add_argument("--summary", required=True, help="summary JSON")
    p.add_argument("--table", required=True, help="summary Markdown")
    p.add_argument("--samples", required=True, help="PNG: real (top) vs generated (bottom)")
    p.add_argument("--losses", required=True, help="PNG of the loss curves")
    args = p.parse_args(argv)
    runtime.setup(args)

    runs = collect_runs([io.read_json(f) for f in args.linear])
    fid = io.read_json(args.fid)
    io.write_json(args.summary, {"runs": runs, "fid": fid})
    table = markdown_table(runs, fid)
    with io.atomic_path(args.table) as tmp:
        tmp.write_text(table)
    real, _ = io.load_images(args.real)
    generated, _ = io.load_images(args.generated)
    save_samples_figure(args.samples, real, generated)
    curves = {f"{Path(h).parent.parent.name}/{Path(h).parent.name}": read_losses(h)
              for h in args.histories}
    save_loss_plot(args.losses, curves, "pretraining loss")
    print(table)


if __name__ == "__main__":
    main()
