"""Tests of pipeline.summary and the report stage."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from pipeline import io, report
from pipeline.summary import collect_runs, markdown_table


def _result(method, strategy, top1, dup=1, num_generated=0):
    return {
        "method": method, "strategy": strategy, "linear_top1": top1, "protocol": "features",
        "train_top1": 99.0, "num_train": 10, "num_test": 5, "epochs": 3,
        "pretrain": {"dup": dup, "num_real": 10, "num_generated": num_generated,
                     "augmentation": "weak" if strategy == "adainf" else "standard",
                     "config": {"steps": 7}},
    }


RESULTS = [
    _result("simclr", "none", 41.25),
    _result("simclr", "vanilla", 43.5, num_generated=20),
    _result("simclr", "adainf", 47.125, dup=10, num_generated=20),
    _result("simclr", "random_init", 20.0),
]
FID_PIXELS = {"fid": 12.3456, "features": "pixels", "num_generated": 20, "num_real": 10}
FID_INCEPTION = {"fid": 3.5, "features": "inception", "num_generated": 20, "num_real": 10}


def test_collect_runs():
    runs = collect_runs(RESULTS)
    assert [(r["method"], r["strategy"]) for r in runs] == [
        ("simclr", "none"), ("simclr", "vanilla"), ("simclr", "adainf"), ("simclr", "random_init")]
    adainf = runs[2]
    assert adainf["linear_top1"] == 47.125 and adainf["dup"] == 10
    assert adainf["num_generated"] == 20 and adainf["augmentation"] == "weak"
    assert adainf["steps"] == 7 and adainf["protocol"] == "features"
    assert "pretrain" not in adainf and "train_top1" not in adainf


def _table_rows(table):
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|")]


def test_markdown_table_one_row_per_method_one_column_per_strategy():
    runs = collect_runs(RESULTS + [_result("byol", "none", 30.0)])
    table = markdown_table(runs, FID_PIXELS)
    header, sep, *body = _table_rows(table)
    assert header == ["method", "none", "vanilla", "adainf", "random_init"]
    assert set(sep) == {"---"} and len(sep) == 5
    assert [row[0] for row in body] == ["simclr", "byol"]
    assert body[0][1:] == ["41.25", "43.50", "47.12", "20.00"]
    assert body[1][1] == "30.00" and body[1][2:] == ["–"] * 3  # missing runs are marked
    assert "pixel" in table
    assert "12.346" in table


def test_markdown_table_inception_does_not_say_pixel():
    table = markdown_table(collect_runs(RESULTS), FID_INCEPTION)
    assert "pixel" not in table
    assert "inception" in table and "3.500" in table


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_report_main(tmp_path):
    linear_files, histories = [], []
    for r in RESULTS:
        path = tmp_path / "linear" / r["method"] / f"{r['strategy']}.json"
        io.write_json(path, r)
        linear_files.append(str(path))
        if r["strategy"] != "random_init":
            hist = tmp_path / "pretrain" / r["method"] / r["strategy"] / "history.csv"
            hist.parent.mkdir(parents=True)
            with open(hist, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["step", "loss", "lr"])
                w.writeheader()
                w.writerows({"step": s, "loss": 5.0 / s, "lr": 1e-3} for s in range(1, 6))
            histories.append(str(hist))
    io.write_json(tmp_path / "fid.json", FID_PIXELS)
    io.save_images(tmp_path / "train.npz", _images(20, 0), np.zeros(20, np.int64))
    io.save_images(tmp_path / "shard.npz", _images(70, 1), np.full(70, -1, np.int64))
    out = tmp_path / "report"
    report.main(["--linear", *linear_files, "--histories", *histories,
                 "--fid", str(tmp_path / "fid.json"), "--real", str(tmp_path / "train.npz"),
                 "--generated", str(tmp_path / "shard.npz"), "--summary", str(out / "summary.json"),
                 "--table", str(out / "summary.md"), "--samples", str(out / "samples.png"),
                 "--losses", str(out / "losses.png")])

    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(summary["runs"], list) and len(summary["runs"]) == 4
    for run, r in zip(summary["runs"], RESULTS):
        assert (run["method"], run["strategy"], run["linear_top1"]) == \
            (r["method"], r["strategy"], r["linear_top1"])
    assert summary["fid"] == FID_PIXELS
    table = (out / "summary.md").read_text()
    assert "| simclr | 41.25 | 43.50 | 47.12 | 20.00 |" in table
    assert "pixel" in table
    for name in ("samples.png", "losses.png"):
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50
    with Image.open(out / "samples.png") as im:
        assert im.size[1] > im.size[0] / 3  # two rows of grids, real above generated
    assert not list(out.glob(".*.tmp*"))
