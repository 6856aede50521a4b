"""The AdaInf authors' CIFAR-10 settings, transcribed from their files (PKU-ML/adainf), each row
naming its source file and line. The one place this table lives: tests/test_preset.py compares
every cell of configs/cifar10.yaml with it and checks that docs/cifar10.md shows `markdown()`.

Paths are in PKU-ML/adainf; "cifar/" is solo-learn/scripts/pretrain/cifar/, "base.py" is
solo-learn/solo/methods/base.py. Every value here was read in that repository's files (the
augmentation files are cifar/augmentations/*.yaml, the data pipeline
solo-learn/solo/data/pretrain_dataloader.py).
"""

from __future__ import annotations

METHODS = ("simclr", "mocov2plus", "byol", "barlow")
STRATEGIES = ("none", "vanilla", "adainf")
NA = "—"


def _m(simclr, moco, byol, barlow):
    return dict(zip(METHODS, (simclr, moco, byol, barlow)))


def _all(value):
    return dict.fromkeys(METHODS, value)


def _yaml(key: str, *lines) -> str:
    """A key of the four method files, at its line in each (SimCLR, MoCo V2+, BYOL, Barlow)."""
    return f"cifar/{{simclr,mocov2plus,byol,barlow}}.yaml {key} (L{', L'.join(map(str, lines))})"


# (setting, authors' value per method, source, ours where deliberately different, why)
METHOD_ROWS = [
    ("optimizer", _m("lars", "sgd", "lars", "lars"), _yaml("optimizer.name", 31, 35, 34, 31),
     None, ""),
    ("lr_per_256", _m(0.2, 0.15, 0.5, 0.15), _yaml("optimizer.lr", 34, 38, 37, 33), None, ""),
    ("global_batch", _all(512), _yaml("optimizer.batch_size 256", 32, 36, 35, 32) + " × "
     + _yaml("devices (2 GPUs)", 54, 57, 59, 55), None,
     "one GPU at 512 by default (processes: 2 × 256 is the two-GPU form)"),
    ("lr", _m(0.4, 0.3, 1.0, 0.3), "lr × 512/256: solo-learn/solo/args/pretrain.py L153 "
     "scale_factor = batch_size × devices / 256", None, ""),
    ("weight_decay", _m(1e-4, 1e-4, 1e-5, 1e-4), _yaml("optimizer.weight_decay", 37, 41, 40, 37),
     None, ""),
    ("schedule", _all("warmup_cosine"), _yaml("scheduler.name", 43, 43, 46, 43), None, ""),
    ("warmup_steps", _all(1000), "base.py L295 warmup_epochs 10 × max_steps / max_epochs "
     "(L368-369), max_epochs (L215) = " + _yaml("compute_warm_step_epoch 1000", 52, 54, 56, 52),
     None, ""),
    ("steps", _all(100000), _yaml("max_steps", 53, 56, 58, 54), None, ""),
    ("precision", _all("fp16"), _yaml("precision: 16", 58, 61, 63, 59), _all("bf16"),
     "bf16 autocast on GPUs that have it (no loss scaling)"),
    ("loss_precision", _all("fp16 autocast"), _yaml("precision: 16", 58, 61, 63, 59),
     _all("fp32"), "every loss in fp32, heads' outputs cast up (finer than the authors')"),
    ("stem_padding", _all(2), "base.py L202-204 conv1 padding=2", None, ""),
    ("temperature", _m(0.2, 0.2, NA, NA),
     "cifar/simclr.yaml L21, cifar/mocov2plus.yaml L22 method_kwargs.temperature", None, ""),
    ("queue_size", _m(NA, 32768, NA, NA), "cifar/mocov2plus.yaml L21 method_kwargs.queue_size",
     None, ""),
    ("tau_base", _m(NA, 0.99, 0.99, NA), "cifar/mocov2plus.yaml L24, cifar/byol.yaml L23 "
     "momentum.base_tau", None, ""),
    ("tau_final", _m(NA, 0.999, 1.0, NA), "cifar/mocov2plus.yaml L25, cifar/byol.yaml L24 "
     "momentum.final_tau", None, ""),
    ("proj_hidden", _m(2048, 2048, 4096, 2048), _yaml("method_kwargs.proj_hidden_dim", 19, 19, 19, 19),
     None, ""),
    ("proj_dim", _m(256, 256, 256, 2048), _yaml("method_kwargs.proj_output_dim", 20, 20, 20, 20),
     None, ""),
    ("pred_hidden", _m(NA, NA, 4096, NA), "cifar/byol.yaml L21 method_kwargs.pred_hidden_dim",
     None, ""),
    ("lambd", _m(NA, NA, NA, 0.0051), "solo-learn/solo/methods/barlow_twins.py L77 lamb default",
     None, ""),
    ("scale", _m(NA, NA, NA, 0.1), "cifar/barlow.yaml L21 method_kwargs.scale_loss", None, ""),
    ("loss_groups", _m(NA, NA, NA, 2), "solo-learn/solo/losses/barlow.py L45-47 (BatchNorm1d "
     "over each device's 256), L49-54 (the devices' matrices averaged by dist.all_reduce, "
     "outside autograd: the gradient is 1/2 of the loss's under DDP) on 2 GPUs "
     "(cifar/barlow.yaml L55)", None,
     "method_args barlow loss_groups 2 (tests/test_losses.py checks it against their loss on 2 "
     "processes); loss_groups 1 is the exact-gradient loss over all 512"),
    ("probe_optimizer", _m("lars", "sgd", "lars", "lars"),
     "base.py L316-331 learnable_params (the classifier in the method's optimizer)", None, ""),
    ("probe_lr_per_256", _m(0.05, 0.15, 0.05, 0.05), _yaml("optimizer.classifier_lr", 36, 40, 39, 35),
     None, ""),
    ("probe_lr", _m(0.1, 0.3, 0.1, 0.1), "classifier_lr × 512/256 (solo-learn/solo/args/"
     "pretrain.py L153)", None, ""),
    ("probe_weight_decay", _all(0.0), "base.py L330 weight_decay 0", None, ""),
    ("probe_every", _all(200), _yaml("val_check_interval", 59, 62, 64, 60), None, ""),
    ("probe_init", _all("nn.Linear default"), "base.py L212 classifier = nn.Linear",
     _all("zeros"), "draws nothing from the RNG, so the backbone trains alike with or without it"),
    ("warmup_start_lr", _all("3e-05"), "base.py L294 scheduler.warmup_start_lr 3e-5",
     _all("lr/1000"), "linear from lr/warmup_steps (pipeline.pretraining.optim.warmup_cosine)"),
]

