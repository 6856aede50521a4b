"""Self-supervised pretraining with data inflation: the training loop.

The packed uint8 images go to the device once; each step gathers a batch by index (real images
replicated `dup` times virtually, plus generated ones) and augments it on the device with
per-sample random parameters. A checkpoint (one file) is rewritten atomically every N steps and
a restarted job resumes from it. Under torchrun the same loop runs data-parallel (DDP). An
optional online linear probe (pipeline.pretraining.online_probe) trains on the detached features alongside.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from pipeline.core import io, records
from pipeline.core.errors import RESTART, reading
from pipeline.core.runtime import autocast, precision_dtype
from pipeline.core.tracking import Progress, Tracker
from pipeline.core.tensors import to_nchw
from pipeline.pretraining.augment import AugParams, build_augmentation
from pipeline.pretraining.distributed import DistContext, local_only
from pipeline.data.inflation import InflatedIndex
from pipeline.pretraining.memory import check_fits, device_budget, estimate_memory
from pipeline.pretraining.encoders import Encoder
from pipeline.pretraining.optim import make_optimizer, scaled_lr, warmup_cosine
from pipeline.pretraining.methods import METHODS, build_method

if TYPE_CHECKING:
    from pipeline.pretraining.online_probe import OnlineProbe

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class PretrainConfig:
    """One run's settings; the stage fills them from its command line, whose values are the
    config's (config.yaml holds every default). A default here means unset or off, never a
    value of its own. (Fields in the order the records list them.)"""

    widths: list[int]
    blocks: list[int]
    stem_padding: int | None = None  # None: pipeline.pretraining.encoders.STEM_PADDING (the authors' 2)
    method: str
    steps: int
    batch_size: int  # per process; the global batch is batch_size × processes
    optimizer: str | None = None  # None: the method's own (the paper's)
    lr: float | None = None  # per 256 samples of the global batch; None: the method's own
    weight_decay: float | None = None
    warmup_steps: int
    hparams: dict = field(default_factory=dict)  # the method's head and loss settings
    dup: int
    seed: int
    checkpoint_every: int = 0  # 0: no checkpoints
    precision: str
    log_every: int  # steps between host syncs for the loss curve, the NaN check, the report
    compile: bool = False  # torch.compile the encoder(s): the 32 px step is launch-bound on GPUs
    channels_last: bool = False  # channels_last weights and views (tensor-core convolutions)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    x = images.reshape(-1, 3).astype(np.float64) / 255
    return x.mean(0).tolist(), np.maximum(x.std(0), 1e-3).tolist()


def resolved_optim(cfg: PretrainConfig, world: int) -> dict:
    defaults = METHODS[cfg.method].DEFAULTS
    lr_256 = cfg.lr if cfg.lr is not None else defaults["lr"]
    return {
        "optimizer": cfg.optimizer or defaults["optimizer"],
        "lr_per_256": lr_256,
        "lr": scaled_lr(lr_256, cfg.batch_size * world),
        "weight_decay": cfg.weight_decay if cfg.weight_decay is not None else defaults["weight_decay"],
        "classifier_lr_per_256": defaults["classifier_lr"],  # the online probe's, unless given
    }


# Settings that change when and how often things happen, not what is computed: resuming under
# other values continues the same run.
_NOT_IN_RUN_KEY = {"checkpoint_every", "log_every", "compile", "channels_last"}  # speed, not results


def run_key(cfg: PretrainConfig, aug_params, world: int, real: np.ndarray,
            generated: np.ndarray | None, probe: OnlineProbe | None = None) -> str:
    """A hash of everything that determines a run: what a checkpoint records, so that a resume
    under other settings or data is caught. The data enters as shapes plus a strided sample of
    images (cheap at 1M images, and different for regenerated data)."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_RUN_KEY}
    h = hashlib.sha256(json.dumps({
        # "views": the key's name as checkpoints hash it (a new name would restart their runs)
        "config": settings, "world": world, "views": [asdict(v) for v in aug_params],
        "probe": None if probe is None else {"every": probe.every, "lr": probe.lr_per_256,
                                             **({"generated_labels": "keep"}
                                                if probe.generated_labels is not None else {})},
    }, sort_keys=True, default=str).encode())
    for part in (real, generated):
        if part is not None and len(part):
            h.update(repr(part.shape).encode())
            h.update(np.ascontiguousarray(part[::max(1, len(part) // 1024)]).tobytes())
    return h.hexdigest()


def build_optimizer(cfg: PretrainConfig, method: nn.Module, world: int,
                    probe: OnlineProbe | None = None):
    """The method's optimiser over its online parameters and, as a second param group, the
    online probe's layer (solo-learn's `learnable_params`), with one warm-up + cosine schedule
    for both. Call probe.setup first."""
    o = resolved_optim(cfg, world)
    groups = [{"params": method.online_parameters()}]
    if probe is not None:
        groups.append(probe.param_group())
    opt = make_optimizer(o["optimizer"], groups, o["lr"], o["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, cfg.steps, cfg.warmup_steps))
    return opt, sched


def estimate_run_memory(cfg: PretrainConfig, method: nn.Module, num_images: int, image_shape,
                        world: int):
    """The device memory this run needs (pipeline.pretraining.memory.estimate_memory with the
    run's optimiser and precision), measured on a CPU copy of `method`."""
    o = resolved_optim(cfg, world)
    with local_only():
        return estimate_memory(num_images=num_images, image_shape=image_shape,
                               method=copy.deepcopy(method).cpu(), optimizer=o["optimizer"],
                               batch_size=cfg.batch_size,
                               precision_dtype=precision_dtype(cfg.precision))


def accelerate(method: nn.Module, cfg: PretrainConfig) -> None:
    """channels_last weights and/or torch.compile of every encoder (online and momentum ones),
    in place: Module.compile keeps the state_dict keys, so checkpoints do not change."""
    if cfg.channels_last:
        method.to(memory_format=torch.channels_last)
    if cfg.compile:
        for m in method.modules():
            if isinstance(m, Encoder):
                m.compile(dynamic=False)  # static shapes: one batch size, the fastest kernels


def train_step(model: nn.Module, views: tuple[torch.Tensor, torch.Tensor], opt, sched, scaler, *,
               step: int, total_steps: int, precision: str = "fp32",
               probe: OnlineProbe | None = None, rows: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, list[float], float | None]:
    """One step of the method on a batch's two augmented views: the loss, its gradient (with the
    online probe's, on the same views' features), the optimiser and schedule steps, then the
    momentum update of the targets. `model` is the method, or its DDP wrapper; `step` is 0-based.
    Returns the loss (a device tensor: no host sync), the learning rate of each param group it
    used and the momentum tau of the targets' update (None without targets)."""
    method = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    with autocast(precision, views[0].device):
        loss = model(*views).float()
    lrs = [group["lr"] for group in opt.param_groups]
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if probe is not None:  # its gradient joins the method's in the same optimiser step
        probe.backward(rows, scaler)
    scaler.step(opt)
    scaler.update()
    sched.step()
    tau = method.momentum_update(step, total_steps)  # the authors': the k-th update uses tau(k-1)
    return loss.detach(), lrs, tau


class LossCurve:
    """The loss of every step, copied to the host in bursts (one sync per `flush`) and checked
    there: a non-finite loss stops the run."""

    def __init__(self, method: str, history: list[dict]):
        self.method, self.history = method, history
        self.pending: list[tuple[int, float, torch.Tensor]] = []  # not yet on the host

    def add(self, step: int, lr: float, loss: torch.Tensor) -> None:
        self.pending.append((step, lr, loss))

    def flush(self) -> float | None:
        """Copy the pending losses to the host; returns their mean (None if there were none)."""
        values = []
        for step, lr, loss in self.pending:
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"{self.method} loss is {value} at step {step}")
            self.history.append({"step": step, "loss": value, "lr": lr})
            values.append(value)
        self.pending.clear()
        return sum(values) / len(values) if values else None


@dataclass
class TrainState:
    """Everything a checkpoint holds besides the step and the loss curve."""

    method: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    index: InflatedIndex
    probe: OnlineProbe | None = None


def save_checkpoint(path, step: int, history: list[dict], state: TrainState, device,
                    run_key: str | None = None) -> None:
    """The training state after `step` steps, written atomically."""
    checkpoint = {
        "run_key": run_key, "step": step, "history": history,
        "method": state.method.state_dict(), "optimizer": state.opt.state_dict(),
        "scheduler": state.sched.state_dict(), "scaler": state.scaler.state_dict(),
        "index": state.index.state_dict(),
        "probe": None if state.probe is None else state.probe.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    with io.atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    records.write(path, {"run_key": run_key, "step": step})


def readable_checkpoint(path) -> bool:
    """Whether the checkpoint at `path` matches its record (one written before records, without
    one, is tried as it is); a damaged one is logged and left for the next save to replace."""
    record = records.read(path)
    why = records.problem(path, record) if record is not None else None
    if why:
        log.warning("checkpoint %s fails its checksum (%s): starting fresh", path, why)
    return not why


def resume(path, run_key: str, state: TrainState, device,
           fallback=None) -> tuple[int, list[dict]]:
    """Load the checkpoint at `path` (else at `fallback`) into `state` (and the RNGs) when it
    exists and belongs to this run (`run_key`); returns the step to start at and the loss curve
    so far."""
    if path is None or not Path(path).exists():
        path = fallback
    if path is None or not Path(path).exists() or not readable_checkpoint(path):
        return 0, []
    with reading(path, RESTART):  # one written before records, damaged: one line and the fix
        checkpoint = torch.load(path, map_location=device, weights_only=False)
    if checkpoint.get("run_key") != run_key:
        log.warning("%s belongs to other settings or data (run key %s, this run's %s): "
                    "starting fresh", path, str(checkpoint.get("run_key"))[:12], run_key[:12])
        return 0, []
    state.method.load_state_dict(checkpoint["method"])
    state.opt.load_state_dict(checkpoint["optimizer"])
    state.sched.load_state_dict(checkpoint["scheduler"])
    state.scaler.load_state_dict(checkpoint["scaler"])
    state.index.load_state_dict(checkpoint["index"])
    if state.probe is not None:
        state.probe.load_state_dict(checkpoint["probe"])
    torch.set_rng_state(checkpoint["rng_cpu"])
    if device.type == "cuda" and checkpoint.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(checkpoint["rng_cuda"], device)
    log.info("resumed from %s at step %d", path, checkpoint["step"])
    return checkpoint["step"], checkpoint["history"]


def prepare_method(cfg: PretrainConfig, real: np.ndarray, generated: np.ndarray | None,
                   ctx: DistContext, memory_budget: int | None) -> tuple[Encoder, nn.Module | None]:
    """The encoder (seeded: the same initial weights on every rank) and, unless the run has no
    steps, the method around it, checked against the memory budget and ready for the device."""
    if generated is not None and len(generated) and generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"generated images are {generated.shape[1:]}, real ones {real.shape[1:]}")
    device = ctx.device
    torch.manual_seed(cfg.seed)
    mean, std = channel_stats(real)
    stem = {} if cfg.stem_padding is None else {"stem_padding": cfg.stem_padding}
    encoder = Encoder(cfg.widths, cfg.blocks, mean, std, **stem).to(device)
    if cfg.steps == 0:
        return encoder, None
    method = build_method(cfg.method, encoder, **cfg.hparams).to(device)
    num_images = len(real) + (0 if generated is None else len(generated))
    budget = memory_budget if memory_budget is not None else device_budget(device)
    if budget is not None:
        check_fits(estimate_run_memory(cfg, method, num_images, real.shape[1:], ctx.world),
                   budget, device)
    if ctx.group and device.type == "cuda":
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    accelerate(method, cfg)
    return encoder, method


def setup_probe(probe: OnlineProbe, cfg: PretrainConfig, method: nn.Module, num_real: int,
                num_generated: int, ctx: DistContext) -> None:
    """The online probe's layer over the method's encoder (its labels: the real images')."""
    if len(probe.train_labels) != num_real:
        raise ValueError(f"{len(probe.train_labels)} probe labels for {num_real} real images")
    probe.setup(method.encoder, method.encoder.feature_dim, num_generated,
                cfg.batch_size * ctx.world, cfg.steps, ctx,
                default_lr=resolved_optim(cfg, ctx.world)["classifier_lr_per_256"])


def data_parallel(method: nn.Module, ctx: DistContext) -> nn.Module:
    """The method wrapped in DDP under torchrun, else itself."""
    if not ctx.group:
        return method
    device = ctx.device
    return nn.parallel.DistributedDataParallel(
        method, device_ids=[device.index] if device.type == "cuda" else None)


@dataclass
class Run:
    """What the step loop works with, set up by `pretrain`."""

    cfg: PretrainConfig
    ctx: DistContext
    encoder: Encoder
    model: nn.Module  # the method, or its DDP wrapper
    state: TrainState
    data: torch.Tensor  # every image, uint8, on the device
    augment: list[nn.Module]  # one per view
    key: str  # run_key: what the checkpoints record
    tracker: Tracker
    checkpoint: str | Path | None = None
    callback: Callable[[int], None] | None = None

    def views(self) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of the global batch (its rows), and its two augmented views."""
        cfg, ctx = self.cfg, self.ctx
        rows = self.state.index.next_batch(cfg.batch_size * ctx.world)
        rows = rows[ctx.rank * cfg.batch_size:(ctx.rank + 1) * cfg.batch_size].to(ctx.device)
        x = self.data[rows].float().div_(255)
        x1, x2 = self.augment[0](x), self.augment[1](x)
        if cfg.channels_last:
            x1, x2 = (v.contiguous(memory_format=torch.channels_last) for v in (x1, x2))
        return rows, (x1, x2)

    def save_due(self, done: int, stop: int) -> bool:
        """Whether to write the checkpoint after step `done`: every checkpoint_every steps and
        at the end, or where the run stops early (the state the next round resumes from)."""
        cfg = self.cfg
        if self.checkpoint is None or not self.ctx.is_main:
            return False
        stopped_early = done == stop and stop < cfg.steps
        every = cfg.checkpoint_every
        return bool(stopped_early or every and (done % every == 0 or done == stop))


def train_steps(run: Run, start: int, stop: int, history: list[dict]) -> None:
    """Steps `start` to `stop` of the run, the loss curve appended to `history`."""
    cfg, ctx, probe, device = run.cfg, run.ctx, run.state.probe, run.ctx.device
    curve = LossCurve(cfg.method, history)
    progress = Progress("pretrain", stop, unit_per_step=cfg.batch_size * ctx.world, start=start,
                        tracker=run.tracker, device=device, logger=log) if ctx.is_main else None
    run.model.train()
    for step in tqdm(range(start, stop), desc=f"pretrain {cfg.method}", mininterval=5,
                     initial=start, total=stop, disable=not ctx.is_main):
        rows, views = run.views()
        s = run.state
        loss, lrs, tau = train_step(run.model, views, s.opt, s.sched, s.scaler, step=step,
                                    total_steps=cfg.steps, precision=cfg.precision, probe=probe,
                                    rows=rows)
        done = step + 1
        curve.add(done, lrs[0], loss)
        if probe is not None and probe.due(done):
            point = probe.evaluate(run.encoder, done, lambda: autocast(cfg.precision, device))
            run.tracker.scalars({"pretrain/online_top1": point["top1"],
                                 "pretrain/online_top5": point["top5"]}, done)
        checkpoint_due = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
        if len(curve.pending) >= cfg.log_every or done == stop or checkpoint_due:
            mean_loss = curve.flush()
            if progress is not None:
                progress.report(done, {"loss": mean_loss, "lr": lrs[0],
                                       **({"lr_probe": lrs[1]} if probe is not None else {}),
                                       **({"tau": tau} if tau is not None else {})})
        if run.save_due(done, stop):
            save_checkpoint(run.checkpoint, done, history, run.state, device, run_key=run.key)
        if run.callback is not None:
            run.callback(done)
    curve.flush()


def pretrain(cfg: PretrainConfig, aug_params: tuple[AugParams, AugParams], real: np.ndarray,
             generated: np.ndarray | None, ctx: DistContext, *,
             checkpoint: str | Path | None = None, callback=None,
             probe: OnlineProbe | None = None,
             memory_budget: int | None = None, resume_from: str | Path | None = None,
             stop_at: int | None = None, tracker: Tracker | None = None
             ) -> tuple[Encoder, list[dict]]:
    """Train an encoder with `cfg.method` on real images (×dup) plus generated ones.

    Returns the encoder and the loss curve (one dict per step: step, loss, lr). With
    `checkpoint`, resumes from that file when it exists and writes it every
    `cfg.checkpoint_every` steps; a checkpoint of other settings or data (see run_key) is
    ignored with a warning and the run starts fresh. `callback(step)` runs after each step. With
    `probe`, an online linear probe trains alongside (its labels are those of `real`, in order)
    and its evaluations end up in `probe.curve`; it is part of the checkpoint. A run whose memory
    plan exceeds `memory_budget` bytes (default: the CUDA device's free memory) raises
    MemoryPlanError before any data goes to the device. With `stop_at` < cfg.steps the run
    stops after that step (its schedules still span cfg.steps) and writes `checkpoint` there;
    `resume_from` is a checkpoint to start from when `checkpoint` does not exist yet (read
    only): the `auto` search's rounds continue their candidates this way. Every
    `cfg.log_every` steps the main process logs a progress line and writes the mean loss, each
    param group's learning rate, the momentum tau, samples/s and the peak memory (and the online
    probe's top-1/top-5 at its evaluations) to `tracker`, at no extra host sync.
    """
    encoder, method = prepare_method(cfg, real, generated, ctx, memory_budget)
    if method is None:
        return encoder.eval(), []
    device = ctx.device
    parts = [real] + ([generated] if generated is not None and len(generated) else [])
    num_generated = sum(len(p) for p in parts[1:])
    if probe is not None:
        setup_probe(probe, cfg, method, len(real), num_generated, ctx)
    opt, sched = build_optimizer(cfg, method, ctx.world, probe)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    model = data_parallel(method, ctx)
    data = to_nchw(np.concatenate(parts), device)  # uint8, on the device once
    index = InflatedIndex(len(real), num_generated, cfg.dup, cfg.seed)
    augment = [build_augmentation(v, real.shape[1]).to(device) for v in aug_params]
    key = run_key(cfg, aug_params, ctx.world, real, generated, probe)
    state = TrainState(method, opt, sched, scaler, index, probe)
    start, history = resume(checkpoint, key, state, device, fallback=resume_from)
    stop = cfg.steps if stop_at is None else stop_at
    if not start <= stop <= cfg.steps:
        raise ValueError(f"stop at step {stop}: the run is at step {start} of {cfg.steps}")
    if ctx.rank:  # augmentation randomness differs between ranks
        torch.manual_seed(cfg.seed + 7919 * ctx.rank + start)
    tracker = tracker or Tracker()
    tracker.start(start)
    run = Run(cfg, ctx, encoder, model, state, data, augment, key, tracker, checkpoint, callback)
    train_steps(run, start, stop, history)
    if probe is not None:
        probe.close()
    return encoder.eval(), history


def resolved_config(cfg: PretrainConfig, world: int = 1) -> dict:
    """The config with its optimiser settings resolved (resolved_optim) and the global batch:
    what a run's history.json and its live-curve hparams record."""
    return {**asdict(cfg), **resolved_optim(cfg, world), "global_batch": cfg.batch_size * world}


def cell_hparams(record: dict) -> dict:
    """The settings a sweep or the `auto` search varies between cells, read from a pretraining
    record (pretrain's history.json, the encoder's meta): the hparams every run of a cell (its
    pretraining and each evaluation) logs, so that TensorBoard's HPARAMS tab sets cells apart by
    what differs, not only by name."""
    view = (record.get("augmentation_params") or [{}])[0]
    config = record.get("config", {})
    num_generated = record.get("num_generated") or 0
    return {"method": record.get("method"), "strategy": record.get("strategy"),
            "seed": config.get("seed"), "steps": config.get("steps"), "dup": record.get("dup"),
            "generated": num_generated > 0, "num_real": record.get("num_real"),
            "num_generated": num_generated, "real_fraction": record.get("real_fraction") or 1.0,
            "generated_keep": record.get("generated_keep") or 1.0,
            "augmentation": record.get("augmentation"),
            "crop_min_scale": view.get("crop_min_scale"),
            "jitter_strength": view.get("jitter_strength")}
