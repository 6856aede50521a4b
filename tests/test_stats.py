"""The seeds' spread in numbers and words (pipeline.study.stats), the findings built on it, the
headline figure and the summary page that embeds it (pipeline.study.tables, .figures)."""

from __future__ import annotations

import html

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from pipeline.study.design import plan
from pipeline.study.figures import save_results_figure
from pipeline.study.stats import paired, t_interval
from pipeline.study.tables import aggregate, findings, html_page, markdown, results_panels

CONFIG = {
    "strategies": {"none": {"dup": 1, "generated": False, "augmentation": "standard"},
                   "vanilla": {"dup": 1, "generated": True, "augmentation": "standard"},
                   "adainf": {"dup": 10, "generated": True, "augmentation": "weak"}},
    "experiments": {"methods": ["simclr"], "strategies": ["none", "vanilla", "adainf"],
                    "seeds": [0, 1, 2], "sweeps": []},
    "linear_eval": {"protocols": ["online", "offline"]},
}
# online: adainf clearly above none, vanilla clearly below; offline: all within the seeds' noise
TOP1 = {("none", "online"): [71.9, 70.8, 70.8], ("vanilla", "online"): [64.4, 65.3, 64.7],
        ("adainf", "online"): [78.3, 78.3, 78.1], ("random_init", "online"): None,
        ("none", "offline"): [81.9, 85.0, 81.4], ("vanilla", "offline"): [83.3, 82.2, 84.4],
        ("adainf", "offline"): [83.9, 87.8, 80.8], ("random_init", "offline"): [20.0, 22.0, 21.0]}
FID = {"fid": 0.5, "features": "pixels", "num_generated": 20, "num_real": 10}
SAMPLING = {"generator": "trained here", "sampler": "ddim", "steps": 10, "precision": "fp32",
            "num_images": 20, "seed": 0}


def cells():
    runs = [{"method": "simclr", "strategy": s, "protocol": p, "seed": seed, "top1": v}
            for (s, p), values in TOP1.items() if values for seed, v in enumerate(values)]
    return aggregate(runs)


def test_t_interval_and_paired_test_agree_with_scipy():
    low, high = t_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) / np.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert t_interval([5.0]) is None
    d = paired({0: 78.3, 1: 78.3, 2: 78.1}, {0: 71.9, 1: 70.8, 2: 70.8})
    assert d["diffs"] == pytest.approx([6.4, 7.5, 7.3]) and d["n"] == 3
    assert d["p"] == pytest.approx(stats.ttest_rel([78.3, 78.3, 78.1], [71.9, 70.8, 70.8]).pvalue)
    assert d["interval"] == pytest.approx(t_interval(d["diffs"])) and d["beyond"]
    assert d["verdict"].startswith("beyond the seeds' spread (95 % CI +5.")
    noisy = paired({0: 83.9, 1: 87.8, 2: 80.8}, {0: 81.9, 1: 85.0, 2: 81.4})
    assert not noisy["beyond"] and noisy["verdict"].startswith("within the seeds' spread")
    # only the seeds both have are paired; one seed or identical differences are not tested
    one = paired({0: 80.0, 5: 1.0}, {0: 75.0})
    assert one["seeds"] == [0] and one["verdict"] == "one seed: no spread measured"
    same = paired({0: 3.0, 1: 4.0}, {0: 1.0, 1: 2.0})
    assert same["p"] is None and not same["beyond"] and "same difference in every seed" in same["verdict"]
    assert paired({1: 3.0}, {0: 1.0}) is None


def test_findings_say_which_differences_are_beyond_the_spread():
    design = plan(CONFIG)
    online, offline = findings(design, cells())
    assert online.startswith("- online, simclr (3 seeds): vanilla − none -6.37 points, beyond")
    assert "adainf − none +7.07 points, beyond the seeds' spread" in online
    assert "Means: adainf 78.23 > none 71.17 > vanilla 64.80." in online
    assert "does not separate" not in online
    assert online.count("beyond") == 2 and "random_init" not in online
    assert offline.count("within the seeds' spread") == 2
    assert "the offline protocol does not separate the strategies on this data" in offline
    single = plan({**CONFIG, "experiments": {**CONFIG["experiments"], "seeds": [0]}})
    one = aggregate([{"method": "simclr", "strategy": s, "protocol": "online", "seed": 0,
                      "top1": v[0]} for (s, p), v in TOP1.items() if v and p == "online"])
    (line,) = findings(single, one)
    assert "one seed: no spread measured" in line and "One seed measures no spread" in line


def test_headline_figure_and_the_page_that_embeds_it(tmp_path):
    design = plan(CONFIG)
    panels = results_panels(design, cells())
    assert [p["protocol"] for p in panels] == ["online", "offline"]
    assert panels[0]["strategies"] == ["none", "vanilla", "adainf"]  # random_init: the floor line
    adainf = panels[0]["methods"]["simclr"]["adainf"]
    assert adainf["values"] == [78.3, 78.3, 78.1] and adainf["difference"]["beyond"]
    assert panels[1]["methods"]["simclr"]["random_init"] == pytest.approx(21.0)
    path = tmp_path / "results.png"
    save_results_figure(path, panels, 3, svg=tmp_path / "a.svg")
    width, height = Image.open(path).size
    assert width > 600 and height > 600
    # the report's SVG is the same file for the same results (no date, fixed element ids)
    save_results_figure(tmp_path / "again.png", panels, 3, svg=tmp_path / "b.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    notes = ["- simclr seed 0, round 0 (step 4): kept a, b; cut c"]
    page = html_page(design, cells(), FID, SAMPLING, notes=notes,
                     figures=[("the headline", str(path)), ("again", str(path))])
    assert page.count("src='data:image/png;base64,") == 2
    assert page.index("id='headline'") < page.index("id='finding'") < page.index("id='accuracy'")
    # every line summary.md has, the search's rounds included, is on the page
    text = markdown(design, cells(), FID, SAMPLING, notes=notes)
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| method"):
            cells_ = [c.strip() for c in line.strip("|").split("|")]
            assert "".join(f"<td>{html.escape(c)}</td>" for c in cells_) in page, line
        elif line and not line.startswith(("|", "#")):
            assert html.escape(line.removeprefix("- ")) in page, line