# Strategy → (dup, generated, their sources); vanilla and adainf add the generated npz
# (data.extra_data) and replicate the real set data.dup times (solo-learn/main_pretrain.py
# L156-164); a generated strategy's online probe trains on the npz's labels (probe row below).
STRATEGY_ROWS = {
    "none": (1, False, "no data.extra_data: scripts/run_simclr.sh L2-6, scripts/run_byol.sh L2-6"),
    "vanilla": (1, True, "data.extra_data, data.dup=1: scripts/run_simclr.sh L13-14, "
                         "scripts/run_byol.sh L13-14"),
    "adainf": (10, True, "data.extra_data, data.dup=10: scripts/run_simclr.sh L22-23, "
                         "scripts/run_byol.sh L22-23, README.md L57, L63-64"),
}
# (method, strategy) → (augmentation file, where it is named, what the files leave open or "")
OPEN_MOCO = ("open: there is no MoCo V2+ script and README.md L57 names only its AdaInf file; "
             "this is the file's own default (SimCLR's file defaults to symmetric_adainf.yaml "
             "L3, overridden by its script). The SimCLR scripts' reading, symmetric.yaml, is "
             "`pretrain.method_augmentation: {}`")
AUGMENTATION = {
    ("simclr", "none"): ("symmetric.yaml", "scripts/run_simclr.sh L3", ""),
    ("simclr", "vanilla"): ("symmetric.yaml", "scripts/run_simclr.sh L10", ""),
    ("simclr", "adainf"): ("symmetric_adainf.yaml", "scripts/run_simclr.sh L19", ""),
    ("mocov2plus", "none"): ("symmetric_weak.yaml", "cifar/mocov2plus.yaml L3 (defaults)",
                             OPEN_MOCO),
    ("mocov2plus", "vanilla"): ("symmetric_weak.yaml", "cifar/mocov2plus.yaml L3 (defaults)",
                                OPEN_MOCO),
    ("mocov2plus", "adainf"): ("symmetric_adainf.yaml", "README.md L57 (\"e.g., SimCLR, Moco V2\")",
                               ""),
    ("byol", "none"): ("asymmetric.yaml", "scripts/run_byol.sh L3", ""),
    ("byol", "vanilla"): ("asymmetric.yaml", "scripts/run_byol.sh L10", ""),
    ("byol", "adainf"): ("asymmetric_adainf.yaml", "scripts/run_byol.sh L19", ""),
    ("barlow", "none"): ("asymmetric.yaml", "cifar/barlow.yaml L3 (defaults; no Barlow Twins "
                         "script, none needed: its file and README.md L57 agree with BYOL's)", ""),
    ("barlow", "vanilla"): ("asymmetric.yaml", "cifar/barlow.yaml L3 (defaults)", ""),
    ("barlow", "adainf"): ("asymmetric_adainf.yaml", "README.md L57 (\"e.g., Barlow Twins, BYOL\")",
                           ""),
}
# The online probe of a generated strategy: the npz's `label` array joins the real targets
# (solo-learn/main_pretrain.py L162-164) and the classifier's cross-entropy ignores only -1
# (base.py L474): the EDM 1M file's class ids 0..9 (DM-Improves-AT edm/select_1M.py L85, L87)
# train it. generator.labels keep; configs/cifar10.yaml's unconditional generator has none.
PROBE_LABELS = ("keep", "solo-learn/main_pretrain.py L162-164, base.py L474 "
                "(ignore_index=-1)")

