"""Live curves of a job that trains or samples: TensorBoard event files, optionally W&B.

`Tracker` writes scalars and a run's hyper-parameters with torch.utils.tensorboard (TensorBoard's
own writer) and, when a W&B project is given, the same scalars to wandb (an optional extra:
`pip install 'adainf-pipeline[wandb]'`). Without either it does nothing, so the training code
calls it unconditionally. `Progress` is a loop's report every few steps: one log line (step/total,
loss, samples/s, ETA: what tqdm shows on a terminal, for a SLURM job's log file) and the same
figures as scalars. Nothing here touches a random number generator or a tensor's value: logging
never changes a result, which is why the workflow passes these options untracked.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import sys
import time

from pipeline.core import cli
from pipeline.core.errors import UserError
from pipeline.vocab import options
from pipeline.vocab.names import WANDB_MODES

log = logging.getLogger(__name__)



def flat_hparams(hparams: dict, prefix: str = "") -> dict:
    """Nested settings as one level of `a.b` keys with values TensorBoard's hparams plugin takes
    (int, float, str, bool): None and lists become their text."""
    flat = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class Tracker:
    """Scalars and hyper-parameters of one run, to TensorBoard (`logdir`) and/or W&B (`wandb`:
    {"project", "mode", "dir"}); a no-op with neither, or with `enabled` False (a DDP rank that
    is not the main one). The TensorBoard writer opens at the first write; call `start(step)`
    before it when a run resumes after `step` steps, so that a killed predecessor's points past
    that step are dropped (SummaryWriter's purge_step; a fresh run, at 0, replaces every point of
    an earlier run in the same folder)."""

    def __init__(self, logdir: str | None = None, *, wandb: dict | None = None,
                 name: str | None = None, enabled: bool = True):
        self.logdir = logdir if enabled else None
        self.name, self.purge_step = name, 0
        self._writer, self._wandb, self._wandb_metrics = None, None, set()
        self._pending_hparams = []  # summaries written when the writer opens
        if enabled and wandb is not None:
            self._wandb = _wandb_run(name=name, **wandb)

    @property
    def active(self) -> bool:
        return self.logdir is not None or self._wandb is not None

    def start(self, step: int) -> None:
        """The run (re)starts after `step` steps (call before the first write): the points a
        killed predecessor wrote after that step are dropped; at 0, all of them."""
        self.purge_step = step + 1 if step else 0

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # ~0.3 s: only when used

            # 30 s between flushes to disk (TensorBoard's 120 by default): a live view
            self._writer = SummaryWriter(self.logdir, purge_step=self.purge_step, flush_secs=30)
        for summary in self._pending_hparams:
            self._writer.file_writer.add_summary(summary)
        self._pending_hparams.clear()
        return self._writer

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.logdir is not None:
            writer = self.writer
            for name, value in values.items():
                writer.add_scalar(name, value, step)
        if self._wandb is not None:
            for name in values.keys() - self._wandb_metrics:  # every curve against "step"
                self._wandb.define_metric(name, step_metric="step")
                self._wandb_metrics.add(name)
            self._wandb.log({**values, "step": step})

    def scalar(self, name: str, value: float, step: int) -> None:
        self.scalars({name: value}, step)

    def hparams(self, hparams: dict, metrics: list[str]) -> None:
        """The run's settings, so that runs compare in TensorBoard's HPARAMS tab (with the last
        value of each of the `metrics` tags) and in W&B's run table."""
        flat = flat_hparams(hparams)
        if self.logdir is not None:
            from torch.utils.tensorboard.summary import hparams as hparams_summary

            # Into this run's own event file (SummaryWriter.add_hparams would open a sub-run
            # and write the metrics again there), as PyTorch Lightning's TensorBoardLogger
            # does; held until the writer opens, after start()
            self._pending_hparams.extend(hparams_summary(flat, dict.fromkeys(metrics, 0.0)))
        if self._wandb is not None:
            self._wandb.config.update(flat, allow_val_change=True)

    def close(self) -> None:
        if self._pending_hparams:
            self.writer  # noqa: B018 (a run that wrote no scalar still records its settings)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _wandb_run(project: str, mode: str, dir: str | None = None, name: str | None = None):
    if mode not in WANDB_MODES:
        raise UserError(f"W&B mode {mode!r}: choose one of {', '.join(WANDB_MODES)}")
    try:
        import wandb
    except ImportError:
        raise UserError("W&B logging asked for (project "
                        f"{project!r}) but wandb is not installed: "
                        "pip install 'adainf-pipeline[wandb]'") from None
    if dir is not None:
        from pathlib import Path

        Path(dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(project=project, mode=mode, dir=dir, name=name,
                      group=None if name is None else name.split("/")[0],
                      # the job's log keeps its own stdout/stderr
                      settings=wandb.Settings(console="off", silent=True))


def peak_memory(device) -> tuple[str, float]:
    """(tag, GB): the peak device memory of torch's allocator on CUDA, else this process's
    peak resident host memory."""
    import torch

    if getattr(device, "type", device) == "cuda" and torch.cuda.is_available():
        return "peak_device_memory_gb", torch.cuda.max_memory_allocated(device) / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return "peak_host_memory_gb", rss * (1 if sys.platform == "darwin" else 1024) / 1e9


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A loop's report: call `report(step, scalars)` every few steps (a step being whatever the
    loop counts: training steps, sampling batches, epochs). It logs one line, step/total, the
    loss when given, samples/s and the ETA since the previous report, and writes the scalars,
    the rate and the peak memory under `prefix/` to the tracker. `unit_per_step` is the number of
    samples (or images) in one step."""

    def __init__(self, prefix: str, total: int, *, unit_per_step: float, start: int = 0,
                 tracker: Tracker | None = None, device=None, unit: str = "samples",
                 logger: logging.Logger = log):
        self.prefix, self.total, self.unit_per_step, self.unit = prefix, total, unit_per_step, unit
        self.tracker, self.device, self.logger = tracker, device, logger
        self.step, self.time = start, time.perf_counter()

    def report(self, step: int, scalars: dict[str, float] | None = None) -> None:
        now = time.perf_counter()
        steps_per_s = (step - self.step) / max(now - self.time, 1e-9)
        rate = steps_per_s * self.unit_per_step
        eta = (self.total - step) / steps_per_s if steps_per_s > 0 else math.inf
        scalars = dict(scalars or {})
        memory_tag, memory = peak_memory(self.device)
        loss = scalars.get("loss")
        self.logger.info("%s %d/%d%s  %.1f %s/s  %s %.2f GB  ETA %s", self.prefix, step,
                         self.total, "" if loss is None else f"  loss {loss:.4f}", rate,
                         self.unit, memory_tag.removesuffix("_gb").replace("_", " "), memory,
                         duration(eta))
        if self.tracker is not None:
            self.tracker.scalars({f"{self.prefix}/{k}": v for k, v in
                                  {**scalars, f"{self.unit}_per_s": rate,
                                   memory_tag: memory}.items()}, step)
        self.step, self.time = step, now


def add_tracking_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a stage that trains or samples for its live curves (none change a
    result: the workflow passes them untracked, config.yaml's `logging`)."""
    cli.add_options(parser.add_argument_group("live curves (config logging; no effect on the "
                                              "results)"), options.TRACKING)
    return parser


def tracker_from_args(args: argparse.Namespace, enabled: bool = True) -> Tracker:
    """The Tracker of a stage's add_tracking_args options (disabled on DDP ranks but the main)."""
    if (args.wandb_project is None) != (args.wandb_mode is None):
        raise UserError("--wandb-project and --wandb-mode go together")
    wandb = None
    if args.wandb_project is not None:
        wandb = {"project": args.wandb_project, "mode": args.wandb_mode, "dir": args.wandb_dir}
    return Tracker(args.tensorboard, wandb=wandb, name=args.run_name, enabled=enabled)
