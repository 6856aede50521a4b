"""The online linear probe (solo-learn's online classifier, the protocol behind the paper's table).

During pretraining a linear layer is trained on the DETACHED backbone features of both augmented
views of each batch, with cross-entropy on the real labels; generated images (label -1) are
ignored, unless their own labels are given (generator.labels: keep): then labelled generated
images train it too, as in the authors' runs (PKU-ML/adainf solo-learn/main_pretrain.py L161-164
concatenates the npz's `label` array to the real targets; solo-learn/solo/methods/base.py L474
ignores only -1). As in solo-learn (PKU-ML/adainf solo-learn/solo/methods/base.py, `learnable_params`),
its parameters are a param group of the method's own optimizer (LARS for SimCLR, BYOL and Barlow
Twins; SGD for MoCo V2+) with the method's `classifier_lr` per 256 (0.05; 0.15 for MoCo V2+,
solo-learn/scripts/pretrain/cifar/*.yaml) scaled by the global batch, no weight decay, and the
same warm-up + cosine schedule. Being its own param group of a per-parameter optimiser, it does
not change the backbone's update; being fed detached features, it gives the backbone no gradient.

The weights start at zero (no draw from the global RNG, so the augmentation stream and hence the
backbone's training are the same with or without the probe; solo-learn draws nn.Linear's default
initialisation). Under DDP the gradient sums and the labelled counts are all-reduced, so every rank
takes the same step: the mean cross-entropy over the labelled images of the global batch.
Evaluation splits the test set between the ranks and all-reduces the counts of correct
predictions.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from pipeline.core.tensors import to_nchw, topk_correct
from pipeline.pretraining.distributed import DistContext
from pipeline.pretraining.optim import scaled_lr


class OnlineProbe:
    """Give it to `pipeline.pretraining.loop.pretrain(..., probe=...)`; afterwards `curve` holds one
    {"step", "top1", "top5"} per evaluation (top-k in % of the test split)."""

    def __init__(self, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray,
                 every: int = 0, lr: float | None = None, eval_batch_size: int = 512,
                 generated_labels: np.ndarray | None = None):
        """lr: per 256 samples of the global batch; None: the method's classifier_lr (given to
        setup by the training loop). generated_labels: the generated rows' labels (-1 for an
        unlabelled image), or None: all unlabelled."""
        self.train_labels = np.asarray(train_labels, np.int64)
        self.test_images, self.test_labels = test_images, np.asarray(test_labels, np.int64)
        if (self.test_labels < 0).any():
            raise ValueError("the online probe's test split must be labelled real images "
                             "(found -1)")
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.every, self.lr_per_256, self.eval_batch_size = every, lr, eval_batch_size
        self.num_classes = int(max(self.train_labels.max(initial=-1), self.test_labels.max())) + 1
        self.generated_labels = (None if generated_labels is None
                                 else np.asarray(generated_labels, np.int64))
        if self.generated_labels is not None and len(self.generated_labels):
            lo, hi = self.generated_labels.min(), self.generated_labels.max()
            if lo < -1 or hi >= self.num_classes:
                raise ValueError(f"generated label {lo if lo < -1 else hi} is not one of the real "
                                 f"data's classes 0..{self.num_classes - 1} (or -1, unlabelled)")
        self.curve: list[dict] = []
        self.linear: nn.Linear | None = None
        self._feats: list[torch.Tensor] = []
        self._hook = None

    def setup(self, encoder: nn.Module, feature_dim: int, num_generated: int, global_batch: int,
              steps: int, ctx: DistContext, default_lr: float | None = None) -> None:
        """Build the layer on ctx.device, fix its learning rate (lr, else `default_lr`, per 256
        samples) and start capturing `encoder`'s outputs (in training mode only, so evaluation is
        not captured). The training loop then puts `param_group()` in its optimiser."""
        self.ctx, self.steps = ctx, steps
        if self.lr_per_256 is None:
            if default_lr is None:
                raise ValueError("the online probe needs a learning rate")
            self.lr_per_256 = default_lr
        device = ctx.device
        # nn.Linear's own initialisation draws from the global RNG: fork it so that the run's
        # stream is untouched (nn.utils.skip_init would too, but imports torch._refs: ~0.5 s)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            self.linear = nn.Linear(feature_dim, self.num_classes, device=device)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.lr = scaled_lr(self.lr_per_256, global_batch)
        # rows of [real; generated] → label; generated images are -1 unless theirs are given
        if self.generated_labels is None:
            generated = torch.full((num_generated,), -1, dtype=torch.long)
        elif len(self.generated_labels) != num_generated:
            raise ValueError(f"{len(self.generated_labels)} generated labels for "
                             f"{num_generated} generated images")
        else:
            generated = torch.from_numpy(self.generated_labels)
        self.labels = torch.cat([torch.from_numpy(self.train_labels), generated]).to(device)
        self.test_x = to_nchw(self.test_images, device)  # uint8
        self.test_y = torch.from_numpy(self.test_labels).to(device)
        self._hook = encoder.register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        if module.training:
            self._feats.append(output.detach())

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._feats.clear()

    def param_group(self) -> dict:
        """The probe's param group for the method's optimiser: its rate, no weight decay."""
        return {"params": list(self.linear.parameters()), "lr": self.lr, "weight_decay": 0.0}

    def backward(self, rows: torch.Tensor, scaler=None) -> None:
        """The gradient of one update on the views the encoder saw since the last call; `rows`
        are the batch's rows of [real; generated] (on the device). The optimiser's step, shared
        with the method, applies it."""
        feats, self._feats = self._feats, []
        if not feats or sum(len(f) for f in feats) != len(feats) * len(rows):
            raise RuntimeError(f"online probe: captured {[len(f) for f in feats]} features for "
                               f"a batch of {len(rows)}")
        self.accumulate(feats, self.labels[rows], scaler)

    def accumulate(self, feats: list[torch.Tensor], labels: torch.Tensor, scaler=None) -> None:
        """Sets the layer's .grad to that of the mean cross-entropy over the labelled (>= 0)
        images of every view, across ranks (scaled by `scaler`, a GradScaler, if given, as the
        method's loss). No host sync; a step without any labelled image has a zero gradient."""
        x = torch.cat(feats).float()
        y = labels.repeat(len(feats))
        with torch.autocast(x.device.type, enabled=False):
            loss = F.cross_entropy(self.linear(x), y, ignore_index=-1, reduction="sum")
        for p in self.linear.parameters():
            p.grad = None
        (loss if scaler is None else scaler.scale(loss)).backward()
        params = list(self.linear.parameters())
        flat = torch.cat([p.grad.flatten() for p in params] + [(y >= 0).sum().float().view(1)])
        if self.ctx.world > 1:
            dist.all_reduce(flat)
        flat = flat[:-1] / flat[-1].clamp_min(1)
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p))

    def due(self, step: int) -> bool:
        return step == self.steps or (self.every > 0 and step % self.every == 0)

    @torch.no_grad()
    def evaluate(self, encoder: nn.Module, step: int, autocast=contextlib.nullcontext) -> dict:
        """Top-1/top-5 on the un-augmented test split with the encoder in eval mode (then back
        in its previous mode); appended to `curve`."""
        was_training = encoder.training
        encoder.eval()
        ks = (1, 5)
        correct = torch.zeros(len(ks), device=self.test_x.device)
        mine = torch.arange(self.ctx.rank, len(self.test_x), self.ctx.world,
                            device=self.test_x.device)
        for idx in mine.split(self.eval_batch_size):
            with autocast():
                feats = encoder(self.test_x[idx].float().div_(255))
            correct += topk_correct(self.linear(feats.float()), self.test_y[idx], ks)
        if self.ctx.world > 1:
            dist.all_reduce(correct)
        encoder.train(was_training)
        top1, top5 = (100.0 * correct / len(self.test_x)).tolist()
        point = {"step": step, "top1": top1, "top5": top5}
        self.curve.append(point)
        return point

    def result(self, method: str, strategy: str, pretrain: dict) -> dict:
        """What the probe's result file holds: the last evaluation's top-1/top-5 (%), the whole
        curve and the probe's settings, with the pretraining run's summary `pretrain`."""
        final = self.curve[-1]
        return {
            "method": method, "strategy": strategy, "protocol": "online",
            "top1": final["top1"], "top5": final["top5"], "num_train": len(self.train_labels),
            "num_test": len(self.test_labels), "pretrain": pretrain,
            "seconds": pretrain["seconds"], "curve": self.curve, "every": self.every,
            "lr": self.lr_per_256, **self.labels_used(),
        }

    def labels_used(self) -> dict:
        """Which labels trained the probe: generated_labels keep (the generated images' own,
        `num_labelled_generated` of them not -1) or drop (the real images' only)."""
        if self.generated_labels is None:
            return {"generated_labels": "drop", "num_labelled_generated": 0}
        return {"generated_labels": "keep",
                "num_labelled_generated": int((self.generated_labels >= 0).sum())}

    def state_dict(self) -> dict:
        # its optimiser state is the method optimiser's (checkpointed with it)
        return {"linear": self.linear.state_dict(), "curve": list(self.curve)}

    def load_state_dict(self, state: dict) -> None:
        self.linear.load_state_dict(state["linear"])
        self.curve = list(state["curve"])