AUG_FIELDS = ("crop_min_scale", "flip_prob", "jitter_prob", "brightness", "contrast",
              "saturation", "hue", "grayscale_prob", "blur_prob", "solarize_prob")


def _view(crop, jitter_p, b, c, s, h, blur, solarize):
    return dict(zip(AUG_FIELDS, (crop, 0.5, jitter_p, b, c, s, h, 0.2, blur, solarize)))


# cifar/augmentations/<file>: (view 1, view 2). Every file's first entry has the same layout
# (L1-22); the symmetric files have only that entry and take both views from it (num_crops: 2,
# L22), the asymmetric files have a second entry for view 2 (num_crops: 1 each, L24-45).
AUG_FILES = {
    "symmetric.yaml": (_view(0.08, 0.8, 0.8, 0.8, 0.8, 0.2, 0.5, 0.0),) * 2,
    "symmetric_weak.yaml": (_view(0.08, 0.8, 0.4, 0.4, 0.4, 0.1, 0.5, 0.0),) * 2,
    "symmetric_adainf.yaml": (_view(0.2, 0.4, 0.4, 0.4, 0.4, 0.1, 0.5, 0.0),) * 2,
    "asymmetric.yaml": (_view(0.08, 0.8, 0.4, 0.4, 0.2, 0.1, 0.0, 0.0),
                        _view(0.08, 0.8, 0.4, 0.4, 0.2, 0.1, 0.0, 0.2)),
    "asymmetric_adainf.yaml": (_view(0.2, 0.4, 0.4, 0.4, 0.2, 0.1, 0.0, 0.0),
                               _view(0.2, 0.4, 0.4, 0.4, 0.2, 0.1, 0.0, 0.2)),
}
# the line of each field in a file's first entry (view 1 in every file)
AUG_LINES = dict(zip(AUG_FIELDS, (3, 20, 6, 7, 8, 9, 10, 12, 14, 16)))
ASYMMETRIC_VIEW2_OFFSET = 23  # the asymmetric files' second entry: each field 23 lines lower
# where each file's view 2 comes from
AUG_VIEW2 = {name: ("second entry, L24-45" if name.startswith("asymmetric")
                    else "view 1 again: num_crops: 2 (L22)") for name in AUG_FILES}
