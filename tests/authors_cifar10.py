"""The AdaInf authors' CIFAR-10 settings, transcribed from their files (PKU-ML/adainf), each row
naming its source. The one place this table lives: tests/test_preset.py compares every cell of
configs/cifar10.yaml with it and checks that docs/cifar10.md shows `markdown()`.

Paths are in PKU-ML/adainf; "cifar/" is solo-learn/scripts/pretrain/cifar/. The symmetric.yaml,
symmetric_adainf.yaml and asymmetric.yaml augmentation files and solo-learn's data pipeline are
not in the searchable copy of the repository; their values are those of /work/shared/paper.md's
table of the authors' configs (asymmetric_adainf.yaml and symmetric_crop_0.2.yaml, which are
there, agree with it).
"""

from __future__ import annotations

METHODS = ("simclr", "mocov2plus", "byol", "barlow")
STRATEGIES = ("none", "vanilla", "adainf")
NA = "—"


def _m(simclr, moco, byol, barlow):
    return dict(zip(METHODS, (simclr, moco, byol, barlow)))


def _all(value):
    return dict.fromkeys(METHODS, value)


# (setting, authors' value per method, source, ours where deliberately different, why)
METHOD_ROWS = [
    ("optimizer", _m("lars", "sgd", "lars", "lars"), "cifar/{m}.yaml optimizer.name", None, ""),
    ("lr_per_256", _m(0.2, 0.15, 0.5, 0.15), "cifar/{m}.yaml optimizer.lr", None, ""),
    ("global_batch", _all(512), "cifar/{m}.yaml optimizer.batch_size 256 × devices [6,7]", None,
     "one GPU at 512 by default (processes: 2 × 256 is the two-GPU form)"),
    ("lr", _m(0.4, 0.3, 1.0, 0.3), "lr × 512/256 (solo-learn's linear scaling)", None, ""),
    ("weight_decay", _m(1e-4, 1e-4, 1e-5, 1e-4), "cifar/{m}.yaml optimizer.weight_decay", None, ""),
    ("schedule", _all("warmup_cosine"), "cifar/{m}.yaml scheduler.name", None, ""),
    ("warmup_steps", _all(1000), "solo-learn/solo/methods/base.py: warmup_epochs 10 × "
     "max_steps / compute_warm_step_epoch 1000", None, ""),
    ("steps", _all(100000), "cifar/{m}.yaml max_steps", None, ""),
    ("precision", _all("fp16"), "cifar/{m}.yaml precision: 16", _all("bf16"),
     "bf16 autocast on GPUs that have it (no loss scaling)"),
    ("loss_precision", _all("fp16 autocast"), "cifar/{m}.yaml precision: 16", _all("fp32"),
     "every loss in fp32, heads' outputs cast up (finer than the authors')"),
    ("stem_padding", _all(2), "solo-learn/solo/methods/base.py conv1 padding=2", None, ""),
    ("temperature", _m(0.2, 0.2, NA, NA), "cifar/{m}.yaml method_kwargs.temperature", None, ""),
    ("queue_size", _m(NA, 32768, NA, NA), "cifar/{m}.yaml method_kwargs.queue_size", None, ""),
    ("tau_base", _m(NA, 0.99, 0.99, NA), "cifar/{m}.yaml momentum.base_tau", None, ""),
    ("tau_final", _m(NA, 0.999, 1.0, NA), "cifar/{m}.yaml momentum.final_tau", None, ""),
    ("proj_hidden", _m(2048, 2048, 4096, 2048), "cifar/{m}.yaml method_kwargs.proj_hidden_dim",
     None, ""),
    ("proj_dim", _m(256, 256, 256, 2048), "cifar/{m}.yaml method_kwargs.proj_output_dim", None, ""),
    ("pred_hidden", _m(NA, NA, 4096, NA), "cifar/{m}.yaml method_kwargs.pred_hidden_dim", None, ""),
    ("lambd", _m(NA, NA, NA, 0.0051), "solo-learn's barlow_twins default lamb", None, ""),
    ("scale", _m(NA, NA, NA, 0.1), "cifar/{m}.yaml method_kwargs.scale_loss", None, ""),
    ("probe_optimizer", _m("lars", "sgd", "lars", "lars"),
     "solo-learn/solo/methods/base.py learnable_params (classifier in the method's optimizer)",
     None, ""),
    ("probe_lr_per_256", _m(0.05, 0.15, 0.05, 0.05), "cifar/{m}.yaml optimizer.classifier_lr",
     None, ""),
    ("probe_lr", _m(0.1, 0.3, 0.1, 0.1), "classifier_lr × 512/256", None, ""),
    ("probe_weight_decay", _all(0.0), "solo-learn/solo/methods/base.py learnable_params", None, ""),
    ("probe_every", _all(200), "cifar/{m}.yaml val_check_interval", None, ""),
    ("probe_init", _all("nn.Linear default"), "solo-learn/solo/methods/base.py classifier",
     _all("zeros"), "draws nothing from the RNG, so the backbone trains alike with or without it"),
    ("warmup_start_lr", _all("3e-05"), "solo-learn/solo/methods/base.py scheduler.warmup_start_lr",
     _all("lr/1000"), "linear from lr/warmup_steps (pipeline.pretraining.optim.warmup_cosine)"),
]

