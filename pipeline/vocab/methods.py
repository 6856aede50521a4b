"""Each SSL method's default hyper-parameters (the paper's / solo-learn's), torch-free.

The method classes in pipeline.pretraining.methods take their DEFAULTS from here, and the workflow reads
the same table when it checks `pretrain.method_args` at config time without importing torch.
"""

from __future__ import annotations

METHOD_DEFAULTS: dict[str, dict] = {
    "simclr": {"optimizer": "lars", "lr": 0.2, "classifier_lr": 0.05, "weight_decay": 1e-4, "proj_hidden": 2048,
               "proj_dim": 256, "temperature": 0.2},
    "mocov2plus": {"optimizer": "sgd", "lr": 0.15, "classifier_lr": 0.15, "weight_decay": 1e-4, "proj_hidden": 2048,
                   "proj_dim": 256, "temperature": 0.2, "queue_size": 32768, "tau_base": 0.99,
                   "tau_final": 0.999},
    "byol": {"optimizer": "lars", "lr": 0.5, "classifier_lr": 0.05, "weight_decay": 1e-5, "proj_hidden": 4096,
             "proj_dim": 256, "pred_hidden": 4096, "tau_base": 0.99, "tau_final": 1.0},
    "barlow": {"optimizer": "lars", "lr": 0.15, "classifier_lr": 0.05, "weight_decay": 1e-4, "proj_hidden": 2048,
               "proj_dim": 2048, "lambd": 0.0051, "scale": 0.1, "loss_groups": 1},
}

# barlow loss_groups: 1, the loss over the global batch with its exact gradient; the authors'
# two GPUs are 2 (pipeline.pretraining.losses.barlow_twins_loss's `groups`).

# Set through pretrain.optimizer / lr / weight_decay and linear_eval.online.lr, not method_args.
OPTIM_KEYS = ("optimizer", "lr", "weight_decay", "classifier_lr")


def head_keys(method: str) -> list[str]:
    """The head and loss settings `pretrain.method_args` (--method-arg) may override."""
    return sorted(k for k in METHOD_DEFAULTS[method] if k not in OPTIM_KEYS)