# solo-learn/solo/data/pretrain_dataloader.py (torchvision on PIL images)
PIPELINE_ROWS = [
    ("crop_interpolation", "bicubic (Pillow)",
     "L221-225 RandomResizedCrop(interpolation=BICUBIC) on PIL"),
    ("blur", "PIL GaussianBlur", "L102 ImageFilter.GaussianBlur(radius=sigma)"),
    ("blur_sigma", (0.1, 2.0), "L87/L101 sigma ~ U(0.1, 2)"),
]


def expected(method: str, strategy: str) -> dict:
    """The settings of one cell as the project runs them: the authors' value, or ours where the
    table marks a deliberate difference."""
    out = {"method": method}
    for setting, values, _, ours, _ in METHOD_ROWS:
        value = (ours or values)[method]
        if value != NA:
            out[setting] = value
    dup, generated, _ = STRATEGY_ROWS[strategy]
    out.update(dup=dup, generated=generated)
    if generated:
        out["probe_generated_labels"] = PROBE_LABELS[0]
    for i, view in enumerate(AUG_FILES[AUGMENTATION[method, strategy][0]], 1):
        out.update({f"view{i}.{k}": v for k, v in view.items()})
    out.update({setting: value for setting, value, _ in PIPELINE_ROWS})
    return out


def _cell(value) -> str:
    if isinstance(value, tuple):
        return "U(" + ", ".join(f"{v:g}" for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown() -> str:
    """The tables of docs/cifar10.md."""
    lines = ["| setting | SimCLR | MoCo V2+ | BYOL | Barlow Twins | source (PKU-ML/adainf) |",
             "|---|---|---|---|---|---|"]
    for setting, values, source, ours, why in METHOD_ROWS:
        cells = [_cell(values[m]) for m in METHODS]
        if ours:
            cells = [f"{a} → **{_cell(ours[m])}** (ours)" for a, m in zip(cells, METHODS)]
        note = f"; deliberate: {why}" if ours else (f"; {why}" if why else "")
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {source}{note} |")
    lines += ["", "| strategy | dup | generated | source |", "|---|---|---|---|"]
    for name, (dup, generated, source) in STRATEGY_ROWS.items():
        lines.append(f"| {name} | {dup} | {generated} | {source} |")
    lines.append(f"| (generated strategies) online probe's generated labels: {PROBE_LABELS[0]} "
                 f"| | | {PROBE_LABELS[1]}; DM-Improves-AT edm/select_1M.py L85, L87 (EDM 1M: "
                 "class ids 0..9) |")
    lines += ["", "| method | strategy | augmentation file | source |", "|---|---|---|---|"]
    for (method, strategy), (file, source, note) in AUGMENTATION.items():
        lines.append(f"| {method} | {strategy} | {file} | {source}"
                     + (f"; {note}" if note else "") + " |")
    names = list(AUG_FILES)
    lines += ["", "| augmentation (view 1 / view 2) | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for field in AUG_FIELDS:
        cells = []
        for name in names:
            v1, v2 = (view[field] for view in AUG_FILES[name])
            cells.append(_cell(v1) if v1 == v2 else f"{_cell(v1)} / {_cell(v2)}")
        line = AUG_LINES[field]
        lines.append(f"| {field} (L{line}; view 2 in the asymmetric files: "
                     f"L{line + ASYMMETRIC_VIEW2_OFFSET}) | " + " | ".join(cells) + " |")
    lines.append("| (view 2) | " + " | ".join(AUG_VIEW2[n] for n in names) + " |")
    lines.append("| (source) | " + " | ".join(f"cifar/augmentations/{n}" for n in names) + " |")
    for setting, value, source in PIPELINE_ROWS:
        lines.append(f"| {setting} ({source.split()[0]}) | "
                     + " | ".join([_cell(value)] * len(names)) + " |")
    lines.append("| (source) | " + " | ".join(
        ["solo-learn/solo/data/pretrain_dataloader.py"] * len(names)) + " |")
    return "\n".join(lines) + "\n"