# Strategy → (dup, generated, augmentation file by method kind); scripts/run_simclr.sh and
# scripts/run_byol.sh (MoCo V2+ and Barlow Twins have no script there: the same per kind).
STRATEGY_ROWS = {
    "none": (1, False, {"symmetric": "symmetric.yaml", "asymmetric": "asymmetric.yaml"}),
    "vanilla": (1, True, {"symmetric": "symmetric.yaml", "asymmetric": "asymmetric.yaml"}),
    "adainf": (10, True, {"symmetric": "symmetric_adainf.yaml",
                          "asymmetric": "asymmetric_adainf.yaml"}),
}
STRATEGY_SOURCE = "scripts/run_simclr.sh, scripts/run_byol.sh (data.dup, data.extra_data, augmentations=)"
KIND = {"simclr": "symmetric", "mocov2plus": "symmetric", "byol": "asymmetric",
        "barlow": "asymmetric"}

AUG_FIELDS = ("crop_min_scale", "flip_prob", "jitter_prob", "brightness", "contrast",
              "saturation", "hue", "grayscale_prob", "blur_prob", "solarize_prob")


def _view(crop, jitter_p, b, c, s, h, blur, solarize):
    return dict(zip(AUG_FIELDS, (crop, 0.5, jitter_p, b, c, s, h, 0.2, blur, solarize)))


# cifar/augmentations/<file>: (view 1, view 2)
AUG_FILES = {
    "symmetric.yaml": (_view(0.08, 0.8, 0.8, 0.8, 0.8, 0.2, 0.5, 0.0),) * 2,
    "symmetric_adainf.yaml": (_view(0.2, 0.4, 0.4, 0.4, 0.4, 0.1, 0.5, 0.0),) * 2,
    "asymmetric.yaml": (_view(0.08, 0.8, 0.4, 0.4, 0.2, 0.1, 0.0, 0.0),
                        _view(0.08, 0.8, 0.4, 0.4, 0.2, 0.1, 0.0, 0.2)),
    "asymmetric_adainf.yaml": (_view(0.2, 0.4, 0.4, 0.4, 0.2, 0.1, 0.0, 0.0),
                               _view(0.2, 0.4, 0.4, 0.4, 0.2, 0.1, 0.0, 0.2)),
}
# solo-learn/solo/data/pretrain_dataloader.py (torchvision on PIL images)
PIPELINE_ROWS = [
    ("crop_interpolation", "bicubic (Pillow)", "RandomResizedCrop(interpolation=BICUBIC) on PIL"),
    ("blur", "PIL GaussianBlur", "ImageFilter.GaussianBlur(radius=sigma)"),
    ("blur_sigma", (0.1, 2.0), "sigma ~ U(0.1, 2)"),
]


def expected(method: str, strategy: str) -> dict:
    """The settings of one cell as the project runs them: the authors' value, or ours where the
    table marks a deliberate difference."""
    out = {"method": method}
    for setting, values, _, ours, _ in METHOD_ROWS:
        value = (ours or values)[method]
        if value != NA:
            out[setting] = value
    dup, generated, files = STRATEGY_ROWS[strategy]
    out.update(dup=dup, generated=generated)
    for i, view in enumerate(AUG_FILES[files[KIND[method]]], 1):
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
    lines += ["", "| strategy | dup | generated | symmetric (SimCLR, MoCo V2+) | asymmetric "
              "(BYOL, Barlow Twins) | source |", "|---|---|---|---|---|---|"]
    for name, (dup, generated, files) in STRATEGY_ROWS.items():
        lines.append(f"| {name} | {dup} | {generated} | {files['symmetric']} | "
                     f"{files['asymmetric']} | {STRATEGY_SOURCE} |")
    names = list(AUG_FILES)
    lines += ["", "| augmentation (view 1 / view 2) | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for field in AUG_FIELDS:
        cells = []
        for name in names:
            v1, v2 = (view[field] for view in AUG_FILES[name])
            cells.append(_cell(v1) if v1 == v2 else f"{_cell(v1)} / {_cell(v2)}")
        lines.append(f"| {field} | " + " | ".join(cells) + " |")
    lines.append("| (source) | " + " | ".join(f"cifar/augmentations/{n}" for n in names) + " |")
    for setting, value, source in PIPELINE_ROWS:
        lines.append(f"| {setting} | " + " | ".join([_cell(value)] * len(names)) + " |")
    lines.append("| (source) | " + " | ".join(
        ["solo-learn/solo/data/pretrain_dataloader.py"] * len(names)) + " |")
    return "\n".join(lines) + "\n"
