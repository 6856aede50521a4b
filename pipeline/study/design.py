"""The study's design: which encoders the workflow trains and how each is evaluated.

From the config's `experiments` (methods × strategies × seeds, plus sweeps that vary one setting
of one strategy) and `linear_eval.protocols`. Torch-free: the Snakefile plans with it.

A sweep value that equals the strategy's own setting is that strategy's cell, not a new one, so a
crop-scale sweep over adainf that includes 0.2 reuses the adainf encoder. Every other value is a
strategy of its own, named `STRATEGY+SETTING=VALUE` (e.g. `adainf+crop_min_scale=0.5`), a name that no
config change other than that sweep value alters: adding a cell trains only that cell. The data
sizes (num_generated, real_fraction, generated_keep) are settings like the others; spelled out
as `all` they are dropped from a cell's settings (without_all), so that they change nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.vocab.augmentation import PRESET_VIEWS
from pipeline.vocab.names import AUTO, PROTOCOLS, RANDOM_INIT, SWEEPABLE  # noqa: F401  (re-exported)

COUNTS = ("dup", "num_generated")  # integer settings (config_check refuses fractional values)
# how a report names the x axis of a sweep (the setting's own name where not listed)
AXIS_LABELS = {"num_generated": "number of generated images",
               "real_fraction": "fraction of the real training split (pretraining)",
               "generated_keep": "fraction of the generated images kept (best by quality score)"}


def effective_setting(strategy: dict, setting: str, num_images: int | None = None) -> float:
    """The value a strategy trains with: its own, else its augmentation preset's; for
    num_generated, null is all `num_images` (sampling.num_images), for real_fraction 1."""
    if setting == "num_generated":
        own = strategy.get("num_generated")
        return own if own is not None else num_images
    if setting in ("real_fraction", "generated_keep"):
        own = strategy.get(setting)
        return own if own is not None else 1.0
    if setting == "dup":
        return strategy["dup"]
    if setting == "crop_min_scale":
        own = strategy.get("crop_min_scale")
        return own if own is not None else PRESET_VIEWS[strategy["augmentation"]][0].crop_min_scale
    if setting == "jitter_strength":  # a multiplier of the preset's strengths
        own = strategy.get("jitter_strength")
        return own if own is not None else 1.0
    raise ValueError(f"cannot sweep {setting!r}; sweepable: {', '.join(SWEEPABLE)}")


def without_all(settings: dict, num_images: int | None) -> dict:
    """A strategy's settings less the data sizes that mean all images (num_generated null or
    sampling.num_images, real_fraction null or 1), so that spelling out `all` changes no cell."""
    out = dict(settings)
    if out.get("num_generated") in (None, num_images):
        out.pop("num_generated", None)
    for fraction in ("real_fraction", "generated_keep"):  # 1: every image (the same rows)
        if out.get(fraction) in (None, 1):
            out.pop(fraction, None)
    return out


def format_value(setting: str, value) -> str:
    """A sweep value as names and tables show it: counts in full (1000000, not 1e+06)."""
    return str(int(value)) if setting in COUNTS else f"{value:g}"


def sweep_strategy_name(strategy: str, setting: str, value) -> str:
    return f"{strategy}+{setting}={format_value(setting, value)}"


@dataclass
class Sweep:
    strategy: str
    setting: str
    values: list
    strategies: list[str]  # the strategy of each value, in order


@dataclass
class Design:
    methods: list[str]
    strategies: list[str]  # the table's columns, random_init last
    seeds: list[int]
    protocols: list[str]  # the first is the headline
    trained: dict[str, dict]  # every strategy that trains, a sweep's included -> its settings
    sweeps: list[Sweep] = field(default_factory=list)
    auto: bool = False  # `auto` is a cell: its settings are the search's choice, not fixed

    def settings(self, name: str) -> dict:
        if name == RANDOM_INIT:
            return {"dup": 1, "generated": False, "augmentation": "standard"}
        return self.trained[name]

    def cells(self) -> list[tuple[str, str, int]]:
        """(method, strategy, seed) of every encoder, random_init included."""
        names = list(self.trained) + ([AUTO] if self.auto else []) + [RANDOM_INIT]
        return [(m, v, s) for m in self.methods for v in names for s in self.seeds]

    def evaluations(self) -> list[tuple[str, str, int, str]]:
        """(method, strategy, seed, protocol) of every accuracy; the online probe needs training,
        and reads the test split, which the auto search never does."""
        return [(m, v, s, p) for m, v, s in self.cells() for p in self.protocols
                if not (p == "online" and v in (RANDOM_INIT, AUTO))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Design:
        return cls(**{**d, "sweeps": [Sweep(**s) for s in d.get("sweeps", [])]})


def plan(config: dict) -> Design:
    """The design of a validated config; a one-line ValueError names what is inconsistent."""
    e, defined = config["experiments"], config["strategies"]
    chosen = [name for name in e["strategies"] if name != AUTO]
    for name in chosen + [s["strategy"] for s in e.get("sweeps", [])]:
        if name not in defined:
            raise ValueError(f"experiments names strategy {name!r}, which is not defined under "
                             f"strategies (defined: {', '.join(defined)})")
    num_images = config.get("sampling", {}).get("num_images")  # what num_generated null means
    trained = {name: without_all(defined[name], num_images) for name in chosen}
    sweeps = []
    for sw in e.get("sweeps", []):
        base, setting = sw["strategy"], sw["setting"]
        own = effective_setting(defined[base], setting, num_images)
        names = []
        for value in sw["values"]:
            if value == own:
                name = base
            else:
                name = sweep_strategy_name(base, setting, value)
            value = int(value) if setting in COUNTS else value  # YAML 1.0e+3: --num-generated 1000
            trained.setdefault(name, without_all({**defined[base], setting: value}, num_images))
            names.append(name)
        sweeps.append(Sweep(base, setting, list(sw["values"]), names))
    protocols = list(dict.fromkeys(config["linear_eval"]["protocols"]))
    return Design(methods=list(e["methods"]), strategies=list(e["strategies"]) + [RANDOM_INIT],
                  seeds=list(e.get("seeds", [0])), protocols=protocols, trained=trained,
                  sweeps=sweeps, auto=AUTO in e["strategies"])

