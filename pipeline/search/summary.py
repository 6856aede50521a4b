"""The `auto` search in the report: each (method, seed) search's rounds, winner and cost, as the
table, the Markdown lines and the series of the score-vs-steps figure."""

from __future__ import annotations

from pipeline.search.candidates import SETTINGS


def searches(rounds: list[dict], spec: dict) -> list[dict]:
    """One summary per (method, seed) from the rounds' JSON (search_select's) and the search's
    spec (pipeline.dag.search_plan.SearchPlan.spec): every candidate's scores by step, the round
    each was cut in, the winner, its settings and the cost."""
    groups: dict[tuple, list[dict]] = {}
    for r in rounds:
        groups.setdefault((r["method"], r["seed"]), []).append(r)
    out = []
    for (method, seed), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        rs = sorted(rs, key=lambda r: r["round"])
        curves: dict[str, dict] = {}
        for r in rs:
            for name, score in r["scores"].items():
                curves.setdefault(name, {"steps": [], "scores": [], "cut_in": None})
                curves[name]["steps"].append(r["step"])
                curves[name]["scores"].append(score)
            for name in r["cut"]:
                curves[name]["cut_in"] = r["round"]
        (winner,) = rs[-1]["survivors"]
        out.append({"method": method, "seed": seed, "winner": winner,
                    "settings": spec["candidates"][winner], "curves": curves,
                    "rounds": [{k: r[k] for k in ("round", "step", "survivors", "cut")}
                               for r in rs],
                    "round_steps": [r["step"] for r in rs], "score": rs[0]["score"]})
    return out


def search_table(found: list[dict], spec: dict) -> dict:
    """The winners as a report table ({title, note, header, rows} of strings)."""
    s = spec["schedule"]
    stops = ", ".join(f"{n} to step {t}" for n, t in zip(s["survivors"], s["steps"]))
    note = (f"{len(spec['candidates'])} candidates; successive halving keeping the best "
            f"1/{spec['eta']}: {stops}. Cost per search: {s['cost_steps']} pretraining steps = "
            f"{s['cost_full_runs']:.2f} full runs (budget {spec['budget']:g}). "
            + (f"Score: {found[0]['score']} (from the real training split; the test split is "
               "read only by the final evaluation)." if found else ""))
    # generated_keep only where some candidate selects (absent: 1, all generated images)
    shown = [k for k in SETTINGS if k != "generated_keep"
             or any(k in c for c in spec["candidates"].values())]
    rows = [[f["method"], str(f["seed"]), f["winner"],
             *(f"{f['settings'].get(k, 1)}" for k in shown),
             f"{f['curves'][f['winner']]['scores'][-1]:.2f}"] for f in found]
    return {"title": "auto: the search's choice per method and seed", "note": note,
            "header": ["method", "seed", "winner", *shown, "last k-NN val top-1"],
            "rows": rows}


def round_lines(found: list[dict]) -> list[str]:
    """Which candidates each round kept and cut, one line per round of every search."""
    lines = []
    for f in found:
        for r in f["rounds"]:
            lines.append(f"- {f['method']} seed {f['seed']}, round {r['round']} (step "
                         f"{r['step']}): kept {', '.join(r['survivors'])}; cut "
                         f"{', '.join(r['cut']) or 'none'}")
    return lines
