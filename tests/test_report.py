"""Tests of pipeline.study.tables and the report stage."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.core import io, records, runtime
from pipeline import report
from pipeline.study.curves import mean_curves
from pipeline.study.design import plan
from pipeline.study.tables import aggregate, collect_runs, html_page, markdown, sweep_series

CONFIG = {
    "strategies": {"none": {"dup": 1, "generated": False, "augmentation": "standard"},
                   "vanilla": {"dup": 1, "generated": True, "augmentation": "standard"},
                   "adainf": {"dup": 10, "generated": True, "augmentation": "weak"}},
    "experiments": {"methods": ["simclr", "byol"], "strategies": ["none", "vanilla", "adainf"],
                    "seeds": [0, 1],
                    "sweeps": [{"strategy": "adainf", "setting": "crop_min_scale",
                                "values": [0.08, 0.2, 0.5]}]},
    "linear_eval": {"protocols": ["online", "features"]},
}
DESIGN = plan(CONFIG)
SAMPLING = {"generator": "trained here", "sampler": "ddim", "steps": 25, "precision": "fp32",
            "num_images": 20, "seed": 0}
FID_PIXELS = {"fid": 12.3456, "features": "pixels", "num_generated": 20, "num_real": 10}
FID_INCEPTION = {"fid": 3.5, "features": "inception", "num_generated": 20, "num_real": 10}


def _result(method, strategy, seed, protocol, top1, dup=1, num_generated=0):
    r = {
        "method": method, "strategy": strategy, "protocol": protocol, "top1": top1,
        "top5": min(100.0, top1 + 20), "num_train": 10, "num_test": 5,
        "pretrain": {"dup": dup, "num_real": 10, "num_generated": num_generated,
                     "augmentation": "weak" if strategy.startswith("adainf") else "standard",
                     "augmentation_params": [{"crop_min_scale": 0.2}, {"crop_min_scale": 0.2}],
                     "config": {"steps": 7, "seed": seed}},
    }
    if protocol == "online":
        r["curve"] = [{"step": s, "top1": top1 * s / 5, "top5": top1} for s in (1, 3, 5)]
    else:
        r["knn_top1"] = top1 - 1
    return r


# simclr: none 40/42, vanilla 43/44, adainf 47/49 (online); byol only has seed 0 for none.
RESULTS = [
    _result("simclr", "none", 0, "online", 40.0), _result("simclr", "none", 1, "online", 42.0),
    _result("simclr", "vanilla", 0, "online", 43.0, num_generated=20),
    _result("simclr", "vanilla", 1, "online", 44.0, num_generated=20),
    _result("simclr", "adainf", 0, "online", 47.0, dup=10, num_generated=20),
    _result("simclr", "adainf", 1, "online", 49.0, dup=10, num_generated=20),
    _result("simclr", "adainf+crop_min_scale=0.08", 0, "online", 45.0, dup=10),
    _result("simclr", "adainf+crop_min_scale=0.08", 1, "online", 45.0, dup=10),
    _result("simclr", "adainf+crop_min_scale=0.5", 0, "online", 44.0, dup=10),
    _result("simclr", "random_init", 0, "features", 20.0),
    _result("simclr", "random_init", 1, "features", 22.0),
    _result("simclr", "none", 0, "features", 39.0),
    _result("byol", "none", 0, "online", 30.0),
]


def _rows(text, title):
    """The rows of the Markdown table under heading `title`."""
    block = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in block.splitlines() if line.startswith("|")]


def test_collect_runs_keeps_seed_protocol_and_settings():
    runs = collect_runs(RESULTS)
    assert len(runs) == len(RESULTS)
    adainf = runs[4]
    assert (adainf["method"], adainf["strategy"], adainf["seed"], adainf["protocol"]) == \
        ("simclr", "adainf", 0, "online")
    assert adainf["top1"] == 47.0 and adainf["top5"] == 67.0 and adainf["dup"] == 10
    assert adainf["crop_min_scale"] == 0.2 and adainf["steps"] == 7
    assert "pretrain" not in adainf and "curve" not in adainf


def test_aggregate_mean_and_sample_std_over_seeds():
    cells = {(c["method"], c["strategy"], c["protocol"]): c for c in aggregate(collect_runs(RESULTS))}
    adainf = cells["simclr", "adainf", "online"]
    assert adainf["n"] == 2 and adainf["seeds"] == [0, 1]
    assert adainf["top1_mean"] == pytest.approx(48.0)
    assert adainf["top1_std"] == pytest.approx(np.std([47.0, 49.0], ddof=1))
    assert cells["byol", "none", "online"]["n"] == 1
    assert cells["byol", "none", "online"]["top1_std"] == 0.0
    assert "knn_top1_mean" not in adainf and cells["simclr", "none", "features"]["knn_top1_mean"] == 38.0


def test_markdown_tables_per_protocol_and_sweep():
    text = markdown(DESIGN, aggregate(collect_runs(RESULTS)), FID_PIXELS, SAMPLING)
    header, sep, *body = _rows(text, "Linear top-1 (%), online protocol")
    assert header == ["method", "none", "vanilla", "adainf", "random_init"]
    assert set(sep) == {"---"} and len(sep) == 5
    assert body[0] == ["simclr", "41.00 ± 1.41", "43.50 ± 0.71", "48.00 ± 1.41", "–"]
    # the row's paired differences to none, in words: 2 seeds, +2/+1 (a spread), +7/+7 (none)
    assert body[1] == ["simclr − none", "baseline", "+2.50 (within spread, p=0.13)",
                       "+7.00 (n=2, identical in every seed)", "–"]
    assert body[2] == ["byol", "30.00", "–", "–", "–"]  # one seed: no ± ; missing cells marked
    assert len(body) == 3  # byol has no difference to show: no − none row
    features = _rows(text, "Linear top-1 (%), features protocol")
    assert features[2] == ["simclr", "39.00", "–", "–", "21.00 ± 1.41"]
    sweep = _rows(text, "Sweep: adainf with crop_min_scale varied (online top-1 %)")
    assert sweep[0] == ["method", "crop_min_scale=0.08", "crop_min_scale=0.2", "crop_min_scale=0.5"]
    # 0.2 is adainf's own crop scale: that value is the adainf cell itself
    # identical seeds are said so, not shown as a measured spread of ± 0.00
    assert sweep[2] == ["simclr", "45.00 (n=2, identical)", "48.00 ± 1.41", "44.00"]
    assert sweep[3] == ["simclr − none", "+4.00 (within spread, p=0.16)",
                        "+7.00 (n=2, identical in every seed)", "+4.00 (one seed: no spread)"]
    assert "± 0.00" not in text
    assert "mean ± std over 2 seeds" in text
    assert "pixel" in text and "12.346" in text and "ddim sampler, 25 steps" in text


def test_inception_fid_is_not_called_pixel():
    text = markdown(DESIGN, aggregate(collect_runs(RESULTS)), FID_INCEPTION, SAMPLING)
    assert "pixel" not in text and "inception" in text and "3.500" in text


def test_html_page_has_the_tables_escaped():
    page = html_page(DESIGN, aggregate(collect_runs(RESULTS)), FID_PIXELS, SAMPLING)
    assert page.count("<table") == 3 and "id='accuracy'" in page
    assert "<td>48.00 ± 1.41</td>" in page and "id='fid'" in page


def test_sweep_series_follow_the_sweep_values():
    (series,) = sweep_series(DESIGN, aggregate(collect_runs(RESULTS)))
    assert series["setting"] == "crop_min_scale" and series["protocol"] == "online"
    assert series["lines"]["simclr"]["x"] == [0.08, 0.2, 0.5]
    assert series["lines"]["simclr"]["mean"] == [45.0, 48.0, 44.0]
    assert series["lines"]["byol"]["x"] == []


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _write_history(path, scale):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "lr"])
        w.writeheader()
        w.writerows({"step": s, "loss": scale / s, "lr": 1e-3} for s in range(1, 6))


def _check_png(path, min_size=50):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) > min_size
        return im.size


def _report_argv(tmp_path) -> list[str]:
    """The report's command over a small study's results written in tmp_path."""
    files, histories = [], []
    for k, r in enumerate(RESULTS):
        path = tmp_path / "results" / f"{k}.json"
        io.write_json(path, r)
        files.append(str(path))
    for seed in (0, 1):
        for strategy in ("none", "adainf", "adainf+crop_min_scale=0.5"):
            h = tmp_path / "pretrain" / "simclr" / strategy / f"seed{seed}" / "history.csv"
            _write_history(h, 5.0 + seed)
            histories.append(str(h))
    io.write_json(tmp_path / "fid.json", FID_PIXELS)
    io.save_images(tmp_path / "train.npz", _images(20, 0), np.zeros(20, np.int64))
    io.save_images(tmp_path / "shard.npz", _images(70, 1), np.full(70, -1, np.int64))
    out = tmp_path / "report"
    design = str(tmp_path / "design.json")
    io.write_json(design, {"design": DESIGN.to_dict(), "sampling": SAMPLING})
    # a hub generator's fetch record: the commit sampled from is reported
    io.write_json(tmp_path / "generator.json", {"commit": "c0ffee" * 6 + "0123"})
    return ["--generator-record", str(tmp_path / "generator.json"), "--results", *files,
            "--histories", *histories, "--design", design,
            "--fid", str(tmp_path / "fid.json"), "--real", str(tmp_path / "train.npz"),
            "--generated", str(tmp_path / "shard.npz"), "--summary", str(out / "summary.json"),
            "--table", str(out / "summary.md"), "--page", str(out / "summary.html"),
            "--results-figure", str(out / "results.png"),
            "--results-svg", str(out / "results.svg"),
            "--samples", str(out / "samples.png"), "--losses", str(out / "losses.png"),
            "--online-curves", str(out / "online.png"),
            "--sweep-plots", str(out / "sweep.png")]


def test_report_main(tmp_path):
    report.main(_report_argv(tmp_path))
    out = tmp_path / "report"

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == len(RESULTS)
    assert summary["fid"] == FID_PIXELS
    assert summary["sampling"] == {**SAMPLING, "generator_commit": "c0ffee" * 6 + "0123",
                                   "generator": SAMPLING["generator"] + " at commit "
                                   + "c0ffee" * 6 + "0123"}
    assert "at commit c0ffee" in (out / "summary.md").read_text()
    assert {"method": "simclr", "strategy": "adainf", "protocol": "online"}.items() <= \
        next(c for c in summary["cells"] if c["strategy"] == "adainf").items()
    assert "| simclr | 41.00 ± 1.41 | 43.50 ± 0.71 | 48.00 ± 1.41 | – |" in (out / "summary.md").read_text()
    page = (out / "summary.html").read_text()
    assert "<table" in page and summary["findings"][0] in (out / "summary.md").read_text()
    # the page embeds the headline and every other figure: itself one file to pass around
    assert page.count("src='data:image/png;base64,") == 5 and "id='headline'" in page
    svg = (out / "results.svg").read_text()  # the report's landing page inlines it
    assert svg.count("<svg ") == 1 and '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="100%"' in svg
    for name in ("results.png", "losses.png", "online.png", "sweep.png"):
        _check_png(out / name)
    width, height = _check_png(out / "samples.png")
    assert height > width / 3  # two rows of grids, real above generated
    assert not list(out.glob(".*.tmp*"))


@pytest.mark.parametrize("damaged", ["results/0.json", "fid.json",
                                     "pretrain/simclr/none/seed0/history.csv"])
def test_the_report_stops_in_one_line_on_a_damaged_accuracy_fid_or_loss_curve(tmp_path,
                                                                               damaged):
    """pretrain's online.json (the headline's accuracy), fid.json and history.csv carry records
    (as the workflow makes them): a byte changed since is one line naming the file, before the
    report writes anything, and the file is moved aside for the next run to rebuild."""
    argv = _report_argv(tmp_path)
    path = tmp_path / damaged
    records.write(path)
    text = path.read_text()  # one digit changed: valid still, the same size, another number
    at = re.search(r"(?<=[\s,])\d", text).start()  # a value's first digit, not a key's
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:])
    with pytest.raises(SystemExit) as e:
        runtime.run(lambda: report.main(argv))
    (line,) = str(e.value).splitlines()
    assert f"{path} does not match its record" in line and "next run rebuilds it" in line
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert not (tmp_path / "report").exists()


def test_report_mean_curves_average_seeds_of_the_table_strategies():
    curves = {("simclr", "none"): [([1, 2, 3], [4.0, 2.0, 1.0]), ([1, 2, 3], [2.0, 2.0, 3.0])],
              ("simclr", "adainf+crop_min_scale=0.5"): [([1, 2], [1.0, 1.0])]}
    out = mean_curves(curves, ["none", "adainf"])
    assert list(out) == ["simclr/none (mean of 2)"]
    steps, values = out["simclr/none (mean of 2)"]
    assert steps == [1, 2, 3] and values.tolist() == [3.0, 2.0, 2.0]


def test_report_rejects_a_missing_sweep_plot(tmp_path):
    design = str(tmp_path / "design.json")
    io.write_json(design, {"design": DESIGN.to_dict(), "sampling": SAMPLING})
    with pytest.raises(SystemExit, match="1 sweeps"):
        report.main(["--results", "x.json", "--design", design, "--fid", "f", "--real", "r",
                     "--generated", "g", "--summary", "s", "--table", "t", "--page", "p", "--results-figure", "h",
                     "--results-svg", "h.svg",
                     "--samples", "a", "--losses", "l", "--histories", "--sweep-plots"])


def _search_rounds():
    """A 4 → 2 → 1 search: round 0 at step 5 keeps b and c, round 1 at step 8 keeps c."""
    return [
        {"method": "simclr", "seed": 0, "round": 0, "step": 5, "score": "k-NN top-1",
         "scores": {"a": 50.0, "b": 60.0, "c": 55.0, "d": 40.0},
         "survivors": ["b", "c"], "cut": ["a", "d"]},
        {"method": "simclr", "seed": 0, "round": 1, "step": 8, "score": "k-NN top-1",
         "scores": {"b": 61.0, "c": 66.0}, "survivors": ["c"], "cut": ["b"]},
    ]


SEARCH_SPEC = {"candidates": {n: {"generated": n in "cd", "dup": 3, "augmentation": "standard",
                                  "crop_min_scale": 0.2, "jitter_strength": 1.0} for n in "abcd"},
               "schedule": {"steps": [5, 8, 12], "survivors": [4, 2, 1], "cost_steps": 30,
                            "cost_full_runs": 2.5},
               "eta": 2, "budget": 2.5, "val_fraction": 0.2, "knn_k": 20}


def test_the_report_shows_the_search_and_auto_beside_the_fixed_strategies(tmp_path):
    from pipeline.study.figures import save_search_plot
    from pipeline.search.summary import round_lines, search_table, searches

    # in the list of rounds in any order: sorted by round
    (found,) = searches(list(reversed(_search_rounds())), SEARCH_SPEC)
    assert found["winner"] == "c" and found["settings"]["generated"] is True
    assert found["curves"]["c"] == {"steps": [5, 8], "scores": [55.0, 66.0], "cut_in": None}
    assert found["curves"]["a"]["cut_in"] == 0 and found["curves"]["b"]["cut_in"] == 1
    table = search_table([found], SEARCH_SPEC)
    assert table["rows"] == [["simclr", "0", "c", "True", "3", "standard", "0.2", "1.0", "66.00"]]
    assert "30 pretraining steps = 2.50 full runs (budget 2.5)" in table["note"]
    assert "4 to step 5, 2 to step 8, 1 to step 12" in table["note"]
    lines = round_lines([found])
    assert lines[0] == "- simclr seed 0, round 0 (step 5): kept b, c; cut a, d"

    design = plan({**CONFIG, "experiments": {**CONFIG["experiments"],
                                             "strategies": ["none", "adainf", "auto"]}})
    results = RESULTS + [_result("simclr", "auto", s, "features", 50.0 + s) for s in (0, 1)]
    text = markdown(design, aggregate(collect_runs(results)), FID_PIXELS, SAMPLING, [table], lines)
    assert _rows(text, "Linear top-1 (%), features protocol")[2] == \
        ["simclr", "39.00", "–", "50.50 ± 0.71", "21.00 ± 1.41"]
    assert "auto trains no online probe" in text and lines[1] in text
    save_search_plot(tmp_path / "search.png", [found])
    _check_png(tmp_path / "search.png")


def test_every_protocol_table_says_which_labels_trained_its_classifier():
    """generator.labels keep shows in the online table (the probe trained on generated labels);
    the offline and features tables stay real-only; drop says real-only everywhere."""
    def note(results, protocol):
        from pipeline.study.tables import tables

        (t,) = [t for t in tables(DESIGN, aggregate(collect_runs(results)))
                if t["title"] == f"Linear top-1 (%), {protocol} protocol"]
        return t["note"]

    assert "real labelled images only" in note(RESULTS, "online")
    kept = [dict(r, generated_labels="keep", num_labelled_generated=20)
            if r["protocol"] == "online" and r["strategy"] == "vanilla" else r for r in RESULTS]
    assert "generator.labels: keep" in note(kept, "online")
    assert "up to 20 labelled generated images" in note(kept, "online")
    assert "real labelled images only" in note(kept, "features")
    # keep with an unconditional generator: every generated label is -1, none trained the probe
    unlabelled = [dict(r, num_labelled_generated=0) for r in kept]
    assert "real labelled images only" in note(unlabelled, "online")
    assert "generator.labels: keep" in note(unlabelled, "online")
    assert "up to 0" not in note(unlabelled, "online")


def test_the_fid_line_states_the_protocol_and_the_feature_space():
    from pipeline.study.tables import fid_line

    sampling = {"generator": "g", "sampler": "edm", "steps": 18, "precision": "bf16",
                "num_images": 1000000}
    fid = {"fid": 2.0, "features": "inception", "num_generated": 50000, "num_real": 50000,
           "protocol": {"seed_sets": 3, "mean": 2.1},
           "whole_set": {"fid": 1.5, "num_generated": 1000000}}
    line = fid_line(fid, sampling)
    assert "FID (inception features, 50000 generated vs 50000 real): 2.000" in line
    assert "(min of 3 disjoint seed sets; mean 2.100); whole set of 1000000: 1.500" in line
    one = {**fid, "features": "dinov2", "protocol": {"seed_sets": 1, "mean": 2.0},
           "whole_set": {"fid": 2.0, "num_generated": 50000}}
    assert fid_line(one, sampling).endswith("FD-DINOv2 (dinov2 features, 50000 generated vs "
                                            "50000 real): 2.000")
