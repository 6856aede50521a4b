"""The online linear probe (solo-learn's online classifier, the protocol behind the paper's table).

During pretraining a linear layer is trained on the DETACHED backbone features of both augmented
views of each batch, with cross-entropy on the real labels; generated images (label -1) are
ignored. It has its own optimiser: SGD, momentum 0.9, no weight decay, lr per 256 scaled by the
global batch like the main lr, cosine decay over the run without warm-up (the probe is convex and
starts from zero weights, so there is nothing for a warm-up to protect). solo-learn puts the
classifier in the main optimiser instead (LARS, lr 0.1 per 256, no weight decay, the main warm-up
cosine); a separate SGD keeps the backbone's optimiser, and so its training, untouched.

The weights start at zero (no draw from the global RNG, so the augmentation stream and hence the
backbone's training are the same with or without the probe). Under DDP the gradient sums and the
labelled counts are all-reduced, so every rank takes the same step: the mean cross-entropy over
the labelled images of the global batch. Evaluation splits the test set between the ranks and
all-reduces the counts of correct predictions.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from pipeline.distributed import DistContext
from pipeline.linear import topk_correct
from pipeline.optim import scaled_lr, warmup_cosine


class OnlineProbe:
    """Give it to `training.pretrain(..., probe=...)`; afterwards `curve` holds one
    {"step", "top1", "top5"} per evaluation (top-k in % of the test split)."""

    def __init__(self, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray,
                 every: int = 0, lr: float = 0.1, eval_batch_size: int = 512):
        self.train_labels = np.asarray(train_labels, np.int64)
        self.test_images, self.test_labels = test_images, np.asarray(test_labels, np.int64)
        if (self.test_labels < 0).any():
            raise ValueError("the online probe's test split must be labelled real images "
                             "(found -1)")
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.every, self.lr_per_256, self.eval_batch_size = every, lr, eval_batch_size
        self.num_classes = int(max(self.train_labels.max(initial=-1), self.test_labels.max())) + 1
        self.curve: list[dict] = []
        self.linear: nn.Linear | None = None
        self._feats: list[torch.Tensor] = []
        self._hook = None

    def setup(self, encoder: nn.Module, feature_dim: int, num_generated: int, global_batch: int,
              steps: int, ctx: DistContext) -> None:
        """Build the layer and its optimiser on ctx.device and start capturing `encoder`'s
        outputs (in training mode only, so evaluation is not captured)."""
        self.ctx, self.steps = ctx, steps
        device = ctx.device
        # skip_init: nn.Linear's own initialisation would draw from the global RNG
        self.linear = nn.utils.skip_init(nn.Linear, feature_dim, self.num_classes, device=device)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.lr = scaled_lr(self.lr_per_256, global_batch)
        self.opt = torch.optim.SGD(self.linear.parameters(), lr=self.lr, momentum=0.9,
                                   weight_decay=0.0)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: warmup_cosine(s, steps))
        # rows of [real; generated] → label; generated images are -1
        self.labels = torch.cat([torch.from_numpy(self.train_labels),
                                 torch.full((num_generated,), -1, dtype=torch.long)]).to(device)
        self.test_x = torch.from_numpy(self.test_images).to(device).permute(0, 3, 1, 2)  # uint8
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

    def step(self, rows: torch.Tensor) -> None:
        """One update on the views the encoder saw since the last call; `rows` are the batch's
        rows of [real; generated] (on the device)."""
        feats, self._feats = self._feats, []
        if not feats or sum(len(f) for f in feats) != len(feats) * len(rows):
            raise RuntimeError(f"online probe: captured {[len(f) for f in feats]} features for "
                               f"a batch of {len(rows)}")
        self.update(feats, self.labels[rows])

    def update(self, feats: list[torch.Tensor], labels: torch.Tensor) -> None:
        """SGD step on mean cross-entropy over the labelled (>= 0) images of every view, across
        ranks. No host sync; a step without any labelled image has a zero gradient."""
        x = torch.cat(feats).float()
        y = labels.repeat(len(feats))
        with torch.autocast(x.device.type, enabled=False):
            loss = F.cross_entropy(self.linear(x), y, ignore_index=-1, reduction="sum")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.linear.parameters())
        flat = torch.cat([p.grad.flatten() for p in params] + [(y >= 0).sum().float().view(1)])
        if self.ctx.world > 1:
            dist.all_reduce(flat)
        flat = flat[:-1] / flat[-1].clamp_min(1)
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p))
        self.opt.step()
        self.sched.step()

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

    def state_dict(self) -> dict:
        return {"linear": self.linear.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "curve": list(self.curve)}

    def load_state_dict(self, state: dict) -> None:
        self.linear.load_state_dict(state["linear"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.curve = list(state["curve"])
